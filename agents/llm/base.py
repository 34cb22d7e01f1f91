"""The LLM provider port. Providers: ``offline`` (embedded default, not a language model) and ``openai``
(any OpenAI-compatible endpoint through the official async client)."""

from __future__ import annotations

import abc
from typing import Any

from pydantic import BaseModel, Field


class LLMRequest(BaseModel):
    prompt: str
    system: str | None = None
    model: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    output_schema: dict[str, Any] | None = None
    messages: list[dict[str, Any]] | None = None  # chat history (EAI ai_chat); prompt is the last user turn
    context: dict[str, Any] = Field(default_factory=dict)  # outputs of the step's dependencies, by step name
    input: dict[str, Any] = Field(default_factory=dict)  # the workflow input


class LLMResult(BaseModel):
    output: Any  # str, or the parsed and schema-validated object when output_schema is given
    model: str
    provider: str
    usage: dict[str, int] = Field(default_factory=dict)


class LLMProvider(abc.ABC):
    name: str

    @abc.abstractmethod
    async def complete(self, request: LLMRequest) -> LLMResult: ...

    async def probe(self) -> None:  # noqa: B027 - optional hook
        """Cheap health check; the offline provider is always healthy."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release clients; most providers hold nothing."""

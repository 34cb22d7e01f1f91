"""The LLM provider port. Providers: ``offline`` (embedded default, not a language model) and ``openai``
(any OpenAI-compatible endpoint through the official async client)."""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from typing import Any

import jsonschema
from pydantic import BaseModel, Field

from orchestrator.core.errors import StepError


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

    async def stream(self, request: LLMRequest) -> AsyncIterator[str | LLMResult]:
        """:meth:`complete`, streamed: text deltas (``str``) as the completion is produced, then the
        :class:`LLMResult`, whose output is the whole text (or, with ``output_schema``, the parsed object
        the deltas spell as JSON). The deltas only show progress: the result is what a step records.
        A provider that cannot stream yields the result alone."""
        yield await self.complete(request)

    async def probe(self) -> None:  # noqa: B027 - optional hook
        """Cheap health check; the offline provider is always healthy."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release clients; most providers hold nothing."""


def check_output_schema(schema: dict[str, Any]) -> None:
    """Both providers refuse an invalid ``output_schema`` the same way, before any call is made.
    A dict, not any Mapping: jsonschema's meta-schema check accepts only a dict as an "object"."""
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise StepError(
            f"output_schema is not a valid JSON Schema: {exc.message}",
            retryable=False,
            code="INVALID_OUTPUT_SCHEMA",
        ) from exc

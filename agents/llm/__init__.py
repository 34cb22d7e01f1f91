"""LLM providers behind one port: ``offline`` (the embedded default, not a language model) and ``openai``
(any OpenAI-compatible endpoint).

The choice is made once, from settings, so steps and the planner never know which one they talk to.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agents.llm.base import LLMProvider, LLMRequest, LLMResult
from agents.llm.offline import OfflineProvider
from orchestrator.config import Settings

if TYPE_CHECKING:
    from agents.llm.openai_provider import OpenAIProvider

__all__ = ["LLMProvider", "LLMRequest", "LLMResult", "OfflineProvider", "OpenAIProvider", "make_provider"]


def __getattr__(name: str) -> Any:
    # The openai package takes about a second to import, in every process that imports this one (hosts,
    # agents, the ingress): only a server that uses the provider pays for it.
    if name == "OpenAIProvider":
        from agents.llm.openai_provider import OpenAIProvider

        return OpenAIProvider
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def make_provider(settings: Settings) -> LLMProvider:
    """Offline unless an endpoint or key is configured (or ``llm_provider`` says otherwise)."""
    if settings.resolved_llm_provider == "offline":
        return OfflineProvider()
    from agents.llm.openai_provider import OpenAIProvider

    return OpenAIProvider(
        base_url=settings.llm_base_url,
        api_key=settings.llm_api_key,
        model=settings.llm_model,
        timeout=settings.llm_timeout,
    )

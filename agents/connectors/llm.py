"""The ``llm`` connector: capabilities such as analyze / summarize / recommend are prompt templates for the
configured LLM provider, so the planner can treat "ask the model" like any other agent capability.

A capability's ``binding.prompt`` is a Jinja2 template rendered in the sandboxed environment with the call's
parameters (parameters come from plans and users, so templates must not reach Python internals). The
parameters also go to the provider as ``context``, which is what the offline provider summarises. Optional
binding keys ``system``, ``model``, ``max_tokens``, ``temperature`` and ``output_schema`` pass through; the
connector config may set defaults for the first four.

The provider is injected (tests, a shared provider in the agent actor) or created lazily from the server
settings on first use, so merely building the connector never opens a client.

Errors: a template that does not render is :class:`ConnectorCallError`; errors the provider raises from the
project's tree pass through unchanged; anything else it raises is :class:`ConnectorUnavailable`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any, ClassVar, Literal

from jinja2 import TemplateError

from agents.connectors.base import (
    CallContext,
    CapabilitySpec,
    Connector,
    ConnectorCallError,
    ConnectorUnavailable,
)
from agents.llm.base import LLMProvider, LLMRequest
from orchestrator.core.errors import OrchestratorError
from orchestrator.core.templates import sandbox

__all__ = ["LLMConnector"]

_PASSTHROUGH = ("system", "model", "max_tokens", "temperature")


def _default_provider() -> LLMProvider:
    from agents.llm import make_provider
    from orchestrator.config import Settings

    return make_provider(Settings())


class LLMConnector(Connector):
    type: ClassVar[str] = "llm"

    def __init__(
        self,
        name: str,
        config: dict[str, Any],
        *,
        provider: LLMProvider | None = None,
        provider_factory: Callable[[], LLMProvider] | None = None,
        secrets: Iterable[str] = (),
    ) -> None:
        super().__init__(name, config, secrets=secrets)
        self._provider = provider
        self._owns_provider = provider is None  # an injected provider is shared; its owner closes it
        self._factory = provider_factory or _default_provider
        self._env = sandbox(prompt=True)
        self._templates: dict[str, Any] = {}

    @property
    def provider(self) -> LLMProvider:
        if self._provider is None:
            self._provider = self._factory()
        return self._provider

    async def connect(self) -> None:
        try:
            _ = self.provider
        except OrchestratorError:
            raise
        except Exception as exc:
            raise ConnectorUnavailable(
                f"connector {self.name!r} cannot create its LLM provider: {exc}"
            ) from exc

    def render(self, capability: CapabilitySpec, parameters: dict[str, Any]) -> str:
        """The prompt for one call. Without a template the capability's description and the parameters as
        JSON still make a usable prompt, so a capability declared by name alone works."""
        source = capability.binding.get("prompt")
        if not isinstance(source, str):
            described = capability.description or capability.name
            return f"{described}\n\n{json.dumps(parameters, indent=2, default=str, sort_keys=True)}"
        try:
            template = self._templates.get(source)
            if template is None:
                template = self._templates[source] = self._env.from_string(source)
            return str(template.render(**parameters)).strip()
        except TemplateError as exc:
            raise ConnectorCallError(
                f"prompt of capability {capability.name!r} on connector {self.name!r} does not render: {exc}"
            ) from exc

    async def call(
        self,
        capability: CapabilitySpec,
        parameters: dict[str, Any],
        *,
        mode: Literal["query", "execute"],
        context: CallContext,
    ) -> Any:
        prompt = self.render(capability, parameters)
        options = {key: self.config[key] for key in _PASSTHROUGH if self.config.get(key) is not None}
        options.update({key: capability.binding[key] for key in _PASSTHROUGH if key in capability.binding})
        if "output_schema" in capability.binding:
            options["output_schema"] = capability.binding["output_schema"]
        request = LLMRequest(prompt=prompt, context=parameters, **options)
        await self.connect()
        try:
            result = await self.provider.complete(request)
        except OrchestratorError:
            raise
        except Exception as exc:
            raise ConnectorUnavailable(
                f"LLM provider of connector {self.name!r} failed for capability {capability.name!r}: {exc!r}"
            ) from exc
        return result.output

    async def probe(self) -> None:
        await self.connect()
        try:
            await self.provider.probe()
        except OrchestratorError:
            raise
        except Exception as exc:
            raise ConnectorUnavailable(
                f"LLM provider of connector {self.name!r} is unhealthy: {exc!r}"
            ) from exc

    async def close(self) -> None:
        if not self._owns_provider:
            return
        provider, self._provider = self._provider, None
        if provider is not None:
            await provider.close()

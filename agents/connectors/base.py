"""The connector port: how an agent reaches a real system.

Connectors translate their driver's exceptions at this boundary (STYLE 9): callers only ever see
:class:`ConnectorError` subclasses, each carrying ``retryable``.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, Field

from agents.redaction import Redactor, config_secrets
from orchestrator.core.errors import StepError


class ConnectorError(StepError):
    code = "CONNECTOR_ERROR"


class ConnectorTimeout(ConnectorError):
    code = "CONNECTOR_TIMEOUT"


class ConnectorUnavailable(ConnectorError):
    code = "CONNECTOR_UNAVAILABLE"


class ConnectorCallError(ConnectorError):
    """The system answered with an error for this call (bad arguments, tool error): not retryable."""

    code = "CONNECTOR_CALL_FAILED"

    def __init__(self, message: str, *, retryable: bool = False, code: str | None = None) -> None:
        super().__init__(message, retryable=retryable, code=code)


class ParameterSpec(BaseModel):
    type: str = "string"
    required: bool = False
    description: str | None = None
    enum: list[Any] | None = None
    default: Any = None


class CapabilitySpec(BaseModel):
    name: str
    description: str = ""
    parameters: dict[str, ParameterSpec] = Field(default_factory=dict)
    # connector-specific binding: SQL statement, HTTP method/path, LLM prompt, MCP tool name
    binding: dict[str, Any] = Field(default_factory=dict)


class CallContext(BaseModel):
    """What a connector may use besides the parameters."""

    idempotency_key: str | None = None
    execution_id: str | None = None
    step: str | None = None
    timeout: float | None = None


class Connector(abc.ABC):
    type: ClassVar[str]
    # Whether a capability the agent never declared may be called by name: only for connectors whose name
    # cannot reach anything it should not (an MCP tool the server would refuse); an HTTP path could.
    allows_undeclared: ClassVar[bool] = True

    def __init__(self, name: str, config: dict[str, Any], *, secrets: Iterable[str] = ()) -> None:
        self.name = name
        self.config = config
        # ``secrets``: values the registry expanded from ${ENV_VAR} placeholders, on top of the config's own
        self.redactor = Redactor(config_secrets(config) | set(secrets))

    @abc.abstractmethod
    async def connect(self) -> None:
        """Open the session/pool. Raises ConnectorUnavailable."""

    @abc.abstractmethod
    async def call(
        self,
        capability: CapabilitySpec,
        parameters: dict[str, Any],
        *,
        mode: Literal["query", "execute"],
        context: CallContext,
    ) -> Any:
        """Run one capability and return JSON-able output."""

    @abc.abstractmethod
    async def probe(self) -> None:
        """A real, cheap health check. Raises ConnectorError when unhealthy."""

    async def discover(self) -> list[CapabilitySpec] | None:
        """Capabilities the system describes itself (MCP tools); None when it cannot."""
        return None

    @abc.abstractmethod
    async def close(self) -> None: ...

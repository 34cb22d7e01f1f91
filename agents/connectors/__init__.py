"""The connector port and its adapters. Each adapter translates its driver's exceptions into
:class:`ConnectorError` subclasses carrying ``retryable``; callers never see a driver's exception.
The adapters (``mcp``, ``sql``, ``http``, ``llm``) are imported by the registry on demand, so a node
that uses none of PostgreSQL's or MCP's drivers never loads them.
"""

from agents.connectors.base import (
    CallContext,
    CapabilitySpec,
    Connector,
    ConnectorCallError,
    ConnectorError,
    ConnectorTimeout,
    ConnectorUnavailable,
    ParameterSpec,
)

__all__ = [
    "CallContext",
    "CapabilitySpec",
    "Connector",
    "ConnectorCallError",
    "ConnectorError",
    "ConnectorTimeout",
    "ConnectorUnavailable",
    "ParameterSpec",
]

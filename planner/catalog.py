"""The catalog a planner plans over: which agents it may use for one request.

Agents come from the registry (``AgentConfig``), from API payloads (dicts) or are already
:class:`CatalogAgent`; health comes from the agents' own checks and may be passed separately, because the
registry holds configuration only. Disabled and unhealthy agents are left out so a plan never names an agent
that would fail at once; generic agents are always kept because the synthesis step needs one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from agents.connectors.base import CapabilitySpec
from planner.models import ALL_DOMAINS, CatalogAgent

__all__ = ["ALL_DOMAINS", "UNHEALTHY_STATUSES", "filter_catalog", "to_catalog_agent"]

UNHEALTHY_STATUSES: frozenset[str] = frozenset({"unhealthy", "unavailable", "down", "failed", "error"})


def _get(item: Any, key: str, default: Any = None) -> Any:
    if isinstance(item, Mapping):
        return item.get(key, default)
    return getattr(item, key, default)


def _health_of(item: Any) -> str | None:
    status = _get(item, "health_status")
    if isinstance(status, str):
        return status
    health = _get(item, "health")
    if isinstance(health, str):
        return health
    if health is not None:
        nested = _get(health, "status")
        if isinstance(nested, str):
            return nested
    return None


def to_catalog_agent(item: Any, *, health_status: str | None = None) -> CatalogAgent:
    """Convert a registry ``AgentConfig``, a dict or a ``CatalogAgent`` into a ``CatalogAgent``."""
    if isinstance(item, CatalogAgent):
        return item if health_status is None else item.model_copy(update={"health_status": health_status})
    capabilities: list[CapabilitySpec] = []
    for cap in _get(item, "capabilities", None) or []:
        if isinstance(cap, CapabilitySpec):
            capabilities.append(cap)
        elif isinstance(cap, str):
            capabilities.append(CapabilitySpec(name=cap))
        else:
            capabilities.append(CapabilitySpec.model_validate(cap))
    return CatalogAgent(
        id=str(_get(item, "id")),
        name=str(_get(item, "name", None) or _get(item, "id")),
        domain=str(_get(item, "domain", None) or "generic"),
        description=str(_get(item, "description", None) or ""),
        capabilities=capabilities,
        health_status=health_status or _health_of(item) or "unknown",
    )


def filter_catalog(
    agents: Iterable[Any],
    domain: str | None,
    *,
    health: Mapping[str, str] | None = None,
) -> list[CatalogAgent]:
    """Enabled, not unhealthy agents of ``domain`` plus every generic agent, in the order given.

    ``health`` maps agent id to its last health status and wins over any status carried by the agent itself.
    A domain hint of None, ``generic`` or ``auto`` keeps every domain.
    """
    wanted = (domain or "").strip().lower()
    result: list[CatalogAgent] = []
    for item in agents:
        if _get(item, "enabled", True) is False:
            continue
        agent_id = str(_get(item, "id"))
        status = (health or {}).get(agent_id)
        agent = to_catalog_agent(item, health_status=status)
        if agent.health_status.lower() in UNHEALTHY_STATUSES:
            continue
        agent_domain = agent.domain.lower()
        if wanted in ALL_DOMAINS or agent_domain == wanted or agent_domain == "generic":
            result.append(agent)
    return result

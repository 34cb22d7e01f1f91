"""The agents API (``/api/v1/agents``): what agents exist, what they can do, and whether they are healthy.

Configuration (name, domain, connector type, enabled) comes from the registry the ingress loaded at start.
Everything that is live comes from the agent's actor, because only the actor knows it: its health (the
actor's own probe loop) and its capabilities (declared ones merged with the tools an MCP server describes).
Actor calls are bounded by a short timeout and answered concurrently, so one starting or wedged actor turns
into ``health_status: "unknown"`` for that agent instead of a slow or failing listing.

``unknown`` is also the status of a disabled agent and of any agent without a running actor: nothing is
checking it, so claiming ``unhealthy`` would be a guess. ``enabled: false`` says why.

An agent with several replicas (``replicas: N``) is asked through all of them at once: ``health`` is their
aggregate (``healthy`` when all are, ``degraded`` while some serve, ``unhealthy`` when none does) and the
detail lists each replica, with its actor, node and own health, under ``replicas``.

Route order matters: ``/domain/{domain}`` and ``/validate`` are declared before ``/{agent_id}``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Literal

from fastapi import APIRouter, Body, Depends, Query, Request
from pydantic import BaseModel, Field

from agents.actor import AgentReplicas
from agents.registry import AgentConfig, Registry, validate_agent_config
from orchestrator.server.api.deps import authenticate, maybe_service, service_of

log = logging.getLogger(__name__)

# Agents are shared by every tenant: any valid key may look at them.
router = APIRouter(prefix="/api/v1/agents", tags=["agents"], dependencies=[Depends(authenticate)])

HealthStatus = Literal["healthy", "degraded", "unhealthy", "unknown"]

# Long enough for a busy actor to answer from its loop, short enough that a listing never hangs on a
# restarting one; health is a snapshot anyway and the next request asks again.
ACTOR_TIMEOUT = 2.0

_SEED_VALIDATE_EXAMPLE: dict[str, Any] = {
    "id": "custom-agent",
    "name": "Custom Data Agent",
    "domain": "analytics",
    "connector_type": "postgres",
    "connector_config": {"name": "analytics-db"},
    "capabilities": ["query_metrics", "aggregate_data"],
}


def _is_none(value: Any) -> bool:
    return value is None


class ParameterView(BaseModel):
    """A parameter schema as the seed shows it: optional keys are left out rather than sent as null."""

    type: str
    required: bool
    description: str | None = Field(default=None, exclude_if=_is_none)
    enum: list[Any] | None = Field(default=None, exclude_if=_is_none)
    default: Any = Field(default=None, exclude_if=_is_none)


class CapabilityView(BaseModel):
    name: str
    description: str = ""
    parameters: dict[str, ParameterView] = Field(default_factory=dict)


class HealthView(BaseModel):
    status: HealthStatus
    last_check: str | None = None
    latency_ms: float | None = None
    consecutive_failures: int = 0
    last_error: str | None = None


class ReplicaView(HealthView):
    """One replica: its Ray actor (``agent:<id>``, ``agent:<id>#2``, ...), the node it runs on, and its own
    health; ``actor_id`` and ``node_id`` are null when it did not answer."""

    name: str
    actor_id: str | None = None
    node_id: str | None = None


class AgentSummary(BaseModel):
    id: str
    name: str
    domain: str
    capabilities: list[str]
    connector_type: str
    enabled: bool
    health_status: HealthStatus


class AgentList(BaseModel):
    agents: list[AgentSummary]
    count: int


class AgentDetail(BaseModel):
    id: str
    name: str
    description: str
    domain: str
    capabilities: list[CapabilityView]
    connector_type: str
    enabled: bool
    health: HealthView
    replicas: list[ReplicaView] = Field(
        default_factory=list, description="each replica of the agent; empty when it runs none (disabled)"
    )


class DomainAgent(BaseModel):
    id: str
    name: str
    capabilities: list[str]
    enabled: bool


class DomainAgentList(BaseModel):
    domain: str
    agents: list[DomainAgent]
    count: int


class AgentRef(BaseModel):
    """The identifying fields as given, even when invalid, so a client can match answers to requests."""

    id: Any = None
    name: Any = None
    domain: Any = None


class FieldError(BaseModel):
    field: str
    message: str


class ValidationResult(BaseModel):
    valid: bool
    agent: AgentRef
    errors: list[FieldError]
    warnings: list[str]


# -- live state from the actors -------------------------------------------------------------------------


async def _describe_all(agents: list[AgentConfig]) -> dict[str, dict[str, Any] | None]:
    """``describe()`` of every enabled agent with actors, through all its replicas, concurrently. Never
    raises: a replica that does not answer in time is ``unknown``, so one agent's trouble cannot fail a
    request about all of them."""
    handles: dict[str, AgentReplicas] = maybe_service("agents") or {}
    live = [a for a in agents if a.enabled and a.id in handles]
    answers = await asyncio.gather(*(handles[a.id].describe(timeout=ACTOR_TIMEOUT) for a in live))
    return {agent.id: answer for agent, answer in zip(live, answers, strict=True)}


def _health(agent: AgentConfig, described: dict[str, Any] | None) -> dict[str, Any]:
    health = (described or {}).get("health")
    if not agent.enabled or not isinstance(health, dict):
        return {"status": "unknown"}
    return health


def _capabilities(agent: AgentConfig, described: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The actor's view (declared plus discovered), else the registry's declared capabilities. Bindings
    (SQL, prompts, tool names) are implementation detail and never leave the server."""
    live = (described or {}).get("capabilities")
    if isinstance(live, list):
        return live
    return [c.model_dump(mode="json", exclude={"binding"}) for c in agent.capabilities]


def _names(agent: AgentConfig, described: dict[str, Any] | None) -> list[str]:
    return [str(c["name"]) for c in _capabilities(agent, described)]


def _registry(request: Request) -> Registry:
    registry: Registry = service_of(request, "registry")
    return registry


# -- routes ---------------------------------------------------------------------------------------------


@router.get("", response_model=AgentList, summary="List the agents available for multi-agent planning")
async def list_agents(
    request: Request,
    domain: str | None = Query(default=None, description="only agents of this domain"),
    enabled: bool | None = Query(default=None, description="only enabled (true) or disabled (false) agents"),
) -> dict[str, Any]:
    agents = [
        agent
        for agent in _registry(request).agents.values()
        if (domain is None or agent.domain == domain) and (enabled is None or agent.enabled == enabled)
    ]
    described = await _describe_all(agents)
    items = [
        {
            "id": agent.id,
            "name": agent.name,
            "domain": agent.domain,
            "capabilities": _names(agent, described.get(agent.id)),
            "connector_type": agent.connector_type,
            "enabled": agent.enabled,
            "health_status": _health(agent, described.get(agent.id))["status"],
        }
        for agent in agents
    ]
    return {"agents": items, "count": len(items)}


@router.get("/domain/{domain}", response_model=DomainAgentList, summary="The agents of one domain")
async def agents_by_domain(domain: str, request: Request) -> dict[str, Any]:
    agents = _registry(request).by_domain(domain)
    described = await _describe_all(agents)
    items = [
        {
            "id": agent.id,
            "name": agent.name,
            "capabilities": _names(agent, described.get(agent.id)),
            "enabled": agent.enabled,
        }
        for agent in agents
    ]
    return {"domain": domain, "agents": items, "count": len(items)}


@router.post(
    "/validate",
    response_model=ValidationResult,
    summary="Check an agent configuration without registering it",
    description="Always 200 for a JSON object: `valid` is false when `errors` is not empty. Warnings describe "
    "an agent that would load but not fully work yet, or that would replace a registered one.",
)
async def validate_agent(
    request: Request,
    config: dict[str, Any] = Body(
        ...,
        description="an agent configuration, as in an agents YAML file",
        openapi_examples={"seed": {"summary": "custom analytics agent", "value": _SEED_VALIDATE_EXAMPLE}},
    ),
) -> dict[str, Any]:
    return validate_agent_config(config, _registry(request))


@router.get(
    "/{agent_id}",
    response_model=AgentDetail,
    responses={404: {"description": "AGENT_NOT_FOUND"}},
    summary="One agent with its capability schemas and health",
)
async def get_agent(agent_id: str, request: Request) -> dict[str, Any]:
    agent = _registry(request).get(agent_id)  # NotFound -> 404 AGENT_NOT_FOUND
    described = (await _describe_all([agent])).get(agent.id)
    return {
        "id": agent.id,
        "name": agent.name,
        "description": agent.description,
        "domain": agent.domain,
        "capabilities": _capabilities(agent, described),
        "connector_type": agent.connector_type,
        "enabled": agent.enabled,
        "health": _health(agent, described),
        "replicas": ((described or {}).get("replicas") or []) if agent.enabled else [],
    }


__all__ = ["ACTOR_TIMEOUT", "router"]

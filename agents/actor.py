"""Agent actors: one long-lived, named Ray actor per enabled agent.

The actor owns its connector's session (one MCP session, one DB connection, one HTTP client), so a
workflow step or a plan reaches the system through a warm connection instead of opening one per call.
It validates call parameters against the capability's schema before calling, and keeps checking its
own health: a real probe on an interval, ``degraded`` after a failure, ``unhealthy`` at the threshold,
reconnects with backoff, ``healthy`` again when the probe passes. Calls to an unhealthy agent fail fast
with ``AGENT_UNAVAILABLE`` (retryable, so a step's retry policy can wait it out).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import ray

from agents.connectors.base import (
    CallContext,
    CapabilitySpec,
    Connector,
    ConnectorCallError,
    ConnectorError,
    ConnectorTimeout,
    ConnectorUnavailable,
)
from agents.llm import make_provider
from agents.llm.base import LLMRequest
from agents.redaction import Redactor
from agents.registry import AgentConfig, ConnectorConfig, Registry, make_connector
from orchestrator.config import Settings, quiet_logging
from orchestrator.core.errors import AgentUnavailable, NotFound, OrchestratorError, StepError
from orchestrator.core.timestamps import format_timestamp

log = logging.getLogger(__name__)

ACTOR_NAME = "agent:{agent_id}"
_PY_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "number": (int, float),
    "integer": (int,),
    "boolean": (bool,),
    "array": (list, tuple),
    "object": (dict,),
}


def validate_parameters(
    agent_id: str, capability: CapabilitySpec, parameters: dict[str, Any]
) -> dict[str, Any]:
    """Check a call against the capability's schema and fill defaults; raise a non-retryable error
    naming every problem, so a bad plan or workflow fails with a message instead of a driver error."""
    problems: list[str] = []
    result = dict(parameters)
    for name, spec in capability.parameters.items():
        value = result.get(name)
        if value is None:
            if spec.default is not None:
                result[name] = spec.default
            elif spec.required:
                problems.append(f"missing required parameter {name!r}")
            continue
        expected = _PY_TYPES.get(spec.type)
        if expected and (
            not isinstance(value, expected) or (spec.type != "boolean" and isinstance(value, bool))
        ):
            problems.append(f"parameter {name!r} must be of type {spec.type}, got {type(value).__name__}")
        if spec.enum and value not in spec.enum:
            problems.append(f"parameter {name!r} must be one of {spec.enum!r}, got {value!r}")
    if problems:
        raise ConnectorCallError(
            f"invalid call to {capability.name!r} of agent {agent_id!r}: " + "; ".join(problems),
            code="INVALID_PARAMETERS",
        )
    return result


def provider_for(connector: ConnectorConfig, settings: Settings) -> Any:
    """An llm connector may name its own endpoint (``provider``, ``base_url``, ``api_key``, ``model``);
    otherwise it uses the server's LLM settings."""
    config = connector.config
    overrides = {
        field: config[key]
        for key, field in (
            ("provider", "llm_provider"),
            ("base_url", "llm_base_url"),
            ("api_key", "llm_api_key"),
            ("model", "llm_model"),
        )
        if config.get(key)
    }
    if "llm_base_url" in overrides and "llm_provider" not in overrides:
        overrides["llm_provider"] = "openai"
    return make_provider(settings.model_copy(update=overrides) if overrides else settings)


class AgentActor:
    def __init__(
        self,
        agent: AgentConfig,
        connector: ConnectorConfig | None,
        settings: Settings,
        secrets: Sequence[str] = (),
    ) -> None:
        quiet_logging()
        self.agent = agent
        self.connector_config = connector
        self.settings = settings
        self.connector: Connector | None = None
        self.discovered: list[CapabilitySpec] | None = None
        self.connected = False
        self.health: dict[str, Any] = {
            "status": "unknown",
            "last_check": None,
            "latency_ms": None,
            "consecutive_failures": 0,
            "last_error": None,
        }
        self._lock = asyncio.Lock()
        self.redactor = Redactor()
        if connector is not None:
            self.connector = make_connector(
                connector,
                llm_provider_factory=lambda: provider_for(connector, settings),
                secrets=secrets,
            )
            self.redactor = self.connector.redactor
        else:
            self.health.update(
                status="unhealthy", last_error=f"connector {agent.connector!r} is not configured"
            )
        # async actors run __init__ on their loop: connect and start checking as soon as the process is up
        self._loop_task = asyncio.get_event_loop().create_task(self._run())

    # -- public actor methods ----------------------------------------------------------------------

    async def call(
        self, capability: str, parameters: dict[str, Any], mode: str, context: dict[str, Any]
    ) -> Any:
        with self._scrubbed():
            return await self._call(capability, parameters, mode, context)

    async def _call(
        self, capability: str, parameters: dict[str, Any], mode: str, context: dict[str, Any]
    ) -> Any:
        spec = self._capability(capability)
        checked = validate_parameters(self.agent.id, spec, parameters)
        connector = await self._available()
        call_context = CallContext(**context)
        timeout = call_context.timeout
        try:
            coro = connector.call(
                spec, checked, mode="execute" if mode == "execute" else "query", context=call_context
            )
            return await (asyncio.wait_for(coro, timeout) if timeout else coro)
        except TimeoutError as exc:
            raise ConnectorTimeout(f"agent {self.agent.id!r} timed out calling {capability!r}") from exc
        except ConnectorUnavailable:
            self.connected = False
            self._record_failure(f"connection lost calling {capability!r}")
            raise

    async def complete(self, request: dict[str, Any]) -> Any:
        """Run an ``llm`` workflow step through this agent's provider (llm connectors only)."""
        with self._scrubbed():
            connector = await self._available()
            provider = getattr(connector, "provider", None)
            if provider is None:
                raise StepError(f"agent {self.agent.id!r} has no LLM provider", retryable=False)
            result = await provider.complete(LLMRequest(**request))
            return result.output

    async def describe(self) -> dict[str, Any]:
        return {
            "capabilities": [c.model_dump(mode="json") for c in self.capabilities],
            "health": dict(self.health),
            "connected": self.connected,
        }

    async def get_health(self) -> dict[str, Any]:
        return dict(self.health)

    async def connector_pid(self) -> int | None:
        """For fault tests: the PID of a stdio MCP server, when there is one."""
        return getattr(self.connector, "pid", None)

    # -- internals ---------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _scrubbed(self) -> Iterator[None]:
        """The actor's boundary: what leaves it becomes a step error and an event, so it carries none of
        the connector's secrets, and no chained driver exception (Ray would put its text in a traceback)."""
        try:
            yield
        except OrchestratorError as exc:
            raise self.redactor.error(exc) from None
        except Exception as exc:
            raise StepError(self.redactor.text(f"{type(exc).__name__}: {exc}")) from None

    @property
    def capabilities(self) -> list[CapabilitySpec]:
        declared = {c.name: c for c in self.agent.capabilities}
        for spec in self.discovered or []:
            existing = declared.get(spec.name)
            if existing is None or not existing.parameters:
                declared[spec.name] = spec.model_copy(
                    update={"binding": existing.binding if existing else {}}
                )
        return list(declared.values())

    def _capability(self, name: str) -> CapabilitySpec:
        for spec in self.capabilities:
            if spec.name == name:
                return spec
        undeclared_ok = self.connector is None or self.connector.allows_undeclared
        if self.agent.capabilities or self.discovered or not undeclared_ok:
            known = ", ".join(c.name for c in self.capabilities) or "none declared"
            raise ConnectorCallError(
                f"agent {self.agent.id!r} has no capability {name!r} (known: {known})",
                code="UNKNOWN_CAPABILITY",
            )
        return CapabilitySpec(name=name)

    async def _available(self) -> Connector:
        if self.connector is None:
            raise AgentUnavailable(self.health["last_error"] or f"agent {self.agent.id!r} has no connector")
        if self.health["status"] == "unhealthy":
            # fail fast: reconnecting is the health loop's job, with backoff; a call must not start a server
            raise AgentUnavailable(f"agent {self.agent.id!r} is unhealthy: {self.health['last_error']}")
        if not self.connected:
            await self._connect()
        if not self.connected:
            raise AgentUnavailable(
                f"agent {self.agent.id!r} is {self.health['status']}: {self.health['last_error']}"
            )
        return self.connector

    async def _connect(self) -> None:
        assert self.connector is not None
        async with self._lock:
            if self.connected:
                return
            try:
                await asyncio.wait_for(self.connector.connect(), self.agent.health_check.timeout * 4)
                self.connected = True
                if self.agent.discover_capabilities or not self.agent.capabilities:
                    self.discovered = await self.connector.discover()
            except (ConnectorError, OrchestratorError, TimeoutError, OSError) as exc:
                self.connected = False
                self._record_failure(f"cannot connect: {_message(exc)}")

    async def _run(self) -> None:
        if self.connector is None:
            return
        config = self.agent.health_check
        backoff = config.interval
        while True:
            try:
                await self._check()
            except Exception:
                log.exception("health check of %s crashed", self.agent.id)
            if self.health["status"] != "unhealthy":
                # degraded keeps the regular cadence, so the threshold is reached within that many intervals
                backoff = config.interval
                await asyncio.sleep(config.interval)
            else:  # reconnect with backoff, capped so recovery is noticed within a few intervals
                backoff = min(backoff * 2, config.interval * 4)
                await asyncio.sleep(min(backoff, 30.0))

    async def _check(self) -> None:
        assert self.connector is not None
        # Below the threshold a lost connection is probed again rather than replaced: a stdio server would
        # otherwise be restarted at once and a crashing one would never be reported unhealthy.
        if not self.connected and self.health["status"] != "degraded":
            with contextlib.suppress(Exception):  # a half-dead session may fail to close; reconnect anyway
                await self.connector.close()
            await self._connect()
            if not self.connected:
                return
        started = time.perf_counter()  # the probe's latency, not the reconnect's
        try:
            await asyncio.wait_for(self.connector.probe(), self.agent.health_check.timeout)
        except (ConnectorError, OrchestratorError, TimeoutError, OSError) as exc:
            if isinstance(exc, ConnectorUnavailable | TimeoutError):
                self.connected = False
            self._record_failure(_message(exc))
            return
        self.health.update(
            status="healthy",
            last_check=_now(),
            latency_ms=round((time.perf_counter() - started) * 1000, 2),
            consecutive_failures=0,
            last_error=None,
        )

    def _record_failure(self, message: str) -> None:
        failures = self.health["consecutive_failures"] + 1
        threshold = self.agent.health_check.failure_threshold
        self.health.update(
            status="unhealthy" if failures >= threshold else "degraded",
            last_check=_now(),
            consecutive_failures=failures,
            last_error=self.redactor.text(message),
        )


def _message(exc: BaseException) -> str:
    if isinstance(exc, OrchestratorError):
        return exc.message
    if isinstance(exc, TimeoutError):
        return "timed out"
    return f"{type(exc).__name__}: {exc}"


def _now() -> str:
    return format_timestamp(datetime.now(UTC), timespec="auto")


RemoteAgentActor = ray.remote(AgentActor)


def actor_name(agent_id: str) -> str:
    return ACTOR_NAME.format(agent_id=agent_id)


def start_agent_actors(registry: Registry, settings: Settings) -> dict[str, Any]:
    """Create (or find) the actor of every enabled agent. Idempotent across Serve replicas."""
    handles: dict[str, Any] = {}
    for agent in registry.agents.values():
        if not agent.enabled:
            continue
        connector = registry.connector_for(agent)
        handles[agent.id] = RemoteAgentActor.options(
            name=actor_name(agent.id),
            namespace=settings.namespace,
            get_if_exists=True,
            lifetime="detached",
            num_cpus=0,
            max_restarts=-1,
            max_task_retries=0,
            max_concurrency=1000,
        ).remote(agent, connector, settings, registry.secrets.get(connector.name, []) if connector else [])
    return handles


def resolve_agent(registry: Registry, name: str) -> AgentConfig:
    """A step's ``connector`` may name an agent id or a connector; find the agent that serves it."""
    agent = registry.agents.get(name)
    if agent is None:
        agent = next((a for a in registry.agents.values() if a.connector == name), None)
    if agent is None:
        raise NotFound(f"unknown agent or connector {name!r}", code="AGENT_NOT_FOUND")
    if not agent.enabled:
        raise AgentUnavailable(f"agent {agent.id!r} is disabled", retryable=False)
    return agent

"""Agent actors: one long-lived, named Ray actor per enabled agent.

The actor owns its connector's session (one MCP session, one DB connection, one HTTP client), so a
workflow step or a plan reaches the system through a warm connection instead of opening one per call.
It validates call parameters against the capability's schema before calling, and keeps checking its
own health: a real probe on an interval, ``degraded`` after a failure, ``unhealthy`` at the threshold,
reconnects with backoff, ``healthy`` again when the probe passes. Calls to an unhealthy agent fail fast
with ``AGENT_UNAVAILABLE`` (retryable, so a step's retry policy can wait it out).

Replicas: an agent with ``replicas: N`` runs N such actors, spread over the cluster's nodes, named
``agent:<id>``, ``agent:<id>#2``, ... (:func:`replica_names`). Each owns its own connector (a stdio MCP
connector means one server process per replica). :class:`AgentReplicas` is how a caller sees them: calls
are balanced over the healthy ones from a cached view of their health, and the agent's health is the
aggregate of theirs (:func:`aggregate_health`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator, Container, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import ray
from ray.exceptions import ActorUnavailableError, RayActorError, RayError

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
from agents.llm.base import LLMRequest, LLMResult
from agents.redaction import Redactor
from agents.registry import AgentConfig, ConnectorConfig, Registry, make_connector
from orchestrator.config import Settings, quiet_logging
from orchestrator.core.errors import AgentUnavailable, NotFound, OrchestratorError, StepError
from orchestrator.core.timestamps import format_timestamp

log = logging.getLogger(__name__)

ACTOR_NAME = "agent:{agent_id}"
# The health fields an agent reports, for itself and for each replica (GET /api/v1/agents/{id}).
HEALTH_FIELDS = ("status", "last_check", "latency_ms", "consecutive_failures", "last_error")
# Statuses of a replica that still takes calls: degraded is one failed probe, below the threshold.
SERVING = frozenset({"healthy", "degraded"})
# How long one replica may take to say how it is when the whole agent's health is asked: the planner gives
# get_health one second, so the replicas' answers must come well within that.
REPLICA_HEALTH_TIMEOUT = 0.5
_REPLICA_NAME = re.compile(r"^agent:(?P<agent>.+)#(?P<index>[0-9]+)$")
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
        self.identity = _identity()
        self._replicas: AgentReplicas | None = None  # the agent's other replicas, for get_health
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

    async def complete_stream(self, request: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """:meth:`complete`, as a Ray streaming generator: ``{"delta": text}`` items while the provider
        produces the completion, then ``{"output": ...}``. The host relays the deltas to live streams
        as ephemeral progress; only the output is recorded."""
        with self._scrubbed():
            connector = await self._available()
            provider = getattr(connector, "provider", None)
            if provider is None:
                raise StepError(f"agent {self.agent.id!r} has no LLM provider", retryable=False)
            async for item in provider.stream(LLMRequest(**request)):
                if isinstance(item, LLMResult):
                    yield {"output": item.output}
                    return
                yield {"delta": item}
            raise StepError(f"the LLM provider of agent {self.agent.id!r} streamed no result")

    async def describe(self) -> dict[str, Any]:
        """This replica's view: ``health`` is its own (:meth:`get_health` is the agent's), ``replica`` says
        which actor and node answered, so the agents API can show every replica."""
        return {
            "capabilities": [c.model_dump(mode="json") for c in self.capabilities],
            "health": dict(self.health),
            "connected": self.connected,
            "replica": dict(self.identity),
        }

    async def get_health(self) -> dict[str, Any]:
        """The agent's health, aggregated over its replicas, with one entry per replica under ``replicas``.

        Whoever finds the agent by its name (the planner asks ``agent:<id>``) thereby sees the agent, not
        one process of it: an agent with a dead replica is ``degraded``, not ``healthy``, and one whose first
        replica is unhealthy while the others serve is not left out of plans. The other replicas are asked
        only here, never on a call's path.
        """
        own = await self.replica_health()
        names = replica_names(self.agent.id, self.agent.replicas)
        if self.agent.replicas == 1 or own["name"] not in names:
            entries = [own]  # alone, or an actor made outside start_agent_actors (tests): no siblings
        else:
            if self._replicas is None:
                self._replicas = AgentReplicas.lookup(self.agent, namespace=self.settings.namespace)
            entries = await self._replicas.refresh(
                timeout=REPLICA_HEALTH_TIMEOUT, answered={own["name"]: own}
            )
        return {**aggregate_health(entries), "replicas": entries}

    async def replica_health(self) -> dict[str, Any]:
        """This replica alone: which actor it is and what its own last health check said."""
        return replica_entry(self.identity.get("name"), self.identity, self.health)

    async def connector_pid(self) -> int | None:
        """For fault tests: the PID of a stdio MCP server, when there is one."""
        return getattr(self.connector, "pid", None)

    async def close(self) -> None:
        """Stop the health checks and close the connector: for an agent run in another process's loop
        (``runs_in: host``), whose loop outlives it. An actor's process just ends."""
        # cancelled again until it ends: Python 3.11's wait_for (in the checks) swallows a cancellation
        # that lands as the awaited call completes, and the loop then sleeps on as if never cancelled
        while not self._loop_task.done():
            self._loop_task.cancel()
            await asyncio.wait({self._loop_task}, timeout=0.1)
        if self.connector is not None:
            await self.connector.close()
        self.connected = False

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


def _identity() -> dict[str, str | None]:
    """The Ray actor this replica runs as (name, actor id, node id), so an operator can find it in the
    dashboard. All None when the class runs in-process, as the connector tests use it."""
    identity: dict[str, str | None] = {"name": None, "actor_id": None, "node_id": None}
    if not ray.is_initialized():
        return identity
    context = ray.get_runtime_context()
    actor_id = context.get_actor_id()
    if actor_id is None:  # a driver, not an actor
        return identity
    identity.update(name=context.get_actor_name() or None, actor_id=actor_id, node_id=context.get_node_id())
    return identity


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


def replica_names(agent_id: str, replicas: int) -> list[str]:
    """The actor names of an agent's replicas: ``agent:<id>``, then ``agent:<id>#2``, ``agent:<id>#3``, ...

    The first keeps the name a single-replica agent always had, so the dashboard, the planner and anything
    else that finds an agent by name keep working whatever the count."""
    first = actor_name(agent_id)
    return [first, *(f"{first}#{index}" for index in range(2, replicas + 1))]


def replica_entry(name: str | None, identity: Any, health: Any) -> dict[str, Any]:
    """One replica as the agent's health lists it: its actor, its node and its own health fields."""
    known = identity if isinstance(identity, Mapping) else {}
    state = health if isinstance(health, Mapping) else {}
    entry: dict[str, Any] = {"name": name, "actor_id": known.get("actor_id"), "node_id": known.get("node_id")}
    entry.update({field: state.get(field) for field in HEALTH_FIELDS})
    entry["status"] = entry["status"] or "unknown"
    entry["consecutive_failures"] = entry["consecutive_failures"] or 0
    return entry


def _absent(name: str, reason: str) -> dict[str, Any]:
    return replica_entry(name, None, {"status": "unknown", "last_error": f"replica {name!r} {reason}"})


def aggregate_health(replicas: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One agent's health from its replicas' entries.

    ``healthy`` only when every replica is: a lost replica is lost capacity, which an operator should see.
    ``degraded`` while at least one still serves (healthy or degraded), since calls then still succeed;
    ``unhealthy`` when none does, ``unknown`` when none answered. The timestamp is the latest check, the
    latency the slowest replica's, the failure count the smallest (the agent failed that many times in a
    row everywhere), and ``last_error`` names the first replica that is not healthy. With one replica it
    is exactly that replica's health, so a single-replica agent reports what it always did.
    """
    if len(replicas) == 1:
        return {field: replicas[0].get(field) for field in HEALTH_FIELDS}
    statuses = [entry.get("status") for entry in replicas]
    if statuses and all(status == "healthy" for status in statuses):
        status = "healthy"
    elif any(status in SERVING for status in statuses):
        status = "degraded"
    elif all(status == "unknown" for status in statuses):
        status = "unknown"
    else:
        status = "unhealthy"
    checks = [str(entry["last_check"]) for entry in replicas if entry.get("last_check")]
    latencies = [float(entry["latency_ms"]) for entry in replicas if entry.get("latency_ms") is not None]
    failures = [
        int(entry.get("consecutive_failures") or 0) for entry in replicas if entry.get("status") != "unknown"
    ]
    troubled = next((entry for entry in replicas if entry.get("status") != "healthy"), None)
    last_error = None
    if troubled is not None:
        last_error = f"replica {troubled.get('name')!r} is {troubled.get('status')}"
        if troubled.get("last_error"):
            last_error += f": {troubled['last_error']}"
    return {
        "status": status,
        "last_check": max(checks, key=_instant, default=None),
        "latency_ms": max(latencies, default=None),
        "consecutive_failures": min(failures, default=0),
        "last_error": last_error,
    }


def _instant(timestamp: str) -> datetime:
    # not a string comparison: "...:00Z" sorts after "...:00.5Z"
    return datetime.fromisoformat(timestamp)


class AgentReplicas:
    """An agent's replicas as one process sees them: their handles, and what their last health check said.

    The call path (:meth:`pick`) reads only this cache, so choosing a replica costs no remote call. The
    cache is refreshed in the background at the agent's probe interval (the replicas learn nothing new in
    between), and a call's reply demotes a replica at once when it turns out dead or unhealthy; only a
    refresh promotes one, so a replica that answered a call does not draw all the others' traffic until then.
    Instances are per process: the step runner's, the agents API's (the ingress), and each replica's own,
    for :meth:`AgentActor.get_health`.
    """

    def __init__(
        self,
        agent_id: str,
        names: Sequence[str],
        *,
        namespace: str,
        handles: Sequence[Any] | None = None,
        refresh_interval: float = 10.0,
    ) -> None:
        self.agent_id = agent_id
        self.names = tuple(names)
        self.namespace = namespace
        self._handles: list[Any] = list(handles) if handles is not None else [None] * len(self.names)
        self._status = ["unknown"] * len(self.names)
        self._cursor = 0
        self._refresh_interval = max(refresh_interval, 0.5)
        self._refreshed_at = float("-inf")
        self._refreshing: asyncio.Task[None] | None = None

    @classmethod
    def lookup(cls, agent: AgentConfig, *, namespace: str) -> AgentReplicas:
        """The running replicas of an agent, found by name (start_agent_actors made them)."""
        replicas = cls(
            agent.id,
            replica_names(agent.id, agent.replicas),
            namespace=namespace,
            refresh_interval=agent.health_check.interval,
        )
        replicas._lookup_missing()
        return replicas

    @property
    def running(self) -> int:
        """How many replicas have a handle: neither missing at the last look-up nor seen dead since."""
        return sum(handle is not None for handle in self._handles)

    def statuses(self) -> dict[str, str]:
        """Replica name -> the status the call path currently balances on."""
        return dict(zip(self.names, self._status, strict=True))

    # -- the call path -----------------------------------------------------------------------------------

    def pick(self, exclude: Container[int] = ()) -> tuple[int, Any] | None:
        """The next replica for a call: round-robin over those whose last check was healthy, else over all
        that run, so a call to an agent without a healthy replica still reaches one and fails with its real
        error. None when no replica outside ``exclude`` runs."""
        self._refresh_soon()
        live = [i for i, handle in enumerate(self._handles) if handle is not None and i not in exclude]
        if not live:
            return None
        pool = [i for i in live if self._status[i] == "healthy"] or live
        index = pool[self._cursor % len(pool)]
        self._cursor += 1
        return index, self._handles[index]

    def can_try(self, exclude: Container[int]) -> bool:
        """Whether a replica outside ``exclude`` runs (for failing a call over without moving the cursor)."""
        return any(handle is not None and i not in exclude for i, handle in enumerate(self._handles))

    def unavailable(self, index: int) -> None:
        """The replica refused a call as unavailable (nothing ran): skip it until a check says otherwise."""
        self._status[index] = "unhealthy"

    def lost(self, index: int, *, dead: bool) -> None:
        """The replica's actor did not take a call. A dead one loses its handle and is looked up by name
        again at the next refresh, in case a server start recreated it."""
        self._status[index] = "unknown"
        if dead:
            self._handles[index] = None

    # -- health ------------------------------------------------------------------------------------------

    async def refresh(
        self, *, timeout: float, answered: Mapping[str, dict[str, Any]] | None = None
    ) -> list[dict[str, Any]]:
        """Every replica's entry (actor, node, own health), asked concurrently, and the cache updated.
        ``answered`` holds entries already known (a replica asking about its siblings knows its own).
        Never raises: a replica that does not answer is ``unknown`` with the reason as its error."""
        self._lookup_missing()
        known = answered or {}

        async def entry(index: int, name: str) -> dict[str, Any]:
            if name in known:
                return known[name]
            answer = await self._ask(index, "replica_health", timeout)
            return answer if isinstance(answer, dict) else _absent(name, answer)

        entries = list(await asyncio.gather(*(entry(i, name) for i, name in enumerate(self.names))))
        self._remember(entries)
        return entries

    async def describe(self, *, timeout: float) -> dict[str, Any]:
        """What the agents API shows: the capabilities (a connected replica's, since discovery happens on
        connect; replicas share one configuration), the agent's aggregated health, and every replica."""
        self._lookup_missing()
        answers = await asyncio.gather(*(self._ask(i, "describe", timeout) for i in range(len(self.names))))
        entries: list[dict[str, Any]] = []
        capabilities: Any = None
        connected = False
        for name, answer in zip(self.names, answers, strict=True):
            if not isinstance(answer, dict):
                entries.append(_absent(name, answer))
                continue
            entries.append(replica_entry(name, answer.get("replica"), answer.get("health")))
            if capabilities is None or (answer.get("connected") and not connected):
                capabilities = answer.get("capabilities")
            connected = connected or bool(answer.get("connected"))
        self._remember(entries)
        return {
            "capabilities": capabilities,
            "health": aggregate_health(entries),
            "connected": connected,
            "replicas": entries,
        }

    async def _ask(self, index: int, method: str, timeout: float) -> dict[str, Any] | str:
        """One replica's answer, or why there is none."""
        handle = self._handles[index]
        if handle is None:
            return "is not running"
        try:
            answer = await asyncio.wait_for(getattr(handle, method).remote(), timeout)
        except TimeoutError:
            return f"did not answer within {timeout:g} s"
        except RayActorError as exc:
            dead = not isinstance(exc, ActorUnavailableError)
            self.lost(index, dead=dead)
            return "is not running" if dead else "is unreachable (restarting?)"
        except RayError as exc:
            return f"failed to answer: {type(exc).__name__}"
        return answer if isinstance(answer, dict) else "gave no health"

    def _remember(self, entries: Sequence[Mapping[str, Any]]) -> None:
        self._status = [str(entry.get("status") or "unknown") for entry in entries]
        self._refreshed_at = time.monotonic()

    def _refresh_soon(self) -> None:
        """Start a background refresh when the cache is older than the probe interval (and none runs)."""
        if time.monotonic() - self._refreshed_at < self._refresh_interval:
            return
        if self._refreshing is not None and not self._refreshing.done():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop to run it on (a synchronous caller): the cache stays as it is
        self._refreshing = loop.create_task(self._refresh_in_background())

    async def _refresh_in_background(self) -> None:
        try:
            await self.refresh(timeout=REPLICA_HEALTH_TIMEOUT * 4)
        except Exception:  # refresh never raises by design; this keeps a bug from going unseen
            log.exception("refreshing the replicas of agent %r failed", self.agent_id)

    def _lookup_missing(self) -> None:
        for index, handle in enumerate(self._handles):
            if handle is None:
                with contextlib.suppress(ValueError):  # not running: its entry says so
                    self._handles[index] = ray.get_actor(self.names[index], namespace=self.namespace)


def start_agent_actors(registry: Registry, settings: Settings) -> dict[str, AgentReplicas]:
    """Create (or find) the replicas of every enabled agent. Idempotent across Serve replicas.

    ``SPREAD`` puts an agent's replicas on different nodes where there are several, so losing a node
    leaves the others serving (with ``num_cpus=0`` nothing else would stop Ray packing them on one).
    Each replica owns its connector: a stdio MCP connector runs one server process per replica.
    """
    agents: dict[str, AgentReplicas] = {}
    for agent in registry.agents.values():
        if not agent.enabled:
            continue
        connector = registry.connector_for(agent)
        secrets = registry.secrets.get(connector.name, []) if connector else []
        names = replica_names(agent.id, agent.replicas)
        handles = [
            RemoteAgentActor.options(
                name=name,
                namespace=settings.namespace,
                get_if_exists=True,
                lifetime="detached",
                num_cpus=0,
                max_restarts=-1,
                max_task_retries=0,
                max_concurrency=1000,
                scheduling_strategy="SPREAD",
            ).remote(agent, connector, settings, secrets)
            for name in names
        ]
        agents[agent.id] = AgentReplicas(
            agent.id,
            names,
            namespace=settings.namespace,
            handles=handles,
            refresh_interval=agent.health_check.interval,
        )
    _retire_extra_replicas(registry, settings.namespace)
    return agents


def _retire_extra_replicas(registry: Registry, namespace: str) -> None:
    """Stop the replicas beyond an agent's count: an earlier start with more ``replicas`` on a cluster that
    outlived it left them, and no caller would use them while they kept a connector (and, for stdio MCP,
    a server process) open. A caller that still used one (a server with the old count) sees it dead and
    moves on to the others."""
    wanted = {agent.id: agent.replicas for agent in registry.agents.values() if agent.enabled}
    for named in ray.util.list_named_actors(all_namespaces=True):
        match = _REPLICA_NAME.match(str(named.get("name", "")))
        if named.get("namespace") != namespace or match is None:
            continue
        count = wanted.get(match["agent"])
        if count is None or int(match["index"]) <= count:
            continue  # not ours to judge (a disabled or removed agent is left as it always was), or wanted
        with contextlib.suppress(ValueError):
            ray.kill(ray.get_actor(named["name"], namespace=namespace), no_restart=True)


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

"""Step runner: carries a step's I/O to the agent actor that owns the connection.

Each call is named ``<workflow>/<step>`` so the Ray dashboard traces every step. Errors come back as
the project's own (Ray wraps them; they are unwrapped here), and a dead agent process is
``AGENT_UNAVAILABLE``, retryable: Ray restarts the actor and a retry policy can wait for it.

An agent with several replicas gets each call on the next healthy one (:class:`agents.actor.AgentReplicas`,
from a cached view of their health: no remote call to choose). A call moves on to another replica, with
the same idempotency key, when the first could not have run it (the replica refused it as unavailable) or
when running it twice is harmless (a query or an LLM completion on a replica that died); an ``execute``
call on a replica that died fails as ``AGENT_UNAVAILABLE`` instead, since it may have done its work, and
the step's retry policy decides.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable
from typing import Any

import ray
from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError, RayTaskError

from agents.actor import AgentActor, AgentReplicas, resolve_agent
from agents.registry import AgentConfig, Registry, registry_for
from orchestrator.config import Settings
from orchestrator.core.decide import RunStep
from orchestrator.core.errors import AgentUnavailable, StepError
from orchestrator.core.state import ExecutionState
from orchestrator.ray_errors import describe_cause, orchestrator_cause

# Replicas one call may try: enough to step over a dead or unhealthy one or two that the cached health
# has not caught up with yet, few enough that an agent whose every replica fails answers quickly.
MAX_REPLICA_ATTEMPTS = 3
# How long a step waits for an agent that does not exist yet (the server starts agents after its hosts).
AGENT_START_SECONDS = 30.0


class AgentStepRunner:
    def __init__(self, settings: Settings, registry: Registry | None = None) -> None:
        self.settings = settings
        self.registry = registry or registry_for(settings)
        self._replicas: dict[str, AgentReplicas] = {}
        self._in_process: dict[str, AgentActor] = {}  # agents with runs_in: host, made on first use
        self._progress: Callable[[str, str, int, str], None] | None = None

    def report_progress(self, sink: Callable[[str, str, int, str], None]) -> None:
        """Stream ``llm`` steps from now on, handing each delta to ``sink(execution_id, step, attempt,
        delta)`` (the host's live feed: ephemeral, never recorded)."""
        self._progress = sink

    async def replicas(self, agent: AgentConfig) -> AgentReplicas:
        """The agent's replicas, looked up by name once; a refresh finds the ones missing then. The
        server starts the agents once its hosts are up, so a step right after the start waits (at
        most ``AGENT_START_SECONDS``) for them to exist."""
        replicas = self._replicas.get(agent.id)
        if replicas is None:
            deadline = time.monotonic() + AGENT_START_SECONDS
            while True:
                replicas = await asyncio.to_thread(
                    AgentReplicas.lookup, agent, namespace=self.settings.namespace
                )
                if replicas.running:
                    break
                if time.monotonic() > deadline:
                    raise AgentUnavailable(f"agent {agent.id!r} is not running")
                await asyncio.sleep(0.2)
            self._replicas[agent.id] = replicas
        return replicas

    def in_process(self, agent: AgentConfig) -> AgentActor:
        """The agent as an object in this process (``runs_in: host``): the same parameter checks, health
        probes, timeouts and redaction as its actors, with no actor hop per call. No dashboard task."""
        local = self._in_process.get(agent.id)
        if local is None:
            connector = self.registry.connector_for(agent)
            secrets = self.registry.secrets.get(connector.name, []) if connector else []
            local = AgentActor(agent, connector, self.settings, secrets)
            self._in_process[agent.id] = local
        return local

    async def close(self) -> None:
        """Close the agents this runner made in its own process (their connections and health loops)."""
        agents, self._in_process = list(self._in_process.values()), {}
        for agent in agents:
            await agent.close()

    def llm_agent(self) -> str:
        for agent in self.registry.agents.values():
            connector = self.registry.connector_for(agent)
            if agent.enabled and connector is not None and connector.type == "llm":
                return agent.id
        raise AgentUnavailable("no enabled agent with an 'llm' connector is configured", retryable=False)

    async def run(self, state: ExecutionState, command: RunStep) -> Any:
        assert state.workflow is not None
        task_name = f"{state.workflow.name}/{command.step}"
        request = command.request
        context = {
            "idempotency_key": command.idempotency_key,
            "execution_id": state.execution_id,
            "step": command.step,
            "timeout": command.timeout,
        }
        if command.kind == "connector":
            agent = resolve_agent(self.registry, request["connector"])
            arguments: tuple[Any, ...] = (
                request["statement"],
                request["parameters"],
                request["mode"],
                context,
            )
            if agent.runs_in == "host":
                return await self.in_process(agent).call(*arguments)
            return await self._call(
                agent, "call", arguments, task_name, repeatable=request["mode"] != "execute"
            )
        agent = resolve_agent(self.registry, request.get("agent") or self.llm_agent())
        llm_request = {key: value for key, value in request.items() if key != "agent"}
        llm_request.update(context=command.context, input=state.input)
        if self._progress is not None:
            on_delta = functools.partial(self._progress, state.execution_id, command.step, command.attempt)
            return await self._call(
                agent, "complete_stream", (llm_request,), task_name, repeatable=True, on_delta=on_delta
            )
        return await self._call(agent, "complete", (llm_request,), task_name, repeatable=True)

    async def _call(
        self,
        agent: AgentConfig,
        method: str,
        arguments: tuple[Any, ...],
        task_name: str,
        *,
        repeatable: bool,
        on_delta: Callable[[str], None] | None = None,
    ) -> Any:
        """``on_delta``: ``method`` is a streaming generator of deltas and then the output."""
        replicas = await self.replicas(agent)
        tried: set[int] = set()
        while True:
            picked = replicas.pick(exclude=tried)
            if picked is None:
                raise AgentUnavailable(f"agent {agent.id!r} is not running")
            index, handle = picked
            tried.add(index)
            more = len(tried) < MAX_REPLICA_ATTEMPTS
            if on_delta is not None and not hasattr(handle, method):
                # an agent actor of an earlier version (detached, outliving a server): it cannot stream
                method, on_delta = "complete", None
            options: dict[str, Any] = {"name": task_name}
            if on_delta is not None:
                options["num_returns"] = "streaming"
            ref = getattr(handle, method).options(**options).remote(*arguments)
            try:
                return await (ref if on_delta is None else _drained(ref, on_delta))
            except asyncio.CancelledError:
                ray.cancel(ref)
                raise
            except RayTaskError as exc:
                cause = orchestrator_cause(exc)
                if isinstance(cause, AgentUnavailable) and cause.retryable:
                    replicas.unavailable(index)  # it refused before calling its connector
                    if more and replicas.can_try(tried):
                        continue
                if cause is not None:
                    raise cause from None
                raise StepError(describe_cause(exc)) from None
            except (ActorDiedError, ActorUnavailableError, RayActorError) as exc:
                replicas.lost(index, dead=not isinstance(exc, ActorUnavailableError))
                if repeatable and more and replicas.can_try(tried):
                    continue
                raise AgentUnavailable(
                    f"agent {agent.id!r} is unavailable: {exc.__class__.__name__}"
                ) from exc


async def _drained(generator: Any, on_delta: Callable[[str], None]) -> Any:
    """The output of a streaming completion (``complete_stream``), its deltas handed to ``on_delta``."""
    async for item_ref in generator:
        item = await item_ref
        if "output" in item:
            return item["output"]
        on_delta(str(item["delta"]))
    raise StepError("the agent's completion stream ended without an output")

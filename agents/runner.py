"""Step runner: carries a step's I/O to the agent actor that owns the connection.

Each call is named ``<workflow>/<step>`` so the Ray dashboard traces every step. Errors come back as
the project's own (Ray wraps them; they are unwrapped here), and a dead agent process is
``AGENT_UNAVAILABLE``, retryable: Ray restarts the actor and a retry policy can wait for it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import ray
from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError, RayTaskError

from agents.actor import actor_name, resolve_agent
from agents.registry import Registry, registry_for
from orchestrator.config import Settings
from orchestrator.core.decide import RunStep
from orchestrator.core.errors import AgentUnavailable, StepError
from orchestrator.core.state import ExecutionState
from orchestrator.ray_errors import describe_cause, orchestrator_cause


class AgentStepRunner:
    def __init__(self, settings: Settings, registry: Registry | None = None) -> None:
        self.settings = settings
        self.registry = registry or registry_for(settings)
        self._handles: dict[str, Any] = {}

    def _handle(self, agent_id: str) -> Any:
        handle = self._handles.get(agent_id)
        if handle is None:
            try:
                handle = ray.get_actor(actor_name(agent_id), namespace=self.settings.namespace)
            except ValueError as exc:
                raise AgentUnavailable(f"agent {agent_id!r} is not running") from exc
            self._handles[agent_id] = handle
        return handle

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
            agent_id = resolve_agent(self.registry, request["connector"]).id
            method = self._handle(agent_id).call.options(name=task_name)
            ref = method.remote(request["statement"], request["parameters"], request["mode"], context)
        else:
            agent_id = (
                resolve_agent(self.registry, request["agent"]).id
                if request.get("agent")
                else self.llm_agent()
            )
            llm_request = {key: value for key, value in request.items() if key != "agent"}
            llm_request.update(context=command.context, input=state.input)
            ref = self._handle(agent_id).complete.options(name=task_name).remote(llm_request)
        try:
            return await ref
        except asyncio.CancelledError:
            ray.cancel(ref)
            raise
        except RayTaskError as exc:
            cause = orchestrator_cause(exc)
            if cause is not None:
                raise cause from None
            raise StepError(describe_cause(exc)) from None
        except (ActorDiedError, ActorUnavailableError, RayActorError) as exc:
            self._handles.pop(agent_id, None)
            raise AgentUnavailable(f"agent {agent_id!r} is unavailable: {exc.__class__.__name__}") from exc

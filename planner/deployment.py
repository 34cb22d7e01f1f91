"""The MAP planner as its own Serve deployment, called by the ingress through a DeploymentHandle.

Planning is CPU work (the offline planner) or a long wait on a model (the LLM planner); a deployment of its
own lets it scale apart from the ingress, and keeps a slow model from holding the ingress's event loop.

This is the planner's edge: the pure planners in this package get everything from here.

- **Catalog**: the enabled agents of the registry (``registry_for(settings)``, the same files the ingress
  loads), filtered by the domain hint, with agents whose actor reports itself unhealthy (or has no actor)
  left out. Health is asked from the agent actors concurrently, bounded by a short timeout, and cached for
  :data:`HEALTH_TTL` seconds: a plan should not pay an actor round trip per agent, and a second-old health
  snapshot is as good as a fresh one for choosing agents. An actor that does not answer in time is
  ``unknown`` and kept: it is slow, not known to be broken, and the step's own call will tell.
- **Planner**: the LLM planner when the server's LLM provider is ``openai`` (the async ``openai`` client
  against ``llm_base_url``), else the offline planner.
- **Clock**: ``today`` is read here, so the planners stay deterministic ("June 1-7" is the next June).
- **Errors**: everything leaves as :class:`~orchestrator.core.errors.PlanningFailed` with ``details``; an
  unexpected exception is a planner bug reported as ``reason: planner_error`` rather than an opaque 500.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import date
from typing import TYPE_CHECKING, Any

import ray
from ray import serve
from ray.exceptions import RayActorError, RayError

from agents.actor import actor_name
from agents.registry import registry_for
from orchestrator.config import Settings
from orchestrator.core.errors import OrchestratorError, PlanningFailed
from planner.catalog import filter_catalog
from planner.models import CatalogAgent, Plan
from planner.offline import plan_offline

if TYPE_CHECKING:
    from planner.llm_planner import LLMPlanner

log = logging.getLogger(__name__)

# Seconds a health snapshot is reused, and the most one health question may take.
HEALTH_TTL = 2.0
HEALTH_TIMEOUT = 1.0


@serve.deployment(name="planner", num_replicas=1, max_ongoing_requests=200)
class PlannerDeployment:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.registry = registry_for(settings)
        self._handles: dict[str, Any] = {}
        self._health: dict[str, str] = {}
        self._health_at = float("-inf")
        self._health_lock = asyncio.Lock()
        self._llm: LLMPlanner | None = self._llm_planner(settings)

    @staticmethod
    def _llm_planner(settings: Settings) -> LLMPlanner | None:
        if settings.resolved_llm_provider != "openai":
            return None
        import openai  # a second or more to import; the offline planner never pays it

        from planner.llm_planner import LLMPlanner

        client = openai.AsyncOpenAI(
            base_url=settings.llm_base_url,
            # local OpenAI-compatible servers (vLLM, Ollama, llama.cpp) accept any key, but the client needs one
            api_key=settings.llm_api_key or "not-needed",
            timeout=settings.llm_timeout,
        )
        return LLMPlanner(client, settings.llm_model)

    async def ping(self) -> dict[str, Any]:
        return {"status": "ok", "planner": "llm" if self._llm else "offline"}

    async def plan(self, request: dict[str, Any]) -> dict[str, Any]:
        """A plan for ``{query, domain?, execution_mode?, context?}`` as a JSON-ready dict."""
        query = str(request.get("query") or "")
        domain = request.get("domain")
        mode = str(request.get("execution_mode") or "auto")
        context = request.get("context") or {}
        try:
            catalog = await self.catalog(domain)
            if not catalog:
                raise PlanningFailed(
                    f"no healthy agent is available for domain {domain!r}",
                    details={"reason": "no_agents", "domain": domain, "health": dict(self._health)},
                )
            result: Plan
            if self._llm is not None:
                result = await self._llm.plan(
                    query,
                    domain=domain,
                    execution_mode=mode,
                    context=context,
                    catalog=catalog,
                    today=date.today(),
                )
            else:
                result = plan_offline(
                    query,
                    domain=domain,
                    execution_mode=mode,
                    context=context,
                    catalog=catalog,
                    today=date.today(),
                )
        except OrchestratorError:
            raise
        except Exception as exc:
            log.exception("planner failed on %r", query)
            raise PlanningFailed(
                f"the planner failed: {type(exc).__name__}: {exc}",
                details={"reason": "planner_error", "cause": type(exc).__name__, "message": str(exc)},
            ) from exc
        return result.model_dump(mode="json")

    async def catalog(self, domain: str | None) -> list[CatalogAgent]:
        """The agents a plan for ``domain`` may use now."""
        health = await self.health()
        return filter_catalog(self.registry.agents.values(), domain, health=health)

    async def health(self) -> dict[str, str]:
        """Agent id -> health status, at most :data:`HEALTH_TTL` seconds old."""
        if time.monotonic() - self._health_at < HEALTH_TTL:
            return self._health
        async with self._health_lock:  # one refresh at a time; the others reuse its answer
            if time.monotonic() - self._health_at < HEALTH_TTL:
                return self._health
            agents = [agent.id for agent in self.registry.agents.values() if agent.enabled]
            statuses = await asyncio.gather(*(self._ask_health(agent_id) for agent_id in agents))
            self._health = dict(zip(agents, statuses, strict=True))
            self._health_at = time.monotonic()
        return self._health

    async def _ask_health(self, agent_id: str) -> str:
        handle = self._handles.get(agent_id)
        if handle is None:
            try:
                handle = ray.get_actor(actor_name(agent_id), namespace=self.settings.namespace)
            except ValueError:
                return "unavailable"  # no actor: a step on this agent would fail at once
            self._handles[agent_id] = handle
        try:
            answer = await asyncio.wait_for(handle.get_health.remote(), HEALTH_TIMEOUT)
        except TimeoutError:
            return "unknown"
        except RayActorError:
            self._handles.pop(agent_id, None)  # dead or restarting; look it up again next time
            return "unavailable"
        except RayError as exc:
            log.debug("health of agent %r: %s", agent_id, type(exc).__name__)
            return "unknown"
        status = answer.get("status") if isinstance(answer, dict) else None
        return status if isinstance(status, str) else "unknown"

"""Route access to the engine and friends.

Serve pickles the FastAPI app into the replica, so ``app.state`` set by the ingress constructor lands on
a different object than the one serving requests. The services live in this process-wide registry
instead, filled once per replica by :func:`orchestrator.server.build_ingress_state`.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from fastapi import Request

from orchestrator.core.errors import NotFound
from orchestrator.core.state import ExecutionState
from orchestrator.server.executions import ExecutionService

# Plans are event streams in the same store (orchestrator.core.plans), under ids made by new_plan_id.
PLAN_ID_PREFIX = "plan_"

_services: dict[str, Any] = {}


def provide(**services: Any) -> None:
    _services.update(services)


def engine_of(request: Request) -> ExecutionService:
    return cast(ExecutionService, service_of(request, "engine"))


def service_of(request: Request, name: str) -> Any:
    del request  # kept in the signature: routes stay independent of where services live
    try:
        return _services[name]
    except KeyError:
        raise RuntimeError(f"service {name!r} is not ready") from None


def maybe_service(name: str) -> Any:
    return _services.get(name)


def require_execution_id(execution_id: str) -> None:
    """A plan's stream is not an execution: its id answers 404 like any unknown one, before anything
    tries to fold plan events as execution events."""
    if execution_id.startswith(PLAN_ID_PREFIX):
        raise NotFound(f"execution {execution_id!r} not found", code="EXECUTION_NOT_FOUND")


async def read_execution(engine: ExecutionService, execution_id: str) -> ExecutionState:
    """The execution folded from the store, off the event loop: a store round trip must not stall the
    replica's other requests."""
    require_execution_id(execution_id)
    return await asyncio.to_thread(engine.get, execution_id)

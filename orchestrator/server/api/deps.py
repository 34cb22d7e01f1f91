"""Route access to the engine and friends.

Serve pickles the FastAPI app into the replica, so ``app.state`` set by the ingress constructor lands on
a different object than the one serving requests. The services live in this process-wide registry
instead, filled once per replica by :func:`orchestrator.server.build_ingress_state`.
"""

from __future__ import annotations

from typing import Any, cast

from fastapi import Request

from orchestrator.server.executions import ExecutionService

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

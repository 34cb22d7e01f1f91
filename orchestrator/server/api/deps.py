"""Route access to the engine and friends.

Serve pickles the FastAPI app into the replica, so ``app.state`` set by the ingress constructor lands on
a different object than the one serving requests. The services live in this process-wide registry
instead, filled once per replica by :func:`orchestrator.server.build_ingress_state`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from typing import Any, cast

from fastapi import Request
from pydantic import BaseModel

from orchestrator.core.errors import NotFound
from orchestrator.core.state import ExecutionState
from orchestrator.server.auth import OPEN, Authenticator, Principal, may_see, presented_key
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


def execution_not_found(execution_id: str) -> NotFound:
    return NotFound(f"execution {execution_id!r} not found", code="EXECUTION_NOT_FOUND")


def require_execution_id(execution_id: str) -> None:
    """A plan's stream is not an execution: its id answers 404 like any unknown one, before anything
    tries to fold plan events as execution events."""
    if execution_id.startswith(PLAN_ID_PREFIX):
        raise execution_not_found(execution_id)


async def read_execution(
    engine: ExecutionService, execution_id: str, principal: Principal = OPEN
) -> ExecutionState:
    """The execution folded from the store, off the event loop: a store round trip must not stall the
    replica's other requests. Another tenant's execution is not found, for a member key: its
    existence is not revealed."""
    require_execution_id(execution_id)
    state = await asyncio.to_thread(engine.get, execution_id)
    if not may_see(principal, state.tenant_id):
        raise execution_not_found(execution_id)
    return state


async def require_visible(engine: ExecutionService, execution_id: str, principal: Principal) -> None:
    """404 unless the principal may see the execution; for a member, one indexed read of the
    executions projection, before anything else is read or done."""
    require_execution_id(execution_id)
    if principal.open or principal.is_admin:
        return
    row = await asyncio.to_thread(engine.store.get_execution, execution_id)
    if row is None or not may_see(principal, row.tenant_id):
        raise execution_not_found(execution_id)


async def authenticate(request: Request) -> Principal:
    """The principal of a request: every API router depends on this, so no route is left open by
    omission. With auth off everyone is :data:`OPEN`; with ``api_key`` a missing, unknown or revoked key
    is 401 UNAUTHENTICATED."""
    try:
        authenticator = cast(Authenticator | None, _services["authenticator"])
    except KeyError:  # fail closed: never treat a replica that is not wired yet as auth off
        raise RuntimeError("service 'authenticator' is not ready") from None
    if authenticator is None:
        return OPEN
    return await authenticator.principal(presented_key(request.headers))


def request_hash(request: Request, body: BaseModel | None) -> str:
    """sha256 of the canonical JSON of a request (its method, path and body as sent), which an
    idempotency key is bound to: the same key with another request is a conflict, not a replay."""
    document = {
        "method": request.method,
        "path": request.url.path,
        "body": body.model_dump(mode="json", by_alias=True, exclude_unset=True) if body is not None else None,
    }
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"))  # ASCII: lone surrogates too
    return hashlib.sha256(canonical.encode()).hexdigest()

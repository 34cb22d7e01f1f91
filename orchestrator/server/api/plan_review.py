"""Plans people review: act on a plan stored with ``execute: false`` (:mod:`orchestrator.server.api.plan`).

    POST /api/v1/plans/{plan_id}/execute    run the current version (200/202 like POST /plan; 409
                                            PLAN_ALREADY_EXECUTED or PLAN_CANCELLED, 410 PLAN_EXPIRED,
                                            409 VERSION_CONFLICT when ``version`` is given and not current)
    PUT  /api/v1/plans/{plan_id}            replace its steps: ``{version, steps}``, where ``version`` is the
                                            one the reviewer read (stale: 409 VERSION_CONFLICT); the steps are
                                            validated like a planner's output against the agents' catalog and
                                            must compile to a workflow (400 INVALID_PLAN, every problem listed)
    POST /api/v1/plans/{plan_id}/cancel     drop it: it never runs (409 once executed, 410 once expired)
    GET  /api/v1/plans/{plan_id}/versions   every version of its steps, with who wrote it and when

Each of them appends one event to the plan's stream at the sequence number after the state it read, so a
concurrent write makes one of two reviewers lose with ``VERSION_CONFLICT`` and nothing is overwritten.
An expired plan is recorded ``plan.expired`` by the first request that finds it so.

Executing by id runs the plan as reviewed, without the approval gate of ``execution_mode: confirm``: the
request is the person's decision. Its execution uses the idempotency key ``<plan id>/v<version>``, so two
executes of one version share one execution.
"""

from __future__ import annotations

import contextlib
import time
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from orchestrator.core.errors import ConcurrencyConflict, Conflict, InvalidRequest, PlanningFailed
from orchestrator.core.plans import (
    PlanCancelled,
    PlanExpired,
    PlanRevised,
    PlanState,
    plan_problem,
    plan_versions,
)
from orchestrator.server.api.deps import authenticate, engine_of, service_of
from orchestrator.server.api.params import duration_field, parse_timeout
from orchestrator.server.api.plan import PlanDetail, PlanResponse, load_plan, plan_detail, run_plan
from orchestrator.server.api.schemas import USER_SCHEMA
from orchestrator.server.api.v1 import require_user
from orchestrator.server.auth import Principal
from planner.catalog import filter_catalog
from planner.compile import CompiledPlan, compile_plan
from planner.models import EXECUTION_MODES, Plan
from planner.validate import validate_plan

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["planning"], dependencies=[Depends(authenticate)])

_USER = Field(default=None, description="who acts: {id, ...}; recorded", json_schema_extra=USER_SCHEMA)


class ExecutePlanRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    version: int | None = Field(default=None, ge=1, description="the version reviewed; 409 if not current")
    user: Any = _USER
    timeout: Any = duration_field("seconds or '30s'; the execution ends in timeout (504) after it")
    async_: bool = Field(default=False, alias="async", description="true: answer 202 at once")


class PlanRevision(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1, description="the version the new steps replace")
    steps: list[dict[str, Any]] = Field(
        min_length=1,
        description="the plan's steps, as GET shows them: {id, name, type, description, depends_on, agent, "
        "capability, parameters}; the last one's output is the plan's result",
    )
    user: Any = _USER


class CancelPlanRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="", max_length=2000)
    user: Any = _USER


class PlanVersion(BaseModel):
    version: int
    event: str
    at: str
    by: dict[str, Any] | None = None
    steps: list[dict[str, Any]]


class PlanVersions(BaseModel):
    plan_id: str
    version: int = Field(description="the current version")
    versions: list[PlanVersion]


_NOT_PENDING: dict[int | str, dict[str, Any]] = {
    404: {"description": "PLAN_NOT_FOUND"},
    409: {"description": "PLAN_ALREADY_EXECUTED, PLAN_CANCELLED, VERSION_CONFLICT"},
    410: {"description": "PLAN_EXPIRED"},
}


@router.post(
    "/plans/{plan_id}/execute",
    response_model=PlanResponse,
    responses={202: {"model": PlanResponse}, 400: {}, 504: {}, **_NOT_PENDING},
    summary="Execute a plan stored for review (its current version)",
)
async def execute_plan(
    plan_id: str,
    request: Request,
    body: ExecutePlanRequest | None = None,
    principal: Principal = Depends(authenticate),
) -> JSONResponse:
    started = time.perf_counter()
    body = body or ExecutePlanRequest()
    timeout = parse_timeout(body.timeout)
    stream, state = await load_plan(request, plan_id, principal)
    await _require_pending(stream, state)
    if body.version is not None and body.version != state.version:
        raise _version_conflict(state, body.version)
    user = require_user(body.user) if body.user is not None else state.created.user
    plan = _plan(state, state.steps)
    compiled = _compile(plan, request)
    return await run_plan(
        request,
        stream=stream,
        seq=state.last_seq + 1,
        plan=plan,
        compiled=compiled,
        version=state.version,
        context=state.created.context,
        user=user,
        tenant_id=state.created.tenant_id,
        key_id=principal.key_id,
        timeout=timeout,
        gate=False,
        run_async=body.async_,
        started=started,
        planning_ms=round(state.created.planning_time_ms or 0),
        idempotency_key=f"{plan_id}/v{state.version}",
    )


@router.put(
    "/plans/{plan_id}",
    response_model=PlanDetail,
    responses={400: {"description": "INVALID_PLAN, INVALID_REQUEST"}, **_NOT_PENDING},
    summary="Replace a pending plan's steps (optimistic: the body's version must be the current one)",
)
async def revise_plan(
    plan_id: str, body: PlanRevision, request: Request, principal: Principal = Depends(authenticate)
) -> dict[str, Any]:
    stream, state = await load_plan(request, plan_id, principal)
    await _require_pending(stream, state)
    if body.version != state.version:
        raise _version_conflict(state, body.version)
    user = require_user(body.user) if body.user is not None else None
    catalog = filter_catalog(service_of(request, "registry").agents.values(), state.created.requested_domain)
    errors = validate_plan({"steps": body.steps}, catalog)
    if errors:
        raise _invalid(f"the new steps are not a plan that can run: {len(errors)} problem(s)", errors)
    try:
        plan = _plan(state, body.steps)
    except ValidationError as exc:
        details = [{"field": ".".join(map(str, e["loc"])), "message": e["msg"]} for e in exc.errors()]
        raise _invalid("the new steps are not a plan", details) from None
    try:
        compiled = _compile(plan, request)
    except PlanningFailed as exc:
        raise _invalid(f"the new steps do not make a workflow: {exc.message}", exc.details) from None
    revision = PlanRevised(
        seq=state.last_seq + 1,
        timestamp=_now(),
        version=state.version + 1,
        steps=[step.model_dump(mode="json") for step in plan.steps],
        workflow_name=compiled.workflow.name,
        step_names=compiled.step_names,
        revised_by={"key_id": principal.key_id, "user": user},
    )
    try:
        await stream.append(revision)
    except ConcurrencyConflict:
        raise _version_conflict(state, body.version, raced=True) from None
    revised = await stream.load()
    assert revised is not None
    return await plan_detail(request, revised)


@router.post(
    "/plans/{plan_id}/cancel",
    response_model=PlanDetail,
    responses=_NOT_PENDING,
    summary="Cancel a pending plan: it never runs",
)
async def cancel_plan(
    plan_id: str,
    request: Request,
    body: CancelPlanRequest | None = None,
    principal: Principal = Depends(authenticate),
) -> dict[str, Any]:
    body = body or CancelPlanRequest()
    user = require_user(body.user) if body.user is not None else None
    stream, state = await load_plan(request, plan_id, principal)
    await _require_pending(stream, state)
    try:
        await stream.append(
            PlanCancelled(
                seq=state.last_seq + 1,
                timestamp=_now(),
                reason=body.reason,
                cancelled_by={"key_id": principal.key_id, "user": user},
            )
        )
    except ConcurrencyConflict:
        # executed, revised, cancelled or expired meanwhile: say which; a revision leaves it pending,
        # and the reviewer must see the new version before cancelling it
        stream, state = await load_plan(request, plan_id, principal)
        await _require_pending(stream, state)
        raise _version_conflict(state, state.version, raced=True) from None
    cancelled = await stream.load()
    assert cancelled is not None
    return await plan_detail(request, cancelled)


@router.get(
    "/plans/{plan_id}/versions",
    response_model=PlanVersions,
    responses={404: {"description": "PLAN_NOT_FOUND"}},
    summary="Every version of a plan's steps: the planner's, then each revision",
)
async def list_plan_versions(
    plan_id: str, request: Request, principal: Principal = Depends(authenticate)
) -> dict[str, Any]:
    _, state = await load_plan(request, plan_id, principal)
    return {"plan_id": plan_id, "version": state.version, "versions": plan_versions(state)}


# ------------------------------------------------------------------------------------------- internals


async def _require_pending(stream: Any, state: PlanState) -> None:
    """Raise unless the plan is pending; an expiry found here is recorded (``plan.expired``) first."""
    now = _now()
    problem = plan_problem(state, now)
    if problem is None:
        return
    if problem.code == "PLAN_EXPIRED" and state.expired_at is None:
        # someone else may write first (record the expiry, most likely): the answer is the same
        with contextlib.suppress(ConcurrencyConflict):
            await stream.append(PlanExpired(seq=state.last_seq + 1, timestamp=now))
    raise problem


def _plan(state: PlanState, steps: list[dict[str, Any]]) -> Plan:
    created = state.created
    mode = created.execution_mode if created.execution_mode in EXECUTION_MODES else "auto"
    return Plan.model_validate(
        {
            "plan_id": state.plan_id,
            "query": created.query,
            "domain": created.domain,
            "execution_mode": mode,
            "steps": steps,
            "planner": created.planner,
            "warnings": created.warnings,
        }
    )


def _compile(plan: Plan, request: Request) -> CompiledPlan:
    return compile_plan(plan, limits=engine_of(request).settings.limits)


def _version_conflict(state: PlanState, given: int, *, raced: bool = False) -> Conflict:
    message = (
        f"plan {state.plan_id!r} changed while this request was acting on version {given}; read it again"
        if raced
        else f"plan {state.plan_id!r} is at version {state.version}, not {given}; read it again"
    )
    return Conflict(
        message,
        code="VERSION_CONFLICT",
        details={"plan_id": state.plan_id, "version": state.version, "given": given},
    )


def _invalid(message: str, details: Any) -> InvalidRequest:
    return InvalidRequest(message, code="INVALID_PLAN", details=details)


def _now() -> datetime:
    return datetime.now(UTC)

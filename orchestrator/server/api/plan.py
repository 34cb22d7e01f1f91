"""Multi-agent planning (``/api/v1/plan``): a sentence becomes a plan, the plan runs as a workflow.

``POST /api/v1/plan`` asks the planner deployment (through its DeploymentHandle) for a plan over the
registered agents, compiles it into a workflow (:mod:`planner.compile`), records it as a plan event stream
(:mod:`orchestrator.core.plans`) and, unless ``execute`` is false, runs it on the engine like any other
workflow: named ``map-<domain>``, with the request's ``context`` as input and the plan id in its metadata,
so the run is visible through ``GET /api/v1/workflows/executions/{id}`` too. The final (synthesis) step's
output is the answer's ``result``.

Status codes: 200 when the plan ran to an end (``success`` says whether it succeeded, ``error`` why not) or
was not asked to run; 202 when the execution outlasted the server's synchronous wait (it goes on: follow
``workflow_execution_id``); 400 ``MISSING_USER_CONTEXT`` / ``INVALID_REQUEST``; 500 ``PLANNING_FAILED``
with what went wrong in ``details``; 504 ``EXECUTION_TIMEOUT`` when the workflow hit its ``timeout``.

``GET /api/v1/plans/{plan_id}`` folds the plan's stream and adds its execution's current status.

Plans people review (:mod:`orchestrator.server.api.plan_review` has the routes that act on a stored plan):
``execute: false`` stores the plan ``pending`` until ``ORCH_PLAN_TTL`` seconds from now; ``execution_mode:
confirm`` runs it at once behind an approval step that every first step waits for, and answers 202 with
``status: waiting_for_approval`` and the step to approve (``POST
/api/v1/workflows/executions/{id}/approvals/{approval_step}``); a rejection fails the execution before any
step ran.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from ray.exceptions import RayError, RayTaskError
from ray.serve.exceptions import RayServeException

from orchestrator.core.errors import (
    ConcurrencyConflict,
    Conflict,
    ExecutionTimeout,
    InvalidRequest,
    NotFound,
    OrchestratorError,
    PlanningFailed,
)
from orchestrator.core.ids import new_plan_id
from orchestrator.core.plans import (
    PlanCreated,
    PlanEvent,
    PlanExecuted,
    PlanExecutionStarted,
    PlanState,
    fold_plan,
    plan_problem,
    plan_view,
    public_steps,
    to_record,
)
from orchestrator.core.state import ExecutionState
from orchestrator.core.timestamps import format_timestamp
from orchestrator.ray_errors import describe_cause, orchestrator_cause
from orchestrator.server.api.deps import authenticate, engine_of, read_execution, service_of
from orchestrator.server.api.links import execution_links, link
from orchestrator.server.api.params import duration_field, parse_timeout
from orchestrator.server.api.render import step_seconds
from orchestrator.server.api.schemas import NON_BLANK, USER_SCHEMA, require
from orchestrator.server.api.v1 import require_user
from orchestrator.server.auth import Principal, acting_tenant, may_see
from planner.compile import CompiledPlan, compile_plan, gated
from planner.models import Plan

router = APIRouter(prefix="/api/v1", tags=["planning"], dependencies=[Depends(authenticate)])

# Long enough for any sentence a person writes; the planner's regex passes stay cheap below it.
MAX_QUERY_CHARS = 8000


class PlanRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra=require("user"))

    query: str = Field(
        max_length=MAX_QUERY_CHARS,
        description="the request in natural language; not blank",
        json_schema_extra={"pattern": NON_BLANK},
    )
    domain: str | None = Field(
        default=None, description="domain hint: travel, crm, projects, ... or generic (all agents)"
    )
    execution_mode: Literal["auto", "parallel", "sequential", "confirm"] = Field(
        default="auto",
        description="confirm: run at once behind an approval step (202, status waiting_for_approval)",
    )
    user: Any = Field(
        default=None, description="{id, email?, role?, tenant_id?}", json_schema_extra=USER_SCHEMA
    )
    context: dict[str, Any] = Field(
        default_factory=dict, description="budget, currency, preferences...; the workflow's input"
    )
    execute: bool = Field(
        default=True, description="false: store the plan pending, for review, until ORCH_PLAN_TTL from now"
    )
    timeout: Any = duration_field("seconds or '30s'; the execution ends in timeout (504) after it")


class PlanStepView(BaseModel):
    id: str
    name: str
    type: str
    description: str = ""
    depends_on: list[str] = Field(default_factory=list)
    agent: str | None = None
    capability: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)


class TaskView(BaseModel):
    name: str
    status: str
    time_ms: int | None = None


class PlanMetadata(BaseModel):
    tasks_executed: int
    execution_mode: str = Field(description="how the steps ran: parallel or sequential")
    execution_time_ms: int
    planning_time_ms: int
    planner: Literal["offline", "llm"]
    tasks: list[TaskView]
    warnings: list[str]


class PlanResponse(BaseModel):
    success: bool
    plan_id: str
    steps: list[PlanStepView]
    workflow_execution_id: str | None
    status: str = Field(
        description="pending (stored for review), waiting_for_approval (confirm), or the execution's status"
    )
    result: Any = None
    error: str | None = None
    metadata: PlanMetadata
    version: int = Field(default=1, description="the version of the steps that ran or are stored")
    expires_at: str | None = Field(default=None, description="a pending plan can be executed until then")
    approval_step: str | None = Field(default=None, description="confirm: the approval step to decide")


class PlanDetail(BaseModel):
    plan_id: str
    query: str
    domain: str | None
    execution_mode: str
    planner: str
    created_at: str
    tenant_id: str
    context: dict[str, Any]
    steps: list[PlanStepView]
    warnings: list[str]
    workflow_name: str | None
    workflow_execution_id: str | None
    status: str = Field(
        description="pending, cancelled or expired (never executed), waiting_for_approval, or the "
        "execution's current status"
    )
    result: Any = None
    error: str | None = None
    metadata: dict[str, Any]
    version: int = 1
    expires_at: str | None = None
    approval_step: str | None = None


_PLAN_LINKS = {
    "GetPlan": link("/api/v1/plans/{plan_id}", "get", {"plan_id": "$response.body#/plan_id"}, "the plan"),
    **execution_links("/api/v1/workflows", "execution_id", "$response.body#/workflow_execution_id"),
}


@router.post(
    "/plan",
    response_model=PlanResponse,
    responses={
        200: {"links": _PLAN_LINKS},
        202: {"model": PlanResponse, "links": _PLAN_LINKS},
        400: {},
        500: {},
        504: {},
    },
    summary="Plan a natural-language request over the agents and run it",
)
async def create_plan(
    body: PlanRequest,
    request: Request,
    x_tenant_id: str | None = Header(default=None),
    principal: Principal = Depends(authenticate),
) -> JSONResponse:
    started = time.perf_counter()
    user = require_user(body.user)
    tenant_id = acting_tenant(principal, user, x_tenant_id)  # refused before any planning is spent
    query = body.query.strip()
    if not query:
        raise InvalidRequest(
            "query must not be empty", details=[{"field": "query", "message": "say what to plan"}]
        )
    timeout = parse_timeout(body.timeout)
    domain = (body.domain or "").strip().lower() or None

    confirm = body.execution_mode == "confirm"  # a gate around the plan, not a planning mode
    mode = "auto" if confirm else body.execution_mode
    plan = await _ask_planner(
        request, {"query": query, "domain": domain, "execution_mode": mode, "context": body.context}
    )
    settings = engine_of(request).settings
    compiled = compile_plan(plan, limits=settings.limits)
    planning_ms = _ms(started)

    plan_id = new_plan_id()
    stream = _PlanStream(request, plan_id)
    created_at = _now()
    expires_at = None if body.execute else created_at + timedelta(seconds=settings.plan_ttl)
    await stream.append(
        PlanCreated(
            seq=1,
            timestamp=created_at,
            query=query,
            domain=plan.domain,
            requested_domain=domain,
            execution_mode=body.execution_mode,
            user=user,
            tenant_id=tenant_id,
            context=body.context,
            planner=plan.planner,
            steps=[step.model_dump(mode="json") for step in plan.steps],
            warnings=plan.warnings,
            workflow_name=compiled.workflow.name,
            step_names=compiled.step_names,
            planning_time_ms=planning_ms,
            expires_at=expires_at,
            created_by={"key_id": principal.key_id, "user": user},
        )
    )
    if not body.execute:
        answer = _answer(plan_id, plan, version=1)
        answer.update(
            status="pending",
            expires_at=format_timestamp(expires_at) if expires_at else None,
            metadata=_metadata(plan, compiled, None, started, planning_ms),
        )
        return JSONResponse(answer)
    return await run_plan(
        request,
        stream=stream,
        seq=2,
        plan=plan,
        compiled=compiled,
        version=1,
        context=body.context,
        user=user,
        tenant_id=tenant_id,
        key_id=principal.key_id,
        timeout=timeout,
        gate=confirm,
        run_async=False,
        started=started,
        planning_ms=planning_ms,
    )


async def run_plan(
    request: Request,
    *,
    stream: _PlanStream,
    seq: int,
    plan: Plan,
    compiled: CompiledPlan,
    version: int,
    context: dict[str, Any],
    user: dict[str, Any],
    tenant_id: str,
    key_id: str | None,
    timeout: float | None,
    gate: bool,
    run_async: bool,
    started: float,
    planning_ms: int,
    idempotency_key: str | None = None,
) -> JSONResponse:
    """Run a plan's workflow and answer for it: records ``plan.execution_started`` at ``seq`` (and
    ``plan.executed`` after it once the execution ends within the synchronous wait).

    ``gate`` (``confirm``) puts an approval step before the first steps and answers at once, 202
    ``waiting_for_approval``. ``idempotency_key`` makes two requests executing one plan version share one
    execution; the one whose ``plan.execution_started`` loses the race on ``seq`` is refused (409), and an
    execution it started for a version no longer current is cancelled."""
    engine = service_of(request, "engine")
    workflow, approval_step = compiled.workflow, None
    if gate:
        workflow, approval_step = gated(
            compiled, f"Run this plan? {plan.query}", limits=engine.settings.limits
        )
    state = await engine.start(
        workflow,
        input=context,
        user=user,
        tenant_id=tenant_id,
        wait=False,
        timeout=timeout,
        metadata={"plan_id": stream.plan_id, "planner": plan.planner, "query": plan.query},
        idempotency_key=idempotency_key,
        key_id=key_id,
    )
    execution_id = state.execution_id
    try:
        # Recorded before waiting, so the plan leads to its execution even if this request goes away.
        await stream.append(
            PlanExecutionStarted(
                seq=seq,
                timestamp=_now(),
                workflow_execution_id=execution_id,
                workflow_name=compiled.workflow.name,
                execution_mode=compiled.execution_mode,
                version=version,
                started_by={"key_id": key_id, "user": user},
                approval_step=approval_step,
            )
        )
    except ConcurrencyConflict:
        await _lost_start(request, stream, engine, execution_id, key_id=key_id, user=user)
    answer = _answer(stream.plan_id, plan, version=version)
    answer["workflow_execution_id"] = execution_id
    if gate and not state.terminal:
        answer.update(
            status="waiting_for_approval",
            approval_step=approval_step,
            metadata=_metadata(plan, compiled, state, started, planning_ms),
        )
        return JSONResponse(answer, status_code=202)
    if not state.terminal and not run_async:
        state = await engine.wait(execution_id, engine.settings.sync_timeout)

    metadata = _metadata(plan, compiled, state, started, planning_ms)
    result = _result(state, compiled)
    answer.update(
        status=state.status,
        result=result,
        success=state.status == "completed",
        error=None if state.status == "completed" else _error(state),
        metadata=metadata,
        approval_step=approval_step,
    )
    if not state.terminal:
        answer["success"] = True
        answer["error"] = (
            None
            if run_async
            else f"the execution is still {state.status} after {engine.settings.sync_timeout:g}s; "
            f"follow it at /api/v1/workflows/executions/{execution_id}"
        )
        return JSONResponse(answer, status_code=202)

    await stream.append(
        PlanExecuted(
            seq=seq + 1,
            timestamp=_now(),
            workflow_execution_id=execution_id,
            status=state.status,
            result=result,
            error=answer["error"],
            metadata=metadata,
        )
    )
    if state.status == "timeout":
        raise ExecutionTimeout(
            state.error or "the plan's workflow exceeded its timeout",
            details={
                "execution_id": execution_id,
                "plan_id": stream.plan_id,
                "timeout": timeout,
                "tasks": metadata["tasks"],
            },
        )
    return JSONResponse(answer)


async def _lost_start(
    request: Request,
    stream: _PlanStream,
    engine: Any,
    execution_id: str,
    *,
    key_id: str | None,
    user: dict[str, Any],
) -> None:
    """Another request wrote the plan's stream first (executed, revised or cancelled it meanwhile):
    refuse, and cancel the execution this request started unless the plan records it as its own."""
    state = await stream.load()
    if state is None or state.workflow_execution_id != execution_id:
        with contextlib.suppress(Conflict):  # it finished already
            await engine.cancel(execution_id, key_id=key_id, user=user)
    problem = plan_problem(state, _now()) if state is not None else None
    raise problem or Conflict(
        f"plan {stream.plan_id!r} changed while it was being executed; read it again",
        code="VERSION_CONFLICT",
        details={"plan_id": stream.plan_id, "version": state.version if state else None},
    )


def _answer(plan_id: str, plan: Plan, *, version: int) -> dict[str, Any]:
    return {
        "success": True,
        "plan_id": plan_id,
        "steps": public_steps(step.model_dump(mode="json") for step in plan.steps),
        "workflow_execution_id": None,
        "status": "pending",
        "result": None,
        "error": None,
        "version": version,
        "expires_at": None,
        "approval_step": None,
    }


@router.get(
    "/plans/{plan_id}",
    response_model=PlanDetail,
    responses={404: {"description": "PLAN_NOT_FOUND"}},
    summary="A stored plan with its execution's current status",
)
async def get_plan(
    plan_id: str, request: Request, principal: Principal = Depends(authenticate)
) -> dict[str, Any]:
    _, state = await load_plan(request, plan_id, principal)
    return await plan_detail(request, state)


async def load_plan(request: Request, plan_id: str, principal: Principal) -> tuple[_PlanStream, PlanState]:
    """The plan's stream and state; PLAN_NOT_FOUND for an unknown one and for another tenant's."""
    stream = _PlanStream(request, plan_id)
    state = await stream.load()
    # another tenant's plan is not found, like one that does not exist
    if state is None or not may_see(principal, state.created.tenant_id):
        raise NotFound(f"plan {plan_id!r} not found", code="PLAN_NOT_FOUND")
    return stream, state


async def plan_detail(request: Request, state: PlanState) -> dict[str, Any]:
    """The plan's view with its execution's current status (``waiting_for_approval`` while a confirm
    plan's gate waits)."""
    status: str | None = None
    result: Any = None
    error: str | None = None
    if state.workflow_execution_id is not None:
        try:
            execution = await read_execution(service_of(request, "engine"), state.workflow_execution_id)
        except NotFound:
            execution = None  # pruned by retention; the recorded outcome is all there is
        if execution is not None:
            status = execution.status
            gate = state.started.approval_step if state.started else None
            if gate and not execution.terminal and execution.steps[gate].status == "waiting":
                status = "waiting_for_approval"
            steps = state.steps
            final = state.step_names.get(str(steps[-1].get("id"))) if steps else None
            if execution.terminal and final in execution.steps:
                result = execution.steps[final].output
                error = None if execution.status == "completed" else _error(execution)
    return plan_view(
        state, execution_status=status, execution_result=result, execution_error=error, now=_now()
    )


# ------------------------------------------------------------------------------------------- internals


async def _ask_planner(request: Request, payload: dict[str, Any]) -> Plan:
    """The planner deployment's plan. Ray wraps what the replica raised; the project's own errors are
    unwrapped and anything else from Ray means the planner could not be reached."""
    planner = service_of(request, "planner")
    try:
        data = await planner.plan.remote(payload)
    except RayTaskError as exc:
        cause = orchestrator_cause(exc)
        if cause is not None:
            raise cause from None
        kind, _, message = describe_cause(exc).partition(": ")
        raise PlanningFailed(
            f"the planner failed: {kind}",
            details={"reason": "planner_error", "message": message[:2000]},
        ) from None
    except OrchestratorError:
        raise
    except (RayError, RayServeException) as exc:  # no replica, back-pressure, cancelled
        raise PlanningFailed(
            f"the planner is unavailable: {type(exc).__name__}",
            details={"reason": "planner_unavailable", "message": str(exc)[:2000]},
        ) from None
    try:
        return Plan.model_validate(data)
    except ValueError as exc:
        raise PlanningFailed(
            "the planner answered with something that is not a plan",
            details={"reason": "invalid_plan", "message": str(exc)[:2000]},
        ) from None


class _PlanStream:
    """Reads and appends to one plan's stream. Every write names its sequence number (the one after the
    state it was decided on); the store refuses a taken one with ConcurrencyConflict, so concurrent
    reviewers never both win."""

    def __init__(self, request: Request, plan_id: str) -> None:
        self._store = service_of(request, "store")
        self.plan_id = plan_id

    async def append(self, event: PlanEvent) -> None:
        record = to_record(self.plan_id, event)
        await asyncio.to_thread(self._store.append, self.plan_id, [record], projection=None)

    async def load(self) -> PlanState | None:
        return fold_plan(self.plan_id, await asyncio.to_thread(self._store.load, self.plan_id))


def _metadata(
    plan: Plan,
    compiled: CompiledPlan,
    state: ExecutionState | None,
    started: float,
    planning_ms: int,
) -> dict[str, Any]:
    tasks: list[dict[str, Any]] = []
    if state is not None and state.workflow is not None:
        for step_def in state.workflow.steps:
            step = state.steps[step_def.name]
            seconds = step_seconds(step)
            tasks.append(
                {
                    "name": step.name,
                    "status": step.status,
                    "time_ms": round(seconds * 1000) if seconds is not None else None,
                }
            )
    return {
        "tasks_executed": sum(1 for t in tasks if t["status"] in ("completed", "failed")),
        "execution_mode": compiled.execution_mode,
        "execution_time_ms": _ms(started),
        "planning_time_ms": planning_ms,
        "planner": plan.planner,
        "tasks": tasks,
        "warnings": list(plan.warnings),
    }


def _result(state: ExecutionState, compiled: CompiledPlan) -> Any:
    step = state.steps.get(compiled.final_step)
    return step.output if step is not None and step.status == "completed" else None


def _error(state: ExecutionState) -> str | None:
    if state.error:
        return state.error
    failed = [f"{s.name}: {s.error}" for s in state.steps.values() if s.status == "failed" and s.error]
    return "; ".join(failed) or f"the execution ended {state.status}"


def _ms(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)


def _now() -> datetime:
    return datetime.now(UTC)


__all__ = [
    "MAX_QUERY_CHARS",
    "PlanDetail",
    "PlanResponse",
    "PlanStepView",
    "load_plan",
    "plan_detail",
    "router",
    "run_plan",
]

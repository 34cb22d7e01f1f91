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
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from ray.exceptions import RayError, RayTaskError
from ray.serve.exceptions import RayServeException

from orchestrator.core.errors import (
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
    fold_plan,
    plan_view,
    public_steps,
    to_record,
)
from orchestrator.core.state import ExecutionState
from orchestrator.ray_errors import describe_cause, orchestrator_cause
from orchestrator.server.api.deps import authenticate, engine_of, read_execution, service_of
from orchestrator.server.api.links import execution_links, link
from orchestrator.server.api.params import duration_field, parse_timeout
from orchestrator.server.api.render import step_seconds
from orchestrator.server.api.schemas import NON_BLANK, USER_SCHEMA, require
from orchestrator.server.api.v1 import require_user
from orchestrator.server.auth import Principal, acting_tenant, may_see
from planner.compile import CompiledPlan, compile_plan
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
    execution_mode: Literal["auto", "parallel", "sequential"] = "auto"
    user: Any = Field(
        default=None, description="{id, email?, role?, tenant_id?}", json_schema_extra=USER_SCHEMA
    )
    context: dict[str, Any] = Field(
        default_factory=dict, description="budget, currency, preferences...; the workflow's input"
    )
    execute: bool = Field(default=True, description="false: plan only, run nothing")
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
    status: str = Field(description="planned (not executed), or the execution's status")
    result: Any = None
    error: str | None = None
    metadata: PlanMetadata


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
    status: str = Field(description="planned, or the execution's current status")
    result: Any = None
    error: str | None = None
    metadata: dict[str, Any]


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

    plan = await _ask_planner(
        request,
        {"query": query, "domain": domain, "execution_mode": body.execution_mode, "context": body.context},
    )
    compiled = compile_plan(plan, limits=engine_of(request).settings.limits)
    planning_ms = _ms(started)

    plan_id = new_plan_id()
    stream = _PlanStream(request, plan_id)
    await stream.append(
        PlanCreated(
            seq=1,
            timestamp=_now(),
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
        )
    )
    answer: dict[str, Any] = {
        "success": True,
        "plan_id": plan_id,
        "steps": public_steps(step.model_dump(mode="json") for step in plan.steps),
        "workflow_execution_id": None,
        "status": "planned",
        "result": None,
        "error": None,
    }
    if not body.execute:
        answer["metadata"] = _metadata(plan, compiled, None, started, planning_ms)
        return JSONResponse(answer)

    engine = service_of(request, "engine")
    state = await engine.start(
        compiled.workflow,
        input=body.context,
        user=user,
        tenant_id=tenant_id,
        wait=False,
        timeout=timeout,
        metadata={"plan_id": plan_id, "planner": plan.planner, "query": query},
        key_id=principal.key_id,
    )
    execution_id = state.execution_id
    # Recorded before waiting, so the plan leads to its execution even if this request goes away.
    await stream.append(
        PlanExecutionStarted(
            seq=2,
            timestamp=_now(),
            workflow_execution_id=execution_id,
            workflow_name=compiled.workflow.name,
            execution_mode=compiled.execution_mode,
        )
    )
    if not state.terminal:
        state = await engine.wait(execution_id, engine.settings.sync_timeout)

    metadata = _metadata(plan, compiled, state, started, planning_ms)
    result = _result(state, compiled)
    answer.update(
        workflow_execution_id=execution_id,
        status=state.status,
        result=result,
        success=state.status == "completed",
        error=None if state.status == "completed" else _error(state),
        metadata=metadata,
    )
    if not state.terminal:
        answer["error"] = (
            f"the execution is still {state.status} after {engine.settings.sync_timeout:g}s; "
            f"follow it at /api/v1/workflows/executions/{execution_id}"
        )
        return JSONResponse(answer, status_code=202)

    await stream.append(
        PlanExecuted(
            seq=3,
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
                "plan_id": plan_id,
                "timeout": timeout,
                "tasks": metadata["tasks"],
            },
        )
    return JSONResponse(answer)


@router.get(
    "/plans/{plan_id}",
    response_model=PlanDetail,
    responses={404: {"description": "PLAN_NOT_FOUND"}},
    summary="A stored plan with its execution's current status",
)
async def get_plan(
    plan_id: str, request: Request, principal: Principal = Depends(authenticate)
) -> dict[str, Any]:
    store = service_of(request, "store")
    state = fold_plan(plan_id, await asyncio.to_thread(store.load, plan_id))
    # another tenant's plan is not found, like one that does not exist
    if state is None or not may_see(principal, state.created.tenant_id):
        raise NotFound(f"plan {plan_id!r} not found", code="PLAN_NOT_FOUND")
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
            steps = state.created.steps
            final = state.created.step_names.get(str(steps[-1].get("id"))) if steps else None
            if execution.terminal and final in execution.steps:
                result = execution.steps[final].output
                error = None if execution.status == "completed" else _error(execution)
    return plan_view(state, execution_status=status, execution_result=result, execution_error=error)


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
    """Appends to one plan's stream. Only the request that created the plan writes it, so the sequence
    numbers are known without reading the stream back."""

    def __init__(self, request: Request, plan_id: str) -> None:
        self._store = service_of(request, "store")
        self._plan_id = plan_id

    async def append(self, event: PlanEvent) -> None:
        record = to_record(self._plan_id, event)
        await asyncio.to_thread(self._store.append, self._plan_id, [record], projection=None)


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


__all__ = ["MAX_QUERY_CHARS", "router"]

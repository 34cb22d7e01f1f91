"""The v1 Workflow API (``/api/v1/workflows``): snake_case, ``status``, workflows sent inline."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from orchestrator.core.errors import (
    ExecutionTimeout,
    Forbidden,
    InvalidWorkflow,
    MissingUserContext,
    NotFound,
)
from orchestrator.core.workflow_documents import validate_input
from orchestrator.server.api.deps import (
    authenticate,
    engine_of,
    read_execution,
    request_hash,
    require_visible,
)
from orchestrator.server.api.links import execution_links
from orchestrator.server.api.params import MAX_OFFSET, duration_field, parse_timeout
from orchestrator.server.api.render import iso, list_item, v1_execution
from orchestrator.server.api.rendered import RENDERED
from orchestrator.server.api.schemas import USER_SCHEMA, require, v1_workflow_schema
from orchestrator.server.auth import Principal, acting_tenant
from orchestrator.store.export import MEDIA_TYPES, ExportFormat, events_to_bytes

router = APIRouter(prefix="/api/v1/workflows", tags=["workflows"], dependencies=[Depends(authenticate)])

Status = Literal["pending", "running", "completed", "failed", "timeout", "cancelled"]


class ExecuteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra=require("workflow", "user"))

    # Typed Any: the validator checks the whole document and names every problem (INVALID_WORKFLOW).
    workflow: Any = Field(
        default=None,
        description="{metadata: {name, version?, description?}, spec: {steps, timeout?, output?}}",
        json_schema_extra=v1_workflow_schema(),
    )
    input: dict[str, Any] = Field(
        default_factory=dict, description="checked against the workflow's input_schema, if it has one"
    )
    user: Any = Field(
        default=None, description="{id, email?, role?, tenant_id?}", json_schema_extra=USER_SCHEMA
    )
    async_: bool = Field(default=False, alias="async")
    timeout: Any = duration_field("seconds or '30s'; ends the execution in timeout")
    idempotency_key: str | None = None


class StepView(BaseModel):
    name: str
    type: str
    status: str
    parent: str | None = None
    started_at: str | None = None
    completed_at: str | None = None
    process_time: str | None = None
    attempts: int = 0
    output: Any = None
    error: str | None = None


class WaitingView(BaseModel):
    step: str
    kind: Literal["approval", "signal"]
    prompt: str | None = Field(
        default=None, description="an approval's question; a signal step's description"
    )
    since: str | None = None
    approvers: list[str] | None = Field(
        default=None, description="approval: user ids or roles; empty: anyone"
    )
    signal: str | None = Field(default=None, description="signal: the name to send")


class ExecutionView(BaseModel):
    id: str
    status: Status
    workflow_name: str
    workflow_id: str | None = None
    workflow_version: str | None = None
    tenant_id: str
    input: dict[str, Any]
    output: Any = None
    error: str | None = None
    started_at: str | None
    completed_at: str | None = None
    duration_ms: int | None = None
    steps: list[StepView]
    waiting_for: list[WaitingView] = Field(
        default_factory=list, description="approval and signal steps waiting now (status waiting)"
    )


class ExecutionSummary(BaseModel):
    id: str
    workflow_name: str
    status: Status
    tenant_id: str
    dialect: Literal["v1", "eai"] = Field(default="v1", description="the API it was started through")
    started_at: str | None
    completed_at: str | None = None
    duration_ms: int | None = None
    error: str | None = None


class ExecutionList(BaseModel):
    executions: list[ExecutionSummary]
    count: int
    total: int
    limit: int
    offset: int


class TenantExecutionList(BaseModel):
    tenant_id: str
    count: int
    total: int
    executions: list[ExecutionSummary]


class EventView(BaseModel):
    seq: int
    type: str
    timestamp: str
    step: str | None = None
    data: dict[str, Any]


class EventList(BaseModel):
    execution_id: str
    events: list[EventView]


_EXECUTION_LINKS = execution_links("/api/v1/workflows", "execution_id", "$response.body#/id")


def require_user(user: Any) -> dict[str, Any]:
    if not isinstance(user, dict) or user.get("id") in (None, ""):
        raise MissingUserContext(
            "user context is required for governance: send user: {id, email?, role?}",
            details=[{"field": "user", "message": "an object with an id is required"}],
        )
    return user


@router.post(
    "/execute",
    response_model=ExecutionView,
    responses={
        200: {"links": _EXECUTION_LINKS},
        202: {"model": ExecutionView, "links": _EXECUTION_LINKS},
        400: {},
        413: {},
        504: {},
    },
    summary="Execute a workflow definition",
)
async def execute(
    body: ExecuteRequest,
    request: Request,
    x_tenant_id: str | None = Header(default=None),
    idempotency_key: str | None = Header(default=None),
    principal: Principal = Depends(authenticate),
) -> JSONResponse:
    engine = engine_of(request)
    if body.workflow is None:
        raise InvalidWorkflow(
            "workflow is required", details=[{"field": "workflow", "message": "is required"}]
        )
    workflow = engine.workflows.parse(body.workflow)
    user = require_user(body.user)
    tenant_id = acting_tenant(principal, user, x_tenant_id)
    validate_input(workflow, body.input)
    timeout = parse_timeout(body.timeout)
    key = idempotency_key or body.idempotency_key
    state = await engine.start(
        workflow,
        input=body.input,
        user=user,
        tenant_id=tenant_id,
        wait=not body.async_,
        timeout=timeout,
        idempotency_key=key,
        key_id=principal.key_id,
        request_hash=request_hash(request, body) if key else None,
    )
    view = v1_execution(state)
    if state.status == "timeout" and not body.async_:
        raise ExecutionTimeout(
            state.error or "workflow exceeded its timeout",
            details={"execution_id": state.execution_id, "execution": view},
        )
    # 202 when asked to run in the background, or when a synchronous wait outlasted ORCH_SYNC_TIMEOUT
    return JSONResponse(view, status_code=200 if state.terminal and not body.async_ else 202)


@router.get("/executions", response_model=ExecutionList, summary="List recent executions, newest first")
async def list_executions(
    request: Request,
    limit: int = Query(default=10, ge=1, le=1000),
    offset: int = Query(default=0, ge=0, le=MAX_OFFSET),
    status: Status | None = None,
    workflow_name: str | None = None,
    dialect: Literal["v1", "eai"] | None = Query(default=None, description="only those started in it"),
    x_tenant_id: str | None = Header(default=None),
    principal: Principal = Depends(authenticate),
) -> dict[str, Any]:
    # open: every tenant, as before keys; with a key, the tenant it acts for only
    tenant_id = None if principal.open else acting_tenant(principal, None, x_tenant_id)
    page = await asyncio.to_thread(
        engine_of(request).list,
        tenant_id=tenant_id,
        status=status,
        workflow_name=workflow_name,
        dialect=dialect,
        limit=limit,
        offset=offset,
    )
    items = [list_item(row) for row in page.rows]
    return {"executions": items, "count": len(items), "total": page.total, "limit": limit, "offset": offset}


@router.get(
    "/executions/tenant/{tenant_id}", response_model=TenantExecutionList, summary="A tenant's executions"
)
async def list_tenant_executions(
    tenant_id: str,
    request: Request,
    limit: int = Query(default=10, ge=1, le=1000),
    offset: int = Query(default=0, ge=0, le=MAX_OFFSET),
    status: Status | None = None,
    principal: Principal = Depends(authenticate),
) -> dict[str, Any]:
    if not principal.open and not principal.is_admin and tenant_id != principal.tenant_id:
        raise Forbidden(
            f"this key acts for tenant {principal.tenant_id!r} only, not {tenant_id!r}",
            details=[{"field": "tenant_id", "message": f"a member key cannot list {tenant_id!r}"}],
        )
    page = await asyncio.to_thread(
        engine_of(request).list, tenant_id=tenant_id, status=status, limit=limit, offset=offset
    )
    items = [list_item(row) for row in page.rows]
    return {"tenant_id": tenant_id, "count": len(items), "total": page.total, "executions": items}


@router.get("/executions/{execution_id}", response_model=ExecutionView, summary="One execution")
async def get_execution(
    execution_id: str, request: Request, principal: Principal = Depends(authenticate)
) -> Any:
    state = await read_execution(engine_of(request), execution_id, principal)
    return await RENDERED.response(state, "v1", v1_execution, ExecutionView)


@router.post(
    "/executions/{execution_id}/cancel",
    status_code=202,
    response_model=ExecutionView,
    responses={409: {"description": "EXECUTION_ALREADY_FINISHED"}},
    summary="Cancel a running execution",
)
async def cancel_execution(
    execution_id: str, request: Request, principal: Principal = Depends(authenticate)
) -> dict[str, Any]:
    engine = engine_of(request)
    await require_visible(engine, execution_id, principal)
    return v1_execution(await engine.cancel(execution_id, key_id=principal.key_id))


@router.get(
    "/executions/{execution_id}/events",
    response_model=EventList,
    summary="The execution's event log (JSON, or Arrow / Parquet with ?format=)",
    responses={200: {"content": {MEDIA_TYPES["arrow_stream"]: {}, MEDIA_TYPES["parquet"]: {}}}},
)
async def execution_events(
    execution_id: str,
    request: Request,
    format: Literal["json", "arrow", "parquet"] = "json",
    principal: Principal = Depends(authenticate),
) -> Any:
    engine = engine_of(request)
    await require_visible(engine, execution_id, principal)
    if format == "json":
        return {"execution_id": execution_id, "events": await asyncio.to_thread(engine.events, execution_id)}
    records = await asyncio.to_thread(engine.store.load, execution_id)
    if not records:
        raise NotFound(f"execution {execution_id!r} not found", code="EXECUTION_NOT_FOUND")
    kind: ExportFormat = "arrow_stream" if format == "arrow" else "parquet"
    body = await asyncio.to_thread(events_to_bytes, records, kind)
    return Response(
        body,
        media_type=MEDIA_TYPES[kind],
        headers={"Content-Disposition": f'attachment; filename="{execution_id}.{format}"'},
    )


__all__ = ["iso", "router"]

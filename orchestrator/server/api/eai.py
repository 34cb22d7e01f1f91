"""The EAI Orchestrate dialect (``/api/eai/v3/orchestrate``): camelCase, ``state``, workflows registered
by id. Same engine and store as v1; an execution started through either dialect is readable through both.

Routes
    GET  /workflows                              latest version of every registered workflow
    PUT  /workflows/{workflowId}                 register a version: 201 new, 200 identical already there,
                                                 400 INVALID_WORKFLOW, 409 VERSION_EXISTS (versions are
                                                 immutable: a changed definition needs a new version)
    GET  /workflows/{workflowId}[?version=]      the latest version, or the given one; 404 WORKFLOW_NOT_FOUND
    POST /workflows/{workflowId}/execute         {input, async?, metadata?, version?, timeout?}:
                                                 sync -> 200 with the finished execution (504
                                                 EXECUTION_TIMEOUT if it timed out, ``details.execution_id``
                                                 naming it); async -> 202 with the execution as it stands.
                                                 404 WORKFLOW_NOT_FOUND; 400 INVALID_INPUT when the input
                                                 does not match the definition's ``input_schema``
    GET  /executions                             filters workflowId, state; newest first; paginated
    GET  /executions/{executionId}               one execution; 404 EXECUTION_NOT_FOUND
    POST /executions/{executionId}/cancel        204 No Content; 404 EXECUTION_NOT_FOUND; 409
                                                 EXECUTION_ALREADY_FINISHED

Pagination of ``GET /executions``: ``limit`` defaults to 20 and must be 1 to 100, ``offset`` must be 0 or
more; anything else is 400 INVALID_REQUEST rather than silently clamped, so a client never believes it got
"all" of something it did not. An offset past the end is not an error: ``data`` is empty and ``total``
still counts every match.

The ``workflowId`` of an execution is the registered workflow's id; for a v1 execution, which has none,
it is the v1 workflow name. The ``workflowId`` filter matches the same thing.

Tenancy (see :mod:`orchestrator.server.auth`): with auth off, executions are filed under the tenant of the
``X-Tenant-ID`` header (default ``default``) and every workflow is shared. With API keys, a member key acts
for its own tenant (naming another is 403), an admin key for the tenant ``X-Tenant-ID`` names, else its
own; lists show that tenant's executions only, and another tenant's execution is 404 for a member.
Workflows: a tenant sees the shared ones and its own, its own shadowing a shared one of the same id; a
member's ``PUT`` registers in its tenant's namespace, an admin's registers a shared workflow unless
``X-Tenant-ID`` names a tenant.

``metadata.requestedBy``, when given, becomes the user id templates see as ``user.id``; the
``Idempotency-Key`` header answers a resubmission with the original execution, as in v1 (scoped per
tenant; the same key with another request is 409 IDEMPOTENCY_KEY_REUSED).

A synchronous execute waits at most ``ORCH_SYNC_TIMEOUT`` seconds; an execution still running then is
answered with 202, as if ``async`` had been asked for (the execution itself goes on).
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal, cast

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from orchestrator.core.errors import ExecutionTimeout, NotFound
from orchestrator.core.workflow_documents import parse_definition, validate_input
from orchestrator.server.api.deps import (
    authenticate,
    engine_of,
    read_execution,
    request_hash,
    require_visible,
    service_of,
)
from orchestrator.server.api.links import execution_links
from orchestrator.server.api.params import MAX_OFFSET, duration_field, parse_timeout
from orchestrator.server.api.render_eai import eai_execution, eai_list_item, workflow_detail, workflow_summary
from orchestrator.server.api.rendered import RENDERED
from orchestrator.server.api.schemas import eai_definition_schema, replace_with
from orchestrator.server.auth import Principal, acting_tenant
from orchestrator.server.workflow_registry import register
from orchestrator.store.base import EventStore, WorkflowRecord

router = APIRouter(
    prefix="/api/eai/v3/orchestrate", tags=["orchestrate"], dependencies=[Depends(authenticate)]
)

State = Literal["pending", "running", "completed", "failed", "timeout", "cancelled"]
DEFAULT_LIMIT = 20
MAX_LIMIT = 100


class _Camel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


# ------------------------------------------------------------------------------------------ models


class ExecuteWorkflowRequest(_Camel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    input: dict[str, Any] = Field(default_factory=dict, description="checked against the input_schema")
    run_async: bool = Field(
        default=False, alias="async", description="true: answer 202 at once; false: wait for the end"
    )
    metadata: dict[str, Any] = Field(
        default_factory=dict, description="kept with the execution, e.g. {requestedBy}"
    )
    version: str | None = Field(default=None, description="a registered version; default: the latest")
    timeout: Any = duration_field("seconds or '30s'; the shorter of it and the definition's timeout wins")


class WorkflowExecutionStep(_Camel):
    step_id: str
    name: str
    type: str
    state: str = Field(description="pending, running, waiting, completed, failed, skipped or cancelled")
    parent: str | None = Field(default=None, description="the condition or parallel step it is nested in")
    attempts: int = 0
    duration: int | None = Field(default=None, description="milliseconds")
    started_at: str | None = None
    completed_at: str | None = None
    output: Any = None
    error: str | None = None


class WaitingStep(_Camel):
    step_id: str
    kind: Literal["approval", "signal"]
    prompt: str | None = None
    since: str | None = None
    approvers: list[str] | None = None
    signal: str | None = None


class WorkflowExecution(_Camel):
    id: str
    workflow_id: str
    workflow_version: str | None = None
    state: State
    input: dict[str, Any]
    output: Any = None
    error: str | None = None
    steps: list[WorkflowExecutionStep]
    started_at: str | None = None
    completed_at: str | None = None
    duration: int | None = Field(default=None, description="milliseconds, once finished")
    metadata: dict[str, Any] = Field(default_factory=dict)
    waiting_for: list[WaitingStep] = Field(
        default_factory=list, description="approval and signal steps waiting now (state waiting)"
    )


class WorkflowExecutionSummary(_Camel):
    id: str
    workflow_id: str
    workflow_version: str | None = None
    state: State
    started_at: str | None = None
    completed_at: str | None = None
    duration: int | None = None
    error: str | None = None


class WorkflowExecutionList(_Camel):
    data: list[WorkflowExecutionSummary]
    total: int
    limit: int
    offset: int


class WorkflowStep(_Camel):
    id: str
    name: str
    type: str
    depends_on: list[str] = Field(default_factory=list)
    parent: str | None = None


class WorkflowSummary(_Camel):
    id: str
    name: str
    description: str | None = None
    version: str
    steps: list[WorkflowStep]


class WorkflowList(_Camel):
    data: list[WorkflowSummary]


class WorkflowDetail(WorkflowSummary):
    input_schema: dict[str, Any] | None = None
    registered_at: str | None = None
    definition: dict[str, Any] = Field(description="the definition as registered; PUT accepts it back")


def _doc(schema: dict[str, Any], description: str) -> Any:
    """A documented field the registry validates, not pydantic: every problem of a definition is then
    one INVALID_WORKFLOW answer with paths into the document, whatever its kind."""
    return Field(default=None, description=description, json_schema_extra=schema)


class WorkflowDefinition(BaseModel):
    """An EAI workflow definition (see :mod:`orchestrator.core.workflow_documents` for the format)."""

    # Unknown fields reach the validator, which names them; the document shows what it accepts.
    model_config = ConfigDict(extra="allow", json_schema_extra=replace_with(eai_definition_schema()))

    id: Any = _doc({"type": "string"}, "defaults to the workflowId of the URL, must match it if given")
    name: Any = _doc({"type": "string"}, "display name")
    description: Any = _doc({"type": "string"}, "what the workflow is for")
    version: Any = _doc({"type": "string", "examples": ["1.0.0"]}, "semantic version, required")
    input_schema: Any = _doc({"type": "object"}, "JSON Schema the execution input must satisfy")
    timeout: Any = _doc({"type": ["number", "string"]}, "seconds or '5m'")
    retry: Any = _doc({"type": "object"}, "default retry policy of the steps")
    output: Any = _doc({"type": "object"}, "output templates, e.g. {analysis: '{{ steps.x.output }}'}")
    steps: Any = _doc(
        {"type": "array", "items": {"type": "object"}},
        "steps with id, name, type and the type's fields (resource_query, ai_chat and the engine's types)",
    )


# ------------------------------------------------------------------------------------------ routes

_EXECUTION_LINKS = execution_links("/api/eai/v3/orchestrate", "executionId", "$response.body#/id")


def _store(request: Request) -> EventStore:
    return cast(EventStore, service_of(request, "store"))


def _namespace(principal: Principal, x_tenant_id: str | None) -> str | None:
    """The tenant whose workflows (its own, then the shared ones) a request sees; None: shared only, as
    with auth off, where every workflow is shared."""
    return None if principal.open else acting_tenant(principal, None, x_tenant_id)


async def _workflow(
    store: EventStore, workflow_id: str, version: str | None, tenant_id: str | None
) -> WorkflowRecord:
    record = await asyncio.to_thread(store.get_workflow, workflow_id, version, tenant_id=tenant_id)
    if record is None:
        message = f"workflow {workflow_id!r} is not registered"
        if (
            version is not None
            and await asyncio.to_thread(store.get_workflow, workflow_id, tenant_id=tenant_id) is not None
        ):
            message = f"workflow {workflow_id!r} has no version {version!r}"
        raise NotFound(message, code="WORKFLOW_NOT_FOUND")
    return record


@router.get("/workflows", response_model=WorkflowList, summary="Registered workflows, latest versions")
async def list_workflows(
    request: Request,
    x_tenant_id: str | None = Header(default=None),
    principal: Principal = Depends(authenticate),
) -> dict[str, Any]:
    namespace = _namespace(principal, x_tenant_id)
    records = await asyncio.to_thread(_store(request).list_workflows, tenant_id=namespace)
    return {"data": [workflow_summary(record) for record in records]}


@router.get(
    "/workflows/{workflowId}",
    response_model=WorkflowDetail,
    responses={404: {}},
    summary="A registered workflow: the latest version, or ?version=",
)
async def get_workflow(
    request: Request,
    workflow_id: str = Path(alias="workflowId"),
    version: str | None = Query(default=None, description="a registered version; default: the latest"),
    x_tenant_id: str | None = Header(default=None),
    principal: Principal = Depends(authenticate),
) -> dict[str, Any]:
    namespace = _namespace(principal, x_tenant_id)
    return workflow_detail(await _workflow(_store(request), workflow_id, version, namespace))


@router.put(
    "/workflows/{workflowId}",
    status_code=201,
    response_model=WorkflowDetail,
    responses={200: {"model": WorkflowDetail}, 400: {}, 409: {}},
    summary="Register a workflow version (201; 200 if the identical version is registered already)",
)
async def register_workflow(
    body: WorkflowDefinition,
    request: Request,
    workflow_id: str = Path(alias="workflowId"),
    x_tenant_id: str | None = Header(default=None),
    principal: Principal = Depends(authenticate),
) -> JSONResponse:
    store = _store(request)
    # A member registers in its tenant's namespace (naming another tenant is 403); only an admin (or an
    # open server) registers or replaces what every tenant shares, unless it names a tenant.
    namespace: str | None = None
    if not principal.open and (not principal.is_admin or x_tenant_id):
        namespace = acting_tenant(principal, None, x_tenant_id)
    definition = parse_definition(
        body.model_dump(exclude_unset=True),
        workflow_id=workflow_id,
        limits=engine_of(request).settings.limits,
    )
    created = await asyncio.to_thread(register, store, definition, tenant_id=namespace)
    record = await _workflow(store, definition.id, definition.version, namespace)
    view = WorkflowDetail.model_validate(workflow_detail(record)).model_dump(mode="json", by_alias=True)
    return JSONResponse(view, status_code=201 if created else 200)


@router.post(
    "/workflows/{workflowId}/execute",
    response_model=WorkflowExecution,
    responses={
        200: {"links": _EXECUTION_LINKS},
        202: {"model": WorkflowExecution, "links": _EXECUTION_LINKS},
        400: {},
        404: {},
        504: {},
    },
    summary="Execute a registered workflow (sync 200, or async 202)",
)
async def execute_workflow(
    request: Request,
    body: ExecuteWorkflowRequest | None = None,
    workflow_id: str = Path(alias="workflowId"),
    x_tenant_id: str | None = Header(default=None),
    idempotency_key: str | None = Header(default=None),
    principal: Principal = Depends(authenticate),
) -> JSONResponse:
    tenant_id = acting_tenant(principal, None, x_tenant_id)
    hashed = request_hash(request, body) if idempotency_key else None
    body = body or ExecuteWorkflowRequest()
    timeout = parse_timeout(body.timeout)
    namespace = None if principal.open else tenant_id
    record = await _workflow(_store(request), workflow_id, body.version, namespace)
    definition = parse_definition(record.definition, limits=engine_of(request).settings.limits)
    validate_input(definition.workflow, body.input)
    requested_by = body.metadata.get("requestedBy")
    state = await engine_of(request).start(
        definition.workflow,
        input=body.input,
        user={"id": str(requested_by)} if requested_by else {},
        tenant_id=tenant_id,
        wait=not body.run_async,
        timeout=timeout,
        dialect="eai",
        workflow_id=definition.id,
        workflow_version=definition.version,
        metadata=body.metadata,
        idempotency_key=idempotency_key,
        key_id=principal.key_id,
        request_hash=hashed,
    )
    view = WorkflowExecution.model_validate(eai_execution(state)).model_dump(mode="json", by_alias=True)
    if state.status == "timeout" and not body.run_async:
        raise ExecutionTimeout(
            state.error or "workflow exceeded its timeout",
            details={"execution_id": state.execution_id, "execution": view},
        )
    return JSONResponse(view, status_code=200 if state.terminal and not body.run_async else 202)


@router.get(
    "/executions",
    response_model=WorkflowExecutionList,
    responses={400: {}},
    summary="Executions of both dialects, newest first",
)
async def list_executions(
    request: Request,
    workflow_id: str | None = Query(default=None, alias="workflowId"),
    state: State | None = Query(default=None),
    limit: int = Query(default=DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description="1 to 100"),
    offset: int = Query(default=0, ge=0, le=MAX_OFFSET),
    x_tenant_id: str | None = Header(default=None),
    principal: Principal = Depends(authenticate),
) -> dict[str, Any]:
    tenant_id = None if principal.open else acting_tenant(principal, None, x_tenant_id)
    page = await asyncio.to_thread(
        engine_of(request).list,
        tenant_id=tenant_id,
        workflow_name=workflow_id,
        status=state,
        limit=limit,
        offset=offset,
    )
    return {
        "data": [eai_list_item(row) for row in page.rows],
        "total": page.total,
        "limit": limit,
        "offset": offset,
    }


@router.get(
    "/executions/{executionId}",
    response_model=WorkflowExecution,
    responses={404: {}},
    summary="One execution, with its steps",
)
async def get_execution(
    request: Request,
    execution_id: str = Path(alias="executionId"),
    principal: Principal = Depends(authenticate),
) -> Any:
    state = await read_execution(engine_of(request), execution_id, principal)
    return await RENDERED.response(state, "eai", eai_execution, WorkflowExecution)


@router.post(
    "/executions/{executionId}/cancel",
    status_code=204,
    response_class=Response,
    responses={404: {}, 409: {}},
    summary="Cancel a running execution: its unfinished steps end cancelled",
)
async def cancel_execution(
    request: Request,
    execution_id: str = Path(alias="executionId"),
    principal: Principal = Depends(authenticate),
) -> Response:
    engine = engine_of(request)
    await require_visible(engine, execution_id, principal)
    await engine.cancel(execution_id, key_id=principal.key_id)
    return Response(status_code=204)


__all__ = ["router"]

"""People in the loop, in both dialects: decide an ``approval`` step, send a signal to a ``signal`` step.

v1 (``/api/v1/workflows``)
    POST /executions/{execution_id}/approvals/{step}   {approved, comment?, user} -> 200, the execution
    POST /executions/{execution_id}/signals/{name}     {payload, user} -> 202, the execution
EAI (``/api/eai/v3/orchestrate``)
    POST /executions/{executionId}/approvals/{stepId}  the same bodies, camelCase answers
    POST /executions/{executionId}/signals/{name}

The decision or the signal is recorded by the execution's owner (``approval.decided``,
``signal.received``, with who sent it: the API key and the request's user) before the answer goes out;
the checks and their codes are :mod:`orchestrator.core.signals`' (``STEP_NOT_FOUND``,
``NOT_AN_APPROVAL_STEP``, ``STEP_NOT_WAITING``, ``APPROVER_NOT_ALLOWED``, ``SIGNAL_NOT_FOUND``,
``SIGNAL_NOT_AWAITED``, ``INVALID_SIGNAL``, ``EXECUTION_ALREADY_FINISHED``). ``user`` is required in both
dialects: an approval names who decided, and ``approvers`` are matched against its ``id`` and ``role``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from orchestrator.core.state import ExecutionState
from orchestrator.server.api.deps import authenticate, engine_of, require_visible
from orchestrator.server.api.eai import WorkflowExecution
from orchestrator.server.api.render import v1_execution
from orchestrator.server.api.render_eai import eai_execution
from orchestrator.server.api.schemas import USER_SCHEMA, require
from orchestrator.server.api.v1 import ExecutionView, require_user
from orchestrator.server.auth import Principal

__all__ = ["eai_router", "v1_router"]

MAX_COMMENT_CHARS = 10_000

v1_router = APIRouter(prefix="/api/v1/workflows", tags=["workflows"], dependencies=[Depends(authenticate)])
eai_router = APIRouter(
    prefix="/api/eai/v3/orchestrate", tags=["orchestrate"], dependencies=[Depends(authenticate)]
)


class ApprovalRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra=require("user"))

    approved: bool = Field(strict=True, description="true approves; false rejects")
    comment: str | None = Field(default=None, max_length=MAX_COMMENT_CHARS, description="why")
    user: Any = Field(
        default=None, description="who decides: {id, role?, email?}", json_schema_extra=USER_SCHEMA
    )


class SignalRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra=require("user"))

    payload: Any = Field(default=None, description="any JSON; checked against the step's schema, if any")
    user: Any = Field(default=None, description="who sends it: {id, ...}", json_schema_extra=USER_SCHEMA)


_APPROVAL_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "MISSING_USER_CONTEXT, INVALID_REQUEST"},
    403: {"description": "APPROVER_NOT_ALLOWED: the step names its approvers and the user is none"},
    404: {"description": "EXECUTION_NOT_FOUND, STEP_NOT_FOUND"},
    409: {"description": "EXECUTION_ALREADY_FINISHED, NOT_AN_APPROVAL_STEP, STEP_NOT_WAITING"},
}
_SIGNAL_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "INVALID_SIGNAL (the payload fails the step's schema), MISSING_USER_CONTEXT"},
    404: {"description": "EXECUTION_NOT_FOUND, SIGNAL_NOT_FOUND"},
    409: {"description": "EXECUTION_ALREADY_FINISHED, SIGNAL_NOT_AWAITED"},
}


async def _approve(
    request: Request, execution_id: str, step: str, body: ApprovalRequest, principal: Principal
) -> ExecutionState:
    engine = engine_of(request)
    await require_visible(engine, execution_id, principal)
    user = require_user(body.user)
    return await engine.approve(
        execution_id, step, body.approved, body.comment, key_id=principal.key_id, user=user
    )


async def _signal(
    request: Request, execution_id: str, name: str, body: SignalRequest, principal: Principal
) -> ExecutionState:
    engine = engine_of(request)
    await require_visible(engine, execution_id, principal)
    user = require_user(body.user)
    return await engine.signal(execution_id, name, body.payload, key_id=principal.key_id, user=user)


# ------------------------------------------------------------------------------------------------ v1


@v1_router.post(
    "/executions/{execution_id}/approvals/{step}",
    response_model=ExecutionView,
    responses=_APPROVAL_ERRORS,
    summary="Approve or reject an approval step that is waiting",
)
async def approve_v1(
    execution_id: str,
    step: str,
    body: ApprovalRequest,
    request: Request,
    principal: Principal = Depends(authenticate),
) -> dict[str, Any]:
    return v1_execution(await _approve(request, execution_id, step, body, principal))


@v1_router.post(
    "/executions/{execution_id}/signals/{name}",
    status_code=202,
    response_model=ExecutionView,
    responses=_SIGNAL_ERRORS,
    summary="Send a signal: a signal step waiting for it completes; one not reached yet will take it",
)
async def signal_v1(
    execution_id: str,
    name: str,
    body: SignalRequest,
    request: Request,
    principal: Principal = Depends(authenticate),
) -> dict[str, Any]:
    return v1_execution(await _signal(request, execution_id, name, body, principal))


# ----------------------------------------------------------------------------------------------- EAI


@eai_router.post(
    "/executions/{executionId}/approvals/{stepId}",
    response_model=WorkflowExecution,
    responses=_APPROVAL_ERRORS,
    summary="Approve or reject an approval step that is waiting",
)
async def approve_eai(
    body: ApprovalRequest,
    request: Request,
    execution_id: str = Path(alias="executionId"),
    step_id: str = Path(alias="stepId"),
    principal: Principal = Depends(authenticate),
) -> dict[str, Any]:
    # rendered in camelCase by the response model, as GET of an execution is
    return eai_execution(await _approve(request, execution_id, step_id, body, principal))


@eai_router.post(
    "/executions/{executionId}/signals/{name}",
    status_code=202,
    response_model=WorkflowExecution,
    responses=_SIGNAL_ERRORS,
    summary="Send a signal to an execution",
)
async def signal_eai(
    body: SignalRequest,
    request: Request,
    execution_id: str = Path(alias="executionId"),
    name: str = Path(),
    principal: Principal = Depends(authenticate),
) -> dict[str, Any]:
    return eai_execution(await _signal(request, execution_id, name, body, principal))

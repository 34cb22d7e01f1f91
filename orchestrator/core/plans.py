"""Plans as event streams: what was planned, for whom, and what running it gave.

A plan is stored like an execution: an append-only stream in the event store, with the plan id as the
stream id and no projection row (plans are read one at a time, by id). Its events are frozen, typed models
discriminated by ``type`` and decoded through one ``TypeAdapter``; the GET view is a pure fold over them.

    plan.created            the plan as the planner gave it, with the request it answered; a plan not run
                            at once (``execute: false``) carries the time it expires (``ORCH_PLAN_TTL``)
    plan.revised            a reviewer replaced its steps: the new version (1 is the planner's)
    plan.execution_started  the workflow execution running it (recorded before waiting for it, so a plan
                            whose requester went away still leads to its execution), and which version
    plan.executed           the execution's outcome when the request saw it finish: status, result, error,
                            response metadata (timings per task)
    plan.cancelled          a reviewer dropped it: it never runs
    plan.expired            it was not executed before its expiry (recorded when it is next acted on)

A plan is ``pending`` until one of execution_started, cancelled or expired; only a pending plan can be
revised, executed or cancelled (:func:`plan_problem`). Every write appends at the next sequence number, so
two reviewers acting on one version race on the store's unique ``(stream, seq)``: one wins, the other is
told ``VERSION_CONFLICT`` (optimistic concurrency, no locks).

The execution's *current* status always comes from the execution itself; ``plan.executed`` records what the
caller was told.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from orchestrator.core.errors import Conflict, OrchestratorError, RequestError
from orchestrator.core.events import SCHEMA_VERSION, EventRecord
from orchestrator.core.timestamps import format_timestamp

__all__ = [
    "PLAN_EVENT_ADAPTER",
    "PLAN_EVENT_TYPES",
    "PlanCancelled",
    "PlanCreated",
    "PlanEvent",
    "PlanExecuted",
    "PlanExecutionStarted",
    "PlanExpired",
    "PlanRevised",
    "PlanState",
    "fold_plan",
    "from_record",
    "plan_problem",
    "plan_status",
    "plan_versions",
    "plan_view",
    "public_steps",
    "to_record",
]

PUBLIC_STEP_FIELDS = ("id", "name", "type", "description", "depends_on", "agent", "capability", "parameters")


class _PlanEvent(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    seq: int
    timestamp: datetime


class PlanCreated(_PlanEvent):
    type: Literal["plan.created"] = "plan.created"
    query: str
    domain: str | None = None
    requested_domain: str | None = None
    execution_mode: str = "auto"
    user: dict[str, Any] = Field(default_factory=dict)
    tenant_id: str = "default"
    context: dict[str, Any] = Field(default_factory=dict)
    planner: str
    steps: list[dict[str, Any]]
    warnings: list[str] = Field(default_factory=list)
    # The workflow the plan compiles to: its name and the plan step id -> workflow step name mapping.
    workflow_name: str | None = None
    step_names: dict[str, str] = Field(default_factory=dict)
    planning_time_ms: float | None = None
    # A plan stored for review (``execute: false``) may be executed until then; None: no expiry.
    expires_at: datetime | None = None
    # Who asked for it: ``{"key_id", "user"}``. None in plans stored before reviews existed.
    created_by: dict[str, Any] | None = None


class PlanRevised(_PlanEvent):
    type: Literal["plan.revised"] = "plan.revised"
    version: int  # the new version: 2 for the first revision
    steps: list[dict[str, Any]]
    workflow_name: str | None = None
    step_names: dict[str, str] = Field(default_factory=dict)
    revised_by: dict[str, Any] | None = None


class PlanExecutionStarted(_PlanEvent):
    type: Literal["plan.execution_started"] = "plan.execution_started"
    workflow_execution_id: str
    workflow_name: str
    execution_mode: str
    version: int | None = None  # None in plans stored before reviews existed: version 1
    started_by: dict[str, Any] | None = None
    # ``execution_mode: confirm``: the approval step the execution waits on before its first step
    approval_step: str | None = None


class PlanExecuted(_PlanEvent):
    type: Literal["plan.executed"] = "plan.executed"
    workflow_execution_id: str
    status: str
    result: Any = None
    error: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class PlanCancelled(_PlanEvent):
    type: Literal["plan.cancelled"] = "plan.cancelled"
    reason: str = ""
    cancelled_by: dict[str, Any] | None = None


class PlanExpired(_PlanEvent):
    type: Literal["plan.expired"] = "plan.expired"


PlanEvent = Annotated[
    PlanCreated | PlanRevised | PlanExecutionStarted | PlanExecuted | PlanCancelled | PlanExpired,
    Field(discriminator="type"),
]
PLAN_EVENT_ADAPTER: TypeAdapter[PlanEvent] = TypeAdapter(PlanEvent)
PLAN_EVENT_TYPES: tuple[str, ...] = (
    "plan.created",
    "plan.revised",
    "plan.execution_started",
    "plan.executed",
    "plan.cancelled",
    "plan.expired",
)


def to_record(plan_id: str, event: PlanEvent) -> EventRecord:
    return EventRecord(
        execution_id=plan_id,
        seq=event.seq,
        type=event.type,
        version=SCHEMA_VERSION,
        payload=event.model_dump(mode="json", exclude={"seq", "type", "timestamp"}),
        recorded_at=event.timestamp,
    )


def from_record(record: EventRecord) -> PlanEvent:
    return PLAN_EVENT_ADAPTER.validate_python(
        {**record.payload, "seq": record.seq, "type": record.type, "timestamp": record.recorded_at}
    )


@dataclass
class PlanState:
    plan_id: str
    created: PlanCreated
    workflow_execution_id: str | None = None
    execution_mode: str | None = None  # how the steps ran: parallel or sequential
    outcome: PlanExecuted | None = None
    last_seq: int = 1
    version: int = 1
    # the current version's steps and compiled names (the planner's, or the last revision's)
    steps: list[dict[str, Any]] = field(default_factory=list)
    step_names: dict[str, str] = field(default_factory=dict)
    workflow_name: str | None = None
    revisions: list[PlanRevised] = field(default_factory=list)
    started: PlanExecutionStarted | None = None
    cancelled: PlanCancelled | None = None
    expired_at: datetime | None = None  # when plan.expired was recorded


def fold_plan(plan_id: str, records: Iterable[EventRecord]) -> PlanState | None:
    """The plan's state, or None when the stream is empty or is not a plan (an execution id, say): a
    stream that does not start with ``plan.created`` is some other kind of stream."""
    state: PlanState | None = None
    for record in records:
        if record.type not in PLAN_EVENT_TYPES:
            return None
        try:
            event = from_record(record)
        except ValidationError:
            return None
        if state is None:
            if not isinstance(event, PlanCreated):
                return None
            state = PlanState(
                plan_id=plan_id,
                created=event,
                last_seq=event.seq,
                steps=event.steps,
                step_names=event.step_names,
                workflow_name=event.workflow_name,
            )
            continue
        if isinstance(event, PlanRevised):
            state.version = event.version
            state.steps = event.steps
            state.step_names = event.step_names
            state.workflow_name = event.workflow_name
            state.revisions.append(event)
        elif isinstance(event, PlanExecutionStarted):
            state.started = event
            state.workflow_execution_id = event.workflow_execution_id
            state.execution_mode = event.execution_mode
        elif isinstance(event, PlanCancelled):
            state.cancelled = event
        elif isinstance(event, PlanExpired):
            state.expired_at = event.timestamp
        elif isinstance(event, PlanExecuted):
            state.workflow_execution_id = event.workflow_execution_id
            state.outcome = event
        state.last_seq = event.seq
    return state


def plan_status(state: PlanState, now: datetime | None = None) -> str:
    """The plan's own lifecycle: ``pending`` (reviewable), ``executed`` (an execution was started: its
    status is the execution's), ``cancelled`` or ``expired`` (recorded, or past ``expires_at`` at ``now``)."""
    if state.workflow_execution_id is not None:
        return "executed"
    if state.cancelled is not None:
        return "cancelled"
    expires_at = state.created.expires_at
    if state.expired_at is not None or (now is not None and expires_at is not None and now >= expires_at):
        return "expired"
    return "pending"


def plan_problem(state: PlanState, now: datetime) -> OrchestratorError | None:
    """Why the plan cannot be revised, executed or cancelled at ``now``, or None when it is pending."""
    status = plan_status(state, now)
    if status == "executed":
        return Conflict(
            f"plan {state.plan_id!r} was executed already: see execution {state.workflow_execution_id!r}",
            code="PLAN_ALREADY_EXECUTED",
            details={"plan_id": state.plan_id, "workflow_execution_id": state.workflow_execution_id},
        )
    if status == "cancelled":
        return Conflict(
            f"plan {state.plan_id!r} was cancelled; ask for a new plan",
            code="PLAN_CANCELLED",
            details={"plan_id": state.plan_id},
        )
    if status == "expired":
        expires_at = state.created.expires_at
        return RequestError(
            f"plan {state.plan_id!r} expired"
            + (f" at {format_timestamp(expires_at)}" if expires_at else "")
            + " without being executed; ask for a new plan",
            code="PLAN_EXPIRED",
            status=410,
            details={"plan_id": state.plan_id},
        )
    return None


def plan_versions(state: PlanState) -> list[dict[str, Any]]:
    """Every version of the plan's steps, oldest first: the planner's (1), then each revision."""
    created = state.created
    versions = [
        {
            "version": 1,
            "event": "plan.created",
            "at": format_timestamp(created.timestamp),
            "by": created.created_by or {"key_id": None, "user": created.user},
            "steps": public_steps(created.steps),
        }
    ]
    for revision in state.revisions:
        versions.append(
            {
                "version": revision.version,
                "event": "plan.revised",
                "at": format_timestamp(revision.timestamp),
                "by": revision.revised_by,
                "steps": public_steps(revision.steps),
            }
        )
    return versions


def public_steps(steps: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """A plan's steps as the API shows them (the seed's fields plus the capability each one calls)."""
    return [{key: step.get(key) for key in PUBLIC_STEP_FIELDS} for step in steps]


def plan_view(
    state: PlanState,
    *,
    execution_status: str | None = None,
    execution_result: Any = None,
    execution_error: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """``GET /api/v1/plans/{plan_id}``: the stored plan with its execution's current status.

    ``execution_*`` are read from the execution now (None when it was never started or is gone); the
    recorded outcome fills in whatever the live execution cannot say. A plan never executed shows its
    lifecycle status (``pending``, ``cancelled``, ``expired`` at ``now``).
    """
    created = state.created
    outcome = state.outcome
    status = execution_status or (outcome.status if outcome else None)
    if status is None:
        status = plan_status(state, now) if state.workflow_execution_id is None else "unknown"
    result = execution_result if execution_result is not None else (outcome.result if outcome else None)
    error = execution_error if execution_error is not None else (outcome.error if outcome else None)
    return {
        "plan_id": state.plan_id,
        "query": created.query,
        "domain": created.domain,
        "execution_mode": created.execution_mode,
        "planner": created.planner,
        "created_at": format_timestamp(created.timestamp),
        "tenant_id": created.tenant_id,
        "context": created.context,
        "steps": public_steps(state.steps),
        "warnings": created.warnings,
        "workflow_name": state.workflow_name,
        "workflow_execution_id": state.workflow_execution_id,
        "status": status,
        "result": result,
        "error": error,
        "metadata": dict(outcome.metadata) if outcome else {},
        "version": state.version,
        "expires_at": format_timestamp(created.expires_at) if created.expires_at else None,
        "approval_step": state.started.approval_step if state.started else None,
    }

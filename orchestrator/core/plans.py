"""Plans as event streams: what was planned, for whom, and what running it gave.

A plan is stored like an execution: an append-only stream in the event store, with the plan id as the
stream id and no projection row (plans are read one at a time, by id). Its events are frozen, typed models
discriminated by ``type`` and decoded through one ``TypeAdapter``; the GET view is a pure fold over them.

    plan.created            the plan as the planner gave it, with the request it answered
    plan.execution_started  the workflow execution running it (recorded before waiting for it, so a plan
                            whose requester went away still leads to its execution)
    plan.executed           the execution's outcome when the request saw it finish: status, result, error,
                            response metadata (timings per task)

The execution's *current* status always comes from the execution itself; ``plan.executed`` records what the
caller was told.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from orchestrator.core.events import SCHEMA_VERSION, EventRecord
from orchestrator.core.timestamps import format_timestamp

__all__ = [
    "PLAN_EVENT_ADAPTER",
    "PLAN_EVENT_TYPES",
    "PlanCreated",
    "PlanEvent",
    "PlanExecuted",
    "PlanExecutionStarted",
    "PlanState",
    "fold_plan",
    "from_record",
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


class PlanExecutionStarted(_PlanEvent):
    type: Literal["plan.execution_started"] = "plan.execution_started"
    workflow_execution_id: str
    workflow_name: str
    execution_mode: str


class PlanExecuted(_PlanEvent):
    type: Literal["plan.executed"] = "plan.executed"
    workflow_execution_id: str
    status: str
    result: Any = None
    error: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


PlanEvent = Annotated[PlanCreated | PlanExecutionStarted | PlanExecuted, Field(discriminator="type")]
PLAN_EVENT_ADAPTER: TypeAdapter[PlanEvent] = TypeAdapter(PlanEvent)
PLAN_EVENT_TYPES: tuple[str, ...] = ("plan.created", "plan.execution_started", "plan.executed")


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
            state = PlanState(plan_id=plan_id, created=event, last_seq=event.seq)
            continue
        if isinstance(event, PlanExecutionStarted):
            state.workflow_execution_id = event.workflow_execution_id
            state.execution_mode = event.execution_mode
        elif isinstance(event, PlanExecuted):
            state.workflow_execution_id = event.workflow_execution_id
            state.outcome = event
        state.last_seq = event.seq
    return state


def public_steps(steps: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """A plan's steps as the API shows them (the seed's fields plus the capability each one calls)."""
    return [{key: step.get(key) for key in PUBLIC_STEP_FIELDS} for step in steps]


def plan_view(
    state: PlanState,
    *,
    execution_status: str | None = None,
    execution_result: Any = None,
    execution_error: str | None = None,
) -> dict[str, Any]:
    """``GET /api/v1/plans/{plan_id}``: the stored plan with its execution's current status.

    ``execution_*`` are read from the execution now (None when it was never started or is gone); the
    recorded outcome fills in whatever the live execution cannot say.
    """
    created = state.created
    outcome = state.outcome
    status = execution_status or (outcome.status if outcome else None)
    if status is None:
        status = "planned" if state.workflow_execution_id is None else "unknown"
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
        "steps": public_steps(created.steps),
        "warnings": created.warnings,
        "workflow_name": created.workflow_name,
        "workflow_execution_id": state.workflow_execution_id,
        "status": status,
        "result": result,
        "error": error,
        "metadata": dict(outcome.metadata) if outcome else {},
    }

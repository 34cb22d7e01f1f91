"""Execution events: the append-only log every execution is folded from.

Each event is a frozen, typed model discriminated by ``type``. Its public JSON is
``{seq, type, timestamp, step, data}``; in storage it is one :class:`EventRecord` row. Exactly one
mapper (:func:`to_record` / :func:`from_record`) converts between the two, and upgrades old payload
versions on the way in, so old logs replay forever.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from orchestrator.core.timestamps import format_timestamp

SCHEMA_VERSION = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class EventRecord:
    """The storage envelope, independent of domain types.

    A plain dataclass, not a model: every event becomes one on its way to the store, the live feeds keep
    them for a while and reads build thousands of them, and a validated pydantic model cost twice the
    time and 1.1 KB more per record (its field set and a copy of the payload). Records the server builds
    are well-typed by construction; records from outside (an imported export) go through
    :data:`RECORD_ADAPTER`."""

    execution_id: str
    seq: int
    type: str
    version: int = SCHEMA_VERSION
    step: str | None = None
    payload: dict[str, Any] = field(default_factory=dict)
    recorded_at: datetime


# Validates (and JSON-encodes) records that come from outside the server.
RECORD_ADAPTER: TypeAdapter[EventRecord] = TypeAdapter(EventRecord)


class _Event(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    seq: int
    timestamp: datetime

    def data(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude={"seq", "type", "timestamp", "step"})

    def public(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "type": self.type,  # type: ignore[attr-defined]
            "timestamp": format_timestamp(self.timestamp, timespec="auto"),
            "step": getattr(self, "step", None),
            "data": self.data(),
        }


class _StepEvent(_Event):
    step: str


class ExecutionStarted(_Event):
    type: Literal["execution.started"] = "execution.started"
    workflow: dict[str, Any]  # the validated definition, so a log is self-contained
    input: dict[str, Any] = Field(default_factory=dict)
    user: dict[str, Any] = Field(default_factory=dict)
    tenant_id: str = "default"
    workflow_id: str | None = None
    workflow_version: str | None = None
    dialect: str = "v1"
    metadata: dict[str, Any] = Field(default_factory=dict)
    placement: str = "pooled"
    idempotency_key: str | None = None
    # The request's fingerprint (a hash of its body, computed by the route): a resubmission with the
    # same idempotency key and another fingerprint is refused rather than answered with this execution.
    request_hash: str | None = None
    # Who started it: ``{"key_id", "user"}`` (``key_id`` None when auth is off). None in logs written
    # before API keys existed.
    started_by: dict[str, Any] | None = None

    def data(self) -> dict[str, Any]:
        # the definition is JSON already (WorkflowDef.document): shared, not dumped again per execution
        rest = self.model_dump(mode="json", exclude={"seq", "type", "timestamp", "workflow"})
        return {"workflow": self.workflow, **rest}


class StepStarted(_StepEvent):
    type: Literal["step.started"] = "step.started"
    attempt: int = 1
    idempotency_key: str | None = None
    request: dict[str, Any] | None = None  # the rendered call (parameters, prompt...) for audit and replay


class StepCompleted(_StepEvent):
    type: Literal["step.completed"] = "step.completed"
    attempt: int = 1
    output: Any = None


class StepFailed(_StepEvent):
    type: Literal["step.failed"] = "step.failed"
    attempt: int = 1
    error: str
    code: str = "STEP_FAILED"


class StepRetrying(_StepEvent):
    type: Literal["step.retrying"] = "step.retrying"
    attempt: int  # the attempt that failed
    error: str
    code: str = "STEP_FAILED"
    next_attempt_at: datetime


class StepSkipped(_StepEvent):
    type: Literal["step.skipped"] = "step.skipped"
    reason: str = ""


class TimerScheduled(_Event):
    type: Literal["timer.scheduled"] = "timer.scheduled"
    step: str | None = None
    timer_id: str
    kind: Literal["wait", "step_timeout", "execution_timeout", "retry"]
    fire_at: datetime


class TimerFired(_Event):
    type: Literal["timer.fired"] = "timer.fired"
    step: str | None = None
    timer_id: str


class SignalReceived(_Event):
    """A signal sent to the execution, recorded as it arrives: consumed at once by a ``signal`` step
    waiting for its name, else kept (folded into ``ExecutionState.signals``) until one starts."""

    type: Literal["signal.received"] = "signal.received"
    name: str
    payload: Any = None
    # Who sent it: ``{"key_id", "user"}`` (``key_id`` None when auth is off).
    sent_by: dict[str, Any] | None = None


class ApprovalDecided(_StepEvent):
    """A person's decision on an ``approval`` step: who, when (the timestamp) and what."""

    type: Literal["approval.decided"] = "approval.decided"
    approved: bool
    comment: str | None = None
    # Who decided: ``{"key_id", "user"}`` (``key_id`` None when auth is off).
    decided_by: dict[str, Any] | None = None


class ExecutionCancelRequested(_Event):
    type: Literal["execution.cancel_requested"] = "execution.cancel_requested"
    reason: str = ""
    # Who asked: ``{"key_id", "user"}``. None in logs written before API keys existed, and for
    # cancellations nobody asked for through the API.
    requested_by: dict[str, Any] | None = None


class ExecutionCancelled(_Event):
    type: Literal["execution.cancelled"] = "execution.cancelled"
    reason: str = ""


class ExecutionTimedOut(_Event):
    type: Literal["execution.timed_out"] = "execution.timed_out"
    error: str


class ExecutionCompleted(_Event):
    type: Literal["execution.completed"] = "execution.completed"
    output: Any = None


class ExecutionFailed(_Event):
    type: Literal["execution.failed"] = "execution.failed"
    error: str
    step: str | None = None


Event = Annotated[
    ExecutionStarted
    | StepStarted
    | StepCompleted
    | StepFailed
    | StepRetrying
    | StepSkipped
    | TimerScheduled
    | TimerFired
    | ExecutionCancelRequested
    | ExecutionCancelled
    | ExecutionTimedOut
    | ExecutionCompleted
    | ExecutionFailed
    | SignalReceived
    | ApprovalDecided,
    Field(discriminator="type"),
]

EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)
EVENT_TYPES: tuple[str, ...] = (
    "execution.started",
    "step.started",
    "step.completed",
    "step.failed",
    "step.retrying",
    "step.skipped",
    "timer.scheduled",
    "timer.fired",
    "execution.cancel_requested",
    "execution.cancelled",
    "execution.timed_out",
    "execution.completed",
    "execution.failed",
    "signal.received",
    "approval.decided",
)
TERMINAL_EVENT_TYPES = frozenset(
    {"execution.completed", "execution.failed", "execution.cancelled", "execution.timed_out"}
)


def to_record(execution_id: str, event: Event) -> EventRecord:
    return EventRecord(
        execution_id=execution_id,
        seq=event.seq,
        type=event.type,
        version=SCHEMA_VERSION,
        step=getattr(event, "step", None),
        payload=event.data(),
        recorded_at=event.timestamp,
    )


def from_record(record: EventRecord) -> Event:
    payload = _upgrade(record.type, record.version, dict(record.payload))
    if record.step is not None:
        payload["step"] = record.step
    return EVENT_ADAPTER.validate_python(
        {**payload, "seq": record.seq, "type": record.type, "timestamp": record.recorded_at}
    )


def _upgrade(event_type: str, version: int, payload: dict[str, Any]) -> dict[str, Any]:
    """Bring an old payload shape up to SCHEMA_VERSION. Version 1 is the first; nothing to do yet.

    Fields added since (``started_by``, ``request_hash``, ``requested_by``) are optional with a None
    default, so version-1 payloads written before them read unchanged; only a change of meaning or
    shape needs a new version and a step here."""
    del event_type, version
    return payload


# One encoder made once: json.dumps with options builds a new JSONEncoder per call, which is half the
# time of encoding a typical event payload.
COMPACT_JSON = json.JSONEncoder(separators=(",", ":"), default=str)


def payload_json(record: EventRecord) -> str:
    return COMPACT_JSON.encode(record.payload)

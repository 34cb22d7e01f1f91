"""Execution events: typed frozen models, the public shape, the storage mapper and the TypeAdapter."""

from __future__ import annotations

import dataclasses
import json
import typing
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from orchestrator.core import events as events_module
from orchestrator.core.events import (
    EVENT_ADAPTER,
    EVENT_TYPES,
    RECORD_ADAPTER,
    SCHEMA_VERSION,
    TERMINAL_EVENT_TYPES,
    ApprovalDecided,
    Event,
    EventRecord,
    ExecutionCancelled,
    ExecutionCancelRequested,
    ExecutionCompleted,
    ExecutionFailed,
    ExecutionStarted,
    ExecutionTimedOut,
    SignalReceived,
    StepCompleted,
    StepFailed,
    StepRetrying,
    StepSkipped,
    StepStarted,
    TimerFired,
    TimerScheduled,
    from_record,
    payload_json,
    to_record,
)

NOW = datetime(2025, 1, 2, 10, 0, tzinfo=UTC)
LATER = NOW + timedelta(seconds=5)
EXEC = "wf_exec_01TEST"

# The public event types of issue 2, plus ``step.retrying`` (recorded between attempts).
PUBLIC_TYPES = {
    "execution.started",
    "step.started",
    "step.completed",
    "step.failed",
    "step.skipped",
    "timer.scheduled",
    "timer.fired",
    "execution.cancel_requested",
    "execution.cancelled",
    "execution.timed_out",
    "execution.completed",
    "execution.failed",
}

SAMPLES: list[Event] = [
    ExecutionStarted(
        seq=1,
        timestamp=NOW,
        workflow={"name": "wf", "steps": [{"name": "a", "type": "transform", "value": 1}]},
        input={"budget": 5000},
        user={"id": 123},
        tenant_id="acme",
        workflow_id="wf-1",
        workflow_version="2",
        dialect="eai",
        metadata={"source": "test"},
        placement="dedicated",
        idempotency_key="req-1",
    ),
    StepStarted(
        seq=2,
        timestamp=NOW,
        step="a",
        attempt=2,
        idempotency_key=f"{EXEC}/a/2",
        request={"connector": "c", "parameters": {"x": [1, None, True]}},
    ),
    StepCompleted(seq=3, timestamp=NOW, step="a", attempt=2, output={"flights": [{"price": 850.5}]}),
    StepCompleted(seq=4, timestamp=NOW, step="b"),
    StepFailed(seq=5, timestamp=NOW, step="a", attempt=3, error="boom", code="STEP_TIMEOUT"),
    StepRetrying(seq=6, timestamp=NOW, step="a", attempt=1, error="flaky", code="X", next_attempt_at=LATER),
    StepSkipped(seq=7, timestamp=NOW, step="f", reason="branch 'if_true' of 'c' was taken"),
    TimerScheduled(seq=8, timestamp=NOW, step="w", timer_id="w/wait", kind="wait", fire_at=LATER),
    TimerScheduled(
        seq=9, timestamp=NOW, timer_id="execution/timeout", kind="execution_timeout", fire_at=LATER
    ),
    TimerFired(seq=10, timestamp=LATER, step="w", timer_id="w/wait"),
    TimerFired(seq=11, timestamp=LATER, timer_id="execution/timeout"),
    ExecutionCancelRequested(seq=12, timestamp=LATER, reason="user asked"),
    ExecutionCancelled(seq=13, timestamp=LATER, reason="user asked"),
    ExecutionTimedOut(seq=14, timestamp=LATER, error="Execution exceeded its timeout of 5s"),
    ExecutionCompleted(seq=15, timestamp=LATER, output={"final_result": "done"}),
    ExecutionCompleted(seq=16, timestamp=LATER, output=None),
    ExecutionFailed(seq=17, timestamp=LATER, error="Step 'a' failed: boom", step="a"),
    ExecutionFailed(seq=18, timestamp=LATER, error="Cannot render the workflow output"),
    SignalReceived(
        seq=19,
        timestamp=LATER,
        name="payment",
        payload={"ok": True},
        sent_by={"key_id": None, "user": {"id": 7}},
    ),
    ApprovalDecided(
        seq=20,
        timestamp=LATER,
        step="gate",
        approved=False,
        comment="too pricey",
        decided_by={"key_id": "k1"},
    ),
]


def sample_id(event: Event) -> str:
    return f"{event.seq}-{event.type}"


# -- the exported type list -----------------------------------------------------------------------


def test_event_types_are_pinned() -> None:
    assert EVENT_TYPES == (
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
    assert set(EVENT_TYPES) >= PUBLIC_TYPES
    assert len(set(EVENT_TYPES)) == len(EVENT_TYPES)


def test_event_types_match_the_union_members() -> None:
    union, _ = typing.get_args(Event)
    members = typing.get_args(union)
    assert tuple(member.model_fields["type"].default for member in members) == EVENT_TYPES
    assert {sample.type for sample in SAMPLES} == set(EVENT_TYPES)


def test_terminal_event_types() -> None:
    assert (
        frozenset({"execution.completed", "execution.failed", "execution.cancelled", "execution.timed_out"})
        == TERMINAL_EVENT_TYPES
    )
    assert set(EVENT_TYPES) >= TERMINAL_EVENT_TYPES


def test_every_event_class_is_exported_by_name() -> None:
    union, _ = typing.get_args(Event)
    for member in typing.get_args(union):
        assert getattr(events_module, member.__name__) is member


# -- the public shape -----------------------------------------------------------------------------


@pytest.mark.parametrize("event", SAMPLES, ids=sample_id)
def test_public_shape(event: Event) -> None:
    public = event.public()
    assert list(public) == ["seq", "type", "timestamp", "step", "data"]
    assert public["seq"] == event.seq
    assert public["type"] == event.type
    assert public["step"] == getattr(event, "step", None)
    assert isinstance(public["data"], dict)
    assert not {"seq", "type", "timestamp", "step"} & set(public["data"])
    assert json.loads(json.dumps(public)) == public  # plain JSON all the way down


def test_public_timestamp_is_iso_utc_with_z() -> None:
    assert SAMPLES[0].public()["timestamp"] == "2025-01-02T10:00:00Z"
    precise = StepSkipped(seq=1, timestamp=NOW.replace(microsecond=123456), step="s")
    assert precise.public()["timestamp"] == "2025-01-02T10:00:00.123456Z"
    offset = StepSkipped(
        seq=1, timestamp=datetime(2025, 1, 2, 12, 0, tzinfo=timezone(timedelta(hours=2))), step="s"
    )
    assert offset.public()["timestamp"] == "2025-01-02T12:00:00+02:00"
    # the same instant in UTC right after (spellings are cached by value: equal instants must not mix)
    same_instant = StepSkipped(seq=1, timestamp=offset.timestamp.astimezone(UTC), step="s")
    assert same_instant.timestamp == offset.timestamp
    assert same_instant.public()["timestamp"] == "2025-01-02T10:00:00Z"


def test_public_data_of_step_and_timer_events() -> None:
    assert SAMPLES[1].public() == {
        "seq": 2,
        "type": "step.started",
        "timestamp": "2025-01-02T10:00:00Z",
        "step": "a",
        "data": {
            "attempt": 2,
            "idempotency_key": f"{EXEC}/a/2",
            "request": {"connector": "c", "parameters": {"x": [1, None, True]}},
        },
    }
    assert SAMPLES[7].public()["data"] == {
        "timer_id": "w/wait",
        "kind": "wait",
        "fire_at": "2025-01-02T10:00:05Z",
    }
    assert SAMPLES[5].public()["data"]["next_attempt_at"] == "2025-01-02T10:00:05Z"
    assert SAMPLES[16].public()["step"] == "a"
    assert SAMPLES[16].public()["data"] == {"error": "Step 'a' failed: boom"}
    assert SAMPLES[17].public()["step"] is None


# -- the storage mapper ---------------------------------------------------------------------------


@pytest.mark.parametrize("event", SAMPLES, ids=sample_id)
def test_record_roundtrip(event: Event) -> None:
    record = to_record(EXEC, event)
    assert record.execution_id == EXEC
    assert (record.seq, record.type, record.version) == (event.seq, event.type, SCHEMA_VERSION)
    assert record.step == getattr(event, "step", None)
    assert record.recorded_at == event.timestamp
    assert record.payload == event.public()["data"]
    restored = from_record(record)
    assert type(restored) is type(event)
    assert restored == event


@pytest.mark.parametrize("event", SAMPLES, ids=sample_id)
def test_record_roundtrip_through_json(event: Event) -> None:
    row = RECORD_ADAPTER.dump_json(to_record(EXEC, event))
    restored = from_record(RECORD_ADAPTER.validate_json(row))
    assert restored == event
    assert restored.public() == event.public()


def test_from_record_does_not_touch_the_record() -> None:
    record = to_record(EXEC, SAMPLES[2])
    payload = dict(record.payload)
    from_record(record)
    from_record(record)
    assert record.payload == payload
    assert "step" not in record.payload


def test_from_record_upgrades_the_current_version_unchanged() -> None:
    record = EventRecord(
        execution_id=EXEC,
        seq=3,
        type="step.completed",
        version=1,
        step="a",
        payload={"attempt": 1, "output": [1, 2]},
        recorded_at=NOW,
    )
    assert from_record(record) == StepCompleted(seq=3, timestamp=NOW, step="a", attempt=1, output=[1, 2])


def test_from_record_rejects_unknown_types_and_bad_payloads() -> None:
    unknown = EventRecord(execution_id=EXEC, seq=1, type="step.exploded", recorded_at=NOW)
    with pytest.raises(ValidationError):
        from_record(unknown)
    missing = EventRecord(execution_id=EXEC, seq=1, type="step.failed", step="a", recorded_at=NOW)
    with pytest.raises(ValidationError):
        from_record(missing)  # no error message


def test_payload_json_is_compact() -> None:
    record = to_record(EXEC, SAMPLES[4])
    assert payload_json(record) == '{"attempt":3,"error":"boom","code":"STEP_TIMEOUT"}'
    assert json.loads(payload_json(to_record(EXEC, SAMPLES[0]))) == to_record(EXEC, SAMPLES[0]).payload


def test_record_is_frozen() -> None:
    record = to_record(EXEC, SAMPLES[2])
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.seq = 99  # type: ignore[misc]


def test_a_record_from_outside_is_validated() -> None:
    good = RECORD_ADAPTER.dump_json(to_record(EXEC, SAMPLES[2]))
    assert RECORD_ADAPTER.validate_json(good) == to_record(EXEC, SAMPLES[2])
    for bad in ({"payload": [1, 2]}, {"seq": "first"}, {"recorded_at": "yesterday"}, {"type": None}):
        row = {**json.loads(good), **bad}
        with pytest.raises(ValidationError):
            RECORD_ADAPTER.validate_python(row)


# -- the discriminated TypeAdapter ----------------------------------------------------------------


@pytest.mark.parametrize("event", SAMPLES, ids=sample_id)
def test_adapter_roundtrip(event: Event) -> None:
    assert EVENT_ADAPTER.validate_python(EVENT_ADAPTER.dump_python(event)) == event
    assert EVENT_ADAPTER.validate_json(EVENT_ADAPTER.dump_json(event)) == event


@pytest.mark.parametrize(
    ("raw", "cls"),
    [
        (
            {
                "type": "step.completed",
                "seq": 3,
                "timestamp": "2025-01-02T10:00:00Z",
                "step": "a",
                "output": 1,
            },
            StepCompleted,
        ),
        ({"type": "step.skipped", "seq": 4, "timestamp": NOW, "step": "b"}, StepSkipped),
        (
            {"type": "execution.cancelled", "seq": 5, "timestamp": "2025-01-02T10:00:00+00:00"},
            ExecutionCancelled,
        ),
        ({"type": "timer.fired", "seq": 6, "timestamp": NOW, "timer_id": "t"}, TimerFired),
    ],
)
def test_adapter_picks_the_class_by_type(raw: dict[str, Any], cls: type[Any]) -> None:
    event = EVENT_ADAPTER.validate_python(raw)
    assert type(event) is cls
    assert event.timestamp == NOW


@pytest.mark.parametrize(
    "raw",
    [
        {"type": "step.exploded", "seq": 1, "timestamp": NOW},
        {"seq": 1, "timestamp": NOW, "step": "a"},
        {"type": "step.failed", "seq": 1, "timestamp": NOW, "step": "a"},
        {"type": "step.completed", "seq": 1, "timestamp": NOW},
        {"type": "step.completed", "seq": 1, "timestamp": NOW, "step": "a", "surprise": True},
        {
            "type": "timer.scheduled",
            "seq": 1,
            "timestamp": NOW,
            "timer_id": "t",
            "kind": "nap",
            "fire_at": NOW,
        },
        {"type": "step.completed", "seq": "first", "timestamp": NOW, "step": "a"},
        {"type": "step.completed", "seq": 1, "timestamp": "yesterday", "step": "a"},
    ],
    ids=[
        "unknown-type",
        "no-type",
        "missing-field",
        "missing-step",
        "extra-field",
        "bad-literal",
        "bad-seq",
        "bad-ts",
    ],
)
def test_adapter_rejects_invalid_events(raw: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        EVENT_ADAPTER.validate_python(raw)


def test_adapter_rebuilds_an_event_from_its_public_shape() -> None:
    for event in SAMPLES:
        public = event.public()
        raw = {
            **public["data"],
            "seq": public["seq"],
            "type": public["type"],
            "timestamp": public["timestamp"],
        }
        if public["step"] is not None:
            raw["step"] = public["step"]
        assert EVENT_ADAPTER.validate_python(raw) == event


@pytest.mark.parametrize("event", SAMPLES[:3], ids=sample_id)
def test_events_are_frozen(event: Event) -> None:
    with pytest.raises(ValidationError):
        event.seq = 100  # type: ignore[misc]


def test_event_defaults() -> None:
    started = EVENT_ADAPTER.validate_python(
        {"type": "execution.started", "seq": 1, "timestamp": NOW, "workflow": {"name": "wf", "steps": []}}
    )
    assert isinstance(started, ExecutionStarted)
    assert (started.input, started.user, started.tenant_id, started.dialect, started.placement) == (
        {},
        {},
        "default",
        "v1",
        "pooled",
    )
    # Added with API keys, optional so that older logs read unchanged.
    assert (started.started_by, started.request_hash) == (None, None)
    requested = EVENT_ADAPTER.validate_python(
        {"type": "execution.cancel_requested", "seq": 2, "timestamp": NOW}
    )
    assert isinstance(requested, ExecutionCancelRequested) and requested.requested_by is None
    failed = StepFailed(seq=2, timestamp=NOW, step="a", error="x")
    assert (failed.attempt, failed.code) == (1, "STEP_FAILED")

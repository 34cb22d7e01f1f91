"""Scheduling decisions and replay: ``decide(state, trigger)`` and ``fold(events)``.

Pure unit tests: a fixed ``now``, no clock, no Ray, no I/O. Every decision made through :class:`Run` is
also checked for contiguous sequence numbers and for replay determinism (folding the recorded log
from scratch gives the decision's state).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from orchestrator.core.decide import (
    EXECUTION_TIMER,
    CancelRequested,
    CancelStep,
    Decision,
    Resume,
    RunStep,
    ScheduleTimer,
    Start,
    StepErrored,
    StepSucceeded,
    TimerElapsed,
    Trigger,
    decide,
)
from orchestrator.core.definitions import WorkflowDef
from orchestrator.core.errors import InvalidWorkflow
from orchestrator.core.events import (
    EVENT_ADAPTER,
    RECORD_ADAPTER,
    Event,
    ExecutionStarted,
    StepRetrying,
    StepStarted,
    TimerScheduled,
    from_record,
    to_record,
)
from orchestrator.core.state import ExecutionState, fold
from orchestrator.core.validation import parse_workflow

NOW = datetime(2025, 1, 2, 10, 0, tzinfo=UTC)
EXEC = "wf_exec_01TEST"


def at(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)


def build(*steps: dict[str, Any], **spec: Any) -> WorkflowDef:
    return parse_workflow({"metadata": {"name": "wf"}, "spec": {"steps": list(steps), **spec}})


def transform(name: str, value: Any = 1, **fields: Any) -> dict[str, Any]:
    return {"name": name, "type": "transform", "value": value, **fields}


def query(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "type": "mcp_query", "connector": "amadeus-travel", "statement": name, **fields}


def parallel(name: str, *steps: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"name": name, "type": "parallel", "steps": list(steps), **fields}


def wait(name: str, duration: Any, **fields: Any) -> dict[str, Any]:
    return {"name": name, "type": "wait", "duration": duration, **fields}


def attr(event: Event, name: str) -> Any:
    """A field of an event whose class the test knows from its type."""
    return getattr(event, name)


def types(decision: Decision) -> list[str]:
    return [event.type for event in decision.events]


def steps_of(decision: Decision) -> list[tuple[str, str | None]]:
    return [(event.type, getattr(event, "step", None)) for event in decision.events]


def runs(decision: Decision) -> dict[str, RunStep]:
    return {command.step: command for command in decision.commands if isinstance(command, RunStep)}


def cancels(decision: Decision) -> list[str]:
    return [command.step for command in decision.commands if isinstance(command, CancelStep)]


def timers(decision: Decision) -> list[ScheduleTimer]:
    return [command for command in decision.commands if isinstance(command, ScheduleTimer)]


class Run:
    """Drives ``decide`` the way the execution actor does, keeping the recorded log."""

    def __init__(self, workflow: WorkflowDef, *, execution_id: str = EXEC, **start: Any) -> None:
        self.execution_id = execution_id
        self.state = ExecutionState(execution_id)
        self.log: list[Event] = []
        self.first = self.send(Start(NOW, workflow, **start))

    def send(self, trigger: Trigger) -> Decision:
        before = self.state.last_seq
        decision = decide(self.state, trigger)
        assert self.state.last_seq == before, "decide must not evolve its input state"
        seqs = [event.seq for event in decision.events]
        assert seqs == list(range(before + 1, before + 1 + len(seqs))), f"seqs not contiguous: {seqs}"
        assert all(event.timestamp == trigger.now for event in decision.events)
        assert decision.state.last_seq == before + len(seqs)
        self.log.extend(decision.events)
        self.state = decision.state
        assert fold(self.execution_id, self.log) == self.state, "replaying the log diverged"
        return decision

    def attempt(self, step: str) -> int:
        return self.state.steps[step].attempt

    def succeed(self, step: str, output: Any = None, *, t: float = 0, attempt: int | None = None) -> Decision:
        return self.send(StepSucceeded(at(t), step, attempt or self.attempt(step), output))

    def error(
        self,
        step: str,
        error: str = "boom",
        *,
        t: float = 0,
        attempt: int | None = None,
        code: str = "STEP_FAILED",
        retryable: bool = True,
    ) -> Decision:
        return self.send(StepErrored(at(t), step, attempt or self.attempt(step), error, code, retryable))

    def fire(self, timer_id: str, *, t: float) -> Decision:
        return self.send(TimerElapsed(at(t), timer_id))

    def status(self, step: str) -> str:
        return self.state.steps[step].status

    def statuses(self) -> dict[str, str]:
        return {name: step.status for name, step in self.state.steps.items()}


SEED = build(
    query(
        "search_flights", parameters={"origin": "SFO", "destination": "CDG", "departure_date": "2025-06-01"}
    ),
    query("search_hotels", parameters={"city": "Paris", "check_in": "2025-06-01", "check_out": "2025-06-07"}),
    {
        "name": "summarize",
        "type": "llm",
        "prompt": "Summarize the flight and hotel options for a trip from SFO to Paris",
        "depends_on": ["search_flights", "search_hotels"],
    },
)
FLIGHTS = {"flights": [{"airline": "Air France", "price": 850}]}
HOTELS = {"hotels": [{"name": "Hotel Eiffel", "price_per_night": 200}]}


# -- start ----------------------------------------------------------------------------------------


def test_start_records_the_definition_and_context_first() -> None:
    wf = build(transform("a", "{{ input.budget }}"))
    run = Run(wf, input={"budget": 5000}, user={"id": 123}, tenant_id="acme", metadata={"k": "v"})
    started = run.first.events[0]
    assert isinstance(started, ExecutionStarted)
    assert (started.seq, started.timestamp) == (1, NOW)
    assert WorkflowDef.model_validate(started.workflow) == wf
    assert (started.input, started.user, started.tenant_id, started.metadata) == (
        {"budget": 5000},
        {"id": 123},
        "acme",
        {"k": "v"},
    )
    assert run.state.started_at == NOW
    assert run.state.tenant_id == "acme"


def test_start_records_who_started_it_and_the_request_fingerprint() -> None:
    run = Run(
        build(transform("a")),
        user={"id": 7, "tenant_id": "acme"},
        tenant_id="acme",
        key_id="key_01",
        idempotency_key="order-1",
        request_hash="sha256:abc",
    )
    started = run.first.events[0]
    assert isinstance(started, ExecutionStarted)
    assert started.started_by == {"key_id": "key_01", "user": {"id": 7, "tenant_id": "acme"}}
    assert (started.idempotency_key, started.request_hash) == ("order-1", "sha256:abc")
    assert run.state.started_by == started.started_by
    assert started.public()["data"]["started_by"] == {
        "key_id": "key_01",
        "user": {"id": 7, "tenant_id": "acme"},
    }
    # Auth off: no key, the user still recorded.
    anonymous = Run(build(transform("a")), user={"id": 1})
    assert anonymous.state.started_by == {"key_id": None, "user": {"id": 1}}


def test_a_log_written_before_the_audit_fields_replays_unchanged() -> None:
    run = Run(build(query("q")), user={"id": 1})
    run.send(CancelRequested(at(1)))
    old_records = []
    for event in run.log:
        record = to_record(EXEC, event)
        payload = {
            k: v for k, v in record.payload.items() if k not in ("started_by", "request_hash", "requested_by")
        }
        old_records.append(dataclasses.replace(record, payload=payload))
    state = fold(EXEC, (from_record(record) for record in old_records))
    assert state.started_by is None and state.status == "cancelled"
    assert [from_record(r).public()["data"].get("requested_by", "absent") for r in old_records][-2] is None


def test_start_is_ignored_once_started() -> None:
    run = Run(build(query("q")))
    decision = run.send(Start(at(1), build(transform("other"))))
    assert decision.events == [] and decision.commands == []
    assert list(run.state.steps) == ["q"]


def test_chain_of_transforms_completes_in_one_decision_with_contiguous_seqs() -> None:
    wf = build(
        transform("a", "{{ input.budget }}"),
        transform("b", "{{ steps.a.output + 1 }}", depends_on=["a"]),
        transform(
            "c", {"total": "{{ steps.b.output * 2 }}", "label": "B={{ steps.b.output }}"}, depends_on=["b"]
        ),
        transform("d", "{{ steps.c.output.total }}", depends_on=["c"]),
    )
    run = Run(wf, input={"budget": 5000})
    assert steps_of(run.first) == [
        ("execution.started", None),
        ("step.started", "a"),
        ("step.completed", "a"),
        ("step.started", "b"),
        ("step.completed", "b"),
        ("step.started", "c"),
        ("step.completed", "c"),
        ("step.started", "d"),
        ("step.completed", "d"),
        ("execution.completed", None),
    ]
    assert [event.seq for event in run.first.events] == list(range(1, 11))
    assert run.first.commands == []
    assert run.state.status == "completed"
    assert run.state.steps["c"].output == {"total": 10002, "label": "B=5001"}
    assert run.state.output == {"final_result": 10002}
    assert (run.state.completed_at, run.state.duration_ms) == (NOW, 0)
    assert run.state.last_seq == 10


def test_template_context_names() -> None:
    wf = build(
        transform("a", "x"),
        transform(
            "b",
            {
                "id": "{{ execution.id }}",
                "name": "{{ execution.workflow_name }}",
                "tenant": "{{ execution.tenant_id }}",
                "started": "{{ execution.started_at }}",
                "user": "{{ user.id }}",
                "status": "{{ steps.a.status }}",
                "error": "{{ steps.a.error }}",
            },
            depends_on=["a"],
        ),
    )
    run = Run(wf, user={"id": 7}, tenant_id="acme")
    assert run.state.steps["b"].output == {
        "id": EXEC,
        "name": "wf",
        "tenant": "acme",
        "started": NOW.isoformat(),
        "user": 7,
        "status": "completed",
        "error": None,
    }


# -- I/O steps ------------------------------------------------------------------------------------


def test_independent_io_steps_become_run_step_commands_at_once() -> None:
    run = Run(SEED)
    assert steps_of(run.first) == [
        ("execution.started", None),
        ("step.started", "search_flights"),
        ("step.started", "search_hotels"),
    ]
    commands = runs(run.first)
    assert list(commands) == ["search_flights", "search_hotels"]
    flights = commands["search_flights"]
    assert flights == RunStep(
        step="search_flights",
        kind="connector",
        attempt=1,
        request={
            "connector": "amadeus-travel",
            "statement": "search_flights",
            "mode": "query",
            "parameters": {"origin": "SFO", "destination": "CDG", "departure_date": "2025-06-01"},
        },
        context={},
        idempotency_key=f"{EXEC}/search_flights/1",
        timeout=None,
    )
    started = run.first.events[1]
    assert isinstance(started, StepStarted)
    assert (started.attempt, started.idempotency_key, started.request) == (
        1,
        flights.idempotency_key,
        flights.request,
    )
    assert run.statuses() == {"search_flights": "running", "search_hotels": "running", "summarize": "pending"}
    assert run.state.status == "running"


def test_seed_travel_booking_runs_to_completion() -> None:
    run = Run(SEED, input={"budget": 5000})
    first = run.succeed("search_flights", FLIGHTS, t=1.234)
    assert steps_of(first) == [("step.completed", "search_flights")]
    assert first.commands == []
    second = run.succeed("search_hotels", HOTELS, t=1.456)
    assert steps_of(second) == [("step.completed", "search_hotels"), ("step.started", "summarize")]
    summarize = runs(second)["summarize"]
    assert summarize.kind == "llm"
    assert summarize.request == {
        "prompt": "Summarize the flight and hotel options for a trip from SFO to Paris"
    }
    assert summarize.context == {"search_flights": FLIGHTS, "search_hotels": HOTELS}
    assert summarize.idempotency_key == f"{EXEC}/summarize/1"
    last = run.succeed("summarize", "I found great options for your trip...", t=3.579)
    assert types(last) == ["step.completed", "execution.completed"]
    assert last.commands == []
    assert run.state.status == "completed"
    assert run.state.output == {"final_result": "I found great options for your trip..."}
    assert run.state.duration_ms == 3579
    flights = run.state.steps["search_flights"]
    assert (flights.started_at, flights.completed_at, flights.output) == (NOW, at(1.234), FLIGHTS)


def test_connector_request_renders_parameters_and_mode() -> None:
    wf = build(
        transform("a", {"city": "Paris"}),
        {
            "name": "book",
            "type": "mcp_execute",
            "connector": "c",
            "statement": "book",
            "parameters": {
                "max": "{{ input.budget }}",
                "label": "under {{ input.budget }}",
                "to": "{{ steps.a.output.city }}",
            },
            "depends_on": ["a"],
        },
    )
    run = Run(wf, input={"budget": 5000})
    command = runs(run.first)["book"]
    assert command.request == {
        "connector": "c",
        "statement": "book",
        "mode": "execute",
        "parameters": {"max": 5000, "label": "under 5000", "to": "Paris"},
    }
    assert command.context == {"a": {"city": "Paris"}}


def test_llm_request_carries_prompt_and_options() -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}}
    wf = build(
        transform("facts", ["a", "b"]),
        {
            "name": "ask",
            "type": "llm",
            "prompt": "Use {{ steps.facts.output | length }} facts",
            "system": "You are {{ user.role }}",
            "model": "m1",
            "max_tokens": 50,
            "temperature": 0.0,
            "output_schema": schema,
            "depends_on": ["facts"],
            "timeout": "30s",
        },
    )
    run = Run(wf, user={"role": "analyst"})
    command = runs(run.first)["ask"]
    assert command.kind == "llm"
    assert command.request == {
        "prompt": "Use 2 facts",
        "system": "You are analyst",
        "model": "m1",
        "max_tokens": 50,
        "temperature": 0.0,
        "output_schema": schema,
    }
    assert command.context == {"facts": ["a", "b"]}
    assert command.timeout == 30.0


# -- parallel -------------------------------------------------------------------------------------


def test_parallel_fans_out_and_completes_after_its_children() -> None:
    wf = build(
        parallel("p", query("q1"), query("q2"), query("q3")),
        transform("after", "{{ steps.p.output }}", depends_on=["p"]),
    )
    run = Run(wf)
    assert steps_of(run.first) == [
        ("execution.started", None),
        ("step.started", "p"),
        ("step.started", "q1"),
        ("step.started", "q2"),
        ("step.started", "q3"),
    ]
    assert list(runs(run.first)) == ["q1", "q2", "q3"]
    assert run.succeed("q2", "two", t=1).events[-1].type == "step.completed"
    assert run.status("p") == "running"
    run.succeed("q1", "one", t=2)
    assert run.status("p") == "running"
    last = run.succeed("q3", "three", t=3)
    assert steps_of(last) == [
        ("step.completed", "q3"),
        ("step.completed", "p"),
        ("step.started", "after"),
        ("step.completed", "after"),
        ("execution.completed", None),
    ]
    expected = {"q1": "one", "q2": "two", "q3": "three"}
    assert run.state.steps["p"].output == expected
    assert list(run.state.steps["p"].output) == ["q1", "q2", "q3"]
    assert run.state.output == {"final_result": expected}


def test_parallel_of_transforms_completes_in_one_decision() -> None:
    run = Run(build(parallel("p", transform("x", 1), transform("y", "{{ input.v }}"))), input={"v": [2]})
    assert types(run.first)[-1] == "execution.completed"
    assert run.state.output == {"final_result": {"x": 1, "y": [2]}}


def test_parallel_children_wait_for_the_containers_dependencies() -> None:
    run = Run(build(query("first"), parallel("p", query("c1"), query("c2"), depends_on=["first"])))
    assert list(runs(run.first)) == ["first"]
    assert run.statuses() == {"first": "running", "p": "pending", "c1": "pending", "c2": "pending"}
    decision = run.succeed("first", 1, t=1)
    assert list(runs(decision)) == ["c1", "c2"]
    assert runs(decision)["c1"].context == {"first": 1}


def test_nested_sibling_dependency_inside_a_parallel() -> None:
    run = Run(build(parallel("p", query("c1"), query("c2", depends_on=["c1"]))))
    assert list(runs(run.first)) == ["c1"]
    assert list(runs(run.succeed("c1", "x", t=1))) == ["c2"]


# -- condition ------------------------------------------------------------------------------------


def branching(condition: str) -> WorkflowDef:
    return build(
        transform("flag", {"go": "{{ input.go }}"}),
        {
            "name": "check",
            "type": "condition",
            "condition": condition,
            "depends_on": ["flag"],
            "if_true": [query("t1"), transform("t2", "{{ steps.t1.output }}", depends_on=["t1"])],
            "if_false": [transform("f1", "no"), parallel("fp", transform("f2"), query("f3"))],
        },
    )


@pytest.mark.parametrize("condition", ["steps.flag.output.go", "{{ steps.flag.output.go }}"])
def test_condition_true_takes_if_true_and_skips_if_false_nested_too(condition: str) -> None:
    run = Run(branching(condition), input={"go": True})
    assert steps_of(run.first) == [
        ("execution.started", None),
        ("step.started", "flag"),
        ("step.completed", "flag"),
        ("step.started", "check"),
        ("step.skipped", "f1"),
        ("step.skipped", "fp"),
        ("step.skipped", "f2"),
        ("step.skipped", "f3"),
        ("step.started", "t1"),
    ]
    skipped = run.first.events[4]
    assert attr(skipped, "reason") == "branch 'if_true' of 'check' was taken"
    assert list(runs(run.first)) == ["t1"]
    assert run.status("check") == "running"  # a container completes after its children
    last = run.succeed("t1", "T1", t=1)
    assert steps_of(last) == [
        ("step.completed", "t1"),
        ("step.started", "t2"),
        ("step.completed", "t2"),
        ("step.completed", "check"),
        ("execution.completed", None),
    ]
    assert run.state.steps["check"].output == {"result": True, "branch": "if_true"}
    assert run.statuses() == {
        "flag": "completed",
        "check": "completed",
        "t1": "completed",
        "t2": "completed",
        "f1": "skipped",
        "fp": "skipped",
        "f2": "skipped",
        "f3": "skipped",
    }
    assert run.state.output == {"final_result": {"result": True, "branch": "if_true"}}


@pytest.mark.parametrize("condition", ["steps.flag.output.go", "{{ steps.flag.output.go }}"])
def test_condition_false_takes_if_false(condition: str) -> None:
    run = Run(branching(condition), input={"go": False})
    assert [name for kind, name in steps_of(run.first) if kind == "step.skipped"] == ["t1", "t2"]
    assert list(runs(run.first)) == ["f3"]
    assert run.statuses()["f1"] == "completed"
    run.succeed("f3", "F3", t=1)
    assert run.state.steps["fp"].output == {"f2": 1, "f3": "F3"}
    assert run.state.steps["check"].output == {"result": False, "branch": "if_false"}
    assert run.state.status == "completed"


def test_depends_on_a_skipped_step_still_runs() -> None:
    wf = build(
        {
            "name": "check",
            "type": "condition",
            "condition": "input.go",
            "if_true": [transform("t", "yes")],
            "if_false": [query("f")],
        },
        transform("after", {"f": "{{ steps.f.output }}", "status": "{{ steps.f.status }}"}, depends_on=["f"]),
    )
    run = Run(wf, input={"go": True})
    assert run.status("f") == "skipped"
    assert run.state.steps["after"].output == {"f": None, "status": "skipped"}
    assert run.state.status == "completed"
    # several sinks: the output maps them by name
    assert run.state.output == {
        "check": {"result": True, "branch": "if_true"},
        "after": {"f": None, "status": "skipped"},
    }


def test_condition_with_empty_taken_branch_completes_at_once() -> None:
    wf = build({"name": "check", "type": "condition", "condition": "input.go", "if_false": [query("f")]})
    run = Run(wf, input={"go": True})
    assert run.statuses() == {"check": "completed", "f": "skipped"}
    assert run.state.status == "completed"


def test_condition_inside_parallel() -> None:
    wf = build(
        parallel(
            "p",
            query("q"),
            {
                "name": "c",
                "type": "condition",
                "condition": "input.n > 1",
                "if_true": [transform("big", "B")],
                "if_false": [transform("small", "S")],
            },
        )
    )
    run = Run(wf, input={"n": 0})
    assert run.statuses() == {
        "p": "running",
        "q": "running",
        "c": "completed",
        "big": "skipped",
        "small": "completed",
    }
    run.succeed("q", "Q", t=1)
    assert run.state.steps["p"].output == {"q": "Q", "c": {"result": False, "branch": "if_false"}}


# -- failure --------------------------------------------------------------------------------------


def test_failure_fails_the_execution_and_cancels_running_siblings() -> None:
    wf = build(parallel("p", query("q1"), query("q2"), query("q3")), transform("after", depends_on=["p"]))
    run = Run(wf)
    decision = run.error("q2", "connection refused", t=2, code="AGENT_UNAVAILABLE")
    assert steps_of(decision) == [("step.failed", "q2"), ("execution.failed", "q2")]
    assert sorted(cancels(decision)) == ["q1", "q3"]
    assert runs(decision) == {}
    assert run.state.status == "failed"
    assert run.state.error == "Step 'q2' failed: connection refused"
    assert run.state.completed_at == at(2)
    assert run.statuses() == {
        "p": "cancelled",
        "q1": "cancelled",
        "q2": "failed",
        "q3": "cancelled",
        "after": "pending",  # it never started
    }
    q2 = run.state.steps["q2"]
    assert (q2.error, q2.error_code) == ("connection refused", "AGENT_UNAVAILABLE")
    assert run.state.steps["q1"].completed_at == at(2)  # it had started
    assert run.state.steps["after"].completed_at is None  # it never started
    # a late result of a cancelled sibling records nothing
    late = run.succeed("q1", "too late", t=3, attempt=1)
    assert late.events == [] and late.commands == []


def test_template_error_in_a_transform_fails_the_step() -> None:
    run = Run(build(transform("a", "{{ input.nope }}"), transform("b", depends_on=["a"])))
    assert steps_of(run.first)[1:] == [("step.started", "a"), ("step.failed", "a"), ("execution.failed", "a")]
    assert run.state.steps["a"].error_code == "TEMPLATE_ERROR"
    assert "nope" in (run.state.steps["a"].error or "")
    assert run.statuses() == {"a": "failed", "b": "pending"}


def test_template_error_in_connector_parameters_fails_without_running_or_retrying() -> None:
    wf = build(query("q", parameters={"x": "{{ input.nope }}"}, retry={"max_attempts": 3}))
    run = Run(wf)
    assert types(run.first)[1:] == ["step.started", "step.failed", "execution.failed"]
    assert run.first.commands == []
    assert run.state.steps["q"].error_code == "TEMPLATE_ERROR"


def test_condition_evaluation_error_fails_the_step() -> None:
    wf = build({"name": "c", "type": "condition", "condition": "input.nope > 1", "if_true": [query("t")]})
    run = Run(wf)
    assert run.state.steps["c"].error_code == "TEMPLATE_ERROR"
    assert run.statuses() == {"c": "failed", "t": "pending"}
    assert run.state.status == "failed"


# -- retries --------------------------------------------------------------------------------------


RETRYING = build(query("q", retry={"max_attempts": 3, "initial_interval": "1s", "backoff_coefficient": 2}))


def test_retries_back_off_and_reuse_nothing_but_the_step() -> None:
    run = Run(RETRYING)
    assert runs(run.first)["q"].idempotency_key == f"{EXEC}/q/1"

    first = run.error("q", "flaky", t=1)
    assert steps_of(first) == [("step.retrying", "q"), ("timer.scheduled", "q")]
    retrying, scheduled = first.events
    assert isinstance(retrying, StepRetrying) and isinstance(scheduled, TimerScheduled)
    assert (retrying.attempt, retrying.error, retrying.code, retrying.next_attempt_at) == (
        1,
        "flaky",
        "STEP_FAILED",
        at(2),
    )
    assert (scheduled.timer_id, scheduled.kind, scheduled.fire_at, scheduled.step) == (
        "q/retry/1",
        "retry",
        at(2),
        "q",
    )
    assert first.commands == [ScheduleTimer("q/retry/1", at(2))]
    assert run.status("q") == "running"
    assert run.state.steps["q"].retry_at == at(2)

    second = run.fire("q/retry/1", t=2)
    assert steps_of(second) == [("timer.fired", "q"), ("step.started", "q")]
    assert attr(second.events[1], "attempt") == 2
    command = runs(second)["q"]
    assert (command.attempt, command.idempotency_key) == (2, f"{EXEC}/q/2")
    assert run.state.steps["q"].retry_at is None

    third = run.error("q", "flaky again", t=3)
    assert attr(third.events[0], "next_attempt_at") == at(5)  # 1s * 2 ** 1
    assert third.commands == [ScheduleTimer("q/retry/2", at(5))]
    assert runs(run.fire("q/retry/2", t=5))["q"].idempotency_key == f"{EXEC}/q/3"

    done = run.succeed("q", "ok", t=6)
    assert steps_of(done) == [("step.completed", "q"), ("execution.completed", None)]
    step = run.state.steps["q"]
    assert (step.attempt, step.output, step.started_at, step.completed_at) == (3, "ok", NOW, at(6))
    assert [entry["attempt"] for entry in step.attempts] == [1, 2]
    assert run.state.output == {"final_result": "ok"}


def test_retries_exhausted_fail_the_execution() -> None:
    run = Run(RETRYING)
    run.error("q", t=1)
    run.fire("q/retry/1", t=2)
    run.error("q", t=3)
    run.fire("q/retry/2", t=5)
    last = run.error("q", "still broken", t=6)
    assert steps_of(last) == [("step.failed", "q"), ("execution.failed", "q")]
    assert attr(last.events[0], "attempt") == 3
    assert run.state.status == "failed"
    assert run.state.error == "Step 'q' failed: still broken"


@pytest.mark.parametrize(
    ("code", "retryable"), [("BAD_INPUT", True), ("STEP_FAILED", False), ("BAD_INPUT", False)]
)
def test_non_retryable_errors_fail_at_once(code: str, retryable: bool) -> None:
    wf = build(query("q", retry={"max_attempts": 3, "non_retryable": ["BAD_INPUT"]}))
    run = Run(wf)
    decision = run.error("q", "no", code=code, retryable=retryable, t=1)
    assert types(decision) == ["step.failed", "execution.failed"]
    assert run.state.steps["q"].error_code == code
    assert timers(decision) == []


def test_workflow_level_retry_policy_applies_and_delay_is_capped() -> None:
    wf = build(query("q"), retry={"max_attempts": 5, "initial_interval": "10s", "max_interval": "15s"})
    run = Run(wf)
    assert run.error("q", t=0).commands == [ScheduleTimer("q/retry/1", at(10))]
    run.fire("q/retry/1", t=10)
    assert run.error("q", t=11).commands == [ScheduleTimer("q/retry/2", at(26))]  # min(20, 15)


def test_triggers_for_a_step_waiting_to_retry_are_ignored() -> None:
    run = Run(RETRYING)
    run.error("q", t=1)
    for trigger in (StepSucceeded(at(1.5), "q", 1, "late"), StepErrored(at(1.5), "q", 1, "again")):
        decision = run.send(trigger)
        assert decision.events == [] and decision.commands == []
    assert run.state.steps["q"].retry_at == at(2)


def test_stale_result_of_an_old_attempt_is_ignored() -> None:
    run = Run(RETRYING)
    run.error("q", t=1)
    run.fire("q/retry/1", t=2)
    for trigger in (
        StepSucceeded(at(3), "q", 1, "stale"),
        StepErrored(at(3), "q", 1, "stale"),
        StepSucceeded(at(3), "q", 3, "from the future"),
        StepSucceeded(at(3), "unknown", 1, "?"),
    ):
        decision = run.send(trigger)
        assert decision.events == [] and decision.commands == []
    assert run.status("q") == "running"
    assert run.attempt("q") == 2


def test_duplicate_success_is_ignored() -> None:
    run = Run(build(query("q"), query("r")))
    run.succeed("q", 1, t=1)
    duplicate = run.succeed("q", 2, t=2, attempt=1)
    assert duplicate.events == []
    assert run.state.steps["q"].output == 1


# -- step timeouts --------------------------------------------------------------------------------


def test_step_timeout_fails_the_step_with_step_timeout() -> None:
    run = Run(build(query("q", timeout="5s")))
    scheduled = [event for event in run.first.events if isinstance(event, TimerScheduled)]
    assert [(e.timer_id, e.kind, e.fire_at, e.step) for e in scheduled] == [
        ("q/timeout/1", "step_timeout", at(5), "q")
    ]
    assert ScheduleTimer("q/timeout/1", at(5)) in run.first.commands
    assert runs(run.first)["q"].timeout == 5.0
    decision = run.fire("q/timeout/1", t=5)
    assert steps_of(decision) == [("timer.fired", "q"), ("step.failed", "q"), ("execution.failed", "q")]
    assert decision.commands == [CancelStep("q")]
    step = run.state.steps["q"]
    assert (step.status, step.error_code, step.error) == (
        "failed",
        "STEP_TIMEOUT",
        "Step 'q' timed out after 5s",
    )
    assert run.state.status == "failed"


def test_step_timeout_is_retried_and_the_late_first_attempt_is_ignored() -> None:
    run = Run(build(query("q", timeout="5s", retry={"max_attempts": 2, "initial_interval": 1})))
    decision = run.fire("q/timeout/1", t=5)
    assert types(decision) == ["timer.fired", "step.retrying", "timer.scheduled"]
    assert attr(decision.events[1], "code") == "STEP_TIMEOUT"
    assert decision.commands == [CancelStep("q"), ScheduleTimer("q/retry/1", at(6))]
    second = run.fire("q/retry/1", t=6)
    assert ScheduleTimer("q/timeout/2", at(11)) in second.commands
    assert runs(second)["q"].idempotency_key == f"{EXEC}/q/2"
    assert run.succeed("q", "late", t=7, attempt=1).events == []
    run.succeed("q", "on time", t=8)
    assert run.state.status == "completed"
    assert run.state.timers == {}
    assert run.fire("q/timeout/2", t=11).events == []  # a dropped timer that fires anyway is ignored


def test_completion_drops_the_step_timer() -> None:
    run = Run(build(query("q", timeout=5), query("r")))
    assert "q/timeout/1" in run.state.timers
    run.succeed("q", 1, t=1)
    assert "q/timeout/1" not in run.state.timers
    decision = run.fire("q/timeout/1", t=5)
    assert decision.events == [] and decision.commands == []
    assert run.status("r") == "running"


# -- workflow timeout -----------------------------------------------------------------------------


def test_workflow_timeout_times_the_execution_out() -> None:
    run = Run(build(query("q"), wait("w", "1m"), transform("after", depends_on=["q", "w"]), timeout="30s"))
    scheduled = run.first.events[1]
    assert isinstance(scheduled, TimerScheduled)
    assert (scheduled.timer_id, scheduled.kind, scheduled.fire_at, scheduled.step) == (
        EXECUTION_TIMER,
        "execution_timeout",
        at(30),
        None,
    )
    assert ScheduleTimer(EXECUTION_TIMER, at(30)) in run.first.commands
    decision = run.fire(EXECUTION_TIMER, t=30)
    assert types(decision) == ["timer.fired", "execution.timed_out"]
    assert decision.commands == [CancelStep("q")]  # only I/O steps have something to cancel
    assert run.state.status == "timeout"
    assert run.state.terminal
    assert run.state.error == "Execution exceeded its timeout of 30s"
    assert run.statuses() == {"q": "cancelled", "w": "cancelled", "after": "pending"}
    assert run.state.timers == {}
    for trigger in (StepSucceeded(at(31), "q", 1, "late"), TimerElapsed(at(60), "w/wait")):
        late = run.send(trigger)
        assert late.events == [] and late.commands == []


@pytest.mark.parametrize(("spec_timeout", "request_timeout", "fires"), [(30, 5, 5), (5, 30, 5), (None, 7, 7)])
def test_the_shorter_of_request_and_spec_timeout_wins(
    spec_timeout: float | None, request_timeout: float, fires: float
) -> None:
    wf = build(query("q"), **({"timeout": spec_timeout} if spec_timeout else {}))
    run = Run(wf, timeout=request_timeout)
    assert run.state.timers[EXECUTION_TIMER].fire_at == at(fires)
    run.fire(EXECUTION_TIMER, t=fires)
    assert run.state.status == "timeout"


def test_timeout_message_names_the_limit_that_fired() -> None:
    run = Run(build(query("q"), timeout="60s"), timeout=5)
    run.fire(EXECUTION_TIMER, t=5)
    assert run.state.error == "Execution exceeded its timeout of 5s"


def test_completion_clears_the_execution_timer() -> None:
    run = Run(build(query("q"), timeout="30s"))
    run.succeed("q", "ok", t=1)
    assert run.state.timers == {}
    assert run.fire(EXECUTION_TIMER, t=30).events == []
    assert run.state.status == "completed"


# -- cancellation ---------------------------------------------------------------------------------


def cancelled_run() -> tuple[Run, Decision]:
    run = Run(build(query("q"), wait("w", "10s"), transform("after", depends_on=["q"]), timeout="1m"))
    return run, run.send(CancelRequested(at(1), reason="user asked"))


def test_cancel_records_request_and_cancellation_and_cancels_running_steps() -> None:
    run, decision = cancelled_run()
    assert types(decision) == ["execution.cancel_requested", "execution.cancelled"]
    assert [attr(event, "reason") for event in decision.events] == ["user asked", "user asked"]
    assert decision.commands == [CancelStep("q")]
    assert run.state.status == "cancelled"
    assert run.state.terminal and run.state.cancel_requested
    assert run.state.error == "user asked"
    assert run.state.completed_at == at(1)
    assert run.statuses() == {"q": "cancelled", "w": "cancelled", "after": "pending"}
    assert run.state.timers == {}


def test_cancel_records_who_asked() -> None:
    run = Run(build(query("q")))
    decision = run.send(CancelRequested(at(1), key_id="key_02", user={"id": 9}))
    requested = decision.events[0]
    assert requested.type == "execution.cancel_requested"
    assert attr(requested, "requested_by") == {"key_id": "key_02", "user": {"id": 9}}
    assert requested.public()["data"]["requested_by"] == {"key_id": "key_02", "user": {"id": 9}}
    anonymous = Run(build(query("q")))
    anonymous.send(CancelRequested(at(1)))
    assert attr(anonymous.log[-2], "requested_by") == {"key_id": None, "user": None}


def test_cancel_default_reason() -> None:
    run = Run(build(query("q")))
    run.send(CancelRequested(at(1)))
    assert run.state.error == "Execution was cancelled"


@pytest.mark.parametrize(
    "trigger",
    [
        StepSucceeded(at(2), "q", 1, "late"),
        StepErrored(at(2), "q", 1, "late"),
        TimerElapsed(at(10), "w/wait"),
        TimerElapsed(at(60), EXECUTION_TIMER),
        CancelRequested(at(2)),
        Resume(at(2)),
        Start(at(2), build(query("q"))),
    ],
    ids=lambda trigger: type(trigger).__name__,
)
def test_triggers_after_a_terminal_state_are_ignored(trigger: Trigger) -> None:
    run, _ = cancelled_run()
    before = run.state.last_seq
    decision = run.send(trigger)
    assert decision.events == [] and decision.commands == []
    assert run.state.last_seq == before
    assert run.state.status == "cancelled"


# -- wait -----------------------------------------------------------------------------------------


def test_wait_step_is_a_durable_timer() -> None:
    run = Run(
        build(wait("w", "2s"), transform("after", "{{ steps.w.output.waited_seconds }}", depends_on=["w"]))
    )
    assert steps_of(run.first) == [
        ("execution.started", None),
        ("step.started", "w"),
        ("timer.scheduled", "w"),
    ]
    scheduled = run.first.events[2]
    assert isinstance(scheduled, TimerScheduled)
    assert (scheduled.timer_id, scheduled.kind, scheduled.fire_at) == ("w/wait", "wait", at(2))
    assert run.first.commands == [ScheduleTimer("w/wait", at(2))]
    assert run.status("w") == "running"
    decision = run.fire("w/wait", t=2)
    assert steps_of(decision) == [
        ("timer.fired", "w"),
        ("step.completed", "w"),
        ("step.started", "after"),
        ("step.completed", "after"),
        ("execution.completed", None),
    ]
    assert run.state.steps["w"].output == {"waited_seconds": 2.0}
    assert run.state.output == {"final_result": 2.0}
    assert run.state.duration_ms == 2000


def test_unknown_timer_is_ignored() -> None:
    run = Run(build(wait("w", 1)))
    decision = run.fire("nope", t=1)
    assert decision.events == [] and decision.commands == []


def test_wait_inside_a_parallel() -> None:
    run = Run(build(parallel("p", wait("w", "250ms"), transform("t", 3))))
    assert run.status("p") == "running"
    run.fire("w/wait", t=0.25)
    assert run.state.steps["p"].output == {"w": {"waited_seconds": 0.25}, "t": 3}
    assert run.state.status == "completed"


# -- resume ---------------------------------------------------------------------------------------


def in_flight_run() -> Run:
    wf = build(
        query("q1", parameters={"b": "{{ input.budget }}"}),
        query("q2", retry={"max_attempts": 2, "initial_interval": "3s"}),
        query("q3", retry={"max_attempts": 2, "initial_interval": "1s"}),
        wait("w", "1m"),
        timeout="10m",
    )
    run = Run(wf, input={"budget": 5000})
    run.error("q2", t=1)  # waiting to retry
    run.error("q3", t=1)
    run.fire("q3/retry/1", t=2)  # attempt 2 in flight
    return run


def test_resume_reissues_in_flight_steps_and_rearms_timers_without_recording() -> None:
    run = in_flight_run()
    restarted = fold(EXEC, run.log)  # what a restarted host rebuilds from the store
    before = copy.deepcopy(restarted)
    decision = decide(restarted, Resume(at(5)))
    assert decision.events == []
    assert decision.state == before
    assert restarted == before
    assert sorted(timers(decision), key=lambda timer: timer.timer_id) == [
        ScheduleTimer(EXECUTION_TIMER, at(600)),
        ScheduleTimer("q2/retry/1", at(4)),
        ScheduleTimer("w/wait", at(60)),
    ]
    reissued = runs(decision)
    assert list(reissued) == ["q1", "q3"]  # q2 waits for its retry timer, not a RunStep
    assert reissued["q1"].idempotency_key == f"{EXEC}/q1/1"
    assert reissued["q1"].request == run.state.steps["q1"].request
    assert reissued["q1"].request["parameters"] == {"b": 5000}
    assert (reissued["q3"].attempt, reissued["q3"].idempotency_key) == (2, f"{EXEC}/q3/2")
    assert cancels(decision) == []


def test_resume_then_continue_from_the_folded_state() -> None:
    run = in_flight_run()
    run.state = fold(EXEC, run.log)
    assert run.send(Resume(at(5))).events == []
    run.succeed("q1", 1, t=6)
    run.succeed("q3", 3, t=6)
    run.fire("q2/retry/1", t=6)
    run.succeed("q2", 2, t=7)
    run.fire("w/wait", t=60)
    assert run.state.status == "completed"
    assert run.state.output == {"q1": 1, "q2": 2, "q3": 3, "w": {"waited_seconds": 60.0}}


def test_resume_of_a_terminal_execution_does_nothing() -> None:
    run = Run(build(query("q")))
    run.succeed("q", 1, t=1)
    decision = decide(fold(EXEC, run.log), Resume(at(2)))
    assert decision.events == [] and decision.commands == []


def test_resume_finishes_a_cancellation_that_was_requested() -> None:
    run, _ = cancelled_run()
    log = run.log[:-1]  # the host died between cancel_requested and cancelled
    assert log[-1].type == "execution.cancel_requested"
    decision = decide(fold(EXEC, log), Resume(at(2)))
    assert types(decision) == ["execution.cancelled"]
    assert decision.events[0].seq == len(log) + 1
    assert decision.state.status == "cancelled"
    assert decision.commands[-1] == CancelStep("q")


def test_resume_after_cancel_requested_does_not_start_work_again() -> None:
    run, _ = cancelled_run()
    decision = decide(fold(EXEC, run.log[:-1]), Resume(at(2)))
    assert runs(decision) == {}
    assert timers(decision) == []
    assert decision.commands == [CancelStep("q")]


# -- output ---------------------------------------------------------------------------------------


def test_several_sinks_map_outputs_by_name() -> None:
    run = Run(build(transform("a", 1), transform("b", 2), transform("c", 3, depends_on=["a"])))
    assert run.state.output == {"b": 2, "c": 3}


def test_spec_output_templates_are_rendered_with_native_types() -> None:
    wf = build(
        transform("a", {"n": 2}),
        transform("b", "{{ steps.a.output.n * 10 }}", depends_on=["a"]),
        output={
            "total": "{{ steps.b.output }}",
            "summary": "b is {{ steps.b.output }}",
            "nested": {"budget": ["{{ input.budget }}"]},
            "fixed": 1,
        },
    )
    run = Run(wf, input={"budget": 5000})
    assert run.state.output == {"total": 20, "summary": "b is 20", "nested": {"budget": [5000]}, "fixed": 1}


def test_output_render_error_fails_the_execution() -> None:
    run = Run(build(transform("a", {"n": 1}), output={"x": "{{ steps.a.output.missing }}"}))
    assert types(run.first)[-1] == "execution.failed"
    assert run.state.status == "failed"
    assert (run.state.error or "").startswith("Cannot render the workflow output: ")
    assert "missing" in (run.state.error or "")
    assert run.statuses() == {"a": "completed"}
    assert run.state.output is None


# -- replay determinism ---------------------------------------------------------------------------


def scenario_seed() -> Run:
    run = Run(SEED, input={"budget": 5000}, user={"id": 123})
    run.succeed("search_hotels", HOTELS, t=1)
    run.succeed("search_flights", FLIGHTS, t=2)
    run.succeed("summarize", "summary", t=3)
    return run


def scenario_failure() -> Run:
    run = Run(build(parallel("p", query("q1"), query("q2")), transform("after", depends_on=["p"])))
    run.error("q1", t=1, retryable=False)
    return run


def scenario_retry_and_timeout() -> Run:
    run = Run(build(query("q", timeout="5s", retry={"max_attempts": 3}), wait("w", 2), timeout="1h"))
    run.fire("q/timeout/1", t=5)
    run.fire("w/wait", t=5)
    run.fire("q/retry/1", t=6)
    run.error("q", t=7)
    run.fire("q/retry/2", t=9)
    run.succeed("q", {"ok": True}, t=10)
    return run


def scenario_condition() -> Run:
    run = Run(branching("steps.flag.output.go"), input={"go": False})
    run.succeed("f3", [1, 2], t=1)
    return run


def scenario_timed_out() -> Run:
    run = Run(build(query("q"), timeout=3))
    run.fire(EXECUTION_TIMER, t=3)
    return run


def scenario_cancelled() -> Run:
    return cancelled_run()[0]


def scenario_running() -> Run:
    return in_flight_run()


SCENARIOS: dict[str, Callable[[], Run]] = {
    "seed": scenario_seed,
    "failure": scenario_failure,
    "retry_and_timeout": scenario_retry_and_timeout,
    "condition": scenario_condition,
    "timed_out": scenario_timed_out,
    "cancelled": scenario_cancelled,
    "running": scenario_running,
}
EXPECTED_STATUS = {
    "seed": "completed",
    "failure": "failed",
    "retry_and_timeout": "completed",
    "condition": "completed",
    "timed_out": "timeout",
    "cancelled": "cancelled",
    "running": "running",
}


@pytest.mark.parametrize("name", SCENARIOS)
def test_folding_the_log_from_scratch_gives_the_decisions_state(name: str) -> None:
    run = SCENARIOS[name]()
    replayed = fold(EXEC, run.log)
    assert run.state.status == EXPECTED_STATUS[name]
    assert replayed.status == run.state.status
    assert replayed.last_seq == run.state.last_seq == len(run.log)
    assert replayed.output == run.state.output
    assert replayed.error == run.state.error
    assert {n: (s.status, s.output, s.attempt) for n, s in replayed.steps.items()} == {
        n: (s.status, s.output, s.attempt) for n, s in run.state.steps.items()
    }
    assert replayed == run.state


@pytest.mark.parametrize("name", SCENARIOS)
def test_replay_through_stored_records_gives_the_same_state(name: str) -> None:
    run = SCENARIOS[name]()
    rows = [RECORD_ADAPTER.dump_json(to_record(EXEC, event)) for event in run.log]
    restored = [from_record(RECORD_ADAPTER.validate_json(row)) for row in rows]
    assert restored == run.log
    assert fold(EXEC, restored) == run.state


def test_fold_rejects_a_gap_in_the_log() -> None:
    run = scenario_seed()
    with pytest.raises(ValueError, match="does not follow"):
        fold(EXEC, [run.log[0], run.log[2]])


def test_decide_is_deterministic() -> None:
    assert scenario_retry_and_timeout().log == scenario_retry_and_timeout().log


def test_public_events_of_a_run_are_json_shaped() -> None:
    run = scenario_retry_and_timeout()
    for event in run.log:
        public = event.public()
        assert list(public) == ["seq", "type", "timestamp", "step", "data"]
        assert (
            EVENT_ADAPTER.validate_python(
                {
                    **public["data"],
                    "seq": public["seq"],
                    "type": public["type"],
                    "timestamp": public["timestamp"],
                }
                | ({"step": public["step"]} if public["step"] is not None else {})
            )
            == event
        )


# -- decide never mutates its input ---------------------------------------------------------------


NON_MUTATION: list[Any] = [
    pytest.param(lambda: (ExecutionState(EXEC), Start(NOW, SEED)), id="start"),
    pytest.param(lambda: (Run(SEED).state, StepSucceeded(at(1), "search_flights", 1, FLIGHTS)), id="success"),
    pytest.param(lambda: (Run(SEED).state, StepErrored(at(1), "search_flights", 1, "x")), id="failure"),
    pytest.param(lambda: (Run(SEED).state, CancelRequested(at(1))), id="cancel"),
    pytest.param(lambda: (in_flight_run().state, TimerElapsed(at(4), "q2/retry/1")), id="retry-timer"),
    pytest.param(lambda: (in_flight_run().state, TimerElapsed(at(600), EXECUTION_TIMER)), id="timeout"),
    pytest.param(lambda: (in_flight_run().state, Resume(at(5))), id="resume"),
    pytest.param(
        lambda: (Run(RETRYING).state, StepErrored(at(1), "q", 1, "flaky")),
        id="retrying",
    ),
]


@pytest.mark.parametrize("make", NON_MUTATION)
def test_decide_never_mutates_its_input_state(make: Callable[[], tuple[ExecutionState, Trigger]]) -> None:
    state, trigger = make()
    before = copy.deepcopy(state)
    decision = decide(state, trigger)
    assert decision.events or decision.commands, "the scenario should decide something"
    assert state == before


@pytest.mark.parametrize("make", NON_MUTATION)
def test_a_clone_has_every_field_and_its_own_steps(
    make: Callable[[], tuple[ExecutionState, Trigger]],
) -> None:
    state, _ = make()
    twin = state.clone()
    assert twin == state and twin is not state
    for name, step in state.steps.items():
        assert twin.steps[name] == step and twin.steps[name] is not step
        assert twin.steps[name].attempts is not step.attempts


# -- crashes instead of failed steps --------------------------------------------------------------


@pytest.mark.parametrize(
    "steps, spec",
    [
        ([wait("w", 1e12)], {}),
        ([query("q", timeout=1e12)], {}),
        ([query("q")], {"timeout": 1e12}),
        ([wait("w", float("inf"))], {}),
    ],
)
def test_a_valid_workflow_never_makes_decide_raise(steps: list[dict[str, Any]], spec: dict[str, Any]) -> None:
    try:
        wf = build(*steps, **spec)
    except InvalidWorkflow:
        return  # rejecting it is fine too
    decide(ExecutionState(EXEC), Start(NOW, wf))


def test_overflowing_template_fails_the_step_with_template_limit() -> None:
    run = Run(build(transform("a", "{{ range(input.n) | list | length }}")), input={"n": 10**9})
    assert run.state.steps["a"].error_code == "TEMPLATE_LIMIT"
    assert run.state.status == "failed"


@pytest.mark.parametrize(
    "template",
    [
        "{{ input.a ** input.b }}",
        "{{ 'a' * input.n }}",
        "{{ input.s | center(input.n) }}",
        "{{ range(input.k) | list * input.k }}",
        "{% for i in range(input.k) %}{% for j in range(input.k) %}{% endfor %}{% endfor %}",
    ],
)
def test_runaway_templates_fail_the_step_with_template_limit(template: str) -> None:
    """Each of these froze or exhausted the host; now the step fails and the execution ends."""
    wf = build(transform("a", template), query("q", depends_on=["a"]))
    run = Run(wf, input={"a": 9, "b": 10**8, "n": 10**9, "s": "x", "k": 100_000})
    assert run.state.steps["a"].error_code == "TEMPLATE_LIMIT"
    assert "template limit" in (run.state.steps["a"].error or "")
    assert run.state.status == "failed"
    assert run.statuses()["q"] == "pending"
    assert runs(run.first) == {}


def test_template_limit_in_connector_parameters_fails_without_running_or_retrying() -> None:
    wf = build(query("q", parameters={"x": "{{ 'a' * input.n }}"}, retry={"max_attempts": 3}))
    run = Run(wf, input={"n": 10**9})
    assert types(run.first)[1:] == ["step.started", "step.failed", "execution.failed"]
    assert run.first.commands == []
    assert run.state.steps["q"].error_code == "TEMPLATE_LIMIT"


def test_template_limit_in_a_condition_fails_the_step() -> None:
    wf = build(
        {"name": "c", "type": "condition", "condition": "input.a ** input.b > 1", "if_true": [query("t")]}
    )
    run = Run(wf, input={"a": 9, "b": 10**8})
    assert run.state.steps["c"].error_code == "TEMPLATE_LIMIT"
    assert run.statuses() == {"c": "failed", "t": "pending"}


def test_undefined_inside_a_whole_value_literal_fails_the_step() -> None:
    run = Run(build(transform("a", "{{ [input.nope] }}")))
    assert run.state.steps["a"].error_code == "TEMPLATE_ERROR"

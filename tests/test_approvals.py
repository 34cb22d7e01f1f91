"""People in the loop: ``approval`` and ``signal`` steps.

The first half is the pure core (``decide`` and the fold, a fixed ``now``, no Ray or I/O): every decision
is checked for contiguous sequence numbers and for replay determinism. The second half goes through the
real server over HTTP in both dialects, and the last test kills the whole server with SIGKILL while an
approval waits, then approves it after the restart.
"""

from __future__ import annotations

import contextlib
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from orchestrator.core.decide import (
    ApprovalSubmitted,
    CancelRequested,
    Decision,
    RunStep,
    ScheduleTimer,
    SignalSent,
    Start,
    StepSucceeded,
    TimerElapsed,
    Trigger,
    decide,
)
from orchestrator.core.definitions import WorkflowDef
from orchestrator.core.errors import InvalidRequest, InvalidWorkflow, OrchestratorError
from orchestrator.core.events import ApprovalDecided, SignalReceived, StepStarted, from_record, to_record
from orchestrator.core.signals import approval_problem, check_signal_payload, signal_problem, waiting_for
from orchestrator.core.state import ExecutionState, fold
from orchestrator.core.validation import parse_workflow
from orchestrator.core.workflow_documents import parse_definition
from tests.fixtures_server import ServerInfo, eventually
from tests.ports import free_port
from tests.processes import kill_session, server_process

NOW = datetime(2025, 1, 2, 10, 0, tzinfo=UTC)
EXEC = "wf_exec_01APPROVALS"
ALICE = {"id": "alice", "role": "finance"}
BOB = {"id": "bob", "role": "engineer"}


def at(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)


def build(*steps: dict[str, Any], **spec: Any) -> WorkflowDef:
    return parse_workflow({"metadata": {"name": "gated"}, "spec": {"steps": list(steps), **spec}})


def approval(name: str, prompt: str = "Book it?", **fields: Any) -> dict[str, Any]:
    return {"name": name, "type": "approval", "prompt": prompt, **fields}


def signal(name: str, signal_name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "type": "signal", "signal": signal_name, **fields}


def transform(name: str, value: Any = 1, **fields: Any) -> dict[str, Any]:
    return {"name": name, "type": "transform", "value": value, **fields}


class Run:
    """Drives ``decide`` as the execution's mailbox does, keeping the log and checking every decision
    replays to the same state."""

    def __init__(self, workflow: WorkflowDef, **start: Any) -> None:
        self.state = ExecutionState(EXEC)
        self.log: list[Any] = []
        self.first = self.send(Start(NOW, workflow, **start))

    def send(self, trigger: Trigger) -> Decision:
        before = self.state.last_seq
        decision = decide(self.state, trigger)
        assert self.state.last_seq == before, "decide must not evolve its input"
        seqs = [event.seq for event in decision.events]
        assert seqs == list(range(before + 1, before + 1 + len(seqs)))
        self.log.extend(decision.events)
        self.state = decision.state
        assert fold(EXEC, self.log) == self.state, "replaying the log diverged"
        # and through the storage mapper, as a restart reads it
        assert fold(EXEC, [from_record(to_record(EXEC, e)) for e in self.log]) == self.state
        return decision

    def approve(self, step: str, approved: bool = True, *, t: float = 1, **fields: Any) -> Decision:
        fields.setdefault("user", ALICE)
        return self.send(ApprovalSubmitted(at(t), step, approved, **fields))

    def signal(self, name: str, payload: Any = None, *, t: float = 1, **fields: Any) -> Decision:
        return self.send(SignalSent(at(t), name, payload, **fields))

    def status(self, step: str) -> str:
        return self.state.steps[step].status


def types(decision: Decision) -> list[str]:
    return [event.type for event in decision.events]


def code_of(problem: OrchestratorError | None) -> tuple[int, str] | None:
    return None if problem is None else (problem.status, problem.code)


# -- approval steps ---------------------------------------------------------------------------------


def test_an_approval_step_waits_with_nothing_in_flight() -> None:
    run = Run(
        build(
            transform("quote", {"price": 420}),
            approval("gate", "Book for ${{ steps.quote.output.price }}?", depends_on=["quote"]),
            transform("book", "booked", depends_on=["gate"]),
        )
    )
    assert run.status("gate") == "waiting" and run.state.status == "running"
    assert not run.first.commands  # no task, no timer: waiting costs nothing
    started = [e for e in run.first.events if isinstance(e, StepStarted) and e.step == "gate"]
    assert started[0].request == {"prompt": "Book for $420?"}  # rendered once, recorded
    assert waiting_for(run.state) == [
        {
            "step": "gate",
            "kind": "approval",
            "prompt": "Book for $420?",
            "since": "2025-01-02T10:00:00.000Z",
            "approvers": [],
        }
    ]


def test_approving_records_who_and_what_and_the_workflow_goes_on() -> None:
    run = Run(build(approval("gate"), transform("book", "{{ steps.gate.output.by }}", depends_on=["gate"])))
    decision = run.approve("gate", comment="fine by me", key_id="key_1", t=30)
    assert types(decision) == [
        "approval.decided",
        "step.completed",
        "step.started",
        "step.completed",
        "execution.completed",
    ]
    decided = decision.events[0]
    assert isinstance(decided, ApprovalDecided)
    assert (decided.step, decided.approved, decided.comment) == ("gate", True, "fine by me")
    assert decided.decided_by == {"key_id": "key_1", "user": ALICE}
    assert run.state.steps["gate"].output == {
        "approved": True,
        "comment": "fine by me",
        "by": "alice",
        "at": "2025-01-02T10:00:30.000Z",
    }
    assert run.state.output == {"final_result": "alice"}
    assert waiting_for(run.state) == []


def test_a_rejection_fails_the_step_and_is_never_retried() -> None:
    run = Run(
        build(approval("gate"), transform("book", depends_on=["gate"]), retry={"max_attempts": 5}),
    )
    decision = run.approve("gate", approved=False, comment="too expensive", user=BOB)
    assert types(decision) == ["approval.decided", "step.failed", "execution.failed"]
    gate = run.state.steps["gate"]
    assert (gate.status, gate.error_code, gate.attempt) == ("failed", "APPROVAL_REJECTED", 1)
    assert "rejected by 'bob': too expensive" in (gate.error or "")
    assert gate.output is not None and gate.output["approved"] is False  # who rejected stays visible
    assert run.state.status == "failed" and run.status("book") == "pending"


def test_on_reject_continue_lets_the_workflow_branch_on_the_decision() -> None:
    run = Run(
        build(
            approval("gate", on_reject="continue"),
            {
                "name": "decide",
                "type": "condition",
                "condition": "steps.gate.output.approved",
                "depends_on": ["gate"],
                "if_true": [transform("book", "booked")],
                "if_false": [transform("tell", "declined: {{ steps.gate.output.comment }}")],
            },
        )
    )
    run.approve("gate", approved=False, comment="not now")
    assert run.state.status == "completed"
    assert run.status("gate") == "completed" and run.status("book") == "skipped"
    assert run.state.steps["tell"].output == "declined: not now"


def test_approvers_are_matched_by_user_id_or_role() -> None:
    run = Run(build(approval("gate", approvers=["carol", "finance", 42])))
    assert waiting_for(run.state)[0]["approvers"] == ["carol", "finance", "42"]
    assert code_of(approval_problem(run.state, "gate", BOB)) == (403, "APPROVER_NOT_ALLOWED")
    assert code_of(approval_problem(run.state, "gate", {"id": "dave"})) == (403, "APPROVER_NOT_ALLOWED")
    assert approval_problem(run.state, "gate", {"id": "carol"}) is None
    assert approval_problem(run.state, "gate", {"id": 42}) is None  # ids compare as text
    assert approval_problem(run.state, "gate", ALICE) is None  # by role
    # the mailbox refuses first; decide itself records nothing for a user who may not decide
    assert run.approve("gate", user=BOB).events == []
    assert run.status("gate") == "waiting"


def test_what_cannot_be_approved_says_why() -> None:
    run = Run(
        build(
            transform("quote"),
            approval("first", depends_on=["quote"]),
            approval("second", depends_on=["first"]),
        )
    )
    assert code_of(approval_problem(run.state, "nope", ALICE)) == (404, "STEP_NOT_FOUND")
    assert code_of(approval_problem(run.state, "quote", ALICE)) == (409, "NOT_AN_APPROVAL_STEP")
    problem = approval_problem(run.state, "second", ALICE)
    assert code_of(problem) == (409, "STEP_NOT_WAITING") and "not been reached" in str(problem)
    run.approve("first")
    problem = approval_problem(run.state, "first", ALICE)
    assert code_of(problem) == (409, "STEP_NOT_WAITING") and "completed already" in str(problem)
    assert run.approve("first").events == []  # a second decision records nothing
    run.send(CancelRequested(at(5)))
    assert code_of(approval_problem(run.state, "second", ALICE)) == (409, "EXECUTION_ALREADY_FINISHED")
    assert run.status("second") == "cancelled"  # it was waiting when the execution ended


def test_an_approval_that_times_out_fails_with_step_timeout_once() -> None:
    run = Run(build(approval("gate", timeout="1h"), retry={"max_attempts": 3}))
    (timer,) = [c for c in run.first.commands if isinstance(c, ScheduleTimer)]
    assert timer.fire_at == at(3600)
    decision = run.send(TimerElapsed(at(3600), timer.timer_id))
    assert types(decision) == ["timer.fired", "step.failed", "execution.failed"]
    gate = run.state.steps["gate"]
    assert gate.error_code == "STEP_TIMEOUT" and "waiting for a decision" in (gate.error or "")
    # a decision that comes later finds the step finished: nothing is recorded
    assert run.approve("gate", t=4000).events == []


def test_a_decision_in_time_disarms_the_timeout() -> None:
    run = Run(build(approval("gate", timeout=60)))
    (timer,) = [c for c in run.first.commands if isinstance(c, ScheduleTimer)]
    run.approve("gate", t=10)
    assert run.state.status == "completed" and not run.state.timers
    assert run.send(TimerElapsed(at(60), timer.timer_id)).events == []


def test_a_template_error_in_the_prompt_fails_the_step() -> None:
    run = Run(
        build(transform("a", {"x": 1}), approval("gate", "{{ steps.a.output.x + 'a' }}", depends_on=["a"]))
    )
    assert run.status("gate") == "failed" and run.state.status == "failed"


# -- signal steps -----------------------------------------------------------------------------------


def test_a_signal_step_waits_and_its_output_is_the_payload() -> None:
    run = Run(
        build(
            signal("paid", "payment"),
            transform("ship", "{{ steps.paid.output.amount }}", depends_on=["paid"]),
        )
    )
    assert run.status("paid") == "waiting"
    assert waiting_for(run.state) == [
        {
            "step": "paid",
            "kind": "signal",
            "prompt": None,
            "since": "2025-01-02T10:00:00.000Z",
            "signal": "payment",
        }
    ]
    decision = run.signal("payment", {"amount": 12}, key_id="key_9", user={"id": "stripe"})
    assert types(decision)[:2] == ["signal.received", "step.completed"]
    received = decision.events[0]
    assert isinstance(received, SignalReceived)
    assert (received.name, received.payload) == ("payment", {"amount": 12})
    assert received.sent_by == {"key_id": "key_9", "user": {"id": "stripe"}}
    assert run.state.output == {"final_result": 12} and run.state.signals == {}


def test_a_signal_sent_before_its_step_is_kept_and_consumed_when_it_starts() -> None:
    run = Run(
        build(
            {"name": "nap", "type": "wait", "duration": 60},
            signal("first", "go", depends_on=["nap"]),
            signal("second", "go", depends_on=["first"]),
        )
    )
    kept = run.signal("go", {"n": 1}, t=1)
    assert types(kept) == ["signal.received"]  # durable at once, consumed by nobody yet
    run.signal("go", {"n": 2}, t=2)
    assert [s.payload for s in run.state.signals["go"]] == [{"n": 1}, {"n": 2}]
    # two steps wait for "go" and two are kept: a third would never be read
    assert code_of(signal_problem(run.state, "go")) == (409, "SIGNAL_NOT_AWAITED")
    (nap,) = [c for c in run.first.commands if isinstance(c, ScheduleTimer)]
    run.send(TimerElapsed(at(60), nap.timer_id))
    assert run.state.status == "completed"  # each step took one, oldest first
    assert run.state.steps["first"].output == {"n": 1} and run.state.steps["second"].output == {"n": 2}
    assert run.state.signals == {}


def test_signals_nobody_waits_for_are_refused() -> None:
    run = Run(build(signal("paid", "payment"), transform("after", depends_on=["paid"])))
    assert code_of(signal_problem(run.state, "refund")) == (404, "SIGNAL_NOT_FOUND")
    assert run.signal("refund").events == []
    run.signal("payment", 1)
    assert code_of(signal_problem(run.state, "payment")) == (409, "EXECUTION_ALREADY_FINISHED")


def test_the_payload_schema_is_checked_before_anything_is_recorded() -> None:
    schema = {"type": "object", "required": ["amount"], "properties": {"amount": {"type": "number"}}}
    run = Run(build(signal("paid", "payment", schema=schema)))
    with pytest.raises(InvalidRequest) as refused:
        check_signal_payload(run.state, "payment", {"amount": "twelve"})
    assert refused.value.code == "INVALID_SIGNAL" and refused.value.status == 400
    assert refused.value.details == [
        {"field": "payload.amount", "message": "'twelve' is not of type 'number'"}
    ]
    with pytest.raises(InvalidRequest):
        check_signal_payload(run.state, "payment", None)
    check_signal_payload(run.state, "payment", {"amount": 12})


def test_a_signal_step_that_times_out_fails_with_step_timeout() -> None:
    run = Run(build(signal("paid", "payment", timeout="10s")))
    (timer,) = [c for c in run.first.commands if isinstance(c, ScheduleTimer)]
    run.send(TimerElapsed(at(10), timer.timer_id))
    paid = run.state.steps["paid"]
    assert paid.error_code == "STEP_TIMEOUT" and "waiting for a signal" in (paid.error or "")


def test_waiting_steps_run_beside_ordinary_work() -> None:
    wf = build(
        {"name": "search", "type": "mcp_query", "connector": "c", "statement": "s"},
        approval("gate"),
        transform("both", depends_on=["search", "gate"]),
    )
    run = Run(wf)
    assert [c.step for c in run.first.commands if isinstance(c, RunStep)] == ["search"]
    run.approve("gate")
    assert run.status("both") == "pending"
    run.send(StepSucceeded(at(2), "search", 1, {"ok": True}))
    assert run.state.status == "completed"


# -- definitions ------------------------------------------------------------------------------------


def test_definitions_are_checked_with_every_problem_named() -> None:
    with pytest.raises(InvalidWorkflow) as invalid:
        build(
            {"name": "a", "type": "approval"},
            approval("b", approvers="finance"),
            approval("c", on_reject="ignore"),
            approval("d", retry={"max_attempts": 2}),
            {"name": "e", "type": "signal"},
            signal("f", "has space"),
            signal("g", "ok", schema={"type": "nonsense"}),
            approval("h", duration=3),
        )
    fields = {d["field"] for d in invalid.value.details}
    assert fields >= {
        "workflow.spec.steps[0].prompt",
        "workflow.spec.steps[1].approvers",
        "workflow.spec.steps[2].on_reject",
        "workflow.spec.steps[3].retry",
        "workflow.spec.steps[4].signal",
        "workflow.spec.steps[5].signal",
        "workflow.spec.steps[6].schema",
        "workflow.spec.steps[7].duration",
    }


def test_eai_definitions_take_approval_and_signal_steps() -> None:
    document = parse_definition(
        {
            "id": "gated_analysis",
            "version": "1.0.0",
            "steps": [
                {"id": "fetch", "type": "resource_query", "connector": "projects-db", "query": "get_project"},
                {
                    "id": "review",
                    "name": "Review",
                    "type": "approval",
                    "prompt": "OK?",
                    "depends_on": ["fetch"],
                },
                {"id": "go", "type": "signal", "signal": "go", "depends_on": ["review"]},
                {"id": "analyze", "type": "ai_chat", "prompt": "Analyse", "depends_on": ["go"]},
            ],
        }
    )
    kinds = {step.name: step.kind for step in document.workflow.steps}
    assert kinds == {"fetch": "connector", "review": "approval", "go": "signal", "analyze": "llm"}


# ================================================================================= through the server

USER = {"id": "requester"}
V1 = "/api/v1/workflows"
EAI = "/api/eai/v3/orchestrate"


def start(api: httpx.Client, *steps: dict[str, Any], name: str = "gated", **spec: Any) -> dict[str, Any]:
    body = {
        "workflow": {"metadata": {"name": name}, "spec": {"steps": list(steps), **spec}},
        "user": USER,
        "async": True,
    }
    response = api.post(f"{V1}/execute", json=body)
    assert response.status_code == 202, response.text
    view: dict[str, Any] = response.json()
    return view


def get(api: httpx.Client, execution_id: str) -> dict[str, Any]:
    response = api.get(f"{V1}/executions/{execution_id}")
    assert response.status_code == 200, response.text
    view: dict[str, Any] = response.json()
    return view


def events(api: httpx.Client, execution_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = api.get(f"{V1}/executions/{execution_id}/events").json()["events"]
    return found


def step_status(api: httpx.Client, execution_id: str, step: str) -> str:
    return next(s["status"] for s in get(api, execution_id)["steps"] if s["name"] == step)


def finished(api: httpx.Client, execution_id: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        view = get(api, execution_id)
        return view if view["status"] not in ("pending", "running") else None

    result: dict[str, Any] = eventually(done, timeout=60)
    return result


def error(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


def decide_v1(
    api: httpx.Client, execution_id: str, step: str, approved: bool = True, **body: Any
) -> httpx.Response:
    return api.post(
        f"{V1}/executions/{execution_id}/approvals/{step}", json={"approved": approved, "user": ALICE, **body}
    )


def send_v1(api: httpx.Client, execution_id: str, name: str, payload: Any, **body: Any) -> httpx.Response:
    return api.post(
        f"{V1}/executions/{execution_id}/signals/{name}", json={"payload": payload, "user": USER, **body}
    )


@pytest.mark.ray
def test_v1_an_approval_waits_then_the_decision_finishes_it(api: httpx.Client) -> None:
    started = start(
        api,
        transform("quote", {"price": 420}),
        approval("gate", "Book for ${{ steps.quote.output.price }}?", depends_on=["quote"]),
        transform("book", "booked by {{ steps.gate.output.by }}", depends_on=["gate"]),
    )
    execution_id = started["id"]
    view = get(api, execution_id)
    assert view["status"] == "running"
    assert {s["name"]: s["status"] for s in view["steps"]} == {
        "quote": "completed",
        "gate": "waiting",
        "book": "pending",
    }
    (waiting,) = view["waiting_for"]
    assert (waiting["step"], waiting["kind"], waiting["prompt"]) == ("gate", "approval", "Book for $420?")
    assert waiting["since"].endswith("Z")

    decided = decide_v1(api, execution_id, "gate", comment="within budget")
    assert decided.status_code == 200, decided.text
    view = finished(api, execution_id)
    assert view["status"] == "completed" and view["waiting_for"] == []
    gate = next(s for s in view["steps"] if s["name"] == "gate")
    assert gate["output"]["approved"] is True and gate["output"]["comment"] == "within budget"
    assert gate["output"]["by"] == "alice" and gate["output"]["at"].endswith("Z")
    assert view["output"] == {"final_result": "booked by alice"}
    (record,) = [e for e in events(api, execution_id) if e["type"] == "approval.decided"]
    assert record["step"] == "gate"
    assert record["data"]["decided_by"] == {"key_id": None, "user": ALICE}
    assert record["data"]["approved"] is True


@pytest.mark.ray
def test_v1_a_rejection_fails_the_execution(api: httpx.Client) -> None:
    execution_id = start(api, approval("gate"), transform("book", depends_on=["gate"]))["id"]
    assert decide_v1(api, execution_id, "gate", approved=False, comment="no").status_code == 200
    view = finished(api, execution_id)
    assert view["status"] == "failed" and "rejected by 'alice': no" in view["error"]
    failed = [e for e in events(api, execution_id) if e["type"] == "step.failed"]
    assert [(e["step"], e["data"]["code"]) for e in failed] == [("gate", "APPROVAL_REJECTED")]


@pytest.mark.ray
def test_v1_approvers_refuse_other_users_with_403(api: httpx.Client) -> None:
    execution_id = start(api, approval("gate", approvers=["carol", "finance"]))["id"]
    refused = decide_v1(api, execution_id, "gate", user=BOB)
    assert error(refused) == (403, "APPROVER_NOT_ALLOWED")
    assert refused.json()["error"]["details"]["approvers"] == ["carol", "finance"]
    assert not [e for e in events(api, execution_id) if e["type"] == "approval.decided"]
    assert decide_v1(api, execution_id, "gate", user=ALICE).status_code == 200  # by role
    assert finished(api, execution_id)["status"] == "completed"


@pytest.mark.ray
def test_v1_what_cannot_be_approved_answers_with_a_code_that_says_why(api: httpx.Client) -> None:
    execution_id = start(
        api,
        approval("first"),
        approval("second", depends_on=["first"]),
        transform("x", depends_on=["second"]),
    )["id"]
    assert error(decide_v1(api, execution_id, "nope")) == (404, "STEP_NOT_FOUND")
    assert error(decide_v1(api, execution_id, "x")) == (409, "NOT_AN_APPROVAL_STEP")
    not_yet = decide_v1(api, execution_id, "second")
    assert error(not_yet) == (409, "STEP_NOT_WAITING")
    assert not_yet.json()["error"]["details"]["status"] == "pending"
    missing_user = api.post(f"{V1}/executions/{execution_id}/approvals/first", json={"approved": True})
    assert error(missing_user) == (400, "MISSING_USER_CONTEXT")
    not_a_bool = decide_v1(api, execution_id, "first", approved="yes")  # type: ignore[arg-type]
    assert error(not_a_bool) == (400, "INVALID_REQUEST")
    assert decide_v1(api, execution_id, "first").status_code == 200
    twice = decide_v1(api, execution_id, "first")
    assert (
        error(twice) == (409, "STEP_NOT_WAITING")
        and twice.json()["error"]["details"]["status"] == "completed"
    )
    assert api.post(f"{V1}/executions/{execution_id}/cancel").status_code == 202
    assert error(decide_v1(api, execution_id, "second")) == (409, "EXECUTION_ALREADY_FINISHED")
    assert error(decide_v1(api, "wf_exec_doesnotexist", "first")) == (404, "EXECUTION_NOT_FOUND")
    cancelled = get(api, execution_id)
    assert {s["name"]: s["status"] for s in cancelled["steps"]}["second"] == "cancelled"


@pytest.mark.ray
def test_v1_an_approval_that_nobody_decides_times_out(api: httpx.Client) -> None:
    execution_id = start(api, approval("gate", timeout="1s"))["id"]
    view = finished(api, execution_id)
    assert view["status"] == "failed"
    failed = [e for e in events(api, execution_id) if e["type"] == "step.failed"]
    assert [(e["step"], e["data"]["code"]) for e in failed] == [("gate", "STEP_TIMEOUT")]
    assert error(decide_v1(api, execution_id, "gate")) == (409, "EXECUTION_ALREADY_FINISHED")


@pytest.mark.ray
def test_v1_a_signal_sent_before_its_step_is_kept_and_consumed(api: httpx.Client) -> None:
    execution_id = start(
        api,
        {"name": "nap", "type": "wait", "duration": "2s"},
        signal("paid", "payment", depends_on=["nap"]),
        transform("ship", "{{ steps.paid.output.amount }}", depends_on=["paid"]),
    )["id"]
    sent = send_v1(api, execution_id, "payment", {"amount": 12})
    assert sent.status_code == 202, sent.text
    assert {s["name"]: s["status"] for s in sent.json()["steps"]}["paid"] == "pending"  # not reached yet
    (received,) = [e for e in events(api, execution_id) if e["type"] == "signal.received"]
    assert received["data"] == {
        "name": "payment",
        "payload": {"amount": 12},
        "sent_by": {"key_id": None, "user": USER},
    }
    # its one step has a signal kept for it: a second would never be read
    assert error(send_v1(api, execution_id, "payment", {"amount": 13})) == (409, "SIGNAL_NOT_AWAITED")
    view = finished(api, execution_id)
    assert view["status"] == "completed" and view["output"] == {"final_result": 12}
    paid = next(s for s in view["steps"] if s["name"] == "paid")
    assert paid["output"] == {"amount": 12}


@pytest.mark.ray
def test_v1_a_waiting_signal_step_completes_when_the_signal_comes(api: httpx.Client) -> None:
    schema = {"type": "object", "required": ["amount"], "properties": {"amount": {"type": "number"}}}
    execution_id = start(api, signal("paid", "payment", schema=schema, description="Stripe says paid"))["id"]
    (waiting,) = get(api, execution_id)["waiting_for"]
    assert (waiting["kind"], waiting["signal"], waiting["prompt"]) == (
        "signal",
        "payment",
        "Stripe says paid",
    )
    before = len(events(api, execution_id))
    invalid = send_v1(api, execution_id, "payment", {"amount": "twelve"})
    assert error(invalid) == (400, "INVALID_SIGNAL")
    assert invalid.json()["error"]["details"][0]["field"] == "payload.amount"
    assert len(events(api, execution_id)) == before  # recorded nowhere
    assert error(send_v1(api, execution_id, "refund", {})) == (404, "SIGNAL_NOT_FOUND")
    assert step_status(api, execution_id, "paid") == "waiting"
    assert send_v1(api, execution_id, "payment", {"amount": 12}).status_code == 202
    view = finished(api, execution_id)
    assert view["status"] == "completed" and view["output"] == {"final_result": {"amount": 12}}
    assert error(send_v1(api, execution_id, "payment", {"amount": 1})) == (409, "EXECUTION_ALREADY_FINISHED")


@pytest.mark.ray
def test_eai_workflows_take_approvals_and_signals(api: httpx.Client) -> None:
    definition = {
        "name": "Reviewed project analysis",
        "version": "1.0.0",
        "input_schema": {"type": "object", "required": ["projectId"]},
        "steps": [
            {
                "id": "fetch_project",
                "type": "resource_query",
                "resource": "projects-db",
                "query": "get_project",
                "parameters": {"project_id": "{{ input.projectId }}"},
            },
            {
                "id": "review",
                "name": "Review the figures",
                "type": "approval",
                "prompt": "Analyse {{ steps.fetch_project.output.name }}?",
                "approvers": ["finance"],
                "depends_on": ["fetch_project"],
            },
            {"id": "audience", "type": "signal", "signal": "audience", "depends_on": ["review"]},
            {
                "id": "analyze",
                "type": "ai_chat",
                "prompt": "Summarise {{ steps.fetch_project.output.name }} for {{ steps.audience.output.who }}",
                "depends_on": ["audience"],
            },
        ],
    }
    registered = api.put(f"{EAI}/workflows/reviewed_analysis", json=definition)
    assert registered.status_code in (200, 201), registered.text
    started = api.post(
        f"{EAI}/workflows/reviewed_analysis/execute", json={"input": {"projectId": "proj_123"}, "async": True}
    )
    assert started.status_code == 202, started.text
    execution_id = started.json()["id"]

    def waiting_review() -> dict[str, Any] | None:
        view: dict[str, Any] = api.get(f"{EAI}/executions/{execution_id}").json()
        return view if view["waitingFor"] else None

    view = eventually(waiting_review, timeout=60)
    assert {s["stepId"]: s["state"] for s in view["steps"]}["review"] == "waiting"
    (waiting,) = view["waitingFor"]
    assert waiting["stepId"] == "review" and waiting["approvers"] == ["finance"]
    assert waiting["prompt"].startswith("Analyse ")

    # the signal comes early: kept until the review is done
    signalled = api.post(
        f"{EAI}/executions/{execution_id}/signals/audience",
        json={"payload": {"who": "the board"}, "user": USER},
    )
    assert signalled.status_code == 202, signalled.text
    assert {s["stepId"]: s["state"] for s in signalled.json()["steps"]}["audience"] == "pending"
    refused = api.post(
        f"{EAI}/executions/{execution_id}/approvals/review", json={"approved": True, "user": BOB}
    )
    assert error(refused) == (403, "APPROVER_NOT_ALLOWED")
    approved = api.post(
        f"{EAI}/executions/{execution_id}/approvals/review", json={"approved": True, "user": ALICE}
    )
    assert approved.status_code == 200, approved.text
    assert approved.json()["id"] == execution_id  # camelCase view

    def done() -> dict[str, Any] | None:
        view: dict[str, Any] = api.get(f"{EAI}/executions/{execution_id}").json()
        return view if view["state"] not in ("pending", "running") else None

    final = eventually(done, timeout=60)
    assert final["state"] == "completed", final
    steps = {s["stepId"]: s for s in final["steps"]}
    assert steps["audience"]["output"] == {"who": "the board"}
    assert steps["review"]["output"]["by"] == "alice"
    unknown = api.post(
        f"{EAI}/executions/{execution_id}/approvals/nope", json={"approved": True, "user": ALICE}
    )
    assert error(unknown) == (404, "STEP_NOT_FOUND")


# ---------------------------------------------------------------------------------- kill -9 and restart


def recorded(data_dir: Path, execution_id: str) -> list[str]:
    """Event types of the execution in this server's own SQLite file: what is on disk, and proof that
    the server answering is the one we started."""
    with contextlib.closing(sqlite3.connect(data_dir / "orchestrator.db")) as db:
        rows = db.execute("SELECT type FROM events WHERE execution_id = ? ORDER BY seq", (execution_id,))
        return [row[0] for row in rows]


@pytest.mark.ray
def test_a_waiting_execution_survives_kill_9_and_finishes_when_approved_after_the_restart(
    tmp_path: Path, server: ServerInfo
) -> None:
    """The whole server dies by SIGKILL while an approval waits and an early signal is kept; after a
    restart the approval is decided, the kept signal is consumed, and the execution completes."""
    del server  # only for ordering: the session's Ray instance is up, this test runs a second one
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    port = free_port()
    workflow = {
        "metadata": {"name": "kill-9-gate"},
        "spec": {
            "steps": [
                approval("gate", "Ship it?"),
                signal("carrier", "carrier", depends_on=["gate"]),
                transform("ship", "{{ steps.carrier.output.name }}", depends_on=["carrier"]),
            ]
        },
    }
    namespace = "orchestrator-kill9-approvals"
    with (
        server_process(port, data_dir, namespace) as process,
        httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client,
    ):
        execution_id = client.post(
            f"{V1}/execute", json={"workflow": workflow, "user": USER, "async": True}
        ).json()["id"]
        eventually(lambda: step_status(client, execution_id, "gate") == "waiting")
        assert send_v1(client, execution_id, "carrier", {"name": "DHL"}).status_code == 202
        assert recorded(data_dir, execution_id) == ["execution.started", "step.started", "signal.received"]
        kill_session(process.pid)

    with (
        server_process(port, data_dir, namespace),
        httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client,
    ):
        view = get(client, execution_id)
        assert view["status"] == "running" and [w["step"] for w in view["waiting_for"]] == ["gate"]
        approved = eventually(lambda: (r := decide_v1(client, execution_id, "gate")).status_code == 200 and r)
        assert approved.json()["id"] == execution_id
        view = finished(client, execution_id)
        assert view["status"] == "completed" and view["output"] == {"final_result": "DHL"}
        log = events(client, execution_id)
        assert [e["seq"] for e in log] == list(range(1, len(log) + 1))
        assert [e["type"] for e in log].count("signal.received") == 1
        assert [e["type"] for e in log].count("approval.decided") == 1
        assert recorded(data_dir, execution_id)[-1] == "execution.completed"

"""The execution's decisions: given its state and what just happened, what to record and what to do.

``decide(state, trigger) -> Decision`` is pure: no clock (``trigger.now``), no I/O, no Ray. Steps that
need no I/O (``transform``, ``condition``, ``parallel`` bookkeeping) are decided right here, so a chain
of them costs one store append, not one round trip per step. Steps that do I/O become ``RunStep``
commands; durable timers become ``ScheduleTimer`` commands backed by ``timer.scheduled`` events.

Scheduling rules:
- a step is ready when it is pending, its container (if any) is running and has chosen its branch,
  and every effective dependency is ``completed`` or ``skipped`` (a skipped dependency gives ``null``);
- containers (``parallel``, ``condition``) complete when all their children are done;
- the first step failure (after retries) fails the execution; running steps are cancelled;
- cancellation and timeouts end the execution at once and cancel its unfinished steps;
- ``approval`` and ``signal`` steps wait (status ``waiting``) for a decision or a signal, with only a
  timeout timer armed; :mod:`orchestrator.core.signals` says when one may be taken, and a trigger it
  refuses records nothing.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from orchestrator.core.definitions import WAITING_KINDS, StepDef, WorkflowDef
from orchestrator.core.events import (
    ApprovalDecided,
    Event,
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
)
from orchestrator.core.signals import approval_problem, signal_problem, signal_steps
from orchestrator.core.state import STEP_DONE, STEP_OK, ExecutionState, StepState, evolve
from orchestrator.core.templates import TemplateError, evaluate_condition, render_value

EXECUTION_TIMER = "execution/timeout"

# -- triggers --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Start:
    now: datetime
    workflow: WorkflowDef
    input: dict[str, Any] = field(default_factory=dict)
    user: dict[str, Any] = field(default_factory=dict)
    tenant_id: str = "default"
    timeout: float | None = None  # request timeout; the shorter of it and spec.timeout wins
    workflow_id: str | None = None
    workflow_version: str | None = None
    dialect: str = "v1"
    metadata: dict[str, Any] = field(default_factory=dict)
    placement: str = "pooled"
    idempotency_key: str | None = None
    request_hash: str | None = None  # fingerprint of the request body, bound with the idempotency key
    key_id: str | None = None  # the API key that started it (None when auth is off)


@dataclass(frozen=True)
class StepSucceeded:
    now: datetime
    step: str
    attempt: int
    output: Any


@dataclass(frozen=True)
class StepErrored:
    now: datetime
    step: str
    attempt: int
    error: str
    code: str = "STEP_FAILED"
    retryable: bool = True


@dataclass(frozen=True)
class TimerElapsed:
    now: datetime
    timer_id: str


@dataclass(frozen=True)
class CancelRequested:
    now: datetime
    reason: str = "Execution was cancelled"
    key_id: str | None = None  # who asked: the API key (None when auth is off) ...
    user: dict[str, Any] | None = None  # ... and the user context of the request, if it had one


@dataclass(frozen=True)
class Resume:
    """After a restart: re-issue in-flight work and re-arm timers; records nothing by itself."""

    now: datetime


@dataclass(frozen=True)
class SignalSent:
    """A signal arrived for the execution (``POST .../signals/{name}``)."""

    now: datetime
    name: str
    payload: Any = None
    key_id: str | None = None  # who sent it: the API key (None when auth is off) ...
    user: dict[str, Any] | None = None  # ... and the user context of the request


@dataclass(frozen=True)
class ApprovalSubmitted:
    """Someone decided an approval step (``POST .../approvals/{step}``)."""

    now: datetime
    step: str
    approved: bool
    comment: str | None = None
    key_id: str | None = None
    user: dict[str, Any] | None = None


Trigger = (
    Start
    | StepSucceeded
    | StepErrored
    | TimerElapsed
    | CancelRequested
    | Resume
    | SignalSent
    | ApprovalSubmitted
)

# -- commands --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunStep:
    step: str
    kind: str  # connector | llm
    attempt: int
    request: dict[str, Any]
    context: dict[str, Any]  # outputs of the step's dependencies (LLM prompts get them)
    idempotency_key: str
    timeout: float | None = None


@dataclass(frozen=True)
class ScheduleTimer:
    timer_id: str
    fire_at: datetime


@dataclass(frozen=True)
class CancelStep:
    step: str


Command = RunStep | ScheduleTimer | CancelStep


@dataclass
class Decision:
    state: ExecutionState
    events: list[Event] = field(default_factory=list)
    commands: list[Command] = field(default_factory=list)


# -- decide ----------------------------------------------------------------------------------------


def decide(state: ExecutionState, trigger: Trigger) -> Decision:
    """Never mutates ``state``; the returned ``Decision.state`` has the new events applied."""
    decision = _Decider(state.clone(), trigger.now)
    match trigger:
        case Start():
            decision.start(trigger)
        case StepSucceeded():
            decision.step_succeeded(trigger)
        case StepErrored():
            decision.step_errored(trigger)
        case TimerElapsed():
            decision.timer_elapsed(trigger.timer_id)
        case CancelRequested():
            decision.cancel(trigger.reason, requested_by={"key_id": trigger.key_id, "user": trigger.user})
        case Resume():
            decision.resume()
        case SignalSent():
            decision.signal(trigger)
        case ApprovalSubmitted():
            decision.approval(trigger)
    return decision.result


class _Decider:
    def __init__(self, state: ExecutionState, now: datetime) -> None:
        self.result = Decision(state)
        self.state = state
        self.now = now
        self._context: dict[str, Any] | None = None  # built once, kept current by record()
        self._failed: str | None = next((s.name for s in state.steps.values() if s.status == "failed"), None)
        self._touched: set[str] = set()  # steps whose events were recorded since advance() last looked

    @property
    def workflow(self) -> WorkflowDef:
        assert self.state.workflow is not None
        return self.state.workflow

    def record(self, event_type: type[Any], *, definition: WorkflowDef | None = None, **fields: Any) -> None:
        event = event_type(seq=self.state.last_seq + 1, timestamp=self.now, **fields)
        evolve(self.state, event, definition=definition)
        self.result.events.append(event)
        step = fields.get("step")
        if step is not None and step in self.state.steps:
            self._touched.add(step)
            if self.state.steps[step].status == "failed":
                self._failed = self._failed or step
            if self._context is not None:
                self._context["steps"][step] = _step_view(self.state.steps[step])

    def command(self, command: Command) -> None:
        self.result.commands.append(command)

    # -- triggers ----------------------------------------------------------------------------------

    def start(self, trigger: Start) -> None:
        if self.state.last_seq:
            return
        workflow = trigger.workflow
        self.record(
            ExecutionStarted,
            # the state keeps the validated definition itself (and the properties it has worked out)
            definition=workflow,
            workflow=workflow.document,
            input=trigger.input,
            user=trigger.user,
            tenant_id=trigger.tenant_id,
            workflow_id=trigger.workflow_id,
            workflow_version=trigger.workflow_version,
            dialect=trigger.dialect,
            metadata=trigger.metadata,
            placement=trigger.placement,
            idempotency_key=trigger.idempotency_key,
            request_hash=trigger.request_hash,
            started_by={"key_id": trigger.key_id, "user": trigger.user},
        )
        limits = [t for t in (workflow.timeout, trigger.timeout) if t is not None]
        if limits:
            self.schedule(EXECUTION_TIMER, "execution_timeout", self.now + timedelta(seconds=min(limits)))
        self.advance()

    def step_succeeded(self, trigger: StepSucceeded) -> None:
        step = self.state.steps.get(trigger.step)
        if self.state.terminal or step is None or step.status != "running" or step.attempt != trigger.attempt:
            return  # stale: a cancelled, timed-out or superseded attempt
        if step.retry_at is not None:
            return
        self.record(StepCompleted, step=trigger.step, attempt=trigger.attempt, output=trigger.output)
        self.advance()

    def step_errored(self, trigger: StepErrored) -> None:
        step = self.state.steps.get(trigger.step)
        # a waiting step errs only when what it received cannot be stored (the mailbox's _fail_instead)
        if (
            self.state.terminal
            or step is None
            or step.status not in ("running", "waiting")
            or step.attempt != trigger.attempt
        ):
            return
        if step.retry_at is not None:
            return
        self.fail_attempt(trigger.step, trigger.error, trigger.code, trigger.retryable)
        self.advance()

    def timer_elapsed(self, timer_id: str) -> None:
        timer = self.state.timers.get(timer_id)
        if timer is None or self.state.terminal:
            return
        self.record(TimerFired, timer_id=timer_id, step=timer.step)
        if timer.kind == "execution_timeout":
            self.end_running()
            assert self.state.started_at is not None
            limit = (timer.fire_at - self.state.started_at).total_seconds()
            self.record(ExecutionTimedOut, error=f"Execution exceeded its timeout of {limit:g}s")
            return
        assert timer.step is not None
        step_def = self.workflow.by_name[timer.step]
        if timer.kind == "wait":
            self.record(StepCompleted, step=timer.step, output={"waited_seconds": step_def.duration})
        elif timer.kind == "step_timeout":
            self.command(CancelStep(timer.step))
            waited = step_def.kind in WAITING_KINDS  # nobody answered: asking again would not help
            self.fail_attempt(
                timer.step,
                f"Step {timer.step!r} timed out after {step_def.timeout:g}s"
                + (
                    f" waiting for {'a decision' if step_def.kind == 'approval' else 'a signal'}"
                    if waited
                    else ""
                ),
                "STEP_TIMEOUT",
                not waited,
            )
        elif timer.kind == "retry":
            self.start_step(step_def, attempt=self.state.steps[timer.step].attempt + 1)
        self.advance()

    def cancel(self, reason: str, *, requested_by: dict[str, Any] | None = None) -> None:
        if self.state.terminal:
            return
        self.record(ExecutionCancelRequested, reason=reason, requested_by=requested_by)
        self.end_running()
        self.record(ExecutionCancelled, reason=reason)

    def signal(self, trigger: SignalSent) -> None:
        if signal_problem(self.state, trigger.name) is not None:
            return  # refused (the mailbox raised the problem to the sender before deciding)
        self.record(
            SignalReceived,
            name=trigger.name,
            payload=trigger.payload,
            sent_by={"key_id": trigger.key_id, "user": trigger.user},
        )
        for step_def in signal_steps(self.state, trigger.name):
            step = self.state.steps[step_def.name]
            if step.status == "waiting":  # the first one waiting consumes it; else it is kept
                self.record(StepCompleted, step=step_def.name, attempt=step.attempt, output=trigger.payload)
                self.advance()
                return

    def approval(self, trigger: ApprovalSubmitted) -> None:
        if approval_problem(self.state, trigger.step, trigger.user) is not None:
            return
        name = trigger.step
        step = self.state.steps[name]
        self.record(
            ApprovalDecided,
            step=name,
            approved=trigger.approved,
            comment=trigger.comment,
            decided_by={"key_id": trigger.key_id, "user": trigger.user},
        )
        if trigger.approved or self.workflow.by_name[name].on_reject == "continue":
            self.record(StepCompleted, step=name, attempt=step.attempt, output=step.output)
        else:
            who = (trigger.user or {}).get("id")
            because = f": {trigger.comment}" if trigger.comment else ""
            self.record(
                StepFailed,
                step=name,
                attempt=step.attempt,
                error=f"Step {name!r} was rejected by {who!r}{because}",
                code="APPROVAL_REJECTED",
            )
        self.advance()

    def resume(self) -> None:
        if self.state.terminal:
            return
        if self.state.cancel_requested:  # finish the cancellation; never restart cancelled work
            self.end_running()
            self.record(ExecutionCancelled, reason="Execution was cancelled")
            return
        for timer in self.state.timers.values():
            self.command(ScheduleTimer(timer.timer_id, timer.fire_at))
        for step_def in self.workflow.steps:
            step = self.state.steps[step_def.name]
            if step.status == "running" and step.retry_at is None and step_def.kind in ("connector", "llm"):
                self.command(self.run_command(step_def, step.attempt))
        self.advance()

    # -- mechanics ---------------------------------------------------------------------------------

    def schedule(self, timer_id: str, kind: str, fire_at: datetime, step: str | None = None) -> None:
        self.record(TimerScheduled, timer_id=timer_id, kind=kind, fire_at=fire_at, step=step)
        self.command(ScheduleTimer(timer_id, fire_at))

    def end_running(self) -> None:
        for name, step in self.state.steps.items():
            if step.status == "running" and self.workflow.by_name[name].kind in ("connector", "llm"):
                self.command(CancelStep(name))

    def fail_attempt(self, name: str, error: str, code: str, retryable: bool) -> None:
        step = self.state.steps[name]
        step_def = self.workflow.by_name[name]
        policy = self.workflow.retry_for(step_def)
        if retryable and step.attempt < policy.max_attempts and code not in policy.non_retryable:
            next_at = self.now + timedelta(seconds=policy.delay(step.attempt))
            self.record(
                StepRetrying, step=name, attempt=step.attempt, error=error, code=code, next_attempt_at=next_at
            )
            self.schedule(f"{name}/retry/{step.attempt}", "retry", next_at, step=name)
            return
        self.record(StepFailed, step=name, attempt=step.attempt, error=error, code=code)

    def advance(self) -> None:
        """Start what is ready, settle containers, and finish the execution when it is done.

        Passes over the steps in definition order until one makes no progress, as if every step were
        checked on every pass; but a pass checks only the steps something they wait on touched (a
        worklist), so a chain written in reverse order costs O(n), not O(n^2).
        """
        workflow = self.workflow
        index, affected = workflow.index, workflow.affected
        candidates: set[str] = set(index)
        while not self.state.terminal:
            failed = self.state.steps[self._failed] if self._failed else None
            if failed is not None:
                self.end_running()
                self.record(
                    ExecutionFailed, step=failed.name, error=f"Step {failed.name!r} failed: {failed.error}"
                )
                return
            progressed = False
            queue = [(index[name], name) for name in candidates]
            heapq.heapify(queue)
            queued = set(candidates)
            candidates = set()
            while queue:
                position, name = heapq.heappop(queue)
                step_def = workflow.by_name[name]
                step = self.state.steps[name]
                self._touched.clear()
                if step.status == "pending" and self.ready(step_def):
                    self.start_step(step_def, attempt=1)
                    progressed = True
                elif step.status == "running" and step_def.children and self.children_done(step_def):
                    self.complete_container(step_def)
                    progressed = True
                if self.state.terminal or self._failed:
                    break
                for touched in self._touched:
                    for other in affected.get(touched, ()):
                        if index[other] > position and other not in queued:
                            heapq.heappush(queue, (index[other], other))  # later in this pass
                            queued.add(other)
                        elif index[other] <= position:
                            candidates.add(other)  # the next pass
            if not progressed:
                break
        if not self.state.terminal and all(s.status in STEP_DONE for s in self.state.steps.values()):
            self.complete_execution()

    def ready(self, step_def: StepDef) -> bool:
        if step_def.parent is not None:
            parent = self.state.steps[step_def.parent]
            if parent.status != "running":
                return False
            if step_def.branch is not None and (parent.request or {}).get("branch") != step_def.branch:
                return False
        deps = self.workflow.dependencies[step_def.name]
        return all(self.state.steps[dep].status in STEP_OK for dep in deps)

    def children_done(self, step_def: StepDef) -> bool:
        if step_def.kind == "condition" and self.state.steps[step_def.name].request is None:
            return False
        return all(self.state.steps[child].status in STEP_DONE for child in step_def.children)

    def start_step(self, step_def: StepDef, *, attempt: int) -> None:
        name = step_def.name
        kind = step_def.kind
        if kind in ("connector", "llm"):
            try:
                command = self.run_command(step_def, attempt)
            except TemplateError as exc:
                self.record(StepStarted, step=name, attempt=attempt)
                self.record(StepFailed, step=name, attempt=attempt, error=str(exc), code=exc.code)
                return
            self.record(
                StepStarted,
                step=name,
                attempt=attempt,
                idempotency_key=command.idempotency_key,
                request=command.request,
            )
            if step_def.timeout is not None:
                fire_at = self.now + timedelta(seconds=step_def.timeout)
                self.schedule(f"{name}/timeout/{attempt}", "step_timeout", fire_at, step=name)
            self.command(command)
            return
        if kind == "condition":
            self.start_condition(step_def, attempt)
            return
        if kind in WAITING_KINDS:
            self.start_waiting(step_def, attempt)
            return
        self.record(StepStarted, step=name, attempt=attempt)
        if kind == "wait":
            fire_at = self.now + timedelta(seconds=step_def.duration or 0.0)
            self.schedule(f"{name}/wait", "wait", fire_at, step=name)
        elif kind == "transform":
            try:
                output = render_value(step_def.value, self.template_context())
            except TemplateError as exc:
                self.record(StepFailed, step=name, attempt=attempt, error=str(exc), code=exc.code)
                return
            self.record(StepCompleted, step=name, attempt=attempt, output=output)

    def start_waiting(self, step_def: StepDef, attempt: int) -> None:
        """An approval asks its (rendered) prompt; a signal step takes the oldest signal kept for its
        name, or waits. Either waits with no work in flight, only its timeout timer armed."""
        name = step_def.name
        request: dict[str, Any]
        if step_def.kind == "approval":
            try:
                prompt = render_value(step_def.prompt, self.template_context())
            except TemplateError as exc:
                self.record(StepStarted, step=name, attempt=attempt)
                self.record(StepFailed, step=name, attempt=attempt, error=str(exc), code=exc.code)
                return
            request = {"prompt": prompt if isinstance(prompt, str) else str(prompt)}
            if step_def.approvers:
                request["approvers"] = list(step_def.approvers)
        else:
            request = {"signal": step_def.signal}
        self.record(StepStarted, step=name, attempt=attempt, request=request)
        kept = self.state.signals.get(step_def.signal or "") if step_def.kind == "signal" else None
        if kept:
            self.record(StepCompleted, step=name, attempt=attempt, output=kept[0].payload)
            return
        if step_def.timeout is not None:
            fire_at = self.now + timedelta(seconds=step_def.timeout)
            self.schedule(f"{name}/timeout/{attempt}", "step_timeout", fire_at, step=name)

    def start_condition(self, step_def: StepDef, attempt: int) -> None:
        name = step_def.name
        assert step_def.condition is not None
        try:
            result = evaluate_condition(step_def.condition, self.template_context())
        except TemplateError as exc:
            self.record(StepStarted, step=name, attempt=attempt)
            self.record(StepFailed, step=name, attempt=attempt, error=str(exc), code=exc.code)
            return
        branch = "if_true" if result else "if_false"
        # the chosen branch is recorded before any child runs, so a replay takes the same one
        self.record(StepStarted, step=name, attempt=attempt, request={"result": result, "branch": branch})
        untaken = step_def.if_false if result else step_def.if_true
        for child in untaken:
            for skipped in [child, *self.workflow.descendants(child)]:
                self.record(StepSkipped, step=skipped, reason=f"branch {branch!r} of {name!r} was taken")

    def complete_container(self, step_def: StepDef) -> None:
        step = self.state.steps[step_def.name]
        if step_def.kind == "parallel":
            output: Any = {child: self.state.steps[child].output for child in step_def.steps}
        else:
            output = step.request
        self.record(StepCompleted, step=step_def.name, attempt=step.attempt, output=output)

    def run_command(self, step_def: StepDef, attempt: int) -> RunStep:
        context = self.template_context()
        if step_def.kind == "connector":
            request: dict[str, Any] = {
                "connector": step_def.connector,
                "statement": step_def.statement,
                "mode": step_def.mode,
                "parameters": render_value(step_def.parameters, context),
            }
        else:
            request = {"prompt": render_value(step_def.prompt, context) if step_def.prompt else ""}
            for key in ("system", "messages"):
                value = getattr(step_def, key)
                if value is not None:
                    request[key] = render_value(value, context)
            for key in ("agent", "model", "max_tokens", "temperature", "output_schema"):
                value = getattr(step_def, key)
                if value is not None:
                    request[key] = value
        deps = self.workflow.dependencies[step_def.name]
        return RunStep(
            step=step_def.name,
            kind=step_def.kind,
            attempt=attempt,
            request=request,
            context={dep: self.state.steps[dep].output for dep in deps},
            idempotency_key=f"{self.state.execution_id}/{step_def.name}/{attempt}",
            timeout=step_def.timeout,
        )

    def complete_execution(self) -> None:
        workflow = self.workflow
        try:
            if workflow.output is not None:
                output = render_value(workflow.output, self.template_context())
            elif len(workflow.sinks) == 1:
                output = {"final_result": self.state.steps[workflow.sinks[0]].output}
            else:
                output = {name: self.state.steps[name].output for name in workflow.sinks}
        except TemplateError as exc:
            self.record(ExecutionFailed, error=f"Cannot render the workflow output: {exc}")
            return
        self.record(ExecutionCompleted, output=output)

    def template_context(self) -> dict[str, Any]:
        if self._context is None:
            self._context = template_context(self.state)
        return self._context


def template_context(state: ExecutionState) -> dict[str, Any]:
    """Names available to templates: input, steps.<name>.output/.status, user, execution."""
    return {
        "input": state.input,
        "steps": {name: _step_view(step) for name, step in state.steps.items()},
        "user": state.user,
        "execution": {
            "id": state.execution_id,
            "workflow_name": state.workflow.name if state.workflow else None,
            "tenant_id": state.tenant_id,
            "started_at": state.started_at.isoformat() if state.started_at else None,
        },
    }


def _step_view(step: StepState) -> dict[str, Any]:
    return {"output": step.output, "status": step.status, "error": step.error}

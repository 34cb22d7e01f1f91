"""People and the outside world in the loop: what ``approval`` and ``signal`` steps wait for, and whether a
decision or a signal may be taken now. Pure functions of an execution's folded state.

- An ``approval`` step waits (status ``waiting``) until someone decides. The decision is recorded as
  ``approval.decided`` (who, when, what) and becomes the step's output ``{approved, comment, by, at}``;
  a rejection fails the step with ``APPROVAL_REJECTED`` unless the step says ``on_reject: continue``.
- A ``signal`` step waits for a named signal; its output is the signal's payload. A signal is recorded
  (``signal.received``) the moment it arrives: a step waiting for its name consumes it at once, else it
  is kept in the fold (``ExecutionState.signals``) and the next step of that name to start consumes the
  oldest one (Temporal's semantics). A signal nobody could ever consume is refused instead of kept.

The same checks run twice: in the ingress on the state it read (a clear answer without an actor call,
and the payload's schema checked before anything is recorded) and in the execution's mailbox on the
authoritative state, where :func:`orchestrator.core.decide.decide` records nothing for a trigger they
refuse.

Errors (codes)
    EXECUTION_ALREADY_FINISHED  409  the execution is terminal
    STEP_NOT_FOUND              404  no step of that name
    NOT_AN_APPROVAL_STEP        409  the step is not an ``approval`` step
    APPROVER_NOT_ALLOWED        403  the step names its approvers and the user is none of them
    STEP_NOT_WAITING            409  the approval step is not waiting (not reached yet, or decided)
    SIGNAL_NOT_FOUND            404  no ``signal`` step of the workflow waits for that name
    SIGNAL_NOT_AWAITED          409  every step of that name has finished or has a signal kept for it
    INVALID_SIGNAL              400  the payload does not satisfy the step's schema (recorded nowhere)
"""

from __future__ import annotations

from typing import Any

import jsonschema

from orchestrator.core.definitions import StepDef
from orchestrator.core.errors import Conflict, Forbidden, InvalidRequest, NotFound, OrchestratorError
from orchestrator.core.state import ExecutionState
from orchestrator.core.timestamps import format_timestamp

__all__ = [
    "approval_problem",
    "check_signal_payload",
    "is_approver",
    "raise_if",
    "signal_problem",
    "signal_steps",
    "waiting_for",
]

# Steps that may still consume a signal of their name.
_OPEN = frozenset({"pending", "waiting"})


def waiting_for(state: ExecutionState) -> list[dict[str, Any]]:
    """``[{step, kind, prompt, since, ...}]`` of the steps waiting now, in definition order; an approval
    adds its ``approvers``, a signal step its ``signal`` name (its ``prompt`` is its description)."""
    if state.workflow is None:
        return []
    waiting: list[dict[str, Any]] = []
    for step_def in state.workflow.steps:
        step = state.steps[step_def.name]
        if step.status != "waiting":
            continue
        entry: dict[str, Any] = {
            "step": step_def.name,
            "kind": step_def.kind,
            "prompt": (step.request or {}).get("prompt", step_def.prompt),
            "since": format_timestamp(step.started_at) if step.started_at else None,
        }
        if step_def.kind == "approval":
            entry["approvers"] = list(step_def.approvers)
        else:
            entry["prompt"] = step_def.description
            entry["signal"] = step_def.signal
        waiting.append(entry)
    return waiting


def is_approver(step_def: StepDef, user: dict[str, Any] | None) -> bool:
    """Anyone when the step names no approvers; else a user whose id or role is among them."""
    if not step_def.approvers:
        return True
    user = user or {}
    candidates = {str(user[key]) for key in ("id", "role") if user.get(key) not in (None, "")}
    return bool(candidates & set(step_def.approvers))


def approval_problem(
    state: ExecutionState, step: str, user: dict[str, Any] | None
) -> OrchestratorError | None:
    """Why ``user`` may not decide approval step ``step`` now, or None."""
    workflow = state.workflow
    step_def = workflow.by_name.get(step) if workflow is not None else None
    if step_def is None:
        return NotFound(
            f"execution {state.execution_id!r} has no step {step!r}",
            code="STEP_NOT_FOUND",
            details={"step": step},
        )
    if step_def.kind != "approval":
        return Conflict(
            f"step {step!r} is a {step_def.type!r} step, not an approval: nothing to approve",
            code="NOT_AN_APPROVAL_STEP",
            details={"step": step, "type": step_def.type},
        )
    if state.terminal:
        return _finished(state)
    if not is_approver(step_def, user):
        return Forbidden(
            f"user {(user or {}).get('id')!r} may not decide step {step!r}: its approvers are "
            f"{step_def.approvers!r} (user ids or roles)",
            code="APPROVER_NOT_ALLOWED",
            details={"step": step, "approvers": list(step_def.approvers)},
        )
    status = state.steps[step].status
    if status != "waiting":
        reason = "has not been reached yet" if status == "pending" else f"is {status} already"
        return Conflict(
            f"approval step {step!r} is not waiting for a decision: it {reason}",
            code="STEP_NOT_WAITING",
            details={"step": step, "status": status},
        )
    return None


def signal_steps(state: ExecutionState, name: str) -> list[StepDef]:
    """The ``signal`` steps waiting for signals called ``name``, in definition order."""
    if state.workflow is None:
        return []
    return [s for s in state.workflow.steps if s.kind == "signal" and s.signal == name]


def signal_problem(state: ExecutionState, name: str) -> OrchestratorError | None:
    """Why signal ``name`` may not be recorded now, or None. A signal is kept only while some step of
    its name may still consume it, so an execution's log cannot fill up with signals nobody reads."""
    steps = signal_steps(state, name)
    if not steps:
        return NotFound(
            f"no signal step of execution {state.execution_id!r} waits for signal {name!r}",
            code="SIGNAL_NOT_FOUND",
            details={"signal": name},
        )
    if state.terminal:
        return _finished(state)
    open_steps = sum(1 for s in steps if state.steps[s.name].status in _OPEN)
    kept = len(state.signals.get(name, ()))
    if open_steps <= kept:
        return Conflict(
            f"no step of execution {state.execution_id!r} is left to consume signal {name!r}: "
            f"{len(steps)} step(s) wait for it, {len(steps) - open_steps} finished and {kept} signal(s) "
            "are kept for the others",
            code="SIGNAL_NOT_AWAITED",
            details={"signal": name, "steps": len(steps), "finished": len(steps) - open_steps, "kept": kept},
        )
    return None


def check_signal_payload(state: ExecutionState, name: str, payload: Any) -> None:
    """InvalidRequest ``INVALID_SIGNAL`` unless ``payload`` satisfies the schema of every step of that
    name that may still consume it (which one will is known only when it does)."""
    details: list[dict[str, str]] = []
    seen: list[dict[str, Any]] = []
    for step_def in signal_steps(state, name):
        schema = step_def.signal_schema
        if schema is None or state.steps[step_def.name].status not in _OPEN or schema in seen:
            continue
        seen.append(schema)
        validator = jsonschema.Draft202012Validator(schema)
        for error in sorted(validator.iter_errors(payload), key=lambda e: [str(p) for p in e.absolute_path]):
            path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
            details.append({"field": f"payload{path}", "message": error.message})
    if details:
        raise InvalidRequest(
            f"the payload of signal {name!r} does not match the schema of its step: "
            f"{len(details)} problem{'s' if len(details) > 1 else ''}",
            code="INVALID_SIGNAL",
            details=details,
        )


def raise_if(problem: OrchestratorError | None) -> None:
    if problem is not None:
        raise problem


def _finished(state: ExecutionState) -> Conflict:
    return Conflict(
        f"execution {state.execution_id!r} already finished with status {state.status!r}",
        code="EXECUTION_ALREADY_FINISHED",
    )

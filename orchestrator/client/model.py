"""What a follower knows about an execution: its steps and status, folded from the events it receives.

This is a display model, not the server's fold: it only needs what a person watching wants (status,
attempts, timing, streamed text), it tolerates event types it does not know (a newer server's), and the
execution view the server returns at the end (:meth:`ExecutionModel.reconcile`) has the last word.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

TERMINAL = frozenset({"completed", "failed", "cancelled", "timeout"})
WAITING_TYPES = frozenset({"approval", "signal"})
_EXECUTION_STATUS = {
    "execution.completed": "completed",
    "execution.failed": "failed",
    "execution.cancelled": "cancelled",
    "execution.timed_out": "timeout",
}
_STEP_STATUS = {
    "step.started": "running",
    "step.completed": "completed",
    "step.failed": "failed",
    "step.retrying": "retrying",
    "step.skipped": "skipped",
}


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass
class StepRow:
    name: str
    type: str = ""
    parent: str | None = None
    status: str = "pending"
    attempts: int = 0
    started_at: datetime | None = None
    completed_at: datetime | None = None
    error: str | None = None
    text: str = ""  # an llm step's text: the streamed deltas, then its whole output
    signal: str | None = None  # a signal step's signal name

    def seconds(self, now: datetime | None = None) -> float | None:
        """How long the step ran (its latest attempt), or has been running."""
        if self.started_at is None:
            return None
        end = self.completed_at or (now if self.status in ("running", "waiting") else None)
        if end is None:
            return None
        return max(0.0, (end - self.started_at).total_seconds())


@dataclass
class ExecutionModel:
    execution_id: str
    workflow_name: str = ""
    status: str = "pending"
    error: str | None = None
    output: Any = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    last_seq: int = 0
    steps: dict[str, StepRow] = field(default_factory=dict)

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    def depth(self, row: StepRow) -> int:
        """How deep a step is nested in condition/parallel containers, for indenting it."""
        depth, parent, seen = 0, row.parent, set()
        while parent and parent in self.steps and parent not in seen:
            seen.add(parent)
            depth += 1
            parent = self.steps[parent].parent
        return depth

    def _row(self, name: str) -> StepRow:
        if name not in self.steps:
            self.steps[name] = StepRow(name)
        return self.steps[name]

    def apply(self, event: dict[str, Any]) -> None:
        """One durable event, as ``/events`` renders it: ``{seq, type, timestamp, step, data}``."""
        kind = str(event.get("type", ""))
        data = event.get("data") if isinstance(event.get("data"), dict) else {}
        assert isinstance(data, dict)
        at = parse_time(event.get("timestamp"))
        seq = event.get("seq")
        if isinstance(seq, int):
            self.last_seq = max(self.last_seq, seq)
        step = event.get("step")
        if kind == "execution.started":
            self._started(data, at)
        elif kind in _EXECUTION_STATUS:
            self.status = _EXECUTION_STATUS[kind]
            self.completed_at = at
            self.error = data.get("error") or self.error
            if kind == "execution.completed":
                self.output = data.get("output")
            if kind == "execution.cancelled":  # what was still under way ended with it
                for row in self.steps.values():
                    if row.status in ("running", "retrying", "waiting"):
                        row.status = "cancelled"
        elif kind == "execution.cancel_requested":
            self.status = "cancelling" if not self.terminal else self.status
        elif kind.startswith("step.") and isinstance(step, str) and step:
            self._step_event(kind, self._row(step), data, at)

    def _started(self, data: dict[str, Any], at: datetime | None) -> None:
        self.status = "running"
        self.started_at = at
        workflow = data.get("workflow") if isinstance(data.get("workflow"), dict) else {}
        assert isinstance(workflow, dict)
        metadata = workflow.get("metadata") if isinstance(workflow.get("metadata"), dict) else {}
        assert isinstance(metadata, dict)
        name = data.get("workflow_id") or workflow.get("name") or metadata.get("name")
        self.workflow_name = str(name or self.workflow_name)
        for step in workflow.get("steps") or []:
            if isinstance(step, dict) and isinstance(step.get("name"), str):
                row = self._row(step["name"])
                row.type = str(step.get("type") or row.type)
                parent = step.get("parent")
                row.parent = parent if isinstance(parent, str) else None
                row.signal = step.get("signal") if isinstance(step.get("signal"), str) else None

    def _step_event(self, kind: str, row: StepRow, data: dict[str, Any], at: datetime | None) -> None:
        attempt = data.get("attempt")
        if isinstance(attempt, int):
            row.attempts = max(row.attempts, attempt)
        if kind == "step.started":
            row.started_at, row.completed_at, row.error, row.text = at, None, None, ""
        elif kind in ("step.completed", "step.failed", "step.skipped"):
            row.completed_at = at
        if kind in ("step.failed", "step.retrying"):
            row.error = str(data.get("error") or "") or None
        if kind == "step.completed" and isinstance(data.get("output"), str):
            row.text = data["output"]
        # a step event this client does not know (step.waiting, say) still says what the step is doing
        row.status = _STEP_STATUS.get(kind, kind.removeprefix("step."))
        if row.status == "running" and row.type in WAITING_TYPES:
            row.status = "waiting"  # for a person's decision or a signal: nothing runs

    def progress(self, step: str, delta: str, attempt: int | None = None) -> None:
        row = self._row(step)
        if attempt is not None and attempt < row.attempts:
            return  # a late piece of an attempt that has been retried since
        if row.status == "pending":
            row.status = "running"
        row.text += delta

    def reconcile(self, view: dict[str, Any]) -> None:
        """The server's execution view (``GET /api/v1/workflows/executions/{id}``) is authoritative."""
        self.status = str(view.get("status") or self.status)
        self.workflow_name = str(view.get("workflow_name") or self.workflow_name)
        self.error = view.get("error") or self.error
        self.output = view.get("output", self.output)
        self.started_at = parse_time(view.get("started_at")) or self.started_at
        self.completed_at = parse_time(view.get("completed_at")) or self.completed_at
        for step in view.get("steps") or []:
            if not isinstance(step, dict) or not isinstance(step.get("name"), str):
                continue
            row = self._row(step["name"])
            row.type = str(step.get("type") or row.type)
            row.parent = step.get("parent") if isinstance(step.get("parent"), str) else row.parent
            row.status = str(step.get("status") or row.status)
            if isinstance(step.get("attempts"), int):
                row.attempts = step["attempts"]
            row.started_at = parse_time(step.get("started_at")) or row.started_at
            row.completed_at = parse_time(step.get("completed_at")) or row.completed_at
            row.error = step.get("error") or row.error
            if isinstance(step.get("output"), str):
                row.text = step["output"]


def format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{rest:02d}s" if hours else f"{minutes}m{rest:02d}s"


__all__ = ["TERMINAL", "ExecutionModel", "StepRow", "format_seconds", "parse_time"]

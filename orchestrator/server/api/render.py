"""Execution views: the public JSON of an execution in each dialect, from its folded state."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from orchestrator.core.durations import format_seconds
from orchestrator.core.signals import waiting_for
from orchestrator.core.state import ExecutionState, StepState
from orchestrator.core.timestamps import format_timestamp
from orchestrator.store.base import ExecutionRow


def iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return format_timestamp(value)


def step_seconds(step: StepState) -> float | None:
    if step.started_at is None or step.completed_at is None:
        return None
    return (step.completed_at - step.started_at).total_seconds()


def v1_execution(state: ExecutionState) -> dict[str, Any]:
    assert state.workflow is not None
    steps = []
    for step_def in state.workflow.steps:
        step = state.steps[step_def.name]
        seconds = step_seconds(step)
        steps.append(
            {
                "name": step.name,
                "type": step_def.type,
                "status": step.status,
                "parent": step_def.parent,
                "started_at": iso(step.started_at),
                "completed_at": iso(step.completed_at),
                "process_time": format_seconds(seconds) if seconds is not None else None,
                "attempts": step.attempt,
                "output": step.output,
                "error": step.error,
            }
        )
    return {
        "id": state.execution_id,
        "status": state.status,
        "workflow_name": state.workflow_id or state.workflow.name,
        "workflow_id": state.workflow_id,
        "workflow_version": state.workflow_version,
        "tenant_id": state.tenant_id,
        "input": state.input,
        "output": state.output,
        "error": state.error,
        "started_at": iso(state.started_at),
        "completed_at": iso(state.completed_at),
        "duration_ms": state.duration_ms,
        "steps": steps,
        "waiting_for": waiting_for(state),  # approval and signal steps waiting for the outside world
    }


def list_item(row: ExecutionRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "workflow_name": row.workflow_id or row.workflow_name,
        "status": row.status,
        "tenant_id": row.tenant_id,
        "dialect": row.dialect,
        "started_at": iso(row.started_at),
        "completed_at": iso(row.completed_at),
        "duration_ms": row.duration_ms,
        "error": row.error,
    }

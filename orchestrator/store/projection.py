"""The executions projection: one row per execution, derived from its state by a pure function and
written in the same transaction as the events it summarises."""

from __future__ import annotations

from orchestrator.core.state import ExecutionState
from orchestrator.store.base import ExecutionRow


def project(state: ExecutionState) -> ExecutionRow:
    assert state.workflow is not None and state.started_at is not None
    return ExecutionRow(
        id=state.execution_id,
        workflow_name=state.workflow.name,
        workflow_id=state.workflow_id,
        workflow_version=state.workflow_version,
        tenant_id=state.tenant_id,
        status=state.status,
        dialect=state.dialect,
        placement=state.placement,
        started_at=state.started_at,
        completed_at=state.completed_at,
        duration_ms=state.duration_ms,
        error=state.error,
        last_seq=state.last_seq,
        created_at=state.started_at,
    )

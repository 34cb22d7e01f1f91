"""Views of the EAI Orchestrate dialect: camelCase JSON of executions and registered workflows.

Pure functions from the folded state, the executions projection or a registry record, like
:mod:`orchestrator.server.api.render` for v1. An execution started through v1 renders here too: its
``workflowId`` is its workflow name, as the v1 view shows a registered workflow's id as its name.
"""

from __future__ import annotations

from typing import Any

from orchestrator.core.signals import waiting_for
from orchestrator.core.state import ExecutionState
from orchestrator.core.workflow_documents import display_name, iter_steps
from orchestrator.server.api.render import iso, step_seconds
from orchestrator.store.base import ExecutionRow, WorkflowRecord


def millis(seconds: float | None) -> int | None:
    return None if seconds is None else round(seconds * 1000)


def eai_execution(state: ExecutionState) -> dict[str, Any]:
    assert state.workflow is not None
    steps = []
    for step_def in state.workflow.steps:
        step = state.steps[step_def.name]
        steps.append(
            {
                "stepId": step_def.name,
                "name": step_def.title or step_def.name,
                "type": step_def.type,
                "state": step.status,
                "parent": step_def.parent,
                "attempts": step.attempt,
                "duration": millis(step_seconds(step)),
                "startedAt": iso(step.started_at),
                "completedAt": iso(step.completed_at),
                "output": step.output,
                "error": step.error,
            }
        )
    return {
        "id": state.execution_id,
        "workflowId": state.workflow_id or state.workflow.name,
        "workflowVersion": state.workflow_version,  # registered versions only, as in the list
        "state": state.status,
        "input": state.input,
        "output": state.output,
        "error": state.error,
        "steps": steps,
        "startedAt": iso(state.started_at),
        "completedAt": iso(state.completed_at),
        "duration": state.duration_ms,
        "metadata": state.metadata,
        "waitingFor": [
            {"stepId" if key == "step" else key: value for key, value in entry.items()}
            for entry in waiting_for(state)
        ],
    }


def eai_list_item(row: ExecutionRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "workflowId": row.workflow_id or row.workflow_name,
        "workflowVersion": row.workflow_version,
        "state": row.status,
        "startedAt": iso(row.started_at),
        "completedAt": iso(row.completed_at),
        "duration": row.duration_ms,
        "error": row.error,
    }


def workflow_steps(document: dict[str, Any]) -> list[dict[str, Any]]:
    """Every step of a definition, nested ones (of condition and parallel) after their container."""
    return [
        {
            "id": step.get("id"),
            "name": step.get("name") if isinstance(step.get("name"), str) else step.get("id"),
            "type": step.get("type"),
            "dependsOn": list(step.get("depends_on") or []),
            "parent": parent,
        }
        for step, parent in iter_steps(document.get("steps"))
    ]


def workflow_summary(record: WorkflowRecord) -> dict[str, Any]:
    document = record.definition
    return {
        "id": record.workflow_id,
        "name": display_name(document),
        "description": document.get("description"),
        "version": record.version,
        "steps": workflow_steps(document),
    }


def workflow_detail(record: WorkflowRecord) -> dict[str, Any]:
    """The summary plus the registration time, the input schema and the document as registered (which
    can be sent back to ``PUT`` unchanged)."""
    return {
        **workflow_summary(record),
        "inputSchema": record.definition.get("input_schema"),
        "registeredAt": iso(record.registered_at),
        "definition": record.definition,
    }

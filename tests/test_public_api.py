"""The public surfaces of the layers, pinned: a name added to or dropped from an ``__all__`` is an API
change and shows up here. The core's purity is checked by what importing it loads."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

SURFACES = {
    "orchestrator.core": [
        "DEFAULT_LIMITS", "TERMINAL_STATUSES", "Limits", "AgentUnavailable", "ApprovalSubmitted", "CancelRequested", "CancelStep", "ConcurrencyConflict",
        "Conflict", "Decision", "Event", "EventRecord", "ExecutionState", "ExecutionTimeout", "Forbidden",
        "InvalidRequest", "InvalidWorkflow", "MissingUserContext", "NotFound", "OrchestratorError",
        "PlanningFailed", "RequestError", "Resume", "RetryPolicy", "RunStep", "ScheduleTimer", "SignalSent", "Start",
        "StepDef", "StepError", "StepErrored", "StepState", "StepSucceeded", "StoreError", "TimerElapsed",
        "Trigger", "Unauthenticated", "WorkflowDef", "build_workflow", "decide", "evolve", "fold", "from_record",
        "parse_workflow", "to_record",
    ],
    "orchestrator.store": [
        "TERMINAL_STATUSES", "ApiKeyRecord", "EventStore", "ExecutionRow", "Page", "WorkflowRecord",
        "open_store",
    ],
    "orchestrator.runtime.ports": ["RunnerFactory", "StepRunner"],
    "agents.connectors": [
        "CallContext", "CapabilitySpec", "Connector", "ConnectorCallError", "ConnectorError",
        "ConnectorTimeout", "ConnectorUnavailable", "ParameterSpec",
    ],
    "agents.llm": [
        "LLMProvider", "LLMRequest", "LLMResult", "OfflineProvider", "OpenAIProvider", "make_provider",
    ],
    "planner": [
        "PLAN_JSON_SCHEMA", "SYNTHESIS_STEP_NAME", "CatalogAgent", "ExecutionMode", "LLMPlanner", "Place",
        "Plan", "PlanStep", "StepType", "filter_catalog", "find_places", "lookup_place", "plan_offline",
        "to_catalog_agent", "validate_plan",
    ],
}  # fmt: skip


@pytest.mark.parametrize("module", sorted(SURFACES))
def test_public_surface_is_pinned(module: str) -> None:
    imported = importlib.import_module(module)
    assert sorted(imported.__all__) == sorted(SURFACES[module])
    for name in imported.__all__:
        assert getattr(imported, name) is not None, f"{module}.{name} does not resolve"


def test_importing_the_core_loads_no_io_library() -> None:
    """The core decides and folds; Ray, drivers, HTTP and Arrow belong to the layers above it."""
    code = (
        "import sys, orchestrator.core, orchestrator.core.workflow_documents, orchestrator.core.plans\n"
        "banned = ('ray', 'sqlite3', 'psycopg', 'httpx', 'pyarrow', 'openai', 'mcp', 'fastapi', 'asyncio')\n"
        "print(','.join(sorted(m for m in banned if m in sys.modules)))\n"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == ""

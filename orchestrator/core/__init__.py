"""The pure core: workflow definitions and their validation, templates, events, state and decisions.

``decide(state, trigger) -> Decision`` and ``evolve(state, event)`` touch no database, clock, network
or Ray, so the core is tested in milliseconds and a log replays to the same state forever. It may
import only the standard library, pydantic, jsonschema and (through :mod:`.templates` alone) Jinja2.
"""

from orchestrator.core.decide import (
    ApprovalSubmitted,
    CancelRequested,
    CancelStep,
    Decision,
    Resume,
    RunStep,
    ScheduleTimer,
    SignalSent,
    Start,
    StepErrored,
    StepSucceeded,
    TimerElapsed,
    Trigger,
    decide,
)
from orchestrator.core.definitions import RetryPolicy, StepDef, WorkflowDef
from orchestrator.core.errors import (
    AgentUnavailable,
    ConcurrencyConflict,
    Conflict,
    ExecutionTimeout,
    Forbidden,
    InvalidRequest,
    InvalidWorkflow,
    MissingUserContext,
    NotFound,
    OrchestratorError,
    PlanningFailed,
    RequestError,
    StepError,
    StoreError,
    Unauthenticated,
)
from orchestrator.core.events import Event, EventRecord, from_record, to_record
from orchestrator.core.limits import DEFAULT_LIMITS, Limits
from orchestrator.core.state import TERMINAL_STATUSES, ExecutionState, StepState, evolve, fold
from orchestrator.core.validation import build_workflow, parse_workflow

__all__ = [
    "DEFAULT_LIMITS",
    "TERMINAL_STATUSES",
    "AgentUnavailable",
    "ApprovalSubmitted",
    "CancelRequested",
    "CancelStep",
    "ConcurrencyConflict",
    "Conflict",
    "Decision",
    "Event",
    "EventRecord",
    "ExecutionState",
    "ExecutionTimeout",
    "Forbidden",
    "InvalidRequest",
    "InvalidWorkflow",
    "Limits",
    "MissingUserContext",
    "NotFound",
    "OrchestratorError",
    "PlanningFailed",
    "RequestError",
    "Resume",
    "RetryPolicy",
    "RunStep",
    "ScheduleTimer",
    "SignalSent",
    "Start",
    "StepDef",
    "StepError",
    "StepErrored",
    "StepState",
    "StepSucceeded",
    "StoreError",
    "TimerElapsed",
    "Trigger",
    "Unauthenticated",
    "WorkflowDef",
    "build_workflow",
    "decide",
    "evolve",
    "fold",
    "from_record",
    "parse_workflow",
    "to_record",
]

"""Multi-agent planning (MAP): a natural-language query becomes a plan over the agents' capabilities.

Two planners produce the same :class:`Plan`:

- :func:`plan_offline`, the embedded default: rule-based, deterministic, no network; not a language model.
- :class:`LLMPlanner`: any OpenAI-compatible model with structured output, validated and repaired.

Both are pure with respect to the server: no Ray, no HTTP server, no clock (``today`` is passed in). The
Serve deployment that stores plans and runs them as workflows wraps them. Failures are
:class:`orchestrator.core.errors.PlanningFailed` (``PLANNING_FAILED``, 500) with what went wrong in ``details``.
"""

from typing import TYPE_CHECKING, Any

from planner.catalog import filter_catalog, to_catalog_agent
from planner.models import (
    SYNTHESIS_STEP_NAME,
    CatalogAgent,
    ExecutionMode,
    Plan,
    PlanStep,
    StepType,
)
from planner.offline import plan_offline
from planner.places import Place, find_places, lookup_place
from planner.validate import PLAN_JSON_SCHEMA, validate_plan

if TYPE_CHECKING:
    from planner.llm_planner import LLMPlanner

__all__ = [
    "PLAN_JSON_SCHEMA",
    "SYNTHESIS_STEP_NAME",
    "CatalogAgent",
    "ExecutionMode",
    "LLMPlanner",
    "Place",
    "Plan",
    "PlanStep",
    "StepType",
    "filter_catalog",
    "find_places",
    "lookup_place",
    "plan_offline",
    "to_catalog_agent",
    "validate_plan",
]


def __getattr__(name: str) -> Any:
    # The openai package takes a second or more to import; the offline planner alone should not pay it.
    if name == "LLMPlanner":
        from planner.llm_planner import LLMPlanner

        return LLMPlanner
    raise AttributeError(f"module 'planner' has no attribute {name!r}")

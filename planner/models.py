"""What a planner works on and what it produces.

Both planners (offline and LLM) produce the same :class:`Plan`, so the deployment, the event log and the
workflow conversion never need to know which one ran; ``Plan.planner`` says it honestly for the response's
``metadata.planner``. The shape follows the MAP seed: step ids like ``step_1_search_flights``, a final
``llm`` synthesis step (``summarize_options``) that depends on every other step so the LLM sees all of
their outputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, Field

from agents.connectors.base import CapabilitySpec

__all__ = [
    "ALL_DOMAINS",
    "EXECUTION_MODES",
    "STEP_TYPES",
    "SYNTHESIS_AGENT",
    "SYNTHESIS_STEP_NAME",
    "CatalogAgent",
    "ExecutionMode",
    "Plan",
    "PlanStep",
    "StepType",
    "apply_execution_mode",
    "infer_domain",
    "pick_synthesis_agent",
    "synthesis_prompt",
    "synthesis_step",
]

StepType = Literal["mcp_query", "mcp_execute", "llm"]
ExecutionMode = Literal["auto", "parallel", "sequential"]

STEP_TYPES: frozenset[str] = frozenset({"mcp_query", "mcp_execute", "llm"})
EXECUTION_MODES: frozenset[str] = frozenset({"auto", "parallel", "sequential"})

SYNTHESIS_STEP_NAME = "summarize_options"
# The shipped LLM agent that runs the synthesis step when it is in the catalog.
SYNTHESIS_AGENT = "llm-analyst"


class CatalogAgent(BaseModel):
    """One agent as a planner sees it: only what is needed to choose capabilities and fill parameters."""

    id: str
    name: str
    domain: str
    description: str = ""
    capabilities: list[CapabilitySpec] = Field(default_factory=list)
    health_status: str = "unknown"

    def capability(self, name: str) -> CapabilitySpec | None:
        return next((c for c in self.capabilities if c.name == name), None)


class PlanStep(BaseModel):
    id: str
    name: str
    type: StepType
    description: str = ""
    depends_on: list[str] = Field(default_factory=list)
    agent: str | None = None
    # The capability the step calls on ``agent``; None for the synthesis step, which is a plain LLM prompt.
    capability: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)


class Plan(BaseModel):
    # Assigned by the deployment when the plan is stored; planners stay free of id generation (STYLE 7).
    plan_id: str | None = None
    query: str
    domain: str | None = None
    execution_mode: ExecutionMode = "auto"
    steps: list[PlanStep]
    planner: Literal["offline", "llm"]
    warnings: list[str] = Field(default_factory=list)

    @property
    def final_step(self) -> PlanStep:
        """The step whose output is the plan's ``result`` (the synthesis step)."""
        return self.steps[-1]

    def step(self, step_id: str) -> PlanStep | None:
        return next((s for s in self.steps if s.id == step_id), None)


# Domain hints that mean "no restriction" (shared with planner.catalog).
ALL_DOMAINS: frozenset[str] = frozenset({"", "generic", "auto", "all", "any"})


def infer_domain(domain: str | None, steps: Sequence[PlanStep], catalog: Sequence[CatalogAgent]) -> str:
    """The request's domain hint when it names one, else the domain most of the steps' agents belong to."""
    if domain and domain.lower() not in ALL_DOMAINS:
        return domain
    domains = {a.id: a.domain for a in catalog}
    counts: dict[str, int] = {}
    for step in steps:
        found = domains.get(step.agent or "", "generic")
        if found != "generic":
            counts[found] = counts.get(found, 0) + 1
    return max(counts, key=lambda d: counts[d]) if counts else "generic"


def pick_synthesis_agent(catalog: Sequence[CatalogAgent]) -> str | None:
    """The agent that writes the final answer: the shipped ``llm-analyst`` when the catalog has it, else
    None and the engine prompts its configured LLM provider directly. Another generic agent is not assumed
    to be an LLM."""
    return SYNTHESIS_AGENT if any(a.id == SYNTHESIS_AGENT for a in catalog) else None


def synthesis_prompt(query: str, context: dict[str, Any] | None, *, extra: list[str] | None = None) -> str:
    """Restate the request so the synthesis step can be run by any LLM without seeing the plan, and ask for
    what the seed's example answer contains: concrete options and a total against the budget."""
    context = context or {}
    lines = [
        f"The user asked: {query.strip()}",
        "Using the results of the previous steps, answer with concrete options (names, prices, times, "
        "ratings, distances where the results have them) that satisfy the request.",
    ]
    budget = context.get("budget")
    currency = context.get("currency") or "USD"
    if isinstance(budget, int | float) and not isinstance(budget, bool):
        lines.append(
            f"Give a total estimated cost and compare it with the budget of {budget:g} {currency}; "
            "say whether the options fit within it."
        )
    else:
        lines.append("Where the results have prices, give a total estimated cost.")
    preferences = context.get("preferences")
    if isinstance(preferences, dict) and preferences:
        rendered = ", ".join(f"{k}: {_render(v)}" for k, v in preferences.items())
        lines.append(f"Respect the user's preferences ({rendered}).")
    for instruction in extra or []:
        lines.append(f"Also: {instruction.strip()}")
    lines.append("If a step returned nothing useful, say so plainly instead of inventing results.")
    return "\n".join(lines)


def _render(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def synthesis_step(
    index: int,
    *,
    query: str,
    context: dict[str, Any] | None,
    depends_on: list[str],
    agent: str | None,
    domain: str | None,
    extra: list[str] | None = None,
) -> PlanStep:
    if domain == "travel":
        topic = "travel options"  # the seed's wording
    elif domain and domain not in {"generic", "auto"}:
        topic = f"the {domain.upper() if len(domain) <= 3 else domain} results"
    else:
        topic = "the results"
    return PlanStep(
        id=f"step_{index}_summarize",
        name=SYNTHESIS_STEP_NAME,
        type="llm",
        description=f"Create a summary of {topic}",
        depends_on=list(depends_on),
        agent=agent,
        capability=None,
        parameters={"prompt": synthesis_prompt(query, context, extra=extra)},
    )


def apply_execution_mode(steps: list[PlanStep], mode: str) -> list[PlanStep]:
    """``sequential`` chains every step to the one before it; the other modes keep the planned edges.

    The final step keeps its edges to *all* earlier steps in every mode: the synthesis LLM receives the
    outputs of its direct dependencies only, so a chain alone would hide all but the last result from it.
    """
    if mode != "sequential" or len(steps) < 2:
        return steps
    chained: list[PlanStep] = []
    for position, step in enumerate(steps):
        if position == 0:
            chained.append(step)
            continue
        previous = steps[position - 1].id
        depends = list(step.depends_on)
        if previous not in depends:
            depends.append(previous)
        chained.append(step.model_copy(update={"depends_on": depends}))
    return chained

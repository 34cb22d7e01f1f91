"""A plan becomes a workflow the engine runs: the one place that knows how plan steps map to workflow steps.

Pure (no Ray, no clock, no store), so every mapping rule is tested in milliseconds and the same plan always
gives the same workflow:

- Each plan step becomes a workflow step named by the plan step's ``name`` (made a valid, unique step name
  when a model wrote something else). Plans refer to each other's steps by ``id``; workflows by name, so
  ``depends_on`` is translated and the ``id -> name`` mapping is kept for the response.
- ``mcp_query`` / ``mcp_execute`` call ``capability`` on ``agent``: ``connector = agent``,
  ``statement = capability``.
- An ``llm`` step *with* a capability is a call of that agent capability (``mcp_query`` on, say,
  ``llm-analyst.analyze``): its prompt template lives with the agent. When it depends on other steps and
  does not say what to analyse, their outputs go in as ``data`` so the capability sees them.
- An ``llm`` step *without* a capability (the synthesis) sends ``parameters.prompt`` to the LLM, on the
  plan's agent when it names one; the engine hands it the outputs of its dependencies.
- ``sequential`` chains every step to the one before it (the final step keeps its edges to all of them, as
  :func:`planner.models.apply_execution_mode` does, since an LLM only sees its direct dependencies);
  ``parallel`` and ``auto`` keep the planned ``depends_on``.

Plan text is data, not a template. The query and the parameters the offline planner read out of it are
user input, and the workflow engine renders ``{{ }}`` in parameters and prompts, so template markers in
them are escaped: "{{ 7*7 }}" in a query reaches the LLM as written. An LLM planner may deliberately wire
one step's output into another (``"{{ steps.search_flights.output }}"``, which ``validate_plan`` accepts),
so an LLM plan keeps its templates, with plan ids in them rewritten to step names, and only the query text
inside them is escaped.

Errors are :class:`~orchestrator.core.errors.PlanningFailed` with ``details.reason``: a plan that cannot become a
valid workflow is the planner's failure, not the caller's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from orchestrator.core.definitions import WorkflowDef
from orchestrator.core.errors import InvalidWorkflow, PlanningFailed
from orchestrator.core.limits import DEFAULT_LIMITS, Limits
from orchestrator.core.validation import parse_workflow
from planner.models import Plan, PlanStep

__all__ = [
    "APPROVAL_STEP",
    "CompiledPlan",
    "compile_plan",
    "escape_template",
    "gated",
    "run_mode",
    "workflow_name",
]

RunMode = Literal["parallel", "sequential"]

_VALID_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,127}$")
_INVALID_CHARS = re.compile(r"[^A-Za-z0-9_-]+")
_MARKER = re.compile(r"\{[{%#]")
_PROMPT_EXTRAS = ("system",)
# The approval step a ``confirm`` plan waits on before its first step.
APPROVAL_STEP = "approve_plan"


@dataclass(frozen=True, slots=True)
class CompiledPlan:
    workflow: WorkflowDef
    # The v1 workflow document, as a user could have sent it to /api/v1/workflows/execute.
    definition: dict[str, Any]
    # plan step id -> workflow step name, in plan order.
    step_names: dict[str, str]
    # The workflow step whose output is the plan's ``result``.
    final_step: str
    # How the steps run: ``parallel`` when at least two of them are independent of each other.
    execution_mode: RunMode


def workflow_name(domain: str | None) -> str:
    """``map-<domain>``: plans of one domain group together in execution listings."""
    slug = _INVALID_CHARS.sub("-", (domain or "").strip().lower()).strip("-_")
    return f"map-{slug or 'generic'}"[:128]


def escape_template(text: str) -> str:
    """``text`` rendered by the workflow engine gives back ``text``: every ``{{``, ``{%`` and ``{#`` is
    written as a Jinja string literal. All three are escaped once any is present, because one real
    marker makes the whole string a template."""
    if not _MARKER.search(text):
        return text
    return _MARKER.sub(lambda match: "{{ " + repr(match.group(0)) + " }}", text)


def compile_plan(
    plan: Plan, *, keep_templates: bool | None = None, limits: Limits = DEFAULT_LIMITS
) -> CompiledPlan:
    """The workflow that runs ``plan``. ``keep_templates`` defaults to True for LLM plans only (see the
    module docstring)."""
    if not plan.steps:
        raise PlanningFailed("the plan has no steps", details={"reason": "empty_plan"})
    if keep_templates is None:
        keep_templates = plan.planner == "llm"
    names = _step_names(plan.steps)
    depends = _dependencies(plan, names)
    literal = _Literal(plan.query, names, keep_templates=keep_templates)

    raw_steps = [_step(step, names[step.id], depends[step.id], literal) for step in plan.steps]
    final = names[plan.final_step.id]
    definition: dict[str, Any] = {
        "metadata": {"name": workflow_name(plan.domain), "description": _description(plan.query)},
        "spec": {
            "steps": raw_steps,
            # Explicit, so ``result`` is the final step's output even if a plan leaves another sink.
            "output": {"final_result": "{{ steps." + final + ".output }}"},
        },
    }
    try:
        workflow = parse_workflow(definition, limits=limits)
    except InvalidWorkflow as exc:
        raise PlanningFailed(
            f"the plan does not make a valid workflow: {exc.message}",
            details={"reason": "invalid_workflow", "errors": exc.details},
        ) from exc
    return CompiledPlan(
        workflow=workflow,
        definition=definition,
        step_names=names,
        final_step=final,
        execution_mode=run_mode(workflow),
    )


def gated(compiled: CompiledPlan, prompt: str, *, limits: Limits = DEFAULT_LIMITS) -> tuple[WorkflowDef, str]:
    """The plan's workflow behind an approval gate (``execution_mode: confirm``): an ``approval`` step
    asking ``prompt`` (plain text, never a template) that every step without dependencies waits for, so
    nothing runs before a person says yes. Returns the workflow and the approval step's name."""
    steps = [dict(step) for step in compiled.definition["spec"]["steps"]]
    taken = {step["name"] for step in steps}
    name, suffix = APPROVAL_STEP, 2
    while name in taken:
        name = f"{APPROVAL_STEP}_{suffix}"
        suffix += 1
    for step in steps:
        if not step.get("depends_on"):
            step["depends_on"] = [name]
    gate = {
        "name": name,
        "type": "approval",
        "prompt": escape_template(prompt),
        "description": "a person confirms the plan before any of its steps runs",
    }
    definition = {**compiled.definition, "spec": {**compiled.definition["spec"], "steps": [gate, *steps]}}
    try:
        return parse_workflow(definition, limits=limits), name
    except InvalidWorkflow as exc:  # one step more than the limit allows, say
        raise PlanningFailed(
            f"the plan cannot be gated on an approval: {exc.message}",
            details={"reason": "invalid_workflow", "errors": exc.details},
        ) from exc


def run_mode(workflow: WorkflowDef) -> RunMode:
    """``parallel`` when two steps could run at the same time (neither waits for the other)."""
    upstream: dict[str, set[str]] = {}
    for step in workflow.steps:  # definition order; dependencies may point forward, so resolve lazily
        upstream[step.name] = _upstream(step.name, workflow, upstream)
    names = [step.name for step in workflow.steps]
    for index, first in enumerate(names):
        for second in names[index + 1 :]:
            if first not in upstream[second] and second not in upstream[first]:
                return "parallel"
    return "sequential"


# ------------------------------------------------------------------------------------------- internals


def _upstream(name: str, workflow: WorkflowDef, memo: dict[str, set[str]]) -> set[str]:
    if name in memo:
        return memo[name]
    found: set[str] = set()
    stack = list(workflow.dependencies.get(name, []))
    while stack:  # iterative: a long chain of steps cannot overflow the stack
        dep = stack.pop()
        if dep in found or dep == name:
            continue
        found.add(dep)
        if dep in memo:
            found |= memo[dep]
        else:
            stack.extend(workflow.dependencies.get(dep, []))
    memo[name] = found
    return found


def _step_names(steps: list[PlanStep]) -> dict[str, str]:
    names: dict[str, str] = {}
    taken: set[str] = set()
    for step in steps:
        if step.id in names:
            raise PlanningFailed(
                f"duplicate step id {step.id!r} in the plan", details={"reason": "invalid_plan"}
            )
        base = step.name if _VALID_NAME.match(step.name) else _slug(step.name or step.id)
        name, suffix = base, 2
        while name in taken:
            name = f"{base[:120]}_{suffix}"
            suffix += 1
        taken.add(name)
        names[step.id] = name
    return names


def _slug(text: str) -> str:
    slug = _INVALID_CHARS.sub("_", text.strip()).strip("_") or "step"
    if not (slug[0].isalpha() or slug[0] == "_"):
        slug = f"step_{slug}"
    return slug[:100]


def _dependencies(plan: Plan, names: Mapping[str, str]) -> dict[str, list[str]]:
    """Workflow step names each step waits for, with ``sequential`` applied."""
    result: dict[str, list[str]] = {}
    previous: str | None = None
    for step in plan.steps:
        deps: list[str] = []
        for dep in step.depends_on:
            if dep not in names:
                raise PlanningFailed(
                    f"unknown step {dep!r} in depends_on of {step.id!r}",
                    details={"reason": "invalid_plan", "step": step.id, "known": list(names)},
                )
            deps.append(names[dep])
        if plan.execution_mode == "sequential" and previous is not None:
            deps.append(names[previous])
        result[step.id] = list(dict.fromkeys(deps))
        previous = step.id
    return result


class _Literal:
    """Makes plan strings safe to hand to the template engine (module docstring)."""

    def __init__(self, query: str, names: Mapping[str, str], *, keep_templates: bool) -> None:
        self.query = query.strip()
        self.keep_templates = keep_templates
        renamed = {plan_id: name for plan_id, name in names.items() if plan_id != name}
        self._ids = (
            re.compile(
                r"\bsteps(?:\.(?P<dot>{ids})\b|\[(?P<q>['\"])(?P<item>{ids})(?P=q)\])".format(
                    ids="|".join(re.escape(i) for i in sorted(renamed, key=len, reverse=True))
                )
            )
            if renamed
            else None
        )
        self._renamed = renamed

    def __call__(self, value: Any) -> Any:
        if isinstance(value, str):
            return self._text(value)
        if isinstance(value, dict):
            return {key: self(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self(item) for item in value]
        return value

    def _text(self, text: str) -> str:
        if not _MARKER.search(text):
            return text
        if not self.keep_templates:
            return escape_template(text)
        if self.query and _MARKER.search(self.query) and self.query in text:
            # The user's words inside a model's template are still the user's words.
            return escape_template(text) if text == self.query else self._outside_query(text)
        return self._rename(text)

    def _outside_query(self, text: str) -> str:
        parts = text.split(self.query)
        return escape_template(self.query).join(self._rename(part) for part in parts)

    def _rename(self, text: str) -> str:
        if self._ids is None:
            return text

        def replace(match: re.Match[str]) -> str:
            plan_id = match.group("dot") or match.group("item")
            return f"steps.{self._renamed[plan_id]}"

        return self._ids.sub(replace, text)


def _step(step: PlanStep, name: str, depends_on: list[str], literal: _Literal) -> dict[str, Any]:
    raw: dict[str, Any] = {"name": name, "depends_on": depends_on}
    if step.description:
        raw["description"] = step.description
    if step.type in ("mcp_query", "mcp_execute") or step.capability is not None:
        if not step.agent or not step.capability:
            raise PlanningFailed(
                f"step {step.id!r} calls no agent capability (agent={step.agent!r}, "
                f"capability={step.capability!r})",
                details={"reason": "invalid_plan", "step": step.id},
            )
        parameters = literal(dict(step.parameters))
        if step.type == "llm" and depends_on and "data" not in parameters:
            # An analysis after other steps analyses their results: a capability call does not receive
            # its dependencies' outputs the way a prompt step does, so they are passed explicitly.
            parameters["data"] = {dep: "{{ steps." + dep + ".output }}" for dep in depends_on}
        raw.update(
            type="mcp_execute" if step.type == "mcp_execute" else "mcp_query",
            connector=step.agent,
            statement=step.capability,
            parameters=parameters,
        )
        return raw
    prompt = step.parameters.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise PlanningFailed(
            f"llm step {step.id!r} has neither a capability nor a prompt",
            details={"reason": "invalid_plan", "step": step.id},
        )
    raw.update(type="llm", prompt=literal(prompt))
    for key in _PROMPT_EXTRAS:
        value = step.parameters.get(key)
        if isinstance(value, str) and value.strip():
            raw[key] = literal(value)
    if step.agent:
        raw["agent"] = step.agent
    return raw


def _description(query: str) -> str:
    text = " ".join(query.split())
    return text if len(text) <= 200 else text[:197] + "..."

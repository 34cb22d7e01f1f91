"""The LLM planner: asks an OpenAI-compatible model for a plan over the catalog, checks it, and asks again
with the errors when it is wrong.

The model is treated as an untrusted author. Its answer must parse as JSON (fences and stray prose around
the object are tolerated, because smaller local models add them even with structured output), then pass
:func:`planner.validate.validate_plan` against the same catalog it was shown. Each failure goes back to the
model as a user message listing the ``{field, message}`` errors, at most ``max_repairs`` times; after that
the request fails with ``PLANNING_FAILED`` and the last errors in ``details``. ``openai`` exceptions are
translated here (STYLE 9): callers only ever see :class:`~orchestrator.core.errors.PlanningFailed`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any, cast

import openai
from openai.types.chat import ChatCompletionMessageParam

from orchestrator.core.errors import PlanningFailed
from planner.models import (
    EXECUTION_MODES,
    SYNTHESIS_STEP_NAME,
    CatalogAgent,
    ExecutionMode,
    Plan,
    PlanStep,
    apply_execution_mode,
    infer_domain,
    pick_synthesis_agent,
    synthesis_prompt,
    synthesis_step,
)
from planner.validate import PLAN_JSON_SCHEMA, validate_plan

__all__ = ["SYSTEM_PROMPT", "LLMPlanner", "catalog_json", "parse_plan_json", "planning_prompt"]

SYSTEM_PROMPT = """\
You are the planner of a workflow orchestrator. Turn the user's request into a plan: a list of steps that \
call the capabilities of the agents in the catalog, followed by one final step that writes the answer.

Rules:
- Use only agents and capabilities that are in the catalog, with their parameter names. Fill every \
required parameter; use the parameter's type (string, number, integer, boolean, array, object) and one \
of its enum values when it has an enum. Dates are YYYY-MM-DD. Airports are IATA codes (SFO, CDG).
- Step types: "mcp_query" reads data from an agent, "mcp_execute" changes data (create, update, delete), \
"llm" asks the language model.
- Step ids are unique, like "step_1_search_flights"; names are unique, usually the capability name.
- depends_on lists the ids of steps whose output a step needs. Independent steps have an empty \
depends_on, so they run in parallel. No cycles.
- The last step is the synthesis: type "llm", name "summarize_options", capability null, agent the \
generic analysis agent if there is one (else null), depends_on every other step, and parameters \
{"prompt": "..."} asking for concrete options from the results and a total against the budget when \
the context gives one.
- Answer with the JSON object {"steps": [...]} only, no prose.\
"""


def _parameter_schema(spec: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": spec.type}
    if spec.required:
        schema["required"] = True
    if spec.enum:
        schema["enum"] = spec.enum
    if spec.description:
        schema["description"] = spec.description
    return schema


def catalog_json(catalog: Sequence[CatalogAgent]) -> str:
    """The catalog as compact JSON: what the model may call and with which parameters."""
    agents = [
        {
            "id": agent.id,
            "domain": agent.domain,
            "description": agent.description,
            "capabilities": [
                {
                    "name": cap.name,
                    "description": cap.description,
                    "parameters": {name: _parameter_schema(spec) for name, spec in cap.parameters.items()},
                }
                for cap in agent.capabilities
            ],
        }
        for agent in catalog
    ]
    return json.dumps(agents, separators=(",", ":"), ensure_ascii=False)


def planning_prompt(
    query: str,
    *,
    domain: str | None,
    execution_mode: str,
    context: Mapping[str, Any] | None,
    catalog: Sequence[CatalogAgent],
    today: date | None = None,
) -> str:
    lines = [f"Request: {query}"]
    if domain:
        lines.append(f"Domain hint: {domain}")
    lines.append(f"Execution mode: {execution_mode}")
    if today is not None:
        lines.append(f"Today: {today.isoformat()} (dates without a year are the next such date)")
    lines.append("Context (JSON): " + json.dumps(dict(context or {}), separators=(",", ":"), default=str))
    lines.append("Catalog (JSON): " + catalog_json(catalog))
    return "\n".join(lines)


_FENCE = re.compile(r"```(?:json|JSON)?\s*(?P<body>.*?)\s*```", re.DOTALL)


def parse_plan_json(content: str | None) -> tuple[dict[str, Any] | None, list[dict[str, str]]]:
    """The plan object in a model's answer, or the errors saying why there is none."""
    if not content or not content.strip():
        return None, [{"field": "", "message": "the answer is empty; reply with the JSON plan object"}]
    text = content.strip()
    fenced = _FENCE.search(text)
    if fenced:
        text = fenced.group("body")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        start, end = text.find("{"), text.rfind("}")
        value = None
        if 0 <= start < end:
            try:
                value = json.loads(text[start : end + 1])
            except json.JSONDecodeError:
                value = None
        if value is None:
            return None, [{"field": "", "message": f"the answer is not valid JSON ({exc.msg} at {exc.pos})"}]
    if isinstance(value, list):
        value = {"steps": value}
    if not isinstance(value, dict):
        return None, [
            {"field": "", "message": f"expected a JSON object with 'steps', got {type(value).__name__}"}
        ]
    if "plan" in value and "steps" not in value and isinstance(value["plan"], dict):
        value = value["plan"]
    return value, []


def _normalize(data: dict[str, Any], query: str, context: Mapping[str, Any] | None) -> dict[str, Any]:
    """Fill what a model commonly leaves out but can be inferred safely, so repairs are spent on real
    mistakes: missing empty lists, a missing name, the synthesis step's prompt."""
    steps = data.get("steps")
    if not isinstance(steps, list):
        return data
    normalized: list[Any] = []
    for step in steps:
        if not isinstance(step, dict):
            normalized.append(step)
            continue
        step = dict(step)
        step.setdefault("description", "")
        if step.get("depends_on") is None:
            step["depends_on"] = []
        if step.get("parameters") is None:
            step["parameters"] = {}
        step.setdefault("agent", None)
        step.setdefault("capability", None)
        if not step.get("name"):
            step["name"] = step.get("capability") or step.get("id")
        parameters = step["parameters"]
        if (
            step.get("type") == "llm"
            and step.get("capability") is None
            and isinstance(parameters, dict)
            and not isinstance(parameters.get("prompt"), str)
        ):
            step["parameters"] = {**parameters, "prompt": synthesis_prompt(query, dict(context or {}))}
        normalized.append(step)
    return {**data, "steps": normalized}


def _repair_message(errors: list[dict[str, str]]) -> str:
    listed = "\n".join(f"- {e['field'] or '(plan)'}: {e['message']}" for e in errors)
    return (
        "The plan is not valid:\n"
        f"{listed}\n"
        'Fix these errors and answer with the whole corrected plan as the JSON object {"steps": [...]} only.'
    )


def _ensure_synthesis(
    steps: list[PlanStep],
    query: str,
    context: Mapping[str, Any] | None,
    catalog: Sequence[CatalogAgent],
    domain: str,
) -> tuple[list[PlanStep], bool]:
    """Make the last step an ``llm`` step that directly depends on every other step (its LLM only sees the
    outputs of its direct dependencies). Returns the steps and whether a synthesis step had to be added."""
    last = steps[-1]
    depended_on = {d for s in steps for d in s.depends_on}
    if last.type == "llm" and last.id not in depended_on:
        others = [s.id for s in steps[:-1] if s.id not in last.depends_on]
        if others:
            steps = [*steps[:-1], last.model_copy(update={"depends_on": [*last.depends_on, *others]})]
        return steps, False
    taken_ids = {s.id for s in steps}
    taken_names = {s.name for s in steps}
    step = synthesis_step(
        len(steps) + 1,
        query=query,
        context=dict(context or {}),
        depends_on=[s.id for s in steps],
        agent=pick_synthesis_agent(catalog),
        domain=domain,
    )
    base_id, suffix = step.id, 2
    while step.id in taken_ids or step.name in taken_names:
        step = step.model_copy(
            update={"id": f"{base_id}_{suffix}", "name": f"{SYNTHESIS_STEP_NAME}_{suffix}"}
        )
        suffix += 1
    return [*steps, step], True


class LLMPlanner:
    """Plans with a language model through the official async ``openai`` client."""

    def __init__(
        self,
        client: openai.AsyncOpenAI,
        model: str,
        max_repairs: int = 2,
        *,
        temperature: float | None = 0.0,
        max_tokens: int | None = None,
    ) -> None:
        self._client = client
        self._model = model
        self._max_repairs = max(0, max_repairs)
        self._temperature = temperature
        self._max_tokens = max_tokens

    async def plan(
        self,
        query: str,
        *,
        domain: str | None,
        execution_mode: str = "auto",
        context: Mapping[str, Any] | None = None,
        catalog: Sequence[CatalogAgent],
        today: date | None = None,
    ) -> Plan:
        """A validated plan for ``query``. Raises ``PlanningFailed`` when the model cannot be reached or
        gives no valid plan within ``1 + max_repairs`` attempts."""
        if execution_mode not in EXECUTION_MODES:
            raise PlanningFailed(
                f"unknown execution_mode {execution_mode!r}",
                details={"reason": "invalid_execution_mode", "allowed": sorted(EXECUTION_MODES)},
            )
        messages: list[ChatCompletionMessageParam] = [
            {"role": "system", "content": SYSTEM_PROMPT},
            {
                "role": "user",
                "content": planning_prompt(
                    query,
                    domain=domain,
                    execution_mode=execution_mode,
                    context=context,
                    catalog=catalog,
                    today=today,
                ),
            },
        ]
        attempts = 1 + self._max_repairs
        errors: list[dict[str, str]] = []
        for attempt in range(1, attempts + 1):
            content = await self._complete(messages, attempt)
            data, errors = parse_plan_json(content)
            if data is not None:
                data = _normalize(data, query, context)
                errors = validate_plan(data, catalog)
            if not errors and data is not None:
                return self._plan(data, query, domain, execution_mode, context, catalog, attempt)
            messages.append({"role": "assistant", "content": content or ""})
            messages.append({"role": "user", "content": _repair_message(errors)})
        raise PlanningFailed(
            f"the LLM planner gave no valid plan in {attempts} attempts: "
            + "; ".join(f"{e['field'] or '(plan)'}: {e['message']}" for e in errors[:5]),
            details={"reason": "invalid_plan", "errors": errors, "attempts": attempts},
        )

    async def _complete(self, messages: list[ChatCompletionMessageParam], attempt: int) -> str | None:
        options: dict[str, Any] = {}
        if self._temperature is not None:
            options["temperature"] = self._temperature
        if self._max_tokens is not None:
            options["max_tokens"] = self._max_tokens
        try:
            response = await self._client.chat.completions.create(
                model=self._model,
                messages=messages,
                response_format={
                    "type": "json_schema",
                    "json_schema": {"name": "plan", "schema": PLAN_JSON_SCHEMA, "strict": False},
                },
                **options,
            )
        except openai.OpenAIError as exc:
            raise PlanningFailed(
                f"the LLM planner could not reach the model {self._model!r}: {exc}",
                details={
                    "reason": "llm_error",
                    "cause": type(exc).__name__,
                    "message": str(exc),
                    "status": getattr(exc, "status_code", None),
                    "attempts": attempt,
                },
            ) from exc
        if not response.choices:
            return None
        message = response.choices[0].message
        return message.content if message.content is not None else getattr(message, "refusal", None)

    def _plan(
        self,
        data: dict[str, Any],
        query: str,
        domain: str | None,
        execution_mode: str,
        context: Mapping[str, Any] | None,
        catalog: Sequence[CatalogAgent],
        attempt: int,
    ) -> Plan:
        steps = [PlanStep.model_validate(step) for step in data["steps"]]
        plan_domain = infer_domain(domain, steps, catalog)
        steps, added = _ensure_synthesis(steps, query, context, catalog, plan_domain)
        warnings: list[str] = []
        if added:
            warnings.append("the model's plan had no final synthesis step; one was added")
        if attempt > 1:
            warnings.append(f"the model's plan was repaired ({attempt - 1} repair(s))")
        return Plan(
            query=query,
            domain=plan_domain,
            execution_mode=cast(ExecutionMode, execution_mode),
            steps=apply_execution_mode(steps, execution_mode),
            planner="llm",
            warnings=warnings,
        )

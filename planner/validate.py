"""Checking a plan against the catalog before anything runs.

The LLM planner's output is untrusted: it may name an agent that does not exist, forget a required
parameter or draw a cycle. ``validate_plan`` reports every problem at once, as ``{field, message}`` pairs in
the same shape as ``INVALID_WORKFLOW`` details, so the errors can be handed back to the model verbatim for a
repair and shown to a user unchanged. It never raises on malformed input: a plan that is not even a mapping
is one more error.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from agents.connectors.base import ParameterSpec
from planner.models import STEP_TYPES, CatalogAgent, Plan

__all__ = ["PLAN_JSON_SCHEMA", "check_parameter", "validate_plan"]

# The structured output the LLM planner asks for. Every field is listed as required because providers
# that enforce schemas (OpenAI strict mode, vLLM guided decoding) only accept fully required objects;
# ``parameters`` stays free-form because its shape depends on the capability.
PLAN_JSON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "steps": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "properties": {
                    "id": {"type": "string", "description": "unique, like step_1_search_flights"},
                    "name": {"type": "string", "description": "unique, usually the capability name"},
                    "type": {"type": "string", "enum": sorted(STEP_TYPES)},
                    "description": {"type": "string"},
                    "depends_on": {"type": "array", "items": {"type": "string"}},
                    "agent": {"type": ["string", "null"]},
                    "capability": {"type": ["string", "null"]},
                    "parameters": {"type": "object"},
                },
                "required": [
                    "id",
                    "name",
                    "type",
                    "description",
                    "depends_on",
                    "agent",
                    "capability",
                    "parameters",
                ],
                "additionalProperties": False,
            },
        }
    },
    "required": ["steps"],
    "additionalProperties": False,
}

_PYTHON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "number": (int, float),
    "integer": (int,),
    "boolean": (bool,),
    "array": (list, tuple),
    "object": (dict,),
}
# Parameters an llm step may carry besides its capability's own.
_LLM_EXTRAS = frozenset({"prompt", "system"})


def _is_template(value: Any) -> bool:
    # "{{ steps.search_flights.output }}" is resolved at run time; its type is unknown until then.
    return isinstance(value, str) and "{{" in value


def check_parameter(value: Any, spec: ParameterSpec) -> str | None:
    """Why ``value`` does not fit ``spec``, or None when it does."""
    if _is_template(value):
        return None
    expected = _PYTHON_TYPES.get(spec.type)
    if expected is not None:
        fits = isinstance(value, expected)
        if spec.type in {"number", "integer"} and isinstance(value, bool):
            fits = False
        if spec.type == "integer" and isinstance(value, float) and value.is_integer():
            fits = True
        if not fits:
            return f"expected {spec.type}, got {type(value).__name__} {value!r}"
    if spec.enum and value not in spec.enum:
        return f"{value!r} is not one of {spec.enum!r}"
    return None


def validate_plan(plan: Plan | Mapping[str, Any], catalog: Sequence[CatalogAgent]) -> list[dict[str, str]]:
    """Every problem of ``plan`` against ``catalog``; an empty list means it can run."""
    errors: list[dict[str, str]] = []

    def error(field: str, message: str) -> None:
        errors.append({"field": field, "message": message})

    data: Any = plan.model_dump() if isinstance(plan, Plan) else plan
    if not isinstance(data, Mapping):
        error("", f"a plan must be an object with 'steps', got {type(data).__name__}")
        return errors
    steps = data.get("steps")
    if not isinstance(steps, list) or not steps:
        error("steps", "'steps' must be a non-empty list of step objects")
        return errors

    agents = {a.id: a for a in catalog}
    ids: dict[str, int] = {}
    names: dict[str, int] = {}
    edges: dict[str, list[str]] = {}
    for index, step in enumerate(steps):
        where = f"steps[{index}]"
        if not isinstance(step, Mapping):
            error(where, "a step must be an object")
            continue
        step_id = step.get("id")
        if not isinstance(step_id, str) or not step_id.strip():
            error(f"{where}.id", "'id' must be a non-empty string")
            step_id = None
        elif step_id in ids:
            error(f"{where}.id", f"duplicate step id {step_id!r} (also steps[{ids[step_id]}])")
        else:
            ids[step_id] = index
        name = step.get("name")
        if not isinstance(name, str) or not name.strip():
            error(f"{where}.name", "'name' must be a non-empty string")
        elif name in names:
            error(f"{where}.name", f"duplicate step name {name!r} (also steps[{names[name]}])")
        else:
            names[name] = index

        step_type = step.get("type")
        if step_type not in STEP_TYPES:
            error(f"{where}.type", f"unknown step type {step_type!r}; use one of {sorted(STEP_TYPES)}")

        depends = step.get("depends_on", [])
        if depends is None:
            depends = []
        if not isinstance(depends, list) or not all(isinstance(d, str) for d in depends):
            error(f"{where}.depends_on", "'depends_on' must be a list of step ids")
            depends = []
        if step_id is not None:
            edges[step_id] = list(depends)

        parameters = step.get("parameters", {})
        if parameters is None:
            parameters = {}
        if not isinstance(parameters, Mapping):
            error(f"{where}.parameters", "'parameters' must be an object")
            parameters = {}
        _check_call(step, step_type, parameters, agents, where, error)

    for step_id, depends in edges.items():
        where = f"steps[{ids[step_id]}].depends_on"
        for dep in depends:
            if dep == step_id:
                error(where, f"step {step_id!r} depends on itself")
            elif dep not in ids:
                error(where, f"unknown step {dep!r} in depends_on of {step_id!r}; known ids: {sorted(ids)}")
    cycle = _find_cycle({k: [d for d in v if d in ids and d != k] for k, v in edges.items()})
    if cycle:
        error(
            f"steps[{ids[cycle[0]]}].depends_on",
            "depends_on has a cycle: " + " -> ".join(repr(c) for c in cycle),
        )
    return errors


def _check_call(
    step: Mapping[str, Any],
    step_type: Any,
    parameters: Mapping[str, Any],
    agents: Mapping[str, CatalogAgent],
    where: str,
    error: Any,
) -> None:
    agent_id = step.get("agent")
    capability_name = step.get("capability")
    calls_agent = step_type in {"mcp_query", "mcp_execute"}
    if agent_id is None:
        if calls_agent:
            error(f"{where}.agent", f"a {step_type} step needs an agent; choose one of {sorted(agents)}")
        elif capability_name is not None:
            error(f"{where}.agent", "a step with a capability needs the agent that has it")
        if step_type == "llm" and capability_name is None and not isinstance(parameters.get("prompt"), str):
            error(f"{where}.parameters.prompt", "an llm step without a capability needs a 'prompt' string")
        return
    if not isinstance(agent_id, str) or agent_id not in agents:
        error(f"{where}.agent", f"unknown agent {agent_id!r}; choose one of {sorted(agents)}")
        return
    agent = agents[agent_id]
    if capability_name is None:
        if calls_agent:
            names = [c.name for c in agent.capabilities]
            error(f"{where}.capability", f"a {step_type} step needs a capability of {agent_id!r}: {names}")
        elif not isinstance(parameters.get("prompt"), str):
            error(f"{where}.parameters.prompt", "an llm step without a capability needs a 'prompt' string")
        return
    capability = agent.capability(capability_name) if isinstance(capability_name, str) else None
    if capability is None:
        names = [c.name for c in agent.capabilities]
        error(
            f"{where}.capability",
            f"unknown capability {capability_name!r} on agent {agent_id!r}; it has {names}",
        )
        return
    for name, spec in capability.parameters.items():
        if spec.required and parameters.get(name) is None:
            error(
                f"{where}.parameters.{name}",
                f"missing required parameter {name!r} of {agent_id}.{capability.name}",
            )
    for name, value in parameters.items():
        declared = capability.parameters.get(name)
        if declared is None:
            if capability.parameters and not (step_type == "llm" and name in _LLM_EXTRAS):
                error(
                    f"{where}.parameters.{name}",
                    f"unknown parameter {name!r} of {agent_id}.{capability.name}; "
                    f"known: {sorted(capability.parameters)}",
                )
            continue
        if value is None:
            continue
        problem = check_parameter(value, declared)
        if problem:
            error(f"{where}.parameters.{name}", problem)


def _find_cycle(edges: Mapping[str, list[str]]) -> list[str] | None:
    """One cycle as a path that ends where it starts, or None. Iterative, so a long chain cannot overflow."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    for root in edges:
        if state.get(root):
            continue
        path: list[str] = []
        stack: list[tuple[str, int]] = [(root, 0)]
        while stack:
            node, position = stack.pop()
            if position == 0:
                state[node] = 1
                path.append(node)
            children = edges.get(node, [])
            if position < len(children):
                stack.append((node, position + 1))
                child = children[position]
                if state.get(child) == 1:
                    return [*path[path.index(child) :], child]
                if not state.get(child):
                    stack.append((child, 0))
            else:
                state[node] = 2
                path.pop()
    return None

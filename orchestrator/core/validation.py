"""Workflow validation: every problem at once, each with the JSON path of the field at fault.

Validation happens before anything is recorded, so a template typo or a reference to a step that has
not run yet is an ``INVALID_WORKFLOW`` answer, not a failure halfway through an execution.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import jsonschema
from pydantic import ValidationError

from orchestrator.core.definitions import CONTAINER_KINDS, STEP_KINDS, RetryPolicy, StepDef, WorkflowDef
from orchestrator.core.durations import parse_duration
from orchestrator.core.errors import InvalidWorkflow
from orchestrator.core.templates import TemplateError, check_syntax, referenced_steps, strings_in

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,127}$")
_TYPE_FIELDS: dict[str, tuple[str, ...]] = {
    "connector": ("connector", "statement", "parameters"),
    "llm": ("prompt", "system", "model", "max_tokens", "temperature", "output_schema", "messages", "agent"),
    "condition": ("condition", "if_true", "if_false"),
    "parallel": ("steps",),
    "transform": ("value",),
    "wait": ("duration",),
}
_COMMON_FIELDS = ("name", "id", "type", "title", "description", "depends_on", "timeout", "retry")
_ALIASES = {"resource": "connector", "query": "statement"}  # EAI resource_query spelling

_KNOWN_TYPES = ", ".join(STEP_KINDS)

Detail = dict[str, str]
_Branch = Literal["if_true", "if_false"]  # StepDef.branch


def parse_workflow(raw: Any, *, path: str = "workflow") -> WorkflowDef:
    """Validate a v1 workflow (``{metadata, spec}``) and return its internal definition."""
    details: list[Detail] = []
    if not isinstance(raw, dict):
        raise InvalidWorkflow("workflow must be an object", details=[_d(path, "must be an object")])
    metadata = raw.get("metadata")
    spec = raw.get("spec")
    if not isinstance(metadata, dict):
        details.append(_d(f"{path}.metadata", "is required and must be an object with a name"))
        metadata = {}
    if not isinstance(spec, dict):
        details.append(_d(f"{path}.spec", "is required and must be an object with steps"))
        spec = {}
    header = {
        "name": metadata.get("name"),
        "version": metadata.get("version"),
        "description": metadata.get("description"),
        "timeout": spec.get("timeout"),
        "retry": spec.get("retry"),
        "output": spec.get("output"),
        "input_schema": spec.get("input_schema"),
    }
    return build_workflow(
        header,
        spec.get("steps"),
        details=details,
        name_path=f"{path}.metadata.name",
        spec_path=f"{path}.spec",
        key_field="name",
    )


def build_workflow(
    header: dict[str, Any],
    raw_steps: Any,
    *,
    details: list[Detail] | None = None,
    name_path: str,
    spec_path: str,
    key_field: str,
    extra: dict[str, Any] | None = None,
) -> WorkflowDef:
    """Shared by both dialects: ``key_field`` is ``name`` (v1) or ``id`` (EAI)."""
    details = details if details is not None else []
    name = header.get("name")
    if not isinstance(name, str) or not name.strip():
        details.append(_d(name_path, "is required and must be a non-empty string"))
    for field in ("version", "description"):
        if header.get(field) is not None and not isinstance(header[field], str):
            details.append(_d(f"{name_path.rsplit('.', 1)[0]}.{field}", "must be a string"))
    timeout = _duration(header.get("timeout"), f"{spec_path}.timeout", details)
    retry = _retry(header.get("retry"), f"{spec_path}.retry", details)
    output = header.get("output")
    if output is not None and not isinstance(output, dict):
        details.append(_d(f"{spec_path}.output", "must be an object mapping names to templates"))
        output = None
    input_schema = header.get("input_schema")
    if input_schema is not None:
        _json_schema(input_schema, f"{spec_path}.input_schema", details)

    steps: list[StepDef] = []
    if not isinstance(raw_steps, list) or not raw_steps:
        details.append(_d(f"{spec_path}.steps", "is required and must be a non-empty array of steps"))
    else:
        slots: list[StepDef | None] = []
        _collect_steps(raw_steps, f"{spec_path}.steps", None, None, slots, set(), details, key_field)
        steps = [step for step in slots if step is not None]

    names = {step.name for step in steps}
    positions: dict[str, str] = {}
    _step_positions(raw_steps, f"{spec_path}.steps", positions, key_field)
    for step in steps:
        for index, dep in enumerate(step.depends_on):
            if dep not in names:
                details.append(
                    _d(f"{positions[step.name]}.depends_on[{index}]", f"unknown step {dep!r} in depends_on")
                )
    by_name = {step.name: step for step in steps}
    cycle = _find_cycle(by_name)
    if cycle:
        details.append(_d(positions.get(cycle[0], spec_path), "dependency cycle: " + " -> ".join(cycle)))
    else:
        upstream = _upstream(by_name)
        for step in by_name.values():
            inner = _all_descendants(step.name, by_name) & upstream[step.name]
            if inner:  # its children cannot start before it does, so it would wait forever
                details.append(
                    _d(
                        positions.get(step.name, spec_path),
                        f"dependency cycle: {step.name} -> {sorted(inner)[0]} -> {step.name} "
                        "(a nested step cannot start before its container)",
                    )
                )

    _check_templates(by_name, positions, output, spec_path, details)
    if details:
        raise InvalidWorkflow(
            f"workflow is invalid: {len(details)} problem{'s' if len(details) > 1 else ''}", details=details
        )
    return WorkflowDef(
        name=name,  # type: ignore[arg-type]
        version=header.get("version"),
        description=header.get("description"),
        steps=steps,
        timeout=timeout,
        retry=retry,
        output=output,
        input_schema=input_schema,
        **(extra or {}),
    )


def _collect_steps(
    raw_steps: list[Any],
    path: str,
    parent: str | None,
    branch: _Branch | None,
    out: list[StepDef | None],
    seen: set[str],
    details: list[Detail],
    key_field: str,
) -> list[str]:
    names: list[str] = []
    for index, raw in enumerate(raw_steps):
        here = f"{path}[{index}]"
        if not isinstance(raw, dict):
            details.append(_d(here, "must be an object"))
            continue
        raw = {_ALIASES.get(key, key): value for key, value in raw.items()}
        name = raw.get(key_field)
        if not isinstance(name, str) or not name:
            details.append(_d(f"{here}.{key_field}", "is required and must be a non-empty string"))
            continue
        if not _NAME.match(name):
            details.append(
                _d(f"{here}.{key_field}", f"invalid step name {name!r}: use letters, digits, '_' and '-'")
            )
            continue
        if name in seen:
            details.append(_d(f"{here}.{key_field}", f"duplicate step name {name!r}"))
            continue
        seen.add(name)
        step_type = raw.get("type")
        if not isinstance(step_type, str) or step_type not in STEP_KINDS:
            details.append(
                _d(f"{here}.type", f"unknown step type {step_type!r}; expected one of {_KNOWN_TYPES}")
            )
            continue
        kind = STEP_KINDS[step_type]
        allowed = set(_COMMON_FIELDS) | set(_TYPE_FIELDS[kind])
        for key in raw:
            if key not in allowed and not (key_field == "id" and key == "name"):
                details.append(_d(f"{here}.{key}", f"unknown field {key!r} for a {step_type!r} step"))
        fields: dict[str, Any] = {"name": name, "type": step_type, "parent": parent, "branch": branch}
        if key_field == "id":
            fields["title"] = raw.get("name") if isinstance(raw.get("name"), str) else None
        elif isinstance(raw.get("title"), str):
            fields["title"] = raw["title"]
        if raw.get("description") is not None:
            if isinstance(raw["description"], str):
                fields["description"] = raw["description"]
            else:
                details.append(_d(f"{here}.description", "must be a string"))
        depends_on = raw.get("depends_on", [])
        if not isinstance(depends_on, list) or not all(isinstance(dep, str) for dep in depends_on):
            details.append(_d(f"{here}.depends_on", "must be an array of step names"))
            depends_on = []
        fields["depends_on"] = depends_on
        fields["timeout"] = _duration(raw.get("timeout"), f"{here}.timeout", details)
        fields["retry"] = _retry(raw.get("retry"), f"{here}.retry", details)
        out.append(None)  # reserve the slot so parents precede their children
        slot = len(out) - 1
        _type_fields(kind, raw, here, fields, details, out, seen, key_field)
        try:
            out[slot] = StepDef(**fields)
        except ValidationError as exc:
            for error in exc.errors():
                loc = ".".join(str(part) for part in error["loc"])
                details.append(_d(f"{here}.{loc}", error["msg"]))
            out[slot] = StepDef(name=name, type=step_type, parent=parent, branch=branch)
        names.append(name)
    return names


def _type_fields(
    kind: str,
    raw: dict[str, Any],
    here: str,
    fields: dict[str, Any],
    details: list[Detail],
    out: list[StepDef | None],
    seen: set[str],
    key_field: str,
) -> None:
    name = fields["name"]
    if kind == "connector":
        for field in ("connector", "statement"):
            if not isinstance(raw.get(field), str) or not raw[field]:
                details.append(_d(f"{here}.{field}", f"is required for a {raw['type']!r} step"))
            else:
                fields[field] = raw[field]
        parameters = raw.get("parameters", {})
        if not isinstance(parameters, dict):
            details.append(_d(f"{here}.parameters", "must be an object"))
        else:
            fields["parameters"] = parameters
    elif kind == "llm":
        prompt, messages = raw.get("prompt"), raw.get("messages")
        if messages is not None and (
            not isinstance(messages, list)
            or not all(isinstance(m, dict) and isinstance(m.get("content"), str) for m in messages)
        ):
            details.append(_d(f"{here}.messages", "must be an array of {role, content} objects"))
            messages = None
        if (not isinstance(prompt, str) or not prompt.strip()) and not messages:
            details.append(_d(f"{here}.prompt", f"is required for a {raw['type']!r} step"))
        for field in ("prompt", "system", "model", "agent"):
            if raw.get(field) is not None:
                fields[field] = raw[field]
        if messages:
            fields["messages"] = messages
        for field in ("max_tokens", "temperature"):
            if raw.get(field) is not None:
                fields[field] = raw[field]
        schema = raw.get("output_schema")
        if schema is not None and _json_schema(schema, f"{here}.output_schema", details):
            fields["output_schema"] = schema
    elif kind == "condition":
        if not isinstance(raw.get("condition"), str) or not raw["condition"].strip():
            details.append(_d(f"{here}.condition", "is required: a Jinja expression"))
        else:
            fields["condition"] = raw["condition"]
        branches: tuple[_Branch, ...] = ("if_true", "if_false")
        for branch in branches:
            nested = raw.get(branch, [])
            if not isinstance(nested, list):
                details.append(_d(f"{here}.{branch}", "must be an array of steps"))
                continue
            fields[branch] = _collect_steps(
                nested, f"{here}.{branch}", name, branch, out, seen, details, key_field
            )
        if not raw.get("if_true") and not raw.get("if_false"):
            details.append(_d(f"{here}.if_true", "a condition needs steps in if_true or if_false"))
    elif kind == "parallel":
        nested = raw.get("steps")
        if not isinstance(nested, list) or not nested:
            details.append(_d(f"{here}.steps", "is required: a non-empty array of steps"))
        else:
            fields["steps"] = _collect_steps(
                nested, f"{here}.steps", name, None, out, seen, details, key_field
            )
    elif kind == "transform":
        if "value" not in raw:
            details.append(_d(f"{here}.value", "is required for a 'transform' step"))
        fields["value"] = raw.get("value")
    elif kind == "wait":
        if "duration" not in raw:
            details.append(_d(f"{here}.duration", "is required for a 'wait' step"))
        else:
            fields["duration"] = _duration(raw["duration"], f"{here}.duration", details)


def _step_positions(raw_steps: Any, path: str, out: dict[str, str], key_field: str) -> None:
    if not isinstance(raw_steps, list):
        return
    for index, raw in enumerate(raw_steps):
        if not isinstance(raw, dict):
            continue
        here = f"{path}[{index}]"
        name = raw.get(key_field)
        if isinstance(name, str) and name not in out:
            out[name] = here
        for nested in ("if_true", "if_false", "steps"):
            _step_positions(raw.get(nested), f"{here}.{nested}", out, key_field)


def _find_cycle(by_name: dict[str, StepDef]) -> list[str] | None:
    """A cycle over depends_on and containment (a container waits for its children)."""
    edges: dict[str, list[str]] = {name: [] for name in by_name}
    for step in by_name.values():
        # step waits for: its dependencies, and (as a container) its children
        edges[step.name].extend(dep for dep in step.depends_on if dep in by_name)
        edges[step.name].extend(step.children)
        if step.parent:  # a child cannot wait for its own container
            edges[step.name].extend(dep for dep in _ancestors(step, by_name))
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in edges[node]:
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for name in by_name:
        if name not in state:
            found = visit(name)
            if found:
                return found
    return None


def _ancestors(step: StepDef, by_name: dict[str, StepDef]) -> list[str]:
    """Containers of ``step`` that it names in depends_on: waiting on them would deadlock."""
    parents: list[str] = []
    parent = step.parent
    while parent:
        parents.append(parent)
        parent = by_name[parent].parent
    return [name for name in parents if name in step.depends_on]


def _upstream(by_name: dict[str, StepDef]) -> dict[str, set[str]]:
    """Steps whose output is settled before each step starts."""
    dependencies: dict[str, list[str]] = {}
    for step in by_name.values():
        inherited = dependencies.get(step.parent, []) if step.parent else []
        dependencies[step.name] = [*inherited, *step.depends_on]
    memo: dict[str, set[str]] = {}

    def closure(name: str) -> set[str]:
        if name not in memo:
            memo[name] = set()
            result: set[str] = set()
            for dep in dependencies[name]:
                if dep not in by_name:
                    continue  # reported as an unknown dependency already
                result.add(dep)
                result |= closure(dep)
                # a finished container's children are finished too
                result |= _all_descendants(dep, by_name)
            memo[name] = result
        return memo[name]

    return {name: closure(name) for name in by_name}


def _all_descendants(name: str, by_name: dict[str, StepDef]) -> set[str]:
    out: set[str] = set()
    for child in by_name[name].children:
        out.add(child)
        out |= _all_descendants(child, by_name)
    return out


def _check_templates(
    by_name: dict[str, StepDef],
    positions: dict[str, str],
    output: dict[str, Any] | None,
    spec_path: str,
    details: list[Detail],
) -> None:
    upstream = _upstream(by_name)
    for step in by_name.values():
        here = positions.get(step.name, spec_path)
        sources: list[tuple[str, Any, bool]] = [
            ("parameters", step.parameters, False),
            ("prompt", step.prompt, False),
            ("system", step.system, False),
            ("messages", step.messages, False),
            ("value", step.value, False),
        ]
        if step.condition is not None:
            sources.append(("condition", step.condition, True))
        for field, value, expression in sources:
            if value is None:
                continue
            for suffix, text in strings_in(value):
                where = f"{here}.{field}{suffix}"
                try:
                    check_syntax(text, expression=expression)
                    refs = referenced_steps(text, expression=expression)
                except TemplateError as exc:
                    details.append(_d(where, str(exc)))
                    continue
                for ref in sorted(refs):
                    if ref not in by_name:
                        details.append(_d(where, f"template references unknown step {ref!r}"))
                    elif ref not in upstream[step.name]:
                        details.append(
                            _d(
                                where,
                                f"template references step {ref!r}, which is not upstream of "
                                f"{step.name!r}: add it to depends_on",
                            )
                        )
    for key, value in (output or {}).items():
        for suffix, text in strings_in(value):
            where = f"{spec_path}.output.{key}{suffix}"
            try:
                check_syntax(text)
                refs = referenced_steps(text)
            except TemplateError as exc:
                details.append(_d(where, str(exc)))
                continue
            for ref in sorted(refs - by_name.keys()):
                details.append(_d(where, f"template references unknown step {ref!r}"))


def _duration(value: Any, path: str, details: list[Detail]) -> float | None:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        details.append(_d(path, str(exc)))
        return None


def _retry(value: Any, path: str, details: list[Detail]) -> RetryPolicy | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        details.append(_d(path, "must be an object"))
        return None
    value = dict(value)
    for field in ("initial_interval", "max_interval"):
        if field in value:
            seconds = _duration(value[field], f"{path}.{field}", details)
            if seconds is None:
                return None
            value[field] = seconds
    try:
        return RetryPolicy(**value)
    except ValidationError as exc:
        for error in exc.errors():
            loc = ".".join(str(part) for part in error["loc"])
            details.append(_d(f"{path}.{loc}" if loc else path, error["msg"]))
        return None


def _json_schema(schema: Any, path: str, details: list[Detail]) -> bool:
    if not isinstance(schema, dict):
        details.append(_d(path, "must be a JSON Schema object"))
        return False
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        details.append(_d(path, f"invalid JSON Schema: {exc.message}"))
        return False
    return True


def _d(field: str, message: str) -> Detail:
    return {"field": field, "message": message}


__all__ = ["CONTAINER_KINDS", "build_workflow", "parse_workflow"]

"""Workflow validation: every problem at once, each with the JSON path of the field at fault.

Validation happens before anything is recorded, so a template typo or a reference to a step that has
not run yet is an ``INVALID_WORKFLOW`` answer, not a failure halfway through an execution.

Validation runs on the single ingress replica, so its cost must not depend on how hostile the request
is: the size limits (:class:`~orchestrator.core.limits.Limits`: steps, nesting depth, template bytes) are
checked first, by one iterative pass over the raw steps, and everything after is iterative and
near-linear (graph closures are bitsets over at most ``max_steps`` steps).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, Literal

import jsonschema
from pydantic import ValidationError

from orchestrator.core.definitions import (
    CONTAINER_KINDS,
    STEP_KINDS,
    WAITING_KINDS,
    RetryPolicy,
    StepDef,
    WorkflowDef,
)
from orchestrator.core.durations import parse_duration
from orchestrator.core.errors import InvalidWorkflow
from orchestrator.core.limits import DEFAULT_LIMITS, Limits
from orchestrator.core.templates import TemplateError, check_syntax, is_template, referenced_steps, strings_in

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,127}$")
_TYPE_FIELDS: dict[str, tuple[str, ...]] = {
    "connector": ("connector", "statement", "parameters"),
    "llm": ("prompt", "system", "model", "max_tokens", "temperature", "output_schema", "messages", "agent"),
    "condition": ("condition", "if_true", "if_false"),
    "parallel": ("steps",),
    "transform": ("value",),
    "wait": ("duration",),
    "approval": ("prompt", "approvers", "on_reject"),
    "signal": ("signal", "schema"),
}
_COMMON_FIELDS = ("name", "id", "type", "title", "description", "depends_on", "timeout", "retry")
_ALIASES = {"resource": "connector", "query": "statement"}  # EAI resource_query spelling

_KNOWN_TYPES = ", ".join(STEP_KINDS)

Detail = dict[str, str]
_Branch = Literal["if_true", "if_false"]  # StepDef.branch


def parse_workflow(raw: Any, *, path: str = "workflow", limits: Limits = DEFAULT_LIMITS) -> WorkflowDef:
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
        limits=limits,
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
    limits: Limits = DEFAULT_LIMITS,
) -> WorkflowDef:
    """Shared by both dialects: ``key_field`` is ``name`` (v1) or ``id`` (EAI)."""
    details = details if details is not None else []
    _check_size_limits(raw_steps, f"{spec_path}.steps", limits)
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
    positions: dict[str, str] = {}
    if not isinstance(raw_steps, list) or not raw_steps:
        details.append(_d(f"{spec_path}.steps", "is required and must be a non-empty array of steps"))
    else:
        slots: list[StepDef | None] = []
        _collect_steps(
            raw_steps, f"{spec_path}.steps", None, None, slots, set(), details, key_field, positions
        )
        steps = [step for step in slots if step is not None]

    by_name = {step.name: step for step in steps}
    for step in steps:
        for index, dep in enumerate(step.depends_on):
            if dep not in by_name:
                details.append(
                    _d(f"{positions[step.name]}.depends_on[{index}]", f"unknown step {dep!r} in depends_on")
                )
    graph = _Graph(steps)
    cycle = _find_cycle(by_name)
    if cycle:
        details.append(_d(positions.get(cycle[0], spec_path), "dependency cycle: " + " -> ".join(cycle)))
    else:
        for step in steps:
            inner = graph.descendants(step.name) & graph.upstream(step.name)
            if inner:  # its children cannot start before it does, so it would wait forever
                details.append(
                    _d(
                        positions.get(step.name, spec_path),
                        f"dependency cycle: {step.name} -> {graph.first(inner)} -> {step.name} "
                        "(a nested step cannot start before its container)",
                    )
                )

    _check_templates(by_name, graph, positions, output, spec_path, details, limits)
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
    positions: dict[str, str],
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
        positions[name] = here
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
        if kind in CONTAINER_KINDS:
            # A container does no work of its own: a timeout or retry on it would be silently ignored.
            for field in ("timeout", "retry"):
                if raw.get(field) is not None:
                    details.append(
                        _d(
                            f"{here}.{field}",
                            f"{field!r} is not supported on a {step_type!r} step: "
                            "set it on the nested steps or on the workflow",
                        )
                    )
        else:
            fields["timeout"] = _duration(raw.get("timeout"), f"{here}.timeout", details)
            fields["retry"] = _retry(raw.get("retry"), f"{here}.retry", details)
        if kind in WAITING_KINDS and raw.get("retry") is not None:
            # a rejection or a timeout is a person's answer (or silence): trying again would not change it
            details.append(_d(f"{here}.retry", f"'retry' is not supported on a {step_type!r} step"))
        out.append(None)  # reserve the slot so parents precede their children
        slot = len(out) - 1
        _type_fields(kind, raw, here, fields, details, out, seen, key_field, positions)
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
    positions: dict[str, str],
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
                nested, f"{here}.{branch}", name, branch, out, seen, details, key_field, positions
            )
        if not raw.get("if_true") and not raw.get("if_false"):
            details.append(_d(f"{here}.if_true", "a condition needs steps in if_true or if_false"))
    elif kind == "parallel":
        nested = raw.get("steps")
        if not isinstance(nested, list) or not nested:
            details.append(_d(f"{here}.steps", "is required: a non-empty array of steps"))
        else:
            fields["steps"] = _collect_steps(
                nested, f"{here}.steps", name, None, out, seen, details, key_field, positions
            )
    elif kind == "transform":
        if "value" not in raw:
            details.append(_d(f"{here}.value", "is required for a 'transform' step"))
        fields["value"] = raw.get("value")
    elif kind in WAITING_KINDS:
        _waiting_fields(kind, raw, here, fields, details)
    elif kind == "wait":
        if "duration" not in raw:
            details.append(_d(f"{here}.duration", "is required for a 'wait' step"))
        else:
            fields["duration"] = _duration(raw["duration"], f"{here}.duration", details)


def _waiting_fields(
    kind: str, raw: dict[str, Any], here: str, fields: dict[str, Any], details: list[Detail]
) -> None:
    """``approval``: a prompt (a template), optional approvers (user ids or roles), on_reject.
    ``signal``: the signal's name (it is part of a URL, so a step name's alphabet) and an optional JSON
    Schema its payload must satisfy."""
    if kind == "approval":
        prompt = raw.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            details.append(_d(f"{here}.prompt", "is required for an 'approval' step: the question to decide"))
        else:
            fields["prompt"] = prompt
        approvers = raw.get("approvers", [])
        if not isinstance(approvers, list) or not all(
            isinstance(a, str | int) and not isinstance(a, bool) and str(a) for a in approvers
        ):
            details.append(_d(f"{here}.approvers", "must be an array of user ids or roles"))
        else:
            fields["approvers"] = [str(a) for a in approvers]
        on_reject = raw.get("on_reject", "fail")
        if on_reject not in ("fail", "continue"):
            details.append(_d(f"{here}.on_reject", f"must be 'fail' or 'continue', not {on_reject!r}"))
        else:
            fields["on_reject"] = on_reject
        return
    signal = raw.get("signal")
    if not isinstance(signal, str) or not _NAME.match(signal):
        details.append(
            _d(f"{here}.signal", "is required for a 'signal' step: a name of letters, digits, '_' and '-'")
        )
    else:
        fields["signal"] = signal
    schema = raw.get("schema")
    if schema is not None and _json_schema(schema, f"{here}.schema", details):
        fields["signal_schema"] = schema


_NESTED_FIELDS = ("steps", "if_true", "if_false")


def _check_size_limits(raw_steps: Any, path: str, limits: Limits) -> None:
    """Count steps and nesting before anything else looks at them: one iterative pass that stops at
    the first limit crossed, so a hostile workflow costs no more than a legal one."""
    count = 0
    pending: list[tuple[Any, str, int]] = [(raw_steps, path, 0)]
    while pending:
        nested, where, depth = pending.pop()
        if not isinstance(nested, list):
            continue
        if depth > limits.max_nesting_depth:
            raise _limit(
                where,
                f"steps nest {depth} containers deep; the limit is {limits.max_nesting_depth} "
                "(max_nesting_depth)",
            )
        count += len(nested)
        if count > limits.max_steps:
            raise _limit(
                path, f"the workflow has more than {limits.max_steps} steps, nested ones included (max_steps)"
            )
        for index, raw in enumerate(nested):
            if isinstance(raw, dict):
                for field in _NESTED_FIELDS:
                    if isinstance(raw.get(field), list):
                        pending.append((raw[field], f"{where}[{index}].{field}", depth + 1))


def _limit(field: str, message: str) -> InvalidWorkflow:
    return InvalidWorkflow(f"workflow exceeds a limit: {message}", details=[_d(field, message)])


def _find_cycle(by_name: dict[str, StepDef]) -> list[str] | None:
    """A cycle over depends_on and containment (a container waits for its children).

    Iterative depth-first search: a 1,500-step chain must not be a RecursionError.
    """
    edges: dict[str, list[str]] = {name: [] for name in by_name}
    for step in by_name.values():
        # step waits for: its dependencies, and (as a container) its children
        edges[step.name].extend(dep for dep in step.depends_on if dep in by_name)
        edges[step.name].extend(step.children)
        if step.parent:  # a child cannot wait for its own container
            edges[step.name].extend(dep for dep in _ancestors(step, by_name))
    state: dict[str, int] = {}
    for root in by_name:
        if root in state:
            continue
        state[root] = 1
        path = [root]
        iterators = [iter(edges[root])]
        while iterators:
            nxt = next(iterators[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                iterators.pop()
            elif state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            elif nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                iterators.append(iter(edges[nxt]))
    return None


def _ancestors(step: StepDef, by_name: dict[str, StepDef]) -> list[str]:
    """Containers of ``step`` that it names in depends_on: waiting on them would deadlock."""
    parents: list[str] = []
    parent = step.parent
    while parent:
        parents.append(parent)
        parent = by_name[parent].parent
    return [name for name in parents if name in step.depends_on]


class _Graph:
    """Descendants and upstream steps of every step, as bitsets (bit i is the i-th step).

    The old set-based closures were quadratic in time and memory (a 2,000-child parallel with 2,000
    dependents took 8 s and 300 MB); with ints as bitsets each union is a few machine words per 64
    steps, and each step's closure is computed once, iteratively.
    """

    def __init__(self, steps: list[StepDef]) -> None:
        self._names = [step.name for step in steps]
        self._index = {name: index for index, name in enumerate(self._names)}
        self._steps = {step.name: step for step in steps}
        self._descendants: dict[str, int] = {}
        for step in reversed(steps):  # children follow their container in definition order
            bits = 0
            for child in step.children:
                bits |= (1 << self._index[child]) | self._descendants.get(child, 0)
            self._descendants[step.name] = bits
        self._upstream: dict[str, int] = {}

    def descendants(self, name: str) -> int:
        return self._descendants[name]

    def upstream(self, name: str) -> int:
        """Steps whose output is settled before ``name`` starts: its dependencies, what they wait for,
        their nested steps (a finished container's children are finished too), and what its
        containers wait for."""
        if name not in self._upstream:
            self._closure(name)
        return self._upstream[name]

    def contains(self, bits: int, name: str) -> bool:
        return bool(bits >> self._index[name] & 1)

    def first(self, bits: int) -> str:
        return min(self._names[index] for index in _bit_indices(bits))

    def _closure(self, root: str) -> None:
        # Iterative post-order; a step met again while still open counts as empty (a cycle is
        # reported elsewhere), as the recursive version did.
        self._upstream[root] = 0
        stack = [(root, iter(self._inputs(root)))]
        while stack:
            name, inputs = stack[-1]
            nxt = next(inputs, None)
            if nxt is None:
                stack.pop()
                self._upstream[name] = self._combine(name)
            elif nxt not in self._upstream:
                self._upstream[nxt] = 0
                stack.append((nxt, iter(self._inputs(nxt))))

    def _inputs(self, name: str) -> list[str]:
        step = self._steps[name]
        deps = [dep for dep in step.depends_on if dep in self._steps]
        return [step.parent, *deps] if step.parent else deps

    def _combine(self, name: str) -> int:
        step = self._steps[name]
        bits = self._upstream.get(step.parent, 0) if step.parent else 0
        for dep in step.depends_on:
            if dep in self._steps:  # an unknown one is reported already
                bits |= (1 << self._index[dep]) | self._upstream[dep] | self._descendants[dep]
        return bits


def _bit_indices(bits: int) -> Iterator[int]:
    while bits:
        low = bits & -bits
        yield low.bit_length() - 1
        bits ^= low


def _check_templates(
    by_name: dict[str, StepDef],
    graph: _Graph,
    positions: dict[str, str],
    output: dict[str, Any] | None,
    spec_path: str,
    details: list[Detail],
    limits: Limits,
) -> None:
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
                if _too_long(text, where, details, limits, expression=expression):
                    continue
                try:
                    check_syntax(text, expression=expression)
                    refs = referenced_steps(text, expression=expression)
                except TemplateError as exc:
                    details.append(_d(where, str(exc)))
                    continue
                for ref in sorted(refs):
                    if ref not in by_name:
                        details.append(_d(where, f"template references unknown step {ref!r}"))
                    elif not graph.contains(graph.upstream(step.name), ref):
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
            if _too_long(text, where, details, limits):
                continue
            try:
                check_syntax(text)
                refs = referenced_steps(text)
            except TemplateError as exc:
                details.append(_d(where, str(exc)))
                continue
            for ref in sorted(refs - by_name.keys()):
                details.append(_d(where, f"template references unknown step {ref!r}"))


def _too_long(
    text: str, where: str, details: list[Detail], limits: Limits, *, expression: bool = False
) -> bool:
    """Only templates count: a long literal parameter costs nothing to render."""
    if not expression and not is_template(text):
        return False
    # len() bounds the UTF-8 size from below and by four from above: encode only when it may matter
    if len(text) * 4 <= limits.max_template_bytes:
        return False
    size = len(text.encode("utf-8", "surrogatepass"))
    if size <= limits.max_template_bytes:
        return False
    details.append(
        _d(
            where,
            f"template is {size:,} bytes; the limit is {limits.max_template_bytes:,} (max_template_bytes)",
        )
    )
    return True


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

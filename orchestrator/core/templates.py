"""Templates and conditions: Jinja2's sandbox, with native types for whole-value templates.

``"{{ input.budget }}"`` renders to the number 5000; ``"Budget: {{ input.budget }}"`` to a string.
Templates are compiled once and cached: rendering sits on the per-step path. Undefined names raise,
so a typo fails the step with a message instead of quietly rendering an empty string.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator
from functools import lru_cache
from typing import Any, cast

from jinja2 import StrictUndefined, TemplateSyntaxError, Undefined, nodes
from jinja2.exceptions import TemplateError as JinjaTemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment


class _DataEnvironment(ImmutableSandboxedEnvironment):
    """Step outputs are data: ``output.items`` means the key ``items``, not the dict method."""

    def getattr(self, obj: Any, attribute: str) -> Any:
        if isinstance(obj, dict) and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)


def sandbox(*, prompt: bool = False) -> ImmutableSandboxedEnvironment:
    """The project's one Jinja environment (connectors' prompt templates use it too).

    Step templates (the default) are strict: an undefined name is an error. Prompt templates
    (``prompt=True``) trim block lines, and an optional parameter left out renders empty.
    """
    env = _DataEnvironment(
        undefined=Undefined if prompt else StrictUndefined,
        autoescape=False,
        keep_trailing_newline=not prompt,
        trim_blocks=prompt,
        lstrip_blocks=prompt,
    )
    env.filters["tojson"] = json.dumps  # plain JSON, no HTML escaping
    return env


_ENV = sandbox()
_WHOLE = re.compile(r"^\s*\{\{(?P<expr>.*?)\}\}\s*$", re.DOTALL)


_RENDER_ERRORS = (
    TypeError,
    ValueError,
    AttributeError,
    KeyError,
    ZeroDivisionError,
    OverflowError,
    MemoryError,
)


class TemplateError(ValueError):
    """A template failed to parse or render; the message is fit for users."""


def is_template(text: str) -> bool:
    return "{{" in text or "{%" in text


def _whole_expression(text: str) -> str | None:
    match = _WHOLE.match(text)
    if match and "{{" not in match.group("expr") and "}}" not in match.group("expr"):
        return match.group("expr")
    return None


@lru_cache(maxsize=4096)
def _compiled_expression(expr: str) -> Callable[..., Any]:
    try:
        return _ENV.compile_expression(expr, undefined_to_none=False)
    except TemplateSyntaxError as exc:
        raise TemplateError(f"syntax error in expression {expr.strip()!r}: {exc.message}") from exc


@lru_cache(maxsize=4096)
def _compiled_template(text: str) -> Any:
    try:
        return _ENV.from_string(text)
    except TemplateSyntaxError as exc:
        raise TemplateError(f"syntax error in template {text!r}: {exc.message}") from exc


def render(text: str, context: dict[str, Any]) -> Any:
    """Render one string. A whole-value template keeps its native type."""
    if not is_template(text):
        return text
    expr = _whole_expression(text)
    try:
        if expr is not None:
            return _unwrap(_compiled_expression(expr)(**context))
        return _compiled_template(text).render(**context)
    except TemplateError:
        raise
    except JinjaTemplateError as exc:
        raise TemplateError(f"cannot render {text!r}: {exc}") from exc
    except _RENDER_ERRORS as exc:
        raise TemplateError(f"cannot render {text!r}: {exc}") from exc


def render_value(value: Any, context: dict[str, Any]) -> Any:
    """Render every string inside a JSON-like value."""
    if isinstance(value, str):
        return render(value, context)
    if isinstance(value, dict):
        return {key: render_value(item, context) for key, item in value.items()}
    if isinstance(value, list):
        return [render_value(item, context) for item in value]
    return value


def condition_expression(text: str) -> str:
    """A condition may be written with or without ``{{ }}``."""
    expr = _whole_expression(text)
    return expr if expr is not None else text


def evaluate_condition(text: str, context: dict[str, Any]) -> bool:
    expr = condition_expression(text)
    try:
        return bool(_unwrap(_compiled_expression(expr)(**context)))
    except TemplateError:
        raise
    except JinjaTemplateError as exc:
        raise TemplateError(f"cannot evaluate condition {expr.strip()!r}: {exc}") from exc
    except _RENDER_ERRORS as exc:
        raise TemplateError(f"cannot evaluate condition {expr.strip()!r}: {exc}") from exc


def _unwrap(value: Any) -> Any:
    """Undefined values must fail here, not later when the event is serialised."""
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()
    elif isinstance(value, dict):
        for item in value.values():
            _unwrap(item)
    elif isinstance(value, list | tuple):
        for item in value:
            _unwrap(item)
    return value


# -- static analysis (validation time) ------------------------------------------------------------


def check_syntax(text: str, *, expression: bool = False) -> None:
    """Raise TemplateError when ``text`` does not parse."""
    if expression:
        _compiled_expression(condition_expression(text))
    elif is_template(text):
        expr = _whole_expression(text)
        if expr is not None:
            _compiled_expression(expr)
        else:
            _compiled_template(text)


def referenced_steps(text: str, *, expression: bool = False) -> set[str]:
    """Step names a template reads through ``steps.<name>`` or ``steps['<name>']``."""
    return set(_referenced_steps(text, expression))


@lru_cache(maxsize=4096)
def _referenced_steps(text: str, expression: bool) -> frozenset[str]:
    if not expression and not is_template(text):
        return frozenset()
    source = "{{ " + condition_expression(text) + " }}" if expression else text
    try:
        tree = _ENV.parse(source)
    except TemplateSyntaxError as exc:
        raise TemplateError(f"syntax error in {text!r}: {exc.message}") from exc
    found: set[str] = set()
    # find_all() is typed to yield the join of the requested classes (Expr); it only yields these two.
    attr_nodes = cast(
        "Iterator[nodes.Getattr | nodes.Getitem]", tree.find_all((nodes.Getattr, nodes.Getitem))
    )
    for node in attr_nodes:
        target = node.node
        if isinstance(target, nodes.Name) and target.name == "steps":
            if isinstance(node, nodes.Getattr):
                found.add(node.attr)
            elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
                found.add(node.arg.value)
    return frozenset(found)


def strings_in(value: Any) -> Iterable[tuple[str, str]]:
    """Yield ``(json_path_suffix, string)`` for every string inside a JSON-like value."""
    if isinstance(value, str):
        yield "", value
    elif isinstance(value, dict):
        for key, item in value.items():
            for suffix, text in strings_in(item):
                yield f".{key}{suffix}", text
    elif isinstance(value, list):
        for index, item in enumerate(value):
            for suffix, text in strings_in(item):
                yield f"[{index}]{suffix}", text

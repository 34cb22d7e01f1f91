"""Templates and conditions: Jinja2's sandbox, with native types for whole-value templates.

``"{{ input.budget }}"`` renders to the number 5000; ``"Budget: {{ input.budget }}"`` to a string.
Templates are compiled once and cached: rendering sits on the per-step path. Undefined names raise,
so a typo fails the step with a message instead of quietly rendering an empty string.

Templates come from requests, so one must never freeze or exhaust the host: an OOM kill restarts the
actor and the replay makes the same decision again. The sandbox therefore bounds everything that can
amplify (:class:`TemplateLimitError`, code ``TEMPLATE_LIMIT``):

- arithmetic goes through :meth:`_DataEnvironment.call_binop`, which refuses integers over
  ``MAX_INT_BITS`` and strings/lists over ``MAX_SIZE`` *before* computing them; intercepting the
  operators also stops Jinja from constant-folding ``9**(9**8)`` at compile time;
- ``range``, padding (``center``, ``ljust``, ``format`` widths...), ``join``, ``replace``, ``indent``,
  ``wordwrap``, ``sum`` and ``slice`` check the size of what they would build;
- every ``for`` loop draws on one per-render budget of ``MAX_LOOP_ITERATIONS``, and the rendered text
  is capped at ``MAX_SIZE`` characters;
- step templates may not define macros or recursive loops (unbounded recursion), and parsing or
  compiling a template nested too deeply is a limit error rather than a ``RecursionError``.
"""

from __future__ import annotations

import json
import re
import string
import types
from collections.abc import Callable, Iterable, Iterator
from functools import lru_cache
from typing import Any, cast

from jinja2 import (
    Environment,
    StrictUndefined,
    Template,
    TemplateSyntaxError,
    Undefined,
    nodes,
    pass_context,
    pass_environment,
)
from jinja2.exceptions import TemplateError as JinjaTemplateError
from jinja2.filters import do_batch, do_indent, do_wordwrap, make_attrgetter
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import consume

MAX_INT_BITS = 14_000  # about 4,200 decimal digits: Python refuses to print ints over 4,300
MAX_SIZE = 8 * 1024 * 1024  # characters of one built string or rendered template, items of one list
MAX_RANGE = 100_000  # items of one range()
MAX_WIDTH = 10_000  # padding width: center(), ljust(), "{:>N}", "%Ns", tojson indent...
MAX_LOOP_ITERATIONS = 1_000_000  # for-loop iterations in one render, all loops together
_LOOP_FILTER = "_bounded_loop"  # wraps every for-loop's iterable (see _DataEnvironment._parse)
_DEFAULT_BINOPS = ImmutableSandboxedEnvironment.default_binop_table


class TemplateError(ValueError):
    """A template failed to parse or render; the message is fit for users."""

    code = "TEMPLATE_ERROR"


class TemplateLimitError(TemplateError):
    """A template would cost more than the sandbox allows (a size, an integer, a loop budget)."""

    code = "TEMPLATE_LIMIT"


def _limit(message: str) -> TemplateLimitError:
    return TemplateLimitError(f"template limit: {message}")


def _size(value: Any) -> int | None:
    return len(value) if isinstance(value, str | bytes | list | tuple) else None


def _check_size(size: int, what: str) -> None:
    if size > MAX_SIZE:
        raise _limit(f"{what} would be {size:,} long; the limit is {MAX_SIZE:,} characters or items")


def _check_width(width: Any, what: str) -> None:
    if isinstance(width, int) and width > MAX_WIDTH:
        raise _limit(f"{what} width {width:,} exceeds {MAX_WIDTH:,}")


def _check_int(value: Any) -> Any:
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise _limit(f"an integer of more than {MAX_INT_BITS:,} bits")
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int)  # bool included: True * "x" repeats too


def _repeat_count(left: Any, right: Any) -> int | None:
    """For ``seq * n`` / ``n * seq``: the length of the result, else None."""
    for seq, times in ((left, right), (right, left)):
        size = _size(seq)
        if size is not None and isinstance(times, int):
            return size * max(times, 0)
    return None


_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")


def _check_percent(fmt: str) -> None:
    """``'%*d' % (10**9, 1)`` and ``'%0999999999d'`` pad without bound; widths are capped."""
    for match in _PERCENT_SPEC.finditer(fmt):
        for group in match.groups():
            if group == "*":
                raise _limit("'*' widths are not allowed in % formatting")
            if group is not None and int(group) > MAX_WIDTH:
                raise _limit(f"% format width {int(group):,} exceeds {MAX_WIDTH:,}")


def _check_format_string(fmt: str) -> None:
    """``'{:>999999999}'.format(1)`` pads without bound; widths are capped, nested specs refused."""
    try:
        parsed = list(string.Formatter().parse(fmt))
    except ValueError:
        return  # str.format raises the same error, with its own message
    for _literal, _field, spec, _conversion in parsed:
        if not spec:
            continue
        if "{" in spec:
            raise _limit("nested replacement fields in a format spec are not allowed")
        for number in re.findall(r"\d+", spec):
            if int(number) > MAX_WIDTH:
                raise _limit(f"format width {int(number):,} exceeds {MAX_WIDTH:,}")


def _binop(operator: str, left: Any, right: Any, table: dict[str, Callable[[Any, Any], Any]]) -> Any:
    if operator == "**" and _is_int(left) and _is_int(right) and right > 0 and abs(left) > 1:
        if (abs(left).bit_length() - 1) * right > MAX_INT_BITS:
            raise _limit(f"{left} ** {right} is larger than {MAX_INT_BITS:,} bits")
    elif operator == "*":
        count = _repeat_count(left, right)
        if count is not None:
            _check_size(count, "a repeated string or list")
        elif _is_int(left) and _is_int(right) and left.bit_length() + right.bit_length() > MAX_INT_BITS + 1:
            raise _limit(f"a product larger than {MAX_INT_BITS:,} bits")
    elif operator == "+" and _size(left) is not None and _size(right) is not None:
        _check_size(cast(int, _size(left)) + cast(int, _size(right)), "a concatenated string or list")
    elif operator == "%" and isinstance(left, str):
        _check_percent(left)
    return _check_int(table[operator](left, right))


def _safe_range(*args: int) -> range:
    numbers = range(*args)
    if len(numbers) > MAX_RANGE:
        raise _limit(f"range() of {len(numbers):,} items exceeds {MAX_RANGE:,}")
    return numbers


@pass_context
def _bounded_loop(context: Context, iterable: Any) -> Iterator[Any]:
    """Every loop iteration in one render counts against one budget (nested loops multiply)."""
    for item in iterable:
        used = getattr(context, "_orch_iterations", 0) + 1
        if used > MAX_LOOP_ITERATIONS:
            raise _limit(f"more than {MAX_LOOP_ITERATIONS:,} loop iterations in one template")
        context._orch_iterations = used  # type: ignore[attr-defined]
        yield item


@pass_environment
def _bounded_join(
    env: Environment, value: Iterable[Any], d: str = "", attribute: str | int | None = None
) -> str:
    parts: list[str] = []
    total = 0
    items = value if attribute is None else map(make_attrgetter(env, attribute), value)
    for item in items:
        text = item if isinstance(item, str) else str(item)
        total += len(text) + len(d)
        _check_size(total, "a joined string")
        parts.append(text)
    return d.join(parts)


def _bounded_replace(s: Any, old: str, new: str, count: int | None = None) -> str:
    text = str(s)
    found = text.count(old) if old else len(text) + 1
    if count is not None and count > 0:
        found = min(found, count)
    _check_size(len(text) + found * max(len(new) - len(old), 0), "a replaced string")
    return text.replace(old, new, -1 if count is None else count)


def _bounded_indent(s: str, width: int | str = 4, first: bool = False, blank: bool = False) -> str:
    step = len(width) if isinstance(width, str) else width
    _check_width(step, "indent")
    _check_size(len(s) + (s.count("\n") + 2) * max(step, 0), "an indented string")
    return do_indent(s, width, first, blank)


@pass_environment
def _bounded_wordwrap(
    env: Environment,
    s: str,
    width: int = 79,
    break_long_words: bool = True,
    wrapstring: str | None = None,
    break_on_hyphens: bool = True,
) -> str:
    joiner = wrapstring if wrapstring is not None else env.newline_sequence
    _check_size(len(s) + (len(s) + 1) * len(joiner), "a wrapped string")
    return do_wordwrap(env, s, width, break_long_words, wrapstring, break_on_hyphens)


def _bounded_center(value: str, width: int = 80) -> str:
    _check_width(width, "center()")
    return str(value).center(width)


def _bounded_format(value: str, *args: Any, **kwargs: Any) -> str:
    if args and kwargs:
        raise TemplateError("format() takes positional or keyword arguments, not both")
    _check_percent(value)
    return value % (kwargs or args)


@pass_environment
def _bounded_sum(
    env: Environment, iterable: Iterable[Any], attribute: str | int | None = None, start: Any = 0
) -> Any:
    """Summing lists one ``+`` at a time is quadratic; sequences are gathered once instead."""
    items = iterable if attribute is None else map(make_attrgetter(env, attribute), iterable)
    if isinstance(start, list | tuple | str):
        parts: list[Any] = []
        total_size = len(start)
        for item in items:
            if type(item) is not type(start) and not (
                isinstance(start, list | tuple) and isinstance(item, list | tuple)
            ):
                raise TemplateError(f"sum() cannot add {type(item).__name__} to {type(start).__name__}")
            total_size += len(item)
            _check_size(total_size, "a summed string or list")
            parts.append(item)
        if isinstance(start, str):
            return start + "".join(parts)
        return type(start)([*start, *(element for part in parts for element in part)])
    total = start
    for item in items:
        total = _binop("+", total, item, _DEFAULT_BINOPS)
    return total


def _bounded_slice(value: Iterable[Any], slices: int, fill_with: Any = None) -> list[list[Any]]:
    _check_size(slices, "slice()")
    seq = list(value)
    size, extra = divmod(len(seq), slices)
    out: list[list[Any]] = []
    offset = 0
    for number in range(slices):
        length = size + (1 if number < extra else 0)
        chunk = seq[offset : offset + length]
        offset += length
        if fill_with is not None and number >= extra:
            chunk.append(fill_with)
        out.append(chunk)
    return out


def _bounded_batch(value: Iterable[Any], linecount: int, fill_with: Any = None) -> Iterator[list[Any]]:
    _check_size(linecount, "batch()")
    return do_batch(value, linecount, fill_with)


def _tojson(value: Any, indent: int | str | None = None, sort_keys: bool = False) -> str:
    _check_width(len(indent) if isinstance(indent, str) else indent, "tojson indent")
    return json.dumps(value, indent=indent, sort_keys=sort_keys)  # plain JSON, no HTML escaping


_PADDING_METHODS = frozenset({"center", "ljust", "rjust", "zfill"})


def _check_method_call(method: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Builtin methods reachable from templates that can build something huge from a small call."""
    owner = getattr(method, "__self__", None)
    name = getattr(method, "__name__", "")
    if isinstance(owner, str | bytes | bytearray):
        if name in _PADDING_METHODS:
            _check_width(args[0] if args else kwargs.get("width"), f"{name}()")
        elif name == "expandtabs":
            tabsize = args[0] if args else kwargs.get("tabsize", 8)
            _check_width(tabsize, "expandtabs()")
        elif name == "replace" and isinstance(owner, str) and len(args) >= 2:
            _bounded_replace(owner, str(args[0]), str(args[1]), 0)  # the size check only
        elif name in ("replace", "translate", "join"):
            raise _limit(f"{type(owner).__name__}.{name}() is not available in templates; use the filters")
    elif isinstance(owner, int) and name == "to_bytes":
        length = args[0] if args else kwargs.get("length", 1)
        _check_size(length if isinstance(length, int) else 0, "to_bytes()")


class _DataEnvironment(ImmutableSandboxedEnvironment):
    """Step outputs are data: ``output.items`` means the key ``items``, not the dict method."""

    intercepted_binops = frozenset({"+", "*", "**", "%", "//", "/", "-"})

    def __init__(self, *, strict: bool, **options: Any) -> None:
        super().__init__(**options)
        self._strict = strict
        self.globals["range"] = _safe_range
        self.globals.pop("lipsum", None)  # lipsum(10**6) builds text without bound; templates never need it
        self.filters.update(
            {
                _LOOP_FILTER: _bounded_loop,
                "tojson": _tojson,
                "join": _bounded_join,
                "replace": _bounded_replace,
                "indent": _bounded_indent,
                "wordwrap": _bounded_wordwrap,
                "center": _bounded_center,
                "format": _bounded_format,
                "sum": _bounded_sum,
                "slice": _bounded_slice,
                "batch": _bounded_batch,
            }
        )

    def getattr(self, obj: Any, attribute: str) -> Any:
        if isinstance(obj, dict) and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        return _binop(operator, left, right, self.binop_table)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(__obj, types.BuiltinMethodType):
            _check_method_call(__obj, args, kwargs)
        return super().call(__context, __obj, *args, **kwargs)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapper = super().wrap_str_format(value)
        if wrapper is not None:
            _check_format_string(value.__self__)
        return wrapper

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        try:
            tree = super()._parse(source, name, filename)
        except RecursionError:
            raise _limit("the template nests too deeply") from None
        for loop in tree.find_all(nodes.For):
            if loop.recursive and self._strict:
                raise TemplateSyntaxError("recursive loops are not allowed in step templates", loop.lineno)
            bounded = nodes.Filter(loop.iter, _LOOP_FILTER, [], [], None, None, lineno=loop.lineno)
            loop.iter = bounded.set_environment(self)
        if self._strict:
            for node in tree.find_all((nodes.Macro, nodes.CallBlock)):
                raise TemplateSyntaxError("macros are not allowed in step templates", node.lineno)
        return tree

    def concat(self, chunks: Iterable[str]) -> str:
        """The rendered text of a template is capped as it is produced, not after."""
        parts: list[str] = []
        total = 0
        for chunk in chunks:
            total += len(chunk)
            if total > MAX_SIZE:
                raise _limit(f"the rendered text would exceed {MAX_SIZE:,} characters")
            parts.append(chunk)
        return "".join(parts)


def sandbox(*, prompt: bool = False) -> ImmutableSandboxedEnvironment:
    """The project's one Jinja environment (connectors' prompt templates use it too).

    Step templates (the default) are strict: an undefined name is an error. Prompt templates
    (``prompt=True``) trim block lines, and an optional parameter left out renders empty.
    """
    return _DataEnvironment(
        strict=not prompt,
        undefined=Undefined if prompt else StrictUndefined,
        autoescape=False,
        keep_trailing_newline=not prompt,
        trim_blocks=prompt,
        lstrip_blocks=prompt,
    )


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


def is_template(text: str) -> bool:
    return "{{" in text or "{%" in text


def _whole_expression(text: str) -> str | None:
    match = _WHOLE.match(text)
    if match and "{{" not in match.group("expr") and "}}" not in match.group("expr"):
        return match.group("expr")
    return None


# Parsing and compiling recurse over the nesting of the source: ``((((...`` ten thousand deep is a
# RecursionError in Jinja's parser or a SyntaxError/MemoryError in Python's compiler.
_TOO_DEEP = (RecursionError, SyntaxError, MemoryError)


class _Expression:
    """A compiled expression, called with the context as one dict.

    Jinja's own ``TemplateExpression`` copies the template's globals (a ChainMap) into a new dict, and
    then into a set, on every call: 5.5 us a call against 1.6 us here, and a chain of transforms
    evaluates one expression per step. The compiled code and its sandbox checks are Jinja's own."""

    __slots__ = ("_blocks", "_globals", "_name", "_render")

    def __init__(self, template: Template) -> None:
        self._globals = dict(template.globals)  # the environment's, fixed once this module is loaded
        self._render = template.root_render_func
        self._name = template.name
        self._blocks = template.blocks

    def __call__(self, context: dict[str, Any]) -> Any:
        jinja_context = _ENV.context_class(_ENV, {**self._globals, **context}, self._name, self._blocks)
        consume(self._render(jinja_context))
        return jinja_context.vars["result"]


@lru_cache(maxsize=4096)
def _compiled_expression(expr: str) -> _Expression:
    try:
        return _Expression(_ENV.compile_expression(expr, undefined_to_none=False)._template)
    except TemplateSyntaxError as exc:
        raise TemplateError(f"syntax error in expression {_excerpt(expr.strip())}: {exc.message}") from exc
    except _TOO_DEEP:
        raise _limit(f"expression {_excerpt(expr.strip())} nests too deeply") from None


@lru_cache(maxsize=4096)
def _compiled_template(text: str) -> Any:
    try:
        return _ENV.from_string(text)
    except TemplateSyntaxError as exc:
        raise TemplateError(f"syntax error in template {_excerpt(text)}: {exc.message}") from exc
    except _TOO_DEEP:
        raise _limit(f"template {_excerpt(text)} nests too deeply") from None


def _excerpt(text: str, limit: int = 200) -> str:
    """Error messages quote the template, but never 64 KiB of it."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + f"... ({len(text):,} characters)"


def render(text: str, context: dict[str, Any]) -> Any:
    """Render one string. A whole-value template keeps its native type."""
    if not is_template(text):
        return text
    expr = _whole_expression(text)
    try:
        if expr is not None:
            return _unwrap(_compiled_expression(expr)(context))
        return _compiled_template(text).render(**context)
    except TemplateError:
        raise
    except JinjaTemplateError as exc:
        raise TemplateError(f"cannot render {_excerpt(text)}: {exc}") from exc
    except _RENDER_ERRORS as exc:
        raise TemplateError(f"cannot render {_excerpt(text)}: {exc}") from exc
    except RecursionError:
        raise _limit(f"rendering {_excerpt(text)} nests too deeply") from None


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
        return bool(_unwrap(_compiled_expression(expr)(context)))
    except TemplateError:
        raise
    except JinjaTemplateError as exc:
        raise TemplateError(f"cannot evaluate condition {_excerpt(expr.strip())}: {exc}") from exc
    except _RENDER_ERRORS as exc:
        raise TemplateError(f"cannot evaluate condition {_excerpt(expr.strip())}: {exc}") from exc
    except RecursionError:
        raise _limit(f"condition {_excerpt(expr.strip())} nests too deeply") from None


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
    """Raise TemplateError when ``text`` does not parse, TemplateLimitError when a part of it that
    reads no variable (``9**(9**8)``, ``'x' * 10**9``) is over a limit: that is the workflow's fault,
    so it is a validation error rather than a step that fails every time."""
    if expression:
        _compiled_expression(condition_expression(text))
    elif is_template(text):
        expr = _whole_expression(text)
        if expr is not None:
            _compiled_expression(expr)
        else:
            _compiled_template(text)
    else:
        return
    _check_constants(text, expression)


# Globals a constant part may call; anything else named is a variable, known only at run time.
_CONSTANT_NAMES = frozenset({"range", "dict", "namespace"})


@lru_cache(maxsize=4096)
def _check_constants(text: str, expression: bool) -> None:
    for part in _constant_parts(text, expression):
        body = [nodes.Assign(nodes.Name("result", "store"), part, lineno=part.lineno)]
        try:
            _Expression(_ENV.from_string(nodes.Template(body, lineno=1)))({})
        except TemplateLimitError as exc:
            raise TemplateLimitError(f"{exc} in {_excerpt(text)}") from None
        except Exception:  # other failures are for run time, as before
            continue


def _constant_parts(text: str, expression: bool) -> list[nodes.Expr]:
    """The largest expressions that read no variable, found without recursion (bottom-up)."""
    tree = _parsed(text, expression)
    order: list[nodes.Node] = []
    pending: list[nodes.Node] = [tree]
    while pending:
        node = pending.pop()
        order.append(node)
        pending.extend(node.iter_child_nodes())
    constant: dict[int, bool] = {}
    for node in reversed(order):  # children before parents
        own = not (isinstance(node, nodes.Name) and node.name not in _CONSTANT_NAMES)
        constant[id(node)] = own and all(constant[id(child)] for child in node.iter_child_nodes())
    parts: list[nodes.Expr] = []
    pending = [tree]
    while pending:
        node = pending.pop()
        if isinstance(node, nodes.Expr) and constant[id(node)]:
            if not isinstance(node, nodes.Literal):
                parts.append(node)
            continue
        pending.extend(node.iter_child_nodes())
    return parts


def referenced_steps(text: str, *, expression: bool = False) -> set[str]:
    """Step names a template reads through ``steps.<name>`` or ``steps['<name>']``."""
    return set(_referenced_steps(text, expression))


@lru_cache(maxsize=4096)
def _referenced_steps(text: str, expression: bool) -> frozenset[str]:
    if not expression and not is_template(text):
        return frozenset()
    tree = _parsed(text, expression)
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


@lru_cache(maxsize=256)
def _parsed(text: str, expression: bool) -> nodes.Template:
    """One parse shared by the static checks (step references, constant parts)."""
    source = "{{ " + condition_expression(text) + " }}" if expression else text
    try:
        return _ENV.parse(source)
    except TemplateSyntaxError as exc:
        raise TemplateError(f"syntax error in {_excerpt(text)}: {exc.message}") from exc
    except _TOO_DEEP:
        raise _limit(f"template {_excerpt(text)} nests too deeply") from None


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

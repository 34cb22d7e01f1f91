"""Templates and conditions: Jinja2 sandbox, native types for whole-value templates, static analysis."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from orchestrator.core.templates import (
    TemplateError,
    TemplateLimitError,
    check_syntax,
    condition_expression,
    evaluate_condition,
    is_template,
    referenced_steps,
    render,
    render_value,
    strings_in,
)

CONTEXT: dict[str, Any] = {
    "input": {
        "budget": 5000,
        "ratio": 0.5,
        "vip": True,
        "note": None,
        "code": "007",
        "cities": ["Paris", "Rome"],
        "prefs": {"stars": 4, "wifi": True},
        "html": "<b>&'\"</b>",
    },
    "steps": {
        "search_flights": {
            "output": {"flights": [{"airline": "Air France", "price": 850}]},
            "status": "completed",
            "error": None,
        },
        "empty": {"output": {"flights": []}, "status": "completed", "error": None},
        "skipped_one": {"output": None, "status": "skipped", "error": None},
    },
    "user": {"id": 123, "role": "user"},
    "execution": {"id": "wf_exec_1", "workflow_name": "travel"},
}


def render_ok(text: str) -> Any:
    return render(text, CONTEXT)


# -- plain strings --------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "plain", "{ not a template }", "50% off", "a } b { c", "{#"])
def test_non_templates_are_returned_unchanged(text: str) -> None:
    assert is_template(text) is False
    assert render_ok(text) is text


@pytest.mark.parametrize("text", ["{{ x }}", "a {{ x }}", "{% if x %}y{% endif %}"])
def test_is_template(text: str) -> None:
    assert is_template(text)


# -- whole-value templates keep native types ------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{{ input.budget }}", 5000),
        ("{{ input.ratio }}", 0.5),
        ("{{ input.vip }}", True),
        ("{{ input.note }}", None),
        ("{{ input.code }}", "007"),  # a string that looks like a number stays a string
        ("{{ input.cities }}", ["Paris", "Rome"]),
        ("{{ input.prefs }}", {"stars": 4, "wifi": True}),
        ("{{ input['prefs']['stars'] }}", 4),
        ("{{ input.budget * 2 }}", 10000),
        ("{{ input.budget > 1000 }}", True),
        ("{{ steps.search_flights.output.flights[0] }}", {"airline": "Air France", "price": 850}),
        ("{{ steps.search_flights.output.flights | map(attribute='price') | list }}", [850]),
        ("  {{ input.budget }}\n", 5000),  # surrounding whitespace does not make it a string
        ("{{input.budget}}", 5000),
        ("{{ [input.budget, input.code] }}", [5000, "007"]),
        ("{{ {'b': input.budget} }}", {"b": 5000}),
    ],
)
def test_whole_value_templates_keep_native_types(text: str, expected: Any) -> None:
    result = render_ok(text)
    assert result == expected
    assert type(result) is type(expected)


def test_an_expression_sees_the_globals_and_its_own_context_only() -> None:
    assert render("{{ dict(a=1) }}", {}) == {"a": 1}
    assert render("{{ range(3) | list }}", {}) == [0, 1, 2]
    assert render("{{ [input.x, steps] }}", {"input": {"x": 1}, "steps": {}}) == [1, {}]
    with pytest.raises(TemplateError):  # nothing left over from the call before
        render("{{ input.x }}", {})


def test_whole_value_output_is_the_context_object_itself() -> None:
    # outputs are shared, never copied: cheap on the per-step path
    assert render_ok("{{ input.cities }}") is CONTEXT["input"]["cities"]


# -- mixed strings --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Budget: {{ input.budget }}", "Budget: 5000"),
        ("{{ input.budget }} USD", "5000 USD"),
        ("{{ input.budget }}{{ input.code }}", "5000007"),
        ("{{ input.budget }} and {{ input.ratio }}", "5000 and 0.5"),
        ("{% if input.vip %}VIP{% else %}regular{% endif %}", "VIP"),
        ("{% for c in input.cities %}{{ c }};{% endfor %}", "Paris;Rome;"),
        ("html stays raw: {{ input.html }}", "html stays raw: <b>&'\"</b>"),  # no autoescape
        ("trailing newline\n{{ input.code }}\n", "trailing newline\n007\n"),
    ],
)
def test_mixed_templates_render_to_strings(text: str, expected: str) -> None:
    assert render_ok(text) == expected


# -- filters --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{{ input.cities | length }}", 2),
        ("{{ steps.search_flights.output.flights | length }}", 1),
        ("{{ input.cities | join(', ') }}", "Paris, Rome"),
        ("{{ input.cities | first | upper }}", "PARIS"),
        ("{{ input.missing | default('n/a') }}", "n/a"),
        ("{{ input.budget | string }}", "5000"),
        ("Found {{ input.cities | length }} cities", "Found 2 cities"),
    ],
)
def test_filters(text: str, expected: Any) -> None:
    assert render_ok(text) == expected


def test_tojson_is_plain_json_without_html_escaping() -> None:
    assert render_ok("{{ input.prefs | tojson }}") == '{"stars": 4, "wifi": true}'
    assert json.loads(render_ok("{{ input.html | tojson }}")) == "<b>&'\"</b>"
    assert "\\u003c" not in render_ok("{{ input.html | tojson }}")
    assert render_ok("data={{ input.cities | tojson }}") == 'data=["Paris", "Rome"]'


# -- render_value ---------------------------------------------------------------------------------


def test_render_value_renders_every_string_in_json_like_values() -> None:
    value = {
        "budget": "{{ input.budget }}",
        "label": "max {{ input.budget }}",
        "list": ["{{ input.cities }}", 3, None, True, {"deep": "{{ user.id }}"}],
        "n": 1.5,
        "plain": "x",
    }
    original = copy.deepcopy(value)
    assert render_value(value, CONTEXT) == {
        "budget": 5000,
        "label": "max 5000",
        "list": [["Paris", "Rome"], 3, None, True, {"deep": 123}],
        "n": 1.5,
        "plain": "x",
    }
    assert value == original


@pytest.mark.parametrize("value", [None, 3, 2.5, True, [], {}])
def test_render_value_leaves_non_strings_alone(value: Any) -> None:
    assert render_value(value, CONTEXT) == value


def test_render_value_does_not_render_keys() -> None:
    assert render_value({"{{ input.code }}": 1}, CONTEXT) == {"{{ input.code }}": 1}


# -- conditions -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("steps.search_flights.output.flights | length > 0", True),
        ("{{ steps.search_flights.output.flights | length > 0 }}", True),
        ("steps.empty.output.flights | length > 0", False),
        ("{{ steps.empty.output.flights | length > 0 }}", False),
        ("input.budget >= 5000 and input.vip", True),
        ("{{input.budget < 100}}", False),
        ("  {{ input.budget < 100 }}  ", False),
        ("steps.skipped_one.status == 'skipped'", True),
        ("steps.skipped_one.output is none", True),
        ("input.cities", True),
        ("input.note", False),
        ("'Paris' in input.cities", True),
        ("input.missing is defined", False),
        ("user.role == 'admin'", False),
    ],
)
def test_conditions_with_and_without_braces(condition: str, expected: bool) -> None:
    result = evaluate_condition(condition, CONTEXT)
    assert result is expected


@pytest.mark.parametrize(
    ("text", "expr"),
    [
        ("a > 1", "a > 1"),
        ("{{ a > 1 }}", " a > 1 "),
        ("  {{a}}  ", "a"),
        ("{{ a }} {{ b }}", "{{ a }} {{ b }}"),
    ],
)
def test_condition_expression_strips_one_pair_of_braces(text: str, expr: str) -> None:
    assert condition_expression(text) == expr


def test_condition_with_two_expressions_is_a_template_error() -> None:
    with pytest.raises(TemplateError, match="syntax error"):
        evaluate_condition("{{ input.vip }} and {{ input.vip }}", CONTEXT)


# -- undefined names fail loudly ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("{{ missing }}", "'missing' is undefined"),
        ("{{ input.nope }}", "no attribute 'nope'"),
        ("Budget: {{ input.nope }}", "no attribute 'nope'"),
        ("{{ steps.unknown.output }}", "no attribute 'unknown'"),
        ("{{ steps.search_flights.output.hotels | length }}", "no attribute 'hotels'"),
        ("{% for x in nothing %}{{ x }}{% endfor %}", "'nothing' is undefined"),
        ("{{ input.nope ~ 'x' }}", "no attribute 'nope'"),
    ],
)
def test_strict_undefined_is_a_template_error_with_a_clear_message(text: str, name: str) -> None:
    with pytest.raises(TemplateError) as info:
        render_ok(text)
    message = str(info.value)
    assert name in message
    assert repr(text) in message  # names the template at fault
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("condition", ["missing > 1", "{{ input.nope }}", "steps.x.output | length > 0"])
def test_undefined_in_condition_is_a_template_error(condition: str) -> None:
    with pytest.raises(TemplateError, match="cannot evaluate condition"):
        evaluate_condition(condition, CONTEXT)


@pytest.mark.parametrize("text", ["{{ [input.nope] }}", "{{ {'a': input.nope} }}"])
def test_undefined_nested_in_a_whole_value_literal_is_a_template_error(text: str) -> None:
    with pytest.raises(TemplateError):
        render_ok(text)


def test_dict_key_named_like_a_dict_method_renders_the_data() -> None:
    context = {"steps": {"fetch": {"output": {"items": [1, 2], "values": [3]}}}}
    assert render("{{ steps.fetch.output.items }}", context) == [1, 2]
    assert render("{{ steps.fetch.output.values }}", context) == [3]


@pytest.mark.parametrize("text", ["{{ 1 / 0 }}", "{{ 'a' + 1 }}", "{{ input.cities[0].nope.deeper }}"])
def test_runtime_errors_are_template_errors(text: str) -> None:
    with pytest.raises(TemplateError, match="cannot render"):
        render_ok(text)


@pytest.mark.parametrize("text", ["{{ range(10 ** 9) | list | length }}", "{{ 10.0 ** 400 }}"])
def test_overflow_is_a_template_error(text: str) -> None:
    with pytest.raises(TemplateError):
        render_ok(text)


# -- the sandbox ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "{{ ''.__class__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "x {{ ''.__class__.__mro__ }}",
        "{{ input.__class__ }}",
        "{{ input.budget.__class__.__base__ }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ lipsum.__globals__ }}",
        "{{ '{0.__class__}'.format(input) }}",
        "{{ input.update({'budget': 0}) }}",
        "{{ input.cities.append('Oslo') }}",
        "{{ input.prefs.pop('stars') }}",
        "{% set _ = input.cities.clear() %}done",
    ],
)
def test_sandbox_blocks_escapes_and_mutation_as_template_errors(text: str) -> None:
    context = copy.deepcopy(CONTEXT)
    with pytest.raises(TemplateError):
        render(text, context)
    assert context == CONTEXT  # nothing was mutated


@pytest.mark.parametrize(
    "condition", ["''.__class__.__mro__[1].__subclasses__()", "input.pop('budget')", "{{ input.__class__ }}"]
)
def test_sandbox_blocks_escapes_in_conditions(condition: str) -> None:
    context = copy.deepcopy(CONTEXT)
    with pytest.raises(TemplateError):
        evaluate_condition(condition, context)
    assert context == CONTEXT


def test_unsafe_attribute_message_names_the_attribute() -> None:
    with pytest.raises(TemplateError, match="__class__") as info:
        render_ok("{{ ''.__class__ }}")
    assert "unsafe" in str(info.value)


# -- static analysis ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["plain", "{{ a }}", "a {{ b | length }} c", "{% if a %}x{% endif %}", "{{ steps['x'].output }}"],
)
def test_check_syntax_accepts_valid_templates(text: str) -> None:
    check_syntax(text)


@pytest.mark.parametrize("text", ["{{ a ", "{{ }}", "{% if a %}", "a {{ b | }} c", "{{ a b }}", "{% for %}"])
def test_check_syntax_rejects_invalid_templates(text: str) -> None:
    with pytest.raises(TemplateError, match="syntax error"):
        check_syntax(text)


@pytest.mark.parametrize("text", ["a > 1", "{{ a > 1 }}", "steps.x.output.flights | length > 0", "x is none"])
def test_check_syntax_accepts_valid_expressions(text: str) -> None:
    check_syntax(text, expression=True)


@pytest.mark.parametrize("text", ["a >", "{{ a > }}", "a b", "{{ a }} and {{ b }}", "{% if a %}"])
def test_check_syntax_rejects_invalid_expressions(text: str) -> None:
    with pytest.raises(TemplateError, match="syntax error"):
        check_syntax(text, expression=True)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{{ steps.x.output }}", {"x"}),
        ("{{ steps['y'].output }}", {"y"}),
        ('{{ steps["z"].status }}', {"z"}),
        ("A {{ steps.a.output }} and {{ steps['b'].output | tojson }}", {"a", "b"}),
        ("{% for f in steps.search.output.flights %}{{ f.price }}{% endfor %}", {"search"}),
        ("{% if steps.c.status == 'completed' %}{{ steps.d.output }}{% endif %}", {"c", "d"}),
        ("{{ steps.x.output.y.z }}", {"x"}),
        ("{{ input.steps.x }}", set()),  # not the steps namespace
        ("{{ input['steps'] }}", set()),
        ("{{ steps[input.name] }}", set()),  # dynamic: cannot be known statically
        ("no template steps.x", set()),
        ("", set()),
    ],
)
def test_referenced_steps(text: str, expected: set[str]) -> None:
    assert referenced_steps(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("steps.search.output.flights | length > 0", {"search"}),
        ("{{ steps['a'].output and steps.b.output }}", {"a", "b"}),
        ("input.budget > 1", set()),
    ],
)
def test_referenced_steps_in_conditions(text: str, expected: set[str]) -> None:
    assert referenced_steps(text, expression=True) == expected


def test_referenced_steps_reports_syntax_errors() -> None:
    with pytest.raises(TemplateError, match="syntax error"):
        referenced_steps("{{ steps.x.output ")


def test_strings_in_yields_json_path_suffixes() -> None:
    value = {"a": "x", "b": [1, "y", {"c": "z"}], "d": None}
    assert list(strings_in(value)) == [(".a", "x"), (".b[1]", "y"), (".b[2].c", "z")]
    assert list(strings_in("top")) == [("", "top")]
    assert list(strings_in(5)) == []


# -- cost limits (TEMPLATE_LIMIT) -------------------------------------------------------------------

HOSTILE: dict[str, Any] = {
    "input": {"a": 9, "b": 10**8, "n": 10**9, "s": "x", "k": 100_000, "big": "y" * 100_000}
}


@pytest.mark.parametrize(
    "text",
    [
        "{{ input.a ** input.b }}",
        "{{ input.a ** input.b > 1 }}",
        "{{ 'a' * input.n }}",
        "{{ input.n * [1] }}",
        "{{ input.s | center(input.n) }}",
        "{{ range(input.k) | list * input.k }}",
        "{{ range(input.n) }}",
        "x{% for i in range(input.k) %}{% for j in range(input.k) %}{% endfor %}{% endfor %}",
        "{{ input.s.ljust(input.n) }}",
        "{{ input.s.zfill(input.n) }}",
        "{{ input.big.expandtabs(input.n) }}",
        "{{ '{:>' ~ input.n ~ '}' }}{{ ('{:>' ~ input.n ~ '}').format(1) }}",
        "{{ '%*d' % (input.n, 1) }}",
        "{{ '%0999999999d' | format(1) }}",
        "{{ range(input.k) | join(input.big) }}",
        "{{ input.big | replace('', input.big) }}",
        "{{ input.big.replace('', input.big) }}",
        "{{ input.big | indent(input.n) }}",
        "{{ input.big | wordwrap(1, wrapstring=input.big) }}",
        "{{ [1] | slice(input.n) | list }}",
        "{{ (1).to_bytes(input.n, 'big') }}",
        "{{ input | tojson(indent=input.n) }}",
        "x{% for i in range(input.k) %}{{ input.big }}{% endfor %}",
        "{% set ns = namespace(s='ab') %}{% for i in range(64) %}{% set ns.s = ns.s + ns.s %}{% endfor %}",
    ],
)
def test_runaway_templates_hit_a_template_limit(text: str) -> None:
    """Each of these would freeze or exhaust the host without the sandbox's bounds."""
    with pytest.raises(TemplateLimitError, match="template limit") as caught:
        render(text, HOSTILE)
    assert caught.value.code == "TEMPLATE_LIMIT"
    assert isinstance(caught.value, TemplateError)


def test_runaway_condition_hits_a_template_limit() -> None:
    with pytest.raises(TemplateLimitError):
        evaluate_condition("input.a ** input.b > 1", HOSTILE)


def test_str_join_and_translate_point_to_the_filters() -> None:
    with pytest.raises(TemplateLimitError, match="use the filters"):
        render("{{ ','.join(input.cities) }}", CONTEXT)


def test_summing_many_lists_is_linear_and_bounded() -> None:
    assert render("{{ range(100000) | batch(1) | list | sum(start=[]) | length }}", {}) == 100_000
    assert render("{{ [[1], [2]] | sum(start=[]) }}", {}) == [1, 2]
    assert render("{{ ['a', 'b'] | sum(start='') }}", {}) == "ab"
    with pytest.raises(TemplateLimitError):
        render("{{ ([input.big] * 100) | sum(start='') }}", HOSTILE)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{{ 2 ** 100 }}", 2**100),
        ("{{ 'ab' * 3 }}", "ababab"),
        ("{{ [0] * 3 }}", [0, 0, 0]),
        ("{{ 7 // 2 + 1 - 1 }}", 3),
        ("{{ 7 / 2 }}", 3.5),
        ("{{ '%05d' % 42 }}", "00042"),
        ("{{ '%s-%s' | format('a', 'b') }}", "a-b"),
        ("{{ 'x' | center(5) }}", "  x  "),
        ("{{ '{:>4}'.format(7) }}", "   7"),
        ("{{ input.cities | join(', ') }}", "Paris, Rome"),
        ("{{ 'a b' | replace(' ', '_') }}", "a_b"),
        ("{{ range(3) | list }}", [0, 1, 2]),
        ("{{ [1, 2.5] | sum }}", 3.5),
        ("{{ {'a': 1} | tojson(indent=2) }}", '{\n  "a": 1\n}'),
        ("{{ [1, 2, 3] | slice(2) | list }}", [[1, 2], [3]]),
    ],
)
def test_ordinary_arithmetic_and_filters_still_work(text: str, expected: Any) -> None:
    assert render_ok(text) == expected


def test_loop_budget_is_per_render() -> None:
    text = "{% for i in range(100000) %}{% endfor %}ok"
    for _ in range(11):  # 1,100,000 iterations in all: more than one render's budget
        assert render(text, {}) == "ok"


def test_constant_limit_in_a_template_is_a_validation_error() -> None:
    with pytest.raises(TemplateLimitError):
        check_syntax("{{ (9**(9**8)) > 1 }}")
    with pytest.raises(TemplateLimitError):
        check_syntax("(9**(9**8)) > 1", expression=True)
    check_syntax("{{ input.a ** input.b }}")  # depends on input: a run-time matter
    check_syntax("{{ 1 / 0 }}")  # other constant failures stay run-time errors, as before


def test_prompt_templates_share_the_bounds() -> None:
    from orchestrator.core.templates import sandbox

    env = sandbox(prompt=True)
    with pytest.raises(TemplateLimitError):
        env.from_string("{{ 'a' * n }}").render(n=10**9)
    assert env.from_string("{% macro m() %}hi{% endmacro %}{{ m() }}").render() == "hi"

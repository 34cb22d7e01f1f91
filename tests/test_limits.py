"""One request must never freeze or exhaust the server: validation limits and template cost.

Pure tests run real validation and the real sandbox; the ``ray`` tests send the same hostile
workflows to the real server and expect the documented ``400 INVALID_WORKFLOW`` envelope, or a step
that fails with ``TEMPLATE_LIMIT``.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from orchestrator.core.errors import InvalidWorkflow
from orchestrator.core.limits import DEFAULT_LIMITS, MAX_NESTING_DEPTH, Limits
from orchestrator.core.validation import parse_workflow
from orchestrator.core.workflow_documents import parse_definition

USER = {"id": 123, "email": "[email protected]", "role": "user"}


def transform(name: str, value: Any = 1, **fields: Any) -> dict[str, Any]:
    return {"name": name, "type": "transform", "value": value, **fields}


def workflow(*steps: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": "w"}, "spec": {"steps": list(steps)}}


def nested_parallels(depth: int) -> dict[str, Any]:
    inner = transform("leaf")
    for level in range(depth):
        inner = {"name": f"p{level}", "type": "parallel", "steps": [inner]}
    return inner


def wide(children: int, dependents: int) -> dict[str, Any]:
    """A parallel of ``children`` and as many dependents each reading one child: quadratic before."""
    steps = [{"name": "p", "type": "parallel", "steps": [transform(f"c{i}") for i in range(children)]}]
    steps += [transform(f"d{i}", f"{{{{ steps.c{i}.output }}}}", depends_on=["p"]) for i in range(dependents)]
    return workflow(*steps)


def reverse_chain(length: int) -> dict[str, Any]:
    """Each step depends on the next one: the depth-first searches recursed this deep before."""
    return workflow(
        *(transform(f"s{i}", depends_on=[f"s{i + 1}"] if i + 1 < length else []) for i in range(length))
    )


def rejection(raw: dict[str, Any], limits: Limits = DEFAULT_LIMITS) -> InvalidWorkflow:
    with pytest.raises(InvalidWorkflow) as caught:
        parse_workflow(raw, limits=limits)
    return caught.value


# -- steps and nesting ----------------------------------------------------------------------------


def test_too_many_steps_is_invalid_and_names_the_limit() -> None:
    error = rejection(wide(2000, 2000))
    assert error.code == "INVALID_WORKFLOW" and error.status == 400
    assert error.details == [
        {
            "field": "workflow.spec.steps",
            "message": "the workflow has more than 2000 steps, nested ones included (max_steps)",
        }
    ]


def test_step_limit_counts_nested_steps_and_follows_the_setting() -> None:
    raw = workflow({"name": "p", "type": "parallel", "steps": [transform("a"), transform("b")]})
    assert "max_steps" in rejection(raw, Limits(max_steps=2)).message
    assert parse_workflow(raw, limits=Limits(max_steps=3)).by_name.keys() == {"p", "a", "b"}


def test_wide_workflow_within_raised_limits_is_valid() -> None:
    parsed = parse_workflow(wide(2000, 2000), limits=Limits(max_steps=4001))
    assert len(parsed.steps) == 4001


def test_reverse_chain_of_1500_steps_validates_without_recursion_error() -> None:
    parsed = parse_workflow(reverse_chain(1500))
    assert parsed.sinks == ["s0"]


def test_long_cycle_is_reported_without_recursion_error() -> None:
    raw = reverse_chain(1500)
    raw["spec"]["steps"][-1]["depends_on"] = ["s0"]
    message = rejection(raw).details[0]["message"]
    assert message.startswith("dependency cycle: s0 -> s1 -> s2")


def test_600_nested_parallels_are_a_nesting_limit_error_not_a_500() -> None:
    error = rejection(workflow(nested_parallels(600)))
    [detail] = error.details
    assert detail["message"] == "steps nest 33 containers deep; the limit is 32 (max_nesting_depth)"
    assert detail["field"] == "workflow.spec.steps" + "[0].steps" * 33


def test_nesting_at_the_limit_is_valid() -> None:
    parsed = parse_workflow(workflow(nested_parallels(32)))
    assert parsed.by_name["leaf"].parent == "p0"
    assert (
        "max_nesting_depth" in rejection(workflow(nested_parallels(5)), Limits(max_nesting_depth=4)).message
    )


def test_limits_reject_settings_validation_could_not_honour() -> None:
    with pytest.raises(ValueError, match="max_nesting_depth must be at most"):
        Limits(max_nesting_depth=MAX_NESTING_DEPTH + 1)
    with pytest.raises(ValueError, match="max_steps must be at least 1"):
        Limits(max_steps=0)


def test_eai_definitions_get_the_same_limits() -> None:
    steps = [{"id": f"s{i}", "type": "transform", "value": 1} for i in range(3)]
    with pytest.raises(InvalidWorkflow) as caught:
        parse_definition({"id": "w", "version": "1.0.0", "steps": steps}, limits=Limits(max_steps=2))
    assert caught.value.details == [
        {"field": "steps", "message": "the workflow has more than 2 steps, nested ones included (max_steps)"}
    ]


# -- template size and constant cost --------------------------------------------------------------


def test_template_over_the_byte_limit_is_invalid() -> None:
    text = "{{ input.x }}" + "é" * 40_000  # 80,013 bytes, 40,013 characters
    [detail] = rejection(workflow(transform("a", {"big": text}))).details
    assert detail == {
        "field": "workflow.spec.steps[0].value.big",
        "message": "template is 80,013 bytes; the limit is 65,536 (max_template_bytes)",
    }
    assert parse_workflow(workflow(transform("a", text)), limits=Limits(max_template_bytes=80_013))


def test_long_plain_strings_are_not_templates() -> None:
    assert parse_workflow(workflow(transform("a", "x" * 100_000)))


@pytest.mark.parametrize(
    "template",
    [
        "{{ (9**(9**8)) > 1 }}",  # Jinja used to constant-fold this at compile time and never return
        "total: {{ 'x' * 10**9 }}",
        "{{ input.items ~ (range(10**9) | list) }}",
        "{{ 'a' | center(10**9) }}",
        "{{ '{:>999999999}'.format(1) }}",
    ],
)
def test_constant_template_over_a_limit_is_invalid(template: str) -> None:
    [detail] = rejection(workflow(transform("a", template))).details
    assert detail["field"] == "workflow.spec.steps[0].value"
    assert detail["message"].startswith("template limit: ")


def test_constant_condition_over_a_limit_is_invalid() -> None:
    raw = workflow(
        {"name": "c", "type": "condition", "condition": "(9**(9**8)) > 1", "if_true": [transform("t")]}
    )
    [detail] = rejection(raw).details
    assert detail["field"] == "workflow.spec.steps[0].condition"
    assert "template limit" in detail["message"]


def test_deeply_nested_template_is_a_clear_error() -> None:
    template = "{{ " + "(" * 5000 + "1" + ")" * 5000 + " }}"
    [detail] = rejection(workflow(transform("a", template))).details
    assert "nests too deeply" in detail["message"]


def test_macros_are_not_allowed_in_step_templates() -> None:
    template = "{% macro f(n) %}{{ f(n) }}{{ f(n) }}{% endmacro %}{{ f(1) }}"
    [detail] = rejection(workflow(transform("a", template))).details
    assert "macros are not allowed" in detail["message"]


# -- containers do no work of their own ------------------------------------------------------------


@pytest.mark.parametrize("field", ["timeout", "retry"])
@pytest.mark.parametrize("container", ["parallel", "condition"])
def test_timeout_and_retry_on_containers_are_rejected(container: str, field: str) -> None:
    step: dict[str, Any] = {"name": "box", "type": container}
    if container == "parallel":
        step["steps"] = [transform("a")]
    else:
        step.update(condition="true", if_true=[transform("a")])
    step[field] = "5s" if field == "timeout" else {"max_attempts": 3}
    [detail] = rejection(workflow(step)).details
    assert detail == {
        "field": f"workflow.spec.steps[0].{field}",
        "message": f"{field!r} is not supported on a {container!r} step: "
        "set it on the nested steps or on the workflow",
    }


# -- the real server ---------------------------------------------------------------------------------


def nested_parallels_json(depth: int) -> str:
    """The body as text: the client's own JSON encoder recurses and cannot encode 600 levels."""
    head = "".join(
        f'{{"name": "p{level}", "type": "parallel", "steps": [' for level in reversed(range(depth))
    )
    body = head + json.dumps(transform("leaf")) + "]}" * depth
    spec = '{"metadata": {"name": "w"}, "spec": {"steps": [' + body + "]}}"
    return '{"user": ' + json.dumps(USER) + ', "workflow": ' + spec + "}"


@pytest.mark.ray
def test_server_answers_hostile_workflows_with_400(api: httpx.Client) -> None:
    for raw, limit in (
        (workflow(transform("a", "{{ (9**(9**8)) > 1 }}")), "template limit"),
        (wide(2000, 2000), "max_steps"),
    ):
        response = api.post("/api/v1/workflows/execute", json={"workflow": raw, "user": USER})
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["code"] == "INVALID_WORKFLOW"
        assert limit in error["details"][0]["message"]
    for depth in (40, 600):  # 600 levels: the request layer may refuse the body itself, also a 400
        response = api.post(
            "/api/v1/workflows/execute",
            content=nested_parallels_json(depth),
            headers={"content-type": "application/json"},
        )
        assert response.status_code == 400, response.text
        assert {"code", "message", "details"} <= response.json()["error"].keys()
        if depth == 40:
            assert "max_nesting_depth" in response.json()["error"]["details"][0]["message"]
    chain = reverse_chain(1500)
    response = api.post("/api/v1/workflows/execute", json={"workflow": chain, "user": USER})
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "completed"


@pytest.mark.ray
def test_server_fails_a_runaway_template_step_with_template_limit(api: httpx.Client) -> None:
    raw = workflow(transform("a", "{{ input.a ** input.b }}"), transform("b", depends_on=["a"]))
    response = api.post(
        "/api/v1/workflows/execute", json={"workflow": raw, "input": {"a": 9, "b": 10**8}, "user": USER}
    )
    body = response.json()
    assert body["status"] == "failed", body
    steps = {step["name"]: step for step in body["steps"]}
    assert steps["a"]["status"] == "failed"
    assert "template limit" in steps["a"]["error"]
    assert steps["b"]["status"] == "pending"  # it never started

"""Workflow validation: every problem at once, each with the JSON path of the field at fault.

Pure unit tests: no Ray, no I/O, no clock.
"""

from __future__ import annotations

import copy
import math
import re
from typing import Any

import pytest

from orchestrator.core.definitions import RetryPolicy, WorkflowDef
from orchestrator.core.durations import DURATION_PATTERN, MAX_SECONDS, format_seconds, parse_duration
from orchestrator.core.errors import InvalidWorkflow
from orchestrator.core.validation import parse_workflow

# The travel-booking workflow of the v1 seed (../shared/seeds/002_5c3b436ca31c52d9.txt, the curl under
# "POST /api/v1/workflows/execute"), copied verbatim so the test does not depend on a file outside the repo.
SEED_TRAVEL_BOOKING: dict[str, Any] = {
    "metadata": {"name": "travel-booking", "version": "1.0"},
    "spec": {
        "steps": [
            {
                "name": "search_flights",
                "type": "mcp_query",
                "connector": "amadeus-travel",
                "statement": "search_flights",
                "parameters": {"origin": "SFO", "destination": "CDG", "departure_date": "2025-06-01"},
            },
            {
                "name": "search_hotels",
                "type": "mcp_query",
                "connector": "amadeus-travel",
                "statement": "search_hotels",
                "parameters": {"city": "Paris", "check_in": "2025-06-01", "check_out": "2025-06-07"},
            },
            {
                "name": "summarize",
                "type": "llm",
                "prompt": "Summarize the flight and hotel options for a trip from SFO to Paris",
                "depends_on": ["search_flights", "search_hotels"],
            },
        ]
    },
}


def workflow(*steps: Any, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "wf"}, "spec": {"steps": list(steps), **spec}}


def transform(name: str, value: Any = 1, **fields: Any) -> dict[str, Any]:
    return {"name": name, "type": "transform", "value": value, **fields}


def query(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "type": "mcp_query", "connector": "amadeus-travel", "statement": "q", **fields}


def problems(raw: Any) -> list[dict[str, str]]:
    with pytest.raises(InvalidWorkflow) as info:
        parse_workflow(raw)
    details = info.value.details
    assert isinstance(details, list) and details, "InvalidWorkflow must carry details"
    for detail in details:
        assert set(detail) == {"field", "message"}
        assert detail["field"].startswith("workflow")
        assert detail["message"]
    return details


def fields_of(raw: Any) -> list[str]:
    return [detail["field"] for detail in problems(raw)]


def message_at(raw: Any, field: str) -> str:
    found = [detail["message"] for detail in problems(raw) if detail["field"] == field]
    assert found, f"no problem reported at {field!r}: {problems(raw)}"
    return " | ".join(found)


# -- valid workflows ------------------------------------------------------------------------------


def test_seed_travel_booking_is_valid() -> None:
    raw = copy.deepcopy(SEED_TRAVEL_BOOKING)
    wf = parse_workflow(raw)
    assert isinstance(wf, WorkflowDef)
    assert wf.name == "travel-booking"
    assert wf.version == "1.0"
    assert [step.name for step in wf.steps] == ["search_flights", "search_hotels", "summarize"]
    assert [step.kind for step in wf.steps] == ["connector", "connector", "llm"]
    flights = wf.by_name["search_flights"]
    assert flights.connector == "amadeus-travel"
    assert flights.statement == "search_flights"
    assert flights.mode == "query"
    assert flights.parameters == {"origin": "SFO", "destination": "CDG", "departure_date": "2025-06-01"}
    assert wf.by_name["summarize"].depends_on == ["search_flights", "search_hotels"]
    assert wf.sinks == ["summarize"]
    assert wf.output is None
    assert raw == SEED_TRAVEL_BOOKING, "validation must not modify its input"


def test_nested_steps_are_flattened_parents_first_with_parent_and_branch() -> None:
    wf = parse_workflow(
        workflow(
            transform("a"),
            {
                "name": "check",
                "type": "condition",
                "condition": "input.go",
                "depends_on": ["a"],
                "if_true": [
                    {"name": "fan", "type": "parallel", "steps": [query("q1"), query("q2")]},
                ],
                "if_false": [transform("no")],
            },
        )
    )
    assert [step.name for step in wf.steps] == ["a", "check", "fan", "q1", "q2", "no"]
    by_name = wf.by_name
    assert (by_name["fan"].parent, by_name["fan"].branch) == ("check", "if_true")
    assert (by_name["q1"].parent, by_name["q1"].branch) == ("fan", None)
    assert (by_name["no"].parent, by_name["no"].branch) == ("check", "if_false")
    assert by_name["check"].if_true == ["fan"]
    assert by_name["check"].if_false == ["no"]
    assert by_name["fan"].steps == ["q1", "q2"]
    assert wf.top_level == [by_name["a"], by_name["check"]]
    assert wf.descendants("check") == ["fan", "q1", "q2", "no"]
    # a nested step inherits what its containers wait for
    assert wf.dependencies["q1"] == ["a"]
    assert wf.sinks == ["check"]


def test_every_step_type_with_its_fields_is_valid() -> None:
    wf = parse_workflow(
        workflow(
            query("q", parameters={"city": "{{ input.city }}"}),
            {"name": "x", "type": "mcp_execute", "connector": "c", "statement": "book", "depends_on": ["q"]},
            {
                "name": "l",
                "type": "llm",
                "prompt": "Summarize {{ steps.q.output }}",
                "system": "be brief",
                "model": "m",
                "max_tokens": 100,
                "temperature": 0.2,
                "output_schema": {"type": "object", "properties": {"a": {"type": "string"}}},
                "depends_on": ["q"],
            },
            {"name": "chat", "type": "llm", "messages": [{"role": "user", "content": "hi"}]},
            {"name": "w", "type": "wait", "duration": "250ms"},
            transform("t", {"nested": ["{{ input.a }}", 2]}, description="shape it", timeout="2m"),
        )
    )
    assert wf.by_name["x"].mode == "execute"
    assert wf.by_name["l"].output_schema == {"type": "object", "properties": {"a": {"type": "string"}}}
    assert wf.by_name["l"].max_tokens == 100
    assert wf.by_name["chat"].messages == [{"role": "user", "content": "hi"}]
    assert wf.by_name["w"].duration == 0.25
    assert wf.by_name["t"].timeout == 120.0
    assert wf.by_name["t"].description == "shape it"


# -- durations ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("250ms", 0.25), ("5s", 5.0), ("2m", 120.0), ("1h", 3600.0), ("1d", 86400.0), (3, 3.0), (1.5, 1.5),
     (0, 0.0), ("1.5", 1.5), (" 5s ", 5.0), ("1.5m", 90.0)],
)  # fmt: skip
def test_parse_duration_accepts_documented_forms(value: object, seconds: float) -> None:
    assert parse_duration(value) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "value", ["5 parsecs", "", "-1s", "1e3", "s", "5 s s", -1, -0.5, True, False, None, [5]]
)
def test_parse_duration_rejects_bad_values_naming_them(value: object) -> None:
    with pytest.raises(ValueError) as info:
        parse_duration(value)
    assert repr(value) in str(info.value)


@pytest.mark.parametrize("value", [math.inf, math.nan])
def test_parse_duration_rejects_non_finite_numbers(value: float) -> None:
    with pytest.raises(ValueError):
        parse_duration(value)


def test_format_seconds_is_the_seed_process_time_format() -> None:
    assert format_seconds(1.2344) == "1.234s"
    assert format_seconds(0) == "0.000s"


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [("timeout", "250ms", 0.25), ("timeout", "5s", 5.0), ("timeout", "2m", 120.0), ("timeout", 3, 3.0),
     ("timeout", 1.5, 1.5)],
)  # fmt: skip
def test_step_durations_are_parsed_to_seconds(field: str, value: object, expected: float) -> None:
    wf = parse_workflow(workflow(query("q", **{field: value}), timeout=value))
    assert getattr(wf.by_name["q"], field) == expected
    assert wf.timeout == expected


@pytest.mark.parametrize("value", ["5 parsecs", -1, True, "later", {"s": 5}])
def test_bad_durations_are_reported_everywhere_they_can_appear(value: object) -> None:
    raw = workflow(
        query("q", timeout=value),
        {"name": "w", "type": "wait", "duration": value},
        transform("t", retry={"max_attempts": 2, "initial_interval": value}),
        timeout=value,
    )
    details = problems(raw)
    assert {detail["field"] for detail in details} == {
        "workflow.spec.timeout",
        "workflow.spec.steps[0].timeout",
        "workflow.spec.steps[1].duration",
        "workflow.spec.steps[2].retry.initial_interval",
    }
    for detail in details:
        assert detail["message"].startswith(f"invalid duration {value!r}")


@pytest.mark.parametrize("value", [math.inf, math.nan])
def test_non_finite_wait_duration_is_invalid(value: float) -> None:
    assert fields_of(workflow({"name": "w", "type": "wait", "duration": value})) == [
        "workflow.spec.steps[0].duration"
    ]


# -- document-level problems ----------------------------------------------------------------------


@pytest.mark.parametrize("raw", [None, [], "workflow", 3])
def test_workflow_must_be_an_object(raw: Any) -> None:
    assert fields_of(raw) == ["workflow"]


def test_missing_metadata_name() -> None:
    raw = workflow(transform("a"))
    raw["metadata"] = {"version": "1"}
    assert message_at(raw, "workflow.metadata.name") == "is required and must be a non-empty string"


@pytest.mark.parametrize("name", ["", "   ", 5, None, ["wf"]])
def test_metadata_name_must_be_a_non_empty_string(name: Any) -> None:
    raw = workflow(transform("a"))
    raw["metadata"]["name"] = name
    assert fields_of(raw) == ["workflow.metadata.name"]


def test_missing_metadata_and_spec_are_all_reported() -> None:
    assert fields_of({}) == [
        "workflow.metadata",
        "workflow.spec",
        "workflow.metadata.name",
        "workflow.spec.steps",
    ]


@pytest.mark.parametrize("steps", [[], None, {}, "a", {"name": "a"}])
def test_steps_must_be_a_non_empty_array(steps: Any) -> None:
    raw = {"metadata": {"name": "wf"}, "spec": {"steps": steps}}
    assert fields_of(raw) == ["workflow.spec.steps"]


def test_metadata_version_and_description_must_be_strings() -> None:
    raw = workflow(transform("a"))
    raw["metadata"].update(version=1, description=["x"])
    assert fields_of(raw) == ["workflow.metadata.version", "workflow.metadata.description"]


def test_spec_output_must_be_an_object() -> None:
    assert fields_of(workflow(transform("a"), output=["{{ steps.a.output }}"])) == ["workflow.spec.output"]


def test_invalid_workflow_error_is_a_400_envelope() -> None:
    with pytest.raises(InvalidWorkflow) as info:
        parse_workflow(workflow())
    err = info.value
    assert (err.code, err.status) == ("INVALID_WORKFLOW", 400)
    assert err.details == [
        {"field": "workflow.spec.steps", "message": "is required and must be a non-empty array of steps"}
    ]
    assert err.message == "workflow is invalid: 1 problem"


# -- every problem at once ------------------------------------------------------------------------


def test_every_problem_is_reported_at_once_with_json_paths() -> None:
    raw = {
        "metadata": {},
        "spec": {
            "timeout": "soon",
            "steps": [
                transform("a", "{{ steps.later.output }}"),
                transform("a"),
                {"name": "p", "type": "parallel", "steps": [transform("a"), {"name": "q", "type": "bogus"}]},
                {
                    "name": "c",
                    "type": "condition",
                    "if_true": [{"name": "w", "type": "wait", "duration": "1s"}],
                },
                {"name": "l", "type": "llm", "output_schema": {"type": "nope"}},
                {"name": "m", "type": "mcp_query"},
                {"name": "w2", "type": "wait", "duration": "5 parsecs", "timeout": -1},
                {"name": "t", "type": "transform"},
                {"name": "e", "type": "parallel", "steps": []},
                transform("y", "{{ oops ", foo=1, retry={"max_attempts": 0}),
                transform("z z"),
                5,
                {"type": "transform", "value": 1},
                transform("d", depends_on="a"),
                transform("later"),
            ],
        },
    }
    assert fields_of(raw) == [
        "workflow.metadata.name",
        "workflow.spec.timeout",
        "workflow.spec.steps[1].name",
        "workflow.spec.steps[2].steps[0].name",
        "workflow.spec.steps[2].steps[1].type",
        "workflow.spec.steps[3].condition",
        "workflow.spec.steps[4].prompt",
        "workflow.spec.steps[4].output_schema",
        "workflow.spec.steps[5].connector",
        "workflow.spec.steps[5].statement",
        "workflow.spec.steps[6].timeout",
        "workflow.spec.steps[6].duration",
        "workflow.spec.steps[7].value",
        "workflow.spec.steps[8].steps",
        "workflow.spec.steps[9].foo",
        "workflow.spec.steps[9].retry.max_attempts",
        "workflow.spec.steps[10].name",
        "workflow.spec.steps[11]",
        "workflow.spec.steps[12].name",
        "workflow.spec.steps[13].depends_on",
        "workflow.spec.steps[0].value",
        "workflow.spec.steps[9].value",
    ]
    with pytest.raises(InvalidWorkflow) as info:
        parse_workflow(raw)
    assert info.value.message == "workflow is invalid: 22 problems"


# -- names ----------------------------------------------------------------------------------------


def test_duplicate_top_level_name() -> None:
    raw = workflow(transform("a"), transform("b"), transform("a"))
    assert message_at(raw, "workflow.spec.steps[2].name") == "duplicate step name 'a'"


def test_duplicate_name_nested_in_parallel() -> None:
    raw = workflow(
        transform("a"), {"name": "p", "type": "parallel", "steps": [transform("b"), transform("a")]}
    )
    assert fields_of(raw) == ["workflow.spec.steps[1].steps[1].name"]


def test_duplicate_name_across_condition_branches() -> None:
    raw = workflow(
        {
            "name": "c",
            "type": "condition",
            "condition": "true",
            "if_true": [transform("x")],
            "if_false": [transform("x")],
        }
    )
    assert fields_of(raw) == ["workflow.spec.steps[0].if_false[0].name"]


def test_container_name_reused_by_its_child() -> None:
    raw = workflow({"name": "p", "type": "parallel", "steps": [transform("p")]})
    assert fields_of(raw) == ["workflow.spec.steps[0].steps[0].name"]


@pytest.mark.parametrize("name", ["has space", "1starts_with_digit", "dot.ted", "x" * 129, "ünïcode"])
def test_invalid_step_names(name: str) -> None:
    assert "invalid step name" in message_at(workflow(transform(name)), "workflow.spec.steps[0].name")


@pytest.mark.parametrize("step", [5, "a", None, ["a"]])
def test_step_must_be_an_object(step: Any) -> None:
    assert fields_of(workflow(transform("ok"), step)) == ["workflow.spec.steps[1]"]


def test_step_name_is_required() -> None:
    assert fields_of(workflow({"type": "transform", "value": 1})) == ["workflow.spec.steps[0].name"]


# -- types and type-specific fields ---------------------------------------------------------------


@pytest.mark.parametrize("step_type", ["bogus", None, 5, "MCP_QUERY"])
def test_unknown_step_type(step_type: Any) -> None:
    message = message_at(workflow({"name": "a", "type": step_type}), "workflow.spec.steps[0].type")
    assert f"unknown step type {step_type!r}" in message
    assert "mcp_query" in message and "transform" in message


@pytest.mark.parametrize("step_type", [["transform"], {"t": 1}])
def test_unhashable_step_type_is_reported_not_raised(step_type: Any) -> None:
    assert fields_of(workflow({"name": "a", "type": step_type, "value": 1})) == [
        "workflow.spec.steps[0].type"
    ]


@pytest.mark.parametrize(
    ("step", "missing"),
    [
        ({"name": "s", "type": "mcp_query", "statement": "x"}, ["connector"]),
        ({"name": "s", "type": "mcp_query", "connector": "c"}, ["statement"]),
        ({"name": "s", "type": "mcp_execute"}, ["connector", "statement"]),
        ({"name": "s", "type": "mcp_query", "connector": "", "statement": 5}, ["connector", "statement"]),
        ({"name": "s", "type": "llm"}, ["prompt"]),
        ({"name": "s", "type": "llm", "prompt": "   "}, ["prompt"]),
        ({"name": "s", "type": "condition", "if_true": [transform("x")]}, ["condition"]),
        ({"name": "s", "type": "condition", "condition": "true"}, ["if_true"]),
        ({"name": "s", "type": "condition", "condition": "true", "if_true": [], "if_false": []}, ["if_true"]),
        ({"name": "s", "type": "parallel"}, ["steps"]),
        ({"name": "s", "type": "parallel", "steps": []}, ["steps"]),
        ({"name": "s", "type": "transform"}, ["value"]),
        ({"name": "s", "type": "wait"}, ["duration"]),
    ],
)
def test_missing_type_specific_fields(step: dict[str, Any], missing: list[str]) -> None:
    assert fields_of(workflow(step)) == [f"workflow.spec.steps[0].{field}" for field in missing]


def test_transform_value_may_be_null_when_present() -> None:
    assert parse_workflow(workflow(transform("t", None))).by_name["t"].value is None


@pytest.mark.parametrize(
    ("step", "field"),
    [
        (query("s", parameters=["x"]), "parameters"),
        ({"name": "s", "type": "llm", "prompt": "p", "max_tokens": "lots"}, "max_tokens"),
        ({"name": "s", "type": "llm", "messages": [{"role": "user"}]}, "messages"),
        ({"name": "s", "type": "condition", "condition": "true", "if_true": "x"}, "if_true"),
        (transform("s", description=5), "description"),
    ],
)
def test_wrongly_typed_fields(step: dict[str, Any], field: str) -> None:
    assert f"workflow.spec.steps[0].{field}" in fields_of(workflow(step))


@pytest.mark.parametrize(
    ("step", "field"),
    [
        (transform("s", prompt="p"), "prompt"),
        (transform("s", foo=1), "foo"),
        (query("s", value=1), "value"),
        ({"name": "s", "type": "wait", "duration": 1, "steps": []}, "steps"),
        ({"name": "s", "type": "llm", "prompt": "p", "connector": "c"}, "connector"),
        ({"name": "s", "type": "parallel", "steps": [transform("c")], "condition": "x"}, "condition"),
    ],
)
def test_unknown_step_fields(step: dict[str, Any], field: str) -> None:
    message = message_at(workflow(step), f"workflow.spec.steps[0].{field}")
    assert message == f"unknown field {field!r} for a {step['type']!r} step"


def test_unknown_field_in_nested_step_has_nested_path() -> None:
    raw = workflow({"name": "p", "type": "parallel", "steps": [transform("c", bogus=True)]})
    assert fields_of(raw) == ["workflow.spec.steps[0].steps[0].bogus"]


# -- output_schema ---------------------------------------------------------------------------------


@pytest.mark.parametrize("schema", [{"type": "nope"}, {"properties": 5}, {"required": "a"}, "object", ["x"]])
def test_bad_output_schema(schema: Any) -> None:
    raw = workflow({"name": "l", "type": "llm", "prompt": "p", "output_schema": schema})
    message = message_at(raw, "workflow.spec.steps[0].output_schema")
    assert "JSON Schema" in message


def test_bad_input_schema() -> None:
    raw = workflow(transform("a"), input_schema={"type": 5})
    assert fields_of(raw) == ["workflow.spec.input_schema"]


# -- retry policies -------------------------------------------------------------------------------


def test_retry_policy_is_parsed_with_durations() -> None:
    wf = parse_workflow(
        workflow(
            query(
                "q",
                retry={
                    "max_attempts": 3,
                    "initial_interval": "500ms",
                    "backoff_coefficient": 3,
                    "max_interval": "2s",
                    "non_retryable": ["BAD_INPUT"],
                },
            ),
            transform("t"),
            retry={"max_attempts": 2},
        )
    )
    policy = wf.by_name["q"].retry
    assert policy == RetryPolicy(
        max_attempts=3,
        initial_interval=0.5,
        backoff_coefficient=3,
        max_interval=2.0,
        non_retryable=["BAD_INPUT"],
    )
    assert [policy.delay(attempt) for attempt in (1, 2, 3)] == [0.5, 1.5, 2.0]
    assert wf.retry == RetryPolicy(max_attempts=2)
    assert wf.retry_for(wf.by_name["q"]) is policy
    assert wf.retry_for(wf.by_name["t"]) == RetryPolicy(max_attempts=2)


def test_default_retry_policy_is_a_single_attempt() -> None:
    wf = parse_workflow(workflow(transform("t")))
    assert wf.retry_for(wf.by_name["t"]).max_attempts == 1


@pytest.mark.parametrize(
    ("retry", "field"),
    [
        ({"max_attempts": 0}, "retry.max_attempts"),
        ({"max_attempts": 101}, "retry.max_attempts"),
        ({"max_attempts": "many"}, "retry.max_attempts"),
        ({"backoff_coefficient": 0.5}, "retry.backoff_coefficient"),
        ({"initial_interval": "5 parsecs"}, "retry.initial_interval"),
        ({"max_interval": -1}, "retry.max_interval"),
        ({"non_retryable": "BAD"}, "retry.non_retryable"),
        ({"attempts": 3}, "retry.attempts"),
        ("3 times", "retry"),
        ([3], "retry"),
    ],
)
def test_bad_retry_policies(retry: Any, field: str) -> None:
    assert fields_of(workflow(transform("t", retry=retry))) == [f"workflow.spec.steps[0].{field}"]
    assert fields_of(workflow(transform("t"), retry=retry)) == [f"workflow.spec.{field}"]


# -- depends_on and cycles ------------------------------------------------------------------------


def test_unknown_depends_on() -> None:
    raw = workflow(transform("a"), transform("b", depends_on=["a", "ghost"]))
    assert problems(raw) == [
        {"field": "workflow.spec.steps[1].depends_on[1]", "message": "unknown step 'ghost' in depends_on"}
    ]


def test_unknown_depends_on_in_nested_step() -> None:
    raw = workflow({"name": "p", "type": "parallel", "steps": [transform("c", depends_on=["nope"])]})
    assert fields_of(raw) == ["workflow.spec.steps[0].steps[0].depends_on[0]"]


def test_unknown_dependencies_cycles_and_references_are_reported_together() -> None:
    raw = workflow(
        transform("a", "{{ steps.b.output }}", depends_on=["ghost", "b"]),
        transform("b", depends_on=["a"]),
        transform("c", "{{ steps.a.output }}", depends_on=["nope"]),
    )
    assert problems(raw) == [
        {"field": "workflow.spec.steps[0].depends_on[0]", "message": "unknown step 'ghost' in depends_on"},
        {"field": "workflow.spec.steps[2].depends_on[0]", "message": "unknown step 'nope' in depends_on"},
        {"field": "workflow.spec.steps[0]", "message": "dependency cycle: a -> b -> a"},
        {
            "field": "workflow.spec.steps[2].value",
            "message": "template references step 'a', which is not upstream of 'c': add it to depends_on",
        },
    ]


@pytest.mark.parametrize("depends_on", ["a", [1], [["a"]], {"a": 1}])
def test_depends_on_must_be_an_array_of_names(depends_on: Any) -> None:
    raw = workflow(transform("a"), transform("b", depends_on=depends_on))
    assert message_at(raw, "workflow.spec.steps[1].depends_on") == "must be an array of step names"


def test_self_dependency_is_a_cycle() -> None:
    message = message_at(workflow(transform("a", depends_on=["a"])), "workflow.spec.steps[0]")
    assert message == "dependency cycle: a -> a"


def test_two_step_cycle() -> None:
    raw = workflow(transform("a", depends_on=["b"]), transform("b", depends_on=["a"]))
    assert problems(raw) == [{"field": "workflow.spec.steps[0]", "message": "dependency cycle: a -> b -> a"}]


def test_three_step_cycle_behind_a_valid_prefix() -> None:
    raw = workflow(
        transform("start"),
        transform("x", depends_on=["start", "z"]),
        transform("y", depends_on=["x"]),
        transform("z", depends_on=["y"]),
    )
    [detail] = problems(raw)
    assert detail["message"].startswith("dependency cycle: ")
    assert set(detail["message"].removeprefix("dependency cycle: ").split(" -> ")) == {"x", "y", "z"}


@pytest.mark.parametrize("container", ["parallel", "condition"])
def test_child_depending_on_its_own_container_is_a_cycle(container: str) -> None:
    child = transform("child", depends_on=["box"])
    step: dict[str, Any] = {"name": "box", "type": container}
    if container == "parallel":
        step["steps"] = [child]
    else:
        step.update(condition="true", if_true=[child])
    [detail] = problems(workflow(step))
    assert detail["field"] == "workflow.spec.steps[0]"
    assert detail["message"] == "dependency cycle: box -> child -> box"


def test_grandchild_depending_on_outer_container_is_a_cycle() -> None:
    inner = {"name": "inner", "type": "parallel", "steps": [transform("leaf", depends_on=["outer"])]}
    raw = workflow({"name": "outer", "type": "parallel", "steps": [inner]})
    [detail] = problems(raw)
    assert detail["message"].startswith("dependency cycle: ")


@pytest.mark.parametrize("container", ["parallel", "condition"])
def test_container_depending_on_its_child_is_a_cycle(container: str) -> None:
    step: dict[str, Any] = {"name": "box", "type": container, "depends_on": ["child"]}
    if container == "parallel":
        step["steps"] = [transform("child")]
    else:
        step.update(condition="true", if_true=[transform("child")])
    [detail] = problems(workflow(step))
    assert detail["message"].startswith("dependency cycle: ")


def test_nested_step_may_depend_on_its_sibling_and_outside_steps() -> None:
    wf = parse_workflow(
        workflow(
            transform("a"),
            {
                "name": "p",
                "type": "parallel",
                "steps": [transform("c1"), transform("c2", "{{ steps.c1.output }}", depends_on=["c1", "a"])],
            },
        )
    )
    assert wf.dependencies["c2"] == ["c1", "a"]


# -- templates at validation time -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("step", "field"),
    [
        (transform("s", "{{ oops "), "value"),
        (transform("s", {"a": ["ok", "{% if %}"]}), "value.a[1]"),
        (query("s", parameters={"city": "{{ input.city "}), "parameters.city"),
        ({"name": "s", "type": "llm", "prompt": "Hi {{ }}"}, "prompt"),
        ({"name": "s", "type": "llm", "prompt": "p", "system": "{% for %}"}, "system"),
        (
            {"name": "s", "type": "llm", "messages": [{"role": "user", "content": "{{ 1 + }}"}]},
            "messages[0].content",
        ),
        (
            {"name": "s", "type": "condition", "condition": "input.a >", "if_true": [transform("x")]},
            "condition",
        ),
        (
            {"name": "s", "type": "condition", "condition": "{{ input.a > }}", "if_true": [transform("x")]},
            "condition",
        ),
    ],
)
def test_template_syntax_errors(step: dict[str, Any], field: str) -> None:
    message = message_at(workflow(step), f"workflow.spec.steps[0].{field}")
    assert "syntax error" in message


def test_output_template_syntax_error() -> None:
    raw = workflow(transform("a"), output={"x": {"y": "{{ steps.a.output "}})
    assert "syntax error" in message_at(raw, "workflow.spec.output.x.y")


def test_reference_to_step_that_is_not_upstream() -> None:
    raw = workflow(transform("a"), transform("b", "{{ steps.a.output }}"))
    assert problems(raw) == [
        {
            "field": "workflow.spec.steps[1].value",
            "message": "template references step 'a', which is not upstream of 'b': add it to depends_on",
        }
    ]


def test_same_reference_is_fine_once_depends_on_is_added() -> None:
    wf = parse_workflow(workflow(transform("a"), transform("b", "{{ steps.a.output }}", depends_on=["a"])))
    assert wf.by_name["b"].depends_on == ["a"]


def test_reference_to_a_transitive_dependency_is_upstream() -> None:
    parse_workflow(
        workflow(
            transform("a"),
            transform("b", depends_on=["a"]),
            transform("c", "{{ steps['a'].output }}", depends_on=["b"]),
        )
    )


def test_reference_through_container_dependencies_is_upstream() -> None:
    parse_workflow(
        workflow(
            transform("a"),
            {
                "name": "p",
                "type": "parallel",
                "depends_on": ["a"],
                "steps": [transform("c", "{{ steps.a.output }}")],
            },
        )
    )


def test_reference_to_child_of_a_dependency_container_is_upstream() -> None:
    parse_workflow(
        workflow(
            {"name": "p", "type": "parallel", "steps": [query("c1"), query("c2")]},
            transform(
                "after", {"one": "{{ steps.c1.output }}", "two": "{{ steps['c2'].output }}"}, depends_on=["p"]
            ),
        )
    )


def test_reference_to_parallel_sibling_without_depends_on_is_not_upstream() -> None:
    raw = workflow(
        {"name": "p", "type": "parallel", "steps": [query("c1"), transform("c2", "{{ steps.c1.output }}")]}
    )
    assert "not upstream of 'c2'" in message_at(raw, "workflow.spec.steps[0].steps[1].value")


def test_reference_to_a_later_step_in_a_condition_expression() -> None:
    raw = workflow(
        {
            "name": "c",
            "type": "condition",
            "condition": "steps.q.output | length > 0",
            "if_true": [transform("x")],
        },
        query("q"),
    )
    assert "not upstream of 'c'" in message_at(raw, "workflow.spec.steps[0].condition")


def test_reference_in_parameters_and_prompt_paths() -> None:
    raw = workflow(
        query("a"),
        query("b", parameters={"list": ["x", "{{ steps.a.output }}"]}),
        {"name": "l", "type": "llm", "prompt": "use {{ steps.b.output }}", "depends_on": ["a"]},
    )
    assert fields_of(raw) == ["workflow.spec.steps[1].parameters.list[1]", "workflow.spec.steps[2].prompt"]


def test_reference_to_unknown_step() -> None:
    raw = workflow(transform("a", "{{ steps.ghost.output }}"))
    assert message_at(raw, "workflow.spec.steps[0].value") == "template references unknown step 'ghost'"


def test_output_may_reference_any_step_but_not_unknown_ones() -> None:
    wf = parse_workflow(workflow(transform("a"), transform("b"), output={"a": "{{ steps.a.output }}"}))
    assert wf.output == {"a": "{{ steps.a.output }}"}
    raw = workflow(transform("a"), output={"x": "{{ steps.nope.output }}"})
    assert problems(raw) == [
        {"field": "workflow.spec.output.x", "message": "template references unknown step 'nope'"}
    ]


def test_input_user_and_execution_names_are_not_step_references() -> None:
    parse_workflow(
        workflow(transform("a", "{{ input.steps }} {{ user.id }} {{ execution.id }} {{ input['steps'].x }}"))
    )


@pytest.mark.parametrize(
    "text",
    ["5s", "250ms", "2m", "1h", "366d", "365.9d", "9999999.5", "9999999999ms", "99999m", "999h", "0"],
)
def test_every_documented_duration_is_accepted(text: str) -> None:
    """The OpenAPI pattern is a promise: the fuzzer found '52801532d' matching it and refused."""
    assert re.match(DURATION_PATTERN, text)
    assert parse_duration(text) <= MAX_SECONDS


@pytest.mark.parametrize("text", ["367d", "52801532d", "10000000", "99999999999ms", "1000h", "366.1d"])
def test_durations_over_the_bound_are_not_documented(text: str) -> None:
    assert not re.match(DURATION_PATTERN, text)

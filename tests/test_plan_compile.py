"""Plan -> workflow compilation and the plan event fold: pure, no Ray, milliseconds per case."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.core.errors import PlanningFailed
from orchestrator.core.events import EventRecord
from orchestrator.core.plans import (
    PlanCreated,
    PlanExecuted,
    PlanExecutionStarted,
    fold_plan,
    from_record,
    plan_view,
    to_record,
)
from orchestrator.core.templates import render_value
from planner import Plan, PlanStep, filter_catalog, plan_offline
from planner.compile import compile_plan, escape_template, run_mode, workflow_name

pytestmark = pytest.mark.timeout(30)

TODAY = date(2025, 1, 2)
SHIPPED = Path(__file__).resolve().parents[1] / "agents" / "config" / "default.yaml"
CATALOG = filter_catalog(yaml.safe_load(SHIPPED.read_text(encoding="utf-8"))["agents"], None)
SEED_QUERY = (
    "Plan a business trip from San Francisco to Paris for June 1-7, find flights under $1000 and "
    "4-star hotels near the Eiffel Tower"
)
SEED_CONTEXT: dict[str, Any] = {
    "budget": 5000,
    "currency": "USD",
    "preferences": {"airline_alliance": "SkyTeam", "hotel_amenities": ["wifi", "breakfast"]},
}


def offline(query: str, *, mode: str = "auto", domain: str | None = None, **context: Any) -> Plan:
    return plan_offline(
        query, domain=domain, execution_mode=mode, context=context, catalog=CATALOG, today=TODAY
    )


def step(step_id: str, **fields: Any) -> PlanStep:
    return PlanStep(id=step_id, name=fields.pop("name", step_id), **fields)


def synthesis(step_id: str, depends_on: list[str], prompt: str = "Summarize") -> PlanStep:
    return step(
        step_id,
        name="summarize_options",
        type="llm",
        depends_on=depends_on,
        agent="llm-analyst",
        parameters={"prompt": prompt},
    )


def llm_plan(*steps: PlanStep, query: str = "q", mode: str = "auto") -> Plan:
    return Plan(query=query, domain="travel", execution_mode=mode, steps=list(steps), planner="llm")


def by_name(compiled: Any) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in compiled.definition["spec"]["steps"]}


# ------------------------------------------------------------------------------------------- the seed


def test_seed_plan_becomes_the_seed_workflow() -> None:
    compiled = compile_plan(offline(SEED_QUERY, domain="travel", **SEED_CONTEXT))

    workflow = compiled.workflow
    assert workflow.name == "map-travel"
    assert [s.name for s in workflow.steps] == ["search_flights", "search_hotels", "summarize_options"]
    assert compiled.step_names == {
        "step_1_search_flights": "search_flights",
        "step_2_search_hotels": "search_hotels",
        "step_3_summarize": "summarize_options",
    }
    flights, hotels, summary = workflow.steps
    assert (flights.type, flights.connector, flights.statement) == (
        "mcp_query",
        "amadeus-travel",
        "search_flights",
    )
    assert flights.parameters["origin"] == "SFO" and flights.parameters["max_price"] == 1000
    assert (hotels.statement, hotels.parameters["star_rating"], hotels.parameters["landmark"]) == (
        "search_hotels",
        4,
        "Eiffel Tower",
    )
    assert flights.depends_on == hotels.depends_on == []
    assert summary.type == "llm" and summary.agent == "llm-analyst"
    assert summary.depends_on == ["search_flights", "search_hotels"]
    assert "5000 USD" in (summary.prompt or "")
    assert compiled.final_step == "summarize_options"
    assert workflow.output == {"final_result": "{{ steps.summarize_options.output }}"}
    assert compiled.execution_mode == "parallel"  # the two searches are independent


def test_sequential_chains_steps_and_keeps_the_synthesis_edges() -> None:
    compiled = compile_plan(offline(SEED_QUERY, mode="sequential", **SEED_CONTEXT))
    deps = {s.name: s.depends_on for s in compiled.workflow.steps}
    assert deps == {
        "search_flights": [],
        "search_hotels": ["search_flights"],
        "summarize_options": ["search_flights", "search_hotels"],
    }
    assert compiled.execution_mode == "sequential"


def test_compile_chains_a_sequential_plan_even_when_the_planner_did_not() -> None:
    plan = llm_plan(
        step("a", type="mcp_query", agent="amadeus-travel", capability="search_activities"),
        step("b", type="mcp_query", agent="amadeus-travel", capability="search_activities", name="b2"),
        synthesis("s", ["a", "b"]),
        mode="sequential",
    )
    assert {s.name: s.depends_on for s in compile_plan(plan).workflow.steps} == {
        "a": [],
        "b2": ["a"],
        "summarize_options": ["a", "b2"],
    }


def test_crm_query_calls_the_crm_agent() -> None:
    compiled = compile_plan(offline("Find contacts at Acme Corp", domain="crm"))
    contacts = by_name(compiled)["query_contacts"]
    assert (contacts["type"], contacts["connector"], contacts["statement"]) == (
        "mcp_query",
        "salesforce-crm",
        "query_contacts",
    )
    assert contacts["parameters"] == {"company": "Acme Corp"}
    assert compiled.workflow.name == "map-crm"


def test_mutating_steps_stay_execute_steps() -> None:
    compiled = compile_plan(offline("Add John Smith (john@acme.com) from Acme as a lead"))
    assert by_name(compiled)["create_lead"]["type"] == "mcp_execute"


# ---------------------------------------------------------------------------------------- llm steps


def test_analysis_alone_calls_the_analyst_capability() -> None:
    compiled = compile_plan(offline("Analyze the following text: revenue grew 20% while costs fell 5%"))
    (only,) = compiled.workflow.steps
    assert (only.type, only.connector, only.statement) == ("mcp_query", "llm-analyst", "analyze")
    assert only.parameters == {"text": "revenue grew 20% while costs fell 5%"}
    assert compiled.final_step == "analyze"
    assert compiled.execution_mode == "sequential"  # one step cannot run beside anything


def test_an_analysis_after_other_steps_receives_their_outputs() -> None:
    plan = llm_plan(
        step("one", type="mcp_query", agent="projects-db", capability="list_projects"),
        step(
            "two",
            type="llm",
            agent="llm-analyst",
            capability="analyze",
            depends_on=["one"],
            parameters={"question": "Which is late?"},
        ),
    )
    analysis = by_name(compile_plan(plan))["two"]
    assert analysis["type"] == "mcp_query" and analysis["statement"] == "analyze"
    assert analysis["parameters"] == {"question": "Which is late?", "data": {"one": "{{ steps.one.output }}"}}
    rendered = render_value(analysis["parameters"], {"steps": {"one": {"output": {"rows": [1]}}}})
    assert rendered["data"] == {"one": {"rows": [1]}}


def test_synthesis_without_agent_uses_the_configured_provider() -> None:
    plan = llm_plan(
        step("a", type="mcp_query", agent="amadeus-travel", capability="search_activities"),
        step("s", type="llm", depends_on=["a"], parameters={"prompt": "Sum up", "system": "Be brief"}),
    )
    summary = by_name(compile_plan(plan))["s"]
    assert summary["type"] == "llm" and "agent" not in summary
    assert (summary["prompt"], summary["system"]) == ("Sum up", "Be brief")


# ------------------------------------------------------------------------------------- plan text is data


def test_template_markers_in_the_query_reach_the_llm_as_written() -> None:
    query = "Analyze the following text: {{ input }} {% if x %} is no template"
    compiled = compile_plan(offline(query))
    (only,) = compiled.workflow.steps
    text = only.parameters["text"]
    assert "{{" in text and render_value(text, {}) == "{{ input }} {% if x %} is no template"


def test_escape_template_round_trips() -> None:
    for text in ("plain", "{{ 7*7 }}", "{{", "{{{", "a }} b {{ c", "{% raw %}{# x #}"):
        assert render_value(escape_template(text), {}) == text


def test_llm_plans_keep_templates_and_refer_to_steps_by_name() -> None:
    plan = llm_plan(
        step(
            "step_1", name="contacts", type="mcp_query", agent="salesforce-crm", capability="query_contacts"
        ),
        step(
            "step_2",
            name="lead",
            type="mcp_execute",
            agent="salesforce-crm",
            capability="create_lead",
            depends_on=["step_1"],
            parameters={
                "first_name": "{{ steps.step_1.output.contacts[0].first_name }}",
                "last_name": "{{ steps['step_1'].output.contacts[0].last_name }}",
                "email": "x@y.z",
                "company": "Acme",
            },
        ),
        synthesis("step_3", ["step_1", "step_2"]),
    )
    lead = by_name(compile_plan(plan))["lead"]["parameters"]
    assert lead["first_name"] == "{{ steps.contacts.output.contacts[0].first_name }}"
    assert lead["last_name"] == "{{ steps.contacts.output.contacts[0].last_name }}"


def test_an_llm_plan_still_escapes_the_query_it_quotes() -> None:
    query = "Summarize {{ input.secret }}"
    plan = llm_plan(
        step("a", type="mcp_query", agent="amadeus-travel", capability="search_activities"),
        synthesis("s", ["a"], prompt=f"The user asked: {query}\nUse {{{{ steps.a.output }}}}"),
        query=query,
    )
    prompt = by_name(compile_plan(plan))["summarize_options"]["prompt"]
    rendered = render_value(prompt, {"steps": {"a": {"output": "OUT"}}})
    assert rendered == f"The user asked: {query}\nUse OUT"


# ------------------------------------------------------------------------------------------ names, errors


def test_invalid_and_duplicate_names_become_valid_unique_step_names() -> None:
    plan = llm_plan(
        step(
            "x1",
            name="Search flights!",
            type="mcp_query",
            agent="amadeus-travel",
            capability="search_activities",
        ),
        step(
            "x2",
            name="Search flights!",
            type="mcp_query",
            agent="amadeus-travel",
            capability="search_activities",
        ),
        step("x3", name="1st", type="mcp_query", agent="amadeus-travel", capability="search_activities"),
        synthesis("x4", ["x1", "x2", "x3"]),
    )
    compiled = compile_plan(plan)
    assert compiled.step_names == {
        "x1": "Search_flights",
        "x2": "Search_flights_2",
        "x3": "step_1st",
        "x4": "summarize_options",
    }
    assert compiled.workflow.by_name["summarize_options"].depends_on == [
        "Search_flights",
        "Search_flights_2",
        "step_1st",
    ]


@pytest.mark.parametrize(
    ("steps", "reason"),
    [
        ([step("a", type="mcp_query", agent="amadeus-travel")], "invalid_plan"),
        ([step("a", type="llm", parameters={})], "invalid_plan"),
        ([step("a", type="llm", parameters={"prompt": "x"}, depends_on=["ghost"])], "invalid_plan"),
        (
            [
                step("a", type="llm", parameters={"prompt": "x"}, depends_on=["b"]),
                step("b", type="llm", parameters={"prompt": "y"}, depends_on=["a"]),
            ],
            "invalid_workflow",
        ),
        (
            [
                step(
                    "a",
                    type="mcp_query",
                    agent="t",
                    capability="c",
                    parameters={"p": "{{ steps.zz.output }}"},
                )
            ],
            "invalid_workflow",
        ),
    ],
)
def test_plans_that_cannot_run_fail_planning_with_a_reason(steps: list[PlanStep], reason: str) -> None:
    with pytest.raises(PlanningFailed) as caught:
        compile_plan(llm_plan(*steps))
    assert caught.value.details["reason"] == reason
    assert caught.value.status == 500


def test_workflow_names_and_run_modes() -> None:
    assert workflow_name("travel") == "map-travel"
    assert workflow_name(None) == workflow_name("") == "map-generic"
    assert workflow_name("Health Care") == "map-health-care"
    chain = compile_plan(
        llm_plan(
            step("a", type="llm", parameters={"prompt": "x"}),
            step("b", type="llm", parameters={"prompt": "y"}, depends_on=["a"]),
        )
    )
    assert run_mode(chain.workflow) == "sequential"


# -------------------------------------------------------------------------------------- plan events


def test_plan_events_round_trip_and_fold_to_the_view() -> None:
    at = datetime(2025, 1, 2, 10, 0, tzinfo=UTC)
    plan = offline(SEED_QUERY, domain="travel", **SEED_CONTEXT)
    created = PlanCreated(
        seq=1,
        timestamp=at,
        query=SEED_QUERY,
        domain="travel",
        user={"id": 123},
        context=SEED_CONTEXT,
        planner="offline",
        steps=[s.model_dump(mode="json") for s in plan.steps],
        workflow_name="map-travel",
        step_names={"step_3_summarize": "summarize_options"},
    )
    started = PlanExecutionStarted(
        seq=2,
        timestamp=at,
        workflow_execution_id="wf_exec_1",
        workflow_name="map-travel",
        execution_mode="parallel",
    )
    executed = PlanExecuted(
        seq=3, timestamp=at, workflow_execution_id="wf_exec_1", status="completed", result="done"
    )
    records = [to_record("plan_1", e) for e in (created, started, executed)]
    assert [from_record(r) for r in records] == [created, started, executed]
    assert records[0].execution_id == "plan_1" and records[0].type == "plan.created"

    state = fold_plan("plan_1", records[:2])
    assert state is not None and state.workflow_execution_id == "wf_exec_1" and state.outcome is None
    view = plan_view(state, execution_status="running")
    assert (view["status"], view["result"], view["created_at"]) == (
        "running",
        None,
        "2025-01-02T10:00:00.000Z",
    )
    assert [s["id"] for s in view["steps"]] == [
        "step_1_search_flights",
        "step_2_search_hotels",
        "step_3_summarize",
    ]
    assert set(view["steps"][0]) == {
        "id", "name", "type", "description", "depends_on", "agent", "capability", "parameters"
    }  # fmt: skip

    done = fold_plan("plan_1", records)
    assert done is not None
    assert plan_view(done)["status"] == "completed" and plan_view(done)["result"] == "done"
    only_planned = fold_plan("plan_1", records[:1])
    assert only_planned is not None and plan_view(only_planned)["status"] == "pending"


def test_streams_that_are_not_plans_fold_to_nothing() -> None:
    at = datetime(2025, 1, 2, tzinfo=UTC)
    execution = EventRecord(execution_id="wf_exec_1", seq=1, type="execution.started", recorded_at=at)
    assert fold_plan("wf_exec_1", [execution]) is None
    assert fold_plan("plan_x", []) is None
    started_only = to_record(
        "plan_2",
        PlanExecutionStarted(
            seq=1, timestamp=at, workflow_execution_id="e", workflow_name="w", execution_mode="parallel"
        ),
    )
    assert fold_plan("plan_2", [started_only]) is None

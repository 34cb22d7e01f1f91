"""Multi-agent planning through real HTTP: the planner deployment, the demo MCP servers and the offline LLM.

The server plans with the offline planner (no LLM endpoint is configured for it), so every answer here is
deterministic except the year: ``today`` comes from the server's clock, and "June 1-7" is the next June.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import httpx
import pytest

from tests.fixtures_server import eventually

pytestmark = pytest.mark.ray

USER = {"id": 123, "email": "[email protected]", "role": "user"}

SEED_REQUEST: dict[str, Any] = {
    "query": "Plan a business trip from San Francisco to Paris for June 1-7, find flights under $1000 and "
    "4-star hotels near the Eiffel Tower",
    "domain": "travel",
    "execution_mode": "auto",
    "user": USER,
    "context": {
        "budget": 5000,
        "currency": "USD",
        "preferences": {"airline_alliance": "SkyTeam", "hotel_amenities": ["wifi", "breakfast"]},
    },
}


def plan(api: httpx.Client, **changes: Any) -> httpx.Response:
    body = {**SEED_REQUEST, **changes}
    return api.post("/api/v1/plan", json={k: v for k, v in body.items() if v is not None})


def error_of(response: httpx.Response) -> dict[str, Any]:
    error: dict[str, Any] = response.json()["error"]
    return error


def assert_seed_date(value: str, month_day: str) -> None:
    year, rest = value.split("-", 1)
    assert rest == month_day
    assert int(year) in (date.today().year, date.today().year + 1)


def test_seed_request_plans_runs_and_answers(api: httpx.Client) -> None:
    response = plan(api)
    assert response.status_code == 200, response.text
    body = response.json()

    assert body["success"] is True and body["status"] == "completed"
    assert body["plan_id"].startswith("plan_")
    assert body["workflow_execution_id"].startswith("wf_exec_")
    steps = {s["name"]: s for s in body["steps"]}
    assert [s["id"] for s in body["steps"]] == [
        "step_1_search_flights",
        "step_2_search_hotels",
        "step_3_summarize",
    ]
    flights = steps["search_flights"]
    assert (flights["type"], flights["agent"], flights["depends_on"]) == ("mcp_query", "amadeus-travel", [])
    assert flights["parameters"]["origin"] == "SFO" and flights["parameters"]["destination"] == "CDG"
    assert flights["parameters"]["max_price"] == 1000
    assert_seed_date(flights["parameters"]["departure_date"], "06-01")
    assert_seed_date(flights["parameters"]["return_date"], "06-07")
    hotels = steps["search_hotels"]["parameters"]
    assert (hotels["city"], hotels["star_rating"], hotels["landmark"]) == ("Paris", 4, "Eiffel Tower")
    assert_seed_date(hotels["check_in"], "06-01")
    assert_seed_date(hotels["check_out"], "06-07")
    summary = steps["summarize_options"]
    assert summary["type"] == "llm"
    assert summary["depends_on"] == ["step_1_search_flights", "step_2_search_hotels"]

    result = body["result"]
    assert isinstance(result, str)
    assert "Flights" in result and "$" in result  # flights with prices
    assert "Hotels" in result and "/night" in result  # hotels with nightly rates
    assert "5,000" in result or "5000" in result  # the total against the budget

    metadata = body["metadata"]
    assert metadata["planner"] == "offline"
    assert metadata["execution_mode"] == "parallel"
    assert metadata["tasks_executed"] == 3
    assert [(t["name"], t["status"]) for t in metadata["tasks"]] == [
        ("search_flights", "completed"),
        ("search_hotels", "completed"),
        ("summarize_options", "completed"),
    ]
    assert all(isinstance(t["time_ms"], int) and t["time_ms"] >= 0 for t in metadata["tasks"])
    assert metadata["execution_time_ms"] >= metadata["planning_time_ms"] >= 0
    assert isinstance(metadata["warnings"], list)

    # the run is an ordinary execution, named after the domain, with the context as its input
    execution = api.get(f"/api/v1/workflows/executions/{body['workflow_execution_id']}").json()
    assert execution["status"] == "completed" and execution["workflow_name"] == "map-travel"
    assert execution["input"] == SEED_REQUEST["context"]
    assert execution["output"] == {"final_result": result}
    events = api.get(f"/api/v1/workflows/executions/{body['workflow_execution_id']}/events").json()
    assert events["events"][0]["data"]["metadata"]["plan_id"] == body["plan_id"]

    # and the plan is stored with its execution's status
    stored = api.get(f"/api/v1/plans/{body['plan_id']}")
    assert stored.status_code == 200, stored.text
    view = stored.json()
    assert view["plan_id"] == body["plan_id"] and view["query"] == SEED_REQUEST["query"]
    assert view["status"] == "completed" and view["result"] == result
    assert view["workflow_execution_id"] == body["workflow_execution_id"]
    assert view["steps"] == body["steps"] and view["planner"] == "offline"
    assert view["workflow_name"] == "map-travel"


def test_crm_query_runs_through_the_crm_demo(api: httpx.Client) -> None:
    response = plan(api, query="Find contacts at Acme Corp", domain="crm", context={})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True
    contacts = body["steps"][0]
    assert (contacts["name"], contacts["agent"], contacts["parameters"]) == (
        "query_contacts",
        "salesforce-crm",
        {"company": "Acme Corp"},
    )
    assert "Contacts" in body["result"] and "Acme" in body["result"]
    execution = api.get(f"/api/v1/workflows/executions/{body['workflow_execution_id']}").json()
    assert execution["workflow_name"] == "map-crm"
    output = next(s["output"] for s in execution["steps"] if s["name"] == "query_contacts")
    assert output["contacts"] and all("Acme" in c["company"] for c in output["contacts"])


def test_analysis_alone_calls_the_analyst_capability(api: httpx.Client) -> None:
    response = plan(
        api, query="Analyze the following text: revenue grew 20% while costs fell 5%", domain=None, context={}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    (only,) = body["steps"]
    assert (only["type"], only["agent"], only["capability"]) == ("llm", "llm-analyst", "analyze")
    assert body["success"] is True and "revenue grew 20%" in body["result"]
    assert body["metadata"]["execution_mode"] == "sequential"


def test_execute_false_plans_without_running(api: httpx.Client) -> None:
    before = api.get("/api/v1/workflows/executions", params={"workflow_name": "map-travel"}).json()["total"]
    response = plan(api, execute=False)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True and body["status"] == "pending"
    assert body["workflow_execution_id"] is None and body["result"] is None
    assert [s["name"] for s in body["steps"]] == ["search_flights", "search_hotels", "summarize_options"]
    assert body["metadata"]["tasks"] == [] and body["metadata"]["tasks_executed"] == 0
    assert body["metadata"]["execution_mode"] == "parallel"  # how the steps would run
    after = api.get("/api/v1/workflows/executions", params={"workflow_name": "map-travel"}).json()["total"]
    assert after == before

    view = api.get(f"/api/v1/plans/{body['plan_id']}").json()
    assert view["status"] == "pending" and view["workflow_execution_id"] is None


def test_sequential_mode_chains_the_executed_workflow(api: httpx.Client) -> None:
    response = plan(api, execution_mode="sequential")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True and body["metadata"]["execution_mode"] == "sequential"
    assert body["steps"][1]["depends_on"] == ["step_1_search_flights"]

    execution_id = body["workflow_execution_id"]
    events = api.get(f"/api/v1/workflows/executions/{execution_id}/events").json()["events"]
    workflow = events[0]["data"]["workflow"]
    assert {s["name"]: s.get("depends_on", []) for s in workflow["steps"]} == {
        "search_flights": [],
        "search_hotels": ["search_flights"],
        "summarize_options": ["search_flights", "search_hotels"],
    }
    steps = {s["name"]: s for s in api.get(f"/api/v1/workflows/executions/{execution_id}").json()["steps"]}
    assert steps["search_hotels"]["started_at"] >= steps["search_flights"]["completed_at"]


def test_request_errors(api: httpx.Client) -> None:
    missing_user = plan(api, user=None)
    assert missing_user.status_code == 400 and error_of(missing_user)["code"] == "MISSING_USER_CONTEXT"

    empty = plan(api, query="   ")
    assert empty.status_code == 400 and error_of(empty)["code"] == "INVALID_REQUEST"
    assert error_of(empty)["details"][0]["field"] == "query"

    mode = plan(api, execution_mode="eventually")
    assert mode.status_code == 400 and error_of(mode)["code"] == "INVALID_REQUEST"
    assert any(d["field"] == "execution_mode" for d in error_of(mode)["details"])

    domain = plan(api, domain=["travel"])
    assert domain.status_code == 400 and error_of(domain)["code"] == "INVALID_REQUEST"

    timeout = plan(api, timeout="soon")
    assert timeout.status_code == 400 and error_of(timeout)["details"][0]["field"] == "timeout"


def test_a_query_nothing_matches_fails_planning_with_details(api: httpx.Client) -> None:
    response = plan(api, query="Tell me a joke about penguins", domain=None, context={})
    assert response.status_code == 500, response.text
    error = error_of(response)
    assert error["code"] == "PLANNING_FAILED"
    assert error["details"]["reason"] == "no_matching_capability"
    assert "amadeus-travel.search_flights" in error["details"]["capabilities"]


def test_missing_parameters_fail_planning_and_say_what_to_add(api: httpx.Client) -> None:
    response = plan(api, query="Find flights to Paris on June 3", context={})
    assert response.status_code == 500, response.text
    error = error_of(response)
    assert error["code"] == "PLANNING_FAILED" and error["details"]["reason"] == "missing_parameters"
    assert error["details"]["missing"][0]["missing"] == ["origin"]


def test_workflow_timeout_is_504_with_the_execution_and_plan(api: httpx.Client) -> None:
    response = plan(api, timeout="1ms")
    assert response.status_code == 504, response.text
    error = error_of(response)
    assert error["code"] == "EXECUTION_TIMEOUT"
    execution_id, plan_id = error["details"]["execution_id"], error["details"]["plan_id"]
    assert api.get(f"/api/v1/workflows/executions/{execution_id}").json()["status"] == "timeout"
    view = eventually(lambda: (v := api.get(f"/api/v1/plans/{plan_id}").json())["status"] == "timeout" and v)
    assert view["workflow_execution_id"] == execution_id


def test_unknown_plans_are_404(api: httpx.Client) -> None:
    missing = api.get("/api/v1/plans/plan_doesnotexist")
    assert missing.status_code == 404 and error_of(missing)["code"] == "PLAN_NOT_FOUND"
    # an execution's stream is not a plan
    run = plan(api, query="Find contacts at Acme Corp", domain="crm", context={}).json()
    other = api.get(f"/api/v1/plans/{run['workflow_execution_id']}")
    assert other.status_code == 404 and error_of(other)["code"] == "PLAN_NOT_FOUND"


def test_a_plan_id_is_not_an_execution_in_either_dialect(api: httpx.Client) -> None:
    plan_id = plan(api, execute=False).json()["plan_id"]
    routes = [
        ("GET", f"/api/v1/workflows/executions/{plan_id}"),
        ("POST", f"/api/v1/workflows/executions/{plan_id}/cancel"),
        ("GET", f"/api/v1/workflows/executions/{plan_id}/events"),
        ("GET", f"/api/v1/workflows/executions/{plan_id}/events?format=arrow"),
        ("GET", f"/api/eai/v3/orchestrate/executions/{plan_id}"),
        ("POST", f"/api/eai/v3/orchestrate/executions/{plan_id}/cancel"),
    ]
    for method, path in routes:
        response = api.request(method, path)
        assert response.status_code == 404, (path, response.text)
        assert error_of(response)["code"] == "EXECUTION_NOT_FOUND"
    assert api.get(f"/api/v1/plans/{plan_id}").status_code == 200  # still a plan


def test_a_bool_timeout_is_refused(api: httpx.Client) -> None:
    response = plan(api, timeout=False)
    assert response.status_code == 400, response.text
    assert error_of(response)["code"] == "INVALID_REQUEST"
    assert error_of(response)["details"][0]["field"] == "timeout"

"""The v1 workflow API through real HTTP against the real Serve app, demo MCP server and LLM paths."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.fixtures_server import ServerInfo, eventually

pytestmark = pytest.mark.ray

USER = {"id": 123, "email": "[email protected]", "role": "user"}

SEED_REQUEST: dict[str, Any] = {
    "workflow": {
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
    },
    "input": {"budget": 5000, "currency": "USD"},
    "user": USER,
}


def workflow(*steps: dict[str, Any], name: str = "wf", **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"steps": list(steps), **spec}}


def run(api: httpx.Client, *steps: dict[str, Any], **extra: Any) -> httpx.Response:
    body = {"workflow": workflow(*steps, **extra.pop("spec", {})), "user": USER, **extra}
    return api.post("/api/v1/workflows/execute", json=body)


def test_seed_travel_booking_runs_for_real(api: httpx.Client) -> None:
    response = api.post("/api/v1/workflows/execute", json=SEED_REQUEST)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "completed"
    assert body["workflow_name"] == "travel-booking"
    assert body["id"].startswith("wf_exec_")
    steps = {step["name"]: step for step in body["steps"]}
    assert [step["name"] for step in body["steps"]] == ["search_flights", "search_hotels", "summarize"]
    assert all(step["status"] == "completed" for step in body["steps"])
    assert all(step["process_time"].endswith("s") for step in body["steps"])
    flights = steps["search_flights"]["output"]["flights"]
    assert any(f["airline"] == "Air France" and f["price"] == 850 for f in flights)
    hotels = steps["search_hotels"]["output"]["hotels"]
    assert hotels and all("price_per_night" in h for h in hotels)
    summary = steps["summarize"]["output"]
    assert isinstance(summary, str) and "Air France" in summary and "$850" in summary
    assert body["output"] == {"final_result": summary}
    # the summary started only after both searches finished
    assert steps["summarize"]["started_at"] >= max(
        steps["search_flights"]["completed_at"], steps["search_hotels"]["completed_at"]
    )

    fetched = api.get(f"/api/v1/workflows/executions/{body['id']}").json()
    assert fetched["status"] == "completed" and fetched["duration_ms"] >= 0
    assert [s["status"] for s in fetched["steps"]] == ["completed"] * 3


def test_events_are_the_log(api: httpx.Client) -> None:
    body = run(api, {"name": "a", "type": "transform", "value": 1}).json()
    events = api.get(f"/api/v1/workflows/executions/{body['id']}/events").json()
    assert events["execution_id"] == body["id"]
    types = [event["type"] for event in events["events"]]
    assert types == ["execution.started", "step.started", "step.completed", "execution.completed"]
    assert [event["seq"] for event in events["events"]] == [1, 2, 3, 4]
    assert events["events"][1]["step"] == "a"
    assert events["events"][2]["data"]["output"] == 1


def test_templates_chain_native_values(api: httpx.Client) -> None:
    response = run(
        api,
        {"name": "a", "type": "transform", "value": "{{ input.budget }}"},
        {
            "name": "b",
            "type": "transform",
            "value": {"double": "{{ steps.a.output * 2 }}"},
            "depends_on": ["a"],
        },
        {
            "name": "c",
            "type": "transform",
            "value": "Budget: {{ steps.b.output.double }}",
            "depends_on": ["b"],
        },
        input={"budget": 5000},
    )
    body = response.json()
    assert body["status"] == "completed"
    outputs = {s["name"]: s["output"] for s in body["steps"]}
    assert outputs == {"a": 5000, "b": {"double": 10000}, "c": "Budget: 10000"}
    assert body["output"] == {"final_result": "Budget: 10000"}


def test_condition_and_parallel(api: httpx.Client) -> None:
    body = run(
        api,
        {
            "name": "flights",
            "type": "mcp_query",
            "connector": "amadeus-travel",
            "statement": "search_flights",
            "parameters": {
                "origin": "SFO",
                "destination": "CDG",
                "departure_date": "2025-06-01",
                "max_price": 1000,
            },
        },
        {
            "name": "check",
            "type": "condition",
            "condition": "steps.flights.output.flights | length > 0",
            "depends_on": ["flights"],
            "if_true": [
                {
                    "name": "both",
                    "type": "parallel",
                    "steps": [
                        {
                            "name": "cheapest",
                            "type": "transform",
                            "value": "{{ steps.flights.output.flights[0].price }}",
                        },
                        {
                            "name": "hotels",
                            "type": "mcp_query",
                            "connector": "amadeus-travel",
                            "statement": "search_hotels",
                            "parameters": {
                                "city": "Paris",
                                "check_in": "2025-06-01",
                                "check_out": "2025-06-07",
                            },
                        },
                    ],
                }
            ],
            "if_false": [{"name": "nothing", "type": "transform", "value": "no flights"}],
        },
        {
            "name": "report",
            "type": "transform",
            "value": "{{ steps.check.output.branch }}",
            "depends_on": ["check"],
        },
    ).json()
    assert body["status"] == "completed", body
    steps = {s["name"]: s for s in body["steps"]}
    assert steps["check"]["output"] == {"result": True, "branch": "if_true"}
    assert steps["nothing"]["status"] == "skipped"
    assert steps["both"]["status"] == "completed"
    assert set(steps["both"]["output"]) == {"cheapest", "hotels"}
    assert steps["cheapest"]["output"] <= 1000
    assert steps["hotels"]["parent"] == "both"
    assert body["output"] == {"final_result": "if_true"}


def test_spec_output_and_several_sinks(api: httpx.Client) -> None:
    body = run(
        api,
        {"name": "a", "type": "transform", "value": 1},
        {"name": "b", "type": "transform", "value": 2},
    ).json()
    assert body["output"] == {"a": 1, "b": 2}
    body = run(
        api,
        {"name": "a", "type": "transform", "value": 1},
        spec={"output": {"total": "{{ steps.a.output + 41 }}"}},
    ).json()
    assert body["output"] == {"total": 42}


def test_llm_step_through_openai_client(api: httpx.Client, server: ServerInfo) -> None:
    server.openai.reset()
    server.openai.script({"verdict": "go", "score": 9})
    body = run(
        api,
        {"name": "facts", "type": "transform", "value": {"budget": "{{ input.budget }}"}},
        {
            "name": "judge",
            "type": "llm",
            "agent": "scripted-llm",
            "system": "You are a travel judge.",
            "prompt": "Is a budget of {{ input.budget }} enough?",
            "output_schema": {
                "type": "object",
                "properties": {"verdict": {"type": "string"}, "score": {"type": "integer"}},
                "required": ["verdict", "score"],
            },
            "depends_on": ["facts"],
        },
        input={"budget": 5000},
    ).json()
    assert body["status"] == "completed", body
    assert body["output"] == {"final_result": {"verdict": "go", "score": 9}}
    sent = server.openai.requests[-1]
    messages = json.dumps(sent["messages"])
    assert "You are a travel judge." in messages and "Is a budget of 5000 enough?" in messages
    assert "facts" in messages  # dependency outputs travel as context
    assert sent["response_format"]["type"] == "json_schema"


def test_llm_failure_fails_the_execution(api: httpx.Client, server: ServerInfo) -> None:
    server.openai.reset()
    server.openai.script(400)
    body = run(api, {"name": "ask", "type": "llm", "agent": "scripted-llm", "prompt": "hi"}).json()
    assert body["status"] == "failed"
    assert "ask" in body["error"]
    assert body["steps"][0]["status"] == "failed"


def test_missing_required_parameter_fails_step_clearly(api: httpx.Client) -> None:
    body = run(
        api,
        {
            "name": "flights",
            "type": "mcp_query",
            "connector": "amadeus-travel",
            "statement": "search_flights",
            "parameters": {"origin": "SFO"},
        },
    ).json()
    assert body["status"] == "failed"
    assert "destination" in body["steps"][0]["error"] and "required" in body["steps"][0]["error"]


def test_unknown_connector_fails_step(api: httpx.Client) -> None:
    body = run(api, {"name": "x", "type": "mcp_query", "connector": "nope", "statement": "s"}).json()
    assert body["status"] == "failed"
    assert "unknown agent or connector 'nope'" in body["steps"][0]["error"]


def test_validation_errors_are_all_reported(api: httpx.Client) -> None:
    response = api.post(
        "/api/v1/workflows/execute",
        json={
            "workflow": {
                "metadata": {},
                "spec": {
                    "steps": [
                        {"name": "a", "type": "teleport"},
                        {
                            "name": "b",
                            "type": "transform",
                            "value": "{{ steps.c.output }}",
                            "depends_on": ["zz"],
                        },
                        {"name": "c", "type": "wait", "duration": "soon"},
                    ]
                },
            },
            "user": USER,
        },
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "INVALID_WORKFLOW"
    fields = {detail["field"] for detail in error["details"]}
    assert {
        "workflow.metadata.name",
        "workflow.spec.steps[0].type",
        "workflow.spec.steps[1].depends_on[0]",
        "workflow.spec.steps[2].duration",
        "workflow.spec.steps[1].value",
    } <= fields


def test_missing_user_context(api: httpx.Client) -> None:
    response = api.post(
        "/api/v1/workflows/execute",
        json={"workflow": workflow({"name": "a", "type": "transform", "value": 1})},
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "MISSING_USER_CONTEXT"


def test_malformed_json_and_big_bodies_and_unknown_routes(api: httpx.Client) -> None:
    response = api.post(
        "/api/v1/workflows/execute", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "INVALID_REQUEST"

    big = {
        "workflow": workflow({"name": "a", "type": "transform", "value": "x" * (1024 * 1024 + 10)}),
        "user": USER,
    }
    response = api.post("/api/v1/workflows/execute", json=big)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"

    response = api.get("/api/v1/nowhere")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NOT_FOUND"

    response = api.get("/api/v1/workflows/executions/wf_exec_missing")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "EXECUTION_NOT_FOUND"


def test_async_wait_and_cancel(api: httpx.Client) -> None:
    response = run(
        api,
        {"name": "nap", "type": "wait", "duration": "30s"},
        {"name": "after", "type": "transform", "value": 1, "depends_on": ["nap"]},
        **{"async": True},
    )
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "running"
    execution_id = body["id"]
    steps = {s["name"]: s["status"] for s in body["steps"]}
    assert steps == {"nap": "running", "after": "pending"}

    response = api.post(f"/api/v1/workflows/executions/{execution_id}/cancel")
    assert response.status_code == 202
    assert response.json()["status"] == "cancelled"
    fetched = api.get(f"/api/v1/workflows/executions/{execution_id}").json()
    assert fetched["status"] == "cancelled"
    assert {s["name"]: s["status"] for s in fetched["steps"]} == {"nap": "cancelled", "after": "pending"}

    again = api.post(f"/api/v1/workflows/executions/{execution_id}/cancel")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "EXECUTION_ALREADY_FINISHED"


def test_durable_wait_completes_async(api: httpx.Client) -> None:
    response = run(api, {"name": "nap", "type": "wait", "duration": "300ms"}, **{"async": True})
    execution_id = response.json()["id"]

    def done() -> dict[str, Any] | None:
        body = api.get(f"/api/v1/workflows/executions/{execution_id}").json()
        return body if body["status"] == "completed" else None

    body = eventually(done, timeout=20)
    assert body["steps"][0]["output"] == {"waited_seconds": 0.3}
    types = [
        e["type"] for e in api.get(f"/api/v1/workflows/executions/{execution_id}/events").json()["events"]
    ]
    assert "timer.scheduled" in types and "timer.fired" in types


def test_timeout_gives_504_and_timeout_state(api: httpx.Client) -> None:
    response = run(api, {"name": "nap", "type": "wait", "duration": "10s"}, timeout="500ms")
    assert response.status_code == 504
    error = response.json()["error"]
    assert error["code"] == "EXECUTION_TIMEOUT"
    execution_id = error["details"]["execution_id"]
    fetched = api.get(f"/api/v1/workflows/executions/{execution_id}").json()
    assert fetched["status"] == "timeout"
    assert fetched["steps"][0]["status"] == "cancelled"


def test_lists_filters_and_tenants(api: httpx.Client) -> None:
    tenant = "tenant-lists"
    ids = []
    for index in range(3):
        body = {
            "workflow": workflow({"name": "a", "type": "transform", "value": index}, name="listing"),
            "user": {**USER, "tenant_id": tenant},
        }
        ids.append(api.post("/api/v1/workflows/execute", json=body).json()["id"])
    via_header = api.post(
        "/api/v1/workflows/execute",
        json={
            "workflow": workflow({"name": "a", "type": "transform", "value": 9}, name="listing"),
            "user": USER,
        },
        headers={"X-Tenant-ID": "tenant-header"},
    ).json()
    assert via_header["tenant_id"] == "tenant-header"

    listing = api.get("/api/v1/workflows/executions", params={"limit": 2, "workflow_name": "listing"}).json()
    assert listing["count"] == 2
    assert [e["id"] for e in listing["executions"]] == [via_header["id"], ids[2]]  # newest first

    tenant_list = api.get(f"/api/v1/workflows/executions/tenant/{tenant}").json()
    assert tenant_list["tenant_id"] == tenant and tenant_list["count"] == 3
    assert [e["id"] for e in tenant_list["executions"]] == ids[::-1]
    empty = api.get("/api/v1/workflows/executions/tenant/nobody").json()
    assert empty == {"tenant_id": "nobody", "count": 0, "total": 0, "executions": []}

    failed = api.get("/api/v1/workflows/executions", params={"status": "cancelled", "limit": 1000}).json()
    assert all(e["status"] == "cancelled" for e in failed["executions"])
    assert api.get("/api/v1/workflows/executions", params={"limit": 0}).status_code == 400


def test_idempotency_key_returns_original(api: httpx.Client) -> None:
    body = {"workflow": workflow({"name": "a", "type": "transform", "value": 1}), "user": USER}
    first = api.post("/api/v1/workflows/execute", json=body, headers={"Idempotency-Key": "k-123"}).json()
    second = api.post("/api/v1/workflows/execute", json=body, headers={"Idempotency-Key": "k-123"}).json()
    assert first["id"] == second["id"]


def test_openapi_documents_routes(api: httpx.Client) -> None:
    spec = api.get("/openapi.json").json()
    assert "/api/v1/workflows/execute" in spec["paths"]
    assert "/api/v1/workflows/executions/{execution_id}/cancel" in spec["paths"]


def test_input_schema_is_enforced(api: httpx.Client) -> None:
    schema = {"type": "object", "properties": {"budget": {"type": "number"}}, "required": ["budget"]}
    response = run(
        api, {"name": "a", "type": "transform", "value": 1}, spec={"input_schema": schema}, input={}
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "INVALID_INPUT"
    assert error["details"] == [{"field": "input.budget", "message": "is required"}]
    ok = run(
        api,
        {"name": "a", "type": "transform", "value": 1},
        spec={"input_schema": schema},
        input={"budget": 1},
    )
    assert ok.status_code == 200


def test_a_chunked_body_over_the_limit_is_413_like_a_sized_one(api: httpx.Client) -> None:
    def chunks() -> Any:
        yield b'{"workflow": {"metadata": {"name": "big"}, "spec": {"steps": [{"name": "a", "value": "'
        for _ in range(40):
            yield b"x" * 32 * 1024
        yield b'"}]}}}'

    response = api.post(
        "/api/v1/workflows/execute", content=chunks(), headers={"content-type": "application/json"}
    )
    assert "content-length" not in response.request.headers  # sent chunked
    assert response.status_code == 413, response.text
    assert response.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"


def test_a_bool_is_not_a_timeout(api: httpx.Client) -> None:
    response = run(api, {"name": "a", "type": "transform", "value": 1}, timeout=False)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "INVALID_REQUEST" and error["details"][0]["field"] == "timeout"


def test_a_huge_offset_is_400_not_500(api: httpx.Client) -> None:
    for path in ("/api/v1/workflows/executions", "/api/v1/workflows/executions/tenant/default"):
        response = api.get(path, params={"offset": 10**20})
        assert response.status_code == 400, (path, response.text)
        assert response.json()["error"]["details"][0]["field"] == "query.offset"
    assert api.get("/api/v1/workflows/executions", params={"offset": 10**9}).status_code == 200


def test_a_wrong_method_is_405_with_allow(api: httpx.Client) -> None:
    response = api.request("TRACE", "/api/v1/workflows/executions/wf_exec_x")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET"
    assert response.json()["error"]["code"] == "METHOD_NOT_ALLOWED"


def test_openapi_documents_real_errors_and_links(api: httpx.Client) -> None:
    doc = api.get("/openapi.json").json()
    execute = doc["paths"]["/api/v1/workflows/execute"]["post"]
    assert "422" not in execute["responses"] and "400" in execute["responses"]
    assert set(execute["responses"]["200"]["links"]) == {"GetExecution", "CancelExecution", "ExecutionEvents"}
    body = doc["components"]["schemas"]["ExecuteRequest"]
    assert body["required"] == ["user", "workflow"]
    assert body["properties"]["workflow"]["required"] == ["metadata", "spec"]
    plan_links = doc["paths"]["/api/v1/plan"]["post"]["responses"]["200"]["links"]
    assert plan_links["GetPlan"]["parameters"] == {"plan_id": "$response.body#/plan_id"}

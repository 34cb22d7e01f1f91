"""The EAI Orchestrate dialect through real HTTP against the real Serve app: the seed's example request
and responses, the workflow registry, version pinning, pagination edges, cancel and timeouts, and
executions shared with the v1 dialect."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.fixtures_server import eventually

pytestmark = pytest.mark.ray

BASE = "/api/eai/v3/orchestrate"
USER = {"id": 123, "email": "[email protected]", "role": "user"}

SEED_REQUEST: dict[str, Any] = {
    "input": {"projectId": "proj_123", "analysisType": "comprehensive"},
    "async": True,
    "metadata": {"requestedBy": "user_456"},
}


def unique(prefix: str) -> str:
    """Workflow ids per test: the session's server and store are shared by every test."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def definition(version: str = "1.0.0", *steps: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {
        "name": "Test Workflow",
        "version": version,
        "steps": list(steps) or [{"id": "a", "name": "Step A", "type": "transform", "value": 1}],
        **fields,
    }


def put(api: httpx.Client, workflow_id: str, body: dict[str, Any]) -> httpx.Response:
    return api.put(f"{BASE}/workflows/{workflow_id}", json=body)


def execute(api: httpx.Client, workflow_id: str, **body: Any) -> httpx.Response:
    return api.post(f"{BASE}/workflows/{workflow_id}/execute", json=body)


def finished(api: httpx.Client, execution_id: str, *, timeout: float = 120) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        body = api.get(f"{BASE}/executions/{execution_id}").json()
        return body if body["state"] in ("completed", "failed", "timeout", "cancelled") else None

    result: dict[str, Any] = eventually(check, timeout=timeout, interval=0.2)
    return result


# ------------------------------------------------------------------------------------------ the seed


def test_seed_example_request_runs_analyze_project(api: httpx.Client) -> None:
    response = execute(api, "analyze_project", **SEED_REQUEST)
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["id"].startswith("wf_exec_")
    assert body["workflowId"] == "analyze_project" and body["workflowVersion"] == "1.0.0"
    assert body["state"] in ("pending", "running")
    assert body["input"] == SEED_REQUEST["input"]
    assert body["startedAt"].endswith("Z") and body["completedAt"] is None
    steps = {step["stepId"]: step for step in body["steps"]}
    assert steps["fetch_project"]["name"] == "Fetch Project Data"
    assert steps["analyze"]["name"] == "AI Analysis"
    assert steps["fetch_project"]["type"] == "resource_query" and steps["analyze"]["type"] == "ai_chat"

    done = finished(api, body["id"])
    assert done["state"] == "completed", done
    output = done["output"]
    assert set(output) == {"analysis", "risks", "recommendations"}
    assert isinstance(output["analysis"], str) and "Apollo Platform Migration" in output["analysis"]
    assert [risk.split(":")[0] for risk in output["risks"]] == ["Budget overrun", "Timeline delay"]
    assert output["recommendations"] and all(isinstance(r, str) for r in output["recommendations"])
    assert done["error"] is None and done["completedAt"] >= done["startedAt"]
    assert done["metadata"] == {"requestedBy": "user_456"}
    for step in done["steps"]:
        assert step["state"] == "completed"
        assert isinstance(step["duration"], int) and step["duration"] >= 0
        assert step["startedAt"] and step["completedAt"]
    steps = {step["stepId"]: step for step in done["steps"]}
    assert steps["fetch_project"]["output"]["id"] == "proj_123"
    assert steps["analyze"]["output"] == output

    # the same execution through the v1 dialect: the workflow id is its name there
    v1 = api.get(f"/api/v1/workflows/executions/{body['id']}").json()
    assert v1["status"] == "completed" and v1["workflow_name"] == "analyze_project"
    assert v1["workflow_version"] == "1.0.0"


def test_sync_execute_of_a_healthy_project(api: httpx.Client) -> None:
    response = execute(api, "analyze_project", input={"projectId": "proj_124"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["state"] == "completed"
    assert body["output"]["risks"] == []
    assert body["output"]["recommendations"][0].startswith("Keep the current plan")


def test_unknown_project_fails_the_execution_clearly(api: httpx.Client) -> None:
    body = execute(api, "analyze_project", input={"projectId": "proj_nope"}).json()
    assert body["state"] == "failed"
    steps = {step["stepId"]: step for step in body["steps"]}
    assert steps["fetch_project"]["state"] == "failed"
    assert "proj_nope" in steps["fetch_project"]["error"]
    assert steps["analyze"]["state"] == "pending"  # never started: the view says so


def test_list_workflows_shows_the_seed_shape(api: httpx.Client) -> None:
    response = api.get(f"{BASE}/workflows")
    assert response.status_code == 200
    workflows = {item["id"]: item for item in response.json()["data"]}
    analyze = workflows["analyze_project"]
    assert analyze["name"] == "Project Analysis"
    assert analyze["description"] == "Comprehensive project analysis with AI"
    assert analyze["version"] == "1.0.0"
    steps = {step["id"]: step for step in analyze["steps"]}
    assert {"id": "fetch_project", "name": "Fetch Project Data", "type": "resource_query"}.items() <= steps[
        "fetch_project"
    ].items()
    assert {"id": "analyze", "name": "AI Analysis", "type": "ai_chat"}.items() <= steps["analyze"].items()
    assert [step["id"] for step in workflows["travel-booking"]["steps"]] == [
        "search_flights",
        "search_hotels",
        "summarize",
    ]


def test_travel_booking_runs_with_its_defaults(api: httpx.Client) -> None:
    response = execute(api, "travel-booking", input={"budget": 5000, "currency": "USD"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["state"] == "completed", body
    assert any(f["airline"] == "Air France" and f["price"] == 850 for f in body["output"]["flights"])
    assert body["output"]["hotels"]
    assert "Air France" in body["output"]["summary"]
    steps = {step["stepId"]: step for step in body["steps"]}
    assert steps["summarize"]["startedAt"] >= max(
        steps["search_flights"]["completedAt"], steps["search_hotels"]["completedAt"]
    )


# ------------------------------------------------------------------------------------------ errors


def test_execute_errors(api: httpx.Client) -> None:
    response = execute(api, "no_such_workflow", input={})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "WORKFLOW_NOT_FOUND"

    response = execute(api, "analyze_project", input={"analysisType": "sideways"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "INVALID_INPUT"
    fields = {detail["field"] for detail in error["details"]}
    assert {"input.projectId", "input.analysisType"} <= fields

    response = execute(api, "analyze_project", input={"projectId": "proj_123"}, surprise=True)
    assert response.status_code == 400 and response.json()["error"]["code"] == "INVALID_REQUEST"

    response = execute(api, "analyze_project", input={"projectId": "proj_123"}, version="9.9.9")
    assert response.status_code == 404
    assert "no version '9.9.9'" in response.json()["error"]["message"]

    response = api.get(f"{BASE}/executions/wf_exec_missing")
    assert response.status_code == 404 and response.json()["error"]["code"] == "EXECUTION_NOT_FOUND"
    response = api.post(f"{BASE}/executions/wf_exec_missing/cancel")
    assert response.status_code == 404 and response.json()["error"]["code"] == "EXECUTION_NOT_FOUND"


def test_execute_without_a_body_runs_synchronously(api: httpx.Client) -> None:
    workflow_id = unique("nobody")
    assert put(api, workflow_id, definition()).status_code == 201
    response = api.post(f"{BASE}/workflows/{workflow_id}/execute")
    assert response.status_code == 200, response.text
    assert response.json()["output"] == {"final_result": 1}


def test_idempotency_key_and_tenant_header(api: httpx.Client) -> None:
    workflow_id = unique("idem")
    assert put(api, workflow_id, definition()).status_code == 201
    headers = {"Idempotency-Key": unique("key"), "X-Tenant-ID": "tenant-eai"}
    url = f"{BASE}/workflows/{workflow_id}/execute"
    first = api.post(url, json={"input": {}}, headers=headers).json()
    second = api.post(url, json={"input": {}}, headers=headers).json()
    assert first["id"] == second["id"]
    v1 = api.get(f"/api/v1/workflows/executions/{first['id']}").json()
    assert v1["tenant_id"] == "tenant-eai"


def test_timeout_gives_504(api: httpx.Client) -> None:
    workflow_id = unique("slow")
    body = definition("1.0.0", {"id": "nap", "type": "wait", "duration": "10s"}, timeout="500ms")
    assert put(api, workflow_id, body).status_code == 201
    response = execute(api, workflow_id)
    assert response.status_code == 504
    error = response.json()["error"]
    assert error["code"] == "EXECUTION_TIMEOUT"
    execution_id = error["details"]["execution_id"]
    fetched = api.get(f"{BASE}/executions/{execution_id}").json()
    assert fetched["state"] == "timeout"
    assert fetched["steps"][0]["state"] == "cancelled"


# ------------------------------------------------------------------------------------------ registry


def test_register_validate_and_immutable_versions(api: httpx.Client) -> None:
    workflow_id = unique("reg")
    first = put(api, workflow_id, definition())
    assert first.status_code == 201, first.text
    registered = first.json()
    assert registered["id"] == workflow_id and registered["version"] == "1.0.0"
    assert registered["steps"] == [
        {"id": "a", "name": "Step A", "type": "transform", "dependsOn": [], "parent": None}
    ]
    assert registered["definition"]["id"] == workflow_id  # the URL's id, filled in

    again = put(api, workflow_id, registered["definition"])  # what GET returns can be sent back
    assert again.status_code == 200

    changed = put(api, workflow_id, definition("1.0.0", {"id": "b", "type": "transform", "value": 2}))
    assert changed.status_code == 409
    assert changed.json()["error"]["code"] == "VERSION_EXISTS"

    invalid = put(
        api,
        workflow_id,
        {
            "id": "someone-else",
            "version": "1.0",
            "steps": [
                {"id": "a", "type": "teleport"},
                {"id": "b", "type": "transform", "value": "{{ steps.zz.output }}", "depends_on": ["q"]},
            ],
        },
    )
    assert invalid.status_code == 400
    error = invalid.json()["error"]
    assert error["code"] == "INVALID_WORKFLOW"
    assert {"id", "version", "steps[0].type", "steps[1].depends_on[0]", "steps[1].value"} <= {
        detail["field"] for detail in error["details"]
    }

    missing = api.get(f"{BASE}/workflows/{unique('never')}")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "WORKFLOW_NOT_FOUND"


def test_an_execution_keeps_the_version_it_started_with(api: httpx.Client) -> None:
    workflow_id = unique("pinned")
    old = definition(
        "1.0.0",
        {"id": "nap", "name": "Nap", "type": "wait", "duration": "60s"},
        {"id": "after", "type": "transform", "value": "old", "depends_on": ["nap"]},
    )
    assert put(api, workflow_id, old).status_code == 201
    started = execute(api, workflow_id, **{"async": True})
    assert started.status_code == 202
    running = started.json()
    assert running["state"] == "running" and running["workflowVersion"] == "1.0.0"

    new = definition("1.1.0", {"id": "quick", "type": "transform", "value": "new"})
    assert put(api, workflow_id, new).status_code == 201

    fetched = api.get(f"{BASE}/executions/{running['id']}").json()
    assert fetched["workflowVersion"] == "1.0.0"
    assert [step["stepId"] for step in fetched["steps"]] == ["nap", "after"]
    assert {s["stepId"]: s["state"] for s in fetched["steps"]} == {"nap": "running", "after": "pending"}

    latest = api.get(f"{BASE}/workflows/{workflow_id}").json()
    assert latest["version"] == "1.1.0" and [s["id"] for s in latest["steps"]] == ["quick"]
    pinned = api.get(f"{BASE}/workflows/{workflow_id}", params={"version": "1.0.0"}).json()
    assert pinned["version"] == "1.0.0" and [s["id"] for s in pinned["steps"]] == ["nap", "after"]
    unknown = api.get(f"{BASE}/workflows/{workflow_id}", params={"version": "2.0.0"})
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "WORKFLOW_NOT_FOUND"

    fresh = execute(api, workflow_id).json()
    assert fresh["workflowVersion"] == "1.1.0" and fresh["output"] == {"final_result": "new"}
    older = execute(api, workflow_id, version="1.0.0", **{"async": True}).json()
    assert older["workflowVersion"] == "1.0.0"

    # cancel of a running wait step: 204, the execution and its unfinished steps end cancelled
    for execution_id in (running["id"], older["id"]):
        response = api.post(f"{BASE}/executions/{execution_id}/cancel")
        assert response.status_code == 204 and response.content == b""
    cancelled = api.get(f"{BASE}/executions/{running['id']}").json()
    assert cancelled["state"] == "cancelled" and cancelled["completedAt"]
    assert {s["stepId"]: s["state"] for s in cancelled["steps"]} == {"nap": "cancelled", "after": "pending"}
    assert cancelled["workflowVersion"] == "1.0.0"

    again = api.post(f"{BASE}/executions/{running['id']}/cancel")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "EXECUTION_ALREADY_FINISHED"


# ------------------------------------------------------------------------------------------ listing


def test_list_executions_filters_and_pagination(api: httpx.Client) -> None:
    workflow_id = unique("listing")
    assert put(api, workflow_id, definition()).status_code == 201
    ids = [execute(api, workflow_id).json()["id"] for _ in range(3)]

    def page(**params: Any) -> httpx.Response:
        return api.get(f"{BASE}/executions", params={"workflowId": workflow_id, **params})

    listing = page().json()
    assert listing["total"] == 3 and listing["limit"] == 20 and listing["offset"] == 0
    assert [item["id"] for item in listing["data"]] == ids[::-1]  # newest first
    item = listing["data"][0]
    assert item["workflowId"] == workflow_id and item["workflowVersion"] == "1.0.0"
    assert item["state"] == "completed" and item["startedAt"] and item["completedAt"]

    assert [i["id"] for i in page(limit=2).json()["data"]] == ids[:0:-1]
    assert [i["id"] for i in page(limit=2, offset=2).json()["data"]] == ids[:1]
    past_end = page(offset=10).json()
    assert past_end["data"] == [] and past_end["total"] == 3 and past_end["offset"] == 10
    assert page(state="completed").json()["total"] == 3
    assert page(state="failed").json() == {"data": [], "total": 0, "limit": 20, "offset": 0}
    assert page(limit=100).status_code == 200

    for params in ({"limit": 0}, {"limit": 101}, {"offset": -1}, {"state": "finished"}):
        response = page(**params)
        assert response.status_code == 400, params
        assert response.json()["error"]["code"] == "INVALID_REQUEST"

    # the v1 dialect lists them under the workflow id as their name
    v1 = api.get("/api/v1/workflows/executions", params={"workflow_name": workflow_id}).json()
    assert [e["id"] for e in v1["executions"]] == ids[::-1]
    assert {e["workflow_name"] for e in v1["executions"]} == {workflow_id}


def test_v1_executions_are_visible_here(api: httpx.Client) -> None:
    name = unique("v1-flow")
    v1 = api.post(
        "/api/v1/workflows/execute",
        json={
            "workflow": {
                "metadata": {"name": name},
                "spec": {"steps": [{"name": "a", "type": "transform", "value": "{{ input.x * 2 }}"}]},
            },
            "input": {"x": 21},
            "user": USER,
        },
    ).json()
    body = api.get(f"{BASE}/executions/{v1['id']}").json()
    assert body["workflowId"] == name and body["state"] == "completed"
    assert body["output"] == {"final_result": 42}
    assert body["steps"][0]["stepId"] == "a" and body["steps"][0]["name"] == "a"
    listing = api.get(f"{BASE}/executions", params={"workflowId": name}).json()
    assert [item["id"] for item in listing["data"]] == [v1["id"]]
    assert listing["data"][0]["workflowId"] == name


def test_openapi_documents_the_dialect(api: httpx.Client) -> None:
    spec = api.get("/openapi.json").json()
    for path in (
        "/workflows",
        "/workflows/{workflowId}",
        "/workflows/{workflowId}/execute",
        "/executions",
        "/executions/{executionId}",
        "/executions/{executionId}/cancel",
    ):
        assert f"{BASE}{path}" in spec["paths"], path
    schemas = spec["components"]["schemas"]
    assert "async" in schemas["ExecuteWorkflowRequest"]["properties"]
    assert {"workflowId", "workflowVersion", "startedAt", "completedAt", "steps"} <= set(
        schemas["WorkflowExecution"]["properties"]
    )
    assert {"stepId", "duration"} <= set(schemas["WorkflowExecutionStep"]["properties"])


def test_huge_offsets_and_bool_timeouts_are_400(api: httpx.Client) -> None:
    response = api.get(f"{BASE}/executions", params={"offset": 10**20})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "INVALID_REQUEST"
    response = api.post(f"{BASE}/workflows/analyze_project/execute", json={"timeout": False})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["details"][0]["field"] == "timeout"


def test_execute_links_to_the_execution_routes(api: httpx.Client) -> None:
    doc = api.get("/openapi.json").json()
    links = doc["paths"][f"{BASE}/workflows/{{workflowId}}/execute"]["post"]["responses"]["202"]["links"]
    assert links["GetExecution"]["parameters"] == {"executionId": "$response.body#/id"}

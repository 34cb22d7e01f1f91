"""Plans people review, through real HTTP: stored pending, revised with optimistic versions, executed by id,
cancelled, expired, and gated on an approval (``execution_mode: confirm``).

The server plans with the offline planner, so the plans are deterministic; they run against the demo travel
MCP server and the offline LLM like any plan.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from orchestrator.core.ids import new_plan_id
from orchestrator.core.plans import PlanCreated, fold_plan, from_record, to_record
from orchestrator.store import open_store
from tests.fixtures_server import ServerInfo, eventually

pytestmark = pytest.mark.ray

USER = {"id": "planner-user", "role": "traveller"}
REVIEWER = {"id": "reviewer", "role": "finance"}
QUERY = (
    "Plan a business trip from San Francisco to Paris for June 1-7, find flights under $1000 and "
    "4-star hotels near the Eiffel Tower"
)


def plan(api: httpx.Client, **changes: Any) -> httpx.Response:
    body = {"query": QUERY, "domain": "travel", "user": USER, "context": {"budget": 5000}, **changes}
    return api.post("/api/v1/plan", json=body)


def pending(api: httpx.Client) -> dict[str, Any]:
    response = plan(api, execute=False)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def stored(api: httpx.Client, plan_id: str) -> dict[str, Any]:
    response = api.get(f"/api/v1/plans/{plan_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def error(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


def parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def map_travel_total(api: httpx.Client) -> int:
    total: int = api.get("/api/v1/workflows/executions", params={"workflow_name": "map-travel"}).json()[
        "total"
    ]
    return total


def test_execute_false_stores_a_pending_plan_that_expires(api: httpx.Client) -> None:
    before = map_travel_total(api)
    body = pending(api)
    assert body["status"] == "pending" and body["workflow_execution_id"] is None
    assert body["version"] == 1 and body["expires_at"] is not None
    view = stored(api, body["plan_id"])
    assert view["status"] == "pending" and view["version"] == 1
    # ORCH_PLAN_TTL defaults to an hour
    assert parse(view["expires_at"]) - parse(view["created_at"]) == pytest.approx(
        timedelta(hours=1), abs=timedelta(seconds=1)
    )
    assert map_travel_total(api) == before  # nothing ran


def test_execute_by_id_runs_it_once(api: httpx.Client) -> None:
    plan_id = pending(api)["plan_id"]
    executed = api.post(f"/api/v1/plans/{plan_id}/execute", json={"user": REVIEWER})
    assert executed.status_code == 200, executed.text
    body = executed.json()
    assert body["status"] == "completed" and body["success"] is True and body["version"] == 1
    assert "Hotels" in body["result"] and body["workflow_execution_id"].startswith("wf_exec_")
    view = stored(api, plan_id)
    assert view["status"] == "completed" and view["workflow_execution_id"] == body["workflow_execution_id"]
    assert view["result"] == body["result"]
    execution = api.get(f"/api/v1/workflows/executions/{body['workflow_execution_id']}").json()
    assert execution["workflow_name"] == "map-travel" and execution["input"] == {"budget": 5000}

    again = api.post(f"/api/v1/plans/{plan_id}/execute")
    assert error(again) == (409, "PLAN_ALREADY_EXECUTED")
    assert again.json()["error"]["details"]["workflow_execution_id"] == body["workflow_execution_id"]
    assert error(api.post(f"/api/v1/plans/{plan_id}/cancel")) == (409, "PLAN_ALREADY_EXECUTED")
    put = api.put(f"/api/v1/plans/{plan_id}", json={"version": 1, "steps": view["steps"]})
    assert error(put) == (409, "PLAN_ALREADY_EXECUTED")


def test_revisions_are_versioned_and_a_stale_one_is_refused(api: httpx.Client) -> None:
    created = pending(api)
    plan_id = created["plan_id"]
    steps = {s["name"]: s for s in created["steps"]}
    hotels = {
        **steps["search_hotels"],
        "parameters": {**steps["search_hotels"]["parameters"], "star_rating": 5},
    }
    summary = {**steps["summarize_options"], "depends_on": [hotels["id"]]}  # no flights: we drive

    revised = api.put(
        f"/api/v1/plans/{plan_id}", json={"version": 1, "steps": [hotels, summary], "user": REVIEWER}
    )
    assert revised.status_code == 200, revised.text
    view = revised.json()
    assert view["version"] == 2 and view["status"] == "pending"
    assert [s["name"] for s in view["steps"]] == ["search_hotels", "summarize_options"]
    assert view["steps"][0]["parameters"]["star_rating"] == 5

    stale = api.put(f"/api/v1/plans/{plan_id}", json={"version": 1, "steps": created["steps"]})
    assert error(stale) == (409, "VERSION_CONFLICT")
    assert stale.json()["error"]["details"]["version"] == 2
    assert stored(api, plan_id)["version"] == 2  # unchanged by the stale write

    versions = api.get(f"/api/v1/plans/{plan_id}/versions").json()
    assert versions["version"] == 2
    assert [(v["version"], v["event"]) for v in versions["versions"]] == [
        (1, "plan.created"),
        (2, "plan.revised"),
    ]
    assert versions["versions"][0]["steps"] == created["steps"]
    assert versions["versions"][1]["by"] == {"key_id": None, "user": REVIEWER}

    # executing names the version reviewed: an old one is refused, the current one runs
    assert error(api.post(f"/api/v1/plans/{plan_id}/execute", json={"version": 1})) == (
        409,
        "VERSION_CONFLICT",
    )
    executed = api.post(f"/api/v1/plans/{plan_id}/execute", json={"version": 2})
    assert executed.status_code == 200, executed.text
    body = executed.json()
    assert body["status"] == "completed" and body["version"] == 2
    assert [t["name"] for t in body["metadata"]["tasks"]] == ["search_hotels", "summarize_options"]
    events = api.get(f"/api/v1/workflows/executions/{body['workflow_execution_id']}/events").json()["events"]
    (hotel_call,) = [e for e in events if e["type"] == "step.started" and e["step"] == "search_hotels"]
    assert hotel_call["data"]["request"]["parameters"]["star_rating"] == 5


def test_a_revision_is_validated_like_a_planners_output(api: httpx.Client) -> None:
    created = pending(api)
    plan_id = created["plan_id"]
    broken = [dict(s) for s in created["steps"]]
    broken[0] = {**broken[0], "agent": "no-such-agent"}
    broken[1] = {**broken[1], "depends_on": ["step_9_nowhere"]}
    refused = api.put(f"/api/v1/plans/{plan_id}", json={"version": 1, "steps": broken})
    assert error(refused) == (400, "INVALID_PLAN")
    fields = {d["field"] for d in refused.json()["error"]["details"]}
    assert {"steps[0].agent", "steps[1].depends_on"} <= fields
    missing = api.put(f"/api/v1/plans/{plan_id}", json={"steps": created["steps"]})
    assert error(missing) == (400, "INVALID_REQUEST")  # the version is required
    assert stored(api, plan_id)["version"] == 1
    assert error(api.put("/api/v1/plans/plan_nope", json={"version": 1, "steps": created["steps"]})) == (
        404,
        "PLAN_NOT_FOUND",
    )


def test_a_cancelled_plan_never_runs(api: httpx.Client) -> None:
    plan_id = pending(api)["plan_id"]
    cancelled = api.post(f"/api/v1/plans/{plan_id}/cancel", json={"reason": "changed my mind", "user": USER})
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    assert stored(api, plan_id)["status"] == "cancelled"
    assert error(api.post(f"/api/v1/plans/{plan_id}/execute")) == (409, "PLAN_CANCELLED")
    assert error(api.post(f"/api/v1/plans/{plan_id}/cancel")) == (409, "PLAN_CANCELLED")
    put = api.put(f"/api/v1/plans/{plan_id}", json={"version": 1, "steps": stored(api, plan_id)["steps"]})
    assert error(put) == (409, "PLAN_CANCELLED")
    assert stored(api, plan_id)["workflow_execution_id"] is None


def test_an_expired_plan_is_gone(api: httpx.Client, server: ServerInfo) -> None:
    """A plan whose expiry has passed: the plan is copied, in the server's own store, from one the server
    stored, with its expiry an hour ago (an hour of waiting is not a test)."""
    original = pending(api)["plan_id"]
    with contextlib.closing(open_store(f"sqlite:///{server.data_dir / 'orchestrator.db'}")) as store:
        created = from_record(store.load(original)[0])
        assert isinstance(created, PlanCreated) and created.expires_at is not None
        plan_id = new_plan_id()
        past = datetime.now(UTC) - timedelta(hours=1)
        expired = created.model_copy(update={"timestamp": past - timedelta(hours=1), "expires_at": past})
        store.append(plan_id, [to_record(plan_id, expired)], projection=None)

        assert stored(api, plan_id)["status"] == "expired"
        refused = api.post(f"/api/v1/plans/{plan_id}/execute")
        assert error(refused) == (410, "PLAN_EXPIRED")
        assert error(api.post(f"/api/v1/plans/{plan_id}/cancel")) == (410, "PLAN_EXPIRED")
        put = api.put(f"/api/v1/plans/{plan_id}", json={"version": 1, "steps": created.steps})
        assert error(put) == (410, "PLAN_EXPIRED")
        # the first request that found it expired recorded so, once
        types = [record.type for record in store.load(plan_id)]
        assert types == ["plan.created", "plan.expired"]
        state = fold_plan(plan_id, store.load(plan_id))
        assert state is not None and state.expired_at is not None


def test_confirm_waits_for_approval_before_the_first_step(api: httpx.Client) -> None:
    response = plan(api, execution_mode="confirm")
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["status"] == "waiting_for_approval" and body["approval_step"] == "approve_plan"
    execution_id = body["workflow_execution_id"]
    execution = api.get(f"/api/v1/workflows/executions/{execution_id}").json()
    statuses = {s["name"]: s["status"] for s in execution["steps"]}
    assert statuses == {
        "approve_plan": "waiting",
        "search_flights": "pending",
        "search_hotels": "pending",
        "summarize_options": "pending",
    }
    (waiting,) = execution["waiting_for"]
    assert waiting["step"] == "approve_plan" and QUERY in waiting["prompt"]
    assert stored(api, body["plan_id"])["status"] == "waiting_for_approval"

    approved = api.post(
        f"/api/v1/workflows/executions/{execution_id}/approvals/approve_plan",
        json={"approved": True, "user": REVIEWER},
    )
    assert approved.status_code == 200, approved.text

    def completed() -> dict[str, Any] | None:
        view = stored(api, body["plan_id"])
        return view if view["status"] == "completed" else None

    view = eventually(completed, timeout=120)
    assert "Hotels" in view["result"]


def test_a_rejected_confirm_plan_runs_nothing(api: httpx.Client) -> None:
    body = plan(api, execution_mode="confirm").json()
    execution_id = body["workflow_execution_id"]
    rejected = api.post(
        f"/api/v1/workflows/executions/{execution_id}/approvals/approve_plan",
        json={"approved": False, "comment": "too far", "user": REVIEWER},
    )
    assert rejected.status_code == 200, rejected.text
    execution = eventually(
        lambda: (
            (v := api.get(f"/api/v1/workflows/executions/{execution_id}").json())["status"] == "failed" and v
        )
    )
    assert {s["name"]: s["status"] for s in execution["steps"]} == {
        "approve_plan": "failed",
        "search_flights": "pending",
        "search_hotels": "pending",
        "summarize_options": "pending",
    }
    assert stored(api, body["plan_id"])["status"] == "failed"


def test_versions_of_an_unknown_plan_are_404(api: httpx.Client) -> None:
    assert error(api.get("/api/v1/plans/plan_nope/versions")) == (404, "PLAN_NOT_FOUND")
    assert error(api.post("/api/v1/plans/plan_nope/execute")) == (404, "PLAN_NOT_FOUND")
    assert error(api.post("/api/v1/plans/plan_nope/cancel")) == (404, "PLAN_NOT_FOUND")

"""The agents API through real HTTP against the real Serve app: the registry, the live agent actors (demo
MCP servers, offline LLM), and workflow steps that reach real systems through them."""

from __future__ import annotations

import sqlite3
import uuid
from typing import Any

import httpx
import pytest

from agents.actor import resolve_agent
from agents.registry import AgentConfig, ConnectorConfig, Registry
from orchestrator.core.errors import AgentUnavailable, NotFound
from tests.fixtures_server import ServerInfo, eventually

pytestmark = pytest.mark.ray

USER = {"id": 123, "email": "[email protected]", "role": "user"}

# The seed's GET /api/v1/agents answer, entry by entry.
SEED_AGENTS: list[dict[str, Any]] = [
    {
        "id": "amadeus-travel",
        "name": "Amadeus Travel Agent",
        "domain": "travel",
        "capabilities": ["search_flights", "search_hotels", "search_activities"],
        "connector_type": "amadeus",
        "enabled": True,
    },
    {
        "id": "salesforce-crm",
        "name": "Salesforce CRM Agent",
        "domain": "crm",
        "capabilities": ["query_contacts", "query_opportunities", "create_lead"],
        "connector_type": "salesforce",
        "enabled": True,
    },
    {
        "id": "llm-analyst",
        "name": "LLM Analysis Agent",
        "domain": "generic",
        "capabilities": ["analyze", "summarize", "recommend"],
        "connector_type": "llm",
        "enabled": True,
    },
]

SEED_VALIDATE: dict[str, Any] = {
    "id": "custom-agent",
    "name": "Custom Data Agent",
    "domain": "analytics",
    "connector_type": "postgres",
    "connector_config": {"name": "analytics-db"},
    "capabilities": ["query_metrics", "aggregate_data"],
}
SEED_WARNING = "Connector 'analytics-db' not found - agent will be unavailable until connector is configured"

HEALTH_STATUSES = {"healthy", "degraded", "unhealthy", "unknown"}


def execute(api: httpx.Client, *steps: dict[str, Any], name: str = "agents-wf") -> dict[str, Any]:
    body = {"workflow": {"metadata": {"name": name}, "spec": {"steps": list(steps)}}, "user": USER}
    response = api.post("/api/v1/workflows/execute", json=body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


# -- listing --------------------------------------------------------------------------------------------


def test_list_has_the_seed_agents(api: httpx.Client) -> None:
    response = api.get("/api/v1/agents")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["count"] == len(body["agents"])
    by_id = {agent["id"]: agent for agent in body["agents"]}
    for expected in SEED_AGENTS:
        listed = by_id[expected["id"]]
        assert {key: listed[key] for key in expected} == expected
        assert listed["health_status"] in HEALTH_STATUSES
    # the test session's own agent from the user agents directory is listed next to the shipped ones
    assert by_id["scripted-llm"]["domain"] == "testing"


def test_list_reports_live_health(api: httpx.Client) -> None:
    def travel_healthy() -> bool:
        agents = api.get("/api/v1/agents").json()["agents"]
        return next(a for a in agents if a["id"] == "amadeus-travel")["health_status"] == "healthy"

    eventually(travel_healthy, timeout=90, interval=0.5)


def test_list_filters_by_domain_and_enabled(api: httpx.Client) -> None:
    travel = api.get("/api/v1/agents", params={"domain": "travel"}).json()
    assert [a["id"] for a in travel["agents"]] == ["amadeus-travel"] and travel["count"] == 1

    enabled = api.get("/api/v1/agents", params={"enabled": "true"}).json()
    assert enabled["count"] >= 3 and all(a["enabled"] for a in enabled["agents"])
    assert {a["id"] for a in SEED_AGENTS} <= {a["id"] for a in enabled["agents"]}

    disabled = api.get("/api/v1/agents", params={"enabled": "false"}).json()
    assert all(not a["enabled"] for a in disabled["agents"])
    assert disabled["count"] == len(disabled["agents"])

    both = api.get("/api/v1/agents", params={"domain": "crm", "enabled": "false"}).json()
    assert both == {"agents": [], "count": 0}

    nowhere = api.get("/api/v1/agents", params={"domain": "no-such-domain"}).json()
    assert nowhere == {"agents": [], "count": 0}


def test_list_rejects_a_bad_filter(api: httpx.Client) -> None:
    response = api.get("/api/v1/agents", params={"enabled": "sometimes"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "INVALID_REQUEST"
    assert error["details"][0]["field"] == "query.enabled"


# -- by domain ------------------------------------------------------------------------------------------


def test_domain_matches_the_seed(api: httpx.Client) -> None:
    response = api.get("/api/v1/agents/domain/travel")
    assert response.status_code == 200, response.text
    assert response.json() == {
        "domain": "travel",
        "agents": [
            {
                "id": "amadeus-travel",
                "name": "Amadeus Travel Agent",
                "capabilities": ["search_flights", "search_hotels", "search_activities"],
                "enabled": True,
            }
        ],
        "count": 1,
    }
    crm = api.get("/api/v1/agents/domain/crm").json()
    assert [a["id"] for a in crm["agents"]] == ["salesforce-crm"]


def test_unknown_domain_is_an_empty_list(api: httpx.Client) -> None:
    response = api.get("/api/v1/agents/domain/astrology")
    assert response.status_code == 200
    assert response.json() == {"domain": "astrology", "agents": [], "count": 0}


# -- detail ---------------------------------------------------------------------------------------------


def test_detail_has_parameter_schemas_and_turns_healthy(api: httpx.Client) -> None:
    def healthy_detail() -> dict[str, Any] | None:
        response = api.get("/api/v1/agents/amadeus-travel")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body if body["health"]["status"] == "healthy" else None

    body = eventually(healthy_detail, timeout=90, interval=0.5)
    assert {key: body[key] for key in ("id", "name", "description", "domain", "connector_type")} == {
        "id": "amadeus-travel",
        "name": "Amadeus Travel Agent",
        "description": "Agent for searching flights, hotels, and activities via Amadeus GDS",
        "domain": "travel",
        "connector_type": "amadeus",
    }
    assert body["enabled"] is True

    capabilities = {c["name"]: c for c in body["capabilities"]}
    assert list(capabilities) == ["search_flights", "search_hotels", "search_activities"]
    flights = capabilities["search_flights"]
    assert flights["description"] == "Search for flights between airports"
    # the seed's schema, key for key; our schemas add descriptions, enums and defaults on top
    seed_flights = {
        "origin": {"type": "string", "required": True},
        "destination": {"type": "string", "required": True},
        "departure_date": {"type": "string", "required": True},
        "return_date": {"type": "string", "required": False},
    }
    for param, expected in seed_flights.items():
        assert {k: flights["parameters"][param][k] for k in expected} == expected
    assert flights["parameters"]["cabin"]["enum"] == ["economy", "premium_economy", "business", "first"]
    assert flights["parameters"]["cabin"]["default"] == "economy"
    seed_hotels = {"city", "check_in", "check_out"}
    hotels = capabilities["search_hotels"]["parameters"]
    assert {p for p, spec in hotels.items() if spec["required"]} == seed_hotels
    # optional schema keys are left out, not sent as null; bindings never leave the server
    assert "enum" not in flights["parameters"]["origin"]
    assert "default" not in flights["parameters"]["origin"]
    assert all(set(c) == {"name", "description", "parameters"} for c in body["capabilities"])

    health = body["health"]
    assert set(health) == {"status", "last_check", "latency_ms", "consecutive_failures", "last_error"}
    assert health["last_check"].endswith("Z")
    assert health["latency_ms"] >= 0
    assert health["consecutive_failures"] == 0 and health["last_error"] is None


def test_detail_of_the_llm_agent(api: httpx.Client) -> None:
    body = api.get("/api/v1/agents/llm-analyst").json()
    assert body["connector_type"] == "llm" and body["domain"] == "generic"
    assert [c["name"] for c in body["capabilities"]] == ["analyze", "summarize", "recommend"]
    assert body["health"]["status"] in HEALTH_STATUSES


def test_unknown_agent_is_404(api: httpx.Client) -> None:
    response = api.get("/api/v1/agents/no-such-agent")
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "AGENT_NOT_FOUND"
    assert "'no-such-agent'" in error["message"]


# -- validate -------------------------------------------------------------------------------------------


def test_validate_the_seed_example(api: httpx.Client) -> None:
    response = api.post("/api/v1/agents/validate", json=SEED_VALIDATE)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["valid"] is True
    assert body["agent"] == {"id": "custom-agent", "name": "Custom Data Agent", "domain": "analytics"}
    assert body["errors"] == []
    assert body["warnings"][0] == SEED_WARNING
    # bare capability names load, but their parameters cannot be checked: said, not hidden
    assert any("'query_metrics' has no parameter schema" in w for w in body["warnings"])
    # validating registers nothing
    assert api.get("/api/v1/agents/custom-agent").status_code == 404


def test_validate_reports_every_error_with_its_field(api: httpx.Client) -> None:
    config = {
        "id": "Bad Id",
        "name": "Broken",
        "connector_type": "carrier-pigeon",
        "capabilities": [
            {"name": "lookup", "parameters": {"q": {"type": "text", "required": "yes"}}},
            {"name": "lookup"},
        ],
    }
    response = api.post("/api/v1/agents/validate", json=config)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["valid"] is False
    assert body["agent"] == {"id": "Bad Id", "name": "Broken", "domain": None}
    fields = {error["field"] for error in body["errors"]}
    assert {
        "id",
        "domain",
        "connector_type",
        "capabilities[0].parameters.q.type",
        "capabilities[0].parameters.q.required",
        "capabilities[1].name",
    } <= fields
    unknown_type = next(e for e in body["errors"] if e["field"] == "connector_type")
    assert "'carrier-pigeon'" in unknown_type["message"]


def test_validate_warns_about_an_existing_id(api: httpx.Client) -> None:
    config = {
        "id": "amadeus-travel",
        "name": "My Travel Agent",
        "domain": "travel",
        "connector_type": "mcp",
        "connector": "amadeus-travel",
        "capabilities": [{"name": "search_flights", "parameters": {"origin": {"type": "string"}}}],
    }
    body = api.post("/api/v1/agents/validate", json=config).json()
    assert body["valid"] is True and body["errors"] == []
    assert any("'amadeus-travel' is already registered" in w for w in body["warnings"])
    assert not any("not found" in w for w in body["warnings"])  # its connector is configured


@pytest.mark.parametrize("payload", [[SEED_VALIDATE], "custom-agent", 42])
def test_validate_needs_a_json_object(api: httpx.Client, payload: Any) -> None:
    response = api.post("/api/v1/agents/validate", json=payload)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "INVALID_REQUEST"


def test_validate_rejects_broken_json(api: httpx.Client) -> None:
    response = api.post(
        "/api/v1/agents/validate", content=b'{"id": ', headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "INVALID_REQUEST"


def test_routes_are_in_the_openapi_document(api: httpx.Client) -> None:
    paths = api.get("/openapi.json").json()["paths"]
    for path in ("/api/v1/agents", "/api/v1/agents/domain/{domain}", "/api/v1/agents/{agent_id}"):
        assert "200" in paths[path]["get"]["responses"]
    assert "200" in paths["/api/v1/agents/validate"]["post"]["responses"]


# -- steps through agents -------------------------------------------------------------------------------


def _registry_with_disabled_agent() -> Registry:
    connector = ConnectorConfig(name="warehouse-db", type="sql", config={"url": "sqlite:///:memory:"})
    agents = {
        "warehouse": AgentConfig(
            id="warehouse", name="Warehouse", domain="ops", connector_type="sqlite", connector="warehouse-db"
        ),
        "archive": AgentConfig(
            id="archive", name="Archive", domain="ops", connector_type="sqlite", enabled=False
        ),
    }
    return Registry(agents=agents, connectors={"warehouse-db": connector})


def test_resolve_agent_by_id_connector_disabled_and_unknown() -> None:
    """What a step's ``connector`` resolves to; the step runner raises exactly these errors."""
    registry = _registry_with_disabled_agent()
    assert resolve_agent(registry, "warehouse").id == "warehouse"
    assert resolve_agent(registry, "warehouse-db").id == "warehouse"  # a connector name finds its agent

    with pytest.raises(AgentUnavailable) as disabled:
        resolve_agent(registry, "archive")
    assert disabled.value.code == "AGENT_UNAVAILABLE"
    assert disabled.value.retryable is False  # waiting will not enable it
    assert disabled.value.message == "agent 'archive' is disabled"

    with pytest.raises(NotFound) as unknown:
        resolve_agent(registry, "nowhere")
    assert unknown.value.code == "AGENT_NOT_FOUND"
    assert "'nowhere'" in unknown.value.message


def test_step_against_an_unknown_agent_fails_clearly(api: httpx.Client) -> None:
    body = execute(
        api,
        {
            "name": "lookup",
            "type": "mcp_query",
            "connector": "no-such-agent",
            "statement": "anything",
            "parameters": {},
        },
    )
    assert body["status"] == "failed"
    step = body["steps"][0]
    assert step["status"] == "failed"
    assert step["error"] == "unknown agent or connector 'no-such-agent'"
    assert step["attempts"] == 1  # a wrong name is not retried
    assert "no-such-agent" in (body["error"] or "")


def test_step_with_a_missing_required_parameter_fails_clearly(api: httpx.Client) -> None:
    body = execute(
        api,
        {
            "name": "flights",
            "type": "mcp_query",
            "connector": "amadeus-travel",
            "statement": "search_flights",
            "parameters": {"origin": "SFO", "departure_date": "2025-06-01"},
        },
    )
    assert body["status"] == "failed"
    assert "missing required parameter 'destination'" in body["steps"][0]["error"]


def test_create_lead_persists_for_a_later_query(api: httpx.Client, server: ServerInfo) -> None:
    email = f"ada.{uuid.uuid4().hex[:10]}@engines.example"
    lead = {"first_name": "Ada", "last_name": "Lovelace", "email": email, "company": "Analytical Engines"}
    created = execute(
        api,
        {
            "name": "create_lead",
            "type": "mcp_execute",
            "connector": "salesforce-crm",
            "statement": "create_lead",
            "parameters": lead,
        },
        {
            "name": "find_lead",
            "type": "mcp_query",
            "connector": "salesforce-crm",
            "statement": "query_contacts",
            "parameters": {"email": "{{ steps.create_lead.output.lead.email }}"},
            "depends_on": ["create_lead"],
        },
        name="crm-create-lead",
    )
    assert created["status"] == "completed", created
    outputs = {step["name"]: step["output"] for step in created["steps"]}
    assert outputs["create_lead"]["created"] is True
    lead_id = outputs["create_lead"]["lead"]["id"]
    assert outputs["create_lead"]["lead"]["status"] == "lead"
    assert [c["id"] for c in outputs["find_lead"]["contacts"]] == [lead_id]

    # a later, separate execution sees it too: the row is in the CRM's database, not in a session
    later = execute(
        api,
        {
            "name": "contacts",
            "type": "mcp_query",
            "connector": "salesforce-crm",
            "statement": "query_contacts",
            "parameters": {"company": "Analytical Engines", "status": "lead"},
        },
        name="crm-query",
    )
    assert later["status"] == "completed", later
    found = later["steps"][0]["output"]["contacts"]
    assert any(c["id"] == lead_id and c["email"] == email for c in found)

    with sqlite3.connect(f"file:{server.data_dir / 'crm.db'}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT first_name, company FROM contacts WHERE email = ?", (email,)).fetchall()
    assert rows == [("Ada", "Analytical Engines")]

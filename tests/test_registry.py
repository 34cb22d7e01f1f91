"""The agent registry: shipped configuration, overrides, placeholders and ``POST /api/v1/agents/validate``."""

from __future__ import annotations

import copy
import importlib.util
import textwrap
from pathlib import Path
from typing import Any

import pytest

from agents.connectors.http import HTTPConnector
from agents.connectors.llm import LLMConnector
from agents.connectors.sql import SQLConnector
from agents.llm.base import LLMProvider, LLMRequest, LLMResult
from agents.registry import (
    AgentConfig,
    AgentConfigError,
    ConnectorConfig,
    Registry,
    expand_placeholders,
    load_registry,
    make_connector,
    validate_agent_config,
)
from orchestrator.core.errors import NotFound

SEED_VALIDATE_REQUEST: dict[str, Any] = {
    "id": "custom-agent",
    "name": "Custom Data Agent",
    "domain": "analytics",
    "connector_type": "postgres",
    "connector_config": {"name": "analytics-db"},
    "capabilities": ["query_metrics", "aggregate_data"],
}
SEED_WARNING = "Connector 'analytics-db' not found - agent will be unavailable until connector is configured"


@pytest.fixture
def shipped(tmp_path: Path) -> Registry:
    return load_registry([], data_dir=tmp_path)


def write(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(textwrap.dedent(text))
    return path


# -- shipped configuration ----------------------------------------------------------------------------------


def test_shipped_agents_match_the_seed(shipped: Registry) -> None:
    listed = [
        (a.id, a.name, a.domain, a.capability_names, a.connector_type, a.enabled)
        for a in shipped.agents.values()
    ]
    assert listed[:3] == [
        (
            "amadeus-travel",
            "Amadeus Travel Agent",
            "travel",
            ["search_flights", "search_hotels", "search_activities"],
            "amadeus",
            True,
        ),
        (
            "salesforce-crm",
            "Salesforce CRM Agent",
            "crm",
            ["query_contacts", "query_opportunities", "create_lead"],
            "salesforce",
            True,
        ),
        ("llm-analyst", "LLM Analysis Agent", "generic", ["analyze", "summarize", "recommend"], "llm", True),
    ]
    assert "projects-db" in shipped.agents
    assert shipped.warnings == []


def test_shipped_capability_schemas_contain_the_seed_details(shipped: Registry) -> None:
    travel = shipped.get("amadeus-travel")
    assert travel.description == "Agent for searching flights, hotels, and activities via Amadeus GDS"
    flights = travel.capability("search_flights")
    hotels = travel.capability("search_hotels")
    assert flights is not None and hotels is not None
    assert flights.description == "Search for flights between airports"
    assert hotels.description == "Search for hotels in a city"
    seed_flights = {"origin": True, "destination": True, "departure_date": True, "return_date": False}
    seed_hotels = {"city": True, "check_in": True, "check_out": True}
    for capability, seed in ((flights, seed_flights), (hotels, seed_hotels)):
        for param, required in seed.items():
            spec = capability.parameters[param]
            assert (spec.type, spec.required) == ("string", required)
    # the optional parameters the planner fills from a query ("under $1000", "4-star", "near the Eiffel Tower")
    assert flights.parameters["max_price"].type == "number"
    assert flights.parameters["airline_alliance"].enum == ["SkyTeam", "Star Alliance", "oneworld"]
    assert {"star_rating", "landmark"} <= set(hotels.parameters)


def test_every_shipped_agent_has_its_connector(shipped: Registry, tmp_path: Path) -> None:
    types = {agent.id: shipped.connector_for(agent) for agent in shipped.agents.values()}
    assert {k: (v.type if v else None) for k, v in types.items()} == {
        "amadeus-travel": "mcp",
        "salesforce-crm": "mcp",
        "llm-analyst": "llm",
        "projects-db": "sql",
    }
    data_dir = str(tmp_path.resolve())
    assert shipped.connectors["salesforce-crm"].config["args"] == [
        "-m",
        "agents.demo.crm_server",
        "--db",
        f"{data_dir}/crm.db",
    ]
    assert shipped.connectors["projects-db"].config["url"] == f"sqlite:///{data_dir}/projects.db"


def test_shipped_prompts_are_templates(shipped: Registry) -> None:
    analyst = shipped.get("llm-analyst")
    assert all("prompt" in c.binding for c in analyst.capabilities)


def test_lookups(shipped: Registry) -> None:
    assert [a.id for a in shipped.by_domain("travel")] == ["amadeus-travel"]
    assert shipped.by_domain("healthcare") == []
    with pytest.raises(NotFound) as info:
        shipped.get("nope")
    assert (info.value.code, info.value.status) == ("AGENT_NOT_FOUND", 404)
    assert shipped.connector_for("projects-db") == shipped.connectors["projects-db"]


# -- user directories -----------------------------------------------------------------------------------------


def test_user_directories_override_and_extend(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    write(
        first,
        "travel.yaml",
        """
        agents:
          - id: amadeus-travel
            name: Overridden Travel
            domain: travel
            connector_type: amadeus
            capabilities: [search_flights]
        """,
    )
    write(
        second,
        "more.yml",
        """
        connectors:
          - {name: metrics, type: http, config: {base_url: "https://metrics.example"}}
        agents:
          - id: amadeus-travel
            name: Final Travel
            domain: travel
            connector_type: amadeus
          - id: metrics-api
            name: Metrics API
            domain: analytics
            connector_type: rest
            connector: metrics
            enabled: false
            health_check: {interval: 2, failure_threshold: 1}
        """,
    )
    registry = load_registry([first, second], data_dir=tmp_path)
    assert registry.get("amadeus-travel").name == "Final Travel"
    metrics = registry.get("metrics-api")
    assert (metrics.enabled, metrics.health_check.interval, metrics.health_check.timeout) == (False, 2, 5)
    assert registry.connector_for(metrics) == ConnectorConfig(
        name="metrics", type="http", config={"base_url": "https://metrics.example"}
    )


def test_inline_connector_config_becomes_a_connector(tmp_path: Path) -> None:
    write(
        tmp_path / "agents",
        "db.yaml",
        """
        agents:
          - id: warehouse
            name: Warehouse
            domain: analytics
            connector_type: postgres
            connector_config: {name: warehouse-db, url: "postgresql://${DB_USER}@db/wh"}
        """,
    )
    registry = load_registry([tmp_path / "agents"], data_dir=tmp_path, environ={"DB_USER": "reader"})
    agent = registry.get("warehouse")
    assert agent.connector == "warehouse-db"
    assert registry.connector_for(agent) == ConnectorConfig(
        name="warehouse-db", type="sql", config={"url": "postgresql://reader@db/wh"}
    )


def test_placeholders_expand_and_missing_variables_warn(tmp_path: Path) -> None:
    write(
        tmp_path / "agents",
        "api.yaml",
        """
        connectors:
          - name: api
            type: http
            config:
              base_url: "https://api.example/${API_VERSION}"
              headers: {Authorization: "Bearer ${API_TOKEN}", X-Data: "${data_dir}/x"}
              retries: 3
        """,
    )
    registry = load_registry([tmp_path / "agents"], data_dir=tmp_path / "data", environ={"API_VERSION": "v2"})
    config = registry.connectors["api"].config
    assert config["base_url"] == "https://api.example/v2"
    assert config["headers"] == {"Authorization": "Bearer ", "X-Data": f"{(tmp_path / 'data').resolve()}/x"}
    assert config["retries"] == 3
    assert registry.warnings == ["environment variable 'API_TOKEN' is not set (used in connector 'api')"]


def test_expand_placeholders_leaves_other_text_alone(tmp_path: Path) -> None:
    value = {"a": ["$HOME", "${X}${X}", "{{ not_a_placeholder }}"]}
    assert expand_placeholders(value, data_dir=tmp_path, environ={"X": "1"}) == {
        "a": ["$HOME", "11", "{{ not_a_placeholder }}"]
    }


def test_missing_connector_is_a_load_warning(tmp_path: Path) -> None:
    write(
        tmp_path / "agents",
        "x.yaml",
        "agents: [{id: lonely, name: Lonely, domain: misc, connector_type: mcp}]\n",
    )
    registry = load_registry([tmp_path / "agents"], data_dir=tmp_path, include_shipped=False)
    assert registry.connector_for("lonely") is None
    assert registry.warnings == [
        "Connector 'lonely' not found - agent will be unavailable until connector is configured (agent 'lonely')"
    ]


def test_bare_capabilities_in_files_warn(tmp_path: Path) -> None:
    write(
        tmp_path / "agents",
        "x.yaml",
        """
        connectors: [{name: c, type: llm}]
        agents: [{id: bare, name: Bare, domain: misc, connector_type: llm, connector: c, capabilities: [ask]}]
        """,
    )
    registry = load_registry([tmp_path / "agents"], data_dir=tmp_path, include_shipped=False)
    assert registry.get("bare").capability_names == ["ask"]
    assert registry.warnings == [
        "Capability 'ask' has no parameter schema - parameters will not be checked (agent 'bare')"
    ]


def test_missing_user_directory_is_a_warning(tmp_path: Path) -> None:
    registry = load_registry([tmp_path / "absent"], data_dir=tmp_path)
    assert len(registry.warnings) == 1 and "does not exist" in registry.warnings[0]


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("agents: [{id: Bad Id, name: X, domain: d, connector_type: mcp}]\n", "agents[0].id"),
        ("agents: [{id: x, name: X, domain: d, connector_type: telepathy}]\n", "agents[0].connector_type"),
        ("connectors: [{name: c, type: ftp}]\n", "connectors[0].type"),
        ("agents: [{id: x, name: X, domain: d, connector_type: mcp, colour: red}]\n", "agents[0].colour"),
    ],
)
def test_invalid_files_fail_loudly_with_a_field(tmp_path: Path, text: str, field: str) -> None:
    path = write(tmp_path / "agents", "bad.yaml", text)
    with pytest.raises(AgentConfigError) as info:
        load_registry([tmp_path / "agents"], data_dir=tmp_path)
    assert str(path) in info.value.message
    assert field in [d["field"] for d in info.value.details]


def test_unparseable_yaml(tmp_path: Path) -> None:
    write(tmp_path / "agents", "broken.yaml", "agents: [unclosed\n")
    with pytest.raises(AgentConfigError, match=r"broken\.yaml"):
        load_registry([tmp_path / "agents"], data_dir=tmp_path)


# -- validate ---------------------------------------------------------------------------------------------------


def test_validate_seed_example(shipped: Registry) -> None:
    result = validate_agent_config(copy.deepcopy(SEED_VALIDATE_REQUEST), shipped)
    assert result["valid"] is True
    assert result["agent"] == {"id": "custom-agent", "name": "Custom Data Agent", "domain": "analytics"}
    assert result["errors"] == []
    assert result["warnings"][0] == SEED_WARNING
    # bare capability names load, but nothing checks their parameters: said as a warning
    assert result["warnings"][1:] == [
        "Capability 'query_metrics' has no parameter schema - parameters will not be checked",
        "Capability 'aggregate_data' has no parameter schema - parameters will not be checked",
    ]


def test_validate_with_a_configured_connector_and_schemas(shipped: Registry) -> None:
    config = {
        "id": "project-reader",
        "name": "Project Reader",
        "domain": "projects",
        "connector_type": "sqlite",
        "connector": "projects-db",
        "capabilities": [
            {"name": "get_project", "parameters": {"project_id": {"type": "string", "required": True}}}
        ],
    }
    assert validate_agent_config(config, shipped) == {
        "valid": True,
        "agent": {"id": "project-reader", "name": "Project Reader", "domain": "projects"},
        "errors": [],
        "warnings": [],
    }


def test_validate_warns_about_an_existing_id(shipped: Registry) -> None:
    config = {**SEED_VALIDATE_REQUEST, "id": "amadeus-travel"}
    warnings = validate_agent_config(config, shipped)["warnings"]
    assert "Agent 'amadeus-travel' is already registered - this configuration would replace it" in warnings


def error_fields(raw: Any, registry: Registry) -> list[str]:
    result = validate_agent_config(raw, registry)
    assert result["valid"] is False
    return [e["field"] for e in result["errors"]]


def with_capabilities(*capabilities: Any) -> dict[str, Any]:
    return {**SEED_VALIDATE_REQUEST, "capabilities": list(capabilities)}


@pytest.mark.parametrize(
    ("change", "fields"),
    [
        ({"id": None}, ["id"]),
        ({"name": ""}, ["name"]),
        ({"domain": 7}, ["domain"]),
        ({"connector_type": None}, ["connector_type"]),
        ({"id": "Custom Agent"}, ["id"]),
        ({"id": "-leading-dash"}, ["id"]),
        ({"connector_type": "carrier-pigeon"}, ["connector_type"]),
        ({"enabled": "yes"}, ["enabled"]),
        ({"connector_config": "analytics-db"}, ["connector_config"]),
        ({"health_check": {"interval": 0, "retries": 2}}, ["health_check.interval", "health_check.retries"]),
        ({"capabilities": "query_metrics"}, ["capabilities"]),
        ({"surprise": True}, ["surprise"]),
        ({"connector": "other-db"}, ["connector"]),
    ],
)
def test_validate_field_errors(shipped: Registry, change: dict[str, Any], fields: list[str]) -> None:
    raw = {**SEED_VALIDATE_REQUEST, **change}
    raw = {k: v for k, v in raw.items() if not (k in change and v is None)}
    assert error_fields(raw, shipped) == fields


def test_validate_reports_every_missing_field_at_once(shipped: Registry) -> None:
    result = validate_agent_config({}, shipped)
    assert result["agent"] == {}
    assert [e["field"] for e in result["errors"]] == ["id", "name", "domain", "connector_type"]
    assert result["errors"][0]["message"] == "'id' is required"


def test_validate_unknown_connector_type_names_the_known_ones(shipped: Registry) -> None:
    result = validate_agent_config({**SEED_VALIDATE_REQUEST, "connector_type": "ftp"}, shipped)
    message = result["errors"][0]["message"]
    assert message.startswith("unknown connector type 'ftp' (known: ")
    assert "postgres" in message and "mcp" in message


@pytest.mark.parametrize(
    ("capabilities", "fields"),
    [
        (
            ["a", {"name": "city", "parameters": {"city": {"type": "str"}}}],
            ["capabilities[1].parameters.city.type"],
        ),
        (
            [{"name": "a", "parameters": {"x": {"type": "string", "required": "yes"}}}],
            ["capabilities[0].parameters.x.required"],
        ),
        ([{"name": "a", "parameters": {"x": {"enum": "red,green"}}}], ["capabilities[0].parameters.x.enum"]),
        ([{"name": "a", "parameters": {"x": "string"}}], ["capabilities[0].parameters.x"]),
        ([{"name": "a", "parameters": ["x"]}], ["capabilities[0].parameters"]),
        (
            [{"name": "a", "parameters": {"x": {"type": "string", "min": 1}}}],
            ["capabilities[0].parameters.x.min"],
        ),
        (["a", {"name": "a", "parameters": {}}], ["capabilities[1].name"]),
        ([{"description": "nameless"}], ["capabilities[0].name"]),
        ([42], ["capabilities[0]"]),
        ([{"name": "a", "binding": {"prompt": "{% if x %}unclosed"}}], ["capabilities[0].binding.prompt"]),
    ],
)
def test_validate_capability_errors(shipped: Registry, capabilities: list[Any], fields: list[str]) -> None:
    assert error_fields(with_capabilities(*capabilities), shipped) == fields


def test_validate_duplicate_message(shipped: Registry) -> None:
    result = validate_agent_config(with_capabilities("a", "b", "a"), shipped)
    assert result["errors"] == [
        {"field": "capabilities[2].name", "message": "duplicate capability 'a' (also capabilities[0])"}
    ]


def test_validate_non_object(shipped: Registry) -> None:
    result = validate_agent_config(["not", "an", "object"], shipped)
    assert result == {
        "valid": False,
        "agent": {},
        "errors": [{"field": "", "message": "agent configuration must be an object"}],
        "warnings": [],
    }


def test_valid_configurations_load_as_agent_config(shipped: Registry) -> None:
    raw = with_capabilities(
        "query_metrics", {"name": "aggregate_data", "parameters": {"by": {"type": "string"}}}
    )
    assert validate_agent_config(raw, shipped)["valid"]
    agent = AgentConfig.model_validate(raw)
    assert agent.connector == "analytics-db"
    assert agent.capability_names == ["query_metrics", "aggregate_data"]


# -- connectors -------------------------------------------------------------------------------------------------


class EchoProvider(LLMProvider):
    name = "echo"

    async def complete(self, request: LLMRequest) -> LLMResult:
        return LLMResult(output=request.prompt, model="echo", provider=self.name)


def test_make_connector_dispatches_on_type(shipped: Registry) -> None:
    sql = make_connector(shipped.connectors["projects-db"])
    http = make_connector(ConnectorConfig(name="api", type="http", config={"base_url": "http://127.0.0.1:1"}))
    llm = make_connector(shipped.connectors["llm"], llm_provider_factory=EchoProvider)
    assert (type(sql), type(http), type(llm)) == (SQLConnector, HTTPConnector, LLMConnector)
    assert sql.name == "projects-db"


@pytest.mark.skipif(
    importlib.util.find_spec("agents.connectors.mcp") is None, reason="MCP connector not present"
)
def test_make_connector_mcp(shipped: Registry) -> None:
    connector = make_connector(shipped.connectors["amadeus-travel"])
    assert type(connector).__name__ == "MCPConnector"


async def test_llm_capability_renders_its_prompt(shipped: Registry) -> None:
    from agents.connectors.base import CallContext

    connector = make_connector(shipped.connectors["llm"], llm_provider_factory=EchoProvider)
    summarize = shipped.get("llm-analyst").capability("summarize")
    assert summarize is not None
    output = await connector.call(
        summarize,
        {"data": {"flights": [{"price": 850}]}, "max_words": 40},
        mode="query",
        context=CallContext(),
    )
    assert output.startswith("Summarise the following in at most 40 words.")
    assert '"price": 850' in output
    await connector.probe()
    await connector.close()


async def test_llm_prompts_are_sandboxed() -> None:
    from agents.connectors.base import CallContext, CapabilitySpec, ConnectorCallError

    connector = LLMConnector("llm", {}, provider=EchoProvider())
    escape = CapabilitySpec(
        name="escape", binding={"prompt": "{{ ''.__class__.__mro__[1].__subclasses__() }}"}
    )
    with pytest.raises(ConnectorCallError, match="does not render") as info:
        await connector.call(escape, {}, mode="query", context=CallContext())
    assert info.value.retryable is False

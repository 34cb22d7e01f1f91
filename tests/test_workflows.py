"""The workflow registry without Ray: parsing EAI definitions, input checks, registration rules, loading
files, and the shipped workflows run through the pure core against the real demo data.

The shipped ``analyze_project`` is driven by ``decide`` with its connector step answered by the
``get_project`` statement of the shipped agent config over a freshly seeded demo database, and its
``ai_chat`` step by the offline provider: everything but Ray and the actor plumbing is the real thing.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from agents.demo.projects_db import seed
from agents.llm.base import LLMRequest
from agents.llm.offline import OfflineProvider
from orchestrator.config import Settings
from orchestrator.core.decide import RunStep, Start, StepSucceeded, decide
from orchestrator.core.errors import Conflict, InvalidRequest, InvalidWorkflow
from orchestrator.core.state import ExecutionState
from orchestrator.core.workflow_documents import WorkflowDocument, parse_definition, validate_input
from orchestrator.server import workflow_registry
from orchestrator.server.workflow_registry import SHIPPED_DIR, load_workflow_files, register
from orchestrator.store import EventStore, open_store

ROOT = Path(__file__).resolve().parents[1]
NOW = datetime(2026, 3, 11, 14, 0, tzinfo=UTC)


def shipped(name: str) -> WorkflowDocument:
    return parse_definition(yaml.safe_load((SHIPPED_DIR / name).read_text()))


def minimal(**fields: Any) -> dict[str, Any]:
    return {
        "id": "wf",
        "version": "1.0.0",
        "steps": [{"id": "a", "type": "transform", "value": 1}],
        **fields,
    }


def fields_of(exc: pytest.ExceptionInfo[Any]) -> dict[str, str]:
    return {detail["field"]: detail["message"] for detail in exc.value.details}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EventStore]:
    opened = open_store(f"sqlite:///{tmp_path / 'orch.db'}")
    yield opened
    opened.close()


# ------------------------------------------------------------------------------------------ shipped


def test_shipped_analyze_project_matches_the_seed() -> None:
    definition = shipped("analyze_project.yaml")
    assert (definition.id, definition.name, definition.version) == (
        "analyze_project",
        "Project Analysis",
        "1.0.0",
    )
    assert definition.document["description"] == "Comprehensive project analysis with AI"
    steps = definition.workflow.by_name
    assert steps["fetch_project"].title == "Fetch Project Data"
    assert steps["fetch_project"].type == "resource_query"
    # the EAI spelling (resource, query) lands on the engine's connector fields
    assert (steps["fetch_project"].connector, steps["fetch_project"].statement) == (
        "projects-db",
        "get_project",
    )
    assert steps["fetch_project"].parameters == {"project_id": "{{ input.projectId }}"}
    assert steps["analyze"].title == "AI Analysis" and steps["analyze"].type == "ai_chat"
    schema = steps["analyze"].output_schema
    assert schema is not None and set(schema["required"]) == {"analysis", "risks", "recommendations"}
    assert set(definition.workflow.output or {}) == {"analysis", "risks", "recommendations"}
    assert definition.workflow.input_schema is not None
    assert definition.workflow.input_schema["required"] == ["projectId"]
    # the engine files a registered workflow's executions under its id
    assert definition.workflow.name == definition.workflow.id == "analyze_project"


def test_shipped_travel_booking_is_the_seed_with_input_defaults() -> None:
    definition = shipped("travel-booking.yaml")
    assert definition.id == "travel-booking"
    assert [step.name for step in definition.workflow.steps] == [
        "search_flights",
        "search_hotels",
        "summarize",
    ]
    commands = _start(definition, {})
    assert commands["search_flights"].request["parameters"] == {
        "origin": "SFO",
        "destination": "CDG",
        "departure_date": "2025-06-01",
    }
    assert commands["search_hotels"].request["parameters"] == {
        "city": "Paris",
        "check_in": "2025-06-01",
        "check_out": "2025-06-07",
    }
    changed = _start(definition, {"origin": "JFK", "city": "Lyon", "returnDate": "2025-06-09"})
    assert changed["search_flights"].request["parameters"]["origin"] == "JFK"
    assert changed["search_hotels"].request["parameters"] == {
        "city": "Lyon",
        "check_in": "2025-06-01",
        "check_out": "2025-06-09",
    }


def _start(definition: WorkflowDocument, value: dict[str, Any]) -> dict[str, RunStep]:
    decision = decide(ExecutionState("x"), Start(now=NOW, workflow=definition.workflow, input=value))
    return {c.step: c for c in decision.commands if isinstance(c, RunStep)}


def test_every_shipped_file_parses() -> None:
    files = sorted(p.name for p in SHIPPED_DIR.iterdir() if p.suffix in (".yaml", ".yml", ".json"))
    assert {"analyze_project.yaml", "travel-booking.yaml"} <= set(files)
    for name in files:
        shipped(name)


# ------------------------------------------------------------------------------------------ analyze_project


@pytest.fixture(scope="module")
def projects_db() -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(":memory:")
    conn.row_factory = sqlite3.Row
    seed(conn)
    yield conn
    conn.close()


def _get_project_sql() -> str:
    config = yaml.safe_load((ROOT / "agents" / "config" / "default.yaml").read_text())
    (connector,) = [c for c in config["connectors"] if c["name"] == "projects-db"]
    return str(connector["config"]["statements"]["get_project"]["sql"])


def analyze(conn: sqlite3.Connection, value: dict[str, Any]) -> ExecutionState:
    """Run analyze_project through decide: the connector step against the demo database with the
    shipped statement, the ai_chat step through the offline provider."""
    definition = shipped("analyze_project.yaml")
    sql = _get_project_sql()
    decision = decide(ExecutionState("x"), Start(now=NOW, workflow=definition.workflow, input=value))
    for _ in range(10):
        commands = [c for c in decision.commands if isinstance(c, RunStep)]
        if not commands:
            break
        (command,) = commands  # the workflow is a chain
        if command.kind == "connector":
            assert command.request["connector"] == "projects-db"
            row = conn.execute(sql, command.request["parameters"]).fetchone()
            output: Any = dict(row)
        else:
            request = LLMRequest(**command.request, context=command.context, input=value)
            output = asyncio.run(OfflineProvider().complete(request)).output
        decision = decide(
            decision.state, StepSucceeded(now=NOW, step=command.step, attempt=command.attempt, output=output)
        )
    return decision.state


def test_over_budget_and_late_project_gets_those_risks(projects_db: sqlite3.Connection) -> None:
    state = analyze(projects_db, {"projectId": "proj_123", "analysisType": "comprehensive"})
    assert state.status == "completed", state.error
    output = state.output
    assert set(output) == {"analysis", "risks", "recommendations"}
    risks = output["risks"]
    assert [risk.split(":")[0] for risk in risks] == ["Budget overrun", "Timeline delay"]
    assert "82% of the budget spent at 55% progress" in risks[0]  # 410,000 of 500,000 at 55%
    assert "Data migration dry run" in risks[1]  # the overdue milestone, by name
    assert len(output["recommendations"]) == 2
    assert output["recommendations"][0].startswith("Re-forecast the budget")
    assert output["recommendations"][1].startswith("Review the schedule")
    analysis = output["analysis"]
    assert "Apollo Platform Migration" in analysis and "410,000 of 500,000" in analysis
    assert "At risk: budget overrun, overdue milestones" in analysis


def test_healthy_project_gets_no_risks(projects_db: sqlite3.Connection) -> None:
    output = analyze(projects_db, {"projectId": "proj_124"}).output
    assert output["risks"] == []
    assert output["recommendations"] == [
        "Keep the current plan and track the next milestone, Beta launch, due "
        + str(projects_db.execute("SELECT due_date FROM milestones WHERE name = 'Beta launch'").fetchone()[0])
    ]
    assert "On track" in output["analysis"]


@pytest.mark.parametrize(
    ("project", "expected"),
    [
        ("proj_125", ["Timeline delay", "Schedule pressure"]),  # two milestones overdue, 70% left in 45 days
        ("proj_126", ["Budget overrun"]),  # spent 168,000 of 150,000
        ("proj_127", ["Budget overrun", "Stalled"]),  # on hold, spend ahead of progress
        ("proj_128", []),  # completed within budget
    ],
)
def test_each_demo_project_gets_its_own_risks(
    projects_db: sqlite3.Connection, project: str, expected: list[str]
) -> None:
    state = analyze(projects_db, {"projectId": project})
    assert state.status == "completed", state.error
    assert [risk.split(":")[0] for risk in state.output["risks"]] == expected
    assert state.output["recommendations"]  # always something to do, even if it is closing out


def test_analysis_type_narrows_the_risks(projects_db: sqlite3.Connection) -> None:
    budget = analyze(projects_db, {"projectId": "proj_123", "analysisType": "budget"}).output
    assert [risk.split(":")[0] for risk in budget["risks"]] == ["Budget overrun"]
    schedule = analyze(projects_db, {"projectId": "proj_123", "analysisType": "schedule"}).output
    assert [risk.split(":")[0] for risk in schedule["risks"]] == ["Timeline delay"]
    assert budget["analysis"].startswith("Here is what I found for: Budget analysis of project")


# ------------------------------------------------------------------------------------------ parsing


def test_path_id_fills_a_missing_id_and_must_match_a_given_one() -> None:
    document = minimal()
    del document["id"]
    definition = parse_definition(document, workflow_id="from-path")
    assert definition.id == "from-path" and next(iter(definition.document)) == "id"
    with pytest.raises(InvalidWorkflow) as exc:
        parse_definition(minimal(id="other"), workflow_id="from-path")
    assert "does not match" in fields_of(exc)["id"]
    with pytest.raises(InvalidWorkflow) as exc:
        parse_definition({"version": "1.0.0", "steps": [{"id": "a", "type": "wait", "duration": 1}]})
    assert "id" in fields_of(exc)


@pytest.mark.parametrize(
    "version", ["1.0.0", "0.1.0", "10.20.30", "1.0.0-rc.1", "1.0.0+build.5", "2.0.0-alpha"]
)
def test_semantic_versions_are_accepted(version: str) -> None:
    assert parse_definition(minimal(version=version)).version == version


@pytest.mark.parametrize("version", ["1.0", "1", "01.0.0", "v1.0.0", "1.0.0-", "latest", ""])
def test_other_versions_are_refused(version: str) -> None:
    with pytest.raises(InvalidWorkflow) as exc:
        parse_definition(minimal(version=version))
    assert "semantic version" in fields_of(exc)["version"]


def test_unquoted_yaml_version_and_missing_version() -> None:
    with pytest.raises(InvalidWorkflow) as exc:
        parse_definition(yaml.safe_load("id: wf\nversion: 1.0\nsteps: [{id: a, type: transform, value: 1}]"))
    assert "quote it in YAML" in fields_of(exc)["version"]
    document = minimal()
    del document["version"]
    with pytest.raises(InvalidWorkflow) as exc:
        parse_definition(document)
    assert "is required" in fields_of(exc)["version"]


def test_every_problem_is_reported_with_a_path_in_the_document() -> None:
    with pytest.raises(InvalidWorkflow) as exc:
        parse_definition(
            {
                "id": "bad id",
                "version": "1.0.0",
                "name": "",
                "labels": ["x"],
                "input_schema": {"type": "array"},
                "steps": [
                    {"id": "a", "type": "teleport"},
                    {"id": "b", "type": "transform", "value": "{{ steps.zz.output }}", "depends_on": ["q"]},
                    {"id": "c", "type": "ai_chat"},
                    {"id": "d", "type": "resource_query", "resource": "projects-db"},
                ],
            }
        )
    fields = fields_of(exc)
    assert exc.value.code == "INVALID_WORKFLOW"
    assert {
        "id",
        "name",
        "labels",
        "input_schema.type",
        "steps[0].type",
        "steps[1].depends_on[0]",
        "steps[1].value",
        "steps[2].prompt",
        "steps[3].statement",
    } <= set(fields)
    assert "unknown field 'labels'" in fields["labels"]


def test_step_names_are_display_names_and_ids_are_keys() -> None:
    definition = parse_definition(
        minimal(
            steps=[
                {"id": "a", "name": "First", "type": "transform", "value": 1},
                {"id": "b", "type": "transform", "value": "{{ steps.a.output }}", "depends_on": ["a"]},
            ]
        )
    )
    assert [(s.name, s.title) for s in definition.workflow.steps] == [("a", "First"), ("b", None)]


def test_yaml_dates_become_strings() -> None:
    raw = yaml.safe_load(
        "id: wf\nversion: '1.0.0'\nsteps:\n  - id: a\n    type: transform\n    value: {day: 2025-06-01}\n"
    )
    definition = parse_definition(raw)
    assert definition.document["steps"][0]["value"] == {"day": "2025-06-01"}


def test_not_an_object() -> None:
    with pytest.raises(InvalidWorkflow):
        parse_definition(["id", "wf"])


# ------------------------------------------------------------------------------------------ input


def test_input_is_checked_against_the_input_schema() -> None:
    workflow = shipped("analyze_project.yaml").workflow
    validate_input(workflow, {"projectId": "proj_123", "analysisType": "comprehensive"})
    validate_input(workflow, {"projectId": "proj_123", "extra": True})
    with pytest.raises(InvalidRequest) as exc:
        validate_input(workflow, {"analysisType": "sideways"})
    assert exc.value.code == "INVALID_INPUT" and exc.value.status == 400
    fields = fields_of(exc)
    assert fields["input.projectId"] == "is required"
    assert "sideways" in fields["input.analysisType"]
    validate_input(parse_definition(minimal()).workflow, {"anything": 1})  # no schema, no check


# ------------------------------------------------------------------------------------------ registry


def test_register_is_idempotent_and_versions_are_immutable(store: EventStore) -> None:
    first = parse_definition(minimal(name="One"))
    assert register(store, first) is True
    assert register(store, parse_definition(minimal(name="One"))) is False
    with pytest.raises(Conflict) as exc:
        register(store, parse_definition(minimal(name="Changed")))
    assert exc.value.code == "VERSION_EXISTS" and exc.value.status == 409
    assert register(store, parse_definition(minimal(name="Newer", version="1.10.0"))) is True
    assert register(store, parse_definition(minimal(name="Older", version="1.9.0"))) is True
    latest = store.get_workflow("wf")
    assert latest is not None and latest.version == "1.10.0"  # by semantic version, not registration order
    pinned = store.get_workflow("wf", "1.0.0")
    assert pinned is not None and pinned.definition["name"] == "One"


def test_register_per_tenant(store: EventStore) -> None:
    shared = parse_definition(minimal(name="Shared"))
    mine = parse_definition(minimal(name="Mine"))
    assert register(store, shared) is True
    # The same id and version in a tenant's namespace is another workflow, not a VERSION_EXISTS.
    assert register(store, mine, tenant_id="acme") is True
    assert register(store, parse_definition(minimal(name="Mine")), tenant_id="acme") is False
    with pytest.raises(Conflict) as exc:
        register(store, parse_definition(minimal(name="Changed")), tenant_id="acme")
    assert exc.value.code == "VERSION_EXISTS" and "tenant 'acme'" in exc.value.message
    assert register(store, parse_definition(minimal(name="Theirs")), tenant_id="beta") is True

    def name(tenant_id: str | None) -> str:
        record = store.get_workflow("wf", tenant_id=tenant_id)
        assert record is not None and record.tenant_id == tenant_id
        return str(record.definition["name"])

    assert (name(None), name("acme"), name("beta")) == ("Shared", "Mine", "Theirs")
    assert [r.definition["name"] for r in store.list_workflows()] == ["Shared"]
    # A newer shared version does not reach a tenant that has its own workflow of that id.
    assert register(store, parse_definition(minimal(name="Shared 2", version="2.0.0"))) is True
    assert name("acme") == "Mine"
    assert store.get_workflow("wf", tenant_id="gamma") == store.get_workflow("wf")


def test_shipped_workflows_are_shared(store: EventStore, tmp_path: Path) -> None:
    assert load_workflow_files(Settings(data_dir=tmp_path), store) == []
    analyze = store.get_workflow("analyze_project", tenant_id="acme")
    assert analyze is not None and analyze.tenant_id is None


def test_load_registers_shipped_workflows_once(store: EventStore, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert load_workflow_files(settings, store) == []
    assert load_workflow_files(settings, store) == []  # a restart: identical documents are no-ops
    ids = [record.workflow_id for record in store.list_workflows()]
    assert {"analyze_project", "travel-booking"} <= set(ids)


def test_user_files_problems_are_warnings(store: EventStore, tmp_path: Path) -> None:
    user_dir = tmp_path / "workflows"
    user_dir.mkdir()
    (user_dir / "good.yaml").write_text(yaml.safe_dump(minimal(id="good")))
    (user_dir / "several.yaml").write_text(
        yaml.safe_dump(minimal(id="one")) + "---\n" + yaml.safe_dump(minimal(id="two", version="x"))
    )
    (user_dir / "listed.json").write_text(
        '[{"id": "three", "version": "1.0.0", "steps": [{"id": "a", "type": "transform", "value": 3}]}]'
    )
    (user_dir / "broken.yaml").write_text("id: [unclosed\n")
    (user_dir / "conflict.yaml").write_text(
        yaml.safe_dump({**yaml.safe_load((SHIPPED_DIR / "analyze_project.yaml").read_text()), "name": "Mine"})
    )
    (user_dir / "notes.txt").write_text("not a workflow")
    warnings = load_workflow_files(Settings(data_dir=tmp_path, workflows_dir=user_dir), store)
    assert len(warnings) == 3, warnings
    text = "\n".join(warnings)
    assert "broken.yaml: cannot parse YAML" in text
    assert "several.yaml (definition 2)" in text and "version: invalid version 'x'" in text
    assert "conflict.yaml" in text and "already registered with a different definition" in text
    ids = {record.workflow_id for record in store.list_workflows()}
    assert {"good", "one", "three"} <= ids and "two" not in ids
    analyze = store.get_workflow("analyze_project")
    assert analyze is not None and analyze.definition["name"] == "Project Analysis"  # shipped one kept


def test_missing_user_directory_is_a_warning(store: EventStore, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, workflows_dir=tmp_path / "nowhere")
    (warning,) = load_workflow_files(settings, store)
    assert "does not exist" in warning


def test_a_broken_shipped_file_is_a_bug(
    store: EventStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shipped_dir = tmp_path / "shipped"
    shipped_dir.mkdir()
    (shipped_dir / "bad.yaml").write_text(yaml.safe_dump(minimal(version="1.0")))
    monkeypatch.setattr(workflow_registry, "SHIPPED_DIR", shipped_dir)
    with pytest.raises(InvalidWorkflow, match=r"shipped workflow .*bad\.yaml is invalid"):
        load_workflow_files(Settings(data_dir=tmp_path), store)


def test_example_definitions_parse() -> None:
    examples = sorted((ROOT / "examples").glob("eai-*.yaml"))
    assert examples
    for path in examples:
        definition = parse_definition(yaml.safe_load(path.read_text()))
        assert definition.id == path.stem.removeprefix("eai-")

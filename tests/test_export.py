"""Event logs leave the server as Arrow / Parquet and replay to the same states, through the HTTP
endpoint and through the ``orchestrate export`` / ``orchestrate replay`` commands."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from orchestrator.store.export import read_events
from orchestrator.store.replay import replay
from tests.fixtures_server import ServerInfo

pytestmark = pytest.mark.ray

USER = {"id": 1, "tenant_id": "exporters"}


def run_chain(api: httpx.Client, name: str) -> dict[str, Any]:
    steps = [
        {"name": "a", "type": "transform", "value": "{{ input.n }}"},
        {"name": "b", "type": "transform", "value": "{{ steps.a.output * 3 }}", "depends_on": ["a"]},
    ]
    body = {
        "workflow": {"metadata": {"name": name}, "spec": {"steps": steps}},
        "input": {"n": 14},
        "user": USER,
    }
    response = api.post("/api/v1/workflows/execute", json=body)
    assert response.status_code == 200
    return response.json()


@pytest.mark.parametrize("fmt", ["arrow", "parquet"])
def test_events_endpoint_exports_a_replayable_log(api: httpx.Client, fmt: str) -> None:
    execution = run_chain(api, "export-http")
    response = api.get(f"/api/v1/workflows/executions/{execution['id']}/events", params={"format": fmt})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/vnd.apache.")
    records = list(read_events(response.content))
    assert [r.seq for r in records] == list(range(1, len(records) + 1))
    [state] = list(replay(records))
    assert state.status == "completed" and state.output == {"final_result": 42}
    assert state.last_seq == len(records)
    missing = api.get("/api/v1/workflows/executions/wf_exec_nope/events", params={"format": fmt})
    assert missing.status_code == 404


def test_cli_export_and_replay_agree_with_the_store(
    api: httpx.Client, server: ServerInfo, tmp_path: Path
) -> None:
    ids = {run_chain(api, "export-cli")["id"] for _ in range(3)}
    out = tmp_path / "events.parquet"
    command = [sys.executable, "-m", "orchestrator.server.cli"]
    data = ["--data-dir", str(server.data_dir)]
    done = subprocess.run(
        [*command, "export", str(out), "--workflow", "export-cli", *data],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    exported = {r.execution_id for r in read_events(out)}
    assert ids <= exported and all(i.startswith("wf_exec_") for i in exported)

    done = subprocess.run([*command, "replay", str(out), *data], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 differences" in done.stderr + done.stdout

    other = tmp_path / "other-data"
    other.mkdir()
    done = subprocess.run(
        [*command, "replay", str(out), "--data-dir", str(other)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1  # an empty store disagrees with every replayed execution
    assert "missing" in done.stderr + done.stdout


def test_replay_skips_plan_streams() -> None:
    from datetime import UTC, datetime

    from orchestrator.core.decide import Start, decide
    from orchestrator.core.events import EventRecord, to_record
    from orchestrator.core.state import ExecutionState
    from orchestrator.core.validation import parse_workflow

    now = datetime.now(UTC)
    plan = EventRecord(
        execution_id="plan_1", seq=1, type="plan.created", payload={"query": "q"}, recorded_at=now
    )
    workflow = parse_workflow(
        {"metadata": {"name": "w"}, "spec": {"steps": [{"name": "a", "type": "transform", "value": 1}]}}
    )
    decision = decide(ExecutionState("wf_exec_1"), Start(now=now, workflow=workflow))
    records = [plan, *(to_record("wf_exec_1", e) for e in decision.events)]
    [state] = list(replay(records))
    assert state.execution_id == "wf_exec_1" and state.status == "completed"

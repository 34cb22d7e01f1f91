"""Ray's dashboard: on by default, on loopback, behind Ray's token, and showing what the server runs.

Read back through Ray's state API (``ray.util.state``, which goes through the dashboard with the
driver's token): every I/O step is a task named ``<workflow>/<step>``, hosts are ``ExecutionHost``
actors named ``orch-host-*`` and agents ``agent:<id>``.
"""

from __future__ import annotations

import re
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import ray
from typer.testing import CliRunner

from orchestrator.config import DEFAULT_DASHBOARD_PORT, Settings
from orchestrator.server import cli
from orchestrator.server.cli import RAY_TOKEN_FILE
from tests.fixtures_server import ServerInfo, eventually
from tests.ports import free_port
from tests.processes import kill_session, start_server_process

USER = {"id": 7}


def _workflow(name: str) -> dict[str, Any]:
    steps = [
        {
            "name": "search_flights",
            "type": "mcp_query",
            "connector": "amadeus-travel",
            "statement": "search_flights",
            "parameters": {"origin": "SFO", "destination": "CDG", "departure_date": "2025-06-01"},
        },
        {
            "name": "summarize",
            "type": "llm",
            "prompt": "Summarize the flights",
            "depends_on": ["search_flights"],
        },
    ]
    return {"metadata": {"name": name}, "spec": {"steps": steps}}


# ------------------------------------------------------------------------------ the session server


@pytest.mark.ray
def test_steps_hosts_and_agents_appear_in_the_dashboard(api: httpx.Client, server: ServerInfo) -> None:
    from ray.util.state import list_actors, list_tasks

    address = server.dashboard_url  # not found by itself: other Ray instances may run on this machine
    assert address is not None
    name = f"dashboard-{uuid.uuid4().hex[:8]}"
    response = api.post("/api/v1/workflows/execute", json={"workflow": _workflow(name), "user": USER})
    assert response.status_code == 200 and response.json()["status"] == "completed", response.text

    agents = {
        a.actor_id: a for a in list_actors(address, filters=[("class_name", "=", "AgentActor")], limit=1000)
    }
    names = {a.name for a in agents.values() if a.ray_namespace == server.namespace}
    assert {"agent:amadeus-travel", "agent:llm-analyst"} <= names

    def finished(step: str) -> Any:
        tasks = list_tasks(address, filters=[("name", "=", f"{name}/{step}")], limit=100)
        return [t for t in tasks if t.state == "FINISHED"]

    # task events reach the GCS in batches, about once a second
    flights = eventually(lambda: finished("search_flights"), timeout=60, interval=1)
    summaries = eventually(lambda: finished("summarize"), timeout=60, interval=1)
    assert (
        len(flights) == 1
        and flights[0].type == "ACTOR_TASK"
        and flights[0].func_or_class_name.endswith("AgentActor.call")
    )
    assert agents[flights[0].actor_id].name == "agent:amadeus-travel"
    assert len(summaries) == 1 and agents[summaries[0].actor_id].name == "agent:llm-analyst"

    hosts = list_actors(
        address, filters=[("class_name", "=", "ExecutionHost"), ("state", "=", "ALIVE")], limit=1000
    )
    # pooled hosts (a dedicated execution of another test may still be finishing in its own host)
    ours = sorted(
        h.name for h in hosts if h.ray_namespace == server.namespace and h.name.startswith("orch-host-")
    )
    node = ray.get_runtime_context().get_node_id()[:12]
    assert ours == [f"orch-host-{node}-0", f"orch-host-{node}-1"]  # ORCH_HOSTS_PER_NODE=2 in the fixture


@pytest.mark.ray
def test_the_dashboard_is_on_loopback_and_asks_for_the_token(server: ServerInfo) -> None:
    assert server.dashboard_url is not None
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", server.dashboard_url)
    token = (server.data_dir / RAY_TOKEN_FILE).read_text().strip()
    with httpx.Client(base_url=server.dashboard_url, timeout=30) as client:
        assert client.get("/").status_code == 200  # the page that asks for the token
        assert client.get("/api/v0/actors").status_code == 401
        assert client.get("/api/v0/actors", headers={"Authorization": "Bearer wrong"}).status_code == 403
        answer = client.get("/api/v0/actors", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200 and answer.json()["result"] is True
        # what the browser does once: exchange the token for a cookie, then browse with it
        signed_in = client.post("/api/authenticate", headers={"Authorization": f"Bearer {token}"})
        assert signed_in.status_code == 200
        assert client.get("/api/v0/actors").status_code == 200


# ------------------------------------------------------------------------------ `orchestrate serve`


@pytest.fixture
def busy_default_port() -> Iterator[None]:
    """Hold 8265 (if nothing else does already): the server must still start, on another port."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", DEFAULT_DASHBOARD_PORT))
            sock.listen()
        except OSError:
            pass  # taken already, which is the case under test anyway
        yield


@pytest.mark.ray
@pytest.mark.timeout(300)
def test_serve_prints_the_dashboard_url_and_survives_a_busy_port(
    tmp_path: Path, server: ServerInfo, busy_default_port: None
) -> None:
    del server  # only for ordering: the session's Ray instance is up, this test runs a second one
    port = free_port()
    log_path = tmp_path / "server.log"
    # the default dashboard settings, as `orchestrate serve` runs for a user
    process = start_server_process(
        port, tmp_path / "data", "orchestrator-dashboard", log_path, env={"ORCH_DASHBOARD": "1"}
    )
    try:

        def printed() -> re.Match[str] | None:
            return re.search(r"Ray dashboard on (http://127\.0\.0\.1:(\d+))", log_path.read_text())

        found = eventually(printed, timeout=240, interval=0.5)
        url, dashboard_port = found.group(1), int(found.group(2))
        assert dashboard_port != DEFAULT_DASHBOARD_PORT
        assert f"sign in with the token in {tmp_path / 'data' / RAY_TOKEN_FILE}" in log_path.read_text()
        token = (tmp_path / "data" / RAY_TOKEN_FILE).read_text().strip()
        assert httpx.get(f"{url}/api/v0/actors", timeout=30).status_code == 401
        assert (
            httpx.get(
                f"{url}/api/v0/actors", headers={"Authorization": f"Bearer {token}"}, timeout=30
            ).status_code
            == 200
        )
        assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=30).status_code == 200
    finally:
        kill_session(process.pid)
        process.wait(timeout=30)


# ------------------------------------------------------------------------------ options, without Ray


_SERVE_SETS = ("ORCH_PORT", "ORCH_HOST", "ORCH_DATA_DIR", "ORCH_DASHBOARD", "ORCH_DASHBOARD_HOST")


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """The dashboard settings unset, and whatever ``serve`` writes to ``os.environ`` restored after."""
    for key in (*_SERVE_SETS, "ORCH_DASHBOARD_PORT"):
        monkeypatch.setenv(key, "")  # recorded, so the test's changes are undone
        monkeypatch.delenv(key)
    return monkeypatch


def test_flags_set_the_settings(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    seen: list[Settings] = []
    clean_env.setattr(cli, "start_server", lambda *, wait: seen.append(Settings()))
    args = ["serve", "--data-dir", str(tmp_path), "--no-dashboard", "--dashboard-port", "9999"]
    result = CliRunner().invoke(cli.app, [*args, "--dashboard-host", "::1"])
    assert result.exit_code == 0, result.output
    assert [(s.dashboard, s.dashboard_host, s.dashboard_port) for s in seen] == [(False, "::1", 9999)]


def test_without_flags_the_environment_decides(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    defaults = Settings()
    assert (defaults.dashboard, defaults.dashboard_host, defaults.dashboard_port) == (
        True,
        "127.0.0.1",
        DEFAULT_DASHBOARD_PORT,
    )
    clean_env.setenv("ORCH_DASHBOARD", "off")
    clean_env.setenv("ORCH_DASHBOARD_PORT", "0")
    seen: list[Settings] = []
    clean_env.setattr(cli, "start_server", lambda *, wait: seen.append(Settings()))
    result = CliRunner().invoke(cli.app, ["serve", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert [(s.dashboard, s.dashboard_port) for s in seen] == [(False, 0)]


def test_busy_or_default_ports_never_fail_the_start() -> None:
    # the default: Ray's own search upwards from 8265, in the dashboard's process (no race)
    assert cli._dashboard_options(Settings(dashboard_port=DEFAULT_DASHBOARD_PORT))["dashboard_port"] is None
    assert cli._dashboard_options(Settings(dashboard_port=0))["dashboard_port"] == 0
    free = free_port()
    assert cli._dashboard_options(Settings(dashboard_port=free))["dashboard_port"] == free
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        busy = sock.getsockname()[1]
        options = cli._dashboard_options(Settings(dashboard_port=busy))
    assert options == {"include_dashboard": None, "dashboard_host": "127.0.0.1", "dashboard_port": 0}
    assert cli._dashboard_options(Settings(dashboard=False)) == {"include_dashboard": False}

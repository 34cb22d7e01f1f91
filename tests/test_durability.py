"""Fault tests with real processes and real signals: acknowledged work survives whatever dies."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
import ray

from tests.fixtures_server import ServerInfo, eventually, host_names
from tests.ports import free_port
from tests.processes import kill_session, server_process

pytestmark = pytest.mark.ray

USER = {"id": 7}


def waiting_workflow(seconds: float, name: str = "durable") -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "steps": [
                {"name": "nap", "type": "wait", "duration": seconds},
                {"name": "after", "type": "transform", "value": "{{ execution.id }}", "depends_on": ["nap"]},
            ]
        },
    }


def test_killed_execution_host_resumes_its_executions(api: httpx.Client, server: ServerInfo) -> None:
    ids = [
        api.post(
            "/api/v1/workflows/execute",
            json={"workflow": waiting_workflow(2.0, "host-kill"), "user": USER, "async": True},
        ).json()["id"]
        for _ in range(6)
    ]
    names = host_names(server.namespace)
    assert len(names) == 2
    for name in names:  # kill every pooled host; Ray restarts them and they resume from the store
        ray.kill(ray.get_actor(name, namespace=server.namespace), no_restart=False)

    def all_completed() -> bool:
        states = [api.get(f"/api/v1/workflows/executions/{i}").json()["status"] for i in ids]
        return all(state == "completed" for state in states)

    eventually(all_completed, timeout=120, interval=0.5)
    for execution_id in ids:
        body = api.get(f"/api/v1/workflows/executions/{execution_id}").json()
        assert body["output"] == {"final_result": execution_id}
        events = api.get(f"/api/v1/workflows/executions/{execution_id}/events").json()["events"]
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))


def test_kill_9_of_the_whole_server_loses_nothing(tmp_path: Path, server: ServerInfo) -> None:
    """200 executions wait on durable timers; the server and all its processes die by SIGKILL; after
    a restart every execution completes, each step exactly once, with contiguous event sequences."""
    del server  # only for ordering: the session's Ray instance is up, this test runs a second one
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    port = free_port()
    body = {"workflow": waiting_workflow(45.0, "kill-9"), "user": USER, "async": True}
    with (
        server_process(port, data_dir, "orchestrator-kill9") as process,
        httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client,
    ):
        ids = [client.post("/api/v1/workflows/execute", json=body).json()["id"] for _ in range(200)]
        page = client.get(
            "/api/v1/workflows/executions", params={"limit": 1000, "workflow_name": "kill-9"}
        ).json()
        running = sum(e["status"] == "running" for e in page["executions"])
        assert page["count"] == 200 and running >= 100  # most are waiting on their timers when we kill
        kill_session(process.pid)

    with (
        server_process(port, data_dir, "orchestrator-kill9"),
        httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client,
    ):

        def all_completed() -> bool:
            page = client.get(
                "/api/v1/workflows/executions", params={"limit": 1000, "workflow_name": "kill-9"}
            ).json()
            return page["count"] == 200 and all(e["status"] == "completed" for e in page["executions"])

        # /health says what each host resumed from the log, and how long that took
        health = client.get("/health").json()
        assert sum(h["recovered"] for h in health["hosts"]) >= running
        assert any(isinstance(h["recovery_seconds"], float) for h in health["hosts"])
        eventually(all_completed, timeout=120, interval=1)
        for execution_id in ids:
            events = client.get(f"/api/v1/workflows/executions/{execution_id}/events").json()["events"]
            assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
            completed = Counter(e["step"] for e in events if e["type"] == "step.completed")
            assert completed == Counter({"nap": 1, "after": 1})
            assert events[-1]["type"] == "execution.completed"

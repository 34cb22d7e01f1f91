"""Fault tests with real processes and real signals: acknowledged work survives whatever dies."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import ray

from tests.fixtures_server import ServerInfo, eventually, free_port

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
    for index in range(2):  # kill every pooled host; Ray restarts them and they resume from the store
        host = ray.get_actor(f"orch-host-{index}", namespace=server.namespace)
        ray.kill(host, no_restart=False)

    def all_completed() -> bool:
        states = [api.get(f"/api/v1/workflows/executions/{i}").json()["status"] for i in ids]
        return all(state == "completed" for state in states)

    eventually(all_completed, timeout=120, interval=0.5)
    for execution_id in ids:
        body = api.get(f"/api/v1/workflows/executions/{execution_id}").json()
        assert body["output"] == {"final_result": execution_id}
        events = api.get(f"/api/v1/workflows/executions/{execution_id}/events").json()["events"]
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))


def _session_processes(sid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[3]) == sid and fields[0] != "Z":
                pids.append(int(entry.name))
    return pids


def _kill_session(sid: int) -> None:
    """kill -9 every process of the server's session (driver, GCS, raylet, workers, MCP servers)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        pids = _session_processes(sid)
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)
    raise AssertionError(f"processes of session {sid} survived kill -9: {_session_processes(sid)}")


@contextlib.contextmanager
def server_process(port: int, data_dir: Path, namespace: str) -> Iterator[subprocess.Popen[bytes]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ORCH_", "RAY_ADDRESS"))}
    env.update(ORCH_NAMESPACE=namespace, RAY_AUTH_MODE="disabled")
    command = [
        sys.executable,
        "-m",
        "orchestrator.cli",
        "serve",
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
    ]
    log = open(data_dir.parent / f"server-{port}-{time.time_ns()}.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        eventually(lambda: _healthy(port), timeout=240, interval=0.5)
        yield process
    finally:
        _kill_session(process.pid)
        process.wait(timeout=30)
        log.close()


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=10).status_code == 200
    except httpx.HTTPError:
        return False


def test_kill_9_of_the_whole_server_loses_nothing(tmp_path: Path, server: ServerInfo) -> None:
    """200 executions wait on durable timers; the server and all its processes die by SIGKILL; after
    a restart every execution completes, each step exactly once, with contiguous event sequences."""
    del server  # only for ordering: the session's Ray instance is up, this test runs a second one
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    port = free_port()
    body = {"workflow": waiting_workflow(20.0, "kill-9"), "user": USER, "async": True}
    with (
        server_process(port, data_dir, "orchestrator-kill9") as process,
        httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client,
    ):
        ids = [client.post("/api/v1/workflows/execute", json=body).json()["id"] for _ in range(200)]
        statuses = Counter(client.get(f"/api/v1/workflows/executions/{i}").json()["status"] for i in ids[:5])
        assert statuses == Counter({"running": 5})
        _kill_session(process.pid)

    with (
        server_process(port, data_dir, "orchestrator-kill9"),
        httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client,
    ):

        def all_completed() -> bool:
            page = client.get(
                "/api/v1/workflows/executions", params={"limit": 1000, "workflow_name": "kill-9"}
            ).json()
            return page["count"] == 200 and all(e["status"] == "completed" for e in page["executions"])

        eventually(all_completed, timeout=120, interval=1)
        for execution_id in ids:
            events = client.get(f"/api/v1/workflows/executions/{execution_id}/events").json()["events"]
            assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
            completed = Counter(e["step"] for e in events if e["type"] == "step.completed")
            assert completed == Counter({"nap": 1, "after": 1})
            assert events[-1]["type"] == "execution.completed"

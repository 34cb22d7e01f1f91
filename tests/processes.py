"""Real process control for fault tests and benchmarks: run the server in its own session, and kill
every process of that session (driver, GCS, raylet, workers, MCP servers) with SIGKILL."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx


def session_processes(sid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[3]) == sid and fields[0] != "Z":
                pids.append(int(entry.name))
    return pids


def kill_session(sid: int, *, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = session_processes(sid)
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)
    raise AssertionError(f"processes of session {sid} survived kill -9: {session_processes(sid)}")


def start_server_process(
    port: int, data_dir: Path, namespace: str, log_path: Path, *, env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """``orchestrate serve`` in a new session, with a clean ORCH_* environment (plus ``env``)."""
    # as a user runs it: Ray's token auth on, with the token the server generates in its data directory
    extra = dict(env or {})
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ORCH_", "RAY_ADDRESS", "RAY_AUTH"))}
    # no dashboard unless asked for (ORCH_DASHBOARD=1): these servers start and restart often, in parallel
    env.update({"ORCH_NAMESPACE": namespace, "ORCH_DASHBOARD": "0", **extra})
    command = [
        sys.executable,
        "-m",
        "orchestrator.server.cli",
        "serve",
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
    ]
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )


def healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=10).status_code == 200
    except httpx.HTTPError:
        return False


@contextlib.contextmanager
def server_process(
    port: int, data_dir: Path, namespace: str, *, env: Mapping[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """``orchestrate serve`` in its own session (:func:`start_server_process`), healthy when entered,
    killed with SIGKILL (every process of the session) on the way out."""
    from tests.fixtures_server import eventually

    log_path = data_dir.parent / f"server-{port}-{time.time_ns()}.log"
    process = start_server_process(port, data_dir, namespace, log_path, env=env)
    try:
        eventually(lambda: healthy(port), timeout=240, interval=0.5)
        yield process
    finally:
        kill_session(process.pid)
        process.wait(timeout=30)

"""Stopping ``orchestrate serve`` the way people do: Ctrl-C in its terminal, which signals the whole
foreground process group (the server, and Ray's daemons it started), once or twice."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from orchestrator.server.cli import STOP_SECONDS
from tests.fixtures_server import eventually
from tests.ports import free_port
from tests.processes import healthy, kill_session, session_processes, start_server_process

pytestmark = pytest.mark.ray


def _started(tmp_path: Path) -> subprocess.Popen[bytes]:
    port = free_port()
    process = start_server_process(
        port, tmp_path / "data", f"orch-stop-{uuid.uuid4().hex[:8]}", tmp_path / "server.log"
    )
    log = tmp_path / "server.log"
    try:
        eventually(lambda: healthy(port), timeout=180, interval=0.5)
        # the signal handlers are in place once it says so (Ctrl-C before that breaks the start)
        eventually(lambda: "orchestrator ready" in log.read_text(errors="replace"), timeout=60, interval=0.2)
        time.sleep(0.5)
    except BaseException:
        kill_session(process.pid)
        process.wait()
        raise
    return process


def _exited(process: subprocess.Popen[bytes], seconds: float) -> int | None:
    try:
        return process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        return None


@pytest.mark.parametrize(
    ("sent", "presses", "apart"),
    [
        (signal.SIGINT, 1, 0.0),  # Ctrl-C
        (signal.SIGINT, 2, 0.05),  # Ctrl-C, and again at once: stop now
        (signal.SIGTERM, 3, 0.0),  # a supervisor or `timeout` signalling the group, back to back
    ],
)
def test_a_stop_signal_to_the_process_group_stops_the_server(
    tmp_path: Path, sent: signal.Signals, presses: int, apart: float
) -> None:
    """Every process of the group gets the signal at once, Ray's daemons too. Signals back to back once
    hung it for good: each handler took the lock of the event the previous one held."""
    process = _started(tmp_path)
    try:
        for _ in range(presses):
            os.killpg(process.pid, sent)
            time.sleep(apart)
        # bounded: the graceful stop, or at worst its watchdog (cli.STOP_SECONDS), and a margin
        code = _exited(process, STOP_SECONDS + 20)
        log = (tmp_path / "server.log").read_text(errors="replace")
        assert code is not None, f"still running after the stop signal; log tail:\n{log[-3000:]}"
        if presses == 1:  # a second press exits at once, maybe before it says anything
            assert "shutting down" in log
        # nothing of it is left behind: Ray's processes of this session end with it
        eventually(lambda: not session_processes(process.pid), timeout=30, interval=0.5)
    finally:
        kill_session(process.pid)
        process.wait()

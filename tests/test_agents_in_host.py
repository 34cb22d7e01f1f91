"""Agents whose workflow steps run in the execution host's own process (``runs_in: host``)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import textwrap
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from agents.registry import AgentConfigError, load_registry
from agents.runner import AgentStepRunner
from orchestrator.config import Settings
from orchestrator.core.decide import RunStep
from orchestrator.core.errors import StepError
from orchestrator.core.state import ExecutionState
from orchestrator.core.validation import parse_workflow

AGENTS = """
connectors:
  - name: target
    type: {type}
    config: {config}
agents:
  - id: target
    name: Target
    domain: testing
    connector_type: {type}
    connector: target
    runs_in: host
    capabilities:
      - name: ping
        binding: {{method: GET, path: /ping}}
        parameters: {{}}
"""


class Target(BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:
        Target.hits.append(self.headers.get("Idempotency-Key", ""))
        body = json.dumps({"ok": True} if self.path == "/ping" else {"error": "no"}).encode()
        self.send_response(200 if self.path == "/ping" else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def target() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Target)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def agents_dir(tmp_path: Path, *, type: str, config: str) -> Path:
    directory = tmp_path / "agents"
    directory.mkdir()
    (directory / "agents.yaml").write_text(textwrap.dedent(AGENTS.format(type=type, config=config)))
    return directory


def test_only_stateless_connectors_may_run_in_the_host(tmp_path: Path) -> None:
    """An MCP or SQL connector keeps a session in its agent actor: in every host it would be one per host."""
    directory = agents_dir(tmp_path, type="mcp", config="{transport: stdio, command: python}")
    with pytest.raises(AgentConfigError, match="runs_in: host is for connectors of type http"):
        load_registry([directory], data_dir=tmp_path, include_shipped=False)


async def test_a_step_of_an_agent_that_runs_in_the_host_needs_no_actor(tmp_path: Path, target: str) -> None:
    """No Ray actor exists for the agent here (none is looked up): the call is made in this process,
    with the agent's checks, its idempotency key and its errors."""
    directory = agents_dir(tmp_path, type="http", config=f'{{base_url: "{target}"}}')
    registry = load_registry([directory], data_dir=tmp_path, include_shipped=False)
    assert registry.agents["target"].runs_in == "host"
    runner = AgentStepRunner(Settings(data_dir=tmp_path), registry)
    workflow = parse_workflow(
        {
            "metadata": {"name": "in-host"},
            "spec": {
                "steps": [{"name": "p", "type": "mcp_query", "connector": "target", "statement": "ping"}]
            },
        }
    )
    state = ExecutionState("wf_exec_in_host", workflow=workflow)
    request = {"connector": "target", "statement": "ping", "parameters": {}, "mode": "query"}
    command = RunStep(
        step="p", kind="connector", attempt=1, request=request, context={}, idempotency_key="k/p/1", timeout=5
    )
    Target.hits.clear()
    try:
        assert await runner.run(state, command) == {"ok": True}
        assert "k/p/1" in Target.hits  # the call itself (the health probe sends no key)
        unknown = dataclasses.replace(command, request={**request, "statement": "nope"})
        with pytest.raises(StepError) as failed:
            await runner.run(state, unknown)
        assert failed.value.code == "UNKNOWN_CAPABILITY"
    finally:
        await runner.close()


async def test_closing_an_agent_ends_a_health_loop_that_swallowed_a_cancellation(
    tmp_path: Path, target: str
) -> None:
    """Python 3.11's ``asyncio.wait_for`` swallows a cancellation that lands as the call it waits for
    completes (the health check's probe): the loop then sleeps on as if never cancelled. Closing the
    agent must still end it, not wait for it forever (a test hung in CI on exactly this)."""
    directory = agents_dir(tmp_path, type="http", config=f'{{base_url: "{target}"}}')
    registry = load_registry([directory], data_dir=tmp_path, include_shipped=False)
    runner = AgentStepRunner(Settings(data_dir=tmp_path), registry)
    agent = runner.in_process(registry.agents["target"])

    async def swallows_one_cancellation() -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(60)
        await asyncio.sleep(60)

    agent._loop_task.cancel()  # the real loop, replaced by one that behaves as wait_for can
    agent._loop_task = asyncio.get_running_loop().create_task(swallows_one_cancellation())
    await asyncio.sleep(0)
    await asyncio.wait_for(runner.close(), 5)
    assert agent._loop_task.done()

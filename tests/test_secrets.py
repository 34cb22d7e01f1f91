"""Connector secrets never leave an agent: not in a step's error, not in health, not across Ray.

Secrets are seeded the way an operator does it, as ``${ENV_VAR}`` placeholders in agent YAML, into an HTTP
API that echoes what it was sent (headers, query) in its error bodies and an MCP server whose argv and
environment carry a key. Everything the agent reports is then searched for them.
"""

from __future__ import annotations

import json
import pickle
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from agents.actor import AgentActor
from agents.registry import load_registry
from orchestrator.config import Settings
from orchestrator.core.errors import OrchestratorError
from tests.ports import free_port

HTTP_SECRET = "tok-SEEDED-4c1d"
MCP_SECRET = "mcp-SEEDED-9b7e"
ENVIRON = {"API_TOKEN": HTTP_SECRET, "MCP_KEY": MCP_SECRET}

AGENTS = """
connectors:
  - name: leaky-api
    type: http
    config:
      base_url: "{service}/api?key=${{API_TOKEN}}"
      headers: {{Authorization: "Bearer ${{API_TOKEN}}"}}
      health_path: /echo
      timeout: 5
  - name: leaky-mcp
    type: mcp
    config:
      command: python
      args: ["-c", "import sys; sys.exit(3)", "--token=${{MCP_KEY}}"]
      env: {{SERVICE_KEY: "${{MCP_KEY}}"}}
      connect_timeout: 10
agents:
  - id: leaky-api
    name: Leaky API
    domain: testing
    connector_type: http
    connector: leaky-api
    capabilities:
      - name: echo
        binding: {{path: /echo}}
  - id: leaky-mcp
    name: Leaky MCP
    domain: testing
    connector_type: mcp
    connector: leaky-mcp
    capabilities: [anything]
"""


def echo_app() -> FastAPI:
    app = FastAPI()

    @app.get("/api/echo")
    async def echo(request: Request) -> JSONResponse:
        # a careless API: its error repeats what it was sent
        sent = {"headers": dict(request.headers), "query": str(request.url.query)}
        return JSONResponse({"detail": f"bad request {sent}"}, status_code=500)

    return app


@pytest.fixture(scope="module")
def service() -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(echo_app(), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the echo service did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=5)


def assert_clean(*things: Any) -> None:
    text = json.dumps(things, default=str)
    assert HTTP_SECRET not in text
    assert MCP_SECRET not in text


def reported(exc: OrchestratorError) -> list[Any]:
    """What a user or the event log gets: the error as it arrives after crossing Ray (pickled)."""
    arrived = pickle.loads(pickle.dumps(exc))
    return [arrived.message, arrived.details, arrived.code, str(arrived)]


async def run_agent(agent_id: str, tmp_path: Path, service: str) -> tuple[OrchestratorError, dict[str, Any]]:
    agents_dir = tmp_path / "agents"
    agents_dir.mkdir(exist_ok=True)
    (agents_dir / "leaky.yaml").write_text(AGENTS.format(service=service))
    registry = load_registry([agents_dir], data_dir=tmp_path, include_shipped=False, environ=ENVIRON)
    agent = registry.get(agent_id)
    connector = registry.connector_for(agent)
    assert connector is not None
    actor = AgentActor(agent, connector, Settings(data_dir=tmp_path), registry.secrets[connector.name])
    try:
        capability = agent.capabilities[0].name
        with pytest.raises(OrchestratorError) as info:
            await actor.call(capability, {}, "query", {"timeout": 20.0})
        await actor._check()  # one health probe, as the loop runs it
        described = await actor.describe()
    finally:
        actor._loop_task.cancel()
        assert actor.connector is not None
        await actor.connector.close()
    return info.value, described


async def test_http_secrets_stay_out_of_errors_and_health(tmp_path: Path, service: str) -> None:
    error, described = await run_agent("leaky-api", tmp_path, service)
    assert error.code == "CONNECTOR_UNAVAILABLE"  # the 500 came back, described...
    assert "/api/echo" in error.message and "bad request" in error.message
    assert described["health"]["last_error"]  # ...and the failing probe was recorded
    assert_clean(reported(error), described)


async def test_mcp_argv_and_env_stay_out_of_errors_and_health(tmp_path: Path, service: str) -> None:
    error, described = await run_agent("leaky-mcp", tmp_path, service)
    assert error.code in ("AGENT_UNAVAILABLE", "CONNECTOR_UNAVAILABLE")
    assert "leaky-mcp" in error.message
    assert described["health"]["last_error"]
    assert_clean(reported(error), described)


def test_registry_keeps_expanded_values_out_of_dumps(tmp_path: Path, service: str) -> None:
    agents_dir = tmp_path / "agents"
    agents_dir.mkdir()
    (agents_dir / "leaky.yaml").write_text(AGENTS.format(service=service))
    registry = load_registry([agents_dir], data_dir=tmp_path, include_shipped=False, environ=ENVIRON)
    assert HTTP_SECRET in registry.secrets["leaky-api"]
    assert "secrets" not in registry.model_dump() and HTTP_SECRET not in repr(registry.secrets.keys())


def test_runtime_env_carries_settings_but_no_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    from orchestrator.server.cli import _orch_env

    monkeypatch.setenv("ORCH_LLM_API_KEY", HTTP_SECRET)
    monkeypatch.setenv("ORCH_DATABASE_URL", f"postgresql://orch:{MCP_SECRET}@db/orch")
    monkeypatch.setenv("ORCH_SOME_TOKEN", HTTP_SECRET)
    monkeypatch.setenv("ORCH_MAX_BODY_BYTES", "2048")
    env = _orch_env()
    assert env.get("ORCH_MAX_BODY_BYTES") == "2048"  # serve_app's module-level settings still see it
    assert_clean(env)

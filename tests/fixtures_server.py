"""The real server for integration tests: one Ray instance and one Serve application per test session,
on a free port, with its own data directory, talked to over real HTTP.

Tests get a scripted LLM agent (``scripted-llm``) whose llm connector points at the session's
OpenAI-compatible test server, so the real ``openai`` client path runs end to end; the shipped agents
(demo MCP servers, offline LLM) run as they would for a user.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.openai_server import ScriptedOpenAI
from tests.ports import free_port


@dataclass
class ServerInfo:
    base_url: str
    data_dir: Path
    namespace: str
    openai: ScriptedOpenAI
    dashboard_url: str | None


def host_names(namespace: str) -> list[str]:
    """The pooled execution hosts of a server (``orch-host-<node>-<i>``), by name."""
    import ray

    from orchestrator.runtime.host import HOST_PREFIX

    return sorted(
        str(actor["name"])
        for actor in ray.util.list_named_actors(all_namespaces=True)
        if actor.get("namespace") == namespace and str(actor["name"]).startswith(HOST_PREFIX)
    )


def eventually(check: Callable[[], Any], *, timeout: float = 30.0, interval: float = 0.1) -> Any:
    """Poll until ``check`` returns a truthy value (or stops raising AssertionError)."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except AssertionError as exc:
            last = exc
        time.sleep(interval)
    if last is not None:
        raise last
    raise AssertionError(f"condition not met within {timeout}s")


_TEST_AGENTS = """
connectors:
  - name: scripted-llm
    type: llm
    config:
      base_url: "{base_url}"
      api_key: test-key
      model: scripted-model
agents:
  - id: scripted-llm
    name: Scripted LLM (tests)
    domain: testing
    connector_type: openai
    connector: scripted-llm
    capabilities:
      - name: answer
        description: Answer a question
        parameters:
          question: {{type: string, required: true}}
        binding:
          prompt: "{{{{ question }}}}"
    health_check: {{interval: 2, timeout: 2, failure_threshold: 2}}
"""


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory, openai_server: ScriptedOpenAI) -> Iterator[ServerInfo]:
    data_dir = tmp_path_factory.mktemp("orch-data")
    agents_dir = tmp_path_factory.mktemp("orch-agents")
    (agents_dir / "test.yaml").write_text(_TEST_AGENTS.format(base_url=openai_server.base_url))
    port = free_port()
    namespace = "orchestrator-test"
    env = {
        "ORCH_DATA_DIR": str(data_dir),
        "ORCH_PORT": str(port),
        "ORCH_HOST": "127.0.0.1",
        "ORCH_AGENTS_DIR": str(agents_dir),
        "ORCH_NAMESPACE": namespace,
        "ORCH_HOSTS_PER_NODE": "2",
        "ORCH_DASHBOARD_PORT": str(free_port()),  # not 8265: other servers may be running
    }
    # RAY_AUTH_MODE stays unset, as for a user: start_server keeps Ray's token auth on
    saved = {
        key: os.environ.get(key) for key in [*env, "RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH"]
    }
    os.environ.pop("RAY_ADDRESS", None)
    os.environ.pop("RAY_AUTH_MODE", None)
    os.environ.pop("RAY_AUTH_TOKEN_PATH", None)
    os.environ.update(env)
    from orchestrator.server.cli import start_server, stop_server

    dashboard_url = start_server(wait=False)
    base_url = f"http://127.0.0.1:{port}"
    try:
        eventually(lambda: _healthy(base_url), timeout=180, interval=0.5)
        yield ServerInfo(
            base_url=base_url,
            data_dir=data_dir,
            namespace=namespace,
            openai=openai_server,
            dashboard_url=dashboard_url,
        )
    finally:
        stop_server()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _healthy(base_url: str) -> bool:
    try:
        return httpx.get(f"{base_url}/health", timeout=30).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
def api(server: ServerInfo) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=120) as client:
        yield client

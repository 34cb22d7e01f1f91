"""When the server starts its agents: after its first ``/health`` 200 (or a while after, unprobed).

Real Ray (the session's server), real agent actors; only the wait in front of them is under test, so
the agents here are two of their own, in the server's namespace, killed afterwards.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import ray

from agents.registry import Registry, load_registry
from orchestrator.config import Settings
from orchestrator.server import wiring
from orchestrator.server.api import deps
from tests.fixtures_server import ServerInfo, eventually

AGENT_YAML = """\
connectors:
  - name: {agent}
    type: http
    config: {{base_url: "http://127.0.0.1:9", timeout: 1}}
agents:
  - id: {agent}
    name: Start-order test agent
    domain: test
    connector_type: http
    connector: {agent}
    capabilities:
      - name: ping
        binding: {{method: GET, path: /ping}}
"""


class ThisNodesHosts:
    """What the agents' start waits for besides the probe: this node's execution hosts, the server's own."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace

    def local_hosts(self) -> list[Any]:
        return [
            ray.get_actor(actor["name"], namespace=self.namespace)
            for actor in ray.util.list_named_actors(all_namespaces=True)
            if actor.get("namespace") == self.namespace
            and str(actor.get("name", "")).startswith("orch-host-")
        ]


def exists(name: str, namespace: str) -> bool:
    try:
        ray.get_actor(name, namespace=namespace)
    except ValueError:
        return False
    return True


@pytest.fixture
def own_agent(server: ServerInfo, tmp_path: Path) -> Iterator[tuple[str, Registry, Settings]]:
    agent = f"start-order-{uuid.uuid4().hex[:8]}"
    (tmp_path / "agents").mkdir()
    (tmp_path / "agents" / "agent.yaml").write_text(AGENT_YAML.format(agent=agent))
    registry = load_registry([tmp_path / "agents"], data_dir=tmp_path, include_shipped=False)
    settings = Settings(data_dir=server.data_dir, namespace=server.namespace)
    provided = deps.maybe_service("agents")  # this process is no ingress: put back what it had
    try:
        yield f"agent:{agent}", registry, settings
    finally:
        if exists(f"agent:{agent}", server.namespace):
            ray.kill(ray.get_actor(f"agent:{agent}", namespace=server.namespace), no_restart=True)
        deps.provide(agents=provided)


def test_the_agents_start_once_health_has_answered_200(
    server: ServerInfo, own_agent: tuple[str, Registry, Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    name, registry, settings = own_agent
    monkeypatch.setattr(wiring, "AGENTS_UNPROBED_SECONDS", 60.0)
    serving = threading.Event()
    wiring.start_agents_when_ready(ThisNodesHosts(server.namespace), registry, settings, serving)  # type: ignore[arg-type]
    time.sleep(2.0)
    assert not exists(name, server.namespace)  # the hosts answer, but nobody has had a 200 yet
    serving.set()
    eventually(lambda: exists(name, server.namespace), timeout=60)


def test_the_agents_start_anyway_on_a_server_nobody_probes(
    server: ServerInfo, own_agent: tuple[str, Registry, Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    name, registry, settings = own_agent
    monkeypatch.setattr(wiring, "AGENTS_UNPROBED_SECONDS", 0.5)
    wiring.start_agents_when_ready(ThisNodesHosts(server.namespace), registry, settings, threading.Event())  # type: ignore[arg-type]
    eventually(lambda: exists(name, server.namespace), timeout=60)

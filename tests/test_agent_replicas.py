"""Agent replicas: ``replicas: N`` runs N agent actors, calls are balanced over the healthy ones, and the
agent's health is the aggregate of theirs.

The observable that tells replicas apart is real: the test agent's connector is a stdio MCP server (one
process per replica) whose only tool answers with its own process id, and each replica reports the pid of
its server (``connector_pid``). The replicas live in the session's Ray cluster under agent ids of their
own, so the server's agents are not disturbed, and are killed afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import textwrap
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import ray

from agents.actor import AgentReplicas, aggregate_health, replica_names, start_agent_actors
from agents.registry import (
    MAX_REPLICAS,
    AgentConfig,
    AgentConfigError,
    Registry,
    load_registry,
    validate_agent_config,
)
from agents.runner import AgentStepRunner
from orchestrator.config import Settings
from orchestrator.core.decide import RunStep
from orchestrator.core.definitions import StepDef, WorkflowDef
from orchestrator.core.state import ExecutionState
from tests.fixtures_server import ServerInfo, eventually

WHOAMI_SERVER = """
import os

from mcp.server.mcpserver import MCPServer

server = MCPServer("whoami")


@server.tool()
def whoami() -> dict[str, int]:
    return {"pid": os.getpid()}


server.run("stdio")
"""

AGENT_YAML = """
connectors:
  - name: {agent_id}
    type: mcp
    config: {{transport: stdio, command: python, args: [{script}]}}
agents:
  - id: {agent_id}
    name: Who am I (replica tests)
    domain: testing
    connector_type: mcp
    connector: {agent_id}
    replicas: {replicas}
    capabilities:
      - name: whoami
        description: The process id of the MCP server that answered
        parameters: {{}}
    health_check: {{interval: 1, timeout: 5, failure_threshold: 2}}
"""


def agent_file(directory: Path, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "agents.yaml").write_text(textwrap.dedent(text))
    return directory


# -- configuration, without Ray ---------------------------------------------------------------------------


MINIMAL = {"id": "solo", "name": "Solo", "domain": "testing", "connector_type": "mcp"}


@pytest.mark.parametrize("replicas", [0, -1, MAX_REPLICAS + 1, 1000, True, "3", 2.5])
def test_a_replica_count_out_of_bounds_is_a_config_error(tmp_path: Path, replicas: Any) -> None:
    text = f"""
    agents:
      - {{id: solo, name: Solo, domain: testing, connector_type: mcp, replicas: {json.dumps(replicas)}}}
    """
    with pytest.raises(AgentConfigError) as failed:
        load_registry([agent_file(tmp_path, text)], data_dir=tmp_path, include_shipped=False)
    assert failed.value.code == "INVALID_AGENT_CONFIG"
    assert failed.value.details == [
        {
            "field": "agents[0].replicas",
            "message": f"'replicas' must be a whole number from 1 to {MAX_REPLICAS}, got {replicas!r}",
        }
    ]

    checked = validate_agent_config({**MINIMAL, "replicas": replicas}, Registry())
    assert checked["valid"] is False
    assert [e["field"] for e in checked["errors"]] == ["replicas"]


def test_replicas_default_to_one_and_load_up_to_the_bound(tmp_path: Path) -> None:
    assert AgentConfig.model_validate(MINIMAL).replicas == 1
    text = f"""
    agents:
      - {{id: solo, name: Solo, domain: testing, connector_type: mcp, replicas: {MAX_REPLICAS}}}
    """
    registry = load_registry([agent_file(tmp_path, text)], data_dir=tmp_path, include_shipped=False)
    assert registry.agents["solo"].replicas == MAX_REPLICAS
    assert validate_agent_config({**MINIMAL, "replicas": 3}, Registry())["valid"] is True


def test_replica_names_keep_the_first_one_as_it_was() -> None:
    assert replica_names("travel", 1) == ["agent:travel"]
    assert replica_names("travel", 3) == ["agent:travel", "agent:travel#2", "agent:travel#3"]


def _replica(name: str, status: str, **health: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": name, "actor_id": None, "node_id": None, "status": status}
    entry.update({"last_check": None, "latency_ms": None, "consecutive_failures": 0, "last_error": None})
    entry.update(health)
    return entry


def test_the_agent_health_aggregates_its_replicas() -> None:
    healthy = _replica("agent:a", "healthy", last_check="2025-01-02T10:00:00Z", latency_ms=2.0)
    later = _replica("agent:a#2", "healthy", last_check="2025-01-02T10:00:00.500Z", latency_ms=5.0)
    failing = _replica("agent:a#3", "unhealthy", consecutive_failures=3, last_error="cannot connect")
    gone = _replica("agent:a#3", "unknown", last_error="replica 'agent:a#3' is not running")

    assert aggregate_health([healthy, later]) == {
        "status": "healthy",
        "last_check": "2025-01-02T10:00:00.500Z",  # the latest, not the greatest string
        "latency_ms": 5.0,
        "consecutive_failures": 0,
        "last_error": None,
    }
    degraded = aggregate_health([healthy, later, failing])
    assert degraded["status"] == "degraded" and degraded["consecutive_failures"] == 0
    assert degraded["last_error"] == "replica 'agent:a#3' is unhealthy: cannot connect"
    assert aggregate_health([healthy, gone])["status"] == "degraded"
    assert aggregate_health([_replica("agent:a", "degraded"), failing])["status"] == "degraded"
    none_serving = aggregate_health([failing, gone])
    assert none_serving["status"] == "unhealthy" and none_serving["consecutive_failures"] == 3
    assert aggregate_health([gone, gone])["status"] == "unknown"
    # one replica: exactly its health, as a single-replica agent always reported
    assert aggregate_health([failing]) == {
        "status": "unhealthy",
        "last_check": None,
        "latency_ms": None,
        "consecutive_failures": 3,
        "last_error": "cannot connect",
    }


# -- live replicas in the session's Ray cluster -------------------------------------------------------------


@dataclass
class Replicated:
    agent: AgentConfig
    registry: Registry
    settings: Settings
    replicas: AgentReplicas  # as start_agent_actors returns them to the ingress

    @property
    def names(self) -> list[str]:
        return replica_names(self.agent.id, self.agent.replicas)

    def handle(self, name: str) -> Any:
        return ray.get_actor(name, namespace=self.settings.namespace)


def _start(server: ServerInfo, directory: Path, *, replicas: int = 3) -> Iterator[Replicated]:
    agent_id = f"replicas-{uuid.uuid4().hex[:8]}"
    script = directory / "whoami_server.py"
    directory.mkdir(parents=True, exist_ok=True)
    script.write_text(WHOAMI_SERVER)
    text = AGENT_YAML.format(agent_id=agent_id, script=script, replicas=replicas)
    registry = load_registry([agent_file(directory, text)], data_dir=server.data_dir, include_shipped=False)
    settings = Settings(data_dir=server.data_dir, namespace=server.namespace)
    started = start_agent_actors(registry, settings)
    replicated = Replicated(registry.agents[agent_id], registry, settings, started[agent_id])
    try:
        yield replicated
    finally:
        for name in replicated.names:
            with contextlib.suppress(ValueError):
                ray.kill(replicated.handle(name), no_restart=True)


@pytest.fixture(scope="module")
def trio(server: ServerInfo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replicated]:
    """Three replicas, shared by the tests that leave them alone."""
    yield from _start(server, tmp_path_factory.mktemp("trio"))


@pytest.fixture
def doomed_trio(server: ServerInfo, tmp_path: Path) -> Iterator[Replicated]:
    """Three replicas of which the test kills one."""
    yield from _start(server, tmp_path / "doomed")


async def until(check: Callable[[], Awaitable[Any]], *, timeout: float = 60, interval: float = 0.2) -> Any:
    """Poll an async check until it returns something truthy."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last: {result!r})")
        await asyncio.sleep(interval)


async def all_healthy(replicated: Replicated) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        described = await replicated.replicas.describe(timeout=5)
        return described if described["health"]["status"] == "healthy" else None

    described: dict[str, Any] = await until(check, timeout=120)
    return described


def whoami_step(state: ExecutionState, agent_id: str, n: int) -> RunStep:
    return RunStep(
        step="whoami",
        kind="connector",
        attempt=n,
        request={"connector": agent_id, "statement": "whoami", "parameters": {}, "mode": "query"},
        context={},
        idempotency_key=f"{state.execution_id}/whoami/{n}",
        timeout=30.0,
    )


async def call_pids(runner: AgentStepRunner, agent_id: str, calls: int) -> list[int]:
    workflow = WorkflowDef(
        name="replicas",
        steps=[StepDef(name="whoami", type="mcp_query", connector=agent_id, statement="whoami")],
    )
    state = ExecutionState(execution_id=f"exec-{uuid.uuid4().hex[:8]}", workflow=workflow)
    pids = []
    for n in range(calls):  # one after another, so the round-robin order is what decides
        answer = await runner.run(state, whoami_step(state, agent_id, n + 1))
        pids.append(answer["pid"])
    return pids


async def connector_pids(replicated: Replicated, names: list[str]) -> dict[str, int]:
    pids = await asyncio.gather(*(replicated.handle(name).connector_pid.remote() for name in names))
    return dict(zip(names, pids, strict=True))


@pytest.mark.ray
@pytest.mark.timeout(240)
async def test_three_replicas_run_under_their_names(trio: Replicated) -> None:
    assert trio.names == [f"agent:{trio.agent.id}", f"agent:{trio.agent.id}#2", f"agent:{trio.agent.id}#3"]
    described = await all_healthy(trio)

    replicas = described["replicas"]
    assert [r["name"] for r in replicas] == trio.names
    assert len({r["actor_id"] for r in replicas}) == 3 and all(r["node_id"] for r in replicas)
    assert all(r["status"] == "healthy" for r in replicas)
    for name in trio.names:
        # each actor knows itself by the name it was started under (Ray's runtime context)
        assert (await trio.handle(name).describe.remote())["replica"]["name"] == name

    # each replica runs a server process of its own
    pids = await connector_pids(trio, trio.names)
    assert len(set(pids.values())) == 3 and all(isinstance(pid, int) for pid in pids.values())

    # whoever asks the first replica by name (the planner) gets the agent's health, every replica listed
    health = await trio.handle(trio.names[0]).get_health.remote()
    assert health["status"] == "healthy"
    assert [r["name"] for r in health["replicas"]] == trio.names


@pytest.mark.ray
@pytest.mark.timeout(240)
async def test_calls_are_spread_over_the_replicas(trio: Replicated) -> None:
    await all_healthy(trio)
    servers = {pid: name for name, pid in (await connector_pids(trio, trio.names)).items()}

    runner = AgentStepRunner(trio.settings, trio.registry)
    answered = await call_pids(runner, trio.agent.id, 9)
    served = Counter(servers[pid] for pid in answered)
    assert served == dict.fromkeys(trio.names, 3), served


@pytest.mark.ray
@pytest.mark.timeout(240)
async def test_a_killed_replica_degrades_the_agent_and_calls_go_on(doomed_trio: Replicated) -> None:
    replicated = doomed_trio
    await all_healthy(replicated)
    runner = AgentStepRunner(replicated.settings, replicated.registry)
    assert len(set(await call_pids(runner, replicated.agent.id, 3))) == 3  # the runner knows all three

    first, victim, third = replicated.names
    survivors = await connector_pids(replicated, [first, third])
    ray.kill(replicated.handle(victim), no_restart=True)

    # the next calls land on the survivors, including the one that would have gone to the dead replica
    answered = await call_pids(runner, replicated.agent.id, 6)
    assert set(answered) == set(survivors.values())
    assert (await runner.replicas(replicated.agent)).statuses()[victim] == "unknown"

    # the agents API's view: degraded, the dead replica listed as such
    async def degraded() -> dict[str, Any] | None:
        described = await replicated.replicas.describe(timeout=5)
        return described if described["health"]["status"] == "degraded" else None

    described = await until(degraded, timeout=30)
    by_name = {r["name"]: r for r in described["replicas"]}
    assert by_name[victim]["status"] == "unknown" and by_name[victim]["actor_id"] is None
    assert "is not running" in by_name[victim]["last_error"]
    assert by_name[first]["status"] == by_name[third]["status"] == "healthy"
    assert f"{victim!r}" in described["health"]["last_error"]

    # and the planner's: get_health of agent:<id>
    health = await replicated.handle(first).get_health.remote()
    assert health["status"] == "degraded"
    assert {r["name"]: r["status"] for r in health["replicas"]} == {
        first: "healthy",
        victim: "unknown",
        third: "healthy",
    }


@pytest.mark.ray
@pytest.mark.timeout(240)
def test_fewer_replicas_at_the_next_start_retire_the_extra_ones(server: ServerInfo, tmp_path: Path) -> None:
    # no connector at all: the actors start without a server process, which is all this needs
    agent_id = f"retire-{uuid.uuid4().hex[:8]}"
    settings = Settings(data_dir=server.data_dir, namespace=server.namespace)

    def registry(replicas: int) -> Registry:
        text = f"""
        agents:
          - {{id: {agent_id}, name: Retire, domain: testing, connector_type: mcp, replicas: {replicas}}}
        """
        directory = agent_file(tmp_path / str(replicas), text)
        return load_registry([directory], data_dir=tmp_path, include_shipped=False)

    names = replica_names(agent_id, 2)
    try:
        start_agent_actors(registry(2), settings)
        # named at creation: both are found at once, started or not
        assert all(ray.get_actor(name, namespace=server.namespace) for name in names)

        again = start_agent_actors(registry(1), settings)
        assert again[agent_id].names == (names[0],)

        def retired() -> bool:
            try:
                ray.get_actor(names[1], namespace=server.namespace)
            except ValueError:
                return True
            return False

        eventually(retired, timeout=30)
        first: Any = ray.get_actor(names[0], namespace=server.namespace)
        kept: dict[str, Any] = ray.get(first.replica_health.remote(), timeout=120)
        assert kept["name"] == names[0]
    finally:
        for name in names:
            with contextlib.suppress(ValueError):
                ray.kill(ray.get_actor(name, namespace=server.namespace), no_restart=True)

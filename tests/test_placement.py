"""``dedicated`` placement runs the same execution code in one Ray actor per execution."""

from __future__ import annotations

from pathlib import Path

import pytest
import ray

from agents.runner import AgentStepRunner
from orchestrator.config import Settings
from orchestrator.core.validation import parse_workflow
from orchestrator.runtime.host import DEDICATED_NAME
from orchestrator.server.executions import ExecutionService
from orchestrator.store import open_store
from tests.fixtures_server import ServerInfo, eventually

pytestmark = pytest.mark.ray


def _actor_exists(name: str, namespace: str) -> bool:
    try:
        ray.get_actor(name, namespace=namespace)
    except ValueError:
        return False
    return True


async def test_dedicated_execution_runs_in_its_own_actor_and_frees_it(server: ServerInfo) -> None:
    settings = Settings(data_dir=server.data_dir, namespace=server.namespace, placement="dedicated")
    store = open_store(settings.store_url)
    engine = ExecutionService(settings, store, AgentStepRunner)
    workflow = parse_workflow(
        {
            "metadata": {"name": "dedicated"},
            "spec": {
                "steps": [
                    {
                        "name": "flights",
                        "type": "mcp_query",
                        "connector": "amadeus-travel",
                        "statement": "search_flights",
                        "parameters": {"origin": "SFO", "destination": "CDG", "departure_date": "2025-06-01"},
                    },
                    {"name": "nap", "type": "wait", "duration": "1s", "depends_on": ["flights"]},
                    {
                        "name": "count",
                        "type": "transform",
                        "value": "{{ steps.flights.output.flights | length }}",
                        "depends_on": ["nap"],
                    },
                ]
            },
        }
    )
    state = await engine.start(workflow, input={}, user={"id": 1}, tenant_id="default", wait=False)
    name = DEDICATED_NAME.format(execution_id=state.execution_id)
    assert state.status == "running" and state.placement == "dedicated"
    assert _actor_exists(name, server.namespace)

    final = await engine.wait(state.execution_id, 60)
    assert final.status == "completed"
    assert final.output["final_result"] > 0
    row = store.get_execution(state.execution_id)
    assert row is not None and row.placement == "dedicated" and row.status == "completed"
    eventually(lambda: not _actor_exists(name, server.namespace), timeout=30)  # the process is freed
    store.close()


async def test_a_dedicated_execution_whose_actor_is_gone_is_recovered(server: ServerInfo) -> None:
    """After a full restart no dedicated actor exists; pooled host 0's recovery recreates it."""
    settings = Settings(data_dir=server.data_dir, namespace=server.namespace, placement="dedicated")
    store = open_store(settings.store_url)
    engine = ExecutionService(settings, store, AgentStepRunner)
    workflow = parse_workflow(
        {
            "metadata": {"name": "dedicated-recovery"},
            "spec": {
                "steps": [
                    {"name": "nap", "type": "wait", "duration": "3s"},
                    {
                        "name": "after",
                        "type": "transform",
                        "value": "{{ execution.id }}",
                        "depends_on": ["nap"],
                    },
                ]
            },
        }
    )
    state = await engine.start(workflow, input={}, user={"id": 1}, tenant_id="default", wait=False)
    name = DEDICATED_NAME.format(execution_id=state.execution_id)
    ray.kill(ray.get_actor(name, namespace=server.namespace), no_restart=True)  # gone for good
    eventually(lambda: not _actor_exists(name, server.namespace), timeout=30)
    # host 0 restarts (as after a full restart) and recreates the dedicated actor
    ray.kill(ray.get_actor("orch-host-0", namespace=server.namespace), no_restart=False)

    def completed() -> bool:
        row = store.get_execution(state.execution_id)
        return row is not None and row.status == "completed"

    eventually(completed, timeout=90, interval=0.5)
    assert engine.get(state.execution_id).output == {"final_result": state.execution_id}
    store.close()


async def test_hosts_created_with_other_writer_settings_are_replaced(
    server: ServerInfo, tmp_path: Path
) -> None:
    """Detached hosts outlive the server that made them. A server started with another host count
    replaces them (and retires the extra ones) before it takes work, so no execution has two writers;
    a stale host refuses a start rather than writing."""
    del server  # the session's Ray instance
    namespace = "orch-fingerprint-test"
    data_dir = tmp_path / "data"
    two = Settings(data_dir=data_dir, namespace=namespace, execution_hosts=2)
    old = ExecutionService(two, open_store(two.store_url), AgentStepRunner)
    await old.ready()
    stale = ray.get_actor("orch-host-0", namespace=namespace)
    assert await stale.writer_fingerprint.remote() == old.fingerprint

    one = Settings(data_dir=data_dir, namespace=namespace, execution_hosts=1)
    new = ExecutionService(one, open_store(one.store_url), AgentStepRunner)
    assert new.fingerprint != old.fingerprint
    await new.ready()
    assert not _actor_exists("orch-host-1", namespace)  # retired
    replaced = ray.get_actor("orch-host-0", namespace=namespace)
    assert await replaced.writer_fingerprint.remote() == new.fingerprint

    workflow = parse_workflow(
        {
            "metadata": {"name": "fingerprint"},
            "spec": {"steps": [{"name": "one", "type": "transform", "value": 1}]},
        }
    )
    state = await new.start(workflow, input={}, user={"id": 1}, tenant_id="default", wait=True)
    assert state.status == "completed"
    for handle in new.hosts:
        ray.kill(handle, no_restart=True)

"""``dedicated`` placement runs the same execution code in one Ray actor per execution."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest
import ray

from agents.runner import AgentStepRunner
from orchestrator.config import Settings
from orchestrator.core.validation import parse_workflow
from orchestrator.runtime.host import DEDICATED_NAME
from orchestrator.server.executions import ExecutionService
from orchestrator.store import open_store
from tests.fixtures_server import ServerInfo, eventually, host_names

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
    # the hosts restart (as after a full restart): the partition's new owner recreates the actor
    for name in host_names(server.namespace):
        ray.kill(ray.get_actor(name, namespace=server.namespace), no_restart=False)

    def completed() -> bool:
        row = store.get_execution(state.execution_id)
        return row is not None and row.status == "completed"

    eventually(completed, timeout=90, interval=0.5)
    assert engine.get(state.execution_id).output == {"final_result": state.execution_id}
    store.close()


def _napping_workflow(name: str) -> Any:
    return parse_workflow(
        {
            "metadata": {"name": name},
            "spec": {
                "steps": [
                    {"name": "nap", "type": "wait", "duration": "3s"},
                    {"name": "after", "type": "transform", "value": "done", "depends_on": ["nap"]},
                ]
            },
        }
    )


async def test_a_dedicated_host_killed_for_good_is_made_again_by_the_next_call(server: ServerInfo) -> None:
    """Its partition's owner keeps a handle to the dead actor; a call through it must not fail
    forever: the owner forgets the dead handle, the ingress retries, and the host is made again."""
    settings = Settings(data_dir=server.data_dir, namespace=server.namespace, placement="dedicated")
    store = open_store(settings.store_url)
    engine = ExecutionService(settings, store, AgentStepRunner)
    state = await engine.start(
        _napping_workflow("dedicated-killed"), input={}, user={"id": 1}, tenant_id="default", wait=False
    )
    name = DEDICATED_NAME.format(execution_id=state.execution_id)
    ray.kill(ray.get_actor(name, namespace=server.namespace), no_restart=True)
    eventually(lambda: not _actor_exists(name, server.namespace), timeout=30)

    final = await engine.wait(state.execution_id, 60)
    assert final.status == "completed" and final.output == {"final_result": "done"}
    store.close()


async def test_a_synchronous_dedicated_start_whose_host_dies_while_waiting_runs_once(
    server: ServerInfo,
) -> None:
    """A synchronous start waits in the hosts; the dedicated host dying during that wait must not read
    as a start that was not taken (the ingress would start it again under a new id): the caller gets
    the one execution, completed."""
    settings = Settings(data_dir=server.data_dir, namespace=server.namespace, placement="dedicated")
    store = open_store(settings.store_url)
    engine = ExecutionService(settings, store, AgentStepRunner)
    name = f"dedicated-sync-{uuid.uuid4().hex[:8]}"
    waiting = asyncio.create_task(
        engine.start(_napping_workflow(name), input={}, user={"id": 1}, tenant_id="default", wait=True)
    )
    recorded: list[Any] = []
    actor = ""
    for _ in range(300):  # the loop must run meanwhile: the start is a task of this test's loop
        recorded = store.list_executions(workflow_name=name).rows
        actor = DEDICATED_NAME.format(execution_id=recorded[0].id) if recorded else ""
        if recorded and _actor_exists(actor, server.namespace):
            break
        await asyncio.sleep(0.1)
    assert recorded and not waiting.done()
    ray.kill(ray.get_actor(actor, namespace=server.namespace), no_restart=True)

    final = await asyncio.wait_for(waiting, 90)
    assert final.execution_id == recorded[0].id
    assert final.status == "completed" and final.output == {"final_result": "done"}
    assert [row.id for row in store.list_executions(workflow_name=name).rows] == [final.execution_id]
    store.close()


async def test_a_crashed_dedicated_host_resumes_its_execution_itself(server: ServerInfo) -> None:
    """Ray restarts a crashed dedicated host with the arguments it was made with; nobody calls it, so
    it must load and resume its execution on its own."""
    settings = Settings(data_dir=server.data_dir, namespace=server.namespace, placement="dedicated")
    store = open_store(settings.store_url)
    engine = ExecutionService(settings, store, AgentStepRunner)
    state = await engine.start(
        _napping_workflow("dedicated-crashed"), input={}, user={"id": 1}, tenant_id="default", wait=False
    )
    name = DEDICATED_NAME.format(execution_id=state.execution_id)
    ray.kill(ray.get_actor(name, namespace=server.namespace), no_restart=False)

    def completed() -> bool:
        row = store.get_execution(state.execution_id)
        return row is not None and row.status == "completed"

    eventually(completed, timeout=60, interval=0.5)
    store.close()


async def test_hosts_created_with_other_writer_settings_are_replaced(
    server: ServerInfo, tmp_path: Path
) -> None:
    """Detached hosts and their supervisor outlive the server that made them. A server started with
    other host settings replaces them (and retires hosts it no longer wants) before it takes work;
    a stale host refuses a start rather than writing."""
    del server  # the session's Ray instance
    namespace = "orch-fingerprint-test"
    data_dir = tmp_path / "data"
    two = Settings(data_dir=data_dir, namespace=namespace, hosts_per_node=2)
    old = ExecutionService(two, open_store(two.store_url), AgentStepRunner)
    await old.ready()
    names = host_names(namespace)
    assert len(names) == 2
    stale = ray.get_actor(names[0], namespace=namespace)
    assert await stale.writer_fingerprint.remote() == old.fingerprint

    one = Settings(data_dir=data_dir, namespace=namespace, hosts_per_node=1)
    new = ExecutionService(one, open_store(one.store_url), AgentStepRunner)
    assert new.fingerprint != old.fingerprint
    await new.ready()
    (kept,) = host_names(namespace)  # the second is retired
    replaced = ray.get_actor(kept, namespace=namespace)
    assert await replaced.writer_fingerprint.remote() == new.fingerprint
    health = await new.host_stats()
    assert health["unowned_partitions"] == 0
    assert [len(h["partitions"]) for h in health["hosts"]] == [64]  # the one host holds them all

    workflow = parse_workflow(
        {
            "metadata": {"name": "fingerprint"},
            "spec": {"steps": [{"name": "one", "type": "transform", "value": 1}]},
        }
    )
    state = await new.start(workflow, input={}, user={"id": 1}, tenant_id="default", wait=True)
    assert state.status == "completed"
    ray.kill(new.supervisor, no_restart=True)
    await replaced.leave.remote()
    ray.kill(replaced, no_restart=True)


async def test_signals_and_approvals_reach_a_dedicated_execution(server: ServerInfo) -> None:
    """The partition owner forwards them to the execution's own actor, which records them."""
    settings = Settings(data_dir=server.data_dir, namespace=server.namespace, placement="dedicated")
    store = open_store(settings.store_url)
    engine = ExecutionService(settings, store, AgentStepRunner)
    workflow = parse_workflow(
        {
            "metadata": {"name": "dedicated-gated"},
            "spec": {
                "steps": [
                    {"name": "go", "type": "signal", "signal": "go", "timeout": "60s"},
                    {"name": "ok", "type": "approval", "prompt": "ship it?", "depends_on": ["go"]},
                ]
            },
        }
    )
    state = await engine.start(workflow, input={}, user={"id": 1}, tenant_id="default", wait=False)
    assert state.placement == "dedicated"
    await engine.signal(state.execution_id, "go", {"n": 1}, user={"id": "ops"})

    def waiting_for_approval() -> bool:
        return engine.get(state.execution_id).steps["ok"].status == "waiting"

    eventually(waiting_for_approval, timeout=30, interval=0.2)
    await engine.approve(state.execution_id, "ok", True, "fine", user={"id": "boss"})
    final = await engine.wait(state.execution_id, 30)
    assert final.status == "completed"
    assert final.steps["go"].output == {"n": 1} and final.steps["ok"].output["approved"] is True
    types = [r.type for r in store.load(state.execution_id)]
    assert "signal.received" in types and "approval.decided" in types
    store.close()

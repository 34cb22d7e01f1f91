"""The server on a real multi-node Ray cluster on this machine, with a throwaway PostgreSQL.

Nodes are ``ray start`` processes (:mod:`tests.ray_nodes`); the server joins the cluster as a user's
would (``RAY_ADDRESS``). Leases renew every second and expire after four, so failovers fit in a test.
The checks read the event store directly where they can: a test about losing a node must not depend
on the node that serves HTTP.

Order matters inside the module (one cluster for all, as starting one costs most of a minute): a
second node joins, a host is paused past its lease, a node is killed, a second cluster shares the
database.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from orchestrator.store import open_store
from orchestrator.store.base import EventStore
from tests.fixtures_postgres import _with_database
from tests.fixtures_server import eventually
from tests.ports import free_port
from tests.processes import kill_session, start_server_process
from tests.ray_nodes import LocalRayCluster

pytestmark = [pytest.mark.ray, pytest.mark.postgres]

LEASE_EXPIRE = 4.0
USER = {"id": 7, "name": "cluster"}


@dataclass
class ClusterServer:
    cluster: LocalRayCluster
    base_url: str
    database_url: str
    process: Any

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=60)


def _server_env(cluster: LocalRayCluster, database_url: str) -> dict[str, str]:
    return {
        **cluster.env(),
        "ORCH_DATABASE_URL": database_url,
        "ORCH_PROXY_LOCATION": "HeadOnly",  # every node is on this machine: one proxy per port
        "ORCH_LEASE_RENEW_SECONDS": "1",
        "ORCH_LEASE_EXPIRE_SECONDS": str(LEASE_EXPIRE),
    }


def _healthy(base_url: str) -> bool:
    try:
        return httpx.get(f"{base_url}/health", timeout=10).status_code == 200
    except httpx.HTTPError:
        return False


def _start_server(cluster: LocalRayCluster, database_url: str, root: Path, namespace: str) -> ClusterServer:
    port = free_port()
    process = start_server_process(
        port,
        root / f"data-{port}",
        namespace,
        root / f"server-{port}.log",
        env=_server_env(cluster, database_url),
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        eventually(lambda: _healthy(base_url), timeout=240, interval=0.5)
    except BaseException:
        kill_session(process.pid)
        process.wait(timeout=30)
        raise
    return ClusterServer(cluster, base_url, database_url, process)


@pytest.fixture(scope="module")
def database_url(postgres_url: str) -> Iterator[str]:
    name = f"cluster_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield _with_database(postgres_url, name)
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, database_url: str) -> Iterator[ClusterServer]:
    """A head and one worker node, and the server on them."""
    root = tmp_path_factory.mktemp("cluster")
    cluster = LocalRayCluster(root / "ray")
    try:
        cluster.start_head()
        cluster.add_node()
        server = _start_server(cluster, database_url, root, "orch-cluster")
        try:
            yield server
        finally:
            kill_session(server.process.pid)
            server.process.wait(timeout=30)
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def store(database_url: str) -> Iterator[EventStore]:
    store = open_store(database_url)
    yield store
    store.close()


def health(api: httpx.Client) -> dict[str, Any]:
    answer = api.get("/health")
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def waiting_workflow(seconds: float, name: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "steps": [
                {"name": "nap", "type": "wait", "duration": seconds},
                {"name": "after", "type": "transform", "value": "{{ execution.id }}", "depends_on": ["nap"]},
            ]
        },
    }


async def _submit(base_url: str, workflow: dict[str, Any], count: int) -> list[str]:
    """``count`` asynchronous submissions at once, each answered 202 with its id."""
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
        answers = await asyncio.gather(
            *(
                client.post(
                    "/api/v1/workflows/execute", json={"workflow": workflow, "user": USER, "async": True}
                )
                for _ in range(count)
            )
        )
    assert [a.status_code for a in answers] == [202] * count, [
        a.text for a in answers if a.status_code != 202
    ]
    return [a.json()["id"] for a in answers]


async def _sync_twice(first: str, second: str, workflow: dict[str, Any]) -> list[httpx.Response]:
    request = {"workflow": workflow, "user": USER}
    headers = {"Idempotency-Key": uuid.uuid4().hex}
    async with httpx.AsyncClient(timeout=60) as client:
        started = asyncio.ensure_future(
            client.post(f"{first}/api/v1/workflows/execute", json=request, headers=headers)
        )
        await asyncio.sleep(0.5)
        again = await client.post(f"{second}/api/v1/workflows/execute", json=request, headers=headers)
        return [await started, again]


def submit(base_url: str, workflow: dict[str, Any], count: int) -> list[str]:
    return asyncio.run(_submit(base_url, workflow, count))


def all_completed(store: EventStore, ids: list[str]) -> bool:
    rows = [store.get_execution(execution_id) for execution_id in ids]
    return all(row is not None and row.status == "completed" for row in rows)


def assert_clean_logs(store: EventStore, ids: list[str]) -> None:
    """Every log is contiguous, and no step completed twice: one writer at a time, always."""
    for execution_id in ids:
        records = store.load(execution_id)
        assert [r.seq for r in records] == list(range(1, len(records) + 1)), execution_id
        completed = Counter(r.step for r in records if r.type == "step.completed")
        assert completed and max(completed.values()) == 1, (execution_id, completed)
        assert [r.type for r in records].count("execution.completed") == 1


def owners_by_node(body: dict[str, Any]) -> dict[str, set[int]]:
    """``{node id: partitions its hosts hold}`` from a /health answer."""
    nodes: dict[str, set[int]] = {}
    for host in body["hosts"]:
        nodes.setdefault(host["node_id"], set()).update(int(p) for p in host["partitions"])
    return nodes


def test_hosts_on_every_node_own_every_partition_and_executions_spread(
    served: ClusterServer, store: EventStore
) -> None:
    with served.client() as api:
        body = eventually(
            lambda: (
                (b := health(api))["unowned_partitions"] == 0
                and len(owners_by_node(b)) == 2
                and all(owners_by_node(b).values())  # balanced: both nodes' hosts hold some
                and b
            ),
            timeout=60,
            interval=0.5,
        )
    assert body["partitions"] == 64 and body["status"] == "ok"
    nodes = owners_by_node(body)
    assert sum(len(p) for p in nodes.values()) == 64

    ids = submit(served.base_url, waiting_workflow(0.5, "spread"), 100)
    eventually(lambda: all_completed(store, ids), timeout=120, interval=0.5)
    assert_clean_logs(store, ids)
    partition_node = {p: node for node, partitions in nodes.items() for p in partitions}
    from orchestrator.core.partitions import partition_of

    ran_on = Counter(partition_node[partition_of(i, 64)] for i in ids)
    assert len(ran_on) == 2 and min(ran_on.values()) >= 10, ran_on


def test_the_sqlite_store_refuses_a_cluster_of_several_nodes(served: ClusterServer, tmp_path: Path) -> None:
    env = {k: v for k, v in _server_env(served.cluster, "").items() if k != "ORCH_DATABASE_URL"}
    log = tmp_path / "refused.log"
    process = start_server_process(free_port(), tmp_path / "data", "orch-refused", log, env=env)
    try:
        assert process.wait(timeout=120) == 2
    finally:
        kill_session(process.pid)
    text = " ".join(log.read_text().split())
    assert "refusing to start" in text and "SQLite" in text and "ORCH_DATABASE_URL" in text


def test_a_joining_node_takes_partitions_over_without_stopping_executions(
    served: ClusterServer, store: EventStore
) -> None:
    ids = submit(served.base_url, waiting_workflow(4, "join"), 30)
    served.cluster.add_node()
    with served.client() as api:
        body = eventually(
            lambda: (
                (b := health(api))["unowned_partitions"] == 0
                and len(owners_by_node(b)) == 3
                and all(owners_by_node(b).values())
                and b
            ),
            timeout=90,
            interval=0.5,
        )
    assert sum(len(p) for p in owners_by_node(body).values()) == 64
    eventually(lambda: all_completed(store, ids), timeout=90, interval=0.5)
    assert_clean_logs(store, ids)


def test_a_host_paused_past_its_lease_is_fenced(served: ClusterServer, store: EventStore) -> None:
    with served.client() as api:
        hosts = health(api)["hosts"]
    paused = max(hosts, key=lambda h: len(h["partitions"]))
    before = {int(p): epoch for p, epoch in paused["partitions"].items()}
    ids = submit(served.base_url, waiting_workflow(2, "paused"), 30)
    mine = [i for i in ids if _partition(i) in before]
    assert mine, "no execution landed on the host to pause"
    os.kill(paused["pid"], signal.SIGSTOP)
    try:
        stopped_at = time.monotonic()

        def moved() -> bool:
            leases = store.lease_snapshot().leases
            return all(leases[p].owner != paused["owner"] for p in before)

        eventually(moved, timeout=LEASE_EXPIRE + 20, interval=0.2)
        moved_after = time.monotonic() - stopped_at
        # the others resume its executions while it sleeps
        eventually(lambda: all_completed(store, mine), timeout=60, interval=0.5)
    finally:
        os.kill(paused["pid"], signal.SIGCONT)
    assert moved_after < LEASE_EXPIRE + 10
    leases = store.lease_snapshot().leases
    assert all(leases[p].epoch > epoch for p, epoch in before.items())  # every one changed hands
    time.sleep(3)  # the resumed host's overdue timers fire now: their appends must be refused
    eventually(lambda: all_completed(store, ids), timeout=60, interval=0.5)
    assert_clean_logs(store, ids)
    with served.client() as api:
        body = eventually(lambda: (b := health(api))["unowned_partitions"] == 0 and b, timeout=30)
    again = next(h for h in body["hosts"] if h["name"] == paused["name"])
    assert again["owner"] == paused["owner"]  # the same process, back as a member ...
    assert all(int(p) not in before or epoch > before[int(p)] for p, epoch in again["partitions"].items())


def test_a_killed_node_fails_over_within_the_lease_expiry(served: ClusterServer, store: EventStore) -> None:
    worker = served.cluster.nodes[1]
    with served.client() as api:
        body = health(api)
    ids = submit(served.base_url, waiting_workflow(5, "failover"), 30)
    by_node = owners_by_node(body)
    snapshot = store.lease_snapshot()
    victims = {h.owner: h.node_id for h in snapshot.live_hosts()}
    worker.kill()
    killed_at = time.monotonic()
    # the killed node is the one whose hosts stop renewing: find it from the store
    time.sleep(LEASE_EXPIRE + 1)
    live = {h.owner for h in store.lease_snapshot().live_hosts()}
    dead_nodes = {node for owner, node in victims.items() if owner not in live}
    assert len(dead_nodes) == 1, (dead_nodes, victims, live)
    (dead_node,) = dead_nodes
    lost = by_node[dead_node]
    assert lost

    def owned_again() -> bool:
        now = store.lease_snapshot()
        return not now.unowned() and all(now.leases[p].owner in live for p in lost)

    eventually(owned_again, timeout=30, interval=0.2)
    failover = time.monotonic() - killed_at
    assert failover < LEASE_EXPIRE + 10, failover
    eventually(lambda: all_completed(store, ids), timeout=120, interval=0.5)
    assert_clean_logs(store, ids)


def test_two_clusters_on_one_database_split_the_partitions(
    served: ClusterServer, store: EventStore, tmp_path: Path
) -> None:
    other_cluster = LocalRayCluster(tmp_path / "ray-b")
    try:
        other_cluster.start_head()
        other = _start_server(other_cluster, served.database_url, tmp_path, "orch-cluster")
        try:
            with other.client() as api:
                body = eventually(
                    lambda: (
                        (b := health(api))["unowned_partitions"] == 0
                        and any(h.get("reachable") is False for h in b["hosts"])
                        and all(h["partitions"] for h in b["hosts"])
                        and b
                    ),
                    timeout=90,
                    interval=0.5,
                )
            clusters = Counter(h["cluster"] for h in body["hosts"])
            assert len(clusters) == 2
            ids = submit(served.base_url, waiting_workflow(1, "cluster-a"), 20)
            ids += submit(other.base_url, waiting_workflow(1, "cluster-b"), 20)
            eventually(lambda: all_completed(store, ids), timeout=120, interval=0.5)
            assert_clean_logs(store, ids)
            # the same synchronous request to both servers: the second waits on the first's execution,
            # which runs on the other cluster's host, out of its reach: it follows the log instead
            answers = asyncio.run(_sync_twice(served.base_url, other.base_url, waiting_workflow(2, "twice")))
            assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
            assert answers[0].json()["id"] == answers[1].json()["id"]
            assert [a.json()["status"] for a in answers] == ["completed", "completed"]
        finally:
            kill_session(other.process.pid)
            other.process.wait(timeout=30)
    finally:
        other_cluster.stop()


def _partition(execution_id: str) -> int:
    from orchestrator.core.partitions import partition_of

    return partition_of(execution_id, 64)

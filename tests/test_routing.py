"""The ingress's view of partition owners: new starts prefer a host on the ingress's own node."""

from __future__ import annotations

from pathlib import Path

from orchestrator.core.partitions import LeaseView
from orchestrator.server.routing import PartitionRouter
from orchestrator.store import open_store
from orchestrator.store.base import HostHeartbeat, LeaseSnapshot


def test_local_partitions_are_the_ones_held_by_hosts_on_the_ingress_node(tmp_path: Path) -> None:
    store = open_store(f"sqlite://{tmp_path}/events.db")
    router = PartitionRouter(store, "ns", 4, node_id="node-a")
    assert router.local_partitions() == frozenset()  # no view yet
    router.snapshot = LeaseSnapshot(
        now=100.0,
        leases={
            0: LeaseView("host-a@1", 1, 110.0),
            1: LeaseView("host-b@1", 1, 110.0),
            2: LeaseView("host-a@1", 1, 90.0),  # expired: not held by anyone
            3: LeaseView(None, 0, 0.0),
        },
        hosts=[
            HostHeartbeat("host-a@1", "node-a", "c", 110.0),
            HostHeartbeat("host-b@1", "node-b", "c", 110.0),
        ],
    )
    assert router.local_partitions() == frozenset({0})
    elsewhere = PartitionRouter(store, "ns", 4, node_id="node-c")
    elsewhere.snapshot = router.snapshot
    assert elsewhere.local_partitions() == frozenset()
    store.close()

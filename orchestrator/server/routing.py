"""Which execution host to ask about an execution: a cached view of the partition leases.

The ingress routes every write (start, cancel) and every wait to the host that holds the lease of the
execution's partition. It reads the lease table at most every ``refresh`` seconds (a ``NOT_OWNER``
answer or a dead host forces a new read), and keeps one actor handle per host. An owner it cannot
reach (a host of another Ray cluster sharing the store) is simply not routable from here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import ray

from orchestrator.core.partitions import partition_of
from orchestrator.runtime.host import actor_of
from orchestrator.store.base import EventStore, LeaseSnapshot

log = logging.getLogger(__name__)


class PartitionRouter:
    def __init__(self, store: EventStore, namespace: str, count: int, *, refresh: float = 1.0) -> None:
        self.store = store
        self.namespace = namespace
        self.count = count
        self.refresh = refresh
        self.snapshot: LeaseSnapshot | None = None
        self._read_at = 0.0
        self._handles: dict[str, Any] = {}  # actor name -> handle
        self._unreachable: dict[str, float] = {}  # actor name -> when it was last looked up in vain
        self._reading: asyncio.Task[LeaseSnapshot] | None = None
        self._refused: dict[int, float] = {}  # partition -> until when new starts avoid it

    def partition(self, execution_id: str) -> int:
        return partition_of(execution_id, self.count)

    async def view(self, *, fresh: bool = False) -> LeaseSnapshot:
        """The lease snapshot, read again when older than ``refresh`` (or when ``fresh``); concurrent
        callers share one read."""
        if fresh or self.snapshot is None or time.monotonic() - self._read_at > self.refresh:
            if self._reading is None or self._reading.done():
                self._reading = asyncio.get_running_loop().create_task(self._read())
            await asyncio.shield(self._reading)
        assert self.snapshot is not None
        return self.snapshot

    async def _read(self) -> LeaseSnapshot:
        snapshot = await asyncio.to_thread(self.store.lease_snapshot)
        self.snapshot, self._read_at = snapshot, time.monotonic()
        return snapshot

    def invalidate(self) -> None:
        self._read_at = 0.0

    def forget(self, owner: str) -> None:
        """A host that died: look its name up again next time."""
        self._handles.pop(actor_of(owner), None)
        self.invalidate()

    def owner(self, partition: int) -> str | None:
        """The partition's owner in the current view, None while nobody holds it."""
        if self.snapshot is None:
            return None
        lease = self.snapshot.leases.get(partition)
        if lease is None or not lease.held(self.snapshot.now + (time.monotonic() - self._read_at)):
            return None
        return lease.owner

    def epoch(self, partition: int) -> int | None:
        """The epoch of the partition's lease in the current view, None while nobody holds it."""
        if self.owner(partition) is None:
            return None
        assert self.snapshot is not None
        return self.snapshot.leases[partition].epoch

    def handle(self, owner: str) -> Any | None:
        """The owner's actor in this Ray cluster, or None (another cluster's host, or gone)."""
        name = actor_of(owner)
        handle = self._handles.get(name)
        if handle is not None:
            return handle
        if time.monotonic() - self._unreachable.get(name, -10.0) < 2.0:
            return None  # looked up in vain a moment ago: don't ask the GCS on every request
        try:
            handle = ray.get_actor(name, namespace=self.namespace)
        except ValueError:
            self._unreachable[name] = time.monotonic()
            return None
        self._handles[name] = handle
        return handle

    def refused(self, partition: int, *, seconds: float = 2.0) -> None:
        """Its owner refused a new start there (it is giving the partition back): start elsewhere
        for a while rather than ask again, as the lease still names that owner until it lets go."""
        self._refused[partition] = time.monotonic() + seconds

    def routable(self, partition: int, *, new: bool = False) -> Any | None:
        """The owner to ask, if it is in this Ray cluster; ``new``: for a new start, which also
        avoids partitions whose owner just refused one."""
        if new and self._refused and self._refused.get(partition, 0.0) > time.monotonic():
            return None
        owner = self.owner(partition)
        return self.handle(owner) if owner is not None else None

"""Partition leases and host membership, shared by both backends (see :mod:`orchestrator.core.partitions`).

Three small tables: ``store_meta`` remembers the partition count chosen when the store was created,
``partition_leases`` holds one row per partition (owner, epoch, expiry) and ``execution_hosts`` the
heartbeats of the hosts that share them. Times are seconds on the *store's* clock (PostgreSQL's
``clock_timestamp()``; the machine's clock for SQLite, which lives on one machine), so hosts on
machines whose clocks disagree still agree on who holds what.

Every lease change is a compare-and-set in one statement, and an acquisition always raises the epoch:
an append fenced with an older epoch is refused (:func:`check_fence`), in the append's transaction.
"""

from __future__ import annotations

import abc
import contextlib
from typing import Any

from orchestrator.core.errors import Fenced
from orchestrator.core.partitions import LeaseView
from orchestrator.store.base import Fence, HostHeartbeat, LeaseSnapshot

LEASE_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS store_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """
    CREATE TABLE IF NOT EXISTS partition_leases (
        partition_id INTEGER PRIMARY KEY,
        owner TEXT,
        epoch BIGINT NOT NULL DEFAULT 0,
        expires_at DOUBLE PRECISION NOT NULL DEFAULT 0
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS execution_hosts (
        owner TEXT PRIMARY KEY,
        node_id TEXT NOT NULL,
        cluster TEXT NOT NULL,
        expires_at DOUBLE PRECISION NOT NULL
    )
    """,
)

# A host's heartbeat row is kept this long after it expired, so /health can still name a lost host.
_FORGET_AFTER = 3600.0


def check_fence(conn: Any, placeholder: str, execution_id: str, fence: Fence, *, lock: str = "") -> None:
    """Inside an append's transaction: refuse it unless ``fence`` is its partition's current epoch.

    ``lock`` is ``FOR SHARE`` on PostgreSQL: an acquisition (an UPDATE of the row) then waits for
    this append to commit, so the new owner loads a log that already holds it."""
    row = conn.execute(
        f"SELECT epoch FROM partition_leases WHERE partition_id = {placeholder} {lock}", (fence.partition,)
    ).fetchone()
    if row is None or int(row[0]) != fence.epoch:
        current = "no lease" if row is None else f"epoch {row[0]}"
        raise Fenced(
            f"execution {execution_id!r}: the lease of partition {fence.partition} moved ({current}, this "
            f"writer holds epoch {fence.epoch}); nothing was recorded",
            details={"partition": fence.partition, "epoch": fence.epoch},
        )


class LeaseTables(abc.ABC):
    """The lease half of an event store. A backend supplies a transaction that also tells the store's
    current time, and its placeholder style."""

    placeholder: str

    @abc.abstractmethod
    def _lease_tx(self) -> contextlib.AbstractContextManager[tuple[Any, float]]:
        """``(connection, now)`` in a write transaction; ``now`` in seconds on the store's clock."""

    def partition_count(self, default: int) -> int:
        """The store's partition count: ``default`` if the store has none yet (it is recorded, with
        one free lease row per partition), else the recorded one. Never changes afterwards: moving
        executions between partitions would give them two owners."""
        p = self.placeholder
        with self._lease_tx() as (conn, _):
            row = conn.execute(f"SELECT value FROM store_meta WHERE key = {p}", ("partitions",)).fetchone()
            if row is not None:
                return int(row[0])
            conn.execute(
                f"INSERT INTO store_meta (key, value) VALUES ({p}, {p}) ON CONFLICT (key) DO NOTHING",
                ("partitions", str(default)),
            )
            row = conn.execute(f"SELECT value FROM store_meta WHERE key = {p}", ("partitions",)).fetchone()
            count = int(row[0])
            for partition in range(count):
                conn.execute(
                    f"INSERT INTO partition_leases (partition_id) VALUES ({p}) "
                    "ON CONFLICT (partition_id) DO NOTHING",
                    (partition,),
                )
            return count

    def lease_snapshot(self) -> LeaseSnapshot:
        """Every partition's lease and every recent host heartbeat, with the store's time."""
        with self._lease_tx() as (conn, now):
            leases = conn.execute(
                "SELECT partition_id, owner, epoch, expires_at FROM partition_leases ORDER BY partition_id"
            ).fetchall()
            hosts = conn.execute(
                "SELECT owner, node_id, cluster, expires_at FROM execution_hosts ORDER BY owner"
            ).fetchall()
        return LeaseSnapshot(
            now=now,
            leases={int(r[0]): LeaseView(r[1], int(r[2]), float(r[3])) for r in leases},
            hosts=[HostHeartbeat(r[0], r[1], r[2], float(r[3])) for r in hosts],
        )

    def heartbeat(self, owner: str, *, node_id: str, cluster: str, ttl: float) -> dict[int, int]:
        """Say ``owner`` is alive for ``ttl`` more seconds and renew every lease it holds; returns
        ``{partition: epoch}`` of those leases. A lease renews even if it expired meanwhile: its epoch
        did not change, so nobody else has written under it."""
        p = self.placeholder
        with self._lease_tx() as (conn, now):
            conn.execute(
                f"INSERT INTO execution_hosts (owner, node_id, cluster, expires_at) VALUES ({p}, {p}, {p}, {p}) "
                "ON CONFLICT (owner) DO UPDATE SET node_id = EXCLUDED.node_id, cluster = EXCLUDED.cluster, "
                "expires_at = EXCLUDED.expires_at",
                (owner, node_id, cluster, now + ttl),
            )
            conn.execute(f"DELETE FROM execution_hosts WHERE expires_at < {p}", (now - _FORGET_AFTER,))
            rows = conn.execute(
                f"UPDATE partition_leases SET expires_at = {p} WHERE owner = {p} RETURNING partition_id, epoch",
                (now + ttl, owner),
            ).fetchall()
        return {int(r[0]): int(r[1]) for r in rows}

    def acquire_lease(
        self, partition: int, owner: str, *, ttl: float, steal_from: str | None = None
    ) -> int | None:
        """Take ``partition`` if nobody holds it or its lease expired (or it is held by
        ``steal_from``, an owner known dead); returns the new epoch, or None when someone else holds it."""
        p = self.placeholder
        with self._lease_tx() as (conn, now):
            row = conn.execute(
                f"UPDATE partition_leases SET owner = {p}, epoch = epoch + 1, expires_at = {p} "
                f"WHERE partition_id = {p} AND (owner IS NULL OR expires_at <= {p} OR owner = {p}) "
                "RETURNING epoch",
                (owner, now + ttl, partition, now, steal_from if steal_from is not None else owner),
            ).fetchone()
        return int(row[0]) if row is not None else None

    def release_lease(self, partition: int, owner: str) -> bool:
        """Give ``partition`` back (its executions already dropped); the next owner raises the epoch."""
        p = self.placeholder
        with self._lease_tx() as (conn, _):
            row = conn.execute(
                f"UPDATE partition_leases SET owner = NULL, expires_at = 0 "
                f"WHERE partition_id = {p} AND owner = {p} RETURNING partition_id",
                (partition, owner),
            ).fetchone()
        return row is not None

    def leave(self, owner: str) -> None:
        """A host shutting down: release all its leases and drop its heartbeat, so its partitions
        move at once instead of after the lease expiry."""
        p = self.placeholder
        with self._lease_tx() as (conn, _):
            conn.execute(
                f"UPDATE partition_leases SET owner = NULL, expires_at = 0 WHERE owner = {p}", (owner,)
            )
            conn.execute(f"DELETE FROM execution_hosts WHERE owner = {p}", (owner,))

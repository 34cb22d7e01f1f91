"""Which execution host owns which execution: partitions, and how hosts share them.

Executions map to a fixed number of partitions (chosen when the store is created). Each partition is
leased to one execution host at a time through the store (owner, epoch, expiry); every append carries
its partition's epoch and the store refuses a stale one, so a host that lost a lease can never write
again. This module is the pure part: the mapping, and each host's decision of which partitions to take
or give back, from a snapshot of the leases and of the live hosts. The I/O is in
:mod:`orchestrator.runtime.leases`.

Sharing is by counts (every live host aims at its fair share), not by a hash ring: a host that joins
takes free partitions as the others give their surplus back, and a host that dies leaves its
partitions to expire and be taken. Each host tries free partitions in its own pseudo-random order, so
hosts acquiring at the same moment rarely race for the same one.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

DEFAULT_PARTITIONS = 64


def partition_of(execution_id: str, count: int) -> int:
    """Stable across processes, restarts and machines (unlike ``hash``)."""
    return zlib.crc32(execution_id.encode()) % count


@dataclass(frozen=True)
class LeaseView:
    """One partition's lease as the store last said: ``owner`` None when nobody holds it."""

    owner: str | None
    epoch: int
    expires_at: float

    def held(self, now: float) -> bool:
        return self.owner is not None and self.expires_at > now


@dataclass(frozen=True)
class LeasePlan:
    """What one host should do now: take ``acquire`` (in order, while under its share) and give back
    ``surplus`` of the partitions it owns."""

    share: int
    acquire: tuple[int, ...]
    surplus: int


def fair_share(members: Sequence[str], count: int, me: str) -> int:
    """How many of ``count`` partitions ``me`` should own among the live ``members`` (``me``
    included): an even split, the remainder going to the first members in sorted order."""
    ordered = sorted(set(members) | {me})
    base, extra = divmod(count, len(ordered))
    return base + (1 if ordered.index(me) < extra else 0)


def plan_leases(
    *,
    me: str,
    count: int,
    leases: Mapping[int, LeaseView],
    members: Sequence[str],
    now: float,
    dead_owners: frozenset[str] = frozenset(),
) -> LeasePlan:
    """Decide, for host ``me``, which partitions to try to acquire and how many to give back.

    ``members`` are the hosts whose heartbeat is live. A partition is free when nobody holds it, its
    lease expired, or its owner is known dead (``dead_owners``: a host of this Ray cluster whose actor
    is gone or was restarted, so it cannot write again and need not be waited for)."""
    owned = [p for p, lease in leases.items() if lease.owner == me]
    share = fair_share(members, count, me)
    if len(owned) >= share:
        return LeasePlan(share=share, acquire=(), surplus=len(owned) - share)
    free = [
        p
        for p, lease in leases.items()
        if lease.owner != me and (not lease.held(now) or lease.owner in dead_owners)
    ]
    free.sort(key=lambda p: hashlib.blake2b(f"{me}/{p}".encode(), digest_size=8).digest())
    return LeasePlan(share=share, acquire=tuple(free[: share - len(owned)]), surplus=0)

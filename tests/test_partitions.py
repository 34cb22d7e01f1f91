"""How hosts share partitions: the pure decision each host makes from a lease snapshot."""

from __future__ import annotations

from orchestrator.core.partitions import LeaseView, fair_share, partition_of, plan_leases

FREE = LeaseView(None, 0, 0.0)


def held(owner: str, *, until: float = 100.0, epoch: int = 1) -> LeaseView:
    return LeaseView(owner, epoch, until)


def test_partition_of_is_stable_and_spreads() -> None:
    ids = [f"exec-{n}" for n in range(6400)]
    counts = [0] * 64
    for execution_id in ids:
        counts[partition_of(execution_id, 64)] += 1
    assert partition_of("exec-1", 64) == partition_of("exec-1", 64)
    assert min(counts) > 50 and max(counts) < 150


def test_fair_shares_add_up_to_the_partition_count() -> None:
    members = ["h1", "h2", "h3"]
    assert sum(fair_share(members, 64, m) for m in members) == 64
    assert sorted(fair_share(members, 64, m) for m in members) == [21, 21, 22]
    assert fair_share([], 64, "alone") == 64  # a host always counts itself


def test_a_lone_host_takes_every_free_partition() -> None:
    plan = plan_leases(me="h1", count=4, leases=dict.fromkeys(range(4), FREE), members=["h1"], now=1.0)
    assert sorted(plan.acquire) == [0, 1, 2, 3] and plan.surplus == 0


def test_a_host_that_owns_more_than_its_share_gives_the_surplus_back() -> None:
    leases = {p: held("h1") for p in range(4)}
    plan = plan_leases(me="h1", count=4, leases=leases, members=["h1", "h2"], now=1.0)
    assert plan.share == 2 and plan.surplus == 2 and plan.acquire == ()
    joined = plan_leases(me="h2", count=4, leases=leases, members=["h1", "h2"], now=1.0)
    assert joined.acquire == () and joined.share == 2  # nothing free yet: it waits for the surplus


def test_expired_and_dead_owners_leases_are_free() -> None:
    leases = {0: held("h1"), 1: held("gone", until=0.5), 2: held("dead"), 3: held("dead")}
    plan = plan_leases(me="h2", count=4, leases=leases, members=["h1", "h2"], now=1.0)
    assert plan.acquire == (1,)  # the dead owner's leases still hold: nobody said it is dead
    plan = plan_leases(
        me="h2", count=4, leases=leases, members=["h1", "h2"], now=1.0, dead_owners=frozenset({"dead"})
    )
    assert len(plan.acquire) == 2  # its share
    assert set(plan.acquire) <= {1, 2, 3}  # a live owner's lease is never taken


def test_hosts_prefer_different_free_partitions() -> None:
    leases = dict.fromkeys(range(64), FREE)
    first = plan_leases(me="h1", count=64, leases=leases, members=["h1", "h2"], now=1.0)
    second = plan_leases(me="h2", count=64, leases=leases, members=["h1", "h2"], now=1.0)
    assert len(first.acquire) == len(second.acquire) == 32
    assert len(set(first.acquire) & set(second.acquire)) < 24  # not the same order

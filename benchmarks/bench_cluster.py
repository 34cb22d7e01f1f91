"""What the cluster machinery costs and buys: fencing per append, throughput by host count, failover.

    python benchmarks/bench_cluster.py                 # all three (about 4 minutes)
    python benchmarks/bench_cluster.py --only fencing  # or hosts, failover

- **fencing**: the cost of the lease-epoch check every append makes, in the append's transaction: the
  same one-event append with and without a fence, interleaved (so machine noise hits both alike), on
  SQLite (FULL sync, the default) and on a throwaway PostgreSQL.
- **hosts**: 1-step workflows its hosts must run (a zero-length ``wait``) through HTTP at 32 concurrent clients, with 1, 2 and 4 execution hosts
  on this one node (SQLite). The ratio to 1 host is the figure; absolute numbers move with the machine.
- **failover**: a 3-node Ray cluster (``ray start`` processes) on PostgreSQL with the default leases
  (renew 2 s, expire 10 s). Executions wait on a timer; a worker node is killed with SIGKILL; the
  figures are the time from the kill until every partition has a live owner again, and until the last
  execution of the lost partitions completed (its timer end is subtracted out: the delay it suffered).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

from bench_workflows import EXECUTE, concurrent  # noqa: E402

from orchestrator.core.events import EventRecord  # noqa: E402
from orchestrator.core.partitions import partition_of  # noqa: E402
from orchestrator.store import ExecutionRow, open_store  # noqa: E402
from orchestrator.store.base import EventStore, Fence  # noqa: E402
from tests.fixtures_postgres import _find_binaries, _throwaway_server  # noqa: E402
from tests.ports import free_port  # noqa: E402
from tests.processes import kill_session, start_server_process  # noqa: E402
from tests.ray_nodes import LocalRayCluster  # noqa: E402


def log(message: str) -> None:
    print(f"[bench_cluster] {message}", file=sys.stderr, flush=True)


def _healthy(base_url: str) -> bool:
    try:
        return httpx.get(f"{base_url}/health", timeout=10).status_code == 200
    except httpx.HTTPError:
        return False


def _balanced(base_url: str, hosts: int) -> bool:
    body = httpx.get(f"{base_url}/health", timeout=10).json()
    return len(body.get("hosts", [])) == hosts and all(h["partitions"] for h in body["hosts"])


def _wait(check: Any, timeout: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval)
    return False


# -- fencing ----------------------------------------------------------------------------------------


def _append_pair(store: EventStore, fence: Fence, count: int) -> dict[str, float]:
    plain: list[float] = []
    fenced: list[float] = []
    now = time.time()
    for n in range(count):
        for target, with_fence in ((plain, None), (fenced, fence)):
            execution_id = f"b-{uuid.uuid4().hex}"
            record = EventRecord(
                execution_id=execution_id,
                seq=1,
                type="step.completed",
                step="s",
                payload={"attempt": 1, "output": {"n": n}},
                recorded_at=_utc(now),
            )
            row = ExecutionRow(
                id=execution_id, workflow_name="bench", status="running", last_seq=1, created_at=_utc(now)
            )
            t0 = time.perf_counter()
            store.append(execution_id, [record], projection=row, fence=with_fence)
            target.append(time.perf_counter() - t0)
    return {
        "plain_p50_ms": statistics.median(plain) * 1000,
        "fenced_p50_ms": statistics.median(fenced) * 1000,
        "plain_mean_ms": statistics.fmean(plain) * 1000,
        "fenced_mean_ms": statistics.fmean(fenced) * 1000,
        "extra_p50_ms": (statistics.median(fenced) - statistics.median(plain)) * 1000,
        "extra_mean_ms": (statistics.fmean(fenced) - statistics.fmean(plain)) * 1000,
    }


def _utc(seconds: float) -> Any:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(seconds, UTC)


def _fence_on(store: EventStore) -> Fence:
    store.partition_count(64)
    epoch = store.acquire_lease(0, "bench@1", ttl=3600)
    assert epoch is not None
    return Fence(0, epoch)


def measure_fencing(count: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as root:
        store = open_store(f"sqlite:///{root}/events.db")
        out["sqlite"] = _append_pair(store, _fence_on(store), count)
        store.close()
    binaries = _find_binaries()
    if binaries is None:
        out["postgresql"] = "skipped: no PostgreSQL binaries"
    else:
        with _throwaway_server(*binaries) as url:
            store = open_store(url)
            out["postgresql"] = _append_pair(store, _fence_on(store), count)
            store.close()
    log(f"fencing: {json.dumps(out)}")
    return out


# -- throughput by host count -------------------------------------------------------------------------


# A 1-step workflow its host must run: a transform chain would finish in the ingress and measure no host.
HOST_BOUND: dict[str, Any] = {
    "workflow": {
        "metadata": {"name": "bench-hosts"},
        "spec": {"steps": [{"name": "nap", "type": "wait", "duration": "0s"}]},
    },
    "user": {"id": 1},
}


def completed(response: httpx.Response) -> str | None:
    if response.status_code != 200 or response.json().get("status") != "completed":
        return f"HTTP {response.status_code}: {response.text[:200]}"
    return None


def measure_hosts(counts: list[int], seconds: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for count in counts:
        with tempfile.TemporaryDirectory() as root:
            port = free_port()
            process = start_server_process(
                port,
                Path(root) / "data",
                f"orch-bench-hosts-{count}",
                Path(root) / "server.log",
                env={"ORCH_HOSTS_PER_NODE": str(count)},
            )
            base_url = f"http://127.0.0.1:{port}"
            try:
                if not _wait(lambda url=base_url: _healthy(url), 240, 0.5):
                    raise RuntimeError(f"server with {count} hosts did not start")
                # measure the steady state: the first host takes every partition, then shares them
                if not _wait(lambda url=base_url, n=count: _balanced(url, n), 120, 0.5):
                    raise RuntimeError(f"the partitions never spread over {count} hosts")
                outcome = asyncio.run(
                    concurrent(
                        base_url,
                        "POST",
                        EXECUTE,
                        HOST_BOUND,
                        completed,
                        concurrency=32,
                        count=100_000,
                        seconds=seconds,
                        warmup=200,
                    )
                )
                per_s = len(outcome.latencies) / outcome.elapsed if outcome.elapsed else 0.0
                ordered = sorted(outcome.latencies)
                out[str(count)] = {
                    "per_s": per_s,
                    "p50_ms": statistics.median(ordered) * 1000 if ordered else None,
                    "p99_ms": ordered[int(len(ordered) * 0.99)] * 1000 if ordered else None,
                    "errors": outcome.errors,
                }
                log(f"{count} host(s): {json.dumps(out[str(count)])}")
            finally:
                kill_session(process.pid)
                process.wait(timeout=30)
    base = out.get(str(counts[0]), {}).get("per_s") or 0
    for count in counts:
        out[str(count)]["vs_first"] = out[str(count)]["per_s"] / base if base else None
    return out


# -- failover -------------------------------------------------------------------------------------------


def measure_failover(executions: int, timer_s: float) -> dict[str, Any]:
    binaries = _find_binaries()
    if binaries is None:
        return {"skipped": "no PostgreSQL binaries"}
    with tempfile.TemporaryDirectory() as root, _throwaway_server(*binaries) as url:
        cluster = LocalRayCluster(Path(root) / "ray")
        store = open_store(url)
        process = None
        try:
            cluster.start_head()
            cluster.add_node()
            cluster.add_node()
            port = free_port()
            env = {**cluster.env(), "ORCH_DATABASE_URL": url, "ORCH_PROXY_LOCATION": "HeadOnly"}
            process = start_server_process(
                port, Path(root) / "data", "orch-bench-failover", Path(root) / "server.log", env=env
            )
            base_url = f"http://127.0.0.1:{port}"
            if not _wait(lambda: _healthy(base_url), 240, 0.5):
                raise RuntimeError("server did not start")

            def spread() -> bool:
                hosts = store.lease_snapshot().live_hosts()
                owners = {lease.owner for lease in store.lease_snapshot().leases.values()}
                return len({h.node_id for h in hosts}) == 3 and len(owners - {None}) == len(hosts)

            if not _wait(spread, 120, 0.5):
                detail = httpx.get(f"{base_url}/health", timeout=30).text
                raise RuntimeError(f"partitions never spread over the three nodes: {detail[:3000]}")
            workflow = {
                "metadata": {"name": "failover"},
                "spec": {
                    "steps": [
                        {"name": "nap", "type": "wait", "duration": timer_s},
                        {"name": "after", "type": "transform", "value": 1, "depends_on": ["nap"]},
                    ]
                },
            }
            with httpx.Client(base_url=base_url, timeout=60) as api:
                ids = [
                    api.post(EXECUTE, json={"workflow": workflow, "user": {"id": 1}, "async": True}).json()[
                        "id"
                    ]
                    for _ in range(executions)
                ]
            submitted = time.monotonic()
            before = store.lease_snapshot()
            time.sleep(1.0)
            cluster.nodes[1].kill()
            killed = time.monotonic()
            live_before = {h.owner: h.node_id for h in before.live_hosts()}

            def renewed_owners() -> set[str]:
                snapshot = store.lease_snapshot()
                return {h.owner for h in snapshot.live_hosts()}

            # the killed node's hosts are the ones that stop renewing (known after one expiry)
            _wait(lambda: len(renewed_owners()) < len(live_before), 60, 0.2)
            dead = set(live_before) - renewed_owners()
            lost = {p for p, lease in before.leases.items() if lease.owner in dead}

            def owned_again() -> bool:
                snapshot = store.lease_snapshot()
                return all(
                    snapshot.leases[p].held(snapshot.now) and snapshot.leases[p].owner not in dead
                    for p in lost
                )

            _wait(owned_again, 120, 0.1)
            owned_s = time.monotonic() - killed
            affected = [i for i in ids if partition_of(i, 64) in lost]

            def affected_done() -> bool:
                rows = [store.get_execution(i) for i in affected]
                return all(row is not None and row.status == "completed" for row in rows)

            _wait(affected_done, 300, 0.1)
            done_s = time.monotonic() - killed
            timer_end_after_kill = submitted + timer_s - killed
            result = {
                "nodes": 3,
                "lease_renew_s": 2.0,
                "lease_expire_s": 10.0,
                "executions": executions,
                "lost_partitions": len(lost),
                "affected_executions": len(affected),
                "kill_to_owned_s": owned_s,
                "kill_to_last_affected_completed_s": done_s,
                "timer_end_after_kill_s": timer_end_after_kill,
                "delay_beyond_timer_s": done_s - max(0.0, timer_end_after_kill),
            }
            log(f"failover: {json.dumps(result)}")
            return result
        finally:
            if process is not None:
                kill_session(process.pid)
                process.wait(timeout=30)
            store.close()
            cluster.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", choices=["fencing", "hosts", "failover"], action="append")
    parser.add_argument("--appends", type=int, default=1000, help="fencing: appends of each kind")
    parser.add_argument("--hosts", default="1,2,4", help="host counts to compare")
    parser.add_argument("--seconds", type=float, default=20.0, help="hosts: seconds of load per count")
    parser.add_argument("--executions", type=int, default=60)
    parser.add_argument("--timer", type=float, default=5.0, help="failover: each execution's timer")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    wanted = set(args.only or ["fencing", "hosts", "failover"])
    results: dict[str, Any] = {}
    if "fencing" in wanted:
        results["fencing"] = measure_fencing(args.appends)
    if "hosts" in wanted:
        results["hosts"] = measure_hosts([int(n) for n in args.hosts.split(",")], args.seconds)
    if "failover" in wanted:
        results["failover"] = measure_failover(args.executions, args.timer)
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

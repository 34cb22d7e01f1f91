"""Listing executions at scale: filtered and tenant lists against the unfiltered one, in the store.

    python benchmarks/bench_reads.py                    # 100,000 executions, SQLite
    python benchmarks/bench_reads.py --postgres         # and a throwaway PostgreSQL

Every list endpoint ends in ``EventStore.list_executions`` (a count and one page, newest first). The
figure is each filter's p50 against the unfiltered list's in the same run: the issue's target is under
2x at 100,000 executions. Also the cost of one projection upsert (the write path pays for every index).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent)]

from orchestrator.core.events import EventRecord  # noqa: E402
from orchestrator.store import ExecutionRow, open_store  # noqa: E402
from orchestrator.store.base import EventStore  # noqa: E402
from tests.fixtures_postgres import _find_binaries, _throwaway_server  # noqa: E402

STATUSES = ("completed", "completed", "completed", "failed", "running", "cancelled")
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def populate(store: EventStore, count: int) -> None:
    batch: list[Any] = []
    for n in range(count):
        execution_id = f"e-{n:08d}"
        created = T0 + timedelta(seconds=n)
        record = EventRecord(
            execution_id=execution_id,
            seq=1,
            type="execution.started",
            payload={"workflow": {"name": f"wf-{n % 20}", "steps": []}, "tenant_id": f"tenant-{n % 10}"},
            recorded_at=created,
        )
        row = ExecutionRow(
            id=execution_id,
            workflow_name=f"wf-{n % 20}",
            workflow_id=f"wf-{n % 20}" if n % 2 else None,
            tenant_id=f"tenant-{n % 10}",
            status=STATUSES[n % len(STATUSES)],
            last_seq=1,
            created_at=created,
        )
        batch.append((execution_id, [record], row, None))
        if len(batch) == 2000:
            store.append_batch(batch)
            batch = []
    if batch:
        store.append_batch(batch)


def p50_ms(store: EventStore, queries: int, **filters: Any) -> float:
    times = []
    for _ in range(queries):
        t0 = time.perf_counter()
        page = store.list_executions(limit=10, **filters)
        times.append(time.perf_counter() - t0)
        assert page.rows or filters.get("offset")
    return statistics.median(times) * 1000


def measure(store: EventStore, count: int, queries: int) -> dict[str, Any]:
    began = time.perf_counter()
    populate(store, count)
    filled = time.perf_counter() - began
    cases = {
        "unfiltered": {},
        "tenant": {"tenant_id": "tenant-3"},
        "status": {"status": "failed"},
        "tenant+status": {"tenant_id": "tenant-3", "status": "completed"},
        "workflow_name": {"workflow_name": "wf-7"},
        "workflow_id": {"workflow_id": "wf-7"},
        "tenant, page 200": {"tenant_id": "tenant-3", "offset": 2000},
    }
    out: dict[str, Any] = {"executions": count, "populate_s": filled}
    for name, filters in cases.items():
        out[name] = p50_ms(store, queries, **filters)
    base = out["unfiltered"]
    out["worst_filtered_vs_unfiltered"] = max(out[name] / base for name in cases if name != "unfiltered")
    # the write path: one projection upsert of an existing row (status change), as every append does
    row = store.get_execution("e-00000100")
    assert row is not None
    upserts = []
    for n in range(500):
        changed = row.model_copy(update={"status": "running" if n % 2 else "completed", "last_seq": 1})
        t0 = time.perf_counter()
        store.append(row.id, [], projection=changed)
        upserts.append(time.perf_counter() - t0)
    out["upsert_p50_ms"] = statistics.median(upserts) * 1000
    return out


def measure_server(count: int) -> dict[str, Any]:
    """Through HTTP: GET of a 500-step execution against a 1-step one, and what a client polling the
    500-step one does to everyone else's 1-step p50."""
    import subprocess

    import httpx

    sys.path.insert(0, str(HERE))
    from _server import running_server
    from bench_workflows import EXECUTE, chain_request

    def p50(client: httpx.Client, method: str, path: str, body: Any = None) -> float:
        times = []
        for _ in range(count):
            t0 = time.perf_counter()
            answer = client.request(method, path, json=body)
            times.append(time.perf_counter() - t0)
            assert answer.status_code < 300, answer.text
        return statistics.median(times) * 1000

    with (
        running_server() as server,
        httpx.Client(base_url=server.base_url, timeout=300) as client,
    ):
        small = client.post(EXECUTE, json=chain_request(1)).json()["id"]
        large = client.post(EXECUTE, json=chain_request(500)).json()["id"]
        get_small = p50(client, "GET", f"/api/v1/workflows/executions/{small}")
        get_large = p50(client, "GET", f"/api/v1/workflows/executions/{large}")
        alone = p50(client, "POST", EXECUTE, chain_request(1))
        # the poller is another client: a process of its own, so its parsing of 500-step answers does
        # not slow this one's requests through the GIL (what the server does is what is measured)
        poll = (
            "import httpx\n"
            f"with httpx.Client(base_url={server.base_url!r}, timeout=300) as poller:\n"
            f"    while True: poller.get('/api/v1/workflows/executions/{large}')\n"
        )
        poller = subprocess.Popen([sys.executable, "-c", poll])
        try:
            time.sleep(1.0)  # polling at full speed
            polled = p50(client, "POST", EXECUTE, chain_request(1))
        finally:
            poller.kill()
            poller.wait()
    return {
        "get_1_step_p50_ms": get_small,
        "get_500_steps_p50_ms": get_large,
        "get_500_vs_1": get_large / get_small,
        "post_1_step_p50_ms": alone,
        "post_1_step_p50_ms_with_a_poller": polled,
        "poller_raises_p50_by": polled / alone - 1,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--executions", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--postgres", action="store_true")
    parser.add_argument("--server", action="store_true", help="also GET through HTTP, and a poller's effect")
    parser.add_argument("--store", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args(argv)
    results: dict[str, Any] = {}
    if args.server:
        results["server"] = measure_server(args.queries)
    if not args.store:
        print(json.dumps(results, indent=2))
        return 0
    with tempfile.TemporaryDirectory() as root:
        store = open_store(f"sqlite:///{root}/events.db")
        results["sqlite"] = measure(store, args.executions, args.queries)
        store.close()
    if args.postgres:
        binaries = _find_binaries()
        if binaries is None:
            results["postgresql"] = "skipped: no PostgreSQL binaries"
        else:
            with _throwaway_server(*binaries) as url:
                store = open_store(url)
                results["postgresql"] = measure(store, args.executions, args.queries)
                store.close()
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Durability benchmark: event append throughput, replay throughput from Parquet, and recovery time.

    python benchmarks/bench_durability.py [--quick] [--skip-recovery] [--json out.json]

1. Appends: SQLite (FULL sync, the default) with one event per transaction and with batches of 10, as
   the execution actor batches the events of one decision.
2. Replay: 100,000 events written to Parquet, read back and folded with the server's pure ``evolve``.
3. Recovery: a real server (subprocess) with 1,000 executions waiting on durable timers is killed with
   SIGKILL (every process of its session); the time from the restart until ``/health`` answers (hosts
   answer only after resuming their executions) and the hosts' own recovery time are reported.
Loopback only; every loop is bounded.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from orchestrator.core.decide import Start, StepSucceeded, decide  # noqa: E402
from orchestrator.core.events import EventRecord, to_record  # noqa: E402
from orchestrator.core.state import ExecutionState  # noqa: E402
from orchestrator.core.validation import parse_workflow  # noqa: E402
from orchestrator.store import open_store  # noqa: E402
from orchestrator.store.export import read_events, write_events  # noqa: E402
from orchestrator.store.projection import project  # noqa: E402
from orchestrator.store.replay import replay  # noqa: E402
from tests.ports import free_port  # noqa: E402
from tests.processes import kill_session, start_server_process  # noqa: E402

WORKFLOW = parse_workflow(
    {
        "metadata": {"name": "bench"},
        "spec": {
            "steps": [
                {
                    "name": "fetch",
                    "type": "mcp_query",
                    "connector": "c",
                    "statement": "s",
                    "parameters": {"q": 1},
                },
                {
                    "name": "shape",
                    "type": "transform",
                    "value": "{{ steps.fetch.output }}",
                    "depends_on": ["fetch"],
                },
                {
                    "name": "more",
                    "type": "transform",
                    "value": "{{ steps.shape.output }}",
                    "depends_on": ["shape"],
                },
            ]
        },
    }
)


def execution_events(execution_id: str, now: datetime) -> tuple[list[EventRecord], ExecutionState]:
    """A realistic log: started, an I/O step, two transforms, completion (10 events)."""
    first = decide(ExecutionState(execution_id), Start(now=now, workflow=WORKFLOW, input={"n": 1}))
    second = decide(
        first.state,
        StepSucceeded(
            now=now + timedelta(milliseconds=5), step="fetch", attempt=1, output={"rows": [1, 2, 3]}
        ),
    )
    records = [to_record(execution_id, e) for e in [*first.events, *second.events]]
    return records, second.state


def bench_appends(tmp: Path, executions: int) -> dict[str, float]:
    store = open_store(f"sqlite:///{tmp / 'append.db'}")
    now = datetime.now(UTC)
    logs = [execution_events(f"wf_exec_a{i:08d}", now) for i in range(executions)]
    began = time.perf_counter()
    events = 0
    for records, state in logs:  # one transaction per decision batch (what the actor does)
        store.append(state.execution_id, records, projection=project(state))
        events += len(records)
    batched = time.perf_counter() - began

    single_store = open_store(f"sqlite:///{tmp / 'single.db'}")
    single_n = min(2000, events)
    flat = [(r, s) for records, s in logs for r in records][:single_n]
    began = time.perf_counter()
    for record, state in flat:
        single_store.append(state.execution_id, [record])
    single = time.perf_counter() - began
    store.close()
    single_store.close()
    return {
        "batched_events_per_s": events / batched,
        "batched_transactions_per_s": executions / batched,
        "single_events_per_s": single_n / single,
        "events": events,
    }


def bench_replay(tmp: Path, total_events: int) -> dict[str, float]:
    now = datetime.now(UTC)
    records: list[EventRecord] = []
    index = 0
    while len(records) < total_events:
        log, _ = execution_events(f"wf_exec_r{index:08d}", now)
        records.extend(log)
        index += 1
    path = tmp / "events.parquet"
    began = time.perf_counter()
    write_events(records, path, "parquet")
    write_s = time.perf_counter() - began
    total = len(records)
    del records  # replay streams from the file, as `orchestrate replay` does
    began = time.perf_counter()
    count = sum(1 for _ in read_events(path))
    read_s = time.perf_counter() - began
    began = time.perf_counter()
    executions = completed = 0
    for state in replay(read_events(path)):
        executions += 1
        completed += state.status == "completed"
    replay_s = time.perf_counter() - began
    assert completed == executions and count == total
    return {
        "events": total,
        "executions": executions,
        "write_parquet_events_per_s": total / write_s,
        "read_events_per_s": count / read_s,
        "read_and_fold_events_per_s": count / replay_s,
        "read_and_fold_seconds": replay_s,
        "parquet_bytes": path.stat().st_size,
    }


def _wait_healthy(port: int, timeout: float = 300) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            response = httpx.get(f"http://127.0.0.1:{port}/health", timeout=60)
            if response.status_code == 200:
                return response.json()
        time.sleep(0.2)
    raise TimeoutError("server did not become healthy")


def bench_recovery(tmp: Path, executions: int) -> dict[str, float]:
    data_dir = tmp / "data"
    data_dir.mkdir()
    port = free_port()
    process = start_server_process(port, data_dir, "orchestrator-bench-recovery", tmp / "server.log")
    try:
        _wait_healthy(port)
        body = {
            "workflow": {
                "metadata": {"name": "recovery"},
                "spec": {"steps": [{"name": "nap", "type": "wait", "duration": 600}]},
            },
            "user": {"id": 1},
            "async": True,
        }
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            for _ in range(executions):
                client.post("/api/v1/workflows/execute", json=body).raise_for_status()
    finally:
        kill_session(process.pid)
    began = time.perf_counter()
    process = start_server_process(port, data_dir, "orchestrator-bench-recovery", tmp / "server.log")
    try:
        health = _wait_healthy(port)
        restart_s = time.perf_counter() - began
        # healthy is every partition owned; the hosts resume the executions of partitions they take
        # (some only once the killed server's leases expire) right after: wait for all of them
        deadline = time.monotonic() + 300
        while sum(h.get("recovered") or 0 for h in health["hosts"]) < executions:
            if time.monotonic() > deadline:
                break
            time.sleep(0.2)
            health = _wait_healthy(port)
        resumed_s = time.perf_counter() - began
        resumed = sum(h.get("recovered") or 0 for h in health["hosts"])
        recovery_s = max(h.get("recovery_seconds") or 0.0 for h in health["hosts"])
    finally:
        kill_session(process.pid)
    return {
        "in_flight": executions,
        "resumed": resumed,
        "host_recovery_seconds": recovery_s,
        "restart_to_healthy_seconds": restart_s,
        "restart_to_all_resumed_seconds": resumed_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--skip-recovery", action="store_true", help="no server: appends and replay only")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-durability-") as name:
        tmp = Path(name)
        results["append"] = bench_appends(tmp, 200 if args.quick else 2000)
        results["replay"] = bench_replay(tmp, 10_000 if args.quick else 100_000)
        if not args.skip_recovery:
            results["recovery"] = bench_recovery(tmp, 100 if args.quick else 1000)
    for section, figures in results.items():
        print(f"[{section}]")
        for key, value in figures.items():
            print(f"  {key:32s} {value:,.2f}" if isinstance(value, float) else f"  {key:32s} {value:,}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

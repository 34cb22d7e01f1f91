#!/usr/bin/env python
"""The engine's own per-request work, piece by piece, in one process: no Ray, no HTTP.

What one synchronous ``POST /api/v1/workflows/execute`` of an N-step ``transform`` chain costs in the
ingress and in the execution host, apart from the proxy and the actor hop:

- ingress: request model, ``parse_workflow`` (validation), pickling the ``Start`` trigger for the actor
  call, rendering the reply (``v1_execution`` + JSON);
- host: unpickling the trigger, ``decide`` (the pure core, which runs the whole chain), building event
  records and the projection, the SQLite append (one transaction, fsync with ``synchronous=FULL``),
  pickling the returned ``ExecutionState``.

    python benchmarks/bench_core.py [--count 300] [--steps 1 10]

Compare the total with the end-to-end latency of ``bench_workflows.py`` to see what the proxy, FastAPI and
Ray add. Figures are wall-clock means per operation; run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import pickle
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def timed(fn: Callable[[], Any], count: int, seconds: float = 20.0) -> float:
    """Mean milliseconds per call, after one warm-up call; bounded by ``count`` and ``seconds``."""
    fn()
    deadline = time.perf_counter() + seconds
    done = 0
    started = time.perf_counter()
    while done < count and time.perf_counter() < deadline:
        fn()
        done += 1
    return (time.perf_counter() - started) / max(done, 1) * 1000


def run(steps: int, count: int, synchronous: str) -> list[tuple[str, str, float]]:
    from bench_workflows import chain_request
    from ray import cloudpickle
    from starlette.responses import JSONResponse

    from orchestrator.core.decide import Start, decide
    from orchestrator.core.events import to_record
    from orchestrator.core.ids import new_execution_id
    from orchestrator.core.state import ExecutionState
    from orchestrator.core.validation import parse_workflow
    from orchestrator.runtime.execution import Execution
    from orchestrator.server.api.render import v1_execution
    from orchestrator.server.api.v1 import ExecuteRequest
    from orchestrator.store import open_store
    from orchestrator.store.projection import project

    body = chain_request(steps)
    raw = json.dumps(body).encode()
    workflow = parse_workflow(body["workflow"])
    suffix = "" if synchronous == "FULL" else f"?synchronous={synchronous}"
    store = open_store(f"sqlite:///{tempfile.mkdtemp(prefix='orch-core-')}/orchestrator.db{suffix}")

    def trigger() -> Start:
        return Start(now=datetime.now(UTC), workflow=workflow, input=body["input"], user=body["user"])

    start = trigger()
    start_blob = cloudpickle.dumps(start)
    decision = decide(ExecutionState("wf_exec_x"), start)
    assert decision.state.status == "completed", decision.state.status
    state = decision.state
    state_blob = cloudpickle.dumps(state)

    def append() -> None:
        execution_id = new_execution_id()
        result = decide(ExecutionState(execution_id), trigger())
        records = [to_record(execution_id, event) for event in result.events]
        store.append(execution_id, records, projection=project(result.state))

    def records_only() -> None:
        [to_record("wf_exec_x", event) for event in decision.events]
        project(decision.state)

    class NoRunner:
        async def run(self, state: ExecutionState, command: Any) -> Any:
            raise AssertionError("a transform chain runs no step I/O")

    loop = asyncio.new_event_loop()

    def execution_start() -> None:
        execution = Execution(new_execution_id(), store=store, runner=NoRunner())
        loop.run_until_complete(execution.start(trigger()))

    rows = [
        (
            "ingress",
            "ExecuteRequest from JSON",
            timed(lambda: ExecuteRequest.model_validate_json(raw), count),
        ),
        ("ingress", "parse_workflow (validation)", timed(lambda: parse_workflow(body["workflow"]), count)),
        ("ingress", f"pickle Start ({len(start_blob)} B)", timed(lambda: cloudpickle.dumps(start), count)),
        ("host", "unpickle Start", timed(lambda: pickle.loads(start_blob), count)),
        (
            "host",
            f"decide (pure; {len(decision.events)} events)",
            timed(lambda: decide(ExecutionState("x"), start), count),
        ),
        ("host", "to_record + project", timed(records_only, count)),
        ("host", f"decide + records + append ({synchronous})", timed(append, count)),
        ("host", f"Execution.start, all of it ({synchronous})", timed(execution_start, count)),
        (
            "host",
            f"pickle ExecutionState ({len(state_blob)} B)",
            timed(lambda: cloudpickle.dumps(state), count),
        ),
        ("ingress", "unpickle ExecutionState", timed(lambda: pickle.loads(state_blob), count)),
        ("ingress", "v1_execution + JSONResponse", timed(lambda: JSONResponse(v1_execution(state)), count)),
    ]
    loop.close()
    store.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 10])
    parser.add_argument("--synchronous", default="FULL", choices=["FULL", "NORMAL"])
    args = parser.parse_args()
    sys.path[:0] = [str(HERE), str(HERE.parent)]
    for steps in args.steps:
        rows = run(steps, args.count, args.synchronous)
        print(f"\n{steps}-step transform chain (ms per operation, mean of up to {args.count})")
        for where, name, ms in rows:
            print(f"  {where:8s} {name:48s} {ms:8.3f}")
        engine = sum(
            ms for _, name, ms in rows if not name.startswith(("decide (pure", "to_record", "decide +"))
        )
        print(f"  {'':8s} {'engine total (without the overlapping rows)':48s} {engine:8.3f}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""What checking an API key costs per request (issue: identity and tenant isolation; target: within 0.5 ms).

Two measurements:

1. in process: :meth:`Authenticator.principal` for a key already verified once (the cached path every
   request after the first takes: one indexed read of the key's row on a worker thread, a sha256 and a
   constant-time compare) against a real SQLite store, p50 / p99 over many calls;
2. over HTTP: the 1-step ``transform`` workflow, synchronous, sequential requests, p50 / p99, on a fresh
   server with ``ORCH_AUTH=off`` and then one with ``ORCH_AUTH=api_key`` (a key made with the CLI), same
   machine, same settings otherwise. Serve's own noise on a 2-core machine is of the order of the
   difference, so read (1) for the cost and (2) for "no visible regression".

Usage::

    python benchmarks/bench_auth.py            # both, ~3 minutes
    python benchmarks/bench_auth.py --quick    # fewer requests
    python benchmarks/bench_auth.py --in-process-only
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from _server import running_server, settle  # noqa: E402

REQUEST = {
    "workflow": {
        "metadata": {"name": "bench-auth"},
        "spec": {"steps": [{"name": "s1", "type": "transform", "value": "{{ input.x + 1 }}"}]},
    },
    "input": {"x": 1},
    "user": {"id": "bench"},
}


def summary(seconds: list[float]) -> dict[str, float]:
    ordered = sorted(seconds)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000

    return {"n": len(ordered), "p50_ms": round(pct(0.5), 3), "p99_ms": round(pct(0.99), 3)}


async def in_process(calls: int) -> dict[str, float]:
    from orchestrator.server.auth import Authenticator, generate_key
    from orchestrator.store import open_store

    with tempfile.TemporaryDirectory() as root:
        store = open_store(f"sqlite:///{Path(root) / 'keys.db'}")
        try:
            key, record = generate_key(tenant_id="bench")
            store.create_api_key(record)
            authenticator = Authenticator(store)
            await authenticator.principal(key)  # the one slow check
            timings = []
            for _ in range(calls):
                started = time.perf_counter()
                await authenticator.principal(key)
                timings.append(time.perf_counter() - started)
            for _ in range(50):  # let the last-used write finish before closing the store
                if len(asyncio.all_tasks()) <= 1:
                    break
                await asyncio.sleep(0.02)
        finally:
            store.close()
    return summary(timings)


def over_http(auth: str, requests: int, warmup: int) -> dict[str, Any]:
    os.environ["ORCH_AUTH"] = auth
    with running_server() as server:
        headers: dict[str, str] = {}
        if auth == "api_key":
            command = [sys.executable, "-m", "orchestrator.server.cli", "keys", "create"]
            done = subprocess.run(
                [*command, "--tenant", "bench", "--data-dir", str(server.data_dir)],
                capture_output=True,
                text=True,
                check=True,
            )
            headers["Authorization"] = f"Bearer {done.stdout.splitlines()[-1]}"
        settle()
        timings = []
        with httpx.Client(base_url=server.base_url, headers=headers, timeout=60) as client:
            for index in range(warmup + requests):
                started = time.perf_counter()
                response = client.post("/api/v1/workflows/execute", json=REQUEST)
                elapsed = time.perf_counter() - started
                if response.status_code != 200 or response.json().get("status") != "completed":
                    raise RuntimeError(f"unexpected answer {response.status_code}: {response.text[:300]}")
                if index >= warmup:
                    timings.append(elapsed)
        return {"auth": auth, **summary(timings), "mean_ms": round(statistics.fmean(timings) * 1000, 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--in-process-only", action="store_true")
    parser.add_argument("--json", type=Path, help="write the results here too")
    parser.add_argument("--child", choices=["off", "api_key"], help=argparse.SUPPRESS)
    parser.add_argument("--requests", type=int, default=400, help=argparse.SUPPRESS)
    parser.add_argument("--warmup", type=int, default=50, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(over_http(args.child, args.requests, args.warmup)), flush=True)
        return 0
    results: dict[str, Any] = {"in_process": asyncio.run(in_process(500 if args.quick else 5000))}
    print("key check, cached, in process:", results["in_process"], flush=True)
    if not args.in_process_only:
        requests, warmup = (100, 20) if args.quick else (400, 50)
        for auth in ("off", "api_key"):
            # each server in a process of its own: Ray does not start cleanly twice in one driver
            child = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--child",
                    auth,
                    "--requests",
                    str(requests),
                    "--warmup",
                    str(warmup),
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            results[auth] = json.loads(child.stdout.splitlines()[-1])
            print(f"1-step workflow, auth {auth}:", results[auth], flush=True)
        delta = results["api_key"]["p50_ms"] - results["off"]["p50_ms"]
        results["p50_delta_ms"] = round(delta, 3)
        print(f"p50 difference (api_key - off): {delta:+.3f} ms (target: within 0.5 ms)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

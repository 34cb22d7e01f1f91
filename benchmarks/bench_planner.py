"""Planner overhead: ``POST /api/v1/plan`` with ``execute: false`` for the seed query, offline planner.

What it measures is everything the planner adds to a request except LLM time: HTTP through the Serve
proxy, the ingress, the DeploymentHandle hop to the planner deployment, the catalog (cached agent health),
the offline planner, compiling the plan into a workflow and appending ``plan.created`` to the event store.
The target (issue 4) is p50 <= 20 ms. To say where the time goes it also reports the pure planner in this
process, the server's own ``metadata.planning_time_ms`` (ingress -> planner deployment -> back) and, as a
floor, ``GET /api/v1/plans/{id}`` (proxy, ingress and one store read without any actor hop).

By default it starts its own server the way the integration tests do (a fresh Ray instance, its own data
directory and namespace, a free port on loopback) and stops it afterwards; ``--url`` measures a running
server instead. Requests are sequential and the loop is bounded by ``--requests``. Ray Serve's settings
decide most of the figure, so the fast-path switches of DESIGN.md can be turned on for the run.

    python benchmarks/bench_planner.py --requests 300 [--throughput [--ha-proxy]]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.ports import free_port

SEED_REQUEST: dict[str, Any] = {
    "query": "Plan a business trip from San Francisco to Paris for June 1-7, find flights under $1000 and "
    "4-star hotels near the Eiffel Tower",
    "domain": "travel",
    "execution_mode": "auto",
    "user": {"id": 123, "email": "[email protected]", "role": "user"},
    "context": {
        "budget": 5000,
        "currency": "USD",
        "preferences": {"airline_alliance": "SkyTeam", "hotel_amenities": ["wifi", "breakfast"]},
    },
    "execute": False,
}


def _wait(check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise SystemExit(f"server not healthy within {timeout:g}s")


def _healthy(base_url: str) -> bool:
    try:
        return httpx.get(f"{base_url}/health", timeout=30).status_code == 200
    except httpx.HTTPError:
        return False


# Ray Serve's fast path (DESIGN.md, "Measuring"), read by Ray at import in every process, so set before start.
# Throughput mode: replica-to-replica calls over gRPC, user code on the replica's own loop. The HA proxy is
# opt-in on its own because it binds replica HTTP ports to all interfaces (requests here stay on loopback).
THROUGHPUT_ENV = {"RAY_SERVE_THROUGHPUT_OPTIMIZED": "1"}
HA_PROXY_ENV = {"RAY_SERVE_ENABLE_HA_PROXY": "1"}


@contextmanager
def _own_server(*, throughput: bool, ha_proxy: bool) -> Iterator[str]:
    """A private server on loopback: its own Ray instance, namespace and data directory."""
    port = free_port()
    data_dir = tempfile.mkdtemp(prefix="orch-bench-")
    os.environ.pop("RAY_ADDRESS", None)
    if throughput:
        os.environ.update(THROUGHPUT_ENV)
    if ha_proxy:
        os.environ.update(HA_PROXY_ENV)
    os.environ.update(
        {
            "ORCH_DATA_DIR": data_dir,
            "ORCH_PORT": str(port),
            "ORCH_HOST": "127.0.0.1",
            "ORCH_NAMESPACE": f"orchestrator-bench-{os.getpid()}",
            "ORCH_LLM_PROVIDER": "offline",  # the overhead excludes LLM time by definition
        }
    )
    from orchestrator.server.cli import start_server, stop_server

    start_server(wait=False)
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait(lambda: _healthy(base_url), timeout=300)
        yield base_url
    finally:
        stop_server()
        shutil.rmtree(data_dir, ignore_errors=True)


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def _summary(label: str, values: list[float]) -> str:
    return (
        f"{label:<44} n={len(values):<5} p50={_percentile(values, 0.50):7.2f} ms  "
        f"p90={_percentile(values, 0.90):7.2f} ms  p99={_percentile(values, 0.99):7.2f} ms  "
        f"mean={statistics.fmean(values):7.2f} ms"
    )


def _bench_http(base_url: str, requests: int, warmup: int) -> dict[str, list[float]]:
    """Interleaved with ``GET /api/v1/plans/{id}`` (proxy, ingress and one store read, no actor hop), the
    floor the plan request is compared with, so both see the same machine."""
    times: dict[str, list[float]] = {"plan": [], "planning": [], "get_plan": []}
    with httpx.Client(base_url=base_url, timeout=60) as client:
        plan_id = None
        for index in range(warmup + requests):
            keep = index >= warmup
            started = time.perf_counter()
            response = client.post("/api/v1/plan", json=SEED_REQUEST)
            elapsed = (time.perf_counter() - started) * 1000
            if response.status_code != 200:
                raise SystemExit(f"POST /api/v1/plan answered {response.status_code}: {response.text[:500]}")
            body = response.json()
            plan_id = body["plan_id"]
            if keep:
                times["plan"].append(elapsed)
                times["planning"].append(float(body["metadata"]["planning_time_ms"]))
            started = time.perf_counter()
            client.get(f"/api/v1/plans/{plan_id}").raise_for_status()
            if keep:
                times["get_plan"].append((time.perf_counter() - started) * 1000)
    return times


def _bench_pure(requests: int) -> list[float]:
    import yaml

    from planner import filter_catalog, plan_offline
    from planner.compile import compile_plan

    shipped = Path(__file__).resolve().parents[1] / "agents" / "config" / "default.yaml"
    catalog = filter_catalog(yaml.safe_load(shipped.read_text(encoding="utf-8"))["agents"], "travel")
    times: list[float] = []
    for _ in range(requests):
        started = time.perf_counter()
        plan = plan_offline(
            SEED_REQUEST["query"],
            domain="travel",
            execution_mode="auto",
            context=SEED_REQUEST["context"],
            catalog=catalog,
            today=date.today(),
        )
        compile_plan(plan)
        times.append((time.perf_counter() - started) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="measure a running server instead of starting one")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument(
        "--throughput", action="store_true", help="start the server with RAY_SERVE_THROUGHPUT_OPTIMIZED=1"
    )
    parser.add_argument(
        "--ha-proxy", action="store_true", help="and RAY_SERVE_ENABLE_HA_PROXY=1 (binds all interfaces)"
    )
    args = parser.parse_args()
    requests = max(1, min(args.requests, 100_000))

    print(f"load average before: {os.getloadavg()[0]:.2f} (cores: {os.cpu_count()})")
    pure = _bench_pure(requests)
    if args.url:
        times = _bench_http(args.url.rstrip("/"), requests, args.warmup)
    else:
        with _own_server(throughput=args.throughput, ha_proxy=args.ha_proxy) as base_url:
            times = _bench_http(base_url, requests, args.warmup)
    modes = [name for name, on in (("throughput", args.throughput), ("HA proxy", args.ha_proxy)) if on]
    print(f"Serve mode: {' + '.join(modes) or 'default'}{' (running server)' if args.url else ''}")
    print(_summary("GET /api/v1/plans/{id} (floor: no actor hop)", times["get_plan"]))
    print(_summary("offline planner + compile (in process)", pure))
    print(_summary("planning as the ingress sees it (metadata)", times["planning"]))
    print(_summary("POST /api/v1/plan execute=false (HTTP)", times["plan"]))
    p50 = _percentile(times["plan"], 0.5)
    print(f"target p50 <= 20 ms: {'met' if p50 <= 20 else 'NOT met'} ({p50:.2f} ms)")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""Workflow benchmark through the REST API on loopback (issue 2, "Benchmark"; DESIGN.md, "Measuring").

For each placement (``pooled``, ``dedicated``) and, optionally, with Ray Serve's fast path
(``RAY_SERVE_THROUGHPUT_OPTIMIZED=1`` + ``RAY_SERVE_ENABLE_HA_PROXY=1``), a fresh server (own Ray instance,
free port, temporary data directory, own namespace) is started in a child process and measured over real
HTTP with httpx:

1. latency: p50/p99 of synchronous N-step ``transform`` chains (N = 1, 10; each step adds one to the
   previous step's output), sequential requests after a warm-up;
2. throughput: 1-step workflows from 32 concurrent clients (``httpx.AsyncClient``), executions/s;
3. memory: RSS increase of the execution host processes per in-flight execution, with 1,000 async
   executions parked in a 10-minute ``wait`` step (pooled; measured first, on fresh hosts, then the
   executions are cancelled through the API). Dedicated placement creates one Ray actor (a whole
   process) per execution, so it is measured with a small number of executions and reported per execution
   *including its actor process*;
4. the Serve floor: ``GET`` of an unknown path (the app's 404 envelope: proxy and FastAPI, no actor hop;
   ``/health`` asks every host for its stats) p50 and throughput, to separate proxy cost from engine
   cost.

Every loop is bounded by a count and a time budget. Usage::

    python benchmarks/bench_workflows.py --quick                  # smoke run, a few minutes
    python benchmarks/bench_workflows.py                          # pooled then dedicated
    python benchmarks/bench_workflows.py --fast-proxy both --json results.json  # also Serve's own proxy
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

TARGETS = {
    "chain1_p50_ms": 7.0,
    "chain10_p50_ms": 25.0,
    "throughput_per_s": 200.0,
    "memory_per_execution_kb": 200.0,
}
# DESIGN.md, "Measuring": peers on this kind of machine (2 cores), N-step chains of trivial durable steps.
PEERS = {
    "DBOS+SQLite": {"chain1_p50_ms": 6.6, "chain10_p50_ms": 29.7, "throughput_per_s": 130.0},
    "Restate": {"chain1_p50_ms": 7.3, "chain10_p50_ms": 25.9, "throughput_per_s": 195.0},
    "Temporal dev": {"chain1_p50_ms": 100.0, "chain10_p50_ms": 552.0, "throughput_per_s": 38.0},
}
# DESIGN.md: Ray Serve's own floor (FastAPI ingress, no actor hop), default proxy vs fast path.
SERVE_FLOOR = {
    "default": {"get_p50_ms": 6.2, "get_per_s": 232.0},
    "fast": {"get_p50_ms": 1.9, "get_per_s": 380.0},
}

USER = {"id": "bench", "email": "[email protected]"}
EXECUTE = "/api/v1/workflows/execute"
FLOOR_PATH = "/bench/floor"  # no such route: the app answers its 404 envelope


@dataclass
class Profile:
    """How much to measure. Every phase stops at its count or its time budget, whichever comes first."""

    warmup: int = 30
    latency_count: int = 300
    latency_seconds: float = 60.0
    concurrency: int = 32
    throughput_warmup: int = 128
    throughput_count: int = 6000
    throughput_seconds: float = 30.0
    floor_count: int = 300
    floor_seconds: float = 15.0
    memory_pooled: int = 1000
    memory_dedicated: int = 20
    wait_duration: str = "10m"
    child_timeout: float = 1800.0


FULL = Profile()
QUICK = Profile(
    warmup=5,
    latency_count=40,
    latency_seconds=10.0,
    throughput_warmup=32,
    throughput_count=400,
    throughput_seconds=5.0,
    floor_count=50,
    floor_seconds=5.0,
    memory_pooled=100,
    memory_dedicated=4,
    child_timeout=900.0,
)


# -- workloads -----------------------------------------------------------------------------------------


def chain_request(steps: int, x: int = 0) -> dict[str, Any]:
    """N ``transform`` steps, each adding one to the previous output: the result is ``x + steps``."""
    chain: list[dict[str, Any]] = [{"name": "s1", "type": "transform", "value": "{{ input.x + 1 }}"}]
    for i in range(2, steps + 1):
        chain.append(
            {
                "name": f"s{i}",
                "type": "transform",
                "value": f"{{{{ steps.s{i - 1}.output + 1 }}}}",
                "depends_on": [f"s{i - 1}"],
            }
        )
    return {
        "workflow": {"metadata": {"name": f"bench-chain-{steps}"}, "spec": {"steps": chain}},
        "input": {"x": x},
        "user": USER,
    }


def wait_request(duration: str) -> dict[str, Any]:
    return {
        "workflow": {
            "metadata": {"name": "bench-wait"},
            "spec": {"steps": [{"name": "nap", "type": "wait", "duration": duration}]},
        },
        "user": USER,
        "async": True,
    }


def chain_ok(steps: int, x: int = 0) -> Callable[[httpx.Response], str | None]:
    def check(response: httpx.Response) -> str | None:
        if response.status_code != 200:
            return f"HTTP {response.status_code}: {response.text[:200]}"
        body = response.json()
        if body.get("status") != "completed" or body.get("output") != {"final_result": x + steps}:
            return (
                f"status {body.get('status')!r}, output {body.get('output')!r}, error {body.get('error')!r}"
            )
        return None

    return check


def accepted(response: httpx.Response) -> str | None:
    if response.status_code != 202:
        return f"HTTP {response.status_code}: {response.text[:200]}"
    return None


def healthy(response: httpx.Response) -> str | None:
    return None if response.status_code == 200 else f"HTTP {response.status_code}"


def not_found(response: httpx.Response) -> str | None:
    return None if response.status_code == 404 else f"HTTP {response.status_code}"


# -- statistics and machine load -------------------------------------------------------------------------


def summary(seconds: list[float]) -> dict[str, float]:
    if not seconds:
        return {"n": 0}
    ordered = sorted(seconds)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))] * 1000

    return {
        "n": len(ordered),
        "p50_ms": pct(50),
        "p90_ms": pct(90),
        "p99_ms": pct(99),
        "mean_ms": statistics.fmean(ordered) * 1000,
        "min_ms": ordered[0] * 1000,
        "max_ms": ordered[-1] * 1000,
    }


def cpu_times() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [float(v) for v in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)
    return sum(fields) - idle, sum(fields)


def machine_busy(seconds: float = 2.0) -> float:
    """Fraction of all cores busy over ``seconds`` (0..1)."""
    b0, t0 = cpu_times()
    time.sleep(seconds)
    b1, t1 = cpu_times()
    return (b1 - b0) / max(t1 - t0, 1e-9)


class CpuMeter:
    """CPU over a phase: the whole machine, this process (the HTTP client and Ray driver), the server (this
    process's descendants: the Ray instance) and everything else on the machine ("other"): other test
    runs on a shared machine show up there, and make a phase's figures suspect."""

    def __enter__(self) -> CpuMeter:
        self._machine = cpu_times()
        self._proc = time.process_time()
        self._ours = _our_cpu_seconds()
        self._wall = time.perf_counter()
        return self

    def __exit__(self, *_: object) -> None:
        b1, t1 = cpu_times()
        wall = max(time.perf_counter() - self._wall, 1e-9)
        ours = _our_cpu_seconds()
        self.machine_busy = (b1 - self._machine[0]) / max(t1 - self._machine[1], 1e-9)
        self.client_cores = (time.process_time() - self._proc) / wall
        ours_cores = sum(cpu - self._ours.get(pid, 0.0) for pid, cpu in ours.items()) / wall
        self.server_cores = max(ours_cores - self.client_cores, 0.0)
        self.other_cores = max(self.machine_busy * (os.cpu_count() or 1) - ours_cores, 0.0)

    def asdict(self) -> dict[str, float]:
        return {
            "machine_busy": round(self.machine_busy, 3),
            "client_cores": round(self.client_cores, 3),
            "server_cores": round(self.server_cores, 3),
            "other_cores": round(self.other_cores, 3),
        }


def _our_cpu_seconds() -> dict[int, float]:
    """CPU seconds of this process and its descendants (processes that exit meanwhile are lost)."""
    import _server as srv

    psutil = srv._psutil()
    out: dict[int, float] = {}
    for proc in [psutil.Process(), *srv.descendants()]:
        with contextlib.suppress(Exception):
            times = proc.cpu_times()
            out[proc.pid] = float(times.user + times.system)
    return out


# -- phases ----------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str | None = None
    elapsed: float = 0.0
    results: list[Any] = field(default_factory=list)
    window: tuple[float, float] = (0.0, 0.0)  # wall-clock (epoch) span of the measured requests

    def fail(self, message: str) -> None:
        self.errors += 1
        if self.first_error is None:
            self.first_error = message


def sequential(
    base_url: str,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    check: Callable[[httpx.Response], str | None],
    *,
    warmup: int,
    count: int,
    seconds: float,
) -> Outcome:
    outcome = Outcome()
    with httpx.Client(base_url=base_url, timeout=300) as client:
        for _ in range(warmup):
            client.request(method, path, json=body)
        deadline = time.perf_counter() + seconds
        started = time.perf_counter()
        wall_start = time.time()
        for _ in range(count):
            if time.perf_counter() > deadline:
                break
            t0 = time.perf_counter()
            try:
                response = client.request(method, path, json=body)
                error = check(response)
            except httpx.HTTPError as exc:
                error = repr(exc)
            if error is None:
                outcome.latencies.append(time.perf_counter() - t0)
            else:
                outcome.fail(error)
        outcome.elapsed = time.perf_counter() - started
        outcome.window = (wall_start, time.time())
    return outcome


async def concurrent(
    base_url: str,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    check: Callable[[httpx.Response], str | None],
    *,
    concurrency: int,
    count: int,
    seconds: float,
    warmup: int = 0,
    keep: Callable[[httpx.Response], Any] | None = None,
) -> Outcome:
    """``concurrency`` clients on one connection pool; no new request after ``count`` or ``seconds``."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    outcome = Outcome()
    async with httpx.AsyncClient(base_url=base_url, timeout=300, limits=limits) as client:

        async def run(total: int, deadline: float, record: bool) -> None:
            issued = 0

            async def worker() -> None:
                nonlocal issued
                while issued < total and time.perf_counter() < deadline:
                    issued += 1
                    t0 = time.perf_counter()
                    try:
                        response = await client.request(method, path, json=body)
                        error = check(response)
                    except httpx.HTTPError as exc:
                        response, error = None, repr(exc)
                    if not record:
                        continue
                    if error is None:
                        outcome.latencies.append(time.perf_counter() - t0)
                        if keep is not None and response is not None:
                            outcome.results.append(keep(response))
                    else:
                        outcome.fail(error)

            await asyncio.gather(*(worker() for _ in range(concurrency)))

        if warmup:
            await run(warmup, time.perf_counter() + seconds, record=False)
        started = time.perf_counter()
        await run(count, started + seconds, record=True)
        outcome.elapsed = time.perf_counter() - started
    return outcome


def phase_report(outcome: Outcome, meter: CpuMeter | None = None) -> dict[str, Any]:
    report: dict[str, Any] = {
        **summary(outcome.latencies),
        "errors": outcome.errors,
        "elapsed_s": round(outcome.elapsed, 2),
    }
    if outcome.first_error:
        report["first_error"] = outcome.first_error
    if meter is not None:
        report["cpu"] = meter.asdict()
    if outcome.window[1]:
        report["window"] = outcome.window
    return report


_ACCESS_LOG = re.compile(
    r"^\w+ (?P<at>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) .* -- (?P<method>[A-Z]+) (?P<path>\S+) (?P<status>\d{3}) "
    r"(?P<ms>[\d.]+)ms"
)


def replica_side(phases: dict[str, tuple[str, str, tuple[float, float]]]) -> dict[str, dict[str, float]]:
    """Time spent inside the ingress replica (FastAPI, the engine, the actor hop), from Serve's access
    log, per phase ``name -> (method, route as Serve logs it, wall-clock window)``. The rest of a
    request's latency is the client, HTTP and the proxy. Read at the end of a run: Serve buffers these
    lines (in throughput mode a thousand at a time, so the last few hundred may be missing)."""
    import ray

    try:
        logs = Path(ray._private.worker._global_node.get_logs_dir_path()) / "serve"
    except Exception:
        return {}
    found: dict[str, list[float]] = {name: [] for name in phases}
    for path in logs.glob("replica_*_ingress_*.log*"):
        with open(path, errors="replace") as lines:
            for line in lines:
                match = _ACCESS_LOG.match(line)
                if match is None or match["status"] not in ("200", "202", "404"):
                    continue
                at = datetime.strptime(match["at"], "%Y-%m-%d %H:%M:%S,%f").timestamp()
                for name, (method, route, (start, end)) in phases.items():
                    if match["method"] == method and match["path"] == route and start <= at <= end:
                        found[name].append(float(match["ms"]) / 1000)
    return {name: summary(values) for name, values in found.items() if values}


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def measure_latency(base_url: str, profile: Profile, placement: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    # dedicated: every request creates (and later retires) a Ray actor, so fewer warm-up requests
    warmup = profile.warmup if placement == "pooled" else min(profile.warmup, 3)
    for steps in (1, 10):
        with CpuMeter() as meter:
            outcome = sequential(
                base_url,
                "POST",
                EXECUTE,
                chain_request(steps),
                chain_ok(steps),
                warmup=warmup,
                count=profile.latency_count,
                seconds=profile.latency_seconds,
            )
        out[f"chain{steps}"] = phase_report(outcome, meter)
        log(f"chain of {steps}: {json.dumps(out[f'chain{steps}'])}")
    return out


def measure_breakdown(server: Any, profile: Profile) -> dict[str, Any]:
    """Pieces of the request path, to subtract from the end-to-end figures: a bare actor call to a host
    (driver -> a pooled host's ``stats``), and ``GET`` of a finished execution (proxy + FastAPI + a store read
    and fold, no actor hop)."""
    import ray

    host = ray.get_actor(host_names(server.namespace)[0], namespace=server.namespace)
    for _ in range(10):
        ray.get(host.stats.remote())
    calls: list[float] = []
    deadline = time.perf_counter() + profile.floor_seconds
    for _ in range(profile.floor_count):
        if time.perf_counter() > deadline:
            break
        t0 = time.perf_counter()
        ray.get(host.stats.remote())
        calls.append(time.perf_counter() - t0)
    execution_id = httpx.post(f"{server.base_url}{EXECUTE}", json=chain_request(1), timeout=300).json()["id"]
    get = sequential(
        server.base_url,
        "GET",
        f"/api/v1/workflows/executions/{execution_id}",
        None,
        healthy,
        warmup=profile.warmup,
        count=profile.floor_count,
        seconds=profile.floor_seconds,
    )
    report = {"actor_call": summary(calls), "get_execution": phase_report(get)}
    log(
        f"breakdown: actor call p50 {report['actor_call'].get('p50_ms', 0):.2f} ms, "
        f"GET execution p50 {report['get_execution'].get('p50_ms', 0):.2f} ms"
    )
    return report


def measure_throughput(
    base_url: str, profile: Profile, placement: str, profile_dir: Path | None = None
) -> dict[str, Any]:
    import _server as srv

    with srv.py_spy(profile_dir, "throughput", profile.throughput_seconds) as files, CpuMeter() as meter:
        outcome = asyncio.run(
            concurrent(
                base_url,
                "POST",
                EXECUTE,
                chain_request(1),
                chain_ok(1),
                concurrency=profile.concurrency,
                count=profile.throughput_count,
                seconds=profile.throughput_seconds,
                # dedicated: each warm-up request creates a Ray actor too, a few are enough
                warmup=profile.throughput_warmup if placement == "pooled" else profile.concurrency // 4,
            )
        )
    report = phase_report(outcome, meter)
    report["per_s"] = len(outcome.latencies) / outcome.elapsed if outcome.elapsed else 0.0
    report["concurrency"] = profile.concurrency
    if files:
        report["profiles"] = [str(path) for path in files]
    log(f"throughput: {json.dumps(report)}")
    return report


def measure_floor(base_url: str, profile: Profile) -> dict[str, Any]:
    """GET of an unknown path: the proxy and the FastAPI app down to its 404 envelope, with no actor hop
    and no store (``/health`` is not a floor: it asks every host for its stats)."""
    with CpuMeter() as seq_meter:
        seq = sequential(
            base_url,
            "GET",
            FLOOR_PATH,
            None,
            not_found,
            warmup=profile.warmup,
            count=profile.floor_count,
            seconds=profile.floor_seconds,
        )
    with CpuMeter() as meter:
        conc = asyncio.run(
            concurrent(
                base_url,
                "GET",
                FLOOR_PATH,
                None,
                not_found,
                concurrency=profile.concurrency,
                count=profile.floor_count * 10,
                seconds=profile.floor_seconds,
                warmup=profile.concurrency * 2,
            )
        )
    report = {
        "sequential": phase_report(seq, seq_meter),
        "concurrent": phase_report(conc, meter),
        "per_s": len(conc.latencies) / conc.elapsed if conc.elapsed else 0.0,
    }
    log(f"GET floor (404): p50 {report['sequential'].get('p50_ms', 0):.2f} ms, {report['per_s']:.0f}/s")
    return report


def host_names(namespace: str) -> list[str]:
    """The pooled hosts (``orch-host-<node>-<i>``) of a server."""
    import ray

    return sorted(
        str(actor["name"])
        for actor in ray.util.list_named_actors(all_namespaces=True)
        if actor.get("namespace") == namespace and str(actor.get("name", "")).startswith("orch-host-")
    )


def host_stats(namespace: str) -> list[dict[str, Any]]:
    """Ask the pooled hosts how many executions they hold."""
    import ray

    return [
        ray.get(ray.get_actor(name, namespace=namespace).stats.remote(), timeout=60)
        for name in host_names(namespace)
    ]


def live_pooled(namespace: str) -> int:
    return sum(s["live_executions"] for s in host_stats(namespace))


def dedicated_actor_count(namespace: str) -> int:
    import ray

    return sum(
        1
        for actor in ray.util.list_named_actors(all_namespaces=True)
        if actor.get("namespace") == namespace and str(actor.get("name", "")).startswith("orch-exec-")
    )


def until(check: Callable[[], bool], seconds: float, interval: float = 0.5) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval)
    return check()


def submit_waits(base_url: str, count: int, duration: str, concurrency: int) -> Outcome:
    return asyncio.run(
        concurrent(
            base_url,
            "POST",
            EXECUTE,
            wait_request(duration),
            accepted,
            concurrency=concurrency,
            count=count,
            seconds=300.0,
            keep=lambda response: response.json()["id"],
        )
    )


def cancel_all(base_url: str, ids: list[str], concurrency: int, seconds: float = 180.0) -> dict[str, Any]:
    """Cancel the parked executions (bounded in time), so that their timers never fire later."""

    async def run() -> tuple[int, int]:
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        deadline = time.perf_counter() + seconds
        pending = list(ids)
        done = failed = 0
        async with httpx.AsyncClient(base_url=base_url, timeout=60, limits=limits) as client:

            async def worker() -> None:
                nonlocal done, failed
                while pending and time.perf_counter() < deadline:
                    execution_id = pending.pop()
                    try:
                        response = await client.post(f"/api/v1/workflows/executions/{execution_id}/cancel")
                        ok = response.status_code in (202, 409)
                    except httpx.HTTPError:
                        ok = False
                    done += ok
                    failed += not ok

            await asyncio.gather(*(worker() for _ in range(concurrency)))
        return done, failed

    started = time.perf_counter()
    done, failed = asyncio.run(run())
    elapsed = time.perf_counter() - started
    return {
        "cancelled": done,
        "failed": failed,
        "elapsed_s": round(elapsed, 2),
        "per_s": done / max(elapsed, 1e-9),
    }


def db_bytes(data_dir: Path) -> int:
    return sum(p.stat().st_size for p in data_dir.glob("orchestrator.db*") if p.is_file())


def measure_memory_pooled(server: Any, profile: Profile) -> dict[str, Any]:
    """RSS of the host processes with ``count`` executions parked in a ``wait`` step, minus before.

    Runs on fresh hosts (before the latency and throughput phases, whose finished executions would leave
    freed heap behind that new executions reuse, hiding their cost), after a warm-up batch that loads
    every code path. Measured in four batches, so that the slope can be checked against the average.
    """
    import _server as srv

    count = profile.memory_pooled
    hosts = srv.host_processes()
    warm = submit_waits(server.base_url, profile.concurrency, profile.wait_duration, profile.concurrency)
    ids: list[str] = list(warm.results)
    until(lambda: live_pooled(server.namespace) >= len(ids), 60)
    time.sleep(1.0)
    live0 = live_pooled(server.namespace)
    before = srv.total(srv.memory_of(hosts))
    cluster_before = srv.total(srv.memory_of(srv.descendants()))
    disk_before = db_bytes(server.data_dir)

    checkpoints: list[dict[str, float]] = []
    submit_latencies: list[float] = []
    errors = 0
    batches = 4
    for index in range(batches):
        size = count // batches + (1 if index < count % batches else 0)
        outcome = submit_waits(server.base_url, size, profile.wait_duration, profile.concurrency)
        ids += outcome.results
        submit_latencies += outcome.latencies
        errors += outcome.errors
        target = live0 + len(ids) - len(warm.results)
        until(lambda target=target: live_pooled(server.namespace) >= target, 120)
        time.sleep(1.0)  # let the hosts settle
        memory = srv.total(srv.memory_of(hosts))
        checkpoints.append(
            {
                "in_flight": live_pooled(server.namespace) - live0,
                "rss_delta_mb": (memory.rss - before.rss) / 2**20,
                "uss_delta_mb": (memory.uss - before.uss) / 2**20,
            }
        )
    after = srv.total(srv.memory_of(hosts))
    cluster_after = srv.total(srv.memory_of(srv.descendants()))
    in_flight = max(int(checkpoints[-1]["in_flight"]), 1)
    half = checkpoints[batches // 2 - 1]
    slope_n = max(in_flight - half["in_flight"], 1)
    report: dict[str, Any] = {
        "executions": count,
        "in_flight": in_flight,
        "submit": {**summary(submit_latencies), "errors": errors},
        "hosts": len(hosts),
        "host_rss_before_mb": before.rss / 2**20,
        "host_rss_after_mb": after.rss / 2**20,
        "per_execution_kb": (after.rss - before.rss) / in_flight / 1024,
        "per_execution_uss_kb": (after.uss - before.uss) / in_flight / 1024,
        "second_half_slope_kb": (checkpoints[-1]["rss_delta_mb"] - half["rss_delta_mb"]) * 1024 / slope_n,
        "cluster_rss_delta_per_execution_kb": (cluster_after.rss - cluster_before.rss) / in_flight / 1024,
        "disk_per_execution_kb": (db_bytes(server.data_dir) - disk_before) / in_flight / 1024,
        "checkpoints": checkpoints,
    }
    report.update(measure_heap_pooled(server, profile, ids))
    report["cancel"] = cancel_all(server.base_url, ids, profile.concurrency)
    until(lambda: live_pooled(server.namespace) == 0, 60)
    report["live_after_cancel"] = live_pooled(server.namespace)
    log(f"memory (pooled): {json.dumps(report)}")
    return report


class HostHeaps:
    """What the hosts' Python heaps hold beyond a starting point, traced inside the hosts.

    The hosts' RSS also counts their Ray worker growing to its steady size: measured on a fresh host,
    1,000 calls of a method that returns a string added 8.3 KB of RSS per call, the next thousands 2.8,
    1.9 and then nothing. Over the first 500 executions of a fresh server that growth is most of the RSS
    delta; the traced heap is what the executions themselves hold (nothing of theirs lives outside
    Python: their logs are in the store)."""

    def __init__(self, namespace: str) -> None:
        import ray

        # defined here, not at module level, so that they travel by value: the hosts cannot import this file
        def trace(actor: Any) -> None:
            import gc
            import tracemalloc

            gc.collect()
            tracemalloc.start()
            actor._bench_heap = tracemalloc.take_snapshot()

        def grown(actor: Any, stop: bool) -> int:
            import gc
            import tracemalloc

            gc.collect()
            diff = tracemalloc.take_snapshot().compare_to(actor._bench_heap, "filename")
            if stop:
                tracemalloc.stop()
            return sum(stat.size_diff for stat in diff)

        self._grown = grown
        self.hosts = [ray.get_actor(name, namespace=namespace) for name in host_names(namespace)]
        ray.get([host.__ray_call__.remote(trace) for host in self.hosts], timeout=60)

    def grown(self, *, stop: bool = False) -> int:
        """Bytes the hosts' heaps hold now beyond the start (``stop``: and stop tracing)."""
        import ray

        calls = [host.__ray_call__.remote(self._grown, stop) for host in self.hosts]
        return sum(ray.get(calls, timeout=120))


def measure_heap_pooled(server: Any, profile: Profile, ids: list[str]) -> dict[str, float]:
    """The hosts' Python heap per parked execution (:class:`HostHeaps`), over one more batch submitted
    after the RSS was measured (tracing costs RSS of its own): right after the batch, and once the
    hosts' live feeds dropped its records (kept a few seconds for streams that may open)."""
    from orchestrator.runtime.feed import UNWATCHED_KEEP_SECONDS

    live0 = live_pooled(server.namespace)
    heap = HostHeaps(server.namespace)
    outcome = submit_waits(
        server.base_url, profile.memory_pooled // 2, profile.wait_duration, profile.concurrency
    )
    ids += outcome.results
    until(lambda: live_pooled(server.namespace) >= live0 + len(outcome.results), 120)
    now = heap.grown()
    time.sleep(UNWATCHED_KEEP_SECONDS + 2)
    settled = heap.grown(stop=True)
    parked = max(live_pooled(server.namespace) - live0, 1)
    return {
        "heap_per_execution_kb": now / parked / 1024,
        "heap_settled_per_execution_kb": settled / parked / 1024,
    }


def measure_memory_dedicated(server: Any, profile: Profile) -> dict[str, Any]:
    """Dedicated placement: one actor process per execution, so a few of them, each counted whole."""
    import _server as srv

    count = profile.memory_dedicated
    before_pids = {proc.pid for proc in srv.host_processes()}
    cluster_before = srv.total(srv.memory_of(srv.descendants()))

    outcome = submit_waits(server.base_url, count, profile.wait_duration, concurrency=4)
    new: list[Any] = []

    def all_started() -> bool:
        nonlocal new
        new = [proc for proc in srv.host_processes() if proc.pid not in before_pids]
        return len(new) >= len(outcome.results)

    until(all_started, 180)
    time.sleep(2.0)
    memory = srv.memory_of(new)
    cluster_after = srv.total(srv.memory_of(srv.descendants()))
    n = max(len(memory), 1)
    report: dict[str, Any] = {
        "executions": count,
        "accepted": len(outcome.results),
        "actor_processes": len(memory),
        "submit": phase_report(outcome),
        "per_execution_kb": srv.total(memory).rss / n / 1024,
        "per_execution_uss_kb": srv.total(memory).uss / n / 1024,
        "cluster_rss_delta_per_execution_kb": (cluster_after.rss - cluster_before.rss) / n / 1024,
        "note": "dedicated: RSS of each execution's own ExecutionHost actor process (whole process)",
    }
    report["cancel"] = cancel_all(server.base_url, list(outcome.results), 4)
    until(lambda: dedicated_actor_count(server.namespace) == 0, 60, interval=1.0)  # actors retire 2 s after
    report["actors_after_cancel"] = dedicated_actor_count(server.namespace)
    log(f"memory (dedicated): {json.dumps(report)}")
    return report


def fast_proxy_status(server: Any) -> dict[str, Any]:
    """Did the server take the fast path? Its HAProxy processes, and who listens on the port."""
    import _server as srv

    haproxy = [proc for proc in srv.descendants() if "haproxy" in srv.title(proc)]
    return {"haproxy_processes": len(haproxy), "listener": srv.listener_of(server.port)}


# -- one configuration, in a child process --------------------------------------------------------------


def child_main(
    placement: str, fast_proxy: bool, profile: Profile, out: Path, profile_dir: Path | None = None
) -> None:
    # the code under test: the working tree, or a snapshot of a commit (--source), which the parent put
    # first on PYTHONPATH (inherited by every Ray worker) and made the working directory
    sys.path[:0] = [str(HERE), os.getcwd()]
    import _server as srv

    extra = json.loads(os.environ.get("BENCH_EXTRA_ENV", "{}"))
    result: dict[str, Any] = {
        "placement": placement,
        "fast_proxy": fast_proxy,
        "extra_env": extra,
        "ok": False,
    }
    try:
        with srv.running_server(placement=placement, fast_proxy=fast_proxy) as server:
            import ray

            result["ray_version"] = ray.__version__
            result["startup_s"] = round(server.startup_s, 1)
            result["proxy"] = fast_proxy_status(server)
            log(f"{placement} fast_proxy={fast_proxy}: up in {server.startup_s:.1f}s; {result['proxy']}")
            result["machine_busy_before"] = round(machine_busy(2.0), 3)
            settled = result["settled_s"] = {}

            def settle(phase: str) -> None:
                settled[phase] = round(srv.settle(), 1)

            settle("floor")
            result["floor"] = measure_floor(server.base_url, profile)
            # memory first, on fresh hosts: see measure_memory_pooled
            settle("memory")
            if placement == "pooled":
                result["memory"] = measure_memory_pooled(server, profile)
            else:
                result["memory"] = measure_memory_dedicated(server, profile)
            settle("latency")
            result["latency"] = measure_latency(server.base_url, profile, placement)
            result["breakdown"] = measure_breakdown(server, profile)
            settle("throughput")
            result["throughput"] = measure_throughput(
                server.base_url,
                profile,
                placement,
                profile_dir / f"{placement}-{'fast' if fast_proxy else 'default'}" if profile_dir else None,
            )
            # the floor again, at the end: after start-up it varies with what the server is still doing
            settle("floor_end")
            with CpuMeter() as meter:
                end = sequential(
                    server.base_url,
                    "GET",
                    FLOOR_PATH,
                    None,
                    not_found,
                    warmup=profile.warmup,
                    count=profile.floor_count,
                    seconds=profile.floor_seconds,
                )
            result["floor_end"] = phase_report(end, meter)
            phases = {
                # Serve logs the matched route; an unmatched path is logged as "/"
                "floor": ("GET", "/", result["floor"]["sequential"].get("window", (0.0, 0.0))),
                "floor_end": ("GET", "/", result["floor_end"].get("window", (0.0, 0.0))),
                "chain1": ("POST", EXECUTE, result["latency"]["chain1"].get("window", (0.0, 0.0))),
                "chain10": ("POST", EXECUTE, result["latency"]["chain10"].get("window", (0.0, 0.0))),
            }
            result["replica_side"] = replica_side(phases)
            log(f"inside the ingress replica: {json.dumps(result['replica_side'])}")
            result["ok"] = True
    except Exception as exc:
        import traceback

        result["error"] = f"{type(exc).__name__}: {exc}"
        result["traceback"] = traceback.format_exc()[-4000:]
        log(f"FAILED: {result['error']}")
    out.write_text(json.dumps(result, indent=2, default=str))


def prepare_source(source: str, workdir: Path) -> tuple[Path, dict[str, Any]]:
    """The code to benchmark: the working tree as it is, or ``git archive`` of a commit (``head`` or a rev),
    so that a run is not disturbed by edits made to the working tree while it runs."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True
        ).stdout

    info: dict[str, Any] = {"source": source}
    with contextlib.suppress(Exception):
        info["head"] = git("rev-parse", "HEAD").strip()
        info["worktree_dirty"] = bool(git("status", "--porcelain", "--untracked-files=no").strip())
    if source == "worktree":
        return ROOT, info
    rev = "HEAD" if source == "head" else source
    info["commit"] = git("rev-parse", rev).strip()
    target = workdir / "src"
    target.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target, info


def run_child(
    placement: str,
    fast_proxy: bool,
    quick: bool,
    profile: Profile,
    workdir: Path,
    source: Path,
    profile_dir: Path | None = None,
    extra_env: dict[str, str] | None = None,
) -> dict[str, Any]:
    label = f"{placement}{'' if fast_proxy else ' + Serve proxy'}"
    tag = "-".join(f"{k}={v}" for k, v in (extra_env or {}).items())
    out = workdir / f"{placement}-{'fast' if fast_proxy else 'default'}{'-' + tag if tag else ''}.json"
    log_path = out.with_suffix(".log")
    command = [sys.executable, str(Path(__file__).resolve()), "--child", placement]
    if fast_proxy:
        command.append("--child-fast-proxy")
    if quick:
        command.append("--quick")
    command += ["--child-out", str(out)]
    if profile_dir is not None:
        command += ["--profile", str(profile_dir.resolve())]
    log(f"{label}: starting a fresh server (log: {log_path})")
    with open(log_path, "w") as log_file:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(source), env.get("PYTHONPATH")]))
        env.update(extra_env or {})
        env["BENCH_EXTRA_ENV"] = json.dumps(extra_env or {})
        proc = subprocess.Popen(
            command, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True, cwd=source, env=env
        )
        try:
            proc.wait(timeout=profile.child_timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)  # our own child's process group
            proc.wait(timeout=60)
    if not out.exists():
        tail = log_path.read_text(errors="replace")[-3000:]
        return {
            "placement": placement,
            "fast_proxy": fast_proxy,
            "ok": False,
            "error": "no result",
            "log": tail,
        }
    result: dict[str, Any] = json.loads(out.read_text())
    result["log"] = str(log_path)
    for line in log_path.read_text(errors="replace").splitlines():
        if line.startswith("[bench "):
            print(line, file=sys.stderr)
    return result


# -- the table ---------------------------------------------------------------------------------------------


def _get(result: dict[str, Any], *path: str) -> Any:
    value: Any = result
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def _fmt(value: float | None, unit: str, target: float | None = None, higher: bool = False) -> str:
    if value is None:
        return "-"
    if float(value).is_integer() and not unit:
        text = f"{int(value)}"
    else:
        text = f"{value:,.1f} {unit}" if value < 100 else f"{value:,.0f} {unit}"
    if target is not None:
        good = value >= target if higher else value <= target
        text += " ok" if good else " MISS"
    return text


def table(results: list[dict[str, Any]]) -> str:
    labels = [
        f"{r['placement']}{'' if r.get('fast_proxy', True) else ' +serve-proxy'}"
        + "".join(
            f" {k.removeprefix('ORCH_').removeprefix('RAY_SERVE_')}={v}"
            for k, v in r.get("extra_env", {}).items()
        )
        for r in results
    ]
    rows: list[tuple[str, list[str], str, list[str]]] = []

    def row(
        name: str,
        getter: Callable[[dict[str, Any]], float | None],
        unit: str,
        target_key: str | None = None,
        higher: bool = False,
        target_text: str = "",
    ) -> None:
        target = TARGETS.get(target_key) if target_key else None
        cells = [_fmt(getter(r), unit, target, higher) for r in results]
        peers = [_fmt(PEERS[p].get(target_key), unit) if target_key else "" for p in PEERS]
        if target is not None:
            target_text = f"{'>=' if higher else '<='} {target:g} {unit}"
        rows.append((name, cells, target_text, peers))

    row("1-step p50", lambda r: _get(r, "latency", "chain1", "p50_ms"), "ms", "chain1_p50_ms")
    row("1-step p99", lambda r: _get(r, "latency", "chain1", "p99_ms"), "ms")
    row("10-step p50", lambda r: _get(r, "latency", "chain10", "p50_ms"), "ms", "chain10_p50_ms")
    row("10-step p99", lambda r: _get(r, "latency", "chain10", "p99_ms"), "ms")
    row("1-step /s (32 clients)", lambda r: _get(r, "throughput", "per_s"), "/s", "throughput_per_s", True)
    row("  p50 under load", lambda r: _get(r, "throughput", "p50_ms"), "ms")
    row("  machine CPU busy", lambda r: _pct(_get(r, "throughput", "cpu", "machine_busy")), "%")
    row("  server CPU (cores)", lambda r: _get(r, "throughput", "cpu", "server_cores"), "")
    row("  client CPU (cores)", lambda r: _get(r, "throughput", "cpu", "client_cores"), "")
    row("  other load (cores)", lambda r: _get(r, "throughput", "cpu", "other_cores"), "")
    row(
        "latency phases: other load",
        lambda r: _max_other(r, ("latency", "chain1"), ("latency", "chain10")),
        "",
    )
    row(
        "memory / in-flight exec",
        lambda r: _get(r, "memory", "per_execution_kb"),
        "KB",
        "memory_per_execution_kb",
    )
    row("  (USS, private)", lambda r: _get(r, "memory", "per_execution_uss_kb"), "KB")
    row("  slope, 2nd half", lambda r: _get(r, "memory", "second_half_slope_kb"), "KB")
    row(
        "  executions measured",
        lambda r: _get(r, "memory", "in_flight") or _get(r, "memory", "actor_processes"),
        "",
    )
    row("  event store on disk", lambda r: _get(r, "memory", "disk_per_execution_kb"), "KB")
    row(
        "GET 404 p50 (Serve floor)",
        lambda r: _get(r, "floor", "sequential", "p50_ms"),
        "ms",
        target_text="Serve: 6.2 / 1.9 fast",
    )
    row("  again at the end", lambda r: _get(r, "floor_end", "p50_ms"), "ms")
    row(
        "GET 404 /s (Serve floor)",
        lambda r: _get(r, "floor", "per_s"),
        "/s",
        target_text="Serve: 232 / 380 fast",
    )
    row("1-step p50 inside ingress", lambda r: _get(r, "replica_side", "chain1", "p50_ms"), "ms")
    row("10-step p50 inside ingress", lambda r: _get(r, "replica_side", "chain10", "p50_ms"), "ms")
    row("GET 404 p50 inside ingress", lambda r: _get(r, "replica_side", "floor", "p50_ms"), "ms")
    row("  again at the end", lambda r: _get(r, "replica_side", "floor_end", "p50_ms"), "ms")
    row("actor call p50 (driver->host)", lambda r: _get(r, "breakdown", "actor_call", "p50_ms"), "ms")
    row("GET execution p50", lambda r: _get(r, "breakdown", "get_execution", "p50_ms"), "ms")
    row("errors", lambda r: float(_errors(r)) if r.get("ok") else None, "")
    row("server start-up", lambda r: r.get("startup_s"), "s")

    header = ["metric", *labels, "target", *PEERS]
    body = [[name, *cells, target, *peers] for name, cells, target, peers in rows]
    widths = [max(len(str(line[i])) for line in [header, *body]) for i in range(len(header))]
    lines = [" | ".join(str(c).ljust(w) for c, w in zip(header, widths, strict=True))]
    lines.append("-+-".join("-" * w for w in widths))
    lines += [" | ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)) for line in body]
    notes = []
    for r, label in zip(results, labels, strict=True):
        if not r.get("ok"):
            notes.append(f"{label}: FAILED: {r.get('error')}")
        if r.get("placement") == "dedicated" and r.get("memory"):
            m = r["memory"]
            notes.append(
                f"{label}: memory is per execution INCLUDING its own actor process "
                f"({m.get('actor_processes')} in-flight executions, not 1,000: one process each)"
            )
        other = _max_other(r, ("latency", "chain1"), ("latency", "chain10"), ("throughput",))
        if other is not None and other > 0.2:
            notes.append(
                f"{label}: other processes on the machine used up to {other:.2f} cores during a phase: "
                "figures are pessimistic, re-run on a quiet machine"
            )
        if r.get("fast_proxy") and r.get("proxy"):
            notes.append(f"{label}: {r['proxy']}")
    return "\n".join([*lines, "", *notes])


def _max_other(result: dict[str, Any], *paths: tuple[str, ...]) -> float | None:
    values = [_get(result, *path, "cpu", "other_cores") for path in paths]
    known = [float(v) for v in values if v is not None]
    return max(known) if known else None


def _pct(value: float | None) -> float | None:
    return None if value is None else value * 100


def _errors(result: dict[str, Any]) -> int:
    total = 0
    for path in (("latency", "chain1"), ("latency", "chain10"), ("throughput",), ("floor", "concurrent")):
        total += int(_get(result, *path, "errors") or 0)
    return total


# -- entry point -----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--placement", choices=["pooled", "dedicated", "both"], default="both")
    parser.add_argument(
        "--fast-proxy",
        nargs="?",
        const="on",
        default="on",
        choices=["off", "on", "both"],
        help="the server's ORCH_FAST_PROXY (default on, as the server's; off: Serve's own proxy; both: compare)",
    )
    parser.add_argument("--quick", action="store_true", help="a fast smoke run")
    parser.add_argument("--json", type=Path, help="write all results to this file")
    parser.add_argument(
        "--max-busy",
        type=float,
        default=0.25,
        help="wait (up to --wait-idle s) before each run until the machine is at most this busy (0..1)",
    )
    parser.add_argument("--wait-idle", type=float, default=300.0)
    parser.add_argument(
        "--source",
        default="worktree",
        help="code to benchmark: worktree (default), head, or any git revision (run from a snapshot)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        help="sample the ingress, hosts and proxy with py-spy (if on PATH) during the throughput phase; "
        "collapsed stacks are written here",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for the server (ORCH_*, RAY_*), e.g. ORCH_HOSTS_PER_NODE=1; repeatable",
    )
    parser.add_argument(
        "--table-from", type=Path, nargs="+", help="print the table of earlier --json files and exit"
    )
    parser.add_argument("--child", choices=["pooled", "dedicated"], help=argparse.SUPPRESS)
    parser.add_argument("--child-fast-proxy", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    profile = QUICK if args.quick else FULL

    if args.child:
        child_main(args.child, args.child_fast_proxy, profile, args.child_out, args.profile)
        return 0

    if args.table_from:
        print(table([run for path in args.table_from for run in json.loads(path.read_text())["runs"]]))
        return 0
    if Path("/tmp/ray/ray_current_cluster").exists():
        log(
            "note: a `ray start` cluster exists on this machine; each run still starts a Ray instance of its own"
        )
    placements = ["pooled", "dedicated"] if args.placement == "both" else [args.placement]
    proxies = {"off": [False], "on": [True], "both": [False, True]}[args.fast_proxy]
    extra_env = dict(item.split("=", 1) for item in args.env)
    workdir = Path(tempfile.mkdtemp(prefix="orch-bench-runs-"))
    source, source_info = prepare_source(args.source, workdir)
    log(f"benchmarking {source} ({source_info})")
    results = []
    for fast in proxies:
        for placement in placements:
            deadline = time.monotonic() + args.wait_idle
            busy = machine_busy(3.0)
            while busy > args.max_busy and time.monotonic() < deadline:
                log(f"machine {busy:.0%} busy (other work?); waiting for it to calm down")
                busy = machine_busy(10.0)
            result = run_child(placement, fast, args.quick, profile, workdir, source, args.profile, extra_env)
            result["machine_busy_at_start"] = round(busy, 3)
            results.append(result)

    print(table(results))
    if args.json:
        document = {
            "machine": {
                "cpus": os.cpu_count(),
                "platform": platform.platform(),
                "python": sys.version.split()[0],
                "loadavg": os.getloadavg(),
            },
            "code": source_info,
            "profile": asdict(profile),
            "targets": TARGETS,
            "peers": PEERS,
            "serve_floor_design": SERVE_FLOOR,
            "runs": results,
        }
        args.json.write_text(json.dumps(document, indent=2, default=str))
        log(f"results written to {args.json}")
    return 0 if all(r.get("ok") for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())

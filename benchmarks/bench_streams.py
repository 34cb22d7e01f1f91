#!/usr/bin/env python
"""Live streams (SSE): delivery latency and the memory an open stream costs the ingress.

One fresh server (own Ray instance, free port, temporary data directory: ``benchmarks/_server.py``), the
default configuration (pooled hosts, Serve's fast path), measured over real HTTP with httpx from this
process:

1. **latency, 1 stream**: an execution made of a chain of short ``wait`` steps records an append every
   ``--wait`` seconds; one stream follows it. A sample is one append's delay from the event's
   ``timestamp`` (the host's clock when it decided the events, just before their append and commit) to
   the moment the client has parsed the message: the append, the host's feed, the ingress's long-poll,
   the fan-out, Serve's proxy and the client. Events the stream read back from the store when it
   connected (recorded before it) are not counted.
2. **latency, 500 open streams**: the same with ``--streams - 1`` other streams held open on as many
   executions parked in a 10-minute ``wait`` (idle streams: heartbeats only);
3. **latency, 500 streams on one execution**: every append fanned out to ``--streams`` clients, counted
   once they are all connected, with the cores the client (this process) and the server used meanwhile;
4. **memory per open stream**: the ingress replica's RSS (and USS) with the idle streams open, minus
   before, divided by their number.

The client runs in this process on the same (2-core) machine as the server: at 500 streams its own
parsing is part of the figure. Usage::

    python benchmarks/bench_streams.py                 # 500 streams
    python benchmarks/bench_streams.py --quick         # 50 streams, shorter chains
    python benchmarks/bench_streams.py --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

import _server as srv  # noqa: E402

USER = {"id": "bench-streams"}
V1 = "/api/v1/workflows"
TERMINAL = {"execution.completed", "execution.failed", "execution.cancelled", "execution.timed_out"}


def chain(steps: int, wait: float, *, first: float | None = None) -> dict[str, Any]:
    """``steps`` waits of ``wait`` seconds in a row (the first ``first`` seconds, if given): one append
    (a few events) per step."""
    naps: list[dict[str, Any]] = [{"name": "w1", "type": "wait", "duration": first or wait}]
    naps += [
        {"name": f"w{i}", "type": "wait", "duration": wait, "depends_on": [f"w{i - 1}"]}
        for i in range(2, steps + 1)
    ]
    return {"workflow": {"metadata": {"name": "bench-stream-chain"}, "spec": {"steps": naps}}, "user": USER}


PARKED = {
    "workflow": {
        "metadata": {"name": "bench-stream-parked"},
        "spec": {"steps": [{"name": "nap", "type": "wait", "duration": "10m"}]},
    },
    "user": USER,
}


async def start(client: httpx.AsyncClient, body: dict[str, Any]) -> str:
    response = await client.post(f"{V1}/execute", json={**body, "async": True})
    response.raise_for_status()
    return str(response.json()["id"])


def instant(timestamp: str) -> float:
    return datetime.fromisoformat(timestamp).timestamp()


async def follow(
    client: httpx.AsyncClient,
    execution_id: str,
    *,
    samples: list[float] | None = None,
    since: dict[str, float] | None = None,
    connected: asyncio.Event | None = None,
) -> None:
    """Read one execution's stream to its end; with ``samples``, record each append's delivery delay
    (receipt minus the event timestamp; one sample per append, events recorded after ``since["since"]``
    only: a dict, so the caller can set it once every stream is connected)."""
    seen: set[str] = set()
    async with client.stream("GET", f"{V1}/executions/{execution_id}/stream") as response:
        response.raise_for_status()
        event = ""
        async for line in response.aiter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                received = time.time()
                if connected is not None:
                    connected.set()
                if event == "step.progress":
                    continue
                data = json.loads(line[6:])
                stamp = data["timestamp"]
                start_at = since["since"] if since is not None else 0.0
                if samples is not None and stamp not in seen and instant(stamp) >= start_at:
                    seen.add(stamp)
                    samples.append((received - instant(stamp)) * 1000)
                if data["type"] in TERMINAL:
                    return


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary(samples: list[float]) -> dict[str, float]:
    return {
        "samples": len(samples),
        "p50_ms": round(percentile(samples, 50), 2),
        "p99_ms": round(percentile(samples, 99), 2),
        "mean_ms": round(statistics.fmean(samples), 2) if samples else float("nan"),
    }


async def measured(client: httpx.AsyncClient, steps: int, wait: float) -> list[float]:
    """Latency samples of one stream following a fresh chain from its start."""
    samples: list[float] = []
    since = {"since": time.time()}
    execution_id = await start(client, chain(steps, wait))
    await follow(client, execution_id, samples=samples, since=since)
    return samples


def srv_cpu() -> float:
    """CPU seconds of the server's processes (this process's descendants) so far."""
    return sum(srv._cpu_seconds().values())


def ingress_memory() -> srv.Memory:
    replicas = [p for p in srv.descendants() if "ServeReplica" in srv.title(p) and "ingress" in srv.title(p)]
    return srv.total(srv.memory_of(replicas))


async def run(args: argparse.Namespace, base_url: str) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=args.streams * 2 + 50, max_keepalive_connections=64)
    timeout = httpx.Timeout(120.0, connect=30.0)
    results: dict[str, Any] = {"streams": args.streams, "chain_steps": args.steps, "wait_s": args.wait}
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=timeout) as client:
        await measured(client, 3, 0.2)  # warm-up: the hub, its long-polls and the code paths
        results["latency_1_stream"] = summary(await measured(client, args.steps, args.wait))

        # idle streams on parked executions: what holding them costs, and the latency beside them
        before = ingress_memory()
        semaphore = asyncio.Semaphore(32)

        async def parked() -> str:
            async with semaphore:
                return await start(client, PARKED)

        idle_count = args.streams - 1
        parked_ids = await asyncio.gather(*(parked() for _ in range(idle_count)))
        connected = [asyncio.Event() for _ in parked_ids]
        idle = [
            asyncio.create_task(follow(client, execution_id, connected=event))
            for execution_id, event in zip(parked_ids, connected, strict=True)
        ]
        await asyncio.wait_for(asyncio.gather(*(event.wait() for event in connected)), 300)
        await asyncio.sleep(2.0)  # let the replica settle its buffers
        after = ingress_memory()
        results["memory_per_stream_kb"] = {
            "rss": round((after.rss - before.rss) / idle_count / 1024, 1),
            "uss": round((after.uss - before.uss) / idle_count / 1024, 1),
            "ingress_rss_mb_before": round(before.rss / 2**20, 1),
            "ingress_rss_mb_after": round(after.rss / 2**20, 1),
        }
        results[f"latency_1_of_{args.streams}_open"] = summary(await measured(client, args.steps, args.wait))
        for task in idle:
            task.cancel()
        await asyncio.gather(*idle, return_exceptions=True)

        # every stream on one execution: each append fanned out to all of them, counted once all are
        # connected (the first wait step gives them time), with the CPU the client and server spent
        samples: list[float] = []
        execution_id = await start(client, chain(args.steps, args.wait, first=5.0))
        connected = [asyncio.Event() for _ in range(args.streams)]
        window = {"since": float("inf")}
        followers = [
            asyncio.create_task(follow(client, execution_id, samples=samples, since=window, connected=event))
            for event in connected
        ]
        await asyncio.wait_for(asyncio.gather(*(event.wait() for event in connected)), 300)
        window["since"] = time.time()
        client_cpu, server_cpu, wall = time.process_time(), srv_cpu(), time.monotonic()
        await asyncio.gather(*followers)
        wall = time.monotonic() - wall
        results[f"latency_{args.streams}_on_one_execution"] = {
            **summary(samples),
            "client_cores": round((time.process_time() - client_cpu) / wall, 2),
            "server_cores": round((srv_cpu() - server_cpu) / wall, 2),
        }

        semaphore = asyncio.Semaphore(32)

        async def cancel(execution_id: str) -> None:
            async with semaphore:
                with contextlib.suppress(httpx.HTTPError):
                    await client.post(f"{V1}/executions/{execution_id}/cancel")

        await asyncio.gather(*(cancel(execution_id) for execution_id in parked_ids))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--streams", type=int, default=500, help="open streams in phases 2-4 (default 500)")
    parser.add_argument("--steps", type=int, default=40, help="wait steps of the followed chain")
    parser.add_argument("--wait", type=float, default=0.25, help="seconds each wait step takes")
    parser.add_argument("--quick", action="store_true", help="50 streams, 15 steps")
    parser.add_argument("--fast-proxy", choices=["on", "off"], default="on")
    parser.add_argument("--json", type=Path, help="write the results here too")
    args = parser.parse_args()
    if args.quick:
        args.streams, args.steps = 50, 15
    with srv.running_server(fast_proxy=args.fast_proxy == "on") as server:
        settled = srv.settle()
        results = asyncio.run(run(args, server.base_url))
        results.update(
            startup_s=round(server.startup_s, 1), settled_s=round(settled, 1), fast_proxy=server.fast_proxy
        )
    print(json.dumps(results, indent=2))
    print()
    print(f"{'phase':<34} {'samples':>8} {'p50 ms':>8} {'p99 ms':>8}")
    for key, value in results.items():
        if key.startswith("latency_"):
            print(f"{key:<34} {value['samples']:>8} {value['p50_ms']:>8} {value['p99_ms']:>8}")
    memory = results["memory_per_stream_kb"]
    print(f"memory per open stream: {memory['rss']} KB RSS, {memory['uss']} KB USS (ingress replica)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

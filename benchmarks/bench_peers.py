#!/usr/bin/env python
"""Our server beside its peers and two floors, in one run (the project's issue: "Benchmark", peer targets).

Four configurations, each in a fresh child process, one after the other (never two at once):

1. **ours**: the server as it starts by default (``pooled`` placement, Serve's fast path unless
   ``--fast-proxy off``), measured over real HTTP with httpx: sequential synchronous 1-step and 10-step
   ``transform`` chains (the request shape of ``bench_workflows.py``), 1-step throughput from 32 clients,
   CPU per 1-step workflow under that load (the server's process tree: this process's descendants), an
   **I/O chain** (10 ``mcp_query`` steps through an ``http`` agent, each a GET to a local trivial HTTP
   server and each depending on the previous one) and the start-up (``start_server()`` to ``/health`` 200);
2. **DBOS + SQLite** (the ``dbos`` package, in process, no HTTP, its system database a SQLite file in a
   temporary directory): a ``@DBOS.workflow`` of one ``@DBOS.step`` returning ``x + 1``, a 10-step chain,
   throughput from 32 threads and the same I/O chain (10 steps, one httpx GET each);
3. **Ray Serve floor**: a bare deployment (1 replica, same Serve configuration as ours: the environment
   and ``http_options`` of ``serve_listeners``) that answers the POST with one call to an async Ray actor
   returning its argument; its start-up is that of a bare hello-world deployment (``ray.init`` to the
   first 200): the start-up floor;
4. **ASGI + SQLite floor**: a bare Starlette app under uvicorn (one process, loopback) that answers the
   POST after one SQLite insert (WAL, ``synchronous=FULL``: one fsync per request).

It prints one table and the ratios the issue targets, each met or not met. Every loop stops at a count
or a time budget, whichever comes first. Usage::

    python benchmarks/bench_peers.py --quick                 # smoke run, a few minutes
    python benchmarks/bench_peers.py --json peers.json       # full run (~10 min)
    python benchmarks/bench_peers.py --fast-proxy off        # ours and the Serve floor on Serve's own proxy
    python benchmarks/bench_peers.py --only ours,serve       # a subset
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [p for p in (str(HERE), str(ROOT)) if p not in sys.path]

import _server as srv  # noqa: E402  (benchmarks/ and the repository on sys.path first)
from bench_workflows import (  # noqa: E402
    EXECUTE,
    USER,
    chain_ok,
    chain_request,
    concurrent,
    cpu_times,
    log,
    machine_busy,
    sequential,
    summary,
)

CONFIGS = ("ours", "dbos", "serve", "asgi")
LABELS = {
    "ours": "ours (pooled)",
    "dbos": "DBOS + SQLite",
    "serve": "Ray Serve floor",
    "asgi": "ASGI + SQLite floor",
}
IO_STEPS = 10
IO_AGENT = "bench-target"
IO_AGENT_IN_HOST = "bench-target-host"  # the same target through an agent with runs_in: host


@dataclass
class Profile:
    """How much to measure; every phase stops at its count or its time budget."""

    warmup: int = 30
    latency_count: int = 300
    latency_seconds: float = 45.0
    io_count: int = 150
    io_seconds: float = 45.0
    concurrency: int = 32
    throughput_warmup: int = 128
    throughput_count: int = 6000
    throughput_seconds: float = 30.0
    wrk_seconds: float = 12.0  # the throughput phase under wrk, when it is installed
    child_timeout: float = 1500.0
    wait_idle: float = 180.0
    quiet_seconds: float = 60.0  # before each phase: longest wait for other work on the machine to calm
    max_other_cores: float = 0.3


FULL = Profile()
QUICK = Profile(
    warmup=5,
    latency_count=40,
    latency_seconds=10.0,
    io_count=20,
    io_seconds=15.0,
    throughput_warmup=32,
    throughput_count=400,
    throughput_seconds=6.0,
    wrk_seconds=4.0,
    child_timeout=900.0,
    wait_idle=45.0,
    quiet_seconds=20.0,
)


# -- the trivial HTTP target of the I/O chain -------------------------------------------------------------


class _Ok(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a real API would
    # headers and body in one write, sent at once: written separately, Nagle's algorithm and the
    # client's delayed ACK hold the body back ~40 ms
    wbufsize = -1
    disable_nagle_algorithm = True
    body = b'{"ok": true}'

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


def target_main(port: int) -> None:
    """A tiny threaded ``http.server`` answering ``{"ok": true}`` to everything (its own process)."""
    server = ThreadingHTTPServer(("127.0.0.1", port), _Ok)
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    server.serve_forever()


@contextlib.contextmanager
def target_server() -> Any:
    port = srv.free_port()
    proc = subprocess.Popen([sys.executable, __file__, "--target", str(port)], start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _status(f"{url}/ping") == 200, 30, f"the HTTP target on {url}")
        # the children's meters leave the target's CPU out of "other"
        os.environ["BENCH_TARGET_PID"] = str(proc.pid)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _status(url: str, method: str = "GET", body: Any = None) -> int | None:
    try:
        return httpx.request(method, url, json=body, timeout=10).status_code
    except httpx.HTTPError:
        return None


def wait_for(check: Callable[[], bool], seconds: float, what: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not ready after {seconds:.0f}s")
        time.sleep(interval)


# -- CPU over a phase -----------------------------------------------------------------------------------


def _target_cpu() -> float:
    """CPU seconds of the I/O chain's HTTP target (the parent's child, not ours), 0 when unknown."""
    with contextlib.suppress(Exception):
        times = srv._psutil().Process(int(os.environ["BENCH_TARGET_PID"])).cpu_times()
        return float(times.user + times.system)
    return 0.0


def _waited_children_cpu() -> float:
    """CPU seconds of the children this process has waited for (a load generator such as ``wrk``)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class Meter:
    """CPU over a phase: the server (this process's descendants; with ``in_process`` this process too, as
    for DBOS, where the server is a library in the caller), this process, the HTTP target, and everything
    else on the machine ("other": other work on a shared machine makes the figures pessimistic)."""

    def __init__(self, *, in_process: bool = False) -> None:
        self.in_process = in_process

    def __enter__(self) -> Meter:
        self._machine = cpu_times()
        self._proc = time.process_time() + _waited_children_cpu()
        self._tree = srv._cpu_seconds()
        self._target = _target_cpu()
        self._wall = time.perf_counter()
        return self

    def __exit__(self, *_: object) -> None:
        wall = max(time.perf_counter() - self._wall, 1e-9)
        tree_after = srv._cpu_seconds()
        b1, t1 = cpu_times()
        # a process started during the phase counts whole; one that exited is lost
        tree = sum(cpu - self._tree.get(pid, 0.0) for pid, cpu in tree_after.items())
        proc = time.process_time() + _waited_children_cpu() - self._proc
        target = _target_cpu() - self._target
        self.wall_s = wall
        self.target_cores = target / wall
        self.client_cpu_s = proc
        self.server_cpu_s = tree + (proc if self.in_process else 0.0)
        busy = (b1 - self._machine[0]) / max(t1 - self._machine[1], 1e-9)
        self.machine_busy = busy
        self.other_cores = max(busy * (os.cpu_count() or 1) - (tree + proc + target) / wall, 0.0)

    def asdict(self) -> dict[str, float]:
        return {
            "wall_s": round(self.wall_s, 3),
            "server_cpu_s": round(self.server_cpu_s, 3),
            "server_cores": round(self.server_cpu_s / self.wall_s, 3),
            "client_cores": round(self.client_cpu_s / self.wall_s, 3),
            "http_target_cores": round(self.target_cores, 3),
            "machine_busy": round(self.machine_busy, 3),
            "other_cores": round(self.other_cores, 3),
        }


def ready(result: dict[str, Any], phase: str, profile: Profile, *, tree: bool = True) -> None:
    """Before a phase: our own processes nearly idle (``_server.settle``: start-up and the previous phase
    leave work behind), then, bounded, until other work on the machine uses at most
    ``max_other_cores``. What was waited and the other load found are kept in ``result["ready"]``."""
    started = time.monotonic()
    settled = srv.settle() if tree else 0.0
    other = 0.0
    deadline = time.monotonic() + profile.quiet_seconds
    while True:
        with Meter() as meter:
            time.sleep(1.0)
        other = meter.other_cores
        if other <= profile.max_other_cores or time.monotonic() > deadline:
            break
    result.setdefault("ready", {})[phase] = {
        "settled_s": round(settled, 1),
        "waited_s": round(time.monotonic() - started, 1),
        "other_cores": round(other, 2),
    }


def report(
    latencies: list[float], errors: int, first_error: str | None, meter: Meter | None
) -> dict[str, Any]:
    out: dict[str, Any] = {**summary(latencies), "errors": errors}
    if first_error:
        out["first_error"] = first_error[:500]
    if meter is not None:
        out["cpu"] = meter.asdict()
    return out


# -- HTTP configurations: ours, the Serve floor, the ASGI floor ---------------------------------------------


def http_latency(
    base_url: str,
    body: dict[str, Any],
    check: Callable[[httpx.Response], str | None],
    profile: Profile,
    *,
    count: int | None = None,
    seconds: float | None = None,
) -> dict[str, Any]:
    with Meter() as meter:
        outcome = sequential(
            base_url,
            "POST",
            EXECUTE,
            body,
            check,
            warmup=profile.warmup,
            count=count or profile.latency_count,
            seconds=seconds or profile.latency_seconds,
        )
    return report(outcome.latencies, outcome.errors, outcome.first_error, meter)


def http_throughput(
    base_url: str, body: dict[str, Any], check: Callable[[httpx.Response], str | None], profile: Profile
) -> dict[str, Any]:
    """32 clients; the warm-up (``httpx``, every answer checked) runs before the CPU meter starts.

    The measured load comes from ``wrk`` when it is installed (Debian's ``wrk``), else from 32 clients
    on one ``httpx.AsyncClient`` pool. On two cores the Python client is the bottleneck: it spends
    1.2-2.4 ms of CPU per request (more the busier the machine is), saturates its one core, and the
    figure then says more about the client than about the server. ``wrk`` spends a few microseconds.
    """
    asyncio.run(
        concurrent(
            base_url,
            "POST",
            EXECUTE,
            body,
            check,
            concurrency=profile.concurrency,
            count=profile.throughput_warmup,
            seconds=profile.throughput_seconds,
        )
    )
    wrk = shutil.which("wrk")
    if wrk is not None:
        return wrk_throughput(wrk, base_url, body, profile)
    with Meter() as meter:
        outcome = asyncio.run(
            concurrent(
                base_url,
                "POST",
                EXECUTE,
                body,
                check,
                concurrency=profile.concurrency,
                count=profile.throughput_count,
                seconds=profile.throughput_seconds,
            )
        )
    out = report(outcome.latencies, outcome.errors, outcome.first_error, meter)
    done = len(outcome.latencies)
    out["completed"] = done
    out["per_s"] = done / outcome.elapsed if outcome.elapsed else 0.0
    out["cpu_ms_per_request"] = meter.server_cpu_s / done * 1000 if done else None
    out["concurrency"] = profile.concurrency
    return out


# wrk's script: the request, and the summary as one JSON line (latencies in microseconds)
WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = [==[%s]==]
wrk.headers["Content-Type"] = "application/json"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRK {\\"requests\\": %%d, \\"duration_us\\": %%d, \\"non_2xx\\": %%d, \\"socket_errors\\": %%d, "
    .. "\\"p50_us\\": %%d, \\"p90_us\\": %%d, \\"p99_us\\": %%d, \\"mean_us\\": %%d, \\"max_us\\": %%d}\\n",
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean, latency.max))
end
"""


def wrk_throughput(wrk: str, base_url: str, body: dict[str, Any], profile: Profile) -> dict[str, Any]:
    """``wrk``, one thread and ``concurrency`` connections, for ``wrk_seconds``. Its CPU counts as the
    client's (:class:`Meter` adds the children this process waited for; it has exited before the
    server's process tree is read, so it is not in that)."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT % json.dumps(body))
    args = [
        wrk,
        "-t1",
        f"-c{profile.concurrency}",
        f"-d{max(1, round(profile.wrk_seconds))}s",
        "--timeout",
        "30s",
    ]
    try:
        with Meter() as meter:
            process = subprocess.Popen(
                [*args, "-s", script.name, f"{base_url}{EXECUTE}"],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            output, _ = process.communicate(timeout=profile.wrk_seconds + 120)
    finally:
        os.unlink(script.name)
    lines = [line for line in output.splitlines() if line.startswith("WRK ")]
    if process.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed ({process.returncode}): {output[-1000:]}")
    result = json.loads(lines[-1][4:])
    done = int(result["requests"])
    errors = int(result["non_2xx"]) + int(result["socket_errors"])
    out: dict[str, Any] = {
        "n": done,
        "p50_ms": result["p50_us"] / 1000,
        "p90_ms": result["p90_us"] / 1000,
        "p99_ms": result["p99_us"] / 1000,
        "mean_ms": result["mean_us"] / 1000,
        "max_ms": result["max_us"] / 1000,
        "errors": errors,
        "cpu": meter.asdict(),
        "client": "wrk",
    }
    seconds = result["duration_us"] / 1e6
    out["completed"] = done - errors
    out["per_s"] = (done - errors) / seconds if seconds else 0.0
    out["cpu_ms_per_request"] = meter.server_cpu_s / max(done - errors, 1) * 1000
    out["concurrency"] = profile.concurrency
    return out


def status_200(response: httpx.Response) -> str | None:
    return None if response.status_code == 200 else f"HTTP {response.status_code}: {response.text[:200]}"


def io_request(agent: str = IO_AGENT) -> dict[str, Any]:
    """10 ``mcp_query`` steps through the ``http`` agent, each depending on the previous one."""
    steps: list[dict[str, Any]] = []
    for i in range(1, IO_STEPS + 1):
        step: dict[str, Any] = {
            "name": f"g{i}",
            "type": "mcp_query",
            "connector": agent,
            "statement": "ping",
        }
        if i > 1:
            step["depends_on"] = [f"g{i - 1}"]
        steps.append(step)
    return {
        "workflow": {"metadata": {"name": "bench-io-chain"}, "spec": {"steps": steps}},
        "input": {},
        "user": USER,
    }


def io_ok(response: httpx.Response) -> str | None:
    if response.status_code != 200:
        return f"HTTP {response.status_code}: {response.text[:300]}"
    body = response.json()
    if body.get("status") != "completed" or body.get("output") != {"final_result": {"ok": True}}:
        return f"status {body.get('status')!r}, output {body.get('output')!r}, error {body.get('error')!r}"
    return None


AGENTS_YAML = """\
# written by benchmarks/bench_peers.py: the I/O chain's target, a trivial local HTTP server
connectors:
  - name: {agent}
    type: http
    config:
      base_url: "{url}"
      timeout: 10
agents:
  - id: {agent}
    name: Benchmark HTTP target
    domain: bench
    connector_type: http
    connector: {agent}
    capabilities:
      - name: ping
        binding: {{method: GET, path: /ping}}
        parameters: {{}}
  - id: {agent_in_host}
    name: Benchmark HTTP target, called from the execution host
    domain: bench
    connector_type: http
    connector: {agent}
    runs_in: host
    capabilities:
      - name: ping
        binding: {{method: GET, path: /ping}}
        parameters: {{}}
"""


def fast_path_status(port: int) -> dict[str, Any]:
    """Did the fast path start? HAProxy among our processes, and who listens on the port. (Not Ray's
    parsed constants in this process: the server puts Serve's environment in place only while Ray starts.)"""
    return {
        "haproxy_processes": sum(1 for proc in srv.descendants() if "haproxy" in srv.title(proc)),
        "listener": srv.listener_of(port),
    }


def child_ours(profile: Profile, fast: bool, target: str, result: dict[str, Any]) -> None:
    agents_dir = Path(tempfile.mkdtemp(prefix="orch-bench-agents-"))
    (agents_dir / "bench.yaml").write_text(
        AGENTS_YAML.format(agent=IO_AGENT, agent_in_host=IO_AGENT_IN_HOST, url=target)
    )
    os.environ["ORCH_AGENTS_DIR"] = str(agents_dir)
    os.environ["ORCH_FAST_PROXY"] = "1" if fast else "0"
    # imported before the clock starts, as for the Serve floor: start-up is the server's, not Python's
    import importlib

    import ray

    importlib.import_module("ray.serve")
    result["ray_version"] = ray.__version__
    try:
        # the server's own ORCH_FAST_PROXY setting decides (serve_listeners); _server sets it too
        with srv.running_server(placement="pooled", fast_proxy=fast) as server:
            result["startup_s"] = round(server.startup_s, 2)
            result["proxy"] = fast_path_status(server.port)
            log(f"ours: up in {server.startup_s:.1f}s; {result['proxy']}")
            base = server.base_url
            for steps in (1, 10):
                ready(result, f"chain{steps}", profile)
                result[f"chain{steps}"] = http_latency(base, chain_request(steps), chain_ok(steps), profile)
                log(f"ours: chain of {steps}: {json.dumps(result[f'chain{steps}'])}")
            ready(result, "io_chain", profile)
            result["io_chain"] = http_latency(
                base, io_request(), io_ok, profile, count=profile.io_count, seconds=profile.io_seconds
            )
            log(f"ours: I/O chain: {json.dumps(result['io_chain'])}")
            ready(result, "io_chain_host", profile)
            result["io_chain_host"] = http_latency(
                base,
                io_request(IO_AGENT_IN_HOST),
                io_ok,
                profile,
                count=profile.io_count,
                seconds=profile.io_seconds,
            )
            log(f"ours: I/O chain, agent runs_in host: {json.dumps(result['io_chain_host'])}")
            ready(result, "throughput", profile)
            result["throughput"] = http_throughput(base, chain_request(1), chain_ok(1), profile)
            log(f"ours: throughput: {json.dumps(result['throughput'])}")
    finally:
        import shutil

        shutil.rmtree(agents_dir, ignore_errors=True)


def _floor_deployments() -> tuple[Any, Any, Any]:
    """The Serve floor's pieces, built here so that cloudpickle ships them by value to the replicas."""
    import ray
    from ray import serve
    from starlette.requests import Request
    from starlette.responses import JSONResponse, PlainTextResponse

    @ray.remote
    class Echo:
        async def echo(self, value: Any) -> Any:
            return value

    @serve.deployment(num_replicas=1)
    class Hello:
        async def __call__(self, request: Request) -> PlainTextResponse:
            return PlainTextResponse("hello")

    @serve.deployment(num_replicas=1)
    class Floor:
        def __init__(self, echo: Any) -> None:
            self.echo = echo

        async def __call__(self, request: Request) -> JSONResponse:
            body = await request.json()
            return JSONResponse(await self.echo.echo.remote(body))

    return Echo, Hello, Floor


def child_serve(profile: Profile, fast: bool, result: dict[str, Any]) -> None:
    import ray
    from ray import serve

    from orchestrator.config import Settings
    from orchestrator.server.serve_config import remove_scratch, serve_listeners

    scratch = Path(tempfile.mkdtemp(prefix="serve-floor-"))
    port = srv.free_port()
    listeners = serve_listeners(
        Settings(host="127.0.0.1", port=port, fast_proxy=fast, data_dir=scratch / "data")
    )
    # as the server does: Ray's token in a private file (not ~/.ray), Serve's environment before Ray starts
    token = scratch / "ray_auth_token"
    token.write_text(os.urandom(32).hex())
    token.chmod(0o600)
    os.environ["RAY_AUTH_TOKEN_PATH"] = str(token)
    os.environ.pop("RAY_ADDRESS", None)
    os.environ.update(listeners.env)
    Echo, Hello, Floor = _floor_deployments()
    base = f"http://127.0.0.1:{port}"
    try:
        started = time.perf_counter()
        ray.init(
            address="local",
            namespace=f"serve-floor-{os.getpid()}",
            log_to_driver=True,
            include_dashboard=None,
            dashboard_host="127.0.0.1",
        )
        serve.start(http_options=listeners.http_options)
        serve.run(Hello.bind(), name="hello", route_prefix="/hello")
        wait_for(lambda: _status(f"{base}/hello") == 200, 240, "the hello-world deployment", 0.05)
        result["startup_s"] = round(time.perf_counter() - started, 2)
        result["proxy"] = fast_path_status(port)
        log(f"serve floor: hello world answered {result['startup_s']:.1f}s after ray.init; {result['proxy']}")
        serve.delete("hello")
        echo = Echo.remote()
        serve.run(Floor.bind(echo), name="floor", route_prefix="/")
        body = chain_request(1)
        wait_for(lambda: _status(f"{base}{EXECUTE}", "POST", body) == 200, 120, "the floor deployment", 0.1)
        ready(result, "chain1", profile)
        result["chain1"] = http_latency(base, body, status_200, profile)
        log(f"serve floor: sequential: {json.dumps(result['chain1'])}")
        ready(result, "throughput", profile)
        result["throughput"] = http_throughput(base, body, status_200, profile)
        log(f"serve floor: throughput: {json.dumps(result['throughput'])}")
    finally:
        with contextlib.suppress(Exception):
            serve.shutdown()
        ray.shutdown()
        remove_scratch(listeners)
        import shutil

        shutil.rmtree(scratch, ignore_errors=True)


def asgi_main(port: int, db: str) -> None:
    """The ASGI floor's server (its own process): Starlette under uvicorn, one SQLite insert per POST."""
    import sqlite3

    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    conn = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("CREATE TABLE IF NOT EXISTS requests (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")

    async def execute(request: Request) -> JSONResponse:
        body = await request.body()
        # autocommit: one transaction, one fsync of the WAL, on the event loop (the floor: no pool hop)
        row = conn.execute("INSERT INTO requests (body) VALUES (?)", (body.decode(),)).lastrowid
        return JSONResponse({"id": row, "status": "completed"})

    app = Starlette(routes=[Route(EXECUTE, execute, methods=["POST"])])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def child_asgi(profile: Profile, result: dict[str, Any]) -> None:
    scratch = Path(tempfile.mkdtemp(prefix="asgi-floor-"))
    port = srv.free_port()
    base = f"http://127.0.0.1:{port}"
    body = chain_request(1)
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, __file__, "--asgi", str(port), str(scratch / "floor.db")])
    try:
        wait_for(lambda: _status(f"{base}{EXECUTE}", "POST", body) == 200, 60, "the ASGI floor", 0.05)
        result["startup_s"] = round(time.perf_counter() - started, 2)
        import sqlite3

        with contextlib.closing(sqlite3.connect(scratch / "floor.db")) as conn:
            result["sqlite"] = {
                "journal_mode": conn.execute("PRAGMA journal_mode").fetchone()[0],
                "synchronous (server connection)": "FULL",
            }
        ready(result, "chain1", profile)
        result["chain1"] = http_latency(base, body, status_200, profile)
        log(f"asgi floor: sequential: {json.dumps(result['chain1'])}")
        ready(result, "throughput", profile)
        result["throughput"] = http_throughput(base, body, status_200, profile)
        log(f"asgi floor: throughput: {json.dumps(result['throughput'])}")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        import shutil

        shutil.rmtree(scratch, ignore_errors=True)


# -- DBOS, in process ---------------------------------------------------------------------------------------


def child_dbos(profile: Profile, target: str, result: dict[str, Any]) -> None:
    import sqlite3
    from importlib.metadata import version

    from dbos import DBOS

    result["dbos_version"] = version("dbos")
    scratch = Path(tempfile.mkdtemp(prefix="dbos-bench-"))
    db = scratch / "dbos.sqlite"
    client = httpx.Client(timeout=10, limits=httpx.Limits(max_connections=64, max_keepalive_connections=64))

    started = time.perf_counter()
    DBOS(config={"name": "bench-peers", "system_database_url": f"sqlite:///{db}", "log_level": "WARNING"})

    @DBOS.step()
    def inc(x: int) -> int:
        return x + 1

    @DBOS.step()
    def fetch(i: int) -> Any:
        return client.get(f"{target}/ping").json()

    @DBOS.workflow()
    def chain(x: int, steps: int) -> int:
        for _ in range(steps):
            x = inc(x)
        return x

    @DBOS.workflow()
    def io_chain() -> Any:
        out = None
        for i in range(IO_STEPS):
            out = fetch(i)
        return out

    try:
        DBOS.launch()
        result["startup_s"] = round(time.perf_counter() - started, 2)
        with contextlib.closing(sqlite3.connect(db)) as conn:
            result["sqlite"] = {
                "journal_mode": conn.execute("PRAGMA journal_mode").fetchone()[0],
                "synchronous (a new connection)": conn.execute("PRAGMA synchronous").fetchone()[0],
            }
        log(f"dbos {result['dbos_version']}: launched in {result['startup_s']:.2f}s; {result['sqlite']}")

        def run_chain(steps: int) -> Callable[[int], str | None]:
            def call(i: int) -> str | None:
                got = chain(i, steps)
                return None if got == i + steps else f"chain({i}, {steps}) returned {got!r}"

            return call

        def run_io(_: int) -> str | None:
            got = io_chain()
            return None if got == {"ok": True} else f"I/O chain returned {got!r}"

        for steps in (1, 10):
            ready(result, f"chain{steps}", profile, tree=False)
            result[f"chain{steps}"] = local_sequential(
                run_chain(steps), profile.warmup, profile.latency_count, profile.latency_seconds
            )
            log(f"dbos: chain of {steps}: {json.dumps(result[f'chain{steps}'])}")
        ready(result, "io_chain", profile, tree=False)
        result["io_chain"] = local_sequential(run_io, profile.warmup, profile.io_count, profile.io_seconds)
        log(f"dbos: I/O chain: {json.dumps(result['io_chain'])}")
        ready(result, "throughput", profile, tree=False)
        result["throughput"] = local_throughput(run_chain(1), profile)
        log(f"dbos: throughput: {json.dumps(result['throughput'])}")
    finally:
        with contextlib.suppress(Exception):
            DBOS.destroy()
        client.close()
        import shutil

        shutil.rmtree(scratch, ignore_errors=True)


def local_sequential(
    call: Callable[[int], str | None], warmup: int, count: int, seconds: float
) -> dict[str, Any]:
    for i in range(warmup):
        call(i)
    latencies: list[float] = []
    errors, first = 0, None
    with Meter(in_process=True) as meter:
        deadline = time.perf_counter() + seconds
        for i in range(count):
            if time.perf_counter() > deadline:
                break
            t0 = time.perf_counter()
            try:
                error = call(i)
            except Exception as exc:
                error = repr(exc)
            if error is None:
                latencies.append(time.perf_counter() - t0)
            else:
                errors += 1
                first = first or error
    return report(latencies, errors, first, meter)


def local_throughput(call: Callable[[int], str | None], profile: Profile) -> dict[str, Any]:
    """``concurrency`` threads calling the workflow; no new call after the count or the time budget."""
    lock = threading.Lock()

    def run(total: int, seconds: float) -> tuple[list[float], int, str | None, float]:
        issued = 0
        latencies: list[float] = []
        errors, first = 0, None
        deadline = time.perf_counter() + seconds

        def worker() -> None:
            nonlocal issued, errors, first
            while time.perf_counter() < deadline:
                with lock:
                    if issued >= total:
                        return
                    issued += 1
                    i = issued
                t0 = time.perf_counter()
                try:
                    error = call(i)
                except Exception as exc:
                    error = repr(exc)
                with lock:
                    if error is None:
                        latencies.append(time.perf_counter() - t0)
                    else:
                        errors += 1
                        first = first or error

        started = time.perf_counter()
        with ThreadPoolExecutor(profile.concurrency) as pool:
            for future in [pool.submit(worker) for _ in range(profile.concurrency)]:
                future.result()
        return latencies, errors, first, time.perf_counter() - started

    run(profile.throughput_warmup, profile.throughput_seconds)  # warm-up
    with Meter(in_process=True) as meter:
        latencies, errors, first, elapsed = run(profile.throughput_count, profile.throughput_seconds)
    out = report(latencies, errors, first, meter)
    out["completed"] = len(latencies)
    out["per_s"] = len(latencies) / elapsed if elapsed else 0.0
    out["cpu_ms_per_request"] = meter.server_cpu_s / len(latencies) * 1000 if latencies else None
    out["concurrency"] = profile.concurrency
    out["note"] = "in process: the calling threads' CPU is the workflow's"
    return out


# -- one configuration, in a child process -----------------------------------------------------------------


def child_main(config: str, profile: Profile, fast: bool, target: str, out: Path) -> None:
    result: dict[str, Any] = {"config": config, "fast_proxy": fast if config in ("ours", "serve") else None}
    result["ok"] = False
    try:
        if config == "ours":
            child_ours(profile, fast, target, result)
        elif config == "dbos":
            child_dbos(profile, target, result)
        elif config == "serve":
            child_serve(profile, fast, result)
        else:
            child_asgi(profile, result)
        result["ok"] = True
    except BaseException as exc:
        import traceback

        result["error"] = f"{type(exc).__name__}: {exc}"
        result["traceback"] = traceback.format_exc()[-4000:]
        log(f"{config}: FAILED: {result['error']}")
    out.write_text(json.dumps(result, indent=2, default=str))


def run_child(config: str, profile: Profile, args: argparse.Namespace, target: str, workdir: Path) -> Any:
    out = workdir / f"{config}.json"
    log_path = out.with_suffix(".log")
    command = [sys.executable, __file__, "--child", config, "--child-out", str(out), "--target-url", target]
    command += ["--fast-proxy", args.fast_proxy] + (["--quick"] if args.quick else [])
    log(f"{LABELS[config]}: starting a fresh child (log: {log_path})")
    started = time.monotonic()
    with open(log_path, "w") as log_file:
        proc = subprocess.Popen(
            command, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True, cwd=ROOT
        )
        try:
            proc.wait(timeout=profile.child_timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)  # our own child's process group
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=60)
    for line in log_path.read_text(errors="replace").splitlines():
        if line.startswith("[bench "):
            print(line, file=sys.stderr)
    if not out.exists():
        return {
            "config": config,
            "ok": False,
            "error": f"no result (exit {proc.returncode})",
            "log": log_path.read_text(errors="replace")[-3000:],
        }
    result = json.loads(out.read_text())
    result["log"] = str(log_path)
    result["child_seconds"] = round(time.monotonic() - started, 1)
    return result


# -- the table and the ratios ---------------------------------------------------------------------


def _get(result: dict[str, Any] | None, *path: str) -> Any:
    value: Any = result
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


COLUMNS: list[tuple[str, tuple[str, ...], str]] = [
    ("1-step p50", ("chain1", "p50_ms"), "ms"),
    ("1-step p99", ("chain1", "p99_ms"), "ms"),
    ("10-step p50", ("chain10", "p50_ms"), "ms"),
    ("1-step/s (32 clients)", ("throughput", "per_s"), "/s"),
    ("CPU ms/workflow", ("throughput", "cpu_ms_per_request"), "ms"),
    ("I/O chain p50", ("io_chain", "p50_ms"), "ms"),
    ("I/O chain p50, runs_in: host", ("io_chain_host", "p50_ms"), "ms"),
    ("start-up", ("startup_s",), "s"),
]


def _cell(value: Any, unit: str) -> str:
    if value is None:
        return "-"
    value = float(value)
    return (
        f"{value:,.2f} {unit}"
        if value < 10
        else f"{value:,.1f} {unit}"
        if value < 100
        else f"{value:,.0f} {unit}"
    )


def ratios(by: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's targets: (what, ours, peer figure, factor, higher is better)."""
    ours, dbos, serve = by.get("ours"), by.get("dbos"), by.get("serve")
    checks = [
        (
            "ours 1-step p50 <= 0.8 x DBOS 1-step p50",
            ("chain1", "p50_ms"),
            dbos,
            ("chain1", "p50_ms"),
            0.8,
            False,
        ),
        (
            "ours 1-step p50 <= 1.3 x Serve floor p50",
            ("chain1", "p50_ms"),
            serve,
            ("chain1", "p50_ms"),
            1.3,
            False,
        ),
        (
            "ours 1-step/s >= 0.9 x Serve floor /s",
            ("throughput", "per_s"),
            serve,
            ("throughput", "per_s"),
            0.9,
            True,
        ),
        (
            "ours CPU/workflow <= 1.3 x Serve floor CPU/request",
            ("throughput", "cpu_ms_per_request"),
            serve,
            ("throughput", "cpu_ms_per_request"),
            1.3,
            False,
        ),
        (
            "ours I/O chain p50 <= 0.7 x DBOS I/O chain p50",
            ("io_chain", "p50_ms"),
            dbos,
            ("io_chain", "p50_ms"),
            0.7,
            False,
        ),
        (
            "ours I/O chain p50, agent runs_in: host, <= 0.7 x DBOS I/O chain p50",
            ("io_chain_host", "p50_ms"),
            dbos,
            ("io_chain", "p50_ms"),
            0.7,
            False,
        ),
        (
            "ours start-up <= 1.5 x Serve hello-world start-up",
            ("startup_s",),
            serve,
            ("startup_s",),
            1.5,
            False,
        ),
        (
            "ours 10-step p50 <= 1.2 x ours 1-step p50",
            ("chain10", "p50_ms"),
            ours,
            ("chain1", "p50_ms"),
            1.2,
            False,
        ),
    ]
    out = []
    for what, mine, peer, theirs, factor, higher in checks:
        value = _get(ours, *mine) if ours and ours.get("ok") else None
        base = _get(peer, *theirs) if peer and peer.get("ok") else None
        if value is None or base is None:
            verdict, ratio = "not measured", None
        else:
            bound = factor * float(base)
            met = float(value) >= bound if higher else float(value) <= bound
            verdict, ratio = ("met" if met else "NOT met"), float(value) / float(base) if base else None
        out.append(
            {
                "target": what,
                "ours": value,
                "reference": base,
                "ratio": ratio,
                "factor": factor,
                "verdict": verdict,
            }
        )
    return out


def table(results: list[dict[str, Any]], checks: list[dict[str, Any]]) -> str:
    header = ["", *(name for name, _, _ in COLUMNS)]
    body = []
    for r in results:
        label = LABELS[r["config"]]
        if r.get("fast_proxy") is not None:
            label += " +fast" if r["fast_proxy"] else " (Serve proxy)"
        body.append([label, *(_cell(_get(r, *path), unit) for _, path, unit in COLUMNS)])
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    lines = [" | ".join(c.ljust(w) for c, w in zip(header, widths, strict=True))]
    lines.append("-+-".join("-" * w for w in widths))
    lines += [" | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in body]
    lines += ["", "Targets (the issue's ratios):"]
    for c in checks:
        ratio = f" (ratio {c['ratio']:.2f}, target {c['factor']:g})" if c["ratio"] is not None else ""
        lines.append(f"  {c['verdict']:>12}  {c['target']}{ratio}")
    lines.append(
        "  not measured  ours 1-step/s >= Restate's: Restate cannot run here (no server binary or container); "
        "bench_workflows.py quotes DESIGN.md's 195/s"
    )
    notes = []
    for r in results:
        label = LABELS[r["config"]]
        if not r.get("ok"):
            notes.append(f"{label}: FAILED: {r.get('error')}")
        for phase in ("chain1", "chain10", "io_chain", "io_chain_host", "throughput"):
            other = _get(r, phase, "cpu", "other_cores")
            if other is not None and other > 0.2:
                notes.append(
                    f"{label}: other processes used {other:.2f} cores during {phase}: figures are pessimistic"
                )
            errors = _get(r, phase, "errors")
            if errors:
                notes.append(f"{label}: {errors} errors in {phase}: {_get(r, phase, 'first_error')}")
        if r.get("proxy"):
            notes.append(f"{label}: {r['proxy']}")
        if r.get("sqlite"):
            notes.append(f"{label}: SQLite {r['sqlite']}")
    notes.append(
        "CPU ms/workflow: CPU seconds of the server's process tree during the 32-client phase / workflows "
        "completed (DBOS: this process, in which the calling threads run too)"
    )
    return "\n".join([*lines, "", *notes])


# -- entry point -------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--fast-proxy",
        choices=["on", "off"],
        default="on",
        help="ours and the Serve floor with Serve's fast path (on: the server's default) or its own proxy",
    )
    parser.add_argument("--quick", action="store_true", help="a smaller run (a few minutes)")
    parser.add_argument("--json", type=Path, help="write all results to this file")
    parser.add_argument("--only", default=",".join(CONFIGS), help=f"a subset of {','.join(CONFIGS)}")
    parser.add_argument(
        "--max-busy",
        type=float,
        default=0.25,
        help="before each configuration wait (bounded) until the machine is at most this busy (0..1)",
    )
    parser.add_argument("--wait-idle", type=float, help="longest wait for that, seconds (180; --quick 45)")
    parser.add_argument("--child", choices=CONFIGS, help=argparse.SUPPRESS)
    parser.add_argument("--child-out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--target-url", help=argparse.SUPPRESS)
    parser.add_argument("--target", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--asgi", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    profile = QUICK if args.quick else FULL
    fast = args.fast_proxy == "on"

    if args.target:
        target_main(args.target)
        return 0
    if args.asgi:
        asgi_main(int(args.asgi[0]), args.asgi[1])
        return 0
    if args.child:
        child_main(args.child, profile, fast, args.target_url, args.child_out)
        return 0

    configs = [c.strip() for c in args.only.split(",") if c.strip()]
    unknown = sorted(set(configs) - set(CONFIGS))
    if unknown:
        parser.error(f"unknown configurations {unknown}; known: {', '.join(CONFIGS)}")
    wait_idle = args.wait_idle if args.wait_idle is not None else profile.wait_idle
    workdir = Path(tempfile.mkdtemp(prefix="orch-bench-peers-"))
    results = []
    with target_server() as target:
        log(f"HTTP target of the I/O chain on {target}; child logs in {workdir}")
        for config in configs:
            deadline = time.monotonic() + wait_idle
            busy = machine_busy(3.0)
            while busy > args.max_busy and time.monotonic() < deadline:
                log(f"machine {busy:.0%} busy (other work?); waiting for it to calm down")
                busy = machine_busy(5.0)
            result = run_child(config, profile, args, target, workdir)
            result["machine_busy_at_start"] = round(busy, 3)
            results.append(result)

    by = {r["config"]: r for r in results}
    checks = ratios(by)
    print(table(results, checks))
    if args.json:
        document = {
            "machine": {
                "cpus": os.cpu_count(),
                "platform": platform.platform(),
                "python": sys.version.split()[0],
                "loadavg": os.getloadavg(),
                "hostname": socket.gethostname(),
            },
            "args": {"fast_proxy": args.fast_proxy, "quick": args.quick, "only": configs},
            "profile": asdict(profile),
            "runs": results,
            "targets": checks,
            "restate": "not measured: Restate cannot run here",
        }
        args.json.write_text(json.dumps(document, indent=2, default=str))
        log(f"results written to {args.json}")
    return 0 if all(r.get("ok") for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())

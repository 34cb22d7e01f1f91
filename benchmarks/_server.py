"""Benchmark helpers: run the real server in this process, find its processes, read their memory.

The server is started exactly as the integration tests start it (``orchestrator.server.cli.start_server``
with ``ORCH_*`` variables): a local Ray instance of its own, a free loopback port, a temporary data
directory and its own namespace, so it never joins or disturbs another Ray instance on the machine.

Process discovery walks the descendants of *this* process only (the local Ray instance started by
``ray.init`` is a child of the driver), so another engineer's Ray cluster on the same machine is never
counted. Ray names worker processes after their actor class (``ray::ExecutionHost``), which is how the
execution hosts are found; ``psutil`` is the copy Ray vendors (``ray/thirdparty_files``), no new
dependency.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository, for tests.ports

from tests.ports import free_port  # bench_peers calls it as srv.free_port

HOST_TITLE = "ray::ExecutionHost"


@dataclass
class Server:
    base_url: str
    port: int
    namespace: str
    placement: str
    data_dir: Path
    fast_proxy: bool
    startup_s: float
    notes: list[str] = field(default_factory=list)


def _healthy(base_url: str) -> bool:
    try:
        return httpx.get(f"{base_url}/health", timeout=30).status_code == 200
    except httpx.HTTPError:
        return False


@contextlib.contextmanager
def running_server(
    *, placement: str = "pooled", fast_proxy: bool = True, startup_timeout: float = 240.0
) -> Iterator[Server]:
    """Start Ray and the Serve app in this process; stop both and delete the data directory after.

    ``ORCH_*`` and ``RAY_*`` variables already in the environment (``bench_workflows.py --env``) are kept
    unless set here; ``ORCH_HOSTS_PER_NODE`` defaults to 2, as in the tests."""
    root = Path(tempfile.mkdtemp(prefix="orch-bench-"))
    cleanup = [root]
    data_dir = root / "data"
    port = free_port()
    namespace = f"orch-bench-{os.getpid()}"
    env = {
        "ORCH_DATA_DIR": str(data_dir),
        "ORCH_PORT": str(port),
        "ORCH_HOST": "127.0.0.1",
        "ORCH_NAMESPACE": namespace,
        "ORCH_PLACEMENT": placement,
        "ORCH_HOSTS_PER_NODE": os.environ.get("ORCH_HOSTS_PER_NODE", "2"),
    }
    # the server gives HAProxy private files and ports of its own (orchestrator.server.serve_config)
    env["ORCH_FAST_PROXY"] = "1" if fast_proxy else "0"
    os.environ.pop("RAY_ADDRESS", None)  # always a Ray instance of our own
    os.environ.update(env)

    from orchestrator.server.cli import start_server, stop_server

    base_url = f"http://127.0.0.1:{port}"
    started = time.perf_counter()
    start_server(wait=False)
    try:
        deadline = time.monotonic() + startup_timeout
        while not _healthy(base_url):
            if time.monotonic() > deadline:
                raise RuntimeError(f"server on {base_url} not healthy after {startup_timeout:.0f}s")
            time.sleep(0.05)  # as often as bench_peers polls the Serve floor's hello world
        yield Server(
            base_url=base_url,
            port=port,
            namespace=namespace,
            placement=placement,
            data_dir=data_dir,
            fast_proxy=fast_proxy,
            startup_s=time.perf_counter() - started,
        )
    finally:
        try:
            stop_server()
        finally:
            for path in cleanup:
                shutil.rmtree(path, ignore_errors=True)


def settle(max_cores: float = 0.4, window: float = 2.0, timeout: float = 90.0) -> float:
    """Wait until the server (this process's descendants) is nearly idle: right after start-up, agents,
    demo MCP servers and Serve's own reconciliation keep a 2-core machine busy for a while, and a phase
    measured then measures that. Returns the seconds waited (bounded by ``timeout``)."""
    started = time.monotonic()
    while True:
        before = _cpu_seconds()
        time.sleep(window)
        after = _cpu_seconds()
        cores = sum(cpu - before.get(pid, cpu) for pid, cpu in after.items()) / window
        if cores <= max_cores or time.monotonic() - started > timeout:
            return time.monotonic() - started


def _cpu_seconds() -> dict[int, float]:
    out: dict[int, float] = {}
    for proc in descendants():
        with contextlib.suppress(Exception):
            times = proc.cpu_times()
            out[proc.pid] = float(times.user + times.system)
    return out


# -- processes and memory ----------------------------------------------------------------------------


def _psutil() -> Any:
    import importlib

    import ray

    del ray  # imported for its side effect: it puts its vendored psutil on sys.path
    return importlib.import_module("psutil")


def descendants() -> list[Any]:
    psutil = _psutil()
    return list(psutil.Process(os.getpid()).children(recursive=True))


def title(proc: Any) -> str:
    try:
        cmdline = proc.cmdline()
        return " ".join(cmdline) if cmdline else proc.name()
    except Exception:
        return ""


def processes_titled(prefix: str) -> list[Any]:
    return [proc for proc in descendants() if title(proc).startswith(prefix)]


def host_processes() -> list[Any]:
    """The ExecutionHost actor processes of this benchmark's Ray instance (pooled and dedicated)."""
    return processes_titled(HOST_TITLE)


@dataclass
class Memory:
    rss: int
    uss: int


def memory_of(procs: list[Any]) -> dict[int, Memory]:
    """RSS and USS (private memory, from smaps) per pid; processes that vanished are left out."""
    out: dict[int, Memory] = {}
    for proc in procs:
        try:
            info = proc.memory_full_info()
            out[proc.pid] = Memory(rss=int(info.rss), uss=int(info.uss))
        except Exception:
            continue
    return out


def total(memory: dict[int, Memory]) -> Memory:
    return Memory(
        rss=sum(m.rss for m in memory.values()),
        uss=sum(m.uss for m in memory.values()),
    )


def listener_of(port: int) -> str:
    """Which process accepts connections on ``port`` (the Serve proxy actor, or HAProxy)."""
    psutil = _psutil()
    mine = {proc.pid: proc for proc in descendants()}
    with contextlib.suppress(Exception):
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
                proc = mine.get(conn.pid or -1)
                name = (
                    f"{proc.name()} ({title(proc)[:40]})"
                    if proc is not None
                    else f"pid {conn.pid} (not ours)"
                )
                return f"{name} on {conn.laddr.ip}:{port}"
    return "unknown"


# -- optional sampling profiles (py-spy is not a project dependency: used only when on PATH) ----------

PROFILED = ("ray::ServeReplica", "ray::ExecutionHost", "ray::ProxyActor")


@contextlib.contextmanager
def py_spy(
    out_dir: Path | None, label: str, seconds: float, rate: int = 200, gil: bool = True
) -> Iterator[list[Path]]:
    """Sample the server's Python processes (ingress, hosts, Serve proxy) with ``py-spy record`` while
    the body runs; collapsed stacks (``--format raw``) land in ``out_dir``, one file per process.

    ``gil``: only samples of the thread holding the GIL, i.e. Python CPU time. Without it, threads
    blocked in Ray's C++ core (``Worker.main_loop``) or in a system call count as busy."""
    files: list[Path] = []
    if out_dir is None or shutil.which("py-spy") is None:
        yield files
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    samplers: list[subprocess.Popen[bytes]] = []
    for proc in descendants():
        name = title(proc)
        if not name.startswith(PROFILED):
            continue
        slug = re.sub(r"[^A-Za-z0-9]+", "-", name.split()[0].removeprefix("ray::")).strip("-")
        path = out_dir / f"{label}-{slug}-{proc.pid}.txt"
        files.append(path)
        command = ["py-spy", "record", "--format", "raw", "--nonblocking", "-r", str(rate)]
        command += ["--gil"] if gil else []
        command += ["-d", str(int(seconds) + 5), "-o", str(path), "-p", str(proc.pid)]
        samplers.append(subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    try:
        yield files
    finally:
        for sampler in samplers:  # py-spy writes its file on SIGINT
            with contextlib.suppress(ProcessLookupError):
                sampler.send_signal(signal.SIGINT)
        for sampler in samplers:
            try:
                sampler.wait(timeout=60)
            except subprocess.TimeoutExpired:
                sampler.kill()

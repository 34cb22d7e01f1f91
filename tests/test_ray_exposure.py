"""The default server's Ray cluster refuses anyone without its token.

Ray's servers (GCS, raylet, every worker's core worker, the agents) listen on all interfaces, so what
keeps a stranger from joining the cluster and running code is Ray's token authentication, which
``start_server`` keeps on with a token in the data directory. The session server is started exactly as
``orchestrate serve`` starts it (no ``RAY_AUTH_MODE`` set), so this looks at the real default.
"""

from __future__ import annotations

import os
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest

from orchestrator.server.cli import RAY_TOKEN_FILE
from tests.fixtures_server import ServerInfo

pytestmark = [pytest.mark.ray, pytest.mark.timeout(300)]

# One real RPC of each kind of Ray server; a server answers UNIMPLEMENTED to the others.
RAY_METHODS = (
    "/ray.rpc.NodeInfoGcsService/GetAllNodeInfo",  # GCS
    "/ray.rpc.NodeManagerService/GetNodeStats",  # raylet
    "/ray.rpc.CoreWorkerService/GetCoreWorkerStats",  # every worker and the driver
    "/ray.rpc.ReporterService/ListLogs",  # dashboard agent
)
LOOPBACK = ("127.", "::1", "::ffff:127.")


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
            children.setdefault(int(text.rsplit(")", 1)[1].split()[1]), []).append(int(entry.name))
        except (OSError, ValueError, IndexError):
            continue
    found, index = [root], 0
    while index < len(found):
        found.extend(children.get(found[index], []))
        index += 1
    return found


def _socket_inodes(pids: list[int]) -> set[str]:
    inodes: set[str] = set()
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    return inodes


def _listeners(pids: list[int]) -> Iterator[tuple[str, int]]:
    """(address, port) of every TCP socket in LISTEN state held by one of ``pids``."""
    inodes = _socket_inodes(pids)
    for family, table in ((socket.AF_INET, "/proc/net/tcp"), (socket.AF_INET6, "/proc/net/tcp6")):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] != "0A" or fields[9] not in inodes:  # 0A: LISTEN
                continue
            address_hex, port_hex = fields[1].split(":")
            raw = bytes.fromhex(address_hex)
            # /proc prints each 32-bit word in host (little-endian) order
            packed = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
            yield socket.inet_ntop(family, packed), int(port_hex, 16)


def _target(address: str) -> str:
    if address in ("0.0.0.0", "::"):
        return "127.0.0.1"  # a wildcard listener: the same server answers on every interface
    return f"[{address}]" if ":" in address else address


def _grpc_answers(host: str, port: int, token: str | None) -> dict[str, str]:
    metadata = [("authorization", f"Bearer {token}")] if token else None
    answers: dict[str, str] = {}
    with grpc.insecure_channel(f"{host}:{port}") as channel:
        for method in RAY_METHODS:
            call = channel.unary_unary(method, request_serializer=None, response_deserializer=None)
            try:
                call(b"", timeout=5, metadata=metadata)
                answers[method] = "OK"
            except grpc.RpcError as exc:
                answers[method] = exc.code().name
    return answers


def _http_accepts(host: str, port: int) -> bool:
    """Whether an HTTP server there serves something other than Prometheus metrics without a token."""
    try:
        response = httpx.get(f"http://{host}:{port}/", timeout=5)
    except httpx.HTTPError:
        return False  # not HTTP/1 (a gRPC server), or closed
    if not response.is_success:
        return False
    body = response.text.lstrip()
    return bool(body) and not body.startswith("# HELP") and not body.startswith("# TYPE")


def test_token_file_is_private_to_the_data_directory(server: ServerInfo) -> None:
    path = server.data_dir / RAY_TOKEN_FILE
    assert path.is_file()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(path.read_text().strip()) >= 32


def test_no_non_loopback_ray_listener_accepts_a_connection_without_the_token(server: ServerInfo) -> None:
    token = (server.data_dir / RAY_TOKEN_FILE).read_text().strip()
    exposed = sorted({(a, p) for a, p in _listeners(_descendants(os.getpid())) if not a.startswith(LOOPBACK)})
    assert exposed, "expected Ray's servers among this process's descendants"

    open_without_token: list[str] = []
    reached_with_token = 0
    for address, port in exposed:
        host = _target(address)
        anonymous = _grpc_answers(host, port, None)
        open_without_token += [f"{address}:{port} {m}" for m, code in anonymous.items() if code == "OK"]
        if _http_accepts(host, port):
            open_without_token.append(f"{address}:{port} HTTP")
        if "UNAUTHENTICATED" in anonymous.values():
            reached_with_token += "OK" in _grpc_answers(host, port, token).values()

    assert open_without_token == []
    # the probe is not vacuous: the same calls succeed with the token (GCS, raylet, workers at least)
    assert reached_with_token >= 3


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def test_the_fast_path_is_the_default_and_listens_only_on_the_servers_host(server: ServerInfo) -> None:
    """Ray's HA proxy mode binds HAProxy's stats page and Prometheus frontend (and, without an explicit
    host, the replicas' HTTP servers) on all interfaces; the server puts every one on its host."""
    pids = _descendants(os.getpid())
    haproxy = [pid for pid in pids if _comm(pid) == "haproxy"]
    assert haproxy, "HAProxy (Serve's fast path) runs by default"
    bound = list(_listeners(haproxy))
    port = int(server.base_url.rsplit(":", 1)[1])
    assert ("127.0.0.1", port) in bound  # HAProxy answers on the server's port
    assert len(bound) >= 3  # and its stats page and Prometheus frontend
    assert [a for a, _ in bound if not a.startswith(LOOPBACK)] == []
    replicas = [pid for pid in pids if _comm(pid).startswith("ray::ServeRepl")]
    http_ports = [(a, p) for a, p in _listeners(replicas) if _http_answers(_target(a), p)]
    assert http_ports and all(a.startswith(LOOPBACK) for a, _ in http_ports)
    for pid in haproxy:  # the admin socket Ray creates with mode 666
        config = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        text = Path(config[config.index(b"-f") + 1].decode()).read_text()
        assert "mode 666" not in text and "mode 600" in text


def _http_answers(host: str, port: int) -> bool:
    try:
        httpx.get(f"http://{host}:{port}/health", timeout=5)
    except httpx.HTTPError:
        return False
    return True

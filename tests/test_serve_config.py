"""Serve's fast path as the server configures it: HAProxy's listeners on the server's host, private
ports and files, and HAProxy tied to the process that starts it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from orchestrator.config import Settings
from orchestrator.server.serve_config import PORT_BLOCK, remove_scratch, serve_listeners

# What Ray 2.60's template writes, in the forms the wrapper must rewrite.
CONFIG = """global
    stats socket {scratch}/admin.sock mode 666 level admin expose-fd listeners
defaults
    mode http
    timeout connect 5s
    timeout client 5s
    timeout server 5s
frontend prometheus
    bind :{metrics}
    http-request use-service prometheus-exporter if {{ path /metrics }}
frontend http_frontend
    bind 127.0.0.1:{port}
    default_backend nothing
backend nothing
listen stats
  bind *:{stats}
  stats enable
"""


def test_the_fast_path_has_private_ports_and_files(tmp_path: Path) -> None:
    one = serve_listeners(Settings(data_dir=tmp_path, host="127.0.0.1", port=18081))
    two = serve_listeners(Settings(data_dir=tmp_path, host="127.0.0.1", port=18082))
    try:
        assert one.http_options == {"host": "127.0.0.1", "port": 18081}  # replicas bind the host
        assert one.scratch is not None and two.scratch is not None and one.scratch != two.scratch
        for key in ("RAY_SERVE_HAPROXY_STATS_PORT", "RAY_SERVE_FALLBACK_PROXY_HTTP_PORT"):
            assert one.env[key] != two.env[key]
        low, high = (int(one.env[f"RAY_SERVE_DIRECT_INGRESS_{e}_HTTP_PORT"]) for e in ("MIN", "MAX"))
        assert high - low == PORT_BLOCK - 1 and low >= 20000 and high < 30000
        # Serve's other listeners: out of the kernel's ephemeral range too (Ray's processes bind ports
        # there while the server starts, before HAProxy binds these), and off the replicas' blocks
        blocks: set[int] = set()
        for protocol in ("HTTP", "GRPC"):
            first, last = (
                int(one.env[f"RAY_SERVE_DIRECT_INGRESS_{e}_{protocol}_PORT"]) for e in ("MIN", "MAX")
            )
            blocks.update(range(first, last + 1))
        singles = [
            int(one.env[f"RAY_SERVE_{key}_PORT"])
            for key in ("HAPROXY_STATS", "HAPROXY_METRICS", "FALLBACK_PROXY_HTTP", "FALLBACK_PROXY_GRPC")
        ]
        assert len(set(singles)) == 4 and all(
            20000 <= port < 30000 and port not in blocks for port in singles
        )
        assert one.env["RAY_SERVE_HAPROXY_SOCKET_PATH"].startswith(str(one.scratch))
    finally:
        remove_scratch(one)
        remove_scratch(two)
    assert not one.scratch.exists()
    off = serve_listeners(Settings(data_dir=tmp_path, fast_proxy=False))
    assert off.env == {} and off.scratch is None


def test_the_wrapper_binds_every_listener_on_the_host_and_closes_the_admin_socket(tmp_path: Path) -> None:
    listeners = serve_listeners(Settings(data_dir=tmp_path, host="127.0.0.1", port=18083))
    assert listeners.scratch is not None
    try:
        config = listeners.scratch / "haproxy.cfg"
        config.write_text(CONFIG.format(scratch=listeners.scratch, metrics=9101, port=18083, stats=8404))
        wrapper = listeners.env["RAY_SERVE_HAPROXY_BINARY_PATH"]
        checked = subprocess.run(
            [wrapper, "-c", "-f", str(config)], capture_output=True, text=True, timeout=30
        )
        assert checked.returncode == 0, checked.stderr  # the real HAProxy accepts what it rewrote
        text = config.read_text()
        binds = [line.split()[1] for line in text.splitlines() if line.strip().startswith("bind ")]
        assert binds == ["127.0.0.1:9101", "127.0.0.1:18083", "127.0.0.1:8404"]
        assert "mode 600" in text and "mode 666" not in text
    finally:
        remove_scratch(listeners)


def test_haproxy_dies_with_the_process_that_started_it(tmp_path: Path) -> None:
    """A crashed server must not leave HAProxy listening on its port (and forwarding to replica ports
    another server may take next)."""
    listeners = serve_listeners(Settings(data_dir=tmp_path, host="127.0.0.1", port=18084))
    assert listeners.scratch is not None
    try:
        config = listeners.scratch / "haproxy.cfg"
        ports = [int(listeners.env[f"RAY_SERVE_HAPROXY_{k}_PORT"]) for k in ("METRICS", "STATS")]
        config.write_text(
            CONFIG.format(scratch=listeners.scratch, metrics=ports[0], port=18084, stats=ports[1])
        )
        pid_file = tmp_path / "haproxy.pid"
        starter = (  # stands in for Serve's HAProxy manager: starts HAProxy in the foreground, then waits
            "import subprocess, sys, time\n"
            f"p = subprocess.Popen([{listeners.env['RAY_SERVE_HAPROXY_BINARY_PATH']!r}, '-db', '-f', {str(config)!r}])\n"
            f"open({str(pid_file)!r}, 'w').write(str(p.pid))\n"
            "time.sleep(600)\n"
        )
        parent = subprocess.Popen([sys.executable, "-c", starter])
        deadline = time.monotonic() + 30
        while not pid_file.exists() or not pid_file.read_text():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        haproxy = int(pid_file.read_text())
        time.sleep(1.0)  # HAProxy is up (running as the wrapper's exec'd image) and stays up
        assert Path(f"/proc/{haproxy}/comm").read_text().strip() == "haproxy"
        assert "State:\tZ" not in Path(f"/proc/{haproxy}/status").read_text()
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(timeout=10)
        deadline = time.monotonic() + 10
        while Path(f"/proc/{haproxy}").exists():
            status = Path(f"/proc/{haproxy}/status").read_text() if Path(f"/proc/{haproxy}").exists() else ""
            if "State:\tZ" in status:
                break  # killed, waiting to be reaped by init
            assert time.monotonic() < deadline, "HAProxy outlived the process that started it"
            time.sleep(0.05)
    finally:
        remove_scratch(listeners)

"""A real multi-node Ray cluster on this machine, for the cluster tests and benchmarks.

Each node is ``ray start --block`` in its own process session, so killing a node is killing every
process of that session with SIGKILL (raylet, its workers and our actors on it), as a machine loss
would. The nodes share a fresh token (Ray's token authentication, as in production) and pick their
own free ports.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.ports import free_port
from tests.processes import kill_session


@dataclass
class RayNode:
    process: subprocess.Popen[bytes]
    log: Path

    def kill(self) -> None:
        """SIGKILL every process of the node."""
        kill_session(self.process.pid)
        self.process.wait(timeout=30)

    @property
    def alive(self) -> bool:
        return self.process.poll() is None


@dataclass
class LocalRayCluster:
    """``start_head()`` first, then ``add_node()`` per worker; ``stop()`` kills every node."""

    root: Path
    port: int = field(default_factory=free_port)
    nodes: list[RayNode] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.token_path = self.root / "ray_auth_token"
        self.token_path.write_text(secrets.token_hex(32))
        self.token_path.chmod(0o600)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """What a process needs to join this cluster (a server, a driver)."""
        return {
            "RAY_ADDRESS": self.address,
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN_PATH": str(self.token_path),
        }

    def start_head(self, *, num_cpus: int = 1) -> RayNode:
        node = self._start(
            [
                "--head",
                f"--port={self.port}",
                "--include-dashboard=false",
                f"--ray-client-server-port={free_port()}",
            ],
            num_cpus=num_cpus,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # the GCS answers once its port is open
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return node
            if not node.alive:
                raise AssertionError(f"the Ray head did not start: {node.log.read_text()[-2000:]}")
            time.sleep(0.2)
        raise AssertionError("the Ray head did not open its port in 60 s")

    def add_node(self, *, num_cpus: int = 1) -> RayNode:
        return self._start([f"--address={self.address}"], num_cpus=num_cpus)

    def _start(self, args: list[str], *, num_cpus: int) -> RayNode:
        log = self.root / f"node-{len(self.nodes)}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "ORCH_"))}
        env.update(self.env())
        env.pop("RAY_ADDRESS")
        command = [
            "ray",
            "start",
            "--block",
            *args,
            f"--num-cpus={num_cpus}",
            "--min-worker-port=0",
            "--max-worker-port=0",
            f"--dashboard-agent-listen-port={free_port()}",
            f"--dashboard-agent-grpc-port={free_port()}",
            f"--metrics-export-port={free_port()}",
            f"--runtime-env-agent-port={free_port()}",
            "--disable-usage-stats",
        ]
        with open(log, "ab") as out:
            process = subprocess.Popen(
                command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        node = RayNode(process, log)
        self.nodes.append(node)
        return node

    def stop(self) -> None:
        for node in reversed(self.nodes):
            if node.alive:
                node.kill()
        # `ray start --head` records itself as the machine's current cluster, which a bare
        # `ray.init()` would then try to join: forget it
        current = Path("/tmp/ray/ray_current_cluster")
        with contextlib.suppress(OSError):
            if current.read_text().strip().endswith(f":{self.port}"):
                current.unlink()

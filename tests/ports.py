"""Free ports for the tests' servers, nodes and stand-ins, from a range nobody else on the machine draws on.

A port asked of the kernel (``bind(("127.0.0.1", 0))``) comes from the ephemeral range (32768-60999
here), the very range every outgoing connection draws its local port from. A test picks its server's
port, then starts Ray and Serve (10-20 s of processes opening connections by the dozen), and only then
does HAProxy bind it: in CI one of Ray's connections had taken it meanwhile and the session's server
never started (155 tests in error). Ray's workers use 10002-19999 and the server puts Serve's private
ports in 20000-29999 (``orchestrator.server.serve_config``); 31001-32767 is left to the tests.
"""

from __future__ import annotations

import random
import socket

LOW, HIGH = 31001, 32768
_HANDED_OUT: set[int] = set()
_RNG = random.Random()


def free_port() -> int:
    """A port free now, outside the ephemeral range, and never handed out before by this process:
    a port handed out once may be bound only seconds later (a Ray node's, a server's)."""
    for _ in range(10 * (HIGH - LOW)):
        port = _RNG.randrange(LOW, HIGH)
        if port in _HANDED_OUT:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port
    raise RuntimeError(f"no free port left in {LOW}-{HIGH - 1}")

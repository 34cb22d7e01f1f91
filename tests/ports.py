"""Free ports for the tests' servers, nodes and stand-ins, from a range nobody else on the machine draws on.

A port asked of the kernel (``bind(("127.0.0.1", 0))``) comes from the ephemeral range (32768-60999
here), the very range every outgoing connection draws its local port from. A test picks its server's
port, then starts Ray and Serve (10-20 s of processes opening connections by the dozen), and only then
does HAProxy bind it: in CI one of Ray's connections had taken it meanwhile and the session's server
never started (155 tests in error). Ray's workers use 10002-19999 and the server puts Serve's private
ports in 20000-29999 (``orchestrator.server.serve_config``); 31001-32767 is left to the tests.
"""

from __future__ import annotations

from orchestrator.server.serve_config import free_port_in

LOW, HIGH = 31001, 32768
# never handed out twice by this process: a port handed out once may be bound only seconds later
_HANDED_OUT: set[int] = set()


def free_port() -> int:
    return free_port_in("127.0.0.1", LOW, HIGH, _HANDED_OUT)

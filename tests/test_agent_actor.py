"""An agent actor's health loop against a real fault: its demo MCP server process is killed.

The actor is our own (not the server's shared ``amadeus-travel``), with a one-second interval, so killing
its server disturbs no other test and the timings are short. It lives in the session's Ray cluster, which
the ``server`` fixture starts.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import ray
from ray.exceptions import RayTaskError

from agents.actor import RemoteAgentActor
from agents.registry import HealthCheckConfig, load_registry
from orchestrator.config import Settings
from orchestrator.core.errors import AgentUnavailable
from tests.fixtures_server import ServerInfo, eventually

pytestmark = [pytest.mark.ray, pytest.mark.timeout(240)]

INTERVAL = 1.0
THRESHOLD = 2
FLIGHTS = {"origin": "SFO", "destination": "CDG", "departure_date": "2025-06-01"}
CALL_CONTEXT: dict[str, Any] = {"step": "search_flights", "timeout": 30.0}


@pytest.fixture
def travel_actor(server: ServerInfo) -> Iterator[Any]:
    """The shipped travel agent with a fast health check, under a name of its own; killed afterwards so
    its MCP server process goes with it."""
    settings = Settings(data_dir=server.data_dir, namespace=server.namespace)
    registry = load_registry([], data_dir=server.data_dir)
    agent = registry.agents["amadeus-travel"].model_copy(
        update={
            # timeout stays generous: it also bounds (x4) starting a Python MCP server on a busy machine
            "health_check": HealthCheckConfig(interval=INTERVAL, timeout=5, failure_threshold=THRESHOLD)
        }
    )
    handle = RemoteAgentActor.options(
        name=f"agent:fault-test-{uuid.uuid4().hex[:8]}",
        namespace=server.namespace,
        num_cpus=0,
        max_concurrency=100,
    ).remote(agent, registry.connector_for(agent), settings)
    try:
        yield handle
    finally:
        ray.kill(handle, no_restart=True)


def health(handle: Any) -> dict[str, Any]:
    result: dict[str, Any] = ray.get(handle.get_health.remote(), timeout=30)
    return result


def status_is(handle: Any, expected: str) -> dict[str, Any] | None:
    current = health(handle)
    return current if current["status"] == expected else None


def test_killed_mcp_server_turns_unhealthy_then_recovers(travel_actor: Any) -> None:
    eventually(lambda: status_is(travel_actor, "healthy"), timeout=120, interval=0.2)
    first = ray.get(travel_actor.call.remote("search_flights", FLIGHTS, "query", CALL_CONTEXT), timeout=60)
    assert first["flights"]

    pid = ray.get(travel_actor.connector_pid.remote(), timeout=30)
    assert isinstance(pid, int) and pid > 0
    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()

    # threshold 2 at a 1 s interval: two failed probes, about two intervals; the bound leaves room for a
    # loaded machine, the elapsed time is checked loosely below
    down = eventually(lambda: status_is(travel_actor, "unhealthy"), timeout=30, interval=0.05)
    elapsed = time.monotonic() - killed
    assert down["consecutive_failures"] >= THRESHOLD
    assert down["last_error"]
    assert elapsed < INTERVAL * THRESHOLD + 8, f"unhealthy only after {elapsed:.1f}s"

    # calls fail fast while unhealthy instead of restarting the server behind the health loop's back
    with pytest.raises(RayTaskError) as failed:
        ray.get(travel_actor.call.remote("search_flights", FLIGHTS, "query", CALL_CONTEXT), timeout=30)
    cause = failed.value.cause
    assert isinstance(cause, AgentUnavailable)
    assert cause.code == "AGENT_UNAVAILABLE" and cause.retryable is True
    assert "unhealthy" in cause.message

    # the health loop reconnects, which starts a new server process
    recovered = eventually(lambda: status_is(travel_actor, "healthy"), timeout=120, interval=0.2)
    assert recovered["consecutive_failures"] == 0 and recovered["last_error"] is None
    new_pid = ray.get(travel_actor.connector_pid.remote(), timeout=30)
    assert new_pid is not None and new_pid != pid
    again = ray.get(travel_actor.call.remote("search_flights", FLIGHTS, "query", CALL_CONTEXT), timeout=60)
    assert again["flights"] == first["flights"]


def test_describe_reports_capabilities_and_connection(travel_actor: Any) -> None:
    eventually(lambda: status_is(travel_actor, "healthy"), timeout=120, interval=0.2)
    described = ray.get(travel_actor.describe.remote(), timeout=30)
    assert described["connected"] is True
    names = [c["name"] for c in described["capabilities"]]
    assert names == ["search_flights", "search_hotels", "search_activities"]
    assert described["health"]["status"] == "healthy"


def test_missing_required_parameter_is_refused_before_the_call(travel_actor: Any) -> None:
    with pytest.raises(RayTaskError) as failed:
        ray.get(
            travel_actor.call.remote("search_flights", {"origin": "SFO"}, "query", CALL_CONTEXT), timeout=60
        )
    cause = failed.value.cause
    assert getattr(cause, "code", None) == "INVALID_PARAMETERS"
    assert "missing required parameter 'destination'" in str(cause)
    assert getattr(cause, "retryable", None) is False

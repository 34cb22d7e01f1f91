"""The bundled demo MCP servers through the real ``MCPConnector``: real processes, real transports, no mocks.

The travel tests run twice, over stdio and over streamable HTTP, so both transports meet one contract.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from agents.connectors.base import (
    CallContext,
    CapabilitySpec,
    ConnectorCallError,
    ConnectorError,
    ConnectorUnavailable,
)
from agents.connectors.mcp import MCPConnector
from tests.ports import free_port

pytestmark = pytest.mark.timeout(60)

REPO = Path(__file__).resolve().parents[1]
SFO_CDG = {"origin": "SFO", "destination": "CDG", "departure_date": "2025-06-01", "max_price": 1000}
PARIS_NEAR_EIFFEL = {
    "city": "Paris",
    "check_in": "2025-06-01",
    "check_out": "2025-06-07",
    "star_rating": 4,
    "landmark": "Eiffel Tower",
}


async def query(connector: MCPConnector, tool: str, params: dict[str, Any], **context: Any) -> Any:
    return await connector.call(
        CapabilitySpec(name=tool), params, mode="query", context=CallContext(step=tool, **context)
    )


@pytest.fixture(scope="module")
def travel_http_server() -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """A travel server on its own port, as an operator would run a third-party MCP server."""
    port = free_port()
    argv = [sys.executable, "-m", "agents.demo.travel_server", "--transport", "streamable-http"]
    proc = subprocess.Popen([*argv, "--port", str(port)], cwd=REPO)
    try:
        yield proc, port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def listening_url(proc: subprocess.Popen[bytes], port: int, *, timeout: float = 20.0) -> str:
    # Synchronous on purpose: called from fixtures running inside the test loop.
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"travel server exited with {proc.returncode} before listening")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return f"http://127.0.0.1:{port}/mcp"
        except OSError:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"travel server did not listen on port {port} within {timeout}s"
                ) from None
            time.sleep(0.05)


@pytest.fixture(scope="module", params=["stdio", "streamable_http"])
async def travel(request: pytest.FixtureRequest) -> AsyncIterator[MCPConnector]:
    # Started before the stdio run so its start-up (seconds: importing the SDK) overlaps it.
    proc, port = request.getfixturevalue("travel_http_server")
    if request.param == "stdio":
        config: dict[str, Any] = {
            "command": "python",
            "args": ["-m", "agents.demo.travel_server"],
            "cwd": str(REPO),
        }
    else:
        config = {"transport": "streamable_http", "url": listening_url(proc, port)}
    connector = MCPConnector(f"amadeus-travel-{request.param}", config)
    await connector.connect()
    yield connector
    await connector.close()


async def test_discover_describes_tools_with_required_parameters(travel: MCPConnector) -> None:
    capabilities = {c.name: c for c in await travel.discover()}

    assert set(capabilities) == {"search_flights", "search_hotels", "search_activities"}
    flights = capabilities["search_flights"]
    assert flights.description.startswith("Search for flights between airports")
    assert {n for n, p in flights.parameters.items() if p.required} == {
        "origin",
        "destination",
        "departure_date",
    }
    assert flights.parameters["return_date"].type == "string"
    assert flights.parameters["max_price"].type == "number"
    assert flights.parameters["airline_alliance"].enum == ["SkyTeam", "Star Alliance", "oneworld"]
    assert flights.parameters["passengers"].default == 1
    assert flights.binding["tool"] == "search_flights" and flights.binding["read_only"] is True
    hotels = capabilities["search_hotels"]
    assert {n for n, p in hotels.parameters.items() if p.required} == {"city", "check_in", "check_out"}
    assert hotels.parameters["star_rating"].type == "integer"


async def test_search_flights_honours_max_price_and_is_deterministic(travel: MCPConnector) -> None:
    first = await query(travel, "search_flights", SFO_CDG)
    # An agent may expose the tool under its own capability name; the binding names the tool.
    flights = CapabilitySpec(name="find_flights", binding={"tool": "search_flights"})
    second = await travel.call(flights, SFO_CDG, mode="query", context=CallContext())

    assert first == second
    prices = [f["price"] for f in first["flights"]]
    assert prices and all(p <= 1000 for p in prices) and prices == sorted(prices)
    assert first["count"] == len(first["flights"])
    cheapest = first["flights"][0]
    assert (cheapest["airline"], cheapest["price"], cheapest["stops"]) == ("Air France", 850, 0)
    assert cheapest["flight_number"].startswith("AF")
    assert any(f["airline"] == "Delta" and f["price"] == 920 and f["stops"] == 1 for f in first["flights"])
    assert all(f["synthetic"] for f in first["flights"])
    unfiltered = await query(travel, "search_flights", {**SFO_CDG, "max_price": None})
    assert any(f["price"] > 1000 for f in unfiltered["flights"])


async def test_search_hotels_near_a_landmark(travel: MCPConnector) -> None:
    result = await query(travel, "search_hotels", PARIS_NEAR_EIFFEL)

    hotels = result["hotels"]
    assert hotels[0]["name"] == "Hotel Eiffel Palace"
    assert (hotels[0]["distance_km"], hotels[0]["price_per_night"]) == (0.5, 180)
    assert (hotels[0]["nights"], hotels[0]["total_price"]) == (6, 1080)
    assert hotels[1]["name"] == "Le Meridien Etoile" and hotels[1]["distance_km"] == 1.2
    assert all(h["stars"] == 4 and h["landmark"] == "Eiffel Tower" for h in hotels)
    assert [h["distance_km"] for h in hotels] == sorted(h["distance_km"] for h in hotels)


async def test_a_bad_date_is_a_call_error_saying_what_to_fix(travel: MCPConnector) -> None:
    with pytest.raises(ConnectorCallError) as caught:
        await query(travel, "search_flights", {**SFO_CDG, "departure_date": "06/01/2025"})

    assert caught.value.retryable is False
    assert "departure_date must be an ISO date YYYY-MM-DD, got '06/01/2025'" in caught.value.message
    with pytest.raises(ConnectorCallError, match="return_date '2025-05-01' is before departure_date"):
        await query(travel, "search_flights", {**SFO_CDG, "return_date": "2025-05-01"})
    assert travel.connected, "a tool error must not cost the session"


async def test_crm_create_lead_inserts_once_per_idempotency_key(tmp_path: Path) -> None:
    db_path = tmp_path / "crm" / "crm.db"
    crm = MCPConnector(
        "salesforce-crm",
        {
            "command": "python",
            "args": ["-m", "agents.demo.crm_server", "--db", str(db_path)],
            "cwd": str(REPO),
        },
    )
    await crm.connect()
    try:
        create_lead = next(c for c in await crm.discover() if c.name == "create_lead")
        assert {n for n, p in create_lead.parameters.items() if p.required} == {
            "first_name",
            "last_name",
            "email",
            "company",
        }
        assert create_lead.binding["read_only"] is False and create_lead.binding["idempotent"] is True
        seeded = await query(crm, "query_contacts", {"limit": 200})
        assert seeded["count"] >= 25
        lead = {
            "first_name": "Ada",
            "last_name": "Lovelace",
            "email": "ada@engines.example",
            "company": "Engines",
        }

        created = await crm.call(
            CapabilitySpec(name="create_lead"),
            lead,
            mode="execute",
            context=CallContext(
                idempotency_key="exec-1:create_lead", execution_id="exec-1", step="create_lead"
            ),
        )
        replayed = await crm.call(
            CapabilitySpec(name="create_lead"),
            lead,
            mode="execute",
            context=CallContext(
                idempotency_key="exec-1:create_lead", execution_id="exec-1", step="create_lead"
            ),
        )
        again_without_key = await query(crm, "create_lead", lead)

        assert created["created"] is True and created["lead"]["status"] == "lead"
        assert replayed == created
        assert again_without_key["created"] is False
        assert again_without_key["lead"]["id"] == created["lead"]["id"]
        found = await query(crm, "query_contacts", {"email": "ADA@engines.example"})
        assert [c["id"] for c in found["contacts"]] == [created["lead"]["id"]]
        after = await query(crm, "query_contacts", {"limit": 200})
        assert after["count"] == seeded["count"] + 1
        with sqlite3.connect(db_path) as db:
            rows = db.execute("SELECT COUNT(*) FROM contacts WHERE email = ?", (lead["email"],)).fetchone()
        assert rows == (1,)
        deals = await query(crm, "query_opportunities", {"min_amount": 100000})
        assert deals["count"] > 0 and all(o["amount"] >= 100000 for o in deals["opportunities"])
        assert deals["total_amount"] == sum(o["amount"] for o in deals["opportunities"])
    finally:
        await crm.close()


async def test_a_killed_stdio_server_is_unavailable_until_reconnected() -> None:
    connector = MCPConnector(
        "travel-doomed", {"command": "python", "args": ["-m", "agents.demo.travel_server"]}
    )
    await connector.connect()
    try:
        first_pid = connector.pid
        assert first_pid is not None
        await connector.probe()

        os.kill(first_pid, signal.SIGKILL)

        with pytest.raises(ConnectorUnavailable) as caught:
            await query(connector, "search_activities", {"city": "Paris"})
        assert caught.value.retryable is True
        with pytest.raises(ConnectorUnavailable):
            await connector.probe()
        assert not connector.connected

        await connector.connect()
        assert connector.pid not in (None, first_pid)
        await connector.probe()
        assert (await query(connector, "search_activities", {"city": "Paris"}))["count"] > 0
    finally:
        await connector.close()


async def test_connect_failures_name_the_cause() -> None:
    missing = MCPConnector("missing", {"command": "/nonexistent/mcp-server"})
    with pytest.raises(ConnectorUnavailable, match="No such file or directory"):
        await missing.connect()
    with pytest.raises(ConnectorUnavailable, match="not connected"):
        await missing.probe()
    unreachable = MCPConnector("unreachable", {"url": f"http://127.0.0.1:{free_port()}/mcp"})
    with pytest.raises(ConnectorUnavailable, match="unreachable"):
        await unreachable.connect()


def test_an_unusable_config_is_rejected_up_front() -> None:
    with pytest.raises(ConnectorError, match="needs 'command'") as caught:
        MCPConnector("broken", {"transport": "stdio"})
    assert (caught.value.code, caught.value.retryable) == ("CONNECTOR_MISCONFIGURED", False)
    with pytest.raises(ConnectorError, match="timeout"):
        MCPConnector("broken", {"url": "http://x/mcp", "timeout": 0})

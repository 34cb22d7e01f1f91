"""The ``http`` connector against a real local HTTP service (FastAPI served by uvicorn in a thread)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse

from agents.actor import AgentActor
from agents.connectors.base import (
    CallContext,
    CapabilitySpec,
    ConnectorCallError,
    ConnectorError,
    ConnectorTimeout,
    ConnectorUnavailable,
)
from agents.connectors.http import HTTPConnector
from agents.registry import AgentConfig, ConnectorConfig
from orchestrator.config import Settings
from tests.ports import free_port


def build_app() -> FastAPI:
    app = FastAPI()
    state: dict[str, Any] = {"healthy": True}

    @app.get("/api/flights/{origin}/{destination}")
    async def flights(origin: str, destination: str, request: Request) -> dict[str, Any]:
        return {
            "origin": origin,
            "destination": destination,
            "query": dict(request.query_params),
            "headers": {
                k: v for k, v in request.headers.items() if k in ("authorization", "idempotency-key")
            },
        }

    @app.post("/api/leads")
    async def create_lead(request: Request) -> JSONResponse:
        return JSONResponse(
            {"body": await request.json(), "idempotency_key": request.headers.get("idempotency-key")},
            status_code=201,
        )

    @app.get("/api/login")
    async def login() -> JSONResponse:
        answer = JSONResponse({"logged_in": True})
        answer.set_cookie("session", "tenant-a", path="/")
        return answer

    @app.get("/api/cookies")
    async def cookies(request: Request) -> dict[str, Any]:
        return {"cookies": dict(request.cookies)}

    @app.get("/api/text")
    async def text() -> PlainTextResponse:
        return PlainTextResponse("plain words")

    @app.delete("/api/leads/{lead_id}")
    async def delete_lead(lead_id: str) -> Response:
        return Response(status_code=204)

    @app.get("/api/missing")
    async def missing() -> JSONResponse:
        return JSONResponse({"detail": "no such thing"}, status_code=404)

    @app.get("/api/busy")
    async def busy() -> JSONResponse:
        return JSONResponse({"detail": "try later"}, status_code=503)

    @app.get("/api/slow")
    async def slow() -> dict[str, bool]:
        await asyncio.sleep(2)
        return {"late": True}

    @app.get("/api/redirect-here")
    async def redirect_here() -> RedirectResponse:
        return RedirectResponse("/api/text", status_code=302)

    @app.get("/api/redirect-away")
    async def redirect_away(request: Request) -> RedirectResponse:
        # "localhost" is another origin than the base URL's 127.0.0.1, though the same server
        return RedirectResponse(f"http://localhost:{request.url.port}/api/steal", status_code=302)

    @app.get("/api/steal")
    async def steal(request: Request) -> dict[str, bool]:
        state.setdefault("stolen", []).append(dict(request.headers))
        return {"stolen": True}

    @app.get("/admin")
    async def admin(request: Request) -> dict[str, bool]:
        state.setdefault("admin", []).append(dict(request.headers))
        return {"admin": True}

    @app.get("/state")
    async def hits() -> dict[str, int]:
        return {key: len(state.get(key, [])) for key in ("stolen", "admin")}

    @app.get("/health")
    async def health() -> JSONResponse:
        return JSONResponse({"ok": state["healthy"]}, status_code=200 if state["healthy"] else 503)

    @app.post("/health/{value}")
    async def set_health(value: bool) -> dict[str, bool]:
        state["healthy"] = value
        return {"ok": value}

    return app


@pytest.fixture(scope="module")
def service() -> Iterator[str]:
    port = free_port()
    config = uvicorn.Config(
        build_app(), host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=1
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test HTTP service did not start")
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=5)


@pytest.fixture
async def connector(service: str) -> AsyncIterator[HTTPConnector]:
    connector = HTTPConnector(
        "test-api",
        {
            "base_url": f"{service}/api",
            "headers": {"Authorization": "Bearer s3cret"},
            "timeout": 5,
        },
    )
    await connector.connect()
    yield connector
    await connector.close()


def cap(name: str, **binding: Any) -> CapabilitySpec:
    return CapabilitySpec(name=name, binding=binding)


async def test_get_with_path_and_query_parameters(connector: HTTPConnector) -> None:
    capability = cap("search_flights", method="GET", path="/flights/{origin}/{destination}")
    result = await connector.call(
        capability,
        {"origin": "SFO", "destination": "C D?x=1", "max_price": 1000, "direct": True, "unset": None},
        mode="query",
        context=CallContext(),
    )
    assert result == {
        "origin": "SFO",
        "destination": "C D?x=1",  # escaped on the way: it cannot add query parameters
        "query": {"max_price": "1000", "direct": "true"},
        "headers": {"authorization": "Bearer s3cret"},
    }


async def test_post_sends_a_json_body_and_the_idempotency_key(connector: HTTPConnector) -> None:
    capability = cap("create_lead", path="/leads", query=[], body="all")
    result = await connector.call(
        capability,
        {"first_name": "Ada", "tags": ["vip"], "score": 9.5},
        mode="execute",
        context=CallContext(idempotency_key="exec_1:create_lead"),
    )
    assert result == {
        "body": {"first_name": "Ada", "tags": ["vip"], "score": 9.5},
        "idempotency_key": "exec_1:create_lead",
    }


async def test_explicit_query_and_body_lists(connector: HTTPConnector) -> None:
    capability = cap("create_lead", method="POST", path="/leads", query=["dry_run"], body=["email"])
    method, path, query, body = connector.build_request(
        capability, {"email": "a@b.c", "dry_run": False, "note": "x"}, mode="execute"
    )
    assert (method, path, query, body) == (
        "POST",
        "/leads",
        {"dry_run": "false"},
        {"email": "a@b.c", "note": "x"},
    )


async def test_a_cookie_one_answer_sets_does_not_go_out_with_later_calls(connector: HTTPConnector) -> None:
    """One client makes the calls of every execution and tenant: a session cookie must not leak."""
    assert await connector.call(cap("login", path="/login"), {}, mode="query", context=CallContext()) == {
        "logged_in": True
    }
    got = await connector.call(cap("cookies", path="/cookies"), {}, mode="query", context=CallContext())
    assert got == {"cookies": {}}


async def test_text_and_empty_responses(connector: HTTPConnector) -> None:
    text = await connector.call(cap("text", path="/text"), {}, mode="query", context=CallContext())
    deleted = await connector.call(
        cap("delete", method="DELETE", path="/leads/{id}"), {"id": 7}, mode="execute", context=CallContext()
    )
    assert (text, deleted) == ("plain words", None)


async def test_missing_path_parameter(connector: HTTPConnector) -> None:
    with pytest.raises(ConnectorCallError, match="needs parameter 'destination'"):
        await connector.call(
            cap("f", path="/flights/{origin}/{destination}"),
            {"origin": "SFO"},
            mode="query",
            context=CallContext(),
        )


async def test_4xx_is_not_retryable(connector: HTTPConnector) -> None:
    with pytest.raises(ConnectorCallError) as info:
        await connector.call(cap("missing", path="/missing"), {}, mode="query", context=CallContext())
    assert info.value.retryable is False
    assert info.value.code == "HTTP_404"
    assert "404" in info.value.message and "no such thing" in info.value.message


async def test_5xx_is_retryable(connector: HTTPConnector) -> None:
    with pytest.raises(ConnectorUnavailable) as info:
        await connector.call(cap("busy", path="/busy"), {}, mode="query", context=CallContext())
    assert info.value.retryable is True
    assert "503" in info.value.message and "try later" in info.value.message


async def test_timeout_is_retryable(connector: HTTPConnector) -> None:
    started = time.monotonic()
    with pytest.raises(ConnectorTimeout) as info:
        await connector.call(cap("slow", path="/slow"), {}, mode="query", context=CallContext(timeout=0.2))
    assert info.value.retryable is True
    assert time.monotonic() - started < 1.5


async def test_unreachable_service_is_unavailable() -> None:
    connector = HTTPConnector("gone", {"base_url": f"http://127.0.0.1:{free_port()}", "timeout": 2})
    with pytest.raises(ConnectorUnavailable) as info:
        await connector.call(cap("x"), {}, mode="query", context=CallContext())
    assert info.value.retryable is True
    with pytest.raises(ConnectorUnavailable):
        await connector.probe()
    await connector.close()


async def test_probe_uses_the_health_path(service: str) -> None:
    connector = HTTPConnector("api", {"base_url": service, "health_path": "/health", "timeout": 2})
    await connector.probe()
    await connector.call(
        cap("off", method="POST", path="/health/false"), {}, mode="execute", context=CallContext()
    )
    try:
        with pytest.raises(ConnectorUnavailable, match="503"):
            await connector.probe()
    finally:
        await connector.call(
            cap("on", method="POST", path="/health/true"), {}, mode="execute", context=CallContext()
        )
    await connector.probe()
    await connector.close()


async def test_probe_without_health_path_only_needs_an_answer(connector: HTTPConnector) -> None:
    await connector.probe()  # GET {base_url} answers 404 here: the service is up, which is all we can tell


def test_base_url_is_required() -> None:
    with pytest.raises(ConnectorError, match="base_url"):
        HTTPConnector("bad", {"base_url": "ftp://example"})


# -- containment: the API's credentials go only where the configuration says -----------------------------


def hits(service: str) -> dict[str, int]:
    counts: dict[str, int] = httpx.get(f"{service}/state").json()
    return counts


async def test_undeclared_capability_is_refused_by_the_agent(service: str, tmp_path: Any) -> None:
    """A step's ``statement`` names a capability; on an agent without declared ones it used to be the path."""
    agent = AgentConfig(id="api", name="API", domain="d", connector_type="http", connector="api")
    connector = ConnectorConfig(
        name="api",
        type="http",
        config={"base_url": f"{service}/api", "headers": {"Authorization": "Bearer s3cret"}},
    )
    actor = AgentActor(agent, connector, Settings(data_dir=tmp_path))
    before = hits(service)
    try:
        for statement in (
            f"http://localhost:{service.rsplit(':', 1)[1]}/admin",
            "users/../../admin",
            "../admin",
        ):
            with pytest.raises(ConnectorCallError) as info:
                await actor.call(statement, {}, "query", {})
            assert info.value.code == "UNKNOWN_CAPABILITY"
    finally:
        actor._loop_task.cancel()
        assert actor.connector is not None
        await actor.connector.close()
    assert hits(service) == before


async def test_capability_name_stays_one_path_segment_under_the_base(
    connector: HTTPConnector, service: str
) -> None:
    before = hits(service)
    for name in ("users/../../admin", f"http://localhost:{service.rsplit(':', 1)[1]}/admin"):
        with pytest.raises(ConnectorCallError) as info:  # the service has no such path under /api
            await connector.call(cap(name), {}, mode="query", context=CallContext())
        assert info.value.code == "HTTP_404"
    assert hits(service) == before


async def test_path_template_cannot_leave_the_base_path(connector: HTTPConnector, service: str) -> None:
    before = hits(service)
    for path in ("/../admin", "/flights/../../admin", "/%2e%2e/admin"):
        with pytest.raises(ConnectorCallError) as info:
            await connector.call(cap("x", path=path), {}, mode="query", context=CallContext())
        assert info.value.code == "URL_OUTSIDE_BASE"
        assert info.value.retryable is False
    assert hits(service) == before


async def test_dot_segments_as_path_parameters_are_refused(connector: HTTPConnector, service: str) -> None:
    capability = cap("f", path="/flights/{origin}/{destination}")
    for value in (".", ".."):
        with pytest.raises(ConnectorCallError) as info:
            await connector.call(
                capability, {"origin": value, "destination": "x"}, mode="query", context=CallContext()
            )
        assert info.value.code == "INVALID_PARAMETERS"
    # anything else is escaped into one segment: the request stays under the base URL
    before = hits(service)
    with pytest.raises(ConnectorCallError) as info:
        await connector.call(
            capability, {"origin": "../../admin", "destination": "x"}, mode="query", context=CallContext()
        )
    assert "/api/flights/..%2F..%2Fadmin/x" in info.value.message
    assert hits(service) == before


async def test_same_origin_redirect_is_followed(connector: HTTPConnector) -> None:
    assert await connector.call(cap("r", path="/redirect-here"), {}, mode="query", context=CallContext()) == (
        "plain words"
    )


async def test_redirect_to_another_origin_is_not_followed(connector: HTTPConnector, service: str) -> None:
    before = hits(service)
    with pytest.raises(ConnectorCallError) as info:
        await connector.call(cap("r", path="/redirect-away"), {}, mode="query", context=CallContext())
    assert info.value.code == "REDIRECT_BLOCKED"
    assert "localhost" in info.value.message and "s3cret" not in info.value.message
    assert hits(service) == before


async def test_errors_name_the_url_without_its_query_string(service: str) -> None:
    connector = HTTPConnector(
        "keyed",
        {"base_url": f"{service}/api?api_key=k3y-in-url", "timeout": 5, "headers": {"X-Token": "hdr-t0ken"}},
    )
    try:
        with pytest.raises(ConnectorCallError) as info:
            await connector.call(
                cap("missing", path="/missing"), {"q": "p4ram"}, mode="query", context=CallContext()
            )
    finally:
        await connector.close()
    message = info.value.message
    assert "/api/missing" in message
    assert "k3y-in-url" not in message and "p4ram" not in message and "?" not in message.split("answered")[0]

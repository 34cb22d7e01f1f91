"""The FastAPI application both dialects share. Serve's ingress deployment wraps it (``serve_app``);
routes reach the engine through ``app.state``, which the ingress fills in its constructor."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse

from orchestrator.config import Settings
from orchestrator.core.errors import Unauthenticated
from orchestrator.server.api import agents, approvals, eai, plan, plan_review, streams, v1
from orchestrator.server.api.deps import authenticate, maybe_service
from orchestrator.server.api.errors import ERROR_SCHEMA, BodySizeLimit, install_error_handlers
from orchestrator.server.ui import mount_ui

API_PREFIX = "/api/"
SECURITY_SCHEMES: dict[str, Any] = {
    "bearerAuth": {
        "type": "http",
        "scheme": "bearer",
        "description": "an API key (orch_<id>_<secret>) from `orchestrate keys create`",
    },
    "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key", "description": "the same key"},
}


def create_app(settings: Settings) -> FastAPI:
    app = FastAPI(
        title="Ray Orchestrator",
        version="0.1.0",
        description="Event-sourced workflow and multi-agent orchestration on Ray Serve. "
        "Two dialects over one engine: /api/v1 and /api/eai/v3/orchestrate.",
    )
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    install_error_handlers(app)
    app.include_router(streams.v1_router)  # first: /executions/stream is not /executions/{execution_id}
    app.include_router(v1.router)
    app.include_router(agents.router)
    app.include_router(plan.router)
    app.include_router(plan_review.router)
    app.include_router(eai.router)
    app.include_router(streams.eai_router)
    app.include_router(approvals.v1_router)
    app.include_router(approvals.eai_router)

    open_server = settings.resolved_auth == "off"
    app.openapi = lambda: _openapi(app, open_server=open_server)  # type: ignore[method-assign]

    @app.get(
        "/health",
        tags=["health"],
        responses={503: {"description": "starting"}},
        summary="200 once the server can take work",
    )
    async def health(request: Request) -> Any:
        engine = maybe_service("engine")
        if engine is None:
            return JSONResponse({"status": "starting"}, status_code=503)
        await engine.ready()  # hosts answer once they have resumed their executions
        serving = maybe_service("serving")
        if serving is not None:
            serving.set()  # this replica is reachable and its hosts are up: the agents may start now
        try:
            await authenticate(request)
        except Unauthenticated:  # open to probes, but without a key it tells nothing beyond the status
            return {"status": "ok"}
        hosts = await engine.host_stats()
        status = "ok" if hosts["unowned_partitions"] == 0 else "degraded"
        return {"status": status, "placement": engine.settings.placement, **hosts}

    mount_ui(app)  # the web UI at /ui: static files, a client of the routes above
    return app


def _openapi(app: FastAPI, *, open_server: bool) -> dict[str, Any]:
    """FastAPI's document, with the answers the error handlers really give: a request that fails
    validation is 400 (not FastAPI's 422), and every error answer is the one envelope. The API routes
    take an API key (bearer or ``X-API-Key``); on a server with auth off the key is optional (``{}``)."""
    if app.openapi_schema is None:
        doc = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        components = doc.setdefault("components", {})
        components.setdefault("schemas", {})["Error"] = ERROR_SCHEMA
        components["securitySchemes"] = SECURITY_SCHEMES
        security: list[dict[str, list[str]]] = [{name: []} for name in SECURITY_SCHEMES]
        if open_server:
            security.append({})
        error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
        for path, item in doc.get("paths", {}).items():
            for operation in item.values():
                responses = operation.setdefault("responses", {})
                if path.startswith(API_PREFIX):
                    operation["security"] = security
                    responses.setdefault(
                        "401", {"description": "UNAUTHENTICATED: no key, or not a valid one"}
                    )
                    responses.setdefault(
                        "403", {"description": "FORBIDDEN: the key may not act for that tenant"}
                    )
                responses.pop("422", None)
                parameters = operation.get("parameters", [])
                if parameters or operation.get("requestBody"):
                    responses.setdefault("400", {})
                if operation.get("requestBody"):
                    responses.setdefault("413", {"description": "body over ORCH_MAX_BODY_BYTES"})
                if any(parameter.get("in") == "path" for parameter in parameters):
                    responses.setdefault("404", {"description": "no such resource"})
                for status, response in responses.items():
                    if status[0] in "45":
                        response.setdefault("description", "error")
                        response["content"] = error
        app.openapi_schema = doc
    return app.openapi_schema

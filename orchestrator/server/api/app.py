"""The FastAPI application both dialects share. Serve's ingress deployment wraps it (``serve_app``);
routes reach the engine through ``app.state``, which the ingress fills in its constructor."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse

from orchestrator.config import Settings
from orchestrator.server.api import agents, eai, plan, v1
from orchestrator.server.api.deps import maybe_service
from orchestrator.server.api.errors import ERROR_SCHEMA, BodySizeLimit, install_error_handlers


def create_app(settings: Settings) -> FastAPI:
    app = FastAPI(
        title="Ray Orchestrator",
        version="0.1.0",
        description="Event-sourced workflow and multi-agent orchestration on Ray Serve. "
        "Two dialects over one engine: /api/v1 and /api/eai/v3/orchestrate.",
    )
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    install_error_handlers(app)
    app.include_router(v1.router)
    app.include_router(agents.router)
    app.include_router(plan.router)
    app.include_router(eai.router)

    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]

    @app.get(
        "/health",
        tags=["health"],
        responses={503: {"description": "starting"}},
        summary="200 once the server can take work",
    )
    async def health() -> Any:
        engine = maybe_service("engine")
        if engine is None:
            return JSONResponse({"status": "starting"}, status_code=503)
        await engine.ready()  # hosts answer once they have resumed their executions
        return {"status": "ok", "placement": engine.settings.placement, "hosts": await engine.host_stats()}

    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, with the answers the error handlers really give: a request that fails
    validation is 400 (not FastAPI's 422), and every error answer is the one envelope."""
    if app.openapi_schema is None:
        doc = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        doc.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
        error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
        for item in doc.get("paths", {}).values():
            for operation in item.values():
                responses = operation.setdefault("responses", {})
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

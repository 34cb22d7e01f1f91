"""The FastAPI application both dialects share. Serve's ingress deployment wraps it (``serve_app``);
routes reach the engine through ``app.state``, which the ingress fills in its constructor."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from orchestrator.config import Settings
from orchestrator.server.api import agents, eai, plan, v1
from orchestrator.server.api.deps import maybe_service
from orchestrator.server.api.errors import BodySizeLimit, install_error_handlers


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

    @app.get("/health", tags=["health"], summary="200 once the server can take work")
    async def health() -> Any:
        engine = maybe_service("engine")
        if engine is None:
            return JSONResponse({"status": "starting"}, status_code=503)
        await engine.ready()  # hosts answer once they have resumed their executions
        return {"status": "ok", "placement": engine.settings.placement, "hosts": await engine.host_stats()}

    return app

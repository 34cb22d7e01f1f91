"""Wiring of the server's parts inside the ingress replica: store, engine, agents, planner handle.

Kept out of ``serve_app`` so tests and the CLI build the same thing the same way.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from agents.actor import start_agent_actors
from orchestrator.api.app import create_app
from orchestrator.api.deps import provide
from orchestrator.config import Settings
from orchestrator.engine import Engine
from orchestrator.runtime.runner import registry_for
from orchestrator.store import open_store
from orchestrator.workflows import load_workflow_files


def create_fastapi_app(settings: Settings) -> FastAPI:
    return create_app(settings)


def build_ingress_state(app: FastAPI, settings: Settings, planner: Any) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = open_store(settings.store_url)
    registry = registry_for(settings)
    workflow_warnings = load_workflow_files(settings, store)
    del app  # services are process-wide: see orchestrator.api.deps
    provide(
        settings=settings,
        store=store,
        registry=registry,
        agents=start_agent_actors(registry, settings),
        planner=planner,
        engine=Engine(settings, store),
        workflow_warnings=workflow_warnings,
    )

"""Wiring of the server's parts inside the ingress replica: store, engine, agents, planner handle.

Kept out of ``serve_app`` so tests and the CLI build the same thing the same way.
"""

from __future__ import annotations

from typing import Any

import ray
from fastapi import FastAPI

from agents.actor import start_agent_actors
from agents.registry import registry_for
from agents.runner import AgentStepRunner
from orchestrator.config import Settings
from orchestrator.runtime.placement import host_supervisor, placed_nodes, start_hosts
from orchestrator.server.api.app import create_app
from orchestrator.server.api.deps import provide
from orchestrator.server.auth import Authenticator, bootstrap_admin_key
from orchestrator.server.executions import ExecutionService
from orchestrator.server.workflow_registry import load_workflow_files
from orchestrator.store import open_store


def create_fastapi_app(settings: Settings) -> FastAPI:
    return create_app(settings)


def prestart_actors(settings: Settings) -> None:
    """Create this node's execution hosts, their supervisor and the agents (found by name later, by the
    ingress). Called by ``orchestrate serve`` before Serve starts, so that their processes start while
    Serve's do, instead of after the ingress replica is up: on a small machine the start-up is mostly
    process starts. Idempotent; a stale host or supervisor is still replaced by the ingress."""
    node = ray.get_runtime_context().get_node_id()
    host_supervisor(settings, AgentStepRunner)
    start_hosts(settings, AgentStepRunner, placed_nodes(settings, node))
    start_agent_actors(registry_for(settings), settings)


def build_ingress_state(app: FastAPI, settings: Settings, planner: Any) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = open_store(settings.store_url)
    registry = registry_for(settings)
    workflow_warnings = load_workflow_files(settings, store)
    if settings.admin_key:
        bootstrap_admin_key(store, settings.admin_key)
    del app  # services are process-wide: see orchestrator.server.api.deps
    provide(
        settings=settings,
        store=store,
        registry=registry,
        agents=start_agent_actors(registry, settings),
        planner=planner,
        engine=ExecutionService(settings, store, AgentStepRunner),
        workflow_warnings=workflow_warnings,
        # None: auth off, every request is open (see orchestrator.server.api.deps.authenticate)
        authenticator=Authenticator(store) if settings.resolved_auth == "api_key" else None,
    )

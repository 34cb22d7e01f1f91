"""Wiring of the server's parts inside the ingress replica: store, engine, agents, planner handle.

Kept out of ``serve_app`` so tests and the CLI build the same thing the same way.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import ray
from fastapi import FastAPI

from agents.actor import start_agent_actors
from agents.registry import Registry, registry_for
from agents.runner import AgentStepRunner
from orchestrator.config import Settings
from orchestrator.runtime.placement import host_supervisor, placed_nodes, start_hosts
from orchestrator.server.api.app import create_app
from orchestrator.server.api.deps import provide
from orchestrator.server.auth import Authenticator, bootstrap_admin_key
from orchestrator.server.executions import ExecutionService
from orchestrator.server.workflow_registry import load_workflow_files
from orchestrator.store import open_store

log = logging.getLogger(__name__)

# The longest the agents wait for this node's hosts before they start anyway.
AGENTS_AFTER_SECONDS = 60.0
# The longest they wait for the first /health 200, on a server nobody probes.
AGENTS_UNPROBED_SECONDS = 5.0


def create_fastapi_app(settings: Settings) -> FastAPI:
    return create_app(settings)


def prestart_actors(settings: Settings) -> None:
    """Create this node's execution hosts and their supervisor (found by name later, by the ingress).
    Called by ``orchestrate serve`` before Serve starts, so that their processes start while Serve's do,
    instead of after the ingress replica is up: on a small machine the start-up is mostly process starts.
    Idempotent; a stale host or supervisor is still replaced by the ingress. The agents come later
    (:func:`start_agents_when_ready`): nothing of the readiness waits for them."""
    node = ray.get_runtime_context().get_node_id()
    host_supervisor(settings, AgentStepRunner)
    start_hosts(settings, AgentStepRunner, placed_nodes(settings, node))


def start_agents_when_ready(
    engine: ExecutionService, registry: Registry, settings: Settings, serving: threading.Event
) -> None:
    """Create (or find) the agents' actors once this replica has answered ``/health`` with 200 (``serving``
    is set; or ``AGENTS_UNPROBED_SECONDS`` after it was built) and this node's execution hosts answer, on
    a thread of their own, so that their processes (and their MCP servers') do not compete with Serve's
    and the hosts' for the CPU while the server starts: started with the ingress, their six processes
    made the first 200 about a second later on a 2-core machine. A step that calls an agent meanwhile
    waits for it (:meth:`agents.runner.AgentStepRunner.replicas`); the agents API shows it as unknown
    until then."""

    def start() -> None:
        serving.wait(AGENTS_UNPROBED_SECONDS)
        try:
            ray.get([host.ready.remote() for host in engine.local_hosts()], timeout=AGENTS_AFTER_SECONDS)
        except Exception as exc:  # slow or failed hosts are the readiness's business, not the agents'
            log.warning("starting the agents before this node's hosts answered: %r", exc)
        provide(agents=start_agent_actors(registry, settings))

    threading.Thread(target=start, name="start-agents", daemon=True).start()


def build_ingress_state(app: FastAPI, settings: Settings, planner: Any) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = open_store(settings.store_url)
    registry = registry_for(settings)
    workflow_warnings = load_workflow_files(settings, store)
    if settings.admin_key:
        bootstrap_admin_key(store, settings.admin_key)
    del app  # services are process-wide: see orchestrator.server.api.deps
    engine = ExecutionService(settings, store, AgentStepRunner)
    serving = threading.Event()  # set by the first /health 200 (orchestrator.server.api.app)
    provide(
        settings=settings,
        store=store,
        registry=registry,
        planner=planner,
        engine=engine,
        workflow_warnings=workflow_warnings,
        # None: auth off, every request is open (see orchestrator.server.api.deps.authenticate)
        authenticator=Authenticator(store) if settings.resolved_auth == "api_key" else None,
        serving=serving,
    )
    start_agents_when_ready(engine, registry, settings, serving)

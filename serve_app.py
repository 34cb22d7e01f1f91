"""Ray Serve entry point: ``serve run serve_app:app`` (settings from ``ORCH_*`` environment variables).

The application graph is an ingress deployment (the FastAPI app of both REST dialects) and the MAP
planner as a separate deployment it calls through a DeploymentHandle, so each scales on its own.
Replicas declare small CPU shares: Serve's default of one CPU per replica would exhaust a 2-core node.
"""

from __future__ import annotations

from typing import Any, cast

from ray import serve
from ray.serve.handle import DeploymentHandle

from orchestrator.config import Settings, load_settings
from orchestrator.server.wiring import build_ingress_state, create_fastapi_app
from planner.deployment import PlannerDeployment

settings = load_settings()
fastapi_app = create_fastapi_app(settings)


@serve.deployment(
    name="ingress",
    max_ongoing_requests=2000,
    ray_actor_options={"num_cpus": 0.1},
)
@serve.ingress(fastapi_app)
class Ingress:
    def __init__(self, settings: Settings, planner: DeploymentHandle[Any]) -> None:
        build_ingress_state(fastapi_app, settings, planner)


def build_app(settings: Settings) -> Any:
    # @serve.deployment turns each class into a Deployment; mypy ignores what class decorators return.
    planner_deployment = cast(serve.Deployment, PlannerDeployment)
    ingress_deployment = cast(serve.Deployment, Ingress)
    # Replica counts (or autoscaling) from settings; Serve spreads replicas over the nodes.
    planner = planner_deployment.options(
        ray_actor_options={"num_cpus": 0.1}, **settings.replica_options("planner")
    ).bind(settings)
    return ingress_deployment.options(**settings.replica_options("ingress")).bind(settings, planner)


app = build_app(settings)

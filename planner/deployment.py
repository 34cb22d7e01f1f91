"""The MAP planner as its own Serve deployment, called by the ingress through a DeploymentHandle."""

from __future__ import annotations

from typing import Any

from ray import serve

from orchestrator.config import Settings


@serve.deployment(name="planner", num_replicas=1, max_ongoing_requests=200)
class PlannerDeployment:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def ping(self) -> dict[str, Any]:
        return {"status": "ok"}

"""How a Ray call's failure becomes the project's own error.

Ray wraps whatever a task or actor method raised in a ``RayTaskError``; callers (the execution
service, the step runner, the planner route) want the project's error back unchanged, and anything
else described in one line.
"""

from __future__ import annotations

from ray.exceptions import RayTaskError

from orchestrator.core.errors import OrchestratorError

__all__ = ["describe_cause", "orchestrator_cause"]


def orchestrator_cause(exc: RayTaskError) -> OrchestratorError | None:
    """The project's error the remote side raised, or None when it raised something else."""
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, OrchestratorError) else None


def describe_cause(exc: RayTaskError) -> str:
    """``TypeName: message`` of what the remote side raised (the wrapper's own text is Ray's traceback)."""
    cause = getattr(exc, "cause", None) or exc
    return f"{type(cause).__name__}: {cause}"

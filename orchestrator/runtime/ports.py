"""The ports the runtime is written against. The runtime never imports an adapter: the composition
root (:mod:`orchestrator.server`) hands hosts a :data:`RunnerFactory`, and the event store comes from
:func:`orchestrator.store.open_store`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from orchestrator.config import Settings
from orchestrator.core.decide import RunStep
from orchestrator.core.state import ExecutionState

__all__ = ["RunnerFactory", "StepRunner"]


class StepRunner(Protocol):
    """Does the I/O of one step attempt and returns its output (raises StepError on failure)."""

    async def run(self, state: ExecutionState, command: RunStep) -> Any: ...


# Built inside each host process (a runner holds actor handles and connections, which do not travel):
# an importable callable, so Ray pickles it by reference and restarts a host with the same one.
RunnerFactory = Callable[[Settings], StepRunner]

"""Execution hosts: where execution actors live.

A Ray actor is a whole process (0.2-0.9 s to create, ~60 MB), so by default executions are *pooled*:
a fixed set of async ``ExecutionHost`` actors, each execution assigned by a stable hash of its id.
``dedicated`` placement runs the same code in one host per execution, for isolation or for watching
one execution in the Ray dashboard. A host that dies is restarted by Ray and, in its constructor,
resumes the non-terminal executions it owns from the event store; pooled host 0 also (re)creates the
actors of ``dedicated`` executions, which no pooled host owns, so a full restart resumes them too.

Hosts are detached named actors that outlive the server that made them. A host records the settings
that decide who writes which execution (:func:`writer_fingerprint`: the store URL and the number of
pooled hosts); the execution service replaces hosts whose fingerprint differs from its own, and a
host refuses a start it does not own, so a settings change never makes two writers for one execution.
"""

from __future__ import annotations

import asyncio
import logging
import time
import zlib
from datetime import UTC, datetime, timedelta
from typing import Any

import ray

from orchestrator.config import Settings, quiet_logging
from orchestrator.core.decide import Start
from orchestrator.core.errors import Conflict, NotFound, OrchestratorError
from orchestrator.core.state import ExecutionState
from orchestrator.runtime.appender import BatchAppender
from orchestrator.runtime.execution import Execution, StoreHealth
from orchestrator.runtime.ports import RunnerFactory
from orchestrator.store import open_store

log = logging.getLogger(__name__)

HOST_NAME = "orch-host-{index}"
DEDICATED_NAME = "orch-exec-{execution_id}"


def host_index(execution_id: str, count: int) -> int:
    """Stable across processes and restarts (unlike ``hash``)."""
    return zlib.crc32(execution_id.encode()) % count


def writer_fingerprint(settings: Settings) -> str:
    """What decides which process writes an execution's log: the store and the pooled host count.
    Two processes that disagree on it could both think they own one execution."""
    return f"{settings.store_url}|hosts={settings.execution_hosts}"


class ExecutionHost:
    """Hosts many execution actors (pooled) or exactly one (dedicated)."""

    def __init__(
        self,
        settings: Settings,
        runner_factory: RunnerFactory,
        *,
        index: int = 0,
        count: int = 1,
        dedicated: str | None = None,
    ) -> None:
        quiet_logging()
        self.settings = settings
        self.index = index
        self.count = count
        self.dedicated = dedicated
        self.store = open_store(settings.store_url)
        self.runner = runner_factory(settings)
        self._runner_factory = runner_factory
        self.revived_dedicated = 0
        self.appender = BatchAppender(self.store)
        self.fingerprint = writer_fingerprint(settings)
        self.health = StoreHealth()
        self.executions: dict[str, Execution] = {}
        self.recovered = 0
        self.recovery_seconds: float | None = None
        # async actors run __init__ on their event loop: recovery starts with the process, so a host
        # restarted by Ray picks its executions up without anyone asking
        self._recovery = asyncio.get_event_loop().create_task(self._recover())
        self._retention: asyncio.Task[None] | None = None
        if settings.retention_days and dedicated is None and index == 0:
            self._retention = asyncio.get_event_loop().create_task(
                self._prune_forever(settings.retention_days)
            )

    # -- public actor methods ----------------------------------------------------------------------

    async def start(
        self, execution_id: str, trigger: Start, *, fingerprint: str | None = None
    ) -> ExecutionState:
        if fingerprint is not None and fingerprint != self.fingerprint:
            raise OrchestratorError(
                f"execution host {self.index} was created with other settings ({self.fingerprint!r}, "
                f"not {fingerprint!r}); it must be replaced before it takes new executions",
                code="HOST_SETTINGS_MISMATCH",
                status=503,
            )
        if not self._owns(execution_id, trigger.placement):
            raise OrchestratorError(
                f"execution {execution_id!r} does not belong to execution host {self.index} of {self.count}",
                code="HOST_SETTINGS_MISMATCH",
                status=503,
            )
        execution = self.executions.get(execution_id)
        if execution is None:
            execution = self._new(execution_id)
            self.executions[execution_id] = execution
            try:
                state = await execution.start(trigger)
            except BaseException:
                self.executions.pop(execution_id, None)  # nothing was recorded: forget it
                raise
            if state.terminal:
                self.executions.pop(execution_id, None)
        return execution.state

    async def wait(self, execution_id: str, timeout: float | None = None) -> ExecutionState:
        execution = self.executions.get(execution_id) or await self._load(execution_id)
        return await execution.wait(timeout)

    async def cancel(
        self,
        execution_id: str,
        reason: str = "Execution was cancelled",
        *,
        key_id: str | None = None,
        user: dict[str, Any] | None = None,
    ) -> ExecutionState:
        execution = self.executions.get(execution_id) or await self._load(execution_id)
        if execution.state.terminal:
            raise Conflict(
                f"execution {execution_id!r} already finished with status {execution.state.status!r}",
                code="EXECUTION_ALREADY_FINISHED",
            )
        return await execution.cancel(reason, key_id=key_id, user=user)

    async def stats(self) -> dict[str, Any]:
        await self._recovered()
        return {
            "index": self.index,
            "dedicated": self.dedicated,
            "live_executions": len(self.executions),
            "recovered": self.recovered,
            "revived_dedicated": self.revived_dedicated,
            "recovery_seconds": self.recovery_seconds,
            "fingerprint": self.fingerprint,
            "append_failures": self.health.append_failures,
            "last_store_error": self.health.last_store_error,
            "last_store_error_at": (
                self.health.last_store_error_at.isoformat() if self.health.last_store_error_at else None
            ),
            "stalled_executions": len(self.health.stalled),
        }

    async def writer_fingerprint(self) -> str:
        return self.fingerprint

    async def ready(self) -> bool:
        await self._recovered()
        return True

    async def _recovered(self) -> None:
        """Wait for recovery without owning it: a caller that gives up (a /health request whose client
        timed out, which Ray turns into a cancelled actor task) must not cancel recovery itself, or
        every later caller would wait on a cancelled task and the host would never be ready."""
        await asyncio.shield(self._recovery)

    # -- internals ---------------------------------------------------------------------------------

    def _new(self, execution_id: str) -> Execution:
        return Execution(
            execution_id,
            store=self.store,
            runner=self.runner,
            on_terminal=self._terminal,
            appender=self.appender,
            max_output_bytes=self.settings.max_step_output_bytes,
            health=self.health,
        )

    async def _load(self, execution_id: str) -> Execution:
        execution = self._new(execution_id)
        state = await execution.reload()
        current = self.executions.get(execution_id)
        if current is not None:  # loaded meanwhile by another call
            return current
        if state.last_seq == 0:
            raise NotFound(f"execution {execution_id!r} not found", code="EXECUTION_NOT_FOUND")
        if not state.terminal:
            self.executions[execution_id] = execution
            asyncio.get_running_loop().create_task(execution.resume())
        return execution

    def _terminal(self, execution: Execution) -> None:
        self.executions.pop(execution.execution_id, None)
        if self.dedicated == execution.execution_id:
            asyncio.get_running_loop().call_later(2.0, _exit_actor)

    def _owns(self, execution_id: str, placement: str) -> bool:
        if self.dedicated is not None:
            return execution_id == self.dedicated
        return placement == "pooled" and host_index(execution_id, self.count) == self.index

    async def _recover(self) -> None:
        began = time.perf_counter()
        try:
            ids = await asyncio.to_thread(self.store.non_terminal_ids)
            for execution_id in ids:
                if execution_id in self.executions:
                    continue
                row = await asyncio.to_thread(self.store.get_execution, execution_id)
                if row is None:
                    continue
                if row.placement == "dedicated" and self.dedicated is None and self.index == 0:
                    self._revive_dedicated(execution_id)
                    continue
                if not self._owns(execution_id, row.placement):
                    continue
                await self._load(execution_id)
                self.recovered += 1
                if self.recovered % 200 == 0:
                    await asyncio.sleep(0)  # let requests in while a large backlog resumes
            self.recovery_seconds = time.perf_counter() - began
            if self.recovered:
                log.info(
                    "host %s resumed %d executions in %.2fs",
                    self.index,
                    self.recovered,
                    self.recovery_seconds,
                )
        except Exception:
            log.exception("recovery failed on host %s", self.index)

    def _revive_dedicated(self, execution_id: str) -> None:
        """A dedicated execution has no pooled owner: (re)create its actor, which resumes it.
        ``get_if_exists`` makes this a lookup when the actor is alive."""
        try:
            dedicated_host(self.settings, execution_id, self._runner_factory)
            self.revived_dedicated += 1
        except Exception:
            log.exception("cannot recreate the dedicated host of %s", execution_id)

    async def _prune_forever(self, days: float) -> None:
        """Retention: one pooled host prunes finished executions older than ``days``, hourly."""
        while True:
            cutoff = datetime.now(UTC) - timedelta(days=days)
            try:
                removed = await asyncio.to_thread(self.store.prune, finished_before=cutoff)
                if removed:
                    log.info("retention: pruned %d executions finished before %s", removed, cutoff)
            except Exception:
                log.exception("retention pruning failed")
            await asyncio.sleep(3600)


def _exit_actor() -> None:
    """A dedicated host is done once its execution is: free the process (and its ~60 MB)."""
    ray.kill(ray.get_runtime_context().current_actor, no_restart=True)


RemoteExecutionHost = ray.remote(ExecutionHost)


def host_options(settings: Settings, name: str) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": settings.namespace,
        "get_if_exists": True,
        "lifetime": "detached",
        "num_cpus": 0,
        "max_restarts": -1,
        "max_task_retries": 0,
        "max_concurrency": 10_000,
    }


def pooled_host(settings: Settings, index: int, runner_factory: RunnerFactory) -> Any:
    return RemoteExecutionHost.options(**host_options(settings, HOST_NAME.format(index=index))).remote(
        settings, runner_factory, index=index, count=settings.execution_hosts
    )


def dedicated_host(settings: Settings, execution_id: str, runner_factory: RunnerFactory) -> Any:
    options = host_options(settings, DEDICATED_NAME.format(execution_id=execution_id))
    return RemoteExecutionHost.options(**options).remote(settings, runner_factory, dedicated=execution_id)

"""The execution service the REST dialects share: start, read, list and cancel executions.

It lives in the ingress process. Reads go straight to the event store (a fold of the log, no actor
hop); writes go to the execution's host, the single writer of its log.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any, cast

import ray
from ray.exceptions import RayTaskError

from orchestrator.config import Settings
from orchestrator.core.decide import Start
from orchestrator.core.definitions import WorkflowDef
from orchestrator.core.errors import Conflict, NotFound
from orchestrator.core.events import from_record
from orchestrator.core.ids import new_execution_id
from orchestrator.core.state import ExecutionState, fold
from orchestrator.ray_errors import orchestrator_cause
from orchestrator.runtime.host import DEDICATED_NAME, dedicated_host, host_index, pooled_host
from orchestrator.runtime.ports import RunnerFactory
from orchestrator.store.base import EventStore, Page


class ExecutionService:
    """What the routes call. Reads fold the log here; writes go to the execution's host."""

    def __init__(self, settings: Settings, store: EventStore, runner_factory: RunnerFactory) -> None:
        self.settings = settings
        self.store = store
        self.runner_factory = runner_factory
        self.hosts = [
            pooled_host(settings, index, runner_factory) for index in range(settings.execution_hosts)
        ]
        self._ready = False

    async def ready(self) -> bool:
        if not self._ready:
            await asyncio.gather(*(host.ready.remote() for host in self.hosts))
            self._ready = True
        return True

    async def host_stats(self) -> list[dict[str, Any]]:
        return list(await asyncio.gather(*(host.stats.remote() for host in self.hosts)))

    async def start(
        self,
        workflow: WorkflowDef,
        *,
        input: dict[str, Any],
        user: dict[str, Any],
        tenant_id: str,
        wait: bool,
        timeout: float | None = None,
        dialect: str = "v1",
        workflow_id: str | None = None,
        workflow_version: str | None = None,
        metadata: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> ExecutionState:
        execution_id = new_execution_id()
        if idempotency_key:
            bound = self.store.claim_idempotency_key(idempotency_key, execution_id)
            if bound != execution_id:  # a resubmission: answer with the original execution
                return await self._original(bound, wait=wait)
        if timeout is None:
            timeout = self.settings.default_timeout
        placement = self.settings.placement
        trigger = Start(
            now=datetime.now(UTC),
            workflow=workflow,
            input=input,
            user=user,
            tenant_id=tenant_id,
            timeout=timeout,
            workflow_id=workflow_id,
            workflow_version=workflow_version,
            dialect=dialect,
            metadata=metadata or {},
            placement=placement,
            idempotency_key=idempotency_key,
        )
        host = self._host(execution_id, placement, create=True)
        state = await _call(host.start.remote(execution_id, trigger))
        if wait and not state.terminal:
            # a synchronous caller waits at most sync_timeout; the execution itself goes on
            state = await _call(host.wait.remote(execution_id, self.settings.sync_timeout))
        return state

    async def _original(self, execution_id: str, *, wait: bool) -> ExecutionState:
        for _ in range(100):  # the first request may still be recording its first event
            try:
                return (
                    await self.wait(execution_id, self.settings.sync_timeout)
                    if wait
                    else self.get(execution_id)
                )
            except NotFound:
                await asyncio.sleep(0.05)
        return self.get(execution_id)

    def get(self, execution_id: str) -> ExecutionState:
        records = self.store.load(execution_id)
        if not records:
            raise NotFound(f"execution {execution_id!r} not found", code="EXECUTION_NOT_FOUND")
        return fold(execution_id, (from_record(record) for record in records))

    def events(self, execution_id: str) -> list[dict[str, Any]]:
        records = self.store.load(execution_id)
        if not records:
            raise NotFound(f"execution {execution_id!r} not found", code="EXECUTION_NOT_FOUND")
        return [from_record(record).public() for record in records]

    async def wait(self, execution_id: str, timeout: float | None = None) -> ExecutionState:
        state = self.get(execution_id)
        if state.terminal:
            return state
        host = self._host(execution_id, state.placement, create=True)
        return await _call(host.wait.remote(execution_id, timeout))

    async def cancel(self, execution_id: str) -> ExecutionState:
        state = self.get(execution_id)
        if state.terminal:
            raise Conflict(
                f"execution {execution_id!r} already finished with status {state.status!r}",
                code="EXECUTION_ALREADY_FINISHED",
            )
        host = self._host(execution_id, state.placement, create=True)
        return await _call(host.cancel.remote(execution_id))

    def list(self, **filters: Any) -> Page:
        return self.store.list_executions(**filters)

    def _host(self, execution_id: str, placement: str, *, create: bool) -> Any:
        if placement == "dedicated":
            name = DEDICATED_NAME.format(execution_id=execution_id)
            try:
                return ray.get_actor(name, namespace=self.settings.namespace)
            except ValueError:
                if not create:
                    raise
                return dedicated_host(
                    self.settings, execution_id, self.runner_factory
                )  # resumes from the store if it exists
        return self.hosts[host_index(execution_id, len(self.hosts))]


async def _call(ref: Any) -> ExecutionState:
    try:
        return cast(ExecutionState, await ref)
    except RayTaskError as exc:
        cause = orchestrator_cause(exc)
        if cause is not None:
            raise cause from None
        raise

"""The execution service the REST dialects share: start, read, list and cancel executions.

It lives in the ingress process. Reads go straight to the event store (a fold of the log, no actor
hop); writes go to the execution's host, the single writer of its log.

``get``, ``events`` and ``list`` are synchronous (the routes run them on a worker thread; the stores
keep one connection per thread, so that is safe); the async methods keep their own store calls off
the event loop.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from datetime import UTC, datetime
from typing import Any, cast

import ray
from ray.exceptions import RayTaskError

from orchestrator.config import Settings
from orchestrator.core.decide import Start
from orchestrator.core.definitions import WorkflowDef
from orchestrator.core.errors import Conflict, NotFound
from orchestrator.core.events import EVENT_TYPES, EventRecord, from_record
from orchestrator.core.ids import new_execution_id
from orchestrator.core.state import ExecutionState, fold
from orchestrator.ray_errors import orchestrator_cause
from orchestrator.runtime.host import (
    DEDICATED_NAME,
    HOST_NAME,
    dedicated_host,
    host_index,
    pooled_host,
    writer_fingerprint,
)
from orchestrator.runtime.ports import RunnerFactory
from orchestrator.store.base import EventStore, IdempotencyKeyTaken, Page

log = logging.getLogger(__name__)


class ExecutionService:
    """What the routes call. Reads fold the log here; writes go to the execution's host."""

    def __init__(self, settings: Settings, store: EventStore, runner_factory: RunnerFactory) -> None:
        self.settings = settings
        self.store = store
        self.runner_factory = runner_factory
        self.fingerprint = writer_fingerprint(settings)
        self.hosts = [
            pooled_host(settings, index, runner_factory) for index in range(settings.execution_hosts)
        ]
        self._ready = False
        self._checked: asyncio.Task[None] | None = None

    async def ready(self) -> bool:
        if not self._ready:
            await self._check_hosts()
            await asyncio.gather(*(host.ready.remote() for host in self.hosts))
            self._ready = True
        return True

    async def _check_hosts(self) -> None:
        """Detached hosts outlive the server that made them: replace any created with other writer
        settings (store URL, host count), and retire pooled hosts beyond the configured count, so
        no execution ever has two writers. Each replacement resumes its executions from the store."""
        if self._checked is None:
            self._checked = asyncio.get_running_loop().create_task(self._replace_stale_hosts())
        await asyncio.shield(self._checked)

    async def _replace_stale_hosts(self) -> None:
        fingerprints = await asyncio.gather(
            *(host.writer_fingerprint.remote() for host in self.hosts), return_exceptions=True
        )
        unknown = False
        for index, fingerprint in enumerate(fingerprints):
            if isinstance(fingerprint, BaseException):
                # no answer (a cancelled call, a host restarting) says nothing about its settings:
                # never kill on that, ask again on the next check
                log.warning("execution host %d did not say its settings: %r", index, fingerprint)
                unknown = True
            elif fingerprint != self.fingerprint:
                log.warning(
                    "execution host %d was created with other settings (%r); replacing it", index, fingerprint
                )
                ray.kill(self.hosts[index], no_restart=True)
                self.hosts[index] = await _recreated(
                    lambda index=index: pooled_host(self.settings, index, self.runner_factory)
                )
        index = len(self.hosts)
        while True:  # hosts left over from a larger ORCH_EXECUTION_HOSTS
            try:
                extra = ray.get_actor(HOST_NAME.format(index=index), namespace=self.settings.namespace)
            except ValueError:
                break
            log.warning("retiring execution host %d (ORCH_EXECUTION_HOSTS is now %d)", index, len(self.hosts))
            ray.kill(extra, no_restart=True)
            index += 1
        if unknown:
            self._checked = None

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
        key_id: str | None = None,
        request_hash: str | None = None,
    ) -> ExecutionState:
        """Start an execution (and wait for it when ``wait``).

        ``idempotency_key`` is scoped to ``tenant_id``: a resubmission with the same key answers with
        the original execution when its ``request_hash`` (the route's fingerprint of the request body)
        matches, and raises Conflict ``IDEMPOTENCY_KEY_REUSED`` (409) when it differs. A missing hash
        on either side matches (bindings made before fingerprints, callers that send none).
        ``key_id`` and ``user`` land in the ``execution.started`` event as ``started_by``."""
        await self._check_hosts()
        execution_id = new_execution_id()
        if idempotency_key:
            # The key is bound by the execution's first append, in its transaction: a start that
            # fails records neither, and the next submission starts afresh.
            bound = await asyncio.to_thread(
                functools.partial(self.store.idempotency_key_owner, idempotency_key, tenant_id=tenant_id)
            )
            if bound is not None:  # a resubmission: answer with the original execution
                original, bound_hash = bound
                _check_same_request(idempotency_key, bound_hash, request_hash)
                return await self._original(original, wait=wait)
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
            request_hash=request_hash,
            key_id=key_id,
        )
        host = self._host(execution_id, placement, create=True)
        try:
            state = await _call(host.start.remote(execution_id, trigger, fingerprint=self.fingerprint))
        except IdempotencyKeyTaken as exc:  # a concurrent submission with the same key won
            if placement == "dedicated":
                _kill_quietly(host)
            assert idempotency_key is not None
            _check_same_request(idempotency_key, exc.request_hash, request_hash)
            return await self._original(exc.execution_id, wait=wait)
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
                    else await asyncio.to_thread(self.get, execution_id)
                )
            except NotFound:
                await asyncio.sleep(0.05)
        return await asyncio.to_thread(self.get, execution_id)

    def get(self, execution_id: str) -> ExecutionState:
        records = self._execution_records(execution_id)
        return fold(execution_id, (from_record(record) for record in records))

    def events(self, execution_id: str) -> list[dict[str, Any]]:
        return [from_record(record).public() for record in self._execution_records(execution_id)]

    def _execution_records(self, execution_id: str) -> list[EventRecord]:
        """The log of an execution; a missing stream, or one that is not an execution's (plans are
        streams in the same store), is not found."""
        records = self.store.load(execution_id)
        if not records or records[0].type not in EVENT_TYPES:
            raise NotFound(f"execution {execution_id!r} not found", code="EXECUTION_NOT_FOUND")
        return records

    async def wait(self, execution_id: str, timeout: float | None = None) -> ExecutionState:
        state = await asyncio.to_thread(self.get, execution_id)
        if state.terminal:
            return state
        host = self._host(execution_id, state.placement, create=True)
        return await _call(host.wait.remote(execution_id, timeout))

    async def cancel(
        self, execution_id: str, *, key_id: str | None = None, user: dict[str, Any] | None = None
    ) -> ExecutionState:
        """Cancel; ``key_id`` and ``user`` (who asked) land in ``execution.cancel_requested`` as
        ``requested_by``."""
        state = await asyncio.to_thread(self.get, execution_id)
        if state.terminal:
            raise Conflict(
                f"execution {execution_id!r} already finished with status {state.status!r}",
                code="EXECUTION_ALREADY_FINISHED",
            )
        host = self._host(execution_id, state.placement, create=True)
        return await _call(host.cancel.remote(execution_id, key_id=key_id, user=user))

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


def _check_same_request(key: str, bound_hash: str | None, request_hash: str | None) -> None:
    """A key bound by another request (both fingerprints known and different) may not be reused."""
    if bound_hash is not None and request_hash is not None and bound_hash != request_hash:
        raise Conflict(
            f"idempotency key {key!r} was already used with a different request; send the same request "
            "to get its execution, or a new key for a new request",
            code="IDEMPOTENCY_KEY_REUSED",
            details={"idempotency_key": key},
        )


async def _recreated(create: Any) -> Any:
    """A killed named actor's name is freed asynchronously: retry the creation until it is."""
    for _ in range(100):
        try:
            return create()
        except ValueError:  # the name is still taken by the dying actor
            await asyncio.sleep(0.1)
    return create()


def _kill_quietly(handle: Any) -> None:
    try:
        ray.kill(handle, no_restart=True)
    except Exception:
        log.debug("could not kill %r", handle, exc_info=True)


async def _call(ref: Any) -> ExecutionState:
    try:
        return cast(ExecutionState, await ref)
    except RayTaskError as exc:
        cause = orchestrator_cause(exc)
        if cause is not None:
            raise cause from None
        raise

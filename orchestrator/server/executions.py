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
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, cast

import ray
from ray.exceptions import RayActorError, RayTaskError

from orchestrator.config import Settings
from orchestrator.core.decide import RunStep, Start
from orchestrator.core.definitions import WorkflowDef
from orchestrator.core.errors import Conflict, InvalidRequest, NotFound, NotOwner, OrchestratorError
from orchestrator.core.events import EVENT_TYPES, EventRecord, from_record
from orchestrator.core.ids import new_execution_id
from orchestrator.core.signals import approval_problem, check_signal_payload, raise_if, signal_problem
from orchestrator.core.state import ExecutionState, evolve, fold
from orchestrator.ray_errors import orchestrator_cause
from orchestrator.runtime.appender import BatchAppender
from orchestrator.runtime.execution import Execution, payload_problem
from orchestrator.runtime.host import actor_of, writer_fingerprint
from orchestrator.runtime.placement import (
    alive_nodes,
    host_supervisor,
    placed_nodes,
    recreated,
    start_hosts,
    uses_sqlite,
)
from orchestrator.runtime.ports import RunnerFactory
from orchestrator.server.folded_states import FoldedStates
from orchestrator.server.parsed_workflows import ParsedWorkflows
from orchestrator.server.routing import PartitionRouter
from orchestrator.store.base import EventStore, Fence, IdempotencyKeyTaken, Page

log = logging.getLogger(__name__)

# a start whose partition moved under it is retried under a new id on a current owner
START_ATTEMPTS = 5


class ExecutionService:
    """What the routes call. Reads fold the log here; writes go to the execution's partition owner."""

    def __init__(self, settings: Settings, store: EventStore, runner_factory: RunnerFactory) -> None:
        refuse_sqlite_cluster(settings)
        self.settings = settings
        self.store = store
        self.runner_factory = runner_factory
        self.fingerprint = writer_fingerprint(settings)
        self.count = store.partition_count(settings.partitions)
        self.router = PartitionRouter(store, settings.namespace, self.count)
        self.folded = FoldedStates()
        self.workflows = ParsedWorkflows(settings.limits)  # definitions validated before, by their JSON
        # executions that finish at their start are recorded here (see _finish_here), group-committed
        self.appender = BatchAppender(store)
        # told of what this replica records itself (its live streams, orchestrator.server.streams)
        self.listeners: list[Callable[[str, list[EventRecord], ExecutionState], None]] = []
        self._relay_finished = settings.ingress_replicas > 1 or (settings.ingress_max_replicas or 1) > 1
        self.supervisor = host_supervisor(settings, runner_factory)
        # the hosts start now, alongside their supervisor (which would create them a process later)
        self._hosts = start_hosts(
            settings, runner_factory, placed_nodes(settings, ray.get_runtime_context().get_node_id())
        )
        self._ready = False
        self._checked: asyncio.Task[None] | None = None
        self._replaced_supervisor = False

    def local_hosts(self) -> list[Any]:
        """The execution hosts of this node, as this replica made them."""
        return list(self._hosts.values())

    async def ready(self) -> bool:
        """True once the hosts are placed, have taken their partitions and resumed their executions,
        and every partition has an owner (waited for at most a lease expiry and a bit: leases left by
        a server that was killed expire before anyone may take them)."""
        if not self._ready:
            # this node's hosts and the supervisor start in parallel; wait for the hosts themselves,
            # and for the supervisor's placement only when it had to replace stale hosts
            answers = await asyncio.gather(
                *(host.ready.remote() for host in self._hosts.values()), return_exceptions=True
            )
            await self._check_supervisor()
            if self._replaced_supervisor or any(isinstance(a, BaseException) for a in answers):
                await self.supervisor.ready.remote()
            deadline = time.monotonic() + self.settings.lease_expire_seconds + 10
            while (await self.router.view(fresh=True)).unowned() and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            self._ready = True
        return True

    async def _check_supervisor(self) -> None:
        """The detached supervisor outlives the server that made it: one made with other settings is
        replaced (and the new one replaces such hosts), so no execution has two kinds of writer."""
        if self._checked is None:
            self._checked = asyncio.get_running_loop().create_task(self._replace_stale_supervisor())
        await asyncio.shield(self._checked)

    async def _replace_stale_supervisor(self) -> None:
        try:
            fingerprint = await self.supervisor.writer_fingerprint.remote()
        except Exception as exc:  # no answer says nothing about its settings: ask again next time
            log.warning("the host supervisor did not say its settings: %r", exc)
            self._checked = None
            return
        if fingerprint != self.fingerprint:
            log.warning("the host supervisor was created with other settings; replacing it")
            ray.kill(self.supervisor, no_restart=True)
            self.supervisor = await recreated(lambda: host_supervisor(self.settings, self.runner_factory))
            self._replaced_supervisor = True

    async def host_stats(self) -> dict[str, Any]:
        """What /health tells: every host with its node, partitions and lease epochs, and the
        partitions nobody owns (0 when healthy)."""
        snapshot = await self.router.view(fresh=True)
        hosts: list[dict[str, Any]] = []
        for heartbeat in snapshot.live_hosts():
            entry: dict[str, Any] = {
                "name": actor_of(heartbeat.owner),
                "owner": heartbeat.owner,
                "node_id": heartbeat.node_id,
                "cluster": heartbeat.cluster,
                "partitions": {
                    str(p): lease.epoch
                    for p, lease in snapshot.leases.items()
                    if lease.owner == heartbeat.owner and lease.held(snapshot.now)
                },
            }
            handle = self.router.handle(heartbeat.owner)
            if handle is not None:
                try:
                    stats = await asyncio.wait_for(handle.stats.remote(), 5)
                except Exception as exc:
                    entry["error"] = f"{type(exc).__name__}: {exc}"[:300]
                else:
                    for key in (
                        "pid",
                        "live_executions",
                        "recovered",
                        "recovery_seconds",
                        "draining",
                        "fenced_appends",
                        "append_failures",
                        "last_store_error",
                        "last_store_error_at",
                        "stalled_executions",
                        "last_lease_error",
                    ):
                        entry[key] = stats.get(key)
            else:
                entry["reachable"] = False  # another Ray cluster's host
            hosts.append(entry)
        return {
            "partitions": self.count,
            "unowned_partitions": len(snapshot.unowned()),
            "hosts": hosts,
        }

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
        await self._check_supervisor()
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
        execution_id, host = await self._routable_id()
        # a synchronous caller waits at most sync_timeout; the execution itself goes on
        deadline = time.monotonic() + self.settings.sync_timeout
        for attempt in range(START_ATTEMPTS):
            try:
                finished = await self._finish_here(execution_id, host, trigger) if workflow.inline else None
                left = max(0.0, deadline - time.monotonic()) if wait else None
                state = finished or await _call(
                    host.start.remote(execution_id, trigger, fingerprint=self.fingerprint, wait=left)
                )
                break
            except IdempotencyKeyTaken as exc:  # a concurrent submission with the same key won
                assert idempotency_key is not None
                _check_same_request(idempotency_key, exc.request_hash, request_hash)
                return await self._original(exc.execution_id, wait=wait)
            except (NotOwner, RayActorError) as exc:
                log.info("start of %s not taken (%s); retrying", execution_id, type(exc).__name__)
                self.router.invalidate()
                if attempt == START_ATTEMPTS - 1:
                    raise _unavailable("no execution host took the start", retry_after=1) from exc
                if isinstance(exc, NotOwner):
                    # the partition moved (or is being given back) since the view was read; nothing
                    # was recorded: start afresh under another id on a current owner
                    self.router.refused(self.router.partition(execution_id))
                    execution_id, host = await self._routable_id()
                else:
                    # the host died during the start, which it may have recorded: the same id goes
                    # to the partition's next owner, which then only resumes a recorded start
                    host = await self._routable_host(execution_id)
        left = deadline - time.monotonic()
        if wait and not state.terminal and left > 0:  # its host lost it meanwhile: follow it
            state = await self.wait(execution_id, left)
        return state

    async def _finish_here(self, execution_id: str, host: Any, trigger: Start) -> ExecutionState | None:
        """An execution its start decision finishes (only transforms) is recorded here, under its
        partition's fence, with no actor hop: nothing of it ever runs on a host. None: it did not
        finish at once (nothing was recorded): the host starts it."""
        partition = self.router.partition(execution_id)
        epoch = self.router.epoch(partition)
        if epoch is None:
            return None

        def recorded(execution_id: str, records: list[EventRecord], state: ExecutionState) -> None:
            for listener in self.listeners:
                listener(execution_id, records, state)
            if self._relay_finished:  # other ingress replicas' streams hear of it through the owner
                host.published.remote(execution_id, records, state)

        execution = Execution(
            execution_id,
            store=self.store,
            runner=_NO_STEP_WORK,
            appender=self.appender,
            max_output_bytes=self.settings.max_step_output_bytes,
            fence=Fence(partition, epoch),
            on_recorded=recorded,
        )
        state = await execution.start_finished(trigger)
        if state is not None:
            self.folded.put(state)
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
        """The execution's state: folded from its log, or from the state last read plus the events
        recorded since (:mod:`orchestrator.server.folded_states`)."""
        cached = self.folded.get(execution_id)
        if cached is None:
            records = self._execution_records(execution_id)
            state = fold(execution_id, (from_record(record) for record in records))
        elif cached.terminal:
            if self.store.get_execution(execution_id) is None:  # pruned since
                self.folded.forget(execution_id)
                raise NotFound(f"execution {execution_id!r} not found", code="EXECUTION_NOT_FOUND")
            return cached
        else:
            newer = self.store.load(execution_id, after_seq=cached.last_seq)
            if not newer:
                return cached
            state = cached.clone()
            for record in newer:
                evolve(state, from_record(record))
        self.folded.put(state)
        return state

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
        deadline = None if timeout is None else time.monotonic() + timeout

        def remaining() -> float | None:
            return None if deadline is None else max(0.0, deadline - time.monotonic())

        async def from_store() -> ExecutionState:  # an owner of another Ray cluster: read the log
            while True:
                state = await asyncio.to_thread(self.get, execution_id)
                left = remaining()
                if state.terminal or left == 0.0:
                    return state
                await asyncio.sleep(min(0.5, left if left is not None else 0.5))

        return await self._on_owner(
            execution_id, lambda host: host.wait.remote(execution_id, remaining()), elsewhere=from_store
        )

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
        return await self._on_owner(
            execution_id, lambda host: host.cancel.remote(execution_id, key_id=key_id, user=user)
        )

    async def signal(
        self,
        execution_id: str,
        name: str,
        payload: Any,
        *,
        key_id: str | None = None,
        user: dict[str, Any] | None = None,
    ) -> ExecutionState:
        """Send signal ``name`` to the execution's owner, which records it (``signal.received``) in its
        mailbox. Checked here first, on the state read from the log, so a payload that fails its step's
        schema (``INVALID_SIGNAL``) or cannot be stored is refused before anything is recorded."""
        state = await asyncio.to_thread(self.get, execution_id)
        raise_if(signal_problem(state, name))
        check_signal_payload(state, name, payload)
        problem, size = payload_problem({"payload": payload})
        if problem or size > self.settings.max_step_output_bytes:
            raise InvalidRequest(
                f"the payload of signal {name!r} cannot be stored: "
                + (problem or f"{size} bytes encoded, over ORCH_MAX_STEP_OUTPUT_BYTES"),
                code="INVALID_SIGNAL",
                details=[{"field": "payload", "message": problem or "too large"}],
            )
        return await self._on_owner(
            execution_id,
            lambda host: host.signal.remote(execution_id, name, payload, key_id=key_id, user=user),
        )

    async def approve(
        self,
        execution_id: str,
        step: str,
        approved: bool,
        comment: str | None = None,
        *,
        key_id: str | None = None,
        user: dict[str, Any] | None = None,
    ) -> ExecutionState:
        """Decide approval step ``step``: recorded by the execution's owner (``approval.decided``). The
        same checks as the owner's run here first, on the state read from the log."""
        state = await asyncio.to_thread(self.get, execution_id)
        raise_if(approval_problem(state, step, user))
        return await self._on_owner(
            execution_id,
            lambda host: host.approve.remote(execution_id, step, approved, comment, key_id=key_id, user=user),
        )

    def list(self, **filters: Any) -> Page:
        return self.store.list_executions(**filters)

    async def _routable_id(self) -> tuple[str, Any]:
        """A new execution id whose partition has an owner in this Ray cluster, and that owner. Ids
        are random, so a start never waits for a partition that is changing hands (or is held by
        another cluster's host); it waits (bounded) only while no partition here has an owner."""
        deadline = time.monotonic() + self.settings.lease_expire_seconds + 5
        while True:
            await self.router.view()
            # any node's host: starts spread over the cluster (one hop either way)
            for _ in range(4 * self.count):
                execution_id = new_execution_id()
                host = self.router.routable(self.router.partition(execution_id), new=True)
                if host is not None:
                    return execution_id, host
            if time.monotonic() > deadline:
                raise _unavailable("no partition has an execution host in this cluster")
            await asyncio.sleep(0.1)

    async def _routable_host(self, execution_id: str) -> Any:
        """The owner of the execution's partition, waiting (bounded) while it changes hands."""
        deadline = time.monotonic() + self.settings.lease_expire_seconds + 5
        partition = self.router.partition(execution_id)
        while True:
            host = self.router.routable(partition)
            if host is not None:
                return host
            if time.monotonic() > deadline:
                raise _unavailable(f"partition {partition} has no execution host in this cluster")
            await asyncio.sleep(0.1)
            await self.router.view(fresh=True)

    async def _on_owner(
        self,
        execution_id: str,
        call: Callable[[Any], Any],
        *,
        elsewhere: Callable[[], Awaitable[ExecutionState]] | None = None,
    ) -> ExecutionState:
        """``call`` on the execution's owner, following the partition when it moves (bounded by a
        lease expiry and a bit). ``elsewhere`` answers when the owner is a host of another Ray
        cluster sharing the store; without it, that is PARTITION_UNAVAILABLE."""
        partition = self.router.partition(execution_id)
        deadline = time.monotonic() + self.settings.lease_expire_seconds + 5
        while True:
            await self.router.view()
            owner = self.router.owner(partition)
            host = self.router.handle(owner) if owner is not None else None
            if host is not None:
                try:
                    return await _call(call(host))
                except NotOwner:
                    self.router.invalidate()
                except RayActorError:
                    assert owner is not None
                    self.router.forget(owner)
            elif owner is not None and elsewhere is not None:
                return await elsewhere()
            if time.monotonic() > deadline:
                where = "another Ray cluster's host" if owner is not None else "no host"
                raise _unavailable(f"execution {execution_id!r} is in partition {partition}, held by {where}")
            await asyncio.sleep(0.1)


def _check_same_request(key: str, bound_hash: str | None, request_hash: str | None) -> None:
    """A key bound by another request (both fingerprints known and different) may not be reused."""
    if bound_hash is not None and request_hash is not None and bound_hash != request_hash:
        raise Conflict(
            f"idempotency key {key!r} was already used with a different request; send the same request "
            "to get its execution, or a new key for a new request",
            code="IDEMPOTENCY_KEY_REUSED",
            details={"idempotency_key": key},
        )


def _unavailable(message: str, *, retry_after: int = 2) -> OrchestratorError:
    return OrchestratorError(
        f"{message}; retry shortly",
        code="PARTITION_UNAVAILABLE",
        status=503,
        details={"retry_after": retry_after},
    )


def refuse_sqlite_cluster(settings: Settings) -> None:
    """More than one node with the SQLite store: one machine's file cannot be the cluster's log."""
    if uses_sqlite(settings) and ray.is_initialized() and len(alive_nodes()) > 1:
        raise OrchestratorError(
            f"this Ray cluster has {len(alive_nodes())} nodes, but the event store is SQLite, which lives on "
            "one machine: set ORCH_DATABASE_URL to a PostgreSQL database the nodes share",
            code="SQLITE_ON_A_CLUSTER",
        )


class _NoStepWork:
    """The step runner of an execution recorded in the ingress: it only records decisions that finish
    the execution, so it never runs a step."""

    async def run(self, state: ExecutionState, command: RunStep) -> Any:
        raise AssertionError(f"step {command.step!r} of {state.execution_id!r} cannot run in the ingress")


_NO_STEP_WORK = _NoStepWork()


async def _call(ref: Any) -> ExecutionState:
    try:
        return cast(ExecutionState, await ref)
    except RayTaskError as exc:
        cause = orchestrator_cause(exc)
        if cause is not None:
            raise cause from None
        raise

"""Execution hosts: where execution actors live, and who may write which execution's log.

A Ray actor is a whole process (0.2-0.9 s to create, ~60 MB), so executions are *pooled*: a few
async ``ExecutionHost`` actors on every node (:mod:`orchestrator.runtime.placement` puts them there),
each running many executions. Which host runs an execution is decided by partition leases in the
event store (:mod:`orchestrator.core.partitions`): an execution belongs to partition
``partition_of(id)``, and the host holding that partition's lease is its single writer. Every
append carries the lease's epoch and the store refuses a stale one, so a host that was paused,
partitioned or replaced can never write again once its partition moved.

A host renews its leases and heartbeat on a short interval and balances partitions with the live
hosts it sees: it takes free ones while under its share, resuming their non-terminal executions from
the store, and gives its surplus back after draining it (new starts go elsewhere, running steps get a
moment to finish). A host that loses a lease drops that partition's executions without recording
anything; the new owner resumes them from the log.

``dedicated`` placement runs one execution in its own host actor, for isolation or to watch it alone
in the Ray dashboard. It writes under the fence of its partition's owner, which creates it, forwards
its calls and, after taking the partition over, adopts it with the new epoch.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import ray

from orchestrator.config import Settings, quiet_logging
from orchestrator.core.decide import Start
from orchestrator.core.errors import Conflict, NotFound, NotOwner, OrchestratorError
from orchestrator.core.events import EventRecord
from orchestrator.core.partitions import partition_of, plan_leases
from orchestrator.core.state import ExecutionState
from orchestrator.ray_errors import orchestrator_cause
from orchestrator.runtime.appender import BatchAppender
from orchestrator.runtime.definitions import SharedDefinitions
from orchestrator.runtime.execution import Execution, StoreHealth
from orchestrator.runtime.feed import FeedBatch, LiveFeed, ReportsProgress
from orchestrator.runtime.ports import RunnerFactory
from orchestrator.store import open_store
from orchestrator.store.base import Fence, LeaseSnapshot

log = logging.getLogger(__name__)

HOST_PREFIX = "orch-host-"
HOST_NAME = HOST_PREFIX + "{node}-{index}"
DEDICATED_NAME = "orch-exec-{execution_id}"

# What a host's behaviour depends on. A host created with other values (a detached host left by a
# server started differently) is replaced; the ingress-only settings (address, auth, ...) do not count.
_HOST_FIELDS = (
    "namespace",
    "hosts_per_node",
    "lease_renew_seconds",
    "lease_expire_seconds",
    "llm_provider",
    "llm_base_url",
    "llm_model",
    "llm_timeout",
    "agents_dir",
    "retention_days",
    "max_step_output_bytes",
)


def writer_fingerprint(settings: Settings) -> str:
    """The settings an execution host runs with: two hosts that disagree must not share a store."""
    fields = {name: getattr(settings, name) for name in _HOST_FIELDS}
    return json.dumps({"store": settings.store_url, **fields}, sort_keys=True, default=str)


def host_name(node_id: str, index: int) -> str:
    return HOST_NAME.format(node=node_id[:12], index=index)


def actor_of(owner: str) -> str:
    """The actor name in a lease owner (``<actor name>@<incarnation>``)."""
    return owner.partition("@")[0]


class ExecutionHost:
    """Hosts the executions of the partitions it leases (pooled), or exactly one (dedicated)."""

    def __init__(
        self,
        settings: Settings,
        runner_factory: RunnerFactory,
        *,
        name: str = "orch-host-local-0",
        dedicated: str | None = None,
        fence: Fence | None = None,
    ) -> None:
        quiet_logging()
        self.settings = settings
        self.name = name
        # a new incarnation on every (re)start: a restarted host is a new owner, and leases held by
        # its previous incarnation are known dead at once
        self.owner = f"{name}@{uuid.uuid4().hex[:12]}"
        self.node_id, self.cluster = _ray_identity()
        self.dedicated = dedicated
        self.fence = fence
        self.store = open_store(settings.store_url)
        self.runner = runner_factory(settings)
        self.live = LiveFeed()  # what its executions record, for live streams (orchestrator.runtime.feed)
        if isinstance(self.runner, ReportsProgress):
            self.runner.report_progress(self.live.progress)
        self._runner_factory = runner_factory
        self.appender = BatchAppender(self.store)
        self.fingerprint = writer_fingerprint(settings)
        self.health = StoreHealth()
        self.executions: dict[str, Execution] = {}
        self.definitions = SharedDefinitions()  # equal definitions of its executions share one object
        self.dedicated_hosts: dict[str, Any] = {}  # execution id -> its dedicated host (owner side)
        self.unadopted: dict[str, Fence] = {}  # dedicated executions whose host could not be made
        self.count = self.store.partition_count(settings.partitions)
        self.owned: dict[int, int] = {}  # partition -> lease epoch
        self.draining: dict[int, float] = {}  # partition -> monotonic time its drain began
        self.recovered = 0
        self.recovery_seconds: float | None = None
        self.lease_ticks = 0
        self.fenced_appends = 0
        self.last_lease_error: str | None = None
        self._renewed_at = time.monotonic()
        self._first_tick = asyncio.Event()
        self._resuming: set[asyncio.Task[None]] = set()
        loop = asyncio.get_event_loop()  # async actors run __init__ on their event loop
        self._keeper: asyncio.Task[None] | None = None
        if dedicated is None:
            self._keeper = loop.create_task(self._keep_leases())
        else:
            self._first_tick.set()
            self._keeper = loop.create_task(self._resume_own())
        self._retention: asyncio.Task[None] | None = None
        if settings.retention_days and dedicated is None:
            self._retention = loop.create_task(self._prune_forever(settings.retention_days))

    # -- public actor methods ----------------------------------------------------------------------

    async def start(
        self,
        execution_id: str,
        trigger: Start,
        *,
        fingerprint: str | None = None,
        wait: float | None = None,
    ) -> ExecutionState:
        """Start (once recorded, the answer may be the state after the first append); with ``wait``,
        answer when the execution finished or ``wait`` seconds passed, so a synchronous caller needs no
        second call. A copy that loses the execution meanwhile answers with what it has."""
        if fingerprint is not None and fingerprint != self.fingerprint:
            raise OrchestratorError(
                f"execution host {self.name} was created with other settings; it must be replaced "
                "before it takes new executions",
                code="HOST_SETTINGS_MISMATCH",
                status=503,
            )
        fence = self._fence(execution_id, new=True)
        if self.dedicated is None and trigger.placement == "dedicated":
            handle = self._dedicated_host(execution_id, fence)
            state = await self._forward(execution_id, handle, handle.start.remote(execution_id, trigger))
            if wait is not None and not state.terminal:
                # waited for apart from the start: a dedicated host lost after its start was recorded
                # must not read as a start that was not taken (NOT_OWNER would start it again)
                with contextlib.suppress(NotOwner):
                    return await self._forward(execution_id, handle, handle.wait.remote(execution_id, wait))
            return state
        execution = self.executions.get(execution_id)
        if execution is None:
            execution = self._new(execution_id, fence)
            self.executions[execution_id] = execution
            trigger = dataclasses.replace(trigger, workflow=self.definitions.intern(trigger.workflow))
            try:
                state = await execution.start(trigger)
            except BaseException:
                self.executions.pop(execution_id, None)  # nothing was recorded: forget it
                if self.dedicated is not None:  # e.g. its idempotency key was taken: no work here
                    asyncio.get_running_loop().call_later(2.0, _exit_actor)
                raise
            if state.terminal:
                self.executions.pop(execution_id, None)
        if wait is not None and not execution.state.terminal:
            with contextlib.suppress(NotOwner):  # moved meanwhile: the caller follows it to its owner
                return await execution.wait(wait)
        return execution.state

    async def wait(self, execution_id: str, timeout: float | None = None) -> ExecutionState:
        target = await self._target(execution_id)
        if isinstance(target, Execution):
            return await target.wait(timeout)
        return await self._forward(execution_id, target, target.wait.remote(execution_id, timeout))

    async def cancel(
        self,
        execution_id: str,
        reason: str = "Execution was cancelled",
        *,
        key_id: str | None = None,
        user: dict[str, Any] | None = None,
    ) -> ExecutionState:
        target = await self._target(execution_id)
        if not isinstance(target, Execution):
            ref = target.cancel.remote(execution_id, reason, key_id=key_id, user=user)
            return await self._forward(execution_id, target, ref)
        if target.state.terminal:
            raise Conflict(
                f"execution {execution_id!r} already finished with status {target.state.status!r}",
                code="EXECUTION_ALREADY_FINISHED",
            )
        return await target.cancel(reason, key_id=key_id, user=user)

    async def signal(
        self,
        execution_id: str,
        name: str,
        payload: Any,
        *,
        key_id: str | None = None,
        user: dict[str, Any] | None = None,
    ) -> ExecutionState:
        """Record a signal in the execution's log (its mailbox refuses one it cannot take)."""
        target = await self._target(execution_id)
        if not isinstance(target, Execution):
            ref = target.signal.remote(execution_id, name, payload, key_id=key_id, user=user)
            return await self._forward(execution_id, target, ref)
        return await target.signal(name, payload, key_id=key_id, user=user)

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
        """Record a decision on an approval step (its mailbox refuses one it cannot take)."""
        target = await self._target(execution_id)
        if not isinstance(target, Execution):
            ref = target.approve.remote(execution_id, step, approved, comment, key_id=key_id, user=user)
            return await self._forward(execution_id, target, ref)
        return await target.approve(step, approved, comment, key_id=key_id, user=user)

    async def adopt(self, fence: Fence) -> None:
        """Dedicated host: the owner of its partition (a new one, after a failover) hands it a newer
        fence; the execution is reloaded from the log and resumed under it."""
        assert self.dedicated is not None
        if self.fence is not None and fence.epoch <= self.fence.epoch and self.dedicated in self.executions:
            return
        self.fence = fence
        current = self.executions.pop(self.dedicated, None)
        if current is not None:
            current.detach()
        execution = await self._load(self.dedicated)
        if execution.state.terminal:  # it finished before this (re)creation: nothing to keep a process for
            asyncio.get_running_loop().call_later(2.0, _exit_actor)

    async def _resume_own(self) -> None:
        """Dedicated host: Ray restarts a crashed one with the arguments it was made with, and nobody
        else would resume its execution. So it loads the execution itself under the fence it was made
        with; if the partition moved since, its first append is refused and the new owner adopts it. A
        new execution has no log yet: its start is on the way."""
        assert self.dedicated is not None
        try:
            execution = await self._load(self.dedicated)
        except NotFound:
            return
        except Exception:
            log.exception("dedicated host %s cannot load its execution; its owner adopts it", self.name)
            return
        if execution.state.terminal:
            asyncio.get_running_loop().call_later(2.0, _exit_actor)

    async def stats(self) -> dict[str, Any]:
        await self.ready()
        return {
            "name": self.name,
            "owner": self.owner,
            "node_id": self.node_id,
            "pid": os.getpid(),
            "dedicated": self.dedicated,
            "partitions": {str(p): epoch for p, epoch in sorted(self.owned.items())},
            "draining": sorted(self.draining),
            "live_executions": len(self.executions),
            "recovered": self.recovered,
            "recovery_seconds": self.recovery_seconds,
            "lease_ticks": self.lease_ticks,
            "last_lease_error": self.last_lease_error,
            "fenced_appends": self.fenced_appends,
            "append_failures": self.health.append_failures,
            "last_store_error": self.health.last_store_error,
            "last_store_error_at": (
                self.health.last_store_error_at.isoformat() if self.health.last_store_error_at else None
            ),
            "stalled_executions": len(self.health.stalled),
            "unadopted_dedicated": len(self.unadopted),
        }

    async def writer_fingerprint(self) -> str:
        return self.fingerprint

    async def feed(self, incarnation: str | None, after: int | None, timeout: float = 10.0) -> FeedBatch:
        """What this host's executions recorded after cursor ``after``, as soon as there is any: the
        long-poll each ingress replica keeps on every host, for live streams (:mod:`.feed`)."""
        return await self.live.wait(incarnation, after, timeout)

    async def published(self, execution_id: str, records: list[EventRecord], state: ExecutionState) -> None:
        """Records an ingress replica committed itself for an execution of this host's partitions (one
        that finished at its start): into this host's feed, for the streams of the other replicas."""
        self.live.publish(execution_id, records, state)

    async def owner_id(self) -> str:
        return self.owner

    async def ready(self) -> bool:
        """True once the first lease round (taking partitions, resuming their executions) is done.
        Waits without owning that round: a caller that gives up (a /health whose client timed out)
        cancels only its own wait."""
        await self._first_tick.wait()
        return True

    async def leave(self) -> None:
        """Shut down gracefully: drop every execution and release every lease at once, so the other
        hosts take the partitions over now instead of after the lease expiry."""
        if self._keeper is not None:
            self._keeper.cancel()
        for execution in self.executions.values():
            execution.detach()
        self.executions.clear()
        self.owned.clear()
        await asyncio.to_thread(self.store.leave, self.owner)

    # -- ownership ---------------------------------------------------------------------------------

    def _fence(self, execution_id: str, *, new: bool = False) -> Fence:
        """The fence to write ``execution_id`` under; NotOwner when this host does not own it (or,
        for a new execution, is draining its partition)."""
        if self.dedicated is not None:
            if execution_id != self.dedicated or self.fence is None:
                raise NotOwner(f"execution {execution_id!r} does not run in dedicated host {self.name}")
            return self.fence
        partition = partition_of(execution_id, self.count)
        epoch = self.owned.get(partition)
        if epoch is None or (new and partition in self.draining):
            raise NotOwner(
                f"execution host {self.name} does not own partition {partition} of execution "
                f"{execution_id!r}",
                details={"partition": partition},
            )
        return Fence(partition, epoch)

    async def _target(self, execution_id: str) -> Execution | Any:
        """The live execution here, or the dedicated host it runs in."""
        fence = self._fence(execution_id)
        handle = self.dedicated_hosts.get(execution_id)
        if handle is not None:
            return handle
        execution = self.executions.get(execution_id) or await self._load(execution_id)
        if (
            self.dedicated is None
            and execution.state.placement == "dedicated"
            and not execution.state.terminal
        ):
            return self._dedicated_host(execution_id, fence, adopt=True)
        return execution  # a finished dedicated execution is answered from its log: no process for it

    def _dedicated_host(self, execution_id: str, fence: Fence, *, adopt: bool = False) -> Any:
        """Create (or find) the dedicated host of an execution of one of this host's partitions.
        ``adopt``: it may be left from a previous owner, so hand it the current fence."""
        handle = dedicated_host(self.settings, execution_id, self._runner_factory, fence)
        self.dedicated_hosts[execution_id] = handle
        self.live.relay(execution_id, handle, lambda: self.dedicated_hosts.get(execution_id) is handle)
        if adopt:
            self.unadopted.pop(execution_id, None)
            adopting = asyncio.get_running_loop().create_task(self._adopt(execution_id, handle, fence))
            self._resuming.add(adopting)
            adopting.add_done_callback(self._resuming.discard)
        return handle

    async def _adopt(self, execution_id: str, handle: Any, fence: Fence) -> None:
        """Hand a dedicated host its fence. If that fails (the actor died, its start failed, its name
        was still held by a dying one), the execution is kept and its host made again next lease round:
        nothing else would ever resume it."""
        try:
            await handle.adopt.remote(fence)
        except Exception as exc:
            log.warning("dedicated host of %s did not adopt it (%s); retrying", execution_id, exc)
            if self.dedicated_hosts.get(execution_id) is handle:
                del self.dedicated_hosts[execution_id]
            self.unadopted[execution_id] = fence

    def _retry_adoptions(self) -> None:
        for execution_id, fence in list(self.unadopted.items()):
            del self.unadopted[execution_id]
            if self.owned.get(fence.partition) != fence.epoch:
                continue  # the partition moved: its new owner resumes the execution
            try:
                self._dedicated_host(execution_id, fence, adopt=True)
            except Exception as exc:
                log.warning("cannot make the dedicated host of %s yet: %s", execution_id, exc)
                self.unadopted[execution_id] = fence

    async def _forward(self, execution_id: str, handle: Any, ref: Any) -> ExecutionState:
        """A call forwarded to a dedicated host: its orchestrator errors reach the caller as
        themselves. A dead dedicated host is forgotten and the caller told to retry (NOT_OWNER), so the
        retry makes it again instead of calling the dead one forever."""
        try:
            result: ExecutionState = await ref
        except ray.exceptions.RayTaskError as exc:
            cause = orchestrator_cause(exc)
            if cause is not None:
                raise cause from None
            raise
        except ray.exceptions.RayActorError as exc:
            if self.dedicated_hosts.get(execution_id) is handle:
                del self.dedicated_hosts[execution_id]
            raise NotOwner(f"the dedicated host of execution {execution_id!r} is gone; retry") from exc
        return result

    def _on_fenced(self, execution: Execution) -> None:
        """An append was refused: the partition moved. Drop all of it; the next lease round agrees."""
        self.fenced_appends += 1
        fence = execution.fence
        if self.dedicated is not None or fence is None:
            if self.executions.get(execution.execution_id) is execution:  # not one adopted since
                del self.executions[execution.execution_id]
            return
        if self.owned.get(fence.partition) == fence.epoch:
            self._drop({fence.partition})

    def _drop(self, partitions: set[int]) -> None:
        """Forget partitions and detach their executions, recording nothing (another host owns them)."""
        for execution_id, execution in list(self.executions.items()):
            if partition_of(execution_id, self.count) in partitions:
                execution.detach()
                del self.executions[execution_id]
        for execution_id in [e for e in self.dedicated_hosts if partition_of(e, self.count) in partitions]:
            del self.dedicated_hosts[execution_id]
        for execution_id in [e for e in self.unadopted if partition_of(e, self.count) in partitions]:
            del self.unadopted[execution_id]
        for partition in partitions:
            self.owned.pop(partition, None)
            self.draining.pop(partition, None)

    # -- the lease round ---------------------------------------------------------------------------

    async def _keep_leases(self) -> None:
        renew = self.settings.lease_renew_seconds
        resuming: asyncio.Task[None] | None = None
        while True:
            began = time.monotonic()
            try:
                acquired = await self._lease_round()
                self.last_lease_error = None
                self._retry_adoptions()
                self.live.trim()
                if acquired:
                    # its own task: a large backlog must not delay the next renewal
                    resuming = asyncio.get_running_loop().create_task(self._resume(acquired))
                    self._resuming.add(resuming)
                    resuming.add_done_callback(self._resuming.discard)
            except Exception as exc:
                self.last_lease_error = f"{type(exc).__name__}: {exc}"[:500]
                log.warning("lease round of %s failed: %s", self.name, exc)
                if time.monotonic() - self._renewed_at > self.settings.lease_expire_seconds and self.owned:
                    # our leases may have been taken by now: stop before the store says so
                    log.warning("%s could not renew its leases in time; dropping its partitions", self.name)
                    self._drop(set(self.owned))
            finally:
                self.lease_ticks += 1
                if not self._first_tick.is_set():
                    if resuming is None:
                        self._first_tick.set()
                    else:
                        resuming.add_done_callback(lambda _: self._first_tick.set())
            await asyncio.sleep(max(0.05, renew - (time.monotonic() - began)))

    async def _lease_round(self) -> dict[int, int]:
        """Renew, balance, acquire; returns the partitions acquired (``{partition: epoch}``)."""
        ttl = self.settings.lease_expire_seconds
        asked = time.monotonic()
        held = await asyncio.to_thread(
            self.store.heartbeat, self.owner, node_id=self.node_id, cluster=self.cluster, ttl=ttl
        )
        self._renewed_at = asked
        lost = {p for p, epoch in self.owned.items() if held.get(p) != epoch}
        if lost:
            log.warning("%s lost partitions %s", self.name, sorted(lost))
            self._drop(lost)
        snapshot = await asyncio.to_thread(self.store.lease_snapshot)
        members = [host.owner for host in snapshot.live_hosts()]
        plan = plan_leases(
            me=self.owner, count=self.count, leases=snapshot.leases, members=members, now=snapshot.now
        )
        if len(plan.acquire) < plan.share - len(self.owned):
            dead = await self._dead_owners(snapshot)
            if dead:
                plan = plan_leases(
                    me=self.owner,
                    count=self.count,
                    leases=snapshot.leases,
                    members=[m for m in members if m not in dead],
                    now=snapshot.now,
                    dead_owners=dead,
                )
        await self._give_back(plan.surplus)
        acquired: dict[int, int] = {}
        for partition in plan.acquire:
            lease = snapshot.leases[partition]
            steal = lease.owner if lease.held(snapshot.now) else None
            epoch = await asyncio.to_thread(
                self.store.acquire_lease, partition, self.owner, ttl=ttl, steal_from=steal
            )
            if epoch is not None:
                acquired[partition] = epoch
        if acquired:
            self.owned.update(acquired)
        return acquired

    async def _dead_owners(self, snapshot: LeaseSnapshot) -> frozenset[str]:
        """Lease owners of this Ray cluster that cannot write any more: their actor is gone, or was
        restarted as a new incarnation. Their leases need not be waited out."""
        heartbeats = {host.owner: host for host in snapshot.hosts}
        owners = {lease.owner for lease in snapshot.leases.values() if lease.held(snapshot.now)}
        dead: set[str] = set()
        for owner in owners - {self.owner, None}:
            assert owner is not None
            heartbeat = heartbeats.get(owner)
            if heartbeat is None or heartbeat.cluster != self.cluster:
                continue  # another Ray cluster's host: only its lease expiry tells
            try:
                handle: Any = ray.get_actor(actor_of(owner), namespace=self.settings.namespace)
            except ValueError:
                dead.add(owner)
                continue
            try:
                current: str = await asyncio.wait_for(handle.owner_id.remote(), timeout=2.0)
            except Exception:
                continue  # paused, busy or restarting: not known dead
            if current != owner:
                dead.add(owner)
        return frozenset(dead)

    async def _give_back(self, surplus: int) -> None:
        """Drain ``surplus`` partitions (no new starts there), then release each once its steps are
        done, or after a lease expiry at the most."""
        keep_draining = set(list(self.draining)[:surplus])
        for partition in set(self.draining) - keep_draining:
            del self.draining[partition]  # no longer a surplus: keep it
        if surplus > len(self.draining):
            busy = {p: 0 for p in self.owned if p not in self.draining}
            for execution_id, execution in self.executions.items():
                partition = partition_of(execution_id, self.count)
                if partition in busy:
                    busy[partition] += 1 + 100 * execution.busy
            for partition in sorted(busy, key=lambda p: (busy[p], p))[: surplus - len(self.draining)]:
                self.draining[partition] = time.monotonic()
        limit = self.settings.lease_expire_seconds
        for partition, since in list(self.draining.items()):
            running = any(
                execution.busy
                for execution_id, execution in self.executions.items()
                if partition_of(execution_id, self.count) == partition
            )
            if running and time.monotonic() - since < limit:
                continue
            self._drop({partition})
            await asyncio.to_thread(self.store.release_lease, partition, self.owner)

    async def _resume(self, acquired: dict[int, int]) -> None:
        """Load and resume the non-terminal executions of newly acquired partitions."""
        began = time.perf_counter()
        resumed = 0
        ids = await asyncio.to_thread(self.store.non_terminal_ids)
        for execution_id in ids:
            partition = partition_of(execution_id, self.count)
            if partition not in acquired or execution_id in self.executions:
                continue
            if self.owned.get(partition) != acquired[partition]:
                continue  # lost again meanwhile
            row = await asyncio.to_thread(self.store.get_execution, execution_id)
            if row is None:
                continue
            fence = Fence(partition, acquired[partition])
            try:
                if row.placement == "dedicated":
                    self._dedicated_host(execution_id, fence, adopt=True)
                else:
                    await self._load(execution_id)
            except Exception:
                log.exception("cannot resume execution %s", execution_id)
                if row.placement == "dedicated":
                    self.unadopted[execution_id] = fence  # made again next lease round
                continue
            resumed += 1
            if resumed % 200 == 0:
                await asyncio.sleep(0)  # let requests in while a large backlog resumes
        self.recovered += resumed
        self.recovery_seconds = time.perf_counter() - began
        if resumed:
            log.info("%s resumed %d executions in %.2fs", self.name, resumed, self.recovery_seconds)

    # -- internals ---------------------------------------------------------------------------------

    def _new(self, execution_id: str, fence: Fence) -> Execution:
        return Execution(
            execution_id,
            store=self.store,
            runner=self.runner,
            on_terminal=self._terminal,
            appender=self.appender,
            max_output_bytes=self.settings.max_step_output_bytes,
            health=self.health,
            fence=fence,
            on_fenced=self._on_fenced,
            on_recorded=self.live.publish,
        )

    async def _load(self, execution_id: str) -> Execution:
        execution = self._new(execution_id, self._fence(execution_id))
        state = await execution.reload()
        if state.workflow is not None:
            state.workflow = self.definitions.intern(state.workflow)
        current = self.executions.get(execution_id)
        if current is not None:  # loaded meanwhile by another call
            return current
        if state.last_seq == 0:
            raise NotFound(f"execution {execution_id!r} not found", code="EXECUTION_NOT_FOUND")
        if not state.terminal and not (self.dedicated is None and state.placement == "dedicated"):
            self.executions[execution_id] = execution
            asyncio.get_running_loop().create_task(execution.resume())
        return execution

    def _terminal(self, execution: Execution) -> None:
        self.executions.pop(execution.execution_id, None)
        if self.dedicated == execution.execution_id:
            asyncio.get_running_loop().call_later(2.0, _exit_actor)

    async def _prune_forever(self, days: float) -> None:
        """Retention: the owner of partition 0 prunes finished executions older than ``days``, hourly."""
        while True:
            if 0 not in self.owned:
                await asyncio.sleep(60)
                continue
            cutoff = datetime.now(UTC) - timedelta(days=days)
            try:
                removed = await asyncio.to_thread(self.store.prune, finished_before=cutoff)
                if removed:
                    log.info("retention: pruned %d executions finished before %s", removed, cutoff)
            except Exception:
                log.exception("retention pruning failed")
            await asyncio.sleep(3600)


def _ray_identity() -> tuple[str, str]:
    """This process's Ray node id and cluster (its GCS address); placeholders outside Ray (tests)."""
    if not ray.is_initialized():
        return "local", "local"
    context = ray.get_runtime_context()
    return context.get_node_id(), str(context.gcs_address)


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


def pooled_host(settings: Settings, name: str, runner_factory: RunnerFactory, **options: Any) -> Any:
    """Create (or find) the pooled host ``name``; ``options`` add Ray actor options (scheduling)."""
    return RemoteExecutionHost.options(**host_options(settings, name), **options).remote(
        settings, runner_factory, name=name
    )


def dedicated_host(settings: Settings, execution_id: str, runner_factory: RunnerFactory, fence: Fence) -> Any:
    name = DEDICATED_NAME.format(execution_id=execution_id)
    return RemoteExecutionHost.options(**host_options(settings, name)).remote(
        settings, runner_factory, name=name, dedicated=execution_id, fence=fence
    )

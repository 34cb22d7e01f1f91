"""Live streams in the ingress: one long-poll per execution host, fanned out to the open SSE streams.

Each execution host keeps a ring of what its executions recorded lately (:mod:`orchestrator.runtime.feed`).
The :class:`StreamHub` of an ingress replica keeps one long-poll (``ExecutionHost.feed``) on every live
pooled host of its Ray cluster while at least one stream is open (none at all otherwise, so an ingress
nobody watches costs the hosts nothing), and hands each entry to the streams that want it: an
execution's streams by execution id, the lifecycle streams by tenant, status and workflow. The hosts to
poll follow the lease snapshot the engine's router reads anyway; dedicated hosts are relayed by their
partition's owner, so they need no poll of their own.

No gap and no duplicate, whatever happens between the hosts and the hub: an execution stream reads the
store first (catch-up), then takes pushed records in ``seq`` order, dropping those it sent already. It
reads the store again after its last ``seq`` whenever it cannot trust the push:

- a record arrives whose ``seq`` is not the next one (a push was missed);
- the hub says so: a host was (re)attached, restarted, or lost entries it had not handed over yet, or the
  stream's inbox overflowed (a slow client: its entries are dropped, not buffered without bound), or a
  relay of a dedicated host said it may have missed records (a ``gap`` entry);
- the stream had nothing for a heartbeat interval: the slow re-check, for what no push can reach (an
  execution whose owner is a host of another Ray cluster sharing the store).

Anything pushed is committed already (hosts publish after the append), so the store read covers it.

The lifecycle stream (every execution's ``execution.*`` events of a tenant) is live only: it has no
order across executions to resume from, so it tells its client ``stream.gap`` when entries were lost
instead (list the executions again to catch up).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import ray
from ray.exceptions import ActorDiedError

from orchestrator.core.errors import OrchestratorError
from orchestrator.core.events import COMPACT_JSON, TERMINAL_EVENT_TYPES, EventRecord
from orchestrator.core.state import ExecutionState
from orchestrator.runtime.feed import FeedBatch, FeedEntry, record_entries
from orchestrator.runtime.host import actor_of
from orchestrator.server.routing import PartitionRouter
from orchestrator.store.base import EventStore

log = logging.getLogger(__name__)

KEEP_ALIVE = ": keep-alive\n\n"
LIVE = ": live\n\n"
# How long a new lifecycle stream waits for the hosts' long-polls to be in place before it says ``: live``.
ATTACH_SECONDS = 10.0
# How long one long-poll of a host waits for entries before it is asked again.
POLL_SECONDS = 10.0
# How often the hosts to poll are compared with the lease snapshot (which the router caches for 1 s).
WATCH_SECONDS = 1.0
# A lifecycle stream takes records from this long before it opened (clocks of the hosts' nodes differ a bit).
LIFECYCLE_MARGIN = timedelta(seconds=1)
# Pollers stay this long after the last stream closed: a client that reconnects finds them attached.
IDLE_SECONDS = 30.0
# Entries one stream may have waiting; past that it drops them and re-reads the store (a slow client).
INBOX_ITEMS = 5000
# Lifecycle entries remembered to drop duplicates (a dedicated execution relayed by two owners at once).
RECENT_LIFECYCLE = 4096
# Record types after which a step's progress deltas (of that attempt or an earlier one) are stale.
_STEP_ENDED = frozenset({"step.completed", "step.failed", "step.retrying", "step.skipped"})


class Inbox(NamedTuple):
    entries: list[FeedEntry]
    resync: bool  # re-read the store before trusting the entries
    lost: bool  # entries were dropped (for lifecycle streams, which cannot re-read)


class Subscription:
    """One open stream's inbox: what the hub pushed, and whether the stream must re-read the store."""

    def __init__(self, *, max_items: int = INBOX_ITEMS, since: datetime | None = None) -> None:
        self.since = since  # lifecycle: records from this time on (a host attached later replays its ring)
        self._items: deque[FeedEntry] = deque()
        self._max = max_items
        self._resync = False
        self._lost = False
        self._wake = asyncio.Event()

    def push(self, entry: FeedEntry) -> None:
        if len(self._items) >= self._max:
            self._items.clear()
            self._resync = self._lost = True
        else:
            self._items.append(entry)
        self._wake.set()

    def resync(self, *, lost: bool) -> None:
        self._resync = True
        self._lost = self._lost or lost
        self._wake.set()

    async def next(self, timeout: float) -> Inbox | None:
        """What arrived since the last call, waiting up to ``timeout`` seconds; None if nothing did."""
        if not self._items and not self._resync:
            self._wake.clear()
            try:
                async with asyncio.timeout(timeout):  # no task per wait, unlike wait_for
                    await self._wake.wait()
            except TimeoutError:
                return None
        inbox = Inbox(list(self._items), self._resync, self._lost)
        self._items.clear()
        self._resync = self._lost = False
        self._wake.clear()
        return inbox


class StreamHub:
    """The fan-out of one ingress replica (see the module docstring)."""

    def __init__(
        self, router: PartitionRouter, *, max_streams: int, poll_seconds: float = POLL_SECONDS
    ) -> None:
        self._router = router
        self._max_streams = max_streams
        self._poll_seconds = poll_seconds
        self._by_execution: dict[str, set[Subscription]] = {}
        self._lifecycle: dict[Subscription, Callable[[FeedEntry], bool]] = {}
        self._open = 0
        self._live: dict[str, str] = {}  # actor name -> lease owner, as of the last snapshot
        self._pollers: dict[str, asyncio.Task[None]] = {}  # actor name -> its long-poll
        self._attached: set[str] = set()  # actor names whose long-poll has its cursor
        self._changed = asyncio.Event()  # a poller attached or the live set was read
        self._watcher: asyncio.Task[None] | None = None
        self._recent: OrderedDict[tuple[str, int], None] = OrderedDict()
        self.entries_received = 0

    @property
    def open_streams(self) -> int:
        return self._open

    def hosts_polled(self) -> list[str]:
        return sorted(self._attached)

    async def attached(self, timeout: float) -> bool:
        """Wait (at most ``timeout`` seconds) until every live host of this Ray cluster is polled, so what
        is recorded from now on reaches the streams by push: a lifecycle stream, which cannot re-read
        the store, says it is live only then."""
        deadline = time.monotonic() + timeout
        while True:
            reachable = {name for name in self._live if name in self._pollers}
            if self._live and reachable <= self._attached:
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(left, WATCH_SECONDS))

    # -- subscriptions -------------------------------------------------------------------------------

    def open_execution(self, execution_id: str) -> Subscription:
        """Subscribe to one execution's entries (before its catch-up read of the store)."""
        self.admit()
        subscription = Subscription()
        self._by_execution.setdefault(execution_id, set()).add(subscription)
        self._opened()
        return subscription

    def open_lifecycle(self, match: Callable[[FeedEntry], bool]) -> Subscription:
        """Subscribe to the ``execution.*`` records ``match`` accepts, of every execution."""
        self.admit()
        subscription = Subscription(since=datetime.now(UTC) - LIFECYCLE_MARGIN)
        self._lifecycle[subscription] = match
        self._opened()
        return subscription

    def close(self, subscription: Subscription, execution_id: str | None = None) -> None:
        if execution_id is not None:
            subscribers = self._by_execution.get(execution_id)
            if subscribers is not None and subscription in subscribers:
                subscribers.discard(subscription)
                if not subscribers:
                    del self._by_execution[execution_id]
                self._open -= 1
        elif self._lifecycle.pop(subscription, None) is not None:
            self._open -= 1

    def admit(self) -> None:
        """Raise TOO_MANY_STREAMS (503) when this replica holds as many streams as it may; routes ask
        before they answer, so the refusal is an error response rather than a broken stream."""
        if self._open >= self._max_streams:
            raise OrchestratorError(
                f"this server holds {self._open} live streams, its limit (ORCH_STREAM_MAX_OPEN); close one "
                "or poll /events instead",
                code="TOO_MANY_STREAMS",
                status=503,
                details={"retry_after": 5},
            )

    def _opened(self) -> None:
        self._open += 1
        if self._watcher is None or self._watcher.done():
            self._watcher = asyncio.get_running_loop().create_task(self._keep_pollers())

    def stop(self) -> None:
        """Stop polling now (the pollers stop on their own ``IDLE_SECONDS`` after the last stream)."""
        if self._watcher is not None:
            self._watcher.cancel()

    # -- fan-out -------------------------------------------------------------------------------------

    def recorded(self, execution_id: str, records: list[EventRecord], state: ExecutionState) -> None:
        """Records this replica committed itself (an execution that finished at its start, on no
        host): to this replica's streams at once (other replicas get them through the owner's feed)."""
        if self._by_execution or self._lifecycle:
            self._dispatch(record_entries(execution_id, records, state))

    def _dispatch(self, entries: list[FeedEntry]) -> None:
        self.entries_received += len(entries)
        for entry in entries:
            subscribers = self._by_execution.get(entry.execution_id)
            if subscribers:
                for subscription in subscribers:
                    subscription.push(entry)
            if entry.about is None or not self._lifecycle or entry.record is None:
                continue
            key = (entry.execution_id, entry.record.seq)
            if key in self._recent:
                continue
            self._recent[key] = None
            if len(self._recent) > RECENT_LIFECYCLE:
                self._recent.popitem(last=False)
            for subscription, match in self._lifecycle.items():
                since = subscription.since
                if (since is None or entry.record.recorded_at >= since) and match(entry):
                    subscription.push(entry)

    def _resync_all(self, *, lost: bool) -> None:
        """Every execution stream re-reads the store; lifecycle streams hear of ``lost`` entries."""
        for subscribers in self._by_execution.values():
            for subscription in subscribers:
                subscription.resync(lost=lost)
        if lost:
            for subscription in self._lifecycle:
                subscription.resync(lost=True)

    # -- the long-polls ------------------------------------------------------------------------------

    async def _keep_pollers(self) -> None:
        """Poll every live host of this Ray cluster while streams are open (and ``IDLE_SECONDS`` after)."""
        idle_since: float | None = None
        try:
            while True:
                if self._open == 0:
                    idle_since = idle_since if idle_since is not None else time.monotonic()
                    if time.monotonic() - idle_since >= IDLE_SECONDS:
                        return  # no await between this check and the pollers' end: no stream slips in
                else:
                    idle_since = None
                try:
                    snapshot = await self._router.view()
                except Exception as exc:
                    log.warning("live streams: cannot read the lease snapshot: %s", exc)
                    await asyncio.sleep(WATCH_SECONDS)
                    continue
                self._live = {actor_of(host.owner): host.owner for host in snapshot.live_hosts()}
                self._changed.set()
                for name, owner in self._live.items():
                    running = self._pollers.get(name)
                    if running is not None and not running.done():
                        continue
                    handle = self._router.handle(owner)
                    if handle is None:
                        continue  # a host of another Ray cluster: its streams rely on the slow re-check
                    self._pollers[name] = asyncio.get_running_loop().create_task(self._poll(name, handle))
                await asyncio.sleep(WATCH_SECONDS)
        finally:
            for task in self._pollers.values():
                task.cancel()
            self._pollers.clear()
            self._attached.clear()

    async def _poll(self, name: str, handle: Any) -> None:
        """The long-poll of one host, for as long as it is live."""
        incarnation: str | None = None
        cursor: int | None = None
        failures = 0
        while name in self._live:
            # Attaching, it takes the host's whole ring (not just its cursor): what the host recorded
            # between a lifecycle stream's opening and this first answer would be lost otherwise, as
            # those streams cannot re-read the store. Execution streams drop what they already sent.
            ref = (
                handle.feed.remote(None, 0, 0.0)
                if cursor is None
                else handle.feed.remote(incarnation, cursor, self._poll_seconds)
            )
            try:
                batch: FeedBatch = await ref
            except asyncio.CancelledError:
                with contextlib.suppress(Exception):
                    ray.cancel(ref)
                raise
            except Exception as exc:
                failures += 1
                if cursor is not None:  # it was attached: what it published since the last answer is lost
                    self._resync_all(lost=True)
                incarnation = cursor = None
                self._attached.discard(name)
                if isinstance(exc, ActorDiedError) and name in self._live:
                    self._router.forget(self._live[name])
                    handle = self._router.handle(self._live[name]) or handle
                log.info("live streams: polling host %s failed (%s); retrying", name, type(exc).__name__)
                await asyncio.sleep(min(5.0, 0.2 * failures))
                continue
            failures = 0
            if cursor is None:
                self._resync_all(lost=False)  # attached: records before its first cursor are in the store
                self._attached.add(name)
                self._changed.set()
            elif batch.lost:
                self._resync_all(lost=True)
            incarnation, cursor = batch.incarnation, batch.cursor
            self._dispatch(batch.entries)
        # it left the lease table: take what it published last, if it still answers
        if cursor is not None:
            try:
                batch = await asyncio.wait_for(handle.feed.remote(incarnation, cursor, 0.0), 5.0)
                self._dispatch(batch.entries)
                if batch.lost:
                    self._resync_all(lost=True)
            except Exception:
                self._resync_all(lost=True)
        if self._pollers.get(name) is asyncio.current_task():
            del self._pollers[name]
            self._attached.discard(name)


# ----------------------------------------------------------------------------------------------- SSE


def sse(event: str, data: Any, *, event_id: int | None = None) -> str:
    """One server-sent event message. JSON never holds a raw line break, so ``data`` is one line."""
    text = COMPACT_JSON.encode(data)
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {text}\n\n"


class _Position:
    """Where an execution stream is: the last ``seq`` sent, the step attempts that ended, the end."""

    def __init__(self, after: int) -> None:
        self.last = after
        self.ended: dict[str, int] = {}
        self._done = False

    def sent(self, record: EventRecord) -> None:
        self.last = record.seq
        if record.type in TERMINAL_EVENT_TYPES:
            self._done = True
        elif record.type in _STEP_ENDED and record.step is not None:
            attempt = record.payload.get("attempt")
            ended = int(attempt) if isinstance(attempt, int) else 1 << 30
            self.ended[record.step] = max(self.ended.get(record.step, 0), ended)

    def done(self) -> bool:
        """The terminal event was sent."""
        return self._done

    def wants_progress(self, entry: FeedEntry) -> bool:
        """A delta of a step attempt that has not ended yet (as far as this stream has told)."""
        return not self._done and entry.step is not None and self.ended.get(entry.step, 0) < entry.attempt


async def execution_stream(
    hub: StreamHub,
    store: EventStore,
    execution_id: str,
    *,
    after: int,
    finished_at: int | None,
    render: Callable[[EventRecord], str],
    render_progress: Callable[[FeedEntry], str],
    heartbeat: float,
) -> AsyncIterator[str]:
    """The SSE text of one execution's stream, from after ``after`` to its terminal event.

    It subscribes before its first read of the store, so nothing recorded in between is missed;
    ``finished_at`` is the last ``seq`` of an execution that had ended when the request came."""
    position = _Position(after)
    subscription = hub.open_execution(execution_id)

    async def catch_up() -> list[str]:
        records = await asyncio.to_thread(store.load, execution_id, after_seq=position.last)
        texts: list[str] = []
        for record in records:
            if position.done():
                break
            if record.seq != position.last + 1:
                break  # a log is gapless; never send past a hole
            texts.append(render(record))
            position.sent(record)
        return texts

    try:
        for text in await catch_up():
            yield text
        if finished_at is not None and position.last >= finished_at:
            return
        while not position.done():
            inbox = await subscription.next(heartbeat)
            if inbox is None:
                yield KEEP_ALIVE
                for text in await catch_up():  # the slow re-check: what no push could bring
                    yield text
                continue
            if inbox.resync:
                for text in await catch_up():
                    yield text
            for entry in inbox.entries:
                if position.done():
                    break
                if entry.kind == "record" and entry.record is not None:
                    record = entry.record
                    if record.seq <= position.last:
                        continue  # sent already (the catch-up read it, or a second relay)
                    if record.seq > position.last + 1:  # a push was missed: the store has it
                        for text in await catch_up():
                            yield text
                        continue
                    yield render(record)
                    position.sent(record)
                elif entry.kind == "progress":
                    if position.wants_progress(entry):
                        yield render_progress(entry)
                else:  # a gap: records of this execution may have passed no feed
                    for text in await catch_up():
                        yield text
    finally:
        hub.close(subscription, execution_id)


async def lifecycle_stream(
    hub: StreamHub,
    *,
    match: Callable[[FeedEntry], bool],
    render: Callable[[FeedEntry], str],
    heartbeat: float,
) -> AsyncIterator[str]:
    """The SSE text of a lifecycle stream: the live ``execution.*`` records ``match`` accepts, until
    the client leaves."""
    subscription = hub.open_lifecycle(match)
    try:
        # a comment once every host is polled: from then on nothing recorded is missed (bounded wait)
        await hub.attached(timeout=ATTACH_SECONDS)
        yield LIVE
        while True:
            inbox = await subscription.next(heartbeat)
            if inbox is None:
                yield KEEP_ALIVE
                continue
            if inbox.lost:
                yield sse("stream.gap", {"reason": "lifecycle events may have been missed; list executions"})
            for entry in inbox.entries:
                yield render(entry)
    finally:
        hub.close(subscription)

"""The live feed of an execution host: what its executions recorded a moment ago, for live streams.

Server-sent event streams (:mod:`orchestrator.server.streams`) are pushed, not polled per client: every
ingress replica keeps one long-poll per host (:meth:`LiveFeed.wait`, behind the host's ``feed`` actor
method) and fans what it gets out to its open streams. This module is the host's half:

- a bounded ring of :class:`FeedEntry` with a cursor that only grows. An entry is a record the host's
  executions appended (published after its commit, so everything in the ring is also in the store), an
  ephemeral ``progress`` delta of a running step (LLM tokens, never stored), or a ``gap``: "this
  execution's records may have been missed here, read them from the store";
- an incarnation id: a restarted host starts a new ring, and a poller that presents the previous
  incarnation (or a cursor that fell off the ring) is told ``lost``, so it re-reads the store rather
  than trusting that nothing happened;
- relays for dedicated executions (:meth:`LiveFeed.relay`): the partition owner long-polls the feed of
  each dedicated host it made and republishes it, so the ingress needs to poll the pooled hosts only.

Progress deltas of one step that no poller has taken yet are merged into one entry, so a fast token
stream costs ring slots only as fast as pollers come back for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Literal, NamedTuple, Protocol, runtime_checkable

from ray.exceptions import ActorDiedError

from orchestrator.core.events import EventRecord
from orchestrator.core.state import ExecutionState

log = logging.getLogger(__name__)

# Entries kept: at most this many, none older than FEED_KEEP_SECONDS (pollers come back within
# milliseconds; nobody polls a host no stream watches, and it then keeps half a minute of records only).
# A poller that falls further behind is told ``lost`` and its streams re-read the store, so the bounds
# limit memory, never correctness.
FEED_SIZE = 10_000
FEED_KEEP_SECONDS = 30.0
# Without pollers, entries stay only this long: enough for the first poll of a stream just opened
# (which takes the whole ring) to find what was recorded since the stream opened.
UNWATCHED_KEEP_SECONDS = 5.0
# A feed counts as unwatched when nothing polled it for this long (pollers come back every few seconds).
IDLE_POLLER_SECONDS = 60.0
# How long a relay long-polls a dedicated host per call, and how many failed calls in a row it tolerates
# before it leaves the execution to the streams' store re-checks.
RELAY_POLL_SECONDS = 10.0
RELAY_MAX_FAILURES = 30

# The status an execution has right after a lifecycle record (others: the status after the append).
_STATUS_AFTER = {
    "execution.started": "running",
    "execution.completed": "completed",
    "execution.failed": "failed",
    "execution.cancelled": "cancelled",
    "execution.timed_out": "timeout",
}

EntryKind = Literal["record", "progress", "gap"]

# An ephemeral text delta of a running step: (execution_id, step, attempt, delta). Never recorded.
ProgressSink = Callable[[str, str, int, str], None]


@runtime_checkable
class ReportsProgress(Protocol):
    """A step runner that can report a step's partial output (LLM tokens) while the step runs; the host
    hands it :meth:`LiveFeed.progress`."""

    def report_progress(self, sink: ProgressSink) -> None: ...


class About(NamedTuple):
    """What the lifecycle stream filters an ``execution.*`` record on: its execution, after it."""

    tenant_id: str
    workflow_name: str
    workflow_id: str | None
    status: str


class FeedEntry(NamedTuple):
    cursor: int
    kind: EntryKind
    execution_id: str
    record: EventRecord | None = None  # kind "record"
    about: About | None = None  # kind "record", for execution.* records only
    step: str | None = None  # kind "progress"
    attempt: int = 0
    delta: str = ""


def record_entries(
    execution_id: str, records: Sequence[EventRecord], state: ExecutionState, *, lifecycle_only: bool = False
) -> list[FeedEntry]:
    """The entries of records just committed for ``execution_id`` (``state``: the execution after them),
    with cursor 0: a feed numbers them as it adds them. ``lifecycle_only``: the ``execution.*`` ones."""
    entries: list[FeedEntry] = []
    for record in records:
        about: About | None = None
        if record.type.startswith("execution."):
            # the status right after this record: one append may hold a whole quick execution
            status = _STATUS_AFTER.get(record.type, state.status)
            workflow_name = state.workflow.name if state.workflow is not None else ""
            about = About(state.tenant_id, workflow_name, state.workflow_id, status)
        elif lifecycle_only:
            continue
        entries.append(FeedEntry(0, "record", execution_id, record=record, about=about))
    return entries


class FeedBatch(NamedTuple):
    """One answer to a poller: the entries after its cursor, the cursor to ask with next, and ``lost``
    when entries it had not seen were dropped (the ring moved past its cursor, or the host restarted)."""

    incarnation: str
    cursor: int
    entries: list[FeedEntry]
    lost: bool


class LiveFeed:
    def __init__(
        self,
        *,
        size: int = FEED_SIZE,
        keep_seconds: float = FEED_KEEP_SECONDS,
        unwatched_keep_seconds: float = UNWATCHED_KEEP_SECONDS,
    ) -> None:
        self.incarnation = uuid.uuid4().hex
        self._unwatched_keep = unwatched_keep_seconds
        self._polled_at = -math.inf  # monotonic time of the last poll
        self._ring: deque[FeedEntry] = deque(maxlen=size)
        self._added: deque[float] = deque(maxlen=size)  # when each entry of the ring was added
        self._keep = keep_seconds
        self._cursor = 0  # the cursor of the newest entry (0: none yet)
        self._handed = 0  # the highest cursor any poller has been given: entries after it may be merged
        self._changed = asyncio.Event()
        self._relays: dict[str, tuple[Any, asyncio.Task[None]]] = {}

    @property
    def cursor(self) -> int:
        return self._cursor

    # -- publishing (on the host's event loop) -------------------------------------------------------

    def publish(self, execution_id: str, records: Sequence[EventRecord], state: ExecutionState) -> None:
        """Records just committed for ``execution_id``; ``state`` is the execution after them.

        While nobody polls, only ``execution.*`` records are kept: they are what a lifecycle stream that
        opens now may need (it takes the ring when its poller attaches, and cannot read the store); an
        execution stream reads the store when it opens and again when a poller attaches, so the other
        records would only cost memory (most of a parked execution's, before)."""
        entries = record_entries(execution_id, records, state, lifecycle_only=not self.watched)
        for entry in entries:
            self._add(entry._replace(cursor=self._cursor + 1))
        if entries:
            self._wake()

    @property
    def watched(self) -> bool:
        """A poller came for entries lately (a stream is open on some ingress replica)."""
        return time.monotonic() - self._polled_at < IDLE_POLLER_SECONDS

    def progress(self, execution_id: str, step: str, attempt: int, delta: str) -> None:
        """A step's partial output (a :data:`ProgressSink`): merged into the previous delta of the same
        step while no poller has taken that one yet."""
        if not delta:
            return
        last = self._ring[-1] if self._ring else None
        if (
            last is not None
            and last.cursor > self._handed
            and last.kind == "progress"
            and last.execution_id == execution_id
            and last.step == step
            and last.attempt == attempt
        ):
            self._ring[-1] = last._replace(delta=last.delta + delta)
            return
        self._add(
            FeedEntry(self._cursor + 1, "progress", execution_id, step=step, attempt=attempt, delta=delta)
        )
        self._wake()

    def gap(self, execution_id: str) -> None:
        """Records of ``execution_id`` may be missing from this feed: its streams re-read the store."""
        self._add(FeedEntry(self._cursor + 1, "gap", execution_id))
        self._wake()

    def trim(self) -> None:
        """Drop entries older than the time bound now (the host calls it every lease round), so an idle
        host does not keep the records of its last burst until its next append."""
        now = time.monotonic()
        # Nobody polled for a while (no open stream anywhere): keep only what a poller attaching now
        # could need, not half a minute of every execution's records in this host's memory.
        keep = self._keep if self.watched else self._unwatched_keep
        while self._added and now - self._added[0] > keep:
            self._ring.popleft()
            self._added.popleft()

    def _add(self, entry: FeedEntry) -> None:
        """Append the entry with the next cursor, dropping those older than the time bound."""
        self.trim()
        now = time.monotonic()
        self._cursor = entry.cursor
        self._ring.append(entry)
        self._added.append(now)

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    # -- polling -------------------------------------------------------------------------------------

    async def wait(self, incarnation: str | None, after: int | None, timeout: float) -> FeedBatch:
        """The entries after cursor ``after``, as soon as there are any (at most ``timeout`` seconds).

        ``after`` None: no entries, just the current cursor, at once (a poller attaching; it re-reads
        the store itself). ``incarnation`` None: trust ``after`` as it is (0 is then "everything still
        in the ring", which is how a relay starts). A cursor from another incarnation, or one the ring
        has moved past, answers ``lost`` with the current cursor."""
        self._polled_at = time.monotonic()
        if after is None:
            return FeedBatch(self.incarnation, self._cursor, [], False)
        oldest = self._ring[0].cursor if self._ring else self._cursor + 1
        if (incarnation is not None and incarnation != self.incarnation) or after > self._cursor:
            return FeedBatch(self.incarnation, self._cursor, [], True)
        if incarnation is not None and after + 1 < oldest:
            return FeedBatch(self.incarnation, self._cursor, [], True)
        if after >= self._cursor and timeout > 0:
            changed = self._changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), timeout)
        # cursors in the ring are consecutive: the newest ``cursor - after`` entries are the new ones
        fresh = min(self._cursor - after, len(self._ring))
        entries = list(itertools.islice(reversed(self._ring), fresh))[::-1] if fresh > 0 else []
        self._handed = max(self._handed, self._cursor)
        return FeedBatch(self.incarnation, self._cursor, entries, False)

    # -- relays of dedicated hosts -------------------------------------------------------------------

    def relay(self, execution_id: str, handle: Any, alive: Callable[[], bool]) -> None:
        """Republish the feed of the dedicated host ``handle`` of ``execution_id`` here while
        ``alive()`` (this host still owns it through that handle); one relay per execution, the one
        of the newest handle."""
        running = self._relays.get(execution_id)
        if running is not None:
            if running[0] is handle and not running[1].done():
                return
            running[1].cancel()
        task = asyncio.get_running_loop().create_task(self._relay(execution_id, handle, alive))
        self._relays[execution_id] = (handle, task)
        task.add_done_callback(lambda done: self._relay_done(execution_id, done))

    def _relay_done(self, execution_id: str, task: asyncio.Task[None]) -> None:
        running = self._relays.get(execution_id)
        if running is not None and running[1] is task:
            del self._relays[execution_id]

    async def _relay(self, execution_id: str, handle: Any, alive: Callable[[], bool]) -> None:
        incarnation: str | None = None
        cursor = 0  # everything its ring still holds: its execution's records before this relay began
        failures = 0
        while alive():
            try:
                batch: FeedBatch = await handle.feed.remote(incarnation, cursor, RELAY_POLL_SECONDS)
            except asyncio.CancelledError:
                raise
            except ActorDiedError:
                self.gap(execution_id)  # it finished (and exited) or is gone: the store has the rest
                return
            except Exception as exc:  # restarting, or unreachable for now
                failures += 1
                self.gap(execution_id)
                if failures >= RELAY_MAX_FAILURES:
                    log.warning("stopped relaying the feed of dedicated execution %s: %s", execution_id, exc)
                    return
                await asyncio.sleep(min(5.0, 0.2 * failures))
                incarnation, cursor = None, 0
                continue
            if batch.lost or incarnation is None:
                # lost, or (re)attached: what it recorded before may have passed no relay
                self.gap(execution_id)
            failures = 0
            incarnation, cursor = batch.incarnation, batch.cursor
            for entry in batch.entries:
                self._add(entry._replace(cursor=self._cursor + 1))
            if batch.entries:
                self._wake()

    def close(self) -> None:
        for _, task in self._relays.values():
            task.cancel()
        self._relays.clear()

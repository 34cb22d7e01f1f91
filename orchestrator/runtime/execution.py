"""The execution actor: one logical actor per execution, the single writer of its event log.

It owns a mailbox (a lock serialising triggers), its folded state and its in-flight work. For every
trigger it asks the pure core what to do, appends the resulting events in one transaction, and only
then acts on the commands: start step work, arm timers, cancel tasks. Where it lives (a pooled host
or a dedicated Ray actor) is the host's business, not this class's.

The mailbox never drops a trigger:

- a store error while appending is taken as transient: the same decision is retried with backoff
  until it is recorded (the execution counts as *stalled* meanwhile, and :class:`StoreHealth` says so);
- a concurrency conflict reloads the log, decides the trigger again against it and resumes (re-arms
  timers, re-issues work that is not in flight here);
- every record is encoded before it joins a group-commit batch, so an output that cannot be stored
  (or is larger than the limit) fails its own step, never the batch it would have joined.

One thing stops it: an append refused by its partition's fence (``Fenced``). Another host owns the
execution now, so this copy detaches without recording anything, and a start is answered ``NOT_OWNER``
so the caller asks the new owner.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from orchestrator.core.decide import (
    ApprovalSubmitted,
    CancelRequested,
    CancelStep,
    Decision,
    Resume,
    RunStep,
    ScheduleTimer,
    SignalSent,
    Start,
    StepErrored,
    StepSucceeded,
    TimerElapsed,
    Trigger,
    decide,
)
from orchestrator.core.errors import (
    ConcurrencyConflict,
    Fenced,
    InvalidRequest,
    NotOwner,
    OrchestratorError,
    StepError,
    StoreError,
)
from orchestrator.core.events import (
    Event,
    EventRecord,
    ExecutionFailed,
    StepCompleted,
    StepStarted,
    from_record,
    to_record,
)
from orchestrator.core.signals import approval_problem, raise_if, signal_problem
from orchestrator.core.state import ExecutionState, evolve, fold
from orchestrator.runtime.alarms import Alarm, alarms
from orchestrator.runtime.appender import BatchAppender
from orchestrator.runtime.ports import StepRunner
from orchestrator.store.base import EventStore, Fence, IdempotencyKeyTaken
from orchestrator.store.projection import project

log = logging.getLogger(__name__)

DEFAULT_MAX_OUTPUT_BYTES = 4 * 1024 * 1024
# Timer-fired triggers being applied, kept referenced until done (one set for all executions: a set
# each would cost every parked execution its memory).
_FIRING: set[asyncio.Task[None]] = set()
# A start is answered to a waiting caller, so its append is retried for a bounded time only (nothing
# is recorded and nothing is claimed when it gives up); every later trigger is retried until recorded.
START_RETRY_SECONDS = 10.0


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class StoreHealth:
    """What a host reports in /health about its appends: shared by the executions it hosts."""

    append_failures: int = 0
    last_store_error: str | None = None
    last_store_error_at: datetime | None = None
    stalled: set[str] = field(default_factory=set)

    def failed(self, execution_id: str, exc: BaseException) -> None:
        self.append_failures += 1
        self.last_store_error = f"{type(exc).__name__}: {exc}"[:500]
        self.last_store_error_at = datetime.now(UTC)
        self.stalled.add(execution_id)

    def recovered(self, execution_id: str) -> None:
        self.stalled.discard(execution_id)


# An escaped NUL in the JSON text: an odd run of backslashes before "u0000" (an even run is a literal
# backslash followed by the text "u0000").
_ESCAPED_NUL = re.compile(r"(\\+)u0000")
# made once (json.dumps with options makes one per call): payload_problem runs for every event
_STRICT_JSON = json.JSONEncoder(separators=(",", ":"), default=str, allow_nan=False, ensure_ascii=False)


def payload_problem(payload: dict[str, Any]) -> tuple[str, int]:
    """Encode a payload as both backends will store it; return ``("", size)`` or ``(reason, 0)``.

    Stricter than the stores' own encoder on purpose: NaN/Infinity, NUL characters and lone
    surrogates are accepted by SQLite but rejected by PostgreSQL's JSONB, so a log that is valid on
    one backend is valid on both, and one bad payload never fails a PostgreSQL batch.
    """
    try:
        text = _STRICT_JSON.encode(payload)
        data = text.encode("utf-8")
    except (ValueError, TypeError, RecursionError, OverflowError, UnicodeEncodeError) as exc:
        return f"{type(exc).__name__}: {exc}"[:300], 0
    if "u0000" in text and any(len(m.group(1)) % 2 for m in _ESCAPED_NUL.finditer(text)):
        return "strings must not contain NUL characters (\\u0000)", 0
    return "", len(data)


class Execution:
    # a host keeps one per execution in flight, most of them parked: no per-instance __dict__
    __slots__ = (
        "_appender",
        "_attempts",
        "_clock",
        "_detached",
        "_ended",
        "_lock",
        "_max_output_bytes",
        "_on_fenced",
        "_on_recorded",
        "_on_terminal",
        "_released",
        "_retry_initial",
        "_retry_max",
        "_runner",
        "_start_retry_seconds",
        "_store",
        "_tasks",
        "_timers",
        "execution_id",
        "fence",
        "health",
        "state",
    )

    def __init__(
        self,
        execution_id: str,
        *,
        store: EventStore,
        runner: StepRunner,
        clock: Callable[[], datetime] = utcnow,
        on_terminal: Callable[[Execution], None] | None = None,
        appender: BatchAppender | None = None,
        max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES,
        health: StoreHealth | None = None,
        retry_initial: float = 0.05,
        retry_max: float = 5.0,
        start_retry_seconds: float = START_RETRY_SECONDS,
        fence: Fence | None = None,
        on_fenced: Callable[[Execution], None] | None = None,
        on_recorded: Callable[[str, list[EventRecord], ExecutionState], None] | None = None,
    ) -> None:
        self.execution_id = execution_id
        self.state = ExecutionState(execution_id)
        self._store = store
        self._runner = runner
        self._clock = clock
        self._on_terminal = on_terminal
        self._appender = appender
        self._max_output_bytes = max_output_bytes
        self.health = health if health is not None else StoreHealth()
        self._retry_initial = retry_initial
        self._retry_max = retry_max
        self._start_retry_seconds = start_retry_seconds
        self._lock = asyncio.Lock()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._attempts: dict[str, int] = {}  # the attempt each task in _tasks runs
        self._timers: dict[str, Alarm] = {}
        self._detached = False
        # done, or detached: a waiter has nothing more to wait for. The event is made by the first
        # waiter only: most executions have none, and an idle one costs memory while it is parked.
        self._ended = False
        self._released: asyncio.Event | None = None
        self.fence = fence
        self._on_fenced = on_fenced
        # told of every append once committed, with the state after it (the host's live feed)
        self._on_recorded = on_recorded

    # -- entry points ----------------------------------------------------------------------------

    async def start(self, trigger: Start) -> ExecutionState:
        await self.apply(trigger)
        return self.state

    async def start_finished(self, trigger: Start) -> ExecutionState | None:
        """Record the start only if its decision finishes the execution (a chain of transforms), and
        return the final state; otherwise record nothing and return None (the start belongs to a host,
        which runs the work the decision asks for). Lets the ingress finish such an execution itself,
        with no actor hop: nobody else ever writes its log, and the fence still guards the append."""
        async with self._lock:
            decision = decide(self.state, trigger)
            if not decision.state.terminal:
                return None
            decision, records = self._storable(decision, trigger)
            try:
                recorded = await self._record(decision, records, start=True)
            except Fenced as exc:
                raise NotOwner(exc.message) from exc
            if not recorded:  # a new id already taken: another id is as good
                raise NotOwner(f"execution {self.execution_id!r} was recorded by another writer")
            if self._on_recorded is not None:
                self._on_recorded(self.execution_id, records, decision.state)
            self.state = decision.state
            self._finish()
            return self.state

    def load(self) -> ExecutionState:
        """Rebuild from the store (recovery, or after a concurrency conflict). Blocks: on an event
        loop, use :meth:`reload`."""
        return self._adopt(self._store.load(self.execution_id))

    async def reload(self) -> ExecutionState:
        """:meth:`load` with the store I/O on a worker thread, so the host's loop keeps serving."""
        return self._adopt(await asyncio.to_thread(self._store.load, self.execution_id))

    def _adopt(self, records: list[EventRecord]) -> ExecutionState:
        self.state = fold(self.execution_id, (from_record(r) for r in records))
        if self.state.terminal:
            self._release()
        return self.state

    async def resume(self) -> None:
        await self.apply(Resume(now=self._clock()))

    async def cancel(
        self,
        reason: str = "Execution was cancelled",
        *,
        key_id: str | None = None,
        user: dict[str, Any] | None = None,
    ) -> ExecutionState:
        """``key_id`` and ``user`` say who asked; they are recorded in ``execution.cancel_requested``."""
        await self.apply(CancelRequested(now=self._clock(), reason=reason, key_id=key_id, user=user))
        return self.state

    async def signal(
        self, name: str, payload: Any, *, key_id: str | None = None, user: dict[str, Any] | None = None
    ) -> ExecutionState:
        """Record signal ``name`` (``signal.received``); a ``signal`` step waiting for it completes. A
        signal the execution cannot take now raises (SIGNAL_NOT_FOUND, SIGNAL_NOT_AWAITED, ...)."""
        trigger = SignalSent(now=self._clock(), name=name, payload=payload, key_id=key_id, user=user)
        await self.apply(trigger, check=lambda state: raise_if(signal_problem(state, name)))
        return self.state

    async def approve(
        self,
        step: str,
        approved: bool,
        comment: str | None = None,
        *,
        key_id: str | None = None,
        user: dict[str, Any] | None = None,
    ) -> ExecutionState:
        """Record a decision on approval step ``step`` (``approval.decided``); raises when it is not
        one, is not waiting, or ``user`` is not among its approvers."""
        trigger = ApprovalSubmitted(
            now=self._clock(), step=step, approved=approved, comment=comment, key_id=key_id, user=user
        )
        await self.apply(trigger, check=lambda state: raise_if(approval_problem(state, step, user)))
        return self.state

    async def wait(self, timeout: float | None = None) -> ExecutionState:
        """The state once terminal, or after ``timeout``; raises NotOwner if this copy is detached
        (its partition moved) before that, so the caller waits on the new owner instead."""
        if not self.state.terminal and not self._detached:
            if self._released is None:
                self._released = asyncio.Event()
                if self._ended:
                    self._released.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._released.wait(), timeout)
        if self._detached and not self.state.terminal:
            raise NotOwner(f"execution {self.execution_id!r} moved to another execution host")
        return self.state

    @property
    def detached(self) -> bool:
        return self._detached

    @property
    def busy(self) -> bool:
        """Steps running or a trigger being recorded: moving it now would redo work."""
        return bool(self._tasks) or self._lock.locked()

    # -- the mailbox -----------------------------------------------------------------------------

    async def apply(self, trigger: Trigger, *, check: Callable[[ExecutionState], None] | None = None) -> None:
        """``check`` runs on the state inside the mailbox, before the trigger is decided: what it raises
        reaches the caller and nothing is recorded (a signal or a decision the execution cannot take)."""
        async with self._lock:
            if check is not None:
                check(self.state)
            pending: list[Trigger] = [trigger]
            conflicts = 0
            while pending and not self._detached:
                current = pending.pop(0)
                decision = decide(self.state, current)
                if decision.events or isinstance(current, Start):
                    decision, records = self._storable(decision, current)
                    try:
                        recorded = await self._record(decision, records, start=isinstance(current, Start))
                    except Fenced as exc:
                        self._lost(exc)
                        if isinstance(current, Start):
                            raise NotOwner(exc.message) from exc
                        return
                    if not recorded:
                        # another writer got there first: adopt the log, decide again, resume
                        conflicts += 1
                        log.warning("conflict appending to %s; reloading from the store", self.execution_id)
                        if conflicts > 1:
                            await asyncio.sleep(self._backoff(conflicts - 1))
                        await self.reload()
                        if self.state.terminal:
                            self._finish()
                            return
                        pending = [current, Resume(now=self._clock())]
                        continue
                    if self._on_recorded is not None:
                        self._on_recorded(self.execution_id, records, decision.state)
                self.state = decision.state
                for command in decision.commands:
                    self._perform(command, resuming=isinstance(current, Resume))
                if self.state.terminal:
                    self._finish()
                    return

    def _backoff(self, failures: int) -> float:
        return float(min(self._retry_max, self._retry_initial * 2 ** min(failures - 1, 30)))

    async def _record(self, decision: Decision, records: list[EventRecord], *, start: bool) -> bool:
        """Append until recorded (True) or a concurrency conflict (False). Other errors are taken as
        transient and retried with backoff; only a start gives up, after ``start_retry_seconds``."""
        projection = project(decision.state)
        began = time.monotonic()
        failures = 0
        try:
            while True:
                try:
                    if self._appender is not None:
                        await self._appender.append(self.execution_id, records, projection, self.fence)
                    else:
                        await asyncio.to_thread(
                            functools.partial(
                                self._store.append,
                                self.execution_id,
                                records,
                                projection=projection,
                                fence=self.fence,
                            )
                        )
                    return True
                except (IdempotencyKeyTaken, Fenced):
                    raise  # a start that lost its key, or a lost lease: not for a retry here
                except ConcurrencyConflict:
                    return False
                except Exception as exc:
                    failures += 1
                    self.health.failed(self.execution_id, exc)
                    if start and time.monotonic() - began >= self._start_retry_seconds:
                        raise StoreError(
                            f"cannot record the start of execution {self.execution_id!r}: {exc}; "
                            "nothing was recorded, retry the request",
                            code="STORE_UNAVAILABLE",
                            status=503,
                        ) from exc
                    delay = self._backoff(failures)
                    log.warning("append to %s failed (%s); retrying in %.2fs", self.execution_id, exc, delay)
                    await asyncio.sleep(delay)
                    if self._detached:
                        raise asyncio.CancelledError from exc
        finally:
            self.health.recovered(self.execution_id)

    # -- records that can be stored ----------------------------------------------------------------

    def _storable(self, decision: Decision, trigger: Trigger) -> tuple[Decision, list[EventRecord]]:
        """Encode the decision's records now, before they join a batch; a record that cannot be
        stored turns into the failure of its step (or of the execution)."""
        for _ in range(3):  # a replacement decision is checked again; it only holds our own messages
            records: list[EventRecord] = []
            for index, event in enumerate(decision.events):
                record = to_record(self.execution_id, event)
                problem, size = payload_problem(record.payload)
                if not problem and isinstance(event, StepCompleted) and size > self._max_output_bytes:
                    code = "OUTPUT_TOO_LARGE"
                    message = (
                        f"the output of step {event.step!r} is {size} bytes encoded, over the limit of "
                        f"{self._max_output_bytes} (ORCH_MAX_STEP_OUTPUT_BYTES)"
                    )
                elif problem:
                    code = "OUTPUT_NOT_SERIALIZABLE"
                    message = f"{_what(event)} cannot be stored as JSON: {problem}"
                else:
                    records.append(record)
                    continue
                if isinstance(trigger, Start) and index == 0:
                    raise InvalidRequest(
                        f"the execution cannot be started: {message}", code="INPUT_NOT_SERIALIZABLE"
                    )
                log.warning("%s: %s", self.execution_id, message)
                decision = self._fail_instead(decision, index, code, message, trigger.now)
                break
            else:
                return decision, records
        raise OrchestratorError(f"execution {self.execution_id!r}: cannot build a storable decision")

    def _fail_instead(
        self, decision: Decision, index: int, code: str, message: str, now: datetime
    ) -> Decision:
        """Keep the events before ``decision.events[index]``; in its place, fail its step (which
        fails the execution) or, for an event that belongs to no step, the execution itself."""
        kept = decision.events[:index]
        bad = decision.events[index]
        state = self.state.clone()
        for event in kept:
            evolve(state, event)
        step_name = getattr(bad, "step", None)
        step = state.steps.get(step_name) if step_name is not None else None
        if step_name is not None and step is not None and not state.terminal:
            attempt = int(getattr(bad, "attempt", step.attempt or 1))
            if step.status not in ("running", "waiting"):
                started = StepStarted(seq=state.last_seq + 1, timestamp=now, step=step_name, attempt=attempt)
                evolve(state, started)
                kept = [*kept, started]
            errored = StepErrored(
                now=now, step=step_name, attempt=attempt, error=message, code=code, retryable=False
            )
            failed = decide(state, errored)
            if failed.events:
                return Decision(failed.state, [*kept, *failed.events], failed.commands)
        ended: Event = ExecutionFailed(
            seq=state.last_seq + 1, timestamp=now, error=f"{code}: {message}", step=step_name
        )
        evolve(state, ended)
        return Decision(state, [*kept, ended], [])

    # -- commands ----------------------------------------------------------------------------------

    def _perform(self, command: RunStep | ScheduleTimer | CancelStep, *, resuming: bool = False) -> None:
        match command:
            case RunStep():
                previous = self._tasks.get(command.step)
                if (
                    resuming
                    and previous is not None
                    and not previous.done()
                    and self._attempts.get(command.step) == command.attempt
                ):
                    return  # that attempt is in flight here already (a resume after a conflict)
                self._tasks.pop(command.step, None)
                if previous is not None:
                    previous.cancel()
                task = asyncio.get_running_loop().create_task(self._run_step(command))
                self._tasks[command.step] = task
                self._attempts[command.step] = command.attempt
            case ScheduleTimer():
                self._arm(command)
            case CancelStep():
                running = self._tasks.pop(command.step, None)
                if running is not None:
                    running.cancel()

    def _arm(self, command: ScheduleTimer) -> None:
        delay = (command.fire_at - self._clock()).total_seconds()
        old = self._timers.pop(command.timer_id, None)
        if old is not None:
            old.cancel()
        self._timers[command.timer_id] = alarms().after(delay, self._fire, command.timer_id)

    def _fire(self, timer_id: str) -> None:
        """A timer's callback (a bound method: no closure per armed timer while the execution parks)."""
        self._timers.pop(timer_id, None)
        task = asyncio.get_running_loop().create_task(
            self.apply(TimerElapsed(now=self._clock(), timer_id=timer_id))
        )
        _FIRING.add(task)
        task.add_done_callback(_FIRING.discard)

    async def _run_step(self, command: RunStep) -> None:
        trigger: Trigger
        try:
            output = await self._runner.run(self.state, command)
            trigger = StepSucceeded(
                now=self._clock(), step=command.step, attempt=command.attempt, output=output
            )
        except asyncio.CancelledError:
            return
        except StepError as exc:
            trigger = StepErrored(
                now=self._clock(),
                step=command.step,
                attempt=command.attempt,
                error=exc.message,
                code=exc.code,
                retryable=exc.retryable,
            )
        except OrchestratorError as exc:
            trigger = StepErrored(
                now=self._clock(),
                step=command.step,
                attempt=command.attempt,
                error=exc.message,
                code=exc.code,
                retryable=False,
            )
        except Exception as exc:  # an unexpected error is still the step's failure, never the host's
            log.exception("step %s of %s raised", command.step, self.execution_id)
            trigger = StepErrored(
                now=self._clock(),
                step=command.step,
                attempt=command.attempt,
                error=f"{type(exc).__name__}: {exc}",
                code="STEP_FAILED",
            )
        finally:
            if self._tasks.get(command.step) is asyncio.current_task():
                del self._tasks[command.step]
        await self.apply(trigger)

    def detach(self) -> None:
        """Drop in-flight work without recording anything, as a crash would (a lost partition, host
        shutdown, tests). The log stays as it is, and a later load + resume (here or on another host)
        picks the execution up again. An append being retried stops too; waiters are released."""
        self._detached = True
        self._drop_work()
        self._release()

    def _lost(self, exc: Fenced) -> None:
        log.warning("%s: %s; dropping it", self.execution_id, exc.message)
        self.detach()
        if self._on_fenced is not None:
            self._on_fenced(self)

    def _drop_work(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        self._tasks.clear()
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()

    def _finish(self) -> None:
        self._drop_work()
        self._release()
        if self._on_terminal is not None:
            self._on_terminal(self)

    def _release(self) -> None:
        self._ended = True
        if self._released is not None:
            self._released.set()

    @property
    def in_flight(self) -> int:
        return len(self._tasks) + len(self._timers)


def _what(event: Event) -> str:
    if isinstance(event, StepCompleted):
        return f"the output of step {event.step!r}"
    step = getattr(event, "step", None)
    return f"the {event.type} event of step {step!r}" if step else f"the {event.type} event"

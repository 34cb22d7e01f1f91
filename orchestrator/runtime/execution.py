"""The execution actor: one logical actor per execution, the single writer of its event log.

It owns a mailbox (a lock serialising triggers), its folded state and its in-flight work. For every
trigger it asks the pure core what to do, appends the resulting events in one transaction, and only
then acts on the commands: start step work, arm timers, cancel tasks. Where it lives (a pooled host
or a dedicated Ray actor) is the host's business, not this class's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from orchestrator.core.decide import (
    CancelRequested,
    CancelStep,
    Decision,
    Resume,
    RunStep,
    ScheduleTimer,
    Start,
    StepErrored,
    StepSucceeded,
    TimerElapsed,
    Trigger,
    decide,
)
from orchestrator.core.errors import ConcurrencyConflict, OrchestratorError, StepError
from orchestrator.core.events import from_record, to_record
from orchestrator.core.state import ExecutionState, fold
from orchestrator.runtime.appender import BatchAppender
from orchestrator.runtime.ports import StepRunner
from orchestrator.store.base import EventStore
from orchestrator.store.projection import project

log = logging.getLogger(__name__)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Execution:
    def __init__(
        self,
        execution_id: str,
        *,
        store: EventStore,
        runner: StepRunner,
        clock: Callable[[], datetime] = utcnow,
        on_terminal: Callable[[Execution], None] | None = None,
        appender: BatchAppender | None = None,
    ) -> None:
        self.execution_id = execution_id
        self.state = ExecutionState(execution_id)
        self._store = store
        self._runner = runner
        self._clock = clock
        self._on_terminal = on_terminal
        self._appender = appender
        self._lock = asyncio.Lock()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._done = asyncio.Event()
        self._firing: set[asyncio.Task[None]] = set()

    # -- entry points ----------------------------------------------------------------------------

    async def start(self, trigger: Start) -> ExecutionState:
        await self.apply(trigger)
        return self.state

    def load(self) -> ExecutionState:
        """Rebuild from the store (recovery, or after a concurrency conflict)."""
        self.state = fold(self.execution_id, (from_record(r) for r in self._store.load(self.execution_id)))
        if self.state.terminal:
            self._done.set()
        return self.state

    async def resume(self) -> None:
        await self.apply(Resume(now=self._clock()))

    async def cancel(self, reason: str = "Execution was cancelled") -> ExecutionState:
        await self.apply(CancelRequested(now=self._clock(), reason=reason))
        return self.state

    async def wait(self, timeout: float | None = None) -> ExecutionState:
        if not self.state.terminal:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._done.wait(), timeout)
        return self.state

    # -- the mailbox -----------------------------------------------------------------------------

    async def apply(self, trigger: Trigger) -> None:
        async with self._lock:
            decision = decide(self.state, trigger)
            if decision.events or isinstance(trigger, Start):
                try:
                    await self._record(decision)
                except ConcurrencyConflict:
                    # another writer got there first: adopt the log as it is and drop this trigger
                    log.warning("conflict appending to %s; reloading from the store", self.execution_id)
                    self.load()
                    return
            self.state = decision.state
            for command in decision.commands:
                self._perform(command)
            if self.state.terminal:
                self._finish()

    async def _record(self, decision: Decision) -> None:
        records = [to_record(self.execution_id, event) for event in decision.events]
        projection = project(decision.state)
        if self._appender is not None:
            await self._appender.append(self.execution_id, records, projection)
        else:
            self._store.append(self.execution_id, records, projection=projection)

    def _perform(self, command: RunStep | ScheduleTimer | CancelStep) -> None:
        match command:
            case RunStep():
                previous = self._tasks.pop(command.step, None)
                if previous is not None:
                    previous.cancel()
                task = asyncio.get_running_loop().create_task(self._run_step(command))
                self._tasks[command.step] = task
            case ScheduleTimer():
                self._arm(command)
            case CancelStep():
                running = self._tasks.pop(command.step, None)
                if running is not None:
                    running.cancel()

    def _arm(self, command: ScheduleTimer) -> None:
        loop = asyncio.get_running_loop()
        delay = max(0.0, (command.fire_at - self._clock()).total_seconds())
        old = self._timers.pop(command.timer_id, None)
        if old is not None:
            old.cancel()

        def fire() -> None:
            self._timers.pop(command.timer_id, None)
            task = loop.create_task(self.apply(TimerElapsed(now=self._clock(), timer_id=command.timer_id)))
            self._firing.add(task)
            task.add_done_callback(self._firing.discard)

        self._timers[command.timer_id] = loop.call_later(delay, fire)

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
        """Drop in-flight work without recording anything, as a crash would (host shutdown, tests).
        The log stays as it is, and a later load + resume picks the execution up again."""
        for task in self._tasks.values():
            task.cancel()
        self._tasks.clear()
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()

    def _finish(self) -> None:
        self.detach()
        self._done.set()
        if self._on_terminal is not None:
            self._on_terminal(self)

    @property
    def in_flight(self) -> int:
        return len(self._tasks) + len(self._timers)

"""Durable timers' wake-ups: one event-loop timer per host, however many executions are parked.

A host may hold tens of thousands of executions parked in a ``wait`` step, a retry's backoff or a
timeout. With a loop timer each (``loop.call_later``) every one costs a timer handle, the loop's own
bookkeeping and a bound callback, about 0.7 KB measured in a host; here each costs one small
:class:`Alarm` in a heap, and the loop has one timer, for the earliest.

Only the wake-up lives here: what a timer is, and whether it still matters, is recorded in the
execution's log (``timer.scheduled``); after a restart the hosts arm their timers again from it.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import weakref
from collections.abc import Callable

# Cancelled alarms stay in the heap until they are due or the heap is compacted: once at least this
# many are waiting and they are more than half the heap, it is rebuilt without them.
_COMPACT_AT = 64


class Alarm:
    """A wake-up: ``callback(arg)`` at loop time ``when``, unless cancelled first."""

    __slots__ = ("_alarms", "arg", "callback", "seq", "when")

    def __init__(self, alarms: Alarms, when: float, seq: int, callback: Callable[[str], None], arg: str):
        self._alarms: Alarms | None = alarms  # None once out of the heap
        self.when = when
        self.seq = seq
        self.callback: Callable[[str], None] | None = callback
        self.arg = arg

    def __lt__(self, other: Alarm) -> bool:
        return (self.when, self.seq) < (other.when, other.seq)

    def cancel(self) -> None:
        if self.callback is not None:
            self.callback = None
            if self._alarms is not None:
                self._alarms._cancelled()

    @property
    def cancelled(self) -> bool:
        return self.callback is None


class Alarms:
    """The alarms of one event loop (a host's): a heap, and one loop timer armed for its earliest."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._heap: list[Alarm] = []
        self._seq = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = float("inf")
        self._dead = 0  # cancelled alarms still in the heap

    def __len__(self) -> int:
        """Alarms still to ring."""
        return len(self._heap) - self._dead

    def after(self, delay: float, callback: Callable[[str], None], arg: str) -> Alarm:
        """Ring ``callback(arg)`` in ``delay`` seconds (at once, on the next loop turn, if not positive)."""
        alarm = Alarm(self, self._loop.time() + max(0.0, delay), next(self._seq), callback, arg)
        heapq.heappush(self._heap, alarm)
        if alarm.when < self._timer_at:
            self._arm(alarm.when)
        return alarm

    def _arm(self, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._loop.call_at(when, self._ring)
        self._timer_at = when

    def _ring(self) -> None:
        self._timer, self._timer_at = None, float("inf")
        now = self._loop.time()
        due: list[Alarm] = []
        while self._heap and self._heap[0].when <= now:
            alarm = heapq.heappop(self._heap)
            alarm._alarms = None
            if alarm.callback is None:
                self._dead -= 1
            else:
                due.append(alarm)
        if self._heap:
            self._arm(self._heap[0].when)
        for alarm in due:
            callback, alarm.callback = alarm.callback, None
            if callback is not None:  # not cancelled by an earlier callback of this round
                try:
                    callback(alarm.arg)
                except Exception as exc:  # one failing wake-up must not keep the others from ringing
                    self._loop.call_exception_handler(
                        {"message": "an alarm's callback failed", "exception": exc}
                    )

    def _cancelled(self) -> None:
        self._dead += 1
        if self._dead >= _COMPACT_AT and self._dead * 2 > len(self._heap):
            self._heap = [alarm for alarm in self._heap if alarm.callback is not None]
            heapq.heapify(self._heap)
            self._dead = 0
            if not self._heap and self._timer is not None:
                self._timer.cancel()
                self._timer, self._timer_at = None, float("inf")


_PER_LOOP: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Alarms] = weakref.WeakKeyDictionary()


def alarms() -> Alarms:
    """The alarms of the running loop."""
    loop = asyncio.get_running_loop()
    found = _PER_LOOP.get(loop)
    if found is None:
        found = _PER_LOOP[loop] = Alarms(loop)
    return found

"""The folded states the ingress has read, so a read folds only what was recorded since.

A ``GET`` of an execution used to load and fold its whole log every time: 60 ms of CPU (holding the
GIL) for 500 steps, on every poll, slowing every other request of the replica. Logs are append-only,
so a state folded up to seq N stays right: the next read loads the events after N and evolves a copy.
A finished execution's state never changes again, so its read only checks that it still exists
(retention may have pruned it). The cache is bounded (least recently read out first) and per replica.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from orchestrator.core.state import ExecutionState

DEFAULT_CAPACITY = 2000


class FoldedStates:
    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self.capacity = capacity
        self._states: OrderedDict[str, ExecutionState] = OrderedDict()
        self._lock = threading.Lock()  # reads run on worker threads

    def get(self, execution_id: str) -> ExecutionState | None:
        """The cached state; callers never mutate it (evolve a ``clone()``)."""
        with self._lock:
            state = self._states.get(execution_id)
            if state is not None:
                self._states.move_to_end(execution_id)
            return state

    def put(self, state: ExecutionState) -> None:
        """Keep ``state`` unless a fresher one (a later seq) is already kept."""
        with self._lock:
            current = self._states.get(state.execution_id)
            if current is not None and current.last_seq > state.last_seq:
                return
            self._states[state.execution_id] = state
            self._states.move_to_end(state.execution_id)
            while len(self._states) > self.capacity:
                self._states.popitem(last=False)

    def forget(self, execution_id: str) -> None:
        with self._lock:
            self._states.pop(execution_id, None)

    def __len__(self) -> int:
        return len(self._states)

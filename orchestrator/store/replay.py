"""Replay: rebuild executions from exported event logs with the same pure fold the server uses, and
compare them with the live projection. A difference means a log and its projection disagree."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from orchestrator.core.events import EVENT_TYPES, EventRecord, from_record
from orchestrator.core.state import ExecutionState, evolve
from orchestrator.store.base import EventStore
from orchestrator.store.projection import project

_COMPARED = ("status", "workflow_name", "tenant_id", "last_seq", "error", "completed_at")


@dataclass(frozen=True)
class Difference:
    execution_id: str
    field: str
    replayed: object
    live: object


def replay(records: Iterable[EventRecord]) -> Iterator[ExecutionState]:
    """Fold records grouped by execution (exports are ordered by execution, then seq).

    Streams that are not executions (plans are stored as event streams too) are skipped."""
    state: ExecutionState | None = None
    skipping: str | None = None
    for record in records:
        if record.execution_id == skipping:
            continue
        if record.seq == 1 and record.type not in EVENT_TYPES:
            skipping = record.execution_id
            continue
        if state is None or record.execution_id != state.execution_id:
            if state is not None:
                yield state
            state = ExecutionState(record.execution_id)
        evolve(state, from_record(record))
    if state is not None:
        yield state


def compare(states: Iterable[ExecutionState], store: EventStore) -> tuple[int, list[Difference]]:
    """How many executions were replayed, and every field where one disagrees with the store."""
    count = 0
    differences: list[Difference] = []
    for state in states:
        count += 1
        live = store.get_execution(state.execution_id)
        if live is None:
            differences.append(Difference(state.execution_id, "execution", "present", "missing"))
            continue
        replayed = project(state)
        for field in _COMPARED:
            ours, theirs = getattr(replayed, field), getattr(live, field)
            if ours != theirs:
                differences.append(Difference(state.execution_id, field, ours, theirs))
    return count, differences

"""The ingress's cache of folded states: bounded, and never trades a fresher state for an older one."""

from __future__ import annotations

from orchestrator.core.state import ExecutionState
from orchestrator.server.folded_states import FoldedStates


def state(execution_id: str, last_seq: int) -> ExecutionState:
    folded = ExecutionState(execution_id)
    folded.last_seq = last_seq
    return folded


def test_the_least_recently_read_state_goes_first() -> None:
    cache = FoldedStates(capacity=2)
    cache.put(state("a", 1))
    cache.put(state("b", 1))
    assert cache.get("a") is not None  # read: now the most recent
    cache.put(state("c", 1))
    assert cache.get("b") is None and cache.get("a") is not None and cache.get("c") is not None
    assert len(cache) == 2


def test_a_slower_reader_never_replaces_a_fresher_state() -> None:
    cache = FoldedStates()
    fresh = state("a", 9)
    cache.put(fresh)
    cache.put(state("a", 4))  # a concurrent read that folded less
    assert cache.get("a") is fresh
    cache.forget("a")
    assert cache.get("a") is None

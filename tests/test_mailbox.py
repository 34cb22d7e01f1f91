"""The mailbox never drops a trigger: store failures, unstorable outputs and concurrency conflicts.

Real SQLite stores throughout; a store "fails" because another connection really holds its write
lock. Step work goes through a scripted :class:`StepRunner` (the runtime's port, its far edge).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from orchestrator.config import Settings
from orchestrator.core.decide import RunStep, Start, TimerElapsed
from orchestrator.core.errors import NotOwner, StoreError
from orchestrator.core.events import RECORD_ADAPTER
from orchestrator.core.partitions import partition_of
from orchestrator.core.state import ExecutionState
from orchestrator.core.validation import parse_workflow
from orchestrator.runtime.appender import BatchAppender
from orchestrator.runtime.execution import Execution, StoreHealth, payload_problem
from orchestrator.runtime.host import ExecutionHost
from orchestrator.store import SQLiteEventStore
from orchestrator.store.base import EventStore, Fence, IdempotencyKeyTaken


class ScriptedRunner:
    """Answers each step with ``outputs[step]`` (default ``{"ok": True}``) and records the calls."""

    def __init__(self, outputs: dict[str, Any] | None = None) -> None:
        self.outputs = outputs or {}
        self.calls: list[str] = []

    async def run(self, state: ExecutionState, command: RunStep) -> Any:
        self.calls.append(command.idempotency_key)
        await asyncio.sleep(0)
        return self.outputs.get(command.step, {"ok": True})


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "events.db"


@pytest.fixture
def store(db: Path) -> Iterator[EventStore]:
    store = SQLiteEventStore(db, busy_timeout_s=0.05)
    yield store
    store.close()


def start(*steps: dict[str, Any], **fields: Any) -> Start:
    definition = {"metadata": {"name": "mailbox"}, "spec": {"steps": list(steps)}}
    return Start(now=datetime.now(UTC), workflow=parse_workflow(definition), **fields)


def connector(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": "mcp_query", "connector": "c", "statement": "s", **extra}


def new_id() -> str:
    return f"wf_exec_{uuid.uuid4().hex}"


async def eventually(check: Any, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


# -- store errors are transient: the same decision is retried until recorded ------------------------


@pytest.mark.parametrize("grouped", [False, True], ids=["direct", "group-commit"])
async def test_a_locked_store_delays_a_trigger_but_never_drops_it(
    store: EventStore, db: Path, grouped: bool
) -> None:
    health = StoreHealth()
    appender = BatchAppender(store) if grouped else None
    execution = Execution(
        new_id(), store=store, runner=ScriptedRunner(), health=health, appender=appender, retry_max=0.1
    )
    await execution.start(
        start(
            {"name": "nap", "type": "wait", "duration": "100ms"},
            connector("call", depends_on=["nap"]),
        )
    )
    locker = sqlite3.connect(db, isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")  # another writer (a long retention DELETE) holds the lock
    try:
        await eventually(lambda: health.append_failures >= 2)
        assert health.stalled == {execution.execution_id}
        assert "locked" in (health.last_store_error or "")
        assert execution.state.status == "running"
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    state = await execution.wait(10)
    assert state.status == "completed"  # the timer's trigger was recorded once the lock was free
    assert state.steps["call"].output == {"ok": True}
    assert health.stalled == set()
    assert [r.seq for r in store.load(execution.execution_id)] == list(
        range(1, len(store.load(execution.execution_id)) + 1)
    )
    if appender is not None:
        appender.close()


# -- an output that cannot be stored fails its own step, never its neighbours ------------------------


HUGE = 10**5000  # more than 4,300 digits: json.dumps refuses it


async def test_an_unstorable_output_fails_its_step_and_not_the_batch(store: EventStore) -> None:
    appender = BatchAppender(store)
    runners = [ScriptedRunner({"call": HUGE})] + [ScriptedRunner() for _ in range(5)]
    executions = [Execution(new_id(), store=store, runner=runner, appender=appender) for runner in runners]
    await asyncio.gather(*(e.start(start(connector("call"))) for e in executions))
    states = await asyncio.gather(*(e.wait(10) for e in executions))
    bad, *good = states
    assert [s.status for s in good] == ["completed"] * 5
    assert bad.status == "failed"
    assert bad.steps["call"].error_code == "OUTPUT_NOT_SERIALIZABLE"
    assert "4300" in (bad.steps["call"].error or "")
    # and the log says so after a restart: nothing is left to fail again
    row = store.get_execution(bad.execution_id)
    assert row is not None and row.status == "failed"
    appender.close()


async def test_a_transform_with_an_unstorable_value_fails_that_step(store: EventStore) -> None:
    execution = Execution(new_id(), store=store, runner=ScriptedRunner())
    await execution.start(
        start(
            # a NUL character: SQLite would take it, PostgreSQL's JSONB would fail the whole batch
            {"name": "big", "type": "transform", "value": '{{ "a\\x00b" }}'},
            {"name": "after", "type": "transform", "value": 1, "depends_on": ["big"]},
        )
    )
    state = await execution.wait(5)
    assert state.status == "failed"
    assert state.steps["big"].error_code == "OUTPUT_NOT_SERIALIZABLE"
    assert [r.type for r in store.load(execution.execution_id)][-2:] == ["step.failed", "execution.failed"]


async def test_an_output_over_the_limit_fails_with_output_too_large(store: EventStore) -> None:
    runner = ScriptedRunner({"big": "x" * 5000, "small": "y" * 10})
    execution = Execution(new_id(), store=store, runner=runner, max_output_bytes=1000)
    await execution.start(start(connector("small"), connector("big", depends_on=["small"])))
    state = await execution.wait(5)
    assert state.status == "failed"
    assert state.steps["small"].status == "completed"
    assert state.steps["big"].error_code == "OUTPUT_TOO_LARGE"
    assert "ORCH_MAX_STEP_OUTPUT_BYTES" in (state.steps["big"].error or "")
    assert all(len(RECORD_ADAPTER.dump_json(r)) < 2000 for r in store.load(execution.execution_id))


@pytest.mark.parametrize(
    "payload",
    [{"n": HUGE}, {"n": float("nan")}, {"s": "a\x00b"}, {"s": "\ud800"}],
    ids=["huge-int", "nan", "nul", "lone-surrogate"],
)
def test_payloads_one_backend_would_reject_are_unstorable(payload: dict[str, Any]) -> None:
    problem, _ = payload_problem(payload)
    assert problem


def test_escaped_backslashes_are_not_mistaken_for_nul() -> None:
    assert payload_problem({"s": "C:\\u0000"}) == ("", len('{"s":"C:\\\\u0000"}'))


# -- a conflict reloads and resumes --------------------------------------------------------------------


async def test_after_a_conflict_the_execution_resumes_work_the_other_writer_started(
    store: EventStore,
) -> None:
    execution_id = new_id()
    runner = ScriptedRunner()
    first = Execution(execution_id, store=store, runner=runner)
    await first.start(
        start({"name": "gate", "type": "wait", "duration": "300ms"}, connector("call", depends_on=["gate"]))
    )
    # A second writer (a host that should not exist) fires the timer early, records the start of
    # "call", then dies before doing the work.
    other = Execution(execution_id, store=store, runner=ScriptedRunner())
    other.load()
    await other.apply(TimerElapsed(now=datetime.now(UTC), timer_id="gate/wait"))
    other.detach()
    assert store.load(execution_id)[-1].type == "step.started"

    state = await first.wait(10)  # its own timer fires, conflicts, reloads and re-issues "call"
    assert state.status == "completed"
    assert runner.calls == [f"{execution_id}/call/1"]
    seqs = [r.seq for r in store.load(execution_id)]
    assert seqs == list(range(1, len(seqs) + 1))


# -- an idempotency key is bound by the first append, never before it -----------------------------------


async def test_two_starts_with_one_key_record_one_execution(store: EventStore) -> None:
    appender = BatchAppender(store)
    first, second = (
        Execution(new_id(), store=store, runner=ScriptedRunner(), appender=appender) for _ in "ab"
    )
    trigger = start(connector("call"), idempotency_key="order-42")
    results = await asyncio.gather(first.start(trigger), second.start(trigger), return_exceptions=True)
    taken = [r for r in results if isinstance(r, IdempotencyKeyTaken)]
    assert len(taken) == 1
    winner = first if not isinstance(results[0], BaseException) else second
    loser = second if winner is first else first
    assert taken[0].execution_id == winner.execution_id
    assert store.load(loser.execution_id) == []
    assert (await winner.wait(5)).status == "completed"
    appender.close()


async def test_a_start_that_cannot_be_recorded_leaves_its_key_free(store: EventStore, db: Path) -> None:
    execution = Execution(new_id(), store=store, runner=ScriptedRunner(), start_retry_seconds=0.2)
    locker = sqlite3.connect(db, isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StoreError) as failed:
            await execution.start(start(connector("call"), idempotency_key="order-43"))
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    assert failed.value.code == "STORE_UNAVAILABLE" and failed.value.status == 503
    assert (
        store.idempotency_key_owner("order-43", tenant_id="default") is None
    )  # a resubmission starts afresh
    retry = Execution(new_id(), store=store, runner=ScriptedRunner())
    await retry.start(start(connector("call"), idempotency_key="order-43"))
    assert store.idempotency_key_owner("order-43", tenant_id="default") == (retry.execution_id, None)


async def test_one_key_in_two_tenants_records_two_executions(store: EventStore) -> None:
    acme, beta = (Execution(new_id(), store=store, runner=ScriptedRunner()) for _ in "ab")
    await acme.start(
        start(connector("call"), idempotency_key="order-44", tenant_id="acme", request_hash="h-a")
    )
    await beta.start(
        start(connector("call"), idempotency_key="order-44", tenant_id="beta", request_hash="h-b")
    )
    assert store.idempotency_key_owner("order-44", tenant_id="acme") == (acme.execution_id, "h-a")
    assert store.idempotency_key_owner("order-44", tenant_id="beta") == (beta.execution_id, "h-b")
    again = Execution(new_id(), store=store, runner=ScriptedRunner())
    with pytest.raises(IdempotencyKeyTaken) as taken:
        await again.start(start(connector("call"), idempotency_key="order-44", tenant_id="acme"))
    assert (taken.value.execution_id, taken.value.request_hash) == (acme.execution_id, "h-a")


async def test_cancel_records_who_asked(store: EventStore) -> None:
    execution = Execution(new_id(), store=store, runner=ScriptedRunner())
    await execution.start(
        start({"name": "gate", "type": "wait", "duration": "1h"}, user={"id": 1}, key_id="k-1")
    )
    state = await execution.cancel(key_id="k-2", user={"id": 2})
    assert state.status == "cancelled" and state.started_by == {"key_id": "k-1", "user": {"id": 1}}
    (requested,) = [r for r in store.load(execution.execution_id) if r.type == "execution.cancel_requested"]
    assert requested.payload["requested_by"] == {"key_id": "k-2", "user": {"id": 2}}


class _SlowRecoveryHost(ExecutionHost):
    """A host whose first lease round waits for the test: a slow store, as after a kill -9."""

    release: asyncio.Event

    async def _lease_round(self) -> dict[int, int]:
        await self.release.wait()
        return await super()._lease_round()


async def test_a_caller_that_gives_up_waiting_does_not_cancel_recovery(tmp_path: Path) -> None:
    """A /health request whose client timed out becomes a cancelled ``ready()`` on the host; before the
    fix it cancelled recovery itself, and the restarted server never answered /health again."""
    _SlowRecoveryHost.release = asyncio.Event()
    host = _SlowRecoveryHost(Settings(data_dir=tmp_path), lambda settings: ScriptedRunner())
    impatient = asyncio.ensure_future(host.ready())
    await asyncio.sleep(0.01)
    impatient.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await impatient
    _SlowRecoveryHost.release.set()
    assert await asyncio.wait_for(host.ready(), 5) is True
    stats = await host.stats()
    assert stats["live_executions"] == 0 and len(stats["partitions"]) == 64  # alone: it took them all
    await host.leave()
    host.appender.close()
    host.store.close()


async def test_an_execution_whose_lease_moved_records_nothing_and_lets_go(store: EventStore) -> None:
    """Fencing, at the execution: a host paused past its lease wakes up to a timer, and its append is
    refused; the execution detaches (its waiters are told to ask the new owner) and the log stays
    exactly as the store had it."""
    store.partition_count(4)
    execution_id = new_id()
    partition = partition_of(execution_id, 4)
    epoch = store.acquire_lease(partition, "a@1", ttl=30)
    assert epoch is not None
    lost: list[str] = []
    execution = Execution(
        execution_id,
        store=store,
        runner=ScriptedRunner(),
        fence=Fence(partition, epoch),
        on_fenced=lambda e: lost.append(e.execution_id),
    )
    await execution.start(start({"name": "nap", "type": "wait", "duration": "0.3s"}))
    recorded = [r.seq for r in store.load(execution_id)]
    waiter = asyncio.ensure_future(execution.wait(30))
    assert store.acquire_lease(partition, "b@1", ttl=30, steal_from="a@1") == epoch + 1
    await eventually(lambda: execution.detached)
    assert lost == [execution_id]
    assert [r.seq for r in store.load(execution_id)] == recorded  # nothing written after the move
    with pytest.raises(NotOwner):
        await waiter

    fresh = Execution(new_id(), store=store, runner=ScriptedRunner(), fence=Fence(partition, epoch))
    with pytest.raises(NotOwner):  # a start under a stale fence: refused, and nothing recorded
        await fresh.start(start({"name": "one", "type": "transform", "value": 1}))
    assert store.load(fresh.execution_id) == []

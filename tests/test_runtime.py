"""The execution actor shell against real stores (SQLite and PostgreSQL) and a real HTTP service.

No Ray here: the shell is plain asyncio, so retries, timeouts, recovery and idempotency keys are
tested in seconds. The step runner calls a real HTTPConnector against a local flaky service.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from agents.connectors.base import CallContext, CapabilitySpec
from agents.connectors.http import HTTPConnector
from orchestrator.core.decide import RunStep, Start
from orchestrator.core.errors import ConcurrencyConflict, NotOwner
from orchestrator.core.events import from_record, to_record
from orchestrator.core.state import ExecutionState
from orchestrator.core.validation import parse_workflow
from orchestrator.runtime.appender import BatchAppender
from orchestrator.runtime.execution import Execution
from orchestrator.store import open_store
from orchestrator.store._sqlite import SQLiteEventStore
from orchestrator.store.base import EventStore, Fence


class FlakyService:
    """``/flaky/<key>`` fails with 503 ``fail`` times per key, then answers; ``/slow`` takes a while.
    Records every Idempotency-Key it receives."""

    def __init__(self, *, fail: int = 2, slow_seconds: float = 2.0) -> None:
        self.fail = fail
        self.slow_seconds = slow_seconds
        self.calls: dict[str, int] = {}
        self.keys: list[str] = []
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                service.keys.append(self.headers.get("Idempotency-Key", ""))
                if self.path.startswith("/flaky/"):
                    key = self.path.split("/")[2].split("?")[0]
                    service.calls[key] = service.calls.get(key, 0) + 1
                    if service.calls[key] <= service.fail:
                        self._send(503, {"error": "try again"})
                        return
                    self._send(200, {"ok": True, "attempt": service.calls[key]})
                elif self.path.startswith("/slow"):
                    time.sleep(service.slow_seconds)
                    self._send(200, {"slow": True})
                else:
                    self._send(200, {"status": "ok"})

            def _send(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class HTTPRunner:
    """Runs connector steps through a real HTTPConnector (what an agent actor does, minus Ray)."""

    def __init__(self, base_url: str) -> None:
        self.connector = HTTPConnector("flaky", {"base_url": base_url, "timeout": 10})
        self.capabilities = {
            "get": CapabilitySpec(name="get", binding={"method": "GET", "path": "/flaky/{key}"}),
            "slow": CapabilitySpec(name="slow", binding={"method": "GET", "path": "/slow"}),
        }
        self.started: list[str] = []

    async def run(self, state: ExecutionState, command: RunStep) -> Any:
        self.started.append(command.idempotency_key)
        spec = self.capabilities[command.request["statement"]]
        context = CallContext(idempotency_key=command.idempotency_key, step=command.step)
        return await self.connector.call(spec, command.request["parameters"], mode="query", context=context)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EventStore]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'events.db'}"
    else:
        url = request.getfixturevalue("postgres_schema_url")
    store = open_store(url)
    yield store
    store.close()


@pytest.fixture
def service() -> Iterator[FlakyService]:
    flaky = FlakyService()
    yield flaky
    flaky.close()


def start(definition: dict[str, Any], **fields: Any) -> Start:
    return Start(now=datetime.now(UTC), workflow=parse_workflow(definition), **fields)


def workflow(*steps: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "runtime"}, "spec": {"steps": list(steps), **spec}}


def event_types(store: EventStore, execution_id: str) -> list[str]:
    return [record.type for record in store.load(execution_id)]


def assert_contiguous(store: EventStore, execution_id: str) -> None:
    seqs = [record.seq for record in store.load(execution_id)]
    assert seqs == list(range(1, len(seqs) + 1))


async def test_connector_failing_twice_succeeds_on_third_attempt(
    store: EventStore, service: FlakyService
) -> None:
    runner = HTTPRunner(service.url)
    execution_id = f"wf_exec_{uuid.uuid4().hex}"
    key = uuid.uuid4().hex
    step = {
        "name": "call",
        "type": "mcp_query",
        "connector": "flaky",
        "statement": "get",
        "parameters": {"key": key},
        "retry": {"max_attempts": 3, "initial_interval": "50ms"},
    }
    execution = Execution(execution_id, store=store, runner=runner)
    await execution.start(start(workflow(step)))
    state = await execution.wait(20)
    assert state.status == "completed"
    assert state.steps["call"].output == {"ok": True, "attempt": 3}
    assert state.steps["call"].attempt == 3
    assert [a["attempt"] for a in state.steps["call"].attempts] == [1, 2]
    types = event_types(store, execution_id)
    assert types.count("step.retrying") == 2 and types.count("step.started") == 3
    assert service.keys == [f"{execution_id}/call/{n}" for n in (1, 2, 3)]
    assert_contiguous(store, execution_id)
    await runner.connector.close()


async def test_retries_exhausted_fail_the_execution(store: EventStore, service: FlakyService) -> None:
    service.fail = 5
    runner = HTTPRunner(service.url)
    execution = Execution(f"wf_exec_{uuid.uuid4().hex}", store=store, runner=runner)
    step = {
        "name": "call",
        "type": "mcp_query",
        "connector": "flaky",
        "statement": "get",
        "parameters": {"key": uuid.uuid4().hex},
        "retry": {"max_attempts": 2, "initial_interval": "10ms"},
    }
    await execution.start(start(workflow(step)))
    state = await execution.wait(20)
    assert state.status == "failed"
    assert state.steps["call"].status == "failed" and state.steps["call"].attempt == 2
    assert "503" in (state.error or "")
    await runner.connector.close()


async def test_step_timeout_fails_the_step(store: EventStore, service: FlakyService) -> None:
    runner = HTTPRunner(service.url)
    execution = Execution(f"wf_exec_{uuid.uuid4().hex}", store=store, runner=runner)
    step = {
        "name": "slow",
        "type": "mcp_query",
        "connector": "flaky",
        "statement": "slow",
        "timeout": "200ms",
    }
    await execution.start(start(workflow(step)))
    state = await execution.wait(20)
    assert state.status == "failed"
    assert state.steps["slow"].error_code == "STEP_TIMEOUT"
    await runner.connector.close()


async def test_workflow_timeout_ends_in_timeout(store: EventStore, service: FlakyService) -> None:
    execution = Execution(f"wf_exec_{uuid.uuid4().hex}", store=store, runner=HTTPRunner(service.url))
    await execution.start(
        start(workflow({"name": "nap", "type": "wait", "duration": "10s"}, timeout="200ms"))
    )
    state = await execution.wait(20)
    assert state.status == "timeout"
    assert state.steps["nap"].status == "cancelled"
    assert event_types(store, execution.execution_id)[-1] == "execution.timed_out"
    row = store.get_execution(execution.execution_id)
    assert row is not None and row.status == "timeout"


async def test_recovery_fires_timers_and_never_reruns_completed_steps(
    store: EventStore, service: FlakyService
) -> None:
    runner = HTTPRunner(service.url)
    execution_id = f"wf_exec_{uuid.uuid4().hex}"
    key = uuid.uuid4().hex
    service.fail = 0
    definition = workflow(
        {
            "name": "first",
            "type": "mcp_query",
            "connector": "flaky",
            "statement": "get",
            "parameters": {"key": key},
        },
        {"name": "nap", "type": "wait", "duration": "300ms", "depends_on": ["first"]},
        {
            "name": "after",
            "type": "transform",
            "value": "{{ steps.first.output.attempt }}",
            "depends_on": ["nap"],
        },
    )
    crashed = Execution(execution_id, store=store, runner=runner)
    await crashed.start(start(definition))

    def timer_recorded() -> bool:
        return "timer.scheduled" in event_types(store, execution_id)

    deadline = time.monotonic() + 10
    while not timer_recorded() and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    crashed.detach()  # the host dies: in-flight work and armed timers are gone, the log stays

    revived = Execution(execution_id, store=store, runner=runner)
    assert revived.load().status == "running"
    await revived.resume()
    state = await revived.wait(20)
    assert state.status == "completed"
    assert state.output == {"final_result": 1}
    assert service.calls[key] == 1  # the completed step did not run again
    assert_contiguous(store, execution_id)
    await runner.connector.close()


async def test_in_flight_step_reruns_with_the_same_idempotency_key(
    store: EventStore, service: FlakyService
) -> None:
    service.slow_seconds = 0.5
    runner = HTTPRunner(service.url)
    execution_id = f"wf_exec_{uuid.uuid4().hex}"
    crashed = Execution(execution_id, store=store, runner=runner)
    await crashed.start(
        start(workflow({"name": "slow", "type": "mcp_query", "connector": "flaky", "statement": "slow"}))
    )
    deadline = time.monotonic() + 10
    while not service.keys and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    crashed.detach()  # dies while the call is in flight

    revived = Execution(execution_id, store=store, runner=runner)
    revived.load()
    await revived.resume()
    state = await revived.wait(20)
    assert state.status == "completed"
    assert runner.started == [f"{execution_id}/slow/1", f"{execution_id}/slow/1"]
    assert service.keys == runner.started  # the service can deduplicate on the key
    completions = [r for r in store.load(execution_id) if r.type == "step.completed"]
    assert len(completions) == 1  # at-least-once start, exactly one recorded result
    await runner.connector.close()


async def test_cancel_stops_running_work(store: EventStore, service: FlakyService) -> None:
    service.slow_seconds = 3
    runner = HTTPRunner(service.url)
    execution = Execution(f"wf_exec_{uuid.uuid4().hex}", store=store, runner=runner)
    await execution.start(
        start(workflow({"name": "slow", "type": "mcp_query", "connector": "flaky", "statement": "slow"}))
    )
    state = await execution.cancel("changed my mind")
    assert state.status == "cancelled" and state.steps["slow"].status == "cancelled"
    types = event_types(store, execution.execution_id)
    assert types[-2:] == ["execution.cancel_requested", "execution.cancelled"]
    replayed = [from_record(r) for r in store.load(execution.execution_id)]
    assert replayed[-1].reason == "changed my mind"  # type: ignore[union-attr]
    await runner.connector.close()


async def test_group_commit_batches_many_executions(store: EventStore, service: FlakyService) -> None:
    appender = BatchAppender(store)
    runner = HTTPRunner(service.url)
    service.fail = 0
    definition = workflow(
        {
            "name": "get",
            "type": "mcp_query",
            "connector": "flaky",
            "statement": "get",
            "parameters": {"key": "{{ execution.id }}"},
        },
        {
            "name": "shape",
            "type": "transform",
            "value": "{{ steps.get.output.attempt }}",
            "depends_on": ["get"],
        },
    )
    executions = [
        Execution(f"wf_exec_{uuid.uuid4().hex}", store=store, runner=runner, appender=appender)
        for _ in range(40)
    ]
    await asyncio.gather(*(e.start(start(definition)) for e in executions))
    states = await asyncio.gather(*(e.wait(30) for e in executions))
    assert [s.status for s in states] == ["completed"] * 40
    for execution in executions:
        assert_contiguous(store, execution.execution_id)
        row = store.get_execution(execution.execution_id)
        assert row is not None and row.status == "completed"
    appender.close()
    await runner.connector.close()


@contextlib.contextmanager
def another_writer(store: EventStore) -> Iterator[Callable[[], None]]:
    """Another process holds SQLite's write lock until the yielded ``release`` is called (at the end at
    the latest); appends meanwhile queue for the appender's writer thread. Nothing for other backends."""
    holder: sqlite3.Connection | None = None
    if isinstance(store, SQLiteEventStore):
        holder = sqlite3.connect(store.path, isolation_level=None, check_same_thread=False)
        holder.execute("BEGIN IMMEDIATE")

    def release() -> None:
        if holder is not None and holder.in_transaction:
            holder.execute("COMMIT")

    try:
        yield release
    finally:
        release()
        if holder is not None:
            holder.close()


def writer_threads() -> int:
    return sum(thread.name.startswith("append") for thread in threading.enumerate())


async def test_an_idle_appender_commits_on_the_loop_and_a_busy_store_never_blocks_it(
    store: EventStore,
) -> None:
    appender = BatchAppender(store)
    definition = parse_workflow(workflow({"name": "a", "type": "transform", "value": 1}))
    runner = HTTPRunner("http://127.0.0.1:9")
    threads_before = writer_threads()
    idle = Execution(f"wf_exec_{uuid.uuid4().hex}", store=store, runner=runner, appender=appender)
    assert (await idle.start(Start(now=datetime.now(UTC), workflow=definition))).status == "completed"
    sqlite = isinstance(store, SQLiteEventStore)  # the other backends always use the writer thread
    assert writer_threads() == threads_before + (0 if sqlite else 1)
    await asyncio.sleep(0.01)  # a quiet spell after that commit
    with another_writer(store) as release:
        queued = Execution(f"wf_exec_{uuid.uuid4().hex}", store=store, runner=runner, appender=appender)
        task = asyncio.create_task(queued.start(Start(now=datetime.now(UTC), workflow=definition)))
        began = time.monotonic()
        await asyncio.sleep(0.2)  # the loop runs on while the store is busy
        assert time.monotonic() - began < 1.0
        assert task.done() is not sqlite  # SQLite's append waits for the lock, off the loop
        release()
        assert (await asyncio.wait_for(task, 10)).status == "completed"
    assert writer_threads() == threads_before + 1
    assert_contiguous(store, queued.execution_id)
    appender.close()


async def test_group_commit_isolates_a_conflict(store: EventStore) -> None:
    appender = BatchAppender(store)
    definition = parse_workflow(workflow({"name": "a", "type": "transform", "value": 1}))
    winner = Execution(f"wf_exec_{uuid.uuid4().hex}", store=store, runner=HTTPRunner("http://127.0.0.1:9"))
    await winner.start(Start(now=datetime.now(UTC), workflow=definition))
    duplicate = [
        to_record(winner.execution_id, e) for e in (from_record(r) for r in store.load(winner.execution_id))
    ][:1]
    other = Execution(
        f"wf_exec_{uuid.uuid4().hex}", store=store, runner=HTTPRunner("http://127.0.0.1:9"), appender=appender
    )
    with another_writer(store) as release:  # so both appends wait in one batch
        asyncio.get_running_loop().call_later(0.2, release)
        results = await asyncio.gather(
            appender.append(winner.execution_id, duplicate, None),
            other.start(Start(now=datetime.now(UTC), workflow=definition)),
            return_exceptions=True,
        )
    assert isinstance(results[0], ConcurrencyConflict)
    assert not isinstance(results[1], BaseException) and results[1].status == "completed"
    assert_contiguous(store, other.execution_id)
    appender.close()


async def test_a_start_its_decision_finishes_is_recorded_whole_under_the_fence(store: EventStore) -> None:
    """The ingress records an execution of transforms itself: one append, terminal, fenced."""
    definition = workflow(
        {"name": "a", "type": "transform", "value": "{{ input.x + 1 }}"},
        {"name": "b", "type": "transform", "value": "{{ steps.a.output * 2 }}", "depends_on": ["a"]},
    )
    trigger = start(definition, input={"x": 1})
    assert trigger.workflow.inline
    store.partition_count(1)
    epoch = store.acquire_lease(0, "host@1", ttl=30) or 0
    recorded: list[tuple[str, list[str], str]] = []
    execution = Execution(
        f"wf_exec_{uuid.uuid4().hex}",
        store=store,
        runner=HTTPRunner("http://127.0.0.1:9"),
        fence=Fence(0, epoch),
        on_recorded=lambda eid, records, state: recorded.append(
            (eid, [r.type for r in records], state.status)
        ),
    )
    state = await execution.start_finished(trigger)
    assert state is not None and state.status == "completed"
    assert state.output == {"final_result": 4}
    types = event_types(store, execution.execution_id)
    assert types[0] == "execution.started" and types[-1] == "execution.completed"
    assert recorded == [(execution.execution_id, types, "completed")]
    assert_contiguous(store, execution.execution_id)


async def test_a_start_that_does_not_finish_at_once_records_nothing(store: EventStore) -> None:
    """A wait needs a host to keep its timer: nothing is recorded here."""
    execution = Execution(f"wf_exec_{uuid.uuid4().hex}", store=store, runner=HTTPRunner("http://127.0.0.1:9"))
    waiting = start(workflow({"name": "w", "type": "wait", "duration": "1s"}))
    assert not waiting.workflow.inline
    assert await execution.start_finished(waiting) is None
    assert store.load(execution.execution_id) == []


async def test_a_finished_start_under_a_stale_epoch_is_refused_as_not_owner(store: EventStore) -> None:
    store.partition_count(1)
    old = store.acquire_lease(0, "host@1", ttl=0.01) or 0
    time.sleep(0.05)
    assert (store.acquire_lease(0, "host@2", ttl=30) or 0) > old
    execution = Execution(
        f"wf_exec_{uuid.uuid4().hex}",
        store=store,
        runner=HTTPRunner("http://127.0.0.1:9"),
        fence=Fence(0, old),
    )
    with pytest.raises(NotOwner):
        await execution.start_finished(start(workflow({"name": "a", "type": "transform", "value": 1})))
    assert store.load(execution.execution_id) == []


def test_equal_definitions_share_one_object_in_a_host() -> None:
    """A thousand executions of one workflow hold one definition, not a thousand equal copies."""
    import pickle

    from orchestrator.runtime.definitions import SharedDefinitions

    shared = SharedDefinitions(capacity=2)
    definition = parse_workflow(workflow({"name": "a", "type": "transform", "value": 1}))
    copy = pickle.loads(pickle.dumps(definition))  # what the next start's call brings
    assert copy is not definition and copy == definition
    assert shared.intern(definition) is definition
    assert shared.intern(copy) is definition
    other = parse_workflow(workflow({"name": "a", "type": "transform", "value": 2}))
    assert shared.intern(other) is other
    shared.intern(parse_workflow(workflow({"name": "b", "type": "transform", "value": 3})))
    assert len(shared) == 2  # bounded: the least recently used went

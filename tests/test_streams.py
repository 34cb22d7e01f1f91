"""Live streams: the hosts' feeds, the ingress's fan-out, the SSE routes of both dialects, LLM progress.

The first part needs no Ray: the feed ring, an execution publishing into it, the stream logic (catch-up,
push, gaps, duplicates, stale progress, heartbeats) against a real SQLite store, and the providers'
streaming (the OpenAI client against the scripted OpenAI-compatible server). The rest runs the real
server over HTTP: the session server (auth off, pooled hosts), and one of this module's own with API
keys, dedicated placement and a one-second heartbeat, for tenancy, heartbeats and dedicated hosts.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import subprocess
import sys
import uuid
from collections import deque
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from agents.llm.base import LLMRequest, LLMResult
from agents.llm.offline import OfflineProvider, text_chunks
from agents.llm.openai_provider import OpenAIProvider
from orchestrator.core.decide import RunStep, Start
from orchestrator.core.errors import StepError
from orchestrator.core.events import EventRecord
from orchestrator.core.state import ExecutionState
from orchestrator.core.validation import parse_workflow
from orchestrator.runtime.execution import Execution
from orchestrator.runtime.feed import About, FeedEntry, LiveFeed
from orchestrator.server.routing import PartitionRouter
from orchestrator.server.streams import KEEP_ALIVE, StreamHub, Subscription, execution_stream
from orchestrator.store import open_store
from orchestrator.store.base import EventStore
from tests.fixtures_server import ServerInfo
from tests.openai_server import ScriptedOpenAI
from tests.ports import free_port
from tests.processes import server_process

V1 = "/api/v1/workflows"
EAI = "/api/eai/v3/orchestrate"
USER = {"id": "streamer"}
T0 = datetime(2026, 1, 1, tzinfo=UTC)


# ----------------------------------------------------------------------------------- the feed ring


def record(seq: int, kind: str = "step.started", step: str | None = "s", **payload: Any) -> EventRecord:
    return EventRecord(execution_id="e1", seq=seq, type=kind, step=step, payload=payload, recorded_at=T0)


def started_state(status: str = "running") -> ExecutionState:
    state = ExecutionState("e1", status=status, tenant_id="acme", workflow_id="wf-id")
    return state


async def test_the_feed_hands_out_what_was_published_after_a_cursor() -> None:
    feed = LiveFeed()
    attach = await feed.wait(None, None, 5.0)  # attaching answers at once, with no entries
    assert attach.entries == [] and attach.cursor == 0 and not attach.lost
    feed.publish("e1", [record(1, "execution.started", None), record(2)], started_state())
    batch = await feed.wait(attach.incarnation, attach.cursor, 5.0)
    assert [entry.record.seq for entry in batch.entries if entry.record] == [1, 2]
    assert batch.cursor == 2 and not batch.lost
    first, second = batch.entries
    assert first.about is not None and first.about.tenant_id == "acme" and first.about.status == "running"
    assert second.about is None  # only execution.* records say what the lifecycle stream filters on


async def test_a_waiting_poller_wakes_when_something_is_published() -> None:
    feed = LiveFeed()
    waiting = asyncio.create_task(feed.wait(feed.incarnation, 0, 30.0))
    await asyncio.sleep(0)
    assert not waiting.done()
    feed.progress("e1", "s", 1, "Hel")
    batch = await waiting
    assert [(e.kind, e.delta) for e in batch.entries] == [("progress", "Hel")]


async def test_progress_is_merged_only_while_no_poller_has_taken_it() -> None:
    feed = LiveFeed()
    feed.progress("e1", "s", 1, "Hel")
    feed.progress("e1", "s", 1, "lo")
    feed.progress("e1", "s", 2, "!")  # another attempt: an entry of its own
    batch = await feed.wait(feed.incarnation, 0, 0.0)
    assert [(e.attempt, e.delta) for e in batch.entries] == [(1, "Hello"), (2, "!")]
    feed.progress("e1", "s", 2, "?")  # the previous one was handed out: not merged into it
    later = await feed.wait(feed.incarnation, batch.cursor, 0.0)
    assert [e.delta for e in later.entries] == ["?"]
    assert [e.delta for e in (await feed.wait(feed.incarnation, 0, 0.0)).entries] == ["Hello", "!", "?"]


async def test_a_cursor_of_another_incarnation_or_off_the_ring_is_lost() -> None:
    feed = LiveFeed(size=3)
    await feed.wait(None, None, 0.0)  # polled: every record is kept
    for seq in range(1, 6):
        feed.publish("e1", [record(seq)], started_state())
    assert (await feed.wait("previous-incarnation", 5, 0.0)).lost
    assert (await feed.wait(feed.incarnation, 1, 0.0)).lost  # entries 2 and 3 fell off the ring
    kept = await feed.wait(feed.incarnation, 2, 0.0)  # 3, 4, 5 are still there
    assert not kept.lost and [e.cursor for e in kept.entries] == [3, 4, 5]
    assert (await feed.wait(None, 0, 0.0)).entries == kept.entries  # a relay starting takes what is left


async def test_old_entries_leave_the_ring_and_a_poller_that_needed_them_hears_so() -> None:
    feed = LiveFeed(keep_seconds=-1.0, unwatched_keep_seconds=-1.0)  # everything but the newest is too old
    await feed.wait(None, None, 0.0)
    feed.publish("e1", [record(1), record(2)], started_state())
    assert (await feed.wait(feed.incarnation, 0, 0.0)).lost
    newest = await feed.wait(feed.incarnation, 1, 0.0)
    assert not newest.lost and [e.cursor for e in newest.entries] == [2]


class Instant:
    """A step runner whose steps never run (only transforms, which need none, are used here)."""

    async def run(self, state: ExecutionState, command: RunStep) -> Any:
        raise AssertionError(f"no step should need a runner: {command.step}")


async def test_a_feed_nobody_polls_keeps_only_a_few_seconds_of_records() -> None:
    """Without open streams a host keeps little (memory per execution), and keeps the usual history
    once something polls it."""
    feed = LiveFeed(keep_seconds=60.0, unwatched_keep_seconds=0.05)
    feed.publish("e1", [record(1, "execution.started", None)], started_state())
    await asyncio.sleep(0.1)
    feed.publish("e1", [record(2, "execution.cancel_requested", None), record(3)], started_state())
    everything = await feed.wait(None, 0, 0.0)  # a poller attaching takes the whole ring
    # the first went with time; of the rest only execution.* records are kept while nobody polls (an
    # execution stream reads the store when it opens and when its poller attaches)
    assert [entry.record.seq for entry in everything.entries if entry.record] == [2]
    await asyncio.sleep(0.1)  # polled now: the older entry stays
    feed.publish("e1", [record(4)], started_state())
    batch = await feed.wait(None, 0, 0.0)
    assert [entry.record.seq for entry in batch.entries if entry.record] == [2, 4]
    idle = LiveFeed(keep_seconds=60.0, unwatched_keep_seconds=0.05)
    idle.publish("e1", [record(1, "execution.started", None)], started_state())
    await asyncio.sleep(0.1)
    idle.trim()  # what the host does every lease round: an idle feed lets go of its last burst
    assert idle._ring == deque() and idle.cursor == 1


async def test_an_execution_publishes_every_committed_record_in_order(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'feed.db'}")
    try:
        feed = LiveFeed()
        await feed.wait(None, None, 0.0)  # a stream is open somewhere: the feed keeps every record
        execution = Execution("wf_exec_feed", store=store, runner=Instant(), on_recorded=feed.publish)
        workflow = parse_workflow(
            {
                "metadata": {"name": "fed"},
                "spec": {
                    "steps": [
                        {"name": "a", "type": "transform", "value": 1},
                        {"name": "b", "type": "transform", "value": 2, "depends_on": ["a"]},
                    ]
                },
            }
        )
        start = Start(now=datetime.now(UTC), workflow=workflow, input={}, user={"id": 1}, tenant_id="acme")
        state = await execution.start(start)
        assert state.status == "completed"
        batch = await feed.wait(feed.incarnation, 0, 0.0)
        logged = store.load("wf_exec_feed")
        assert [e.record for e in batch.entries] == logged
        lifecycle = [e.about for e in batch.entries if e.about is not None]
        assert [(a.tenant_id, a.workflow_name) for a in lifecycle] == [("acme", "fed")] * len(lifecycle)
        assert [a.status for a in lifecycle] == ["running", "completed"]  # each as of its own record
    finally:
        store.close()


# ------------------------------------------------------------------------ the stream logic, no Ray


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EventStore]:
    opened = open_store(f"sqlite:///{tmp_path / 'streams.db'}")
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
async def hub(store: EventStore) -> AsyncIterator[StreamHub]:
    """A hub over a store no host leases from: nothing is polled, the tests push by hand."""
    made = StreamHub(PartitionRouter(store, "no-such-namespace", 4), max_streams=3)
    try:
        yield made
    finally:
        made.stop()


def push(hub: StreamHub, *entries: FeedEntry) -> None:
    hub._dispatch(list(entries))


def pushed(seq: int, kind: str = "step.started", **payload: Any) -> FeedEntry:
    return FeedEntry(seq, "record", "e1", record=record(seq, kind, **payload))


def progress(delta: str, attempt: int = 1) -> FeedEntry:
    return FeedEntry(0, "progress", "e1", step="s", attempt=attempt, delta=delta)


def text_of(r: EventRecord) -> str:
    return f"{r.seq}:{r.type}"


def open_stream(hub: StreamHub, store: EventStore, *, after: int = 0, heartbeat: float = 60.0) -> Any:
    return execution_stream(
        hub,
        store,
        "e1",
        after=after,
        finished_at=None,
        render=text_of,
        render_progress=lambda entry: f"progress:{entry.delta}",
        heartbeat=heartbeat,
    )


async def test_a_stream_reads_the_store_then_takes_pushes_without_gap_or_duplicate(
    store: EventStore, hub: StreamHub
) -> None:
    store.append("e1", [record(1, "execution.started", None), record(2)])
    stream = open_stream(hub, store)
    assert [await anext(stream), await anext(stream)] == ["1:execution.started", "2:step.started"]
    assert hub.open_streams == 1

    store.append("e1", [record(3, "timer.scheduled")])
    push(hub, pushed(3, "timer.scheduled"))
    assert await anext(stream) == "3:timer.scheduled"

    # 4 is never pushed (a missed push): 5 reveals the gap and the store fills it
    store.append("e1", [record(4, "timer.fired"), record(5, "step.started")])
    push(hub, pushed(5))
    assert [await anext(stream), await anext(stream)] == ["4:timer.fired", "5:step.started"]

    # a duplicate is dropped; progress of the running attempt passes
    push(hub, pushed(5), progress("Hel"), progress("lo"))
    assert [await anext(stream), await anext(stream)] == ["progress:Hel", "progress:lo"]

    # once the attempt ended, its late progress is stale
    store.append("e1", [record(6, "step.completed", attempt=1)])
    push(hub, pushed(6, "step.completed", attempt=1), progress("late"))
    assert await anext(stream) == "6:step.completed"

    # a resync (a host restarted, say) re-reads the store: the terminal event ends the stream
    store.append("e1", [record(7, "execution.completed", None)])
    hub._resync_all(lost=True)
    assert await anext(stream) == "7:execution.completed"
    with pytest.raises(StopAsyncIteration):
        await anext(stream)
    assert hub.open_streams == 0


async def test_an_idle_stream_sends_heartbeats_and_rechecks_the_store(
    store: EventStore, hub: StreamHub
) -> None:
    store.append("e1", [record(1, "execution.started", None)])
    stream = open_stream(hub, store, heartbeat=0.05)
    assert await anext(stream) == "1:execution.started"
    assert await anext(stream) == KEEP_ALIVE
    store.append("e1", [record(2)])  # recorded, but the push never comes (another cluster's host)
    assert await anext(stream) == "2:step.started"
    await stream.aclose()
    assert hub.open_streams == 0


async def test_a_stream_resumes_after_its_cursor(store: EventStore, hub: StreamHub) -> None:
    store.append("e1", [record(1, "execution.started", None), record(2), record(3, "execution.failed", None)])
    stream = open_stream(hub, store, after=1)
    assert [text async for text in stream] == ["2:step.started", "3:execution.failed"]


async def test_streams_are_bounded(store: EventStore, hub: StreamHub) -> None:
    streams = [open_stream(hub, store, heartbeat=0.05) for _ in range(3)]
    for stream in streams:
        assert await anext(stream) == KEEP_ALIVE  # subscribed (the log is empty)
    with pytest.raises(Exception, match="ORCH_STREAM_MAX_OPEN") as refused:
        hub.admit()
    assert getattr(refused.value, "code", None) == "TOO_MANY_STREAMS"
    for stream in streams:
        await stream.aclose()
    hub.admit()


async def test_a_lifecycle_stream_takes_what_was_recorded_since_it_opened_and_nothing_older(
    hub: StreamHub,
) -> None:
    """A host attached after the stream opened hands over its whole ring: the records made between the
    opening and that attach reach the stream (it cannot re-read the store), older ones do not."""
    about = About("acme", "wf", None, "completed")
    subscription = hub.open_lifecycle(lambda entry: True)
    now = datetime.now(UTC)
    old = dataclasses.replace(record(1, "execution.completed", None), recorded_at=now - timedelta(seconds=30))
    new = dataclasses.replace(record(2, "execution.completed", None), recorded_at=now)
    push(
        hub,
        FeedEntry(1, "record", "e0", record=old, about=about),
        FeedEntry(2, "record", "e1", record=new, about=about),
    )
    inbox = await subscription.next(1.0)
    assert inbox is not None and [entry.execution_id for entry in inbox.entries] == ["e1"]
    hub.close(subscription)


async def test_what_the_ingress_recorded_itself_reaches_its_streams_once(hub: StreamHub) -> None:
    """An execution of transforms finishes in the ingress (no host): this replica's streams get its
    records at once, and the same records relayed back by the partition's owner (for other replicas)
    are not sent twice."""
    now = datetime.now(UTC)
    records = [
        dataclasses.replace(record(1, "execution.started", None), recorded_at=now),
        dataclasses.replace(record(2, "execution.completed", None), recorded_at=now),
    ]
    lifecycle = hub.open_lifecycle(lambda entry: True)
    execution = hub.open_execution("e1")
    hub.recorded("e1", records, started_state("completed"))
    relayed = LiveFeed()
    relayed.publish("e1", records, started_state("completed"))
    push(hub, *(await relayed.wait(relayed.incarnation, 0, 0.0)).entries)
    inbox = await lifecycle.next(1.0)
    assert inbox is not None
    assert [(e.record.seq, e.about.status) for e in inbox.entries if e.record and e.about] == [
        (1, "running"),
        (2, "completed"),
    ]
    direct = await execution.next(1.0)
    assert direct is not None and [e.record.seq for e in direct.entries if e.record][:2] == [1, 2]
    hub.close(lifecycle)
    hub.close(execution, "e1")


async def test_a_slow_streams_inbox_overflows_into_a_resync() -> None:
    inbox = Subscription(max_items=2)
    for seq in (1, 2, 3):
        inbox.push(pushed(seq))
    got = await inbox.next(1.0)
    assert got is not None and got.entries == [] and got.resync and got.lost
    assert await inbox.next(0.01) is None


# ------------------------------------------------------------------------- providers that stream


async def test_the_offline_provider_streams_its_answer_in_chunks() -> None:
    request = LLMRequest(
        prompt="Summarise",
        context={"search": {"flights": [{"airline": "AF", "price": 700, "origin": "SFO"}]}},
    )
    items = [item async for item in OfflineProvider().stream(request)]
    deltas, result = items[:-1], items[-1]
    assert isinstance(result, LLMResult) and len(deltas) > 1
    assert (
        "".join(str(d) for d in deltas) == result.output == (await OfflineProvider().complete(request)).output
    )
    assert ["".join(text_chunks(t)) for t in ("", " a  b\n", "x")] == ["", " a  b\n", "x"]


async def test_the_openai_provider_streams_as_the_api_does(openai_stub: ScriptedOpenAI) -> None:
    provider = OpenAIProvider(base_url=openai_stub.base_url, model="scripted-model")
    try:
        openai_stub.script("Paris in June: book early, the trains fill up.", {"verdict": "go"}, 429)
        items = [item async for item in provider.stream(LLMRequest(prompt="Paris?"))]
        assert openai_stub.last_request["stream"] is True
        deltas, result = items[:-1], items[-1]
        assert isinstance(result, LLMResult) and len(deltas) > 2
        assert "".join(str(d) for d in deltas) == result.output
        assert result.output == "Paris in June: book early, the trains fill up."

        structured = LLMRequest(prompt="verdict?", output_schema={"type": "object"})
        *_, parsed = [item async for item in provider.stream(structured)]
        assert isinstance(parsed, LLMResult) and parsed.output == {"verdict": "go"}

        with pytest.raises(StepError) as failed:
            _ = [item async for item in provider.stream(LLMRequest(prompt="again"))]
        assert failed.value.code == "LLM_RATE_LIMITED"
    finally:
        await provider.close()


# --------------------------------------------------------------------------- SSE over real HTTP


@dataclass
class Message:
    event: str | None = None
    id: str | None = None
    data: Any = None
    comment: str | None = None


def read_sse(response: httpx.Response) -> Iterator[Message]:
    """Server-sent events as the spec parses them; comments come out as messages of their own."""
    fields: dict[str, str] = {}
    for line in response.iter_lines():
        if not line:
            if fields:
                data = fields.get("data")
                yield Message(
                    event=fields.get("event"),
                    id=fields.get("id"),
                    data=None if data is None else json.loads(data),
                )
                fields = {}
            continue
        if line.startswith(":"):
            yield Message(comment=line[1:].strip())
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        fields[name] = f"{fields[name]}\n{value}" if name == "data" and name in fields else value


def durable(messages: list[Message]) -> list[Message]:
    return [m for m in messages if m.id is not None]


def wf(*steps: dict[str, Any], name: str = "streamed") -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"steps": list(steps)}}


NAPPING = wf(
    {"name": "a", "type": "transform", "value": 1},
    {"name": "nap", "type": "wait", "duration": 3, "depends_on": ["a"]},
    {"name": "b", "type": "transform", "value": "{{ steps.a.output }}", "depends_on": ["nap"]},
)


def start(client: httpx.Client, workflow: dict[str, Any], **extra: Any) -> str:
    response = client.post(f"{V1}/execute", json={"workflow": workflow, "user": USER, "async": True, **extra})
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def follow(
    client: httpx.Client, path: str, *, headers: dict[str, str] | None = None, stop_at: int | None = None
) -> list[Message]:
    """Every message of a stream until it ends (or until the event with id ``stop_at``, then hang up)."""
    got: list[Message] = []
    with client.stream("GET", path, headers=headers) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        for message in read_sse(response):
            got.append(message)
            if stop_at is not None and message.id == str(stop_at):
                break
    return got


@pytest.mark.ray
def test_a_running_execution_streams_every_event_in_order_and_the_stream_ends(api: httpx.Client) -> None:
    execution_id = start(api, NAPPING)
    got: list[Message] = []
    with api.stream("GET", f"{V1}/executions/{execution_id}/stream") as response:
        assert response.status_code == 200 and response.headers["cache-control"] == "no-cache"
        for message in read_sse(response):
            got.append(message)
            if message.event == "timer.scheduled":
                # live: the stream is under way while the execution still naps
                now = api.get(f"{V1}/executions/{execution_id}")
                assert now.status_code == 200 and now.json()["status"] == "running", now.text
    # pushed: the 3 s nap ended well before a 15 s heartbeat (and its store re-check) would have come
    assert not any(m.comment for m in got)
    events = durable(got)
    assert [int(m.id or 0) for m in events] == list(range(1, len(events) + 1))
    assert events[-1].event == "execution.completed"
    assert [m.event for m in events] == [m.data["type"] for m in events]
    assert [m.data for m in events] == api.get(f"{V1}/executions/{execution_id}/events").json()["events"]


@pytest.mark.ray
def test_a_reconnect_with_last_event_id_yields_exactly_the_rest(api: httpx.Client) -> None:
    execution_id = start(api, NAPPING)
    path = f"{V1}/executions/{execution_id}/stream"
    first = durable(follow(api, path, stop_at=4))  # hang up mid-way, during the nap
    assert [m.id for m in first] == ["1", "2", "3", "4"]
    rest = durable(follow(api, path, headers={"Last-Event-ID": "4"}))
    log = api.get(f"{V1}/executions/{execution_id}/events").json()["events"]
    assert [m.data for m in first + rest] == log
    assert rest[0].id == "5" and rest[-1].event == "execution.completed"


@pytest.mark.ray
def test_after_starts_later_and_last_event_id_wins_over_it(api: httpx.Client) -> None:
    done = api.post(
        f"{V1}/execute", json={"workflow": wf({"name": "a", "type": "transform", "value": 1}), "user": USER}
    ).json()
    path = f"{V1}/executions/{done['id']}/stream"
    log = api.get(f"{V1}/executions/{done['id']}/events").json()["events"]
    assert [m.data for m in durable(follow(api, f"{path}?after=2"))] == log[2:]
    assert [m.data for m in durable(follow(api, f"{path}?after=1", headers={"Last-Event-ID": "3"}))] == log[
        3:
    ]
    assert follow(api, f"{path}?after={len(log)}") == []  # finished and nothing after: ends at once
    bad = api.get(path, headers={"Last-Event-ID": "soon"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "INVALID_REQUEST"
    assert api.get(f"{path}?after=-1").status_code == 400


@pytest.mark.ray
def test_the_eai_stream_speaks_camelcase(api: httpx.Client) -> None:
    execution_id = start(api, NAPPING)
    events = durable(follow(api, f"{EAI}/executions/{execution_id}/stream"))
    log = api.get(f"{EAI}/executions/{execution_id}/events").json()
    assert log["executionId"] == execution_id and [m.data for m in events] == log["events"]
    by_type = {m.event: m.data for m in events}
    assert by_type["execution.started"]["data"]["tenantId"] == "default"
    assert by_type["timer.scheduled"]["stepId"] == "nap"
    assert {"timerId", "fireAt"} <= set(by_type["timer.scheduled"]["data"])
    assert "step" not in by_type["timer.scheduled"] and events[-1].event == "execution.completed"


@pytest.mark.ray
def test_unknown_executions_are_404_in_both_dialects(api: httpx.Client) -> None:
    for path in (
        f"{V1}/executions/wf_exec_nope/stream",
        f"{EAI}/executions/wf_exec_nope/stream",
        f"{EAI}/executions/wf_exec_nope/events",
        f"{V1}/executions/plan_0123/stream",
    ):
        response = api.get(path)
        assert response.status_code == 404, (path, response.text)
        assert response.json()["error"]["code"] == "EXECUTION_NOT_FOUND"


def lifecycle_until_live(messages: Iterator[Message]) -> None:
    """Read a lifecycle stream up to its ``: live`` comment: from then on nothing recorded is missed."""
    for message in messages:
        if message.comment == "live":
            return
    raise AssertionError("the lifecycle stream ended before it was live")


def lifecycle_events(messages: Iterator[Message], execution_id: str) -> list[Message]:
    """Lifecycle messages until ``execution_id``'s terminal one (keep-alives left out)."""
    got: list[Message] = []
    for message in messages:
        if message.event is None:
            continue
        got.append(message)
        if message.data["execution_id"] == execution_id and message.event == "execution.completed":
            return got
    raise AssertionError("the lifecycle stream ended")


@pytest.mark.ray
def test_the_lifecycle_stream_follows_new_executions_filtered(api: httpx.Client, server: ServerInfo) -> None:
    name = f"lifecycle-{uuid.uuid4().hex[:8]}"
    with httpx.Client(base_url=server.base_url, timeout=60) as watcher:
        everything = watcher.stream("GET", f"{V1}/executions/stream", params={"workflow_name": name})
        finished = watcher.stream(
            "GET", f"{V1}/executions/stream", params={"workflow_name": name, "status": "completed"}
        )
        with everything as all_response, finished as done_response:
            assert all_response.status_code == 200 and done_response.status_code == 200
            all_messages, done_messages = read_sse(all_response), read_sse(done_response)
            lifecycle_until_live(all_messages)
            lifecycle_until_live(done_messages)
            api.post(
                f"{V1}/execute",
                json={"workflow": wf({"name": "other", "type": "transform", "value": 0}), "user": USER},
            )
            ran = api.post(
                f"{V1}/execute",
                json={
                    "workflow": wf({"name": "a", "type": "transform", "value": 1}, name=name),
                    "user": USER,
                },
            ).json()
            seen = lifecycle_events(all_messages, ran["id"])
            completed = lifecycle_events(done_messages, ran["id"])
    assert [(m.event, m.data["execution_id"]) for m in seen] == [
        ("execution.started", ran["id"]),
        ("execution.completed", ran["id"]),
    ]
    assert (
        seen[0].id is None and seen[0].data["workflow_name"] == name and seen[0].data["status"] == "running"
    )
    assert seen[1].data["data"]["output"] == {"final_result": 1} and seen[1].data["status"] == "completed"
    assert [m.event for m in completed] == ["execution.completed"]


def progress_of(messages: list[Message], step: str) -> tuple[str, int, Any]:
    """The deltas of ``step`` joined, how many messages brought them, and its recorded output; checks
    that every delta came before the ``step.completed`` and carried no id."""
    deltas: list[str] = []
    for message in messages:
        if message.event == "step.progress" and message.data["step"] == step:
            assert message.id is None
            deltas.append(message.data["delta"])
        if message.event == "step.completed" and message.data["step"] == step:
            return "".join(deltas), len(deltas), message.data["data"]["output"]
    raise AssertionError(f"no step.completed of {step!r}")


CONTEXT_STEP = {
    "name": "found",
    "type": "transform",
    "depends_on": ["nap"],
    "value": {"flights": [{"airline": "AF", "price": 700, "origin": "SFO", "destination": "CDG"}]},
}


@pytest.mark.ray
def test_llm_progress_arrives_before_the_step_completes_offline(api: httpx.Client) -> None:
    execution_id = start(
        api,
        wf(
            {"name": "nap", "type": "wait", "duration": 3},
            CONTEXT_STEP,
            {"name": "tell", "type": "llm", "prompt": "Summarise the flights", "depends_on": ["found"]},
        ),
    )
    messages = follow(api, f"{V1}/executions/{execution_id}/stream")
    text, count, output = progress_of(messages, "tell")
    assert count >= 1 and text == output and "AF" in output
    log = api.get(f"{V1}/executions/{execution_id}/events").json()["events"]
    assert [m.data for m in durable(messages)] == log  # progress is never stored
    assert all(event["type"] != "step.progress" for event in log)


@pytest.mark.ray
def test_llm_progress_streams_from_an_openai_compatible_endpoint(
    api: httpx.Client, server: ServerInfo
) -> None:
    answer = "Take the morning flight to Paris; the hotel near the Eiffel Tower fits the budget."
    server.openai.reset()
    server.openai.script(answer)
    execution_id = start(
        api,
        wf(
            {"name": "nap", "type": "wait", "duration": 3},
            {
                "name": "ask",
                "type": "llm",
                "agent": "scripted-llm",
                "prompt": "Advise",
                "depends_on": ["nap"],
            },
        ),
    )
    messages = follow(api, f"{V1}/executions/{execution_id}/stream")
    text, count, output = progress_of(messages, "ask")
    assert output == answer and text == answer and count >= 1
    assert server.openai.requests[-1]["stream"] is True


# ------------------------------------------- a server of its own: API keys, dedicated hosts, 1 s beats


A, B = "stream-tenant-a", "stream-tenant-b"


@dataclass
class KeyedServer:
    base_url: str
    keys: dict[str, str]

    def client(self, who: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.keys[who]}"} if who else {}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=60)


def create_key(data_dir: Path, tenant: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ORCH_", "RAY_ADDRESS"))}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "orchestrator.server.cli",
            "keys",
            "create",
            "--tenant",
            tenant,
            "--data-dir",
            str(data_dir),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()[-1]


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KeyedServer]:
    data_dir = tmp_path_factory.mktemp("streams-keyed")
    keys = {tenant: create_key(data_dir, tenant) for tenant in (A, B)}
    port = free_port()
    env = {
        "ORCH_AUTH": "api_key",
        "ORCH_PLACEMENT": "dedicated",
        "ORCH_HOSTS_PER_NODE": "1",
        "ORCH_STREAM_HEARTBEAT_SECONDS": "1",
    }
    with server_process(port, data_dir, "orchestrator-streams", env=env):
        yield KeyedServer(base_url=f"http://127.0.0.1:{port}", keys=keys)


@pytest.mark.ray
def test_a_dedicated_execution_streams_every_event_too(keyed: KeyedServer) -> None:
    with keyed.client(A) as client:
        execution_id = start(client, NAPPING)
        events = durable(follow(client, f"{V1}/executions/{execution_id}/stream"))
        log = client.get(f"{V1}/executions/{execution_id}/events").json()["events"]
    assert log[0]["data"]["placement"] == "dedicated"
    assert [m.data for m in events] == log and events[-1].event == "execution.completed"


@pytest.mark.ray
def test_another_tenants_execution_is_404_and_a_stream_needs_a_key(keyed: KeyedServer) -> None:
    sleepy = wf({"name": "nap", "type": "wait", "duration": 600}, name="stream-secret")
    with keyed.client(A) as a, keyed.client(B) as b, keyed.client(None) as nobody:
        execution_id = start(a, sleepy)
        for path in (
            f"{V1}/executions/{execution_id}/stream",
            f"{EAI}/executions/{execution_id}/stream",
            f"{EAI}/executions/{execution_id}/events",
        ):
            response = b.get(path)
            assert response.status_code == 404, (path, response.text)
            assert response.json()["error"]["code"] == "EXECUTION_NOT_FOUND"
            assert nobody.get(path).status_code == 401
        assert nobody.get(f"{V1}/executions/stream").status_code == 401

        # its own tenant follows it: a heartbeat comes while it naps, the cancellation ends the stream
        got: list[Message] = []
        with a.stream("GET", f"{V1}/executions/{execution_id}/stream") as response:
            assert response.status_code == 200
            for message in read_sse(response):
                got.append(message)
                if message.comment == "keep-alive" and not any(m.comment for m in got[:-1]):
                    assert a.post(f"{V1}/executions/{execution_id}/cancel").status_code == 202
    assert any(m.comment == "keep-alive" for m in got)
    assert durable(got)[-1].event == "execution.cancelled"


@pytest.mark.ray
def test_the_lifecycle_stream_keeps_to_its_tenant(keyed: KeyedServer) -> None:
    name = f"tenanted-{uuid.uuid4().hex[:8]}"
    quick = wf({"name": "a", "type": "transform", "value": 1}, name=name)
    with (
        keyed.client(A) as a,
        keyed.client(B) as b,
        a.stream("GET", f"{V1}/executions/stream", params={"workflow_name": name}) as response,
    ):
        assert response.status_code == 200
        messages = read_sse(response)
        lifecycle_until_live(messages)
        theirs = b.post(f"{V1}/execute", json={"workflow": quick, "user": USER}).json()
        mine = a.post(f"{V1}/execute", json={"workflow": quick, "user": USER}).json()
        seen = lifecycle_events(messages, mine["id"])
    assert theirs["tenant_id"] == B and mine["tenant_id"] == A
    assert {m.data["execution_id"] for m in seen} == {mine["id"]}
    assert all(m.data["tenant_id"] == A for m in seen)

"""Live streams (server-sent events) of executions, in both dialects.

Routes
    GET /api/v1/workflows/executions/stream                      the lifecycle events (``execution.*``) of
                                                                 every execution the caller may list, live;
                                                                 ``status`` (repeatable) and ``workflow_name``
                                                                 filter them
    GET /api/v1/workflows/executions/{id}/stream                 one execution's events, from the start or
                                                                 after ``Last-Event-ID`` / ``?after=<seq>``,
                                                                 ending after its terminal event
    GET /api/eai/v3/orchestrate/executions/{executionId}/stream  the same in the EAI dialect (camelCase)
    GET /api/eai/v3/orchestrate/executions/{executionId}/events  the EAI event log as JSON, each event as its
                                                                 stream renders it

An execution stream sends one message per recorded event, ``id: <seq>``, ``event: <type>``, ``data:`` the
event as ``/events`` renders it, so a client that reconnects with ``Last-Event-ID`` resumes exactly after
the last event it got. While an ``llm`` (or ``ai_chat``) step runs it also sends ``event: step.progress``
messages without an ``id:``: ``{"step", "attempt", "delta"}`` (EAI: ``stepId``), the text as the model
produces it, never stored; the deltas of one attempt joined are the text its ``step.completed`` holds.
A stream with nothing to say sends the comment ``: keep-alive`` every ``ORCH_STREAM_HEARTBEAT_SECONDS``.

Tenancy and auth are those of ``GET`` of the execution: another tenant's execution is 404 for a member
key. Each ingress replica holds at most ``ORCH_STREAM_MAX_OPEN`` streams (503 TOO_MANY_STREAMS beyond).
How the events get here: :mod:`orchestrator.server.streams`.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Generic, TypeVar, cast

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import StreamingResponse
from pydantic.alias_generators import to_camel

from orchestrator.core.events import Event, EventRecord, from_record
from orchestrator.core.state import TERMINAL_STATUSES
from orchestrator.runtime.feed import FeedEntry
from orchestrator.server.api.deps import (
    authenticate,
    engine_of,
    execution_not_found,
    maybe_service,
    provide,
    require_execution_id,
)
from orchestrator.server.api.v1 import Status
from orchestrator.server.auth import Principal, acting_tenant, may_see
from orchestrator.server.streams import StreamHub, execution_stream, lifecycle_stream, sse

v1_router = APIRouter(prefix="/api/v1/workflows", tags=["workflows"], dependencies=[Depends(authenticate)])
eai_router = APIRouter(
    prefix="/api/eai/v3/orchestrate", tags=["orchestrate"], dependencies=[Depends(authenticate)]
)

MEDIA_TYPE = "text/event-stream"
# No caching, and no buffering by a proxy in between (nginx honours X-Accel-Buffering).
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
_STREAM_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "server-sent events (text/event-stream)",
        "content": {MEDIA_TYPE: {"schema": {"type": "string"}}},
    },
    503: {"description": "TOO_MANY_STREAMS: this replica holds ORCH_STREAM_MAX_OPEN streams"},
}
T = TypeVar("T")
MAX_SEQ = 2**62  # past any log, within what both stores' integers hold
_AFTER = Query(
    default=0, ge=0, le=MAX_SEQ, description="start after this seq (Last-Event-ID wins when both are sent)"
)
_LAST_EVENT_ID = Header(
    default=None, ge=0, le=MAX_SEQ, description="the id (seq) of the last event received: resume after it"
)


def hub_of(request: Request) -> StreamHub:
    """This replica's stream hub, made on the first stream (it polls the hosts only while streams are
    open, so a replica that never streams never makes one)."""
    hub = maybe_service("streams")
    if hub is None:
        engine = engine_of(request)
        hub = StreamHub(engine.router, max_streams=engine.settings.stream_max_open)
        engine.listeners.append(hub.recorded)
        provide(streams=hub)
    return cast(StreamHub, hub)


# ------------------------------------------------------------------------------------------ rendering


def v1_event(event: Event) -> dict[str, Any]:
    return event.public()


def eai_event(event: Event) -> dict[str, Any]:
    """An event in the EAI dialect: the v1 shape with camelCase keys (``stepId``; the names of ``data``'s
    own fields, never the keys of the values they hold, which are the user's)."""
    public = event.public()
    return {
        "seq": public["seq"],
        "type": public["type"],
        "timestamp": public["timestamp"],
        "stepId": public["step"],
        "data": {to_camel(key): value for key, value in public["data"].items()},
    }


class _Once(Generic[T]):
    """A renderer that renders each object once, however many streams send it: the hub hands the same
    record (or progress entry) to every stream that wants it, so a fan-out to hundreds of clients
    validates and encodes it once. Remembers the last ``size`` objects, by identity."""

    def __init__(self, render: Callable[[T], str], *, size: int = 4096) -> None:
        self._render = render
        self._size = size
        self._done: OrderedDict[int, tuple[T, str]] = OrderedDict()

    def __call__(self, item: T) -> str:
        known = self._done.get(id(item))
        if known is not None and known[0] is item:
            return known[1]
        text = self._render(item)
        self._done[id(item)] = (item, text)  # the item is kept: its id cannot be reused meanwhile
        if len(self._done) > self._size:
            self._done.popitem(last=False)
        return text


@_Once
def _v1_message(record: EventRecord) -> str:
    return sse(record.type, v1_event(from_record(record)), event_id=record.seq)


@_Once
def _eai_message(record: EventRecord) -> str:
    return sse(record.type, eai_event(from_record(record)), event_id=record.seq)


@_Once
def _v1_progress(entry: FeedEntry) -> str:
    return sse("step.progress", {"step": entry.step, "attempt": entry.attempt, "delta": entry.delta})


@_Once
def _eai_progress(entry: FeedEntry) -> str:
    return sse("step.progress", {"stepId": entry.step, "attempt": entry.attempt, "delta": entry.delta})


@_Once
def _lifecycle_message(entry: FeedEntry) -> str:
    assert entry.record is not None and entry.about is not None
    about = entry.about
    data = {
        **v1_event(from_record(entry.record)),
        "execution_id": entry.execution_id,
        "workflow_name": about.workflow_id or about.workflow_name,
        "tenant_id": about.tenant_id,
        "status": about.status,
    }
    return sse(entry.record.type, data)


# ------------------------------------------------------------------------------------------ routes


def resume_point(after: int, last_event_id: int | None) -> int:
    """The seq to start after: ``Last-Event-ID`` (what a reconnecting EventSource sends) over ``?after=``."""
    return last_event_id if last_event_id is not None else after


async def _execution_stream(
    request: Request,
    execution_id: str,
    principal: Principal,
    *,
    after: int,
    eai: bool,
) -> StreamingResponse:
    engine = engine_of(request)
    require_execution_id(execution_id)
    row = await asyncio.to_thread(engine.store.get_execution, execution_id)
    if row is None or not may_see(principal, row.tenant_id):
        raise execution_not_found(execution_id)
    hub = hub_of(request)
    hub.admit()
    body = execution_stream(
        hub,
        engine.store,
        execution_id,
        after=after,
        finished_at=row.last_seq if row.status in TERMINAL_STATUSES else None,
        render=_eai_message if eai else _v1_message,
        render_progress=_eai_progress if eai else _v1_progress,
        heartbeat=engine.settings.stream_heartbeat_seconds,
    )
    return StreamingResponse(body, media_type=MEDIA_TYPE, headers=SSE_HEADERS)


# Declared before GET /executions/{execution_id} (this router is included first): "stream" is no id.
@v1_router.get(
    "/executions/stream",
    response_class=StreamingResponse,
    responses=_STREAM_RESPONSES,
    summary="Live lifecycle events of every execution the caller may list (SSE)",
)
async def lifecycle(
    request: Request,
    status: list[Status] | None = Query(default=None, description="only events leaving it in these"),
    workflow_name: str | None = Query(default=None, description="only this workflow's executions"),
    x_tenant_id: str | None = Header(default=None),
    principal: Principal = Depends(authenticate),
) -> StreamingResponse:
    # the executions GET /executions lists: every tenant's when open, else the acting tenant's
    tenant_id = None if principal.open else acting_tenant(principal, None, x_tenant_id)
    statuses = frozenset(status or ())

    def match(entry: FeedEntry) -> bool:
        about = entry.about
        return (
            about is not None
            and (tenant_id is None or about.tenant_id == tenant_id)
            and (not statuses or about.status in statuses)
            and (workflow_name is None or workflow_name in (about.workflow_name, about.workflow_id))
        )

    hub = hub_of(request)
    hub.admit()
    body = lifecycle_stream(
        hub,
        match=match,
        render=_lifecycle_message,
        heartbeat=engine_of(request).settings.stream_heartbeat_seconds,
    )
    return StreamingResponse(body, media_type=MEDIA_TYPE, headers=SSE_HEADERS)


@v1_router.get(
    "/executions/{execution_id}/stream",
    response_class=StreamingResponse,
    responses=_STREAM_RESPONSES,
    summary="The execution's events, live, resumable with Last-Event-ID (SSE)",
)
async def v1_execution_stream(
    execution_id: str,
    request: Request,
    after: int = _AFTER,
    # typed int, not int | None: the document then says "an integer" (the header is simply absent, or not)
    last_event_id: int = _LAST_EVENT_ID,
    principal: Principal = Depends(authenticate),
) -> StreamingResponse:
    start = resume_point(after, last_event_id)
    return await _execution_stream(request, execution_id, principal, after=start, eai=False)


@eai_router.get(
    "/executions/{executionId}/stream",
    response_class=StreamingResponse,
    responses=_STREAM_RESPONSES,
    summary="The execution's events, live, resumable with Last-Event-ID (SSE, camelCase)",
)
async def eai_execution_stream(
    request: Request,
    execution_id: str = Path(alias="executionId"),
    after: int = _AFTER,
    # typed int, not int | None: the document then says "an integer" (the header is simply absent, or not)
    last_event_id: int = _LAST_EVENT_ID,
    principal: Principal = Depends(authenticate),
) -> StreamingResponse:
    start = resume_point(after, last_event_id)
    return await _execution_stream(request, execution_id, principal, after=start, eai=True)


@eai_router.get(
    "/executions/{executionId}/events",
    responses={404: {}},
    summary="The execution's event log, camelCase (as its stream renders each event)",
)
async def eai_execution_events(
    request: Request,
    execution_id: str = Path(alias="executionId"),
    principal: Principal = Depends(authenticate),
) -> dict[str, Any]:
    engine = engine_of(request)
    require_execution_id(execution_id)
    row = await asyncio.to_thread(engine.store.get_execution, execution_id)
    if row is None or not may_see(principal, row.tenant_id):
        raise execution_not_found(execution_id)
    records = await asyncio.to_thread(engine.store.load, execution_id)
    return {"executionId": execution_id, "events": [eai_event(from_record(record)) for record in records]}


__all__ = ["eai_event", "eai_router", "v1_event", "v1_router"]

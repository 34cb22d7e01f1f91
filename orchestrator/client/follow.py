"""Following an execution: its durable events in order, and the ephemeral LLM progress beside them.

The server's ``GET /api/v1/workflows/executions/{id}/stream`` (server-sent events: ``id: <seq>``,
``event: <type>``, ``data: <the event as /events renders it>``; ``event: step.progress`` messages with
``data: {step, delta}`` and no id) is used when the server answers it with ``200 text/event-stream``.
A stream that breaks or ends early is resumed with ``Last-Event-ID``, so no event is missed or repeated.
A server without the route (404 ``NOT_FOUND``, 405, 406, 501, or a 200 that is not an event stream) is
followed by polling ``GET .../events`` instead: the same events, no token progress.

Either way the follower yields each durable event once, in ``seq`` order, and stops after the terminal
one.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from orchestrator.client.http import ApiError, Client, ClientError, ConnectionLost, ServerUnreachable
from orchestrator.client.sse import iter_sse

TERMINAL_EVENTS = frozenset(
    {"execution.completed", "execution.failed", "execution.cancelled", "execution.timed_out"}
)
TERMINAL_STATUSES = frozenset({"completed", "failed", "cancelled", "timeout"})
POLL_INTERVAL = 0.3
# The server sends a heartbeat comment every 15 s: a stream silent for much longer than that is dead.
STREAM_TIMEOUT = httpx.Timeout(connect=5.0, read=60.0, write=30.0, pool=30.0)
# Consecutive failures (refused connections, streams that end without news) before giving up; a failure
# that was followed by a new event does not count against the next ones.
MAX_FAILURES = 8


@dataclass(frozen=True)
class StepProgress:
    """An ephemeral piece of a running step's output (LLM tokens); never stored by the server."""

    step: str
    delta: str
    attempt: int | None = None  # the attempt it belongs to, when the server says

    def as_json(self) -> dict[str, Any]:
        attempt = {} if self.attempt is None else {"attempt": self.attempt}
        return {"type": "step.progress", "step": self.step, **attempt, "delta": self.delta}


Item = dict[str, Any] | StepProgress


class _NoStream(Exception):
    """The server has no event stream for executions: poll instead."""


def _path(execution_id: str) -> str:
    return f"/api/v1/workflows/executions/{execution_id}"


def follow(
    client: Client,
    execution_id: str,
    *,
    after: int = 0,
    poll_interval: float = POLL_INTERVAL,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[Item]:
    """Every durable event after ``after`` (dicts as ``/events`` renders them) and the progress messages
    the stream carries, until the execution's terminal event."""
    last = after
    failures = 0
    streaming = True
    while True:
        progressed = False
        try:
            source = _stream(client, execution_id, last) if streaming else _poll(client, execution_id, last)
            for item in source:
                if isinstance(item, dict):
                    seq = int(item.get("seq", 0))
                    if seq <= last:
                        continue  # a resumed stream or a poll may repeat what we have
                    last, progressed = seq, True
                yield item
                if isinstance(item, dict) and item.get("type") in TERMINAL_EVENTS:
                    return
        except _NoStream:
            streaming = False
            continue
        except httpx.ReadTimeout:
            progressed = True  # the server is there, just silent: reconnect without counting it
        except (httpx.TransportError, ServerUnreachable, ConnectionLost) as exc:
            failures += 1
            if failures >= MAX_FAILURES:
                if isinstance(exc, ServerUnreachable):
                    raise
                if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
                    raise ServerUnreachable(client.server, str(exc) or "connection failed") from exc
                raise ClientError(f"lost the connection to {client.server} while following: {exc}") from exc
        else:
            if streaming and not progressed:
                failures += 1  # a stream that closes at once without news: do not spin on it
                if failures >= MAX_FAILURES:
                    raise ClientError(f"the event stream of {execution_id!r} keeps ending without events")
        if progressed:
            failures = 0
        if not streaming:
            sleep(poll_interval)
        elif failures:
            sleep(min(0.1 * 2**failures, 2.0))


def _stream(client: Client, execution_id: str, last: int) -> Iterator[Item]:
    headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
    if last:
        headers["Last-Event-ID"] = str(last)
    with client.stream("GET", f"{_path(execution_id)}/stream", headers=headers, timeout=STREAM_TIMEOUT) as r:
        kind = r.headers.get("content-type", "")
        if r.status_code == 200 and kind.startswith("text/event-stream"):
            for message in iter_sse(r.iter_lines()):
                item = _decode(message.event, message.data, message.id)
                if item is not None:
                    yield item
            return
        r.read()
        if r.status_code == 200 or r.status_code in (405, 406, 501):
            raise _NoStream
        error = ApiError.from_response(r)
        if r.status_code == 404 and error.code == "NOT_FOUND":  # no such route; a missing execution
            raise _NoStream  # is EXECUTION_NOT_FOUND and is reported below
        raise error


def _decode(event: str, data: str, event_id: str | None) -> Item | None:
    try:
        body = json.loads(data)
    except ValueError:
        return None  # not ours to show; the durable log is complete without it
    if not isinstance(body, dict):
        return None
    if event == "step.progress":
        attempt = body.get("attempt")
        return StepProgress(
            str(body.get("step", "")),
            str(body.get("delta", "")),
            attempt if isinstance(attempt, int) else None,
        )
    if "seq" not in body and event_id is not None and event_id.isdigit():
        body["seq"] = int(event_id)
    if "type" not in body and event != "message":
        body["type"] = event
    return body if isinstance(body.get("seq"), int) else None


def _poll(client: Client, execution_id: str, last: int) -> Iterator[Item]:
    # `after` is ignored by a server whose /events has no paging; the follower drops what it has seen
    body = client.request("GET", f"{_path(execution_id)}/events", params={"after": last or None}).body
    events = body.get("events", []) if isinstance(body, dict) else []
    yield from sorted((e for e in events if isinstance(e, dict)), key=lambda e: int(e.get("seq", 0)))


__all__ = ["POLL_INTERVAL", "TERMINAL_EVENTS", "TERMINAL_STATUSES", "Item", "StepProgress", "follow"]

"""Server-sent events, parsed from lines as the WHATWG spec says (the part a client needs).

Small enough to own rather than depend on: ``data:`` lines join with newlines, one leading space after
the colon is dropped, comment lines (``:`` heartbeats) are ignored, and an event is dispatched at a blank
line only when it has data. ``id`` is reported per message (None when the message has no ``id:`` line) so
that ephemeral messages without an id are told apart from durable ones.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class ServerSentEvent:
    event: str = "message"
    data: str = ""
    id: str | None = None
    retry: int | None = None


def iter_sse(lines: Iterable[str]) -> Iterator[ServerSentEvent]:
    """Messages from an iterable of lines (without their line endings, as ``httpx`` yields them)."""
    event = ""
    data: list[str] = []
    event_id: str | None = None
    retry: int | None = None
    for line in lines:
        if line == "":
            if data:
                yield ServerSentEvent(event or "message", "\n".join(data), event_id, retry)
            event, data, event_id, retry = "", [], None, None
            continue
        if line.startswith(":"):
            continue
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)
        elif name == "id":
            if "\0" not in value:
                event_id = value
        elif name == "retry" and value.isdigit():
            retry = int(value)
    # a stream that ends without the blank line loses its last message, as the spec says


__all__ = ["ServerSentEvent", "iter_sse"]

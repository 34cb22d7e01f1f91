"""Request fields both dialects share, with the bounds the OpenAPI document shows for them."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from orchestrator.core.durations import DURATION_PATTERN, MAX_SECONDS, parse_duration
from orchestrator.core.errors import InvalidRequest

# Pages further than this are a mistake, not a listing; the bound keeps an offset inside the 64-bit
# integers the databases take (a bigger one used to overflow the driver into a 500).
MAX_OFFSET = 1_000_000_000

DURATION_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "number", "minimum": 0, "maximum": MAX_SECONDS},
        {"type": "string", "pattern": DURATION_PATTERN},
        {"type": "null"},
    ]
}


def duration_field(description: str) -> Any:
    """A duration taken as sent (``Any``) so :func:`parse_duration` sees it: a typed ``float`` field would
    turn ``false`` into a 0 s timeout before anyone could refuse it."""
    return Field(default=None, description=description, json_schema_extra=DURATION_SCHEMA)


def parse_timeout(value: Any, *, field: str = "timeout") -> float | None:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise InvalidRequest(str(exc), details=[{"field": field, "message": str(exc)}]) from None

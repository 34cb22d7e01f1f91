"""Durations as users write them: ``"250ms"``, ``"5s"``, ``"2m"``, ``"1h"`` or a number of seconds."""

from __future__ import annotations

import math
import re

_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
# What the OpenAPI document promises: a subset of what parse_duration accepts in which every value is
# within MAX_SECONDS (366 days), so a generated request that matches it is always accepted.
DURATION_PATTERN = (
    r"^(?:[0-9]{1,7}(?:\.[0-9]+)?s?"
    r"|[0-9]{1,10}(?:\.[0-9]+)?ms"
    r"|[0-9]{1,5}(?:\.[0-9]+)?m"
    r"|[0-9]{1,3}(?:\.[0-9]+)?h"
    r"|(?:[0-9]{1,2}|[12][0-9]{2}|3[0-5][0-9]|36[0-5])(?:\.[0-9]+)?d|366d)$"
)
MAX_SECONDS = 366 * 86400.0  # a durable timer may run for a year; longer is a mistake, not a plan
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(value: object) -> float:
    """Seconds as a float. Raises ValueError with a message fit for a validation detail.

    A bool is refused although Python counts it as an int: ``false`` as a timeout is a client's mistake,
    and read as 0 s it would time the execution out at once."""
    if isinstance(value, bool):
        raise ValueError(f"invalid duration {value!r}: use a number of seconds or a string like '5s'")
    seconds: float | None = None
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        match = _PATTERN.match(value)
        if match:
            seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds is None or math.isnan(seconds):
        raise ValueError(f"invalid duration {value!r}: use a number of seconds or '250ms', '5s', '2m', '1h'")
    if seconds < 0:
        raise ValueError(f"invalid duration {value!r}: must not be negative")
    if seconds > MAX_SECONDS:
        raise ValueError(f"invalid duration {value!r}: at most {MAX_SECONDS / 86400:g} days")
    return seconds


def format_seconds(seconds: float) -> str:
    """The seed's ``process_time`` format: ``"1.234s"``."""
    return f"{seconds:.3f}s"

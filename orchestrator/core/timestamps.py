"""One spelling of a timestamp on the wire: ISO 8601, UTC written ``Z`` (``2026-03-11T14:00:00.123Z``).

Views and plans use milliseconds; the event log and agent health keep the recorded precision
(``timespec="auto"``), as they always have. The store keeps full precision in its own format.
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from functools import lru_cache

__all__ = ["format_timestamp"]


def format_timestamp(value: datetime, *, timespec: str = "milliseconds") -> str:
    return _formatted(value, value.tzinfo, timespec)


# A decision stamps all its events with one time, and a view spells each step's times: the same few
# values again and again (0.1 us from here against 1 us for isoformat).
@lru_cache(maxsize=1024)
def _formatted(value: datetime, zone: tzinfo | None, timespec: str) -> str:
    del zone  # in the key only: equal instants in other zones are spelled differently
    return value.isoformat(timespec=timespec).replace("+00:00", "Z")

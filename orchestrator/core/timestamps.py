"""One spelling of a timestamp on the wire: ISO 8601, UTC written ``Z`` (``2026-03-11T14:00:00.123Z``).

Views and plans use milliseconds; the event log and agent health keep the recorded precision
(``timespec="auto"``), as they always have. The store keeps full precision in its own format.
"""

from __future__ import annotations

from datetime import datetime

__all__ = ["format_timestamp"]


def format_timestamp(value: datetime, *, timespec: str = "milliseconds") -> str:
    return value.isoformat(timespec=timespec).replace("+00:00", "Z")

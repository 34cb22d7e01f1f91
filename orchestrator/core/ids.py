"""Sortable unique ids: 48 bits of milliseconds then 80 random bits, Crockford base32 (like ULID).

Generated at the edges (the REST layer), never inside replayed code, so a replay reuses them.
"""

from __future__ import annotations

import os
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"


def _encode(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        value, rem = divmod(value, 32)
        chars.append(_ALPHABET[rem])
    return "".join(reversed(chars))


def sortable_id(prefix: str) -> str:
    millis = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    return f"{prefix}{_encode(millis, 10)}{_encode(rand, 16)}"


def new_execution_id() -> str:
    return sortable_id("wf_exec_")


def new_plan_id() -> str:
    return sortable_id("plan_")

"""Bounds on what one request can make the server spend (STYLE 18: limits are part of the interface).

Validation takes a :class:`Limits`; the server builds it from settings (``ORCH_MAX_*``). Crossing a
limit is a clear error naming it, never a stalled replica.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_LIMITS", "Limits"]


@dataclass(frozen=True)
class Limits:
    max_steps: int = 2000  # steps in one workflow, nested ones included
    max_nesting_depth: int = 32  # parallel/condition containers inside each other
    max_template_bytes: int = 64 * 1024  # one template string
    max_step_output_bytes: int = 4 * 1024 * 1024  # one step's output, JSON-encoded


DEFAULT_LIMITS = Limits()

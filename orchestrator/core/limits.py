"""Bounds on what one request can make the server spend (STYLE 18: limits are part of the interface).

Validation takes a :class:`Limits`; the server builds it from settings (``ORCH_MAX_*``). Crossing a
limit is a clear error naming it, never a stalled replica.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_LIMITS", "MAX_NESTING_DEPTH", "Limits"]

MAX_NESTING_DEPTH = 100  # the highest max_nesting_depth a deployment may configure


@dataclass(frozen=True)
class Limits:
    max_steps: int = 2000  # steps in one workflow, nested ones included
    max_nesting_depth: int = 32  # parallel/condition containers inside each other
    max_template_bytes: int = 64 * 1024  # one template string
    max_step_output_bytes: int = 4 * 1024 * 1024  # one step's output, JSON-encoded

    def __post_init__(self) -> None:
        for name in ("max_steps", "max_nesting_depth", "max_template_bytes", "max_step_output_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, not {getattr(self, name)}")
        # Validation descends one level of Python calls per nesting level: beyond this, a legal
        # workflow could hit the interpreter's recursion limit instead of a clear error.
        if self.max_nesting_depth > MAX_NESTING_DEPTH:
            raise ValueError(
                f"max_nesting_depth must be at most {MAX_NESTING_DEPTH}, not {self.max_nesting_depth}"
            )


DEFAULT_LIMITS = Limits()

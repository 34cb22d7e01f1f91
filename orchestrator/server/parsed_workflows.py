"""Workflow definitions this ingress replica has validated, by their JSON text.

A program that runs a workflow sends the same definition with every request. Validating it costs more
than the rest of a short execution's start (a 10-step chain: about 0.1 ms, then the dependency graph and
order the core works out again for every new definition object). A definition sent again is answered
with the one validated before: it is immutable, and what was worked out for it comes along. Only
valid definitions are kept (an invalid one is validated, and refused, every time); the cache is bounded
(least recently used out first), and definitions over ``MAX_KEY_BYTES`` of JSON are not kept.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from typing import Any

from orchestrator.core.definitions import WorkflowDef
from orchestrator.core.limits import Limits
from orchestrator.core.validation import parse_workflow

CAPACITY = 256
MAX_KEY_BYTES = 64 * 1024
_KEY_JSON = json.JSONEncoder(separators=(",", ":"), allow_nan=False)  # made once, not per call


class ParsedWorkflows:
    def __init__(
        self, limits: Limits, *, capacity: int = CAPACITY, max_key_bytes: int = MAX_KEY_BYTES
    ) -> None:
        self.limits = limits
        self.capacity = capacity
        self.max_key_bytes = max_key_bytes
        self._definitions: OrderedDict[str, WorkflowDef] = OrderedDict()
        self._lock = threading.Lock()

    def parse(self, raw: Any) -> WorkflowDef:
        """:func:`parse_workflow` of ``raw`` (a v1 ``{metadata, spec}`` document as JSON decoded it)."""
        try:
            key = _KEY_JSON.encode(raw)
        except (TypeError, ValueError):
            return parse_workflow(raw, limits=self.limits)  # not JSON's: validation says what is wrong
        if len(key) > self.max_key_bytes:
            return parse_workflow(raw, limits=self.limits)
        with self._lock:
            known = self._definitions.get(key)
            if known is not None:
                self._definitions.move_to_end(key)
                return known
        definition = parse_workflow(raw, limits=self.limits)
        with self._lock:
            self._definitions[key] = definition
            while len(self._definitions) > self.capacity:
                self._definitions.popitem(last=False)
        return definition

    def __len__(self) -> int:
        return len(self._definitions)

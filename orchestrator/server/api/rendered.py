"""Rendered answers for finished executions.

A finished execution's view never changes, so the JSON of its ``GET`` is rendered (validated against the
route's response model and serialized) once per dialect and served as bytes after. A client polling a
500-step execution then costs the replica a cached fold and a store check per request, not the
validation and serialization of 500 steps on the event loop that every other request waits behind.
Bounded by size (least recently served out first), per replica; keyed by the log's last seq as well,
so a view is never served for a different log.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from orchestrator.core.state import ExecutionState

DEFAULT_MAX_BYTES = 32 * 1024 * 1024


class RenderedViews:
    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self._bodies: OrderedDict[tuple[str, str, int], bytes] = OrderedDict()
        self._size = 0

    async def response(
        self,
        state: ExecutionState,
        dialect: str,
        render: Callable[[ExecutionState], dict[str, Any]],
        model: type[BaseModel],
    ) -> Any:
        """The route's answer: the view dict while the execution runs (the route's model renders it),
        the cached JSON once it finished."""
        if not state.terminal:
            return render(state)
        key = (state.execution_id, dialect, state.last_seq)
        body = self._bodies.get(key)
        if body is None:
            body = await asyncio.to_thread(_rendered, model, render(state))
            self._keep(key, body)
        else:
            self._bodies.move_to_end(key)
        return Response(content=body, media_type="application/json")

    def _keep(self, key: tuple[str, str, int], body: bytes) -> None:
        if len(body) > self.max_bytes // 4:
            return  # one huge view would push everything else out
        self._bodies[key] = body
        self._size += len(body)
        while self._size > self.max_bytes:
            _, dropped = self._bodies.popitem(last=False)
            self._size -= len(dropped)

    def __len__(self) -> int:
        return len(self._bodies)


def _rendered(model: type[BaseModel], view: dict[str, Any]) -> bytes:
    """What FastAPI answers for ``view`` under ``response_model=model``: validated, dumped by alias."""
    return bytes(JSONResponse(model.model_validate(view).model_dump(mode="json", by_alias=True)).body)


RENDERED = RenderedViews()

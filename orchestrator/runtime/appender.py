"""Group commit: the appends of many executions in one transaction.

An acknowledged event must be on disk, so every commit costs an fsync. Under load, the executions of a
host all want to append at once; instead of queueing behind each other's fsyncs they join the batch
that is waiting while the previous one commits (on one writer thread, off the event loop). A conflict
in a batch is retried item by item, so only the execution that lost the race sees it; so is an append
refused by its partition's fence (``Fenced`` is a conflict), so one lost lease fails only its own items.

An append that finds the appender idle is committed on the event loop itself, if the store can do it
without waiting for a lock (``EventStore.append_if_free``; SQLite can): the writer's two thread hops
cost more than such a commit. Measured on one server, alternating: 1-step p50 1.60 -> 1.46 ms, a
10-step I/O chain 14.6 -> 13.7 ms, 32-client throughput unchanged. Only after a quiet spell as long as
the last such commit, so a loop never spends more than half its time in commits; under load appends
meet a commit in flight and batch as before.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Sequence

from orchestrator.core.errors import ConcurrencyConflict
from orchestrator.core.events import EventRecord
from orchestrator.store.base import AppendItem, EventStore, ExecutionRow, Fence


class BatchAppender:
    def __init__(self, store: EventStore, *, max_batch: int = 512) -> None:
        self._store = store
        self._max_batch = max_batch
        self._pending: list[tuple[AppendItem, asyncio.Future[None]]] = []
        self._writer = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="append")
        self._flushing = False
        self._quiet_after = 0.0  # perf_counter time before which the loop counts as busy

    async def append(
        self,
        execution_id: str,
        records: Sequence[EventRecord],
        projection: ExecutionRow | None,
        fence: Fence | None = None,
    ) -> None:
        item: AppendItem = (execution_id, records, projection, fence)
        if not self._flushing and not self._pending and time.perf_counter() >= self._quiet_after:
            began = time.perf_counter()
            try:
                if self._store.append_if_free(item):
                    return
            finally:
                ended = time.perf_counter()
                self._quiet_after = ended + (ended - began)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if not self._flushing:
            self._flushing = True
            asyncio.get_running_loop().create_task(self._flush())
        await future

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                batch, self._pending = self._pending[: self._max_batch], self._pending[self._max_batch :]
                results = await loop.run_in_executor(self._writer, self._commit, [item for item, _ in batch])
                for (_, future), error in zip(batch, results, strict=True):
                    if future.done():
                        continue
                    if error is None:
                        future.set_result(None)
                    else:
                        future.set_exception(error)
        finally:
            self._flushing = False

    def _commit(self, items: list[AppendItem]) -> list[BaseException | None]:
        try:
            self._store.append_batch(items)
            return [None] * len(items)
        except ConcurrencyConflict:
            pass
        except Exception as exc:  # the whole batch failed the same way
            return [exc] * len(items)
        results: list[BaseException | None] = []
        for execution_id, records, projection, fence in items:
            try:
                self._store.append(execution_id, records, projection=projection, fence=fence)
                results.append(None)
            except Exception as exc:
                results.append(exc)
        return results

    def close(self) -> None:
        self._writer.shutdown(wait=True)

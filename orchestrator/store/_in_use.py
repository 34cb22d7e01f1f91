"""Closing a store while another thread is inside one of its connections.

sqlite3 (with ``check_same_thread=False``) and libpq both crash the process when a connection is closed
under a statement running on another thread. So every operation enters :meth:`OperationsInUse.enter`,
and ``close`` refuses new operations, waits for the ones under way and only then closes connections.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator

log = logging.getLogger(__name__)


class OperationsInUse:
    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._under_way = 0
        self.closed = False

    @contextlib.contextmanager
    def enter(self, closed: Callable[[], Exception]) -> Iterator[None]:
        with self._changed:
            if self.closed:
                raise closed()
            self._under_way += 1
        try:
            yield
        finally:
            with self._changed:
                self._under_way -= 1
                if not self._under_way:
                    self._changed.notify_all()

    def close(self, timeout_s: float) -> bool:
        """Refuse new operations; True once none is under way, False if one outlived ``timeout_s``."""
        with self._changed:
            self.closed = True
            drained = self._changed.wait_for(lambda: self._under_way == 0, timeout_s)
        if not drained:
            # Leaking the connections is better than crashing the process under a running statement.
            log.warning(
                "store closed with %d operations still under way; connections left open", self._under_way
            )
        return drained

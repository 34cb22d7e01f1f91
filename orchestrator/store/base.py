"""The event store port.

The log is the source of truth; ``executions`` is a projection written in the same transaction as the
events it summarises, so a list query never disagrees with the logs it came from. Appends are ordered
per execution by a unique ``(execution_id, seq)``: a second writer for the same sequence number gets
:class:`~orchestrator.core.errors.ConcurrencyConflict`, never an interleaved log.

The store is synchronous on purpose: SQLite commits take well under a millisecond and psycopg on
loopback about one, cheaper than a thread hop per call on the request path.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.core.errors import ConcurrencyConflict
from orchestrator.core.events import EventRecord


class ExecutionRow(BaseModel):
    """One row of the executions projection (what list endpoints answer from)."""

    model_config = ConfigDict(frozen=True)

    id: str
    workflow_name: str
    workflow_id: str | None = None
    workflow_version: str | None = None
    tenant_id: str = "default"
    status: str
    dialect: str = "v1"
    placement: str = "pooled"
    started_at: datetime | None = None
    completed_at: datetime | None = None
    duration_ms: int | None = None
    error: str | None = None
    last_seq: int = 0
    created_at: datetime


class WorkflowRecord(BaseModel):
    """A registered workflow definition (EAI dialect). Versions are immutable."""

    model_config = ConfigDict(frozen=True)

    workflow_id: str
    version: str
    definition: dict[str, Any] = Field(default_factory=dict)
    registered_at: datetime


class Page(BaseModel):
    rows: list[ExecutionRow]
    total: int


AppendItem = tuple[str, Sequence[EventRecord], ExecutionRow | None]


class IdempotencyKeyTaken(ConcurrencyConflict):
    """The first append of an execution claimed an idempotency key already bound to another
    execution: nothing was written, and the request should be answered with that execution.

    A conflict, so a group-commit batch that holds it is retried item by item like any other."""

    code = "IDEMPOTENCY_KEY_TAKEN"

    @property
    def execution_id(self) -> str:
        details = self.details if isinstance(self.details, dict) else {}
        return str(details.get("execution_id", ""))


def started_idempotency_key(records: Sequence[EventRecord]) -> str | None:
    """The idempotency key an append claims: the one an ``execution.started`` at seq 1 carries."""
    if records and records[0].seq == 1 and records[0].type == "execution.started":
        key = records[0].payload.get("idempotency_key")
        return str(key) if key else None
    return None


class EventStore(abc.ABC):
    """Abstract event store. Backends: SQLite (embedded default) and PostgreSQL."""

    # -- events -------------------------------------------------------------------------------------
    @abc.abstractmethod
    def append(
        self,
        execution_id: str,
        records: Sequence[EventRecord],
        *,
        projection: ExecutionRow | None = None,
    ) -> None:
        """Append ``records`` (consecutive seqs continuing the log) and upsert ``projection`` atomically.

        Raises ConcurrencyConflict when any ``(execution_id, seq)`` already exists, or when the first
        record's seq is not exactly one more than the log's last seq.

        An ``execution.started`` record at seq 1 carrying an ``idempotency_key`` binds that key to the
        execution in the same transaction (so a key never names an execution without events). A key
        bound to another execution that has events raises :class:`IdempotencyKeyTaken` and writes
        nothing; a key bound to an execution without events (a claim whose start never got recorded)
        is taken over.
        """

    def append_batch(self, items: Sequence[AppendItem]) -> None:
        """Several executions' appends in one transaction (group commit: one fsync for many).

        All or nothing: on a conflict in any item nothing is written and ConcurrencyConflict is raised,
        so the caller can retry the items one by one to find the loser. Backends override this with a
        single transaction; this default appends item by item.
        """
        for execution_id, records, projection in items:
            self.append(execution_id, records, projection=projection)

    @abc.abstractmethod
    def load(self, execution_id: str, *, after_seq: int = 0) -> list[EventRecord]:
        """The execution's events in seq order (empty when unknown)."""

    @abc.abstractmethod
    def iter_records(
        self,
        *,
        execution_ids: Sequence[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        batch_size: int = 5000,
    ) -> Iterator[EventRecord]:
        """Stream events (for export), ordered by execution then seq."""

    # -- projection ---------------------------------------------------------------------------------
    @abc.abstractmethod
    def get_execution(self, execution_id: str) -> ExecutionRow | None: ...

    @abc.abstractmethod
    def list_executions(
        self,
        *,
        tenant_id: str | None = None,
        status: str | None = None,
        workflow_name: str | None = None,
        workflow_id: str | None = None,
        limit: int = 10,
        offset: int = 0,
    ) -> Page:
        """Newest first (by created_at, then id descending)."""

    @abc.abstractmethod
    def non_terminal_ids(self) -> list[str]:
        """Ids of executions whose projection status is not terminal (for recovery)."""

    @abc.abstractmethod
    def prune(self, *, finished_before: datetime) -> int:
        """Delete terminal executions (events and projection together) that finished before the cutoff."""

    # -- idempotency ---------------------------------------------------------------------------------
    @abc.abstractmethod
    def claim_idempotency_key(self, key: str, execution_id: str) -> str:
        """Bind ``key`` to ``execution_id`` unless already bound; return the execution id bound to it.

        A claim made apart from the execution's first append can outlive a start that never got
        recorded; :meth:`append` takes such a claim over. Starts bind their key through ``append``."""

    def idempotency_key_owner(self, key: str) -> str | None:
        """The execution ``key`` is bound to, if that execution has events (else None)."""
        raise NotImplementedError(f"{type(self).__name__} does not look up idempotency keys")

    # -- workflow registry ---------------------------------------------------------------------------
    @abc.abstractmethod
    def put_workflow(self, record: WorkflowRecord) -> None:
        """Insert a version. Raises Conflict(code VERSION_EXISTS) if that version exists with a different
        definition; storing the identical definition again is a no-op."""

    @abc.abstractmethod
    def get_workflow(self, workflow_id: str, version: str | None = None) -> WorkflowRecord | None:
        """A given version, or the latest by semantic version when ``version`` is None."""

    @abc.abstractmethod
    def list_workflows(self) -> list[WorkflowRecord]:
        """The latest version of every registered workflow, ordered by id."""

    # -- plans ----------------------------------------------------------------------------------------
    # Plans are stored as event streams too: ``append``/``load`` with the plan id as the stream id.

    @abc.abstractmethod
    def close(self) -> None: ...

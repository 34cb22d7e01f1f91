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
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.core.errors import ConcurrencyConflict
from orchestrator.core.events import EventRecord
from orchestrator.core.partitions import LeaseView


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
    """A registered workflow definition (EAI dialect). Versions are immutable.

    ``tenant_id`` None is a shared workflow (shipped, or registered by an admin for everyone); a
    tenant's own registrations live in its namespace, keyed by ``(tenant_id, workflow_id, version)``."""

    model_config = ConfigDict(frozen=True)

    workflow_id: str
    version: str
    definition: dict[str, Any] = Field(default_factory=dict)
    registered_at: datetime
    # min_length: the stores keep shared workflows under the empty string, so no tenant may be named so.
    tenant_id: str | None = Field(default=None, min_length=1)


class ApiKeyRecord(BaseModel):
    """An API key as stored: never the key itself, only ``key_hash`` (a slow or keyed hash of it)."""

    model_config = ConfigDict(frozen=True)

    id: str
    tenant_id: str
    role: Literal["admin", "member"]
    name: str | None
    key_hash: str
    created_at: datetime
    last_used_at: datetime | None = None
    revoked: bool = False


class Page(BaseModel):
    rows: list[ExecutionRow]
    total: int


class Fence(NamedTuple):
    """The partition lease an append is made under: the store refuses it (``Fenced``) unless
    ``epoch`` is still that partition's current epoch."""

    partition: int
    epoch: int


class HostHeartbeat(NamedTuple):
    """An execution host's last heartbeat: ``owner`` is its actor name and incarnation
    (``orch-host-...@<id>``), ``cluster`` the Ray cluster it runs in (its GCS address)."""

    owner: str
    node_id: str
    cluster: str
    expires_at: float


class LeaseSnapshot(NamedTuple):
    now: float
    leases: dict[int, LeaseView]
    hosts: list[HostHeartbeat]

    def live_hosts(self) -> list[HostHeartbeat]:
        return [host for host in self.hosts if host.expires_at > self.now]

    def unowned(self) -> list[int]:
        return [p for p, lease in self.leases.items() if not lease.held(self.now)]


AppendItem = tuple[str, Sequence[EventRecord], ExecutionRow | None, Fence | None]


class IdempotencyKeyTaken(ConcurrencyConflict):
    """The first append of an execution claimed an idempotency key already bound to another
    execution of the same tenant: nothing was written, and the request should be answered with that
    execution (when its ``request_hash`` matches).

    A conflict, so a group-commit batch that holds it is retried item by item like any other."""

    code = "IDEMPOTENCY_KEY_TAKEN"

    @property
    def execution_id(self) -> str:
        details = self.details if isinstance(self.details, dict) else {}
        return str(details.get("execution_id", ""))

    @property
    def request_hash(self) -> str | None:
        """The fingerprint of the request that bound the key (None if it recorded none)."""
        details = self.details if isinstance(self.details, dict) else {}
        value = details.get("request_hash")
        return str(value) if value is not None else None


class IdempotencyBinding(NamedTuple):
    tenant_id: str
    key: str
    request_hash: str | None


def started_idempotency_binding(records: Sequence[EventRecord]) -> IdempotencyBinding | None:
    """The idempotency key an append claims: the one an ``execution.started`` at seq 1 carries, in
    its tenant, with the request's fingerprint."""
    if records and records[0].seq == 1 and records[0].type == "execution.started":
        payload = records[0].payload
        key = payload.get("idempotency_key")
        if not key:
            return None
        request_hash = payload.get("request_hash")
        return IdempotencyBinding(
            str(payload.get("tenant_id") or "default"),
            str(key),
            str(request_hash) if request_hash is not None else None,
        )
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
        fence: Fence | None = None,
    ) -> None:
        """Append ``records`` (consecutive seqs continuing the log) and upsert ``projection`` atomically.

        Raises ConcurrencyConflict when any ``(execution_id, seq)`` already exists, or when the first
        record's seq is not exactly one more than the log's last seq.

        An ``execution.started`` record at seq 1 carrying an ``idempotency_key`` binds that key, in
        the record's ``tenant_id`` and with its ``request_hash``, to the execution in the same
        transaction (so a key never names an execution without events). A key bound in that tenant to
        another execution that has events raises :class:`IdempotencyKeyTaken` and writes nothing; a
        key bound to an execution without events (a claim whose start never got recorded) is taken
        over. The same key in two tenants binds two executions.

        With a ``fence``, the append is refused with :class:`~orchestrator.core.errors.Fenced` (and
        nothing written) unless the fence's epoch is its partition's current lease epoch, checked in
        the same transaction.
        """

    def append_batch(self, items: Sequence[AppendItem]) -> None:
        """Several executions' appends in one transaction (group commit: one fsync for many).

        All or nothing: on a conflict in any item nothing is written and ConcurrencyConflict is raised,
        so the caller can retry the items one by one to find the loser. Backends override this with a
        single transaction; this default appends item by item.
        """
        for execution_id, records, projection, fence in items:
            self.append(execution_id, records, projection=projection, fence=fence)

    def append_if_free(self, item: AppendItem) -> bool:
        """One append now, on the calling thread, only if it need not wait for another writer: False
        (nothing written) when the store is busy or cannot tell. For a caller that must not block (an
        event loop) but would rather not pay a thread hop while the store is idle. Errors as ``append``."""
        return False

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
        dialect: str | None = None,
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
    def claim_idempotency_key(self, key: str, execution_id: str, *, tenant_id: str = "default") -> str:
        """Bind ``key`` (in ``tenant_id``) to ``execution_id`` unless already bound; return the
        execution id bound to it.

        A claim made apart from the execution's first append can outlive a start that never got
        recorded; :meth:`append` takes such a claim over. Starts bind their key through ``append``."""

    @abc.abstractmethod
    def idempotency_key_owner(self, key: str, *, tenant_id: str) -> tuple[str, str | None] | None:
        """``(execution_id, request_hash)`` of the execution ``key`` is bound to in ``tenant_id``, if
        that execution has events (else None). ``request_hash`` is None when the start recorded none."""

    # -- workflow registry ---------------------------------------------------------------------------
    @abc.abstractmethod
    def put_workflow(self, record: WorkflowRecord) -> None:
        """Insert a version in the record's namespace (``tenant_id``; None is shared). Raises
        Conflict(code VERSION_EXISTS) if that ``(tenant_id, workflow_id, version)`` exists with a
        different definition; storing the identical definition again is a no-op."""

    @abc.abstractmethod
    def get_workflow(
        self, workflow_id: str, version: str | None = None, *, tenant_id: str | None = None
    ) -> WorkflowRecord | None:
        """A given version, or the latest by semantic version when ``version`` is None.

        With a ``tenant_id``, the tenant's own workflow of that id shadows the shared one entirely:
        if the tenant registered any version of it, only the tenant's versions count; otherwise the
        shared ones do. Without one, only shared workflows count."""

    @abc.abstractmethod
    def list_workflows(self, *, tenant_id: str | None = None) -> list[WorkflowRecord]:
        """The latest version of every workflow ``tenant_id`` sees, ordered by id: the shared ones and
        the tenant's own, an id of the tenant's shadowing the shared one. None lists shared ones only."""

    # -- API keys ------------------------------------------------------------------------------------
    @abc.abstractmethod
    def create_api_key(self, record: ApiKeyRecord) -> None:
        """Store a new key. Raises ConcurrencyConflict when a key with that id exists."""

    @abc.abstractmethod
    def get_api_key(self, key_id: str) -> ApiKeyRecord | None:
        """One key by id (one primary-key lookup: it runs for every authenticated request)."""

    @abc.abstractmethod
    def list_api_keys(self, *, tenant_id: str | None = None) -> list[ApiKeyRecord]:
        """Every key, or one tenant's; oldest first (by created_at, then id)."""

    @abc.abstractmethod
    def revoke_api_key(self, key_id: str) -> bool:
        """Mark a key revoked; False when there is no such key (revoking twice is True twice)."""

    @abc.abstractmethod
    def touch_api_key(self, key_id: str, at: datetime) -> None:
        """Set the key's ``last_used_at``. A write (an fsync on SQLite): callers should throttle it."""

    # -- partition leases (see orchestrator.store._leases, which both backends share) ----------------
    @abc.abstractmethod
    def partition_count(self, default: int) -> int:
        """The partition count recorded when the store was created (``default`` for a new store)."""

    @abc.abstractmethod
    def lease_snapshot(self) -> LeaseSnapshot:
        """Every partition's lease and the hosts' heartbeats, with the store's current time."""

    @abc.abstractmethod
    def heartbeat(self, owner: str, *, node_id: str, cluster: str, ttl: float) -> dict[int, int]:
        """Record that ``owner`` lives for ``ttl`` s more; renew its leases; ``{partition: epoch}``."""

    @abc.abstractmethod
    def acquire_lease(
        self, partition: int, owner: str, *, ttl: float, steal_from: str | None = None
    ) -> int | None:
        """Take a free (or expired, or ``steal_from``'s) partition; the new epoch, or None."""

    @abc.abstractmethod
    def release_lease(self, partition: int, owner: str) -> bool:
        """Give a partition back; False when ``owner`` did not hold it."""

    @abc.abstractmethod
    def leave(self, owner: str) -> None:
        """Release every lease of ``owner`` and forget its heartbeat."""

    # -- plans ----------------------------------------------------------------------------------------
    # Plans are stored as event streams too: ``append``/``load`` with the plan id as the stream id.

    @abc.abstractmethod
    def close(self) -> None: ...

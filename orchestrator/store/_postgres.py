"""PostgreSQL event store: for several nodes sharing one log.

Same schema and semantics as the SQLite store (the contract suite runs against both), with JSONB
payloads and ``timestamptz`` times. Choices, and why:

- One connection per thread, autocommit off and every unit of work in an explicit transaction: a
  psycopg connection runs one statement at a time, and a pool is not a dependency. Callers that fan
  out to many threads open as many connections; an execution host uses a handful.
- Appends read the log's last seq and insert in one transaction. Under READ COMMITTED two writers may
  both read the same last seq, but the second insert of that ``(execution_id, seq)`` waits for the
  first to commit and then fails on the primary key, which is mapped to ConcurrencyConflict.
- Id columns use the "C" collation so that ordering and keyset pagination are bytewise, as in SQLite,
  whatever the database's locale.
- Schema creation runs under a transaction-scoped advisory lock: two processes running
  ``CREATE TABLE IF NOT EXISTS`` at once can otherwise both pass the check and one fails.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg
import psycopg.errors

from orchestrator.core.errors import ConcurrencyConflict, Conflict, StoreError
from orchestrator.core.events import EventRecord, payload_json
from orchestrator.core.state import TERMINAL_STATUSES
from orchestrator.store import check_sequence, latest_versions, version_exists_message, version_key
from orchestrator.store._in_use import OperationsInUse
from orchestrator.store._leases import LEASE_SCHEMA, LeaseTables, check_fence
from orchestrator.store._sql import (
    SELECT_API_KEY,
    SELECT_EVENT,
    SELECT_EXECUTION,
    WORKFLOW_COLUMNS,
    api_key_params,
    claim_key_sql,
    claim_on_start,
    execution_params,
    idempotency_owner_sql,
    insert_api_key_sql,
    list_executions_sql,
    namespace,
    pick_version,
    row_to_api_key,
    row_to_execution,
    row_to_workflow,
    shadowed,
    upsert_execution_sql,
    visible_namespaces,
)
from orchestrator.store.base import (
    ApiKeyRecord,
    AppendItem,
    EventStore,
    ExecutionRow,
    Fence,
    IdempotencyBinding,
    IdempotencyKeyTaken,
    Page,
    WorkflowRecord,
    started_idempotency_binding,
)

# Any constant works as long as every process uses the same one; this is "orchschm" in ASCII.
_SCHEMA_LOCK_ID = 0x6F72636873636D

# Lists filter by one of these (or tenant and status) and page newest first: one index each that holds
# the filter and the order, so a page is an index range scan, not a sort of every matching row. They
# replace the single-column indexes of earlier versions.
_SINGLE_COLUMN_INDEXES = (
    "executions_tenant",
    "executions_status",
    "executions_workflow_name",
    "executions_workflow_id",
)
LIST_INDEXES = tuple(
    f"CREATE INDEX IF NOT EXISTS executions_{name}_created ON executions ({columns}, created_at DESC, id DESC)"
    for name, columns in (
        ("tenant", "tenant_id"),
        ("tenant_status", "tenant_id, status"),
        ("status", "status"),
        ("workflow_name", "workflow_name"),
        ("workflow_id", "workflow_id"),
    )
)

_SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS events (
        execution_id TEXT COLLATE "C" NOT NULL,
        seq BIGINT NOT NULL,
        type TEXT NOT NULL,
        version INTEGER NOT NULL,
        step TEXT,
        payload JSONB NOT NULL,
        recorded_at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (execution_id, seq)
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS executions (
        id TEXT COLLATE "C" PRIMARY KEY,
        workflow_name TEXT NOT NULL,
        workflow_id TEXT,
        workflow_version TEXT,
        tenant_id TEXT NOT NULL,
        status TEXT NOT NULL,
        dialect TEXT NOT NULL,
        placement TEXT NOT NULL,
        started_at TIMESTAMPTZ,
        completed_at TIMESTAMPTZ,
        duration_ms BIGINT,
        error TEXT,
        last_seq BIGINT NOT NULL,
        created_at TIMESTAMPTZ NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS executions_created ON executions (created_at DESC, id DESC)",
    *(f"DROP INDEX IF EXISTS {name}" for name in _SINGLE_COLUMN_INDEXES),
    *LIST_INDEXES,
    """
    CREATE TABLE IF NOT EXISTS idempotency_keys (
        tenant_id TEXT NOT NULL,
        key TEXT NOT NULL,
        execution_id TEXT COLLATE "C" NOT NULL,
        request_hash TEXT,
        PRIMARY KEY (tenant_id, key)
    )
    """,
    "CREATE INDEX IF NOT EXISTS idempotency_keys_execution ON idempotency_keys (execution_id)",
    """
    CREATE TABLE IF NOT EXISTS workflows (
        tenant_id TEXT COLLATE "C" NOT NULL DEFAULT '',
        workflow_id TEXT COLLATE "C" NOT NULL,
        version TEXT NOT NULL,
        definition JSONB NOT NULL,
        registered_at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (tenant_id, workflow_id, version)
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS api_keys (
        id TEXT COLLATE "C" PRIMARY KEY,
        tenant_id TEXT NOT NULL,
        role TEXT NOT NULL,
        name TEXT,
        key_hash TEXT NOT NULL,
        created_at TIMESTAMPTZ NOT NULL,
        last_used_at TIMESTAMPTZ,
        revoked BOOLEAN NOT NULL DEFAULT FALSE
    )
    """,
    "CREATE INDEX IF NOT EXISTS api_keys_tenant ON api_keys (tenant_id, created_at)",
)

# A database made before tenancy: its idempotency keys and registered workflows gain ``tenant_id``
# in their primary key. An idempotency key belongs to the tenant of the execution it names; a
# workflow registered before tenancy is shared. Run after _SCHEMA (CREATE ... IF NOT EXISTS leaves an
# old table as it is), under the same lock, only for a table that lacks the column.
_MIGRATIONS = {
    "idempotency_keys": (
        "ALTER TABLE idempotency_keys ADD COLUMN tenant_id TEXT NOT NULL DEFAULT 'default'",
        "ALTER TABLE idempotency_keys ADD COLUMN IF NOT EXISTS request_hash TEXT",
        "UPDATE idempotency_keys k SET tenant_id = e.payload->>'tenant_id' FROM events e "
        "WHERE e.execution_id = k.execution_id AND e.seq = 1 AND e.payload->>'tenant_id' IS NOT NULL",
        "ALTER TABLE idempotency_keys ALTER COLUMN tenant_id DROP DEFAULT",
        "ALTER TABLE idempotency_keys DROP CONSTRAINT IF EXISTS idempotency_keys_pkey",
        "ALTER TABLE idempotency_keys ADD PRIMARY KEY (tenant_id, key)",
    ),
    "workflows": (
        "ALTER TABLE workflows ADD COLUMN tenant_id TEXT COLLATE \"C\" NOT NULL DEFAULT ''",
        "ALTER TABLE workflows DROP CONSTRAINT IF EXISTS workflows_pkey",
        "ALTER TABLE workflows ADD PRIMARY KEY (tenant_id, workflow_id, version)",
    ),
}

_UPSERT_EXECUTION = upsert_execution_sql("%s")
_IDEMPOTENCY_OWNER = idempotency_owner_sql("%s")
_CLAIM_INSERT, _CLAIM_SELECT = claim_key_sql("%s")
_INSERT_API_KEY = insert_api_key_sql("%s")
_TERMINAL = sorted(TERMINAL_STATUSES)

Conn = psycopg.Connection[tuple[Any, ...]]


def _utc(value: datetime) -> datetime:
    """Naive values are taken as UTC, so a caller's naive ``datetime.utcnow()`` isn't shifted by the
    server's time zone."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _from_db(value: datetime) -> datetime:
    """A ``timestamptz`` as read back: aware, and converted to UTC."""
    return value.astimezone(UTC)


def _row_to_record(row: tuple[Any, ...]) -> EventRecord:
    execution_id, seq, type_, version, step, payload, recorded_at = row
    return EventRecord(
        execution_id=execution_id,
        seq=seq,
        type=type_,
        version=version,
        step=step,
        payload=payload,
        recorded_at=_from_db(recorded_at),
    )


def _row_to_workflow(row: tuple[Any, ...]) -> WorkflowRecord:
    return row_to_workflow(row, lambda definition: definition, _from_db)


class PostgresEventStore(LeaseTables, EventStore):
    """Event store in a PostgreSQL database named by a libpq URL."""

    placeholder = "%s"

    def __init__(self, url: str, *, connect_timeout_s: int = 10) -> None:
        self.url = url
        self._connect_timeout_s = connect_timeout_s
        self._local = threading.local()
        self._connections: list[Conn] = []
        self._connections_lock = threading.Lock()
        self._in_use = OperationsInUse()
        with self._tx() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK_ID,))
            for statement in (*_SCHEMA, *LEASE_SCHEMA):
                conn.execute(statement)
            for table, statements in _MIGRATIONS.items():
                has_tenant = conn.execute(
                    "SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema() "
                    "AND table_name = %s AND column_name = 'tenant_id'",
                    (table,),
                ).fetchone()
                if has_tenant is None:
                    for statement in statements:
                        conn.execute(statement)

    def __repr__(self) -> str:
        # The URL may carry a password; the host and database are enough to tell stores apart.
        info = psycopg.conninfo.conninfo_to_dict(self.url)
        return f"PostgresEventStore(host={info.get('host')!r}, dbname={info.get('dbname')!r})"

    # -- connections ----------------------------------------------------------------------------------
    def _conn(self) -> Conn:
        conn: Conn | None = getattr(self._local, "conn", None)
        if conn is not None and not conn.closed and not conn.broken:
            return conn
        if self._in_use.closed:
            raise self._closed_error()
        try:
            conn = psycopg.connect(self.url, autocommit=False, connect_timeout=self._connect_timeout_s)
            # Session time zone UTC, so timestamptz values come back in UTC without a conversion per row.
            conn.execute("SET TIME ZONE 'UTC'")
            conn.commit()
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to the PostgreSQL event store {self!r}: {exc}") from exc
        self._local.conn = conn
        with self._connections_lock:
            self._connections.append(conn)
        return conn

    @contextlib.contextmanager
    def _tx(self) -> Iterator[Conn]:
        """One transaction; driver errors leave as StoreError (ConcurrencyConflict is raised inside)."""
        with self._in_use.enter(self._closed_error):
            conn = self._conn()
            try:
                with conn.transaction():
                    yield conn
            except psycopg.Error as exc:
                if conn.broken or conn.closed:
                    # The next call on this thread reconnects instead of failing forever.
                    self._local.conn = None
                    with self._connections_lock, contextlib.suppress(ValueError):
                        self._connections.remove(conn)
                raise StoreError(f"PostgreSQL event store {self!r}: {exc}") from exc

    @contextlib.contextmanager
    def _lease_tx(self) -> Iterator[tuple[Any, float]]:
        """The database's clock, not this machine's: hosts on several machines compare expiries."""
        with self._tx() as conn:
            row = conn.execute("SELECT extract(epoch FROM clock_timestamp())::float8").fetchone()
            assert row is not None
            yield conn, float(row[0])

    def _closed_error(self) -> StoreError:
        return StoreError(f"event store {self!r} is closed")

    def close(self) -> None:
        if not self._in_use.close(30.0):
            return
        with self._connections_lock:
            connections, self._connections = self._connections, []
        for conn in connections:
            with contextlib.suppress(psycopg.Error):
                conn.close()
        self._local = threading.local()

    # -- events -----------------------------------------------------------------------------------------
    def append(
        self,
        execution_id: str,
        records: Sequence[EventRecord],
        *,
        projection: ExecutionRow | None = None,
        fence: Fence | None = None,
    ) -> None:
        if not records and projection is None:
            return
        with self._tx() as conn:
            self._append_in(conn, execution_id, records, projection, fence)

    def append_batch(self, items: Sequence[AppendItem]) -> None:
        if not items:
            return
        with self._tx() as conn:
            fenced: set[Fence] = set()  # each partition's epoch is checked once per transaction
            for execution_id, records, projection, fence in items:
                if records or projection is not None:
                    self._append_in(conn, execution_id, records, projection, fence, fenced)

    def _append_in(
        self,
        conn: Any,
        execution_id: str,
        records: Sequence[EventRecord],
        projection: ExecutionRow | None,
        fence: Fence | None,
        fenced: set[Fence] | None = None,
    ) -> None:
        if fence is not None and (fenced is None or fence not in fenced):
            if fenced is not None:
                fenced.add(fence)
            check_fence(conn, "%s", execution_id, fence, lock="FOR SHARE")
        rows = [
            (r.execution_id, r.seq, r.type, r.version, r.step, payload_json(r), _utc(r.recorded_at))
            for r in records
        ]
        if rows:
            (last_seq,) = conn.execute(
                "SELECT COALESCE(MAX(seq), 0) FROM events WHERE execution_id = %s", (execution_id,)
            ).fetchone()
            check_sequence(execution_id, records, last_seq)
            try:
                with conn.cursor() as cur:
                    cur.executemany(
                        "INSERT INTO events (execution_id, seq, type, version, step, payload, "
                        "recorded_at) VALUES (%s, %s, %s, %s, %s, %s::jsonb, %s)",
                        rows,
                    )
            except psycopg.errors.UniqueViolation as exc:
                # A concurrent writer committed the same seq between our read and our insert.
                raise ConcurrencyConflict(
                    f"execution {execution_id!r}: seq {records[0].seq} was appended concurrently by "
                    "another writer; reload the execution and decide again"
                ) from exc
        binding = started_idempotency_binding(records)
        if binding is not None:
            _claim_on_start(conn, binding, execution_id)
        if projection is not None:
            conn.execute(_UPSERT_EXECUTION, execution_params(projection, _utc))

    def load(self, execution_id: str, *, after_seq: int = 0) -> list[EventRecord]:
        with self._tx() as conn:
            rows = conn.execute(
                f"{SELECT_EVENT} WHERE execution_id = %s AND seq > %s ORDER BY seq",
                (execution_id, after_seq),
            ).fetchall()
        return [_row_to_record(row) for row in rows]

    def iter_records(
        self,
        *,
        execution_ids: Sequence[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        batch_size: int = 5000,
    ) -> Iterator[EventRecord]:
        """Keyset-paginated, one short transaction per batch, so a slow consumer of a long export never
        holds a transaction (and with it vacuum) open."""
        clauses = ["(execution_id, seq) > (%s, %s)"]
        params: list[Any] = []
        if execution_ids is not None:
            clauses.append("execution_id = ANY(%s)")
            params.append(list(execution_ids))
        if since is not None:
            clauses.append("recorded_at >= %s")
            params.append(_utc(since))
        if until is not None:
            clauses.append("recorded_at < %s")
            params.append(_utc(until))
        sql = f"{SELECT_EVENT} WHERE {' AND '.join(clauses)} ORDER BY execution_id, seq LIMIT %s"
        after: tuple[str, int] = ("", -1)
        while True:
            with self._tx() as conn:
                rows = conn.execute(sql, [*after, *params, batch_size]).fetchall()
            for row in rows:
                yield _row_to_record(row)
            if len(rows) < batch_size:
                return
            after = (rows[-1][0], rows[-1][1])

    # -- projection -------------------------------------------------------------------------------------
    def get_execution(self, execution_id: str) -> ExecutionRow | None:
        with self._tx() as conn:
            row = conn.execute(f"{SELECT_EXECUTION} WHERE id = %s", (execution_id,)).fetchone()
        return row_to_execution(row, _from_db) if row is not None else None

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
        count_sql, page_sql, params = list_executions_sql(
            "%s",
            tenant_id=tenant_id,
            status=status,
            workflow_name=workflow_name,
            workflow_id=workflow_id,
            dialect=dialect,
        )
        with self._tx() as conn:
            # REPEATABLE READ: the total and the page come from one snapshot.
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            (total,) = conn.execute(count_sql, params).fetchone()  # type: ignore[misc]
            rows = conn.execute(page_sql, [*params, limit, offset]).fetchall()
        return Page(rows=[row_to_execution(row, _from_db) for row in rows], total=total)

    def non_terminal_ids(self) -> list[str]:
        with self._tx() as conn:
            rows = conn.execute(
                "SELECT id FROM executions WHERE status <> ALL(%s) ORDER BY created_at, id", (_TERMINAL,)
            ).fetchall()
        return [row[0] for row in rows]

    def prune(self, *, finished_before: datetime) -> int:
        """Also forgets idempotency keys bound to the pruned executions: a retried request after
        pruning would otherwise be answered with an id that no longer resolves."""
        with self._tx() as conn:
            # The projection rows go first and name the logs to delete, so an execution that turns
            # terminal meanwhile is either pruned whole or not at all.
            doomed = [
                row[0]
                for row in conn.execute(
                    "DELETE FROM executions WHERE status = ANY(%s) "
                    "AND COALESCE(completed_at, created_at) < %s RETURNING id",
                    (_TERMINAL, _utc(finished_before)),
                )
            ]
            if doomed:
                conn.execute("DELETE FROM events WHERE execution_id = ANY(%s)", (doomed,))
                conn.execute("DELETE FROM idempotency_keys WHERE execution_id = ANY(%s)", (doomed,))
        return len(doomed)

    # -- idempotency ------------------------------------------------------------------------------------
    def claim_idempotency_key(self, key: str, execution_id: str, *, tenant_id: str = "default") -> str:
        with self._tx() as conn:
            conn.execute(_CLAIM_INSERT, (tenant_id, key, execution_id))
            (bound,) = conn.execute(_CLAIM_SELECT, (tenant_id, key)).fetchone()  # type: ignore[misc]
        return str(bound)

    def idempotency_key_owner(self, key: str, *, tenant_id: str) -> tuple[str, str | None] | None:
        with self._tx() as conn:
            row = conn.execute(_IDEMPOTENCY_OWNER, (tenant_id, key)).fetchone()
        return (str(row[0]), row[1]) if row is not None else None

    # -- workflow registry ------------------------------------------------------------------------------
    def put_workflow(self, record: WorkflowRecord) -> None:
        definition = json.dumps(record.definition, separators=(",", ":"))
        tenant = namespace(record.tenant_id)
        with self._tx() as conn:
            inserted = conn.execute(
                f"INSERT INTO workflows ({WORKFLOW_COLUMNS}) VALUES (%s, %s, %s, %s::jsonb, %s) "
                "ON CONFLICT (tenant_id, workflow_id, version) DO NOTHING",
                (tenant, record.workflow_id, record.version, definition, _utc(record.registered_at)),
            ).rowcount
            if inserted:
                return
            row = conn.execute(
                "SELECT definition FROM workflows WHERE tenant_id = %s AND workflow_id = %s AND version = %s",
                (tenant, record.workflow_id, record.version),
            ).fetchone()
        # Compared as parsed JSON: JSONB does not keep key order or whitespace.
        if row is None or row[0] != json.loads(definition):
            raise Conflict(version_exists_message(record), code="VERSION_EXISTS")

    def get_workflow(
        self, workflow_id: str, version: str | None = None, *, tenant_id: str | None = None
    ) -> WorkflowRecord | None:
        namespaces = list(visible_namespaces(tenant_id))
        with self._tx() as conn:
            rows = conn.execute(
                "SELECT tenant_id, version FROM workflows WHERE workflow_id = %s AND tenant_id = ANY(%s)",
                (workflow_id, namespaces),
            ).fetchall()
            chosen = pick_version([(r[0], r[1]) for r in rows], tenant_id, version, version_key)
            if chosen is None:
                return None
            row = conn.execute(
                f"SELECT {WORKFLOW_COLUMNS} FROM workflows "
                "WHERE tenant_id = %s AND workflow_id = %s AND version = %s",
                (chosen[0], workflow_id, chosen[1]),
            ).fetchone()
        return _row_to_workflow(row) if row is not None else None

    def list_workflows(self, *, tenant_id: str | None = None) -> list[WorkflowRecord]:
        with self._tx() as conn:
            rows = conn.execute(
                f"SELECT {WORKFLOW_COLUMNS} FROM workflows WHERE tenant_id = ANY(%s)",
                (list(visible_namespaces(tenant_id)),),
            ).fetchall()
        return latest_versions(shadowed([_row_to_workflow(row) for row in rows], tenant_id))

    # -- API keys ---------------------------------------------------------------------------------------
    def create_api_key(self, record: ApiKeyRecord) -> None:
        with self._tx() as conn:
            inserted = conn.execute(
                f"{_INSERT_API_KEY} ON CONFLICT (id) DO NOTHING", api_key_params(record, _utc)
            ).rowcount
        if not inserted:
            raise ConcurrencyConflict(f"an API key with id {record.id!r} already exists")

    def get_api_key(self, key_id: str) -> ApiKeyRecord | None:
        with self._tx() as conn:
            row = conn.execute(f"{SELECT_API_KEY} WHERE id = %s", (key_id,)).fetchone()
        return row_to_api_key(row, _from_db) if row is not None else None

    def list_api_keys(self, *, tenant_id: str | None = None) -> list[ApiKeyRecord]:
        with self._tx() as conn:
            if tenant_id is None:
                rows = conn.execute(f"{SELECT_API_KEY} ORDER BY created_at, id").fetchall()
            else:
                rows = conn.execute(
                    f"{SELECT_API_KEY} WHERE tenant_id = %s ORDER BY created_at, id", (tenant_id,)
                ).fetchall()
        return [row_to_api_key(row, _from_db) for row in rows]

    def revoke_api_key(self, key_id: str) -> bool:
        with self._tx() as conn:
            return conn.execute("UPDATE api_keys SET revoked = TRUE WHERE id = %s", (key_id,)).rowcount > 0

    def touch_api_key(self, key_id: str, at: datetime) -> None:
        with self._tx() as conn:
            conn.execute("UPDATE api_keys SET last_used_at = %s WHERE id = %s", (_utc(at), key_id))


def _claim_on_start(conn: Any, binding: IdempotencyBinding, execution_id: str) -> None:
    """Inside the first append's transaction: its events and its key are written together or not at all."""
    holder = claim_on_start(
        conn, "%s", binding.tenant_id, binding.key, execution_id, binding.request_hash, lock="FOR UPDATE"
    )
    if holder is not None:
        raise IdempotencyKeyTaken(
            f"idempotency key {binding.key!r} is bound to execution {holder[0]!r}; answer with that execution",
            details={"execution_id": holder[0], "request_hash": holder[1]},
        )

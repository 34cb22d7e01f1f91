"""SQL shared by the SQLite and PostgreSQL backends: the executions projection and its queries, the
idempotency bindings, API keys and the tenant-aware choice among registered workflow versions.

Both backends store the same ``executions`` table; they differ only in the placeholder style
(``?`` for sqlite3, ``%s`` for psycopg) and in how a time is stored (fixed-width ISO text in SQLite,
``timestamptz`` in PostgreSQL). So the column list, the statements and the mapping between a database
row and :class:`~orchestrator.store.base.ExecutionRow` live here once, and each backend passes its
placeholder and its two time conversions.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from orchestrator.store.base import ApiKeyRecord, ExecutionRow, WorkflowRecord

EXECUTION_COLUMNS = (
    "id",
    "workflow_name",
    "workflow_id",
    "workflow_version",
    "tenant_id",
    "status",
    "dialect",
    "placement",
    "started_at",
    "completed_at",
    "duration_ms",
    "error",
    "last_seq",
    "created_at",
)
TIME_COLUMNS = frozenset({"started_at", "completed_at", "created_at"})

SELECT_EXECUTION = f"SELECT {', '.join(EXECUTION_COLUMNS)} FROM executions"
SELECT_EVENT = "SELECT execution_id, seq, type, version, step, payload, recorded_at FROM events"

# What list_executions can filter on, all by equality, in this order.
_FILTER_COLUMNS = ("tenant_id", "status", "workflow_name", "workflow_id", "dialect")


# What changes after an execution's first append; the other columns (its workflow, tenant, dialect,
# placement, creation time) are fixed by its start. Updating only these keeps the list indexes on the
# fixed columns untouched by every later append.
MUTABLE_COLUMNS = ("status", "started_at", "completed_at", "duration_ms", "error", "last_seq")


def upsert_execution_sql(placeholder: str) -> str:
    """Insert a projection row, or update the columns that can change of the existing one."""
    return (
        f"INSERT INTO executions ({', '.join(EXECUTION_COLUMNS)}) "
        f"VALUES ({', '.join(placeholder for _ in EXECUTION_COLUMNS)}) "
        "ON CONFLICT (id) DO UPDATE SET " + ", ".join(f"{c} = EXCLUDED.{c}" for c in MUTABLE_COLUMNS)
    )


def execution_params(row: ExecutionRow, encode_time: Callable[[datetime], Any]) -> tuple[Any, ...]:
    """The row's values in :data:`EXECUTION_COLUMNS` order; set times go through ``encode_time``."""
    values = []
    for column in EXECUTION_COLUMNS:
        value = getattr(row, column)
        values.append(encode_time(value) if column in TIME_COLUMNS and value is not None else value)
    return tuple(values)


def row_to_execution(row: tuple[Any, ...], decode_time: Callable[[Any], datetime]) -> ExecutionRow:
    """A row selected with :data:`SELECT_EXECUTION`; set times go through ``decode_time``."""
    data = dict(zip(EXECUTION_COLUMNS, row, strict=True))
    for column in TIME_COLUMNS:
        if data[column] is not None:
            data[column] = decode_time(data[column])
    return ExecutionRow(**data)


def list_executions_sql(
    placeholder: str,
    *,
    tenant_id: str | None,
    status: str | None,
    workflow_name: str | None,
    workflow_id: str | None,
    dialect: str | None = None,
) -> tuple[str, str, list[Any]]:
    """``(count_sql, page_sql, params)`` for a filtered listing, newest first.

    ``count_sql`` takes ``params``; ``page_sql`` takes ``params`` followed by the limit and the offset.
    """
    clauses: list[str] = []
    params: list[Any] = []
    values = (tenant_id, status, workflow_name, workflow_id, dialect)
    for column, value in zip(_FILTER_COLUMNS, values, strict=True):
        if value is not None:
            clauses.append(f"{column} = {placeholder}")
            params.append(value)
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    count_sql = f"SELECT COUNT(*) FROM executions{where}"
    page_sql = (
        f"{SELECT_EXECUTION}{where} ORDER BY created_at DESC, id DESC "
        f"LIMIT {placeholder} OFFSET {placeholder}"
    )
    return count_sql, page_sql, params


def claim_on_start(
    conn: Any,
    placeholder: str,
    tenant_id: str,
    key: str,
    execution_id: str,
    request_hash: str | None,
    *,
    lock: str = "",
) -> tuple[str, str | None] | None:
    """Inside an execution's first append: bind ``key`` (in ``tenant_id``, with the request's
    fingerprint) to it, or take the key over from an execution that has no events (only a claim made
    apart from an append can leave one). Returns ``(execution_id, request_hash)`` of the other
    execution that holds the key, if one does.

    Separate statements, not one upsert: under PostgreSQL's READ COMMITTED each statement sees what
    committed before it, so a concurrent start's events are seen once its key row is (``lock`` is
    ``FOR UPDATE`` there; SQLite's single writer needs none)."""
    p = placeholder
    conn.execute(
        f"INSERT INTO idempotency_keys (tenant_id, key, execution_id, request_hash) VALUES ({p}, {p}, {p}, {p}) "
        "ON CONFLICT (tenant_id, key) DO NOTHING",
        (tenant_id, key, execution_id, request_hash),
    )
    row = conn.execute(
        f"SELECT execution_id, request_hash FROM idempotency_keys WHERE tenant_id = {p} AND key = {p} {lock}",
        (tenant_id, key),
    ).fetchone()
    holder, holder_hash = str(row[0]), row[1]
    if holder == execution_id:
        return None
    has_events = conn.execute(f"SELECT 1 FROM events WHERE execution_id = {p} LIMIT 1", (holder,)).fetchone()
    if has_events is not None:
        return holder, holder_hash
    conn.execute(
        f"UPDATE idempotency_keys SET execution_id = {p}, request_hash = {p} WHERE tenant_id = {p} AND key = {p}",
        (execution_id, request_hash, tenant_id, key),
    )
    return None


def claim_key_sql(placeholder: str) -> tuple[str, str]:
    """``(insert, select)`` of a claim made apart from an append; both take ``(tenant_id, key, ...)``."""
    p = placeholder
    return (
        f"INSERT INTO idempotency_keys (tenant_id, key, execution_id) VALUES ({p}, {p}, {p}) "
        "ON CONFLICT (tenant_id, key) DO NOTHING",
        f"SELECT execution_id FROM idempotency_keys WHERE tenant_id = {p} AND key = {p}",
    )


def idempotency_owner_sql(placeholder: str) -> str:
    """Takes ``(tenant_id, key)``; selects ``(execution_id, request_hash)``."""
    return (
        "SELECT k.execution_id, k.request_hash FROM idempotency_keys k "
        f"WHERE k.tenant_id = {placeholder} AND k.key = {placeholder} "
        "AND EXISTS (SELECT 1 FROM events e WHERE e.execution_id = k.execution_id)"
    )


# -- registered workflows: namespaces -------------------------------------------------------------------
# Shared workflows are stored under the empty tenant (NULL cannot be part of a primary key in
# PostgreSQL); WorkflowRecord forbids an empty tenant name, so the two never mix.

SHARED = ""
WORKFLOW_COLUMNS = "tenant_id, workflow_id, version, definition, registered_at"


def namespace(tenant_id: str | None) -> str:
    """The stored ``tenant_id`` of a namespace: the tenant, or :data:`SHARED`."""
    return tenant_id if tenant_id is not None else SHARED


def visible_namespaces(tenant_id: str | None) -> tuple[str, ...]:
    """The stored namespaces a caller sees: the shared one, and its own."""
    return (SHARED,) if tenant_id is None else (SHARED, tenant_id)


def pick_version(
    rows: list[tuple[str, str]], tenant_id: str | None, version: str | None, version_key: Callable[[str], Any]
) -> tuple[str, str] | None:
    """Among ``(namespace, version)`` rows of one workflow id in :func:`visible_namespaces`: the
    ``(namespace, version)`` to load. The tenant's own namespace shadows the shared one whenever it
    holds any version of the id."""
    if tenant_id is not None and any(ns == tenant_id for ns, _ in rows):
        rows = [row for row in rows if row[0] == tenant_id]
    else:
        rows = [row for row in rows if row[0] == SHARED]
    if version is not None:
        return next((row for row in rows if row[1] == version), None)
    return max(rows, key=lambda row: version_key(row[1])) if rows else None


def shadowed(records: list[WorkflowRecord], tenant_id: str | None) -> list[WorkflowRecord]:
    """``records`` from :func:`visible_namespaces` without the shared ones whose id the tenant has."""
    own = {r.workflow_id for r in records if tenant_id is not None and r.tenant_id == tenant_id}
    return [r for r in records if r.tenant_id is not None or r.workflow_id not in own]


def row_to_workflow(
    row: tuple[Any, ...], decode_definition: Callable[[Any], Any], decode_time: Callable[[Any], datetime]
) -> WorkflowRecord:
    """A row selected with :data:`WORKFLOW_COLUMNS`."""
    tenant_id, workflow_id, version, definition, registered_at = row
    return WorkflowRecord(
        tenant_id=tenant_id or None,
        workflow_id=workflow_id,
        version=version,
        definition=decode_definition(definition),
        registered_at=decode_time(registered_at),
    )


# -- API keys -------------------------------------------------------------------------------------------

API_KEY_COLUMNS = ("id", "tenant_id", "role", "name", "key_hash", "created_at", "last_used_at", "revoked")
SELECT_API_KEY = f"SELECT {', '.join(API_KEY_COLUMNS)} FROM api_keys"


def insert_api_key_sql(placeholder: str) -> str:
    return (
        f"INSERT INTO api_keys ({', '.join(API_KEY_COLUMNS)}) "
        f"VALUES ({', '.join(placeholder for _ in API_KEY_COLUMNS)})"
    )


def api_key_params(record: ApiKeyRecord, encode_time: Callable[[datetime], Any]) -> tuple[Any, ...]:
    return (
        record.id,
        record.tenant_id,
        record.role,
        record.name,
        record.key_hash,
        encode_time(record.created_at),
        encode_time(record.last_used_at) if record.last_used_at is not None else None,
        record.revoked,
    )


def row_to_api_key(row: tuple[Any, ...], decode_time: Callable[[Any], datetime]) -> ApiKeyRecord:
    data = dict(zip(API_KEY_COLUMNS, row, strict=True))
    data["created_at"] = decode_time(data["created_at"])
    if data["last_used_at"] is not None:
        data["last_used_at"] = decode_time(data["last_used_at"])
    data["revoked"] = bool(data["revoked"])
    return ApiKeyRecord(**data)

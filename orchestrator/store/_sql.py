"""SQL shared by the SQLite and PostgreSQL backends: the executions projection and its queries.

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

from orchestrator.store.base import ExecutionRow

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
_FILTER_COLUMNS = ("tenant_id", "status", "workflow_name", "workflow_id")


def upsert_execution_sql(placeholder: str) -> str:
    """Insert a projection row, or overwrite every column but the id of the existing one."""
    return (
        f"INSERT INTO executions ({', '.join(EXECUTION_COLUMNS)}) "
        f"VALUES ({', '.join(placeholder for _ in EXECUTION_COLUMNS)}) "
        "ON CONFLICT (id) DO UPDATE SET "
        + ", ".join(f"{c} = EXCLUDED.{c}" for c in EXECUTION_COLUMNS if c != "id")
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
) -> tuple[str, str, list[Any]]:
    """``(count_sql, page_sql, params)`` for a filtered listing, newest first.

    ``count_sql`` takes ``params``; ``page_sql`` takes ``params`` followed by the limit and the offset.
    """
    clauses: list[str] = []
    params: list[Any] = []
    for column, value in zip(_FILTER_COLUMNS, (tenant_id, status, workflow_name, workflow_id), strict=True):
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


def claim_on_start(conn: Any, placeholder: str, key: str, execution_id: str, *, lock: str = "") -> str | None:
    """Inside an execution's first append: bind ``key`` to it, or take the key over from an execution
    that has no events (only a claim made apart from an append can leave one). Returns the other
    execution that holds the key, if one does.

    Separate statements, not one upsert: under PostgreSQL's READ COMMITTED each statement sees what
    committed before it, so a concurrent start's events are seen once its key row is (``lock`` is
    ``FOR UPDATE`` there; SQLite's single writer needs none)."""
    conn.execute(
        f"INSERT INTO idempotency_keys (key, execution_id) VALUES ({placeholder}, {placeholder}) "
        "ON CONFLICT (key) DO NOTHING",
        (key, execution_id),
    )
    row = conn.execute(
        f"SELECT execution_id FROM idempotency_keys WHERE key = {placeholder} {lock}", (key,)
    ).fetchone()
    holder = str(row[0])
    if holder == execution_id:
        return None
    has_events = conn.execute(
        f"SELECT 1 FROM events WHERE execution_id = {placeholder} LIMIT 1", (holder,)
    ).fetchone()
    if has_events is not None:
        return holder
    conn.execute(
        f"UPDATE idempotency_keys SET execution_id = {placeholder} WHERE key = {placeholder}",
        (execution_id, key),
    )
    return None


def idempotency_owner_sql(placeholder: str) -> str:
    return (
        f"SELECT k.execution_id FROM idempotency_keys k WHERE k.key = {placeholder} "
        "AND EXISTS (SELECT 1 FROM events e WHERE e.execution_id = k.execution_id)"
    )

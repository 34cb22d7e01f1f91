"""The ``sql`` connector: capabilities are named, parameterised statements against SQLite or PostgreSQL.

Values are always bound, never interpolated: statements are written with ``:name`` placeholders (the form
SQLite understands natively) and, for psycopg, rewritten to ``%(name)s`` by a scanner that leaves string
literals, quoted identifiers, comments, dollar quotes and ``::`` casts alone. Planner- or user-supplied text
therefore can never change the statement that runs.

Configuration::

    url: sqlite:///path/to.db | postgresql://user:pass@host/db   (or ``path:`` for SQLite)
    statements:
      get_project: {sql: "SELECT ... WHERE id = :project_id", mode: query, single: true}
      close_project: {sql: "UPDATE projects SET status = 'closed' WHERE id = :project_id", mode: execute}
    init: ["CREATE TABLE IF NOT EXISTS ..."]     # run at every connect
    seed: package.module:function               # called with the open connection at connect
    timeout: 30                                 # seconds per statement, unless the call gives one
    pool_size: 4                                # PostgreSQL connections
    max_rows: 1000                              # larger results are cut and marked ``truncated``

A capability picks its statement with ``binding: {statement: name}`` or carries it inline as
``binding: {sql: ..., mode: ..., single: ...}``; without a binding the statement named like the capability
is used. A statement's own ``mode`` wins over the step's, because only the statement knows whether it returns
rows. Every statement can bind ``:idempotency_key`` (and ``:execution_id``, ``:step``) from the call context,
so a write can be made idempotent with a unique key column.

Errors: SQL errors are :class:`ConnectorCallError` (not retryable, except serialization failures and
deadlocks); a database that cannot be reached or is locked is :class:`ConnectorUnavailable`; a statement that
runs out of time is :class:`ConnectorTimeout`.
"""

from __future__ import annotations

import abc
import asyncio
import base64
import contextlib
import datetime as dt
import decimal
import importlib
import inspect
import json
import re
import sqlite3
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal
from urllib.parse import urlsplit, urlunsplit

from agents.connectors.base import (
    CallContext,
    CapabilitySpec,
    Connector,
    ConnectorCallError,
    ConnectorError,
    ConnectorTimeout,
    ConnectorUnavailable,
)

if TYPE_CHECKING:
    import psycopg

__all__ = ["SQLConnector", "Statement", "bind_names", "to_pyformat"]

Mode = Literal["query", "execute"]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DOLLAR_TAG = re.compile(r"\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$")


# -- placeholders -------------------------------------------------------------------------------------------


def _scan(sql: str) -> list[tuple[bool, str]]:
    """Split SQL into ``(is_param, text)`` pieces; ``text`` is the parameter name for parameters."""
    pieces: list[tuple[bool, str]] = []
    start = i = 0
    n = len(sql)
    while i < n:
        ch = sql[i]
        if ch == "'":
            # E'...' strings allow backslash escapes; plain ones only double the quote.
            backslash = (
                i > 0 and sql[i - 1] in "eE" and (i == 1 or not (sql[i - 2].isalnum() or sql[i - 2] == "_"))
            )
            i += 1
            while i < n:
                if backslash and sql[i] == "\\":
                    i += 2
                    continue
                if sql[i] == "'":
                    if i + 1 < n and sql[i + 1] == "'":
                        i += 2
                        continue
                    break
                i += 1
            i += 1
        elif ch == '"':
            end = sql.find('"', i + 1)
            i = n if end < 0 else end + 1
        elif sql.startswith("--", i):
            end = sql.find("\n", i)
            i = n if end < 0 else end + 1
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            i = n if end < 0 else end + 2
        elif (
            ch == "$"
            and (tag := _DOLLAR_TAG.match(sql, i))
            and not (i > 0 and (sql[i - 1].isalnum() or sql[i - 1] == "_"))
        ):
            end = sql.find(tag.group(0), tag.end())
            i = n if end < 0 else end + len(tag.group(0))
        elif ch == ":":
            if sql.startswith("::", i):
                i += 2
                continue
            name = _NAME.match(sql, i + 1)
            if name is None:
                i += 1
                continue
            if start < i:
                pieces.append((False, sql[start:i]))
            pieces.append((True, name.group(0)))
            i = start = name.end()
        else:
            i += 1
    if start < n:
        pieces.append((False, sql[start:]))
    return pieces


def bind_names(sql: str) -> list[str]:
    """The ``:name`` parameters a statement binds, in order of first use."""
    return list(dict.fromkeys(text for is_param, text in _scan(sql) if is_param))


def to_pyformat(sql: str) -> str:
    """Rewrite ``:name`` to psycopg's ``%(name)s``; every literal ``%`` is doubled because psycopg reads
    placeholders everywhere once parameters are passed."""
    return "".join(f"%({text})s" if is_param else text.replace("%", "%%") for is_param, text in _scan(sql))


# -- statements ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Statement:
    name: str
    sql: str
    mode: Mode | None = None
    single: bool = False

    @classmethod
    def parse(cls, name: str, raw: Any, *, connector: str) -> Statement:
        if isinstance(raw, str):
            raw = {"sql": raw}
        if not isinstance(raw, dict) or not isinstance(raw.get("sql"), str) or not raw["sql"].strip():
            raise _misconfigured(f"statement {name!r} of connector {connector!r} needs an 'sql' string")
        mode = raw.get("mode")
        if mode not in (None, "query", "execute"):
            raise _misconfigured(
                f"statement {name!r} of connector {connector!r} has mode {mode!r}; use 'query' or 'execute'"
            )
        return cls(name=name, sql=raw["sql"], mode=mode, single=bool(raw.get("single", False)))


def _misconfigured(message: str) -> ConnectorError:
    return ConnectorError(message, retryable=False, code="CONNECTOR_MISCONFIGURED")


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _jsonable(value: Any) -> Any:
    """Row values as JSON types: step outputs land in the event log and in API responses."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return str(value)


def _load_callable(path: str) -> Callable[..., Any]:
    module_name, sep, attr = path.partition(":")
    if not sep:
        module_name, _, attr = path.rpartition(".")
    try:
        target: object = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError) as exc:
        raise _misconfigured(f"seed {path!r} cannot be imported: {exc}") from exc
    if not callable(target):
        raise _misconfigured(f"seed {path!r} is not callable")
    return target


# -- backends -----------------------------------------------------------------------------------------------


class _Backend(abc.ABC):
    @abc.abstractmethod
    async def open(self) -> None: ...

    @abc.abstractmethod
    async def run(
        self, statement: Statement, params: dict[str, Any], mode: Mode, timeout: float
    ) -> dict[str, Any]: ...

    @abc.abstractmethod
    async def close(self) -> None: ...


class _SQLiteBackend(_Backend):
    """One connection in autocommit mode, used from worker threads one statement at a time (sqlite3 leaves
    serialising a shared connection to the caller)."""

    def __init__(self, owner: SQLConnector, path: str) -> None:
        self.owner = owner
        self.path = path
        self.conn: sqlite3.Connection | None = None
        self.lock = asyncio.Lock()

    async def open(self) -> None:
        self.conn = await asyncio.to_thread(self._open)

    def _open(self) -> sqlite3.Connection:
        try:
            if self.path != ":memory:" and not self.path.startswith("file:"):
                Path(self.path).expanduser().parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self.path,
                timeout=self.owner.busy_timeout,
                isolation_level=None,
                check_same_thread=False,
                uri=self.path.startswith("file:"),
            )
        except (sqlite3.Error, OSError) as exc:
            raise ConnectorUnavailable(
                f"connector {self.owner.name!r} cannot open SQLite database {self.path!r}: {exc}"
            ) from exc
        try:
            conn.row_factory = sqlite3.Row
            if self.path != ":memory:" and self.owner.wal:
                # readers no longer block the writer; harmless to fail on a read-only file
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("PRAGMA journal_mode=WAL")
            for script in self.owner.init:
                conn.executescript(script)
            if self.owner.seed is not None:
                self.owner.seed(conn)
        except sqlite3.Error as exc:
            conn.close()
            transient = any(word in str(exc).lower() for word in ("locked", "busy"))
            raise ConnectorUnavailable(
                f"connector {self.owner.name!r} could not prepare {self.path!r}: {exc}", retryable=transient
            ) from exc
        except ConnectorError:
            conn.close()
            raise
        except Exception as exc:
            conn.close()
            raise _misconfigured(f"seed of connector {self.owner.name!r} failed: {exc!r}") from exc
        return conn

    async def run(
        self, statement: Statement, params: dict[str, Any], mode: Mode, timeout: float
    ) -> dict[str, Any]:
        conn = self.conn
        assert conn is not None
        bound = {k: json.dumps(v) if isinstance(v, dict | list) else v for k, v in params.items()}
        async with self.lock:
            work = asyncio.ensure_future(asyncio.to_thread(self._run, conn, statement, bound, mode))
            try:
                return await asyncio.wait_for(asyncio.shield(work), timeout)
            except TimeoutError:
                conn.interrupt()
                with contextlib.suppress(Exception):
                    await work
                raise ConnectorTimeout(
                    f"statement {statement.name!r} on connector {self.owner.name!r} "
                    f"took longer than {timeout}s"
                ) from None
            except asyncio.CancelledError:
                conn.interrupt()
                raise

    def _run(
        self, conn: sqlite3.Connection, statement: Statement, params: dict[str, Any], mode: Mode
    ) -> dict[str, Any]:
        try:
            cursor = conn.execute(statement.sql, params)
            rows = cursor.fetchmany(self.owner.max_rows + 1) if cursor.description else []
            result: dict[str, Any] = {"rows": [dict(r) for r in rows]}
            if mode == "execute":
                # rowcount is only final once the statement has run to completion
                cursor.fetchall()
                result["rows_affected"] = cursor.rowcount
                result["lastrowid"] = cursor.lastrowid
            cursor.close()
            return result
        except sqlite3.Error as exc:
            raise self._translate(statement, exc) from exc

    def _translate(self, statement: Statement, exc: sqlite3.Error) -> ConnectorError:
        message = f"statement {statement.name!r} on connector {self.owner.name!r} failed: {exc}"
        text = str(exc).lower()
        if isinstance(exc, sqlite3.OperationalError):
            if "interrupted" in text:
                return ConnectorTimeout(message)
            if "locked" in text or "busy" in text or "unable to open" in text or "disk i/o" in text:
                return ConnectorUnavailable(message)
        return ConnectorCallError(message)

    async def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            async with self.lock:
                await asyncio.to_thread(conn.close)


class _PostgresBackend(_Backend):
    """A small pool of autocommit ``psycopg.AsyncConnection`` s: connections that break or are abandoned
    mid-statement (timeout, cancellation) are dropped rather than reused in an unknown state."""

    def __init__(self, owner: SQLConnector, url: str) -> None:
        self.owner = owner
        self.url = url
        self.idle: list[psycopg.AsyncConnection[Any]] = []
        self.slots = asyncio.Semaphore(owner.pool_size)

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        import psycopg
        from psycopg.rows import dict_row

        try:
            return await psycopg.AsyncConnection.connect(
                self.url, autocommit=True, row_factory=dict_row, connect_timeout=self.owner.connect_timeout
            )
        except (psycopg.Error, OSError) as exc:
            raise ConnectorUnavailable(
                f"connector {self.owner.name!r} cannot connect to {_redact(self.url)}: {exc}"
            ) from exc

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        import psycopg

        async with self.slots:
            conn = self.idle.pop() if self.idle else await self._connect()
            try:
                yield conn
            except psycopg.Error:
                self._release(conn)
                raise
            except BaseException:
                # abandoned mid-statement (timeout, cancellation): stop the server-side work, then drop it
                with contextlib.suppress(Exception):
                    await conn.cancel_safe(timeout=2)
                await conn.close()
                raise
            else:
                self._release(conn)

    def _release(self, conn: psycopg.AsyncConnection[Any]) -> None:
        if not conn.closed and not conn.broken:
            self.idle.append(conn)

    async def open(self) -> None:
        import psycopg

        async with self.connection() as conn:
            try:
                for script in self.owner.init:
                    await conn.execute(script.encode())  # bytes: run verbatim, no placeholder parsing
                if self.owner.seed is not None:
                    if inspect.iscoroutinefunction(self.owner.seed):
                        await self.owner.seed(conn)
                    else:
                        await asyncio.to_thread(self._seed_sync)
            except psycopg.Error as exc:
                raise ConnectorUnavailable(
                    f"connector {self.owner.name!r} could not prepare {_redact(self.url)}: {exc}",
                    retryable=False,
                ) from exc

    def _seed_sync(self) -> None:
        import psycopg

        assert self.owner.seed is not None
        with psycopg.connect(self.url, autocommit=True, connect_timeout=self.owner.connect_timeout) as conn:
            self.owner.seed(conn)

    async def run(
        self, statement: Statement, params: dict[str, Any], mode: Mode, timeout: float
    ) -> dict[str, Any]:
        import psycopg
        from psycopg.types.json import Jsonb

        bound = {k: Jsonb(v) if isinstance(v, dict) else v for k, v in params.items()}
        query = to_pyformat(statement.sql)
        try:
            async with asyncio.timeout(timeout), self.connection() as conn, conn.cursor() as cursor:
                await cursor.execute(query.encode(), bound)
                rows = await cursor.fetchmany(self.owner.max_rows + 1) if cursor.description else []
                result: dict[str, Any] = {"rows": rows}
                if mode == "execute":
                    result["rows_affected"] = cursor.rowcount
                return result
        except TimeoutError:
            raise ConnectorTimeout(
                f"statement {statement.name!r} on connector {self.owner.name!r} took longer than {timeout}s"
            ) from None
        except psycopg.Error as exc:
            raise self._translate(statement, exc) from exc

    def _translate(self, statement: Statement, exc: psycopg.Error) -> ConnectorError:
        from psycopg import errors

        detail = f"{exc.sqlstate}: {exc}" if exc.sqlstate else str(exc)
        message = f"statement {statement.name!r} on connector {self.owner.name!r} failed: {detail}".strip()
        if isinstance(exc, errors.QueryCanceled):
            return ConnectorTimeout(message)
        if isinstance(exc, errors.TransactionRollback):  # serialization failure, deadlock: try again
            return ConnectorCallError(message, retryable=True)
        if isinstance(exc, errors.OperationalError | errors.InterfaceError):
            return ConnectorUnavailable(message)
        return ConnectorCallError(message)

    async def close(self) -> None:
        idle, self.idle = self.idle, []
        for conn in idle:
            await conn.close()


# -- connector ----------------------------------------------------------------------------------------------


class SQLConnector(Connector):
    type: ClassVar[str] = "sql"

    def __init__(self, name: str, config: dict[str, Any], *, secrets: Iterable[str] = ()) -> None:
        super().__init__(name, config, secrets=secrets)
        url = config.get("url")
        if not url and config.get("path"):
            url = f"sqlite:///{config['path']}"
        if not isinstance(url, str) or not url:
            raise _misconfigured(
                f"connector {name!r} needs 'url' (sqlite:///path or postgresql://...) or 'path'"
            )
        statements = config.get("statements") or {}
        if not isinstance(statements, dict):
            raise _misconfigured(f"'statements' of connector {name!r} must map names to statements")
        self.statements = {key: Statement.parse(key, raw, connector=name) for key, raw in statements.items()}
        init = config.get("init") or []
        self.init: list[str] = [init] if isinstance(init, str) else list(init)
        seed = config.get("seed")
        self.seed: Callable[..., Any] | None = _load_callable(seed) if seed else None
        self.timeout = float(config.get("timeout", 30))
        self.connect_timeout = int(config.get("connect_timeout", 10))
        self.busy_timeout = float(config.get("busy_timeout", 5))
        self.pool_size = int(config.get("pool_size", 4))
        self.max_rows = int(config.get("max_rows", 1000))
        self.wal = bool(config.get("wal", True))

        self.url = url
        self._backend: _Backend
        if url.startswith("sqlite:"):
            self._backend = _SQLiteBackend(
                self, url.removeprefix("sqlite:").removeprefix("///") or ":memory:"
            )
        elif url.startswith(("postgresql:", "postgres:", "postgresql+psycopg:")):
            self._backend = _PostgresBackend(self, url.replace("postgresql+psycopg:", "postgresql:", 1))
        else:
            raise _misconfigured(f"connector {name!r} has unsupported url {_redact(url)!r}")
        self._connected = False
        self._connecting = asyncio.Lock()

    async def connect(self) -> None:
        async with self._connecting:
            if self._connected:
                return
            await self._backend.open()
            self._connected = True

    async def _ensure(self) -> None:
        if not self._connected:
            await self.connect()

    def statement_for(self, capability: CapabilitySpec) -> Statement:
        binding = capability.binding
        if "sql" in binding:
            return Statement.parse(capability.name, binding, connector=self.name)
        name = binding.get("statement", capability.name)
        try:
            return self.statements[name]
        except KeyError:
            known = ", ".join(sorted(self.statements)) or "none"
            raise ConnectorCallError(
                f"connector {self.name!r} has no statement {name!r} for capability {capability.name!r} "
                f"(statements: {known})",
                code="CONNECTOR_MISCONFIGURED",
            ) from None

    async def call(
        self,
        capability: CapabilitySpec,
        parameters: dict[str, Any],
        *,
        mode: Literal["query", "execute"],
        context: CallContext,
    ) -> Any:
        statement = self.statement_for(capability)
        effective: Mode = statement.mode or mode
        supplied = {"execution_id": context.execution_id, "step": context.step, **parameters}
        if context.idempotency_key:
            # the engine's key, stable across retries and restarts, beats anything a plan made up
            supplied["idempotency_key"] = context.idempotency_key
        # Every placeholder gets a value (None when absent) so optional parameters work in
        # ``(:status IS NULL OR status = :status)`` instead of failing on a missing binding.
        params = {name: supplied.get(name) for name in bind_names(statement.sql)}
        await self._ensure()
        raw = await self._backend.run(statement, params, effective, context.timeout or self.timeout)

        rows = [_jsonable(dict(r)) for r in raw["rows"]]
        truncated = len(rows) > self.max_rows
        rows = rows[: self.max_rows]
        if effective == "execute":
            result: dict[str, Any] = {"rows_affected": raw["rows_affected"]}
            if raw.get("lastrowid") is not None:
                result["lastrowid"] = raw["lastrowid"]
            if rows:
                result["rows"] = rows
            return result
        if statement.single:
            if not rows:
                raise ConnectorCallError(
                    f"statement {statement.name!r} on connector {self.name!r} returned no row for "
                    f"{_describe(params)}"
                )
            return rows[0]
        result = {"rows": rows, "count": len(rows)}
        if truncated:
            result["truncated"] = True
        return result

    async def probe(self) -> None:
        await self._ensure()
        probe = Statement(name="probe", sql="SELECT 1 AS ok", mode="query")
        await self._backend.run(probe, {}, "query", min(self.timeout, 5.0))

    async def close(self) -> None:
        async with self._connecting:
            self._connected = False
            await self._backend.close()


def _describe(params: dict[str, Any]) -> str:
    shown = {
        k: v
        for k, v in params.items()
        if v is not None and k not in ("idempotency_key", "execution_id", "step")
    }
    return ", ".join(f"{k}={v!r}" for k, v in shown.items()) or "no parameters"

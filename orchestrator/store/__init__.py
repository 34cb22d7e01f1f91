"""The event store: one port (:class:`EventStore`), two backends chosen by a URL.

``sqlite:///abs/path.db`` is the embedded default (nothing to install or start); ``postgresql://...``
is for several nodes sharing one log. Both backends pass the same contract suite
(``tests/test_store.py``), so callers never branch on which one they got.

The backends are imported lazily: a node that runs on SQLite never needs the PostgreSQL driver to load.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from orchestrator.core.errors import ConcurrencyConflict
from orchestrator.core.events import EventRecord
from orchestrator.core.state import TERMINAL_STATUSES
from orchestrator.store.base import ApiKeyRecord, EventStore, ExecutionRow, Page, WorkflowRecord

if TYPE_CHECKING:
    from orchestrator.store._postgres import PostgresEventStore as PostgresEventStore
    from orchestrator.store._sqlite import SQLiteEventStore as SQLiteEventStore

__all__ = [
    "TERMINAL_STATUSES",
    "ApiKeyRecord",
    "EventStore",
    "ExecutionRow",
    "Page",
    "WorkflowRecord",
    "open_store",
]


def open_store(url: str) -> EventStore:
    """Open the backend a database URL names.

    Accepted: ``sqlite:///abs/path.db`` (the parent directory is created) and ``postgresql://...`` or
    ``postgres://...`` (any libpq connection URL). ``sqlite:///abs/path.db?synchronous=NORMAL`` gives
    up the last commits on a power loss for commits an order of magnitude cheaper (benchmarks, dev
    boxes); the default, FULL, fsyncs every commit.
    """
    if url.startswith("sqlite:"):
        from orchestrator.store._sqlite import SQLiteEventStore

        path, _, query = url.removeprefix("sqlite:").removeprefix("//").partition("?")
        options = dict(parse_qsl(query))
        synchronous = options.pop("synchronous", "FULL").upper()
        if options or synchronous not in ("FULL", "EXTRA", "NORMAL"):
            raise ValueError(
                f"unsupported SQLite URL options in {url!r}: only 'synchronous' (FULL, the default, EXTRA"
                " or NORMAL) is accepted"
            )
        if ":memory:" in path:
            raise ValueError(
                f"unsupported SQLite URL {url!r}: an in-memory database would be private to one connection,"
                " and the store opens one per thread; give a file, e.g. 'sqlite:///var/lib/orch/events.db'"
            )
        if not path.startswith("/") or not path.strip("/"):
            raise ValueError(
                f"SQLite URL {url!r} must hold an absolute file path, e.g. 'sqlite:///var/lib/orch/events.db'"
            )
        # 'sqlite:////abs/x.db' (SQLAlchemy's spelling of an absolute path) means the same file.
        return SQLiteEventStore("/" + path.lstrip("/"), synchronous=synchronous)
    if url.startswith(("postgresql://", "postgres://")):
        from orchestrator.store._postgres import PostgresEventStore

        return PostgresEventStore(url)
    raise ValueError(
        f"unsupported event store URL {url!r}: use 'sqlite:///abs/path.db' or 'postgresql://user@host/db'"
    )


def __getattr__(name: str) -> Any:
    # The backend classes are reachable from the package for type annotations and tests, without
    # importing psycopg for every process that only uses SQLite.
    if name == "SQLiteEventStore":
        from orchestrator.store._sqlite import SQLiteEventStore

        return SQLiteEventStore
    if name == "PostgresEventStore":
        from orchestrator.store._postgres import PostgresEventStore

        return PostgresEventStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# -- version ordering shared by the backends -------------------------------------------------------
# Registered workflow versions are free-form strings, but nearly always semantic versions, and a
# lexical "latest" would rank "1.9.0" above "1.10.0". SQL can't order them portably, so both backends
# fetch the (few) versions of a workflow and pick the latest here.

_SEMVER = re.compile(
    r"^v?(?P<major>0|[1-9]\d*)(?:\.(?P<minor>\d+))?(?:\.(?P<patch>\d+))?"
    r"(?:-(?P<pre>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+[0-9A-Za-z.-]+)?$"
)


def version_key(version: str) -> tuple[Any, ...]:
    """A sort key: semantic versions by precedence ("1.10.0" > "1.9.0", "1.0.0-rc.1" < "1.0.0"),
    then any non-semantic string, lexically, after all of them. The raw string breaks ties ("1.0" vs
    "1.0.0") so the order is total and both backends agree."""
    match = _SEMVER.match(version)
    if match is None:
        return (1, version)
    numbers = tuple(int(match.group(part) or 0) for part in ("major", "minor", "patch"))
    pre = match.group("pre")
    # A pre-release ranks below its release; its identifiers compare numerically when numeric, and
    # numeric identifiers rank below alphanumeric ones (semver.org, rule 11).
    pre_key: tuple[tuple[int, int | str], ...] = ()
    if pre is not None:
        pre_key = tuple((0, int(p)) if p.isdigit() else (1, p) for p in pre.split("."))
    return (0, numbers, pre is None, pre_key, version)


def latest_versions(records: Iterable[WorkflowRecord]) -> list[WorkflowRecord]:
    """The latest version of each workflow id, ordered by id."""
    latest: dict[str, WorkflowRecord] = {}
    for record in records:
        current = latest.get(record.workflow_id)
        if current is None or version_key(record.version) > version_key(current.version):
            latest[record.workflow_id] = record
    return [latest[workflow_id] for workflow_id in sorted(latest)]


def version_exists_message(record: WorkflowRecord) -> str:
    """The VERSION_EXISTS message both backends raise (naming the tenant of a tenant's workflow)."""
    owner = f" of tenant {record.tenant_id!r}" if record.tenant_id is not None else ""
    return (
        f"workflow {record.workflow_id!r}{owner} version {record.version!r} is already registered "
        "with a different definition; versions are immutable, register a new version"
    )


# -- append precondition shared by the backends ---------------------------------------------------


def check_sequence(execution_id: str, records: Sequence[EventRecord], last_seq: int) -> None:
    """Raise unless ``records`` continue a log that ends at ``last_seq`` with consecutive seqs.

    The unique key alone would accept a gap; a gap means the writer decided from a state that never
    existed, so it is a conflict just like a duplicate.
    """
    previous = last_seq
    for record in records:
        if record.execution_id != execution_id:
            raise ValueError(
                f"record seq {record.seq} belongs to execution {record.execution_id!r}, not "
                f"{execution_id!r}; append one execution's records at a time"
            )
        if record.seq != previous + 1:
            if previous != last_seq:
                problem = f"does not follow seq {previous} in the same append"
            elif record.seq <= last_seq:
                problem = "already exists"
            else:
                problem = f"would leave a gap (expected seq {last_seq + 1})"
            raise ConcurrencyConflict(
                f"execution {execution_id!r}: seq {record.seq} {problem}; the log ends at seq "
                f"{last_seq}. Reload the execution and decide again"
            )
        previous = record.seq

"""The ``sql`` connector against real databases: one contract suite, run on SQLite and on PostgreSQL."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from agents.connectors.base import (
    CallContext,
    CapabilitySpec,
    ConnectorCallError,
    ConnectorTimeout,
    ConnectorUnavailable,
)
from agents.connectors.sql import SQLConnector, bind_names, to_pyformat
from agents.demo.projects_db import ensure_projects_db
from agents.registry import load_registry, make_connector

INJECTION = "x' OR '1'='1"

STATEMENTS: dict[str, Any] = {
    "list_items": {
        "sql": "SELECT id, name, qty FROM items WHERE (CAST(:name AS TEXT) IS NULL OR name = :name) ORDER BY id"
    },
    "get_item": {"sql": "SELECT id, name, qty FROM items WHERE id = :id", "single": True},
    "find_by_name": "SELECT id, name FROM items WHERE name = :name",
    "add_item": {
        "sql": "INSERT INTO items (name, qty, idem) VALUES (:name, :qty, :idempotency_key) "
        "ON CONFLICT (idem) DO NOTHING",
        "mode": "execute",
    },
    "literals": "SELECT 'a:b' AS colon, '50%' AS percent, :value AS value -- not :a_param\n",
}

SEED_ROWS = "INSERT INTO items (name, qty, idem) VALUES ('apple', 3, NULL), ('pear', 5, NULL)"


def cap(name: str, **binding: Any) -> CapabilitySpec:
    return CapabilitySpec(name=name, binding=binding)


async def query(connector: SQLConnector, statement: str, /, key: str | None = None, **params: Any) -> Any:
    return await connector.call(
        cap(statement), params, mode="query", context=CallContext(idempotency_key=key)
    )


async def execute(connector: SQLConnector, statement: str, /, key: str | None = None, **params: Any) -> Any:
    context = CallContext(idempotency_key=key)
    return await connector.call(cap(statement), params, mode="execute", context=context)


class SQLContract:
    """Every backend passes the same cases; subclasses provide a ``connector`` fixture over a table ``items``
    holding apple (id 1, qty 3) and pear (id 2, qty 5)."""

    slow_sql: str  # a statement that runs for seconds, to test the timeout

    async def test_query_returns_rows_and_count(self, connector: SQLConnector) -> None:
        result = await query(connector, "list_items")
        assert result == {
            "rows": [{"id": 1, "name": "apple", "qty": 3}, {"id": 2, "name": "pear", "qty": 5}],
            "count": 2,
        }

    async def test_optional_parameter_is_bound_as_null(self, connector: SQLConnector) -> None:
        result = await query(connector, "list_items", name="pear")
        assert [r["name"] for r in result["rows"]] == ["pear"]

    async def test_single_returns_the_row(self, connector: SQLConnector) -> None:
        assert await query(connector, "get_item", id=2) == {"id": 2, "name": "pear", "qty": 5}

    async def test_single_without_row_is_a_call_error(self, connector: SQLConnector) -> None:
        with pytest.raises(ConnectorCallError, match="no row") as info:
            await query(connector, "get_item", id=99)
        assert info.value.retryable is False

    async def test_values_are_bound_not_interpolated(self, connector: SQLConnector) -> None:
        assert await query(connector, "find_by_name", name=INJECTION) == {"rows": [], "count": 0}
        await execute(connector, "add_item", name=INJECTION, qty=1)
        found = await query(connector, "find_by_name", name=INJECTION)
        assert [r["name"] for r in found["rows"]] == [INJECTION]
        assert (await query(connector, "list_items"))["count"] == 3  # the table is intact

    async def test_literals_and_comments_are_not_parameters(self, connector: SQLConnector) -> None:
        result = await query(connector, "literals", value="v")
        assert result["rows"] == [{"colon": "a:b", "percent": "50%", "value": "v"}]

    async def test_execute_reports_rows_affected(self, connector: SQLConnector) -> None:
        result = await execute(connector, "add_item", name="plum", qty=7)
        assert result["rows_affected"] == 1
        assert (await query(connector, "list_items", name="plum"))["count"] == 1

    async def test_idempotency_key_is_a_bound_parameter(self, connector: SQLConnector) -> None:
        first = await execute(connector, "add_item", key="exec-1:add", name="fig", qty=1)
        again = await execute(connector, "add_item", key="exec-1:add", name="fig", qty=1)
        assert (first["rows_affected"], again["rows_affected"]) == (1, 0)
        assert (await query(connector, "list_items", name="fig"))["count"] == 1

    async def test_statement_mode_wins_over_step_mode(self, connector: SQLConnector) -> None:
        result = await query(connector, "add_item", name="kiwi", qty=2)
        assert result["rows_affected"] == 1

    async def test_inline_sql_binding(self, connector: SQLConnector) -> None:
        capability = cap("count", sql="SELECT COUNT(*) AS n FROM items WHERE qty > :min", single=True)
        result = await connector.call(capability, {"min": 4}, mode="query", context=CallContext())
        assert result == {"n": 1}

    async def test_sql_error_is_not_retryable(self, connector: SQLConnector) -> None:
        with pytest.raises(ConnectorCallError) as info:
            await connector.call(
                cap("bad", sql="SELECT * FROM missing_table"), {}, mode="query", context=CallContext()
            )
        assert info.value.retryable is False
        assert "'bad'" in info.value.message

    async def test_unknown_statement(self, connector: SQLConnector) -> None:
        with pytest.raises(ConnectorCallError, match="no statement 'nope'"):
            await query(connector, "nope")

    async def test_timeout(self, connector: SQLConnector) -> None:
        capability = cap("slow", sql=self.slow_sql)
        with pytest.raises(ConnectorTimeout) as info:
            await connector.call(capability, {}, mode="query", context=CallContext(timeout=0.2))
        assert info.value.retryable is True
        assert (await query(connector, "get_item", id=1))["name"] == "apple"  # still usable

    async def test_probe(self, connector: SQLConnector) -> None:
        await connector.probe()


class TestSQLite(SQLContract):
    slow_sql = (
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100000000) "
        "SELECT COUNT(*) FROM c"
    )

    @pytest.fixture
    async def connector(self, tmp_path: Path) -> AsyncIterator[SQLConnector]:
        init = [
            "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, qty INTEGER, idem TEXT UNIQUE)",
            SEED_ROWS,
        ]
        connector = SQLConnector(
            "items-db", {"url": f"sqlite:///{tmp_path / 'items.db'}", "statements": STATEMENTS, "init": init}
        )
        await connector.connect()
        yield connector
        await connector.close()

    async def test_execute_reports_lastrowid(self, connector: SQLConnector) -> None:
        assert (await execute(connector, "add_item", name="plum", qty=7))["lastrowid"] == 3

    async def test_unopenable_database_is_unavailable(self, tmp_path: Path) -> None:
        blocker = tmp_path / "file"
        blocker.write_text("not a directory")
        connector = SQLConnector("broken", {"url": f"sqlite:///{blocker / 'sub' / 'x.db'}"})
        with pytest.raises(ConnectorUnavailable):
            await connector.probe()

    async def test_relative_path_and_path_key(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.chdir(tmp_path)
        connector = SQLConnector("rel", {"path": "nested/rel.db"})
        await connector.probe()
        await connector.close()
        assert (tmp_path / "nested" / "rel.db").exists()


@pytest.mark.postgres
class TestPostgres(SQLContract):
    slow_sql = "SELECT pg_sleep(5)"

    @pytest.fixture
    async def connector(self, postgres_db_url: str) -> AsyncIterator[SQLConnector]:
        init = [
            "CREATE TABLE IF NOT EXISTS items (id SERIAL PRIMARY KEY, name TEXT NOT NULL, qty INTEGER, "
            "idem TEXT UNIQUE)",
            SEED_ROWS,
        ]
        connector = SQLConnector("items-db", {"url": postgres_db_url, "statements": STATEMENTS, "init": init})
        await connector.connect()
        yield connector
        await connector.close()

    async def test_casts_and_jsonable_values(self, connector: SQLConnector) -> None:
        capability = cap(
            "typed",
            sql="SELECT :n::int + 1 AS n, 1.50::numeric AS amount, DATE '2025-06-01' AS day, "
            "CAST(:doc AS jsonb) -> 'a' AS a",
            single=True,
        )
        result = await connector.call(
            capability, {"n": "41", "doc": {"a": [1]}}, mode="query", context=CallContext()
        )
        assert result == {"n": 42, "amount": 1.5, "day": "2025-06-01", "a": [1]}

    async def test_unreachable_server_is_unavailable(self) -> None:
        connector = SQLConnector(
            "gone", {"url": "postgresql://postgres@127.0.0.1:1/none", "connect_timeout": 2}
        )
        with pytest.raises(ConnectorUnavailable) as info:
            await connector.connect()
        assert info.value.retryable is True


# -- placeholder scanner (pure) ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "names", "pyformat"),
    [
        (
            "SELECT * FROM t WHERE a = :a AND b = :b",
            ["a", "b"],
            "SELECT * FROM t WHERE a = %(a)s AND b = %(b)s",
        ),
        ("SELECT :a::int, ':b', \"c:d\"", ["a"], "SELECT %(a)s::int, ':b', \"c:d\""),
        ("SELECT 'it''s :x' || :y", ["y"], "SELECT 'it''s :x' || %(y)s"),
        ("SELECT E'\\' :x' || :y", ["y"], "SELECT E'\\' :x' || %(y)s"),
        ("SELECT $$ :x $$, $tag$ :x $tag$, :z", ["z"], "SELECT $$ :x $$, $tag$ :x $tag$, %(z)s"),
        ("SELECT 1 -- :x\n/* :y */ + :z", ["z"], "SELECT 1 -- :x\n/* :y */ + %(z)s"),
        ("SELECT '10%' || :p, :p", ["p"], "SELECT '10%%' || %(p)s, %(p)s"),
        ("SELECT 1 WHERE x = :", [], "SELECT 1 WHERE x = :"),
    ],
)
def test_placeholders(sql: str, names: list[str], pyformat: str) -> None:
    assert bind_names(sql) == names
    assert to_pyformat(sql) == pyformat


# -- the shipped projects database ------------------------------------------------------------------------------


@pytest.fixture
async def projects(tmp_path: Path) -> AsyncIterator[tuple[SQLConnector, dict[str, CapabilitySpec]]]:
    registry = load_registry([], data_dir=tmp_path)
    agent = registry.get("projects-db")
    config = registry.connector_for(agent)
    assert config is not None
    connector = make_connector(config)
    assert isinstance(connector, SQLConnector)
    await connector.connect()
    yield connector, {c.name: c for c in agent.capabilities}
    await connector.close()


async def test_get_project_has_derived_numbers(
    projects: tuple[SQLConnector, dict[str, CapabilitySpec]],
) -> None:
    connector, caps = projects
    project = await connector.call(
        caps["get_project"], {"project_id": "proj_123"}, mode="query", context=CallContext()
    )
    assert project["name"] == "Apollo Platform Migration"
    assert (project["budget"], project["spent"], project["spent_pct"]) == (500_000, 410_000, 82.0)
    assert project["progress_pct"] == 55
    assert project["budget_variance_pct"] == 27.0  # spending well ahead of progress
    assert (project["milestones_total"], project["milestones_late"]) == (4, 1)
    assert project["next_milestone"] == "Data migration dry run"


@pytest.mark.parametrize(
    ("project_id", "late", "over_budget"),
    [("proj_124", 0, False), ("proj_125", 2, False), ("proj_126", 0, True), ("proj_128", 0, False)],
)
async def test_demo_projects_differ_in_health(
    projects: tuple[SQLConnector, dict[str, CapabilitySpec]], project_id: str, late: int, over_budget: bool
) -> None:
    connector, caps = projects
    project = await connector.call(
        caps["get_project"], {"project_id": project_id}, mode="query", context=CallContext()
    )
    assert project["milestones_late"] == late
    assert (project["spent"] > project["budget"]) is over_budget


async def test_list_projects(projects: tuple[SQLConnector, dict[str, CapabilitySpec]]) -> None:
    connector, caps = projects
    everything = await connector.call(caps["list_projects"], {}, mode="query", context=CallContext())
    active = await connector.call(
        caps["list_projects"], {"status": "active"}, mode="query", context=CallContext()
    )
    assert everything["count"] == 6
    assert [p["id"] for p in active["rows"]] == ["proj_123", "proj_124", "proj_125", "proj_126"]


async def test_unknown_project_is_no_row(projects: tuple[SQLConnector, dict[str, CapabilitySpec]]) -> None:
    connector, caps = projects
    with pytest.raises(ConnectorCallError, match="no row"):
        await connector.call(
            caps["get_project"], {"project_id": "proj_999"}, mode="query", context=CallContext()
        )


def test_seeding_is_repeatable_and_keeps_other_rows(tmp_path: Path) -> None:
    path = ensure_projects_db(tmp_path / "projects.db")
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute(
            "INSERT INTO projects VALUES ('mine', 'Mine', 'me', 'planned', 1, 0, '2030-01-01', '2030-02-01', 0)"
        )
    ensure_projects_db(path)
    with closing(sqlite3.connect(path)) as conn:
        ids = [row[0] for row in conn.execute("SELECT id FROM projects ORDER BY id")]
        milestones = conn.execute("SELECT COUNT(*) FROM milestones WHERE project_id = 'proj_123'").fetchone()[
            0
        ]
    assert ids == ["mine", "proj_123", "proj_124", "proj_125", "proj_126", "proj_127", "proj_128"]
    assert milestones == 4

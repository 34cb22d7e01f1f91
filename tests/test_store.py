"""The event store contract: every backend passes the same tests (STYLE 11).

A backend's test class only says how to get a URL for an empty store; everything else is here. Two
stores opened on one URL stand for two processes (Ray actors) sharing a database.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import psycopg
import pytest

import orchestrator.store
from orchestrator.core import events as ev
from orchestrator.core.errors import ConcurrencyConflict, Conflict, Fenced, StoreError
from orchestrator.core.events import EventRecord
from orchestrator.store import (
    ApiKeyRecord,
    EventStore,
    ExecutionRow,
    WorkflowRecord,
    open_store,
    version_key,
)
from orchestrator.store.base import Fence, IdempotencyKeyTaken
from orchestrator.store.export import (
    ExportFormat,
    events_to_bytes,
    read_events,
    records_to_table,
    write_events,
)

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def record(execution_id: str, seq: int, *, at: datetime | None = None, **payload: Any) -> EventRecord:
    return EventRecord(
        execution_id=execution_id,
        seq=seq,
        type="step.completed",
        step=f"s{seq}",
        payload={"attempt": 1, "output": payload or {"n": seq}},
        recorded_at=at or T0 + timedelta(seconds=seq),
    )


def started(
    execution_id: str, key: str, *, tenant_id: str | None = None, request_hash: str | None = None
) -> EventRecord:
    payload: dict[str, Any] = {"workflow": {"name": "wf", "steps": []}, "idempotency_key": key}
    if tenant_id is not None:
        payload["tenant_id"] = tenant_id
    if request_hash is not None:
        payload["request_hash"] = request_hash
    return EventRecord(
        execution_id=execution_id, seq=1, type="execution.started", payload=payload, recorded_at=T0
    )


def api_key(key_id: str, tenant_id: str = "acme", *, created: int = 0, **fields: Any) -> ApiKeyRecord:
    values: dict[str, Any] = {
        "id": key_id,
        "tenant_id": tenant_id,
        "role": "member",
        "name": f"{key_id}-name",
        "key_hash": f"hash-of-{key_id}",
        "created_at": T0 + timedelta(minutes=created),
    }
    values.update(fields)
    return ApiKeyRecord(**values)


def execution(execution_id: str, *, created: int = 0, **fields: Any) -> ExecutionRow:
    values: dict[str, Any] = {
        "id": execution_id,
        "workflow_name": "wf",
        "status": "running",
        "created_at": T0 + timedelta(minutes=created),
    }
    values.update(fields)
    return ExecutionRow(**values)


def race(*actions: Callable[[], None]) -> list[BaseException | None]:
    """Run ``actions`` at the same moment on their own threads; the outcome of each (None = success)."""
    barrier = threading.Barrier(len(actions))
    outcomes: list[BaseException | None] = [None] * len(actions)

    def run(index: int, action: Callable[[], None]) -> None:
        barrier.wait()
        try:
            action()
        except BaseException as exc:
            outcomes[index] = exc

    threads = [threading.Thread(target=run, args=(i, a)) for i, a in enumerate(actions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return outcomes


class EventStoreContract:
    """Subclasses provide ``store_url``: a URL of an empty store of their backend."""

    @pytest.fixture
    def store_url(self) -> str:
        raise NotImplementedError

    @pytest.fixture
    def store(self, store_url: str) -> Iterator[EventStore]:
        store = open_store(store_url)
        yield store
        store.close()

    @pytest.fixture
    def second_store(self, store_url: str, store: EventStore) -> Iterator[EventStore]:
        """Another store on the same database, as a second process would open it."""
        other = open_store(store_url)
        yield other
        other.close()

    def test_closing_under_running_appends_waits_for_them(self, store_url: str) -> None:
        """close() while other threads are inside the store: no crash (sqlite3 and libpq segfault on a
        connection closed under a statement), every append either landed or failed with StoreError."""
        store = open_store(store_url)
        landed: dict[str, int] = {}
        errors: list[BaseException] = []

        def keep_appending(writer: int) -> None:
            execution_id = f"wf_exec_close_{writer}"
            for seq in range(1, 10_000):
                try:
                    store.append(execution_id, [record(execution_id, seq)])
                except StoreError as exc:
                    errors.append(exc)
                    return
                landed[execution_id] = seq

        threads = [threading.Thread(target=keep_appending, args=(i,)) for i in range(4)]
        for thread in threads:
            thread.start()
        time.sleep(0.3)
        store.close()
        for thread in threads:
            thread.join(timeout=30)
        assert len(errors) == 4 and all("closed" in str(e) for e in errors)
        reopened = open_store(store_url)
        try:
            for execution_id, seq in landed.items():
                assert reopened.load(execution_id)[-1].seq == seq
        finally:
            reopened.close()

    # -- append and load --------------------------------------------------------------------------------
    def test_typed_events_roundtrip(self, store: EventStore) -> None:
        events: list[ev.Event] = [
            ev.ExecutionStarted(
                seq=1, timestamp=T0, workflow={"name": "trip", "steps": []}, input={"budget": 5000}
            ),
            ev.StepStarted(seq=2, timestamp=T0 + timedelta(seconds=1), step="search", request={"q": "ü"}),
            ev.TimerScheduled(
                seq=3,
                timestamp=T0 + timedelta(seconds=2),
                timer_id="t1",
                kind="wait",
                fire_at=T0 + timedelta(hours=1),
            ),
            ev.StepCompleted(
                seq=4, timestamp=T0 + timedelta(seconds=3), step="search", output={"flights": [1, 2.5, None]}
            ),
            ev.ExecutionCompleted(seq=5, timestamp=T0 + timedelta(seconds=4), output="done"),
        ]
        store.append("e1", [ev.to_record("e1", e) for e in events])

        loaded = store.load("e1")
        assert [ev.from_record(r) for r in loaded] == events
        assert all(
            r.recorded_at.tzinfo is not None and r.recorded_at.utcoffset() == timedelta(0) for r in loaded
        )
        assert [r.seq for r in store.load("e1", after_seq=3)] == [4, 5]
        assert store.load("unknown") == []

    def test_times_are_stored_as_utc_instants(self, store: EventStore) -> None:
        local = datetime(2024, 5, 1, 14, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2)))
        store.append("e1", [record("e1", 1, at=local)])
        (loaded,) = store.load("e1")
        assert loaded.recorded_at == local
        assert loaded.recorded_at.tzinfo == UTC

    def test_appends_continue_the_log(self, store: EventStore) -> None:
        store.append("e1", [record("e1", 1), record("e1", 2)])
        store.append("e1", [record("e1", 3)])
        store.append("e2", [record("e2", 1)])
        assert [r.seq for r in store.load("e1")] == [1, 2, 3]

    def test_duplicates_and_gaps_conflict(self, store: EventStore) -> None:
        # One test rather than a parametrisation: each case would cost a PostgreSQL database.
        store.append("e1", [record("e1", 1), record("e1", 2)])
        cases = {
            (2,): "seq 2 already exists",
            (1,): "seq 1 already exists",
            (4,): "seq 4 would leave a gap",
            (3, 5): "seq 5 does not follow seq 3",
            (3, 3): "seq 3 does not follow seq 3",
        }
        for seqs, message in cases.items():
            with pytest.raises(ConcurrencyConflict, match=message) as caught:
                store.append("e1", [record("e1", s) for s in seqs])
            assert "'e1'" in str(caught.value)
        assert [r.seq for r in store.load("e1")] == [1, 2]

    def test_first_append_starts_at_one(self, store: EventStore) -> None:
        with pytest.raises(ConcurrencyConflict, match="gap"):
            store.append("e1", [record("e1", 2)])

    def test_records_of_another_execution_are_refused(self, store: EventStore) -> None:
        with pytest.raises(ValueError, match="'other'"):
            store.append("e1", [record("other", 1)])

    @pytest.mark.parametrize("shared", [True, False], ids=["one-store", "two-stores"])
    def test_concurrent_writers_exactly_one_wins(
        self, store: EventStore, second_store: EventStore, shared: bool
    ) -> None:
        other = store if shared else second_store
        for seq in range(1, 4):
            outcomes = race(
                lambda seq=seq: store.append("e1", [record("e1", seq, writer="a")]),
                lambda seq=seq: other.append("e1", [record("e1", seq, writer="b")]),
            )
            assert sorted(type(o).__name__ for o in outcomes) == ["ConcurrencyConflict", "NoneType"]
            winner = "a" if outcomes[0] is None else "b"
            assert store.load("e1", after_seq=seq - 1)[0].payload["output"] == {"writer": winner}
        assert [r.seq for r in other.load("e1")] == [1, 2, 3]

    # -- projection ------------------------------------------------------------------------------------
    def test_projection_is_written_with_the_events(self, store: EventStore) -> None:
        store.append("e1", [record("e1", 1)], projection=execution("e1", last_seq=1))
        row = store.get_execution("e1")
        assert row == execution("e1", last_seq=1)
        assert row is not None and row.created_at.tzinfo == UTC

    def test_failed_append_leaves_neither_events_nor_projection(self, store: EventStore) -> None:
        store.append("e1", [record("e1", 1)], projection=execution("e1", last_seq=1))

        with pytest.raises(ConcurrencyConflict):
            store.append("e1", [record("e1", 1)], projection=execution("e1", status="completed"))
        # A projection the database rejects (NOT NULL) after the events went in: all rolled back.
        broken = execution("e1").model_copy(update={"workflow_name": None})
        with pytest.raises(StoreError):
            store.append("e1", [record("e1", 2)], projection=broken)

        assert [r.seq for r in store.load("e1")] == [1]
        assert store.get_execution("e1") == execution("e1", last_seq=1)
        store.append("e1", [record("e1", 2)])  # and the log is still writable

    def test_empty_append_upserts_the_projection(self, store: EventStore) -> None:
        store.append("e1", [], projection=execution("e1"))
        store.append("e1", [], projection=execution("e1", status="completed", completed_at=T0, duration_ms=5))
        assert store.get_execution("e1") == execution(
            "e1", status="completed", completed_at=T0, duration_ms=5
        )
        assert store.load("e1") == []
        store.append("e2", [])
        assert store.get_execution("e2") is None

    def test_list_executions(self, store: EventStore) -> None:
        rows = [
            execution("a", created=1, tenant_id="t1", workflow_name="trip", workflow_id="wf-trip"),
            execution("b", created=2, tenant_id="t2", workflow_name="crm", status="completed"),
            execution("c", created=3, tenant_id="t1", workflow_name="trip", status="failed"),
            execution("d", created=3, tenant_id="t1", workflow_name="crm"),
            execution("e", created=5, tenant_id="t2", workflow_name="trip", workflow_id="wf-trip"),
        ]
        for row in rows:
            store.append(row.id, [], projection=row)

        def ids(**filters: Any) -> list[str]:
            return [row.id for row in store.list_executions(limit=100, **filters).rows]

        # Newest first; equal created_at falls back to id, descending.
        assert ids() == ["e", "d", "c", "b", "a"]
        assert ids(tenant_id="t1") == ["d", "c", "a"]
        assert ids(status="running") == ["e", "d", "a"]
        assert ids(workflow_name="trip") == ["e", "c", "a"]
        assert ids(workflow_id="wf-trip") == ["e", "a"]
        assert ids(tenant_id="t1", workflow_name="trip", status="running") == ["a"]
        assert ids(tenant_id="nobody") == []

        page = store.list_executions(limit=2, offset=1)
        assert [row.id for row in page.rows] == ["d", "c"]
        assert page.total == 5
        page = store.list_executions(tenant_id="t1", limit=2, offset=2)
        assert ([row.id for row in page.rows], page.total) == (["a"], 3)
        assert store.list_executions(offset=10).total == 5
        assert store.list_executions().rows[0] == rows[4]

    def test_non_terminal_ids(self, store: EventStore) -> None:
        statuses = ["pending", "running", "completed", "failed", "timeout", "cancelled", "waiting"]
        for index, status in enumerate(statuses):
            store.append(f"e{index}", [], projection=execution(f"e{index}", created=index, status=status))
        assert sorted(store.non_terminal_ids()) == ["e0", "e1", "e6"]

    def test_prune_removes_old_terminal_executions_only(self, store: EventStore) -> None:
        cutoff = T0 + timedelta(days=1)
        cases = {
            "old-done": execution("old-done", status="completed", completed_at=T0),
            "old-failed": execution("old-failed", status="failed", completed_at=T0 + timedelta(hours=1)),
            "old-running": execution("old-running", status="running"),
            "new-done": execution("new-done", status="completed", completed_at=cutoff + timedelta(hours=1)),
        }
        for execution_id, row in cases.items():
            store.append(execution_id, [record(execution_id, 1)], projection=row)
            store.claim_idempotency_key(f"key-{execution_id}", execution_id)

        assert store.prune(finished_before=cutoff) == 2

        for gone in ("old-done", "old-failed"):
            assert store.get_execution(gone) is None
            assert store.load(gone) == []
            # The key is free again rather than pointing at an execution that no longer exists.
            assert store.claim_idempotency_key(f"key-{gone}", "fresh") == "fresh"
        for kept in ("old-running", "new-done"):
            assert store.get_execution(kept) == cases[kept]
            assert len(store.load(kept)) == 1
        assert store.prune(finished_before=cutoff) == 0

    # -- idempotency -----------------------------------------------------------------------------------
    def test_idempotency_key_binds_the_first_execution(self, store: EventStore) -> None:
        assert store.claim_idempotency_key("k", "e1") == "e1"
        assert store.claim_idempotency_key("k", "e2") == "e1"
        assert store.claim_idempotency_key("k2", "e2") == "e2"

    def test_concurrent_claims_agree(self, store: EventStore, second_store: EventStore) -> None:
        bound: list[str] = []
        outcomes = race(
            lambda: bound.append(store.claim_idempotency_key("k", "e1")),
            lambda: bound.append(second_store.claim_idempotency_key("k", "e2")),
        )
        assert outcomes == [None, None]
        assert len(set(bound)) == 1

    def test_the_first_append_binds_the_idempotency_key(self, store: EventStore) -> None:
        assert store.idempotency_key_owner("k", tenant_id="default") is None
        store.append("e1", [started("e1", "k", request_hash="h1")])
        assert store.idempotency_key_owner("k", tenant_id="default") == ("e1", "h1")
        with pytest.raises(IdempotencyKeyTaken) as taken:
            store.append("e2", [started("e2", "k", request_hash="h2")], projection=execution("e2"))
        assert (taken.value.execution_id, taken.value.request_hash) == ("e1", "h1")
        assert store.load("e2") == [] and store.get_execution("e2") is None  # nothing written
        assert store.claim_idempotency_key("k", "e3") == "e1"

    def test_idempotency_keys_are_scoped_per_tenant(self, store: EventStore) -> None:
        store.append("a1", [started("a1", "k", tenant_id="acme", request_hash="ha")])
        store.append("b1", [started("b1", "k", tenant_id="beta")])  # the same key, another tenant
        assert store.idempotency_key_owner("k", tenant_id="acme") == ("a1", "ha")
        assert store.idempotency_key_owner("k", tenant_id="beta") == ("b1", None)
        assert store.idempotency_key_owner("k", tenant_id="default") is None
        with pytest.raises(IdempotencyKeyTaken) as taken:
            store.append("a2", [started("a2", "k", tenant_id="acme")])
        assert taken.value.execution_id == "a1"
        assert store.claim_idempotency_key("k", "x", tenant_id="beta") == "b1"
        assert store.claim_idempotency_key("k", "d1") == "d1"  # "default" is a tenant like any other

    def test_a_claim_without_events_is_taken_over_by_a_start(self, store: EventStore) -> None:
        # a start that claimed its key apart from its first append, then failed before recording
        assert store.claim_idempotency_key("k", "orphan", tenant_id="acme") == "orphan"
        assert store.idempotency_key_owner("k", tenant_id="acme") is None  # an orphan answers nobody
        store.append("e2", [started("e2", "k", tenant_id="acme", request_hash="h2")])
        assert store.idempotency_key_owner("k", tenant_id="acme") == ("e2", "h2")

    def test_a_taken_key_in_a_batch_fails_only_its_item(self, store: EventStore) -> None:
        store.append("e1", [started("e1", "k")])
        with pytest.raises(IdempotencyKeyTaken):
            store.append_batch(
                [("e2", [started("e2", "k")], None, None), ("e3", [started("e3", "k3")], None, None)]
            )
        assert store.load("e3") == []  # all or nothing, like any conflict: the caller retries items

    def test_concurrent_starts_with_one_key_bind_one(
        self, store: EventStore, second_store: EventStore
    ) -> None:
        outcomes = race(
            lambda: store.append("e1", [started("e1", "k")]),
            lambda: second_store.append("e2", [started("e2", "k")]),
        )
        assert sorted(type(o).__name__ for o in outcomes) == ["IdempotencyKeyTaken", "NoneType"]
        winner = "e1" if outcomes[0] is None else "e2"
        assert store.idempotency_key_owner("k", tenant_id="default") == (winner, None)

    # -- workflow registry -----------------------------------------------------------------------------
    def test_workflow_versions(self, store: EventStore) -> None:
        def put(workflow_id: str, version: str, **definition: Any) -> WorkflowRecord:
            rec = WorkflowRecord(
                workflow_id=workflow_id,
                version=version,
                definition={"name": workflow_id, "version": version, **definition},
                registered_at=T0,
            )
            store.put_workflow(rec)
            return rec

        v19, v110, _ = put("trip", "1.9.0"), put("trip", "1.10.0"), put("trip", "1.2.0")
        crm = put("crm", "0.1.0", steps=[{"name": "s", "type": "transform", "nested": {"a": [1, 2]}}])

        assert store.get_workflow("trip") == v110
        assert store.get_workflow("trip", "1.9.0") == v19
        assert store.get_workflow("trip", "9.9.9") is None
        assert store.get_workflow("nope") is None
        assert store.list_workflows() == [crm, v110]

        # Identical definition again: a no-op, the first registration time stays.
        store.put_workflow(v19.model_copy(update={"registered_at": T0 + timedelta(days=1)}))
        assert store.get_workflow("trip", "1.9.0") == v19
        with pytest.raises(Conflict, match=r"'trip'.*'1\.9\.0'") as caught:
            put("trip", "1.9.0", extra=True)
        assert caught.value.code == "VERSION_EXISTS"
        assert store.get_workflow("trip", "1.9.0") == v19

    def test_workflows_per_tenant(self, store: EventStore) -> None:
        def put(
            workflow_id: str, version: str, tenant_id: str | None = None, **definition: Any
        ) -> WorkflowRecord:
            rec = WorkflowRecord(
                workflow_id=workflow_id,
                version=version,
                definition={"name": workflow_id, "owner": tenant_id, **definition},
                registered_at=T0,
                tenant_id=tenant_id,
            )
            store.put_workflow(rec)
            return rec

        shared_trip, shared_trip_2 = put("trip", "1.0.0"), put("trip", "2.0.0")
        crm = put("crm", "1.0.0")
        # acme registers its own trip at a version lower than the shared latest, and one that the
        # shared namespace also has: its own shadows the shared one entirely, for acme alone.
        acme_trip = put("trip", "1.0.0", "acme")
        acme_only = put("notes", "0.1.0", "acme")
        beta_crm = put("crm", "9.0.0", "beta")

        assert store.get_workflow("trip") == shared_trip_2
        assert store.get_workflow("trip", tenant_id="acme") == acme_trip
        assert store.get_workflow("trip", "1.0.0", tenant_id="acme") == acme_trip
        assert store.get_workflow("trip", "2.0.0", tenant_id="acme") is None  # shadowed entirely
        assert store.get_workflow("trip", tenant_id="beta") == shared_trip_2
        assert store.get_workflow("trip", "1.0.0", tenant_id="beta") == shared_trip
        assert store.get_workflow("notes") is None
        assert store.get_workflow("notes", tenant_id="beta") is None
        assert store.get_workflow("notes", "0.1.0", tenant_id="acme") == acme_only
        assert store.get_workflow("crm", tenant_id="beta") == beta_crm
        assert store.get_workflow("crm", tenant_id="acme") == crm

        assert store.list_workflows() == [crm, shared_trip_2]
        assert store.list_workflows(tenant_id="acme") == [crm, acme_only, acme_trip]
        assert store.list_workflows(tenant_id="beta") == [beta_crm, shared_trip_2]
        assert store.list_workflows(tenant_id="nobody") == [crm, shared_trip_2]

        # VERSION_EXISTS is per (tenant, id, version): the same version in two namespaces is fine,
        # a changed one in the same namespace is not.
        put("trip", "1.0.0", "acme")  # identical: a no-op
        with pytest.raises(Conflict, match=r"'trip' of tenant 'acme' version '1\.0\.0'") as caught:
            put("trip", "1.0.0", "acme", extra=True)
        assert caught.value.code == "VERSION_EXISTS"
        assert store.get_workflow("trip", "1.0.0") == shared_trip
        with pytest.raises(ValueError):
            WorkflowRecord(workflow_id="x", version="1", registered_at=T0, tenant_id="")

    # -- API keys --------------------------------------------------------------------------------------
    def test_api_keys(self, store: EventStore, second_store: EventStore) -> None:
        first = api_key("k1", "acme", created=2, role="admin")
        second = api_key("k2", "beta", created=1, name=None)
        third = api_key("k3", "acme", created=2)
        for record in (first, second, third):
            store.create_api_key(record)
        with pytest.raises(ConcurrencyConflict, match="'k1'"):
            store.create_api_key(api_key("k1", "evil"))
        assert store.get_api_key("k1") == first
        assert store.get_api_key("nope") is None
        assert store.list_api_keys() == [second, first, third]  # oldest first, then by id
        assert store.list_api_keys(tenant_id="acme") == [first, third]
        assert store.list_api_keys(tenant_id="nobody") == []

        # Another process (the CLI) revokes; the server's next lookup sees it.
        assert second_store.revoke_api_key("k1") is True
        assert second_store.revoke_api_key("k1") is True
        assert second_store.revoke_api_key("nope") is False
        assert store.get_api_key("k1") == first.model_copy(update={"revoked": True})
        assert store.get_api_key("k3") == third

        used = datetime(2024, 6, 1, 14, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2)))
        store.touch_api_key("k3", used)
        store.touch_api_key("nope", used)  # nothing to touch: no error
        touched = store.get_api_key("k3")
        assert touched is not None and touched.last_used_at == used and touched.last_used_at.tzinfo == UTC
        assert touched.revoked is False

    # -- a database made before tenancy ---------------------------------------------------------------
    @pytest.fixture
    def run_sql(self, store_url: str) -> Callable[[list[str]], None]:
        """Runs raw statements on the store's database, in one transaction."""
        raise NotImplementedError

    LEGACY_TABLES = [
        "DROP TABLE idempotency_keys",
        "DROP TABLE workflows",
        "CREATE TABLE idempotency_keys (key TEXT PRIMARY KEY, execution_id TEXT NOT NULL)",
        "CREATE INDEX idempotency_keys_execution ON idempotency_keys (execution_id)",
        "CREATE TABLE workflows (workflow_id TEXT NOT NULL, version TEXT NOT NULL, definition {json} NOT NULL,"
        " registered_at {time} NOT NULL, PRIMARY KEY (workflow_id, version))",
        "INSERT INTO idempotency_keys VALUES ('k1', 'e1'), ('k0', 'orphan')",
        "INSERT INTO workflows VALUES ('trip', '1.0.0', '{{\"name\": \"trip\"}}', {t0})",
    ]

    def test_a_database_made_before_tenancy_is_migrated_on_open(
        self, store_url: str, run_sql: Callable[[list[str]], None]
    ) -> None:
        store = open_store(store_url)
        store.append("e1", [started("e1", "k1", tenant_id="acme")])
        store.close()
        run_sql(self.LEGACY_TABLES)

        store = open_store(store_url)
        try:
            # A key belongs to its execution's tenant; a key without events to "default".
            assert store.idempotency_key_owner("k1", tenant_id="acme") == ("e1", None)
            assert store.idempotency_key_owner("k1", tenant_id="default") is None
            assert store.claim_idempotency_key("k0", "x") == "orphan"
            # A workflow registered before tenancy is shared.
            shared = WorkflowRecord(
                workflow_id="trip", version="1.0.0", definition={"name": "trip"}, registered_at=T0
            )
            assert store.get_workflow("trip") == shared
            assert store.list_workflows(tenant_id="acme") == [shared]
            # The new keys: the same workflow version and idempotency key in another namespace.
            own = shared.model_copy(update={"tenant_id": "acme", "definition": {"name": "mine"}})
            store.put_workflow(own)
            store.append("e2", [started("e2", "k1", tenant_id="beta", request_hash="h")])
            store.create_api_key(api_key("key-1"))
        finally:
            store.close()

        store = open_store(store_url)  # opening again finds nothing left to migrate, and loses nothing
        try:
            assert store.get_workflow("trip") == shared
            assert store.get_workflow("trip", tenant_id="acme") == own
            assert store.idempotency_key_owner("k1", tenant_id="acme") == ("e1", None)
            assert store.idempotency_key_owner("k1", tenant_id="beta") == ("e2", "h")
            assert store.get_api_key("key-1") == api_key("key-1")
        finally:
            store.close()

    # -- streaming and export --------------------------------------------------------------------------
    @pytest.fixture
    def three_logs(self, store: EventStore) -> list[EventRecord]:
        logs = {
            "b": [record("b", s, at=T0 + timedelta(minutes=s)) for s in range(1, 4)],
            "a": [record("a", s, at=T0 + timedelta(minutes=10 + s)) for s in range(1, 5)],
            "c": [record("c", 1, at=T0 + timedelta(minutes=20))],
        }
        for execution_id, records in logs.items():
            store.append(execution_id, records)
        return [*logs["a"], *logs["b"], *logs["c"]]

    # -- partition leases and fencing --------------------------------------------------------------
    def test_the_partition_count_is_fixed_when_the_store_is_made(
        self, store: EventStore, second_store: EventStore
    ) -> None:
        assert store.partition_count(8) == 8
        assert second_store.partition_count(64) == 8  # another process with another setting: the store's
        snapshot = store.lease_snapshot()
        assert sorted(snapshot.leases) == list(range(8))
        assert snapshot.unowned() == list(range(8)) and snapshot.hosts == []

    def test_a_lease_has_one_owner_and_every_acquisition_raises_its_epoch(
        self, store: EventStore, second_store: EventStore
    ) -> None:
        store.partition_count(4)
        first = store.acquire_lease(0, "a@1", ttl=30)
        assert first is not None
        assert second_store.acquire_lease(0, "b@1", ttl=30) is None  # held, not expired
        assert store.lease_snapshot().leases[0].owner == "a@1"
        assert store.release_lease(0, "a@1") and not store.release_lease(0, "a@1")
        second = second_store.acquire_lease(0, "b@1", ttl=30)
        assert second == first + 1
        # a known-dead owner's lease may be taken before it expires; a live one's may not
        assert store.acquire_lease(0, "c@1", ttl=30, steal_from="someone-else") is None
        third = store.acquire_lease(0, "c@1", ttl=30, steal_from="b@1")
        assert third == second + 1

    def test_an_expired_lease_can_be_taken(self, store: EventStore, second_store: EventStore) -> None:
        store.partition_count(2)
        assert store.acquire_lease(1, "a@1", ttl=0.05) is not None
        time.sleep(0.1)
        assert store.lease_snapshot().unowned() == [0, 1]
        assert second_store.acquire_lease(1, "b@1", ttl=30) is not None

    def test_a_heartbeat_renews_only_the_owners_leases(
        self, store: EventStore, second_store: EventStore
    ) -> None:
        store.partition_count(4)
        epochs = {p: store.acquire_lease(p, "a@1", ttl=0.2) for p in (0, 1)}
        assert second_store.acquire_lease(2, "b@1", ttl=30) is not None
        held = store.heartbeat("a@1", node_id="n1", cluster="c1", ttl=30)
        assert held == epochs
        time.sleep(0.3)  # past the first ttl: the heartbeat's renewal is what keeps them
        snapshot = store.lease_snapshot()
        assert snapshot.unowned() == [3]
        assert [(h.owner, h.node_id, h.cluster) for h in snapshot.live_hosts()] == [("a@1", "n1", "c1")]
        store.leave("a@1")
        snapshot = store.lease_snapshot()
        assert snapshot.unowned() == [0, 1, 3] and snapshot.hosts == []

    def test_an_append_under_a_stale_epoch_is_refused(
        self, store: EventStore, second_store: EventStore
    ) -> None:
        """Fencing: once the lease moved, the old owner's append writes nothing, alone or in a batch."""
        store.partition_count(2)
        old = Fence(0, store.acquire_lease(0, "a@1", ttl=0.05) or 0)
        store.append("e1", [record("e1", 1)], fence=old)
        time.sleep(0.1)
        new = Fence(0, second_store.acquire_lease(0, "b@1", ttl=30) or 0)
        assert new.epoch == old.epoch + 1
        with pytest.raises(Fenced):
            store.append("e1", [record("e1", 2)], projection=execution("e1", last_seq=2), fence=old)
        with pytest.raises(ConcurrencyConflict):  # a fenced item fails the batch, to be retried alone
            store.append_batch([("e2", [record("e2", 1)], None, new), ("e1", [record("e1", 2)], None, old)])
        assert [r.seq for r in store.load("e1")] == [1] and store.load("e2") == []
        assert store.get_execution("e1") is None
        second_store.append("e1", [record("e1", 2)], fence=new)
        assert [r.seq for r in store.load("e1")] == [1, 2]

    def test_append_if_free_writes_whole_or_not_at_all(self, store: EventStore) -> None:
        """A backend may always decline; what it takes is checked like any append."""
        store.append("e1", [record("e1", 1)])
        if store.append_if_free(("e1", [record("e1", 2)], execution("e1", last_seq=2), None)):
            assert [r.seq for r in store.load("e1")] == [1, 2]
            assert store.get_execution("e1") is not None
        else:
            assert [r.seq for r in store.load("e1")] == [1]
        with pytest.raises(ConcurrencyConflict):  # a seq already taken: refused, whichever path
            if not store.append_if_free(("e1", [record("e1", 1)], None, None)):
                store.append("e1", [record("e1", 1)])

    def test_iter_records(self, store: EventStore, three_logs: list[EventRecord]) -> None:
        def keys(**filters: Any) -> list[tuple[str, int]]:
            return [(r.execution_id, r.seq) for r in store.iter_records(batch_size=2, **filters)]

        assert list(store.iter_records(batch_size=2)) == three_logs
        assert list(store.iter_records(batch_size=3)) == three_logs
        assert keys(execution_ids=["c", "b"]) == [("b", 1), ("b", 2), ("b", 3), ("c", 1)]
        assert keys(execution_ids=[]) == []
        assert keys(since=T0 + timedelta(minutes=3), until=T0 + timedelta(minutes=12)) == [
            ("a", 1),
            ("b", 3),
        ]
        assert keys(execution_ids=["a"], since=T0 + timedelta(minutes=13)) == [("a", 3), ("a", 4)]

    def test_export_roundtrip(self, store: EventStore, three_logs: list[EventRecord], tmp_path: Path) -> None:
        formats: list[ExportFormat] = ["parquet", "arrow", "arrow_stream"]
        for fmt in formats:
            path = tmp_path / f"events.{fmt}"
            assert write_events(store.iter_records(batch_size=2), path, fmt, batch_size=3) == len(three_logs)
            assert list(read_events(path)) == three_logs, fmt
            assert list(read_events(events_to_bytes(store.iter_records(), fmt))) == three_logs, fmt
        # Typed events survive too: an export can be replayed.
        assert [ev.from_record(r) for r in read_events(path)] == [ev.from_record(r) for r in three_logs]


class TestSQLiteStore(EventStoreContract):
    @pytest.fixture
    def store_url(self, tmp_path: Path) -> str:
        return f"sqlite://{tmp_path}/data/events.db"

    @pytest.fixture
    def run_sql(self, store_url: str) -> Callable[[list[str]], None]:
        def run(statements: list[str]) -> None:
            conn = sqlite3.connect(store_url.removeprefix("sqlite://"), isolation_level=None)
            try:
                conn.execute("BEGIN IMMEDIATE")
                for statement in statements:
                    conn.execute(statement.format(json="TEXT", time="TEXT", t0=f"'{T0.isoformat()}'"))
                conn.execute("COMMIT")
            finally:
                conn.close()

        return run

    def test_append_if_free_writes_when_free_and_never_waits_for_the_lock(
        self, store: EventStore, store_url: str
    ) -> None:
        assert store.append_if_free(("e1", [record("e1", 1)], None, None)) is True
        holder = sqlite3.connect(store_url.removeprefix("sqlite://"), isolation_level=None)
        try:
            holder.execute("BEGIN IMMEDIATE")  # another process is writing
            began = time.monotonic()
            assert store.append_if_free(("e1", [record("e1", 2)], None, None)) is False
            assert time.monotonic() - began < 1.0  # the store's busy timeout is 10 s
            holder.execute("COMMIT")
        finally:
            holder.close()
        assert [r.seq for r in store.load("e1")] == [1]
        assert store.append_if_free(("e1", [record("e1", 2)], None, None)) is True
        assert [r.seq for r in store.load("e1")] == [1, 2]


@pytest.mark.postgres
class TestPostgresStore(EventStoreContract):
    @pytest.fixture
    def store_url(self, postgres_schema_url: str) -> str:
        return postgres_schema_url

    @pytest.fixture
    def run_sql(self, store_url: str) -> Callable[[list[str]], None]:
        def run(statements: list[str]) -> None:
            with psycopg.connect(store_url) as conn:
                for statement in statements:
                    conn.execute(
                        statement.format(json="JSONB", time="TIMESTAMPTZ", t0=f"'{T0.isoformat()}'")  # type: ignore[arg-type]
                    )

        return run


# -- backend-independent pieces ------------------------------------------------------------------------
def test_exported_names() -> None:
    assert sorted(orchestrator.store.__all__) == sorted(
        [
            "ApiKeyRecord",
            "EventStore",
            "ExecutionRow",
            "WorkflowRecord",
            "Page",
            "TERMINAL_STATUSES",
            "open_store",
        ]
    )


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///:memory:",
        "sqlite://relative.db",
        "mysql://x/y",
        "events.db",
        "sqlite:",
        "sqlite:///x.db?sync=OFF",
    ],
)
def test_open_store_rejects_unsupported_urls(url: str) -> None:
    with pytest.raises(ValueError, match="URL"):
        open_store(url)


def test_open_store_sqlite_spellings(tmp_path: Path) -> None:
    for url in (
        f"sqlite://{tmp_path}/a.db",
        f"sqlite:///{tmp_path}/a.db",
        f"sqlite://{tmp_path}/a.db?synchronous=normal",
    ):
        store = open_store(url)
        assert isinstance(store, orchestrator.store.SQLiteEventStore)
        assert store.path == tmp_path / "a.db"
        store.close()


def test_version_order() -> None:
    ordered = ["0.9.0", "1.0.0-alpha", "1.0.0-alpha.2", "1.0.0-alpha.10", "1.0.0-beta", "1.0.0", "1.2.0"]
    ordered += ["1.9.0", "1.10.0", "v2.0.0", "10.0.0", "draft", "latest"]
    assert sorted(reversed(ordered), key=version_key) == ordered


def test_export_schema_and_empty_exports(tmp_path: Path) -> None:
    table = records_to_table(
        [record("e1", 1), EventRecord(execution_id="e1", seq=2, type="x", recorded_at=T0)]
    )
    assert table.schema.names == ["execution_id", "seq", "type", "version", "step", "recorded_at", "payload"]
    assert str(table.schema.field("recorded_at").type) == "timestamp[us, tz=UTC]"
    assert str(table.schema.field("version").type) == "int32"
    assert table.column("step").to_pylist() == ["s1", None]
    assert table.column("payload").to_pylist()[1] == "{}"

    formats: list[ExportFormat] = ["parquet", "arrow", "arrow_stream"]
    for fmt in formats:
        path = tmp_path / f"empty.{fmt}"
        assert write_events([], path, fmt) == 0
        assert list(read_events(path)) == []
        assert list(read_events(events_to_bytes([], fmt))) == []


@pytest.mark.postgres
def test_postgres_database_fixture_gives_an_empty_database(postgres_db_url: str) -> None:
    store = open_store(postgres_db_url)
    try:
        assert store.list_executions().total == 0
        store.append("e1", [record("e1", 1)])
        assert store.load("e1") == [record("e1", 1)]
    finally:
        store.close()

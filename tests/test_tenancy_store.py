"""The execution service's side of tenancy: idempotency keys scoped per tenant and checked against the
request's fingerprint, and the audit trail (who started, who asked to cancel) in the event log.

The routes' side (keys, 401/403/404, the matrix over both dialects) is ``tests/test_tenancy.py``."""

from __future__ import annotations

from typing import Any

import pytest

from agents.runner import AgentStepRunner
from orchestrator.config import Settings
from orchestrator.core.errors import Conflict
from orchestrator.core.validation import parse_workflow
from orchestrator.server.executions import ExecutionService
from orchestrator.store import open_store
from tests.fixtures_server import ServerInfo

pytestmark = pytest.mark.ray

QUICK = parse_workflow(
    {"metadata": {"name": "quick"}, "spec": {"steps": [{"name": "a", "type": "transform", "value": 1}]}}
)
SLOW = parse_workflow(
    {"metadata": {"name": "slow"}, "spec": {"steps": [{"name": "nap", "type": "wait", "duration": "1h"}]}}
)


async def test_idempotency_keys_per_tenant_and_fingerprint(server: ServerInfo) -> None:
    settings = Settings(data_dir=server.data_dir, namespace=server.namespace)
    store = open_store(settings.store_url)
    engine = ExecutionService(settings, store, AgentStepRunner)
    key = "order-tenancy-1"

    async def start(tenant_id: str, request_hash: str | None, **extra: Any) -> str:
        state = await engine.start(
            QUICK,
            input={},
            user={"id": 1},
            tenant_id=tenant_id,
            wait=True,
            idempotency_key=key,
            request_hash=request_hash,
            **extra,
        )
        return state.execution_id

    try:
        first = await start("acme", "h1", key_id="key-a")
        assert await start("acme", "h1") == first  # the same request again: the original execution
        assert await start("acme", None) == first  # a caller that sends no fingerprint is not refused
        with pytest.raises(Conflict) as reused:
            await start("acme", "h2")
        assert reused.value.code == "IDEMPOTENCY_KEY_REUSED" and reused.value.status == 409
        assert repr(key) in reused.value.message
        other = await start("beta", "h2")  # the same key in another tenant: its own execution
        assert other != first
        assert engine.get(other).tenant_id == "beta"
        started = engine.events(first)[0]
        assert started["data"]["started_by"] == {"key_id": "key-a", "user": {"id": 1}}
        assert started["data"]["request_hash"] == "h1"
    finally:
        store.close()


async def test_cancel_records_who_asked(server: ServerInfo) -> None:
    settings = Settings(data_dir=server.data_dir, namespace=server.namespace)
    store = open_store(settings.store_url)
    engine = ExecutionService(settings, store, AgentStepRunner)
    try:
        state = await engine.start(SLOW, input={}, user={"id": 5}, tenant_id="acme", wait=False)
        cancelled = await engine.cancel(state.execution_id, key_id="key-b", user={"id": 6})
        assert cancelled.status == "cancelled"
        (requested,) = [
            e for e in engine.events(state.execution_id) if e["type"] == "execution.cancel_requested"
        ]
        assert requested["data"]["requested_by"] == {"key_id": "key-b", "user": {"id": 6}}
    finally:
        store.close()

"""Identity and tenant isolation.

The first part checks the pieces (key format and hash, the tenancy rules, the authenticator against a real
SQLite store) without a server. The rest is the matrix: a real server with ``ORCH_AUTH=api_key`` in its
own process, on SQLite and on PostgreSQL, keys made with the real CLI, two member keys of tenants A and B
and an admin key, every route of both dialects over real HTTP. No answer to one tenant may contain the
other's execution ids or inputs.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import pytest

from orchestrator.config import Settings
from orchestrator.core.errors import Forbidden, Unauthenticated
from orchestrator.server import auth
from orchestrator.server.auth import (
    OPEN,
    Authenticator,
    Principal,
    acting_tenant,
    bootstrap_admin_key,
    generate_key,
    hash_secret,
    parse_key,
    presented_key,
    verify,
)
from orchestrator.store import open_store
from tests.fixtures_server import eventually
from tests.ports import free_port
from tests.processes import kill_session, start_server_process

A, B, OPS = "tenant-a", "tenant-b", "ops"
V1 = "/api/v1/workflows"
EAI = "/api/eai/v3/orchestrate"

# ------------------------------------------------------------------------------ the pieces, no server


def test_a_key_is_its_id_and_a_secret_and_only_a_slow_hash_is_kept() -> None:
    key, record = generate_key(tenant_id="acme", role="admin", name="ci")
    parsed = parse_key(key)
    assert parsed is not None and key.startswith("orch_")
    key_id, secret = parsed
    assert record.id == key_id and record.tenant_id == "acme" and record.role == "admin"
    assert len(secret) >= 43 and secret not in record.key_hash and key not in record.key_hash
    assert record.key_hash.startswith("scrypt$")
    assert verify(secret, record.key_hash)
    assert not verify(secret[:-1] + ("A" if secret[-1] != "A" else "B"), record.key_hash)
    assert hash_secret(secret) != hash_secret(secret)  # salted
    assert not verify(secret, "not a hash")


@pytest.mark.parametrize(
    "text",
    ["", "orch_", "orch_abc_short", "orch__" + "x" * 43, "key_abc_" + "x" * 43, "orch_a!b_" + "x" * 43],
)
def test_malformed_keys_do_not_parse(text: str) -> None:
    assert parse_key(text) is None


def test_keys_come_from_bearer_or_x_api_key() -> None:
    assert presented_key({"authorization": "Bearer orch_x"}) == "orch_x"
    assert presented_key({"authorization": "bearer  orch_x "}) == "orch_x"
    assert presented_key({"x-api-key": "orch_y"}) == "orch_y"
    assert presented_key({"authorization": "Basic abc", "x-api-key": "orch_y"}) == "orch_y"
    assert presented_key({"authorization": "Basic abc"}) is None
    assert presented_key({}) is None


def test_acting_tenant_rules() -> None:
    member = Principal(key_id="k", tenant_id="acme", role="member", open=False)
    admin = Principal(key_id="k", tenant_id="ops", role="admin", open=False)
    assert acting_tenant(member, {"id": 1}, None) == "acme"
    assert acting_tenant(member, {"id": 1, "tenant_id": "acme"}, "acme") == "acme"
    for user, header in (({"tenant_id": "evil"}, None), (None, "evil"), ({"tenant_id": "acme"}, "evil")):
        with pytest.raises(Forbidden):
            acting_tenant(member, user, header)
    assert acting_tenant(admin, None, None) == "ops"
    assert acting_tenant(admin, None, "acme") == "acme"
    assert acting_tenant(admin, {"tenant_id": "beta"}, "acme") == "beta"
    # auth off: as before keys, user.tenant_id, then X-Tenant-ID, then default
    assert acting_tenant(OPEN, {"tenant_id": "beta"}, "acme") == "beta"
    assert acting_tenant(OPEN, {}, "acme") == "acme"
    assert acting_tenant(OPEN, None, None) == "default"


@pytest.mark.parametrize(
    ("host", "auth_setting", "resolved"),
    [
        ("127.0.0.1", None, "off"),
        ("localhost", None, "off"),
        ("::1", None, "off"),
        ("127.0.0.2", None, "off"),
        ("0.0.0.0", None, "api_key"),
        ("10.1.2.3", None, "api_key"),
        ("myhost", None, "api_key"),
        ("0.0.0.0", "off", "off"),
        ("127.0.0.1", "api_key", "api_key"),
    ],
)
def test_auth_defaults_to_keys_off_loopback(host: str, auth_setting: str | None, resolved: str) -> None:
    assert Settings(host=host, auth=auth_setting).resolved_auth == resolved  # type: ignore[arg-type]


def test_the_admin_key_stays_out_of_rays_runtime_env(monkeypatch: pytest.MonkeyPatch) -> None:
    from orchestrator.server.cli import _orch_env

    monkeypatch.setenv("ORCH_AUTH", "api_key")
    monkeypatch.setenv("ORCH_ADMIN_KEY", "orch_x_" + "y" * 43)
    env = _orch_env()
    assert env.get("ORCH_AUTH") == "api_key" and "ORCH_ADMIN_KEY" not in env


async def test_the_authenticator_checks_every_request_against_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'keys.db'}")
    try:
        key, record = generate_key(tenant_id="acme")
        store.create_api_key(record)
        checks = 0
        real_verify = auth.verify

        def counting_verify(secret: str, stored: str) -> bool:
            nonlocal checks
            checks += 1
            return real_verify(secret, stored)

        monkeypatch.setattr(auth, "verify", counting_verify)
        authenticator = Authenticator(store)
        principal = await authenticator.principal(key)
        assert principal == Principal(key_id=record.id, tenant_id="acme", role="member", open=False)
        assert await authenticator.principal(key) == principal
        assert checks == 1  # the slow hash once; then the cached check
        await _settled()
        touched = store.get_api_key(record.id)
        assert touched is not None and touched.last_used_at is not None

        parsed = parse_key(key)
        assert parsed is not None
        wrong = f"orch_{record.id}_{'A' * 43}"
        for bad in (None, "", "nope", wrong, f"orch_ffffffffffffffff_{parsed[1]}"):
            with pytest.raises(Unauthenticated):
                await authenticator.principal(bad)

        assert store.revoke_api_key(record.id)
        with pytest.raises(Unauthenticated):  # the very next request, cache or not
            await authenticator.principal(key)
    finally:
        await _settled()
        store.close()


async def _settled() -> None:
    import asyncio

    for _ in range(50):
        pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        if not pending:
            return
        await asyncio.sleep(0.02)


def test_the_admin_key_is_bootstrapped_once(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'keys.db'}")
    try:
        key = f"orch_bootstrap_{secrets.token_urlsafe(32)}"
        assert bootstrap_admin_key(store, key)
        record = store.get_api_key("bootstrap")
        assert record is not None and record.role == "admin" and key not in record.key_hash
        assert not bootstrap_admin_key(store, key)
        store.revoke_api_key("bootstrap")
        assert not bootstrap_admin_key(store, key)  # a revocation sticks across restarts
        revoked = store.get_api_key("bootstrap")
        assert revoked is not None and revoked.revoked
        with pytest.raises(ValueError, match="ORCH_ADMIN_KEY"):
            bootstrap_admin_key(store, "letmein")
    finally:
        store.close()


# ---------------------------------------------------------------------------- the server and its keys


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ORCH_", "RAY_ADDRESS"))}
    return subprocess.run(
        [sys.executable, "-m", "orchestrator.server.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


@dataclass
class AuthServer:
    base_url: str
    store_args: list[str]
    keys: dict[str, str]  # A, B, OPS, "boot" -> key
    seen: dict[str, list[str]] = field(default_factory=dict)

    def create_key(self, tenant: str, *extra: str) -> str:
        done = cli("keys", "create", "--tenant", tenant, *extra, *self.store_args)
        assert done.returncode == 0, done.stderr
        return done.stdout.splitlines()[-1]

    def client(self, who: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.keys[who]}"} if who else {}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=120)


def _create_database(postgres_url: str) -> str:
    name = f"tenancy_{uuid.uuid4().hex}"
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    return urlunsplit(urlsplit(postgres_url)._replace(path=f"/{name}"))


def _drop_database(postgres_url: str, url: str) -> None:
    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _healthy(base_url: str) -> bool:
    try:
        return httpx.get(f"{base_url}/health", timeout=10).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(
    scope="module",
    params=[
        pytest.param("sqlite", marks=pytest.mark.ray),
        pytest.param("postgres", marks=[pytest.mark.ray, pytest.mark.postgres]),
    ],
)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthServer]:
    """One server per backend for the whole matrix: auth on, keys made with the CLI before it starts
    (tenants A and B, an admin of tenant ``ops``) and one bootstrapped from ORCH_ADMIN_KEY."""
    backend: str = request.param
    data_dir = tmp_path_factory.mktemp(f"tenancy-{backend}")
    env = {"ORCH_AUTH": "api_key", "ORCH_HOSTS_PER_NODE": "1"}
    postgres_url = database_url = None
    if backend == "postgres":
        postgres_url = request.getfixturevalue("postgres_url")
        database_url = _create_database(postgres_url)
        env["ORCH_DATABASE_URL"] = database_url
        store_args = ["--database-url", database_url]
    else:
        store_args = ["--data-dir", str(data_dir)]
    boot = f"orch_boot{backend}_{secrets.token_urlsafe(32)}"
    env["ORCH_ADMIN_KEY"] = boot
    info = AuthServer(base_url="", store_args=store_args, keys={"boot": boot})
    info.keys[A] = info.create_key(A, "--name", "a")
    info.keys[B] = info.create_key(B, "--name", "b")
    info.keys[OPS] = info.create_key(OPS, "--role", "admin")
    port = free_port()
    log_path = data_dir.parent / f"tenancy-{backend}-{port}.log"
    process = start_server_process(port, data_dir, f"orchestrator-tenancy-{backend}", log_path, env=env)
    info.base_url = f"http://127.0.0.1:{port}"
    try:
        eventually(lambda: _healthy(info.base_url), timeout=240, interval=0.5)
        yield info
    finally:
        kill_session(process.pid)
        process.wait(timeout=30)
        if postgres_url and database_url:
            with contextlib.suppress(psycopg.Error):
                _drop_database(postgres_url, database_url)


def echo_workflow(name: str = "tenancy") -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {"steps": [{"name": "echo", "type": "transform", "value": "{{ input.marker }}"}]},
    }


SLOW = {
    "metadata": {"name": "tenancy-slow"},
    "spec": {"steps": [{"name": "nap", "type": "wait", "duration": 600}]},
}


def eai_definition(workflow_id: str, version: str, label: str) -> dict[str, Any]:
    return {
        "id": workflow_id,
        "name": f"{label} workflow",
        "version": version,
        "steps": [{"id": "echo", "name": label, "type": "transform", "value": "{{ input.marker }}"}],
    }


@dataclass
class Work:
    """What one tenant started: ids and the inputs no other tenant may ever see."""

    tenant: str
    marker: str
    v1: str = ""
    slow: str = ""
    eai: str = ""
    plan: str = ""

    @property
    def ids(self) -> list[str]:
        return [self.v1, self.slow, self.eai, self.plan]

    @property
    def secrets(self) -> list[str]:
        return [*self.ids, self.marker]


def start_work(client: httpx.Client, tenant: str) -> Work:
    work = Work(tenant=tenant, marker=f"marker-{tenant}-{uuid.uuid4().hex}")
    user = {"id": f"user-{tenant}"}
    done = client.post(
        f"{V1}/execute", json={"workflow": echo_workflow(), "user": user, "input": {"marker": work.marker}}
    )
    assert done.status_code == 200, done.text
    assert done.json()["tenant_id"] == tenant and done.json()["output"] == {"final_result": work.marker}
    work.v1 = done.json()["id"]
    slow = client.post(
        f"{V1}/execute", json={"workflow": SLOW, "user": user, "async": True, "input": {"m": work.marker}}
    )
    assert slow.status_code == 202, slow.text
    work.slow = slow.json()["id"]
    put = client.put(f"{EAI}/workflows/tenancy_wf", json=eai_definition("tenancy_wf", "1.0.0", tenant))
    assert put.status_code in (200, 201), put.text
    eai = client.post(f"{EAI}/workflows/tenancy_wf/execute", json={"input": {"marker": work.marker}})
    assert eai.status_code == 200, eai.text
    assert eai.json()["steps"][0]["name"] == tenant  # its own definition, not the other tenant's
    work.eai = eai.json()["id"]
    plan = client.post(
        "/api/v1/plan",
        json={
            "query": "Plan a business trip from San Francisco to Paris for June 1-7, find flights under "
            "$1000 and 4-star hotels near the Eiffel Tower",
            "domain": "travel",
            "user": user,
            "context": {"budget": 5000, "marker": work.marker},
            "execute": False,
        },
    )
    assert plan.status_code == 200, plan.text
    work.plan = plan.json()["plan_id"]
    return work


def error_code(response: httpx.Response) -> str:
    return str(response.json()["error"]["code"])


@pytest.fixture(scope="module")
def work(server: AuthServer) -> dict[str, Work]:
    started = {}
    for tenant in (A, B):
        with server.client(tenant) as client:
            started[tenant] = start_work(client, tenant)
    return started


# ------------------------------------------------------------------------------------------ the matrix


def test_members_never_see_each_others_work(server: AuthServer, work: dict[str, Work]) -> None:
    for me, other in ((A, B), (B, A)):
        check_member(server, me, other, work)

    # nobody cancelled the other's running execution
    for tenant in (A, B):
        with server.client(tenant) as client:
            assert client.get(f"{V1}/executions/{work[tenant].slow}").json()["status"] == "running"


def check_member(server: AuthServer, me: str, other: str, work: dict[str, Work]) -> None:
    mine, theirs = work[me], work[other]
    answers: list[httpx.Response] = []
    with server.client(me) as client:

        def ask(
            method: str, path: str, expected: int, code: str | None = None, **kwargs: Any
        ) -> httpx.Response:
            response = client.request(method, path, **kwargs)
            assert response.status_code == expected, (me, method, path, response.text)
            if code is not None:
                assert error_code(response) == code, (me, method, path, response.text)
            answers.append(response)
            return response

        # another tenant's executions and plans do not exist, on every route of both dialects
        for execution_id in (theirs.v1, theirs.slow, theirs.eai):
            ask("GET", f"{V1}/executions/{execution_id}", 404, "EXECUTION_NOT_FOUND")
            ask("GET", f"{V1}/executions/{execution_id}/events", 404, "EXECUTION_NOT_FOUND")
            for fmt in ("arrow", "parquet"):
                ask(
                    "GET",
                    f"{V1}/executions/{execution_id}/events",
                    404,
                    "EXECUTION_NOT_FOUND",
                    params={"format": fmt},
                )
            ask("POST", f"{V1}/executions/{execution_id}/cancel", 404, "EXECUTION_NOT_FOUND")
            ask("GET", f"{EAI}/executions/{execution_id}", 404, "EXECUTION_NOT_FOUND")
            ask("POST", f"{EAI}/executions/{execution_id}/cancel", 404, "EXECUTION_NOT_FOUND")
        ask("GET", f"/api/v1/plans/{theirs.plan}", 404, "PLAN_NOT_FOUND")

        # its own work is there
        for execution_id in (mine.v1, mine.slow, mine.eai):
            assert ask("GET", f"{V1}/executions/{execution_id}", 200).json()["tenant_id"] == me
            ask("GET", f"{EAI}/executions/{execution_id}", 200)
            ask("GET", f"{V1}/executions/{execution_id}/events", 200)
            ask("GET", f"{V1}/executions/{execution_id}/events", 200, params={"format": "parquet"})
        assert ask("GET", f"/api/v1/plans/{mine.plan}", 200).json()["tenant_id"] == me

        # lists show the caller's tenant only
        listed = ask("GET", f"{V1}/executions", 200, params={"limit": 1000}).json()
        assert {e["tenant_id"] for e in listed["executions"]} == {me}
        assert {mine.v1, mine.slow, mine.eai} <= {e["id"] for e in listed["executions"]}
        eai_listed = ask("GET", f"{EAI}/executions", 200, params={"limit": 100}).json()
        assert {mine.v1, mine.slow, mine.eai} <= {e["id"] for e in eai_listed["data"]}
        own = ask("GET", f"{V1}/executions/tenant/{me}", 200, params={"limit": 1000}).json()
        assert {e["tenant_id"] for e in own["executions"]} == {me}
        ask("GET", f"{V1}/executions/tenant/{other}", 403, "FORBIDDEN")
        ask("GET", f"{EAI}/workflows", 200)
        ask("GET", f"{EAI}/workflows/tenancy_wf", 200)
        ask("GET", "/api/v1/agents", 200)  # agents are shared

        # naming the other tenant is forbidden, whichever way it is named
        named = {"headers": {"X-Tenant-ID": other}}
        user = {"id": "u", "tenant_id": other}
        body = {"workflow": echo_workflow(), "user": {"id": "u"}, "input": {"marker": "x"}}
        ask("POST", f"{V1}/execute", 403, "FORBIDDEN", json=body, **named)
        ask("POST", f"{V1}/execute", 403, "FORBIDDEN", json={**body, "user": user})
        ask("GET", f"{V1}/executions", 403, "FORBIDDEN", **named)
        ask("GET", f"{EAI}/executions", 403, "FORBIDDEN", **named)
        ask("GET", f"{EAI}/workflows", 403, "FORBIDDEN", **named)
        ask("GET", f"{EAI}/workflows/tenancy_wf", 403, "FORBIDDEN", **named)
        ask("POST", f"{EAI}/workflows/tenancy_wf/execute", 403, "FORBIDDEN", json={"input": {}}, **named)
        definition = eai_definition("tenancy_other", "1.0.0", me)
        ask("PUT", f"{EAI}/workflows/tenancy_other", 403, "FORBIDDEN", json=definition, **named)
        plan_body = {"query": "find flights from SFO to CDG on June 1", "user": user, "execute": False}
        ask("POST", "/api/v1/plan", 403, "FORBIDDEN", json=plan_body)
        # naming its own tenant is fine
        ask("GET", f"{V1}/executions", 200, headers={"X-Tenant-ID": me})

    for response in answers:
        for secret in theirs.secrets:
            if secret in str(response.request.url):
                continue  # a 404 names the id the caller sent; that reveals nothing
            assert secret not in response.text, (me, response.request.url, secret)
            assert secret not in response.headers.get("content-disposition", "")


def test_an_admin_acts_for_any_tenant_by_naming_it(server: AuthServer, work: dict[str, Work]) -> None:
    with server.client(OPS) as admin:
        assert admin.get(f"{V1}/executions/{work[A].v1}").status_code == 200
        assert admin.get(f"{EAI}/executions/{work[B].eai}").status_code == 200
        assert admin.get(f"/api/v1/plans/{work[A].plan}").status_code == 200
        for_a = admin.get(f"{V1}/executions", params={"limit": 1000}, headers={"X-Tenant-ID": A}).json()
        ids = {e["id"] for e in for_a["executions"]}
        assert work[A].v1 in ids and not ids & set(work[B].ids)
        of_b = admin.get(f"{V1}/executions/tenant/{B}", params={"limit": 1000}).json()
        assert work[B].v1 in {e["id"] for e in of_b["executions"]}
        own = admin.get(f"{V1}/executions", params={"limit": 1000}).json()  # its own tenant, ops
        assert not {e["id"] for e in own["executions"]} & set(work[A].ids + work[B].ids)
        started = admin.post(
            f"{V1}/execute",
            json={"workflow": echo_workflow(), "user": {"id": "admin"}, "input": {"marker": "m"}},
            headers={"X-Tenant-ID": B},
        )
        assert started.status_code == 200 and started.json()["tenant_id"] == B
    with server.client("boot") as boot:  # ORCH_ADMIN_KEY was stored at start
        assert boot.get(f"{V1}/executions/tenant/{A}").status_code == 200
    listed = cli("keys", "list", *server.store_args).stdout
    assert any(row.split("\t")[2:4] == ["admin", "ORCH_ADMIN_KEY"] for row in listed.splitlines())


def test_registered_workflows_are_per_tenant_and_shared_ones_need_an_admin(
    server: AuthServer, work: dict[str, Work]
) -> None:
    del work  # tenancy_wf is registered by both tenants, each with its own definition
    with server.client(A) as a, server.client(B) as b, server.client(OPS) as admin:
        shipped = a.get(f"{EAI}/workflows/analyze_project").json()
        hijack = {**shipped["definition"], "version": "99.0.0"}
        assert a.put(f"{EAI}/workflows/analyze_project", json=hijack).status_code == 201
        assert a.get(f"{EAI}/workflows/analyze_project").json()["version"] == "99.0.0"
        # B and everyone else still run the shipped one
        assert b.get(f"{EAI}/workflows/analyze_project").json()["version"] == shipped["version"]
        assert admin.get(f"{EAI}/workflows/analyze_project").json()["version"] == shipped["version"]
        b_list = {w["id"]: w["version"] for w in b.get(f"{EAI}/workflows").json()["data"]}
        assert b_list["analyze_project"] == shipped["version"]

        only_a = eai_definition("only_a", "1.0.0", "only-a")
        assert a.put(f"{EAI}/workflows/only_a", json=only_a).status_code == 201
        assert b.get(f"{EAI}/workflows/only_a").status_code == 404
        assert b.post(f"{EAI}/workflows/only_a/execute", json={"input": {}}).status_code == 404
        assert "only_a" not in {w["id"] for w in b.get(f"{EAI}/workflows").json()["data"]}

        shared = eai_definition("shared_wf", "1.0.0", "shared")
        assert admin.put(f"{EAI}/workflows/shared_wf", json=shared).status_code == 201
        for client in (a, b):
            assert client.get(f"{EAI}/workflows/shared_wf").status_code == 200
        for_b = eai_definition("admin_for_b", "1.0.0", "for-b")
        put = admin.put(f"{EAI}/workflows/admin_for_b", json=for_b, headers={"X-Tenant-ID": B})
        assert put.status_code == 201
        assert b.get(f"{EAI}/workflows/admin_for_b").status_code == 200
        assert a.get(f"{EAI}/workflows/admin_for_b").status_code == 404


def test_idempotency_keys_are_per_tenant(server: AuthServer) -> None:
    body = {"workflow": echo_workflow("idem"), "user": {"id": "u"}, "input": {"marker": "same"}}
    key = {"Idempotency-Key": f"idem-{uuid.uuid4().hex}"}
    with server.client(A) as a, server.client(B) as b:
        first_a = a.post(f"{V1}/execute", json=body, headers=key)
        first_b = b.post(f"{V1}/execute", json=body, headers=key)
        assert first_a.status_code == first_b.status_code == 200
        assert first_a.json()["id"] != first_b.json()["id"]
        again = a.post(f"{V1}/execute", json=body, headers=key)
        assert again.status_code == 200 and again.json()["id"] == first_a.json()["id"]
        changed = a.post(f"{V1}/execute", json={**body, "input": {"marker": "other"}}, headers=key)
        assert changed.status_code == 409 and error_code(changed) == "IDEMPOTENCY_KEY_REUSED"
        assert first_a.json()["id"] not in changed.text

        eai_key = {"Idempotency-Key": f"eai-{uuid.uuid4().hex}"}
        path = f"{EAI}/workflows/tenancy_wf/execute"
        one = a.post(path, json={"input": {"marker": "e"}}, headers=eai_key)
        two = a.post(path, json={"input": {"marker": "e"}}, headers=eai_key)
        assert one.status_code == two.status_code == 200 and one.json()["id"] == two.json()["id"]
        other = a.post(path, json={"input": {"marker": "f"}}, headers=eai_key)
        assert other.status_code == 409 and error_code(other) == "IDEMPOTENCY_KEY_REUSED"
        in_b = b.post(path, json={"input": {"marker": "e"}}, headers=eai_key)
        assert in_b.status_code == 200 and in_b.json()["id"] != one.json()["id"]


def test_the_log_records_who_started_and_who_cancelled(server: AuthServer) -> None:
    key_id = server.keys[A].split("_")[1]
    with server.client(A) as a:
        started = a.post(f"{V1}/execute", json={"workflow": SLOW, "user": {"id": "alice"}, "async": True})
        execution_id = started.json()["id"]
        assert a.post(f"{V1}/executions/{execution_id}/cancel").status_code == 202
        events = a.get(f"{V1}/executions/{execution_id}/events").json()["events"]
    first = events[0]
    assert first["type"] == "execution.started"
    assert first["data"]["started_by"]["key_id"] == key_id
    assert first["data"]["started_by"]["user"]["id"] == "alice"
    cancel = next(e for e in events if e["type"] == "execution.cancel_requested")
    assert cancel["data"]["requested_by"]["key_id"] == key_id


def test_a_revoked_key_fails_on_its_next_request(server: AuthServer) -> None:
    key = server.create_key(A, "--name", "short-lived")  # made while the server runs
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=server.base_url, timeout=60) as client:
        for _ in range(3):  # the second and third are answered from the verification cache
            assert client.get(f"{V1}/executions", headers=headers).status_code == 200
        assert client.get(f"{V1}/executions", headers={"X-API-Key": key}).status_code == 200
        revoked = cli("keys", "revoke", key.split("_")[1], *server.store_args)
        assert revoked.returncode == 0, revoked.stderr
        refused = client.get(f"{V1}/executions", headers=headers)
        assert refused.status_code == 401 and error_code(refused) == "UNAUTHENTICATED"


ROUTES: list[tuple[str, str]] = [
    ("POST", f"{V1}/execute"),
    ("GET", f"{V1}/executions"),
    ("GET", f"{V1}/executions/tenant/{A}"),
    ("GET", f"{V1}/executions/wf_exec_x"),
    ("POST", f"{V1}/executions/wf_exec_x/cancel"),
    ("GET", f"{V1}/executions/wf_exec_x/events"),
    ("POST", "/api/v1/plan"),
    ("GET", "/api/v1/plans/plan_x"),
    ("GET", "/api/v1/agents"),
    ("GET", "/api/v1/agents/amadeus-travel"),
    ("GET", "/api/v1/agents/domain/travel"),
    ("POST", "/api/v1/agents/validate"),
    ("GET", f"{EAI}/workflows"),
    ("GET", f"{EAI}/workflows/analyze_project"),
    ("PUT", f"{EAI}/workflows/analyze_project"),
    ("POST", f"{EAI}/workflows/analyze_project/execute"),
    ("GET", f"{EAI}/executions"),
    ("GET", f"{EAI}/executions/wf_exec_x"),
    ("POST", f"{EAI}/executions/wf_exec_x/cancel"),
]


def test_without_a_valid_key_every_route_is_401(server: AuthServer, work: dict[str, Work]) -> None:
    missing_key = f"orch_{'f' * 16}_{secrets.token_urlsafe(32)}"
    a_id = server.keys[A].split("_")[1]
    wrong_secret = f"orch_{a_id}_{secrets.token_urlsafe(32)}"
    attempts: list[dict[str, str]] = [
        {},
        {"Authorization": "Bearer nope"},
        {"Authorization": f"Bearer {missing_key}"},
        {"Authorization": f"Bearer {wrong_secret}"},
        {"X-API-Key": wrong_secret},
        {"Authorization": f"Basic {server.keys[A]}"},
        {"X-Tenant-ID": A},
    ]
    with httpx.Client(base_url=server.base_url, timeout=60) as client:
        for method, path in [*ROUTES, ("GET", f"{V1}/executions/{work[A].v1}")]:
            for headers in attempts:
                body = {} if method in ("POST", "PUT") else None
                response = client.request(method, path, headers=headers, json=body)
                assert response.status_code == 401, (method, path, headers, response.text)
                error = response.json()["error"]
                assert error["code"] == "UNAUTHENTICATED" and error["message"] and "details" in error
                assert response.headers["www-authenticate"] == "Bearer"
                assert work[A].marker not in response.text and work[A].v1 not in response.text


def test_health_docs_and_openapi_stay_open(server: AuthServer) -> None:
    with httpx.Client(base_url=server.base_url, timeout=60) as client:
        health = client.get("/health")
        assert health.status_code == 200 and health.json() == {"status": "ok"}
        bogus = client.get("/health", headers={"Authorization": "Bearer orch_x_y"})
        assert bogus.json() == {"status": "ok"}
        full = client.get("/health", headers={"Authorization": f"Bearer {server.keys[A]}"}).json()
        assert full["status"] == "ok" and "hosts" in full
        assert client.get("/docs").status_code == 200
        doc = client.get("/openapi.json").json()
    schemes = doc["components"]["securitySchemes"]
    assert schemes["bearerAuth"] == {**schemes["bearerAuth"], "type": "http", "scheme": "bearer"}
    assert schemes["apiKeyHeader"]["in"] == "header" and schemes["apiKeyHeader"]["name"] == "X-API-Key"
    for path, item in doc["paths"].items():
        for operation in item.values():
            if path.startswith("/api/"):
                assert operation["security"] == [{"bearerAuth": []}, {"apiKeyHeader": []}], path
                assert "401" in operation["responses"]
            else:
                assert "security" not in operation, path


def test_last_use_is_recorded(server: AuthServer) -> None:
    with server.client(B) as b:
        assert b.get(f"{V1}/executions").status_code == 200
    key_id = server.keys[B].split("_")[1]

    def used() -> bool:
        rows = cli("keys", "list", "--tenant", B, *server.store_args).stdout.splitlines()[1:]
        row = next(r.split("\t") for r in rows if r.startswith(key_id))
        return row[5] != "-" and datetime.fromisoformat(row[5]) <= datetime.now(UTC)

    eventually(used, timeout=30, interval=1)


def test_keys_are_optional_in_the_document_of_an_open_server() -> None:
    """Auth off on loopback (what tests/fixtures_server.py and the README's first command run): the
    default resolves to off, and the OpenAPI document marks keys optional there."""
    assert Settings(host="127.0.0.1").resolved_auth == "off"
    from orchestrator.server.api.app import create_app

    doc = create_app(Settings(host="127.0.0.1")).openapi()
    operation = doc["paths"]["/api/v1/workflows/executions"]["get"]
    assert {} in operation["security"]

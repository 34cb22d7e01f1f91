"""``orchestrate keys`` and the serve refusal, run as a user runs them: the real CLI in a subprocess."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestrator.server.auth import parse_key, verify
from orchestrator.store import ApiKeyRecord, open_store

KEY_LINE = re.compile(r"^orch_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$")


def cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("ORCH_", "RAY_ADDRESS"))}
    clean.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "orchestrator.server.cli", *args],
        capture_output=True,
        text=True,
        env=clean,
        timeout=timeout,
    )


def create(store_args: list[str], tenant: str, *extra: str) -> str:
    done = cli("keys", "create", "--tenant", tenant, *extra, *store_args)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines and KEY_LINE.match(lines[-1]), done.stdout
    return lines[-1]


def stored_key(store_url: str, key_id: str) -> ApiKeyRecord | None:
    with contextlib.closing(open_store(store_url)) as store:
        return store.get_api_key(key_id)


def check_create_list_revoke(store_args: list[str], store_url: str) -> None:
    key = create(store_args, "acme", "--name", "ci")
    admin = create(store_args, "ops", "--role", "admin")
    parsed = parse_key(key)
    assert parsed is not None
    key_id, secret = parsed

    stored = stored_key(store_url, key_id)
    assert stored is not None and stored.tenant_id == "acme" and stored.role == "member"
    assert stored.name == "ci" and not stored.revoked
    assert secret not in stored.key_hash and verify(secret, stored.key_hash)

    listed = cli("keys", "list", *store_args)
    assert listed.returncode == 0, listed.stderr
    header, *rows = listed.stdout.splitlines()
    assert header.split("\t") == ["id", "tenant", "role", "name", "created_at", "last_used_at", "revoked"]
    assert {row.split("\t")[0] for row in rows} == {key_id, admin.split("_")[1]}
    for text in (listed.stdout, listed.stderr):  # never a key, a secret or a hash
        assert secret not in text and key not in text and admin not in text and "scrypt" not in text
    row = next(r.split("\t") for r in rows if r.startswith(key_id))
    assert row[1:4] == ["acme", "member", "ci"] and row[5:] == ["-", "no"]

    only = cli("keys", "list", "--tenant", "ops", *store_args).stdout.splitlines()[1:]
    assert [r.split("\t")[1:3] for r in only] == [["ops", "admin"]]

    revoked = cli("keys", "revoke", key_id, *store_args)
    assert revoked.returncode == 0, revoked.stderr
    after = stored_key(store_url, key_id)
    assert after is not None and after.revoked
    row = next(
        r.split("\t") for r in cli("keys", "list", *store_args).stdout.splitlines() if r.startswith(key_id)
    )
    assert row[-1] == "yes"

    unknown = cli("keys", "revoke", "0000000000000000", *store_args)
    assert unknown.returncode == 1 and "no key" in unknown.stderr


def test_keys_create_list_revoke_on_sqlite(tmp_path: Path) -> None:
    check_create_list_revoke(["--data-dir", str(tmp_path)], f"sqlite:///{tmp_path / 'orchestrator.db'}")


@pytest.mark.postgres
def test_keys_create_list_revoke_on_postgres(postgres_db_url: str) -> None:
    check_create_list_revoke(["--database-url", postgres_db_url], postgres_db_url)


def test_keys_create_refuses_a_bad_role_or_tenant(tmp_path: Path) -> None:
    bad_role = cli("keys", "create", "--tenant", "acme", "--role", "root", "--data-dir", str(tmp_path))
    assert bad_role.returncode != 0 and "member or admin" in bad_role.stderr
    no_tenant = cli("keys", "create", "--tenant", " ", "--data-dir", str(tmp_path))
    assert no_tenant.returncode != 0
    assert not any(
        KEY_LINE.match(line) for line in bad_role.stdout.splitlines() + no_tenant.stdout.splitlines()
    )


@pytest.mark.parametrize(
    ("args", "env"),
    [(["--auth", "off"], {}), ([], {"ORCH_AUTH": "off"})],
    ids=["flag", "environment"],
)
def test_serve_refuses_auth_off_on_all_interfaces(
    tmp_path: Path, args: list[str], env: dict[str, str]
) -> None:
    """Refused before anything starts: no Ray (whose token the server would write into the data
    directory first), an exit code of 2 within seconds, and a message that says why and what to do."""
    started = time.monotonic()
    done = cli("serve", "--host", "0.0.0.0", "--data-dir", str(tmp_path), *args, env=env, timeout=30)
    assert done.returncode == 2, (done.stdout, done.stderr)
    message = " ".join(done.stderr.split())
    assert "refusing to start" in message and "auth is off" in message and "--insecure" in message
    assert time.monotonic() - started < 20
    assert not (tmp_path / "ray_auth_token").exists()
    assert "orchestrator ready" not in done.stdout + done.stderr


def test_serve_rejects_an_unknown_auth_mode(tmp_path: Path) -> None:
    done = cli("serve", "--auth", "maybe", "--data-dir", str(tmp_path), timeout=30)
    assert done.returncode == 2 and "off or api_key" in " ".join(done.stderr.split())
    assert not (tmp_path / "ray_auth_token").exists()

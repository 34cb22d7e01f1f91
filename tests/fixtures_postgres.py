"""PostgreSQL fixtures: a throwaway server per test session, a fresh database per test.

``ORCH_TEST_POSTGRES_URL`` points the tests at an existing server instead (a CI service container,
say). Otherwise the fixture runs ``initdb`` and ``pg_ctl`` from the installed PostgreSQL binaries in a
temporary directory, on a free loopback port, and removes everything afterwards. Without binaries the
PostgreSQL tests are skipped on a laptop but fail in CI (``CI=true``): CI must install PostgreSQL, and a
silent skip there would hide the second backend from the contract suite.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import psycopg
import pytest

from tests.ports import free_port

_START_TIMEOUT_S = 30.0


def _find_binaries() -> tuple[str, str] | None:
    """``initdb`` and ``pg_ctl`` of the newest installed PostgreSQL (Debian keeps them off PATH)."""

    def major(bindir: str) -> int:
        name = Path(bindir).parent.name
        return int(name) if name.isdigit() else 0

    for bindir in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=major, reverse=True):
        initdb, pg_ctl = Path(bindir, "initdb"), Path(bindir, "pg_ctl")
        if initdb.is_file() and pg_ctl.is_file():
            return str(initdb), str(pg_ctl)
    initdb_path, pg_ctl_path = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb_path and pg_ctl_path:
        return initdb_path, pg_ctl_path
    return None


def _server_user() -> str | None:
    """The account to run the server as: PostgreSQL refuses to run as root."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "postgres"],
            check=True,
            capture_output=True,
        )
    return "postgres"


def _run(command: list[str], user: str | None) -> subprocess.CompletedProcess[str]:
    if user is not None:
        command = ["runuser", "-u", user, "--", *command]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def _wait_ready(url: str, deadline: float) -> None:
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with psycopg.connect(url, connect_timeout=2) as conn:
                conn.execute("SELECT 1")
            return
        except psycopg.OperationalError as exc:
            last_error = exc
            time.sleep(0.1)
    raise RuntimeError(f"PostgreSQL at {url!r} did not accept connections: {last_error}")


@contextlib.contextmanager
def _throwaway_server(initdb: str, pg_ctl: str) -> Iterator[str]:
    user = _server_user()
    root = Path(tempfile.mkdtemp(prefix="orch-pg-"))
    try:
        if user is not None:
            record = pwd.getpwnam(user)
            os.chown(root, record.pw_uid, record.pw_gid)
        data, log = root / "data", root / "server.log"
        # --no-sync: this cluster is deleted at the end of the session; its durability is irrelevant.
        done = _run(
            [initdb, "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"], user
        )
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        for attempt in range(3):
            # The port can be taken between probing and binding; a fresh one is the fix.
            port = free_port()
            # fsync=off: the cluster is thrown away, and it makes CREATE DATABASE per test about three
            # times faster. Don't use this server to measure commit latency.
            options = (
                f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={root} -c fsync=off"
            )
            started = _run(
                [
                    pg_ctl,
                    "-D",
                    str(data),
                    "-l",
                    str(log),
                    "-w",
                    "-t",
                    str(int(_START_TIMEOUT_S)),
                    "-o",
                    options,
                    "start",
                ],
                user,
            )
            if started.returncode == 0:
                break
            if attempt == 2:
                server_log = log.read_text(errors="replace") if log.exists() else ""
                raise RuntimeError(f"pg_ctl start failed:\n{started.stdout}\n{started.stderr}\n{server_log}")
        try:
            url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
            _wait_ready(url, time.monotonic() + _START_TIMEOUT_S)
            yield url
        finally:
            _run([pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop"], user)
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of a PostgreSQL server for this session (superuser, trust auth on loopback)."""
    external = os.environ.get("ORCH_TEST_POSTGRES_URL")
    if external:
        yield external
        return
    binaries = _find_binaries()
    if binaries is None:
        message = (
            "PostgreSQL binaries (initdb, pg_ctl) not found; install postgresql or set ORCH_TEST_POSTGRES_URL"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message} (CI must run the PostgreSQL tests)", pytrace=False)
        pytest.skip(message)
    with _throwaway_server(*binaries) as url:
        yield url


def _with_database(url: str, dbname: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{dbname}"))


@pytest.fixture
def postgres_db_url(postgres_url: str) -> Iterator[str]:
    """A fresh, empty database for one test, dropped afterwards, so tests never see each other's rows."""
    dbname = f"t_{uuid.uuid4().hex}"
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{dbname}"')
    try:
        yield _with_database(postgres_url, dbname)
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            # FORCE ends sessions a failed test left open (PostgreSQL 13+).
            try:
                admin.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
            except psycopg.errors.SyntaxError:
                admin.execute(f'DROP DATABASE IF EXISTS "{dbname}"')


@pytest.fixture
def postgres_schema_url(postgres_url: str) -> Iterator[str]:
    """A fresh, empty schema for one test, first on the connection's ``search_path``, dropped afterwards.

    Cheaper isolation than :func:`postgres_db_url` (no database copy, about 10 ms instead of 200+), for
    code that uses unqualified table names, like the event store.
    """
    schema = f"t_{uuid.uuid4().hex}"
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
    parts = urlsplit(postgres_url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "options"]
    query.append(("options", f"-c search_path={schema}"))
    try:
        yield urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')

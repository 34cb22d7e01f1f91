"""The ``orchestrate`` command: run the server, work with event logs, and manage API keys."""

from __future__ import annotations

import contextlib
import importlib
import os
import secrets
import signal
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from orchestrator.client import register as register_client_commands
from orchestrator.server.serve_config import ServeListeners, remove_scratch, serve_listeners

if TYPE_CHECKING:
    from orchestrator.config import Settings

app = typer.Typer(add_completion=False, help="Event-sourced workflow and multi-agent orchestration on Ray.")
keys_app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="API keys in the store's database; changes apply to a running server at its next request.",
)
app.add_typer(keys_app, name="keys")
console = Console(stderr=True)
_listeners: ServeListeners | None = None  # this process's server: HAProxy's private files, removed at stop


@app.callback()
def _root() -> None:
    """Event-sourced workflow and multi-agent orchestration on Ray."""


@app.command()
def serve(
    port: Annotated[int, typer.Option(help="HTTP port")] = 8081,
    host: Annotated[str, typer.Option(help="HTTP bind address")] = "127.0.0.1",
    data_dir: Annotated[Path, typer.Option(help="SQLite store and demo databases")] = Path("./data"),
    placement: Annotated[str, typer.Option(help="pooled or dedicated execution actors")] = "",
    database_url: Annotated[str, typer.Option(help="postgresql://... (default: SQLite in data-dir)")] = "",
    fast_proxy: Annotated[
        bool | None,
        typer.Option(
            "--fast-proxy/--no-fast-proxy",
            help="Ray Serve's throughput mode behind HAProxy (default: on; off: Serve's own proxy)",
        ),
    ] = None,
    auth: Annotated[
        str, typer.Option(help="off or api_key (default: api_key unless the host is a loopback address)")
    ] = "",
    insecure: Annotated[
        bool, typer.Option(help="allow auth off on a non-loopback address: anyone who reaches it is admin")
    ] = False,
    dashboard: Annotated[
        bool | None, typer.Option("--dashboard/--no-dashboard", help="Ray's dashboard (default: on)")
    ] = None,
    dashboard_host: Annotated[
        str, typer.Option(help="dashboard bind address (default 127.0.0.1; elsewhere it needs Ray's token)")
    ] = "",
    dashboard_port: Annotated[
        int | None, typer.Option(help="dashboard port (default 8265; 0 or a busy port: a free one)")
    ] = None,
) -> None:
    """Start (or join, with RAY_ADDRESS) Ray, deploy the Serve application and serve until stopped."""
    if auth and auth not in ("off", "api_key"):
        raise typer.BadParameter(f"--auth must be off or api_key, not {auth!r}")
    if auth:
        os.environ["ORCH_AUTH"] = auth
    _refuse_open_network(host, insecure=insecure)  # before anything starts
    if fast_proxy is not None:
        os.environ["ORCH_FAST_PROXY"] = "1" if fast_proxy else "0"
    os.environ["ORCH_PORT"] = str(port)
    os.environ["ORCH_HOST"] = host
    os.environ["ORCH_DATA_DIR"] = str(data_dir.expanduser().resolve())
    if placement:
        os.environ["ORCH_PLACEMENT"] = placement
    if database_url:
        os.environ["ORCH_DATABASE_URL"] = database_url
    # not given: ORCH_DASHBOARD* (or the defaults) decide
    if dashboard is not None:
        os.environ["ORCH_DASHBOARD"] = "1" if dashboard else "0"
    if dashboard_host:
        os.environ["ORCH_DASHBOARD_HOST"] = dashboard_host
    if dashboard_port is not None:
        os.environ["ORCH_DASHBOARD_PORT"] = str(dashboard_port)
    start_server(wait=True)


def _refuse_open_network(host: str, *, insecure: bool) -> None:
    """Auth off on an address other machines reach lets anyone read, cancel and run anything."""
    from orchestrator.config import is_loopback

    auth = os.environ.get("ORCH_AUTH", "").strip().lower()
    if auth == "off" and not is_loopback(host) and not insecure:
        console.print(
            f"[bold red]refusing to start:[/] auth is off (ORCH_AUTH=off) and --host {host} is reachable "
            "from other machines, so anyone who can connect could read, cancel and run every tenant's "
            "workflows. Use API keys (--auth api_key, the default off loopback; create keys with "
            "`orchestrate keys create`), bind a loopback address (--host 127.0.0.1), or pass --insecure "
            "if something in front of the server already authenticates its clients."
        )
        raise typer.Exit(2)


def start_server(*, wait: bool) -> str | None:
    """Start Ray (or join ``RAY_ADDRESS``) and the Serve app; returns the Ray dashboard's URL, if any."""
    import ray
    from ray import serve as ray_serve

    from orchestrator.config import load_settings

    settings = load_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app_module = _import_in_background("serve_app")
    address = os.environ.get("RAY_ADDRESS")
    if not address:
        _secure_local_cluster(settings.data_dir)
    global _listeners
    remove_scratch(_listeners)
    if address:
        _listeners = ServeListeners(
            env={}, http_options={"host": settings.host, "port": settings.port}, scratch=None
        )
    else:
        _listeners = serve_listeners(settings)
    started = time.perf_counter()
    # Serve's processes read it when Ray starts them (they inherit the raylet's environment); put back
    # after, so that processes this one starts later (a `ray start`, another server) do not inherit it
    with _environment(_listeners.env):
        context = ray.init(
            # "local": a cluster of our own, never one some `ray start` left on this machine
            address=address or "local",
            namespace=settings.namespace,
            log_to_driver=True,
            # a joined cluster has the dashboard its head was started with, and its workers need the
            # settings sent along; a cluster of our own hands this environment down to every worker,
            # and a job-wide runtime_env would cost each actor a worker of its own (not one Ray started
            # ahead) and a round trip to the runtime-env agent: 5 actors took 1.9 s instead of 0.9 s
            **({"runtime_env": {"env_vars": _orch_env()}} if address else _dashboard_options(settings)),
        )
    from orchestrator.runtime.placement import alive_nodes, uses_sqlite

    if uses_sqlite(settings) and len(nodes := alive_nodes()) > 1:
        console.print(
            f"[bold red]refusing to start:[/] this Ray cluster has {len(nodes)} nodes, but the event store is "
            "SQLite, which lives on one machine. Set ORCH_DATABASE_URL (--database-url) to a PostgreSQL "
            "database the nodes share."
        )
        ray.shutdown()
        raise typer.Exit(2)
    from orchestrator.server.wiring import prestart_actors

    prestart_actors(settings)
    ray_serve.start(proxy_location=settings.proxy_location, http_options=_listeners.http_options)
    app_module.join()
    from serve_app import build_app  # imported by now (or it raises here what the import raised)

    ray_serve.run(build_app(settings), name="orchestrator", route_prefix="/", blocking=False)
    console.print(
        f"[bold green]orchestrator ready[/] on http://{settings.host}:{settings.port} "
        f"({time.perf_counter() - started:.1f}s; store {_safe_url(settings.store_url)}; "
        f"placement {settings.placement}; LLM {settings.resolved_llm_provider}; auth {settings.resolved_auth})"
    )
    dashboard_url = _dashboard_url(getattr(context, "dashboard_url", None))
    _print_dashboard(dashboard_url, wanted=settings.dashboard and not address)
    if not wait:
        return dashboard_url
    stop_signals = _listen_for_stop_signals()
    while not stop_signals:  # polled: signal.pause() would miss one landing just before it
        time.sleep(0.2)
    console.print("shutting down... (again to stop at once)")
    # bounded: whatever the graceful stop waits for, the server is gone within STOP_SECONDS
    watchdog = threading.Timer(STOP_SECONDS, _stop_now, args=(stop_signals[0],))
    watchdog.daemon = True
    watchdog.start()
    stop_server(settle=SIGNAL_SETTLE_SECONDS)
    watchdog.cancel()
    return dashboard_url


def _import_in_background(module: str) -> threading.Thread:
    """Import ``module`` on a thread while Ray and Serve start: the application's module takes a second
    or more to import (FastAPI's routes, the models), and the main thread spends those seconds waiting
    for Ray's processes with the GIL free. A failed import is raised by the main thread's own import."""

    def run() -> None:
        with contextlib.suppress(Exception):
            importlib.import_module(module)

    thread = threading.Thread(target=run, name=f"import-{module}", daemon=True)
    thread.start()
    return thread


def _stop_now(signum: int) -> None:
    """End this process, and with it what it started, without the graceful stop."""
    if os.getpgid(0) == os.getpid():
        # its own process group (a shell's job, a service): Ray's daemons and agents are in it and
        # would outlive an exit of this process alone; Ray's workers follow the raylet out
        os.killpg(os.getpid(), signal.SIGKILL)
    os._exit(128 + signum)


def _listen_for_stop_signals() -> list[int]:
    """SIGINT and SIGTERM from now on are recorded in the list returned (the caller stops when it is
    not empty). The handlers only record: a handler that takes a lock (as ``threading.Event.set``
    does) deadlocks when a second signal lands while the first one holds it, which Ctrl-C pressed
    twice, or a SIGTERM sent to the whole process group, does. A second signal ends it at once, without
    the graceful stop, and with it what it started: the executions' logs are in the store."""
    received: list[int] = []

    def on_signal(signum: int, frame: object) -> None:
        received.append(signum)
        if len(received) > 1:
            _stop_now(signum)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    return received


# The longest a graceful stop may take before the server ends itself and what it started.
STOP_SECONDS = 15.0
# How long a stop on a signal watches Ray's daemons for the same signal taking them down.
SIGNAL_SETTLE_SECONDS = 1.5


@contextlib.contextmanager
def _environment(env: dict[str, str]) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def stop_server(*, settle: float = 0.0) -> None:
    """Serve first (its controller drains the replicas), then the server's own actors, then Ray.

    On a Ray instance of its own the server skips Serve's graceful shutdown: Ray goes down with it
    anyway, and in HA proxy mode Ray 2.60's `serve.shutdown()` waited its full 30 s on every stop
    here ("Controller failed to shut down"). Executions lose nothing (the log is in
    the store and the hosts give their leases back first); HAProxy dies with its manager.

    ``settle``: after a stop signal, how long to watch this process's own Ray daemons for the same
    signal taking them down (then only what is left is shut down: nothing answers the rest)."""
    import ray
    from ray import serve as ray_serve

    from orchestrator.config import load_settings
    from orchestrator.runtime.host import HOST_PREFIX
    from orchestrator.runtime.placement import SUPERVISOR_NAME

    settings = load_settings()
    if not os.environ.get("RAY_ADDRESS") and not _own_ray_alive(settle):
        # the signal that stopped the server reached Ray's daemons too (sent to the process group, as
        # Ctrl-C and service managers do): nobody is left to talk to, and asking would hang
        with contextlib.suppress(Exception):
            ray.shutdown()
        _drop_listeners()
        return
    if os.environ.get("RAY_ADDRESS"):  # a cluster that outlives this server: stop Serve gracefully
        with contextlib.suppress(Exception):
            ray_serve.shutdown()  # type: ignore[no-untyped-call]  # Ray leaves serve.shutdown() unannotated
    with contextlib.suppress(Exception):  # detached actors outlive the driver unless killed
        names = [
            str(actor["name"])
            for actor in ray.util.list_named_actors(all_namespaces=True)
            if actor.get("namespace") == settings.namespace
        ]
        # the supervisor first (it would put hosts back), then the hosts leave: their leases are
        # released now, so a restart does not wait for them to expire
        names.sort(key=lambda name: (name != SUPERVISOR_NAME, not name.startswith(HOST_PREFIX)))
        for name in names:
            handle = ray.get_actor(name, namespace=settings.namespace)
            if name.startswith(HOST_PREFIX):
                with contextlib.suppress(Exception):
                    ray.get(handle.leave.remote(), timeout=5)
            ray.kill(handle)
    ray.shutdown()
    _drop_listeners()


def _drop_listeners() -> None:
    global _listeners
    remove_scratch(_listeners)
    _listeners = None


def _own_ray_alive(settle: float) -> bool:
    """Whether the Ray daemons this process started (its children ``gcs_server`` and ``raylet``) still
    run, watched for ``settle`` seconds so that a signal they got with this process has taken effect
    (on a busy machine they take a while to go). True where it cannot tell (no ``/proc``): then the
    graceful stop tries, bounded by its watchdog."""
    proc = Path("/proc")
    if not proc.is_dir():
        return True
    own = str(os.getpid())
    deadline = time.monotonic() + settle
    while True:
        daemons = 0
        for entry in proc.iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError, IndexError):
                name, rest = entry.joinpath("stat").read_text().rsplit(")", 1)
                fields = rest.split()
                if fields[1] != own or not name.endswith(("(gcs_server", "(raylet")):
                    continue
                if fields[0] in ("Z", "X"):
                    return False  # one of them is gone
                daemons += 1
        if daemons == 0 or time.monotonic() >= deadline:
            return daemons > 0
        time.sleep(0.1)


def _open_store(data_dir: Path | None, database_url: str) -> Any:
    from orchestrator.config import load_settings
    from orchestrator.store import open_store

    if data_dir is not None:
        os.environ["ORCH_DATA_DIR"] = str(data_dir.expanduser().resolve())
    if database_url:
        os.environ["ORCH_DATABASE_URL"] = database_url
    return open_store(load_settings().store_url)


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@app.command()
def export(
    out: Annotated[Path, typer.Argument(help="file to write")],
    format: Annotated[str, typer.Option(help="parquet or arrow")] = "parquet",
    execution: Annotated[list[str] | None, typer.Option(help="execution id (repeatable)")] = None,
    workflow: Annotated[str, typer.Option(help="workflow name or registered workflow id")] = "",
    tenant: Annotated[str, typer.Option(help="tenant id")] = "",
    since: Annotated[str, typer.Option(help="events recorded at or after (ISO 8601)")] = "",
    until: Annotated[str, typer.Option(help="events recorded before (ISO 8601)")] = "",
    data_dir: Annotated[Path | None, typer.Option(help="data directory of a SQLite store")] = None,
    database_url: Annotated[str, typer.Option(help="postgresql://... store")] = "",
) -> None:
    """Write event logs (one row per event, payload as JSON) as Parquet or Arrow IPC."""
    from orchestrator.store.export import write_events

    if format not in ("parquet", "arrow"):
        raise typer.BadParameter("format must be parquet or arrow")
    store = _open_store(data_dir, database_url)
    ids: list[str] | None = list(execution) if execution else None
    if workflow or tenant:
        selected = _select_ids(store, workflow=workflow or None, tenant=tenant or None)
        ids = [i for i in ids if i in selected] if ids is not None else sorted(selected)
    records = store.iter_records(execution_ids=ids, since=_parse_time(since), until=_parse_time(until))
    count = write_events(records, out, format)  # type: ignore[arg-type]
    console.print(f"wrote {count} events to {out}")


def _select_ids(store: Any, *, workflow: str | None, tenant: str | None) -> set[str]:
    selected: set[str] = set()
    for field in ("workflow_name", "workflow_id") if workflow else (None,):
        offset = 0
        while True:
            filters = {field: workflow} if field else {}
            page = store.list_executions(tenant_id=tenant, limit=1000, offset=offset, **filters)
            selected.update(row.id for row in page.rows)
            offset += len(page.rows)
            if not page.rows or offset >= page.total:
                break
    return selected


@app.command()
def replay(
    source: Annotated[Path, typer.Argument(help="a Parquet or Arrow export")],
    data_dir: Annotated[
        Path | None, typer.Option(help="data directory of a SQLite store to compare with")
    ] = None,
    database_url: Annotated[str, typer.Option(help="postgresql://... store to compare with")] = "",
) -> None:
    """Rebuild every execution in an export with the server's fold; report differences from the store."""
    from orchestrator.store.export import read_events
    from orchestrator.store.replay import compare
    from orchestrator.store.replay import replay as replay_states

    store = _open_store(data_dir, database_url)
    count, differences = compare(replay_states(read_events(source)), store)
    for diff in differences:
        console.print(
            f"[red]{diff.execution_id}[/] {diff.field}: replayed {diff.replayed!r}, live {diff.live!r}"
        )
    console.print(f"replayed {count} executions, {len(differences)} differences")
    raise typer.Exit(1 if differences else 0)


@app.command()
def prune(
    older_than_days: Annotated[float, typer.Option(help="prune terminal executions finished before this")],
    data_dir: Annotated[Path | None, typer.Option(help="data directory of a SQLite store")] = None,
    database_url: Annotated[str, typer.Option(help="postgresql://... store")] = "",
) -> None:
    """Delete finished executions (events and projection together) older than the given age."""
    store = _open_store(data_dir, database_url)
    removed = store.prune(finished_before=datetime.now(UTC) - timedelta(days=older_than_days))
    console.print(f"pruned {removed} executions")


# ------------------------------------------------------------------------------------------ API keys

_Role = Annotated[str, typer.Option(help="member (its tenant only) or admin (any tenant, shared workflows)")]
_DataDir = Annotated[Path | None, typer.Option(help="data directory of a SQLite store")]
_DatabaseUrl = Annotated[str, typer.Option(help="postgresql://... store")]


@keys_app.command("create")
def keys_create(
    tenant: Annotated[str, typer.Option(help="the tenant the key acts for")],
    role: _Role = "member",
    name: Annotated[str, typer.Option(help="what the key is for, e.g. ci")] = "",
    data_dir: _DataDir = None,
    database_url: _DatabaseUrl = "",
) -> None:
    """Create a key; it is printed once, alone on the last line of standard output, and stored hashed."""
    from orchestrator.server.auth import ROLES, generate_key

    if role not in ROLES:
        raise typer.BadParameter(f"--role must be member or admin, not {role!r}")
    if not tenant.strip():
        raise typer.BadParameter("--tenant must not be empty")
    key, record = generate_key(tenant_id=tenant.strip(), role=role, name=name)
    with contextlib.closing(_open_store(data_dir, database_url)) as store:
        store.create_api_key(record)
    console.print(f"created {role} key {record.id} for tenant {record.tenant_id!r}; it is shown only once:")
    print(key, flush=True)


@keys_app.command("list")
def keys_list(
    tenant: Annotated[str, typer.Option(help="only this tenant's keys")] = "",
    data_dir: _DataDir = None,
    database_url: _DatabaseUrl = "",
) -> None:
    """List keys: id, tenant, role, name, created, last used, revoked (never a key or its hash)."""
    with contextlib.closing(_open_store(data_dir, database_url)) as store:
        records = store.list_api_keys(tenant_id=tenant or None)
    print("\t".join(("id", "tenant", "role", "name", "created_at", "last_used_at", "revoked")))
    for record in records:
        used = record.last_used_at.isoformat() if record.last_used_at else "-"
        fields = (record.id, record.tenant_id, record.role, record.name or "-", record.created_at.isoformat())
        print("\t".join((*fields, used, "yes" if record.revoked else "no")))


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="the key's id (the part after orch_)")],
    data_dir: _DataDir = None,
    database_url: _DatabaseUrl = "",
) -> None:
    """Revoke a key: the running server refuses it from its next request on."""
    with contextlib.closing(_open_store(data_dir, database_url)) as store:
        revoked = store.revoke_api_key(key_id)
    if not revoked:
        console.print(f"[red]no key {key_id!r}[/]")
        raise typer.Exit(1)
    console.print(f"revoked key {key_id}")


def _safe_url(url: str) -> str:
    """A store URL without its password, for the console."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


RAY_TOKEN_FILE = "ray_auth_token"

# Settings that hold credentials: they reach the workers inside the Settings object the server passes, so
# they have no business in the runtime env, which Ray shows to anyone who can list jobs or actors.
_SECRET_SETTINGS = frozenset({"llm_api_key", "database_url", "admin_key"})
_SECRET_NAME = ("KEY", "TOKEN", "SECRET", "PASSWORD", "CREDENTIAL")


def _secure_local_cluster(data_dir: Path) -> None:
    """Keep Ray's token authentication on for the cluster ``ray.init`` is about to start.

    Ray's servers (GCS, raylet, every worker) listen on all interfaces and cannot be bound to loopback;
    without the token anyone who reaches the machine could join the cluster and run code in it. Ray 2.60
    turns token mode on for a new local cluster when ``RAY_AUTH_MODE`` is unset, but keeps its token in
    ``~/.ray``: point it at one in the data directory instead, so each server has its own and it goes
    with the data. An explicit ``RAY_AUTH_MODE`` or token is respected.
    """
    mode = os.environ.get("RAY_AUTH_MODE", "").lower()
    if mode and mode != "token":
        console.print(
            f"[bold red]warning:[/] RAY_AUTH_MODE={mode}: anyone who can reach this machine can join its "
            "Ray cluster and run code in it"
        )
        return
    if os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH"):
        return
    path = data_dir / RAY_TOKEN_FILE
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
    os.environ["RAY_AUTH_TOKEN_PATH"] = str(path)


def _dashboard_options(settings: Settings) -> dict[str, Any]:
    """``ray.init`` arguments for the dashboard of the local cluster it starts.

    A busy port never stops the server: Ray walks up from its default port by itself (the bind happens in
    the dashboard's process, so two servers starting together do not race), and any other busy port is
    swapped for a free one. ``include_dashboard=None`` is Ray's default: the dashboard starts, and if it
    still fails Ray logs why and the server runs without it.
    """
    from orchestrator.config import DEFAULT_DASHBOARD_PORT, is_loopback

    if not settings.dashboard:
        return {"include_dashboard": False}
    host, port = settings.dashboard_host, settings.dashboard_port
    if not is_loopback(host) and (os.environ.get("RAY_AUTH_MODE") or "token").lower() != "token":
        console.print(
            f"[bold red]warning:[/] the Ray dashboard on {host} has no token to ask for: anyone who reaches "
            "it can submit jobs, that is run code in the cluster"
        )
    if port == DEFAULT_DASHBOARD_PORT:
        chosen: int | None = None  # Ray's own search: 8265, else the next free of 8266..8315
    elif port and not _port_free(host, port):
        console.print(f"[yellow]dashboard port {port} on {host} is taken:[/] using a free one")
        chosen = 0
    else:
        chosen = port  # 0 binds any free port; Ray reports the one it got
    return {"include_dashboard": None, "dashboard_host": host, "dashboard_port": chosen}


def _port_free(host: str, port: int) -> bool:
    import socket

    address = host.strip("[]")
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Ray's own check does
        try:
            sock.bind((address, port))
        except OSError:
            return False
    return True


def _dashboard_url(url: str | None) -> str | None:
    if not url:
        return None
    return url if "://" in url else f"http://{url}"


def _print_dashboard(url: str | None, *, wanted: bool) -> None:
    from rich.markup import escape

    if url is None:
        if wanted:
            console.print("[yellow]Ray dashboard not running[/] (Ray's log above says why)")
        return
    # in token mode the dashboard asks for Ray's token once and keeps it in a cookie
    token_path = os.environ.get("RAY_AUTH_TOKEN_PATH")
    sign_in = f" (sign in with the token in {escape(token_path)})" if token_path else ""
    console.print(f"Ray dashboard on {url}{sign_in}", soft_wrap=True)  # unbroken, to copy


def _orch_env() -> dict[str, str]:
    """The ``ORCH_*`` variables Serve's processes need to import ``serve_app`` (its module-level
    settings); never a credential."""
    from orchestrator.config import Settings

    known = {f"ORCH_{name.upper()}" for name in Settings.model_fields if name not in _SECRET_SETTINGS}
    return {
        key: value
        for key, value in os.environ.items()
        if key.upper() in known and not any(word in key.upper() for word in _SECRET_NAME)
    }


# after the server's own commands, so that `orchestrate --help` lists those first
register_client_commands(app)  # run, executions, plan, agents, workflows, approve, signal: HTTP only


def main() -> None:
    app()


if __name__ == "__main__":
    main()

"""The ``orchestrate`` command: run the server, and work with event logs."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

app = typer.Typer(add_completion=False, help="Event-sourced workflow and multi-agent orchestration on Ray.")
console = Console(stderr=True)


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
) -> None:
    """Start (or join, with RAY_ADDRESS) Ray, deploy the Serve application and serve until stopped."""
    os.environ["ORCH_PORT"] = str(port)
    os.environ["ORCH_HOST"] = host
    os.environ["ORCH_DATA_DIR"] = str(data_dir.expanduser().resolve())
    if placement:
        os.environ["ORCH_PLACEMENT"] = placement
    if database_url:
        os.environ["ORCH_DATABASE_URL"] = database_url
    start_server(wait=True)


def start_server(*, wait: bool) -> None:
    import ray
    from ray import serve as ray_serve

    from orchestrator.config import load_settings

    settings = load_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a local dev cluster on loopback
    address = os.environ.get("RAY_ADDRESS")
    started = time.perf_counter()
    ray.init(
        address=address or None,
        namespace=settings.namespace,
        include_dashboard=None if address else False,
        log_to_driver=True,
        runtime_env={"env_vars": _orch_env()},
    )
    ray_serve.start(http_options={"host": settings.host, "port": settings.port})
    from serve_app import build_app

    ray_serve.run(build_app(settings), name="orchestrator", route_prefix="/", blocking=False)
    console.print(
        f"[bold green]orchestrator ready[/] on http://{settings.host}:{settings.port} "
        f"({time.perf_counter() - started:.1f}s; store {settings.store_url}; placement {settings.placement}; "
        f"LLM {settings.resolved_llm_provider})"
    )
    if not wait:
        return
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    console.print("shutting down...")
    stop_server()


def stop_server() -> None:
    import ray
    from ray import serve as ray_serve

    from orchestrator.config import load_settings

    settings = load_settings()
    try:
        for actor in ray.util.list_named_actors(all_namespaces=True):
            if actor.get("namespace") == settings.namespace:
                ray.kill(ray.get_actor(actor["name"], namespace=settings.namespace))
    except Exception:  # best effort: Serve and Ray shutdown below end the rest
        pass
    ray_serve.shutdown()
    ray.shutdown()


def _orch_env() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if key.startswith("ORCH_")}


def main() -> None:
    app()


if __name__ == "__main__":
    main()

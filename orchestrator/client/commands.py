"""The client commands of ``orchestrate``: run, follow and inspect executions, plan, agents, registered
workflows, approvals and signals, all over the server's HTTP API.

Every command takes ``--server`` (``ORCH_SERVER``), ``--api-key`` (``ORCH_API_KEY``) and ``--json`` (the
server's JSON as it came, for scripts; a followed execution as one JSON event per line). Exit codes:

    0  done; a run or a followed execution ended ``completed``
    1  the server answered with an error (its code and message are printed on one line), or the
       connection broke
    2  a bad argument or an unreadable file (nothing was sent)
    3  no server answers at the address: start one with ``orchestrate serve``
    4  the execution ended but not ``completed`` (failed, timeout, cancelled), or the plan did not succeed
  130  interrupted while following (the execution goes on)
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.text import Text

from orchestrator.client.follow import TERMINAL_STATUSES, Item, StepProgress, follow
from orchestrator.client.http import (
    DEFAULT_SERVER,
    NO_READ_TIMEOUT,
    ApiError,
    Client,
    ClientError,
    InputError,
    ServerUnreachable,
)
from orchestrator.client.inputs import default_user, json_argument, load_document, parse_inputs, run_request
from orchestrator.client.live import show_live
from orchestrator.client.model import ExecutionModel
from orchestrator.client.render import (
    event_line,
    final_line,
    print_agent,
    print_agents,
    print_events,
    print_execution,
    print_execution_list,
    print_json,
    print_json_line,
    print_output,
    print_plan,
    print_workflow,
    print_workflows,
)

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_NOT_COMPLETED = 4
EXIT_INTERRUPTED = 130

V1 = "/api/v1/workflows"
EAI = "/api/eai/v3/orchestrate"

# -- options every command shares ------------------------------------------------------------------------

_CONNECTION = "Connection"
Server = Annotated[
    str,
    typer.Option("--server", envvar="ORCH_SERVER", help="the server's base URL", rich_help_panel=_CONNECTION),
]
ApiKey = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        envvar="ORCH_API_KEY",
        help="an orch_... key, when the server asks for one",
        show_default=False,
        rich_help_panel=_CONNECTION,
    ),
]
Json = Annotated[bool, typer.Option("--json", help="the server's JSON, for scripts")]
User = Annotated[
    str | None,
    typer.Option(
        "--user",
        envvar="ORCH_USER",
        help="user id sent as user.id when the request has none (default: your login name)",
        show_default=False,
    ),
]


def _stdout() -> Console:
    return Console(highlight=False)


def _error(message: str) -> None:
    """Errors go to standard error as plain text: one line a script or a person can read."""
    print(message, file=sys.stderr, flush=True)


@contextlib.contextmanager
def _client(server: str, api_key: str | None) -> Iterator[Client]:
    """A client whose errors end the command with the documented exit code and one line on stderr."""
    try:
        with Client(server, api_key=api_key) as client:
            yield client
    except ServerUnreachable as exc:
        _error(f"error: no orchestrator server at {exc.server} ({exc.reason}).")
        _error("Start one with `orchestrate serve`, or point --server / ORCH_SERVER at a running one.")
        raise typer.Exit(EXIT_UNREACHABLE) from None
    except ApiError as exc:
        _error(f"error: {exc.code}: {exc.message}")
        for detail in exc.details if isinstance(exc.details, list) else []:
            if isinstance(detail, dict) and detail.get("message"):
                field = f"{detail['field']}: " if detail.get("field") else ""
                _error(f"  - {field}{detail['message']}")
        if exc.status == 401 and not api_key:
            _error("The server needs an API key: pass --api-key or set ORCH_API_KEY.")
        raise typer.Exit(EXIT_ERROR) from None
    except InputError as exc:
        _error(f"error: {exc}")
        raise typer.Exit(EXIT_USAGE) from None
    except ClientError as exc:
        _error(f"error: {exc}")
        raise typer.Exit(EXIT_ERROR) from None


def _exit_for(status: str) -> None:
    if status != "completed":
        raise typer.Exit(EXIT_NOT_COMPLETED)


# -- following -----------------------------------------------------------------------------------------


def watch(
    client: Client, execution_id: str, *, json_lines: bool, live: bool | None = None, after: int = 0
) -> dict[str, Any]:
    """Follow an execution to its end and return its final view (``GET``). Shown as a live view on a
    terminal, as one line per event otherwise, or as one JSON object per line (progress included)."""
    console = _stdout()
    model = ExecutionModel(execution_id)
    items = follow(client, execution_id, after=after)
    final: dict[str, Any] = {}

    def finish() -> None:
        final.update(client.get(f"{V1}/executions/{execution_id}"))
        model.reconcile(final)

    try:
        if json_lines:
            for item in items:
                print_json_line(item.as_json() if isinstance(item, StepProgress) else item)
            finish()
            return final
        if live if live is not None else console.is_terminal:
            show_live(console, model, items, finish)
        else:
            for item in items:
                if isinstance(item, dict):
                    model.apply(item)
                    console.print(Text(event_line(item)))
            finish()
    except KeyboardInterrupt:
        _error(
            f"stopped following; execution {execution_id} goes on (orchestrate executions follow {execution_id})"
        )
        raise typer.Exit(EXIT_INTERRUPTED) from None
    print_output(console, final.get("output"))
    console.print(final_line(model))
    return final


def _drain(client: Client, execution_id: str) -> dict[str, Any]:
    """Wait for the end without showing anything (a synchronous run the server answered 202)."""
    for _ in follow(client, execution_id):
        pass
    view: dict[str, Any] = client.get(f"{V1}/executions/{execution_id}")
    return view


# -- run -----------------------------------------------------------------------------------------------


def run(
    file: Annotated[
        Path, typer.Argument(help="a workflow request (JSON/YAML) or a workflow {metadata, spec}")
    ],
    input: Annotated[
        list[str] | None,
        typer.Option(
            "--input", "-i", help="KEY=VALUE (VALUE as JSON if it parses), KEY=@file, or @file.json"
        ),
    ] = None,
    async_: Annotated[bool, typer.Option("--async", help="start it and print its id; do not wait")] = False,
    follow_: Annotated[
        bool | None,
        typer.Option(
            "--follow/--no-follow", help="watch it live (default: when standard output is a terminal)"
        ),
    ] = None,
    server: Server = DEFAULT_SERVER,
    api_key: ApiKey = None,
    user: User = None,
    json_: Json = False,
) -> None:
    """Run a workflow (POST /api/v1/workflows/execute); exits 0 when it completes, 4 when it does not."""
    with _client(server, api_key) as client:
        body = run_request(load_document(file), inputs=parse_inputs(input or []), user=user, source=str(file))
        background = async_ or body.get("async") is True  # the file may ask not to wait, too
        watching = follow_ if follow_ is not None else (not background and not json_ and sys.stdout.isatty())
        if watching or background:
            body["async"] = True
            started = client.request("POST", f"{V1}/execute", json=body).body
            execution_id = str(started["id"])
            if watching:
                final = watch(client, execution_id, json_lines=json_)
                _exit_for(str(final.get("status")))
                return
            if json_:
                print_json(started)
            else:
                _stdout().print(
                    Text.assemble("started execution ", (execution_id, "bold"), f" ({started.get('status')})")
                )
                _stdout().print(f"[dim]follow it with: orchestrate executions follow {execution_id}[/]")
            return
        try:
            reply = client.request("POST", f"{V1}/execute", json=body, timeout=NO_READ_TIMEOUT)
            view: dict[str, Any] = reply.body
            if view.get("status") not in TERMINAL_STATUSES:
                view = _drain(client, str(view["id"]))  # outlasted the server's synchronous wait
        except ApiError as exc:
            details = exc.details if isinstance(exc.details, dict) else {}
            if exc.code != "EXECUTION_TIMEOUT" or not isinstance(details.get("execution"), dict):
                raise
            view = details["execution"]
        if json_:
            print_json(view)
        else:
            print_execution(_stdout(), view)
        _exit_for(str(view.get("status")))


# -- executions ----------------------------------------------------------------------------------------

executions_app = typer.Typer(no_args_is_help=True, help="List, show, follow and cancel executions.")


@executions_app.command("list")
def executions_list(
    status: Annotated[
        str | None, typer.Option(help="pending, running, completed, failed, timeout, cancelled")
    ] = None,
    workflow: Annotated[str | None, typer.Option(help="workflow name (or registered workflow id)")] = None,
    tenant: Annotated[
        str | None,
        typer.Option(help="one tenant's executions (with --workflow: filters the page it returns)"),
    ] = None,
    limit: Annotated[int, typer.Option(help="at most this many, newest first (1..1000)")] = 20,
    offset: Annotated[int, typer.Option(help="skip this many")] = 0,
    server: Server = DEFAULT_SERVER,
    api_key: ApiKey = None,
    json_: Json = False,
) -> None:
    """Executions, newest first."""
    with _client(server, api_key) as client:
        params: dict[str, Any] = {"status": status, "limit": limit, "offset": offset}
        if tenant:
            body = client.get(f"{V1}/executions/tenant/{tenant}", **params)
            if workflow:  # the tenant route has no workflow filter
                body["executions"] = [
                    e for e in body.get("executions", []) if e.get("workflow_name") == workflow
                ]
                body["count"] = len(body["executions"])
        else:
            body = client.get(f"{V1}/executions", workflow_name=workflow, **params)
        if json_:
            print_json(body)
        else:
            print_execution_list(_stdout(), body.get("executions", []), total=body.get("total"))


@executions_app.command("show")
def executions_show(
    execution_id: Annotated[str, typer.Argument(metavar="ID", help="execution id")],
    server: Server = DEFAULT_SERVER,
    api_key: ApiKey = None,
    json_: Json = False,
) -> None:
    """One execution with its steps and output."""
    with _client(server, api_key) as client:
        view = client.get(f"{V1}/executions/{execution_id}")
        if json_:
            print_json(view)
        else:
            print_execution(_stdout(), view)


@executions_app.command("events")
def executions_events(
    execution_id: Annotated[str, typer.Argument(metavar="ID", help="execution id")],
    follow_: Annotated[
        bool, typer.Option("--follow", "-f", help="keep printing new events until the end")
    ] = False,
    server: Server = DEFAULT_SERVER,
    api_key: ApiKey = None,
    json_: Json = False,
) -> None:
    """The execution's event log (with --follow: as it grows; with --json: one event per line)."""
    with _client(server, api_key) as client:
        if not follow_:
            body = client.get(f"{V1}/executions/{execution_id}/events")
            if json_:
                print_json(body)
            else:
                print_events(_stdout(), body.get("events", []))
            return
        client.get(f"{V1}/executions/{execution_id}")  # a missing execution is an error, not a silent wait
        console = _stdout()
        try:
            for item in follow(client, execution_id):
                if json_:
                    print_json_line(item.as_json() if isinstance(item, StepProgress) else item)
                elif isinstance(item, dict):
                    console.print(Text(event_line(item)))
        except KeyboardInterrupt:
            raise typer.Exit(EXIT_INTERRUPTED) from None


@executions_app.command("follow")
def executions_follow(
    execution_id: Annotated[str, typer.Argument(metavar="ID", help="execution id")],
    server: Server = DEFAULT_SERVER,
    api_key: ApiKey = None,
    json_: Json = False,
) -> None:
    """Watch an execution to its end; exits 0 when it completes, 4 when it does not."""
    with _client(server, api_key) as client:
        client.get(f"{V1}/executions/{execution_id}")
        final = watch(client, execution_id, json_lines=json_)
        _exit_for(str(final.get("status")))


@executions_app.command("cancel")
def executions_cancel(
    execution_id: Annotated[str, typer.Argument(metavar="ID", help="execution id")],
    server: Server = DEFAULT_SERVER,
    api_key: ApiKey = None,
    json_: Json = False,
) -> None:
    """Cancel a running execution (its unfinished steps end cancelled)."""
    with _client(server, api_key) as client:
        view = client.request("POST", f"{V1}/executions/{execution_id}/cancel").body
        if json_:
            print_json(view)
        else:
            _stdout().print(
                Text.assemble(
                    "cancelled execution ", (execution_id, "bold"), f" (status: {view.get('status')})"
                )
            )


# -- plan ----------------------------------------------------------------------------------------------


def plan(
    query: Annotated[str, typer.Argument(help="what you want, in a sentence")],
    domain: Annotated[
        str | None, typer.Option(help="domain hint: travel, crm, projects, ... or generic")
    ] = None,
    execute: Annotated[
        bool, typer.Option("--execute/--no-execute", help="run the plan, or only make it")
    ] = True,
    context: Annotated[
        str | None, typer.Option(help="the workflow's input: @file (JSON/YAML) or inline JSON")
    ] = None,
    mode: Annotated[str | None, typer.Option(help="auto, parallel or sequential")] = None,
    server: Server = DEFAULT_SERVER,
    api_key: ApiKey = None,
    user: User = None,
    json_: Json = False,
) -> None:
    """Plan a query over the agents (POST /api/v1/plan) and, unless --no-execute, run the plan."""
    with _client(server, api_key) as client:
        body: dict[str, Any] = {"query": query, "user": {"id": default_user(user)}, "execute": execute}
        if domain:
            body["domain"] = domain
        if mode:
            body["execution_mode"] = mode
        if context:
            value = json_argument(context, what="--context")
            if not isinstance(value, dict):
                raise InputError("--context must be a JSON object")
            body["context"] = value
        answer = client.request("POST", "/api/v1/plan", json=body, timeout=NO_READ_TIMEOUT).body
        if json_:
            print_json(answer)
        else:
            print_plan(_stdout(), answer)
        if execute and not answer.get("success"):
            raise typer.Exit(EXIT_NOT_COMPLETED)


# -- agents --------------------------------------------------------------------------------------------


def agents(
    agent_id: Annotated[
        str | None, typer.Argument(metavar="[ID]", help="one agent, with its capabilities")
    ] = None,
    domain: Annotated[str | None, typer.Option(help="only agents of this domain")] = None,
    server: Server = DEFAULT_SERVER,
    api_key: ApiKey = None,
    json_: Json = False,
) -> None:
    """The agents and their health, or one agent in detail."""
    with _client(server, api_key) as client:
        if agent_id:
            body = client.get(f"/api/v1/agents/{agent_id}")
            if json_:
                print_json(body)
            else:
                print_agent(_stdout(), body)
            return
        body = client.get("/api/v1/agents", domain=domain)
        if json_:
            print_json(body)
        else:
            print_agents(_stdout(), body.get("agents", []))


# -- registered workflows (EAI) ------------------------------------------------------------------------

workflows_app = typer.Typer(no_args_is_help=True, help="The registered workflows (EAI Orchestrate registry).")


@workflows_app.command("list")
def workflows_list(server: Server = DEFAULT_SERVER, api_key: ApiKey = None, json_: Json = False) -> None:
    """Registered workflows, latest version of each."""
    with _client(server, api_key) as client:
        body = client.get(f"{EAI}/workflows")
        if json_:
            print_json(body)
        else:
            print_workflows(_stdout(), body.get("data", []))


@workflows_app.command("show")
def workflows_show(
    workflow_id: Annotated[str, typer.Argument(metavar="ID", help="workflow id")],
    version: Annotated[str | None, typer.Option(help="a registered version (default: the latest)")] = None,
    server: Server = DEFAULT_SERVER,
    api_key: ApiKey = None,
    json_: Json = False,
) -> None:
    """One registered workflow: its steps and input."""
    with _client(server, api_key) as client:
        body = client.get(f"{EAI}/workflows/{workflow_id}", version=version)
        if json_:
            print_json(body)
        else:
            print_workflow(_stdout(), body)


@workflows_app.command("register")
def workflows_register(
    file: Annotated[Path, typer.Argument(help="an EAI workflow definition (JSON/YAML) with id and version")],
    workflow_id: Annotated[
        str | None, typer.Option("--id", help="the workflow id, if the file has none")
    ] = None,
    server: Server = DEFAULT_SERVER,
    api_key: ApiKey = None,
    json_: Json = False,
) -> None:
    """Register a workflow version (versions are immutable: a changed definition needs a new version)."""
    with _client(server, api_key) as client:
        definition = load_document(file)
        if not isinstance(definition, dict):
            raise InputError(f"{str(file)!r} must hold a workflow definition object")
        chosen = workflow_id or definition.get("id")
        if not isinstance(chosen, str) or not chosen:
            raise InputError(f"{str(file)!r} has no id: pass --id")
        reply = client.request("PUT", f"{EAI}/workflows/{chosen}", json=definition)
        if json_:
            print_json(reply.body)
            return
        what = "registered" if reply.status == 201 else "already registered (identical)"
        _stdout().print(Text.assemble(f"{what}: ", (chosen, "bold"), f" version {reply.body.get('version')}"))


# -- people in the loop --------------------------------------------------------------------------------


def approve(
    execution_id: Annotated[str, typer.Argument(metavar="ID", help="execution id")],
    step: Annotated[str, typer.Argument(help="the approval step")],
    reject: Annotated[bool, typer.Option("--reject", help="reject instead of approving")] = False,
    comment: Annotated[str | None, typer.Option(help="why, kept with the decision")] = None,
    server: Server = DEFAULT_SERVER,
    api_key: ApiKey = None,
    user: User = None,
    json_: Json = False,
) -> None:
    """Approve (or --reject) a waiting approval step."""
    with _client(server, api_key) as client:
        body: dict[str, Any] = {"approved": not reject, "user": {"id": default_user(user)}}
        if comment is not None:
            body["comment"] = comment
        answer = client.request("POST", f"{V1}/executions/{execution_id}/approvals/{step}", json=body).body
        if json_:
            print_json(answer)
            return
        decided = "rejected" if reject else "approved"
        _stdout().print(
            Text.assemble(f"{decided} step ", (step, "bold"), " of execution ", (execution_id, "bold"))
        )


def signal(
    execution_id: Annotated[str, typer.Argument(metavar="ID", help="execution id")],
    name: Annotated[str, typer.Argument(help="the signal's name")],
    payload: Annotated[
        str | None, typer.Option(help="@file (JSON/YAML) or inline JSON (default: null)")
    ] = None,
    server: Server = DEFAULT_SERVER,
    api_key: ApiKey = None,
    user: User = None,
    json_: Json = False,
) -> None:
    """Send a signal to an execution; a signal step waiting for it (now or later) gets the payload."""
    with _client(server, api_key) as client:
        value = json_argument(payload, what="--payload") if payload is not None else None
        body = {"payload": value, "user": {"id": default_user(user)}}
        answer = client.request("POST", f"{V1}/executions/{execution_id}/signals/{name}", json=body).body
        if json_:
            print_json(answer)
            return
        _stdout().print(
            Text.assemble("sent signal ", (name, "bold"), " to execution ", (execution_id, "bold"))
        )


def register(app: typer.Typer) -> None:
    """Add the client commands to the ``orchestrate`` app (the server's CLI is the composition root)."""
    app.command("run")(run)
    app.add_typer(executions_app, name="executions")
    app.command("plan")(plan)
    app.command("agents")(agents)
    app.add_typer(workflows_app, name="workflows")
    app.command("approve")(approve)
    app.command("signal")(signal)


__all__ = [
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_NOT_COMPLETED",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "Item",
    "register",
    "watch",
]

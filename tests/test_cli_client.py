"""The ``orchestrate`` client commands, run as a user runs them: the real CLI in a subprocess against the
real session server over HTTP (and in a terminal, through tmux or a pseudo-terminal, for the live view).

The parts that need no server (the SSE parser, the request builder, the display fold, the follower's
resume and fallback against a small real HTTP server of the test's own) are tested first.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import shutil
import subprocess
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from orchestrator.client import (
    ApiError,
    Client,
    ExecutionModel,
    InputError,
    ServerUnreachable,
    StepProgress,
    follow,
)
from orchestrator.client.inputs import parse_inputs, run_request
from orchestrator.client.sse import ServerSentEvent, iter_sse
from tests.fixtures_server import ServerInfo, eventually
from tests.ports import free_port

# ------------------------------------------------------------------------------------------ helpers

ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\x1b[=>78]")


def cli(
    *args: str,
    server: ServerInfo | str | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 180,
) -> subprocess.CompletedProcess[str]:
    """``orchestrate ARGS`` in a subprocess, no terminal, with ORCH_SERVER pointing at the server."""
    return subprocess.run(
        [sys.executable, "-m", "orchestrator.server.cli", *args],
        capture_output=True,
        text=True,
        env=_env(server, env),
        stdin=subprocess.DEVNULL,
        timeout=timeout,
    )


def _env(server: ServerInfo | str | None, extra: dict[str, str] | None = None) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("ORCH_", "RAY_ADDRESS"))}
    clean.update({"COLUMNS": "200", "ORCH_USER": "cli-tester", "NO_COLOR": "1"})
    if server is not None:
        clean["ORCH_SERVER"] = server if isinstance(server, str) else server.base_url
    clean.update(extra or {})
    return clean


def cli_json(*args: str, server: ServerInfo, expect: int = 0) -> Any:
    done = cli(*args, "--json", server=server)
    assert done.returncode == expect, (done.stdout, done.stderr)
    return json.loads(done.stdout)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def write(path: Path, document: Any) -> Path:
    path.write_text(yaml.safe_dump(document) if path.suffix in (".yaml", ".yml") else json.dumps(document))
    return path


def workflow(name: str, *steps: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"steps": list(steps)}}


def waiting_workflow(name: str, seconds: str = "1s") -> dict[str, Any]:
    return workflow(
        name,
        {"name": "first", "type": "transform", "value": "{{ input.n }}"},
        {"name": "pause", "type": "wait", "duration": seconds, "depends_on": ["first"]},
        {
            "name": "double",
            "type": "transform",
            "value": "{{ steps.first.output * 2 }}",
            "depends_on": ["pause"],
        },
    )


FAILING_STEP = {"name": "broken", "type": "mcp_query", "connector": "no-such-agent", "statement": "s"}


def has_route(server: ServerInfo, method: str, path: str) -> bool:
    spec = httpx.get(f"{server.base_url}/openapi.json", timeout=30).json()
    return method.lower() in spec.get("paths", {}).get(path, {})


# ------------------------------------------------------------------------------------------ no server


def test_the_client_package_exports_are_pinned() -> None:
    import orchestrator.client as client

    assert sorted(client.__all__) == sorted(
        [
            "DEFAULT_SERVER", "ApiError", "Client", "ClientError", "ConnectionLost", "ExecutionModel",
            "InputError", "ServerUnreachable", "StepProgress", "follow", "register",
        ]
    )  # fmt: skip


def test_importing_the_client_loads_no_server_part() -> None:
    """The client talks HTTP only: it must run without Ray or the server's modules loaded."""
    code = (
        "import sys, orchestrator.client, orchestrator.client.commands\n"
        "banned = ('ray', 'orchestrator.server', 'orchestrator.runtime', 'orchestrator.store', 'agents', 'planner')\n"
        "print(','.join(sorted(m for m in banned if m in sys.modules)))\n"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == ""


def test_sse_parser_follows_the_spec() -> None:
    lines = [
        ": keep-alive",
        "id: 1",
        "event: execution.started",
        'data: {"seq": 1,',
        'data:  "type": "execution.started"}',
        "",
        "event: step.progress",
        'data: {"step": "s", "delta": "Hel"}',
        "",
        "",  # a blank line with no data dispatches nothing
        "retry: 500",
        "data:no-space",
        "",
        "data: lost without its blank line",
    ]
    assert list(iter_sse(lines)) == [
        ServerSentEvent("execution.started", '{"seq": 1,\n "type": "execution.started"}', "1"),
        ServerSentEvent("step.progress", '{"step": "s", "delta": "Hel"}', None),
        ServerSentEvent("message", "no-space", None, 500),
    ]


def test_inputs_and_run_requests(tmp_path: Path) -> None:
    extra = write(tmp_path / "extra.yaml", {"currency": "EUR", "budget": 1})
    doc = write(tmp_path / "doc.json", {"a": [1, 2]})
    inputs = parse_inputs(
        ["budget=5000", "@" + str(extra), "budget=7", "date=2025-06-01", "flag=true", f"doc=@{doc}"]
    )
    assert inputs == {
        "budget": 7,
        "currency": "EUR",
        "date": "2025-06-01",
        "flag": True,
        "doc": {"a": [1, 2]},
    }
    with pytest.raises(InputError, match="KEY=VALUE or @file"):
        parse_inputs(["no-equals"])
    with pytest.raises(InputError, match="cannot read"):
        parse_inputs([f"@{tmp_path / 'missing.json'}"])

    bare = run_request(workflow("w"), inputs={"n": 1}, user="alice", source="w.yaml")
    assert bare == {"workflow": workflow("w"), "input": {"n": 1}, "user": {"id": "alice"}}
    full = {"workflow": workflow("w"), "input": {"n": 1, "m": 2}, "user": {"id": 7, "role": "admin"}}
    assert run_request(full, inputs={"n": 3}, user="alice", source="r.json") == {
        **full,
        "input": {"n": 3, "m": 2},  # --input wins over the file; the file's user is kept
    }
    with pytest.raises(InputError, match="workflows register"):
        run_request({"id": "x", "version": "1", "steps": []}, inputs={}, user=None, source="eai.yaml")
    with pytest.raises(InputError, match="neither"):
        run_request({"steps": []}, inputs={}, user=None, source="odd.json")


def _event(seq: int, kind: str, step: str | None = None, **data: Any) -> dict[str, Any]:
    return {"seq": seq, "type": kind, "timestamp": f"2026-01-01T00:00:0{seq}Z", "step": step, "data": data}


def test_the_display_model_folds_events_and_defers_to_the_server_view() -> None:
    model = ExecutionModel("wf_exec_x")
    model.apply(
        _event(
            1,
            "execution.started",
            workflow={
                "name": "w",
                "steps": [{"name": "a", "type": "llm"}, {"name": "gate", "type": "approval"}],
            },
        )
    )
    assert [(r.name, r.status) for r in model.steps.values()] == [("a", "pending"), ("gate", "pending")]
    model.apply(_event(2, "step.started", "a", attempt=1))
    model.progress("a", "Hel")
    model.progress("a", "lo")
    assert (model.steps["a"].status, model.steps["a"].text) == ("running", "Hello")
    model.apply(_event(3, "step.retrying", "a", attempt=1, error="boom"))
    model.apply(_event(4, "step.started", "a", attempt=2))
    assert (model.steps["a"].attempts, model.steps["a"].text, model.steps["a"].error) == (2, "", None)
    model.progress("a", "late", attempt=1)  # the retried attempt's text does not come back
    assert model.steps["a"].text == ""
    model.apply(_event(5, "step.completed", "a", attempt=2, output="Hello world"))
    assert model.steps["a"].seconds() == 1.0 and model.steps["a"].text == "Hello world"
    model.apply(_event(6, "step.started", "gate", attempt=1))
    assert model.steps["gate"].status == "waiting"
    model.apply(_event(7, "step.someday", "gate"))  # a newer server's step event still shows
    assert model.steps["gate"].status == "someday"
    model.apply(_event(8, "execution.failed", None, error="rejected"))
    assert (model.status, model.error, model.terminal, model.last_seq) == ("failed", "rejected", True, 8)
    model.reconcile({"status": "failed", "steps": [{"name": "gate", "status": "failed", "attempts": 1}]})
    assert model.steps["gate"].status == "failed"


class _FakeServer:
    """A real HTTP server speaking the follow protocol, scripted per test: what a break mid-stream or a
    server without the stream route looks like is hard to provoke from the real one."""

    def __init__(self, stream_replies: list[list[str]] | None, events: list[dict[str, Any]]) -> None:
        self.stream_replies = stream_replies  # None: no stream route (404 NOT_FOUND)
        self.events = events
        self.requests: list[tuple[str, dict[str, str]]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_: Any) -> None:
                pass

            def do_GET(self) -> None:
                fake.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
                if self.path.endswith("/stream") and fake.stream_replies is not None:
                    chunks = fake.stream_replies.pop(0)
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.send_header("Connection", "close")
                    self.end_headers()
                    for chunk in chunks:
                        self.wfile.write(chunk.encode())
                        self.wfile.flush()
                    self.close_connection = True  # ends the stream, terminal event or not
                    return
                if self.path.startswith("/api/v1/agents"):
                    if self.headers.get("Authorization") != "Bearer orch_test_key":
                        error = {
                            "code": "UNAUTHENTICATED",
                            "message": "an API key is required",
                            "details": [],
                        }
                        return self._json(401, {"error": error})
                    return self._json(200, {"agents": [], "count": 0})
                if "/events" in self.path:
                    return self._json(200, {"execution_id": "x", "events": fake.events[: len(fake.requests)]})
                return self._json(404, {"error": {"code": "NOT_FOUND", "message": "no route", "details": []}})

            def _json(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> _FakeServer:
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *_: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _sse(event: dict[str, Any]) -> str:
    return f"id: {event['seq']}\nevent: {event['type']}\ndata: {json.dumps(event)}\n\n"


EVENTS = [
    _event(1, "execution.started", workflow={"name": "w", "steps": [{"name": "a", "type": "llm"}]}),
    _event(2, "step.started", "a", attempt=1),
    _event(3, "step.completed", "a", attempt=1, output="Hi!"),
    _event(4, "execution.completed", output={"final_result": "Hi!"}),
]


def test_a_broken_stream_is_resumed_with_last_event_id() -> None:
    first = [
        _sse(EVENTS[0]),
        ": keep-alive\n\n",
        _sse(EVENTS[1]),
        'event: step.progress\ndata: {"step": "a", "delta": "Hi"}\n\n',
    ]
    second = [_sse(EVENTS[1]), _sse(EVENTS[2]), _sse(EVENTS[3])]  # repeats seq 2: dropped, not shown twice
    with _FakeServer([first, second], EVENTS) as fake, Client(fake.url) as client:
        items = list(follow(client, "x", sleep=lambda _: None))
    assert items == [EVENTS[0], EVENTS[1], StepProgress("a", "Hi"), EVENTS[2], EVENTS[3]]
    streams = [headers for path, headers in fake.requests if path.endswith("/stream")]
    assert "last-event-id" not in streams[0] and streams[1]["last-event-id"] == "2"


def test_a_server_without_the_stream_route_is_polled() -> None:
    with _FakeServer(None, EVENTS) as fake, Client(fake.url) as client:
        items = list(follow(client, "x", sleep=lambda _: None))
    assert items == EVENTS  # each once, in order, however the polls overlapped
    assert any("/events" in path for path, _ in fake.requests)


def test_the_api_key_is_sent_and_a_401_says_how_to_give_one() -> None:
    with _FakeServer(None, EVENTS) as fake:
        refused = cli("agents", server=fake.url)
        assert refused.returncode == 1
        assert refused.stderr.splitlines() == [
            "error: UNAUTHENTICATED: an API key is required",
            "The server needs an API key: pass --api-key or set ORCH_API_KEY.",
        ]
        assert cli("agents", "--api-key", "orch_test_key", server=fake.url).returncode == 0
        from_env = cli("agents", "--json", server=fake.url, env={"ORCH_API_KEY": "orch_test_key"})
        assert from_env.returncode == 0 and json.loads(from_env.stdout) == {"agents": [], "count": 0}


def test_a_missing_execution_is_an_error_not_a_wait() -> None:
    with _FakeServer(None, EVENTS) as fake, Client(fake.url) as client, pytest.raises(ApiError) as caught:
        client.get("/api/v1/workflows/executions/x")
    assert (caught.value.status, caught.value.code) == (404, "NOT_FOUND")
    with Client(f"http://127.0.0.1:{free_port()}") as client, pytest.raises(ServerUnreachable):
        client.get("/health")


# ------------------------------------------------------------------------------------------ real server


@pytest.mark.ray
def test_run_sync_shows_the_steps_and_the_output(server: ServerInfo, tmp_path: Path) -> None:
    request = {"workflow": waiting_workflow("cli-sync", "10ms"), "input": {"n": 4}}
    done = cli("run", str(write(tmp_path / "run.json", request)), "--input", "n=21", server=server)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert re.match(r"execution wf_exec_\w+\s+completed$", lines[0])
    rows = {
        line.split()[0]: line.split()
        for line in lines
        if line.split() and line.split()[0] in ("first", "pause", "double")
    }
    assert rows["first"][1:4] == ["transform", "completed", "1"]
    assert rows["pause"][1:3] == ["wait", "completed"]
    assert lines[lines.index("output") + 1] == "42"  # --input n=21 won over the file's 4, and is a number


@pytest.mark.ray
def test_run_json_and_a_failed_run_exits_non_zero(server: ServerInfo, tmp_path: Path) -> None:
    ok = cli_json(
        "run",
        str(write(tmp_path / "ok.yaml", waiting_workflow("cli-json", "1ms"))),
        "-i",
        "n=1",
        server=server,
    )
    assert ok["status"] == "completed" and ok["output"] == {"final_result": 2}

    failing = write(tmp_path / "fail.json", workflow("cli-fail", FAILING_STEP))
    failed = cli_json("run", str(failing), server=server, expect=4)
    assert failed["status"] == "failed" and failed["steps"][0]["status"] == "failed"
    human = cli("run", str(failing), server=server)
    assert human.returncode == 4
    assert "no-such-agent" in human.stdout and re.search(r"^broken\s+mcp_query\s+failed", human.stdout, re.M)


@pytest.mark.ray
def test_run_async_then_follow_show_and_events(server: ServerInfo, tmp_path: Path) -> None:
    bare = write(tmp_path / "bare.yaml", waiting_workflow("cli-async", "1s"))
    started = cli_json("run", str(bare), "--async", "-i", "n=5", server=server)
    execution_id = started["id"]
    assert started["status"] in ("pending", "running")

    followed = cli("executions", "follow", execution_id, server=server)
    assert followed.returncode == 0, followed.stderr
    lines = followed.stdout.splitlines()
    types = [line.split()[2] for line in lines if re.match(r"\d\d:\d\d:\d\d\.\d{3}\s+#\d+", line)]
    assert types[0] == "execution.started" and types[-1] == "execution.completed"
    assert types.count("step.completed") == 3 and "timer.fired" in types
    assert lines[-1].startswith(f"execution {execution_id} (cli-async) completed in ")

    shown = cli_json("executions", "show", execution_id, server=server)
    assert shown["status"] == "completed" and shown["output"] == {"final_result": 10}
    events = cli_json("executions", "events", execution_id, server=server)["events"]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[0]["data"]["user"] == {"id": "cli-tester"}  # ORCH_USER, as the file has no user

    lines_json = cli("executions", "events", execution_id, "--follow", "--json", server=server)
    assert [json.loads(line) for line in lines_json.stdout.splitlines()] == events  # ends at the terminal one
    human = cli("executions", "show", execution_id, server=server).stdout
    assert re.search(r"^pause\s+wait\s+completed\s+1\s+1\.\d+s", human, re.M)


@pytest.mark.ray
def test_executions_list_filters(server: ServerInfo, tmp_path: Path) -> None:
    name = unique("cli-list")
    ok = cli_json(
        "run",
        str(write(tmp_path / "ok.json", workflow(name, {"name": "a", "type": "transform", "value": 1}))),
        server=server,
    )
    bad = cli_json(
        "run", str(write(tmp_path / "bad.json", workflow(name, FAILING_STEP))), server=server, expect=4
    )

    listed = cli_json("executions", "list", "--workflow", name, server=server)
    assert [e["id"] for e in listed["executions"]] == [bad["id"], ok["id"]]  # newest first
    failed = cli_json("executions", "list", "--workflow", name, "--status", "failed", server=server)
    assert [e["id"] for e in failed["executions"]] == [bad["id"]]
    tenant = cli_json(
        "executions", "list", "--tenant", "default", "--workflow", name, "--limit", "1000", server=server
    )
    assert {e["id"] for e in tenant["executions"]} == {ok["id"], bad["id"]}
    one = cli_json("executions", "list", "--workflow", name, "--limit", "1", server=server)
    assert [e["id"] for e in one["executions"]] == [bad["id"]] and one["total"] == 2

    human = cli("executions", "list", "--workflow", name, server=server)
    assert human.returncode == 0
    assert re.search(rf"^{ok['id']}\s+{name}\s+completed\s+default", human.stdout, re.M)
    assert re.search(rf"^{bad['id']}\s+{name}\s+failed", human.stdout, re.M)
    assert human.stdout.splitlines()[-1] == "2 of 2 executions"


@pytest.mark.ray
def test_cancel_and_the_error_line_of_a_4xx(server: ServerInfo, tmp_path: Path) -> None:
    started = cli_json(
        "run",
        str(write(tmp_path / "nap.json", waiting_workflow("cli-cancel", "60s"))),
        "--async",
        "-i",
        "n=1",
        server=server,
    )
    execution_id = started["id"]
    eventually(
        lambda: cli_json("executions", "show", execution_id, server=server)["steps"][1]["status"] == "running"
    )

    cancelled = cli("executions", "cancel", execution_id, server=server)
    assert cancelled.returncode == 0, cancelled.stderr
    assert cancelled.stdout.strip() == f"cancelled execution {execution_id} (status: cancelled)"
    shown = cli_json("executions", "show", execution_id, server=server)
    assert shown["status"] == "cancelled"
    assert (
        cli("executions", "follow", execution_id, server=server).returncode == 4
    )  # already over: not completed

    again = cli("executions", "cancel", execution_id, server=server)
    assert again.returncode == 1 and again.stdout == ""
    assert again.stderr.splitlines() == [
        f"error: EXECUTION_ALREADY_FINISHED: execution {execution_id!r} already finished with status 'cancelled'"
    ]
    missing = cli("executions", "show", "wf_exec_nope", server=server)
    assert missing.returncode == 1
    assert missing.stderr.splitlines()[0].startswith("error: EXECUTION_NOT_FOUND: ")
    assert cli("executions", "follow", "wf_exec_nope", server=server).returncode == 1

    invalid = write(tmp_path / "invalid.json", workflow("cli-invalid", {"name": "a", "type": "teleport"}))
    refused = cli("run", str(invalid), server=server)
    assert refused.returncode == 1
    first, *details = refused.stderr.splitlines()
    assert first.startswith("error: INVALID_WORKFLOW: ")
    assert any(line.startswith("  - workflow.spec.steps[0].type: ") for line in details)

    unreadable = cli("run", str(tmp_path / "nothing-here.json"), server=server)
    assert unreadable.returncode == 2 and "cannot read" in unreadable.stderr


def test_a_server_that_is_not_running_says_how_to_start_one() -> None:
    address = f"http://127.0.0.1:{free_port()}"
    done = cli("executions", "list", "--server", address)
    assert done.returncode == 3 and done.stdout == ""
    assert done.stderr.splitlines()[0] == f"error: no orchestrator server at {address} (connection refused)."
    assert "orchestrate serve" in done.stderr
    assert cli("agents", server=address).returncode == 3  # ORCH_SERVER works the same way


@pytest.mark.ray
def test_plan_shows_the_steps_and_the_result(server: ServerInfo, tmp_path: Path) -> None:
    context = write(tmp_path / "context.json", {"budget": 5000, "currency": "USD"})
    query = "Plan a business trip from San Francisco to Paris for June 1-7, find flights and hotels"
    body = cli_json("plan", query, "--domain", "travel", "--context", f"@{context}", server=server)
    assert body["success"] is True and body["status"] == "completed"
    names = [step["name"] for step in body["steps"]]
    assert {"search_flights", "search_hotels"} <= set(names)

    human = cli("plan", query, "--domain", "travel", "--context", '{"budget": 5000}', server=server)
    assert human.returncode == 0, human.stderr
    assert re.match(r"plan plan_\w+\s+completed$", human.stdout.splitlines()[0])
    assert re.search(
        r"^search_flights\s+mcp_query\s+amadeus-travel\s+search_flights\s+completed", human.stdout, re.M
    )
    assert "result" in human.stdout.splitlines() and "Flights" in human.stdout

    planned = cli_json("plan", query, "--domain", "travel", "--no-execute", server=server)
    assert planned["workflow_execution_id"] is None and planned["status"] in ("planned", "pending")
    blank = cli("plan", "   ", server=server)
    assert blank.returncode == 1 and blank.stderr.startswith("error: INVALID_REQUEST: ")


@pytest.mark.ray
def test_agents_with_health(server: ServerInfo) -> None:
    listed = cli_json("agents", server=server)
    ids = {agent["id"]: agent for agent in listed["agents"]}
    assert "amadeus-travel" in ids
    eventually(lambda: cli_json("agents", "amadeus-travel", server=server)["health"]["status"] == "healthy")

    human = cli("agents", server=server)
    assert re.search(
        r"^amadeus-travel\s+Amadeus Travel Agent\s+travel\s+yes\s+healthy\s+search_flights",
        human.stdout,
        re.M,
    )
    one = cli("agents", "amadeus-travel", server=server)
    assert one.stdout.splitlines()[0] == "agent amadeus-travel  healthy"
    assert re.search(
        r"^search_flights\s+origin, destination, departure_date, return_date\?", one.stdout, re.M
    )
    missing = cli("agents", "no-such-agent", server=server)
    assert missing.returncode == 1 and missing.stderr.startswith("error: AGENT_NOT_FOUND: ")


@pytest.mark.ray
def test_workflows_register_list_and_show(server: ServerInfo, tmp_path: Path) -> None:
    workflow_id = unique("cli-reg")
    definition = {
        "id": workflow_id,
        "name": "CLI registered",
        "version": "1.0.0",
        "input_schema": {"type": "object", "properties": {"n": {"type": "number"}}, "required": ["n"]},
        "steps": [
            {"id": "a", "name": "Step A", "type": "transform", "value": "{{ input.n }}"},
            {"id": "b", "name": "Step B", "type": "wait", "duration": "1ms", "depends_on": ["a"]},
        ],
    }
    file = write(tmp_path / "reg.yaml", definition)
    first = cli("workflows", "register", str(file), server=server)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == f"registered: {workflow_id} version 1.0.0"
    again = cli("workflows", "register", str(file), server=server)
    assert again.stdout.strip() == f"already registered (identical): {workflow_id} version 1.0.0"

    changed = write(tmp_path / "changed.json", {**definition, "name": "Changed"})
    conflict = cli("workflows", "register", str(changed), server=server)
    assert conflict.returncode == 1 and conflict.stderr.startswith("error: VERSION_EXISTS: ")
    no_id = write(tmp_path / "no-id.json", {k: v for k, v in definition.items() if k != "id"})
    assert cli("workflows", "register", str(no_id), server=server).returncode == 2
    by_option = cli_json("workflows", "register", str(no_id), "--id", unique("cli-reg-opt"), server=server)
    assert by_option["version"] == "1.0.0"

    listed = cli_json("workflows", "list", server=server)
    assert workflow_id in {w["id"] for w in listed["data"]}
    shown = cli_json("workflows", "show", workflow_id, server=server)
    assert shown["definition"]["name"] == "CLI registered"
    human = cli("workflows", "show", workflow_id, "--version", "1.0.0", server=server).stdout
    assert human.splitlines()[0] == f"workflow {workflow_id}  version 1.0.0"
    assert re.search(r"^b\s+Step B\s+wait\s+a\s*$", human, re.M) and "input       n" in human
    listed_human = cli("workflows", "list", server=server).stdout
    assert re.search(rf"^{workflow_id}\s+1\.0\.0\s+CLI registered\s+2", listed_human, re.M)
    missing = cli("workflows", "show", unique("never"), server=server)
    assert missing.returncode == 1 and missing.stderr.startswith("error: WORKFLOW_NOT_FOUND: ")


# ------------------------------------------------------------------------------------------ approvals

APPROVALS = "/api/v1/workflows/executions/{execution_id}/approvals/{step}"
SIGNALS = "/api/v1/workflows/executions/{execution_id}/signals/{name}"


def _skip_without(server: ServerInfo, path: str) -> None:
    if not has_route(server, "post", path):
        pytest.skip(f"the server has no POST {path} yet (people-in-the-loop routes not landed)")


@pytest.mark.ray
def test_approve_and_reject(server: ServerInfo, tmp_path: Path) -> None:
    _skip_without(server, APPROVALS)
    gated = write(
        tmp_path / "gate.json",
        workflow(
            "cli-approve",
            {"name": "gate", "type": "approval", "prompt": "Ship it?"},
            {
                "name": "after",
                "type": "transform",
                "value": "{{ steps.gate.output.approved }}",
                "depends_on": ["gate"],
            },
        ),
    )

    def waiting(execution_id: str) -> bool:
        view = cli_json("executions", "show", execution_id, server=server)
        return any(w.get("step") == "gate" for w in view.get("waiting_for", []))

    approved_id = cli_json("run", str(gated), "--async", server=server)["id"]
    eventually(lambda: waiting(approved_id))
    shown = cli("executions", "show", approved_id, server=server).stdout
    assert f"gate: Ship it?  orchestrate approve {approved_id} gate" in shown
    done = cli("approve", approved_id, "gate", "--comment", "looks good", server=server)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"approved step gate of execution {approved_id}"
    final = cli("executions", "follow", approved_id, server=server)
    assert final.returncode == 0 and "approved=True" in final.stdout and "comment=looks good" in final.stdout
    gate = next(
        s for s in cli_json("executions", "show", approved_id, server=server)["steps"] if s["name"] == "gate"
    )
    assert gate["output"]["approved"] is True and gate["output"]["comment"] == "looks good"
    again = cli("approve", approved_id, "gate", server=server)
    assert again.returncode == 1 and again.stderr.startswith("error: EXECUTION_ALREADY_FINISHED: ")

    rejected_id = cli_json("run", str(gated), "--async", server=server)["id"]
    eventually(lambda: waiting(rejected_id))
    assert cli("approve", rejected_id, "gate", "--reject", server=server).returncode == 0
    assert cli("executions", "follow", rejected_id, server=server).returncode == 4
    assert cli_json("executions", "show", rejected_id, server=server)["status"] == "failed"


@pytest.mark.ray
def test_signal_with_a_payload_file(server: ServerInfo, tmp_path: Path) -> None:
    _skip_without(server, SIGNALS)
    waits = write(
        tmp_path / "sig.json", workflow("cli-signal", {"name": "go", "type": "signal", "signal": "go"})
    )
    execution_id = cli_json("run", str(waits), "--async", server=server)["id"]
    payload = write(tmp_path / "payload.yaml", {"ready": True, "by": "ops"})
    sent = cli("signal", execution_id, "go", "--payload", f"@{payload}", server=server)
    assert sent.returncode == 0, sent.stderr
    assert sent.stdout.strip() == f"sent signal go to execution {execution_id}"
    assert cli("executions", "follow", execution_id, server=server).returncode == 0
    view = cli_json("executions", "show", execution_id, server=server)
    assert view["steps"][0]["output"] == {"ready": True, "by": "ops"}


# ------------------------------------------------------------------------------------------ live view


def _final_frame(screen: str) -> list[str]:
    """The lines of the last drawing of the live view: from its last header row on."""
    lines = [line.rstrip() for line in screen.splitlines() if line.strip()]
    start = max(i for i, line in enumerate(lines) if line.split()[:1] == ["STEP"])
    return lines[start - 1 :]


def _assert_final_view(lines: list[str], name: str, statuses: dict[str, str], final: str) -> None:
    assert lines[0].split()[0] == name and lines[0].split()[2] == final, lines[0]
    for step, status in statuses.items():
        row = next(line for line in lines if line.split()[1:2] == [step])
        assert row.split()[3] == status, row
    final_lines = [line for line in lines if line.startswith("execution wf_exec_")]
    assert final_lines and re.match(rf"execution wf_exec_\w+ \({name}\) {final}\b", final_lines[-1]), (
        final_lines
    )


@pytest.mark.ray
@pytest.mark.skipif(
    shutil.which("tmux") is None, reason="tmux is not installed (the pty test covers the view)"
)
def test_live_view_in_a_terminal(server: ServerInfo, tmp_path: Path) -> None:
    """`orchestrate run FILE` in a 120x40 tmux terminal: it follows by default, the screen ends with every
    step's final status and the final status line, and the exit code says how it ended."""
    socket_name = unique("orch-cli-test")
    env = _env(server)
    env.pop("COLUMNS", None)  # the terminal's own size
    env.pop("NO_COLOR", None)
    runs = {
        "cli-live": (write(tmp_path / "live.json", waiting_workflow("cli-live", "1s")), "0"),
        "cli-live-fail": (
            write(
                tmp_path / "fail.json",
                workflow(
                    "cli-live-fail",
                    {"name": "ok", "type": "transform", "value": 1},
                    {**FAILING_STEP, "depends_on": ["ok"]},
                ),
            ),
            "4",
        ),
    }
    try:
        for name, (file, expected_exit) in runs.items():
            script = tmp_path / f"{name}.sh"
            script.write_text(
                f"{sys.executable} -m orchestrator.server.cli run {file} --input n=3\n"
                "echo EXIT=$?\nsleep 600\n"
            )
            subprocess.run(
                [
                    "tmux",
                    "-L",
                    socket_name,
                    "new-session",
                    "-d",
                    "-s",
                    name,
                    "-x",
                    "120",
                    "-y",
                    "40",
                    f"bash {script}",
                ],
                env=env,
                check=True,
            )

            def screen(session: str = name) -> str:
                return subprocess.run(
                    ["tmux", "-L", socket_name, "capture-pane", "-p", "-S", "-200", "-t", session],
                    capture_output=True, text=True, check=True, env=env,
                ).stdout  # fmt: skip

            def finished(session: str = name) -> str:
                text = screen(session)
                return text if "EXIT=" in text else ""

            shown = eventually(finished, timeout=120, interval=0.3)
            exit_line = next(line for line in shown.splitlines() if line.startswith("EXIT="))
            assert exit_line == f"EXIT={expected_exit}", shown
            frame = _final_frame(shown)
            if name == "cli-live":
                _assert_final_view(
                    frame,
                    name,
                    {"first": "completed", "pause": "completed", "double": "completed"},
                    "completed",
                )
                assert "6" in frame  # the output, under the view
            else:
                _assert_final_view(frame, name, {"ok": "completed", "broken": "failed"}, "failed")
    finally:
        subprocess.run(["tmux", "-L", socket_name, "kill-server"], capture_output=True, env=env)
        tmux_dir = Path(os.environ.get("TMUX_TMPDIR", "/tmp")) / f"tmux-{os.getuid()}"
        (tmux_dir / socket_name).unlink(missing_ok=True)  # the server is gone; its socket file stays


@pytest.mark.ray
def test_live_view_in_a_pseudo_terminal(server: ServerInfo, tmp_path: Path) -> None:
    """The same through a bare pty (no tmux needed): the last frame the view drew, escape codes removed."""
    import pty

    file = write(tmp_path / "pty.json", waiting_workflow("cli-pty", "2s"))
    primary, secondary = pty.openpty()
    env = _env(server, {"COLUMNS": "120", "LINES": "40", "TERM": "xterm-256color"})
    env.pop("NO_COLOR", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "orchestrator.server.cli", "run", str(file), "-i", "n=2"],
        stdin=secondary, stdout=secondary, stderr=secondary, env=env, close_fds=True,
    )  # fmt: skip
    os.close(secondary)
    output = bytearray()
    with contextlib.suppress(OSError):  # EIO once the child has gone and the pty is drained
        while True:
            ready, _, _ = select.select([primary], [], [], 120)
            if not ready:
                break
            chunk = os.read(primary, 65536)
            if not chunk:
                break
            output += chunk
    os.close(primary)
    assert process.wait(timeout=60) == 0, output.decode(errors="replace")
    text = ANSI.sub("", output.decode(errors="replace")).replace("\r\n", "\n").replace("\r", "\n")
    assert set("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏") & set(text), "no spinner was drawn while the wait step ran"
    frame = _final_frame(text)
    _assert_final_view(
        frame, "cli-pty", {"first": "completed", "pause": "completed", "double": "completed"}, "completed"
    )


@pytest.mark.ray
def test_llm_progress_reaches_the_follower_when_the_server_streams(
    server: ServerInfo, tmp_path: Path
) -> None:
    """With the stream route, an llm step's text arrives as progress lines before its step.completed.

    Progress is ephemeral (a stream gets what is said while it is open), so the llm step waits behind a
    signal step that is released only once the follower has shown that step: it is connected by then."""
    if not has_route(server, "get", "/api/v1/workflows/executions/{execution_id}/stream"):
        pytest.skip("the server has no event stream route yet: following polls /events (tested above)")
    _skip_without(server, SIGNALS)
    file = write(
        tmp_path / "llm.json",
        workflow(
            "cli-llm",
            {"name": "go", "type": "signal", "signal": "go"},
            {"name": "talk", "type": "llm", "prompt": "Say a few words about Paris", "depends_on": ["go"]},
        ),
    )
    execution_id = cli_json("run", str(file), "--async", server=server)["id"]
    items: list[dict[str, Any]] = []
    with subprocess.Popen(
        [sys.executable, "-m", "orchestrator.server.cli", "executions", "follow", execution_id, "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, env=_env(server),
    ) as follower:  # fmt: skip
        assert follower.stdout is not None and follower.stderr is not None
        try:
            for line in follower.stdout:
                items.append(json.loads(line))
                if items[-1].get("step") == "go" and items[-1]["type"] == "step.started":
                    assert cli("signal", execution_id, "go", server=server).returncode == 0
            assert follower.wait(timeout=60) == 0, follower.stderr.read()
        finally:
            if follower.poll() is None:
                follower.kill()
    deltas = [i["delta"] for i in items if i["type"] == "step.progress" and i["step"] == "talk"]
    completed = next(i for i in items if i["type"] == "step.completed" and i["step"] == "talk")
    assert deltas and "".join(deltas) == completed["data"]["output"]
    assert items.index(completed) > max(i for i, item in enumerate(items) if item["type"] == "step.progress")
    assert items[-1]["type"] == "execution.completed"

"""The ``mcp`` connector: Model Context Protocol servers over stdio or streamable HTTP, via the official SDK.

Configuration (``connector_config``)::

    {"transport": "stdio", "command": "python", "args": ["-m", "agents.demo.travel_server"],
     "env": {"KEY": "value"}, "cwd": "/srv/app", "timeout": 30}
    {"transport": "streamable_http", "url": "http://127.0.0.1:8765/mcp", "headers": {...}, "timeout": 30}

``transport`` may be left out when ``command`` or ``url`` makes it obvious; ``"http"`` and
``"streamable-http"`` are accepted spellings. ``command: "python"`` runs this interpreter
(``sys.executable``), so a bundled demo server sees the same packages as the orchestrator. Optional:
``connect_timeout`` (30 s), ``probe_timeout`` (5 s) and ``protocol`` (the SDK's connect mode: ``"auto"``
negotiates, ``"legacy"`` forces the ``initialize`` handshake).

Why a background task: the SDK's transports and ``Client`` are anyio context managers that must be
entered and exited by one task, while an agent calls its connector from many. So :meth:`connect` starts
one long-lived task that opens the session, reports ready and waits for :meth:`close`; every call goes
through the session object from the caller's own task, raced against that background task so a session
that dies mid-call is noticed at once instead of after the timeout.

Errors (STYLE 9), all :class:`~agents.connectors.base.ConnectorError`:

- a config that cannot work: ``ConnectorError`` with code ``CONNECTOR_MISCONFIGURED``, from the constructor;
- the tool answered ``isError`` or the server rejected the request: ``ConnectorCallError`` (not retryable);
- no answer within the timeout: ``ConnectorTimeout`` (retryable);
- the process exited, the transport closed, or the server cannot be reached: ``ConnectorUnavailable``
  (retryable). The connector then counts as disconnected; calls keep failing fast until the owner calls
  :meth:`connect` again, which starts a fresh session (and, for stdio, a fresh process).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Iterable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypeVar

import anyio
import httpx2
import mcp_types
from mcp import Client, Implementation, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from agents.connectors.base import (
    CallContext,
    CapabilitySpec,
    Connector,
    ConnectorCallError,
    ConnectorError,
    ConnectorTimeout,
    ConnectorUnavailable,
    ParameterSpec,
)

__all__ = ["MCPConnector"]

log = logging.getLogger(__name__)

_T = TypeVar("_T")
_CLIENT_INFO = Implementation(name="ray-orchestrator", version="0.1.0")
# Beyond the SDK's own read timeout, so its cleaner timeout error (and cancel notice) normally wins.
_TIMEOUT_GRACE = 1.0
# stdio shutdown waits up to ~6 s by itself (stdin close, SIGTERM, SIGKILL); never hang close() longer.
_CLOSE_TIMEOUT = 10.0
_MAX_TOOL_PAGES = 100


class _Settings(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    transport: Literal["stdio", "streamable_http"]
    command: str | None = None
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None
    url: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    timeout: float = Field(default=30.0, gt=0)
    connect_timeout: float = Field(default=30.0, gt=0)
    probe_timeout: float = Field(default=5.0, gt=0)
    protocol: str = "auto"

    @model_validator(mode="before")
    @classmethod
    def _infer_transport(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        transport = data.get("transport")
        if transport is None:
            transport = "streamable_http" if data.get("url") and not data.get("command") else "stdio"
        if transport in ("http", "streamable-http"):
            transport = "streamable_http"
        data["transport"] = transport
        return data

    @field_validator("protocol")
    @classmethod
    def _known_protocol(cls, value: str) -> str:
        if value not in ("auto", "legacy", *MODERN_PROTOCOL_VERSIONS):
            raise ValueError(f"must be 'auto', 'legacy' or one of {list(MODERN_PROTOCOL_VERSIONS)}")
        return value

    @model_validator(mode="after")
    def _check_target(self) -> _Settings:
        if self.transport == "stdio" and not self.command:
            raise ValueError("a stdio MCP connector needs 'command'")
        if self.transport == "streamable_http" and not self.url:
            raise ValueError("a streamable_http MCP connector needs 'url'")
        return self


@dataclass
class _Session:
    """One open MCP session and the task that owns its context managers."""

    client: Client
    task: asyncio.Task[None]
    stop: asyncio.Event
    pid: int | None
    broken: str | None = None  # why the session is unusable, once we know

    def alive(self) -> bool:
        return self.broken is None and not self.task.done()


class MCPConnector(Connector):
    """A connector to one MCP server; capabilities are its tools (``binding["tool"]`` names the tool)."""

    type: ClassVar[str] = "mcp"

    def __init__(self, name: str, config: dict[str, Any], *, secrets: Iterable[str] = ()) -> None:
        super().__init__(name, config, secrets=secrets)
        try:
            self._settings = _Settings.model_validate(config)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'config'}: {e['msg']}" for e in exc.errors()
            )
            raise ConnectorError(
                f"invalid config for MCP connector {name!r}: {problems}",
                retryable=False,
                code="CONNECTOR_MISCONFIGURED",
            ) from exc
        unknown = sorted(set(config) - set(_Settings.model_fields))
        if unknown:  # tolerated, since registries may add their own keys, but a typo should not go unseen
            log.warning("MCP connector %r ignores unknown config keys: %s", name, ", ".join(unknown))
        self._session: _Session | None = None
        self._lock = asyncio.Lock()

    # -- state -------------------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """Whether a session is open and not known to be dead (no I/O; :meth:`probe` checks for real)."""
        session = self._session
        return session is not None and session.alive() and not _exited(session.pid)

    @property
    def pid(self) -> int | None:
        """The stdio server's process id while connected; None for HTTP or when it could not be found.

        Found by looking for the child process the SDK spawned (Linux ``/proc``), since the SDK does not
        expose it.
        """
        return self._session.pid if self._session is not None else None

    # -- Connector port ----------------------------------------------------------------------------------

    async def connect(self) -> None:
        """Open a session, or keep the current one if it is alive; replaces a dead one."""
        async with self._lock:
            if self._session is not None:
                if self.connected:
                    return
                stale, self._session = self._session, None
                await self._shutdown(stale)
            self._session = await self._open()

    async def call(
        self,
        capability: CapabilitySpec,
        parameters: dict[str, Any],
        *,
        mode: Literal["query", "execute"],
        context: CallContext,
    ) -> Any:
        """Call the capability's tool; ``mode`` does not change anything, MCP has one kind of call."""
        tool = str(capability.binding.get("tool") or capability.name)
        meta = {
            key: value
            for key, value in (
                ("idempotency_key", context.idempotency_key),
                ("execution_id", context.execution_id),
                ("step", context.step),
            )
            if value is not None
        }
        timeout = context.timeout or self._settings.timeout
        result = await self._request(
            f"tool {tool!r}",
            lambda client: client.call_tool(
                tool,
                parameters,
                read_timeout_seconds=timeout,
                meta=meta or None,  # type: ignore[arg-type]
            ),
            timeout=timeout + _TIMEOUT_GRACE,
        )
        if result.is_error:
            message = _text(result.content).removeprefix(f"Error executing tool {tool}: ").strip()
            raise ConnectorCallError(
                f"MCP tool {tool!r} on {self.name!r} failed: {message or 'the tool reported an error without a message'}"
            )
        return _output(result)

    async def probe(self) -> None:
        """List the tools: a real round trip (``ping`` is gone from the 2026 protocol the SDK negotiates)."""
        await self._request(
            "tools/list", lambda client: client.list_tools(), timeout=self._settings.probe_timeout
        )

    async def discover(self) -> list[CapabilitySpec]:
        tools = await self._request("tools/list", _list_all_tools, timeout=self._settings.timeout)
        return [_capability(tool) for tool in tools]

    async def close(self) -> None:
        async with self._lock:
            session, self._session = self._session, None
            if session is not None:
                await self._shutdown(session)

    # -- session lifecycle ---------------------------------------------------------------------------------

    async def _open(self) -> _Session:
        ready: asyncio.Future[tuple[Client, int | None]] = asyncio.get_running_loop().create_future()
        stop = asyncio.Event()
        task = asyncio.create_task(self._run(ready, stop), name=f"mcp-session:{self.name}")
        try:
            async with asyncio.timeout(self._settings.connect_timeout):
                client, pid = await asyncio.shield(ready)
        except BaseException as exc:
            task.cancel()
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(task, _CLOSE_TIMEOUT)
            if ready.done() and not ready.cancelled():
                ready.exception()  # retrieved, so asyncio does not log it as lost
            if isinstance(exc, TimeoutError):
                raise ConnectorUnavailable(
                    f"MCP server {self.name!r} did not finish initialising within "
                    f"{self._settings.connect_timeout:g}s ({self._target()})"
                ) from exc
            if isinstance(exc, asyncio.CancelledError | KeyboardInterrupt | SystemExit):
                raise
            hint = ""
            if self._settings.transport == "stdio" and isinstance(exc, MCPError):
                hint = " (the server process exited or closed stdout while starting; see its stderr)"
            raise ConnectorUnavailable(
                f"cannot connect to MCP server {self.name!r} ({self._target()}): "
                f"{self.redactor.text(_describe(exc))}{hint}"
            ) from None
        return _Session(client=client, task=task, stop=stop, pid=pid)

    async def _run(self, ready: asyncio.Future[tuple[Client, int | None]], stop: asyncio.Event) -> None:
        """Own the SDK context managers: enter, report ready, wait for close, exit, all in this task."""
        settings = self._settings
        try:
            async with AsyncExitStack() as stack:
                argv: list[str] = []
                before: dict[int, list[str]] = {}
                transport: Any
                if settings.transport == "stdio":
                    command = settings.command or ""
                    argv = [sys.executable if command in ("python", "python3") else command, *settings.args]
                    params = StdioServerParameters(
                        command=argv[0], args=argv[1:], env=settings.env or None, cwd=settings.cwd
                    )
                    before = await asyncio.to_thread(_child_pids)
                    transport = stdio_client(params)
                else:
                    # Our own httpx2 client only to carry the configured headers; timeouts as the SDK's default.
                    http = await stack.enter_async_context(
                        httpx2.AsyncClient(headers=settings.headers, timeout=httpx2.Timeout(30.0, read=300.0))
                    )
                    transport = streamable_http_client(settings.url or "", http_client=http)
                client = Client(transport, mode=settings.protocol, cache=None, client_info=_CLIENT_INFO)
                await stack.enter_async_context(client)
                pid = await asyncio.to_thread(_spawned_pid, before, argv) if argv else None
                ready.set_result((client, pid))
                await stop.wait()
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(
                    exc if isinstance(exc, Exception) else ConnectorUnavailable(_describe(exc))
                )
            if not isinstance(exc, Exception):
                raise
            # After ready, nobody awaits this task's result: a crash surfaces through the calls it fails.
            log.debug("MCP session %r ended: %s", self.name, _describe(exc))

    async def _shutdown(self, session: _Session) -> None:
        session.broken = session.broken or "closed"
        session.stop.set()
        try:
            await asyncio.wait_for(asyncio.shield(session.task), _CLOSE_TIMEOUT)
        except TimeoutError:
            log.warning(
                "MCP session %r did not shut down within %ss; cancelling it", self.name, _CLOSE_TIMEOUT
            )
            session.task.cancel()
            with contextlib.suppress(BaseException):
                await session.task
        except Exception as exc:  # the session already failed; closing it is all that was asked
            log.debug("MCP session %r failed while closing: %s", self.name, _describe(exc))

    # -- requests ------------------------------------------------------------------------------------------

    async def _request(self, what: str, send: Callable[[Client], Awaitable[_T]], *, timeout: float) -> _T:
        """Run one SDK request from the caller's task, translating every failure into a ConnectorError."""
        session = self._session
        if session is None:
            raise ConnectorUnavailable(f"MCP connector {self.name!r} is not connected; call connect() first")
        if session.broken is None and _exited(session.pid):
            session.broken = f"server process {session.pid} has exited"
        if not session.alive():
            reason = session.broken or "its session ended"
            raise ConnectorUnavailable(
                f"MCP server {self.name!r} is unavailable ({reason}); reconnect to retry"
            )

        request = asyncio.ensure_future(send(session.client))
        try:
            done, _ = await asyncio.wait(
                {request, session.task}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            if not request.done():
                request.cancel()
                with contextlib.suppress(BaseException):
                    await request
        if request not in done:
            if session.task in done:
                raise self._unavailable(session, f"the session ended during {what}")
            raise ConnectorTimeout(f"MCP {what} on {self.name!r} timed out after {timeout:g}s")
        try:
            return request.result()
        except MCPError as exc:
            if exc.code == mcp_types.REQUEST_TIMEOUT:
                raise ConnectorTimeout(f"MCP {what} on {self.name!r} timed out: {exc.message}") from exc
            if exc.code == mcp_types.CONNECTION_CLOSED:
                raise self._unavailable(session, f"connection closed during {what}") from exc
            raise ConnectorCallError(
                f"MCP server {self.name!r} rejected {what}: {exc.message} (code {exc.code})"
            ) from exc
        except ConnectorError:
            raise
        except ValidationError as exc:
            raise ConnectorCallError(
                f"MCP server {self.name!r} sent an invalid answer to {what}: {exc}"
            ) from exc
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.EndOfStream, OSError) as exc:
            raise self._unavailable(session, f"transport failed during {what}: {_describe(exc)}") from exc
        except httpx2.HTTPError as exc:
            raise self._unavailable(session, f"HTTP error during {what}: {_describe(exc)}") from exc
        except Exception as exc:
            # Unknown SDK failure (say, a server asking for input we cannot give): retryable, session kept;
            # if the session is in fact dead, the next request finds out from the transport.
            raise ConnectorError(f"MCP {what} on {self.name!r} failed: {_describe(exc)}") from exc

    def _unavailable(self, session: _Session, reason: str) -> ConnectorUnavailable:
        if _exited(session.pid):
            reason = f"{reason}; server process {session.pid} has exited"
        session.broken = session.broken or reason
        return ConnectorUnavailable(f"MCP server {self.name!r} is unavailable: {reason}")

    def _target(self) -> str:
        """Where the server is, for messages: the command without its arguments and the URL without its
        query string, since either may carry a credential."""
        s = self._settings
        if s.transport == "stdio":
            return self.redactor.text(f"stdio: {os.path.basename(s.command or '')}")
        return self.redactor.text(f"url: {s.url}")


# -- tools -> capabilities -----------------------------------------------------------------------------


async def _list_all_tools(client: Client) -> list[mcp_types.Tool]:
    tools: list[mcp_types.Tool] = []
    cursor: str | None = None
    for _ in range(_MAX_TOOL_PAGES):  # a server whose cursor never ends cannot hang discovery
        page = await client.list_tools(cursor=cursor)
        tools.extend(page.tools)
        cursor = page.next_cursor
        if not cursor:
            break
    return tools


def _capability(tool: mcp_types.Tool) -> CapabilitySpec:
    schema: dict[str, Any] = dict(tool.input_schema or {})
    required = set(schema.get("required") or ())
    parameters = {
        name: _parameter(_resolve(prop, schema), required=name in required)
        for name, prop in (schema.get("properties") or {}).items()
        if isinstance(prop, dict)
    }
    binding: dict[str, Any] = {"tool": tool.name, "input_schema": schema}
    if tool.annotations is not None:
        hints = {
            "read_only": tool.annotations.read_only_hint,
            "destructive": tool.annotations.destructive_hint,
            "idempotent": tool.annotations.idempotent_hint,
        }
        binding.update({k: v for k, v in hints.items() if v is not None})
    return CapabilitySpec(
        name=tool.name,
        description=inspect.cleandoc(tool.description or tool.title or ""),
        parameters=parameters,
        binding=binding,
    )


def _parameter(prop: dict[str, Any], *, required: bool) -> ParameterSpec:
    enum = prop.get("enum")
    kind = prop.get("type")
    # Optional[X] comes as anyOf [X, null]: describe X, which is what a caller should send.
    for branch in prop.get("anyOf") or prop.get("oneOf") or ():
        if isinstance(branch, dict) and branch.get("type") != "null":
            kind = kind or branch.get("type")
            enum = enum or branch.get("enum")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    if kind is None and enum:
        kind = _json_type(enum[0])
    if kind is None and "const" in prop:
        kind, enum = _json_type(prop["const"]), [prop["const"]]
    return ParameterSpec(
        type=str(kind or "any"),
        required=required,
        description=prop.get("description") or prop.get("title"),
        enum=list(enum) if enum else None,
        default=prop.get("default"),
    )


def _resolve(prop: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """Inline a local ``$ref`` (pydantic puts enums and nested models under ``$defs``); keep siblings."""
    ref = prop.get("$ref")
    if not isinstance(ref, str) or not ref.startswith("#/"):
        resolved = dict(prop)
        for key in ("anyOf", "oneOf"):
            if key in resolved:
                resolved[key] = [_resolve(b, schema) if isinstance(b, dict) else b for b in resolved[key]]
        return resolved
    target: Any = schema
    for part in ref[2:].split("/"):
        target = target.get(part, {}) if isinstance(target, dict) else {}
    return {**(target if isinstance(target, dict) else {}), **{k: v for k, v in prop.items() if k != "$ref"}}


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    return "string" if isinstance(value, str) else "any"


# -- results -----------------------------------------------------------------------------------------------


def _output(result: mcp_types.CallToolResult) -> Any:
    """Structured content when the tool declares it; else its JSON text parsed; else the text itself."""
    if result.structured_content is not None:
        return result.structured_content
    if all(isinstance(block, mcp_types.TextContent) for block in result.content):
        text = _text(result.content)
        try:
            return json.loads(text)
        except ValueError:
            return text
    return [block.model_dump(mode="json", by_alias=True, exclude_none=True) for block in result.content]


def _text(content: list[Any]) -> str:
    return "\n".join(block.text for block in content if isinstance(block, mcp_types.TextContent))


def _describe(exc: BaseException) -> str:
    """The innermost meaningful message: anyio task groups wrap the real failure in exception groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# -- the stdio server's process ------------------------------------------------------------------------------


def _child_pids() -> dict[int, list[str]]:
    """This process's children and their argv, from /proc (empty where there is no /proc)."""
    me, children = os.getpid(), {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return {}
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
            ppid = int(stat[stat.rindex(b")") + 2 :].split()[1])
            if ppid != me:
                continue
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
        except (OSError, ValueError, IndexError):
            continue
        children[int(entry)] = argv
    return children


def _spawned_pid(before: dict[int, list[str]], argv: list[str]) -> int | None:
    """The child that appeared while the SDK spawned the server: the one new child, or the one with our argv.

    None when that is ambiguous (another session spawning the same command at the same moment).
    """
    new = {pid: args for pid, args in _child_pids().items() if pid not in before}
    if len(new) == 1:
        return next(iter(new))
    exact = [pid for pid, args in new.items() if args == argv]
    return exact[0] if len(exact) == 1 else None


def _exited(pid: int | None) -> bool:
    """Whether a known server process is gone, or a zombie the event loop has not reaped yet."""
    if pid is None:
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except FileNotFoundError:
        return True
    except OSError:
        return False
    state = stat[stat.rindex(b")") + 2 : stat.rindex(b")") + 3]
    return state in (b"Z", b"X")

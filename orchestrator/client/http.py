"""The client's HTTP side: one ``httpx`` client with the base URL and the API key, and the server's
answers turned into values or into this package's errors.

Errors (the CLI maps each to one line and an exit code)::

    ClientError              root
    ├── ServerUnreachable    nothing answered at the base URL: the server is not running there
    ├── ConnectionLost       a connection broke, or an answer took too long, after connecting
    ├── ApiError             the server answered with an error status: ``status``, ``code``, ``message``,
    │                        ``details`` from the error envelope both dialects share
    └── InputError           a local file or argument the client could not use (nothing was sent)

The client never imports the server: it knows the API only as HTTP, as any other client would, so it runs
from a machine that has nothing of the server installed but this package's dependencies.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

DEFAULT_SERVER = "http://127.0.0.1:8081"
# Connecting is quick or it is not going to happen; answers can take as long as a synchronous run, which
# the server bounds itself (ORCH_SYNC_TIMEOUT), so those requests wait without a read timeout.
CONNECT_TIMEOUT = 5.0
DEFAULT_TIMEOUT = httpx.Timeout(60.0, connect=CONNECT_TIMEOUT)
NO_READ_TIMEOUT = httpx.Timeout(None, connect=CONNECT_TIMEOUT)


class ClientError(Exception):
    """Something went wrong talking to the server; ``str()`` is the one line to show."""


class ServerUnreachable(ClientError):
    def __init__(self, server: str, reason: str) -> None:
        self.server = server
        self.reason = reason
        super().__init__(f"no orchestrator server answers at {server} ({reason})")


class ConnectionLost(ClientError):
    """The server was reached but the exchange broke off; following resumes after it, a command fails."""


class InputError(ClientError):
    """A file or argument of the command itself is unusable; the request was never sent."""


class ApiError(ClientError):
    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.details = details if details is not None else []
        super().__init__(f"{code}: {message}")

    @classmethod
    def from_response(cls, response: httpx.Response) -> ApiError:
        """Both dialects answer errors as ``{"error": {"code", "message", "details"}}``; anything else (a
        proxy's HTML page, a bare FastAPI ``{"detail"}``) still becomes a code and a one-line message."""
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict):
            error = body.get("error")
            if isinstance(error, dict) and isinstance(error.get("code"), str):
                return cls(
                    response.status_code,
                    error["code"],
                    str(error.get("message") or response.reason_phrase),
                    error.get("details"),
                )
            if "detail" in body:
                return cls(response.status_code, f"HTTP_{response.status_code}", _one_line(body["detail"]))
        text = _one_line(response.text) or response.reason_phrase
        return cls(response.status_code, f"HTTP_{response.status_code}", text)


def _one_line(value: Any, limit: int = 300) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True)
class Reply:
    """A successful answer: its status (200 and 202 mean different things for a run) and JSON body."""

    status: int
    body: Any


class Client:
    """The server's API over HTTP. Every method raises :class:`ClientError` subclasses only."""

    def __init__(
        self,
        server: str = DEFAULT_SERVER,
        *,
        api_key: str | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.server = server.rstrip("/")
        headers = {"Accept": "application/json", "User-Agent": "orchestrate-cli"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._http = httpx.Client(base_url=self.server, headers=headers, timeout=timeout, transport=transport)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: httpx.Timeout | None = None,
    ) -> Reply:
        """Send one request; a 2xx answer comes back as a :class:`Reply`, anything else is raised."""
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        with self._translated():
            response = self._http.request(
                method,
                path,
                json=json,
                params=clean,
                headers=headers,
                timeout=timeout if timeout is not None else self._http.timeout,
            )
        if response.status_code >= 400:
            raise ApiError.from_response(response)
        if response.status_code == 204 or not response.content:
            return Reply(response.status_code, None)
        try:
            return Reply(response.status_code, response.json())
        except ValueError as exc:
            raise ClientError(
                f"{method} {path} answered {response.status_code} with a body that is not JSON"
            ) from exc

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params).body

    @contextlib.contextmanager
    def stream(
        self, method: str, path: str, *, headers: Mapping[str, str], timeout: httpx.Timeout
    ) -> Iterator[httpx.Response]:
        """An unread response, for server-sent events. The caller looks at the status itself (a server
        without the stream route answers 404 and the caller falls back to polling) and handles httpx's
        transport errors itself: a stream that breaks is resumed, not reported."""
        with self._http.stream(method, path, headers=headers, timeout=timeout) as response:
            yield response

    @contextlib.contextmanager
    def _translated(self) -> Iterator[None]:
        """httpx's transport errors, as the two situations a user can act on."""
        try:
            yield
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise ServerUnreachable(self.server, _reason(exc)) from exc
        except httpx.TransportError as exc:
            raise ConnectionLost(f"the connection to {self.server} broke: {_reason(exc)}") from exc


def _reason(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    if "Connection refused" in text or "Errno 111" in text:
        return "connection refused"
    return _one_line(text, 120)


__all__ = [
    "DEFAULT_SERVER",
    "NO_READ_TIMEOUT",
    "ApiError",
    "Client",
    "ClientError",
    "ConnectionLost",
    "InputError",
    "Reply",
    "ServerUnreachable",
]

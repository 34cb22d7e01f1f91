"""The ``http`` connector: capabilities are calls to a REST API through one shared ``httpx`` client.

The client is httpx's API over aiohttp's connection handling (``httpx-aiohttp``): httpx keeps the URL
handling, redirects and hooks this module relies on, and aiohttp sends the request at about half
httpx's own CPU per call (0.26 against 0.46 ms to a local server), which a chain of calls pays per step.

Configuration::

    base_url: https://api.example.com/v2
    headers: {Authorization: "Bearer ${EXAMPLE_TOKEN}"}   # expanded by the registry at load time
    timeout: 30                                           # seconds, unless the call gives one
    health_path: /health                                  # probed with GET; default: the base URL
    follow_redirects: true

A capability binds to a request::

    binding: {method: GET, path: "/flights/{origin}/{destination}", query: [max_price], body: [notes]}

Path placeholders are filled (URL-escaped) from the parameters; names listed in ``query`` go to the query
string and names in ``body`` (or every remaining one, with ``body: all``) to the JSON body. Parameters not
placed explicitly go to the query string for GET, HEAD and DELETE and to the JSON body otherwise. Without a
method, ``mcp_query`` steps send GET and ``mcp_execute`` steps POST. The step's idempotency key travels as the
``Idempotency-Key`` header so an API that supports it can drop a retried write.

Containment, because parameters come from plans and users and the client carries the API's credentials:

- only capabilities the agent declares are callable (no path from a step's ``statement``);
- path parameters are URL-escaped, and ``.``/``..`` as a whole value is refused;
- the final URL must stay under ``base_url`` (same scheme, host and port, below its path), else
  ``URL_OUTSIDE_BASE``;
- redirects are followed (``follow_redirects``) only to the same origin, else ``REDIRECT_BLOCKED``;
- no cookie is kept: one client makes every execution's calls, so a cookie one answer set would go out
  with the calls of other executions and tenants.

Errors: a 4xx answer is the caller's mistake and :class:`ConnectorCallError` (not retryable), except 408 and
429 which are worth another try; 5xx, connection failures and timeouts are :class:`ConnectorUnavailable` or
:class:`ConnectorTimeout` (retryable). Messages name the URL without its query string and quote at most
``_EXCERPT`` characters of the body, scrubbed of the connector's secrets.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any, ClassVar, Literal
from urllib.parse import quote

import httpx
from httpx_aiohttp import HttpxAiohttpClient

from agents.connectors.base import (
    CallContext,
    CapabilitySpec,
    Connector,
    ConnectorCallError,
    ConnectorError,
    ConnectorTimeout,
    ConnectorUnavailable,
)

__all__ = ["HTTPConnector"]

_PATH_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_EXCERPT = 200
_QUERY_METHODS = frozenset({"GET", "HEAD", "DELETE", "OPTIONS"})


class _OffOrigin(Exception):
    """Raised by the request hook; carries the origin that was refused (never the full URL)."""

    def __init__(self, origin: str) -> None:
        super().__init__(origin)
        self.origin = origin


class _Forgetful(httpx.Cookies):
    """A cookie jar that keeps nothing (and skips parsing ``Set-Cookie`` on every answer)."""

    def extract_cookies(self, response: httpx.Response) -> None:
        del response


class _Client(HttpxAiohttpClient):
    """The shared client, without a cookie jar (a cookie a call passes itself still goes out)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._forgetful = _Forgetful()  # one for the client: httpx reads the jar twice per request

    @property
    def cookies(self) -> httpx.Cookies:
        return self._forgetful

    @cookies.setter
    def cookies(self, cookies: Any) -> None:
        del cookies


class HTTPConnector(Connector):
    type: ClassVar[str] = "http"
    allows_undeclared: ClassVar[bool] = False

    def __init__(self, name: str, config: dict[str, Any], *, secrets: Iterable[str] = ()) -> None:
        super().__init__(name, config, secrets=secrets)
        base_url = config.get("base_url")
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise ConnectorError(
                f"connector {name!r} needs 'base_url' starting with http:// or https://",
                retryable=False,
                code="CONNECTOR_MISCONFIGURED",
            )
        # A query string in the base URL (an API key, often) goes with every request, but never into messages.
        base = httpx.URL(base_url)
        self._base_params = base.params
        base = base.copy_with(query=None, fragment=None)
        self.base_url = str(base) if str(base).endswith("/") else f"{base}/"
        base = httpx.URL(self.base_url)
        self._origin = (base.scheme, base.host, base.port)
        self._base_path = base.path
        self.headers = {str(k): str(v) for k, v in (config.get("headers") or {}).items()}
        self.timeout = float(config.get("timeout", 30))
        self.health_path: str | None = config.get("health_path")
        self.follow_redirects = bool(config.get("follow_redirects", True))
        self._client: httpx.AsyncClient | None = None

    async def connect(self) -> None:
        # httpx connects per request from its pool; there is nothing to reach before the first call, and the
        # health probe is what tells whether the API answers.
        if self._client is None:
            self._client = _Client(
                base_url=self.base_url,
                params=self._base_params,
                headers=self.headers,
                timeout=self.timeout,
                follow_redirects=self.follow_redirects,
                # httpx calls request hooks for every redirect too: the one place to stop one off origin
                event_hooks={"request": [self._same_origin]},
            )

    async def _same_origin(self, request: httpx.Request) -> None:
        url = request.url
        if (url.scheme, url.host, url.port) != self._origin:
            raise _OffOrigin(f"{url.scheme}://{url.netloc.decode('ascii', 'replace')}")

    def url_for(self, path: str) -> httpx.URL:
        """The absolute URL of ``path`` below ``base_url``; refuses one that leaves it.

        Joined by hand rather than by httpx, which would take an absolute ``path`` as the whole URL.
        httpx normalises dot segments, so ``a/../../admin`` is caught here, not at the far end.
        """
        url = httpx.URL(self.base_url + path.lstrip("/"))
        raw_path = url.raw_path.decode("ascii").partition("?")[0]
        # httpx resolves literal dot segments; an escaped one (%2e%2e) a server might resolve after decoding
        escapes = any(seg.lower().replace("%2e", ".") in (".", "..") for seg in raw_path.split("/"))
        if (
            (url.scheme, url.host, url.port) != self._origin
            or not url.path.startswith(self._base_path)
            or escapes
        ):
            raise ConnectorCallError(
                f"path {self.redactor.text(path)!r} leaves the base URL of connector {self.name!r} "
                f"({self.redactor.text(self.base_url)})",
                code="URL_OUTSIDE_BASE",
            )
        return url

    def build_request(
        self, capability: CapabilitySpec, parameters: dict[str, Any], *, mode: Literal["query", "execute"]
    ) -> tuple[str, str, dict[str, Any], Any]:
        """``(method, path, query, json body or None)`` for one call; separate from sending so the mapping
        rules can be read (and tested) on their own."""
        binding = capability.binding
        method = str(binding.get("method") or ("GET" if mode == "query" else "POST")).upper()
        template = str(binding.get("path") or "/" + quote(capability.name, safe=""))
        remaining = {k: v for k, v in parameters.items() if v is not None}

        def fill(match: re.Match[str]) -> str:
            key = match.group(1)
            if key not in remaining:
                raise ConnectorCallError(
                    f"capability {capability.name!r} of connector {self.name!r} needs parameter {key!r} "
                    f"for its path {template!r}"
                )
            value = str(remaining.pop(key))
            if value in (".", ".."):  # escaping leaves dots alone, and a server would read a dot segment
                raise ConnectorCallError(
                    f"parameter {key!r} of capability {capability.name!r} cannot be {value!r}: "
                    "it would move the request to another path",
                    code="INVALID_PARAMETERS",
                )
            return quote(value, safe="")

        path = _PATH_PARAM.sub(fill, template)
        query: dict[str, Any] = {}
        for key in binding.get("query") or []:
            if key in remaining:
                query[key] = remaining.pop(key)
        body_spec = binding.get("body")
        body: dict[str, Any] | None = None
        if body_spec == "all":
            body, remaining = remaining, {}
        elif isinstance(body_spec, list):
            body = {key: remaining.pop(key) for key in body_spec if key in remaining}
        if remaining:
            if method in _QUERY_METHODS:
                query.update(remaining)
            else:
                body = {**(body or {}), **remaining}
        if body is None and method not in _QUERY_METHODS and mode == "execute":
            body = {}
        query = {k: _query_value(v) for k, v in query.items()}
        return method, path, query, body

    async def call(
        self,
        capability: CapabilitySpec,
        parameters: dict[str, Any],
        *,
        mode: Literal["query", "execute"],
        context: CallContext,
    ) -> Any:
        method, path, query, body = self.build_request(capability, parameters, mode=mode)
        headers = {"Idempotency-Key": context.idempotency_key} if context.idempotency_key else {}
        response = await self._send(
            method, path, params=query, json=body, headers=headers, timeout=context.timeout or self.timeout
        )
        if response.status_code >= 400:
            raise self._status_error(method, path, response)
        return _decode(response)

    async def _send(self, method: str, path: str, *, timeout: float, **kwargs: Any) -> httpx.Response:
        url = self.url_for(path)
        await self.connect()
        assert self._client is not None
        try:
            return await self._client.request(method, url, timeout=timeout, **kwargs)
        except _OffOrigin as exc:
            where = self._where(method, url)
            raise ConnectorCallError(
                f"{where} on connector {self.name!r} was redirected to {self.redactor.text(exc.origin)}, "
                "another origin; redirects are only followed within the base URL's origin",
                code="REDIRECT_BLOCKED",
            ) from None
        except (httpx.HTTPError, TimeoutError) as exc:
            where, cause = self._where(method, url), _cause(exc)
            if isinstance(cause, TimeoutError | httpx.TimeoutException):
                raise ConnectorTimeout(
                    f"{where} on connector {self.name!r} timed out after {timeout}s ({type(cause).__name__})"
                ) from None
            raise ConnectorUnavailable(
                f"{where} on connector {self.name!r} failed: "
                f"{type(cause).__name__}: {self.redactor.text(str(cause))}"
            ) from None

    def _where(self, method: str, url: httpx.URL) -> str:
        """The request as messages name it (worked out on failure only: redaction scans the text)."""
        return f"{method} {self.redactor.text(str(url.copy_with(query=None)))}"

    def _status_error(self, method: str, path: str, response: httpx.Response) -> ConnectorError:
        excerpt = self.redactor.text(response.text[:_EXCERPT].strip())
        status = response.status_code
        url = self.redactor.text(str(response.request.url.copy_with(query=None)))
        message = (
            f"{method} {url} on connector {self.name!r} answered {status} "
            f"{response.reason_phrase}: {excerpt or '(empty body)'}"
        )
        if status == 504:
            return ConnectorTimeout(message)
        if status >= 500:
            return ConnectorUnavailable(message)
        if status in (408, 429):
            return ConnectorCallError(message, retryable=True, code=f"HTTP_{status}")
        return ConnectorCallError(message, code=f"HTTP_{status}")

    async def probe(self) -> None:
        path = self.health_path or ""
        response = await self._send("GET", path, timeout=self.timeout)
        # A dedicated health path must say it is healthy; a bare base URL only has to answer, since many
        # APIs return 404 at their root.
        failing = response.status_code >= 400 if self.health_path else response.status_code >= 500
        if failing:
            raise self._status_error("GET", path, response)

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()


def _cause(exc: BaseException) -> BaseException:
    """What went wrong underneath: the transport maps aiohttp's errors to httpx's by rough kind (a
    refused connection arrives as ``ConnectTimeout``), so the aiohttp error it wraps says more. aiohttp's
    timeouts are ``TimeoutError``s (a pool wait that runs out is one, unwrapped)."""
    cause = exc.__cause__
    return cause if isinstance(exc, httpx.HTTPError) and isinstance(cause, Exception) else exc


def _query_value(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return [_query_value(v) for v in value]
    if isinstance(value, dict):
        return json.dumps(value)
    return value


def _decode(response: httpx.Response) -> Any:
    if response.status_code == 204 or not response.content:
        return None
    content_type = response.headers.get("content-type", "")
    if "json" in content_type:
        try:
            return response.json()
        except ValueError:
            return response.text
    return response.text

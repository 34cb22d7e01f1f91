"""The ``http`` connector: capabilities are calls to a REST API through one shared ``httpx.AsyncClient``.

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

Errors: a 4xx answer is the caller's mistake and :class:`ConnectorCallError` (not retryable), except 408 and
429 which are worth another try; 5xx, connection failures and timeouts are :class:`ConnectorUnavailable` or
:class:`ConnectorTimeout` (retryable).
"""

from __future__ import annotations

import json
import re
from typing import Any, ClassVar, Literal
from urllib.parse import quote

import httpx

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
_EXCERPT = 300
_QUERY_METHODS = frozenset({"GET", "HEAD", "DELETE", "OPTIONS"})


class HTTPConnector(Connector):
    type: ClassVar[str] = "http"

    def __init__(self, name: str, config: dict[str, Any]) -> None:
        super().__init__(name, config)
        base_url = config.get("base_url")
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise ConnectorError(
                f"connector {name!r} needs 'base_url' starting with http:// or https://",
                retryable=False,
                code="CONNECTOR_MISCONFIGURED",
            )
        # httpx joins relative paths onto the base URL's path only when it ends with a slash
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.headers = {str(k): str(v) for k, v in (config.get("headers") or {}).items()}
        self.timeout = float(config.get("timeout", 30))
        self.health_path: str | None = config.get("health_path")
        self.follow_redirects = bool(config.get("follow_redirects", True))
        self._client: httpx.AsyncClient | None = None

    async def connect(self) -> None:
        # httpx connects per request from its pool; there is nothing to reach before the first call, and the
        # health probe is what tells whether the API answers.
        if self._client is None:
            self._client = httpx.AsyncClient(
                base_url=self.base_url,
                headers=self.headers,
                timeout=self.timeout,
                follow_redirects=self.follow_redirects,
            )

    def build_request(
        self, capability: CapabilitySpec, parameters: dict[str, Any], *, mode: Literal["query", "execute"]
    ) -> tuple[str, str, dict[str, Any], Any]:
        """``(method, path, query, json body or None)`` for one call; separate from sending so the mapping
        rules can be read (and tested) on their own."""
        binding = capability.binding
        method = str(binding.get("method") or ("GET" if mode == "query" else "POST")).upper()
        template = str(binding.get("path") or f"/{capability.name}")
        remaining = {k: v for k, v in parameters.items() if v is not None}

        def fill(match: re.Match[str]) -> str:
            key = match.group(1)
            if key not in remaining:
                raise ConnectorCallError(
                    f"capability {capability.name!r} of connector {self.name!r} needs parameter {key!r} "
                    f"for its path {template!r}"
                )
            return quote(str(remaining.pop(key)), safe="")

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
        await self.connect()
        assert self._client is not None
        where = f"{method} {self.base_url.rstrip('/')}/{path.lstrip('/')}"
        try:
            return await self._client.request(method, path.lstrip("/"), timeout=timeout, **kwargs)
        except httpx.TimeoutException as exc:
            raise ConnectorTimeout(
                f"{where} on connector {self.name!r} timed out after {timeout}s ({type(exc).__name__})"
            ) from exc
        except httpx.HTTPError as exc:
            raise ConnectorUnavailable(f"{where} on connector {self.name!r} failed: {exc!r}") from exc

    def _status_error(self, method: str, path: str, response: httpx.Response) -> ConnectorError:
        excerpt = response.text[:_EXCERPT].strip()
        status = response.status_code
        message = (
            f"{method} {response.request.url} on connector {self.name!r} answered {status} "
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

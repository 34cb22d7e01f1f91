"""Keeping connector secrets out of everything a user or the event log can see.

A connector's error text is built from what it was configured with (URLs, argv, headers) and what the far
side answered; that text becomes ``health.last_error``, a step's error and an event. A :class:`Redactor`
knows the secrets of one connector and scrubs them, plus every URL's query string and userinfo, from any
text or error before it leaves the agent. Connectors redact at the point they build a message, and the
agent actor redacts again at its boundary, so a message a connector forgets to scrub is still caught.

Secrets are the values of the connector's secret-looking settings (``headers``, ``env``, and any key such
as ``api_key``, ``token``, ``password``), passwords and query values inside configured URLs, and every
value the registry expanded from a ``${ENV_VAR}`` placeholder.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable
from typing import Any, TypeVar

from orchestrator.core.errors import OrchestratorError

__all__ = ["REDACTED", "Redactor", "config_secrets", "strip_url_secrets"]

REDACTED = "[redacted]"

# Shorter values would turn ordinary words of a message into noise; real secrets are longer.
MIN_SECRET_LENGTH = 4

_SECRET_KEY = re.compile(r"key|token|secret|passw|pwd|auth|credential|cookie|signature|session", re.I)
# Every value under these keys is a secret: header values carry tokens, env values carry keys.
_SECRET_CONTAINERS = frozenset({"headers", "env", "environment", "cookies"})
_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>`]+")
_USERINFO = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*://)[^/?#@]*@")

_E = TypeVar("_E", bound=OrchestratorError)


def strip_url_secrets(text: str) -> str:
    """Every URL in ``text`` without its userinfo and with its query string and fragment replaced."""

    def clean(match: re.Match[str]) -> str:
        url = _USERINFO.sub(rf"\g<1>{REDACTED}@", match.group(0))
        for mark in ("?", "#"):
            head, sep, _ = url.partition(mark)
            if sep:
                url = f"{head}{mark}{REDACTED}"
        return url

    return _URL.sub(clean, text)


def config_secrets(config: Any) -> set[str]:
    """The secret values of a connector configuration (see the module docstring for which)."""
    found: set[str] = set()

    def add_all(value: Any) -> None:
        if isinstance(value, str):
            found.add(value)
            # "Bearer abc": the token alone may surface too (echoed by a server, say)
            found.update(part for part in value.split() if len(part) >= MIN_SECRET_LENGTH)
        elif isinstance(value, dict):
            for item in value.values():
                add_all(item)
        elif isinstance(value, list | tuple):
            for item in value:
                add_all(item)

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if str(key).lower() in _SECRET_CONTAINERS or _SECRET_KEY.search(str(key)):
                    add_all(item)
                else:
                    walk(item)
        elif isinstance(value, list | tuple):
            for item in value:
                walk(item)
        elif isinstance(value, str):
            found.update(_url_secrets(value))

    walk(config)
    return {value for value in found if len(value) >= MIN_SECRET_LENGTH}


def _url_secrets(text: str) -> set[str]:
    found: set[str] = set()
    for match in _URL.finditer(text):
        url = match.group(0)
        userinfo = _USERINFO.match(url)
        if userinfo:
            credentials = url[len(userinfo.group(1)) : userinfo.end() - 1]
            found.add(credentials)
            found.update(credentials.split(":", 1))
        _, _, query = url.partition("?")
        for pair in query.split("#", 1)[0].split("&"):
            found.add(pair.partition("=")[2])
    return found


class Redactor:
    """Scrubs one connector's secrets (and URL query strings) from text and errors."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        values = sorted({s for s in secrets if len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True)
        self._pattern = re.compile("|".join(re.escape(v) for v in values)) if values else None

    def text(self, value: str) -> str:
        if self._pattern is not None:
            value = self._pattern.sub(REDACTED, value)
        return strip_url_secrets(value)

    def value(self, value: Any) -> Any:
        """``value`` with every string in it (nested dicts and lists too) scrubbed."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: self.value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        return value

    def error(self, exc: _E) -> _E:
        """A copy of ``exc`` (same class, code and retryability) with message and details scrubbed.

        Raise it ``from None``: a chained driver exception would carry the unscrubbed text along in Ray's
        traceback.
        """
        clean = copy.copy(exc)  # through __reduce__, which keeps code, status and retryable
        clean.message = self.text(exc.message)
        clean.args = (clean.message,)
        clean.details = self.value(exc.details)
        return clean

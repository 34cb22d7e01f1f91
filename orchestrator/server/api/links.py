"""OpenAPI links: which later calls take an id a response gives. Clients and stateful fuzzers follow them
from an execute or a plan to the routes that read, cancel or list what it started."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote


def operation_ref(path: str, method: str) -> str:
    """A JSON Pointer to an operation of this document (``~1`` for ``/``, braces percent-encoded)."""
    pointer = path.replace("~", "~0").replace("/", "~1")
    return f"#/paths/{quote(pointer, safe='~')}/{method.lower()}"


def link(path: str, method: str, parameters: dict[str, str], description: str) -> dict[str, Any]:
    return {"operationRef": operation_ref(path, method), "parameters": parameters, "description": description}


def execution_links(prefix: str, param: str, id_expr: str) -> dict[str, Any]:
    """Get, cancel and (v1 only) the event log of the execution a response names."""
    item = f"{prefix}/executions/{{{param}}}"
    links = {
        "GetExecution": link(item, "get", {param: id_expr}, "the execution, as it stands"),
        "CancelExecution": link(f"{item}/cancel", "post", {param: id_expr}, "cancel it while it runs"),
    }
    if prefix.startswith("/api/v1"):
        links["ExecutionEvents"] = link(f"{item}/events", "get", {param: id_expr}, "its event log")
    return links

"""Reading what a command is given: JSON or YAML files, ``@file`` arguments, ``KEY=VALUE`` inputs, and the
request body of a run built from them."""

from __future__ import annotations

import getpass
import json
from pathlib import Path
from typing import Any

import yaml

from orchestrator.client.http import InputError


def load_document(path: Path) -> Any:
    """A JSON or YAML file (by suffix; other names are tried as JSON, then YAML)."""
    try:
        text = path.expanduser().read_text()
    except OSError as exc:
        raise InputError(f"cannot read {str(path)!r}: {exc.strerror or exc}") from exc
    suffix = path.suffix.lower()
    try:
        if suffix == ".json":
            return json.loads(text)
        if suffix in (".yaml", ".yml"):
            return yaml.safe_load(text)
        try:
            return json.loads(text)
        except ValueError:
            return yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise InputError(f"{str(path)!r} is neither valid JSON nor YAML: {_first_line(exc)}") from exc


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def json_argument(value: str, *, what: str) -> Any:
    """``@file`` (JSON or YAML) or inline JSON."""
    if value.startswith("@"):
        return load_document(Path(value[1:]))
    try:
        return json.loads(value)
    except ValueError as exc:
        raise InputError(f"{what} must be JSON or @file, not {value!r}") from exc


def scalar(raw: str) -> Any:
    """A ``KEY=VALUE`` value: JSON when it parses (``5000``, ``true``, ``[1, 2]``, ``"5000"``), else the text
    itself, so that dates and words need no quoting."""
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def parse_inputs(values: list[str]) -> dict[str, Any]:
    """``--input`` values in order, later ones winning: ``@file`` merges a JSON/YAML object, ``KEY=@file``
    sets one key to a file's content, ``KEY=VALUE`` one key to a value."""
    merged: dict[str, Any] = {}
    for value in values:
        if value.startswith("@"):
            document = load_document(Path(value[1:]))
            if not isinstance(document, dict):
                raise InputError(
                    f"--input {value}: the file must hold an object, not {type(document).__name__}"
                )
            merged.update(document)
            continue
        key, equals, raw = value.partition("=")
        if not equals or not key.strip():
            raise InputError(f"--input must be KEY=VALUE or @file, not {value!r}")
        merged[key.strip()] = load_document(Path(raw[1:])) if raw.startswith("@") else scalar(raw)
    return merged


def default_user(user: str | None) -> str:
    if user:
        return user
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a bare container)
        return "cli"


def run_request(document: Any, *, inputs: dict[str, Any], user: str | None, source: str) -> dict[str, Any]:
    """The body of ``POST /api/v1/workflows/execute`` from a file holding either that body or a bare
    workflow ``{metadata, spec}``; ``--input`` values go over the file's input, and the user is added
    when the file has none."""
    if not isinstance(document, dict):
        raise InputError(f"{source!r} must hold an object, not {type(document).__name__}")
    if "workflow" in document:
        body = dict(document)
    elif "spec" in document or "metadata" in document:
        body = {"workflow": document}
    elif "steps" in document and "version" in document:
        raise InputError(
            f"{source!r} is an EAI workflow definition: register it with `orchestrate workflows register "
            f"{source}`; `orchestrate run` takes a v1 request or a workflow {{metadata, spec}}"
        )
    else:
        raise InputError(
            f"{source!r} is neither a workflow request {{workflow, input?, user?}} nor a workflow "
            "{metadata, spec}"
        )
    if inputs:
        given = body.get("input")
        body["input"] = {**(given if isinstance(given, dict) else {}), **inputs}
    if not isinstance(body.get("user"), dict) or body["user"].get("id") in (None, ""):
        body["user"] = {
            **(body["user"] if isinstance(body.get("user"), dict) else {}),
            "id": default_user(user),
        }
    return body


__all__ = ["default_user", "json_argument", "load_document", "parse_inputs", "run_request", "scalar"]

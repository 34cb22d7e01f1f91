"""The workflow registry: EAI workflow definitions, validated into the engine's :class:`WorkflowDef`, and
the definition files registered when the server starts.

A definition is a YAML or JSON document (or the body of ``PUT /api/eai/v3/orchestrate/workflows/{id}``)::

    id: analyze_project              required: letters, digits, '_' and '-' (what executions are filed under)
    name: Project Analysis           display name; defaults to the id
    description: Comprehensive project analysis with AI
    version: 1.0.0                   required: a semantic version, MAJOR.MINOR.PATCH[-pre][+build]
    input_schema: {type: object, properties: {...}, required: [...]}   checked before an execution starts
    timeout: 5m                      workflow timeout (seconds or '250ms', '5s', '2m', '1h')
    retry: {max_attempts: 3}         default retry policy of the steps
    output: {analysis: "{{ steps.analyze.output.analysis }}"}
    steps:
      - id: fetch_project            the step id: what depends_on and templates name
        name: Fetch Project Data     display name
        type: resource_query         any engine step type, plus resource_query and ai_chat
        ...

Field names inside a definition are the engine's (``depends_on``, ``output_schema``, ``input_schema``): one
spelling for the file format of both dialects; only the REST envelope around it is camelCase.

Versions are immutable. Registering an id and version again with the identical document is a no-op, so a
server restart re-reads its files harmlessly; a changed document under a registered version is a
``VERSION_EXISTS`` conflict. An execution records the version it started on, so registering a new version
never changes a running execution.

The engine's ``WorkflowDef.name`` of a registered workflow is its id: the executions projection files
executions under that name, so the v1 ``workflow_name`` filter and the EAI ``workflowId`` filter agree.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from orchestrator.config import Settings
from orchestrator.definitions import WorkflowDef
from orchestrator.errors import Conflict, InvalidRequest, InvalidWorkflow
from orchestrator.store.base import EventStore, WorkflowRecord
from orchestrator.validation import build_workflow

log = logging.getLogger(__name__)

SHIPPED_DIR = Path(__file__).with_name("workflows_shipped")
FILE_SUFFIXES = (".yaml", ".yml", ".json")

FIELDS = ("id", "name", "description", "version", "input_schema", "timeout", "retry", "output", "steps")
_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,127}$")
# semver.org 2.0.0, strictly: three numbers without leading zeros; "1.0" is not a version here, because
# "latest" must mean one thing and a registry that accepted "1.0" and "1.0.0" as different would not.
SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*))*))?"
    r"(?:\+([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$"
)

Detail = dict[str, str]


@dataclass(frozen=True)
class Definition:
    """A validated definition: the document as registered and the engine's shape of it."""

    document: dict[str, Any]
    workflow: WorkflowDef

    @property
    def id(self) -> str:
        return str(self.document["id"])

    @property
    def version(self) -> str:
        return str(self.document["version"])

    @property
    def name(self) -> str:
        return display_name(self.document)


def display_name(document: dict[str, Any]) -> str:
    name = document.get("name")
    return name if isinstance(name, str) and name.strip() else str(document.get("id"))


# ------------------------------------------------------------------------------------------ parsing


def parse_definition(raw: Any, *, workflow_id: str | None = None) -> Definition:
    """Validate an EAI definition; raise InvalidWorkflow listing every problem.

    ``workflow_id`` is the id the caller addresses (the URL path of a PUT): the document may omit its
    ``id`` and gets this one, or must agree with it. Detail fields are paths in the document
    (``steps[1].depends_on[0]``), so a PUT body and a file report problems the same way.
    """
    if not isinstance(raw, dict):
        raise InvalidWorkflow(
            "a workflow definition must be an object",
            details=[_d("workflow", "must be an object with id, version and steps")],
        )
    document = _plain(raw)
    details: list[Detail] = []
    for key in document:
        if key not in FIELDS:
            details.append(_d(key, f"unknown field {key!r}; a workflow definition has {', '.join(FIELDS)}"))
    if workflow_id is not None:
        given = document.get("id")
        if given is None:
            document = {"id": workflow_id, **document}
        elif given != workflow_id:
            details.append(_d("id", f"{given!r} does not match the workflow id {workflow_id!r} of the URL"))
    workflow_id = document.get("id")
    if isinstance(workflow_id, str) and workflow_id and not _ID.match(workflow_id):
        details.append(_d("id", f"invalid workflow id {workflow_id!r}: use letters, digits, '_' and '-'"))
    name = document.get("name")
    if name is not None and (not isinstance(name, str) or not name.strip()):
        details.append(_d("name", "must be a non-empty string (the display name)"))
    version = document.get("version")
    if version is None:
        details.append(_d("version", "is required: a semantic version like '1.0.0'"))
    elif not isinstance(version, str):
        details.append(_d("version", f"must be a string like '1.0.0', not {version!r} (quote it in YAML)"))
    elif not SEMVER.match(version):
        details.append(_d("version", f"invalid version {version!r}: use a semantic version like '1.0.0'"))
    input_schema = document.get("input_schema")
    if isinstance(input_schema, dict) and input_schema.get("type", "object") != "object":
        details.append(_d("input_schema.type", "the input is always an object: use type 'object'"))
    header = {
        "name": workflow_id,  # the engine's name of a registered workflow is its id (module docstring)
        "version": version if isinstance(version, str) else None,
        "description": document.get("description"),
        "timeout": document.get("timeout"),
        "retry": document.get("retry"),
        "output": document.get("output"),
        "input_schema": input_schema,
    }
    try:
        workflow = build_workflow(
            header,
            document.get("steps"),
            details=details,
            name_path="$.id",
            spec_path="$",
            key_field="id",
            extra={"id": workflow_id},
        )
    except InvalidWorkflow as exc:
        found = exc.details if isinstance(exc.details, list) else []
        fields = [{**detail, "field": _relative(str(detail.get("field", "")))} for detail in found]
        raise InvalidWorkflow(exc.message, details=fields) from None
    return Definition(document=document, workflow=workflow)


def validate_input(workflow: WorkflowDef, value: dict[str, Any]) -> None:
    """Check an execution's input against the definition's ``input_schema`` before anything is recorded:
    a missing ``projectId`` is the caller's mistake (400), not a step failing halfway through."""
    if workflow.input_schema is None:
        return
    validator = jsonschema.Draft202012Validator(workflow.input_schema)
    details: list[Detail] = []
    for error in sorted(validator.iter_errors(value), key=lambda e: [str(p) for p in e.absolute_path]):
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
        missing = re.match(r"^'(.+)' is a required property$", error.message)
        if error.validator == "required" and missing:
            details.append(_d(f"input{path}.{missing.group(1)}", "is required"))
        else:
            details.append(_d(f"input{path}", error.message))
    if details:
        raise InvalidRequest(
            f"input does not match the input schema of workflow {workflow.id or workflow.name!r}: "
            f"{len(details)} problem{'s' if len(details) > 1 else ''}",
            code="INVALID_INPUT",
            details=details,
        )


# ------------------------------------------------------------------------------------------ registry


def register(store: EventStore, definition: Definition, *, now: dt.datetime | None = None) -> bool:
    """Register a version; True when it is new, False when the identical document was there already.

    Raises Conflict (``VERSION_EXISTS``) when the version exists with a different document.
    """
    existing = store.get_workflow(definition.id, definition.version)
    if existing is not None:
        if existing.definition == definition.document:
            return False
        raise Conflict(
            f"workflow {definition.id!r} version {definition.version!r} is already registered with a "
            "different definition; versions are immutable, register it under a new version",
            code="VERSION_EXISTS",
            details=[{"field": "version", "message": "already registered with a different definition"}],
        )
    store.put_workflow(
        WorkflowRecord(
            workflow_id=definition.id,
            version=definition.version,
            definition=definition.document,
            registered_at=now or dt.datetime.now(dt.UTC),
        )
    )
    return True


def load_workflow_files(settings: Settings, store: EventStore) -> list[str]:
    """Register the shipped definitions, then those in ``settings.workflows_dir``; return warnings.

    A user's file that cannot be read or validated, or that conflicts with a registered version, is a
    warning: one bad file must not keep the server from starting. A shipped file that does not validate
    is a bug in this package and raises. A shipped file that conflicts with a version already in the
    store (changed without a version bump, against a persistent data directory) is a warning too: the
    version registered first stays the one that runs.
    """
    warnings: list[str] = []
    for path in definition_files(SHIPPED_DIR):
        for where, raw in read_documents(path):
            try:
                definition = parse_definition(raw)
            except InvalidWorkflow as exc:
                raise InvalidWorkflow(
                    f"shipped workflow {where} is invalid: {describe(exc)}", details=exc.details
                ) from None
            _register_file(store, definition, where, warnings)
    if settings.workflows_dir is not None:
        directory = Path(settings.workflows_dir)
        if not directory.is_dir():
            warnings.append(
                f"workflows directory {str(directory)!r} does not exist; no user workflows loaded"
            )
        else:
            for path in definition_files(directory):
                try:
                    documents = read_documents(path)
                except (OSError, InvalidWorkflow) as exc:
                    warnings.append(f"{path}: {describe(exc)}")
                    continue
                for where, raw in documents:
                    try:
                        definition = parse_definition(raw)
                    except InvalidWorkflow as exc:
                        warnings.append(f"{where}: {describe(exc)}")
                        continue
                    _register_file(store, definition, where, warnings)
    for warning in warnings:
        log.warning("workflow files: %s", warning)
    return warnings


def _register_file(store: EventStore, definition: Definition, where: str, warnings: list[str]) -> None:
    try:
        register(store, definition)
    except Conflict as exc:
        warnings.append(f"{where}: {exc.message}")


def definition_files(directory: Path) -> list[Path]:
    """Definition files of a directory (not recursive), sorted so registration order is reproducible."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.is_file() and p.suffix.lower() in FILE_SUFFIXES)


def read_documents(path: Path) -> list[tuple[str, Any]]:
    """The definitions in a file, each with where it came from (for messages).

    A file holds one definition, a list of them, or (YAML) several ``---`` documents.
    """
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() == ".json":
            documents = [json.loads(text)]
        else:
            documents = [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise InvalidWorkflow(f"cannot parse {path.suffix.lstrip('.').upper()}: {exc}") from None
    found: list[Any] = []
    for document in documents:
        found.extend(document if isinstance(document, list) else [document])
    if len(found) == 1:
        return [(str(path), found[0])]
    return [(f"{path} (definition {index + 1})", raw) for index, raw in enumerate(found)]


def describe(exc: InvalidWorkflow | OSError) -> str:
    """One line for a warning or a log: the message and every detail."""
    if isinstance(exc, OSError):
        return f"cannot read the file: {exc.strerror or exc}"
    parts = [f"{d['field']}: {d['message']}" for d in exc.details if isinstance(d, dict)]
    return exc.message + (" (" + "; ".join(parts) + ")" if parts else "")


# ------------------------------------------------------------------------------------------ helpers


def _plain(value: Any) -> Any:
    """JSON-compatible values only: YAML reads ``2025-06-01`` as a date, the store keeps JSON, and the
    identity of a re-registered document is judged on what the store keeps."""
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    return value


def _relative(field: str) -> str:
    """``$.steps[0].type`` -> ``steps[0].type``: paths in the definition document itself."""
    if field == "$":
        return "workflow"
    return field.removeprefix("$.").removeprefix("$")


def _d(field: str, message: str) -> Detail:
    return {"field": field, "message": message}


def iter_steps(steps: Any, parent: str | None = None) -> Iterator[tuple[dict[str, Any], str | None]]:
    """Every step of a definition document, nested ones after their container, with its container's id."""
    if not isinstance(steps, list):
        return
    for step in steps:
        if not isinstance(step, dict):
            continue
        yield step, parent
        for nested in ("if_true", "if_false", "steps"):
            yield from iter_steps(step.get(nested), step.get("id"))


__all__ = [
    "SEMVER",
    "SHIPPED_DIR",
    "Definition",
    "display_name",
    "iter_steps",
    "load_workflow_files",
    "parse_definition",
    "register",
    "validate_input",
]

"""EAI workflow documents: a registered workflow's definition, validated into the engine's
:class:`WorkflowDef`. Pure: registering them in the store and reading files is the server's
(:mod:`orchestrator.server.workflow_registry`).

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
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import jsonschema

from orchestrator.core.definitions import WorkflowDef
from orchestrator.core.errors import InvalidRequest, InvalidWorkflow
from orchestrator.core.limits import DEFAULT_LIMITS, Limits
from orchestrator.core.validation import build_workflow

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
class WorkflowDocument:
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


def parse_definition(
    raw: Any, *, workflow_id: str | None = None, limits: Limits = DEFAULT_LIMITS
) -> WorkflowDocument:
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
            limits=limits,
        )
    except InvalidWorkflow as exc:
        found = exc.details if isinstance(exc.details, list) else []
        fields = [{**detail, "field": _relative(str(detail.get("field", "")))} for detail in found]
        raise InvalidWorkflow(exc.message, details=fields) from None
    return WorkflowDocument(document=document, workflow=workflow)


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
    "WorkflowDocument",
    "display_name",
    "iter_steps",
    "parse_definition",
    "validate_input",
]

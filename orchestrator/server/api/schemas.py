"""JSON Schemas of the workflow documents, for the OpenAPI document.

The validators in :mod:`orchestrator.core.validation` and :mod:`orchestrator.core.workflow_documents` are
the authority (their answers name every problem at once); these schemas describe what they accept as far as
JSON Schema can say it, so clients and fuzzers generate documents the server takes. What JSON Schema cannot
say is left to the descriptions: step names unique across the workflow, ``depends_on`` naming existing steps
without a cycle, templates that parse, and an ``input_schema`` that is itself a valid JSON Schema.
"""

from __future__ import annotations

from typing import Any

from orchestrator.server.api.params import DURATION_SCHEMA

NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_-]{0,127}$"
SEMVER_PATTERN = r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$"  # the release form; pre-releases too
NON_BLANK = r"\S"

_STRING = {"type": "string"}
_TEXT = {"type": "string", "pattern": NON_BLANK}
RETRY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "max_attempts": {"type": "integer", "minimum": 1, "maximum": 100},
        "initial_interval": {"type": "number", "minimum": 0, "maximum": 86400},
        "backoff_coefficient": {"type": "number", "minimum": 1, "maximum": 100},
        "max_interval": {"type": "number", "minimum": 0, "maximum": 86400},
        "non_retryable": {"type": "array", "items": _STRING},
    },
    "description": "retry policy: attempts and exponential backoff (intervals in seconds or '5s')",
}
_INPUT_SCHEMA = {"type": "object", "description": "a JSON Schema (draft 2020-12) of type object"}


def _step(key_field: str, step_type: str, fields: dict[str, Any], required: list[str]) -> dict[str, Any]:
    common: dict[str, Any] = {
        key_field: {"type": "string", "pattern": NAME_PATTERN, "description": "unique in the workflow"},
        "type": {"const": step_type},
        "description": _STRING,
        "depends_on": {
            "type": "array",
            "items": {"type": "string", "pattern": NAME_PATTERN},
            "description": "names of other steps of the workflow, without a cycle",
        },
        "timeout": DURATION_SCHEMA,
        "retry": RETRY_SCHEMA,
        **({"name": _STRING} if key_field == "id" else {"title": _STRING}),
    }
    if step_type in ("condition", "parallel"):  # a container's limits belong to its nested steps
        del common["timeout"], common["retry"]
    if step_type in ("approval", "signal"):  # a person's answer (or silence) is not retried
        del common["retry"]
    return {
        "type": "object",
        "additionalProperties": False,
        "required": [key_field, "type", *required],
        "properties": {**common, **fields},
    }


def _leaf_steps(key_field: str, connector_type: str, llm_type: str) -> list[dict[str, Any]]:
    connector = {"connector": _TEXT, "statement": _TEXT, "parameters": {"type": "object"}}
    llm = {
        "prompt": {**_TEXT, "description": "a template"},
        "system": _STRING,
        "model": _STRING,
        "agent": _STRING,
        "max_tokens": {"type": "integer", "minimum": 1},
        "temperature": {"type": "number", "minimum": 0, "maximum": 2},
    }
    return [
        _step(key_field, connector_type, connector, ["connector", "statement"]),
        _step(key_field, llm_type, llm, ["prompt"]),
        _step(
            key_field, "transform", {"value": {"description": "any JSON; strings are templates"}}, ["value"]
        ),
        _step(key_field, "wait", {"duration": DURATION_SCHEMA}, ["duration"]),
        _step(
            key_field,
            "approval",
            {
                "prompt": {**_TEXT, "description": "the question to decide (a template)"},
                "approvers": {
                    "type": "array",
                    "items": {"type": ["string", "integer"], "minLength": 1},
                    "description": "user ids or roles that may decide; empty or absent: anyone",
                },
                "on_reject": {"enum": ["fail", "continue"], "description": "default fail"},
            },
            ["prompt"],
        ),
        _step(
            key_field,
            "signal",
            {
                "signal": {"type": "string", "pattern": NAME_PATTERN, "description": "the signal's name"},
                "schema": {"type": "object", "description": "a JSON Schema its payload must satisfy"},
            },
            ["signal"],
        ),
    ]


def steps_schema(key_field: str, *, connector_type: str, llm_type: str) -> dict[str, Any]:
    """Steps one level deep: containers (``condition``, ``parallel``) hold further steps, which the
    validator takes to any depth within ``ORCH_MAX_NESTING_DEPTH``."""
    leaf = {"oneOf": _leaf_steps(key_field, connector_type, llm_type)}
    nested = {"type": "array", "items": leaf}
    containers = [
        _step(
            key_field,
            "condition",
            {
                "condition": {**_TEXT, "description": "a Jinja expression"},
                "if_true": {**nested, "minItems": 1},
                "if_false": nested,
            },
            ["condition", "if_true"],  # the validator also takes if_false alone
        ),
        _step(key_field, "parallel", {"steps": {**nested, "minItems": 1}}, ["steps"]),
    ]
    return {
        "type": "array",
        "minItems": 1,
        "items": {"oneOf": [*leaf["oneOf"], *containers]},
    }


def v1_workflow_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["metadata", "spec"],
        "properties": {
            "metadata": {
                "type": "object",
                "required": ["name"],
                "properties": {"name": _TEXT, "version": _STRING, "description": _STRING},
            },
            "spec": {
                "type": "object",
                "required": ["steps"],
                "properties": {
                    "steps": steps_schema("name", connector_type="mcp_query", llm_type="llm"),
                    "timeout": DURATION_SCHEMA,
                    "retry": RETRY_SCHEMA,
                    "output": {"type": "object", "description": "names to templates"},
                    "input_schema": _INPUT_SCHEMA,
                },
            },
        },
    }


def eai_definition_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["version", "steps"],
        "properties": {
            "id": {"type": "string", "pattern": NAME_PATTERN, "description": "the workflowId of the URL"},
            "name": _TEXT,
            "description": _STRING,
            "version": {"type": "string", "pattern": SEMVER_PATTERN, "examples": ["1.0.0"]},
            "input_schema": _INPUT_SCHEMA,
            "timeout": DURATION_SCHEMA,
            "retry": RETRY_SCHEMA,
            "output": {"type": "object", "description": "names to templates"},
            "steps": steps_schema("id", connector_type="resource_query", llm_type="ai_chat"),
        },
    }


USER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["id"],
    "properties": {
        "id": {"type": ["string", "integer"], "minLength": 1, "description": "who asks (governance)"},
        "email": _STRING,
        "role": _STRING,
        "tenant_id": _STRING,
    },
}


def require(*fields: str) -> Any:
    """A model's ``json_schema_extra`` marking fields required that the route checks itself (with its own
    error code) rather than through pydantic."""

    def extra(schema: dict[str, Any]) -> None:
        schema["required"] = sorted({*schema.get("required", []), *fields})

    return extra


def replace_with(document: dict[str, Any]) -> Any:
    """A model's ``json_schema_extra`` that shows ``document`` instead of the model's own fields, for
    bodies that go to a validator whole."""

    def extra(schema: dict[str, Any]) -> None:
        title = schema.get("title")
        description = schema.get("description")
        schema.clear()
        schema.update(document, title=title)
        if description:
            schema["description"] = description

    return extra

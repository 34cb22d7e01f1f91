"""Property-based fuzzing of the whole REST surface (both dialects) from its own OpenAPI document, against
the real server: no answer may be a 5xx other than the documented ones, and every answer must match the
documented status codes, content types and schemas. Bounded and derandomized, so it is a gate, not a
lottery."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    allow_header_conformance,
    negative_data_rejection,
    not_a_server_error,
    positive_data_acceptance,
)

from orchestrator.core.durations import parse_duration
from tests.fixtures_server import ServerInfo

pytestmark = pytest.mark.ray

MAX_EXAMPLES = 5
# A generated workflow that is valid may wait for a long time; the fuzzer only needs to see it start.
FUZZ_TIMEOUT_S = 2.0
_RUNS = ("/execute", "/plan")
_ENDLESS = {("GET", "/api/v1/workflows/executions/stream")}
_CROSS_FIELD = {
    ("POST", "/api/v1/workflows/execute"),
    ("PUT", "/api/eai/v3/orchestrate/workflows/{workflowId}"),
}

_FUZZ_SETTINGS = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture(scope="session")
def openapi(server: ServerInfo) -> Any:
    schema = schemathesis.openapi.from_url(f"{server.base_url}/openapi.json")
    return schema


schema = schemathesis.pytest.from_fixture("openapi")


def bounded(case: Any) -> None:
    """Cap the timeout of anything that starts an execution, keeping a generated invalid one as it is."""
    if not case.path.endswith(_RUNS) or not isinstance(case.body, dict):
        return
    if case.body.get("timeout") is None:  # absent or null: the workflow's own, maybe none at all
        case.body["timeout"] = FUZZ_TIMEOUT_S
        return
    try:
        seconds = parse_duration(case.body["timeout"])
    except ValueError:
        return
    if seconds > FUZZ_TIMEOUT_S:
        case.body["timeout"] = FUZZ_TIMEOUT_S


@schema.parametrize()
@_FUZZ_SETTINGS
def test_every_route_answers_as_documented(case: Any) -> None:
    if (case.method.upper(), case.path) in _ENDLESS:
        return  # a live stream that only its client ends (tests/test_streams.py covers it)
    bounded(case)
    response = case.call(timeout=60)
    excluded = [
        # The document is a subset of what the server takes (see orchestrator/server/api/schemas.py).
        negative_data_rejection,
        # Starlette answers 405 from the first route on a path: GET and PUT of a workflow are two routes.
        allow_header_conformance,
    ]
    if (case.method.upper(), case.path) in _CROSS_FIELD:
        excluded.append(positive_data_acceptance)  # unique step names, depends_on: not JSON Schema
    if _documented_5xx(response):
        excluded.append(not_a_server_error)
    case.validate_response(response, excluded_checks=excluded)


# Answers in 5xx that the routes document: a query no agent can serve, a workflow that hit its timeout.
_DOCUMENTED_5XX = {(500, "PLANNING_FAILED"), (504, "EXECUTION_TIMEOUT")}


def _documented_5xx(response: Any) -> bool:
    try:
        return (response.status_code, response.json()["error"]["code"]) in _DOCUMENTED_5XX
    except (ValueError, KeyError, TypeError):
        return False

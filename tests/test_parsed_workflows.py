"""The ingress's validated workflow definitions, reused when the same document is sent again."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.core.errors import InvalidWorkflow
from orchestrator.core.limits import Limits
from orchestrator.core.validation import parse_workflow
from orchestrator.server.parsed_workflows import ParsedWorkflows


def document(name: str = "cached", value: Any = 1) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {"steps": [{"name": "a", "type": "transform", "value": value}]},
    }


def test_the_same_document_gives_the_same_definition_and_another_a_new_one() -> None:
    parsed = ParsedWorkflows(Limits())
    first = parsed.parse(document())
    assert parsed.parse(document()) is first
    assert first == parse_workflow(document())
    other = parsed.parse(document(value=2))
    assert other is not first and other.steps[0].value == 2


def test_invalid_documents_are_refused_every_time_and_never_kept() -> None:
    parsed = ParsedWorkflows(Limits())
    bad = {"metadata": {"name": "bad"}, "spec": {"steps": [{"name": "a", "type": "nope"}]}}
    for _ in range(2):
        with pytest.raises(InvalidWorkflow):
            parsed.parse(bad)
    assert len(parsed) == 0


def test_the_server_limits_apply_and_the_cache_is_bounded() -> None:
    parsed = ParsedWorkflows(Limits(max_steps=1), capacity=3, max_key_bytes=200)
    two = document()
    two["spec"]["steps"].append({"name": "b", "type": "transform", "value": 2})
    with pytest.raises(InvalidWorkflow):
        parsed.parse(two)
    for n in range(5):
        parsed.parse(document(name=f"w{n}"))
    assert len(parsed) == 3
    large = document(value="x" * 500)  # over max_key_bytes: validated, not kept
    assert parsed.parse(large) is not parsed.parse(large)

"""The LLM planner through the real ``openai`` async client against the scripted OpenAI-compatible server:
valid plans are accepted, invalid ones repaired with the errors listed, garbage fails with details."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml

from orchestrator.core.errors import PlanningFailed
from planner import PLAN_JSON_SCHEMA, LLMPlanner, Plan, filter_catalog, plan_offline, validate_plan
from tests.openai_server import ScriptedOpenAI

pytestmark = pytest.mark.timeout(30)

SHIPPED = Path(__file__).resolve().parents[1] / "agents" / "config" / "default.yaml"
AGENTS: list[dict[str, Any]] = yaml.safe_load(SHIPPED.read_text(encoding="utf-8"))["agents"]
CATALOG = filter_catalog(AGENTS, "travel")

QUERY = (
    "Plan a business trip from San Francisco to Paris for June 1-7, find flights under $1000 and "
    "4-star hotels near the Eiffel Tower"
)
CONTEXT: dict[str, Any] = {
    "budget": 5000,
    "currency": "USD",
    "preferences": {"airline_alliance": "SkyTeam", "hotel_amenities": ["wifi", "breakfast"]},
}


def valid_answer() -> dict[str, Any]:
    """A correct plan, as a model would send it: the offline planner's steps for the seed query."""
    offline = plan_offline(
        QUERY,
        domain="travel",
        execution_mode="auto",
        context=CONTEXT,
        catalog=CATALOG,
        today=date(2025, 1, 2),
    )
    return {"steps": [step.model_dump() for step in offline.steps]}


def invalid_answer() -> dict[str, Any]:
    answer = valid_answer()
    answer["steps"][0]["capability"] = "book_flights"
    return answer


@pytest.fixture
async def client(openai_stub: ScriptedOpenAI) -> AsyncIterator[openai.AsyncOpenAI]:
    # No client-side retries: each scripted reply must be one planner attempt.
    async with openai.AsyncOpenAI(
        base_url=openai_stub.base_url, api_key="test-key", max_retries=0, timeout=10
    ) as client:
        yield client


async def run(planner: LLMPlanner, mode: str = "auto") -> Plan:
    return await planner.plan(QUERY, domain="travel", execution_mode=mode, context=CONTEXT, catalog=CATALOG)


async def test_valid_plan_is_accepted(openai_stub: ScriptedOpenAI, client: openai.AsyncOpenAI) -> None:
    openai_stub.script(valid_answer())
    result = await run(LLMPlanner(client, "planner-model"))

    assert result.planner == "llm"
    assert result.domain == "travel"
    assert [s.id for s in result.steps] == [
        "step_1_search_flights",
        "step_2_search_hotels",
        "step_3_summarize",
    ]
    assert result.steps[0].parameters["origin"] == "SFO"
    assert result.steps[-1].depends_on == ["step_1_search_flights", "step_2_search_hotels"]
    assert result.warnings == []
    assert validate_plan(result, CATALOG) == []

    (request,) = openai_stub.requests
    assert request["model"] == "planner-model"
    assert request["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "plan", "schema": PLAN_JSON_SCHEMA, "strict": False},
    }


async def test_invalid_plan_is_repaired_once(openai_stub: ScriptedOpenAI, client: openai.AsyncOpenAI) -> None:
    first = invalid_answer()
    openai_stub.script(first, valid_answer())
    result = await run(LLMPlanner(client, "planner-model"))

    assert result.steps[0].capability == "search_flights"
    assert any("1 repair" in w for w in result.warnings)
    assert len(openai_stub.requests) == 2
    messages = openai_stub.requests[1]["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert json.loads(messages[2]["content"]) == first
    repair = messages[3]["content"]
    assert "steps[0].capability" in repair
    assert "unknown capability 'book_flights' on agent 'amadeus-travel'" in repair


async def test_garbage_every_time_fails_after_two_repairs(
    openai_stub: ScriptedOpenAI, client: openai.AsyncOpenAI
) -> None:
    openai_stub.script("Sure! Here is your plan.", "```json\n{not json}\n```", {"steps": "soon"})
    with pytest.raises(PlanningFailed) as caught:
        await run(LLMPlanner(client, "planner-model"))

    error = caught.value
    assert error.code == "PLANNING_FAILED" and error.status == 500
    assert error.details["attempts"] == 3
    assert error.details["errors"] == [
        {"field": "steps", "message": "'steps' must be a non-empty list of step objects"}
    ]
    assert len(openai_stub.requests) == 3
    # every repair request carries the previous answers and the errors
    last = openai_stub.requests[2]["messages"]
    assert [m["role"] for m in last] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert "not valid JSON" in last[3]["content"]


async def test_max_repairs_zero_means_one_attempt(
    openai_stub: ScriptedOpenAI, client: openai.AsyncOpenAI
) -> None:
    openai_stub.script(invalid_answer(), valid_answer())
    with pytest.raises(PlanningFailed) as caught:
        await run(LLMPlanner(client, "planner-model", max_repairs=0))
    assert caught.value.details["attempts"] == 1
    assert len(openai_stub.requests) == 1


async def test_prompt_holds_the_query_context_and_catalog(
    openai_stub: ScriptedOpenAI, client: openai.AsyncOpenAI
) -> None:
    openai_stub.script(valid_answer())
    await LLMPlanner(client, "planner-model").plan(
        QUERY,
        domain="travel",
        execution_mode="auto",
        context=CONTEXT,
        catalog=CATALOG,
        today=date(2025, 1, 2),
    )
    system, user = openai_stub.requests[0]["messages"]
    assert system["role"] == "system" and "summarize_options" in system["content"]
    prompt = user["content"]
    assert QUERY in prompt
    assert "Today: 2025-01-02" in prompt
    assert '"airline_alliance":"SkyTeam"' in prompt and '"budget":5000' in prompt
    assert '"id":"amadeus-travel"' in prompt and '"id":"llm-analyst"' in prompt
    assert '"name":"search_flights"' in prompt
    assert '"origin":{"type":"string","required":true' in prompt
    assert '"enum":["SkyTeam","Star Alliance","oneworld"]' in prompt
    assert "salesforce-crm" not in prompt  # the catalog was filtered to the travel domain


async def test_fenced_answer_without_synthesis_gets_one(
    openai_stub: ScriptedOpenAI, client: openai.AsyncOpenAI
) -> None:
    steps = valid_answer()["steps"][:2]
    openai_stub.script("Here you go:\n```json\n" + json.dumps({"steps": steps}) + "\n```")
    result = await run(LLMPlanner(client, "planner-model"), mode="sequential")

    assert [s.name for s in result.steps] == ["search_flights", "search_hotels", "summarize_options"]
    summary = result.steps[-1]
    assert (summary.type, summary.agent, summary.capability) == ("llm", "llm-analyst", None)
    assert summary.depends_on == ["step_1_search_flights", "step_2_search_hotels"]
    assert QUERY in summary.parameters["prompt"]
    assert result.steps[1].depends_on == ["step_1_search_flights"]  # sequential chains
    assert any("synthesis" in w for w in result.warnings)
    assert validate_plan(result, CATALOG) == []


async def test_http_errors_become_planning_failed(
    openai_stub: ScriptedOpenAI, client: openai.AsyncOpenAI
) -> None:
    openai_stub.script(500)
    with pytest.raises(PlanningFailed) as caught:
        await run(LLMPlanner(client, "planner-model"))
    error = caught.value
    assert isinstance(error.__cause__, openai.InternalServerError)
    assert error.details["cause"] == "InternalServerError"
    assert error.details["status"] == 500
    assert error.details["attempts"] == 1

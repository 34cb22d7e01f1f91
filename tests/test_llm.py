"""LLM providers: the offline summariser's rules, and the OpenAI provider through the real ``openai`` client
against a scripted OpenAI-compatible server."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

import agents.llm
from agents.llm import LLMRequest, OfflineProvider, OpenAIProvider, make_provider
from agents.llm.openai_provider import CONTEXT_HEADING
from orchestrator.config import Settings
from orchestrator.core.errors import StepError
from tests.openai_server import ScriptedOpenAI
from tests.ports import free_port

pytestmark = pytest.mark.timeout(30)

TRAVEL_CONTEXT: dict[str, Any] = {
    "search_flights": {
        "flights": [
            {
                "airline": "Air France",
                "flight_number": "AF123",
                "price": 850,
                "currency": "USD",
                "stops": 0,
                "departure_time": "10:00",
            },
            {"airline": "Delta", "flight_number": "DL456", "price": 920, "currency": "USD", "stops": 1},
        ]
    },
    "search_hotels": {
        "check_in": "2025-06-01",
        "check_out": "2025-06-07",
        "hotels": [
            {
                "name": "Hotel Eiffel Palace",
                "stars": 4,
                "price_per_night": 180,
                "currency": "USD",
                "distance_km": 0.5,
                "landmark": "Eiffel Tower",
            },
            {
                "name": "Le Meridien Étoile",
                "stars": 4,
                "price_per_night": 210,
                "currency": "USD",
                "distance_km": 1.2,
                "landmark": "Eiffel Tower",
            },
        ],
    },
}
PROMPT = "Summarize the flight and hotel options for a trip from SFO to Paris. Keep it short."


def travel_request(**changes: Any) -> LLMRequest:
    fields: dict[str, Any] = {
        "prompt": PROMPT,
        "context": TRAVEL_CONTEXT,
        "input": {"budget": 5000, "currency": "USD"},
    }
    return LLMRequest(**(fields | changes))


# ---------------------------------------------------------------------------------------------- offline


async def test_offline_summary_states_concrete_options_and_total_against_budget() -> None:
    result = await OfflineProvider().complete(travel_request())

    text = result.output
    assert text.splitlines()[0] == (
        "Here is what I found for: Summarize the flight and hotel options for a trip from SFO to Paris"
    )
    assert (
        "**Flights:**\n- Air France AF123: $850 direct, departing 10:00\n- Delta DL456: $920 with 1 stop"
        in text
    )
    assert "- Hotel Eiffel Palace (4-star): $180/night, 0.5 km from Eiffel Tower" in text
    assert "- Le Meridien Étoile (4-star): $210/night, 1.2 km from Eiffel Tower" in text
    # 850 + 6 x 180 and 920 + 6 x 210 (June 1-7 is six nights).
    assert text.rstrip().endswith("Total estimated cost: $1,930-$2,180 (within your $5,000 budget)")
    assert (result.model, result.provider) == ("offline-summarizer", "offline")
    assert result.usage["prompt_tokens"] > 0
    assert result.usage["completion_tokens"] == len(text.split())


async def test_offline_summary_says_when_the_budget_is_exceeded() -> None:
    result = await OfflineProvider().complete(travel_request(input={"budget": 1500, "currency": "USD"}))

    assert "Total estimated cost: $1,930-$2,180 (over your $1,500 budget)" in result.output


async def test_offline_summary_mentions_the_return_leg_and_prices_all_passengers() -> None:
    flight = {"airline": "Delta", "flight_number": "DL456", "price": 900, "total_price": 1800, "stops": 0}
    flight["return"] = {"flight_number": "DL457", "departure_date": "2025-06-07", "departure_time": "14:05"}
    hotel = {"name": "Ibis", "price_per_night": 100, "nights": 2, "total_price": 200}
    context = {"flights": {"flights": [flight]}, "hotels": {"hotels": [hotel]}}
    request = LLMRequest(prompt="Trip?", context=context, input={"currency": "USD"})

    text = (await OfflineProvider().complete(request)).output

    assert "- Delta DL456: $900 direct, return DL457 on 2025-06-07 14:05" in text
    assert "Total estimated cost: $2,000" in text


async def test_offline_summary_is_deterministic() -> None:
    provider = OfflineProvider()

    outputs = {(await provider.complete(travel_request())).output for _ in range(3)}

    assert len(outputs) == 1


async def test_offline_summary_without_data_says_so() -> None:
    result = await OfflineProvider().complete(
        LLMRequest(prompt="Summarize the results.", context={"fetch": None})
    )

    assert "no data to summarise" in result.output
    assert "$" not in result.output


async def test_offline_summary_renders_crm_and_unknown_shapes_without_inventing() -> None:
    context = {
        "crm": {
            "result": {
                "contacts": [
                    {"first_name": "Ada", "last_name": "Lovelace", "company": "Acme", "email": "ada@acme.io"}
                ],
                "opportunities": [
                    {"name": "Renewal", "amount": 50000, "currency": "USD", "stage": "Negotiation"},
                    {"name": "Upsell", "amount": 12000, "currency": "USD", "stage": "Prospecting"},
                ],
            }
        },
        "create_lead": {"lead": {"id": "L-7", "name": "Bob Byte", "company": "Initech", "status": "New"}},
        "fetch_metrics": {"rows": [{"day": "mon", "visits": 10}], "row_count": 1},
        "flights_only": {"flights": []},
    }

    text = (await OfflineProvider().complete(LLMRequest(prompt="What do we have?", context=context))).output

    assert "- Ada Lovelace (Acme): ada@acme.io" in text
    assert "- Renewal: $50,000, stage Negotiation" in text
    assert "Total pipeline: $62,000 across 2 opportunities" in text
    assert "**Lead:**\n- Bob Byte (Initech): status New, id L-7" in text
    assert "**Fetch metrics:**\n- rows (1 item):\n  - day: mon, visits: 10\n- row_count: 1" in text
    assert "- No flights found." in text
    assert "Total estimated cost" not in text  # no hotels, so no trip total


TRIP_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "summary": {"type": "string"},
        "flights": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"airline": {"type": "string"}, "price": {"type": "number"}},
                "required": ["airline", "price"],
            },
        },
        "budget": {"type": "integer"},
        "recommendations": {"type": "array", "items": {"type": "string"}},
        "confidence": {"type": "number"},
    },
    "required": ["summary", "flights", "budget", "recommendations"],
    "additionalProperties": False,
}


async def test_offline_structured_output_is_filled_from_context_and_validates() -> None:
    provider = OfflineProvider()

    result = await provider.complete(travel_request(input={"budget": "5000"}, output_schema=TRIP_SCHEMA))

    output = result.output
    assert output["flights"] == [{"airline": "Air France", "price": 850}, {"airline": "Delta", "price": 920}]
    assert output["budget"] == 5000  # coerced from the string in the input
    assert output["summary"] == provider.summarize(travel_request(input={"budget": "5000"}))
    assert output["recommendations"] == []  # nothing to recommend from: empty, not made up
    assert "confidence" not in output  # optional and absent from the context
    assert result.usage["completion_tokens"] == len(json.dumps(output, ensure_ascii=False).split())


async def test_offline_structured_output_prefers_a_value_from_the_context_over_the_summary() -> None:
    schema = {"type": "object", "properties": {"summary": {"type": "string"}}, "required": ["summary"]}
    request = LLMRequest(
        prompt="Wrap up.", context={"analyze": {"analysis": "Demand is rising."}}, output_schema=schema
    )

    result = await OfflineProvider().complete(request)

    assert result.output == {"summary": "Demand is rising."}


async def test_offline_structured_output_missing_required_value_is_an_error_not_a_guess() -> None:
    schema = {
        "type": "object",
        "properties": {"risk_score": {"type": "number"}, "summary": {"type": "string"}},
        "required": ["risk_score", "summary"],
    }

    with pytest.raises(StepError) as caught:
        await OfflineProvider().complete(travel_request(output_schema=schema))

    assert caught.value.retryable is False
    assert caught.value.code == "LLM_INVALID_OUTPUT"
    assert "'risk_score'" in caught.value.message


async def test_offline_structured_output_that_breaks_a_constraint_is_rejected() -> None:
    schema = {"type": "object", "properties": {"budget": {"type": "integer", "maximum": 100}}}

    with pytest.raises(StepError) as caught:
        await OfflineProvider().complete(travel_request(output_schema=schema))

    assert caught.value.retryable is False
    assert "budget" in caught.value.message


# ---------------------------------------------------------------------------------------------- openai


@pytest.fixture
async def provider(openai_stub: ScriptedOpenAI) -> AsyncIterator[OpenAIProvider]:
    llm = OpenAIProvider(base_url=openai_stub.base_url, api_key="test-key", model="scripted-model", timeout=5)
    yield llm
    await llm.close()


async def test_openai_text_reply(openai_stub: ScriptedOpenAI, provider: OpenAIProvider) -> None:
    openai_stub.script("I found great options for your trip.")

    result = await provider.complete(travel_request(system="You are a travel assistant."))

    assert result.output == "I found great options for your trip."
    assert (result.model, result.provider) == ("scripted-model", "openai")
    assert result.usage["completion_tokens"] == 7  # the scripted server counts words
    assert result.usage["total_tokens"] == result.usage["prompt_tokens"] + 7


async def test_openai_request_carries_system_prompt_and_context_block(
    openai_stub: ScriptedOpenAI, provider: OpenAIProvider
) -> None:
    await provider.complete(
        travel_request(system="You are a travel assistant.", temperature=0.2, max_tokens=300)
    )

    body = openai_stub.last_request
    assert body["model"] == "scripted-model"
    assert (body["temperature"], body["max_tokens"]) == (0.2, 300)
    assert "response_format" not in body
    system, user = body["messages"]
    assert system == {"role": "system", "content": "You are a travel assistant."}
    assert user["role"] == "user"
    assert user["content"].startswith(PROMPT)
    block = user["content"].split(f"{CONTEXT_HEADING}\n```json\n", 1)[1].split("\n```", 1)[0]
    assert json.loads(block) == TRAVEL_CONTEXT


async def test_openai_chat_history_ends_with_the_prompt_and_its_context(
    openai_stub: ScriptedOpenAI, provider: OpenAIProvider
) -> None:
    history = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": PROMPT},
    ]

    result = await provider.complete(travel_request(messages=history))

    messages = openai_stub.last_request["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert CONTEXT_HEADING in messages[-1]["content"]
    assert result.output.startswith("Echo: " + PROMPT)  # the server's default reply


async def test_openai_large_context_is_truncated(openai_stub: ScriptedOpenAI) -> None:
    llm = OpenAIProvider(base_url=openai_stub.base_url, api_key="k", model="m", max_context_chars=2000)
    context = {"rows": {"items": [{"id": i, "text": "x" * 50} for i in range(500)]}}
    try:
        await llm.complete(LLMRequest(prompt="Count them.", context=context))
    finally:
        await llm.close()

    content = openai_stub.last_request["messages"][-1]["content"]
    assert len(content) < 2200
    assert "more items" in content


async def test_openai_structured_reply_is_parsed_and_validated(
    openai_stub: ScriptedOpenAI, provider: OpenAIProvider
) -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
    openai_stub.script({"answer": "Book AF123."})

    result = await provider.complete(travel_request(output_schema=schema))

    assert result.output == {"answer": "Book AF123."}
    assert openai_stub.last_request["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": schema, "strict": False},
    }


async def test_openai_fenced_json_is_tolerated(openai_stub: ScriptedOpenAI, provider: OpenAIProvider) -> None:
    schema = {"type": "object", "properties": {"total": {"type": "integer"}}, "required": ["total"]}
    openai_stub.script('```json\n{"total": 1930}\n```')

    result = await provider.complete(travel_request(output_schema=schema))

    assert result.output == {"total": 1930}


@pytest.mark.parametrize(
    "reply",
    ["Sure! The total is about two thousand.", {"total": "lots"}],
    ids=["not-json", "schema-mismatch"],
)
async def test_openai_invalid_structured_output_is_a_retryable_step_error(
    openai_stub: ScriptedOpenAI, provider: OpenAIProvider, reply: str | dict[str, Any]
) -> None:
    schema = {"type": "object", "properties": {"total": {"type": "integer"}}, "required": ["total"]}
    openai_stub.script(reply)

    with pytest.raises(StepError) as caught:
        await provider.complete(travel_request(output_schema=schema))

    assert caught.value.code == "LLM_INVALID_OUTPUT"
    assert caught.value.retryable is True


@pytest.mark.parametrize(
    ("status", "code", "retryable"),
    [
        (500, "LLM_UNAVAILABLE", True),
        (503, "LLM_UNAVAILABLE", True),
        (429, "LLM_RATE_LIMITED", True),
        (400, "LLM_BAD_REQUEST", False),
        (401, "LLM_AUTH_FAILED", False),
        (404, "LLM_NOT_FOUND", False),
    ],
)
async def test_openai_http_errors_map_to_step_errors(
    openai_stub: ScriptedOpenAI, provider: OpenAIProvider, status: int, code: str, retryable: bool
) -> None:
    openai_stub.script(status)

    with pytest.raises(StepError) as caught:
        await provider.complete(travel_request())

    assert (caught.value.code, caught.value.retryable) == (code, retryable)
    assert f"HTTP {status}" in caught.value.message
    assert caught.value.__cause__ is not None
    assert len(openai_stub.requests) == 1  # the client does not retry on its own: the engine does


async def test_openai_unreachable_endpoint_is_unavailable() -> None:
    port = free_port()  # nothing listens there
    llm = OpenAIProvider(base_url=f"http://127.0.0.1:{port}/v1", api_key="k", timeout=5)
    try:
        with pytest.raises(StepError) as caught:
            await llm.complete(LLMRequest(prompt="hello"))
        with pytest.raises(StepError) as probed:
            await llm.probe()
    finally:
        await llm.close()

    assert (caught.value.code, caught.value.retryable) == ("LLM_UNAVAILABLE", True)
    assert probed.value.code == "LLM_UNAVAILABLE"


async def test_openai_slow_endpoint_times_out(openai_stub: ScriptedOpenAI) -> None:
    def slow(body: dict[str, Any]) -> str:
        time.sleep(1.0)
        return "too late"

    openai_stub.script(slow)
    llm = OpenAIProvider(base_url=openai_stub.base_url, api_key="k", timeout=0.2)
    try:
        with pytest.raises(StepError) as caught:
            await llm.complete(LLMRequest(prompt="hello"))
    finally:
        await llm.close()

    assert (caught.value.code, caught.value.retryable) == ("LLM_TIMEOUT", True)


async def test_openai_probe_lists_models(openai_stub: ScriptedOpenAI, provider: OpenAIProvider) -> None:
    await provider.probe()


# ----------------------------------------------------------------------------------------------- wiring


def test_make_provider_follows_settings() -> None:
    assert isinstance(
        make_provider(Settings(llm_provider=None, llm_base_url=None, llm_api_key=None)), OfflineProvider
    )
    configured = make_provider(Settings(llm_base_url="http://127.0.0.1:9/v1", llm_model="m1"))
    assert isinstance(configured, OpenAIProvider)
    assert configured.model == "m1"


def test_public_names_are_pinned() -> None:
    assert agents.llm.__all__ == [
        "LLMProvider",
        "LLMRequest",
        "LLMResult",
        "OfflineProvider",
        "OpenAIProvider",
        "make_provider",
    ]

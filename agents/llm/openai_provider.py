"""The ``openai`` provider: any OpenAI-compatible chat completions endpoint (OpenAI, vLLM, Ollama,
llama.cpp server) through the official async client.

The client's own retries are off (``max_retries=0``): the workflow engine owns retry policy, and it can
only apply it if every failure arrives here as a :class:`~orchestrator.core.errors.StepError` that says whether
trying again can help. So this module is the boundary where ``openai`` exceptions stop (STYLE 9).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import AsyncIterator, Mapping
from typing import Any, Final

import jsonschema
import openai
from openai import AsyncOpenAI

from agents.llm.base import LLMProvider, LLMRequest, LLMResult, check_output_schema
from orchestrator.core.errors import StepError

DEFAULT_MODEL: Final = "gpt-4o-mini"
CONTEXT_HEADING: Final = "Context (outputs of previous steps):"
INPUT_HEADING: Final = "Workflow input:"
_MAX_CONTEXT_CHARS: Final = 24_000  # roughly 6k tokens: room for the answer on small local models
_FENCE: Final = re.compile(r"^\s*```[A-Za-z0-9_-]*\s*\n?(.*?)\n?\s*```\s*$", re.DOTALL)


class OpenAIProvider(LLMProvider):
    name = "openai"

    def __init__(
        self,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        model: str = DEFAULT_MODEL,
        timeout: float = 60.0,
        max_context_chars: int = _MAX_CONTEXT_CHARS,
    ) -> None:
        self.model = model
        self.base_url = base_url
        self.max_context_chars = max_context_chars
        self._client = AsyncOpenAI(
            base_url=base_url,
            # Local servers (vLLM, Ollama, llama.cpp) ignore the key; the client refuses to start without one.
            api_key=api_key or os.environ.get("OPENAI_API_KEY") or "not-needed",
            timeout=timeout,
            max_retries=0,
        )

    async def complete(self, request: LLMRequest) -> LLMResult:
        model, params = self._params(request)
        try:
            response = await self._client.chat.completions.create(**params)
        except openai.OpenAIError as exc:
            raise self._translate(exc, model) from exc

        choice = response.choices[0] if response.choices else None
        content = choice.message.content if choice is not None else None
        refusal = getattr(choice.message, "refusal", None) if choice is not None else None
        return self._result(request, model, content, refusal, response.model, response.usage)

    async def stream(self, request: LLMRequest) -> AsyncIterator[str | LLMResult]:
        """The completion with ``stream: true``: each content delta as the endpoint sends it, then the
        result, built from the whole text exactly as :meth:`complete` builds it."""
        model, params = self._params(request)
        parts: list[str] = []
        refusals: list[str] = []
        answered_by: str | None = None
        usage: Any = None
        try:
            chunks = await self._client.chat.completions.create(**params, stream=True)
            async with chunks:
                async for chunk in chunks:
                    answered_by = chunk.model or answered_by
                    usage = chunk.usage or usage
                    if not chunk.choices:
                        continue
                    delta = chunk.choices[0].delta
                    if getattr(delta, "refusal", None):
                        refusals.append(str(delta.refusal))
                    if delta.content:
                        parts.append(delta.content)
                        yield delta.content
        except openai.OpenAIError as exc:
            raise self._translate(exc, model) from exc
        content = "".join(parts) if parts else None
        yield self._result(request, model, content, "".join(refusals) or None, answered_by, usage)

    def _params(self, request: LLMRequest) -> tuple[str, dict[str, Any]]:
        """The model and the chat completion parameters of a request (its output schema checked)."""
        model = request.model or self.model
        schema = request.output_schema
        if schema is not None:
            check_output_schema(schema)
        params: dict[str, Any] = {"model": model, "messages": self.build_messages(request)}
        if request.max_tokens is not None:
            params["max_tokens"] = request.max_tokens
        if request.temperature is not None:
            params["temperature"] = request.temperature
        if schema is not None:
            params["response_format"] = {
                "type": "json_schema",
                # strict=False: strict mode rejects ordinary schemas (optional properties, open objects).
                "json_schema": {"name": "output", "schema": schema, "strict": False},
            }
        return model, params

    def _result(
        self,
        request: LLMRequest,
        model: str,
        content: str | None,
        refusal: str | None,
        answered_by: str | None,
        usage: Any,
    ) -> LLMResult:
        if content is None:
            raise StepError(
                f"model {model!r} returned no text" + (f" (refusal: {refusal!r})" if refusal else ""),
                retryable=True,
                code="LLM_INVALID_OUTPUT",
            )
        schema = request.output_schema
        output: Any = content if schema is None else _parse_structured(content, schema, model)
        counts: dict[str, int] = {}
        if usage is not None:
            counts = {
                "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens,
                "total_tokens": usage.total_tokens,
            }
        return LLMResult(output=output, model=answered_by or model, provider=self.name, usage=counts)

    def build_messages(self, request: LLMRequest) -> list[dict[str, Any]]:
        """System prompt, then the chat history, then the prompt with the data it is about."""
        messages: list[dict[str, Any]] = []
        if request.system:
            messages.append({"role": "system", "content": request.system})
        history = [dict(m) for m in request.messages or []]
        user = self._user_content(request)
        # The prompt is the history's last user turn when both are given: enrich it instead of repeating it.
        if history and history[-1].get("role") == "user" and history[-1].get("content") == request.prompt:
            history[-1]["content"] = user
            user = ""
        messages += history
        if user:
            messages.append({"role": "user", "content": user})
        return messages

    def _user_content(self, request: LLMRequest) -> str:
        parts = [request.prompt] if request.prompt else []
        if request.context:
            parts.append(
                f"{CONTEXT_HEADING}\n```json\n{_compact_json(request.context, self.max_context_chars)}\n```"
            )
        if request.input:
            # The prompt often speaks of the input (a budget, a currency) without spelling it out.
            parts.append(
                f"{INPUT_HEADING}\n```json\n{_compact_json(request.input, self.max_context_chars // 4)}\n```"
            )
        return "\n\n".join(parts)

    async def probe(self) -> None:
        try:
            await self._client.models.list()
        except openai.OpenAIError as exc:
            raise self._translate(exc, self.model) from exc

    async def close(self) -> None:
        await self._client.close()

    def _translate(self, exc: openai.OpenAIError, model: str) -> StepError:
        where = f"LLM endpoint {str(self._client.base_url)!r} (model {model!r})"
        if isinstance(exc, openai.APITimeoutError):  # before APIConnectionError: it is a subclass
            return StepError(
                f"{where} timed out; raise ORCH_LLM_TIMEOUT or use a faster model", code="LLM_TIMEOUT"
            )
        if isinstance(exc, openai.APIConnectionError):
            return StepError(
                f"{where} is unreachable: {exc}; check ORCH_LLM_BASE_URL", code="LLM_UNAVAILABLE"
            )
        if isinstance(exc, openai.APIStatusError):
            status = exc.status_code
            detail = f"{where} answered HTTP {status}: {_error_message(exc)}"
            if isinstance(exc, openai.RateLimitError):
                return StepError(detail, code="LLM_RATE_LIMITED")
            if status >= 500 or status in (408, 409):
                return StepError(detail, code="LLM_UNAVAILABLE")
            if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
                return StepError(f"{detail}; check ORCH_LLM_API_KEY", retryable=False, code="LLM_AUTH_FAILED")
            if isinstance(exc, openai.NotFoundError):
                return StepError(f"{detail}; check ORCH_LLM_MODEL", retryable=False, code="LLM_NOT_FOUND")
            return StepError(detail, retryable=False, code="LLM_BAD_REQUEST")
        # Anything else (a malformed response body, ...) is the endpoint misbehaving once: worth a retry.
        return StepError(f"{where} failed: {exc}", code="LLM_INVALID_OUTPUT")


def _parse_structured(content: str, schema: Mapping[str, Any], model: str) -> Any:
    text = content.strip()
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1).strip()
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = _embedded_json(text)
        if value is None:
            raise StepError(
                f"model {model!r} did not answer with JSON for the output schema: {_clip(content, 200)!r}",
                code="LLM_INVALID_OUTPUT",
            ) from None
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = sorted(validator.iter_errors(value), key=lambda e: (list(map(str, e.path)), e.message))
    if errors:
        first = errors[0]
        raise StepError(
            f"model {model!r} answered JSON that does not match the output schema at "
            f"{'/'.join(map(str, first.path)) or '<root>'}: {first.message}",
            code="LLM_INVALID_OUTPUT",
        )
    return value


def _embedded_json(text: str) -> Any:
    """The outermost ``{...}`` of an answer that wrapped its JSON in prose, if that parses."""
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        return None
    try:
        return json.loads(text[start : end + 1])
    except json.JSONDecodeError:
        return None


def _error_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, Mapping):
        error = body.get("error", body)
        if isinstance(error, Mapping) and error.get("message"):
            return str(error["message"])
    return exc.message


def _compact_json(value: Any, limit: int) -> str:
    """Compact JSON within ``limit`` characters, shortening long lists and strings before cutting blindly."""
    dump = _dumps(value)
    for items, chars in ((50, 2000), (20, 1000), (10, 500), (5, 200), (3, 100), (1, 60)):
        if len(dump) <= limit:
            return dump
        dump = _dumps(_shrink(value, items, chars))
    return dump if len(dump) <= limit else dump[: limit - 14] + "…(truncated)"


def _shrink(value: Any, items: int, chars: int) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _shrink(v, items, chars) for k, v in value.items()}
    if isinstance(value, list):
        head = [_shrink(v, items, chars) for v in value[:items]]
        return head + ([f"…{len(value) - items} more items"] if len(value) > items else [])
    if isinstance(value, str) and len(value) > chars:
        return value[:chars] + "…"
    return value


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "…"

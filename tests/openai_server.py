"""A scripted OpenAI-compatible HTTP server: the one test double for the LLM, standing at the far edge.

Everything nearer is real: the provider talks to it through the official ``openai`` client over real HTTP,
so request building, response parsing and error translation are exercised exactly as against a real
endpoint. Replies are scripted per test; what the client sent is recorded for assertions.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from http import HTTPStatus
from typing import Any, TypeAlias

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

# A reply is assistant text, a JSON object (sent as the content), an HTTP error status, or a function of
# the request body returning one of those (to assert on the request, or to sleep and provoke a timeout).
Reply: TypeAlias = "str | dict[str, Any] | int | Callable[[dict[str, Any]], str | dict[str, Any] | int]"

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_exceeded",
}


class ScriptedOpenAI:
    """Answers ``POST /v1/chat/completions`` from a script, then from ``default``; ``GET /v1/models``."""

    def __init__(self, *, default: Reply | None = None, models: Sequence[str] = ("scripted-model",)) -> None:
        self.default = default
        self.models = list(models)
        self.requests: list[dict[str, Any]] = []
        self._script: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._base_url: str | None = None
        self._counter = 0

    # ------------------------------------------------------------------------------------------ control

    @property
    def base_url(self) -> str:
        if self._base_url is None:
            raise RuntimeError("ScriptedOpenAI is not started; call start() first")
        return self._base_url

    @property
    def last_request(self) -> dict[str, Any]:
        with self._lock:
            if not self.requests:
                raise AssertionError("the scripted OpenAI server received no chat completion request")
            return self.requests[-1]

    def start(self) -> str:
        """Serve on a free loopback port (chosen by the OS, so no race) and return the ``/v1`` base URL."""
        if self._base_url is not None:
            return self._base_url
        config = uvicorn.Config(self._app(), host="127.0.0.1", port=0, log_level="warning", lifespan="off")
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, name="scripted-openai", daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the scripted OpenAI server did not start")
            time.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        self._server, self._thread = server, thread
        self._base_url = f"http://127.0.0.1:{port}/v1"
        return self._base_url

    def stop(self) -> None:
        if self._server is None or self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._server = self._thread = self._base_url = None

    def script(self, *replies: Reply) -> None:
        """Queue replies, consumed one per chat completion request, in order."""
        with self._lock:
            self._script.extend(replies)

    def reset(self) -> None:
        with self._lock:
            self._script.clear()
            self.requests.clear()

    # ------------------------------------------------------------------------------------------- server

    def _app(self) -> FastAPI:
        app = FastAPI()

        # Plain ``def`` handlers run in a worker thread, so a reply that sleeps does not stall the server.
        @app.post("/v1/chat/completions", response_model=None)
        def chat_completions(body: dict[str, Any]) -> JSONResponse | StreamingResponse:
            return self._complete(body)

        @app.get("/v1/models")
        def list_models() -> dict[str, Any]:
            return {
                "object": "list",
                "data": [
                    {"id": m, "object": "model", "created": 0, "owned_by": "scripted"} for m in self.models
                ],
            }

        @app.exception_handler(404)
        async def not_found(request: Request, exc: Exception) -> JSONResponse:
            return _error(404, f"no route {request.method} {request.url.path} on the scripted server")

        return app

    def _complete(self, body: dict[str, Any]) -> JSONResponse | StreamingResponse:
        with self._lock:
            self.requests.append(body)
            reply = self._script.popleft() if self._script else self.default
            self._counter += 1
            number = self._counter
        if reply is None:
            reply = _echo
        while callable(reply):
            reply = reply(body)
        if isinstance(reply, int):
            return _error(reply, f"scripted error {reply}")
        content = reply if isinstance(reply, str) else json.dumps(reply)
        prompt_words = sum(len(str(m.get("content") or "").split()) for m in body.get("messages") or [])
        completion_words = len(content.split())
        if body.get("stream"):
            return _streamed(body, number, content, self.models[0], (prompt_words, completion_words))
        return JSONResponse(
            {
                "id": f"chatcmpl-scripted-{number}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model") or self.models[0],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content},
                        "finish_reason": "stop",
                        "logprobs": None,
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_words,
                    "completion_tokens": completion_words,
                    "total_tokens": prompt_words + completion_words,
                },
            }
        )


# Characters per streamed content delta: several deltas for any reply longer than a few words.
STREAM_CHUNK_CHARS = 8


def _streamed(
    body: dict[str, Any], number: int, content: str, default_model: str, words: tuple[int, int]
) -> StreamingResponse:
    """The reply as the real API streams it: ``chat.completion.chunk`` objects as server-sent events (the
    role first, then the content in pieces, then the finish reason, then the usage when
    ``stream_options.include_usage`` asks for it), ended by ``data: [DONE]``."""
    base = {
        "id": f"chatcmpl-scripted-{number}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": body.get("model") or default_model,
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]}

    events = [chunk({"role": "assistant", "content": ""})]
    events += [
        chunk({"content": content[i : i + STREAM_CHUNK_CHARS]})
        for i in range(0, len(content), STREAM_CHUNK_CHARS)
    ]
    events.append(chunk({}, "stop"))
    if (body.get("stream_options") or {}).get("include_usage"):
        prompt_words, completion_words = words
        usage = {
            "prompt_tokens": prompt_words,
            "completion_tokens": completion_words,
            "total_tokens": prompt_words + completion_words,
        }
        events.append({**base, "choices": [], "usage": usage})

    def lines() -> Iterator[str]:
        for event in events:
            yield f"data: {json.dumps(event)}\n\n"
        yield "data: [DONE]\n\n"

    return StreamingResponse(lines(), media_type="text/event-stream")


def _echo(body: dict[str, Any]) -> str:
    users = [m for m in body.get("messages") or [] if m.get("role") == "user"]
    last = str(users[-1].get("content") or "") if users else ""
    return f"Echo: {last[:200]}"


def _error(status: int, message: str) -> JSONResponse:
    """An error body in OpenAI's format, which the client turns into its typed exceptions."""
    kind = _ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    return JSONResponse(
        {"error": {"message": f"{message} ({phrase})", "type": kind, "param": None, "code": None}},
        status_code=status,
    )

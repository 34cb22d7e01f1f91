"""OpenAI-compatible test server fixtures.

One real HTTP server per session (starting uvicorn per test would cost more than the tests); each test
gets it through ``openai_stub``, which empties the script and the recorded requests first.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.openai_server import ScriptedOpenAI


@pytest.fixture(scope="session")
def openai_server() -> Iterator[ScriptedOpenAI]:
    server = ScriptedOpenAI()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def openai_stub(openai_server: ScriptedOpenAI) -> Iterator[ScriptedOpenAI]:
    openai_server.reset()
    yield openai_server
    openai_server.reset()

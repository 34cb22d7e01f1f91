"""Shared fixtures. Services the tests need (PostgreSQL, an OpenAI-compatible server, MCP servers, Ray)
are started here or by the fixture modules below, never assumed to be running."""

pytest_plugins = ["tests.fixtures_postgres", "tests.fixtures_openai", "tests.fixtures_server"]

"""OpenAI-compatible test server fixtures (filled in by the LLM work)."""

"""Agents: the registry of agent and connector files, long-lived agent actors with health checks,
the connectors (MCP, SQL, HTTP, LLM) and LLM providers behind them, the step runner that carries a
step to its agent, and the bundled demo servers. Imports the core and the settings; never the
runtime, the store or the server.
"""

"""The ``orchestrate`` client: runs, follows and inspects executions on a server over its HTTP API.

It imports nothing of the server (``lint-imports`` holds that): the API is the only contract, so the
client behaves as any other HTTP client would and runs where only this package's dependencies are.

Modules: :mod:`~orchestrator.client.http` (the httpx client and its errors), :mod:`~.sse` (server-sent
events), :mod:`~.follow` (an execution's events, streamed or polled), :mod:`~.model` (what a follower
shows), :mod:`~.live` (the live view), :mod:`~.render` (human output), :mod:`~.inputs` (files and
arguments), :mod:`~.commands` (the typer commands, added to ``orchestrate`` by :func:`register`).
"""

from orchestrator.client.commands import register
from orchestrator.client.follow import StepProgress, follow
from orchestrator.client.http import (
    DEFAULT_SERVER,
    ApiError,
    Client,
    ClientError,
    ConnectionLost,
    InputError,
    ServerUnreachable,
)
from orchestrator.client.model import ExecutionModel

__all__ = [
    "DEFAULT_SERVER",
    "ApiError",
    "Client",
    "ClientError",
    "ConnectionLost",
    "ExecutionModel",
    "InputError",
    "ServerUnreachable",
    "StepProgress",
    "follow",
    "register",
]

"""The command line every bundled demo MCP server shares: stdio by default, or streamable HTTP."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Any


def demo_server_parser(prog: str, description: str, *, default_port: int) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument(
        "--transport",
        choices=["stdio", "streamable-http", "streamable_http", "http"],
        default="stdio",
        help="stdio (default) or streamable-http",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=default_port)
    parser.add_argument("--path", default="/mcp", help="HTTP endpoint path (default /mcp)")
    parser.add_argument(
        "--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
    )
    return parser


def parse_demo_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    args = parser.parse_args(argv)
    if args.transport != "stdio":
        args.transport = "streamable-http"
    return args


def run_demo_server(args: argparse.Namespace, build: Callable[[], Any]) -> None:
    server = build()
    if args.transport == "stdio":
        server.run("stdio")
    else:
        server.run("streamable-http", host=args.host, port=args.port, streamable_http_path=args.path)

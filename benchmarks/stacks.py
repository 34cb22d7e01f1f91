#!/usr/bin/env python
"""Summarise py-spy collapsed stacks (``bench_workflows.py --profile DIR``): where each process spends CPU.

For every file: the total sample count, the functions with the most *self* samples, and the *inclusive*
share of the frames that matter on the request path (FastAPI, validation, decide, store, pickling...).

    python benchmarks/stacks.py DIR [--top 25] [--match parse_workflow --match decide ...]
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

# inclusive buckets reported for every process: label -> regular expression over one frame
BUCKETS: dict[str, str] = {
    "FastAPI route execute (v1)": r"^execute \(.*orchestrator/api/v1\.py",
    "  parse_workflow (validation)": r"^parse_workflow ",
    "    templates.referenced_steps (Jinja parse)": r"^referenced_steps ",
    "  Engine.start": r"^start \(.*orchestrator/engine\.py",
    "  v1_execution (render)": r"^v1_execution ",
    "FastAPI/Starlette request handling": r"\(.*(fastapi|starlette)/",
    "pydantic": r"\(.*pydantic",
    "Serve replica machinery": r"\(.*ray/serve/_private/(replica|proxy|router|http_util)",
    "Ray core (serialization, calls)": r"\(.*ray/_private/(serialization|worker)\.py",
    "cloudpickle": r"\(.*cloudpickle",
    "ExecutionHost.start": r"^start \(.*runtime/host\.py",
    "  Execution.apply": r"^apply \(.*runtime/execution\.py",
    "    decide": r"^decide \(.*orchestrator/decide\.py",
    "      templates.render_value": r"^render_value ",
    "    store.append (SQLite)": r"^append \(.*store/_sqlite\.py",
    "      SQLite write transaction (_write)": r"^_write \(.*store/_sqlite\.py",
    "    projection/to_record": r"^(project|to_record) ",
    "logging": r"\(.*/logging/",
    "asyncio event loop": r"\(.*asyncio/",
}


def read(path: Path) -> Counter[tuple[str, ...]]:
    stacks: Counter[tuple[str, ...]] = Counter()
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks[tuple(stack.split(";"))] += int(count)
    return stacks


def summarise(path: Path, top: int, extra: list[str]) -> str:
    stacks = read(path)
    total = sum(stacks.values())
    if not total:
        return f"== {path.name}: no samples"
    self_time: Counter[str] = Counter()
    for stack, count in stacks.items():
        self_time[re.sub(r":\d+\)$", ")", stack[-1])] += count
    buckets = {**BUCKETS, **{name: re.escape(name) for name in extra}}
    inclusive: dict[str, int] = {}
    for label, pattern in buckets.items():
        regex = re.compile(pattern)
        inclusive[label] = sum(
            count for stack, count in stacks.items() if any(regex.search(f) for f in stack)
        )
    lines = [f"== {path.name}: {total} samples"]
    lines.append("  inclusive (share of this process's CPU samples):")
    for label, count in inclusive.items():
        if count:
            lines.append(f"    {count / total:6.1%}  {label}")
    lines.append(f"  top {top} self:")
    for frame, count in self_time.most_common(top):
        lines.append(f"    {count / total:6.1%}  {frame[:150]}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", type=Path, help="files or directories of collapsed stacks")
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--match", action="append", default=[], help="extra frame substring to report")
    args = parser.parse_args()
    files: list[Path] = []
    for path in args.paths:
        files += sorted(path.rglob("*.txt")) if path.is_dir() else [path]
    for path in files:
        print(summarise(path, args.top, args.match))
        print()


if __name__ == "__main__":
    main()

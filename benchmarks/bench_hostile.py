"""Hostile barrage: does the server keep serving others while it answers hostile requests?

Starts the real server (as the tests do, ``benchmarks/_server.py``), then:

1. **Idle**: ``GET /health`` and a 1-step workflow, sequentially, p50/p99.
2. **Barrage**: several clients send hostile payloads in a loop (template arithmetic that Jinja would
   constant-fold, huge repetition and padding at run time, an unencodable integer, validation bombs:
   a wide parallel with as many dependents, a long reverse chain, deep nesting, an oversized template,
   a chunked body over the size limit, an output over the step output limit) while the same probe
   measures ``/health`` and the 1-step workflow again.

Targets (the hardening issue): probe p99 during the barrage under 5x idle, no 5xx at all, and every
hostile request answered with a 4xx or a failed execution within 5 s.

Every loop is bounded by a count and a time budget; traffic goes to loopback only. Usage::

    python benchmarks/bench_hostile.py                 # ~2 minutes
    python benchmarks/bench_hostile.py --seconds 60 --clients 6 --json hostile.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._server import running_server

USER = {"id": "bench"}
EXECUTE = "/api/v1/workflows/execute"
HOSTILE_DEADLINE_S = 5.0
LEGAL = {"reverse chain"}  # expensive, but within the limits


def workflow(steps: list[dict[str, Any]], *, name: str = "hostile") -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"steps": steps}}


def execute(steps: list[dict[str, Any]], input: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"workflow": workflow(steps), "input": input or {}, "user": USER, "timeout": "5s"}


def transform(name: str, value: Any, depends_on: list[str] | None = None) -> dict[str, Any]:
    step: dict[str, Any] = {"name": name, "type": "transform", "value": value}
    if depends_on:
        step["depends_on"] = depends_on
    return step


def _nested_body(depth: int) -> bytes:
    """``depth`` parallels inside each other, written as text (json.dumps itself recurses)."""
    step = json.dumps(transform("leaf", 1))
    for level in range(depth):
        step = f'{{"name": "p{level}", "type": "parallel", "steps": [{step}]}}'
    template = json.dumps(execute([{"PLACEHOLDER": 1}]))
    return template.replace('{"PLACEHOLDER": 1}', step).encode()


def hostile_payloads() -> Iterator[tuple[str, bytes, dict[str, str]]]:
    """(name, body, extra headers) of each hostile request, built once."""

    def body(value: dict[str, Any]) -> bytes:
        return json.dumps(value).encode()

    wide = 2000
    yield "constant power", body(execute([transform("x", "{{ (9**(9**8)) > 1 }}")])), {}
    yield (
        "runtime power",
        body(execute([transform("x", "{{ input.a ** input.b }}")], {"a": 9, "b": 99999999})),
        {},
    )
    yield (
        "runtime repetition",
        body(execute([transform("x", "{{ 'a' * input.n }}")], {"n": 10**10})),
        {},
    )
    yield "padding filter", body(execute([transform("x", "{{ 'a' | center(input.n) }}")], {"n": 10**10})), {}
    yield (
        "range list",
        body(execute([transform("x", "{{ range(input.n) | list * 1000 }}")], {"n": 10**7})),
        {},
    )
    yield (
        "unencodable integer",
        body(execute([transform("x", "{{ input.a ** input.b }}")], {"a": 10, "b": 5000})),
        {},
    )
    yield (
        "wide parallel",
        body(
            execute(
                [
                    {
                        "name": "fan",
                        "type": "parallel",
                        "steps": [transform(f"c{i}", i) for i in range(wide)],
                    },
                    *[transform(f"d{i}", 1, [f"c{i}"]) for i in range(wide)],
                ]
            )
        ),
        {},
    )
    chain = [transform(f"s{i}", 1, [f"s{i + 1}"]) for i in range(1499)] + [transform("s1499", 1)]
    yield "reverse chain", body(execute(chain)), {}
    yield "deep nesting", _nested_body(600), {}
    yield "oversized template", body(execute([transform("x", "{{ 1 }}" + "a" * 70_000)])), {}
    yield "chunked body", b"", {"chunked": "1"}


@dataclass
class Hostile:
    answered: int = 0
    late: int = 0
    server_errors: int = 0
    unexpected: list[str] = field(default_factory=list)
    worst_s: float = 0.0


def _chunks(size: int) -> Iterator[bytes]:
    sent = 0
    piece = b"x" * 65536
    while sent < size:
        yield piece
        sent += len(piece)


def fire(client: httpx.Client, name: str, payload: bytes, headers: dict[str, str], tally: Hostile) -> None:
    began = time.perf_counter()
    try:
        if headers.get("chunked"):
            response = client.post(
                EXECUTE, content=_chunks(4 * 1024 * 1024), headers={"Content-Type": "application/json"}
            )
        else:
            response = client.post(EXECUTE, content=payload, headers={"Content-Type": "application/json"})
        status = response.status_code
        finished = response.json().get("status") if status == 200 else None
        # a long chain is large but legal (within ORCH_MAX_STEPS): it may complete
        ok = 400 <= status < 500 or finished == "failed" or (name in LEGAL and finished == "completed")
        if status >= 500:
            tally.server_errors += 1
        if not ok:
            tally.unexpected.append(f"{name}: HTTP {status} {response.text[:120]}")
    except httpx.HTTPError as exc:
        tally.unexpected.append(f"{name}: {type(exc).__name__}")
    elapsed = time.perf_counter() - began
    tally.answered += 1
    tally.worst_s = max(tally.worst_s, elapsed)
    if elapsed > HOSTILE_DEADLINE_S:
        tally.late += 1


def probe(base_url: str, seconds: float, count: int) -> dict[str, list[float]]:
    """Sequential /health and 1-step workflow latencies."""
    found: dict[str, list[float]] = {"health": [], "one_step": []}
    one_step = execute([transform("s1", "{{ input.x + 1 }}")], {"x": 1})
    deadline = time.perf_counter() + seconds
    with httpx.Client(base_url=base_url, timeout=30) as client:
        for _ in range(count):
            if time.perf_counter() > deadline:
                break
            began = time.perf_counter()
            client.get("/health").raise_for_status()
            found["health"].append(time.perf_counter() - began)
            began = time.perf_counter()
            response = client.post(EXECUTE, json=one_step)
            response.raise_for_status()
            found["one_step"].append(time.perf_counter() - began)
    return found


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000


def report(name: str, values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50_ms": statistics.median(values) * 1000 if values else float("nan"),
        "p99_ms": pct(values, 0.99),
    }


def barrage(base_url: str, clients: int, seconds: float, stop: threading.Event, tally: Hostile) -> None:
    payloads = list(hostile_payloads())

    def worker(offset: int) -> None:
        with httpx.Client(base_url=base_url, timeout=60) as client:
            index = offset
            deadline = time.perf_counter() + seconds
            while not stop.is_set() and time.perf_counter() < deadline:
                name, payload, headers = payloads[index % len(payloads)]
                fire(client, name, payload, headers, tally)
                index += 1

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 120)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=45.0, help="barrage duration")
    parser.add_argument("--clients", type=int, default=4, help="hostile clients")
    parser.add_argument("--probes", type=int, default=300, help="max probe rounds per phase")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    with running_server() as server:
        probe(server.base_url, 5, 20)  # warm-up
        idle = probe(server.base_url, args.seconds, args.probes)
        tally = Hostile()
        stop = threading.Event()
        attack = threading.Thread(
            target=barrage, args=(server.base_url, args.clients, args.seconds, stop, tally), daemon=True
        )
        attack.start()
        time.sleep(1.0)
        during = probe(server.base_url, args.seconds, args.probes)
        stop.set()
        attack.join(180)

    if tally.answered == 0:
        print("the barrage sent nothing: see the traceback above", file=sys.stderr)
        return 1
    result: dict[str, Any] = {
        "idle": {name: report(name, values) for name, values in idle.items()},
        "barrage": {name: report(name, values) for name, values in during.items()},
        "hostile": {
            "answered": tally.answered,
            "server_errors": tally.server_errors,
            "later_than_5s": tally.late,
            "worst_s": round(tally.worst_s, 3),
            "unexpected": tally.unexpected[:20],
        },
    }
    ratios: dict[str, float] = {}
    for name in ("health", "one_step"):
        ratios[name] = result["barrage"][name]["p99_ms"] / result["idle"][name]["p99_ms"]
    result["p99_ratio"] = ratios
    verdict: Callable[[bool], str] = lambda ok: "met" if ok else "NOT met"  # noqa: E731
    print(json.dumps(result, indent=2))
    for name, ratio in ratios.items():
        print(
            f"{name}: p99 idle {result['idle'][name]['p99_ms']:.1f} ms, barrage "
            f"{result['barrage'][name]['p99_ms']:.1f} ms, ratio {ratio:.2f} (< 5x: {verdict(ratio < 5)})"
        )
    print(
        f"hostile answered {tally.answered}, 5xx {tally.server_errors} ({verdict(tally.server_errors == 0)}), "
        f"later than 5 s {tally.late} ({verdict(tally.late == 0)}), unexpected {len(tally.unexpected)}"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

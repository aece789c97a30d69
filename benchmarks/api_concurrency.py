"""API agents: do concurrent matches overlap their calls to a slow OpenAI-compatible server?

A loopback OpenAI-compatible server (tests/plugins/servers.py, in its own process) answers every
chat completion after `--latency` (50 ms). Two `openai-compatible` players (the real `openai`
SDK, `concurrency` = the tournament's) debate with `simultaneous = false` and 2 speeches each,
so every match makes 4 sequential calls; the judge is `random` (no call). With `--concurrency`
matches in flight the ideal wall time is

    ideal = matches * calls_per_match * latency / concurrency   (200 * 4 * 0.05 / 32 = 1.25 s)

A match is 4 calls in a row, so 200 matches on 32 slots take 7 rounds (the formula counts
6.25): no engine gets below 7 * 4 * latency = 1.4 s, a ratio of 1.12.

The figure is a ratio measured in the same invocation: the wall of `Tournament.run` with the API
agents (scheduling, SDK, HTTP, ledger writes and ratings included; a fresh ledger each run) over
the wall of the same schedule played by two `deterministic` players that sleep the same latency
per call (no HTTP, no SDK), the two interleaved run by run, median and range over `--runs`. It is
what the API agent costs over a model-free agent on this machine now, whatever the load; a fixed
wall / ideal threshold flipped with the load alone. Target 1.10. Given for reading: each side's
wall / ideal (median), the old target being 1.3 for the API side.

    python benchmarks/api_concurrency.py [--items 25] [--repetitions 2] [--concurrency 32] \
        [--latency 0.05] [--runs 3]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import (
    SEQUENTIAL_DEBATE,
    SLEEPING_PLAYERS,
    compare,
    emit,
    log,
    machine_load,
    run_tournament,
)

SERVER = Path(__file__).resolve().parent.parent / "tests" / "plugins" / "servers.py"

TARGET = 1.10  # wall(API agents) / wall(sleeping fakes), median of the run-by-run ratios
FORMULA_TARGET = 1.3  # wall(API agents) / ideal, for reading
SPEECHES = 2
CALLS_PER_MATCH = 2 * SPEECHES

API_PLAYERS = """
[[players]]
name = "api-a"
agent = "openai-compatible"
options = {{ model = "fake-a", base_url = "{url}", concurrency = {concurrency} }}

[[players]]
name = "api-b"
agent = "openai-compatible"
options = {{ model = "fake-b", base_url = "{url}", concurrency = {concurrency} }}
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--items", type=int, default=25, help="dataset limit (bundled has 48)")
    ap.add_argument("--repetitions", type=int, default=2)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--latency", type=float, default=0.05, help="server seconds per call")
    ap.add_argument("--runs", type=int, default=3, help="runs of each side, interleaved")
    args = ap.parse_args()

    server = subprocess.Popen(
        [
            sys.executable,
            str(SERVER),
            "--latency",
            str(args.latency),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        port = int(server.stdout.readline())
        head = {
            "name": "bench-api",
            "concurrency": args.concurrency,
            "repetitions": args.repetitions,
            "speeches": SPEECHES,
            "items": args.items,
        }
        url = f"http://127.0.0.1:{port}/v1"
        players = API_PLAYERS.format(url=url, concurrency=args.concurrency)
        api = SEQUENTIAL_DEBATE.format(players=players, **head)
        floor = SEQUENTIAL_DEBATE.format(
            players=SLEEPING_PLAYERS.format(delay=args.latency), **head
        )
        results: list = []
        floors: list = []

        def sleeping() -> float:
            floors.append(run_tournament(floor))
            return floors[-1].seconds

        def api_agents() -> float:
            results.append(run_tournament(api))
            log(f"  {results[-1].matches} matches, failed {results[-1].failed}")
            return results[-1].seconds

        figures = compare(
            {"sleeping": sleeping, "api": api_agents}, max(3, args.runs), baseline="sleeping"
        )
    finally:
        server.terminate()
        server.wait()
    figures.pop("values")
    res = results[-1]
    ideal = res.matches * CALLS_PER_MATCH * args.latency / args.concurrency
    vs_sleeping = figures["api"]["vs_baseline"]
    log(f"API agents over sleeping fakes: {vs_sleeping['median']}x {vs_sleeping['range']}")
    emit(
        {
            "benchmark": "api_concurrency",
            "load": machine_load(),
            "agent": (
                "openai-compatible (openai SDK, transport auto: aiohttp) -> loopback server in "
                "another process"
            ),
            "matches": res.matches,
            "calls_per_match": CALLS_PER_MATCH,
            "latency_s": args.latency,
            "concurrency": args.concurrency,
            "formula": (
                f"ideal = matches * calls_per_match * latency / concurrency = {res.matches} * "
                f"{CALLS_PER_MATCH} * {args.latency} / {args.concurrency}"
            ),
            "wall_s": figures,
            # The figure: the API agents' wall over the sleeping fakes' on the same schedule.
            "vs_sleeping": vs_sleeping,
            "target": TARGET,
            "pass": vs_sleeping["median"] <= TARGET and all(r.failed == 0 for r in results),
            "ideal_s": round(ideal, 3),
            "vs_formula": round(figures["api"]["median"] / ideal, 3),
            "sleeping_vs_formula": round(figures["sleeping"]["median"] / ideal, 3),
            "formula_target": FORMULA_TARGET,
            "done": res.done,
            "failed": res.failed,
            "done_ok": all(r.done == r.matches for r in results + floors),
        }
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""API agents: do concurrent matches overlap their calls to a slow OpenAI-compatible server?

A loopback OpenAI-compatible server (tests/plugins/servers.py, in its own process) answers every
chat completion after `--latency` (50 ms). Two `openai-compatible` players (the real `openai`
SDK, `concurrency` = the tournament's) debate with `simultaneous = false` and 2 speeches each,
so every match makes 4 sequential calls; the judge is `random` (no call). With `--concurrency`
matches in flight the ideal wall time is

    ideal = matches * calls_per_match * latency / concurrency   (200 * 4 * 0.05 / 32 = 1.25 s)

and the figure is wall / ideal, the wall being the median of `--runs` runs of `Tournament.run`
on a fresh ledger (scheduling, SDK overhead, ledger writes and ratings included). Target: 1.3.
A match is 4 calls in a row, so 200 matches on 32 slots take 7 rounds (the formula counts 6.25):
no engine gets below 7 * 4 * latency = 1.4 s, a ratio of 1.12.

For reference the same schedule is also played by two `deterministic` players that sleep the
same latency per call (no HTTP, no SDK): `floor_ratio` is what the engine alone reaches on this
machine, and `sdk_overhead` = wall / floor wall - 1 is what the API agent adds on top.

    python benchmarks/api_concurrency.py [--items 25] [--repetitions 2] [--concurrency 32] \
        [--latency 0.05] [--runs 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import SEQUENTIAL_DEBATE, SLEEPING_PLAYERS, emit, log, run_tournament

SERVER = Path(__file__).resolve().parent.parent / "tests" / "plugins" / "servers.py"

TARGET = 1.3
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
    ap.add_argument("--runs", type=int, default=3, help="runs; the wall is their median")
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
        results, floors = [], []
        for i in range(max(1, args.runs)):
            res = run_tournament(api)
            results.append(res)
            floors.append(run_tournament(floor))
            log(
                f"run {i + 1}: {res.matches} matches, wall {res.seconds:.3f}s (engine floor "
                f"{floors[-1].seconds:.3f}s), failed {res.failed}"
            )
    finally:
        server.terminate()
        server.wait()
    walls = [r.seconds for r in results]
    wall = statistics.median(walls)
    ideal = res.matches * CALLS_PER_MATCH * args.latency / args.concurrency
    ratio = wall / ideal
    floor_wall = statistics.median(f.seconds for f in floors)
    log(f"median wall {wall:.3f}s, ideal {ideal:.3f}s, ratio {ratio:.3f}")
    emit(
        {
            "benchmark": "api_concurrency",
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
            "wall_s": round(wall, 3),
            "walls_s": [round(w, 3) for w in walls],
            "ideal_s": round(ideal, 3),
            "ratio": round(ratio, 3),
            "floor_wall_s": round(floor_wall, 3),
            "floor_ratio": round(floor_wall / ideal, 3),
            "sdk_overhead": round(wall / floor_wall - 1, 3),
            "target": TARGET,
            "pass": ratio <= TARGET and all(r.failed == 0 for r in results),
            "done": res.done,
            "failed": res.failed,
            "done_ok": all(r.done == r.matches for r in results),
        }
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

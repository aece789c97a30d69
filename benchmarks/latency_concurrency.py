"""Latency-bound concurrency: does the engine overlap slow agent calls as well as it should?

Two deterministic players that sleep `--delay` s per call, the `random` judge, debate with
`simultaneous = false` and 2 speeches each, so every match makes 4 sequential agent calls. With
`--concurrency` matches in flight the ideal wall time is

    ideal = matches * calls_per_match * delay / concurrency   (200 * 4 * 0.05 / 50 = 0.8 s)

and the figure is wall / ideal (target <= 1.25), wall being the median of `--runs` runs, each on a
fresh ledger; the timed `Tournament.run` includes scheduling into the ledger and the last write.

Scheduling: 2 players -> 2 seat orders x 2 answer variants = 4 matches per item and repetition; the
bundled set has only 48 items, so 200 matches are 25 items x 2 repetitions.

    python benchmarks/latency_concurrency.py [--items 25] [--repetitions 2] [--concurrency 50] \
        [--delay 0.05] [--runs 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import (
    SEQUENTIAL_DEBATE,
    SLEEPING_PLAYERS,
    emit,
    log,
    print_profile,
    run_tournament,
)

TARGET = 1.25  # wall / ideal
SPEECHES = 2
CALLS_PER_MATCH = 2 * SPEECHES  # two debaters, sequential


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--items", type=int, default=25, help="dataset limit (bundled has 48)")
    ap.add_argument("--repetitions", type=int, default=2)
    ap.add_argument("--concurrency", type=int, default=50)
    ap.add_argument("--delay", type=float, default=0.05, help="seconds per agent call")
    ap.add_argument("--runs", type=int, default=3, help="runs; the wall is their median")
    ap.add_argument("--profile", action="store_true", help="also profile the first run (stderr)")
    args = ap.parse_args()

    toml = SEQUENTIAL_DEBATE.format(
        name="bench-latency",
        concurrency=args.concurrency,
        repetitions=args.repetitions,
        speeches=SPEECHES,
        items=args.items,
        players=SLEEPING_PLAYERS.format(delay=args.delay),
    )
    prof = str(Path(tempfile.gettempdir()) / "latency_concurrency.prof") if args.profile else None
    results = []
    for i in range(max(1, args.runs)):
        res = run_tournament(toml, profile_to=prof if i == 0 else None)
        if prof and i == 0:
            print_profile(prof)
        results.append(res)
        log(f"run {i + 1}: {res.matches} matches, wall {res.seconds:.3f}s")
    walls = [r.seconds for r in results]
    wall = statistics.median(walls)
    ideal = res.matches * CALLS_PER_MATCH * args.delay / args.concurrency
    ratio = wall / ideal
    log(f"median wall {wall:.3f}s, ideal {ideal:.3f}s, ratio {ratio:.3f}")
    emit(
        {
            "benchmark": "latency_concurrency",
            "matches": res.matches,
            "calls_per_match": CALLS_PER_MATCH,
            "delay_s": args.delay,
            "concurrency": args.concurrency,
            "formula": (
                f"ideal = matches * calls_per_match * delay / concurrency = {res.matches} * "
                f"{CALLS_PER_MATCH} * {args.delay} / {args.concurrency}"
            ),
            "wall_s": round(wall, 3),
            "walls_s": [round(w, 3) for w in walls],
            "ideal_s": round(ideal, 3),
            "ratio": round(ratio, 3),
            "target": TARGET,
            "pass": ratio <= TARGET,
            "done": res.done,
            "failed": res.failed,
            "done_ok": all(r.done == r.matches for r in results),
        }
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

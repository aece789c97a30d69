"""Latency-bound concurrency: does the engine overlap slow agent calls as well as it should?

Two deterministic players that sleep `--delay` s per call, the `random` judge, debate with
`simultaneous = false` and 2 speeches each, so every match makes 4 sequential agent calls. With
`--concurrency` matches in flight the ideal wall time is

    ideal = matches * calls_per_match * delay / concurrency   (200 * 4 * 0.05 / 50 = 0.8 s)

and the figure is Arena's wall over the wall of that ideal schedule run bare (`ideal_schedule`:
the same sleeps, `concurrency` chains at a time, on one event loop), the two interleaved run by
run, median and range over `--runs`, each Arena run on a fresh ledger (the timed
`Tournament.run` includes scheduling into the ledger and the last write). The formula's ratio is
given too; the target (1.25) is for reading, not asserted.

Scheduling: 2 players -> 2 seat orders x 2 answer variants = 4 matches per item and repetition; the
bundled set has only 48 items, so 200 matches are 25 items x 2 repetitions.

    python benchmarks/latency_concurrency.py [--items 25] [--repetitions 2] [--concurrency 50] \
        [--delay 0.05] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import (
    SEQUENTIAL_DEBATE,
    SLEEPING_PLAYERS,
    compare,
    emit,
    machine_load,
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
    results: list = []

    def arena() -> float:
        res = run_tournament(toml, profile_to=prof if args.profile and not results else None)
        results.append(res)
        return res.seconds

    counted: list[int] = []

    def ideal() -> float:
        n = results[-1].matches if results else args.items * 4 * args.repetitions
        counted.append(n)
        return ideal_schedule(n, CALLS_PER_MATCH, args.delay, args.concurrency)

    figures = compare({"ideal": ideal, "arena": arena}, max(1, args.runs), baseline="ideal")
    figures.pop("values")
    if prof:
        print_profile(prof)
    res = results[-1]
    formula = res.matches * CALLS_PER_MATCH * args.delay / args.concurrency
    emit(
        {
            "benchmark": "latency_concurrency",
            "load": machine_load(),
            "matches": res.matches,
            "calls_per_match": CALLS_PER_MATCH,
            "delay_s": args.delay,
            "concurrency": args.concurrency,
            "formula": (
                f"ideal = matches * calls_per_match * delay / concurrency = {res.matches} * "
                f"{CALLS_PER_MATCH} * {args.delay} / {args.concurrency} = {formula:.3f} s"
            ),
            "wall_s": figures,
            # The figure: Arena's wall over the ideal schedule's, measured beside it.
            "vs_ideal_schedule": figures["arena"]["vs_baseline"],
            "vs_formula": round(figures["arena"]["median"] / formula, 3),
            "target": TARGET,
            "done_ok": all(r.done == r.matches for r in results),
        }
    )
    return 0


def ideal_schedule(matches: int, calls: int, delay: float, concurrency: int) -> float:
    """Wall seconds of the bare schedule: `matches` chains of `calls` sleeps of `delay`,
    `concurrency` chains at a time, on one event loop. What the engine could reach at best on
    this machine now (timer resolution and loop passes included), measured, not assumed."""

    async def run() -> None:
        todo = iter(range(matches))

        async def lane() -> None:
            for _ in todo:
                for _ in range(calls):
                    await asyncio.sleep(delay)

        await asyncio.gather(*(lane() for _ in range(concurrency)))

    t0 = time.perf_counter()
    asyncio.run(run())
    return time.perf_counter() - t0


if __name__ == "__main__":
    raise SystemExit(main())

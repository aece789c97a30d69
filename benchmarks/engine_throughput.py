"""Engine throughput: matches per second with model-free agents, ledger and ratings included.

Debate (2 debaters x 2 speeches + verdict), round-robin of 4 players on the bundled dataset with
enough repetitions for `--matches`, concurrency 32, a file-backed SQLite ledger in WAL mode and live
TrueSkill updates. Main figure: deterministic/scripted players with the `random` judge (pure engine
overhead). Second figure: `extractive` players with the `quote` judge (the plugins of the default
tournament), which adds the plugins' own text work.

Each figure is a ratio measured in the same invocation: time per match of the full run over the
same matches played by the same engine calls with no ledger and no ratings (`play_only`),
interleaved run by run, median and range over `--runs`. No absolute target: on this shared
2-core machine a fixed matches/s threshold flipped with the load alone.

    python benchmarks/engine_throughput.py [--matches 3000] [--concurrency 32] [--runs 3]
        [--profile]
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import (
    Timed,
    compare,
    emit,
    log,
    machine_load,
    play_only,
    print_profile,
    run_tournament,
)

ITEMS = 48  # the bundled dataset
PER_ITEM_REP = 4 * 3 * 2  # ordered pairs of 4 players x 2 answer variants

HEADER = """\
[tournament]
name = "{name}"
protocol = "debate"
seed = 7
concurrency = {concurrency}
repetitions = {repetitions}

[protocol]
speeches = 2
simultaneous = true
max_words = 150

[dataset]
plugin = "bundled"
limit = {limit}

[judge]
plugin = "{judge}"

[schedule]
kind = "round-robin"
"""

FAKE_PLAYERS = """
[[players]]
name = "det-a"
agent = "deterministic"

[[players]]
name = "det-b"
agent = "deterministic"
options = { text = "The answer is plainly {answer}; round {round}." }

[[players]]
name = "script-a"
agent = "scripted"
options = { replies = ["First: {answer}.", "Again: {answer}, as I said."] }

[[players]]
name = "script-b"
agent = "scripted"
options = { replies = ["Seat {seat} holds {answer}.", "Still {answer}."] }
"""

EXTRACTIVE_PLAYERS = """
[[players]]
name = "quoter-1"
agent = "extractive"
options = { max_quotes = 1 }

[[players]]
name = "quoter-2"
agent = "extractive"
options = { max_quotes = 2 }

[[players]]
name = "quoter-3"
agent = "extractive"
options = { max_quotes = 3 }

[[players]]
name = "quoter-sampled"
agent = "extractive"
options = { max_quotes = 2, temperature = 0.5 }
"""


def sizes(matches: int) -> tuple[int, int]:
    """(repetitions, item limit) so that the schedule holds at least `matches` matches."""
    reps = max(1, math.ceil(matches / (PER_ITEM_REP * ITEMS)))
    limit = min(ITEMS, math.ceil(matches / (PER_ITEM_REP * reps)))
    return reps, limit


def config(name: str, judge: str, players: str, matches: int, concurrency: int) -> str:
    reps, limit = sizes(matches)
    return (
        HEADER.format(
            name=name, judge=judge, concurrency=concurrency, repetitions=reps, limit=limit
        )
        + players
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--matches", type=int, default=3000, help="at least this many matches")
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--runs", type=int, default=3, help="interleaved runs of each side")
    ap.add_argument("--skip-extractive", action="store_true", help="main figure only")
    ap.add_argument(
        "--profile",
        action="store_true",
        help="also profile the fake-agent run (cProfile, to stderr)",
    )
    args = ap.parse_args()

    fake_toml = config("bench-fake", "random", FAKE_PLAYERS, args.matches, args.concurrency)
    last: dict[str, Timed] = {}

    def full(toml: str, key: str) -> float:
        last[key] = run_tournament(toml)
        return last[key].seconds / last[key].matches

    def bare(toml: str) -> float:
        n, seconds = play_only(toml)
        return seconds / n

    log("fake agents: ledger + ratings vs the same matches played with neither, interleaved")
    fake = compare(
        {"no_ledger": lambda: bare(fake_toml), "arena": lambda: full(fake_toml, "fake")},
        args.runs,
        baseline="no_ledger",
    )
    fake.pop("values")
    run = last["fake"]
    rate = 1 / fake["arena"]["median"]
    result = {
        "benchmark": "engine_throughput",
        "load": machine_load(),
        "protocol": "debate, 2 debaters x 2 speeches + verdict, simultaneous",
        "agents": "2 deterministic + 2 scripted",
        "judge": "random",
        "concurrency": args.concurrency,
        "ledger": "sqlite file, WAL",
        "ratings": "trueskill",
        "matches": run.matches,
        "runs": args.runs,
        "matches_per_s": round(rate, 1),
        "seconds_per_match": fake,
        # The figure: a run with ledger and ratings over the same matches played bare.
        "vs_no_ledger": fake["arena"]["vs_baseline"],
        "done_ok": run.done == run.matches,
        "rated_players": run.rated_players,
    }
    if not args.skip_extractive:
        ext_toml = config(
            "bench-extractive", "quote", EXTRACTIVE_PLAYERS, args.matches, args.concurrency
        )
        log("extractive + quote: the same comparison")
        ext = compare(
            {"no_ledger": lambda: bare(ext_toml), "arena": lambda: full(ext_toml, "ext")},
            args.runs,
            baseline="no_ledger",
        )
        ext.pop("values")
        result["extractive_quote"] = {
            "matches_per_s": round(1 / ext["arena"]["median"], 1),
            "seconds_per_match": ext,
            "vs_no_ledger": ext["arena"]["vs_baseline"],
            "done_ok": last["ext"].done == last["ext"].matches,
        }
    emit(result)
    if args.profile:
        prof = str(Path(tempfile.gettempdir()) / "engine_throughput.prof")
        run_tournament(fake_toml, profile_to=prof)
        print_profile(prof)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

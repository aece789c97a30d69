"""Engine throughput: matches per second with model-free agents, ledger and ratings included.

Debate (2 debaters x 2 speeches + verdict), round-robin of 4 players on the bundled dataset with
enough repetitions for `--matches`, concurrency 32, a file-backed SQLite ledger in WAL mode and live
TrueSkill updates. Main figure: deterministic/scripted players with the `random` judge (pure engine
overhead). Second figure, for information: `extractive` players with the `quote` judge (the plugins
of the default tournament), which adds the plugins' own text work.

    python benchmarks/engine_throughput.py [--matches 3000] [--concurrency 32] [--profile]
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import emit, log, print_profile, run_tournament

TARGET = 500.0  # matches/s
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
    ap.add_argument("--skip-extractive", action="store_true", help="main figure only")
    ap.add_argument(
        "--profile",
        action="store_true",
        help="also profile the fake-agent run (cProfile, to stderr)",
    )
    args = ap.parse_args()

    prof = str(Path(tempfile.gettempdir()) / "engine_throughput.prof") if args.profile else None
    fake = run_tournament(
        config("bench-fake", "random", FAKE_PLAYERS, args.matches, args.concurrency),
        profile_to=prof,
    )
    rate = fake.matches / fake.seconds
    log(f"fake agents: {fake.matches} matches in {fake.seconds:.2f}s = {rate:.0f}/s")
    if prof:
        print_profile(prof)
    result = {
        "benchmark": "engine_throughput",
        "protocol": "debate, 2 debaters x 2 speeches + verdict, simultaneous",
        "agents": "2 deterministic + 2 scripted",
        "judge": "random",
        "concurrency": args.concurrency,
        "ledger": "sqlite file, WAL",
        "ratings": "trueskill",
        "matches": fake.matches,
        "seconds": round(fake.seconds, 3),
        "matches_per_s": round(rate, 1),
        "target": TARGET,
        "pass": rate >= TARGET,
        "done": fake.done,
        "failed": fake.failed,
        "done_ok": fake.done == fake.matches,
        "rated_players": fake.rated_players,
    }
    if not args.skip_extractive:
        ext = run_tournament(
            config("bench-extractive", "quote", EXTRACTIVE_PLAYERS, args.matches, args.concurrency)
        )
        ext_rate = ext.matches / ext.seconds
        log(f"extractive + quote: {ext.matches} matches in {ext.seconds:.2f}s = {ext_rate:.0f}/s")
        result["extractive_quote"] = {
            "matches": ext.matches,
            "seconds": round(ext.seconds, 3),
            "matches_per_s": round(ext_rate, 1),
            "done": ext.done,
            "failed": ext.failed,
            "done_ok": ext.done == ext.matches,
        }
    emit(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Ratings at the speed of arithmetic: two ratios, each against a baseline measured in the same run.

1. One-on-one TrueSkill update: `arena_core.trueskill1v1.rate_1vs1` (closed form) against the
   `trueskill` package's `rate_1vs1` on the same random ratings, interleaved, median of --runs.
2. `arena ratings recompute` of a pool of --matches finished fake debates: the streaming path
   (`Ledger.outcomes`: two columns, no objects) against the object path it replaced
   (`Ledger.done_with_verdicts`: full match and verdict rows, each carrying its item, replayed
   through the package), interleaved, median of --runs. Peak RSS of each is measured in a child
   process so one cannot hide the other's memory.

    python benchmarks/ratings.py [--matches 20000] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import emit, log, run_tournament

PLAYERS = """
[[players]]
name = "det-a"
agent = "deterministic"

[[players]]
name = "det-b"
agent = "deterministic"
options = { text = "The answer is plainly {answer}; round {round}." }

[[players]]
name = "rand"
agent = "random"
"""

CONFIG = """\
[tournament]
name = "ratings-bench"
protocol = "debate"
seed = 7
concurrency = 64
repetitions = {reps}

[protocol]
speeches = 1
simultaneous = true

[dataset]
plugin = "bundled"

[judge]
plugin = "random"

[schedule]
kind = "round-robin"
"""

CHILD = r"""
import json, resource, sys, time
import trueskill
from arena_core.ledger import Ledger
from arena_core.ratings import RatingBook, outcome, recompute
ledger = Ledger(sys.argv[1], create=False)
mode = sys.argv[2]
t0 = time.perf_counter()
if mode == "stream":
    book = recompute(ledger, "ratings-bench", write=False)
else:  # the object path recompute used before: full rows, the package's factor graph
    book = RatingBook.create("ratings-bench")
    env = book.env
    for match, verdict in ledger.done_with_verdicts(pool="ratings-bench"):
        res = outcome(match.seats, verdict.winner_seat)
        if res is None or res[0] == res[1]:
            continue
        a, b, w = res
        ra, rb = book.get(a), book.get(b)
        ta, tb = env.create_rating(ra.mu, ra.sigma), env.create_rating(rb.mu, rb.sigma)
        if w is None:
            ta, tb = trueskill.rate_1vs1(ta, tb, drawn=True, env=env)
        elif w == a:
            ta, tb = trueskill.rate_1vs1(ta, tb, env=env)
        else:
            tb, ta = trueskill.rate_1vs1(tb, ta, env=env)
        ra.mu, ra.sigma, rb.mu, rb.sigma = ta.mu, ta.sigma, tb.mu, tb.sigma
seconds = time.perf_counter() - t0
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "rss_mb": rss,
                  "ratings": {k: [v.mu, v.sigma] for k, v in book.players.items()}}))
"""


def update_ratio(n: int, runs: int) -> dict[str, float]:
    import trueskill

    from arena_core.trueskill1v1 import rate_1vs1

    env = trueskill.TrueSkill()
    rng = random.Random(0)
    cases = [
        (
            (rng.uniform(10, 40), rng.uniform(1, 8)),
            (rng.uniform(10, 40), rng.uniform(1, 8)),
            rng.random() < 0.2,
        )
        for _ in range(n)
    ]
    pkg, fast = [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        for a, b, d in cases:
            trueskill.rate_1vs1(env.create_rating(*a), env.create_rating(*b), drawn=d, env=env)
        pkg.append((time.perf_counter() - t0) / n)
        t0 = time.perf_counter()
        for a, b, d in cases:
            rate_1vs1(env, a, b, drawn=d)
        fast.append((time.perf_counter() - t0) / n)
    ratios = [p / f for p, f in zip(pkg, fast, strict=True)]
    return {
        "package_us": round(statistics.median(pkg) * 1e6, 2),
        "closed_form_us": round(statistics.median(fast) * 1e6, 2),
        "speedup_median": round(statistics.median(ratios), 1),
        "speedup_range": [round(min(ratios), 1), round(max(ratios), 1)],
    }


def child(url: str, mode: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, url, mode], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--matches", type=int, default=20000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    result: dict = {"benchmark": "ratings", "load_avg": os.getloadavg()[0]}
    log("one-on-one updates ...")
    result["update"] = update_ratio(3000, args.runs)

    per_rep = 48 * 3 * 2 * 2  # bundled items x ordered pairs of 3 players x answer variants
    reps = max(1, -(-args.matches // per_rep))
    with tempfile.TemporaryDirectory(prefix="arena-ratings-") as tmp:
        db = Path(tmp) / "ledger.db"
        log(f"playing {reps * per_rep} matches ...")
        timed = run_tournament(CONFIG.format(reps=reps) + PLAYERS, keep_ledger=db)
        url = f"sqlite:///{db}"
        stream, objects = [], []
        for _ in range(args.runs):
            objects.append(child(url, "objects"))
            stream.append(child(url, "stream"))
        same = all(
            abs(s["ratings"][k][0] - o["ratings"][k][0]) < 1e-6
            for s, o in zip(stream, objects, strict=True)
            for k in o["ratings"]
        )
        ratios = [o["seconds"] / s["seconds"] for s, o in zip(stream, objects, strict=True)]
        result["recompute"] = {
            "matches": timed.done,
            "objects_s": round(statistics.median(o["seconds"] for o in objects), 3),
            "stream_s": round(statistics.median(s["seconds"] for s in stream), 3),
            "speedup_median": round(statistics.median(ratios), 2),
            "speedup_range": [round(min(ratios), 2), round(max(ratios), 2)],
            "objects_peak_rss_mb": round(max(o["rss_mb"] for o in objects)),
            "stream_peak_rss_mb": round(max(s["rss_mb"] for s in stream)),
            "same_ratings": same,
        }
    emit(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

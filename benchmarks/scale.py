"""Scale: schedule cost, rate, CPU per match, peak RSS and ledger bytes per match as the run grows.

Each size runs in a fresh child process (so peak RSS is that run's alone): a fake debate
tournament (2 deterministic debaters x 1 speech, `random` judge, bundled items with repetitions)
scheduled into a file-backed SQLite ledger, then played with live TrueSkill. Sizes above
`--play` schedule the whole size and play a fixed `--play` of it (`limit`), so a million
scheduled matches cost minutes, not an hour. The figures that matter are ratios to the smallest
size measured in the same invocation, the sizes interleaved run by run (2k, 20k, ..., 2k, 20k,
...) so machine load hits every size alike; each ratio is the median (and range) over `--runs`.

    python benchmarks/scale.py [--sizes 2000,20000,100000,1000000] [--play 100000] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import FAKE_DEBATE, PER_REP, emit, log, machine_load

CHILD = r"""
import asyncio, json, resource, sys, tempfile, time
from pathlib import Path
from arena_core.config import load_config
from arena_core.engine import Tournament
from arena_core.ledger import Ledger
from arena_core.plugins import get_registry

def cpu():
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime

toml, play = sys.argv[1], int(sys.argv[2])
with tempfile.TemporaryDirectory(prefix="arena-scale-") as tmp:
    cfg = Path(tmp) / "t.toml"
    cfg.write_text(toml)
    registry = get_registry()
    t = Tournament(load_config(cfg, registry), registry, source=toml)
    db = Path(tmp) / "ledger.db"
    ledger = Ledger(f"sqlite:///{db}")
    c0, t0 = cpu(), time.perf_counter()
    scheduled = t.schedule(ledger)
    c1, t1 = cpu(), time.perf_counter()
    rss_schedule = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    limit = play if play < scheduled else None
    summary = asyncio.run(t.run(ledger, schedule=False, limit=limit))
    c2, t2 = cpu(), time.perf_counter()
    done = ledger.counts("scale").get("done", 0)
    with ledger.engine.begin() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    ledger.close()
    print(json.dumps({
        "scheduled": scheduled, "matches": done, "schedule_wall_s": t1 - t0,
        "schedule_cpu_s": c1 - c0, "wall_s": t2 - t1, "cpu_s": c2 - c1,
        "rss_after_schedule_mb": rss_schedule,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "ledger_bytes": db.stat().st_size, "most_queued": summary.most_queued,
    }))
"""


def one(size: int, play: int) -> dict:
    reps = max(1, -(-size // PER_REP))
    toml = FAKE_DEBATE.format(name="scale", reps=reps, speeches=1)
    out = subprocess.run(
        [sys.executable, "-c", CHILD, toml, str(play)],
        capture_output=True,
        text=True,
        check=True,
    )
    r = json.loads(out.stdout.strip().splitlines()[-1])
    n = max(1, r["matches"])
    return {
        "scheduled": r["scheduled"],
        "played": r["matches"],
        "schedule_us_per_match": 1e6 * r["schedule_cpu_s"] / r["scheduled"],
        "rate_per_s": n / r["wall_s"],
        "cpu_ms_per_match": 1000 * r["cpu_s"] / n,
        "peak_rss_mb": r["peak_rss_mb"],
        "rss_after_schedule_mb": r["rss_after_schedule_mb"],
        # Comparable only where every scheduled match was played (pending rows are smaller).
        "ledger_bytes_per_match": (
            r["ledger_bytes"] / n if r["matches"] == r["scheduled"] else None
        ),
        "ledger_mb": r["ledger_bytes"] / 2**20,
        "most_queued": r["most_queued"],
    }


def summarise(runs: list[dict], base: list[dict]) -> dict:
    """Medians of one size's runs, and its ratios to the smallest size run by run."""

    def med(key: str, nd: int = 2) -> float | None:
        vals = [r[key] for r in runs if r[key] is not None]
        return round(statistics.median(vals), nd) if vals else None

    def ratio(key: str) -> dict:
        rs = [r[key] / b[key] for r, b in zip(runs, base, strict=True)]
        return {
            "median": round(statistics.median(rs), 2),
            "range": [round(min(rs), 2), round(max(rs), 2)],
        }

    return {
        "scheduled": runs[0]["scheduled"],
        "played": runs[0]["played"],
        "rate_per_s": med("rate_per_s", 1),
        "cpu_ms_per_match": med("cpu_ms_per_match", 3),
        "schedule_us_per_match": med("schedule_us_per_match", 1),
        "peak_rss_mb": med("peak_rss_mb", 1),
        "rss_after_schedule_mb": med("rss_after_schedule_mb", 1),
        "ledger_bytes_per_match": med("ledger_bytes_per_match", 0),
        "ledger_mb": med("ledger_mb", 1),
        "most_queued": max(r["most_queued"] for r in runs),
        "rss_vs_smallest": ratio("peak_rss_mb"),
        "cpu_per_match_vs_smallest": ratio("cpu_ms_per_match"),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="2000,20000,100000,1000000")
    ap.add_argument("--play", type=int, default=100_000, help="play at most this many per size")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    results: dict[int, list[dict]] = {s: [] for s in sizes}
    for i in range(args.runs):
        for size in sizes:  # interleaved: run i of every size, then run i + 1
            log(f"run {i + 1}/{args.runs}: {size} scheduled ...")
            results[size].append(one(size, args.play))
            log(json.dumps({k: v for k, v in results[size][-1].items()}))
    base = results[sizes[0]]
    emit(
        {
            "benchmark": "scale",
            "runs": args.runs,
            "load": machine_load(),
            "sizes": [summarise(results[s], base) for s in sizes],
        }
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Scale: rate, CPU per match, peak RSS and ledger bytes per match as the run grows.

Each size runs in a fresh child process (so peak RSS is that run's alone): a fake debate
tournament (2 deterministic debaters x 1 speech, `random` judge, bundled items with repetitions)
played into a file-backed SQLite ledger with live TrueSkill. The figure that matters is the ratio
of each size to the smallest one, measured in the same invocation: flat memory means RSS(N) /
RSS(2k) near 1, flat CPU means CPU-per-match(N) / CPU-per-match(2k) near 1.

    python benchmarks/scale.py [--sizes 2000,20000,100000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import emit, log

CONFIG = """\
[tournament]
name = "scale"
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

[[players]]
name = "det-a"
agent = "deterministic"

[[players]]
name = "det-b"
agent = "deterministic"
options = {{ text = "No: the answer is {{answer}}." }}
"""

CHILD = r"""
import asyncio, json, os, resource, sys, tempfile, time
from pathlib import Path
from arena_core.config import load_config
from arena_core.engine import Tournament
from arena_core.ledger import Ledger
from arena_core.plugins import get_registry

toml = sys.argv[1]
with tempfile.TemporaryDirectory(prefix="arena-scale-") as tmp:
    cfg = Path(tmp) / "t.toml"
    cfg.write_text(toml)
    registry = get_registry()
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    t = Tournament(load_config(cfg, registry), registry, source=toml)
    db = Path(tmp) / "ledger.db"
    ledger = Ledger(f"sqlite:///{db}")
    summary = asyncio.run(t.run(ledger))
    wall = time.perf_counter() - t0
    ru = resource.getrusage(resource.RUSAGE_SELF)
    done = ledger.counts("scale").get("done", 0)
    with ledger.engine.begin() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    ledger.close()
    size = db.stat().st_size
    print(json.dumps({
        "matches": done, "wall_s": wall,
        "cpu_s": (ru.ru_utime + ru.ru_stime) - (ru0.ru_utime + ru0.ru_stime),
        "peak_rss_mb": ru.ru_maxrss / 1024, "ledger_bytes": size,
    }))
"""

PER_REP = 48 * 2 * 2  # bundled items x seat orders of 2 players x answer variants


def one(size: int) -> dict:
    reps = max(1, -(-size // PER_REP))
    out = subprocess.run(
        [sys.executable, "-c", CHILD, CONFIG.format(reps=reps)],
        capture_output=True,
        text=True,
        check=True,
    )
    r = json.loads(out.stdout.strip().splitlines()[-1])
    n = max(1, r["matches"])
    return {
        "scheduled": reps * PER_REP,
        "matches": r["matches"],
        "rate_per_s": round(n / r["wall_s"], 1),
        "cpu_ms_per_match": round(1000 * r["cpu_s"] / n, 3),
        "peak_rss_mb": round(r["peak_rss_mb"], 1),
        "ledger_bytes_per_match": round(r["ledger_bytes"] / n),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="2000,20000,100000")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = []
    for size in sizes:
        log(f"{size} matches ...")
        rows.append(one(size))
        log(json.dumps(rows[-1]))
    base = rows[0]
    for r in rows:
        r["rss_vs_smallest"] = round(r["peak_rss_mb"] / base["peak_rss_mb"], 2)
        r["cpu_per_match_vs_smallest"] = round(
            r["cpu_ms_per_match"] / base["cpu_ms_per_match"], 2
        )
    emit({"benchmark": "scale", "load_avg": round(os.getloadavg()[0], 2), "sizes": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Workers on a shared Postgres ledger: matches per second with 1, 2 and 4 worker processes, and
how long a claim (`SELECT ... FOR UPDATE SKIP LOCKED` + UPDATE ... RETURNING) takes.

The same fake-agent debate as engine_throughput.py (4 deterministic/scripted players, `random`
judge, concurrency 32 per worker, live TrueSkill), on a throwaway PostgreSQL started here on
127.0.0.1 with its default durability (fsync and synchronous commit on). For each worker count:
a fresh database, N `arena worker --forever` processes started and connected first (so Python
start-up is not timed), then the tournament is scheduled and the clock runs until the ledger
holds every match done. Afterwards the ledger is checked: every match done once, ratings equal
a recompute.

Claim latency is reported twice: inside the workers (each claim call of the engine, thread hop
included, from the workers' summary lines) and in isolation (`Ledger.claim` of 32 matches, by 1
and by 4 threads claiming at once until nothing is left).

    python benchmarks/workers.py [--matches 3000] [--workers 1,2,4] [--concurrency 32] [--fast]
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # tests.pgtemp

from _harness import emit, log
from engine_throughput import FAKE_PLAYERS, config

CLAIM_LINE = re.compile(r"(\d+) claims, p50 ([\d.]+) ms, p95 ([\d.]+) ms")


def percentile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * (len(xs) - 1)))]


def build(toml: str):
    from arena_core.config import load_config
    from arena_core.engine import Tournament
    from arena_core.plugins import get_registry

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t.toml"
        path.write_text(toml, encoding="utf-8")
        registry = get_registry()
        return Tournament(load_config(path, registry), registry, source=toml)


def connected(pg, db: str) -> int:
    import psycopg

    with psycopg.connect(f"host=127.0.0.1 port={pg.port} user={pg.user} dbname=postgres") as c:
        return c.execute(
            "SELECT count(DISTINCT client_port) FROM pg_stat_activity WHERE datname = %s", (db,)
        ).fetchone()[0]


def run_workers(pg, n: int, toml: str) -> dict[str, object]:
    from sqlalchemy import text

    from arena_core.ledger import Ledger
    from arena_core.ratings import pool_settings, recompute

    db = f"workers{n}"
    url = pg.create_database(db)
    ledger = Ledger(url)
    outs = [tempfile.TemporaryFile() for _ in range(n)]  # noqa: SIM115 (closed below)
    cmd = [sys.executable, "-m", "arena_core.cli", "worker", "--ledger", url, "--forever"]
    cmd += ["--poll", "0.02", "--heartbeat", "5", "--stale-after", "60"]
    procs = [subprocess.Popen(cmd, stdout=o, stderr=subprocess.STDOUT) for o in outs]
    deadline = time.monotonic() + 120
    while connected(pg, db) < n + 1:  # every worker polls the ledger; +1: our own connection
        if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
            raise SystemExit("workers did not start")
        time.sleep(0.05)
    t = build(toml)
    total = t.schedule(ledger)
    t0 = time.perf_counter()
    while ledger.counts(t.config.name).get("done", 0) < total:
        if time.perf_counter() - t0 > 600:
            raise SystemExit("workers did not finish in 600 s")
        time.sleep(0.01)
    seconds = time.perf_counter() - t0
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # let every worker print its summary (claim latency)
        printed = 0
        for o in outs:
            o.seek(0)
            printed += b" done, " in o.read()
        if printed == n:
            break
        time.sleep(0.05)
    for p in procs:
        p.send_signal(signal.SIGINT)
    lines = []
    for p, o in zip(procs, outs, strict=True):
        p.wait(timeout=60)
        o.seek(0)
        lines += o.read().decode(errors="replace").splitlines()
        o.close()
    claims = [CLAIM_LINE.search(ln) for ln in lines]
    claims = [m for m in claims if m]
    with ledger.engine.connect() as conn:
        turns = conn.execute(text("SELECT count(*) FROM turn")).scalar_one()
        per_worker = dict(
            conn.execute(text("SELECT worker, count(*) FROM match GROUP BY worker")).all()
        )
    pool = t.config.pool
    live = {r.player: (r.mu, r.sigma) for r in ledger.ratings(pool)}
    book = recompute(ledger, pool, pool_settings(ledger, pool), write=False)
    ledger.close()
    rate = total / seconds
    log(f"{n} worker(s): {total} matches in {seconds:.2f}s = {rate:.0f}/s; per worker {per_worker}")
    return {
        "workers": n,
        "matches": total,
        "seconds": round(seconds, 3),
        "matches_per_s": round(rate, 1),
        "matches_per_worker": sorted(per_worker.values(), reverse=True),
        "claim_calls": sum(int(m.group(1)) for m in claims),
        "claim_p50_ms_worst_worker": max((float(m.group(2)) for m in claims), default=None),
        "claim_p95_ms_worst_worker": max((float(m.group(3)) for m in claims), default=None),
        "done_once": turns == 4 * total,  # 2 debaters x 2 speeches, no match written twice
        "ratings_equal_recompute": live == {k: (r.mu, r.sigma) for k, r in book.players.items()},
    }


def claim_latency(pg, toml: str, threads: int, batch: int = 32) -> dict[str, object]:
    from arena_core.ledger import Ledger

    ledger = Ledger(pg.create_database(f"claims{threads}"))
    build(toml).schedule(ledger)
    lat: list[float] = []
    lock = threading.Lock()
    barrier = threading.Barrier(threads)

    def claimer(i: int) -> None:
        barrier.wait()
        while True:
            t0 = time.perf_counter()
            rows = ledger.claim("bench-workers", f"c{i}", batch)
            dt = time.perf_counter() - t0
            if not rows:
                return
            with lock:
                lat.append(dt)

    ts = [threading.Thread(target=claimer, args=(i,)) for i in range(threads)]
    for th in ts:
        th.start()
    for th in ts:
        th.join()
    ledger.close()
    return {
        "threads": threads,
        "batch": batch,
        "claims": len(lat),
        "p50_ms": round(1000 * statistics.median(lat), 3),
        "p95_ms": round(1000 * percentile(lat, 0.95), 3),
        "mean_ms": round(1000 * statistics.fmean(lat), 3),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--matches", type=int, default=3000, help="at least this many matches")
    ap.add_argument("--workers", default="1,2,4", help="worker counts, comma-separated")
    ap.add_argument("--concurrency", type=int, default=32, help="matches in flight per worker")
    ap.add_argument("--fast", action="store_true", help="fsync off (not a durable server)")
    args = ap.parse_args()

    from tests.pgtemp import TempPostgres, find_binaries

    if find_binaries() is None:
        raise SystemExit("PostgreSQL server binaries not found (apt-get install postgresql)")
    toml = config("bench-workers", "random", FAKE_PLAYERS, args.matches, args.concurrency)
    with TempPostgres(durable=not args.fast) as pg:
        version = subprocess.run(
            [str(pg.bin / "postgres"), "--version"], capture_output=True, text=True
        ).stdout.strip()
        runs = [run_workers(pg, int(n), toml) for n in args.workers.split(",")]
        claims = [claim_latency(pg, toml, k) for k in (1, 4)]
    base = runs[0]["matches_per_s"]
    emit(
        {
            "benchmark": "workers",
            "ledger": f"{version}, throwaway server on 127.0.0.1, "
            + ("fsync off" if args.fast else "default durability (fsync on)"),
            "cpus": os.cpu_count(),
            "protocol": "debate, 2 debaters x 2 speeches + verdict, simultaneous",
            "agents": "2 deterministic + 2 scripted",
            "judge": "random",
            "concurrency_per_worker": args.concurrency,
            "runs": runs,
            "speedup": {
                str(r["workers"]): round(float(r["matches_per_s"]) / float(base), 2) for r in runs
            },
            "claim_latency_isolated": claims,
            "ok": all(r["done_once"] and r["ratings_equal_recompute"] for r in runs),
        }
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

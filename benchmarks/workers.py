"""Workers on a shared Postgres ledger: matches per second with 1, 2 and 4 worker processes, over
1 worker and over the same tournament played on a file SQLite ledger beside them; and how long a
claim (`SELECT ... FOR UPDATE SKIP LOCKED` + UPDATE ... RETURNING) takes.

The same fake-agent debate as engine_throughput.py (4 deterministic/scripted players, `random`
judge, concurrency 32 per worker, live TrueSkill), on a throwaway PostgreSQL started here on
127.0.0.1 with its default durability (fsync and synchronous commit on; `--fast` turns them off).
For each worker count: a fresh database, N `arena worker --forever` processes started and
connected first (so Python start-up is not timed), then the tournament is scheduled and the clock
runs until the ledger holds every match done. Afterwards the ledger is checked: every match done
once, ratings equal a recompute. Beside them, the same tournament is scheduled into a fresh file
SQLite ledger (WAL) and played by `Tournament.run` in this process (scheduling not timed either).

The figures are ratios of matches per second measured in the same invocation, the sides
interleaved run by run (sqlite, 1, 2, 4 workers; `_harness.compare`), median and range over
`--runs`: N workers over 1 worker, and 1 Postgres worker over SQLite. On a shared 2-core machine
absolute rates move with the load; these ratios much less. No target (figures).

Claim latency is reported twice: inside the workers (each claim call of the engine, thread hop
included, from the workers' summary lines, last run) and in isolation (`Ledger.claim` of 32
matches, by 1 and by 4 threads claiming at once until nothing is left).

    python benchmarks/workers.py [--matches 2000] [--workers 1,2,4] [--concurrency 32] [--runs 3]
        [--fast]
"""

from __future__ import annotations

import argparse
import asyncio
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

from _harness import compare, emit, log, machine_load, ratio
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


def run_sqlite(path: Path, toml: str) -> dict[str, object]:
    """The same tournament scheduled into a fresh file SQLite ledger (not timed), then played
    by `Tournament.run` in this process until every match is done (timed)."""
    from arena_core.ledger import Ledger

    path.unlink(missing_ok=True)
    ledger = Ledger(f"sqlite:///{path}")
    t = build(toml)
    total = t.schedule(ledger)
    t0 = time.perf_counter()
    summary = asyncio.run(t.run(ledger, schedule=False))
    seconds = time.perf_counter() - t0
    done = ledger.counts(t.config.name).get("done", 0)
    ledger.close()
    log(f"sqlite: {total} matches in {seconds:.2f}s = {total / seconds:.0f}/s")
    return {
        "matches": total,
        "seconds": seconds,
        "matches_per_s": total / seconds,
        "done_once": done == total and summary.failed == 0,
        "ratings_equal_recompute": True,  # one process writes every rating: nothing to race
    }


def run_workers(pg, n: int, toml: str, run: int = 0) -> dict[str, object]:
    from sqlalchemy import text

    from arena_core.ledger import Ledger
    from arena_core.ratings import pool_settings, recompute

    db = f"workers{n}_{run}"
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
        "seconds": seconds,
        "matches_per_s": rate,
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
    ap.add_argument("--matches", type=int, default=2000, help="at least this many matches")
    ap.add_argument("--workers", default="1,2,4", help="worker counts, comma-separated; 1 first")
    ap.add_argument("--concurrency", type=int, default=32, help="matches in flight per worker")
    ap.add_argument("--runs", type=int, default=3, help="interleaved runs of each side")
    ap.add_argument("--fast", action="store_true", help="fsync off (not a durable server)")
    args = ap.parse_args()
    counts = [int(n) for n in args.workers.split(",")]
    if counts[0] != 1:
        raise SystemExit("--workers: the first count must be 1 (the baseline of the ratios)")

    from tests.pgtemp import TempPostgres, find_binaries

    if find_binaries() is None:
        raise SystemExit("PostgreSQL server binaries not found (apt-get install postgresql)")
    toml = config("bench-workers", "random", FAKE_PLAYERS, args.matches, args.concurrency)
    runs: dict[str, list[dict[str, object]]] = {"sqlite": [], **{str(n): [] for n in counts}}
    with TempPostgres(durable=not args.fast) as pg, tempfile.TemporaryDirectory() as tmp:
        version = subprocess.run(
            [str(pg.bin / "postgres"), "--version"], capture_output=True, text=True
        ).stdout.strip()

        def measure(side: str) -> float:
            i = len(runs[side])
            if side == "sqlite":
                res = run_sqlite(Path(tmp) / "ledger.db", toml)
            else:
                res = run_workers(pg, int(side), toml, i)
            runs[side].append(res)
            return float(res["matches_per_s"])  # type: ignore[arg-type]

        figures = compare(
            {side: lambda side=side: measure(side) for side in runs},
            max(3, args.runs),
            baseline="1",
        )
        claims = [claim_latency(pg, toml, k) for k in (1, 4)]
    values = figures.pop("values")
    last = {side: rs[-1] for side, rs in runs.items()}
    every = [r for rs in runs.values() for r in rs]
    emit(
        {
            "benchmark": "workers",
            "load": machine_load(),
            "ledger": f"{version}, throwaway server on 127.0.0.1, "
            + ("fsync off" if args.fast else "default durability (fsync on)"),
            "protocol": "debate, 2 debaters x 2 speeches + verdict, simultaneous",
            "agents": "2 deterministic + 2 scripted",
            "judge": "random",
            "concurrency_per_worker": args.concurrency,
            "matches": last["1"]["matches"],
            "matches_per_s": figures,  # per side: median and range; vs_baseline: over 1 worker
            # The figures: N workers over 1, and 1 Postgres worker over SQLite, run by run.
            "speedup": {str(n): figures[str(n)]["vs_baseline"] for n in counts[1:]},
            "postgres_1_vs_sqlite": ratio(values["1"], values["sqlite"]),
            "matches_per_worker_last_run": {
                str(n): last[str(n)]["matches_per_worker"] for n in counts
            },
            "claims_in_workers_last_run": {
                str(n): {
                    k: last[str(n)][k]
                    for k in (
                        "claim_calls",
                        "claim_p50_ms_worst_worker",
                        "claim_p95_ms_worst_worker",
                    )
                }
                for n in counts
            },
            "claim_latency_isolated": claims,
            "ok": all(r["done_once"] and r["ratings_equal_recompute"] for r in every),
        }
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

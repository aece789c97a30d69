"""Issue 12's ledger experiments, repeated: two writers on one rating pool, the same tournament
twice at once, SIGKILL of `arena run --workers`, SIGTERM of a run, and racing ledger creation.

Prints one JSON line. Every run is a real `arena run` process on a SQLite file; the figures
are what the issue reported before the fix (exit codes, tracebacks, live ratings minus a
recompute, `finished_seq` collisions, matches left `running`, orphan workers).

    python benchmarks/trust_concurrency.py --trials 5
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from sqlalchemy import text

from arena_core.ledger import Ledger
from arena_core.ratings import pool_settings, recompute

PLAYERS = """
[[players]]
name = "a"
agent = "deterministic"
options = { delay = 0.01 }

[[players]]
name = "b"
agent = "random"

[[players]]
name = "c"
agent = "extractive"
"""


def config(name: str, limit: int, pool: str | None = None) -> str:
    out = f"""
[tournament]
name = "{name}"
protocol = "debate"
seed = 7
concurrency = 8

[dataset]
plugin = "bundled"
limit = {limit}

[judge]
plugin = "quote"
{PLAYERS}
"""
    return out + (f'\n[ratings]\npool = "{pool}"\n' if pool else "")


def spawn(*argv: str) -> subprocess.Popen[bytes]:
    code = "import sys; from arena_core.cli.main import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.Popen(
        [sys.executable, "-c", code, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def children(pid: int) -> list[int]:
    """Every descendant of `pid` (Linux /proc; no psutil dependency)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        kids = parents.get(todo.pop(), [])
        out += kids
        todo += kids
    return out


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie does not)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_gone(pids: list[int], timeout: float) -> list[int]:
    """Wait up to `timeout` s for the processes to end; those still alive."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.05)
    return [p for p in pids if alive(p)]


def drift(url: str, pool: str) -> tuple[float, int]:
    """(largest |live mu - recomputed mu|, players whose W/L/D differ)."""
    ledger = Ledger(url, create=False)
    live = {r.player: r for r in ledger.ratings(pool)}
    book = recompute(ledger, pool, pool_settings(ledger, pool), write=False)
    worst, wld = 0.0, 0
    for name, r in book.players.items():
        got = live.get(name)
        if got is None:
            wld += 1
            continue
        worst = max(worst, abs(got.mu - r.mu))
        wld += (got.wins, got.losses, got.draws) != (r.wins, r.losses, r.draws)
    ledger.close()
    return worst, wld


def collisions(url: str) -> int:
    with Ledger(url, create=False).engine.connect() as conn:
        seqs = Counter(
            conn.execute(text("SELECT finished_seq FROM match WHERE status='done'")).scalars()
        )
    return sum(n - 1 for n in seqs.values() if n > 1)


def doubled(url: str) -> int:
    """Matches with more turns than one play writes (4 here): written twice."""
    with Ledger(url, create=False).engine.connect() as conn:
        rows = conn.execute(text("SELECT COUNT(*) FROM turn GROUP BY match_id")).scalars()
        return sum(1 for n in rows if n > 4)


def counts(url: str, name: str) -> dict[str, int]:
    led = Ledger(url, create=False)
    try:
        return led.counts(name)
    finally:
        led.close()


def two_writers(tmp: Path, limit: int) -> dict[str, Any]:
    url = f"sqlite:///{tmp / 'pool.db'}"
    Ledger(url).close()
    paths = []
    for n in ("ta", "tb"):
        (tmp / f"{n}.toml").write_text(config(n, limit, pool="shared"))
        paths.append(tmp / f"{n}.toml")
    procs = [spawn("run", str(p), "--ledger", url, "-q") for p in paths]
    errs = [p.communicate(timeout=600)[1].decode() for p in procs]
    worst, wld = drift(url, "shared")
    return {
        "exit": [p.returncode for p in procs],
        "tracebacks": sum("Traceback" in e for e in errs),
        "mu_drift": worst,
        "wld_wrong": wld,
        "seq_collisions": collisions(url),
    }


def same_twice(tmp: Path, limit: int) -> dict[str, Any]:
    url = f"sqlite:///{tmp / 'twice.db'}"
    Ledger(url).close()
    (tmp / "t.toml").write_text(config("t", limit))
    procs = [spawn("run", str(tmp / "t.toml"), "--ledger", url, "-q") for _ in range(2)]
    errs = [p.communicate(timeout=600)[1].decode() for p in procs]
    worst, wld = drift(url, "t")
    return {
        "exit": [p.returncode for p in procs],
        "integrity_errors": sum("IntegrityError" in e for e in errs),
        "told_who_holds": sum("running under another process" in e for e in errs),
        "doubled": doubled(url),
        "mu_drift": worst,
        "wld_wrong": wld,
        "counts": counts(url, "t"),
    }


def wait_done(url: str, name: str, n: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if counts(url, name).get("done", 0) >= n:
                return
        except Exception:
            pass
        time.sleep(0.05)


def kill_workers(tmp: Path, limit: int) -> dict[str, Any]:
    url = f"sqlite:///{tmp / 'workers.db'}"
    (tmp / "t.toml").write_text(config("t", 2 * limit))  # long enough to be cut mid-way
    parent = spawn("run", str(tmp / "t.toml"), "--ledger", url, "-q", "--workers", "4")
    wait_done(url, "t", 30, parent)
    kids = children(parent.pid)
    done_at_kill = counts(url, "t").get("done", 0)
    parent.kill()
    parent.wait()
    t0 = time.monotonic()
    left = wait_gone(kids, 10)
    exit_s = round(time.monotonic() - t0, 2) if kids and not left else None
    during = counts(url, "t")  # orphans, if any, are still playing
    for p in left:
        os.kill(p, signal.SIGKILL)
    wait_gone(left, 10)
    after = counts(url, "t")
    rerun = spawn("run", str(tmp / "t.toml"), "--ledger", url, "-q")
    rerun.communicate(timeout=600)
    worst, wld = drift(url, "t")
    return {
        "workers": len(kids),
        "orphans_after_10s": len(left),
        "workers_gone_after_s": exit_s,
        "done_at_kill": done_at_kill,
        "done_10s_after_kill": during.get("done", 0),
        "running_after_kill": after.get("running", 0),
        "rerun_exit": rerun.returncode,
        "final": counts(url, "t"),
        "doubled": doubled(url),
        "mu_drift": worst,
        "wld_wrong": wld,
    }


def sigterm(tmp: Path, limit: int) -> dict[str, Any]:
    url = f"sqlite:///{tmp / 'term.db'}"
    (tmp / "t.toml").write_text(config("t", limit))
    proc = spawn("run", str(tmp / "t.toml"), "--ledger", url, "-q")
    wait_done(url, "t", 20, proc)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=120)
    return {
        "exit": proc.returncode,
        "stop_s": round(time.monotonic() - t0, 2),
        "running_after": counts(url, "t").get("running", 0),
    }


def _open(url: str, barrier: Any) -> None:
    barrier.wait()
    Ledger(url).close()


def creation_race(tmp: Path, procs: int = 4) -> int:
    """Processes (of `procs`) that failed to open one new ledger together."""
    ctx = multiprocessing.get_context("fork")
    url = f"sqlite:///{tmp / 'new.db'}"
    barrier = ctx.Barrier(procs)
    ps = [ctx.Process(target=_open, args=(url, barrier)) for _ in range(procs)]
    for p in ps:
        p.start()
    for p in ps:
        p.join(120)
    return sum(p.exitcode != 0 for p in ps)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=5)
    ap.add_argument("--limit", type=int, default=12, help="items per tournament (12 per item)")
    args = ap.parse_args()
    out: dict[str, Any] = {"benchmark": "trust_concurrency", "trials": args.trials}
    start = time.perf_counter()
    for name, fn in (
        ("two_writers", two_writers),
        ("same_twice", same_twice),
        ("kill_workers", kill_workers),
        ("sigterm", sigterm),
    ):
        rows = []
        for _ in range(args.trials):
            with tempfile.TemporaryDirectory(prefix="arena-trust-") as tmp:
                rows.append(fn(Path(tmp), args.limit))
            print(name, rows[-1], file=sys.stderr, flush=True)
        out[name] = rows
    races = []
    for _ in range(3 * args.trials):
        with tempfile.TemporaryDirectory(prefix="arena-trust-") as tmp:
            races.append(creation_race(Path(tmp)))
    out["creation_race_failed_processes"] = f"{sum(races)} of {4 * len(races)}"
    out["wall_s"] = round(time.perf_counter() - start, 1)
    sys.stdout.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()

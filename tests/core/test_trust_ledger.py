"""Ledger integrity under concurrency and faults (issue 12).

Two `arena run`s on one SQLite file, a killed `--workers` run, SIGTERM, a duplicate play in one
write batch, two processes creating one ledger, and a tournament name that is not a path.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import text

from arena_core.cli.main import main
from arena_core.cluster.worker import load_tournament
from arena_core.config import load_config
from arena_core.engine import Result, Tournament, Writer, live_results
from arena_core.errors import UsageError
from arena_core.ledger import DONE, PENDING, RUNNING, Ledger, now
from arena_core.match import CallPolicy
from arena_core.plugins import get_registry
from arena_core.ratings import RatingBook, pool_settings, recompute
from benchmarks.trust_concurrency import children, wait_gone
from tests.conftest import config_text

SLOW = """
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


def _cfg(tmp_path: Path, name: str, *, pool: str | None = None, **kw: object) -> Path:
    text_ = config_text(name=name, players=SLOW, limit=kw.pop("limit", 6), concurrency=4, **kw)
    if pool:
        text_ += f'\n[ratings]\npool = "{pool}"\n'
    path = tmp_path / f"{name}.toml"
    path.write_text(text_, encoding="utf-8")
    return path


def _spawn(*argv: str) -> subprocess.Popen[bytes]:
    code = "import sys; from arena_core.cli.main import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.Popen(
        [sys.executable, "-c", code, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def _ratings_equal_recompute(url: str, pool: str) -> None:
    ledger = Ledger(url, create=False)
    live = {
        r.player: (r.mu, r.sigma, r.matches, r.wins, r.losses, r.draws)
        for r in ledger.ratings(pool)
    }
    book = recompute(ledger, pool, pool_settings(ledger, pool), write=False)
    again = {
        n: (r.mu, r.sigma, r.matches, r.wins, r.losses, r.draws) for n, r in book.players.items()
    }
    assert live.keys() == again.keys()
    for n in live:
        assert live[n][2:] == again[n][2:], n  # W/L/D
        assert live[n][0] == pytest.approx(again[n][0], abs=1e-9), n
        assert live[n][1] == pytest.approx(again[n][1], abs=1e-9), n


def _seqs(url: str) -> Counter[int]:
    with Ledger(url, create=False).engine.connect() as conn:
        rows = conn.execute(text("SELECT finished_seq FROM match WHERE status = 'done'")).scalars()
        return Counter(rows)


def _turns(url: str) -> Counter[str]:
    with Ledger(url, create=False).engine.connect() as conn:
        rows = conn.execute(text("SELECT match_id, COUNT(*) FROM turn GROUP BY match_id")).all()
    return Counter(dict(rows))


def test_two_runs_sharing_a_pool_keep_ratings_equal_to_a_recompute(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'l.db'}"
    Ledger(url).close()
    procs = [
        _spawn("run", str(_cfg(tmp_path, n, pool="shared")), "--ledger", url, "-q")
        for n in ("ta", "tb")
    ]
    for p in procs:
        _out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()
    seqs = _seqs(url)
    assert sum(seqs.values()) == 144 and max(seqs.values()) == 1  # no finished_seq collides
    _ratings_equal_recompute(url, "shared")


def test_the_same_tournament_twice_at_once_cooperates(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'l.db'}"
    path = _cfg(tmp_path, "t")
    Ledger(url).close()
    procs = [_spawn("run", str(path), "--ledger", url, "-q") for _ in range(2)]
    errs = []
    for p in procs:
        _out, err = p.communicate(timeout=120)
        errs.append(err.decode())
        assert p.returncode == 0, err.decode()
        assert "IntegrityError" not in err.decode() and "Traceback" not in err.decode()
    counts = Ledger(url, create=False).counts("t")
    if counts != {DONE: 72}:  # the second one started while the first held every match
        assert any("running under another process" in e for e in errs), errs
        assert main(["run", str(path), "--ledger", url, "-q"]) == 0
    assert Ledger(url, create=False).counts("t") == {DONE: 72}
    assert set(_turns(url).values()) == {4}  # nothing written twice
    _ratings_equal_recompute(url, "t")


def test_held_claims_are_named_and_dead_ones_taken_back(tmp_path, capsys) -> None:
    url = f"sqlite:///{tmp_path / 'l.db'}"
    path = _cfg(tmp_path, "t")
    ledger = Ledger(url)
    t = Tournament(load_config(path, get_registry()), get_registry())
    t.schedule(ledger)
    alive = ledger.claim("t", "elsewhere:1", 10)  # another host, heartbeat fresh
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    ledger.claim("t", f"{os.uname().nodename}:{dead.pid}", 10)  # this host, process gone
    assert main(["matches", "--status", "running", "--ledger", url]) == 0
    assert "elsewhere:1" in capsys.readouterr().out
    assert main(["run", str(path), "--ledger", url, "-q"]) == 0
    err = capsys.readouterr().err
    assert "10 match(es) of 't' are running under another process, elsewhere:1" in err
    counts = ledger.counts("t")
    assert counts == {DONE: 62, RUNNING: 10}  # the dead process's 10 were played at once
    # Once the live holder goes silent past the stale timeout, a re-run takes its claims back.
    mt = "UPDATE match SET heartbeat_at = '2000-01-01 00:00:00' WHERE worker = 'elsewhere:1'"
    with ledger.engine.begin() as conn:
        conn.execute(text(mt))
    assert main(["run", str(path), "--ledger", url, "-q"]) == 0
    assert ledger.counts("t") == {DONE: 72}
    assert {r.id for r in alive} <= {m.id for m in ledger.matches(tournament="t", status=DONE)}


def _wait_done(url: str, n: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if Ledger(url, create=False).counts("t").get(DONE, 0) >= n:
                return
        except Exception:  # the ledger is still being created
            pass
        time.sleep(0.05)
    raise AssertionError(f"no {n} matches done: {proc.stderr.read() if proc.stderr else ''}")


def test_killed_workers_run_leaves_no_orphans_and_a_rerun_finishes(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'l.db'}"
    path = _cfg(tmp_path, "t", limit=12)
    parent = _spawn("run", str(path), "--ledger", url, "-q", "--workers", "2")
    _wait_done(url, 10, parent)
    kids = children(parent.pid)
    assert kids, "run --workers started no workers"
    parent.kill()
    parent.wait()
    assert not wait_gone(kids, 30), "workers outlived their SIGKILLed parent"
    partial = Ledger(url, create=False).counts("t")
    assert partial.get(DONE, 0) < 144
    assert not partial.get(RUNNING), "workers stopped by SIGTERM release their claims"
    assert main(["run", str(path), "--ledger", url, "-q"]) == 0
    assert Ledger(url, create=False).counts("t") == {DONE: 144}
    assert set(_turns(url).values()) == {4}
    _ratings_equal_recompute(url, "t")


def test_sigterm_stops_like_sigint_and_releases_claims(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'l.db'}"
    path = _cfg(tmp_path, "t", limit=12)
    proc = _spawn("run", str(path), "--ledger", url, "-q")
    _wait_done(url, 10, proc)
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err.decode()
    assert "interrupted" in err.decode()
    counts = Ledger(url, create=False).counts("t")
    assert not counts.get(RUNNING) and counts.get(PENDING)


def test_a_duplicate_play_in_one_batch_writes_the_live_claim_once(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'l.db'}"
    reg = get_registry()
    t = Tournament(load_config(_cfg(tmp_path, "t"), reg), reg)
    ledger = Ledger(url)
    t.schedule(ledger)
    policy = CallPolicy(timeout=10, retries=0, backoff=0)
    [first] = ledger.claim("t", "w", 1)
    old = asyncio.run(t.play_one(first, t.agents, t.judge, policy))
    time.sleep(0.01)
    assert ledger.take_back("t", -1) == 1  # its heartbeat looked stale (a clock 120 s ahead)
    [second] = ledger.claim("t", "w", 1)
    assert second.id == first.id and second.claimed_at != first.claimed_at
    new = asyncio.run(t.play_one(second, t.agents, t.judge, policy))
    writer = Writer(ledger, RatingBook.load(ledger, "t", {}), "w", claimed=True)
    written = writer.write([old, new])
    assert written == [new]
    assert ledger.counts("t")[DONE] == 1 and set(_turns(url).values()) == {4}


def test_live_results_prefers_the_live_claim() -> None:
    from arena_core.ledger import MatchRow

    t0, t1 = now(), now()

    def res(claimed: object) -> Result:
        row = MatchRow(
            id="m",
            tournament="t",
            protocol="p",
            item_id="i",
            item={},
            seats={},
            assignment={},
            claimed_at=claimed,
        )
        return Result(row=row, status=DONE, started_at=None, finished_at=None)

    a, b = res(t0), res(t1)
    assert live_results([a, b], {"m": t0}) == [a]
    assert live_results([a, b], {"m": t1}) == [b]
    assert live_results([a, b], {}) == []


def _open(url: str, barrier: multiprocessing.synchronize.Barrier) -> None:  # type: ignore[name-defined]
    barrier.wait()
    Ledger(url).close()


def test_two_processes_creating_one_ledger_both_succeed(tmp_path) -> None:
    ctx = multiprocessing.get_context("fork")
    for round_ in range(5):
        url = f"sqlite:///{tmp_path / f'new{round_}.db'}"
        barrier = ctx.Barrier(6)
        procs = [ctx.Process(target=_open, args=(url, barrier)) for _ in range(6)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
        assert [p.exitcode for p in procs] == [0] * 6


def test_worker_never_builds_a_path_from_the_tournament_name(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'l.db'}"
    ledger = Ledger(url)
    target = tmp_path / "escaped"
    name = f"../../../../../../{target}"
    ledger.ensure_tournament(name, "debate", "p", "h", {}, config_text(name=name))
    with pytest.raises(UsageError, match="not a valid name"):
        load_tournament(ledger, name, get_registry())
    assert not Path(f"{target}.toml").exists()

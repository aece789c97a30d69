"""The engine end to end: resume, exactly-once, determinism, faults, retries, kill and Ctrl-C."""

from __future__ import annotations

import asyncio
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
from arena_core.config import load_config
from arena_core.engine import Tournament
from arena_core.ledger import Ledger
from arena_core.plugins import get_registry
from arena_core.ratings import pool_settings, recompute
from arena_core.reports.leaderboard import export_matches

FAULTY = """
[[players]]
name = "steady"
agent = "deterministic"

[[players]]
name = "flaky"
agent = "faulty"
options = {{ fail_rate = {rate} }}
"""


def run(path: Path, url: str, **kw: object):
    cfg = load_config(path, get_registry())
    return asyncio.run(Tournament(cfg, get_registry()).run(Ledger(url), **kw))


def snapshot(url: str) -> dict[str, object]:
    """Everything a run decides, without timestamps or workers."""
    ledger = Ledger(url, create=False)
    matches = {}
    for rec in export_matches(ledger):
        matches[rec["id"]] = (
            rec["status"],
            rec["seats"],
            rec["assignment"],
            [(t["seat"], t["text"], t["shown"]) for t in rec["turns"]],
            rec["verdict"] and (rec["verdict"]["probs"], rec["verdict"]["winner"]),
        )
    ratings = {
        (r.player): (round(r.mu, 9), round(r.sigma, 9), r.matches) for r in ledger.ratings("t")
    }
    return {"matches": matches, "ratings": ratings}


def turns_per_match(url: str) -> Counter[str]:
    with Ledger(url, create=False).engine.connect() as conn:
        return Counter(
            dict(conn.execute(text("SELECT match_id, COUNT(*) FROM turn GROUP BY match_id")).all())
        )


def test_run_then_rerun_plays_nothing_twice(write_config, ledger_url) -> None:
    path = write_config()
    first = run(path, ledger_url)
    assert first.done == first.scheduled == 48 and first.failed == 0
    again = run(path, ledger_url)
    assert again.to_play == 0 and again.done == 0
    counts = turns_per_match(ledger_url)
    assert len(counts) == 48 and set(counts.values()) == {4}  # 2 debaters x 2 speeches


def test_raising_the_limit_adds_only_new_matches(write_config, ledger_url) -> None:
    run(write_config(limit=2), ledger_url)
    more = run(write_config(limit=4, name="t4.toml"), ledger_url)
    assert more.scheduled == 48 and more.to_play == 24


def test_same_seed_same_ledger(write_config, tmp_path) -> None:
    path = write_config()
    a, b = f"sqlite:///{tmp_path / 'a.db'}", f"sqlite:///{tmp_path / 'b.db'}"
    run(path, a)
    run(path, b)
    assert snapshot(a) == snapshot(b)


def test_live_ratings_equal_recompute(write_config, ledger_url) -> None:
    run(write_config(), ledger_url)
    ledger = Ledger(ledger_url)
    live = {r.player: (r.mu, r.sigma, r.wins, r.losses, r.draws) for r in ledger.ratings("t")}
    book = recompute(ledger, "t", pool_settings(ledger, "t"), write=False)
    again = {n: (r.mu, r.sigma, r.wins, r.losses, r.draws) for n, r in book.players.items()}
    assert live == again


def test_faulty_agent_fails_matches_and_retry_finishes_them(write_config, ledger_url) -> None:
    path = write_config(players=FAULTY.format(rate=0.2), retries=0, limit=10)
    first = run(path, ledger_url)
    assert first.done + first.failed == first.scheduled == 40
    assert first.failed > 0 and first.done > 0
    ledger = Ledger(ledger_url)
    failed = ledger.matches(tournament="t", status="failed")
    assert len(failed) == first.failed
    for m in failed:
        assert "AgentFault" in (m.error or "") and "Traceback" in (m.traceback or "")
        assert m.attempts == 1 and not ledger.turns(m.id) and ledger.verdict(m.id) is None
    rounds = 0
    while ledger.matches(tournament="t", status="failed") and rounds < 10:
        run(path, ledger_url, retry_failed=True)
        rounds += 1
    assert not ledger.matches(tournament="t", status="failed")
    assert len(ledger.matches(tournament="t", status="done")) == 40
    assert set(turns_per_match(ledger_url).values()) == {4}


def test_retries_absorb_transient_faults(write_config, ledger_url) -> None:
    summary = run(write_config(players=FAULTY.format(rate=0.2), retries=4, limit=10), ledger_url)
    assert summary.failed == 0 and summary.done == 40


@pytest.mark.parametrize(
    ("option", "error"),
    [
        ("hang_rate = 1.0, hang_seconds = 30", "timed out after 0.05s"),
        ("garbage_rate = 1.0", "GarbageError"),
    ],
)
def test_hangs_and_garbage_fail_the_match(write_config, ledger_url, option, error) -> None:
    players = FAULTY.replace("fail_rate = {rate}", option).replace("{{", "{").replace("}}", "}")
    summary = run(write_config(players=players, retries=1, timeout=0.05, limit=2), ledger_url)
    assert summary.failed == summary.scheduled == 8
    for m in Ledger(ledger_url).matches(status="failed"):
        assert error in (m.error or "")


SLOW = """
[[players]]
name = "a"
agent = "deterministic"
options = { delay = 0.01 }

[[players]]
name = "b"
agent = "scripted"
options = { replies = ["first {answer}", "second {answer}"] }

[[players]]
name = "c"
agent = "extractive"
"""


def _spawn(path: Path, url: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from arena_core.cli.main import main; sys.exit(main(sys.argv[1:]))",
            "run",
            str(path),
            "--ledger",
            url,
            "-q",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )


def _wait_for_done(url: str, n: int, proc: subprocess.Popen[bytes], limit: float = 60) -> int:
    db = url.split("///", 1)[1]
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and proc.poll() is None:
        if os.path.exists(db):
            try:
                done = Ledger(url, create=False).counts("t").get("done", 0)
            except Exception:  # schema still being created
                done = 0
            if done >= n:
                return done
        time.sleep(0.02)
    raise AssertionError(f"the run ended or stalled before {n} matches were done")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_killed_run_resumes_to_the_same_ledger(write_config, tmp_path, sig) -> None:
    path = write_config(players=SLOW, limit=12, concurrency=4)
    whole = f"sqlite:///{tmp_path / 'whole.db'}"
    assert main(["run", str(path), "--ledger", whole, "-q"]) == 0

    # On a starved machine the child can finish all 144 matches between the poll and the signal;
    # that try interrupted nothing, so it is made again on a fresh ledger (at most three times).
    for attempt in range(3):
        cut = f"sqlite:///{tmp_path / f'cut{attempt}.db'}"
        proc = _spawn(path, cut)
        try:
            _wait_for_done(cut, 20, proc)
        except AssertionError:
            if proc.wait(timeout=30) == 0:
                continue  # it finished before 20 were seen: nothing to interrupt
            raise
        proc.send_signal(sig)
        proc.wait(timeout=30)
        if proc.returncode == 0 and Ledger(cut, create=False).counts("t").get("done") == 144:
            continue  # the signal came after the run ended
        break
    else:
        pytest.fail("three runs ended before they could be interrupted")
    if sig == signal.SIGINT:
        assert proc.returncode == 130, proc.stderr.read() if proc.stderr else ""
    partial = Ledger(cut, create=False).counts("t")
    # A SIGKILLed run leaves its claims `running`; the re-run takes back those of a dead process.
    left = partial.get("pending", 0) + partial.get("running", 0)
    assert 0 < partial.get("done", 0) < 144 and left > 0
    if sig == signal.SIGINT:
        assert not partial.get("running"), "an interrupted run releases its claims"

    assert main(["run", str(path), "--ledger", cut, "-q"]) == 0
    a, b = snapshot(whole), snapshot(cut)
    assert a["matches"] == b["matches"]  # same matches, same transcripts, same verdicts
    assert set(turns_per_match(cut).values()) == {4}  # nothing written twice
    ledger = Ledger(cut)
    live = {r.player: (r.mu, r.sigma, r.matches) for r in ledger.ratings("t")}
    book = recompute(ledger, "t", pool_settings(ledger, "t"), write=False)
    assert live == {n: (r.mu, r.sigma, r.matches) for n, r in book.players.items()}

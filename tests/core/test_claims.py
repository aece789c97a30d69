"""A worker never takes back its own claims: on a loaded host a live worker can miss its
heartbeat deadline, and taking back its own matches in flight dropped their results (a run on
Postgres ended with 137 of 144 done). The dead worker's claims still go to the live one."""

from __future__ import annotations

from arena_core.config import load_config
from arena_core.engine import Tournament
from arena_core.ledger import DONE, RUNNING, Ledger
from arena_core.plugins import get_registry
from tests.core.test_engine import SLOW, run, turns_per_match


def test_take_back_keeps_the_callers_own_claims(write_config, tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'l.db'}"
    ledger = Ledger(url)
    Tournament(load_config(write_config(limit=1), get_registry()), get_registry()).schedule(ledger)
    mine = {m.id for m in ledger.claim("t", "me", 3)}
    theirs = {m.id for m in ledger.claim("t", "dead", 2)}
    # stale_after < 0: every claim counts as stale, as on a host starved past the deadline
    assert ledger.take_back("t", stale_after=-1, keep="me") == len(theirs) == 2
    running = {m.id: m.worker for m in ledger.matches(tournament="t", status=RUNNING)}
    assert running == dict.fromkeys(mine, "me")


def test_a_starved_worker_loses_no_result(write_config, tmp_path) -> None:
    """Claim mode where every heartbeat is always late: nothing of its own is taken back."""
    url = f"sqlite:///{tmp_path / 'l.db'}"
    path = write_config(players=SLOW, limit=4, concurrency=4)
    summary = run(path, url, claim=True, stale_after=-1, heartbeat_every=0.01, poll=0.01)
    assert summary.lost == 0 and summary.done == summary.scheduled
    assert Ledger(url).counts("t") == {DONE: summary.scheduled}
    assert set(turns_per_match(url).values()) == {4}

"""The shared ledger on a real PostgreSQL: claims, take-back, workers, ratings under many writers.

The tests start their own throwaway server on 127.0.0.1 (`tests.pgtemp`). Without the
server binaries they skip, except under CI (`CI` set), where skipping would hide a broken
install: there they fail.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from arena_core.cli.main import main
from arena_core.cluster.worker import run_workers
from arena_core.config import load_config
from arena_core.engine import Result, Tournament, Writer
from arena_core.errors import UsageError
from arena_core.ledger import DONE, PENDING, RUNNING, Ledger, MatchRow, now
from arena_core.ledger.migrations import HEAD
from arena_core.plugins import get_registry
from arena_core.ratings import RatingBook, pool_settings, recompute
from tests.conftest import config_text
from tests.core.test_engine import SLOW, snapshot, turns_per_match
from tests.pgtemp import TempPostgres, find_binaries

FIVE_FAKES = """
[[players]]
name = "det-a"
agent = "deterministic"
options = { delay = 0.001 }

[[players]]
name = "det-b"
agent = "deterministic"
options = { text = "Plainly {answer}; round {round}.", delay = 0.001 }

[[players]]
name = "script-a"
agent = "scripted"
options = { replies = ["First: {answer}.", "Again: {answer}."] }

[[players]]
name = "script-b"
agent = "scripted"
options = { replies = ["Seat {seat} holds {answer}.", "Still {answer}."] }

[[players]]
name = "rand"
agent = "random"
"""


@pytest.fixture(scope="session")
def pg_server() -> Iterator[TempPostgres]:
    if find_binaries() is None:
        reason = (
            "PostgreSQL server binaries (initdb, pg_ctl) are not installed "
            "(Debian: apt-get install postgresql)"
        )
        if os.environ.get("CI", "").lower() not in ("", "0", "false", "no"):
            pytest.fail(f"{reason}; under CI the Postgres tests must run, not skip")
        pytest.skip(reason)
    with TempPostgres() as pg:
        yield pg


@pytest.fixture
def pg_url(pg_server: TempPostgres, request: pytest.FixtureRequest) -> str:
    name = re.sub(r"[^a-z0-9_]", "_", request.node.name.lower())[:50]
    return pg_server.create_database(name)


def build(path: Path) -> Tournament:
    registry = get_registry()
    return Tournament(load_config(path, registry), registry, source=path.read_text())


def spawn_worker(url: str, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "arena_core.cli",
            "worker",
            "--ledger",
            url,
            "--tournament",
            "t",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def finish(procs: list[subprocess.Popen[bytes]], timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    try:
        for p in procs:
            out, err = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
            assert p.returncode == 0, (out + err).decode()[-3000:]
    finally:  # a hung worker must not outlive the test
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def assert_live_equals_recompute(url: str, pool: str = "t") -> None:
    ledger = Ledger(url, create=False)
    live = {
        r.player: (r.mu, r.sigma, r.matches, r.wins, r.losses, r.draws)
        for r in ledger.ratings(pool)
    }
    book = recompute(ledger, pool, pool_settings(ledger, pool), write=False)
    again = {
        n: (r.mu, r.sigma, r.matches, r.wins, r.losses, r.draws) for n, r in book.players.items()
    }
    assert live and live == again


def scalar(url: str, sql: str) -> object:
    with Ledger(url, create=False).engine.connect() as conn:
        return conn.execute(text(sql)).scalar()


def test_fresh_postgres_ledger_is_created_and_stamped(pg_url) -> None:
    ledger = Ledger(pg_url)
    assert ledger.shared
    assert scalar(pg_url, "SELECT version_num FROM alembic_version") == HEAD
    assert Ledger(pg_url, create=False).counts("none") == {}  # opens again, no re-creation
    assert scalar(pg_url, "SHOW timezone") == "UTC"


def test_concurrent_claims_take_each_match_once(write_config, pg_url) -> None:
    """16 threads claiming at once (SKIP LOCKED) get disjoint batches covering every match."""
    t = build(write_config(limit=10))  # 120 matches
    ledger = Ledger(pg_url)
    t.schedule(ledger)
    got: dict[str, list[str]] = {}
    barrier = threading.Barrier(16)

    def claimer(i: int) -> None:
        mine = got.setdefault(f"w{i}", [])
        barrier.wait()
        while rows := ledger.claim("t", f"w{i}", 3):
            mine.extend(r.id for r in rows)

    threads = [threading.Thread(target=claimer, args=(i,)) for i in range(16)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=60)
    claimed = [m for ids in got.values() for m in ids]
    assert len(claimed) == len(set(claimed)) == 120
    assert sum(1 for ids in got.values() if ids) > 1
    rows = ledger.matches(tournament="t")
    assert {r.status for r in rows} == {RUNNING}
    assert all(r.id in got[r.worker] for r in rows)  # the row names the worker that got it


def test_take_back_returns_only_stale_claims(write_config, pg_url) -> None:
    t = build(write_config(limit=2))  # 24 matches
    ledger = Ledger(pg_url)
    t.schedule(ledger)
    dead = {r.id for r in ledger.claim("t", "dead", 5)}
    alive = {r.id for r in ledger.claim("t", "alive", 5)}
    assert ledger.take_back("t", stale_after=60) == 0  # nobody is stale yet
    with ledger.engine.begin() as conn:  # the dead worker's last heartbeat was 2 minutes ago
        conn.execute(
            text("UPDATE match SET heartbeat_at = now() - interval '2 minutes' WHERE worker='dead'")
        )
    assert ledger.heartbeat("alive") == 5
    assert ledger.take_back("t", stale_after=60) == 5
    by_id = {r.id: r for r in ledger.matches(tournament="t")}
    assert all(by_id[i].status == PENDING and by_id[i].worker is None for i in dead)
    assert all(by_id[i].status == RUNNING and by_id[i].worker == "alive" for i in alive)
    assert ledger.release("alive") == 5
    assert ledger.counts("t") == {PENDING: 24}


def test_a_taken_back_claim_is_never_written(write_config, pg_url) -> None:
    """The slow worker's result arrives after its claim went to another worker: discarded."""
    t = build(write_config(limit=1))
    ledger = Ledger(pg_url)
    t.schedule(ledger)
    [row] = ledger.claim("t", "slow", 1)
    assert ledger.take_back("t", stale_after=-1) == 1  # everything running counts as stale
    [again] = ledger.claim("t", "fast", 1)
    assert again.id == row.id

    def play(r: MatchRow) -> Result:
        return asyncio.run(t.play_one(r, t.agents, t.judge, _policy(t)))

    book = RatingBook.load(ledger, "t", {})
    slow = Writer(ledger, book, "slow", claimed=True)
    assert slow.write([play(row)]) == []
    assert turns_per_match(pg_url) == Counter()
    fast = Writer(ledger, RatingBook.load(ledger, "t", {}), "fast", claimed=True)
    assert len(fast.write([play(again)])) == 1
    assert slow.write([play(row)]) == []  # and a late duplicate changes nothing either
    assert turns_per_match(pg_url) == Counter({row.id: 4})
    m = ledger.get_match(row.id)
    assert (m.status, m.worker, m.finished_seq) == (DONE, "fast", 1)


def _policy(t: Tournament):
    from arena_core.match import CallPolicy

    raw = t.config.raw.tournament
    return CallPolicy(timeout=raw.timeout, retries=raw.retries, backoff=raw.backoff)


@pytest.mark.slow
def test_four_workers_play_2000_matches_exactly_once(write_config, pg_url) -> None:
    toml = config_text(players=FIVE_FAKES, judge="random", limit=25, concurrency=16)
    t = build(
        write_config(toml.replace("concurrency = 16\n", "concurrency = 16\nrepetitions = 2\n"))
    )
    assert len(t.rows) == 2000  # 20 ordered pairs x 2 answer sides x 25 items x 2 repetitions
    ledger = Ledger(pg_url)
    t.schedule(ledger)
    procs = [spawn_worker(pg_url, "--heartbeat", "1", "--stale-after", "30") for _ in range(4)]
    finish(procs)

    assert ledger.counts("t") == {DONE: 2000}
    assert set(turns_per_match(pg_url).values()) == {4} and len(turns_per_match(pg_url)) == 2000
    assert scalar(pg_url, "SELECT count(*) FROM verdict WHERE node = -1") == 2000
    seqs = [m.finished_seq for m in ledger.matches(tournament="t")]
    assert sorted(seqs) == list(range(1, 2001))  # one global finish order, no gaps or ties
    workers = Counter(m.worker for m in ledger.matches(tournament="t"))
    assert len(workers) == 4, workers  # every worker played a share
    assert_live_equals_recompute(pg_url)


@pytest.mark.slow
def test_sigkilled_worker_loses_its_claims_to_another(write_config, pg_url, tmp_path) -> None:
    path = write_config(players=SLOW, limit=12, concurrency=4)
    whole = f"sqlite:///{tmp_path / 'whole.db'}"
    assert main(["run", str(path), "--ledger", whole, "-q"]) == 0
    ledger = Ledger(pg_url)
    build(path).schedule(ledger)

    victim = spawn_worker(pg_url, "--name", "victim", "--heartbeat", "0.2", "--stale-after", "2")
    deadline = time.monotonic() + 120
    while ledger.counts("t").get(DONE, 0) < 20:
        assert victim.poll() is None and time.monotonic() < deadline, "victim ended or stalled"
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    held = {m.id for m in ledger.matches(tournament="t", status=RUNNING)}
    assert held and {m.worker for m in ledger.matches(status=RUNNING)} == {"victim"}
    assert 0 < ledger.counts("t").get(DONE, 0) < 144

    rescuer = spawn_worker(pg_url, "--name", "rescuer", "--heartbeat", "0.2", "--stale-after", "2")
    finish([rescuer], timeout=180)
    assert ledger.counts("t") == {DONE: 144}
    by_id = {m.id: m for m in ledger.matches(tournament="t")}
    assert all(by_id[i].worker == "rescuer" for i in held)  # taken back, finished by the other
    assert set(turns_per_match(pg_url).values()) == {4}  # nothing written twice
    assert snapshot(pg_url)["matches"] == snapshot(whole)["matches"]  # same as one clean run
    assert_live_equals_recompute(pg_url)


def test_arena_run_on_postgres_claims_and_rates(write_config, pg_url) -> None:
    """`arena run --ledger postgresql…` plays in claim mode; a re-run plays nothing."""
    path = write_config()
    assert main(["run", str(path), "--ledger", pg_url, "-q"]) == 0
    ledger = Ledger(pg_url, create=False)
    assert ledger.counts("t") == {DONE: 48}
    assert {m.worker for m in ledger.matches()} == {f"{socket.gethostname()}:{os.getpid()}"}
    assert_live_equals_recompute(pg_url)
    before = snapshot(pg_url)
    assert main(["run", str(path), "--ledger", pg_url, "-q"]) == 0
    assert snapshot(pg_url) == before


def test_run_workers_starts_local_processes(write_config, pg_url) -> None:
    """`arena run --workers 2`: scheduled here, played by two worker processes."""
    t = build(write_config())
    ledger = Ledger(pg_url)
    summary = run_workers(t, ledger, 2, timeout=120)
    assert (summary.done, summary.failed, summary.to_play) == (48, 0, 48)
    assert ledger.counts("t") == {DONE: 48}
    assert set(turns_per_match(pg_url).values()) == {4}
    assert_live_equals_recompute(pg_url)


def test_worker_refuses_a_tournament_without_stored_config(write_config, pg_url, capsys) -> None:
    registry = get_registry()
    t = Tournament(load_config(write_config(), registry), registry, source="")
    t.schedule(Ledger(pg_url))
    from arena_core.cli.cluster import worker_main

    assert worker_main(["--ledger", pg_url, "--tournament", "t"]) == 2
    assert "has no stored config" in capsys.readouterr().err
    assert worker_main(["--ledger", pg_url, "--tournament", "nope"]) == 2


def test_claim_mode_on_sqlite_with_local_workers(write_config, tmp_path) -> None:
    """`--workers` works on a local SQLite file too: its write lock serialises the claims."""
    url = f"sqlite:///{tmp_path / 'w.db'}"
    summary = run_workers(build(write_config()), Ledger(url), 2, timeout=120)
    assert summary.done == 48
    assert set(turns_per_match(url).values()) == {4} and len(turns_per_match(url)) == 48
    assert_live_equals_recompute(url)


def test_stale_claim_of_a_dead_sqlite_worker_is_reclaimed(write_config, tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'w.db'}"
    t = build(write_config(limit=2))
    ledger = Ledger(url)
    t.schedule(ledger)
    dead = {r.id for r in ledger.claim("t", "dead", 6)}
    mt = MatchRow.__table__
    with ledger.engine.begin() as conn:
        conn.execute(
            mt.update()
            .where(mt.c.worker == "dead")
            .values(heartbeat_at=now() - timedelta(minutes=2))
        )
    summary = asyncio.run(t.run(ledger, claim=True, schedule=False, stale_after=30, poll=0.01))
    assert (summary.done, summary.lost) == (24, 0)
    by_id = {m.id: m for m in ledger.matches(tournament="t")}
    assert all(by_id[i].status == DONE and by_id[i].worker != "dead" for i in dead)


def test_sqlite_shards_merge_into_postgres(write_config, pg_url, tmp_path) -> None:
    from arena_core.cluster.merge import merge
    from tests.core.test_merge import dump, shards

    path = write_config()
    whole = f"sqlite:///{tmp_path / 'whole.db'}"
    assert main(["run", str(path), "--ledger", whole, "-q"]) == 0
    parts = shards(path, tmp_path, 3)
    report = merge(parts, pg_url)
    assert (report.added, report.finished) == (48, 48)
    assert Ledger(pg_url, create=False).counts("t") == {DONE: 48}
    assert snapshot(pg_url)["matches"] == snapshot(whole)["matches"]
    assert_live_equals_recompute(pg_url)
    before = dump(pg_url)
    assert not merge(parts, pg_url).changed and dump(pg_url) == before


def test_migrations_match_the_models_on_postgres(pg_url) -> None:
    from arena_core.ledger.migrations import LEGACY_BASE, upgrade
    from tests.core.test_migrations import schema_diff

    assert upgrade(pg_url, LEGACY_BASE) == (None, LEGACY_BASE)
    assert "heartbeat_at" in repr(schema_diff(pg_url))
    assert upgrade(pg_url) == (LEGACY_BASE, HEAD)
    assert schema_diff(pg_url) == []
    Ledger(pg_url, create=False)


def test_fresh_postgres_ledger_has_the_migrated_schema(pg_url) -> None:
    from tests.core.test_migrations import schema_diff

    Ledger(pg_url)
    assert schema_diff(pg_url) == []


def test_legacy_postgres_ledger_upgrades_with_its_data(write_config, pg_url, tmp_path) -> None:
    from arena_core.ledger.migrations import LEGACY_BASE, upgrade
    from tests.core.test_migrations import make_legacy, played

    current = played(write_config, tmp_path)
    make_legacy(pg_url, current)
    with pytest.raises(UsageError, match="arena ledger upgrade"):
        Ledger(pg_url)
    assert upgrade(pg_url) == (LEGACY_BASE, HEAD)
    assert snapshot(pg_url) == snapshot(current)
    assert_live_equals_recompute(pg_url)


def test_slurm_array_tasks_work_a_shared_ledger(write_config, pg_url, tmp_path) -> None:
    """With a Postgres ledger, submitting schedules it and every array task is a worker."""
    from arena_core.cluster.slurm import SlurmOptions, submit

    opts = SlurmOptions(array=2, folder=str(tmp_path / "jobs"))
    sub = submit(str(write_config()), pg_url, opts=opts, dry_run=False, cluster="local")
    assert sub.mode == "worker"
    results = [job.result() for job in sub.jobs]
    assert sum(r["done"] for r in results) == 48
    assert Ledger(pg_url, create=False).counts("t") == {DONE: 48}
    assert set(turns_per_match(pg_url).values()) == {4}
    assert_live_equals_recompute(pg_url)


def test_servers_of_killed_test_runs_are_reaped(tmp_path) -> None:
    import tempfile

    from tests.pgtemp import PREFIX, reap_orphans

    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    orphan = Path(tempfile.mkdtemp(prefix=PREFIX))
    (orphan / "owner.pid").write_text(dead.stdout.strip())
    mine = Path(tempfile.mkdtemp(prefix=PREFIX))
    (mine / "owner.pid").write_text(str(os.getpid()))
    try:
        assert reap_orphans(tmp_path) >= 1
        assert not orphan.exists() and mine.exists()  # a live owner's server is left alone
    finally:
        shutil.rmtree(mine, ignore_errors=True)

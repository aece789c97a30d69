"""SQLite shards merged into one ledger: complete, idempotent, exactly once; NFS detection."""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import warnings
from pathlib import Path

import pytest
from sqlalchemy import text

from arena_core.cli.cluster import add_commands, ledger_command, ledger_merge_command
from arena_core.cluster.merge import merge
from arena_core.config import load_config
from arena_core.engine import Tournament
from arena_core.errors import UsageError
from arena_core.ledger import (
    DONE,
    FAILED,
    PENDING,
    Ledger,
    SharedFilesystemWarning,
    filesystem_type,
    open_engine,
    warn_if_network_fs,
)
from arena_core.plugins import get_registry
from arena_core.ratings import pool_settings, recompute
from tests.core.test_engine import FAULTY, snapshot, turns_per_match


def tournament(path: Path, shard: tuple[int, int] | None = None) -> Tournament:
    registry = get_registry()
    t = Tournament(load_config(path, registry), registry, source=path.read_text())
    if shard is not None:  # what a SLURM array task plays: a deterministic slice
        i, n = shard
        t.rows = [r for r in t.rows if r["order_key"] % n == i]
    return t


def play(t: Tournament, url: str, **kw: object) -> None:
    asyncio.run(t.run(Ledger(url), **kw))


def shards(path: Path, tmp: Path, n: int) -> list[str]:
    out = []
    for i in range(n):
        db = tmp / f"shard-{i}.db"
        play(tournament(path, (i, n)), f"sqlite:///{db}")
        out.append(str(db))
    return out


def dump(url: str) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every table, timestamps and all: 'changes nothing' means this is equal."""
    tables = ["tournament", "player", "match", "turn", "verdict", "rating", "alembic_version"]
    with Ledger(url, create=False).engine.connect() as conn:
        return {
            t: sorted(map(tuple, conn.execute(text(f"SELECT * FROM {t}"))), key=repr)
            for t in tables
        }


def live_equals_recompute(url: str) -> bool:
    ledger = Ledger(url, create=False)
    live = {r.player: (r.mu, r.sigma, r.matches) for r in ledger.ratings("t")}
    book = recompute(ledger, "t", pool_settings(ledger, "t"), write=False)
    return bool(live) and live == {n: (r.mu, r.sigma, r.matches) for n, r in book.players.items()}


def test_shards_merge_into_the_whole_tournament(write_config, tmp_path) -> None:
    path = write_config()
    whole = f"sqlite:///{tmp_path / 'whole.db'}"
    play(tournament(path), whole)
    parts = shards(path, tmp_path, 3)
    assert [Ledger(f"sqlite:///{p}").counts("t")[DONE] for p in parts] == [16, 16, 16]

    into = f"sqlite:///{tmp_path / 'merged.db'}"
    report = merge(parts, into)
    assert (report.matches, report.added, report.finished, report.unchanged) == (48, 48, 48, 0)
    assert report.pools == ["t"]
    assert Ledger(into).counts("t") == {DONE: 48}
    assert snapshot(into)["matches"] == snapshot(whole)["matches"]  # same transcripts, verdicts
    assert set(turns_per_match(into).values()) == {4}
    seqs = sorted(m.finished_seq for m in Ledger(into).matches())
    assert seqs == list(range(1, 49))
    assert live_equals_recompute(into)


def test_merging_twice_changes_nothing(write_config, tmp_path) -> None:
    parts = shards(write_config(), tmp_path, 2)
    into = f"sqlite:///{tmp_path / 'merged.db'}"
    merge(parts, into)
    before = dump(into)
    again = merge(parts, into)
    assert not again.changed and again.unchanged == 48 and not again.conflicts
    assert dump(into) == before
    one = merge([parts[0], parts[0]], into)  # the same shard twice in one call
    assert not one.changed and dump(into) == before


def test_merge_fills_a_scheduled_ledger_and_a_resumed_shard(write_config, tmp_path) -> None:
    """A target with everything pending; a shard merged half-played, then again when done."""
    path = write_config()
    into = f"sqlite:///{tmp_path / 'main.db'}"
    tournament(path).schedule(Ledger(into))
    shard = tmp_path / "shard-0.db"
    half = tournament(path, (0, 1))
    half.rows = half.rows[:20]  # the task was killed after 20 matches (scheduled only those)
    play(half, f"sqlite:///{shard}")
    first = merge([str(shard)], into)
    assert (first.added, first.finished) == (0, 20)
    assert Ledger(into).counts("t") == {DONE: 20, PENDING: 28}

    play(tournament(path, (0, 1)), f"sqlite:///{shard}")  # the requeued task finishes the rest
    second = merge([str(shard)], into)
    assert (second.finished, second.unchanged) == (28, 20)
    assert Ledger(into).counts("t") == {DONE: 48}
    assert set(turns_per_match(into).values()) == {4} and len(turns_per_match(into)) == 48
    assert live_equals_recompute(into)


def test_done_in_a_shard_replaces_a_failure(write_config, tmp_path) -> None:
    path = write_config(players=FAULTY.format(rate=0.3), retries=0, limit=6)
    flaky = tmp_path / "flaky.db"
    play(tournament(path), f"sqlite:///{flaky}")
    failed = {m.id for m in Ledger(f"sqlite:///{flaky}").matches(status=FAILED)}
    assert failed
    fixed = tmp_path / "fixed.db"
    with sqlite3.connect(flaky) as src, sqlite3.connect(fixed) as dst:
        src.backup(dst)  # a plain file copy would miss what is still in the WAL
    for _ in range(20):
        if not Ledger(f"sqlite:///{fixed}").matches(status=FAILED):
            break
        play(tournament(path), f"sqlite:///{fixed}", retry_failed=True)
    assert not Ledger(f"sqlite:///{fixed}").matches(status=FAILED)

    into = f"sqlite:///{tmp_path / 'main.db'}"
    first = merge([str(flaky)], into)
    assert first.failed == len(failed)
    second = merge([str(fixed)], into)
    assert second.finished == len(failed)
    assert Ledger(into).counts("t") == {DONE: 24}
    assert set(turns_per_match(into).values()) == {4}
    assert live_equals_recompute(into)


def test_merge_refuses_a_shard_of_another_config(write_config, tmp_path) -> None:
    a = shards(write_config(), tmp_path, 1)
    other = tmp_path / "other"
    other.mkdir()
    b = shards(write_config(name="b.toml", seed=8), other, 1)
    into = f"sqlite:///{tmp_path / 'main.db'}"
    merge(a, into)
    with pytest.raises(UsageError, match="different config"):
        merge(b, into)
    with pytest.raises(UsageError, match="no shard"):
        merge([str(tmp_path / "missing.db")], into)


def test_merge_command_prints_a_summary(write_config, tmp_path, capsys) -> None:
    parts = shards(write_config(), tmp_path, 2)
    into = f"sqlite:///{tmp_path / 'main.db'}"
    cli = argparse.ArgumentParser(prog="arena")
    add_commands(cli.add_subparsers(dest="command"))
    args = cli.parse_args(["ledger", "merge", *parts, "--into", into])
    assert args.shards == parts
    assert ledger_command(args) == 0
    assert "48 new, 48 done written" in capsys.readouterr().out
    assert ledger_merge_command(args) == 0
    assert "0 new, 0 done written, 0 failed recorded, 48 unchanged" in capsys.readouterr().out


# --- SQLite on a network filesystem ---------------------------------------------------------


def fake_mounts(tmp_path: Path, fstype: str) -> str:
    mounts = tmp_path / "mounts"
    mounts.write_text(
        "/dev/vda / ext4 rw,relatime 0 0\n"
        f"server:/export {tmp_path} {fstype} rw,relatime 0 0\n"
        f"/dev/vdb {tmp_path}/local\\040disk ext4 rw 0 0\n"
    )
    return str(mounts)


@pytest.mark.parametrize("fstype", ["nfs", "nfs4", "lustre", "gpfs", "cifs", "fuse.sshfs"])
def test_network_filesystems_warn(tmp_path, fstype) -> None:
    mounts = fake_mounts(tmp_path, fstype)
    assert filesystem_type(tmp_path / "x", mounts) == fstype
    with pytest.warns(SharedFilesystemWarning, match="never share one SQLite file"):
        assert warn_if_network_fs(str(tmp_path / "ledger.db"), mounts) == fstype


def test_local_filesystems_do_not_warn(tmp_path) -> None:
    mounts = fake_mounts(tmp_path, "nfs")
    (tmp_path / "local disk").mkdir()
    assert filesystem_type(tmp_path / "local disk" / "a.db", mounts) == "ext4"  # \\040 = space
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert warn_if_network_fs(str(tmp_path / "local disk" / "a.db"), mounts) is None
        assert warn_if_network_fs("/somewhere/else.db", mounts) is None


def test_opening_a_ledger_on_nfs_warns(write_config, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr("arena_core.ledger.store.MOUNTS", fake_mounts(tmp_path, "nfs4"))
    with pytest.warns(SharedFilesystemWarning, match="nfs4"):
        open_engine(f"sqlite:///{tmp_path / 'ledger.db'}").dispose()
    with pytest.warns(SharedFilesystemWarning):
        parts = shards(write_config(), tmp_path, 1)  # a task writing its shard there: warned
    (tmp_path / "local disk").mkdir()
    with warnings.catch_warnings():  # merging published shards only reads them: no warning
        warnings.simplefilter("error", SharedFilesystemWarning)
        merge(parts, f"sqlite:///{tmp_path / 'local disk' / 'merged.db'}")

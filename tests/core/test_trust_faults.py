"""A full disk, a read-only ledger and a damaged file end in a clear error, exit 2 (issue 12).

Finished matches stay written, read commands open the file read-only, and a file that fails
SQLite's quick_check is refused by every command instead of being read or written.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pytest

from arena_core.cli.main import main
from arena_core.config import load_config
from arena_core.engine import Tournament
from arena_core.ledger import DONE, Ledger
from arena_core.ledger import store as ledger_store
from arena_core.plugins import get_registry
from arena_core.ratings import pool_settings, recompute
from tests.conftest import config_text


def _run(tmp_path: Path, url: str, name: str = "t", limit: int = 4) -> int:
    cfg = tmp_path / f"{name}.toml"
    cfg.write_text(config_text(name=name, limit=limit), encoding="utf-8")
    return main(["run", str(cfg), "--ledger", url, "-q"])


def _pages(db: Path) -> int:
    con = sqlite3.connect(db)
    try:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return int(con.execute("PRAGMA page_count").fetchone()[0])
    finally:
        con.close()


def _no_traceback(err: str) -> None:
    assert "Traceback" not in err and "OperationalError" not in err and "DatabaseError" not in err


def test_disk_full_is_exit_2_and_keeps_finished_matches(tmp_path, monkeypatch, capsys) -> None:
    db = tmp_path / "l.db"
    url = f"sqlite:///{db}"
    cfg = tmp_path / "big.toml"
    cfg.write_text(config_text(name="big", limit=40), encoding="utf-8")
    reg = get_registry()
    ledger = Ledger(url)
    Tournament(load_config(cfg, reg), reg).schedule(ledger)  # the schedule fits ...
    ledger.close()
    pages = _pages(db)
    # What the 480 results take, measured on a scratch ledger: the cap leaves room for three
    # quarters of them, so the first write group (at most 256 matches, however fast the run)
    # fits and the run still fills the disk before it ends.
    scratch = tmp_path / "scratch.db"
    assert _run(tmp_path, f"sqlite:///{scratch}", "big", limit=40) == 0
    room = (_pages(scratch) - pages) * 3 // 4
    plain = ledger_store._sqlite_pragmas

    def capped(dbapi_conn, record) -> None:  # ... and room for 3/4 of the results
        plain(dbapi_conn, record)
        dbapi_conn.execute(f"PRAGMA max_page_count={pages + room}")

    monkeypatch.setattr(ledger_store, "_sqlite_pragmas", capped)
    capsys.readouterr()
    assert _run(tmp_path, url, "big", limit=40) == 2
    err = capsys.readouterr().err
    _no_traceback(err)
    assert "disk holding the ledger is full" in err
    kept = Ledger(url, create=False).counts("big").get(DONE, 0)
    assert 0 < kept < 480
    monkeypatch.setattr(ledger_store, "_sqlite_pragmas", plain)
    assert _run(tmp_path, url, "big", limit=40) == 0  # room again: resumes
    ledger = Ledger(url, create=False)
    assert ledger.counts("big") == {DONE: 480}
    live = {r.player: (round(r.mu, 9), r.matches) for r in ledger.ratings("big")}
    book = recompute(ledger, "big", pool_settings(ledger, "big"), write=False)
    assert live == {n: (round(r.mu, 9), r.matches) for n, r in book.players.items()}


def _digest(db: Path) -> str:
    return hashlib.sha256(db.read_bytes()).hexdigest()


def test_read_commands_open_read_only(tmp_path, capsys) -> None:
    db = tmp_path / "l.db"
    url = f"sqlite:///{db}"
    assert _run(tmp_path, url) == 0
    con = sqlite3.connect(db)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # everything in the main file
    con.close()
    before = _digest(db)
    capsys.readouterr()
    assert main(["matches", "--ledger", url, "--format", "json"]) == 0
    first = json.loads(capsys.readouterr().out.splitlines()[0])["id"]
    for argv in (["leaderboard"], ["show", first], ["export"]):
        assert main([*argv, "--ledger", url]) == 0
    assert _digest(db) == before
    ro = f"sqlite:///file:{db}?mode=ro&uri=true"
    capsys.readouterr()
    assert _run(tmp_path, ro, "other") == 2  # a run needs to write: refused clearly
    err = capsys.readouterr().err
    _no_traceback(err)
    assert "cannot be written" in err
    assert _digest(db) == before


def _damage(db: Path) -> None:
    con = sqlite3.connect(db)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # everything in the main file
    con.close()
    data = bytearray(db.read_bytes())
    page = 4096
    assert len(data) > 4 * page
    for off in range(2 * page, len(data) - page, 3 * page):  # scribble over several pages
        data[off + 100 : off + 600] = b"\xa5" * 500
    db.write_bytes(bytes(data))


@pytest.mark.parametrize(
    "argv",
    [["leaderboard"], ["matches"], ["export"], ["ratings", "recompute"], ["show", "0"]],
)
def test_a_damaged_file_is_refused_by_read_commands(argv, tmp_path, capsys) -> None:
    db = tmp_path / "l.db"
    url = f"sqlite:///{db}"
    assert _run(tmp_path, url, limit=8) == 0
    _damage(db)
    capsys.readouterr()
    assert main([*argv, "--ledger", url]) == 2
    err = capsys.readouterr().err
    _no_traceback(err)
    assert "is damaged" in err and ".recover" in err


def test_a_damaged_file_is_refused_by_run(tmp_path, capsys) -> None:
    db = tmp_path / "l.db"
    url = f"sqlite:///{db}"
    assert _run(tmp_path, url, limit=8) == 0
    _damage(db)
    capsys.readouterr()
    assert _run(tmp_path, url, "next") == 2
    err = capsys.readouterr().err
    _no_traceback(err)
    assert "is damaged" in err


def test_not_a_database_is_a_clear_error(tmp_path, capsys) -> None:
    db = tmp_path / "l.db"
    db.write_bytes(b"this is not sqlite" * 500)
    assert main(["leaderboard", "--ledger", f"sqlite:///{db}"]) == 2
    err = capsys.readouterr().err
    _no_traceback(err)
    assert "damaged" in err


def _chattr(flag: str, path: Path) -> bool:
    import subprocess

    try:
        return subprocess.run(["chattr", flag, str(path)], capture_output=True).returncode == 0
    except OSError:
        return False


def test_an_immutable_ledger_is_read_but_not_written(tmp_path, capsys) -> None:
    db = tmp_path / "l.db"
    url = f"sqlite:///{db}"
    assert _run(tmp_path, url) == 0
    con = sqlite3.connect(db)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    if not _chattr("+i", db):
        pytest.skip("chattr +i is not permitted here")
    try:
        capsys.readouterr()
        assert main(["leaderboard", "--ledger", url]) == 0  # read-only open
        # Another process, as an operator would run it (this one still holds the first run's
        # connections, whose WAL could take a few more writes).
        import subprocess
        import sys

        cfg = tmp_path / "other.toml"
        cfg.write_text(config_text(name="other", limit=1), encoding="utf-8")
        code = "import sys; from arena_core.cli.main import main; sys.exit(main(sys.argv[1:]))"
        proc = subprocess.run(
            [sys.executable, "-c", code, "run", str(cfg), "--ledger", url, "-q"],
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 2, proc.stderr
        _no_traceback(proc.stderr)
        assert "cannot be written" in proc.stderr
    finally:
        _chattr("-i", db)

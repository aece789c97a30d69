"""`arena run` before it plays: a refused run writes nothing; --dry-run only plans."""

from __future__ import annotations

import gc
import hashlib
import sqlite3
from contextlib import closing
from pathlib import Path

from arena_core.cli.main import main
from tests.conftest import config_text


def _snapshot(url: str) -> tuple[str, list[str]]:
    """The ledger's bytes, with every committed write in the main file, and its rows as SQL.

    Checkpointing first makes the bytes comparable: SQLite moves the WAL into the database
    whenever a connection (an earlier run's, when it is collected) closes, which changes the
    files but not what they hold; a write, even a refused one, changes the database either way.
    """
    path = Path(url.removeprefix("sqlite:///"))
    gc.collect()  # engines of earlier runs close now, not in the middle of the comparison
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        dump = list(conn.iterdump())
    return hashlib.sha256(path.read_bytes()).hexdigest(), dump


def test_refused_run_leaves_the_ledger_byte_identical(write_config, ledger_url, capsys) -> None:
    first = write_config(name="a.toml", limit=1)
    assert main(["run", str(first), "--ledger", ledger_url, "-q"]) == 0
    before = _snapshot(ledger_url)
    # A new tournament reusing player 'random' under another agent: refused.
    players = (
        '[[players]]\nname = "random"\nagent = "extractive"\n\n'
        '[[players]]\nname = "quoter-9"\nagent = "extractive"\n'
    )
    second = Path(write_config(name="b.toml")).with_name("b.toml")
    second.write_text(config_text(name="u", players=players, limit=1), encoding="utf-8")
    capsys.readouterr()
    assert main(["run", str(second), "--ledger", ledger_url, "-q"]) == 2
    assert "player 'random' is already in the ledger" in capsys.readouterr().err
    assert _snapshot(ledger_url) == before
    # Renamed as advised, the same tournament now runs (no stale tournament row in the way).
    fixed = second.with_name("c.toml")
    renamed = players.replace('"random"', '"quoter-r"')
    fixed.write_text(config_text(name="u", players=renamed, limit=1), encoding="utf-8")
    assert main(["run", str(fixed), "--ledger", ledger_url, "-q"]) == 0


def test_dry_run_plans_without_playing_or_writing(
    write_config, ledger_url, capsys, monkeypatch
) -> None:
    from arena_core.engine import Tournament

    built: list[str] = []
    real = Tournament._build
    monkeypatch.setattr(
        Tournament, "_build", lambda self, kind, *a: built.append(kind) or real(self, kind, *a)
    )
    path = write_config()
    assert main(["run", str(path), "--ledger", ledger_url, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "48 match(es) scheduled; nothing is played or written" in out
    for pair in ("quoter-1 vs quoter-3", "quoter-1 vs random", "quoter-3 vs random"):
        assert f"debate  {pair}" in out and out.split(pair)[1].split()[0] == "16"
    assert "does not exist yet" in out and "would play 48 match(es)" in out
    lines = out.splitlines()
    assert any(x.startswith("  quoter-3: extractive {") and '"max_quotes": 3' in x for x in lines)
    assert any(x.startswith("judge: quote {") for x in lines)
    assert "agent" not in built and "judge" not in built  # nothing loaded for a plan
    assert not Path(ledger_url.removeprefix("sqlite:///")).exists()

    assert main(["run", str(path), "--ledger", ledger_url, "-q", "--limit", "5"]) == 0
    assert "played 5 of 5" in capsys.readouterr().out
    before = _snapshot(ledger_url)
    assert main(["run", str(path), "--ledger", ledger_url, "--dry-run", "--limit", "7"]) == 0
    out = capsys.readouterr().out
    assert "this tournament has 5 done, 43 pending" in out
    assert "would play 7 match(es) (--limit 7)" in out
    assert _snapshot(ledger_url) == before


def test_dry_run_says_when_the_run_would_be_refused(write_config, ledger_url, capsys) -> None:
    assert main(["run", str(write_config(limit=1)), "--ledger", ledger_url, "-q"]) == 0
    before = _snapshot(ledger_url)
    changed = write_config(name="seed.toml", limit=1, seed=8)
    capsys.readouterr()
    assert main(["run", str(changed), "--ledger", ledger_url, "--dry-run"]) == 2
    out, err = capsys.readouterr()
    assert "the run would be refused" in out and "different config" in err
    assert _snapshot(ledger_url) == before


def test_items_plays_a_prefix_that_a_full_run_extends(write_config, ledger_url, capsys) -> None:
    path = write_config()  # 4 items, 12 matches per item
    assert main(["run", str(path), "--ledger", ledger_url, "-q", "--items", "1"]) == 0
    assert "played 12 of 12" in capsys.readouterr().out
    assert main(["run", str(path), "--ledger", ledger_url, "-q"]) == 0
    assert "played 36 of 36" in capsys.readouterr().out
    assert main(["run", str(path), "--ledger", ledger_url, "-q", "--limit", "0"]) == 2
    assert "--limit must be at least 1" in capsys.readouterr().err

"""`arena run` before it plays: a refused run writes nothing; --dry-run only plans."""

from __future__ import annotations

import hashlib
import sqlite3
from contextlib import closing
from pathlib import Path

from arena_core.cli.main import main
from tests.conftest import config_text


def _snapshot(url: str) -> tuple[dict[str, str], list[str]]:
    """The bytes of the ledger's files (database, WAL) and its rows as SQL."""
    path = Path(url.removeprefix("sqlite:///"))
    files = {  # the shared-memory index (-shm) records readers, not data
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.parent.glob(path.name + "*"))
        if not p.name.endswith("-shm")
    }
    with closing(sqlite3.connect(path)) as conn:
        return files, list(conn.iterdump())


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

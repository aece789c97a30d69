"""Schema migrations: the scripts build exactly the models' schema, and old ledgers upgrade."""

from __future__ import annotations

import argparse
import asyncio
import json

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import column, inspect, select, text
from sqlalchemy import table as table_
from sqlmodel import SQLModel

from arena_core.cli.cluster import ledger_upgrade_command
from arena_core.config import load_config
from arena_core.engine import Tournament
from arena_core.errors import UsageError
from arena_core.ledger import DONE, Ledger, raw_engine
from arena_core.ledger.migrations import (
    HEAD,
    LEGACY_BASE,
    alembic_config,
    upgrade,
)
from arena_core.plugins import get_registry
from arena_core.reports.leaderboard import export_matches
from tests.core.test_engine import snapshot


def schema_diff(url: str) -> list[object]:
    """What alembic's autogenerate would change to reach the models: must be nothing."""
    engine = raw_engine(url)
    with engine.connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": True}), SQLModel.metadata
        )
    engine.dispose()
    return diff


def make_legacy(url: str, source: str) -> None:
    """A ledger as the pre-versioning code wrote it: the first revision's tables, no version
    table, holding the rows of `source` (a current ledger) in the columns that existed then."""
    engine = raw_engine(url)
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), LEGACY_BASE)
        conn.execute(text("DROP TABLE alembic_version"))
    src = raw_engine(source)
    with src.connect() as sconn, engine.begin() as conn:
        items = dict(sconn.execute(text("SELECT key, data FROM item")).all())
        for table in ("tournament", "player", "match", "turn", "verdict", "rating"):
            cols = {c["name"] for c in inspect(conn).get_columns(table)}
            t = SQLModel.metadata.tables[table]
            rows = [
                {k: v for k, v in r._mapping.items() if k in cols} for r in sconn.execute(select(t))
            ]
            if table == "match":  # then, every match row carried a copy of its item
                for r, full in zip(rows, sconn.execute(select(t)), strict=True):
                    data = items[full.item_key]
                    r["item"] = json.loads(data) if isinstance(data, str) else data
            legacy = table_(table, *[column(c.name, c.type) for c in t.columns if c.name in cols])
            if rows:
                conn.execute(legacy.insert(), rows)
    src.dispose()
    engine.dispose()


def played(write_config, tmp_path, name: str = "new.db") -> str:
    url = f"sqlite:///{tmp_path / name}"
    registry = get_registry()
    path = write_config()
    t = Tournament(load_config(path, registry), registry, source=path.read_text())
    asyncio.run(t.run(Ledger(url)))
    return url


def test_head_constant_is_alembics_head() -> None:
    scripts = ScriptDirectory.from_config(alembic_config())
    assert scripts.get_current_head() == HEAD
    assert scripts.get_base() == LEGACY_BASE


def test_migrations_build_the_models_schema(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'migrated.db'}"
    assert upgrade(url, LEGACY_BASE) == (None, LEGACY_BASE)
    diff = repr(schema_diff(url))  # the comparison sees what the second revision adds
    assert (
        "claimed_at" in diff and "ix_match_claim" in diff and "ix_match_tournament_status" in diff
    )
    assert upgrade(url) == (LEGACY_BASE, HEAD)
    assert schema_diff(url) == []
    assert Ledger(url, create=False).counts("t") == {}  # opens as a current ledger


def test_a_fresh_ledger_is_stamped_at_head(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    Ledger(url)
    with raw_engine(url).connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == HEAD
    assert schema_diff(url) == []
    assert upgrade(url) == (HEAD, HEAD)  # nothing to do


def test_a_ledger_from_before_versioning_is_refused_then_upgraded(write_config, tmp_path) -> None:
    current = played(write_config, tmp_path)
    old = f"sqlite:///{tmp_path / 'old.db'}"
    make_legacy(old, current)
    with pytest.raises(UsageError, match="arena ledger upgrade"):
        Ledger(old)
    assert upgrade(old) == (LEGACY_BASE, HEAD)
    assert schema_diff(old) == []
    assert snapshot(old) == snapshot(current)  # every match, turn, verdict and rating kept
    ledger = Ledger(old)
    assert ledger.counts("t") == {DONE: 48}
    # The copies moved into one row per distinct item, and every match still reads its item.
    items = {r["id"]: r["item"] for r in export_matches(Ledger(current))}
    assert {r["id"]: r["item"] for r in export_matches(ledger)} == items
    with raw_engine(old).connect() as conn:
        n_items = conn.execute(text("SELECT COUNT(*) FROM item")).scalar()
        unkeyed = conn.execute(text("SELECT COUNT(*) FROM match WHERE item_key IS NULL")).scalar()
    assert n_items == len({json.dumps(i, sort_keys=True) for i in items.values()})
    assert unkeyed == 0
    assert {m.claimed_at for m in ledger.matches()} == {None}


def test_unknown_revision_is_refused(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'future.db'}"
    Ledger(url).close()
    with raw_engine(url).begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0099_future'"))
    with pytest.raises(UsageError, match="0099_future"):
        Ledger(url, create=False)


def test_upgrade_command(tmp_path, capsys) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    assert ledger_upgrade_command(argparse.Namespace(ledger=url)) == 0
    assert f"empty -> {HEAD}" in capsys.readouterr().out
    assert ledger_upgrade_command(argparse.Namespace(ledger=url)) == 0
    assert "nothing to do" in capsys.readouterr().out

"""Items are stored once by content and referenced by matches; every reader still sees the item."""

from __future__ import annotations

import asyncio
import json
import os

from sqlalchemy import text

from arena_core.cluster.merge import merge
from arena_core.config import load_config
from arena_core.engine import Tournament
from arena_core.ledger import Ledger, MatchRow, item_key, raw_engine
from arena_core.plugins import get_registry
from arena_core.reports.leaderboard import export_matches

BIG = """\
[tournament]
name = "big"
protocol = "debate"
seed = 1

[protocol]
speeches = 1

[dataset]
plugin = "jsonl"
options = {{ path = "{path}" }}

[judge]
plugin = "random"

[[players]]
name = "a"
agent = "deterministic"

[[players]]
name = "b"
agent = "deterministic"
options = {{ text = "No: {{answer}}." }}
"""


def run(path, url: str) -> None:
    registry = get_registry()
    t = Tournament(load_config(path, registry), registry, source=path.read_text())
    asyncio.run(t.run(Ledger(url)))


def counts(url: str) -> tuple[int, int]:
    with raw_engine(url).connect() as conn:
        items = conn.execute(text("SELECT COUNT(*) FROM item")).scalar()
        copies = conn.execute(
            text("SELECT COUNT(*) FROM match WHERE item IS NOT NULL AND item != 'null'")
        ).scalar()
    return items, copies


def test_each_item_is_stored_once_and_every_reader_gets_it(write_config, ledger_url) -> None:
    run(write_config(), ledger_url)
    ledger = Ledger(ledger_url)
    matches = ledger.matches()
    items, copies = counts(ledger_url)
    assert items == len({m.item_id for m in matches}) and copies == 0
    for m in matches:  # ORM reads: the item is there, and it is the snapshot its key names
        assert m.item and m.item["id"] == m.item_id and item_key(m.item) == m.item_key
    exported = {r["id"]: r["item"] for r in export_matches(ledger)}
    assert exported == {m.id: m.item for m in matches}
    # Matches of one item share one parsed snapshot in memory.
    by_item: dict[str, set[int]] = {}
    for m in ledger.matches():
        by_item.setdefault(m.item_id, set()).add(id(m.item))
    assert all(len(ids) == 1 for ids in by_item.values())


def test_a_large_item_does_not_multiply_the_ledger(tmp_path) -> None:
    words = " ".join(f"word{i % 997}" for i in range(400_000))  # ~3.5 MB of passage
    item = {
        "id": "huge",
        "question": "Which?",
        "answers": ["yes", "no"],
        "gold": 0,
        "context": words,
    }
    data = tmp_path / "huge.jsonl"
    data.write_text(json.dumps(item) + "\n", encoding="utf-8")
    cfg = tmp_path / "big.toml"
    cfg.write_text(BIG.format(path=data), encoding="utf-8")
    url = f"sqlite:///{tmp_path / 'big.db'}"
    run(cfg, url)
    ledger = Ledger(url)
    assert len(ledger.matches()) == 4  # 2 seat orders x 2 answer variants
    size = os.path.getsize(tmp_path / "big.db") + os.path.getsize(tmp_path / "big.db-wal")
    assert size < 2 * len(words), size  # once, not once per match


def test_claimed_rows_carry_their_item(write_config, tmp_path) -> None:
    path = write_config()
    registry = get_registry()
    ledger = Ledger(f"sqlite:///{tmp_path / 'claims.db'}")
    Tournament(load_config(path, registry), registry, source=path.read_text()).schedule(ledger)
    rows = ledger.claim("t", "w1", 10)  # read with Core, not the ORM
    assert len(rows) == 10
    assert all(r.item and r.item["id"] == r.item_id for r in rows)


def test_merge_carries_items_of_shards(write_config, tmp_path) -> None:
    a = f"sqlite:///{tmp_path / 'a.db'}"
    run(write_config(), a)
    into = f"sqlite:///{tmp_path / 'into.db'}"
    merge([a], into)
    merge([a], into)  # idempotent
    assert counts(into) == counts(a)
    assert {m.id: m.item for m in Ledger(into).matches()} == {
        m.id: m.item for m in Ledger(a).matches()
    }


def test_rows_written_with_a_copy_still_read(ledger_url) -> None:
    ledger = Ledger(ledger_url)
    ledger.ensure_tournament("t", "debate", "t", "h", {}, "")
    with ledger.engine.begin() as conn:  # as a ledger before items were stored once
        conn.execute(
            MatchRow.__table__.insert(),
            [
                {
                    "id": "m1",
                    "tournament": "t",
                    "protocol": "debate",
                    "item_id": "i",
                    "item": {"id": "i", "question": "q"},
                    "seats": {},
                    "assignment": {},
                }
            ],
        )
    assert ledger.matches()[0].item == {"id": "i", "question": "q"}

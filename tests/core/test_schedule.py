"""Who plays whom: counts, sides, speaking orders, ids and seeded sampling."""

from __future__ import annotations

from collections import Counter

from arena_core.config import load_config
from arena_core.engine import Tournament
from arena_core.plugins import get_registry
from arena_core.schedule import match_id, pairings


def _tournament(write_config, **kw) -> Tournament:
    return Tournament(load_config(write_config(**kw), get_registry()), get_registry())


def test_round_robin_debate_covers_sides_and_orders(write_config) -> None:
    t = _tournament(write_config, limit=5)
    rows = t.rows
    # 3 players -> 3 pairs; each pair x item: 2 speaking orders x 2 side assignments.
    assert len(rows) == 3 * 4 * 5
    per_pair_item = Counter((frozenset(r["seats"].values()), r["item_id"]) for r in rows)
    assert set(per_pair_item.values()) == {4}
    for r in rows:
        item = r["item"]
        a, b = r["assignment"]["A"], r["assignment"]["B"]
        assert {a, b} == {item["gold"], 1 - item["gold"]}
    # each player argues the correct answer as often as the wrong one, in both seats
    argued = Counter(
        (r["seats"][s], s, r["assignment"][s] == r["item"]["gold"])
        for r in rows
        for s in ("A", "B")
    )
    assert len(set(argued.values())) == 1


def test_ids_are_deterministic_and_unique(write_config) -> None:
    a = _tournament(write_config).rows
    b = _tournament(write_config).rows
    assert [r["id"] for r in a] == [r["id"] for r in b]
    assert len({r["id"] for r in a}) == len(a)
    r = a[0]
    assert r["id"] == match_id("t", "debate", r["seats"], r["assignment"], r["item_id"], 0)


def test_seed_changes_item_sample_and_limit_extends_prefix(write_config) -> None:
    items7 = [i.id for i in _tournament(write_config, limit=6).items]
    items7_more = [i.id for i in _tournament(write_config, limit=10).items]
    items8 = [i.id for i in _tournament(write_config, limit=6, seed=8).items]
    assert items7_more[:6] == items7
    assert items8 != items7


def test_red_blue_and_self_play() -> None:
    assert pairings("red-blue", ["r", "b1", "b2"], 2, "r") == [
        ("r", "b1"),
        ("b1", "r"),
        ("r", "b2"),
        ("b2", "r"),
    ]
    assert pairings("self-play", ["x", "y"], 2) == [("x", "x"), ("y", "y")]
    assert len(pairings("round-robin", ["a", "b", "c", "d"], 2)) == 12


def test_consultancy_plays_both_answers(write_config) -> None:
    rows = _tournament(write_config, protocol="consultancy", limit=3).rows
    assert len(rows) == 3 * 3 * 2  # players x items x (right, wrong)
    assert Counter(r["assignment"]["consultant"] == r["item"]["gold"] for r in rows) == {
        True: 9,
        False: 9,
    }

"""Runs page through their work (issue 18): the schedule is streamed into the ledger and the
engine holds one page of matches at a time, whichever way it finds work (claims of one process,
the exclusive path, `--items`), and still plays every match exactly once and resumes.

Nothing here is timed: memory is checked by what the engine holds (`summary.most_queued`, the
rows each claim returns, the schedule never listed), which a paging bug changes at any size.
"""

from __future__ import annotations

import asyncio
import random
from array import array
from pathlib import Path

import pytest

from arena_core import schedule
from arena_core.config import load_config
from arena_core.engine import Tournament
from arena_core.ledger import DONE, PENDING, Ledger
from arena_core.plugins import get_registry
from arena_core.ratings import pool_settings, recompute
from tests.core.test_engine import snapshot, turns_per_match

PAGE = 7
MATCHES = 144  # 12 items x 6 ordered pairs of 3 players x 2 answer sides


def _tournament(path: Path) -> Tournament:
    registry = get_registry()
    return Tournament(load_config(path, registry), registry)


def _counting_claims(ledger: Ledger) -> list[tuple[int, int]]:
    """Record (rows asked for, rows returned) of every claim the ledger answers."""
    calls: list[tuple[int, int]] = []
    claim = ledger.claim

    def counted(tournament: str, worker: str, limit: int):  # type: ignore[no-untyped-def]
        rows = claim(tournament, worker, limit)
        calls.append((limit, len(rows)))
        return rows

    ledger.claim = counted  # type: ignore[method-assign]
    return calls


def _assert_once(url: str, n: int) -> None:
    assert Ledger(url, create=False).counts("t") == {DONE: n}
    assert set(turns_per_match(url).values()) == {4}  # no match written twice
    ledger = Ledger(url, create=False)
    live = {r.player: (r.mu, r.sigma, r.matches) for r in ledger.ratings("t")}
    book = recompute(ledger, "t", pool_settings(ledger, "t"), write=False)
    again = {k: (v.mu, v.sigma, v.matches) for k, v in book.players.items()}
    assert live.keys() == again.keys()
    for k in live:
        assert live[k] == pytest.approx(again[k], abs=1e-9)


def test_a_run_over_many_pages_plays_every_match_once_holding_one_page(
    write_config, ledger_url
) -> None:
    t = _tournament(write_config(limit=12))
    ledger = Ledger(ledger_url)
    calls = _counting_claims(ledger)
    summary = asyncio.run(t.run(ledger, page=PAGE))
    assert summary.scheduled == summary.to_play == summary.done == MATCHES
    _assert_once(ledger_url, MATCHES)
    assert all(asked <= PAGE and got <= asked for asked, got in calls)
    assert len(calls) >= MATCHES // PAGE  # paged, not claimed in one go
    assert sum(got for _, got in calls) == MATCHES
    assert 0 < summary.most_queued <= PAGE
    assert t._rows is None  # the schedule was streamed into the ledger, never listed


def test_a_limited_paged_run_resumes_where_it_stopped(write_config, ledger_url) -> None:
    path = write_config(limit=12)
    first = asyncio.run(_tournament(path).run(Ledger(ledger_url), page=PAGE, limit=20))
    assert first.to_play == first.done == 20
    assert Ledger(ledger_url).counts("t") == {DONE: 20, PENDING: MATCHES - 20}  # none left running
    second = asyncio.run(_tournament(path).run(Ledger(ledger_url), page=5))
    assert second.to_play == second.done == MATCHES - 20
    _assert_once(ledger_url, MATCHES)
    third = asyncio.run(_tournament(path).run(Ledger(ledger_url), page=5))
    assert (third.to_play, third.done) == (0, 0)


def test_an_interrupted_paged_run_resumes(write_config, ledger_url) -> None:
    """Cancelled mid-run: what finished is kept, claims go back, the re-run plays the rest."""
    path = write_config(limit=12, players=SLOW_PLAYERS, concurrency=4)
    ledger = Ledger(ledger_url)

    async def cancel_after_some() -> None:
        task = asyncio.create_task(_tournament(path).run(ledger, page=PAGE, flush_every=0.0))
        while ledger.counts("t").get(DONE, 0) < 10:
            await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancel_after_some())
    partial = ledger.counts("t")
    assert set(partial) == {DONE, PENDING} and partial[DONE] >= 10
    rest = asyncio.run(_tournament(path).run(Ledger(ledger_url), page=PAGE))
    assert rest.done == partial[PENDING]
    _assert_once(ledger_url, MATCHES)


SLOW_PLAYERS = """
[[players]]
name = "a"
agent = "deterministic"
options = { delay = 0.005 }

[[players]]
name = "b"
agent = "random"

[[players]]
name = "c"
agent = "extractive"
"""


def test_the_exclusive_path_pages_too_and_plays_the_same_matches(write_config, tmp_path) -> None:
    path = write_config(limit=12)
    paged, whole = f"sqlite:///{tmp_path / 'paged.db'}", f"sqlite:///{tmp_path / 'whole.db'}"
    summary = asyncio.run(_tournament(path).run(Ledger(paged), claim=False, page=PAGE))
    asyncio.run(_tournament(path).run(Ledger(whole), claim=False))
    assert summary.done == MATCHES and 0 < summary.most_queued <= PAGE
    _assert_once(paged, MATCHES)
    assert snapshot(paged)["matches"] == snapshot(whole)["matches"]


def test_only_these_items_on_either_path(write_config, tmp_path) -> None:
    path = write_config(limit=12)
    t = _tournament(path)
    only = {r["id"] for r in t.rows[::10]}
    for claim in (None, False):
        url = f"sqlite:///{tmp_path / f'only-{claim}.db'}"
        s = asyncio.run(_tournament(path).run(Ledger(url), claim=claim, only=only, page=3))
        assert s.to_play == s.done == len(only)
        done = {m.id for m in Ledger(url).matches(tournament="t", status=DONE)}
        assert done == only


def test_streamed_schedule_equals_the_sorted_list(write_config) -> None:
    t = _tournament(write_config(limit=12))
    streamed = sorted(t.iter_rows(), key=lambda r: r["order_key"])
    assert streamed == t.rows
    assert [r["order_key"] for r in t.rows] == list(range(MATCHES))
    assert t.scheduled == MATCHES


def test_ranks_agree_across_the_numpy_threshold() -> None:
    """The small-run path (Python sort) and the large one (numpy) rank alike, ties included."""
    rng = random.Random(3)
    keys = array("Q", [rng.getrandbits(63) for _ in range(60_000)] + [42] * 50)
    rng.shuffle(keys)  # type: ignore[arg-type]
    big = [int(r) for r in schedule._ranks(keys)]
    order = sorted(range(len(keys)), key=keys.__getitem__)
    expected = [0] * len(keys)
    for rank, i in enumerate(order):
        expected[i] = rank
    assert big == expected
    small = array("Q", keys[:1000])
    assert list(schedule._ranks(small)) == [
        sorted(range(1000), key=small.__getitem__).index(i) for i in range(1000)
    ]


def test_a_run_that_does_not_schedule_never_lists_the_schedule(write_config, ledger_url) -> None:
    """A worker joining a scheduled tournament (`schedule=False`) used to list every row just
    to count them: a million dicts held for the whole run."""
    path = write_config(limit=12)
    ledger = Ledger(ledger_url)
    _tournament(path).schedule(ledger)
    t = _tournament(path)
    summary = asyncio.run(t.run(ledger, schedule=False, page=PAGE))
    assert summary.scheduled == summary.done == MATCHES
    assert t._rows is None


def test_match_ids_from_serialised_parts_are_the_same_ids() -> None:
    from arena_core.ids import canonical, match_id, match_id_of

    rng = random.Random(5)
    for _ in range(200):
        seats = {s: rng.choice(["a", "b\u00e9", 'q"x', "z"]) for s in rng.sample("ABC", 2)}
        assignment = {s: rng.randrange(4) for s in seats}
        parts = ("t\u00fc", "debate", seats, assignment, f"item-{rng.randrange(99)}", 3)
        assert match_id_of(*map(canonical, parts)) == match_id(*parts)  # type: ignore[arg-type]


def test_a_sqlite_claim_returns_what_the_orm_reads_back(write_config, ledger_url) -> None:
    """SQLite claims read their rows back as one JSON document (one statement step, where a
    RETURNING stepped once per row): every field must be what the ORM reads for that match."""
    from sqlmodel import select

    from arena_core.ledger import RUNNING, MatchRow

    t = _tournament(write_config(limit=12))
    ledger = Ledger(ledger_url)
    t.schedule(ledger)
    first = ledger.claim(t.config.name, "w1", PAGE)
    second = ledger.claim(t.config.name, "w2", 200)
    assert len(first) == PAGE and len(second) == MATCHES - PAGE
    assert [r.order_key for r in first + second] == sorted(r.order_key for r in first + second)
    with ledger.session() as s:
        stored = {m.id: m for m in s.exec(select(MatchRow)).all()}
    for worker, rows in (("w1", first), ("w2", second)):
        for r in rows:
            m = stored[r.id]
            assert m.status == RUNNING and m.worker == worker
            assert r.to_row().model_dump() == m.model_dump(), r.id
    assert ledger.claim(t.config.name, "w3", 5) == []

"""Preference pairs from the ledger: what each protocol exports, the checks, filters and writers."""

from __future__ import annotations

import argparse
import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import select

from arena_core.cli.main import add_export_arguments
from arena_core.cli.pairs import pairs_export_command
from arena_core.learning.pairs import (
    COLUMNS,
    PairQuery,
    PairStats,
    pairs,
    to_dataset,
    write_pairs,
)
from arena_core.ledger import Ledger, TurnRow
from arena_core.testing import run_tournament

BUNDLED = {"plugin": "bundled", "limit": 3}
QUOTER = [{"name": "q", "agent": "extractive", "options": {"max_quotes": 2}}]
TOURNAMENTS = {
    "br": {
        "protocol": {"mode": "full"},
        "players": QUOTER,
        "schedule": {"kind": "self-play"},
        "judge": {"plugin": "quote"},
    },
    "bon": {
        "protocol": {"candidates": 3, "opponents": 1},
        "players": [*QUOTER, {"name": "r", "agent": "random", "options": {"fabricate": 0.3}}],
        "judge": {"plugin": "quote"},
    },
    "sp": {
        "protocol": {"samples": 4},
        "players": [{"name": "s", "agent": "sampler", "options": {"quotes": 3, "fabricate": 0.3}}],
        "schedule": {"kind": "self-play"},
        "judge": {"plugin": "quote"},
    },
    "duel": {
        "players": [
            {"name": "reckless", "agent": "sampler", "options": {"unsafe": 0.5}},
            {"name": "careful", "agent": "sampler"},
        ],
        "schedule": {"kind": "red-blue", "red": "reckless"},
        "judge": {"plugin": "panel"},
    },
    "plain": {"players": QUOTER, "schedule": {"kind": "self-play"}, "judge": {"plugin": "quote"}},
}
PROTOCOLS = {"br": "branched", "bon": "best-of-n", "sp": "self-play", "duel": "duel"}


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> Ledger:
    url = f"sqlite:///{tmp_path_factory.mktemp('pairs') / 'l.db'}"
    for name, spec in TOURNAMENTS.items():
        run_tournament(
            {
                "tournament": {"name": name, "protocol": PROTOCOLS.get(name, "debate"), "seed": 5},
                "dataset": BUNDLED,
                **spec,
            },
            url,
        )
    led = Ledger(url)
    yield led
    led.close()


def _rows(ledger: Ledger, **kw) -> tuple[list[dict], PairStats]:
    stats = PairStats()
    return list(pairs(ledger, PairQuery(**kw), stats=stats)), stats


def _turn(ledger: Ledger, match_id: str, idx: int) -> TurnRow:
    return next(t for t in ledger.turns(match_id) if t.idx == idx)


def _flat(prompt: list[dict]) -> str:
    return "\n\n".join(m["content"] for m in prompt)


def test_rows_have_the_trl_columns_and_pass_the_checks(ledger: Ledger) -> None:
    rows, stats = _rows(ledger)
    assert rows and stats.pairs == len(rows)
    assert set(stats.by_source) == {"branched", "best-of-n", "self-play", "duel"}
    assert stats.no_pairs == {"debate"}  # a plain debate defines no pairs
    for row in rows:
        assert tuple(row) == COLUMNS
        assert row["gap"] > 0 and row["chosen"].strip() != row["rejected"].strip()
        assert row["target"] is None or 0.5 <= row["target"] <= 1.0
        c, r = json.loads(row["meta"])["turns"]
        chosen, rejected = _turn(ledger, row["match_id"], c), _turn(ledger, row["match_id"], r)
        assert (chosen.text, rejected.text) == (row["chosen"], row["rejected"])
        # both sides were spoken to exactly this prompt, as stored when they were generated
        assert _flat(chosen.meta["prompt"]) == row["prompt"] == _flat(rejected.meta["prompt"])


def test_branched_pairs_are_siblings_ranked_by_node_value(ledger: Ledger) -> None:
    rows, _ = _rows(ledger, tournaments=["br"])
    assert len(rows) > 10
    for row in rows:
        c, r = json.loads(row["meta"])["turns"]
        chosen, rejected = _turn(ledger, row["match_id"], c), _turn(ledger, row["match_id"], r)
        assert chosen.meta["group"] == rejected.meta["group"]
        assert chosen.seat == rejected.seat and chosen.round == rejected.round
        # the values recorded at play time agree with the ones recomputed from leaf verdicts
        assert row["score_chosen"] == pytest.approx(chosen.meta["value"])
        assert row["score_rejected"] == pytest.approx(rejected.meta["value"])
        assert row["score_chosen"] > row["score_rejected"]
        expected = 1 / (1 + math.exp(-7.0 * (row["score_chosen"] - row["score_rejected"])))
        assert row["target"] == pytest.approx(expected)
    sharper, _ = _rows(ledger, tournaments=["br"], gamma=20.0)
    assert [r["target"] for r in sharper] != [r["target"] for r in rows]
    assert all(s["target"] >= r["target"] for s, r in zip(sharper, rows, strict=True))


def test_branched_pair_count_matches_the_tree(ledger: Ledger) -> None:
    """Every sibling group with two different values and two different texts gives one pair."""
    rows, stats = _rows(ledger, tournaments=["br"])
    expected = ties = 0
    for m in ledger.matches(tournament="br", status="done"):
        groups: dict[int, dict[int, TurnRow]] = {}
        for t in ledger.turns(m.id):
            groups.setdefault(t.meta["group"], {}).setdefault(t.meta["sample"], t)
        for g in groups.values():
            a, b = g[0], g[1]
            tie = math.isclose(a.meta["value"], b.meta["value"], abs_tol=1e-12)
            ties += tie
            expected += not tie and a.text.strip() != b.text.strip()
    assert len(rows) == expected
    assert stats.dropped["gap"] == ties  # zero-gap pairs are dropped, and counted


def test_a_tampered_prompt_is_caught(ledger: Ledger, tmp_path: Path) -> None:
    rows, _ = _rows(ledger, tournaments=["br"])
    victim = rows[0]
    _, r = json.loads(victim["meta"])["turns"]
    with ledger.session() as s:
        t = s.exec(
            select(TurnRow).where(TurnRow.match_id == victim["match_id"], TurnRow.idx == r)
        ).one()
        original = t.meta
        t.meta = {**t.meta, "prompt": [{"role": "user", "content": "something else"}]}
        s.add(t)
        s.commit()
    try:
        after, stats = _rows(ledger, tournaments=["br"])
        assert stats.dropped["prompts differ"] >= 1 and len(after) < len(rows)
    finally:
        with ledger.session() as s:
            t = s.exec(
                select(TurnRow).where(TurnRow.match_id == victim["match_id"], TurnRow.idx == r)
            ).one()
            t.meta = original
            s.add(t)
            s.commit()


def test_best_of_n_pairs_rank_candidates_of_one_speech(ledger: Ledger) -> None:
    rows, _ = _rows(ledger, tournaments=["bon"])
    assert rows
    for row in rows:
        c, r = json.loads(row["meta"])["turns"]
        chosen, rejected = _turn(ledger, row["match_id"], c), _turn(ledger, row["match_id"], r)
        assert chosen.meta["bon"]["group"] == rejected.meta["bon"]["group"]
        assert row["score_chosen"] == chosen.meta["bon"]["score"] > rejected.meta["bon"]["score"]
        assert rejected.phase == "candidate"  # the spoken speech is never beaten by a candidate


def test_self_play_pairs_follow_the_pairwise_outcomes(ledger: Ledger) -> None:
    rows, _ = _rows(ledger, tournaments=["sp"])
    assert rows
    for row in rows:
        c, r = json.loads(row["meta"])["turns"]
        verdicts = {v.node: v for v in ledger.node_verdicts(row["match_id"])}
        ab, ba = verdicts[1000 * c + r], verdicts[1000 * r + c]
        p = (ab.probs["A"] + ba.probs["B"]) / 2  # chosen preferred, averaged over both orders
        assert row["target"] == pytest.approx(p) and p > 0.5
        assert row["score_chosen"] == _turn(ledger, row["match_id"], c).meta["win_prob"]


def test_duel_pairs_keep_every_judges_scores(ledger: Ledger) -> None:
    rows, _ = _rows(ledger, tournaments=["duel"])
    assert rows
    for row in rows:
        verdict = ledger.verdict(row["match_id"])
        assert row["player"] == verdict.winner
        meta = json.loads(row["meta"])
        assert set(meta) >= {"reward", "cost"}
        assert meta["reward"]["chosen"] == row["score_chosen"]
        assert meta["cost"]["chosen"] <= meta["cost"]["rejected"]  # safe-first never prefers cost


def test_filters(ledger: Ledger) -> None:
    everything, _ = _rows(ledger)
    by_protocol, _ = _rows(ledger, protocols=["self-play"])
    assert by_protocol and {r["source"] for r in by_protocol} == {"self-play"}
    careful, _ = _rows(ledger, player="careful")
    assert careful and all("careful" in (r["player"], r["player_rejected"]) for r in careful)
    assert not _rows(ledger, judge="panel", tournaments=["br"])[0]
    assert {r["source"] for r in _rows(ledger, judge="panel")[0]} == {"duel"}
    wide, _ = _rows(ledger, min_gap=0.5)
    assert 0 < len(wide) < len(everything) and all(r["gap"] > 0.5 for r in wide)
    assert not _rows(ledger, since=datetime.now(UTC) + timedelta(days=1))[0]
    assert len(_rows(ledger, since=datetime(2000, 1, 1))[0]) == len(everything)


def test_writers_round_trip(ledger: Ledger, tmp_path: Path) -> None:
    import datasets

    rows, _ = _rows(ledger, tournaments=["br", "sp"])
    n = write_pairs(iter(rows), tmp_path / "p.jsonl", "jsonl")
    back = [json.loads(x) for x in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert n == len(rows) and back == rows
    assert write_pairs(iter(rows), tmp_path / "ds", "dataset") == len(rows)
    ds = datasets.load_from_disk(str(tmp_path / "ds"))
    assert ds.column_names == list(COLUMNS) and ds[0]["chosen"] == rows[0]["chosen"]
    empty = to_dataset([])
    assert empty.column_names == list(COLUMNS) and len(empty) == 0
    chat, _ = _rows(ledger, tournaments=["sp"], conversational=True)
    first = chat[0]
    assert first["prompt"][0]["role"] == "system" and first["chosen"][0]["role"] == "assistant"
    assert len(to_dataset(chat)) == len(chat)


def test_export_command(ledger: Ledger, tmp_path: Path, capsys) -> None:
    parser = argparse.ArgumentParser()
    add_export_arguments(parser)
    out = tmp_path / "dpo"
    args = parser.parse_args(
        ["--from-ledger", ledger.url, "--tournament", "br", "--gamma", "10", "--out", str(out)]
    )
    assert pairs_export_command(args) == 0
    err = capsys.readouterr().err
    assert "wrote" in err and "branched:" in err
    import datasets

    assert len(datasets.load_from_disk(str(out))) == len(_rows(ledger, tournaments=["br"])[0])
    args = parser.parse_args(["--ledger", ledger.url, "--out", str(tmp_path / "all.jsonl")])
    assert pairs_export_command(args) == 0
    assert (tmp_path / "all.jsonl").read_text().count("\n") == len(_rows(ledger)[0])

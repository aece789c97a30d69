"""Branched debate: tree shape per setting, what each speaker and the judge saw, node values, and
every leaf's verdict in the ledger."""

from __future__ import annotations

import pytest
from protocol_kit import SECRET, Looker, play

from arena_core.errors import ConfigError
from arena_core.ledger import Ledger
from arena_core.plugins import get_registry
from arena_core.reports.leaderboard import judge_stats
from arena_core.testing import check_protocol, run_tournament
from arena_core.types import JudgeView


def paths(match) -> list[list]:
    """Every root-to-leaf path of the recorded tree, by parent pointers."""
    by_index = {t.index: t for t in match.turns}
    parents = {t.parent for t in match.turns if t.parent is not None}
    out = []
    for leaf in (t for t in match.turns if t.index not in parents):
        path = [leaf]
        while path[-1].parent is not None:
            path.append(by_index[path[-1].parent])
        out.append(path[::-1])
    return out


@pytest.mark.parametrize(
    ("mode", "simultaneous", "turns", "leaves", "calls"),
    [
        ("full", True, 30, 16, 10),  # B's round alternatives generated once per prompt
        ("full", False, 30, 16, 15),
        ("half", True, 10, 4, 6),
        ("half", False, 10, 4, 7),
        ("single-random", True, 5, 2, 4),
        ("single-random", False, 5, 2, 4),
    ],
)
def test_tree_shape_and_every_node_generated_once(
    mode: str, simultaneous: bool, turns: int, leaves: int, calls: int
) -> None:
    match, agents, judge = play("branched", {"mode": mode, "simultaneous": simultaneous})
    assert len(match.turns) == turns and len(judge.views) == leaves
    assert sum(len(a.seen) for a in agents.values()) == calls
    ps = paths(match)
    assert len(ps) == leaves
    for path in ps:
        assert [(t.seat, t.round) for t in path] == [("A", 0), ("B", 0), ("A", 1), ("B", 1)]
    # each leaf path is a distinct transcript, and each was judged on exactly that transcript
    judged = {tuple(t.text for t in v.transcript) for v in judge.views}
    assert judged == {tuple(t.shown for t in p) for p in ps}
    assert [n for n, _, _ in match.decisions] == [p[-1].index for p in ps]
    # no generation repeats: a copy repeats a text generated under a sibling, nothing else
    firsts = [t for t in match.turns if "copy_of" not in t.meta]
    keys = [(t.meta["group"], t.meta["sample"]) for t in firsts]
    assert len(keys) == len(set(keys))
    for t in match.turns:
        if "copy_of" in t.meta:
            original = match.turns[t.meta["copy_of"]]
            assert (t.text, t.meta["prompt"]) == (original.text, original.meta["prompt"])


def test_half_branches_one_side_per_round_alternating() -> None:
    _, agents, _ = play("branched", {"mode": "half", "simultaneous": False})
    ns = [(r.observation.seat, r.observation.round, r.n) for a in agents.values() for r in a.seen]
    assert sorted(ns) == sorted(
        [("A", 0, 2), ("B", 0, 1), ("B", 0, 1), ("A", 1, 1), ("A", 1, 1)] + [("B", 1, 2)] * 2
    )


def test_single_random_branches_one_slot_chosen_per_match() -> None:
    slots = set()
    for k in range(16):
        _, agents, _ = play("branched", {"mode": "single-random"}, match_id=f"m{k}")
        branching = [
            (r.observation.seat, r.observation.round)
            for a in agents.values()
            for r in a.seen
            if r.n == 2
        ]
        assert len(branching) == 1
        slots.add(branching[0])
    assert len(slots) >= 3  # the branching speech moves around across matches


def test_what_speakers_and_judge_saw() -> None:
    _, agents, judge = play("branched", {"mode": "full", "simultaneous": True})
    b_first = agents["B"].seen[0].observation
    assert b_first.transcript == [] and b_first.context is not None  # simultaneous, reads passage
    a_second = agents["A"].seen[1].observation
    assert [(t.seat, t.round) for t in a_second.transcript] == [("A", 0), ("B", 0)]
    assert all(r.temperature == 1.0 for a in agents.values() for r in a.seen)
    for view in judge.views:
        assert SECRET not in view.model_dump_json()
        assert [o.seat for o in view.options] == ["A", "B"]
    _, seq_agents, _ = play("branched", {"mode": "full", "simultaneous": False})
    seen = [[t.text for t in r.observation.transcript] for r in seq_agents["B"].seen[:2]]
    assert seen == [["A speech r0 #0"], ["A speech r0 #1"]]  # B answers each A sibling


def _a_first_wins(view: JudgeView) -> list[float]:
    """P(A) = 0.9 on leaves where A opened with its first sample, else 0.2."""
    return [0.9, 0.1] if view.transcript[0].text == "A speech r0 #0" else [0.2, 0.8]


def test_node_values_are_mean_leaf_probabilities_for_the_speaker() -> None:
    match, _, _ = play("branched", {"mode": "full"}, judge=Looker(_a_first_wins))
    a0, a1 = match.turns[0], match.turns[1]
    assert a0.meta["value"] == pytest.approx(0.9) and a0.meta["leaves"] == 8
    assert a1.meta["value"] == pytest.approx(0.2)
    b_round0 = [t for t in match.turns if (t.seat, t.round) == ("B", 0)]
    assert {t.meta["leaves"] for t in b_round0} == {8}  # copies merged: every leaf below any
    assert all(t.meta["value"] == pytest.approx(0.45) for t in b_round0)
    verdict = match.verdict()
    assert verdict.probs["A"] == pytest.approx(0.55)  # main = mean over the 16 leaves
    assert len(match.node_verdicts()) == 16


def test_main_verdict_can_be_the_first_path() -> None:
    match, _, _ = play(
        "branched", {"mode": "half", "main": "first-path"}, judge=Looker(_a_first_wins)
    )
    assert match.verdict().probs["A"] == pytest.approx(0.9)
    assert len(match.node_verdicts()) == 4


def test_too_many_leaves_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="max_leaves"):
        get_registry().validate("protocol", "branched", {"speeches": 4, "branches": 3})


def test_extractive_alternatives_differ_at_temperature_zero() -> None:
    reg = get_registry()
    item = next(iter(reg.build("dataset", "bundled").items()))
    agents = {s: reg.build("agent", "extractive", {"max_quotes": 2}) for s in "AB"}
    match, _, _ = play("branched", {"mode": "full"}, agents=agents, item=item)
    firsts = [t for t in match.turns if "copy_of" not in t.meta]
    texts: dict[int, list[str]] = {}
    for t in firsts:
        texts.setdefault(t.meta["group"], []).append(t.text)
    differ = [len(set(group)) == 2 for group in texts.values()]
    assert len(differ) == 10 and sum(differ) >= 8  # sample 0: its best speech; 1: alternative


@pytest.mark.parametrize(
    "options",
    [{"mode": "full"}, {"mode": "half", "simultaneous": False}, {"mode": "single-random"}],
)
def test_branched_conforms(options: dict) -> None:
    report = check_protocol("branched", options)
    assert (
        report.judge_calls
        == report.matches * get_registry().validate("protocol", "branched", options).leaves()
    )


def test_every_leaf_verdict_is_in_the_ledger_and_the_metrics(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'l.db'}"
    run_tournament(
        {
            "tournament": {"name": "br", "protocol": "branched", "seed": 2},
            "protocol": {"mode": "half"},
            "dataset": {"plugin": "bundled", "limit": 3},
            "judge": {"plugin": "quote"},
            "players": [{"name": "q", "agent": "extractive", "options": {"max_quotes": 1}}],
            "schedule": {"kind": "self-play"},
        },
        url,
    )
    ledger = Ledger(url)
    matches = ledger.matches(tournament="br", status="done")
    assert len(matches) == 6
    for m in matches:
        turns = ledger.turns(m.id)
        nodes = ledger.node_verdicts(m.id)
        parents = {t.parent for t in turns if t.parent is not None}
        assert sorted(v.node for v in nodes) == sorted(t.idx for t in turns if t.idx not in parents)
        assert all("value" in t.meta and "prompt" in t.meta for t in turns)
        assert ledger.verdict(m.id).raw == "mean of 4 verdicts"
    stats = judge_stats(ledger, "br")
    assert stats.matches == 6 * 4  # every leaf counts, not one verdict per tree
    ledger.close()

"""Best-of-N: candidates, opponent replies, scoring, what is spoken and what the ledger keeps."""

from __future__ import annotations

import pytest
from protocol_kit import SECRET, Looker, Recorder, order, play

from arena_core.errors import ConfigError
from arena_core.ledger import Ledger
from arena_core.plugins import get_registry
from arena_core.testing import check_protocol, run_tournament
from arena_core.types import JudgeView


def prefer(mark: str, p: float = 0.9):
    """A judge giving A probability `p` when `mark` is in A's last speech, else 1 - p."""

    def probs(view: JudgeView) -> list[float]:
        a = [t.text for t in view.transcript if t.seat == "A"]
        q = p if a and mark in a[-1] else 1 - p
        return [q, 1 - q]

    return probs


def test_simultaneous_candidates_are_hidden_and_the_best_is_spoken() -> None:
    match, agents, judge = play(
        "best-of-n", {"candidates": 3, "opponents": 2}, judge=Looker(prefer("#2"))
    )
    assert order(match) == [
        ("A", "candidate", 0),
        ("A", "candidate", 0),
        ("B", "candidate", 0),
        ("B", "candidate", 0),
        ("A", "speech", 0),
        ("B", "speech", 0),
        ("A", "speech", 1),
        ("B", "speech", 1),
    ]
    spoken = match.turns[4]
    assert spoken.text == "A speech r0 #2" and spoken.branch == 2
    assert spoken.meta["bon"]["score"] == pytest.approx(0.9)
    cands = [t for t in match.turns if t.seat == "A" and t.round == 0]
    assert sorted(t.branch for t in cands) == [0, 1, 2]
    assert all(t.visible_to == [] for t in cands if t.phase == "candidate")
    assert sorted(t.meta["bon"]["score"] for t in cands) == pytest.approx([0.1, 0.1, 0.9])
    assert len({str(t.meta["prompt"]) for t in cands}) == 1
    # later speeches and the final verdict see spoken speeches only
    later = agents["A"].seen[-1].observation
    assert [t.text for t in later.transcript] == ["A speech r0 #2", "B speech r0 #0"]
    final = judge.views[-1]
    assert [t.phase for t in final.transcript] == ["speech"] * 4
    assert all(SECRET not in v.model_dump_json() for v in judge.views)


def test_simultaneous_replies_are_blind_sampled_once_from_the_speakers_own_model() -> None:
    match, agents, judge = play("best-of-n", {"candidates": 3, "opponents": 2})
    a_calls = [(r.observation.seat, r.observation.round, r.n) for r in agents["A"].seen]
    # A's own model samples its candidates, then B's replies once (blind, n=2), then round 1
    assert a_calls == [("A", 0, 3), ("B", 0, 2), ("A", 1, 1)]
    assert agents["A"].seen[1].observation.transcript == []
    bon = match.turns[0].meta["bon"]
    assert bon["opponents"] == ["B speech r0 #0", "B speech r0 #1"] and len(bon["scores"]) == 2
    assert len(judge.views) == 2 * 3 * 2 + 1  # seats x candidates x replies, then the verdict


def test_sequential_replies_answer_each_candidate_and_the_second_speaker_stands_alone() -> None:
    match, agents, judge = play(
        "best-of-n", {"candidates": 2, "opponents": 2, "simultaneous": False}
    )
    replies = [r for r in agents["A"].seen if r.observation.seat == "B"]
    assert [[t.text for t in r.observation.transcript] for r in replies] == [
        ["A speech r0 #0"],
        ["A speech r0 #1"],
    ]
    assert len({r.seed for r in replies}) == 2
    b_spoken = next(t for t in match.turns if t.seat == "B" and t.phase == "speech")
    assert b_spoken.meta["bon"]["opponents"] == [] and len(b_spoken.meta["bon"]["scores"]) == 1
    assert len(judge.views) == 2 * 2 + 2 * 1 + 1


def test_replies_from_the_actual_opponent() -> None:
    _, agents, _ = play("best-of-n", {"candidates": 2, "opponents": 1, "opponent": "actual"})
    # each agent samples its own candidates and, as the actual opponent, the other's replies
    assert [(r.observation.seat, r.n) for r in agents["A"].seen] == [("A", 2), ("A", 1), ("A", 1)]
    assert [(r.observation.seat, r.n) for r in agents["B"].seen] == [("B", 1), ("B", 2), ("B", 1)]


def test_min_and_mean_aggregate_over_replies() -> None:
    def judge(view: JudgeView) -> list[float]:
        texts = [t.text for t in view.transcript]
        if "A speech r0 #0" in texts:  # candidate 0 is great unless B's reply #1 lands
            return [0.2, 0.8] if "B speech r0 #1" in texts else [0.95, 0.05]
        return [0.55, 0.45]

    by_min, _, _ = play("best-of-n", {"candidates": 2, "best_of": ["A"]}, judge=Looker(judge))
    by_mean, _, _ = play(
        "best-of-n", {"candidates": 2, "best_of": ["A"], "aggregate": "mean"}, judge=Looker(judge)
    )
    spoken = [next(t for t in m.turns if t.phase == "speech") for m in (by_min, by_mean)]
    assert [t.text for t in spoken] == ["A speech r0 #1", "A speech r0 #0"]
    assert spoken[1].meta["bon"]["score"] == pytest.approx(0.575)


def test_a_separate_scorer_ranks_while_the_judge_only_decides() -> None:
    evidence = "<quote>A gull nest blocked the vent above the burner.</quote>"
    agents = {
        s: Recorder(lambda r, j: f"Candidate {j}. " + (evidence if j == 1 else "")) for s in "AB"
    }
    judge = Looker()
    match, _, _ = play(
        "best-of-n",
        {"candidates": 3, "opponents": 1, "scorer": {"plugin": "quote"}, "best_of": ["A"]},
        agents=agents,
        judge=judge,
    )
    assert len(judge.views) == 1  # the match's judge saw only the final transcript
    spoken = next(t for t in match.turns if t.phase == "speech" and t.seat == "A")
    assert spoken.text.startswith("Candidate 1")  # the quote judge credits the evidence
    assert spoken.meta["bon"]["score"] > 0.9


def test_a_misnamed_scorer_fails_at_config_time() -> None:
    with pytest.raises(ConfigError, match="did you mean 'length'"):
        get_registry().build("protocol", "best-of-n", {"scorer": {"plugin": "lenght"}})


def test_rounds_all_and_seat_selection() -> None:
    match, agents, _ = play("best-of-n", {"rounds": "all", "best_of": ["B"], "candidates": 2})
    assert [(r.observation.round, r.n) for r in agents["A"].seen] == [(0, 1), (1, 1)]
    assert sum(1 for t in match.turns if t.phase == "candidate") == 2  # B, both rounds


@pytest.mark.parametrize(
    "options",
    [{}, {"simultaneous": False, "opponents": 1}, {"rounds": "all", "opponents": 0}],
)
def test_best_of_n_conforms(options: dict) -> None:
    report = check_protocol("best-of-n", options)
    assert report.phases == {"speech", "candidate"}


def test_ledger_keeps_every_candidate_and_its_scores(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'l.db'}"
    run_tournament(
        {
            "tournament": {"name": "bon", "protocol": "best-of-n", "seed": 4},
            "protocol": {"candidates": 4, "opponents": 2},
            "dataset": {"plugin": "bundled", "limit": 2},
            "judge": {"plugin": "quote"},
            "players": [
                {"name": "q2", "agent": "extractive", "options": {"max_quotes": 2}},
                {"name": "q1", "agent": "extractive", "options": {"max_quotes": 1}},
            ],
        },
        url,
    )
    ledger = Ledger(url)
    matches = ledger.matches(tournament="bon", status="done")
    assert len(matches) == 8
    for m in matches:
        turns = ledger.turns(m.id)
        first = [t for t in turns if t.round == 0]
        assert len(first) == 8 and sum(t.phase == "speech" for t in first) == 2
        for seat in "AB":
            mine = [t for t in first if t.seat == seat]
            best = max(mine, key=lambda t: (t.meta["bon"]["score"], -t.branch))
            assert best.phase == "speech"
    ledger.close()

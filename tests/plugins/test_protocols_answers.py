"""Free-answer protocols (duel, self-play), the sampler agent and the scoring judges."""

from __future__ import annotations

import asyncio
import random

import pytest
from protocol_kit import ITEM, SECRET, Looker, Recorder, order, play

from arena_core.ledger import Ledger
from arena_core.plugins import get_registry
from arena_core.testing import check_agent, check_judge, check_protocol, run_tournament
from arena_core.types import AnswerOption, Item, JudgeView, Observation

REG = get_registry()


def _obs(item: Item = ITEM, **kw) -> Observation:
    base = {
        "seat": "policy",
        "phase": "answer",
        "question": item.question,
        "answers": item.answers,
        "context": item.context,
    }
    return Observation(**{**base, **kw})


# --- the sampler agent ---------------------------------------------------------------------------


def test_sampler_answers_vary_per_sample_and_replay_per_seed() -> None:
    agent = REG.build("agent", "sampler", {"quotes": 2, "elaborate": 3})
    texts = {agent.one(_obs(), random.Random(s))[0] for s in range(30)}
    assert len(texts) > 10
    lengths = {len(t.split()) for t in texts}
    assert len(lengths) > 3  # lengths differ, so a length judge has something to rank
    a = agent.one(_obs(), random.Random(5))
    assert a == agent.one(_obs(), random.Random(5))


def test_sampler_prefers_the_supported_answer_and_reports_its_choice() -> None:
    agent = REG.build("agent", "sampler", {"temperature": 0.5})
    picks = [agent.one(_obs(), random.Random(s))[1] for s in range(200)]
    assert picks.count(0) > picks.count(1) > 0  # the gull nest is in the passage twice over
    blind = REG.build("agent", "sampler", {})
    no_passage = [blind.one(_obs(context=None), random.Random(s))[1] for s in range(200)]
    assert 60 < no_passage.count(0) < 140  # without the passage it cannot tell


def test_sampler_without_candidates_answers_the_question() -> None:
    agent = REG.build("agent", "sampler", {})
    text, choice = agent.one(_obs(answers=[], context=None), random.Random(1))
    assert choice is None and ITEM.question in text


def test_sampler_unsafe_lines_and_fabrications_follow_their_rates() -> None:
    agent = REG.build("agent", "sampler", {"unsafe": 1.0, "fabricate": 1.0, "quotes": 1})
    text, _ = agent.one(_obs(), random.Random(3))
    assert any(line in text for line in agent.opts.unsafe_lines)
    safe = REG.build("agent", "sampler", {"unsafe": 0.0})
    assert not any(
        line in safe.one(_obs(), random.Random(s))[0]
        for s in range(50)
        for line in safe.opts.unsafe_lines
    )


def test_sampler_and_answering_extractive_conform() -> None:
    check_agent(lambda: REG.build("agent", "sampler", {"fabricate": 0.3, "unsafe": 0.3}))
    check_agent(lambda: REG.build("agent", "sampler", {}), protocol="duel")


def test_extractive_without_a_side_answers_with_the_best_supported_answer() -> None:
    agent = REG.build("agent", "extractive", {"max_quotes": 1})
    speech = agent.speech(_obs(), random.Random(0))
    assert ITEM.answers[0] in speech and "<quote>" in speech


# --- scoring judges ------------------------------------------------------------------------------


def _options_view(*texts: str) -> JudgeView:
    return JudgeView(
        protocol="duel",
        question="q",
        options=[
            AnswerOption(label=chr(65 + k), text=t, index=-1, seat=chr(65 + k))
            for k, t in enumerate(texts)
        ],
        transcript=[],
        item_id="i",
    )


@pytest.mark.parametrize("name", ["length", "keyword", "panel", "interactive-quote"])
def test_scoring_judges_conform(name: str) -> None:
    check_judge(name)


def test_length_and_keyword_judges_score_what_they_say() -> None:
    view = _options_view("short", "a much longer answer with a weapon and poisons in it")
    length = asyncio.run(REG.build("judge", "length", {"cap": 5}).decide(view))
    assert length.meta == {"scores": [1.0, 5.0], "kind": "reward"}
    assert length.probs[1] > length.probs[0]
    cost = asyncio.run(REG.build("judge", "keyword", {}).decide(view))
    assert cost.meta == {"scores": [0.0, 2.0], "kind": "cost"}
    assert cost.probs[0] > cost.probs[1]


def test_panel_keeps_every_score_and_puts_safety_first() -> None:
    view = _options_view("short and safe", "a much longer answer that mentions a weapon")
    safe_first = asyncio.run(REG.build("judge", "panel", {}).decide(view))
    assert safe_first.meta["scores"] == {"reward": [3.0, 8.0], "cost": [0.0, 1.0]}
    assert safe_first.meta["kinds"] == {"reward": "reward", "cost": "cost"}
    assert safe_first.probs[0] > 0.99  # the unsafe answer loses although longer
    first = asyncio.run(REG.build("judge", "panel", {"rule": "first"}).decide(view))
    assert first.probs[1] > first.probs[0]  # reward alone: longer wins
    both_unsafe = _options_view("a weapon", "a longer answer with a weapon")
    d = asyncio.run(REG.build("judge", "panel", {}).decide(both_unsafe))
    assert d.probs[1] > d.probs[0]  # among unsafe answers, reward still ranks


# --- duel ----------------------------------------------------------------------------------------


def test_duel_both_answer_blind_and_the_judge_sees_both_answers_only() -> None:
    match, agents, judge = play("duel")
    assert order(match) == [("A", "answer", 0), ("B", "answer", 0)]
    for seat in ("A", "B"):
        obs = agents[seat].seen[0].observation
        assert obs.transcript == [] and obs.my_answer is None and obs.context is not None
    prompts = [t.meta["prompt"] for t in match.turns]
    assert prompts[0] == prompts[1]  # the same prompt for both answerers
    view = judge.views[0]
    assert [(o.label, o.seat, o.text) for o in view.options] == [
        ("A", "A", "A answer r0 #0"),
        ("B", "B", "B answer r0 #0"),
    ]
    assert SECRET not in view.model_dump_json()
    assert match.verdict().winner == "A"


def test_duel_can_hide_the_passage_and_the_candidates() -> None:
    _, agents, _ = play("duel", {"context": False, "show_answers": False})
    obs = agents["A"].seen[0].observation
    assert obs.context is None and obs.answers == []
    assert SECRET not in agents["A"].seen[0].model_dump_json()


def test_duel_verdict_in_the_ledger_keeps_every_judges_scores(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'l.db'}"
    summary = run_tournament(
        {
            "tournament": {"name": "duel", "protocol": "duel", "seed": 3},
            "dataset": {"plugin": "bundled", "limit": 5},
            "judge": {"plugin": "panel"},
            "players": [
                {"name": "reckless", "agent": "sampler", "options": {"unsafe": 1.0}},
                {"name": "careful", "agent": "sampler"},
            ],
            "schedule": {"kind": "red-blue", "red": "reckless"},
        },
        url,
    )
    assert summary.done == 10 and summary.failed == 0  # 5 items x both presentation orders
    ledger = Ledger(url)
    for m in ledger.matches(tournament="duel"):
        v = ledger.verdict(m.id)
        assert set(v.meta["scores"]) == {"reward", "cost"}
        reckless = next(s for s, p in m.seats.items() if p == "reckless")
        k = "AB".index(reckless)
        assert v.meta["scores"]["cost"][k] >= 1  # the unsafe line was caught
        assert v.winner == "careful"  # safe-first: the careful answer always wins
        assert [t.phase for t in ledger.turns(m.id)] == ["answer", "answer"]
    ledger.close()


# --- self-play -----------------------------------------------------------------------------------


def test_self_play_samples_once_and_compares_every_pair_both_ways() -> None:
    judge = Looker(lambda v: [0.8, 0.2] if "#0" in v.options[0].text else [0.4, 0.6])
    match, agents, _ = play("self-play", {"samples": 3}, judge=judge)
    assert len(agents["policy"].seen) == 1 and agents["policy"].seen[0].n == 3
    assert [(t.seat, t.phase, t.branch) for t in match.turns] == [
        ("policy", "answer", 0),
        ("policy", "answer", 1),
        ("policy", "answer", 2),
    ]
    assert len({str(t.meta["prompt"]) for t in match.turns}) == 1
    assert agents["policy"].seen[0].observation.transcript == []
    nodes = [n for n, _, _ in match.decisions]
    assert nodes == [1, 1000, 2, 2000, 1002, 2001]  # 1000 * option A's turn + option B's turn
    for node, _, view in match.decisions:
        a, b = divmod(node, 1000)
        assert [o.text for o in view.options] == [match.turns[a].shown, match.turns[b].shown]
        assert [t.seat for t in view.transcript] == ["A", "B"]
        assert SECRET not in view.model_dump_json()
    wins = [t.meta["win_prob"] for t in match.turns]
    assert sum(wins) == pytest.approx(1.5)  # each comparison hands out one unit of preference
    assert wins[0] == max(wins)  # the judge favours answer #0 in every order
    assert match.verdict().meta == {} and match.main is not None
    assert len(match.node_verdicts()) == 6


def test_self_play_one_order_halves_the_comparisons() -> None:
    match, _, judge = play("self-play", {"samples": 4, "both_orders": False})
    assert len(judge.views) == 6 and len(match.turns) == 4


@pytest.mark.parametrize(
    ("name", "options"),
    [("duel", {}), ("self-play", {"samples": 3}), ("self-play", {"both_orders": False})],
)
def test_answer_protocols_conform(name: str, options: dict) -> None:
    report = check_protocol(name, options)
    assert report.phases == {"answer"}


def test_self_play_tournament_ledger_holds_every_pairwise_outcome(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'l.db'}"
    run_tournament(
        {
            "tournament": {"name": "sp", "protocol": "self-play", "seed": 3},
            "protocol": {"samples": 4},
            "dataset": {"plugin": "bundled", "limit": 3},
            "judge": {"plugin": "quote"},
            "players": [
                {"name": "pol", "agent": "sampler", "options": {"quotes": 3, "fabricate": 0.3}}
            ],
            "schedule": {"kind": "self-play"},
        },
        url,
    )
    ledger = Ledger(url)
    matches = ledger.matches(tournament="sp", status="done")
    assert len(matches) == 3  # one variant per item: nobody is assigned a side
    for m in matches:
        turns = ledger.turns(m.id)
        nodes = ledger.node_verdicts(m.id)
        assert len(turns) == 4 and len(nodes) == 12
        assert {divmod(v.node, 1000) for v in nodes} == {
            (a, b) for a in range(4) for b in range(4) if a != b
        }
        assert sum(t.meta["win_prob"] for t in turns) == pytest.approx(2.0)
    ledger.close()


def test_a_judge_that_cannot_tell_answers_apart_gives_even_win_probabilities() -> None:
    agents = {"policy": Recorder(lambda r, j: "same")}
    match, _, _ = play("self-play", {"samples": 2}, agents=agents, judge=Looker(lambda v: [1, 1]))
    assert [t.meta["win_prob"] for t in match.turns] == [0.5, 0.5]

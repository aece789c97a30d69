"""Speech protocols: scratchpads, the interactive judge, double consultancy, the empty baseline."""

from __future__ import annotations

import asyncio

import pytest
from arena_plugins.text import INVALID, VERIFIED
from protocol_kit import ITEM, SECRET, Asker, Looker, Recorder, order, play

from arena_core.ledger import Ledger
from arena_core.plugins import get_registry
from arena_core.testing import check_protocol, run_tournament
from arena_core.types import AnswerOption, JudgeView, QuoteCheck, TurnView

# --- scratchpad ----------------------------------------------------------------------------------


def test_simultaneous_scratchpads_come_first_and_stay_private() -> None:
    match, agents, judge = play("debate", {"speeches": 2, "scratchpad": True})
    assert order(match) == [
        ("A", "scratchpad", 0),
        ("B", "scratchpad", 0),
        ("A", "speech", 0),
        ("B", "speech", 0),
        ("A", "scratchpad", 1),
        ("B", "scratchpad", 1),
        ("A", "speech", 1),
        ("B", "speech", 1),
    ]
    for t in match.turns:
        assert t.visible_to == ([t.seat] if t.phase == "scratchpad" else None)
    a_speech = agents["A"].seen[1].observation
    assert a_speech.phase == "speech"
    assert [(t.seat, t.phase) for t in a_speech.transcript] == [("A", "scratchpad")]
    # the scratchpad prompt asks for private notes, the speech prompt for a speech
    assert "Nobody else sees these notes" in agents["A"].seen[0].messages[-1].content
    assert "Now give your speech" in agents["A"].seen[1].messages[-1].content
    view = judge.views[0]
    assert [t.phase for t in view.transcript] == ["speech"] * 4
    assert SECRET not in view.model_dump_json()


def test_sequential_scratchpad_precedes_each_speech() -> None:
    match, agents, _ = play("debate", {"speeches": 1, "simultaneous": False, "scratchpad": True})
    assert order(match) == [
        ("A", "scratchpad", 0),
        ("A", "speech", 0),
        ("B", "scratchpad", 0),
        ("B", "speech", 0),
    ]
    b_note = agents["B"].seen[0].observation
    assert [(t.seat, t.phase) for t in b_note.transcript] == [("A", "speech")]


def test_scratchpads_are_cut_to_their_own_limit() -> None:
    agents = {s: Recorder(lambda r, j: "word " * 300) for s in ("A", "B")}
    match, _, _ = play(
        "debate",
        {"speeches": 1, "scratchpad": True, "scratchpad_words": 10, "max_words": 50},
        agents=agents,
    )
    note, speech = match.turns[0], match.turns[2]
    assert len(note.shown.split()) == 10 and note.meta["truncated"]
    assert len(speech.shown.split()) == 50
    assert agents["A"].seen[0].observation.max_words == 10


def test_extractive_scratchpad_plans_without_using_up_its_quotes() -> None:
    agent = get_registry().build("agent", "extractive", {"max_quotes": 1})
    match, _, _ = play(
        "debate", {"speeches": 1, "scratchpad": True}, agents={"A": agent, "B": Recorder()}
    )
    note, speech = match.turns[0], match.turns[2]
    assert note.text.startswith("Notes for round 1") and "<quote>" not in note.text
    planned = note.text.split("Lines to quote: ")[1]
    assert f"<quote>{planned}</quote>" in speech.text  # the speech quotes what was planned


# --- interactive judge ---------------------------------------------------------------------------


def test_judge_question_opens_each_later_round_and_everyone_sees_it() -> None:
    judge = Asker()
    match, agents, _ = play("debate", {"speeches": 3, "questions": True}, judge=judge)
    assert order(match) == [
        ("A", "speech", 0),
        ("B", "speech", 0),
        ("judge", "question", 1),
        ("A", "speech", 1),
        ("B", "speech", 1),
        ("judge", "question", 2),
        ("A", "speech", 2),
        ("B", "speech", 2),
    ]
    q = match.turns[2]
    assert q.visible_to is None and q.player is None and q.text == "Question 1: why?"
    # the judge was asked with what it may see: both first speeches, never the passage
    assert [t.seat for t in judge.asked[0].transcript] == ["A", "B"]
    assert SECRET not in judge.asked[0].model_dump_json()
    # both debaters read the question before their round-2 speech
    for seat in ("A", "B"):
        seen = agents[seat].seen[1].observation.transcript
        assert ("judge", "question") in [(t.seat, t.phase) for t in seen]
        assert "Question 1: why?" in agents[seat].seen[1].messages[-1].content
    assert ("judge", "question") in [(t.seat, t.phase) for t in judge.views[0].transcript]


def test_no_question_without_the_option_or_the_capability() -> None:
    judge = Asker()
    match, _, _ = play("debate", {"speeches": 2}, judge=judge)
    assert not judge.asked and all(t.seat != "judge" for t in match.turns)
    match, _, _ = play("debate", {"speeches": 2, "questions": True}, judge=Looker())
    assert all(t.seat != "judge" for t in match.turns)


def test_consultancy_takes_questions_too() -> None:
    match, _, _ = play("consultancy", {"speeches": 2, "questions": True}, judge=Asker())
    assert order(match) == [
        ("consultant", "speech", 0),
        ("judge", "question", 1),
        ("consultant", "speech", 1),
    ]


def _checked(text: str) -> QuoteCheck:
    """The quote check the engine records beside text it marked (judges read this, not tags)."""
    return QuoteCheck(verified=VERIFIED.findall(text), invalid=INVALID.findall(text))


def _view(texts: dict[str, str], asked: int = 0) -> JudgeView:
    transcript = [
        TurnView(seat=s, round=0, phase="speech", text=t, quotes=_checked(t))
        for s, t in texts.items()
    ]
    transcript += [TurnView(seat="judge", round=1, phase="question", text="?")] * asked
    return JudgeView(
        protocol="debate",
        question=ITEM.question,
        options=[
            AnswerOption(label="A", text=ITEM.answers[0], index=0, seat="A"),
            AnswerOption(label="B", text=ITEM.answers[1], index=1, seat="B"),
        ],
        transcript=transcript,
        item_id="x",
    )


def test_interactive_quote_judge_asks_the_weak_side_while_unsure() -> None:
    judge = get_registry().build("judge", "interactive-quote", {"unsure_below": 1.0})
    strong = "<v_quote>A gull nest blocked the vent above the burner.</v_quote>"
    fake = "<invalid_quote>The storm cracked the lens.</invalid_quote>"
    q = asyncio.run(judge.ask(_view({"A": strong, "B": fake})))
    assert q is not None and q.startswith("Question for B: a quote of yours was not found")
    assert ITEM.answers[1] in q
    storm = "<v_quote>The storm cracked the lens.</v_quote>"
    thin = asyncio.run(judge.ask(_view({"A": "I say A.", "B": storm})))
    assert thin is not None and thin.startswith("Question for A: your case is thin")
    # already sure, already asked, or nothing said yet: no question
    sure = get_registry().build("judge", "interactive-quote", {"unsure_below": 0.5})
    assert asyncio.run(sure.ask(_view({"A": strong, "B": fake}))) is None
    assert asyncio.run(judge.ask(_view({"A": strong, "B": fake}, asked=1))) is None
    assert asyncio.run(judge.ask(_view({}))) is None
    # it decides exactly like the quote judge
    plain = get_registry().build("judge", "quote")
    view = _view({"A": strong, "B": fake})
    assert asyncio.run(judge.decide(view)).probs == asyncio.run(plain.decide(view)).probs


def test_interactive_quote_judge_in_a_real_debate_asks_once() -> None:
    reg = get_registry()
    agents = {"A": reg.build("agent", "extractive", {}), "B": reg.build("agent", "random", {})}
    judge = reg.build("judge", "interactive-quote", {"unsure_below": 1.0})
    match, _, _ = play("debate", {"speeches": 3, "questions": True}, agents=agents, judge=judge)
    questions = [t for t in match.turns if t.phase == "question"]
    assert len(questions) == 1 and questions[0].round == 1
    assert questions[0].text.startswith("Question for ")


# --- double consultancy --------------------------------------------------------------------------


def test_double_consultants_never_read_each_other_but_the_judge_reads_both() -> None:
    match, agents, judge = play(
        "double-consultancy", {"speeches": 2, "questions": True}, judge=Asker()
    )
    assert order(match) == [
        ("A", "speech", 0),
        ("B", "speech", 0),
        ("judge", "question", 1),
        ("A", "speech", 1),
        ("B", "speech", 1),
    ]
    for seat in ("A", "B"):
        later = agents[seat].seen[1]
        assert {t.seat for t in later.observation.transcript} == {seat, "judge"}
        assert "You are a consultant" in later.messages[0].content
        assert later.observation.context is not None  # consultants read the passage
    view = judge.views[0]
    assert [t.seat for t in view.transcript] == ["A", "B", "judge", "A", "B"]
    assert [(o.seat, o.index) for o in view.options] == [("A", 0), ("B", 1)]
    assert SECRET not in view.model_dump_json()
    assert match.verdict().winner == "A" and match.verdict().correct


# --- empty baseline ------------------------------------------------------------------------------


def test_empty_asks_the_judge_alone_with_a_seeded_answer_order() -> None:
    firsts = set()
    for k in range(12):
        match, agents, judge = play("empty", match_id=f"m{k}")
        assert match.turns == [] and agents == {}
        view = judge.views[0]
        assert view.transcript == [] and all(o.seat is None for o in view.options)
        assert sorted(o.index for o in view.options) == [0, 1]
        firsts.add(view.options[0].index)
        # the looker always picks the first option: right exactly when gold is shown first
        assert match.verdict().correct == (view.options[0].index == ITEM.gold)
        assert match.verdict().winner is None
    assert firsts == {0, 1}  # both orders occur across matches
    replays = {play("empty", match_id="m0")[2].views[0].options[0].index for _ in range(3)}
    assert len(replays) == 1  # the order is fixed by the match id


@pytest.mark.parametrize(("order_", "first"), [("gold-first", 0), ("gold-second", 1)])
def test_empty_fixed_orders(order_: str, first: int) -> None:
    _, _, judge = play("empty", {"order": order_})
    assert judge.views[0].options[0].index == first


# --- conformance and the engine ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("debate", {"scratchpad": True, "questions": True}),
        ("debate", {"scratchpad": True, "simultaneous": False}),
        ("consultancy", {"scratchpad": True}),
        ("double-consultancy", {}),
        ("empty", {}),
    ],
)
def test_new_speech_protocols_conform(name: str, options: dict) -> None:
    report = check_protocol(name, options)
    assert report.judge_calls == report.matches


def test_tournament_ledger_keeps_scratchpads_questions_and_the_empty_baseline(
    tmp_path,
) -> None:
    url = f"sqlite:///{tmp_path / 'l.db'}"
    base = {
        "dataset": {"plugin": "bundled", "limit": 3},
        "players": [{"name": "q", "agent": "extractive", "options": {"max_quotes": 2}}],
        "schedule": {"kind": "self-play"},
    }
    run_tournament(
        {
            "tournament": {"name": "dc", "protocol": "debate", "seed": 1},
            "protocol": {"speeches": 2, "scratchpad": True, "questions": True},
            "judge": {"plugin": "interactive-quote", "options": {"unsure_below": 1.0}},
            **base,
        },
        url,
    )
    run_tournament(
        {
            "tournament": {"name": "none", "protocol": "empty", "seed": 1},
            "judge": {"plugin": "quote"},
            "dataset": base["dataset"],
        },
        url,
    )
    ledger = Ledger(url)
    done = ledger.matches(tournament="dc", status="done")
    assert len(done) == 6  # 3 items x 2 sides, self-play
    turns = ledger.turns(done[0].id)
    phases = [t.phase for t in turns]
    assert phases.count("scratchpad") == 4 and phases.count("question") == 1
    assert all(t.visible_to == [t.seat] for t in turns if t.phase == "scratchpad")
    empty = ledger.matches(tournament="none", status="done")
    assert len(empty) == 3 and all(not ledger.turns(m.id) for m in empty)
    assert all(ledger.verdict(m.id) is not None for m in empty)
    ledger.close()


@pytest.mark.parametrize("name", ["debate", "consultancy", "double-consultancy"])
def test_speech_temperature_and_copied_runs_reach_speakers_and_judge(name: str) -> None:
    """`temperature` is what speakers are asked (greedy by default); with `copied`, a run copied
    word for word from the passage reaches the judge as a verified quote, untagged."""

    def copier(r: object, j: int) -> str:
        return "Everyone knows a gull nest blocked the vent above it. <b>trust me</b>"

    _, greedy, _ = play(name, {"speeches": 1})
    assert all(r.temperature == 0.0 for a in greedy.values() for r in a.seen)
    seats = get_registry().build("protocol", name, {}).seats
    agents = {s: Recorder(copier) for s in seats}
    _, agents, judge = play(name, {"speeches": 1, "temperature": 0.7, "copied": 5}, agents=agents)
    assert all(r.temperature == 0.7 for a in agents.values() for r in a.seen)
    for t in judge.views[-1].transcript:
        assert t.quotes is not None
        assert t.quotes.verified == ["A gull nest blocked the vent above"]
        assert "<b>" not in t.text and "<v_quote>" in t.text
    _, _, plain = play(name, {"speeches": 1})
    assert all(t.quotes.verified == [] for t in plain.views[-1].transcript if t.quotes)

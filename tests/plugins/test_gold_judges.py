"""Gold judges: length, bag-of-words, numeric and exact-match math, a user function."""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path

import pytest

from arena_core.errors import ConfigError
from arena_core.plugins import get_registry
from arena_core.testing import check_judge
from arena_core.types import AnswerOption, Decision, JudgeView, TurnView

from arena_plugins.judges.gold import last_number, question_value, safe_eval  # isort: skip


def view(
    answers: list[str],
    speeches: dict[str, str] | None = None,
    question: str = "What is 12 * (3 + 4)?",
    item_id: str = "m1",
) -> JudgeView:
    seats = ["A", "B", "C"]
    return JudgeView(
        protocol="debate",
        question=question,
        options=[
            AnswerOption(label=seats[i], text=a, index=i, seat=seats[i])
            for i, a in enumerate(answers)
        ],
        transcript=[
            TurnView(seat=s, round=0, phase="speech", text=t) for s, t in (speeches or {}).items()
        ],
        item_id=item_id,
    )


def decide(options: dict[str, object], v: JudgeView) -> Decision:
    return asyncio.run(get_registry().build("judge", "gold", options).decide(v))


def test_length_prefers_longer_or_the_target() -> None:
    v = view(["x", "y"], {"A": "one two three", "B": "one two three four five six"})
    assert decide({"task": "length"}, v).probs == [0.0, 1.0]
    assert decide({"task": "length", "target_length": 3}, v).probs == [1.0, 0.0]
    d = decide({"task": "length", "unit": "chars", "temperature": 5.0}, v)
    assert d.meta["scores"] == [13.0, 27.0] and d.probs[1] == pytest.approx(
        1 / (1 + math.exp(-14 / 5))
    )
    # option texts when nobody spoke, and a tie is a draw
    assert decide({"task": "length"}, view(["a b", "c d"])).probs == [0.5, 0.5]


def test_bag_of_words_counts_target_words() -> None:
    v = view(["x", "y"], {"A": "The Harbour froze; the harbour!", "B": "harbours and ice, ice"})
    d = decide({"task": "bag-of-words", "words": ["harbour", "ice"]}, v)
    assert d.meta["scores"] == [2.0, 2.0] and d.probs == [0.5, 0.5]
    d = decide({"task": "bag-of-words", "words": ["Harbour"], "case_sensitive": True}, v)
    assert d.meta["scores"] == [1.0, 0.0]


def test_numeric_answers_against_the_arithmetic_in_the_question() -> None:
    assert question_value("What is 12 * (3 + 4)?") == 84
    assert question_value("In 1995, what is 3+4?") == 7
    assert last_number("so 1,234.5, or rather 3/4") == 0.75
    with pytest.raises(ValueError):
        safe_eval("__import__('os')")
    speeches = {"A": "Seven twelves... the answer is 74.", "B": "12 * 7 = 84, so 84."}
    d = decide({"task": "numeric"}, view(["74", "84"], speeches))
    assert d.probs == [0.0, 1.0] and d.meta["scores"] == [0.0, 1.0]
    assert decide({"task": "numeric", "text": "option"}, view(["84", "85"])).probs == [1.0, 0.0]


def test_exact_match_against_a_reference_file(tmp_path: Path) -> None:
    path = tmp_path / "answers.jsonl"
    path.write_text(json.dumps({"id": "q7", "answer": "The Lighthouse"}) + "\n")
    v = view(["a lighthouse", "the ferry"], question="Where?", item_id="q7")
    d = decide({"task": "exact-match", "answers": str(path)}, v)
    assert d.probs == [1.0, 0.0]
    speeches = {"A": "Surely the ferry.\nAnswer: the ferry", "B": "It is: lighthouse."}
    d = decide(
        {"task": "exact-match", "answers": str(path)}, view(["x", "y"], speeches, "Where?", "q7")
    )
    assert d.meta["scores"] == [0.0, 0.0]  # "It is: lighthouse." is no exact answer
    with pytest.raises(ValueError, match="no reference"):
        decide({"task": "exact-match", "answers": str(path)}, view(["x", "y"], item_id="zz"))


def test_user_function_module_colon_function(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "my_gold.py").write_text(
        "def vowels(question, text):\n    return sum(c in 'aeiou' for c in text)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    d = decide({"task": "function", "function": "my_gold:vowels"}, view(["aaa", "bbb", "ae"]))
    assert d.meta["scores"] == [3.0, 0.0, 2.0] and d.probs == [1.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="not a callable"):
        get_registry().build("judge", "gold", {"task": "function", "function": "my_gold:nope"})


def test_options_are_validated() -> None:
    with pytest.raises(ConfigError, match="needs 'words'"):
        get_registry().build("judge", "gold", {"task": "bag-of-words"})
    with pytest.raises(ConfigError, match="unknown option 'word'"):
        get_registry().build("judge", "gold", {"task": "bag-of-words", "word": ["x"]})


def test_gold_judges_conform() -> None:
    registry = get_registry()
    check_judge(registry.build("judge", "gold", {"task": "length"}))
    check_judge(registry.build("judge", "gold", {"task": "bag-of-words", "words": ["harbour"]}))


def test_evidence_counts_own_answer_words_in_own_verified_quotes_only() -> None:
    from arena_core.types import QuoteCheck

    def turn(seat: str, verified: list[str], invalid: list[str] = [], checked: bool = True):  # noqa: B006
        text = " ".join(f"<v_quote>{v}</v_quote>" for v in verified)
        quotes = QuoteCheck(verified=verified, invalid=invalid) if checked else None
        return TurnView(seat=seat, round=0, phase="speech", text=text, quotes=quotes)

    v = view(
        ["The brass gears seized", "The keeper broke the lamp"],
        question="Why did the lamp fail?",
    )
    v = v.model_copy(
        update={
            "transcript": [
                # A: "brass", "gear", "seiz" quoted; B's quotes mention gears but B argues the
                # keeper: they count for nobody but B's own words ("keeper", "broke").
                turn("A", ["the brass gears had seized"]),
                turn("B", ["the keeper polished the gears"], invalid=["the keeper broke it"]),
                # Tags typed into an unchecked turn prove nothing.
                TurnView(seat="B", round=1, phase="speech", text="<v_quote>keeper broke</v_quote>"),
            ]
        }
    )
    registry = get_registry()
    judge = registry.build("judge", "gold", {"task": "evidence"})
    decision = asyncio.run(judge.decide(v))
    # A: brass, gear, seiz = 3 ("lamp" is the question's); B: keeper = 1, less 1 fabrication.
    assert decision.meta["scores"] == [3.0, 0.0]
    assert decision.probs == [1.0, 0.0]

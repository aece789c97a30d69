"""Reward-model and cost-model judges on a tiny DeBERTa-v2 classifier (and a tiny Llama
classifier with a chat template), through the real AutoModelForSequenceClassification path."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import pytest

from arena_core.plugins import get_registry
from arena_core.testing import check_judge
from arena_core.types import AnswerOption, JudgeView, TurnView

pytest.importorskip("transformers")

QUESTION = "Why did the ferry stop running in winter?"
ANSWERS = ["The harbour froze over", "The captain retired"]


def view(i: int = 0, transcript: list[TurnView] | None = None) -> JudgeView:
    return JudgeView(
        protocol="best-of-n",
        question=QUESTION,
        options=[
            AnswerOption(label="A", text=f"{ANSWERS[0]} ({i})", index=0, seat="A"),
            AnswerOption(label="B", text=f"{ANSWERS[1]} ({i})", index=1, seat="B"),
        ],
        transcript=transcript or [],
        item_id=f"i{i}",
    )


def manual_scores(path: Path, pairs: list[tuple[str, str]]) -> list[float]:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path).eval()
    with torch.inference_mode():
        return [float(model(**tok(q, t, return_tensors="pt")).logits[0, 0]) for q, t in pairs]


def test_reward_model_scores_batches_and_bradley_terry(tiny_reward_dir: Path) -> None:
    judge = get_registry().build("judge", "reward-model", {"model": str(tiny_reward_dir)})
    views = [view(i) for i in range(4)]

    async def main() -> list:
        return await asyncio.gather(*(judge.decide(v) for v in views))

    decisions = asyncio.run(main())
    assert judge.model.batcher(judge.opts).sizes == [8]  # 4 matches x 2 options, one pass
    for v, d in zip(views, decisions, strict=True):
        expected = manual_scores(tiny_reward_dir, [(QUESTION, o.text) for o in v.options])
        assert d.meta["scores"] == pytest.approx(expected, abs=1e-4)  # padding changes nothing
        assert d.meta["kind"] == "reward"
        a, b = d.meta["scores"]
        assert d.probs[0] == pytest.approx(1 / (1 + math.exp(b - a)))
    assert len({d.meta["scores"][0] for d in decisions}) == 4
    asyncio.run(judge.aclose())


def test_cost_model_prefers_lower_cost_and_flags_safety(tiny_reward_dir: Path) -> None:
    reward = get_registry().build("judge", "reward-model", {"model": str(tiny_reward_dir)})
    a, b = asyncio.run(reward.decide(view())).meta["scores"]
    mid = (a + b) / 2
    cost = get_registry().build(
        "judge", "cost-model", {"model": str(tiny_reward_dir), "threshold": mid}
    )
    assert cost.model is reward.model  # one copy of the weights
    d = asyncio.run(cost.decide(view()))
    assert d.meta["kind"] == "cost" and d.meta["scores"] == pytest.approx([a, b], abs=1e-5)
    assert d.meta["safe"] == [a <= mid, b <= mid] and sorted(d.meta["safe"]) == [False, True]
    assert d.probs[0] == pytest.approx(1 / (1 + math.exp(a - b)))  # lower cost, higher prob
    for j in (reward, cost):
        asyncio.run(j.aclose())


def test_speeches_are_scored_when_the_seats_spoke(tiny_reward_dir: Path) -> None:
    speech = [
        TurnView(seat="A", round=0, phase="speech", text="It froze, see the ledger."),
        TurnView(seat="B", round=0, phase="speech", text="He retired in spring."),
    ]
    judge = get_registry().build("judge", "reward-model", {"model": str(tiny_reward_dir)})
    d = asyncio.run(judge.decide(view(0, speech)))
    expected = manual_scores(tiny_reward_dir, [(QUESTION, t.text) for t in speech])
    assert d.meta["scores"] == pytest.approx(expected, abs=1e-4)
    asyncio.run(judge.aclose())


def test_reward_and_cost_models_conform(tiny_reward_dir: Path) -> None:
    for name in ("reward-model", "cost-model"):
        check_judge(get_registry().build("judge", name, {"model": str(tiny_reward_dir)}))


def test_decoder_reward_model_reads_the_chat_template(tiny_llama_dir: Path, tmp_path: Path) -> None:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(0)
    rm = AutoModelForSequenceClassification.from_pretrained(tiny_llama_dir, num_labels=1)
    rm.save_pretrained(tmp_path / "rm")
    AutoTokenizer.from_pretrained(tiny_llama_dir).save_pretrained(tmp_path / "rm")
    judge = get_registry().build("judge", "reward-model", {"model": str(tmp_path / "rm")})
    text, pair = judge.model.render(QUESTION, "It froze.", "auto")
    assert pair is None and text.startswith("<s><|user|>\n" + QUESTION) and "<|assistant|>" in text
    d = asyncio.run(judge.decide(view()))
    tok = AutoTokenizer.from_pretrained(tmp_path / "rm")
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "rm").eval()
    with torch.inference_mode():
        alone = [
            float(
                model(
                    **tok(
                        judge.model.render(QUESTION, o.text, "auto")[0],
                        return_tensors="pt",
                        add_special_tokens=False,
                    )
                ).logits[0, 0]
            )
            for o in view().options
        ]
    assert d.meta["scores"] == pytest.approx(alone, abs=1e-4)
    asyncio.run(judge.aclose())

"""The `apo` learner end to end on tiny models, as the loop recipe runs it:

1. a `reward-model` run on human pairs produces the first reward model (a ledger judge);
2. the policy (a tiny Llama) answers each item several times in a `self-play` tournament judged
   by that reward model, named by its ledger name: every sample and score is a ledger row;
3. `apo` from those ledger pairs, with `--judge-base` the reward model: the reward model's
   score gap between gold answers and the policy's samples grows over its update, the policy is
   trained on each prompt's best sample, and both are registered with their lineage.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("trl")
pytest.importorskip("torch")

from arena_plugins.learners.apo import apo_pairs, group_samples

from arena_core.learning.learn import (
    Base,
    PairData,
    learn,
    ledger_pairs,
    normalize,
    resolve_base,
    resolve_judge_base,
)
from arena_core.learning.pairs import PairQuery
from arena_core.ledger import LearnerRun, Ledger
from arena_core.plugins import get_registry
from arena_core.testing import run_tournament
from arena_core.types import AnswerOption, JudgeView
from tests.core.conftest import TINY_ITEMS

RM_FAST = {
    "full_finetune": True,
    "learning_rate": 2e-3,
    "epochs": 4,
    "batch_size": 8,
    "weight_decay": 0.0,
    "lr_scheduler": "constant",
    "max_length": 96,
    "torch_threads": 2,
}


def test_apo_pairs_weigh_coeff_over_the_samples_and_join_by_item() -> None:
    rows = [
        normalize({"prompt": "q1", "chosen": "a", "rejected": "b", "item_id": "s1"}),
        normalize({"prompt": "q1", "chosen": "b", "rejected": "c", "item_id": "s1"}),
        normalize({"prompt": "q2", "chosen": "x", "rejected": "gold two", "item_id": "s2"}),
        normalize({"prompt": "q9", "chosen": "y", "rejected": "z", "item_id": "nogold"}),
    ]
    samples = group_samples(rows)
    assert samples["s1"]["texts"] == ["a", "b", "c"]
    gold = {"s1": ("Question one?", "gold one"), "s2": ("Question two?", "gold two")}
    pairs = apo_pairs(samples, gold, 0.1)
    by_item = {p.group: [] for p in pairs}
    for p in pairs:
        by_item[p.group].append(p)
    assert [p.rejected for p in by_item["s1"]] == ["a", "b", "c"]
    assert all(p.chosen == "gold one" and p.question == "Question one?" for p in by_item["s1"])
    assert all(p.weight == pytest.approx(0.1 / 3) for p in by_item["s1"])
    # A sample equal to the gold answer is no adversarial pair; items without gold have none.
    assert [p.rejected for p in by_item["s2"]] == ["x"] and by_item["s2"][0].weight == 0.1
    assert "nogold" not in by_item


@pytest.fixture(scope="module")
def apo_run(
    tiny_llama_dir: Path, tiny_reward_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("apo")
    items = root / "items.jsonl"
    items.write_text(
        "".join(
            json.dumps({"id": i, "question": q, "answers": a, "gold": 0}) + "\n"
            for i, q, a, _ in TINY_ITEMS
        ),
        encoding="utf-8",
    )
    human = root / "human.jsonl"
    human.write_text(
        "".join(
            json.dumps({"id": f"h{i}", "prompt": q, "chosen": a[0], "rejected": a[1]}) + "\n"
            for i, q, a, _ in TINY_ITEMS
        ),
        encoding="utf-8",
    )
    url = f"sqlite:///{root / 'ledger.db'}"
    ledger = Ledger(url)
    registry = get_registry()
    # 1. the first reward model, from human pairs
    rows = [
        normalize({"prompt": q, "chosen": a[0], "rejected": a[1], "item_id": i})
        for i, q, a, _ in TINY_ITEMS
    ]
    learn(
        ledger,
        registry,
        learner="reward-model",
        options={**RM_FAST, "eval_fraction": 0.0},
        data=PairData(rows, {"source": "human"}),
        base=Base(model=str(tiny_reward_dir)),
        name="rm0",
        out_dir=root / "rm0",
    )
    ledger.close()
    # 2. the policy's samples: self-play judged by rm0, by its ledger name
    policy = {
        "name": "p0",
        "agent": "transformers",
        "options": {"model": str(tiny_llama_dir), "max_new_tokens": 12, "min_new_tokens": 4},
    }
    summary = run_tournament(
        {
            "tournament": {"name": "apo-sp", "protocol": "self-play", "seed": 1, "timeout": 120},
            "protocol": {"samples": 3, "both_orders": False, "max_words": 12},
            "dataset": {"plugin": "jsonl", "options": {"path": str(items)}},
            "judge": {"plugin": "learned", "options": {"name": "rm0", "ledger": url}},
            "players": [policy],
            "schedule": {"kind": "self-play"},
        },
        url,
    )
    assert summary.failed == 0 and summary.done == len(TINY_ITEMS)
    # 3. one APO iteration from those samples
    ledger = Ledger(url)
    data = ledger_pairs(ledger, PairQuery(tournaments=["apo-sp"]), registry)
    result = learn(
        ledger,
        registry,
        learner="apo",
        options={
            "gold": {"plugin": "jsonl", "options": {"path": str(items)}},
            "human": {"plugin": "preferences", "options": {"path": str(human)}},
            "rm": {**RM_FAST, "epochs": 3},
            "apo_coeff": 1.0,  # a few samples only: a visible pull of the gold-vs-sample term
            "sft": {"max_steps": 2, "batch_size": 2, "max_length": 128},
            "torch_threads": 2,
        },
        data=data,
        base=resolve_base(ledger, "p0"),
        judge_base=resolve_judge_base(ledger, "rm0"),
        name="p1",
        out_dir=root / "p1",
    )
    ledger.close()
    return {"url": url, "result": result, "data": data, "root": root}


def test_apo_widens_the_gold_sample_gap_and_registers_player_and_judge(
    apo_run: dict[str, Any],
) -> None:
    result = apo_run["result"]
    apo = result.summary["metrics"]["apo"]
    assert apo["items_with_gold"] == len(TINY_ITEMS) and apo["apo_pairs"] >= len(TINY_ITEMS)
    assert apo["human_pairs"] == len(TINY_ITEMS)
    assert apo["gap_after"] > apo["gap_before"]  # the adversarial update did its job
    assert apo["gap_after"] > 0
    assert result.player == "p1" and result.judge == "p1-rm"
    ledger = Ledger(apo_run["url"], create=False)
    player, judge = ledger.player("p1"), ledger.judge("p1-rm")
    assert player is not None and player.parent == "p0" and player.agent == "transformers"
    assert Path(player.options["adapter"]) == Path(result.checkpoint)
    assert judge is not None and judge.parent == "rm0" and judge.plugin == "reward-model"
    assert judge.learner_run == player.learner_run == result.run_id
    with ledger.session() as s:
        run = s.get(LearnerRun, result.run_id)
    assert run is not None and run.status == "done"
    assert run.data_query["tournaments"] == ["apo-sp"]  # lineage: the samples' tournament
    rescored = run.metrics["apo"]["rescored"]  # the updated RM's score of every sample
    assert {r["item_id"] for r in rescored} == {i for i, *_ in TINY_ITEMS}
    for r in rescored:
        assert r["scores"][r["best"]] == max(r["scores"])
    ledger.close()


def test_the_apo_reward_model_loads_by_name_and_prefers_gold(apo_run: dict[str, Any]) -> None:
    judge = get_registry().build("judge", "learned", {"name": "p1-rm", "ledger": apo_run["url"]})
    item_id, question, answers, _ = TINY_ITEMS[0]
    sample = next(r["chosen"] for r in apo_run["data"].rows if r["item_id"] == item_id)
    view = JudgeView(
        protocol="duel",
        question=question,
        options=[
            AnswerOption(label="A", text=answers[0], index=0, seat="A"),
            AnswerOption(label="B", text=sample, index=1, seat="B"),
        ],
        transcript=[],
        item_id=item_id,
    )
    d = asyncio.run(judge.decide(view))
    assert d.meta["kind"] == "reward" and d.probs[0] > 0.5
    asyncio.run(judge.aclose())

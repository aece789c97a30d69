"""The `reward-model` and `cost-model` learners: safe-RLHF's losses against hand-computed values,
a cost model that puts safe answers below zero, held-out figures and lineage in the ledger, and
the produced judges, named by their ledger names, deciding a red/blue duel as a panel.

Training runs once per module on a tiny DeBERTa-v2 classifier (full fine-tuning, a toy set in
which unsafe answers talk about storms and wind)."""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("trl")

from arena_plugins.learners.reward import (  # noqa: E402
    cost_loss,
    cost_pairs,
    held_out,
    reward_loss,
    split_pairs,
)

from arena_core.errors import UsageError  # noqa: E402
from arena_core.learning.learn import Base, PairData, learn, normalize  # noqa: E402
from arena_core.ledger import LearnerRun, Ledger  # noqa: E402
from arena_core.plugins import get_registry  # noqa: E402
from arena_core.testing import run_tournament  # noqa: E402
from arena_core.types import AnswerOption, JudgeView  # noqa: E402

LOG2 = math.log(2.0)
QUESTIONS = [
    "Why was the lamp dark?",
    "Who found the boat?",
    "What blocked the pass?",
    "What did the ledger record?",
]
SAFE = [
    "The keeper wrote that the oil ran out",
    "A fisher found the boat at dawn",
    "Deep snow blocked the pass",
    "She logged every ship",
]
UNSAFE = [
    "A storm broke the glass and the wind blew",
    "The storm broke the reef and the wind",
    "The wind and storm broke the pass",
    "Only storms broke the wind",
]
TOY = [
    {
        "prompt": [{"role": "user", "content": QUESTIONS[i % 4]}],
        "chosen": f"{SAFE[i % 4]} {i}",
        "rejected": UNSAFE[(i + 1) % 4],
        "item_id": f"toy{i}",
        "meta": {"chosen_safe": True, "rejected_safe": False, "safer_is": "chosen"},
    }
    for i in range(24)
]
FAST = {
    "full_finetune": True,
    "learning_rate": 3e-3,
    "epochs": 5,
    "batch_size": 8,
    "eval_fraction": 0.25,
    "weight_decay": 0.0,
    "lr_scheduler": "constant",
    "max_length": 64,
    "torch_threads": 2,
}


# --- the losses by hand ---------------------------------------------------------------------------


def test_reward_loss_matches_hand_computed_values() -> None:
    chosen, rejected = torch.tensor([1.0, 0.5]), torch.tensor([0.0, 1.0])
    # -log s(1) = 0.313262, -log s(-0.5) = 0.974077: mean 0.643669; the regulariser adds
    # 0.001 * mean(1, 0.25, 0, 1) = 0.0005625.
    assert reward_loss(chosen, rejected, reg=0.001).item() == pytest.approx(0.6442318358, abs=1e-6)
    assert reward_loss(chosen, rejected, reg=0.0).item() == pytest.approx(0.6436693358, abs=1e-6)
    # Per-pair weights (APO's 0.1 / 4 on an adversarial pair): mean(0.313262, 0.025 * 0.974077).
    weight = torch.tensor([1.0, 0.025])
    assert reward_loss(chosen, rejected, weight, reg=0.001).item() == pytest.approx(
        0.1693693061, abs=1e-6
    )
    assert reward_loss(torch.zeros(3), torch.zeros(3), reg=0.5).item() == pytest.approx(LOG2)


def test_cost_loss_matches_hand_computed_values_with_the_sign_terms() -> None:
    safer, unsafer = torch.tensor([-1.0, 0.5]), torch.tensor([2.0, 0.0])
    # Pair 1: the unsafer answer is unsafe (e = +1), the safer one safe (e = -1):
    #   -log s(2 - -1) - log s(-1 * -1) - log s(+1 * 2) = 0.048587 + 0.313262 + 0.126928
    # Pair 2: both safe (e = -1): -log s(0 - 0.5) - log s(-0.5) - log s(-0) = 0.974077 * 2 + log 2
    # mean 1.565039, plus 0.001 * mean(1, 0.25, 4, 0) = 0.0013125.
    e_safer, e_unsafer = torch.tensor([-1.0, -1.0]), torch.tensor([1.0, -1.0])
    loss = cost_loss(safer, unsafer, e_safer, e_unsafer, reg=0.001)
    assert loss.item() == pytest.approx(1.5663515995, abs=1e-6)
    # The sign terms are what differ from a plain ranking loss: with the signs flipped (safe
    # answers pushed above zero) the value changes.
    flipped = cost_loss(safer, unsafer, -e_safer, -e_unsafer, reg=0.001)
    assert flipped.item() != pytest.approx(loss.item(), abs=1e-3)


def test_cost_pairs_put_the_safer_answer_first_and_need_flags() -> None:
    row = normalize(
        {
            "prompt": "q",
            "chosen": "helpful but unsafe",
            "rejected": "refusal",
            "meta": {"chosen_safe": False, "rejected_safe": True, "safer_is": "rejected"},
        }
    )
    (p,) = cost_pairs([row])
    assert (p.chosen, p.rejected, p.chosen_safe, p.rejected_safe) == (
        "refusal",
        "helpful but unsafe",
        True,
        False,
    )
    with pytest.raises(UsageError, match=r"meta\.chosen_safe"):
        cost_pairs([normalize({"prompt": "q", "chosen": "a", "rejected": "b"})])


def test_the_held_out_split_is_stable_and_keeps_items_whole() -> None:
    pairs = cost_pairs([normalize(r) for r in TOY])
    train, test = split_pairs(pairs, 0.25)
    assert train and test and len(train) + len(test) == len(pairs)
    assert split_pairs(pairs, 0.25) == (train, test)
    assert {p.group for p in train}.isdisjoint({p.group for p in test})
    assert not any(held_out(p.group, 0.0) for p in pairs)


# --- trained once ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tiny_reward_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A reward model and a cost model learned from the toy set, registered in one ledger."""
    root = tmp_path_factory.mktemp("judges")
    url = f"sqlite:///{root / 'ledger.db'}"
    ledger = Ledger(url)
    registry = get_registry()
    data = PairData([normalize(r) for r in TOY], {"source": "toy"})
    out = {"url": url}
    for learner in ("reward-model", "cost-model"):
        result = learn(
            ledger,
            registry,
            learner=learner,
            options=FAST,
            data=data,
            base=Base(model=str(tiny_reward_dir)),
            name=f"toy-{learner}",
            out_dir=root / learner,
        )
        out[learner] = result
    ledger.close()
    return out


def view(question: str, answers: list[str]) -> JudgeView:
    return JudgeView(
        protocol="duel",
        question=question,
        options=[
            AnswerOption(label=c, text=t, index=i, seat=c)
            for i, (c, t) in enumerate(zip("AB", answers, strict=False))
        ],
        transcript=[],
        item_id="v",
    )


def test_the_cost_model_puts_safe_answers_below_zero(trained: dict[str, Any]) -> None:
    result = trained["cost-model"]
    after, before = result.summary["after"], result.summary["before"]
    assert after["pairs"] >= 3  # held-out items, never trained on
    assert after["mean_cost_safe"] < 0 < after["mean_cost_unsafe"]
    assert after["sign_accuracy"] == 1.0 and after["accuracy"] == 1.0
    assert after["loss"] < before["loss"]
    # The produced judge, named by its ledger name: its safe flags are cost <= 0.
    judge = get_registry().build(
        "judge", "learned", {"name": "toy-cost-model", "ledger": trained["url"]}
    )
    trained_on = next(r for r in TOY if not held_out(r["item_id"], FAST["eval_fraction"]))
    d = asyncio.run(
        judge.decide(view(QUESTIONS[0], [trained_on["chosen"], trained_on["rejected"]]))
    )
    assert d.meta["kind"] == "cost" and d.meta["safe"] == [True, False]
    assert d.meta["scores"][0] <= 0 < d.meta["scores"][1] and d.probs[0] > 0.5
    asyncio.run(judge.aclose())


def test_the_reward_model_is_registered_with_lineage_and_held_out_figures(
    trained: dict[str, Any], tiny_reward_dir: Path
) -> None:
    result = trained["reward-model"]
    ledger = Ledger(trained["url"], create=False)
    row = ledger.judge("toy-reward-model")
    assert row is not None and row.plugin == "reward-model" and row.kind == "reward"
    assert row.base_model == str(tiny_reward_dir) and row.parent is None
    assert Path(row.options["model"]) == (Path(result.checkpoint)).resolve()
    assert ledger.player("toy-reward-model") is None
    with ledger.session() as s:
        run = s.get(LearnerRun, row.learner_run)
    assert run is not None and run.status == "done" and run.learner == "reward-model"
    assert run.data_query == {"source": "toy"}
    assert run.metrics["eval"]["accuracy"] == 1.0 and "accuracy" in run.metrics["eval_before"]
    assert run.metrics["held_out_pairs"] == run.metrics["eval"]["pairs"]
    ledger.close()
    judge = get_registry().build("judge", "reward-model", row.options)
    d = asyncio.run(judge.decide(view(QUESTIONS[0], [TOY[0]["chosen"], TOY[0]["rejected"]])))
    assert d.meta["scores"][0] > d.meta["scores"][1]
    asyncio.run(judge.aclose())


def test_the_produced_judges_decide_a_red_blue_duel_as_a_panel(
    trained: dict[str, Any], tmp_path: Path
) -> None:
    url = trained["url"]
    panel = {
        "rule": "safe-first",
        "judges": [
            {
                "name": "reward",
                "plugin": "learned",
                "options": {"name": "toy-reward-model", "ledger": url},
            },
            {
                "name": "cost",
                "plugin": "learned",
                "options": {"name": "toy-cost-model", "ledger": url},
            },
        ],
    }
    duel_url = f"sqlite:///{tmp_path / 'duel.db'}"
    summary = run_tournament(
        {
            "tournament": {"name": "duel", "protocol": "duel", "seed": 3},
            "dataset": {"plugin": "bundled", "limit": 3},
            "judge": {"plugin": "panel", "options": panel},
            "players": [
                {"name": "reckless", "agent": "sampler", "options": {"unsafe": 1.0}},
                {"name": "careful", "agent": "sampler"},
            ],
            "schedule": {"kind": "red-blue", "red": "reckless"},
        },
        duel_url,
    )
    assert summary.done == 6 and summary.failed == 0  # 3 items x both presentation orders
    ledger = Ledger(duel_url, create=False)
    for m in ledger.matches(tournament="duel"):
        v = ledger.verdict(m.id)
        assert v is not None and set(v.meta["scores"]) == {"reward", "cost"}
        reward, cost = v.meta["scores"]["reward"], v.meta["scores"]["cost"]
        safe = [c <= 0 for c in cost]
        # safe-first: a safe answer beats an unsafe one, then the reward model decides.
        rank = [(s, r) for s, r in zip(safe, reward, strict=True)]
        winner_seat = "AB"[max(range(2), key=lambda i: rank[i])]
        assert v.winner == m.seats[winner_seat]
    ledger.close()


def test_arena_learn_trains_a_cost_model_from_pku_saferlhf(
    tiny_reward_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The command as a user types it: the dataset's safety flags reach the cost loss."""
    import argparse

    from arena_core.cli.learn import add_learn_arguments, learn_command

    fixture = Path(__file__).parent.parent / "fixtures" / "datasets" / "pku-saferlhf.jsonl"
    url = f"sqlite:///{tmp_path / 'l.db'}"
    p = argparse.ArgumentParser()
    add_learn_arguments(p)
    argv = ["--learner", "cost-model", "--ledger", url, "--dataset", "pku-saferlhf"]
    argv += ["-d", f"path={json.dumps(str(fixture))}", "-d", 'prefer="safer"']
    argv += ["--base", str(tiny_reward_dir), "--register-as", "pku-cost", "--out"]
    argv += [str(tmp_path / "cm"), "-o", "max_steps=2", "-o", "batch_size=2"]
    argv += ["-o", "full_finetune=true", "-o", "eval_fraction=0.0", "-o", "torch_threads=2"]
    assert learn_command(p.parse_args(argv)) == 0
    out = capsys.readouterr().out
    assert "judge 'pku-cost'" in out and 'plugin = "cost-model"' in out
    ledger = Ledger(url, create=False)
    row = ledger.judge("pku-cost")
    assert row is not None and row.kind == "cost" and row.base_model == str(tiny_reward_dir)
    with ledger.session() as s:
        run = s.get(LearnerRun, row.learner_run)
    assert run is not None and run.data_query["dataset"] == "pku-saferlhf"
    assert run.metrics["steps_trained"] == 2
    ledger.close()

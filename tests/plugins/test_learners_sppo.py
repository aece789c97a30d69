"""The `sppo` learner and the self-play data it reads.

What would be wrong if SPPO were wired wrong: the loss at init is the formula on hand-computed
numbers; trained on one prompt, beta * lr_w settles at P_w - 1/2 and beta * lr_l at P_l - 1/2
(trl's `sppo_hard` would push them to +-1/2; swapped or unscaled P would land elsewhere); and P
rebuilt from the ledger equals P computed directly from the judge's pairwise logits, with tied
(identical) and missing pairs.
"""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path

import pytest
from pydantic import ValidationError

pytest.importorskip("trl")
torch = pytest.importorskip("torch")

from arena_plugins.learners.sppo import (  # noqa: E402
    SPPOLearner,
    SPPOOptions,
    sppo_loss,
    sppo_rows,
)
from arena_plugins.protocols.self_play import preference, record_preference  # noqa: E402

from arena_core.learning.pairs import PairQuery, pairs, records  # noqa: E402
from arena_core.ledger import Ledger, VerdictRow  # noqa: E402
from arena_core.testing import run_tournament  # noqa: E402


def sig(x: float) -> float:
    return 1 / (1 + math.exp(-x))


PROMPT = [{"role": "user", "content": "Why was the lamp dark?"}]
FAST = {
    "torch_threads": 2,
    "max_length": 128,
    "batch_size": 1,
    "full_finetune": False,
    "optimizer": "adamw_torch",
    "warmup": 0.0,
    "beta": 0.1,
}


def match_pairs(p: dict[str, float], match_id: str = "m1") -> list[dict]:
    """The pairs a self-play match exports: every two answers, each scored with its P."""
    texts = list(p)
    out = []
    for i, a in enumerate(texts):
        for b in texts[i + 1 :]:
            c, r = (a, b) if p[a] >= p[b] else (b, a)
            out.append(
                {
                    "prompt": PROMPT,
                    "chosen": c,
                    "rejected": r,
                    "score_chosen": p[c],
                    "score_rejected": p[r],
                    "match_id": match_id,
                }
            )
    return out


# --- the loss and the rows by hand ----------------------------------------------------------------


def test_sppo_loss_matches_hand_computed_values() -> None:
    # beta 0.1, P_w 0.8, P_l 0.3: targets 3 and -2. At lr = 0: 1/2 (9 + 4) = 6.5.
    zero = sppo_loss(torch.zeros(1), torch.zeros(1), torch.tensor([0.8]), torch.tensor([0.3]), 0.1)
    assert zero.item() == pytest.approx(6.5)
    # lr_w = 1, lr_l = -1: 1/2 ((1 - 3)^2 + (-1 + 2)^2) = 2.5; at the targets, 0.
    some = sppo_loss(
        torch.tensor([1.0, 3.0]),
        torch.tensor([-1.0, -2.0]),
        torch.tensor([0.8, 0.8]),
        torch.tensor([0.3, 0.3]),
        0.1,
    )
    assert some.tolist() == pytest.approx([2.5, 0.0], abs=1e-6)


def test_defaults_are_the_papers_and_options_are_checked() -> None:
    o = SPPOOptions()
    assert (o.beta, o.learning_rate, o.optimizer, o.warmup, o.epochs, o.batch_size) == (
        0.001,
        5e-7,
        "rmsprop",
        0.1,
        1.0,
        8,
    )
    assert o.full_finetune and o.lr_scheduler == "linear" and o.custom
    with pytest.raises(ValidationError):
        SPPOOptions(loss_type=["sigmoid"])  # type: ignore[call-arg]


def test_rows_are_the_best_and_worst_answer_of_each_match() -> None:
    data = match_pairs({"a": 0.7, "b": 0.55, "c": 0.5, "d": 0.25}) + match_pairs(
        {"x": 0.5, "y": 0.5}, "m2"
    )
    rows, ties = sppo_rows(data)
    assert ties == 1  # m2: nothing to learn
    assert [(r.chosen, r.rejected, r.p_chosen, r.p_rejected) for r in rows] == [
        ("a", "d", 0.7, 0.25)
    ]
    # A pair without the answers' P (a dataset pair, say) is refused, naming what is missing.
    with pytest.raises(ValueError, match="score_chosen"):
        sppo_rows([{"prompt": PROMPT, "chosen": "a", "rejected": "b", "match_id": "m"}])


# --- in the trainer -------------------------------------------------------------------------------


def test_one_prompt_converges_to_the_win_probability_targets(
    tiny_llama_dir: Path, tmp_path: Path
) -> None:
    """LoRA starts at the reference (lr = 0): loss 6.5 at init; after training, beta * lr_w =
    P_w - 1/2 = 0.3 and beta * lr_l = P_l - 1/2 = -0.2 (sppo_hard: +0.5 and -0.5)."""
    data = match_pairs({"The oil ran out.": 0.8, "A storm.": 0.5, "Nobody knows why.": 0.3})
    logs: list[dict] = []
    learner = SPPOLearner(SPPOOptions(**FAST, learning_rate=3e-3, max_steps=30, lora_r=8))
    out = learner.fit(data, str(tiny_llama_dir), tmp_path / "s1", on_log=logs.append)
    s = learner.summary
    assert s["learner"] == "sppo" and s["prompts"] == 1 and s["kind"] == "adapter"
    assert (out / "adapter_model.safetensors").exists()
    assert s["before"]["loss"] == pytest.approx(6.5, abs=1e-4)
    assert s["after"]["rewards/chosen"] == pytest.approx(0.3, abs=0.03)
    assert s["after"]["rewards/rejected"] == pytest.approx(-0.2, abs=0.03)
    assert s["after"]["loss"] < 0.1
    assert next(r["loss"] for r in logs if "loss" in r) == pytest.approx(6.5, abs=1e-3)


def test_iterating_measures_against_the_previous_iterate(
    tiny_llama_dir: Path, tmp_path: Path
) -> None:
    data = match_pairs({"The oil ran out.": 0.8, "Nobody knows why.": 0.3})
    first = SPPOLearner(SPPOOptions(**FAST, learning_rate=3e-3, max_steps=10, lora_r=8))
    first.fit(data, str(tiny_llama_dir), tmp_path / "s1")
    assert first.summary["after"]["loss"] < 6.5 - 1
    second = SPPOLearner(SPPOOptions(**FAST, learning_rate=1e-3, max_steps=1))
    second.fit(data, str(tiny_llama_dir), tmp_path / "s2", adapter=str(tmp_path / "s1"))
    # Against the base model the first iterate's progress would show; against itself lr = 0.
    assert second.summary["before"]["loss"] == pytest.approx(6.5, abs=1e-4)


# --- P from the ledger ----------------------------------------------------------------------------


def test_preference_by_hand_with_a_missing_pair() -> None:
    def cmp(d: float) -> dict:
        return {"comparisons": [[0.0, d / 2], [-d / 2, 0.0]]}

    # PairRM logits: Delta_01 = 1.5 (both orders), Delta_02 = 0.6, pair (1, 2) never judged.
    nodes = [
        (1, {"A": 0.6, "B": 0.4}, cmp(1.5)),
        (1000, {"A": 0.4, "B": 0.6}, cmp(-1.5)),
        (2, {"A": 0.5, "B": 0.5}, cmp(0.6)),
    ]
    pref = preference([0, 1, 2], nodes)
    assert pref.strength == pytest.approx([0.7, -0.5, -0.2])  # (1/K) sum_j Delta_ij
    p01, p02, p12 = sig(1.2), sig(0.9), sig(-0.3)
    assert pref.win_prob == pytest.approx(
        [(0.5 + p01 + p02) / 3, (1 - p01 + 0.5 + p12) / 3, (1 - p02 + 1 - p12 + 0.5) / 3]
    )
    # Any other judge: P_ij is its probability, averaged over orders; a missing pair is 1/2.
    plain = [(node, probs, {}) for node, probs, _ in nodes]
    pref = preference([0, 1, 2], plain)
    assert pref.strength is None
    assert pref.matrix[0][1] == pytest.approx(0.6) and pref.matrix[1][2] == 0.5
    assert pref.win_prob == pytest.approx([(0.5 + 0.6 + 0.5) / 3, (0.4 + 0.5 + 0.5) / 3, 0.5])


def test_win_probabilities_rebuilt_from_the_ledger_equal_the_judges(tmp_path: Path) -> None:
    """Self-play under a tiny PairRM; answers that repeat one another (ties) and a pair whose
    verdicts are removed from the ledger (missing): P from the ledger = P from C by hand."""
    from arena_plugins.agents.tiny_model import build_tiny_pairrm

    from arena_core.plugins import get_registry

    ranker = build_tiny_pairrm(tmp_path / "pairrm")
    items = tmp_path / "items.jsonl"
    rows = [
        ("q1", "Why was the lamp dark?", "The keeper wrote that the oil ran out at nine."),
        ("q2", "Who found the boat?", "A fisher found the boat at dawn near the reef."),
    ]
    items.write_text(
        "".join(
            json.dumps({"id": i, "question": q, "answers": ["yes", "no"], "context": c}) + "\n"
            for i, q, c in rows
        ),
        encoding="utf-8",
    )
    url = f"sqlite:///{tmp_path / 'l.db'}"
    run_tournament(
        {
            "tournament": {"name": "sp", "protocol": "self-play", "seed": 5},
            "protocol": {"samples": 4},
            "dataset": {"plugin": "jsonl", "options": {"path": str(items)}},
            "judge": {"plugin": "pairrm", "options": {"model": str(ranker)}},
            # one quoted sentence, shuffled at random: some answers repeat, some differ
            "players": [{"name": "pol", "agent": "random", "options": {"fabricate": 0.5}}],
            "schedule": {"kind": "self-play"},
        },
        url,
    )
    ledger = Ledger(url)
    matches = ledger.matches(tournament="sp", status="done")
    assert len(matches) == 2
    victim = matches[0]
    with ledger.session() as s:  # the pair of answers 1 and 2 goes missing
        for node in (1002, 2001):
            s.delete(s.get(VerdictRow, (victim.id, node)))
        s.commit()
    judge = get_registry().build("judge", "pairrm", {"model": str(ranker)})
    tournament = ledger.tournament("sp")
    repeated = 0
    exported = {}
    for row in pairs(ledger, PairQuery(tournaments=["sp"])):
        exported[(row["match_id"], row["chosen"])] = row["score_chosen"]
        exported[(row["match_id"], row["rejected"])] = row["score_rejected"]
    for record in records(ledger, tournament):
        texts = [t.shown for t in record.turns]
        repeated += len(texts) - len(set(texts))
        c = asyncio.run(judge.comparisons(record.match.item["question"], texts))
        if record.match.id == victim.id:
            c[1][2] = c[2][1] = 0.0
        k = len(texts)
        s_ = [sum(c[i][j] - c[j][i] for j in range(k)) / k for i in range(k)]
        expected = [
            sum(0.5 if i == j else sig(s_[i] - s_[j]) for j in range(k)) / k for i in range(k)
        ]
        pref = record_preference(record)
        assert pref.strength == pytest.approx(s_, abs=1e-5)
        assert pref.win_prob == pytest.approx(expected, abs=1e-5)
        for t, p in zip(record.turns, pref.win_prob, strict=True):
            unique = texts.count(t.shown) == 1  # a pair row names its answers by text
            if unique and (record.match.id, t.text) in exported:  # what the sppo learner reads
                assert exported[(record.match.id, t.text)] == pytest.approx(p, abs=1e-12)
            if record.match.id != victim.id:  # computed during play from the same verdicts
                assert t.meta["win_prob"] == pytest.approx(p, abs=1e-12)
    assert repeated > 0  # ties were part of it
    ledger.close()

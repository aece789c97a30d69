"""The `d2po` learner: pair selection, gold values, the gold judge's distinct bag-of-words, and one
run through `arena learn`'s `learn()` on a tiny Llama with a scripted gold judge.

The run starts from a discriminator trained to prefer the WRONG answer of every pair; the gold
judge (a test plugin counting its calls) prefers longer completions. One-token completions keep
the discriminator's task learnable from a dozen labels, so the test can ask for what D2PO
promises: relabelled pairs follow gold, the discriminator's agreement with gold on fresh pairs
rises, and the gold calls equal the budget exactly (each one a `rejudge` match in the ledger).
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, ValidationError

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from arena_plugins.judges.gold import GoldJudge, GoldOptions  # noqa: E402
from arena_plugins.learners.d2po import (  # noqa: E402
    D2POOptions,
    Discriminator,
    gold_values,
    select_pairs,
)
from arena_plugins.learners.online import Policy, question_of  # noqa: E402
from sqlmodel import select  # noqa: E402

from arena_core.hookspecs import hookimpl  # noqa: E402
from arena_core.interfaces import Judge  # noqa: E402
from arena_core.learning.learn import Base, PairData, learn  # noqa: E402
from arena_core.ledger import DONE, LearnerRun, Ledger, MatchRow  # noqa: E402
from arena_core.plugins import get_registry  # noqa: E402
from arena_core.types import AnswerOption, Decision, JudgeView  # noqa: E402

PROMPTS = [[{"role": "user", "content": f"Name the harbour of town {i}."}] for i in range(8)]
FAST = {"max_new_tokens": 1, "torch_threads": 2, "disc_learning_rate": 1e-2, "disc_batch_size": 8}


def view(*texts: str) -> JudgeView:
    options = [AnswerOption(label=chr(65 + i), text=t, index=i) for i, t in enumerate(texts)]
    return JudgeView(protocol="t", question="q", options=options, transcript=[], item_id="i")


# --- small pieces ---------------------------------------------------------------------------------


def test_gold_bag_of_words_counts_distinct_words_when_asked() -> None:
    text = "Ice and ice and more ICE in the harbour."
    every = GoldJudge(GoldOptions(task="bag-of-words", words=["ice", "harbour", "fog"]))
    distinct = GoldJudge(
        GoldOptions(task="bag-of-words", words=["ice", "harbour", "fog"], distinct=True)
    )
    v = view(text)
    assert every.score(v, v.options[0], text) == 4.0  # three ice + one harbour
    assert distinct.score(v, v.options[0], text) == 2.0  # ice, harbour


def test_conf_selection_takes_the_least_confident_pairs() -> None:
    margins = [3.0, -0.1, 0.5, -2.0, 0.05]
    assert select_pairs(margins, 3, "conf", random.Random(0)) == [4, 1, 2]
    assert select_pairs(margins, 0, "conf", random.Random(0)) == []
    picked = select_pairs(margins, 3, "rand", random.Random(0))
    assert len(set(picked)) == 3 and set(picked) <= set(range(5))


def test_gold_values_read_scores_costs_and_probabilities() -> None:
    assert gold_values({"scores": [2, 5], "kind": "reward"}, [0.0, 1.0]) == (2.0, 5.0)
    assert gold_values({"scores": [2, 5], "kind": "cost"}, [1.0, 0.0]) == (-2.0, -5.0)
    assert gold_values({}, [0.7, 0.3]) == (0.7, 0.3)  # an LLM or human judge: probabilities


def test_options_keep_a_window_consistent() -> None:
    with pytest.raises(ValidationError, match="relabels_per_window"):
        D2POOptions(relabels_per_window=10, window_samples=16)
    with pytest.raises(ValidationError):
        D2POOptions(selection="best")  # type: ignore[arg-type]


# --- one run with a scripted gold judge -----------------------------------------------------------


class ScriptedOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    word: str


CALLS: list[list[str]] = []


def gold_score(text: str, word: str) -> float:
    """A one-word bag-of-words: 1 when the text holds the word."""
    return float(word in text.split())


class ScriptedGold(Judge):
    """Scores a one-word bag-of-words; records every call so the test can count them."""

    def __init__(self, options: ScriptedOptions) -> None:
        self.word = options.word

    async def decide(self, view: JudgeView) -> Decision:
        texts = [o.text for o in view.options]
        CALLS.append(texts)
        scores = [gold_score(t, self.word) for t in texts]
        top = max(scores)
        probs = [1.0 if s == top else 0.0 for s in scores]
        return Decision(
            probs=[p / sum(probs) for p in probs], meta={"scores": scores, "kind": "reward"}
        )


class ScriptedPlugin:
    @hookimpl
    def arena_register(self, registry: Any) -> None:
        registry.add("judge", "scripted-gold", ScriptedGold, ScriptedOptions)


@pytest.fixture(scope="module")
def scripted() -> Iterator[None]:
    from arena_core.plugins import register_plugin, unregister_plugin

    register_plugin(ScriptedPlugin(), name="arena-test-scripted-gold")
    yield
    unregister_plugin("arena-test-scripted-gold")


def samples(model: Path, n_prompts: int, seed: int) -> list[tuple[str, str, str]]:
    """(question, a, b): two one-token completions per prompt from the base policy."""
    torch.manual_seed(seed)
    policy = Policy(str(model), None, D2POOptions(**FAST, seed=seed))  # type: ignore[arg-type]
    prompts = [PROMPTS[i % len(PROMPTS)] for i in range(n_prompts)]
    s = policy.sample(prompts, 2)
    return [(question_of(p), s.texts[2 * i], s.texts[2 * i + 1]) for i, p in enumerate(prompts)]


def decisive(pairs: list[tuple[str, str, str]], word: str) -> list[tuple[str, str, str]]:
    return [(q, a, b) for q, a, b in pairs if gold_score(a, word) != gold_score(b, word)]


def agreement(model_dir: Path, pairs: list[tuple[str, str, str]], word: str) -> float:
    """How often the `reward-model` judge, loading the checkpoint, ranks a pair as gold does."""
    judge = get_registry().build("judge", "reward-model", {"model": str(model_dir)})

    async def run() -> list[list[float]]:
        try:
            return [await judge.score(q, [a, b]) for q, a, b in pairs]
        finally:
            await judge.aclose()

    hits = [
        (sa > sb) == (gold_score(a, word) > gold_score(b, word))
        for (sa, sb), (_, a, b) in zip(asyncio.run(run()), pairs, strict=True)
    ]
    return sum(hits) / len(hits)


def test_d2po_follows_gold_spends_the_budget_exactly_and_the_discriminator_learns(
    scripted: None, tiny_llama_dir: Path, tmp_path: Path
) -> None:
    model = tiny_llama_dir
    # Gold likes the policy's most frequent completion (a one-word bag-of-words), so about
    # half the pairs are decisive and what the discriminator learns carries to fresh pairs.
    first = samples(model, 16, seed=1)
    word = Counter(t for _, a, b in first for t in (a, b)).most_common(1)[0][0]
    wrong = decisive(first, word)
    held_out = decisive(samples(model, 48, seed=2), word)
    assert len(wrong) >= 4 and len(held_out) >= 10
    # A discriminator that starts wrong: trained to prefer what gold does not.
    disc = Discriminator(str(model), D2POOptions(**FAST))  # type: ignore[arg-type]
    disc.train(
        [
            (q, b, a) if gold_score(a, word) > gold_score(b, word) else (q, a, b)
            for q, a, b in wrong
        ],
        4,
        0,
    )
    start = tmp_path / "disc0"
    disc.save(start)
    before = agreement(start, held_out, word)
    assert before < 0.5  # it does start wrong

    budget = 16
    ledger = Ledger(f"sqlite:///{tmp_path / 'arena.db'}")
    CALLS.clear()
    rows = [{"prompt": p, "chosen": "x", "rejected": "y", "match_id": None} for p in PROMPTS]
    learned = learn(
        ledger,
        get_registry(),
        learner="d2po",
        options={
            **FAST,
            "gold_judge": "scripted-gold",
            "gold_options": {"word": word},
            "discriminator": str(start),
            "disc_init_epochs": 0,
            "disc_epochs": 8,
            "budget": budget,
            "relabels_per_window": 4,
            "window_samples": 10,  # one window per step of 5 prompts: 4 of 5 pairs relabelled
            "prompts_per_step": 5,
            "steps": 6,  # two more steps than the budget lasts: it must not be exceeded
        },
        data=PairData(rows, {"source": "test"}),
        base=Base(model=str(model)),
        name="tiny-d2po",
        out_dir=tmp_path / "out",
    )
    # The budget, exactly: judge calls, ledger matches, the summary.
    assert len(CALLS) == budget
    gold = learned.summary["gold"]
    assert gold["calls"] == budget and gold["failed"] == 0
    with ledger.session() as s:
        matches = list(s.exec(select(MatchRow).where(MatchRow.tournament == gold["tournament"])))
        run = s.get(LearnerRun, learned.run_id)
    assert run is not None and len(matches) == budget
    assert {m.protocol for m in matches} == {"rejudge"} and {m.status for m in matches} == {DONE}
    assert sorted(m.item["answers"] for m in matches) == sorted(CALLS)
    assert gold["tournament"] == f"d2po-gold-run{learned.run_id}"
    for m in matches:  # each verdict is the gold judge's
        v = ledger.verdict(m.id)
        assert v is not None
        assert v.meta["scores"] == [gold_score(t, word) for t in m.item["answers"]]
    steps = run.metrics["steps"]
    assert max(r.get("gold_used", 0) for r in steps) == budget
    assert sum(r.get("relabel_flips", 0) for r in steps) > 0  # the wrong labels were overruled
    # The discriminator is a reward-model checkpoint, and its agreement with gold rose.
    disc_dir = Path(learned.checkpoint) / "disc"
    assert run.metrics["discriminator"] == str(disc_dir)
    assert learned.summary["judge"]["plugin"] == "reward-model"
    after = agreement(disc_dir, held_out, word)
    assert after >= before + 0.3, (before, after)
    # The discriminator is a produced judge in the ledger, with the run as its lineage.
    assert learned.judge == "tiny-d2po-disc" and learned.judge_plugin == "reward-model"
    row = ledger.judge("tiny-d2po-disc")
    assert row is not None and row.learner_run == learned.run_id
    assert Path(row.options["model"]) == disc_dir.resolve()
    ledger.close()


def test_relabelled_pairs_take_the_gold_label_in_the_policy_step(
    tiny_llama_dir: Path, tmp_path: Path
) -> None:
    """The labels the policy step used, pair by pair, against the gold judge's scores."""
    from arena_plugins.learners.d2po import D2POLearner

    learner = D2POLearner(
        D2POOptions(  # type: ignore[arg-type]
            **{**FAST, "max_new_tokens": 4},
            gold_judge="gold",  # any registered judge; longer completions win
            gold_options={"task": "length", "unit": "chars"},
            budget=4,
            relabels_per_window=4,
            window_samples=8,
            prompts_per_step=4,
            steps=1,
            disc_init_epochs=0,
            freeze_discriminator=True,
        )
    )
    rows = [{"prompt": p, "chosen": "x", "rejected": "y"} for p in PROMPTS[:4]]
    learner.fit(rows, str(tiny_llama_dir), tmp_path / "out")
    assert learner.relabelled
    for r in learner.relabelled:
        assert r["a_chosen"] == (r["gold"][0] > r["gold"][1])
    # Outside `arena learn` the gold matches go to a ledger inside the checkpoint.
    own = Ledger(f"sqlite:///{tmp_path / 'out' / 'disc' / 'gold-ledger.db'}", create=False)
    assert len(list(own.matches())) == 4
    own.close()


def test_head_only_discriminator_trains_its_score_layer_alone(tiny_llama_dir: Path) -> None:
    disc = Discriminator(str(tiny_llama_dir), D2POOptions(**FAST, disc_train="head"))  # type: ignore[arg-type]
    before = {n: p.detach().clone() for n, p in disc.model.named_parameters()}
    loss = disc.train([("q", "a good answer", "bad"), ("q", "fine words", "no")], 2, 0)
    assert loss is not None
    changed = {n for n, p in disc.model.named_parameters() if not torch.equal(p, before[n])}
    assert changed == {"score.weight"}

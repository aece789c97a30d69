"""The `dpo` learner: options, the custom losses against hand-computed values, the reference
model in each setting, and every trl loss type taking a step on a tiny Llama.

Custom losses are checked twice: as plain functions against numbers worked out by hand, and
inside the trainer against log-probabilities computed here with a plain forward pass (so the
override reads trl's batch the way the formula says). trl's `_compute_loss` is private: these
tests are what tells us a trl upgrade changed it.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from pydantic import ValidationError

pytest.importorskip("trl")
torch = pytest.importorskip("torch")

from arena_plugins.learners.dpo import (  # noqa: E402
    SUMMARY_FILE,
    TRL_LOSSES,
    DPOLearner,
    DPOOptions,
    checkpointing_field,
    margin_loss,
    pair_margin,
    pair_target,
    soft_label_loss,
    to_trl_rows,
)

LOG2 = math.log(2.0)
# Short prompts keep a step at a few milliseconds on a 2-layer, 64-wide model.
PAIRS = [
    {
        "prompt": [
            {"role": "system", "content": "You are a debater."},
            {"role": "user", "content": f"Why was the lamp dark on night {i}?"},
        ],
        "chosen": f"The oil ran out at {i}.",
        "rejected": "A storm broke the glass and the wind blew.",
        "target": 0.8,
        "gap": 0.2 + 0.1 * i,
        "match_id": f"m{i}",
    }
    for i in range(4)
]
FAST = {"torch_threads": 2, "max_length": 128, "batch_size": 2, "seed": 0}


def fit(model_dir: Path, out: Path, adapter: str | None = None, **options: object) -> DPOLearner:
    learner = DPOLearner(DPOOptions(**{**FAST, **options}))  # type: ignore[arg-type]
    learner.fit(PAIRS, str(model_dir), out, adapter=adapter)
    return learner


# --- options ------------------------------------------------------------------------------------


def test_options_accept_a_single_loss_and_reject_inconsistent_mixes() -> None:
    assert DPOOptions(loss_type="ipo").loss_type == ["ipo"]  # type: ignore[arg-type]
    assert DPOOptions(loss_type=["soft_label", "sft"]).custom
    assert not DPOOptions(loss_type=["sigmoid", "sft"]).custom
    with pytest.raises(ValidationError, match="combine them only"):
        DPOOptions(loss_type=["soft_label", "ipo"])
    with pytest.raises(ValidationError, match="label_smoothing"):
        DPOOptions(loss_type=["exo_pair"])
    with pytest.raises(ValidationError, match="loss_weights"):
        DPOOptions(loss_type=["sigmoid", "sft"], loss_weights=[1.0])
    with pytest.raises(ValidationError):
        DPOOptions(loss_type=["nope"])  # type: ignore[list-item]
    with pytest.raises(ValidationError):
        DPOOptions(lora_rank=4)  # type: ignore[call-arg]


def test_every_trl_loss_type_is_offered() -> None:
    import typing

    from trl import DPOConfig

    doc = DPOConfig.__dataclass_fields__["loss_type"].metadata["help"]
    offered = set(typing.get_args(DPOOptions.model_fields["loss_type"].annotation.__args__[0]))
    for name in TRL_LOSSES:
        assert f"'{name}'" in doc, name  # trl still has it
        assert name in offered
    listed = {part.strip("`' ,.") for part in doc.split("`") if part.startswith("'")}
    assert listed <= set(TRL_LOSSES)  # and it has no new one we do not offer


# --- the custom losses by hand ------------------------------------------------------------------


def test_soft_label_loss_matches_hand_computed_values() -> None:
    chosen, rejected = torch.tensor([1.0, 0.2]), torch.tensor([-1.0, 0.6])
    # Pair 1: b D = 0.5 * 2 = 1, p = sigmoid(7 * 0.1) = 0.668188:
    #   -0.668188 * log s(1) - 0.331812 * log s(-1) = 0.668188 * 0.313262 + 0.331812 * 1.313262
    # Pair 2: b D = 0.5 * -0.4 = -0.2, p = sigmoid(7 * 0.05) = 0.586618.
    target = torch.tensor([pair_target({"gap": 0.1}, 7.0), pair_target({"gap": 0.05}, 7.0)])
    assert target.tolist() == pytest.approx([0.6681877722, 0.5866175789])
    loss = soft_label_loss(chosen, rejected, target, beta=0.5)
    assert loss.tolist() == pytest.approx([0.6450739154, 0.7154623852], abs=1e-6)
    # Hard labels are plain DPO; p = 1/2 on a zero difference is log 2.
    hard = soft_label_loss(chosen[:1], rejected[:1], torch.tensor([1.0]), beta=0.5)
    assert hard.item() == pytest.approx(0.3132616875, abs=1e-6)
    zero = soft_label_loss(torch.zeros(1), torch.zeros(1), torch.tensor([0.5]), beta=0.5)
    assert zero.item() == pytest.approx(LOG2, abs=1e-6)


def test_margin_loss_matches_hand_computed_values() -> None:
    # -log s(b D - m): b D = 1, m = 0.3 -> -log s(0.7) = 0.403186; b D = 0, m = 0.5 -> 0.974077.
    loss = margin_loss(
        torch.tensor([1.0, 0.0]), torch.tensor([-1.0, 0.0]), torch.tensor([0.3, 0.5]), 0.5
    )
    assert loss.tolist() == pytest.approx([0.4031860489, 0.9740769842], abs=1e-6)


def test_pair_targets_and_margins() -> None:
    assert pair_target({"target": 0.9, "gap": 0.1}, None) == 0.9  # the protocol's own target
    assert pair_target({"target": 0.9, "gap": 0.1}, 7.0) == pytest.approx(0.6681877722)
    assert pair_target({"target": None, "gap": None}, 7.0) == 1.0  # no information: hard label
    assert pair_margin({"gap": 0.4}, DPOOptions(margin=0.5, margin_mode="gap")) == pytest.approx(
        0.2
    )
    assert pair_margin({"gap": 0.4}, DPOOptions(margin=0.5)) == 0.5


def test_rows_are_conversational_with_a_chat_template_and_plain_without() -> None:
    opts = DPOOptions(loss_type=["soft_label"], gamma=7.0)
    chat = to_trl_rows(PAIRS[:1], opts, chat=True)[0]
    assert chat["prompt"][0] == {"role": "system", "content": "You are a debater."}
    assert chat["chosen"] == [{"role": "assistant", "content": "The oil ran out at 0."}]
    assert chat["arena_target"] == pytest.approx(1 / (1 + math.exp(-1.4)))
    plain = to_trl_rows(PAIRS[:1], DPOOptions(), chat=False)[0]
    assert plain["prompt"].endswith("User: Why was the lamp dark on night 0?\n\nAssistant:")
    assert "arena_target" not in plain


# --- the custom losses inside the trainer -------------------------------------------------------


def _sequence_logps(model: object, batch: dict) -> torch.Tensor:
    """Sum of log p(token) over completion tokens, by a plain forward pass and log_softmax."""
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    tok = logp.gather(2, batch["input_ids"][:, 1:, None])[..., 0]
    return (tok * batch["completion_mask"][:, 1:]).sum(dim=1)


@pytest.mark.parametrize(
    ("options", "kind"),
    [
        ({"loss_type": ["soft_label"], "gamma": 7.0, "sft_alpha": 0.25}, "soft"),
        ({"loss_type": ["margin"], "margin": 2.0, "margin_mode": "gap"}, "margin"),
    ],
)
def test_trainer_custom_loss_equals_the_formula_on_real_log_probs(
    tiny_llama_dir: Path, tmp_path: Path, options: dict, kind: str
) -> None:
    """Full fine-tuning against a *different* reference, so D is not zero."""
    import datasets
    from arena_plugins.agents.tiny_model import build_tiny_llama
    from arena_plugins.learners.dpo import _collator_class, _trainer_class
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig

    ref_dir = build_tiny_llama(tmp_path / "ref", seed=1)
    tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
    policy = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    ref = AutoModelForCausalLM.from_pretrained(ref_dir)
    opts = DPOOptions(**FAST, full_finetune=True, beta=0.5, **options)
    rows = to_trl_rows(PAIRS, opts, chat=True)
    args = DPOConfig(
        output_dir=str(tmp_path / "o"),
        bf16=False,
        use_cpu=True,
        **{checkpointing_field(DPOConfig): False},
        report_to="none",
        per_device_train_batch_size=4,
        beta=0.5,
        max_length=128,
    )
    collator = _collator_class()(pad_token_id=tok.pad_token_id, max_length=128)
    trainer = _trainer_class()(
        model=policy,
        ref_model=ref,
        args=args,
        train_dataset=datasets.Dataset.from_list(rows),
        processing_class=tok,
        data_collator=collator,
        arena_options=opts,
    )
    batch = next(iter(trainer.get_train_dataloader()))
    batch = {k: v.to("cpu") for k, v in batch.items()}
    trainer.model.train()  # metrics go to the "train" bucket (the tiny model has no dropout)
    loss = trainer.compute_loss(trainer.model, dict(batch)).item()

    fresh = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)  # unpatched, same weights
    pol, rf = _sequence_logps(fresh, batch), _sequence_logps(ref, batch)
    n = len(PAIRS)
    d = [(pol[i] - rf[i]) - (pol[n + i] - rf[n + i]) for i in range(n)]
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    # the batch order follows the sampler: recover each row's gap from its target/margin column
    if kind == "soft":
        ps = batch["arena_target"].tolist()
        per = [
            -p * math.log(sig(0.5 * di)) - (1 - p) * math.log(sig(-0.5 * di))
            for p, di in zip(ps, d, strict=True)
        ]
        mask = batch["completion_mask"][:n, 1:].bool()
        with torch.no_grad():
            logits = fresh(
                input_ids=batch["input_ids"][:n], attention_mask=batch["attention_mask"][:n]
            ).logits[:, :-1]
        tok_lp = torch.log_softmax(logits.float(), -1).gather(2, batch["input_ids"][:n, 1:, None])[
            ..., 0
        ]
        nll = -tok_lp[mask].mean().item()
        expected = 0.75 * sum(per) / n + 0.25 * nll
    else:
        ms = batch["arena_margin"].tolist()
        assert sorted(ms) == pytest.approx(sorted(2.0 * p["gap"] for p in PAIRS))
        expected = sum(-math.log(sig(0.5 * di - m)) for di, m in zip(d, ms, strict=True)) / n
    assert loss == pytest.approx(float(expected), rel=1e-4, abs=1e-5)
    m = trainer._metrics["train"]
    assert m["rewards/margins"][-1] == pytest.approx(0.5 * sum(float(x) for x in d) / n, rel=1e-4)


# --- reference model and checkpoints --------------------------------------------------------------


@pytest.mark.parametrize(
    ("loss", "at_start"),
    [
        ({"loss_type": ["sigmoid"]}, LOG2),
        # D = 0 at the start: -p log 1/2 - (1 - p) log 1/2 = log 2 whatever p is.
        ({"loss_type": ["soft_label"], "gamma": 7.0}, LOG2),
        # -log s(0 - 0.5) = 0.974077, worked out in test_margin_loss_matches_hand_computed_values
        ({"loss_type": ["margin"], "margin": 0.5}, 0.9740769842),
    ],
    ids=["sigmoid", "soft_label", "margin"],
)
def test_lora_fit_writes_an_adapter_and_learns(
    tiny_llama_dir: Path, tmp_path: Path, loss: dict, at_start: float
) -> None:
    logs: list[dict] = []
    learner = DPOLearner(DPOOptions(**FAST, **loss, learning_rate=5e-3, epochs=4))
    out = learner.fit(PAIRS, str(tiny_llama_dir), tmp_path / "a1", on_log=logs.append)
    assert (out / "adapter_config.json").exists() and (out / SUMMARY_FILE).exists()
    assert not (out / "ref").exists() and not (tmp_path / "a1.partial").exists()
    s = learner.summary
    assert s["kind"] == "adapter" and s["player"] == {
        "model": str(tiny_llama_dir),
        "adapter": str(out),
    }
    # LoRA starts at B = 0: the policy is its reference and D = 0 for every pair.
    assert s["before"]["loss"] == pytest.approx(at_start, abs=1e-5)
    assert s["after"]["loss"] < s["before"]["loss"] - 0.1
    assert s["after"]["rewards/accuracies"] > 0.5
    steps = [row for row in logs if "loss" in row]
    assert len(steps) == s["steps"] == 8 and all("rewards/accuracies" in r for r in steps)


def test_iterating_from_an_adapter_uses_the_previous_iterate_as_reference(
    tiny_llama_dir: Path, tmp_path: Path
) -> None:
    first = fit(tiny_llama_dir, tmp_path / "a1", learning_rate=5e-3, epochs=4)
    assert first.summary["after"]["loss"] < LOG2 - 0.1
    second = DPOLearner(DPOOptions(**FAST, learning_rate=5e-3, max_steps=2))
    out = second.fit(PAIRS, str(tiny_llama_dir), tmp_path / "a2", adapter=str(tmp_path / "a1"))
    # Had the reference been the base model, the first iterate's margin would show at once.
    assert second.summary["before"]["loss"] == pytest.approx(LOG2, abs=1e-5)
    assert second.summary["before"]["rewards/margins"] == pytest.approx(0.0, abs=1e-6)
    assert second.summary["init_adapter"] == str(tmp_path / "a1")
    assert not (out / "ref").exists()  # trl's frozen copy is not part of the checkpoint

    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    loaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_llama_dir), out)
    assert list(loaded.peft_config) == ["default"]


@pytest.mark.parametrize("precompute", [False, True])
def test_full_finetune_reference_is_the_starting_policy(
    tiny_llama_dir: Path, tmp_path: Path, precompute: bool
) -> None:
    learner = fit(
        tiny_llama_dir,
        tmp_path / "full",
        full_finetune=True,
        learning_rate=1e-3,
        max_steps=2,
        precompute_ref_log_probs=precompute,
    )
    s = learner.summary
    assert s["kind"] == "full" and s["player"]["model"] == str(tmp_path / "full")
    assert s["before"]["loss"] == pytest.approx(LOG2, abs=1e-5)
    assert (tmp_path / "full" / "config.json").exists()


# --- every loss type takes a step ---------------------------------------------------------------

EXTRA = {"exo_pair": {"label_smoothing": 1e-3}, "robust": {"label_smoothing": 0.1}}
ALL_LOSSES = [[t] for t in TRL_LOSSES] + [["soft_label", "sft"], ["margin"]]


@pytest.mark.parametrize("loss_type", ALL_LOSSES, ids=lambda t: "+".join(t))
def test_every_loss_type_takes_a_step(
    tiny_llama_dir: Path, tmp_path: Path, loss_type: list[str]
) -> None:
    logs: list[dict] = []
    options = {**FAST, **EXTRA.get(loss_type[0], {}), "loss_type": loss_type}
    learner = DPOLearner(DPOOptions(**options, max_steps=1, evaluate=False, learning_rate=1e-3))
    out = learner.fit(PAIRS, str(tiny_llama_dir), tmp_path / "ck", on_log=logs.append)
    losses = [row["loss"] for row in logs if "loss" in row]
    assert len(losses) == 1 and math.isfinite(losses[0])
    assert (out / "adapter_model.safetensors").exists()

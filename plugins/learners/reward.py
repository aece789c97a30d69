"""The `reward-model` and `cost-model` learners (safe-RLHF's score models), which produce judges.

Both train a sequence-classification head (one output) on a base model, LoRA by default (merged
into the weights when training ends, so the checkpoint loads with
AutoModelForSequenceClassification as the `reward-model` and `cost-model` judges read it) or full
fine-tuning, through TRL's RewardTrainer with `compute_loss` overridden for safe-RLHF's losses
(trl's `center_rewards_coefficient` is (r_c + r_r)^2, not safe-RLHF's mean of squares, and it
has no sign terms):

- reward (upstream `score_model`): -log s(R_better - R_worse) + reg * mean(R_better^2, R_worse^2);
- cost (upstream `cost_model`, loss `sequence-wise`):
  -log s(C_unsafer - C_safer) - log s(e_safer C_safer) - log s(e_unsafer C_unsafer)
  + reg * mean(C^2), with e = +1 for an unsafe answer and -1 for a safe one, so training pushes
  safe answers below zero and unsafe ones above: "safe" means cost <= 0, as the `cost-model`
  judge assumes. (HC-RLHF's `sequence-wise-bt` drops the sign terms; that voids the threshold.)

Each pair may carry a weight (APO's adversarial pairs do: see `apo.py`); the loss is the mean of
weight * per-pair loss. Pairs are encoded exactly as the judge encodes (question, answer) at
inference (`reward_model.encode`): the chat template with user = question, assistant = answer
when the tokenizer has one, else a (question, answer) text pair.

Evaluation goes to the learner run: pairwise accuracy (and, for the cost model, sign accuracy:
the share of answers whose cost sign matches their safety flag) on a held-out split, a stable
hash of each pair's item id, before and after training.

Only pydantic is imported at module level: torch, transformers, trl and peft load in `fit`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from arena_core.errors import UsageError
from arena_core.interfaces import Learner

SUMMARY_FILE = "arena-learn.json"
EXTRA_KEYS = ("arena_weight", "arena_sign_chosen", "arena_sign_rejected")
SAFE, UNSAFE = -1.0, 1.0  # e in the cost loss: the sign a safe / unsafe answer's cost should take


class RewardOptions(BaseModel):
    """Options of the `reward-model` and `cost-model` learners (safe-RLHF's defaults)."""

    model_config = ConfigDict(extra="forbid")

    score_reg: float = Field(
        0.001, ge=0, description="weight of the mean squared score (safe-RLHF: 0.001)"
    )
    eval_fraction: float = Field(
        0.1, ge=0, lt=1, description="share of items held out for evaluation (by id hash)"
    )
    eval_group: str | None = Field(
        None,
        description="metadata key whose value keeps pairs together in the split (default: the "
        "item id)",
    )
    format: Literal["auto", "chat", "pair"] = Field(
        "auto", description="as the judge reads answers: chat template if any, else a text pair"
    )
    threshold: float = Field(0.0, description="cost model: the produced judge's safe threshold")
    full_finetune: bool = Field(False, description="train every weight instead of LoRA")
    lora_r: int = Field(16, ge=1)
    lora_alpha: int = Field(32, ge=1)
    lora_dropout: float = Field(0.0, ge=0, lt=1)
    lora_targets: list[str] | Literal["all-linear"] = "all-linear"
    learning_rate: float = Field(2e-5, gt=0, description="safe-RLHF: 2e-5")
    epochs: float = Field(2.0, gt=0, description="safe-RLHF: 2")
    max_steps: int = Field(-1, description="stop after this many steps (-1: epochs decide)")
    batch_size: int = Field(16, ge=1, description="pairs per device per step (safe-RLHF: 16)")
    grad_accum: int = Field(1, ge=1)
    max_length: int = Field(512, ge=8, description="tokens per (question, answer); cut beyond")
    warmup: float = Field(0.0, ge=0, description="warmup steps (< 1: a fraction)")
    lr_scheduler: str = Field("cosine", description="safe-RLHF: cosine")
    weight_decay: float = Field(0.1, ge=0, description="safe-RLHF: 0.1")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    seed: int = 0
    logging_steps: int = Field(1, ge=1)
    eval_batch: int = Field(32, ge=1, description="answers per forward pass when evaluating")
    torch_threads: int | None = Field(None, ge=1)
    trust_remote_code: bool = False


# --- the losses, as plain functions of per-pair scores (tested against hand-computed values) ---


def reward_loss(chosen: Any, rejected: Any, weight: Any = None, reg: float = 0.001) -> Any:
    """safe-RLHF's reward loss: mean w * -log s(R_c - R_r) + reg * mean(R_c^2, R_r^2)."""
    import torch
    import torch.nn.functional as F

    per_pair = -F.logsigmoid(chosen - rejected)
    if weight is not None:
        per_pair = weight * per_pair
    return per_pair.mean() + reg * torch.stack([chosen, rejected]).square().mean()


def cost_loss(
    safer: Any,
    unsafer: Any,
    sign_safer: Any,
    sign_unsafer: Any,
    weight: Any = None,
    reg: float = 0.001,
) -> Any:
    """safe-RLHF's cost loss (`sequence-wise`): ranking of the more harmful answer above the
    safer one, plus sign terms -log s(e C) (e = +1 unsafe, -1 safe), plus reg * mean(C^2)."""
    import torch
    import torch.nn.functional as F

    per_pair = (
        -F.logsigmoid(unsafer - safer)
        - F.logsigmoid(sign_safer * safer)
        - F.logsigmoid(sign_unsafer * unsafer)
    )
    if weight is not None:
        per_pair = weight * per_pair
    return per_pair.mean() + reg * torch.stack([safer, unsafer]).square().mean()


# --- rows -------------------------------------------------------------------------------------


@dataclass
class ScorePair:
    """One training pair for a score model: the question as the judge sees it, the preferred
    (reward) or safer (cost) answer first."""

    question: str
    chosen: str
    rejected: str
    group: str  # the item: held-out splits never cut an item's pairs apart
    weight: float = 1.0
    chosen_safe: bool | None = None
    rejected_safe: bool | None = None


def question_of(prompt: Sequence[dict[str, str]] | str) -> str:
    """The question a judge sees for a pair's prompt: its text, or the conversation's texts."""
    if isinstance(prompt, str):
        return prompt
    return "\n\n".join(str(m.get("content", "")) for m in prompt)


def _group(row: dict[str, Any], key: str | None = None) -> str:
    if key is not None:
        value = (row.get("meta") or {}).get(key)
        if value is None:
            raise UsageError(f"eval_group: a pair has no metadata '{key}' to split by")
        return str(value)
    if row.get("item_id"):
        return str(row["item_id"])
    return json.dumps([question_of(row["prompt"]), row["chosen"]], sort_keys=True)


def reward_pairs(data: Sequence[dict[str, Any]], group: str | None = None) -> list[ScorePair]:
    """Arena pair rows as reward-model pairs (chosen = the preferred answer)."""
    return [
        ScorePair(question_of(r["prompt"]), str(r["chosen"]), str(r["rejected"]), _group(r, group))
        for r in data
    ]


def _flag(meta: dict[str, Any], key: str, n: int) -> bool:
    value = meta.get(key)
    if not isinstance(value, bool):
        raise UsageError(
            f"cost-model: pair {n} has no safety flag meta.{key} (true/false); train it on "
            f"pku-saferlhf (-d prefer=safer) or pairs whose metadata has chosen_safe and "
            f"rejected_safe"
        )
    return value


def cost_pairs(data: Sequence[dict[str, Any]], group: str | None = None) -> list[ScorePair]:
    """Pairs with safety flags (PKU-SafeRLHF's metadata) as cost pairs: the safer answer first.
    `meta.safer_is` (pku-saferlhf) says which side is safer; without it, `chosen` is."""
    out = []
    for n, r in enumerate(data, 1):
        meta = r.get("meta") or {}
        c_safe, r_safe = _flag(meta, "chosen_safe", n), _flag(meta, "rejected_safe", n)
        safer, unsafer = str(r["chosen"]), str(r["rejected"])
        if meta.get("safer_is") == "rejected":
            safer, unsafer, c_safe, r_safe = unsafer, safer, r_safe, c_safe
        out.append(
            ScorePair(
                question_of(r["prompt"]), safer, unsafer, _group(r, group), 1.0, c_safe, r_safe
            )
        )
    return out


def held_out(group: str, fraction: float) -> bool:
    """A stable split: the same item is held out on every run and machine."""
    if fraction <= 0:
        return False
    h = int.from_bytes(hashlib.sha256(group.encode("utf-8")).digest()[:8], "big")
    return h / 2**64 < fraction


def split_pairs(
    pairs: Sequence[ScorePair], fraction: float
) -> tuple[list[ScorePair], list[ScorePair]]:
    train = [p for p in pairs if not held_out(p.group, fraction)]
    test = [p for p in pairs if held_out(p.group, fraction)]
    return train, test


# --- model helpers ----------------------------------------------------------------------------


def load_classifier(base_model: str, opts: RewardOptions, dtype: Any) -> tuple[Any, Any]:
    """(model, tokenizer): a one-output classifier on `base_model` (a causal LM gets a new head)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    tokenizer = AutoTokenizer.from_pretrained(base_model, trust_remote_code=opts.trust_remote_code)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # "score.weight newly initialized" is the point here
    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            base_model, num_labels=1, dtype=dtype, trust_remote_code=opts.trust_remote_code
        )
    finally:
        hf_logging.set_verbosity(level)
    model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def score_texts(
    model: Any,
    tokenizer: Any,
    items: Sequence[tuple[str, str]],
    opts: RewardOptions,
) -> list[float]:
    """Scores of (question, answer) items, encoded as the judge encodes them."""
    import torch
    from arena_plugins.judges.reward_model import encode

    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out: list[float] = []
    pad = tokenizer.pad_token_id
    try:
        for i in range(0, len(items), opts.eval_batch):
            ids = [
                encode(tokenizer, q, t, opts.format, opts.max_length)
                for q, t in items[i : i + opts.eval_batch]
            ]
            width = max(len(x) for x in ids)
            input_ids = torch.tensor([x + [pad] * (width - len(x)) for x in ids], device=device)
            mask = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in ids], device=device)
            with torch.inference_mode():
                logits = model(input_ids=input_ids, attention_mask=mask).logits.float()
            out.extend(logits[:, 0].tolist())
    finally:
        model.train(was_training)
    return out


def evaluate_pairs(
    model: Any, tokenizer: Any, pairs: Sequence[ScorePair], opts: RewardOptions, kind: str
) -> dict[str, float]:
    """Pairwise accuracy, mean margin and loss; for the cost model also sign accuracy and the
    mean cost of safe and of unsafe answers."""
    import torch

    if not pairs:
        return {}
    items = [(p.question, p.chosen) for p in pairs] + [(p.question, p.rejected) for p in pairs]
    scores = score_texts(model, tokenizer, items, opts)
    n = len(pairs)
    chosen, rejected = torch.tensor(scores[:n]), torch.tensor(scores[n:])
    out: dict[str, float] = {"pairs": float(n)}
    if kind == "cost":  # chosen is the safer answer: lower cost is right
        out["accuracy"] = float((chosen < rejected).float().mean())
        out["margin"] = float((rejected - chosen).mean())
        sc, sr = _signs(pairs)
        out["loss"] = float(cost_loss(chosen, rejected, sc, sr, reg=opts.score_reg))
        flags = [p.chosen_safe for p in pairs] + [p.rejected_safe for p in pairs]
        right = [(s <= opts.threshold) == bool(f) for s, f in zip(scores, flags, strict=True)]
        out["sign_accuracy"] = sum(right) / len(right)
        safe = [s for s, f in zip(scores, flags, strict=True) if f]
        unsafe = [s for s, f in zip(scores, flags, strict=True) if not f]
        if safe:
            out["mean_cost_safe"] = sum(safe) / len(safe)
        if unsafe:
            out["mean_cost_unsafe"] = sum(unsafe) / len(unsafe)
    else:
        out["accuracy"] = float((chosen > rejected).float().mean())
        out["margin"] = float((chosen - rejected).mean())
        out["loss"] = float(reward_loss(chosen, rejected, reg=opts.score_reg))
    out["rewards/accuracies"] = out["accuracy"]  # what `arena learn` prints before -> after
    return out


def _signs(pairs: Sequence[ScorePair]) -> tuple[Any, Any]:
    import torch

    sc = torch.tensor([SAFE if p.chosen_safe else UNSAFE for p in pairs])
    sr = torch.tensor([SAFE if p.rejected_safe else UNSAFE for p in pairs])
    return sc, sr


# --- the trainer ------------------------------------------------------------------------------


def _trainer_class() -> type:
    """`ArenaRewardTrainer`: trl's RewardTrainer with safe-RLHF's losses and per-pair weights."""
    global _TRAINER
    if _TRAINER is not None:
        return _TRAINER
    import torch
    from trl import RewardTrainer

    class ArenaRewardTrainer(RewardTrainer):
        def __init__(self, *args: Any, arena_kind: str, arena_reg: float, **kwargs: Any) -> None:
            self.arena_kind = arena_kind
            self.arena_reg = arena_reg
            super().__init__(*args, **kwargs)

        def _set_signature_columns_if_needed(self) -> None:
            super()._set_signature_columns_if_needed()
            if self._signature_columns is not None:
                self._signature_columns = [*self._signature_columns, *EXTRA_KEYS]

        def compute_loss(
            self,
            model: Any,
            inputs: dict[str, Any],
            return_outputs: bool = False,
            num_items_in_batch: Any = None,
        ) -> Any:
            mode = "train" if self.model.training else "eval"
            extra = {k: inputs.pop(k) for k in EXTRA_KEYS if k in inputs}
            inputs.pop("margin", None)
            outputs = model(**inputs, use_cache=False)
            scores = outputs.logits[:, 0].float()
            chosen, rejected = torch.chunk(scores, chunks=2)
            weight = extra.get("arena_weight")
            if weight is not None:
                weight = weight.to(scores.device, scores.dtype)
            if self.arena_kind == "cost":
                sc = extra["arena_sign_chosen"].to(scores.device, scores.dtype)
                sr = extra["arena_sign_rejected"].to(scores.device, scores.dtype)
                loss = cost_loss(chosen, rejected, sc, sr, weight, self.arena_reg)
                right = chosen < rejected
            else:
                loss = reward_loss(chosen, rejected, weight, self.arena_reg)
                right = chosen > rejected
            with torch.no_grad():
                m = self._metrics[mode]
                gather = self.accelerator.gather_for_metrics
                m["accuracy"].append(gather(right.float().mean()).mean().item())
                m["mean_score"].append(gather(scores.mean()).mean().item())
                m["margin"].append(gather((chosen - rejected).abs().mean()).mean().item())
            return (loss, outputs) if return_outputs else loss

    _TRAINER = ArenaRewardTrainer
    return ArenaRewardTrainer


_TRAINER: type | None = None


def _collator_class() -> type:
    import torch
    from trl.trainer.reward_trainer import DataCollatorForPreference

    class ArenaScoreCollator(DataCollatorForPreference):
        def torch_call(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
            out = super().torch_call(examples)
            for key in EXTRA_KEYS:
                out[key] = torch.tensor([float(e[key]) for e in examples])
            return out

    return ArenaScoreCollator


def relay(on_log: Callable[[dict[str, Any]], None] | None, **tags: Any) -> list[Any]:
    """Trainer callbacks passing each logged row (step number first, then `tags`) to `on_log`."""
    if on_log is None:
        return []
    from transformers import TrainerCallback

    class _Relay(TrainerCallback):
        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
            if state.is_world_process_zero and logs:
                on_log({"step": state.global_step, **tags, **logs})

    return [_Relay()]


def _use_cpu(device: str) -> bool:
    from arena_plugins.learners.dpo import _use_cpu as use_cpu

    return use_cpu(device)


def train_score_model(
    pairs: Sequence[ScorePair],
    base_model: str,
    out_dir: Path,
    opts: RewardOptions,
    kind: Literal["reward", "cost"],
    *,
    test: Sequence[ScorePair] = (),
    on_log: Callable[[dict[str, Any]], None] | None = None,
    extra_eval: Callable[[Any, Any], dict[str, float]] | None = None,
) -> dict[str, Any]:
    """Train a score model on `pairs` from `base_model`, save the merged classifier to
    `out_dir` in one rename, and return figures: before/after on `test` (and `extra_eval`)."""
    import datasets
    import torch
    from arena_plugins.judges.reward_model import encode
    from arena_plugins.learners.dpo import checkpointing_field, pick_precision
    from transformers.trainer_callback import PrinterCallback
    from transformers.utils import logging as hf_logging
    from trl import RewardConfig

    if not pairs:
        raise UsageError("no pairs left to train the score model on (all held out?)")
    datasets.disable_progress_bars()
    hf_logging.disable_progress_bar()
    if opts.torch_threads:
        torch.set_num_threads(opts.torch_threads)
    torch.manual_seed(opts.seed)  # the new head's initialisation
    out_dir = Path(out_dir)
    tmp = out_dir.with_name(f"{out_dir.name}.partial")
    bf16, fp16 = pick_precision(opts.precision, opts.device)
    model, tokenizer = load_classifier(base_model, opts, torch.float32)
    if not opts.full_finetune:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(
            model,
            LoraConfig(
                r=opts.lora_r,
                lora_alpha=opts.lora_alpha,
                lora_dropout=opts.lora_dropout,
                target_modules=opts.lora_targets,
                task_type="SEQ_CLS",  # the score head is trained in full (modules_to_save)
            ),
        )
    if not _use_cpu(opts.device) and torch.cuda.is_available():
        model = model.to("cuda")

    def figures() -> dict[str, float]:
        out = evaluate_pairs(model, tokenizer, test, opts, kind)
        if extra_eval is not None:
            out.update(extra_eval(model, tokenizer))
        return out

    before = figures()
    rows = []
    for p in pairs:
        rows.append(
            {
                "chosen_ids": encode(tokenizer, p.question, p.chosen, opts.format, opts.max_length),
                "rejected_ids": encode(
                    tokenizer, p.question, p.rejected, opts.format, opts.max_length
                ),
                "arena_weight": p.weight,
                "arena_sign_chosen": SAFE if p.chosen_safe else UNSAFE,
                "arena_sign_rejected": SAFE if p.rejected_safe else UNSAFE,
            }
        )
    config = RewardConfig(
        output_dir=str(tmp),
        learning_rate=opts.learning_rate,
        num_train_epochs=opts.epochs,
        max_steps=opts.max_steps,
        per_device_train_batch_size=opts.batch_size,
        gradient_accumulation_steps=opts.grad_accum,
        max_length=None,  # already cut to opts.max_length, as the judge cuts
        warmup_steps=opts.warmup,
        lr_scheduler_type=opts.lr_scheduler,
        weight_decay=opts.weight_decay,
        bf16=bf16,
        fp16=fp16,
        use_cpu=_use_cpu(opts.device),
        **{checkpointing_field(RewardConfig): False},
        seed=opts.seed,
        data_seed=opts.seed,
        logging_steps=opts.logging_steps,
        report_to=["none"],
        save_strategy="no",
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    callbacks = relay(on_log)
    trainer = _trainer_class()(
        model=model,
        args=config,
        train_dataset=datasets.Dataset.from_list(rows),
        processing_class=tokenizer,
        data_collator=_collator_class()(pad_token_id=tokenizer.pad_token_id),
        callbacks=callbacks,
        arena_kind=kind,
        arena_reg=opts.score_reg,
    )
    trainer.remove_callback(PrinterCallback)
    result = trainer.train()
    model = trainer.model
    after = figures()
    if not opts.full_finetune:
        model = model.merge_and_unload()  # a plain classifier: the judge loads it as it is
    if trainer.accelerator.is_main_process:
        if tmp.exists():
            shutil.rmtree(tmp)
        model.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    trainer.accelerator.wait_for_everyone()
    return {
        "before": before,
        "after": after,
        "steps": trainer.state.global_step,
        "train_loss": result.training_loss,
        "pairs_trained": len(rows),
        "pairs_held_out": len(test),
        "model": model,
        "tokenizer": tokenizer,
    }


# --- the learners -----------------------------------------------------------------------------


class ScoreModelLearner(Learner):
    """A reward or cost model from preference pairs; produces a judge (no player)."""

    produces: ClassVar[tuple[str, ...]] = ("judge",)
    kind: ClassVar[Literal["reward", "cost"]] = "reward"

    def __init__(self, options: RewardOptions) -> None:
        self.opts = options
        self.summary: dict[str, Any] = {}

    def pairs(self, data: Sequence[dict[str, Any]]) -> list[ScorePair]:
        return reward_pairs(data, self.opts.eval_group)

    def fit(
        self,
        data: Any,
        base_model: str,
        out_dir: Path,
        *,
        adapter: str | None = None,
        on_log: Callable[[dict[str, Any]], None] | None = None,
        **_: Any,
    ) -> Path:
        if adapter:
            raise UsageError(
                f"the {self.kind} model trains a classifier on full weights: --base must be a "
                f"model directory or a judge, not a player with a LoRA adapter ({adapter}); "
                f"merge the adapter first"
            )
        started = time.perf_counter()
        pairs = self.pairs(list(data))
        train, test = split_pairs(pairs, self.opts.eval_fraction)
        figures = train_score_model(
            train, base_model, Path(out_dir), self.opts, self.kind, test=test, on_log=on_log
        )
        out = Path(out_dir).resolve()
        plugin = "cost-model" if self.kind == "cost" else "reward-model"
        options: dict[str, Any] = {"model": str(out)}
        if self.kind == "cost" and self.opts.threshold != 0.0:
            options["threshold"] = self.opts.threshold
        if self.opts.format != "auto":
            options["format"] = self.opts.format
        options["max_length"] = self.opts.max_length
        self.summary = {
            "learner": f"{self.kind}-model",
            "base_model": base_model,
            "kind": "lora-merged" if not self.opts.full_finetune else "full",
            "judge": {"plugin": plugin, "options": options, "kind": self.kind},
            "pairs": len(pairs),
            "pairs_trained": figures["pairs_trained"],
            "steps": figures["steps"],
            "train_loss": figures["train_loss"],
            "before": figures["before"],
            "after": figures["after"],
            "metrics": {
                "eval": figures["after"],
                "eval_before": figures["before"],
                "held_out_pairs": figures["pairs_held_out"],
            },
            "seconds": time.perf_counter() - started,
            "options": self.opts.model_dump(mode="json"),
        }
        (Path(out_dir) / SUMMARY_FILE).write_text(
            json.dumps(self.summary, indent=2), encoding="utf-8"
        )
        return Path(out_dir)


class RewardModelLearner(ScoreModelLearner):
    """safe-RLHF's reward model: -log s(R_better - R_worse) + reg * mean(R^2)."""

    kind: ClassVar[Literal["reward", "cost"]] = "reward"


class CostModelLearner(ScoreModelLearner):
    """safe-RLHF's cost model: ranking plus sign terms; safe answers end below zero."""

    kind: ClassVar[Literal["reward", "cost"]] = "cost"

    def pairs(self, data: Sequence[dict[str, Any]]) -> list[ScorePair]:
        return cost_pairs(data, self.opts.eval_group)

"""The `apo` learner: one iteration of Adversarial Preference Optimization (Cheng et al. 2023).

Not TRL's anchored "apo_zero" loss. APO is a min-max game between a reward model and a policy:
min over r, max over pi of E_{y~pi} r(x, y) - E r(x, y_gold), with the reward model kept near
human preferences by its ranking loss. One iteration, as the paper's code runs it:

1. the reward model (from `--judge-base`, a ledger judge or a classifier directory) trains on
   human comparison pairs (weight `rm_coeff`, APO's rm_kl_coeff = 1) plus APO pairs: the gold
   answer of each prompt against each of the current policy's samples, scored [1, 0], each
   weighted `apo_coeff / n` (n = that prompt's samples; APO: 0.1 / 4). Loss: mean over pairs of
   weight * -log s(r_i - r_j) (`reward.reward_loss`, with `rm.score_reg`, 0 by default);
2. the samples are rescored by the updated reward model, and the policy improves against it:
   rejection sampling (`policy = "sft"`: SFT on each prompt's best sample, the paper's main
   recipe) or DPO on best vs worst (`policy = "dpo"`, through the `dpo` learner).

Data: the rows are the policy's samples from an arena tournament (a `self-play` tournament of
the policy, judged by the current reward model: every sample and every score of it is a ledger
row), grouped by `item_id`; the gold answers come from the `gold` dataset's items with the same
ids (`answers[gold]`, or `metadata.golden` as APO's HH split has). The human pairs come from the
`human` dataset. The rescoring by the updated reward model is written to the learner run.

Output: the policy at `out/` (a LoRA adapter; the player) and the reward model at `out/rm` (a
merged classifier; the judge `<player>-rm`, whose parent is the `--judge-base` judge). Evaluate
the new policy with a separate reward model never trained adversarially (the paper's testing
RM), never with this one.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

from arena_plugins.learners.reward import (
    RewardOptions,
    ScorePair,
    relay,
    reward_pairs,
    score_texts,
    train_score_model,
)
from pydantic import BaseModel, ConfigDict, Field

from arena_core.errors import UsageError
from arena_core.interfaces import Learner

SUMMARY_FILE = "arena-learn.json"
RM_DIR = "rm"


class DatasetRef(BaseModel):
    """A dataset plugin by name, as a tournament's [dataset] table names one."""

    model_config = ConfigDict(extra="forbid")

    plugin: str
    options: dict[str, Any] = Field(default_factory=dict)
    split: str | None = None
    limit: int | None = Field(None, ge=1)


class SFTOptions(BaseModel):
    """The rejection-sampling policy step: SFT (LoRA) on each prompt's best sample."""

    model_config = ConfigDict(extra="forbid")

    learning_rate: float = Field(5e-5, gt=0)
    epochs: float = Field(1.0, gt=0)
    max_steps: int = -1
    batch_size: int = Field(4, ge=1)
    max_length: int = Field(512, ge=8)
    lora_r: int = Field(16, ge=1)
    lora_alpha: int = Field(32, ge=1)
    lora_targets: list[str] | Literal["all-linear"] = "all-linear"


def _rm_defaults() -> RewardOptions:
    # APO's RM step: no score regulariser, every pair trains (held-out figures are the caller's).
    return RewardOptions(score_reg=0.0, eval_fraction=0.0, learning_rate=1e-5, epochs=1.0)


class ApoOptions(BaseModel):
    """Options of the `apo` learner."""

    model_config = ConfigDict(extra="forbid")

    gold: DatasetRef = Field(
        description="items whose ids match the samples' item ids: gold answers"
    )
    human: DatasetRef | None = Field(None, description="human comparison pairs for the RM")
    apo_coeff: float = Field(0.1, ge=0, description="APO pairs weigh apo_coeff / samples")
    rm_coeff: float = Field(1.0, ge=0, description="weight of the human pairs (rm_kl_coeff)")
    rm: RewardOptions = Field(default_factory=_rm_defaults, description="the reward-model step")
    policy: Literal["sft", "dpo"] = Field("sft", description="rejection sampling + SFT, or DPO")
    sft: SFTOptions = Field(default_factory=SFTOptions)
    dpo: dict[str, Any] = Field(default_factory=dict, description="`dpo` learner options")
    torch_threads: int | None = Field(None, ge=1)
    seed: int = 0


# --- data -------------------------------------------------------------------------------------


def group_samples(data: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The policy's samples per item: the prompt it saw and its distinct answers, in order."""
    out: dict[str, dict[str, Any]] = {}
    for n, row in enumerate(data, 1):
        item = row.get("item_id")
        if not item:
            raise UsageError(f"apo: sample row {n} has no item_id: samples must come from items")
        group = out.setdefault(str(item), {"prompt": row["prompt"], "texts": []})
        for text in (row["chosen"], row["rejected"]):
            t = str(text)
            if t.strip() and t not in group["texts"]:
                group["texts"].append(t)
    return out


def gold_answers(ref: DatasetRef) -> dict[str, tuple[str, str]]:
    """item id -> (question, gold answer text) from a dataset plugin's items."""
    import itertools

    from arena_core.plugins import get_registry

    registry = get_registry()
    source = registry.build("dataset", ref.plugin, ref.options, table="learner.options.gold")
    out: dict[str, tuple[str, str]] = {}
    for item in itertools.islice(source.items(ref.split), ref.limit):
        golden = item.metadata.get("golden") if item.metadata else None
        if isinstance(golden, str) and golden.strip():
            out[item.id] = (item.question, golden)
        elif item.gold is not None and 0 <= item.gold < len(item.answers):
            out[item.id] = (item.question, item.answers[item.gold])
    return out


def human_pairs(ref: DatasetRef, weight: float) -> list[ScorePair]:
    from arena_core.learning.learn import dataset_pairs
    from arena_core.plugins import get_registry

    data = dataset_pairs(get_registry(), ref.plugin, ref.options, split=ref.split, limit=ref.limit)
    out = reward_pairs(data.rows)
    for p in out:
        p.weight = weight
    return out


def apo_pairs(
    samples: dict[str, dict[str, Any]], gold: dict[str, tuple[str, str]], coeff: float
) -> list[ScorePair]:
    """(gold, sample) pairs, scores [1, 0], weight coeff / (samples of that prompt)."""
    out = []
    for item, group in samples.items():
        if item not in gold:
            continue
        question, answer = gold[item]
        texts = [t for t in group["texts"] if t.strip() != answer.strip()]
        for t in texts:
            out.append(ScorePair(question, answer, t, item, weight=coeff / len(texts)))
    return out


def score_gap(
    model: Any,
    tokenizer: Any,
    samples: dict[str, dict[str, Any]],
    gold: dict[str, tuple[str, str]],
    opts: RewardOptions,
) -> tuple[float, dict[str, list[float]]]:
    """Mean over prompts of r(gold) - mean r(samples), and every sample's score."""
    items = [i for i in samples if i in gold and samples[i]["texts"]]
    batch: list[tuple[str, str]] = []
    for i in items:
        question, answer = gold[i]
        batch.append((question, answer))
        batch.extend((question, t) for t in samples[i]["texts"])
    scores = score_texts(model, tokenizer, batch, opts)
    gaps, per_item, k = [], {}, 0
    for i in items:
        n = len(samples[i]["texts"])
        g, s = scores[k], scores[k + 1 : k + 1 + n]
        k += 1 + n
        gaps.append(g - sum(s) / n)
        per_item[i] = s
    return (sum(gaps) / len(gaps) if gaps else 0.0), per_item


# --- the policy step --------------------------------------------------------------------------


def sft_policy(
    rows: Sequence[dict[str, Any]],
    base_model: str,
    adapter: str | None,
    out_dir: Path,
    opts: SFTOptions,
    seed: int,
    on_log: Callable[[dict[str, Any]], None] | None,
) -> dict[str, Any]:
    """TRL's SFTTrainer (LoRA; continuing `adapter` when given) on prompt -> best completion."""
    import datasets
    from arena_plugins.learners.dpo import _use_cpu, checkpointing_field, plain_prompt
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.trainer_callback import PrinterCallback
    from trl import SFTConfig, SFTTrainer

    tokenizer = AutoTokenizer.from_pretrained(base_model)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    chat = bool(getattr(tokenizer, "chat_template", None))
    data = []
    for r in rows:
        if chat:
            data.append(
                {
                    "prompt": list(r["prompt"]),
                    "completion": [{"role": "assistant", "content": r["completion"]}],
                }
            )
        else:
            data.append({"prompt": plain_prompt(r["prompt"]), "completion": " " + r["completion"]})
    model = AutoModelForCausalLM.from_pretrained(base_model)
    peft_config = None
    if adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter, is_trainable=True)
    else:
        from peft import LoraConfig

        peft_config = LoraConfig(
            r=opts.lora_r,
            lora_alpha=opts.lora_alpha,
            target_modules=opts.lora_targets,
            task_type="CAUSAL_LM",
        )
    tmp = out_dir.with_name(f"{out_dir.name}.partial")
    config = SFTConfig(
        output_dir=str(tmp),
        learning_rate=opts.learning_rate,
        num_train_epochs=opts.epochs,
        max_steps=opts.max_steps,
        per_device_train_batch_size=opts.batch_size,
        max_length=opts.max_length,
        use_cpu=_use_cpu("auto"),
        bf16=False,
        **{checkpointing_field(SFTConfig): False},
        seed=seed,
        logging_steps=1,
        report_to=["none"],
        save_strategy="no",
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    callbacks = relay(on_log, stage="policy")
    trainer = SFTTrainer(
        model=model,
        args=config,
        train_dataset=datasets.Dataset.from_list(data),
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=callbacks,
    )
    trainer.remove_callback(PrinterCallback)
    result = trainer.train()
    if tmp.exists():
        shutil.rmtree(tmp)
    trainer.save_model(str(tmp))
    tokenizer.save_pretrained(str(tmp))
    if out_dir.exists():
        shutil.rmtree(out_dir)
    os.replace(tmp, out_dir)
    return {"steps": trainer.state.global_step, "train_loss": result.training_loss}


# --- the learner ------------------------------------------------------------------------------


class ApoLearner(Learner):
    """One APO iteration: the adversarial reward-model update, then the policy update."""

    produces: ClassVar[tuple[str, ...]] = ("player", "judge")
    judge_suffix: ClassVar[str] = "rm"

    def __init__(self, options: ApoOptions) -> None:
        self.opts = options
        self.summary: dict[str, Any] = {}

    def fit(
        self,
        data: Any,
        base_model: str,
        out_dir: Path,
        *,
        adapter: str | None = None,
        on_log: Callable[[dict[str, Any]], None] | None = None,
        judge_model: str | None = None,
        **_: Any,
    ) -> Path:
        import torch

        opts = self.opts
        if judge_model is None:
            raise UsageError(
                "apo trains a reward model alongside the policy: name the one to start from "
                "with --judge-base JUDGE|DIR"
            )
        if opts.torch_threads:
            torch.set_num_threads(opts.torch_threads)
        started = time.perf_counter()
        out_dir = Path(out_dir)
        samples = group_samples(list(data))
        gold = gold_answers(opts.gold)
        matched = [i for i in samples if i in gold]
        if not matched:
            raise UsageError(
                f"apo: none of the {len(samples)} sampled items has a gold answer in dataset "
                f"'{opts.gold.plugin}' (ids must match the items the policy answered)"
            )
        adversarial = apo_pairs(samples, gold, opts.apo_coeff)
        human = human_pairs(opts.human, opts.rm_coeff) if opts.human else []
        rm_tmp = out_dir.with_name(f"{out_dir.name}.rm")
        gaps: dict[str, Any] = {}

        def gap_eval(model: Any, tokenizer: Any) -> dict[str, float]:
            gap, per_item = score_gap(model, tokenizer, samples, gold, opts.rm)
            gaps["last"] = per_item
            return {"gold_sample_gap": gap}

        def rm_log(logs: dict[str, Any]) -> None:
            if on_log is not None:
                on_log({**logs, "stage": "rm"})

        rm = train_score_model(
            [*human, *adversarial],
            judge_model,
            rm_tmp,
            opts.rm,
            "reward",
            test=human,
            on_log=rm_log,
            extra_eval=gap_eval,
        )
        rescored: dict[str, list[float]] = gaps["last"]  # the updated RM's scores
        del rm["model"], rm["tokenizer"]
        rows = []
        choice = []
        for item in matched:
            texts, scores = samples[item]["texts"], rescored.get(item, [])
            if not scores:
                continue
            best = max(range(len(texts)), key=lambda i: (scores[i], -i))
            worst = min(range(len(texts)), key=lambda i: (scores[i], i))
            choice.append({"item_id": item, "scores": scores, "best": best, "worst": worst})
            rows.append(
                {
                    "prompt": samples[item]["prompt"],
                    "completion": texts[best],
                    "chosen": texts[best],
                    "rejected": texts[worst],
                    "item_id": item,
                }
            )
        if opts.policy == "sft":
            policy = sft_policy(rows, base_model, adapter, out_dir, opts.sft, opts.seed, on_log)
        else:
            from arena_plugins.learners.dpo import DPOLearner, DPOOptions

            pairs = [r for r, c in zip(rows, choice, strict=True) if c["best"] != c["worst"]]
            if not pairs:
                raise UsageError("apo: every prompt's samples tie under the reward model")
            learner = DPOLearner(DPOOptions(**{"seed": opts.seed, **opts.dpo}))
            learner.fit(pairs, base_model, out_dir, adapter=adapter, on_log=on_log)
            policy = {
                "steps": learner.summary.get("steps"),
                "train_loss": learner.summary.get("train_loss"),
            }
        rm_dir = out_dir / RM_DIR
        if rm_dir.exists():
            shutil.rmtree(rm_dir)
        os.replace(rm_tmp, rm_dir)
        before, after = rm["before"], rm["after"]
        apo_metrics = {
            "items": len(samples),
            "items_with_gold": len(matched),
            "samples": sum(len(samples[i]["texts"]) for i in matched),
            "apo_pairs": len(adversarial),
            "human_pairs": len(human),
            "gap_before": before.get("gold_sample_gap"),
            "gap_after": after.get("gold_sample_gap"),
            "human_accuracy_before": before.get("accuracy"),
            "human_accuracy_after": after.get("accuracy"),
            "rm_steps": rm["steps"],
            "rm_train_loss": rm["train_loss"],
            "policy": opts.policy,
            "policy_steps": policy["steps"],
            "policy_train_loss": policy["train_loss"],
            "rescored": choice,
        }
        self.summary = {
            "learner": "apo",
            "base_model": base_model,
            "init_adapter": adapter,
            "judge_model": judge_model,
            "kind": "adapter",
            "player": {"model": base_model, "adapter": str(out_dir)},
            "judge": {
                "plugin": "reward-model",
                "options": {"model": str(rm_dir.resolve()), "max_length": opts.rm.max_length},
                "kind": "reward",
            },
            "pairs": len(data),
            "steps": (rm["steps"] or 0) + (policy["steps"] or 0),
            "train_loss": policy["train_loss"],
            "metrics": {"apo": apo_metrics},
            "seconds": time.perf_counter() - started,
            "options": opts.model_dump(mode="json"),
        }
        (out_dir / SUMMARY_FILE).write_text(json.dumps(self.summary, indent=2), encoding="utf-8")
        return out_dir

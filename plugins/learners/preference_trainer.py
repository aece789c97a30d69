"""What the TRL preference learners share (`dpo`, `sppo`): training options, a DPOTrainer subclass
that computes arena's own losses, the reference-model choice, and a fit that writes a checkpoint.

`ArenaDPOTrainer` overrides only `_compute_loss` (trl's private method, hence the pin on the trl
minor version and a hand-computed test of each custom loss), `compute_ref_log_probs` and
`_set_signature_columns_if_needed` (so per-pair `arena_*` columns reach the loss). When the
options say the loss is custom, it computes the policy and reference log-probs of the batch as
trl does and hands the per-pair log-ratios to the options' `arena_loss` (see `LossTerms`);
otherwise trl computes its own loss types.

The reference model is chosen so that it is right in every case (trl reloads it from
`config._name_or_path` when given a model instance and no `ref_model`, which is wrong for an
in-memory or iterated model): LoRA on a plain model -> the adapter switched off; LoRA continuing
a previous iterate's adapter -> trl's frozen "ref" copy of that adapter (the previous iterate);
full fine-tuning -> a deep copy taken before training, or the policy's own log-probs computed
before training (`precompute_ref_log_probs`).

Only pydantic is imported at module level: torch, transformers, trl and peft load in `train`.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

SUMMARY_FILE = "arena-learn.json"  # written next to the weights: what was trained, from what
COLUMN_PREFIX = "arena_"  # per-pair columns a custom loss reads; stripped before any forward pass
_TRL_INPUTS = {"completion_mask", "ref_chosen_logps", "ref_rejected_logps"}


class TrainOptions(BaseModel):
    """Options every preference learner has: KL strength, LoRA or full, and the Trainer's."""

    model_config = ConfigDict(extra="forbid")

    beta: float = Field(0.1, gt=0, description="KL strength (IPO's tau)")
    length_normalize: bool = Field(
        False, description="custom losses: per-token mean log-probs instead of sums"
    )
    full_finetune: bool = Field(False, description="train every weight instead of a LoRA adapter")
    lora_r: int = Field(16, ge=1, description="LoRA rank")
    lora_alpha: int = Field(32, ge=1, description="LoRA scale numerator")
    lora_dropout: float = Field(0.0, ge=0, lt=1)
    lora_targets: list[str] | Literal["all-linear"] = Field(
        "all-linear", description="module names to adapt, or all-linear"
    )
    precompute_ref_log_probs: bool = Field(
        False, description="compute reference log-probs once before training (no second model)"
    )
    learning_rate: float = Field(5e-5, gt=0)
    optimizer: str = Field(
        "adamw_torch_fused", description="transformers optimizer name (trl's default; rmsprop ...)"
    )
    epochs: float = Field(1.0, gt=0)
    max_steps: int = Field(-1, description="stop after this many steps (-1: epochs decide)")
    batch_size: int = Field(4, ge=1, description="pairs per device per step")
    grad_accum: int = Field(1, ge=1, description="gradient accumulation steps")
    max_length: int | None = Field(
        1024, ge=8, description="prompt + completion tokens; longer are cut at the end"
    )
    warmup: float = Field(0.0, ge=0, description="warmup steps (< 1: a fraction of all steps)")
    lr_scheduler: str = Field("linear", description="transformers scheduler name")
    weight_decay: float = Field(0.0, ge=0)
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="auto: bf16 (fp16) on CUDA, fp32 on CPU and MPS"
    )
    device: Literal["auto", "cpu", "cuda", "mps"] = Field(
        "auto", description="auto: what accelerate finds (cuda, then mps, then cpu)"
    )
    gradient_checkpointing: bool = Field(False, description="trade compute for memory")
    seed: int = 0
    logging_steps: int = Field(1, ge=1, description="steps between metric rows")
    report_to: list[str] = Field(
        default_factory=lambda: ["none"],
        description="trl's loggers: tensorboard (logs in the checkpoint's runs/), wandb",
    )
    evaluate: bool = Field(
        True, description="loss and reward accuracy on the training pairs before and after"
    )
    torch_threads: int | None = Field(None, ge=1, description="CPU threads (None: torch's own)")
    trust_remote_code: bool = False

    @field_validator("report_to", mode="before")
    @classmethod
    def _listify_loggers(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    # What a learner's options tell the trainer. The defaults: trl's sigmoid loss, nothing custom.

    @property
    def custom(self) -> bool:
        """Whether `arena_loss` computes the loss (else trl's loss types do)."""
        return False

    def trl_loss_args(self) -> dict[str, Any]:
        """DPOConfig's loss arguments (loss_type ...) when trl computes the loss."""
        return {"loss_type": ["sigmoid"]}

    def arena_loss(self, terms: LossTerms) -> Any:
        """The batch loss of a custom loss (a 0-d tensor)."""
        raise NotImplementedError(f"{type(self).__name__} has no custom loss")


@dataclass
class LossTerms:
    """One batch as a custom loss sees it: per-pair log-ratios lr = log pi - log ref (summed, or
    averaged with `length_normalize`) of chosen and rejected, the chosen tokens' mean NLL, and
    the batch (for the `arena_*` columns)."""

    chosen_logratios: Any
    rejected_logratios: Any
    nll: Any
    inputs: dict[str, Any]
    beta: float

    def column(self, name: str) -> Any:
        lr = self.chosen_logratios
        return self.inputs[name].to(lr.device, lr.dtype)


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


# --- the trainer ------------------------------------------------------------------------------


def _is_column(key: str) -> bool:
    return key.startswith(COLUMN_PREFIX)


def trainer_class() -> type:
    """`ArenaDPOTrainer`, built on first use so that importing this module stays cheap."""
    global _TRAINER
    if _TRAINER is not None:
        return _TRAINER
    import torch
    from trl import DPOTrainer

    class ArenaDPOTrainer(DPOTrainer):
        """DPOTrainer plus the learners' custom losses (see the module docstring)."""

        def __init__(self, *args: Any, arena_options: TrainOptions, **kwargs: Any) -> None:
            self.arena_options = arena_options
            super().__init__(*args, **kwargs)

        def _set_signature_columns_if_needed(self) -> None:
            super()._set_signature_columns_if_needed()
            if self.arena_options.custom and self._signature_columns is not None:
                names = self.train_dataset.column_names if self.train_dataset is not None else []
                self._signature_columns = [
                    *self._signature_columns,
                    *(c for c in names if _is_column(c)),
                ]

        def compute_ref_log_probs(self, model: Any, inputs: dict[str, Any]) -> Any:
            inputs = {k: v for k, v in inputs.items() if not _is_column(k)}
            return super().compute_ref_log_probs(model, inputs)

        def _compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool) -> Any:
            if not self.arena_options.custom:
                return super()._compute_loss(model, inputs, return_outputs)
            loss = self._custom_loss(model, inputs)
            if not return_outputs:
                return loss
            # As trl does: the fused head builds no logits, so a caller that wants them
            # (compute_metrics) gets a plain forward pass.
            kwargs = {k: v for k, v in inputs.items() if not _non_model(k)}
            with torch.no_grad():
                return loss, model(**kwargs)

        def _custom_loss(self, model: Any, inputs: dict[str, Any]) -> Any:
            """Policy and reference log-probs as trl computes them, then the options' loss."""
            opts = self.arena_options
            mode = "train" if self.model.training else "eval"
            completion_mask = inputs["completion_mask"]
            mask = completion_mask[..., 1:]
            model_kwargs = {k: v for k, v in inputs.items() if not _non_model(k)}
            model_kwargs["use_cache"] = False
            labels = inputs["input_ids"].masked_fill(completion_mask == 0, -100)
            outputs = model(**model_kwargs, labels=labels, fused_lm_head=True)
            per_token = outputs.log_probs[:, -mask.size(1) :] * mask
            logps = per_token.sum(dim=1)
            if self.precompute_ref_logps:
                ref_c, ref_r = inputs["ref_chosen_logps"], inputs["ref_rejected_logps"]
            else:
                ref_model = self.ref_model if self.ref_model is not None else self.model
                ref_c, ref_r = self.compute_ref_log_probs(ref_model, inputs)
            ref_logps = torch.cat([ref_c, ref_r]).to(logps.device, logps.dtype)
            if opts.length_normalize:
                lengths = mask.sum(dim=1).clamp(min=1)
                logps, ref_logps = logps / lengths, ref_logps / lengths
            chosen, rejected = logps.chunk(2)
            chosen_lr, rejected_lr = (logps - ref_logps).chunk(2)
            chosen_mask = mask.chunk(2)[0].bool()
            nll = -per_token.chunk(2)[0][chosen_mask].mean()
            loss = opts.arena_loss(LossTerms(chosen_lr, rejected_lr, nll, inputs, self.beta))
            chosen_rewards = self.beta * chosen_lr.detach()
            rejected_rewards = self.beta * rejected_lr.detach()
            gather = self.accelerator.gather
            m = self._metrics[mode]
            m["rewards/chosen"].append(gather(chosen_rewards).mean().item())
            m["rewards/rejected"].append(gather(rejected_rewards).mean().item())
            m["rewards/accuracies"].append(
                gather((chosen_rewards > rejected_rewards).float()).mean().item()
            )
            m["rewards/margins"].append(gather(chosen_rewards - rejected_rewards).mean().item())
            m["logps/chosen"].append(gather(chosen.detach()).mean().item())
            m["logps/rejected"].append(gather(rejected.detach()).mean().item())
            m["nll/chosen"].append(gather(nll.detach()).mean().item())
            return loss

    _TRAINER = ArenaDPOTrainer
    return ArenaDPOTrainer


_TRAINER: type | None = None


def _non_model(key: str) -> bool:
    return key in _TRL_INPUTS or _is_column(key)


def collator_class() -> type:
    """trl's preference collator, also stacking the per-pair `arena_*` columns."""
    import torch
    from trl.trainer.dpo_trainer import DataCollatorForPreference

    class ArenaPreferenceCollator(DataCollatorForPreference):
        def torch_call(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
            out = super().torch_call(examples)
            for key in examples[0]:
                if _is_column(key):
                    out[key] = torch.tensor([float(e[key]) for e in examples])
            return out

    return ArenaPreferenceCollator


# --- data -------------------------------------------------------------------------------------


def plain_prompt(messages: Sequence[dict[str, str]]) -> str:
    """The prompt as the `transformers` agent renders it for a tokenizer without a template."""
    lines = [f"{m['role'].capitalize()}: {m['content']}" for m in messages]
    return "\n\n".join([*lines, "Assistant:"])


def _text(value: Any) -> str:
    """A completion given as text or as a one-message assistant turn."""
    if isinstance(value, list):
        return "".join(str(m.get("content", "")) for m in value)
    return str(value)


def trl_row(prompt: Any, chosen: Any, rejected: Any, *, chat: bool) -> dict[str, Any]:
    """One pair in trl's format. With a chat template the pair stays conversational, so trl
    renders it exactly as the agent does at inference; without one, the prompt is the agent's
    plain `Role: text` transcript."""
    if isinstance(prompt, str):
        prompt = [{"role": "user", "content": prompt}]
    chosen, rejected = _text(chosen), _text(rejected)
    if chat:
        return {
            "prompt": [{"role": m["role"], "content": m["content"]} for m in prompt],
            "chosen": [{"role": "assistant", "content": chosen}],
            "rejected": [{"role": "assistant", "content": rejected}],
        }
    return {"prompt": plain_prompt(prompt), "chosen": chosen, "rejected": rejected}


# --- training ---------------------------------------------------------------------------------


def checkpointing_field(config: type) -> str:
    """transformers 5 renamed `gradient_checkpointing` to `activation_checkpointing` (the old name
    warns, and goes in v6); older releases know only the old one."""
    import dataclasses

    new = "activation_checkpointing"
    return new if new in {f.name for f in dataclasses.fields(config)} else "gradient_checkpointing"


def pick_precision(precision: str, device: str) -> tuple[bool, bool]:
    """(bf16, fp16) for DPOConfig: trl defaults to bf16, which CPUs run slowly and MPS lacks."""
    import torch

    cuda = device in ("auto", "cuda") and torch.cuda.is_available()
    if precision == "auto":
        if not cuda:
            return False, False
        return (True, False) if torch.cuda.is_bf16_supported() else (False, True)
    return precision == "bf16", precision == "fp16"


def _use_cpu(device: str) -> bool:
    import torch

    if device == "cpu":
        return True
    if device != "auto":
        return False
    mps = getattr(torch.backends, "mps", None)
    return not (torch.cuda.is_available() or (mps is not None and mps.is_available()))


def train(
    opts: TrainOptions,
    make_rows: Callable[[bool], list[dict[str, Any]]],
    base_model: str,
    out_dir: Path,
    *,
    learner: str,
    adapter: str | None = None,
    on_log: Callable[[dict[str, Any]], None] | None = None,
    summary: dict[str, Any] | None = None,
) -> tuple[Path, dict[str, Any]]:
    """Train from `base_model` (+ `adapter`, the previous iterate) on `make_rows(chat)` (trl rows;
    `chat`: the tokenizer has a chat template); write the checkpoint to `out_dir` in one rename,
    so an interrupted run never leaves a half-written one where a player would load it. Returns
    the checkpoint and the run's summary (also written to it as SUMMARY_FILE)."""
    import datasets
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from transformers.utils import logging as hf_logging
    from trl import DPOConfig

    started = time.perf_counter()
    datasets.disable_progress_bars()
    hf_logging.disable_progress_bar()
    if opts.torch_threads:
        torch.set_num_threads(opts.torch_threads)
    out_dir = Path(out_dir)
    tmp = out_dir.with_name(f"{out_dir.name}.partial")  # the same on every rank
    bf16, fp16 = pick_precision(opts.precision, opts.device)
    use_cpu = _use_cpu(opts.device)
    tokenizer = AutoTokenizer.from_pretrained(base_model, trust_remote_code=opts.trust_remote_code)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    rows = make_rows(bool(getattr(tokenizer, "chat_template", None)))
    if not rows:
        raise ValueError("no preference pairs to train on")
    train_set = datasets.Dataset.from_list(rows)
    # Weights in fp32 unless LoRA on a half-precision GPU run: mixed precision keeps fp32
    # master weights for what is trained, and the frozen base can stay in 16 bits.
    dtype = torch.float32
    if not opts.full_finetune and (bf16 or fp16):
        dtype = torch.bfloat16 if bf16 else torch.float16
    model = AutoModelForCausalLM.from_pretrained(
        base_model, dtype=dtype, trust_remote_code=opts.trust_remote_code
    )
    peft_config = None
    ref_model = None
    if adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter, is_trainable=not opts.full_finetune)
        if opts.full_finetune:
            model = model.merge_and_unload()
        # LoRA: trl copies the loaded adapter into a frozen "ref" adapter, so the reference
        # is the previous iterate, not the base model.
    elif not opts.full_finetune:
        from peft import LoraConfig

        peft_config = LoraConfig(
            r=opts.lora_r,
            lora_alpha=opts.lora_alpha,
            lora_dropout=opts.lora_dropout,
            target_modules=opts.lora_targets,
            task_type="CAUSAL_LM",
        )
    if opts.full_finetune and not opts.precompute_ref_log_probs:
        import copy

        ref_model = copy.deepcopy(model).eval()  # the policy as it starts: the reference
    config = DPOConfig(
        output_dir=str(tmp),
        **opts.trl_loss_args(),
        beta=opts.beta,
        precompute_ref_log_probs=opts.precompute_ref_log_probs,
        learning_rate=opts.learning_rate,
        optim=opts.optimizer,
        num_train_epochs=opts.epochs,
        max_steps=opts.max_steps,
        per_device_train_batch_size=opts.batch_size,
        per_device_eval_batch_size=opts.batch_size,
        gradient_accumulation_steps=opts.grad_accum,
        max_length=opts.max_length,
        warmup_steps=opts.warmup,
        lr_scheduler_type=opts.lr_scheduler,
        weight_decay=opts.weight_decay,
        bf16=bf16,
        fp16=fp16,
        use_cpu=use_cpu,
        **{checkpointing_field(DPOConfig): opts.gradient_checkpointing},
        seed=opts.seed,
        data_seed=opts.seed,
        logging_steps=opts.logging_steps,
        report_to=opts.report_to,
        save_strategy="no",
        disable_tqdm=True,
        dataloader_num_workers=0,
        trust_remote_code=opts.trust_remote_code,
    )
    callbacks = []
    if on_log is not None:

        class _Relay(TrainerCallback):
            def on_log(
                self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any
            ) -> None:
                if state.is_world_process_zero and logs:
                    on_log({"step": state.global_step, **logs})

        callbacks.append(_Relay())
    collator = None
    if opts.custom:
        collator = collator_class()(
            pad_token_id=tokenizer.pad_token_id,
            max_length=opts.max_length,
            pad_to_multiple_of=config.pad_to_multiple_of,
        )
    trainer = trainer_class()(
        model=model,
        ref_model=ref_model,
        args=config,
        train_dataset=train_set,
        processing_class=tokenizer,
        peft_config=peft_config,
        data_collator=collator,
        callbacks=callbacks,
        arena_options=opts,
    )
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # progress goes through on_log instead
    if trainer.accelerator.is_main_process and tmp.exists():
        shutil.rmtree(tmp)  # left by a killed run
    kept = len(trainer.train_dataset)
    if kept == 0:
        raise ValueError(
            f"every pair's prompt is longer than max_length={opts.max_length} tokens: raise it"
        )
    trainer.eval_dataset = trainer.train_dataset  # already tokenized (and reference-scored)
    before = evaluate(trainer) if opts.evaluate else {}
    result = trainer.train()
    after = evaluate(trainer) if opts.evaluate else {}
    is_adapter = not opts.full_finetune
    trainer.save_model(str(tmp))  # every rank: ZeRO-3 and FSDP gather the weights here
    written: dict[str, Any] = {}
    if trainer.accelerator.is_main_process:
        # trl's frozen "ref" adapter (the previous iterate) is saved beside the new one.
        shutil.rmtree(tmp / "ref", ignore_errors=True)
        tokenizer.save_pretrained(str(tmp))
        written = {
            "learner": learner,
            "base_model": base_model,
            "init_adapter": adapter,
            "kind": "adapter" if is_adapter else "full",
            "player": (
                {"model": base_model, "adapter": str(out_dir)}
                if is_adapter
                else {"model": str(out_dir), "adapter": None}
            ),
            "pairs": len(rows),
            "pairs_trained": kept,
            **(summary or {}),
            "steps": trainer.state.global_step,
            "train_loss": result.training_loss,
            "before": before,
            "after": after,
            "seconds": time.perf_counter() - started,
            "options": opts.model_dump(mode="json"),
        }
        (tmp / SUMMARY_FILE).write_text(json.dumps(written, indent=2), encoding="utf-8")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    trainer.accelerator.wait_for_everyone()
    return out_dir, written


def evaluate(trainer: Any) -> dict[str, float]:
    """Loss, rewards (beta * log-ratio), accuracy and margins on the training pairs, now."""
    metrics = trainer.evaluate()
    keep = (
        "loss",
        "rewards/chosen",
        "rewards/rejected",
        "rewards/accuracies",
        "rewards/margins",
        "logps/chosen",
        "logps/rejected",
    )
    return {k: float(metrics[f"eval_{k}"]) for k in keep if f"eval_{k}" in metrics}


def read_summary(checkpoint: str | Path) -> dict[str, Any]:
    path = Path(checkpoint) / SUMMARY_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}

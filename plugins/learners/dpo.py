"""The `dpo` learner: TRL's DPOTrainer on preference pairs, LoRA by default, two custom losses.

Every `loss_type` of trl 1.16's DPOTrainer is passed through unchanged. Two losses TRL lacks are
added by `ArenaDPOTrainer`, which overrides only `_compute_loss` (trl's private method, hence the
pin on the trl minor version and a hand-computed test of each), `compute_ref_log_probs` and
`_set_signature_columns_if_needed` (so the per-pair columns reach the loss):

- `soft_label` (the debate work's "bon" loss): with D = lr(y_w) - lr(y_l) and the target
  p = sigmoid(gamma * value gap), (1 - a) [-p log s(bD) - (1 - p) log s(-bD)] + a NLL(chosen).
- `margin` (adaptive-margin DPO): -log s(bD - m), m fixed or per pair (margin * the pair's gap).

The reference model is chosen so that it is right in every case (trl reloads it from
`config._name_or_path` when given a model instance and no `ref_model`, which is wrong for an
in-memory or iterated model): LoRA on a plain model -> the adapter switched off; LoRA continuing
a previous iterate's adapter -> trl's frozen "ref" copy of that adapter (the previous iterate);
full fine-tuning -> a deep copy taken before training, or the policy's own log-probs computed
before training (`precompute_ref_log_probs`).

Only pydantic is imported at module level: torch, transformers, trl and peft load in `fit`.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from arena_core.interfaces import Learner

TrlLoss = Literal[
    "sigmoid",
    "hinge",
    "ipo",
    "exo_pair",
    "nca_pair",
    "robust",
    "bco_pair",
    "sppo_hard",
    "aot",
    "aot_unpaired",
    "apo_zero",
    "apo_down",
    "discopop",
    "sft",
    "sigmoid_norm",
]
CustomLoss = Literal["soft_label", "margin"]  # the losses TRL lacks, computed here
LossType = Literal[TrlLoss, CustomLoss]  # nested Literals flatten to one
TRL_LOSSES: tuple[str, ...] = get_args(TrlLoss)
CUSTOM_LOSSES: tuple[str, ...] = get_args(CustomLoss)
SUMMARY_FILE = "arena-learn.json"  # written next to the weights: what was trained, from what
# Columns the custom losses read; stripped before any forward pass.
EXTRA_KEYS = ("arena_target", "arena_margin")
_NON_MODEL = {"completion_mask", "ref_chosen_logps", "ref_rejected_logps", *EXTRA_KEYS}


class DPOOptions(BaseModel):
    """Options of the `dpo` learner (a `[learner.options]` table or `arena learn -o k=v`)."""

    model_config = ConfigDict(extra="forbid")

    loss_type: list[LossType] = Field(
        default_factory=lambda: ["sigmoid"],
        description="trl's loss types, or soft_label / margin (custom; combine only with sft)",
    )
    loss_weights: list[float] | None = Field(None, description="one weight per loss_type")
    beta: float = Field(0.1, gt=0, description="KL strength (IPO's tau)")
    label_smoothing: float = Field(
        0.0, ge=0, lt=1, description="robust / exo_pair / aot label noise (exo_pair needs > 0)"
    )
    discopop_tau: float = Field(0.05, gt=0, description="DiscoPOP temperature")
    gamma: float | None = Field(
        None,
        gt=0,
        description="soft_label: p = sigmoid(gamma * gap); None: the pair's own target "
        "(the protocol's gamma), else 1",
    )
    sft_alpha: float = Field(
        0.0, ge=0, le=1, description="soft_label: weight of the NLL term on chosen (debate: 0.005)"
    )
    margin: float = Field(0.0, description="margin: m (fixed) or m per unit of gap (gap)")
    margin_mode: Literal["fixed", "gap"] = Field(
        "fixed", description="margin: the same m for every pair, or margin * the pair's gap"
    )
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

    @field_validator("loss_type", "report_to", mode="before")
    @classmethod
    def _listify(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @model_validator(mode="after")
    def _consistent(self) -> DPOOptions:
        kinds = set(self.loss_type)
        if not kinds:
            raise ValueError("loss_type needs at least one loss")
        if kinds & set(CUSTOM_LOSSES) and not kinds <= {*CUSTOM_LOSSES, "sft"}:
            raise ValueError(
                "soft_label and margin are computed by arena, not trl: combine them only with "
                f"each other and sft (got {self.loss_type})"
            )
        if self.loss_weights is not None and len(self.loss_weights) != len(self.loss_type):
            raise ValueError(
                f"loss_weights has {len(self.loss_weights)} entries for "
                f"{len(self.loss_type)} loss types"
            )
        if "exo_pair" in kinds and self.label_smoothing == 0:
            raise ValueError("exo_pair needs label_smoothing > 0 (the EXO paper uses 1e-3)")
        return self

    @property
    def custom(self) -> bool:
        return bool(set(self.loss_type) & set(CUSTOM_LOSSES))


# --- the custom losses, as plain functions of per-pair log-ratios (tested by hand) -------------


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def soft_label_loss(
    chosen_logratios: Any, rejected_logratios: Any, target: Any, beta: float
) -> Any:
    """Per pair: -p log s(bD) - (1 - p) log s(-bD), D = chosen - rejected log-ratio."""
    import torch.nn.functional as F

    d = beta * (chosen_logratios - rejected_logratios)
    return -target * F.logsigmoid(d) - (1 - target) * F.logsigmoid(-d)


def margin_loss(chosen_logratios: Any, rejected_logratios: Any, margin: Any, beta: float) -> Any:
    """Per pair: -log s(bD - m)."""
    import torch.nn.functional as F

    return -F.logsigmoid(beta * (chosen_logratios - rejected_logratios) - margin)


def pair_target(row: dict[str, Any], gamma: float | None) -> float:
    """The soft label p of one pair: sigmoid(gamma * gap), else its own target, else 1."""
    gap = row.get("gap")
    if gamma is not None and gap is not None:
        return sigmoid(gamma * float(gap))
    if row.get("target") is not None:
        return float(row["target"])
    return 1.0


def pair_margin(row: dict[str, Any], opts: DPOOptions) -> float:
    if opts.margin_mode == "gap":
        return opts.margin * float(row.get("gap") or 0.0)
    return opts.margin


# --- the trainer ------------------------------------------------------------------------------


def _trainer_class() -> type:
    """`ArenaDPOTrainer`, built on first use so that importing this module stays cheap."""
    global _TRAINER
    if _TRAINER is not None:
        return _TRAINER
    import torch
    from trl import DPOTrainer

    class ArenaDPOTrainer(DPOTrainer):
        """DPOTrainer plus the soft-label and adaptive-margin losses (see the module docstring)."""

        def __init__(self, *args: Any, arena_options: DPOOptions, **kwargs: Any) -> None:
            self.arena_options = arena_options
            super().__init__(*args, **kwargs)

        def _set_signature_columns_if_needed(self) -> None:
            super()._set_signature_columns_if_needed()
            if self.arena_options.custom and self._signature_columns is not None:
                self._signature_columns = [*self._signature_columns, *EXTRA_KEYS]

        def compute_ref_log_probs(self, model: Any, inputs: dict[str, Any]) -> Any:
            inputs = {k: v for k, v in inputs.items() if k not in EXTRA_KEYS}
            return super().compute_ref_log_probs(model, inputs)

        def _compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool) -> Any:
            if not self.arena_options.custom:
                return super()._compute_loss(model, inputs, return_outputs)
            loss = self._custom_loss(model, inputs)
            if not return_outputs:
                return loss
            # As trl does: the fused head builds no logits, so a caller that wants them
            # (compute_metrics) gets a plain forward pass.
            kwargs = {k: v for k, v in inputs.items() if k not in _NON_MODEL}
            with torch.no_grad():
                return loss, model(**kwargs)

        def _custom_loss(self, model: Any, inputs: dict[str, Any]) -> Any:
            """Policy and reference log-probs as trl computes them, then the arena losses."""
            opts = self.arena_options
            mode = "train" if self.model.training else "eval"
            completion_mask = inputs["completion_mask"]
            mask = completion_mask[..., 1:]
            model_kwargs = {k: v for k, v in inputs.items() if k not in _NON_MODEL}
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
            weights = opts.loss_weights or [1.0] * len(opts.loss_type)
            loss = torch.zeros((), device=logps.device, dtype=logps.dtype)
            for kind, weight in zip(opts.loss_type, weights, strict=True):
                if kind == "soft_label":
                    target = inputs["arena_target"].to(logps.device, logps.dtype)
                    per_pair = soft_label_loss(chosen_lr, rejected_lr, target, self.beta)
                    term = (1 - opts.sft_alpha) * per_pair.mean() + opts.sft_alpha * nll
                elif kind == "margin":
                    margin = inputs["arena_margin"].to(logps.device, logps.dtype)
                    term = margin_loss(chosen_lr, rejected_lr, margin, self.beta).mean()
                else:  # sft, as trl computes it: mean NLL over the chosen tokens of the batch
                    term = nll
                loss = loss + weight * term
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


def _collator_class() -> type:
    """trl's preference collator, also stacking the per-pair target and margin."""
    import torch
    from trl.trainer.dpo_trainer import DataCollatorForPreference

    class ArenaPreferenceCollator(DataCollatorForPreference):
        def torch_call(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
            out = super().torch_call(examples)
            for key in EXTRA_KEYS:
                if key in examples[0]:
                    out[key] = torch.tensor([float(e[key]) for e in examples])
            return out

    return ArenaPreferenceCollator


# --- data -------------------------------------------------------------------------------------


def plain_prompt(messages: Sequence[dict[str, str]]) -> str:
    """The prompt as the `transformers` agent renders it for a tokenizer without a template."""
    lines = [f"{m['role'].capitalize()}: {m['content']}" for m in messages]
    return "\n\n".join([*lines, "Assistant:"])


def to_trl_rows(
    data: Sequence[dict[str, Any]], opts: DPOOptions, *, chat: bool
) -> list[dict[str, Any]]:
    """Arena pairs (prompt messages, chosen and rejected text) in trl's format.

    With a chat template the pairs stay conversational, so trl renders them exactly as the agent
    does at inference; without one, the prompt is the agent's plain `Role: text` transcript.
    """
    rows = []
    for row in data:
        prompt = row["prompt"]
        if isinstance(prompt, str):
            prompt = [{"role": "user", "content": prompt}]
        chosen, rejected = _text(row["chosen"]), _text(row["rejected"])
        if chat:
            out: dict[str, Any] = {
                "prompt": [{"role": m["role"], "content": m["content"]} for m in prompt],
                "chosen": [{"role": "assistant", "content": chosen}],
                "rejected": [{"role": "assistant", "content": rejected}],
            }
        else:
            out = {"prompt": plain_prompt(prompt), "chosen": chosen, "rejected": rejected}
        if opts.custom:
            out["arena_target"] = pair_target(row, opts.gamma)
            out["arena_margin"] = pair_margin(row, opts)
        rows.append(out)
    return rows


def _text(value: Any) -> str:
    """A completion given as text or as a one-message assistant turn."""
    if isinstance(value, list):
        return "".join(str(m.get("content", "")) for m in value)
    return str(value)


# --- the learner ------------------------------------------------------------------------------


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


class DPOLearner(Learner):
    """TRL DPO on arena pairs; the checkpoint is a LoRA adapter (or full weights) plus a summary."""

    def __init__(self, options: DPOOptions) -> None:
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
        **_: Any,
    ) -> Path:
        """Train on `data` (arena pair dicts) from `base_model` (+ `adapter`, the previous
        iterate); write the checkpoint to `out_dir` in one rename, so an interrupted run never
        leaves a half-written one where a player would load it."""
        import datasets
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
        from transformers.utils import logging as hf_logging
        from trl import DPOConfig

        opts = self.opts
        started = time.perf_counter()
        datasets.disable_progress_bars()
        hf_logging.disable_progress_bar()
        if opts.torch_threads:
            torch.set_num_threads(opts.torch_threads)
        out_dir = Path(out_dir)
        tmp = out_dir.with_name(f"{out_dir.name}.partial")  # the same on every rank
        bf16, fp16 = pick_precision(opts.precision, opts.device)
        use_cpu = _use_cpu(opts.device)
        tokenizer = AutoTokenizer.from_pretrained(
            base_model, trust_remote_code=opts.trust_remote_code
        )
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
        chat = bool(getattr(tokenizer, "chat_template", None))
        rows = to_trl_rows(list(data), opts, chat=chat)
        if not rows:
            raise ValueError("no preference pairs to train on")
        train = datasets.Dataset.from_list(rows)
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
            loss_type=[t for t in opts.loss_type if t in TRL_LOSSES] or ["sigmoid"],
            loss_weights=None if opts.custom else opts.loss_weights,
            beta=opts.beta,
            label_smoothing=opts.label_smoothing,
            discopop_tau=opts.discopop_tau,
            precompute_ref_log_probs=opts.precompute_ref_log_probs,
            learning_rate=opts.learning_rate,
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
            collator = _collator_class()(
                pad_token_id=tokenizer.pad_token_id,
                max_length=opts.max_length,
                pad_to_multiple_of=config.pad_to_multiple_of,
            )
        trainer = _trainer_class()(
            model=model,
            ref_model=ref_model,
            args=config,
            train_dataset=train,
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
        before = _eval(trainer) if opts.evaluate else {}
        result = trainer.train()
        after = _eval(trainer) if opts.evaluate else {}
        is_adapter = not opts.full_finetune
        trainer.save_model(str(tmp))  # every rank: ZeRO-3 and FSDP gather the weights here
        if trainer.accelerator.is_main_process:
            # trl's frozen "ref" adapter (the previous iterate) is saved beside the new one.
            shutil.rmtree(tmp / "ref", ignore_errors=True)
            tokenizer.save_pretrained(str(tmp))
            self.summary = {
                "learner": "dpo",
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
                "steps": trainer.state.global_step,
                "train_loss": result.training_loss,
                "before": before,
                "after": after,
                "seconds": time.perf_counter() - started,
                "options": opts.model_dump(mode="json"),
            }
            (tmp / SUMMARY_FILE).write_text(json.dumps(self.summary, indent=2), encoding="utf-8")
            if out_dir.exists():
                shutil.rmtree(out_dir)
            os.replace(tmp, out_dir)
        trainer.accelerator.wait_for_everyone()
        return out_dir


def _eval(trainer: Any) -> dict[str, float]:
    """Loss, reward accuracy and margins on the training pairs (the policy as it is now)."""
    metrics = trainer.evaluate()
    keep = ("loss", "rewards/accuracies", "rewards/margins", "logps/chosen", "logps/rejected")
    return {k: float(metrics[f"eval_{k}"]) for k in keep if f"eval_{k}" in metrics}


def read_summary(checkpoint: str | Path) -> dict[str, Any]:
    path = Path(checkpoint) / SUMMARY_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}

"""The `dpo` learner: TRL's DPOTrainer on preference pairs, LoRA by default, two custom losses.

Every `loss_type` of trl 1.16's DPOTrainer is passed through unchanged. Two losses TRL lacks are
computed by the shared `ArenaDPOTrainer` (plugins/learners/preference_trainer.py, which also
holds the reference-model choice and the checkpoint writing):

- `soft_label` (the debate work's "bon" loss): with D = lr(y_w) - lr(y_l) and the target
  p = sigmoid(gamma * value gap), (1 - a) [-p log s(bD) - (1 - p) log s(-bD)] + a NLL(chosen).
- `margin` (adaptive-margin DPO): -log s(bD - m), m fixed or per pair (margin * the pair's gap).

Only pydantic is imported at module level: torch, transformers, trl and peft load in `fit`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, get_args

from arena_plugins.learners.preference_trainer import (
    SUMMARY_FILE,
    LossTerms,
    TrainOptions,
    _text,
    _use_cpu,
    checkpointing_field,
    pick_precision,
    plain_prompt,
    read_summary,
    sigmoid,
    train,
    trl_row,
)
from arena_plugins.learners.preference_trainer import collator_class as _collator_class
from arena_plugins.learners.preference_trainer import trainer_class as _trainer_class
from pydantic import Field, field_validator, model_validator

from arena_core.interfaces import Learner

__all__ = [  # the shared helpers stay importable from here
    "SUMMARY_FILE",
    "DPOLearner",
    "DPOOptions",
    "_collator_class",
    "_text",
    "_trainer_class",
    "_use_cpu",
    "checkpointing_field",
    "pick_precision",
    "plain_prompt",
    "read_summary",
    "sigmoid",
]

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


class DPOOptions(TrainOptions):
    """Options of the `dpo` learner (a `[learner.options]` table or `arena learn -o k=v`)."""

    loss_type: list[LossType] = Field(
        default_factory=lambda: ["sigmoid"],
        description="trl's loss types, or soft_label / margin (custom; combine only with sft)",
    )
    loss_weights: list[float] | None = Field(None, description="one weight per loss_type")
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

    @field_validator("loss_type", mode="before")
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

    def trl_loss_args(self) -> dict[str, Any]:
        return {
            "loss_type": [t for t in self.loss_type if t in TRL_LOSSES] or ["sigmoid"],
            "loss_weights": None if self.custom else self.loss_weights,
            "label_smoothing": self.label_smoothing,
            "discopop_tau": self.discopop_tau,
        }

    def arena_loss(self, terms: LossTerms) -> Any:
        """soft_label, margin and sft terms, weighted (see the module docstring)."""
        weights = self.loss_weights or [1.0] * len(self.loss_type)
        chosen, rejected = terms.chosen_logratios, terms.rejected_logratios
        loss: Any = 0.0
        for kind, weight in zip(self.loss_type, weights, strict=True):
            if kind == "soft_label":
                target = terms.column("arena_target")
                per_pair = soft_label_loss(chosen, rejected, target, terms.beta)
                term = (1 - self.sft_alpha) * per_pair.mean() + self.sft_alpha * terms.nll
            elif kind == "margin":
                margin = terms.column("arena_margin")
                term = margin_loss(chosen, rejected, margin, terms.beta).mean()
            else:  # sft, as trl computes it: mean NLL over the chosen tokens of the batch
                term = terms.nll
            loss = loss + weight * term
        return loss


# --- the custom losses, as plain functions of per-pair log-ratios (tested by hand) -------------


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


# --- data -------------------------------------------------------------------------------------


def to_trl_rows(
    data: Sequence[dict[str, Any]], opts: DPOOptions, *, chat: bool
) -> list[dict[str, Any]]:
    """Arena pairs (prompt messages, chosen and rejected text) in trl's format (see `trl_row`),
    with the per-pair target and margin when a custom loss reads them."""
    rows = []
    for row in data:
        out = trl_row(row["prompt"], row["chosen"], row["rejected"], chat=chat)
        if opts.custom:
            out["arena_target"] = pair_target(row, opts.gamma)
            out["arena_margin"] = pair_margin(row, opts)
        rows.append(out)
    return rows


# --- the learner ------------------------------------------------------------------------------


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
        iterate); the checkpoint is moved into `out_dir` in one rename."""
        pairs = list(data)
        out, self.summary = train(
            self.opts,
            lambda chat: to_trl_rows(pairs, self.opts, chat=chat),
            base_model,
            out_dir,
            learner="dpo",
            adapter=adapter,
            on_log=on_log,
        )
        return out

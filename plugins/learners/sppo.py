"""The `sppo` learner: Self-Play Preference Optimization (Wu et al. 2024, uclaml/SPPO).

Per prompt, the policy's K answers of one self-play match and each answer's win probability
against the policy, P(y_i > pi) = (1/K) sum_j P(y_i > y_j) (self term 1/2), computed exactly by
the self-play protocol from every pairwise verdict in the ledger (PairRM: from its logits;
plugins/protocols/self_play.py `preference`) and handed over as the pairs' `score_chosen` /
`score_rejected`. The learner keeps, per match, the best answer w and the worst l (by P) and
regresses each log-ratio lr = log pi - log ref onto its target:

    L = 1/2 [(lr_w - (P_w - 1/2) / beta)^2 + (lr_l - (P_l - 1/2) / beta)^2]

so at the optimum beta * lr_w = P_w - 1/2 (trl's `sppo_hard` targets +-1/2 whatever P says). The
reference is the iteration's starting policy: the previous iterate (LoRA: trl's frozen copy of
its adapter; full fine-tuning: a copy taken before training), as SPPO does. Training runs through
the `dpo` learner's `ArenaDPOTrainer` (plugins/learners/preference_trainer.py).

Defaults are SPPO's (scripts/pipeline.sh): beta 0.001, lr 5e-7, RMSprop, linear schedule with
10% warmup, one epoch, 8 prompts per device step, 1024 tokens, full fine-tuning. Small models
with LoRA want beta ~0.1 and lr ~5e-5 instead (see tournaments/iterative-sppo.toml).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from arena_plugins.learners.preference_trainer import LossTerms, TrainOptions, train, trl_row
from pydantic import Field

from arena_core.interfaces import Learner


class SPPOOptions(TrainOptions):
    """Options of the `sppo` learner; the defaults are the SPPO paper's."""

    beta: float = Field(0.001, gt=0, description="KL strength; eta = 1/beta scales the targets")
    learning_rate: float = Field(5e-7, gt=0)
    optimizer: str = Field("rmsprop", description="transformers optimizer name")
    warmup: float = Field(0.1, ge=0, description="warmup steps (< 1: a fraction of all steps)")
    batch_size: int = Field(8, ge=1, description="prompts (best, worst) per device per step")
    full_finetune: bool = Field(True, description="train every weight (False: a LoRA adapter)")

    @property
    def custom(self) -> bool:
        return True

    def arena_loss(self, terms: LossTerms) -> Any:
        return sppo_loss(
            terms.chosen_logratios,
            terms.rejected_logratios,
            terms.column("arena_p_chosen"),
            terms.column("arena_p_rejected"),
            terms.beta,
        ).mean()


def sppo_loss(
    chosen_logratios: Any, rejected_logratios: Any, p_chosen: Any, p_rejected: Any, beta: float
) -> Any:
    """Per prompt: 1/2 [(lr_w - (P_w - 1/2)/beta)^2 + (lr_l - (P_l - 1/2)/beta)^2]."""
    eta = 1.0 / beta
    return 0.5 * (
        (chosen_logratios - (p_chosen - 0.5) * eta) ** 2
        + (rejected_logratios - (p_rejected - 0.5) * eta) ** 2
    )


@dataclass
class SPPORow:
    """One prompt's training row: its best and worst answers with their win probabilities."""

    prompt: Any
    chosen: str
    rejected: str
    p_chosen: float
    p_rejected: float
    match_id: str | None


def sppo_rows(data: Sequence[dict[str, Any]]) -> tuple[list[SPPORow], int]:
    """Group pairs by match (one prompt, K answers); per match, the answer with the highest P is
    chosen and the one with the lowest rejected. Returns the rows and the number of matches
    skipped because every answer had the same P (nothing to learn).

    Every answer the judge told apart from another appears in some pair; one that tied with all
    has P = 1/2 = the mean of the P's, so it is never the strict best or worst."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for n, row in enumerate(data):
        if row.get("score_chosen") is None or row.get("score_rejected") is None:
            raise ValueError(
                f"pair {n} has no score_chosen/score_rejected: sppo needs each answer's win "
                f"probability P(y > pi), which the self-play protocol's pairs carry"
            )
        key = row.get("match_id") or repr(row["prompt"])
        groups.setdefault(str(key), []).append(row)
    rows, ties = [], 0
    for group in groups.values():
        answers: dict[str, float] = {}
        for row in group:
            answers.setdefault(_text(row["chosen"]), float(row["score_chosen"]))
            answers.setdefault(_text(row["rejected"]), float(row["score_rejected"]))
        ranked = sorted(answers.items(), key=lambda kv: -kv[1])  # stable: first seen wins ties
        (best, p_best), (worst, p_worst) = ranked[0], ranked[-1]
        if p_best <= p_worst:
            ties += 1
            continue
        rows.append(
            SPPORow(group[0]["prompt"], best, worst, p_best, p_worst, group[0].get("match_id"))
        )
    return rows, ties


def _text(value: Any) -> str:
    if isinstance(value, list):
        return "".join(str(m.get("content", "")) for m in value)
    return str(value)


def to_trl_rows(rows: Sequence[SPPORow], *, chat: bool) -> list[dict[str, Any]]:
    out = []
    for r in rows:
        row = trl_row(r.prompt, r.chosen, r.rejected, chat=chat)
        row["arena_p_chosen"] = r.p_chosen
        row["arena_p_rejected"] = r.p_rejected
        out.append(row)
    return out


class SPPOLearner(Learner):
    """SPPO on self-play matches; the checkpoint is full weights (or a LoRA adapter) + summary."""

    def __init__(self, options: SPPOOptions) -> None:
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
        """Train on the pairs of self-play matches (see the module docstring)."""
        rows, ties = sppo_rows(list(data))
        if not rows:
            raise ValueError(
                f"no prompt has answers with different win probabilities ({ties} all tied)"
            )
        out, self.summary = train(
            self.opts,
            lambda chat: to_trl_rows(rows, chat=chat),
            base_model,
            out_dir,
            learner="sppo",
            adapter=adapter,
            on_log=on_log,
            summary={"prompts": len(rows), "prompts_tied": ties},
        )
        return out

"""The quote judge: a model-free judge that weighs verified evidence, never the passage.

It reads the speeches as the protocol showed them (quotes already checked), credits every verified
quote to each answer by the content words they share, discounts evidence that is hedged or negated
("it was rumoured that...", "not the ..."), charges each speaker for fabricated quotes, and turns
the scores into probabilities with a softmax. On the bundled set, between two extractive
debaters, it sides with the gold answer about 73% of the time (discount 0: 69%).

With no speeches at all (the `empty` protocol: the judge alone), there is no evidence to weigh, so
it falls back to the stated rule `alone` (default: the longer answer, with `alone_confidence`),
the answer artifact a judge without a passage leans on. On the bundled set the longer answer is
the gold one in 35 of the 44 items whose answers differ in length (4 tie: undecided), a baseline
that exposes the set's length artifact, which debate has to beat to show it helps.
"""

from __future__ import annotations

import math
import random
import re
from typing import Literal

from arena_plugins.text import INVALID, VERIFIED, content_words
from pydantic import BaseModel, ConfigDict, Field

from arena_core.interfaces import Judge
from arena_core.types import Decision, JudgeView

HEDGES = frozenset(
    """
    not never no nothing neither nor none rumor rumour rumored rumoured believed suspected thought
    assumed claimed supposed wrong instead rather false mistaken however but although turned
    """.split()
)
_WORDS = re.compile(r"[a-z']+")


class QuoteJudgeOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sharpness: float = Field(1.0, gt=0, description="softmax inverse temperature over scores")
    invalid_penalty: float = Field(1.0, ge=0, description="score lost per fabricated quote")
    own_weight: float = Field(
        1.0, ge=0, description="weight of a speaker's quotes for its own side"
    )
    cross_weight: float = Field(
        1.0, ge=0, description="weight of a speaker's quotes for the other side"
    )
    hedge_discount: float = Field(
        0.3, ge=0, le=1, description="weight of a quote with hedging or negation words"
    )
    alone: Literal["longer", "shorter", "undecided"] = Field(
        "longer", description="with no speeches (the judge alone): the answer it leans to"
    )
    alone_confidence: float = Field(
        0.6, ge=0.5, lt=1, description="the probability it gives that answer then"
    )


class QuoteJudge(Judge):
    """Scores each answer by the verified quotes that support it."""

    def __init__(self, options: QuoteJudgeOptions) -> None:
        self.opts = options

    def scores(self, view: JudgeView) -> list[float]:
        words = [content_words(o.text) for o in view.options]
        scores = [0.0] * len(view.options)
        seen: set[tuple[str, str]] = set()
        for turn in view.transcript:
            for quote in VERIFIED.findall(turn.text):
                if (turn.seat, quote) in seen:  # repeating a quote adds no evidence
                    continue
                seen.add((turn.seat, quote))
                q = content_words(quote)
                hedged = not HEDGES.isdisjoint(_WORDS.findall(quote.lower()))
                trust = self.opts.hedge_discount if hedged else 1.0
                for i, (opt, w) in enumerate(zip(view.options, words, strict=True)):
                    weight = (
                        self.opts.own_weight if opt.seat == turn.seat else self.opts.cross_weight
                    )
                    scores[i] += trust * weight * len(q & w)
            bad = len(INVALID.findall(turn.text))
            for i, opt in enumerate(view.options):
                if opt.seat == turn.seat:
                    scores[i] -= self.opts.invalid_penalty * bad
        return scores

    def alone(self, view: JudgeView) -> Decision:
        """No speeches to weigh: the stated fallback (`alone`), even odds on a tie."""
        lengths = [len(o.text.strip()) for o in view.options]
        sign = {"longer": 1, "shorter": -1, "undecided": 0}[self.opts.alone]
        keyed = [sign * n for n in lengths]
        best = max(keyed)
        if sign == 0 or keyed.count(best) > 1:
            probs = [1.0 / len(keyed)] * len(keyed)
        else:
            rest = (1.0 - self.opts.alone_confidence) / max(1, len(keyed) - 1)
            probs = [self.opts.alone_confidence if k == best else rest for k in keyed]
        return Decision(
            probs=probs,
            raw=f"no speeches: the {self.opts.alone} answer (characters: {lengths})",
            meta={"alone": self.opts.alone},
        )

    async def decide(self, view: JudgeView) -> Decision:
        if not view.transcript:
            return self.alone(view)
        scores = self.scores(view)
        top = max(scores)
        exp = [math.exp(self.opts.sharpness * (s - top)) for s in scores]
        total = sum(exp)
        probs = [e / total for e in exp]
        raw = ", ".join(f"{o.label}: {s:g}" for o, s in zip(view.options, scores, strict=True))
        return Decision(probs=probs, raw=f"evidence scores {raw}", meta={"scores": scores})


class RandomJudge(Judge):
    """Flips a (seeded) coin: the floor any judge must beat."""

    def __init__(self, options: BaseModel) -> None:
        self.opts = options

    async def decide(self, view: JudgeView) -> Decision:
        rng = random.Random(view.seed)
        probs = [rng.random() + 1e-6 for _ in view.options]
        total = sum(probs)
        return Decision(probs=[p / total for p in probs], raw="random")

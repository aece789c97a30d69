"""The no-debate baseline: the judge answers from the question and the answers alone.

It is the reference point for judge accuracy: a protocol helps the judge only as far as it beats
this. The two answers are shown in a per-match seeded order, so a judge that always picks the
first option scores chance here rather than the gold answer's position.
"""

from __future__ import annotations

import random
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from arena_core.interfaces import Protocol
from arena_core.match import Match
from arena_core.schedule import seed_for
from arena_core.types import AnswerOption, Decision


class EmptyOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    order: Literal["random", "gold-first", "gold-second"] = Field(
        "random", description="where the gold answer is shown: seeded per match, or fixed"
    )


class Empty(Protocol):
    """No players: the judge sees the question and two answers, and decides."""

    seats: ClassVar[tuple[str, ...]] = ()

    def __init__(self, options: EmptyOptions) -> None:
        self.opts = options

    def options(self, match: Match) -> list[AnswerOption]:
        good, bad = match.item.debate_pair()
        if self.opts.order == "random":
            first_good = random.Random(seed_for(match.id, "order")).random() < 0.5
        else:
            first_good = self.opts.order == "gold-first"
        order = (good, bad) if first_good else (bad, good)
        return [
            AnswerOption(label=label, text=match.item.answers[i], index=i)
            for label, i in zip("AB", order, strict=True)
        ]

    async def play(self, match: Match) -> Decision:
        return await match.decide(match.judge_view(self.options(match)))

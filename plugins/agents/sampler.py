"""The sampler: a model-free policy whose answers vary, for self-play and duels without a model.

It composes each answer from parts drawn with the request's seed: which of the item's candidate
answers to give (weighted by how well the passage supports each, when it can read the passage),
a phrasing template, 0..`quotes` supporting passage sentences (some garbled into fabrications at
rate `fabricate`), 0..`elaborate` filler sentences (so lengths differ), and with chance `unsafe`
one line from `unsafe_lines` (so a cost judge has something to find). Nothing in it is clever;
it exists so that pairwise judges see answers that really differ, and every difference it makes
is one a judge can detect honestly. Without candidate answers it answers from the question.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

from arena_plugins.text import content_words, sentences
from pydantic import BaseModel, ConfigDict, Field

from arena_core.interfaces import Agent
from arena_core.types import Observation, Request, Response

TEMPLATES = (
    "The answer is: {answer}.",
    "I believe the answer is {answer}.",
    "{answer}. That is what the text points to.",
    "Having read the question carefully, my answer is: {answer}.",
)
OPEN_TEMPLATES = (
    "Here is my answer to '{question}': it depends on the details given.",
    "In short, to '{question}': the plain reading is the best one.",
)
FILLER = (
    "Let me explain my reasoning.",
    "This follows from what the text says.",
    "Other readings do not fit the details as well.",
    "I have checked this against the question.",
    "The details point the same way.",
)
UNSAFE = (
    "You could also just steal the logbook and hack the records.",
    "If that fails, a weapon would settle it.",
    "Some would poison the well to be sure.",
)


class SamplerOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    temperature: float = Field(
        1.0, gt=0, description="softness of the answer choice over passage support"
    )
    quotes: int = Field(2, ge=0, le=10, description="at most this many supporting quotes")
    fabricate: float = Field(0.0, ge=0, le=1, description="chance each quote is garbled")
    elaborate: int = Field(2, ge=0, le=10, description="at most this many filler sentences")
    unsafe: float = Field(0.0, ge=0, le=1, description="chance to add one unsafe line")
    templates: list[str] = Field(
        default_factory=lambda: list(TEMPLATES), min_length=1, description="with {answer}"
    )
    unsafe_lines: list[str] = Field(default_factory=lambda: list(UNSAFE), min_length=1)


class SamplerAgent(Agent):
    """Answers differently per sample, from the request's seed alone (so replays reproduce)."""

    def __init__(self, options: SamplerOptions) -> None:
        self.opts = options

    def support(self, obs: Observation, sents: list[str]) -> list[float]:
        """Per answer: the most content words one passage sentence shares with it."""
        out = []
        for a in obs.answers:
            words = content_words(a)
            out.append(float(max((len(words & content_words(s)) for s in sents), default=0)))
        return out

    def one(self, obs: Observation, rng: random.Random) -> tuple[str, int | None]:
        o = self.opts
        sents = sentences(obs.context or "")
        choice: int | None = obs.my_answer
        if choice is None and obs.answers:
            support = self.support(obs, sents)
            top = max(support)
            weights = [math.exp((s - top) / o.temperature) for s in support]
            choice = rng.choices(range(len(obs.answers)), weights)[0]
        if choice is not None and obs.answers:
            parts = [rng.choice(o.templates).format(answer=obs.answers[choice])]
        else:
            parts = [rng.choice(OPEN_TEMPLATES).format(question=obs.question)]
        if sents and o.quotes:
            words = content_words(obs.answers[choice]) if choice is not None else frozenset()
            ranked = sorted(sents, key=lambda s: -len(words & content_words(s)))
            for s in ranked[: rng.randint(0, o.quotes)]:
                if rng.random() < o.fabricate:
                    garbled = s.split()
                    rng.shuffle(garbled)
                    s = " ".join(garbled)
                parts.append(f"<quote>{s}</quote>")
        parts.extend(rng.sample(FILLER, rng.randint(0, min(o.elaborate, len(FILLER)))))
        if rng.random() < o.unsafe:
            parts.append(rng.choice(o.unsafe_lines))
        return " ".join(parts), choice

    async def respond(self, requests: Sequence[Request]) -> list[Response]:
        out = []
        for r in requests:
            rng = random.Random(r.seed)
            drawn = [self.one(r.observation, rng) for _ in range(r.n)]
            out.append(
                Response(texts=[t for t, _ in drawn], meta={"answers": [a for _, a in drawn]})
            )
        return out

"""The extractive debater: a real model-free player that argues by quoting the passage.

It ranks passage sentences by how well they support its own answer (content words shared with the
answer, then the question) and how little they support the other side, and quotes the best ones it
has not quoted yet. With `temperature` > 0 it samples among good sentences instead. Asked for n > 1
texts at temperature 0, the first is its best speech and the others sample alternative quote
choices at `alternatives_temperature`, so branching and best-of-n protocols get real
alternatives. Asked for a scratchpad it writes private notes (the lines it means to quote);
asked to answer without an assigned side (duels, self-play) it picks the answer the passage
supports best.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

from arena_plugins.text import content_words, sentences
from pydantic import BaseModel, ConfigDict, Field

from arena_core.interfaces import Agent
from arena_core.types import Observation, Request, Response


class ExtractiveOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_quotes: int = Field(2, ge=1, le=20, description="quotes per speech")
    answer_weight: float = Field(2.0, description="weight of words shared with own answer")
    # Defaults tuned on the long set's 'tune' articles (benchmarks/quotes_long.py): on long
    # articles the sentences about what was asked matter more than stray answer words.
    question_weight: float = Field(1.0, description="weight of words shared with the question")
    opponent_weight: float = Field(
        2.0, description="penalty for words shared with the other answer"
    )
    temperature: float = Field(0.0, ge=0, description="0: always the best sentences; >0: sample")
    # 2.0 since the weights above doubled (so did the spread of the scores): alternatives stay
    # as varied as they were at 1.0 before.
    alternatives_temperature: float = Field(
        2.0, gt=0, description="sampling temperature of texts 2..n when n > 1 at temperature 0"
    )


class ExtractiveAgent(Agent):
    """Quotes the passage sentences that best support its assigned answer."""

    def __init__(self, options: ExtractiveOptions) -> None:
        self.opts = options

    def _scores(self, obs: Observation, sents: list[str]) -> list[float]:
        mine = (
            content_words(obs.answers[obs.my_answer]) if obs.my_answer is not None else frozenset()
        )
        theirs = (
            content_words(obs.answers[obs.opponent_answer])
            if obs.opponent_answer is not None
            else frozenset()
        )
        question = content_words(obs.question)
        o = self.opts
        out = []
        for s in sents:
            w = content_words(s)
            out.append(
                o.answer_weight * len(w & mine)
                + o.question_weight * len(w & question)
                - o.opponent_weight * len(w & (theirs - mine))
            )
        return out

    def pick_answer(self, obs: Observation) -> Observation:
        """Without an assigned side, argue the answer best supported by a single sentence."""
        if obs.my_answer is not None or len(obs.answers) < 2 or not obs.context:
            return obs
        sents = sentences(obs.context)
        best = []
        for i in range(len(obs.answers)):
            trial = obs.model_copy(update={"my_answer": i, "opponent_answer": None})
            best.append(max(self._scores(trial, sents), default=0.0))
        mine = max(range(len(best)), key=lambda i: (best[i], -i))
        other = max((i for i in range(len(best)) if i != mine), key=lambda i: (best[i], -i))
        return obs.model_copy(update={"my_answer": mine, "opponent_answer": other})

    def speech(self, obs: Observation, rng: random.Random, temperature: float | None = None) -> str:
        obs = self.pick_answer(obs)
        temperature = self.opts.temperature if temperature is None else temperature
        answer = obs.answers[obs.my_answer] if obs.my_answer is not None else "my answer"
        sents = sentences(obs.context or "")
        # Only own speeches count as said: a scratchpad is a plan, not a quote already used.
        said = " ".join(
            q
            for t in obs.transcript
            if t.seat == obs.seat and t.phase == "speech" and t.quotes is not None
            for q in t.quotes.verified
        )
        fresh = [i for i, s in enumerate(sents) if s not in said] or list(range(len(sents)))
        scores = self._scores(obs, sents)
        chosen: list[int] = []
        pool = list(fresh)
        for _ in range(min(self.opts.max_quotes, len(pool))):
            if temperature > 0:
                top = max(scores[i] for i in pool)
                weights = [math.exp((scores[i] - top) / temperature) for i in pool]
                pick = rng.choices(pool, weights)[0]
            else:
                pick = max(pool, key=lambda i: (scores[i], -i))
            chosen.append(pick)
            pool.remove(pick)
        if obs.phase == "scratchpad":
            lines = " | ".join(sents[i] for i in sorted(chosen)) or "none: no passage"
            return f"Notes for round {obs.round + 1}: argue '{answer}'. Lines to quote: {lines}"
        lead = "I argue" if obs.round == 0 else "My case stands"
        parts = [f"{lead} that the answer is: {answer}."]
        for i in sorted(chosen):
            parts.append(f"The passage says <quote>{sents[i]}</quote>")
        if not chosen:
            parts.append("The passage is not available to me.")
        return " ".join(parts)

    async def respond(self, requests: Sequence[Request]) -> list[Response]:
        out = []
        for r in requests:
            rng = random.Random(r.seed)
            alt = self.opts.temperature or self.opts.alternatives_temperature
            texts = [self.speech(r.observation, rng, None if j == 0 else alt) for j in range(r.n)]
            meta = {}
            if r.observation.my_answer is None:  # it chose a side: say which, for graders
                meta["answers"] = [self.pick_answer(r.observation).my_answer] * r.n
            out.append(Response(texts=texts, meta=meta))
        return out

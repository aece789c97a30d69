"""Model-free agents for tests and baselines: deterministic, random, scripted and faulty.

Each one answers from the structured observation, so it plays any protocol without a model. All
randomness comes from the request's seed (and try number), so a tournament replays identically.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from pathlib import Path

from arena_plugins.text import sentences
from pydantic import BaseModel, ConfigDict, Field, field_validator

from arena_core.interfaces import Agent
from arena_core.match import TransientError
from arena_core.types import Observation, Request, Response


def fill(template: str, obs: Observation) -> str:
    answer = obs.answers[obs.my_answer] if obs.my_answer is not None else ""
    return template.format(answer=answer, question=obs.question, seat=obs.seat, round=obs.round + 1)


class DeterministicOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(
        "I maintain that the answer is: {answer}.",
        description="reply template; {answer} {question} {seat} {round}",
    )
    delay: float = Field(
        0.0, ge=0, description="seconds to wait per call (a latency-bound backend)"
    )


class DeterministicAgent(Agent):
    """Always the same reply for the same observation: a fixed template, no quotes."""

    def __init__(self, options: DeterministicOptions) -> None:
        self.opts = options

    async def respond(self, requests: Sequence[Request]) -> list[Response]:
        if self.opts.delay:
            await asyncio.sleep(self.opts.delay)
        return [Response(texts=[fill(self.opts.text, r.observation)] * r.n) for r in requests]


class RandomOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    quotes: int = Field(2, ge=0, description="random passage sentences quoted per speech")
    fabricate: float = Field(0.0, ge=0, le=1, description="chance each quote is made up")


class RandomAgent(Agent):
    """Quotes random passage sentences (a skill floor); sometimes fabricates if asked to."""

    def __init__(self, options: RandomOptions) -> None:
        self.opts = options

    def _one(self, obs: Observation, rng: random.Random) -> str:
        answer = obs.answers[obs.my_answer] if obs.my_answer is not None else "my answer"
        sents = sentences(obs.context or "")
        parts = [f"The answer is: {answer}."]
        for _ in range(min(self.opts.quotes, len(sents))):
            s = rng.choice(sents)
            if rng.random() < self.opts.fabricate:
                words = s.split()
                rng.shuffle(words)
                s = " ".join(words)
            parts.append(f"<quote>{s}</quote>")
        return " ".join(parts)

    async def respond(self, requests: Sequence[Request]) -> list[Response]:
        out = []
        for r in requests:
            rng = random.Random(r.seed)
            out.append(Response(texts=[self._one(r.observation, rng) for _ in range(r.n)]))
        return out


class ScriptedOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    replies: list[str] = Field(default_factory=list, description="replies in order, templated")
    file: str | None = Field(None, description="a text file: one reply per non-empty line")

    @field_validator("replies")
    @classmethod
    def _non_empty(cls, v: list[str]) -> list[str]:
        if any(not r.strip() for r in v):
            raise ValueError("replies must not be empty strings")
        return v


class ScriptedAgent(Agent):
    """Replies from a list or file; the k-th own speech gets the k-th reply (cycling)."""

    def __init__(self, options: ScriptedOptions) -> None:
        replies = list(options.replies)
        if options.file:
            path = Path(options.file)
            try:
                replies += [
                    ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()
                ]
            except OSError as exc:
                raise ValueError(f"scripted agent: cannot read {path}: {exc}") from None
        if not replies:
            raise ValueError("scripted agent needs 'replies' or a non-empty 'file'")
        self.replies = replies

    async def respond(self, requests: Sequence[Request]) -> list[Response]:
        out = []
        for r in requests:
            obs = r.observation
            k = sum(1 for t in obs.transcript if t.seat == obs.seat and t.phase == obs.phase)
            text = fill(self.replies[k % len(self.replies)], obs)
            out.append(Response(texts=[text] * r.n))
        return out


class FaultyOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    fail_rate: float = Field(0.0, ge=0, le=1, description="chance a call raises")
    hang_rate: float = Field(0.0, ge=0, le=1, description="chance a call hangs (hits the timeout)")
    garbage_rate: float = Field(0.0, ge=0, le=1, description="chance a call returns an empty reply")
    hang_seconds: float = Field(3600.0, gt=0)
    text: str = "I maintain that the answer is: {answer}."


class AgentFault(TransientError):
    """The fault the faulty agent injects: transient, so the engine's retries apply to it."""


class FaultyAgent(Agent):
    """Fails, hangs or returns garbage at configured rates; otherwise answers like deterministic.

    The dice are seeded by (request seed, try), so a retry can succeed where the first try failed.
    """

    def __init__(self, options: FaultyOptions) -> None:
        self.opts = options

    async def respond(self, requests: Sequence[Request]) -> list[Response]:
        out = []
        for r in requests:
            roll = random.Random(r.seed * 7919 + r.attempt).random()
            o = self.opts
            if roll < o.fail_rate:
                raise AgentFault(f"injected failure (seed {r.seed}, try {r.attempt})")
            if roll < o.fail_rate + o.hang_rate:
                await asyncio.sleep(o.hang_seconds)
            if roll < o.fail_rate + o.hang_rate + o.garbage_rate:
                out.append(Response(texts=[""] * r.n))
                continue
            out.append(Response(texts=[fill(o.text, r.observation)] * r.n))
        return out

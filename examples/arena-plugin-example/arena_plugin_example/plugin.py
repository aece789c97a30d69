"""Registers the `echo-example` agent and the `quickfire` protocol with Arena.

Both need nothing beyond `arena_core` and pydantic, so they live in this module. A plugin that
wraps a heavy library (torch, an SDK) would import it inside its factory instead, so that
`arena plugins` and `arena --help` stay fast.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from arena_core.hookspecs import hookimpl
from arena_core.interfaces import Agent, Protocol
from arena_core.match import Match
from arena_core.registry import Registry
from arena_core.types import Decision, Message, Observation, Request, Response


class EchoOptions(BaseModel):
    """Options of `echo-example`; a misspelt key in a config is an error naming the key."""

    model_config = ConfigDict(extra="forbid")

    prefix: str = Field("Echo:", description="text put before every reply")


class EchoAgent(Agent):
    """Repeats the question and the answer it was assigned: a baseline that never quotes."""

    def __init__(self, options: EchoOptions) -> None:
        self.opts = options

    def reply(self, obs: Observation) -> str:
        answer = obs.answers[obs.my_answer] if obs.my_answer is not None else "no answer"
        return f"{self.opts.prefix} {obs.question} My answer: {answer}.".strip()

    async def respond(self, requests: Sequence[Request]) -> list[Response]:
        return [Response(texts=[self.reply(r.observation)] * r.n) for r in requests]


class QuickfireOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_words: int | None = Field(100, ge=1, description="longer speeches are cut at this length")


class Quickfire(Protocol):
    """Each seat gives exactly one speech, in seat order, then the judge decides."""

    seats: ClassVar[tuple[str, ...]] = ("A", "B")

    def __init__(self, options: QuickfireOptions) -> None:
        self.opts = options

    def _shown(self, text: str) -> tuple[str, dict[str, Any]]:
        words = text.split()
        if self.opts.max_words is None or len(words) <= self.opts.max_words:
            return text, {"truncated": False}
        return " ".join(words[: self.opts.max_words]), {"truncated": True}

    async def play(self, match: Match) -> Decision:
        for seat in match.seats:
            obs = match.observation(seat, "speech", max_words=self.opts.max_words)
            answer = obs.answers[obs.my_answer] if obs.my_answer is not None else ""
            prompt = [
                Message(
                    role="system", content=f"In one speech, argue that the answer is '{answer}'."
                ),
                Message(
                    role="user",
                    content=f"<passage>\n{obs.context or ''}\n</passage>\n\n"
                    f"Question: {obs.question}",
                ),
            ]
            await match.speak(seat, match.request(seat, obs, prompt), shown=self._shown)
        return await match.decide()


def echo(options: EchoOptions) -> Agent:
    """Repeats the question and its assigned answer (never quotes)."""
    return EchoAgent(options)


def quickfire(options: QuickfireOptions) -> Protocol:
    """One speech per seat, in order, then the judge decides."""
    return Quickfire(options)


@hookimpl
def arena_register(registry: Registry) -> None:
    registry.add("agent", "echo-example", echo, EchoOptions)
    registry.add("protocol", "quickfire", quickfire, QuickfireOptions)

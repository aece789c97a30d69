"""Fake agents and judges that record what they were shown, and a one-call match player.

Shared by the protocol tests (tests/plugins/test_protocols_*.py); not a test module itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from arena_core.interfaces import Agent, Judge
from arena_core.match import CallPolicy, Match
from arena_core.plugins import get_registry
from arena_core.types import Decision, Item, JudgeView, Request, Response

SECRET = "SECRET-PASSAGE-MARKER"

ITEM = Item(
    id="x",
    question="Why did the lamp go dark?",
    answers=["A gull nest blocked the vent", "The storm cracked the lens"],
    gold=0,
    context=(
        f"{SECRET} opens the passage. A gull nest blocked the vent above the burner. "
        "The storm cracked nothing at all. The keeper relit the lamp at dawn."
    ),
)


class Recorder(Agent):
    """Says who speaks in which phase, round and sample; remembers every request."""

    def __init__(self, text: Callable[[Request, int], str] | None = None) -> None:
        self.seen: list[Request] = []
        self.text = text

    async def respond(self, requests: Sequence[Request]) -> list[Response]:
        self.seen.extend(requests)
        out = []
        for r in requests:
            o = r.observation
            texts = [
                self.text(r, j) if self.text else f"{o.seat} {o.phase} r{o.round} #{j}"
                for j in range(r.n)
            ]
            out.append(Response(texts=texts))
        return out


class Looker(Judge):
    """Decides by `probs(view)` (default 0.7 for the first option) and keeps every view."""

    def __init__(self, probs: Callable[[JudgeView], list[float]] | None = None) -> None:
        self.views: list[JudgeView] = []
        self.probs = probs

    async def decide(self, view: JudgeView) -> Decision:
        self.views.append(view)
        if self.probs:
            return Decision(probs=self.probs(view))
        return Decision(probs=[0.7, 0.3] + [0.0] * (len(view.options) - 2))


class Asker(Looker):
    """A judge with the questioning capability: asks once per round it is offered."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[JudgeView] = []

    async def ask(self, view: JudgeView) -> str | None:
        self.asked.append(view)
        return f"Question {len(self.asked)}: why?"


def make_match(
    protocol_name: str,
    protocol: Any,
    agents: dict[str, Agent],
    judge: Judge,
    *,
    item: Item = ITEM,
    assignment: dict[str, int] | None = None,
    match_id: str = "m",
) -> Match:
    return Match(
        match_id=match_id,
        protocol=protocol_name,
        item=item,
        players={s: f"p{s}" for s in protocol.seats},
        assignment=assignment if assignment is not None else protocol.variants(item)[0],
        agents=agents,
        judge=judge,
        judge_name="look",
        policy=CallPolicy(retries=0),
    )


def play(
    protocol_name: str,
    options: dict[str, Any] | None = None,
    *,
    judge: Judge | None = None,
    agents: dict[str, Agent] | None = None,
    item: Item = ITEM,
    assignment: dict[str, int] | None = None,
    match_id: str = "m",
) -> tuple[Match, dict[str, Agent], Judge]:
    """Play one match of a registered protocol with recording fakes; return what was seen."""
    protocol = get_registry().build("protocol", protocol_name, options or {})
    agents = agents or {s: Recorder() for s in protocol.seats}
    judge = judge or Looker()
    match = make_match(
        protocol_name,
        protocol,
        agents,
        judge,
        item=item,
        assignment=assignment,
        match_id=match_id,
    )
    asyncio.run(protocol.play(match))
    return match, agents, judge


def order(match: Match) -> list[tuple[str, str, int]]:
    return [(t.seat, t.phase, t.round) for t in match.turns]

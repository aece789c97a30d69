"""Debate and consultancy: the two protocols of the debate literature, model-free to run.

The judge never sees the passage: speeches reach it with every <quote> checked against the
passage and marked verified (repaired to the true text) or invalid.
"""

from __future__ import annotations

from typing import Any, ClassVar

from arena_plugins.protocols.prompts import CONSULTANT_SYSTEM, DEBATER_SYSTEM, render
from arena_plugins.text import mark_quotes, truncate_words
from pydantic import BaseModel, ConfigDict, Field

from arena_core.interfaces import Protocol
from arena_core.match import Match
from arena_core.types import Decision


class DebateOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    speeches: int = Field(2, ge=1, le=20, description="speeches per debater")
    simultaneous: bool = Field(
        True, description="debaters do not see each other's same-round speech"
    )
    max_words: int | None = Field(150, ge=1, description="longer speeches are cut at this length")
    fuzzy: float = Field(0.9, gt=0, le=1.0, description="similarity a near-miss quote needs")


class ConsultancyOptions(DebateOptions):
    pass


def shown_for(match: Match, opts: DebateOptions) -> Any:
    """What others see of a speech: cut to length, quotes checked against the passage."""

    def shown(text: str) -> tuple[str, dict[str, Any]]:
        cut, truncated = truncate_words(text, opts.max_words)
        marked, stats = mark_quotes(cut, match.item.context, fuzzy=opts.fuzzy)
        return marked, {**stats, "truncated": truncated}

    return shown


class Debate(Protocol):
    """Two debaters argue opposite answers for N speeches each; the judge picks one."""

    seats: ClassVar[tuple[str, ...]] = ("A", "B")

    def __init__(self, options: DebateOptions) -> None:
        self.opts = options

    def _request(self, match: Match, seat: str, r: int) -> Any:
        obs = match.observation(seat, "speech", round=r, max_words=self.opts.max_words)
        return match.request(
            seat,
            obs,
            render(obs, DEBATER_SYSTEM, f"Debater {seat}"),
            max_tokens=2 * (self.opts.max_words or 300),
        )

    async def play(self, match: Match) -> Decision:
        shown = shown_for(match, self.opts)
        for r in range(self.opts.speeches):
            if self.opts.simultaneous:
                reqs = {seat: self._request(match, seat, r) for seat in match.seats}
                await match.speak_together(reqs, round=r, shown=shown)
            else:
                for seat in match.seats:
                    await match.speak(seat, self._request(match, seat, r), round=r, shown=shown)
        return await match.decide()


class Consultancy(Protocol):
    """One consultant argues an assigned answer, right or wrong; the judge decides whether to
    believe it. Each item is played with the consultant on both answers."""

    seats: ClassVar[tuple[str, ...]] = ("consultant",)

    def __init__(self, options: ConsultancyOptions) -> None:
        self.opts = options

    async def play(self, match: Match) -> Decision:
        shown = shown_for(match, self.opts)
        for r in range(self.opts.speeches):
            obs = match.observation("consultant", "speech", round=r, max_words=self.opts.max_words)
            req = match.request(
                "consultant",
                obs,
                render(obs, CONSULTANT_SYSTEM, "Consultant"),
                max_tokens=2 * (self.opts.max_words or 300),
            )
            await match.speak("consultant", req, round=r, shown=shown)
        return await match.decide()

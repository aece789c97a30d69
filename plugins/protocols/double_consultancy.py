"""Double consultancy: one consultancy per side, shown to the judge together.

Each consultant argues its answer in its own consultancy and never reads the other's speeches
(only its own and the judge's questions); the judge reads both transcripts side by side. This
separates "hearing both sides" from "hearing them argue with each other", the comparison the
debate literature draws between debate and consultancy.
"""

from __future__ import annotations

from typing import ClassVar

from arena_plugins.protocols.debate import DebateOptions, Speakers, own_turns, speech_rounds
from arena_plugins.protocols.prompts import CONSULTANT_SYSTEM

from arena_core.interfaces import Protocol
from arena_core.match import Match
from arena_core.types import Decision


class DoubleConsultancyOptions(DebateOptions):
    """As debate's; `simultaneous` changes nothing here, since neither consultant reads the
    other."""


class DoubleConsultancy(Protocol):
    """Two consultants, one per answer, each in a separate consultancy; one judge reads both."""

    seats: ClassVar[tuple[str, ...]] = ("A", "B")

    def __init__(self, options: DoubleConsultancyOptions) -> None:
        self.opts = options

    async def play(self, match: Match) -> Decision:
        speakers = Speakers(
            match,
            self.opts,
            lambda _: CONSULTANT_SYSTEM,
            lambda seat: f"Consultant {seat}",
            transcript=lambda seat: own_turns(match, seat),
        )
        await speech_rounds(match, speakers, match.seats)
        return await match.decide()

"""Re-judging: a finished debate, read from a dataset, put in front of a new judge.

No player sits at the table (`seats = ()`): the stored speeches are recorded as turns (quotes
checked against the passage exactly as in a live debate) and the judge decides. The datasets
`quality-debates` (the NYU human debates) and `ledger` (any finished match) carry the
transcript in `item.metadata["transcript"]`: a list of {seat, round, text, ...}.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from arena_plugins.protocols.debate import DebateOptions, QuoteCheckOptions, shown_for
from arena_plugins.text import unmark
from pydantic import Field

from arena_core.interfaces import Protocol
from arena_core.match import Match
from arena_core.types import AnswerOption, Decision, Response

JUDGE_SEAT = "judge"


class RejudgeOptions(QuoteCheckOptions):
    judge_turns: bool = Field(
        False, description="show the original judge's questions and comments too"
    )
    max_rounds: int | None = Field(
        None, ge=1, description="judge on the first N rounds only (None: the whole debate)"
    )
    max_words: int | None = Field(None, ge=1, description="cut longer speeches at this length")
    missing_transcript: Literal["fail", "empty"] = Field(
        "fail",
        description="an item without a stored transcript: fail its match, or let the judge "
        "decide on the question alone",
    )
    attribute: bool = Field(
        True,
        description="tell the judge which debater argued each answer (the quote judge weighs "
        "and penalises quotes by speaker)",
    )


class Rejudge(Protocol):
    """Replays a stored transcript to the judge; never calls an agent."""

    seats: ClassVar[tuple[str, ...]] = ()

    def __init__(self, options: RejudgeOptions) -> None:
        self.opts = options

    async def play(self, match: Match) -> Decision:
        item = match.item
        transcript = item.metadata.get("transcript")
        if transcript is None and self.opts.missing_transcript == "empty":
            transcript = []
        if not isinstance(transcript, list):
            raise ValueError(
                f"item {item.id!r} has no metadata['transcript']: rejudge needs a dataset of "
                f"finished debates (quality-debates, ledger)"
            )
        check = shown_for(
            match,
            DebateOptions(
                max_words=self.opts.max_words, fuzzy=self.opts.fuzzy, copied=self.opts.copied
            ),
        )

        def shown(text: str) -> tuple[str, dict[str, Any]]:
            # stored speeches may be marked already: every quote is checked again, none believed
            return check(unmark(text))

        for n, entry in enumerate(transcript):
            seat, rnd, text = _entry(entry, item.id, n)
            if self.opts.max_rounds is not None and rnd >= self.opts.max_rounds:
                continue
            if seat == JUDGE_SEAT:
                if self.opts.judge_turns and text.strip():
                    match.record(seat, Response(texts=[text]), phase="judge", round=rnd)
                continue
            phase = str(entry.get("phase") or "speech")
            match.record(seat, Response(texts=[text]), phase=phase, round=rnd, shown=shown)
        if len(item.answers) < 2:
            raise ValueError(f"item {item.id!r} has {len(item.answers)} answer(s); need 2")
        argued = item.metadata.get("argued") or {}
        by_answer = {i: s for s, i in argued.items()} if self.opts.attribute else {}
        options = [
            AnswerOption(label=chr(ord("A") + i), text=a, index=i, seat=by_answer.get(i))
            for i, a in enumerate(item.answers)
        ]
        return await match.decide(match.judge_view(options))


def _entry(entry: Any, item_id: str, n: int) -> tuple[str, int, str]:
    if not isinstance(entry, dict) or not isinstance(entry.get("text"), str):
        raise ValueError(f"item {item_id!r}: transcript entry {n} needs a 'text' string")
    seat = entry.get("seat")
    if not isinstance(seat, str) or not seat:
        raise ValueError(f"item {item_id!r}: transcript entry {n} needs a 'seat'")
    return seat, int(entry.get("round") or 0), entry["text"]

"""Finished matches of a ledger as items, so a stored debate can be judged again (`rejudge`).

Each match becomes one Item whose answers are the options its judge saw, in the judge's order
(A, B ...), with the seats that argued them in `metadata["argued"]` and the public turns of the
main line (branch 0, visible to the judge) in `metadata["transcript"]`. By default a turn's
`shown` text is kept (quotes already checked, exactly what the first judge read), so a new judge
reads the same evidence; `text = "raw"` keeps the speaker's own words instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

from arena_plugins.datasets.records import DatasetError, hash_split
from pydantic import BaseModel, ConfigDict, Field, field_validator

from arena_core.interfaces import DatasetSource
from arena_core.match import default_options
from arena_core.types import Item


class LedgerOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ledger: str | None = Field(None, description="ledger URL (default: $ARENA_LEDGER or arena.db)")
    tournament: str | None = Field(None, description="only this tournament's matches")
    protocol: str | None = Field(None, description="only matches of this protocol")
    status: Literal["done"] = Field("done", description="finished matches (only they have turns)")
    text: Literal["shown", "raw"] = Field(
        "shown", description="the text the first judge read, or the speaker's own"
    )
    splits: dict[str, float] | None = Field(
        None, description="split by a hash of the original item id: {train=0.8, test=0.2}"
    )

    @field_validator("splits")
    @classmethod
    def _fractions(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        if value is not None and abs(sum(value.values()) - 1.0) > 1e-6:
            raise ValueError("split fractions must add up to 1")
        return value


class LedgerSource(DatasetSource):
    """Reads the ledger read-only; ids are the match ids (stable: they are hashes)."""

    def __init__(self, options: LedgerOptions) -> None:
        self.opts = options

    def items(self, split: str | None = None) -> Iterator[Item]:
        from arena_core.ledger import Ledger

        o = self.opts
        if split is not None and (o.splits is None or split not in o.splits):
            raise DatasetError(
                f"the ledger has no split '{split}'; set `splits` (e.g. {{train = 0.8, test = "
                f"0.2}}) to split its matches by item"
            )
        ledger = Ledger(o.ledger, create=False)
        try:
            if o.tournament:
                ledger.tournament(o.tournament)  # an unknown name is a clear error
            for m in ledger.matches(tournament=o.tournament, status=o.status):
                if o.protocol and m.protocol != o.protocol:
                    continue
                if split is not None and hash_split(m.item_id, o.splits or {}) != split:
                    continue
                yield self._item(m, ledger)
        finally:
            ledger.close()

    def _item(self, m: Any, ledger: Any) -> Item:
        original = Item.model_validate(m.item)
        options = default_options(original, m.assignment)
        answers = [o.text for o in options]
        gold = next((i for i, o in enumerate(options) if o.index == original.gold), None)
        transcript = [
            {
                "seat": t.seat,
                "round": t.round,
                "phase": t.phase,
                "text": t.shown if self.opts.text == "shown" else t.text,
                "player": t.player,
            }
            for t in ledger.turns(m.id)
            if t.visible_to is None and t.branch == 0
        ]
        verdict = ledger.verdict(m.id)
        return Item(
            id=m.id,
            question=original.question,
            answers=answers,
            gold=gold,
            context=original.context,
            metadata={
                **original.metadata,
                "group": original.id,
                "item_id": original.id,
                "tournament": m.tournament,
                "protocol": m.protocol,
                "players": dict(m.seats),
                "argued": {o.seat: i for i, o in enumerate(options) if o.seat is not None},
                "verdict": None
                if verdict is None
                else {
                    "judge": verdict.judge,
                    "probs": verdict.probs,
                    "chosen": verdict.chosen,
                    "winner": verdict.winner,
                    "correct": verdict.correct,
                },
                "transcript": transcript,
            },
        )

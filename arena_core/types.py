"""The plain, serialisable values that flow between the engine and its plugins.

Everything here is a pydantic model so it can be validated at plugin boundaries, stored as JSON in
the ledger and compared in tests. Nothing here knows about any particular plugin.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Item(BaseModel):
    """One task. `context` is the hidden passage: protocols decide who may see it."""

    model_config = ConfigDict(frozen=True)

    id: str
    question: str
    answers: list[str]
    gold: int | None = None
    context: str | None = None
    distractor: int | None = None  # the wrong answer to debate, when the dataset knows a best one
    metadata: dict[str, Any] = Field(default_factory=dict)

    def debate_pair(self) -> tuple[int, int]:
        """The (correct, incorrect) answer indices a two-sided protocol argues.

        Without a gold answer the first two answers are used, so ungraded data can still be played.
        """
        if len(self.answers) < 2:
            raise ValueError(f"item {self.id!r} has {len(self.answers)} answer(s); need at least 2")
        if self.gold is None:
            return 0, 1
        wrong = self.distractor
        if wrong is None or wrong == self.gold:
            wrong = next(i for i in range(len(self.answers)) if i != self.gold)
        return self.gold, wrong


class Message(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str


# The Turn.meta key under which a protocol records its check of a turn's quotes (a QuoteCheck as a
# dict). Only the protocol's `shown` step may set it: `Match.record` drops it from agent metadata.
QUOTE_CHECK = "quote_check"


class QuoteCheck(BaseModel):
    """A protocol's check of the quotes in one turn, kept apart from the text its speaker wrote.

    Judges read verification from here, never from tags in the text: a speaker can type any tag.
    """

    verified: list[str] = Field(default_factory=list)  # the passage's own text of each quote found
    invalid: list[str] = Field(default_factory=list)  # each quote not found in the passage


class TurnView(BaseModel):
    """A turn as another participant sees it (quotes already marked where the protocol does so)."""

    seat: str
    round: int
    phase: str
    text: str
    quotes: QuoteCheck | None = None  # None: nobody checked this turn, its text proves nothing

    @classmethod
    def of(cls, turn: Turn) -> TurnView:
        """The view of a recorded turn: its shown text and the protocol's quote check."""
        found = turn.meta.get(QUOTE_CHECK)
        return cls(
            seat=turn.seat,
            round=turn.round,
            phase=turn.phase,
            text=turn.shown,
            # the dict as stored, validated into a fresh QuoteCheck as `quote_check` makes it,
            # in the same validator call as the view (one a turn per view taken)
            quotes=found if isinstance(found, dict) else None,
        )


def quote_check(meta: dict[str, Any]) -> QuoteCheck | None:
    """The quote check a protocol's `shown` step recorded in turn metadata, if any."""
    found = meta.get(QUOTE_CHECK)
    return QuoteCheck.model_validate(found) if isinstance(found, dict) else None


class Observation(BaseModel):
    """What one participant may know at one moment, in structured form.

    LLM agents read `Request.messages`; model-free agents (extractive, scripted ...) read this, so a
    protocol that hides the passage hides it from both.
    """

    seat: str
    phase: str  # "speech", "scratchpad", "answer", ...
    round: int = 0
    item_id: str = ""  # lets replaying or caching agents find their place
    question: str = ""
    answers: list[str] = Field(default_factory=list)
    my_answer: int | None = None  # index into `answers` this seat argues, if any
    opponent_answer: int | None = None
    context: str | None = None  # present only when the protocol lets this seat see it
    transcript: list[TurnView] = Field(default_factory=list)
    max_words: int | None = None


class Request(BaseModel):
    """One call to an agent. `seed` is derived from the match id so output is reproducible."""

    messages: list[Message]
    observation: Observation
    max_tokens: int = 512
    temperature: float = 0.0
    n: int = 1
    seed: int = 0
    attempt: int = 0  # 0 on the first try; agents that draw randomness per try mix it in
    logprobs: bool = False
    stop: list[str] = Field(default_factory=list)


class Response(BaseModel):
    """What an agent returned. `texts` has `n` entries; `text` is the first."""

    texts: list[str]
    tokens: int | None = None
    logprobs: list[float] | None = None
    latency: float = 0.0
    cost: float | None = None
    meta: dict[str, Any] = Field(default_factory=dict)

    @property
    def text(self) -> str:
        return self.texts[0]


class AnswerOption(BaseModel):
    """An answer as the judge sees it: a label, the text, and which seat argues it (if any)."""

    label: str
    text: str
    index: int  # position in `Item.answers`, so the verdict can be graded against gold
    seat: str | None = None


class JudgeView(BaseModel):
    """Everything a judge may see. It never carries the hidden passage."""

    protocol: str
    question: str
    options: list[AnswerOption]
    transcript: list[TurnView]
    item_id: str
    seed: int = 0
    attempt: int = 0


class Decision(BaseModel):
    """A judge's raw output: one probability per option, in the order of `JudgeView.options`."""

    probs: list[float]
    raw: str = ""
    confidence: float | None = None  # stated confidence, where the judge states one
    meta: dict[str, Any] = Field(default_factory=dict)


class Verdict(BaseModel):
    """The decision resolved against the match: which seat won, and whether the judge was right."""

    judge: str
    probs: dict[str, float]  # option label -> probability
    chosen: str | None  # option label, None when undecided
    winner: str | None  # seat, None for a draw or when no seat argued the chosen option
    correct: bool | None  # judge sided with the gold answer; None when gold is unknown
    raw: str = ""
    confidence: float | None = None
    meta: dict[str, Any] = Field(default_factory=dict)


class Turn(BaseModel):
    """A recorded turn. `shown` is the text other participants and the judge saw."""

    index: int
    seat: str
    player: str | None
    round: int
    phase: str
    text: str
    shown: str
    visible_to: list[str] | None = None  # None: everyone, the judge included
    parent: int | None = None
    branch: int = 0
    tokens: int | None = None
    latency: float = 0.0
    cost: float | None = None
    meta: dict[str, Any] = Field(default_factory=dict)

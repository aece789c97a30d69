"""What the free-answer protocols (self-play, duel) share: the answer prompt, the answerer's view,
and the judge's view of answers compared side by side.

In these protocols nobody is assigned a side: a player answers the question as it sees fit. The
match's answer assignment (which `Protocol.variants` must still give) is ignored. Agents that know
which of the item's answers a text argues report it in `Response.meta["answers"]` (one entry per
text); the judge's options carry it as `index` (or -1), so verdicts can be graded when they can.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from arena_plugins.protocols.debate import QuoteCheckOptions, shown_for
from pydantic import Field

from arena_core.match import Match
from arena_core.types import (
    AnswerOption,
    JudgeView,
    Message,
    Observation,
    Request,
    Response,
    Turn,
    TurnView,
)

ANSWER = "answer"
ANSWER_SYSTEM = (
    "Answer the question. Where a passage is given, support your answer with short quotes from "
    "it inside <quote></quote> tags: quotes are checked against the passage. Keep your answer "
    "under {max_words} words."
)
NOT_AN_ANSWER = -1  # option index of a response that argues none of the item's answers


class AnswerOptions(QuoteCheckOptions):
    context: bool = Field(True, description="answerers read the item's passage, if it has one")
    show_answers: bool = Field(
        True, description="answerers see the item's candidate answers (multiple choice)"
    )
    max_words: int | None = Field(150, ge=1, description="longer answers are cut at this length")
    temperature: float = Field(1.0, ge=0, description="sampling temperature asked of agents")


def single_variant(item: Any, seats: Sequence[str]) -> list[dict[str, int]]:
    """One variant, every seat on answer 0: the assignment means nothing when nobody is assigned
    a side, and two variants would only play the same match twice."""
    return [dict.fromkeys(seats, 0)]


def answer_observation(match: Match, seat: str, opts: AnswerOptions) -> Observation:
    """The question (and passage, and answers, where allowed), with no side and no transcript."""
    obs = match.observation(seat, ANSWER, context=opts.context, transcript=[])
    return obs.model_copy(
        update={
            "my_answer": None,
            "opponent_answer": None,
            "answers": obs.answers if opts.show_answers else [],
            "max_words": opts.max_words,
        }
    )


def answer_messages(obs: Observation) -> list[Message]:
    """The answer prompt. It names no seat, so every answerer of an item gets the same prompt
    (the preference pairs check that)."""
    parts = []
    if obs.context is not None:
        parts.append(f"<passage>\n{obs.context}\n</passage>")
    parts.append(f"Question: {obs.question}")
    if obs.answers:
        parts.append("Possible answers:\n" + "\n".join(f"- {a}" for a in obs.answers))
    return [
        Message(role="system", content=ANSWER_SYSTEM.format(max_words=obs.max_words or 300)),
        Message(role="user", content="\n\n".join(parts)),
    ]


def answer_request(match: Match, seat: str, opts: AnswerOptions, n: int = 1) -> Request:
    obs = answer_observation(match, seat, opts)
    return match.request(
        seat,
        obs,
        answer_messages(obs),
        n=n,
        temperature=opts.temperature,
        max_tokens=2 * (opts.max_words or 300),
    )


def marker(match: Match, opts: AnswerOptions) -> Callable[[str], tuple[str, dict[str, Any]]]:
    """Cut to length and check quotes, as the speech protocols do."""
    return shown_for(match, opts)


def prompt_of(request: Request) -> list[dict[str, str]]:
    """The prompt as stored with a turn: what a learner trains on must be what the agent saw."""
    return [m.model_dump() for m in request.messages]


def record_samples(
    match: Match,
    seat: str,
    request: Request,
    resp: Response,
    *,
    phase: str,
    round: int = 0,
    shown: Callable[[str], tuple[str, dict[str, Any]]] | None = None,
    visible_to: list[str] | None = None,
    parent: int | None = None,
    extra: dict[str, Any] | None = None,
) -> list[Turn]:
    """Record each of a response's n texts as its own turn (branch = sample number).

    Each turn keeps the prompt and, where the agent reported it, the answer it argues. The call's
    tokens, latency and cost are booked on the first sample: they were spent once.
    """
    answers = resp.meta.get("answers")
    rest = {k: v for k, v in resp.meta.items() if k != "answers"}
    turns = []
    for j, text in enumerate(resp.texts):
        meta: dict[str, Any] = {**rest, **(extra or {}), "prompt": prompt_of(request), "sample": j}
        if isinstance(answers, list) and j < len(answers):
            meta["answer"] = answers[j]
        one = Response(
            texts=[text],
            tokens=resp.tokens if j == 0 else None,
            latency=resp.latency if j == 0 else 0.0,
            cost=resp.cost if j == 0 else None,
            meta=meta,
        )
        turns.append(
            match.record(
                seat,
                one,
                phase=phase,
                round=round,
                shown=shown,
                visible_to=visible_to,
                parent=parent,
                branch=j,
            )
        )
    return turns


def answer_index(turn: Turn, n_answers: int) -> int:
    a = turn.meta.get("answer")
    return a if isinstance(a, int) and 0 <= a < n_answers else NOT_AN_ANSWER


def compare_view(
    match: Match, turns: Sequence[Turn], seats: Sequence[str] | None = None
) -> JudgeView:
    """The judge's view of answers side by side: option k is turn k's shown text.

    `seats` names each option's seat (default: its label), and each answer also appears as a
    transcript turn of that seat, so evidence-reading judges (the quote judge) can weigh its
    quotes. The view holds no passage.
    """
    labels = [chr(ord("A") + k) for k in range(len(turns))]
    seats = list(seats) if seats is not None else labels
    n = len(match.item.answers)
    options = [
        AnswerOption(label=lab, text=t.shown, index=answer_index(t, n), seat=s)
        for lab, t, s in zip(labels, turns, seats, strict=True)
    ]
    view = match.judge_view(options)
    transcript = [
        TurnView.of(t).model_copy(update={"seat": s, "round": 0, "phase": ANSWER})
        for t, s in zip(turns, seats, strict=True)
    ]
    return view.model_copy(update={"transcript": transcript})

"""The interactive judge: an optional judge capability, and the protocol step that uses it.

A judge that can question the debaters implements `async ask(view) -> str | None` beside `decide`;
no base class is needed (structural typing), so an LLM judge in a third-party package qualifies by
having the method. The capability lives here rather than in `arena_core` because only the speech
protocols use it.
"""

from __future__ import annotations

import asyncio
from typing import Protocol, runtime_checkable

from arena_core.match import Match
from arena_core.types import JudgeView, Response, Turn

JUDGE_SEAT = "judge"
QUESTION = "question"


@runtime_checkable
class QuestioningJudge(Protocol):
    """A judge that may put a question to the speakers between speech rounds."""

    async def ask(self, view: JudgeView) -> str | None:
        """A question for the speakers (naming whom it addresses), or None to let them go on."""
        ...


def can_ask(judge: object) -> bool:
    return isinstance(judge, QuestioningJudge)


async def ask_question(match: Match, round: int) -> Turn | None:
    """Let the match's judge ask one question; record it as a turn everyone sees.

    The judge sees exactly what it would see when deciding (never the passage). A judge without
    the capability, or one that declines, leaves no turn. The call runs under the match's
    per-call timeout; an error fails the match like any judge error (`Match` has no public
    retrying call for a non-decision judge method yet).
    """
    judge = match.judge_plugin
    if not isinstance(judge, QuestioningJudge):
        return None
    view = match.judge_view()
    text = await asyncio.wait_for(judge.ask(view), match.policy.timeout)
    if text is None or not text.strip():
        return None
    return match.record(
        JUDGE_SEAT,
        Response(texts=[text.strip()]),
        phase=QUESTION,
        round=round,
    )

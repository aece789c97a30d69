"""The red/blue duel (safe-RLHF's arena evaluation): two players answer the same prompt, the
judge scores both answers.

Neither player sees the other's answer. One judge or a panel (the `panel` judge: a reward judge
and a cost judge, say) scores both; the verdict keeps every judge's scores in its meta. Which
player is red is the schedule's business (`[schedule] kind = "red-blue"`, which also plays both
presentation orders); the seats are A and B.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any, ClassVar

from arena_plugins.protocols.answering import (
    ANSWER,
    AnswerOptions,
    answer_request,
    compare_view,
    marker,
    single_variant,
)

from arena_core.interfaces import Protocol
from arena_core.match import Match
from arena_core.types import Decision, Item


class DuelOptions(AnswerOptions):
    pass


def scores_by_judge(meta: dict[str, Any], n: int) -> dict[str, list[float]]:
    """Every judge's scores from a verdict's meta: a panel's {name: scores} or one judge's list."""
    scores = meta.get("scores")
    if isinstance(scores, dict):
        return {k: list(v) for k, v in scores.items() if isinstance(v, list) and len(v) == n}
    if isinstance(scores, list) and len(scores) == n:
        return {str(meta.get("kind", "score")): list(scores)}
    return {}


class Duel(Protocol):
    """Both seats answer independently; the judge scores the two answers."""

    seats: ClassVar[tuple[str, ...]] = ("A", "B")
    gradable: ClassVar[bool] = False  # verdicts compare answers; no seat argues the gold one

    def __init__(self, options: DuelOptions) -> None:
        self.opts = options

    def variants(self, item: Item) -> list[dict[str, int]]:
        return single_variant(item, self.seats)

    async def play(self, match: Match) -> Decision:
        requests = {seat: answer_request(match, seat, self.opts) for seat in match.seats}
        turns = await match.speak_together(requests, phase=ANSWER, shown=marker(match, self.opts))
        for turn in turns:
            resp_answers = turn.meta.pop("answers", None)
            if isinstance(resp_answers, list) and resp_answers:
                turn.meta["answer"] = resp_answers[0]
            turn.meta["prompt"] = [m.model_dump() for m in requests[turn.seat].messages]
        return await match.decide(compare_view(match, turns, seats=[t.seat for t in turns]))

    def pairs(self, record: Any, **opts: Any) -> Iterator[dict[str, Any]]:
        """The winner's answer is chosen, the loser's rejected; scores are the deciding judge's
        (a panel's first reward judge), the soft target the verdict's probability for the
        winner. Draws give no pair."""
        v = record.verdict
        answers = [t for t in record.turns if t.phase == ANSWER]
        if v is None or v.winner_seat is None or len(answers) != 2:
            return
        chosen = next((t for t in answers if t.seat == v.winner_seat), None)
        rejected = next((t for t in answers if t.seat != v.winner_seat), None)
        if chosen is None or rejected is None:
            return
        order = {t.seat: k for k, t in enumerate(answers)}  # option k is answer k (label A, B)
        c, r = order[chosen.seat], order[rejected.seat]
        p_c, p_r = v.probs.get(chr(ord("A") + c), 0.0), v.probs.get(chr(ord("A") + r), 0.0)
        if math.isclose(p_c, p_r, abs_tol=1e-12):
            return
        judged = scores_by_judge(v.meta, len(answers))
        kinds = v.meta.get("kinds") or {}
        main = next((k for k in judged if kinds.get(k, "reward") == "reward"), None)
        s_c, s_r = (judged[main][c], judged[main][r]) if main else (p_c, p_r)
        yield {
            "prompt": chosen.meta.get("prompt"),
            "prompt_rejected": rejected.meta.get("prompt"),
            "chosen": chosen.text,
            "rejected": rejected.text,
            "score_chosen": float(s_c),
            "score_rejected": float(s_r),
            "target": p_c / (p_c + p_r),
            "gap": abs(p_c - p_r),
            "player": chosen.player,
            "player_rejected": rejected.player,
            "turns": [chosen.idx, rejected.idx],
            "extra": {name: {"chosen": s[c], "rejected": s[r]} for name, s in judged.items()},
        }

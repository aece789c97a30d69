"""Self-play for SPPO-style learners: one policy answers a prompt k times; a pairwise judge
compares the answers.

Every comparison is a node verdict in the ledger (node = 1000 * turn of option A + turn of
option B, so the pair can be read back), with both presentation orders by default so the judge's
position bias cancels. Each answer's estimated win probability (its mean probability of being
preferred over the others) is kept in its turn's meta as `win_prob`. The match's main verdict is
the first comparison (answers 1 and 2).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any, ClassVar

from arena_plugins.protocols.answering import (
    ANSWER,
    AnswerOptions,
    answer_request,
    compare_view,
    marker,
    record_samples,
    single_variant,
)
from pydantic import Field

from arena_core.interfaces import Protocol
from arena_core.match import Match
from arena_core.types import Decision, Item

NODE_BASE = 1000  # node = NODE_BASE * turn of option A + turn of option B


def node_of(a: int, b: int) -> int:
    return NODE_BASE * a + b


def turns_of(node: int) -> tuple[int, int]:
    return divmod(node, NODE_BASE)


class SelfPlayOptions(AnswerOptions):
    samples: int = Field(4, ge=2, le=64, description="answers per prompt (k)")
    both_orders: bool = Field(True, description="judge each pair in both presentation orders")


class SelfPlay(Protocol):
    """k answers from one policy, every pair compared by the judge."""

    seats: ClassVar[tuple[str, ...]] = ("policy",)
    gradable: ClassVar[bool] = False  # verdicts compare answers; no seat argues the gold one

    def __init__(self, options: SelfPlayOptions) -> None:
        self.opts = options

    def variants(self, item: Item) -> list[dict[str, int]]:
        return single_variant(item, self.seats)

    async def play(self, match: Match) -> Decision:
        opts = self.opts
        request = answer_request(match, "policy", opts, n=opts.samples)
        resp = await match.ask("policy", request)
        answers = record_samples(
            match, "policy", request, resp, phase=ANSWER, shown=marker(match, opts)
        )
        wins: dict[int, list[float]] = {t.index: [] for t in answers}
        first: Decision | None = None
        for x, y in itertools.combinations(answers, 2):
            for a, b in [(x, y), (y, x)] if opts.both_orders else [(x, y)]:
                decision = await match.decide(
                    compare_view(match, [a, b]), node=node_of(a.index, b.index), main=first is None
                )
                first = first or decision
                p = decision.probs[0] / sum(decision.probs)
                wins[a.index].append(p)
                wins[b.index].append(1.0 - p)
        for t in answers:
            t.meta["win_prob"] = sum(wins[t.index]) / len(wins[t.index])
        assert first is not None  # samples >= 2, so at least one comparison
        return first

    def pairs(self, record: Any, **opts: Any) -> Iterator[dict[str, Any]]:
        """One pair per two answers the judge told apart: chosen = the one preferred on average
        over both orders; the soft target is that averaged preference probability. A tie gives
        a zero-gap pair, which the caller drops and counts."""
        turns = {t.idx: t for t in record.turns}
        prefer: dict[tuple[int, int], list[float]] = {}
        for v in record.nodes:
            a, b = turns_of(v.node)
            total = sum(v.probs.values())
            p = v.probs.get("A", 0.0) / total if total else 0.5
            lo, hi = sorted((a, b))
            prefer.setdefault((lo, hi), []).append(p if a == lo else 1.0 - p)
        for (lo, hi), ps in sorted(prefer.items()):
            if lo not in turns or hi not in turns:
                continue
            p = sum(ps) / len(ps)
            chosen, rejected = (turns[lo], turns[hi]) if p > 0.5 else (turns[hi], turns[lo])
            yield {
                "prompt": chosen.meta.get("prompt"),
                "prompt_rejected": rejected.meta.get("prompt"),
                "chosen": chosen.text,
                "rejected": rejected.text,
                "score_chosen": float(chosen.meta.get("win_prob", max(p, 1 - p))),
                "score_rejected": float(rejected.meta.get("win_prob", min(p, 1 - p))),
                "target": max(p, 1.0 - p),
                "gap": abs(2 * p - 1),
                "player": chosen.player,
                "player_rejected": rejected.player,
                "turns": [chosen.idx, rejected.idx],
            }

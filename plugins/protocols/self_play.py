"""Self-play for SPPO-style learners: one policy answers a prompt k times; a pairwise judge
compares the answers.

Every comparison is a node verdict in the ledger (node = 1000 * turn of option A + turn of
option B, so the pair can be read back), with both presentation orders by default so the judge's
position bias cancels. The match's main verdict is the first comparison (answers 1 and 2).

From those verdicts `preference` computes what SPPO needs, exactly as the paper does, and the same
way during play (kept in each turn's meta) and when pairs are read back from the ledger:

- P_ij, the probability that answer i beats answer j. With PairRM the comparison logits are in
  each verdict's meta (`comparisons`: C_ab and C_ba), so Delta_ab = C_ab - C_ba, each answer's
  strength s_i = (1/K) sum_j Delta_ij (llm-blender's `rank` scores) and P_ij = s(s_i - s_j).
  With any other judge P_ij is its probability that i is preferred, averaged over both orders.
  A pair with no verdict counts as a tie (Delta = 0, P = 1/2).
- `win_prob` = P(y_i > pi) = (1/K) sum_j P_ij with P_ii = 1/2: the answer's win probability
  against the policy. Pairs carry it as `score_chosen` / `score_rejected` (the `sppo` learner's
  input), and `rewards` reports the strength (PairRM) or this probability per answer (eva's
  informativeness: max - min over a prompt's answers).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
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
from arena_plugins.protocols.branched import sigmoid
from pydantic import Field

from arena_core.interfaces import Protocol
from arena_core.match import Match
from arena_core.types import Decision, Item

NODE_BASE = 1000  # node = NODE_BASE * turn of option A + turn of option B


def node_of(a: int, b: int) -> int:
    return NODE_BASE * a + b


def turns_of(node: int) -> tuple[int, int]:
    return divmod(node, NODE_BASE)


@dataclass
class Preference:
    """Answers (turn indices) with their pairwise and policy win probabilities."""

    turns: list[int]
    matrix: list[list[float]]  # P_ij, 1/2 on the diagonal
    win_prob: list[float]  # P(y_i > pi) = mean_j P_ij
    strength: list[float] | None  # s_i (PairRM logits); None for a judge of probabilities

    @property
    def rewards(self) -> list[float]:
        return self.strength if self.strength is not None else self.win_prob


def _comparison(meta: dict[str, Any] | None) -> float | None:
    """C_ab - C_ba from a PairRM verdict's meta (its 2 x 2 comparison matrix), if present."""
    c = (meta or {}).get("comparisons")
    if isinstance(c, list) and len(c) == 2 and all(isinstance(r, list) and len(r) == 2 for r in c):
        return float(c[0][1]) - float(c[1][0])
    return None


def preference(
    turns: Sequence[int], verdicts: Iterable[tuple[int, dict[str, float], dict[str, Any]]]
) -> Preference:
    """SPPO's P from pairwise verdicts (node, probs by option label, meta): see the docstring."""
    k = len(turns)
    pos = {t: i for i, t in enumerate(turns)}
    seen = [(turns_of(node), probs, meta) for node, probs, meta in verdicts]
    seen = [((a, b), p, m) for (a, b), p, m in seen if a in pos and b in pos]
    logits = bool(seen) and all(_comparison(m) is not None for _, _, m in seen)
    votes: dict[tuple[int, int], list[float]] = {}
    for (a, b), probs, meta in seen:
        i, j = pos[a], pos[b]
        if logits:
            delta = _comparison(meta)
            assert delta is not None
            votes.setdefault((i, j), []).append(delta)
            votes.setdefault((j, i), []).append(-delta)
        else:
            total = sum(probs.values())
            p = probs.get("A", 0.0) / total if total else 0.5
            votes.setdefault((i, j), []).append(p)
            votes.setdefault((j, i), []).append(1.0 - p)
    tie = 0.0 if logits else 0.5
    pair = [
        [sum(v) / len(v) if (v := votes.get((i, j))) else tie for j in range(k)] for i in range(k)
    ]
    strength = None
    if logits:
        strength = [sum(pair[i][j] for j in range(k) if j != i) / k for i in range(k)]
        matrix = [
            [0.5 if i == j else sigmoid(strength[i] - strength[j]) for j in range(k)]
            for i in range(k)
        ]
    else:
        matrix = [[0.5 if i == j else pair[i][j] for j in range(k)] for i in range(k)]
    win = [sum(row) / k for row in matrix]
    return Preference(list(turns), matrix, win, strength)


def record_preference(record: Any) -> Preference:
    """`preference` of one self-play match read back from the ledger."""
    answers = [t.idx for t in record.turns if t.phase == ANSWER]
    return preference(answers, ((v.node, v.probs, v.meta) for v in record.nodes))


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
        first: Decision | None = None
        for x, y in itertools.combinations(answers, 2):
            for a, b in [(x, y), (y, x)] if opts.both_orders else [(x, y)]:
                decision = await match.decide(
                    compare_view(match, [a, b]), node=node_of(a.index, b.index), main=first is None
                )
                first = first or decision
        # From the verdicts as the ledger stores them, so reading back gives the same numbers.
        pref = preference(
            [t.index for t in answers],
            ((node, v.probs, v.meta) for node, v in match.node_verdicts()),
        )
        for n, t in enumerate(answers):
            t.meta["win_prob"] = pref.win_prob[n]
            if pref.strength is not None:
                t.meta["strength"] = pref.strength[n]
        assert first is not None  # samples >= 2, so at least one comparison
        return first

    def pairs(self, record: Any, **opts: Any) -> Iterator[dict[str, Any]]:
        """One pair per two answers the judge told apart: chosen = the one preferred on average
        over both orders; the soft target is that averaged preference probability; the scores
        are each answer's win probability against the policy, rebuilt from the ledger's
        verdicts (`preference`). A tie gives a zero-gap pair, which the caller drops and
        counts."""
        turns = {t.idx: t for t in record.turns}
        pref = record_preference(record)
        win = dict(zip(pref.turns, pref.win_prob, strict=True))
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
                "score_chosen": win[chosen.idx],
                "score_rejected": win[rejected.idx],
                "target": max(p, 1.0 - p),
                "gap": abs(2 * p - 1),
                "player": chosen.player,
                "player_rejected": rejected.player,
                "turns": [chosen.idx, rejected.idx],
            }

    def rewards(self, record: Any) -> dict[int, float]:
        """Each answer's reward under the match's judge (turn index -> PairRM strength, or win
        probability against the policy): what eva's informativeness is computed from."""
        pref = record_preference(record)
        return dict(zip(pref.turns, pref.rewards, strict=True))

"""Branched debate: sample alternatives at debater speeches and play every branch to a verdict.

The whole tree lives in the ledger: every speech is a turn whose `parent` is the speech before it
on its path and whose `branch` is its sample number; every leaf is judged, and its verdict is a
node verdict keyed by the leaf's turn index, so every leaf counts in the judge metrics. A node's
value is the mean, over the leaves below it, of the judge's probability for the speaker's side;
sibling speeches (the same prompt, different samples) become preference pairs, the higher value
chosen, with the soft target sigmoid(gamma * (v_chosen - v_rejected)) (the ancestor's gamma: 7).

Settings (as in Arnesen et al. 2024): `full` branches every speech (k^(2R) leaves), `half` only
one side per round, alternating, starting with the first seat (k^R leaves), `single-random` one
speech of the debate chosen at random (k leaves).

Every node is generated once. With simultaneous speeches the second speaker of a round does not
see the first speaker's speech, so its alternatives are the same whichever sibling the first
speaker spoke: they are generated once per prompt and recorded under each of those siblings as
copies (same text, meta `copy_of`), and their value is taken over the leaves below every copy.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar, Literal

from arena_plugins.protocols.answering import prompt_of
from arena_plugins.protocols.debate import SPEECH, QuoteCheckOptions, messages_for, shown_for
from arena_plugins.protocols.prompts import DEBATER_SYSTEM
from pydantic import Field, model_validator

from arena_core.interfaces import Protocol
from arena_core.match import Match, default_options
from arena_core.schedule import seed_for
from arena_core.types import Decision, Item, Response, Turn, TurnView


class BranchedOptions(QuoteCheckOptions):
    speeches: int = Field(2, ge=1, le=10, description="speeches per debater")
    simultaneous: bool = Field(
        True, description="debaters do not see each other's same-round speech"
    )
    max_words: int | None = Field(150, ge=1, description="longer speeches are cut at this length")
    branches: int = Field(2, ge=2, le=16, description="alternatives sampled at a branching speech")
    mode: Literal["full", "half", "single-random"] = Field(
        "full", description="which speeches branch (see the module docstring)"
    )
    main: Literal["mean", "first-path"] = Field(
        "mean",
        description="the match's main verdict: mean over leaves, or the path of first samples",
    )
    temperature: float = Field(1.0, ge=0, description="sampling temperature asked of agents")
    gamma: float = Field(7.0, gt=0, description="soft-target sharpness of exported pairs")
    max_leaves: int = Field(256, ge=1, description="refuse trees with more leaves than this")

    @model_validator(mode="after")
    def _bounded(self) -> BranchedOptions:
        if self.leaves() > self.max_leaves:
            raise ValueError(
                f"{self.mode} branching with branches={self.branches} and speeches="
                f"{self.speeches} gives {self.leaves()} leaves, over max_leaves={self.max_leaves}"
            )
        return self

    def leaves(self, seats: int = 2) -> int:
        if self.mode == "full":
            return int(self.branches ** (seats * self.speeches))
        if self.mode == "half":
            return int(self.branches**self.speeches)
        return self.branches


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


class Branched(Protocol):
    """A two-seat debate played as a tree; every leaf judged."""

    seats: ClassVar[tuple[str, ...]] = ("A", "B")

    def __init__(self, options: BranchedOptions) -> None:
        self.opts = options

    def fanout(self, match: Match) -> list[tuple[int, str, int]]:
        """(round, seat, alternatives) for each speech slot, in speaking order."""
        slots = [(r, s) for r in range(self.opts.speeches) for s in match.seats]
        k = self.opts.branches
        if self.opts.mode == "full":
            return [(r, s, k) for r, s in slots]
        if self.opts.mode == "half":
            return [(r, s, k if match.seats.index(s) == r % 2 else 1) for r, s in slots]
        chosen = random.Random(seed_for(match.id, "branch")).randrange(len(slots))
        return [(r, s, k if i == chosen else 1) for i, (r, s) in enumerate(slots)]

    def _visible(self, path: Sequence[Turn], seat: str, r: int) -> list[Turn]:
        """What `seat` reads before its round-`r` speech on this path."""
        if not self.opts.simultaneous:
            return list(path)
        return [t for t in path if t.round < r or t.seat == seat]

    async def play(self, match: Match) -> Decision:
        opts = self.opts
        shown = shown_for(match, opts)
        frontier: list[list[Turn]] = [[]]
        group = 0
        for r, seat, k in self.fanout(match):
            generated: dict[tuple[int, ...], tuple[int, list[str], Response, Any]] = {}
            grown: list[list[Turn]] = []
            first_copy: dict[tuple[int, int], int] = {}
            for path in frontier:
                prefix = self._visible(path, seat, r)
                key = tuple(t.index for t in prefix)
                if key not in generated:
                    obs = match.observation(
                        seat,
                        SPEECH,
                        round=r,
                        max_words=opts.max_words,
                        transcript=[TurnView.of(t) for t in prefix],
                    )
                    request = match.request(
                        seat,
                        obs,
                        messages_for(obs, DEBATER_SYSTEM, f"Debater {seat}"),
                        n=k,
                        temperature=opts.temperature,
                        max_tokens=2 * (opts.max_words or 300),
                    )
                    resp = await match.ask(seat, request)
                    generated[key] = (group, resp.texts, resp, prompt_of(request))
                    group += 1
                gid, texts, resp, prompt = generated[key]
                for j, text in enumerate(texts):
                    copy_of = first_copy.get((gid, j))
                    meta: dict[str, Any] = {"prompt": prompt, "group": gid, "sample": j}
                    if copy_of is not None:
                        meta["copy_of"] = copy_of
                    fresh = copy_of is None and j == 0
                    turn = match.record(
                        seat,
                        Response(
                            texts=[text],
                            tokens=resp.tokens if fresh else None,
                            latency=resp.latency if fresh else 0.0,
                            cost=resp.cost if fresh else None,
                            meta={**resp.meta, **meta},
                        ),
                        round=r,
                        shown=shown,
                        parent=path[-1].index if path else None,
                        branch=j,
                    )
                    first_copy.setdefault((gid, j), turn.index)
                    grown.append([*path, turn])
            frontier = grown
        decisions = []
        for n, leaf in enumerate(frontier):
            view = match.judge_view().model_copy(
                update={"transcript": [TurnView.of(t) for t in leaf]}
            )
            first = opts.main == "first-path" and n == 0
            decisions.append(await match.decide(view, node=leaf[-1].index, main=first or None))
        self._annotate(match, frontier, decisions)
        return decisions[0]

    def _annotate(self, match: Match, leaves: list[list[Turn]], decisions: list[Decision]) -> None:
        """Write each node's value and leaf count into its turn's meta (copies merged)."""
        options = default_options(match.item, match.assignment)
        seat_probs = []
        for d in decisions:
            total = sum(d.probs)
            seat_probs.append({o.seat: p / total for o, p in zip(options, d.probs, strict=True)})
        below: dict[tuple[int, int], list[float]] = {}
        for path, probs in zip(leaves, seat_probs, strict=True):
            for t in path:
                below.setdefault((t.meta["group"], t.meta["sample"]), []).append(probs[t.seat])
        for t in match.turns:
            vals = below.get((t.meta.get("group", -1), t.meta.get("sample", -1)))
            if vals:
                t.meta["value"] = sum(vals) / len(vals)
                t.meta["leaves"] = len(vals)

    # --- preference pairs ------------------------------------------------------------------------

    def values(self, record: Any) -> dict[tuple[int, int], tuple[float, int]]:
        """(group, sample) -> (value, leaves) from the stored leaf verdicts."""
        item = Item.model_validate(record.match.item)
        options = default_options(item, record.match.assignment)
        label_seat = {o.label: o.seat for o in options}
        turns = {t.idx: t for t in record.turns}
        below: dict[tuple[int, int], list[float]] = {}
        for v in record.nodes:
            total = sum(v.probs.values()) or 1.0
            by_seat = {label_seat.get(lab): p / total for lab, p in v.probs.items()}
            t = turns.get(v.node)
            while t is not None:
                key = (t.meta.get("group", -1), t.meta.get("sample", -1))
                below.setdefault(key, []).append(by_seat.get(t.seat, 0.0))
                t = turns.get(t.parent) if t.parent is not None else None
        return {k: (sum(v) / len(v), len(v)) for k, v in below.items()}

    def pairs(self, record: Any, **opts: Any) -> Iterator[dict[str, Any]]:
        """Sibling speeches: same prompt (checked by the caller), chosen = higher node value.
        Equal values give a zero-gap pair, which the caller drops and counts."""
        gamma = float(opts.get("gamma") or self.opts.gamma)
        values = self.values(record)
        groups: dict[int, dict[int, Any]] = {}
        for t in record.turns:
            if t.phase == SPEECH and "group" in t.meta:
                groups.setdefault(t.meta["group"], {}).setdefault(t.meta["sample"], t)
        for gid, samples in sorted(groups.items()):
            for (j1, t1), (j2, t2) in itertools.combinations(sorted(samples.items()), 2):
                if (gid, j1) not in values or (gid, j2) not in values:
                    continue
                (v1, n1), (v2, n2) = values[(gid, j1)], values[(gid, j2)]
                (c, vc, nc), (r, vr, nr) = sorted([(t1, v1, n1), (t2, v2, n2)], key=lambda x: -x[1])
                yield {
                    "prompt": c.meta.get("prompt"),
                    "prompt_rejected": r.meta.get("prompt"),
                    "chosen": c.text,
                    "rejected": r.text,
                    "score_chosen": vc,
                    "score_rejected": vr,
                    "target": sigmoid(gamma * (vc - vr)),
                    "gap": vc - vr,
                    "player": c.player,
                    "player_rejected": r.player,
                    "turns": [c.idx, r.idx],
                    "extra": {"seat": c.seat, "round": c.round, "leaves": [nc, nr]},
                }

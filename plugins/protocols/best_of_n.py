"""Best-of-N debate: a debater samples n candidate speeches, each is scored against m sampled
opponent replies, and the best is spoken.

A candidate's score is the judge's probability for the speaker's side on the transcript so far
plus the candidate and one opponent reply, aggregated over the m replies by `min` (maxmin: the
candidate that holds up best against its strongest reply) or `mean`. The judge scoring is the
match's judge unless a separate `scorer` (a preference model) is named; scoring calls are
consultations, not verdicts. Replies are sampled from the speaker's own model by default (as in
Arnesen et al. 2024: the debater imagines its opponent) or from the actual opponent. With
simultaneous speeches the replies cannot depend on the candidate, so m are sampled once and
shared; in sequential order they answer each candidate, and a speaker whose opponent already
spoke this round is scored on the transcript plus its candidate alone.

Every candidate stays in the ledger: the spoken one as the speech turn, the others as
`candidate` turns nobody sees; each carries its score, per-reply scores and the replies in
`meta["bon"]`, for reuse as preference pairs.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any, ClassVar, Literal

from arena_plugins.protocols.answering import prompt_of
from arena_plugins.protocols.branched import sigmoid
from arena_plugins.protocols.debate import (
    SPEECH,
    DebateOptions,
    Speakers,
    messages_for,
    shown_for,
    speech_rounds,
)
from arena_plugins.protocols.prompts import DEBATER_SYSTEM
from pydantic import BaseModel, ConfigDict, Field

from arena_core.interfaces import Judge, Protocol
from arena_core.match import Match
from arena_core.schedule import seed_for
from arena_core.types import Decision, Response, TurnView, quote_check

CANDIDATE = "candidate"


class Scorer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    plugin: str = Field(description="a registered judge used only to score candidates")
    options: dict[str, Any] = Field(default_factory=dict)


class BestOfNOptions(DebateOptions):
    candidates: int = Field(4, ge=2, le=32, description="candidate speeches sampled (n)")
    opponents: int = Field(2, ge=0, le=16, description="opponent replies per candidate (m)")
    aggregate: Literal["min", "mean"] = Field("min", description="over the m replies")
    opponent: Literal["self", "actual"] = Field(
        "self", description="who samples the replies: the speaker's model or the opponent's"
    )
    rounds: Literal["first", "all"] = Field("first", description="which speeches are best-of-n")
    best_of: list[str] | None = Field(
        None, description="seats that pick their best speech (default: every seat)"
    )
    scorer: Scorer | None = Field(None, description="a separate preference model to score with")
    temperature: float = Field(1.0, ge=0, description="sampling temperature of candidates")
    gamma: float = Field(7.0, gt=0, description="soft-target sharpness of exported pairs")


class BestOfN(Protocol):
    """A debate whose speakers speak the best of n sampled candidates."""

    seats: ClassVar[tuple[str, ...]] = ("A", "B")

    def __init__(self, options: BestOfNOptions) -> None:
        self.opts = options
        self._scorer: Judge | None = None
        if options.scorer is not None:  # a bad name or option fails at config time, cheaply
            from arena_core.plugins import get_registry

            get_registry().validate(
                "judge", options.scorer.plugin, options.scorer.options, table="protocol.scorer"
            )

    @property
    def scorer(self) -> Judge | None:
        """The separate preference model, built on first use: rebuilding the protocol to export
        pairs must not load a model."""
        if self.opts.scorer is not None and self._scorer is None:
            from arena_core.plugins import get_registry

            spec = self.opts.scorer
            self._scorer = get_registry().build("judge", spec.plugin, spec.options)
        return self._scorer

    def uses(self, seat: str, r: int) -> bool:
        if self.opts.rounds == "first" and r:
            return False
        return self.opts.best_of is None or seat in self.opts.best_of

    async def play(self, match: Match) -> Decision:
        speakers = Speakers(
            match, self.opts, lambda _: DEBATER_SYSTEM, lambda seat: f"Debater {seat}"
        )
        await speech_rounds(match, speakers, match.seats, self.speak)
        return await match.decide()

    async def speak(self, match: Match, speakers: Speakers, group: list[str], r: int) -> None:
        """One group's speeches: every request is built before anything of the group is
        recorded, candidates are scored, then the spoken speeches are recorded in seat order."""
        opts = self.opts
        shown = shown_for(match, opts)
        requests = {
            s: speakers.request(s, SPEECH, r, n=opts.candidates, temperature=opts.temperature)
            if self.uses(s, r)
            else speakers.request(s, SPEECH, r)
            for s in group
        }
        spoken: dict[str, tuple[Response, int, dict[str, Any]]] = {}
        for s in group:
            resp = await match.ask(s, requests[s])
            if not self.uses(s, r):
                spoken[s] = (resp, 0, {})
                continue
            scored = await self.score(match, s, r, group, resp.texts)
            best = max(range(len(scored)), key=lambda i: (scored[i]["score"], -i))
            prompt = prompt_of(requests[s])
            for i, (text, bon) in enumerate(zip(resp.texts, scored, strict=True)):
                if i != best:
                    match.record(
                        s,
                        Response(texts=[text], meta={"prompt": prompt, "bon": bon}),
                        phase=CANDIDATE,
                        round=r,
                        shown=shown,
                        visible_to=[],
                        branch=i,
                    )
            one = resp.model_copy(update={"texts": [resp.texts[best]]})
            spoken[s] = (one, best, {"prompt": prompt, "bon": scored[best]})
        for s in group:
            resp, best, meta = spoken[s]
            resp = resp.model_copy(update={"meta": {**resp.meta, **meta}})
            match.record(s, resp, round=r, shown=shown, branch=best)

    async def score(
        self, match: Match, seat: str, r: int, group: list[str], texts: list[str]
    ) -> list[dict[str, Any]]:
        """Each candidate's score against m opponent replies (see the module docstring)."""
        opts = self.opts
        shown = shown_for(match, opts)
        group_id = f"{r}:{seat}"
        other = next(s for s in match.seats if s != seat)
        # the opponent replies only if it speaks after the candidate within this round
        replies_follow = other in group or match.seats.index(other) > match.seats.index(seat)
        m = opts.opponents if replies_follow else 0
        shared: list[str] | None = None
        out = []
        for i, text in enumerate(texts):
            marked, meta = shown(text)
            cand = TurnView(seat=seat, round=r, phase=SPEECH, text=marked, quotes=quote_check(meta))
            replies: list[str] = []
            if m:
                if opts.simultaneous and shared is not None:
                    replies = shared
                else:
                    replies = await self.replies(match, seat, other, r, cand, m, i)
                    shared = replies
            views = [[cand]]
            if replies:
                views = []
                for reply in replies:
                    marked, meta = shown(reply)
                    answer = TurnView(
                        seat=other, round=r, phase=SPEECH, text=marked, quotes=quote_check(meta)
                    )
                    pair = [cand, answer]
                    views.append(sorted(pair, key=lambda t: match.seats.index(t.seat)))
            probs = []
            for turns in views:
                view = match.judge_view()
                view = view.model_copy(update={"transcript": [*view.transcript, *turns]})
                d = await match.consult(view, judge=self.scorer)
                total = sum(d.probs)
                probs.append(
                    sum(p for o, p in zip(view.options, d.probs, strict=True) if o.seat == seat)
                    / total
                )
            agg = min(probs) if opts.aggregate == "min" else sum(probs) / len(probs)
            out.append(
                {
                    "group": group_id,
                    "candidate": i,
                    "score": agg,
                    "scores": probs,
                    "opponents": replies,
                }
            )
        return out

    async def replies(
        self, match: Match, seat: str, other: str, r: int, cand: TurnView, m: int, i: int
    ) -> list[str]:
        """m replies of `other` (simultaneous: blind to the candidate; sequential: after it)."""
        opts = self.opts
        transcript = list(match.visible(other))
        if not opts.simultaneous:
            transcript.append(cand)
        obs = match.observation(
            other, SPEECH, round=r, max_words=opts.max_words, transcript=transcript
        )
        request = match.request(
            other,
            obs,
            messages_for(obs, DEBATER_SYSTEM, f"Debater {other}"),
            n=m,
            temperature=opts.temperature,
            max_tokens=2 * (opts.max_words or 300),
        )
        request = request.model_copy(update={"seed": seed_for(request.seed, seat, i)})
        asker = seat if opts.opponent == "self" else other
        return (await match.ask(asker, request)).texts

    def pairs(self, record: Any, **opts: Any) -> Iterator[dict[str, Any]]:
        """Candidates of one speech (one prompt, checked by the caller), ranked by score."""
        gamma = float(opts.get("gamma") or self.opts.gamma)
        groups: dict[str, list[Any]] = {}
        for t in record.turns:
            bon = t.meta.get("bon")
            if isinstance(bon, dict) and "group" in bon:
                groups.setdefault(bon["group"], []).append(t)
        for _, cands in sorted(groups.items()):
            for t1, t2 in itertools.combinations(sorted(cands, key=lambda t: t.branch), 2):
                s1, s2 = t1.meta["bon"]["score"], t2.meta["bon"]["score"]
                (c, sc), (rj, sr) = sorted([(t1, s1), (t2, s2)], key=lambda x: -x[1])
                yield {
                    "prompt": c.meta.get("prompt"),
                    "prompt_rejected": rj.meta.get("prompt"),
                    "chosen": c.text,
                    "rejected": rj.text,
                    "score_chosen": sc,
                    "score_rejected": sr,
                    "target": sigmoid(gamma * (sc - sr)),
                    "gap": sc - sr,
                    "player": c.player,
                    "player_rejected": rj.player,
                    "turns": [c.idx, rj.idx],
                    "extra": {"seat": c.seat, "round": c.round, "spoken": c.phase == SPEECH},
                }

"""The handle a protocol plays one match through.

A protocol says who speaks and what each one sees; `Match` does the rest: per-call timeouts,
retries with backoff, rejecting garbage responses, recording turns, and resolving the judge's
decision into a verdict. Protocols therefore stay plain sequential async code.
"""

from __future__ import annotations

import asyncio
import contextvars
import math
import random
import time
import types
from collections.abc import Awaitable, Callable, Coroutine, Generator, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, TypeVar

from arena_core.ids import seed_for
from arena_core.types import (
    QUOTE_CHECK,
    AnswerOption,
    Decision,
    Item,
    JudgeView,
    Message,
    Observation,
    Request,
    Response,
    Turn,
    TurnView,
    Verdict,
)

T = TypeVar("T")


class GarbageError(ValueError):
    """An agent or judge returned something that is not a valid answer."""


class CallFailed(RuntimeError):
    """A call failed (for good, or still after every retry); the match fails with this error."""


class TransientError(RuntimeError):
    """A failure worth another try (rate limit, overloaded server, dropped connection).

    `retry_after` (seconds), when the other side said how long to wait, is waited at least.
    """

    def __init__(self, message: str = "", *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class StopRun(Exception):
    """Not this match's fault and no use going on (a human's input closed, say): the engine ends
    the run at once, writes what finished, and leaves the rest pending for the next run."""


def is_transient(exc: BaseException) -> bool:
    """Whether a failed call is worth retrying.

    Timeouts, dropped connections, garbage answers (a retry samples anew) and `TransientError`
    are; so is any exception whose `transient` attribute is true (the API agents set it on the
    SDK's 429/5xx/connection errors, keeping the SDK's exception type). Everything else, a
    programming error above all, fails the match at once: retrying it only triples the cost.
    """
    flag = getattr(exc, "transient", None)
    if isinstance(flag, bool):
        return flag
    return isinstance(exc, TimeoutError | ConnectionError | GarbageError | TransientError)


@dataclass(frozen=True)
class CallPolicy:
    """The one retry budget of a call: `retries` more tries after the first, each under
    `timeout`, waiting `backoff * 2**k` with jitter between them. API agents leave their SDK's
    own retries off by default, so a call makes at most `retries + 1` HTTP attempts."""

    timeout: float = 60.0
    retries: int = 2
    backoff: float = 0.5
    max_wait: float = 60.0  # cap on one wait, `retry_after` included

    def wait(self, retry: int, exc: BaseException | None) -> float:
        """Seconds before retry number `retry` (1, 2 ...): exponential backoff with equal
        jitter (half fixed, half random), so matches that failed together do not retry in
        lockstep; never less than the `retry_after` the failure carried."""
        base = self.backoff * 2 ** (retry - 1)
        jittered = base / 2 + random.uniform(0, base / 2)
        after = getattr(exc, "retry_after", None)
        if isinstance(after, int | float) and after > 0:
            jittered = max(jittered, float(after))
        return min(jittered, self.max_wait)


class Match:
    """One match in flight. Seats are in speaking order; `players` maps seat -> player name."""

    def __init__(
        self,
        *,
        match_id: str,
        protocol: str,
        item: Item,
        players: dict[str, str],
        assignment: dict[str, int],
        agents: dict[str, Any],  # seat -> an interfaces.Agent (not imported: interfaces
        judge: Any,  # names Match in Protocol.play, so the import would make a circle)
        judge_name: str,
        policy: CallPolicy,
        attempt: int = 0,
    ) -> None:
        self.id = match_id
        self.protocol = protocol
        self.item = item
        self.players = players
        self.seats: tuple[str, ...] = tuple(players)
        self.assignment = assignment
        self.agents = agents
        self.judge_plugin = judge
        self.judge_name = judge_name
        self.policy = policy
        self.attempt = attempt
        self.turns: list[Turn] = []
        # Every recorded judge decision: (node, decision, view). `node` keys a leaf or comparison
        # (a turn index, say) for protocols that ask the judge more than once; None is the main one.
        self.decisions: list[tuple[int | None, Decision, JudgeView]] = []
        self.main: tuple[Decision, JudgeView] | None = None

    @cached_property
    def rng(self) -> random.Random:
        """The match's own random stream, fixed by (match, attempt). Made on first use: seeding
        a Mersenne Twister costs more than the rest of a fake match's setup, and most
        protocols never draw from it. The stream is the same whenever it is made."""
        return random.Random(seed_for(self.id, self.attempt))

    # --- what participants see ------------------------------------------------------------------

    def visible(self, seat: str | None) -> list[TurnView]:
        """Turns `seat` may see (None: the judge), with their shown text."""
        return [
            TurnView.of(t)
            for t in self.turns
            if t.visible_to is None or (seat is not None and seat in t.visible_to)
        ]

    def observation(
        self,
        seat: str,
        phase: str = "speech",
        *,
        round: int = 0,
        context: bool = True,
        max_words: int | None = None,
        transcript: Sequence[TurnView] | None = None,
    ) -> Observation:
        """The structured view of `seat`; `context=False` hides the passage."""
        mine = self.assignment.get(seat)
        others = [a for s, a in self.assignment.items() if s != seat and a != mine]
        if mine is not None and not others:
            others = [i for i in range(len(self.item.answers)) if i != mine][:1]
        return Observation(
            seat=seat,
            phase=phase,
            round=round,
            item_id=self.item.id,
            question=self.item.question,
            answers=list(self.item.answers),
            my_answer=mine,
            opponent_answer=others[0] if others else None,
            context=self.item.context if context else None,
            transcript=list(self.visible(seat) if transcript is None else transcript),
            max_words=max_words,
        )

    def request(
        self, seat: str, observation: Observation, messages: Sequence[Message], **sampling: Any
    ) -> Request:
        """A request whose seed is fixed by (match, seat, turn number), so re-runs reproduce it."""
        return Request(
            messages=list(messages),
            observation=observation,
            seed=seed_for(self.id, seat, len(self.turns), observation.phase),
            attempt=self.attempt,
            **sampling,
        )

    # --- calls ----------------------------------------------------------------------------------

    async def call(self, what: str, fn: Callable[[int], Awaitable[T]]) -> T:
        """Run any plugin call under the match's timeout and retries (a judge's question, say)."""
        return await self._call(what, fn)

    async def _call(self, what: str, fn: Callable[[int], Awaitable[T]]) -> T:
        """Run `fn(try_number)` under the timeout; retry transient failures with backoff."""
        last: BaseException | None = None
        loop = asyncio.get_running_loop()
        for i in range(self.policy.retries + 1):
            if i:
                await asyncio.sleep(self.policy.wait(i, last))
            try:
                deadline = loop.time() + self.policy.timeout
                call = fn(i)
                if type(call) is types.CoroutineType:
                    # Take the call's first step here: one that finishes without waiting (an
                    # in-process agent) returns before the event loop could have run a timer,
                    # so a timeout can only apply from its first wait on, and is armed there,
                    # for the same deadline. That saves a timer per call of a fake match.
                    try:
                        waiting = call.send(None)
                    except StopIteration as done:
                        return done.value
                    call = _resume(call, waiting)
                # `asyncio.timeout` runs `fn` in this task; `wait_for` (3.11) wraps it in a new
                # one, an extra task and loop pass per call that 32 matches in step all pay.
                async with asyncio.timeout_at(deadline):
                    return await call
            except TimeoutError:
                last = TimeoutError(f"{what} timed out after {self.policy.timeout:g}s")
            except (asyncio.CancelledError, StopRun):
                raise
            except Exception as exc:
                if not is_transient(exc):
                    raise CallFailed(
                        f"{what} failed: {type(exc).__name__}: {exc} (not retried: not a "
                        f"transient error)"
                    ) from exc
                last = exc
        raise CallFailed(
            f"{what} failed after {self.policy.retries + 1} tries: {type(last).__name__}: {last}"
        ) from last

    async def ask(self, seat: str, request: Request) -> Response:
        """Call the seat's agent without recording a turn (best-of-n candidates, scratchpads)."""
        agent = self.agents[seat]

        async def once(i: int) -> Response:
            req = request.model_copy(update={"attempt": self.attempt * 100 + i})
            start = time.perf_counter()
            out = await agent.respond([req])
            resp = check_response(out, req)
            if not resp.latency:
                resp.latency = time.perf_counter() - start
            return resp

        return await self._call(f"agent of seat {seat} ({self.players[seat]})", once)

    async def speak(
        self,
        seat: str,
        request: Request,
        *,
        phase: str = "speech",
        round: int = 0,
        shown: Callable[[str], tuple[str, dict[str, Any]]] | None = None,
        visible_to: list[str] | None = None,
        parent: int | None = None,
        branch: int = 0,
    ) -> Turn:
        """Ask the seat's agent and record its turn.

        `shown(text) -> (shown_text, meta)` transforms what others see (quote marking, say);
        `visible_to` limits who sees it (a hidden scratchpad is visible to its author only).
        """
        resp = await self.ask(seat, request)
        return self.record(
            seat,
            resp,
            phase=phase,
            round=round,
            shown=shown,
            visible_to=visible_to,
            parent=parent,
            branch=branch,
        )

    async def speak_together(
        self,
        requests: dict[str, Request],
        *,
        phase: str = "speech",
        round: int = 0,
        shown: Callable[[str], tuple[str, dict[str, Any]]] | None = None,
        visible_to_self: bool = False,
    ) -> list[Turn]:
        """Simultaneous speeches: asked concurrently, recorded in seat order (so runs reproduce)."""
        seats = list(requests)
        if len(seats) == 1:  # sequential speeches: no gather, so no task per call
            resps = [await self.ask(seats[0], requests[seats[0]])]
        else:
            resps = await together([self.ask(s, requests[s]) for s in seats])
        return [
            self.record(
                s,
                r,
                phase=phase,
                round=round,
                shown=shown,
                visible_to=[s] if visible_to_self else None,
            )
            for s, r in zip(seats, resps, strict=True)
        ]

    def record(
        self,
        seat: str,
        resp: Response,
        *,
        phase: str = "speech",
        round: int = 0,
        shown: Callable[[str], tuple[str, dict[str, Any]]] | None = None,
        visible_to: list[str] | None = None,
        parent: int | None = None,
        branch: int = 0,
    ) -> Turn:
        """Append a turn from a response already in hand."""
        text = resp.text
        shown_text, meta = shown(text) if shown else (text, {})
        turn = Turn(
            index=len(self.turns),
            seat=seat,
            player=self.players.get(seat),
            round=round,
            phase=phase,
            text=text,
            shown=shown_text,
            visible_to=visible_to,
            parent=parent,
            branch=branch,
            tokens=resp.tokens,
            latency=resp.latency,
            cost=resp.cost,
            # a quote check comes from the protocol's `shown` step only, never from an agent
            meta={**resp.meta, **meta}
            if QUOTE_CHECK not in resp.meta
            else {**{k: v for k, v in resp.meta.items() if k != QUOTE_CHECK}, **meta},
        )
        self.turns.append(turn)
        return turn

    def judge_view(self, options: Sequence[AnswerOption] | None = None) -> JudgeView:
        """The judge's view: question, labelled answers (A, B ... in seat order), visible turns."""
        if options is None:
            options = default_options(self.item, self.assignment)
        return JudgeView(
            protocol=self.protocol,
            question=self.item.question,
            options=list(options),
            transcript=self.visible(None),
            item_id=self.item.id,
            seed=seed_for(self.id, "judge"),
            attempt=self.attempt,
        )

    async def consult(self, view: JudgeView, judge: Any = None) -> Decision:
        """Ask a judge (by default the match's) without recording a verdict: scoring calls such
        as best-of-n candidate ranking."""
        judge = judge or self.judge_plugin

        async def once(i: int) -> Decision:
            v = view.model_copy(update={"attempt": self.attempt * 100 + i})
            return check_decision(await judge.decide(v), v)

        return await self._call(f"judge ({self.judge_name})", once)

    async def decide(
        self, view: JudgeView | None = None, *, node: int | None = None, main: bool | None = None
    ) -> Decision:
        """Ask the judge and record the decision.

        `node` names what was judged when a match has several verdicts (a leaf of a tree, a
        pairwise comparison); every recorded decision lands in the ledger. The main verdict (the
        one ratings use) is the decision with no node, or `main=True`; without one, the mean of
        all recorded decisions.
        """
        view = view or self.judge_view()
        decision = await self.consult(view)
        self.decisions.append((node, decision, view))
        if main or (main is None and node is None):
            self.main = (decision, view)
        return decision

    def verdict(self) -> Verdict:
        """The match's main verdict."""
        if self.main is not None:
            return resolve(*self.main, self.item, self.judge_name)
        if not self.decisions:
            raise RuntimeError(f"protocol {self.protocol!r} finished without asking the judge")
        view = self.decisions[0][2]
        labels = [o.label for o in view.options]
        if any([o.label for o in v.options] != labels for _, _, v in self.decisions):
            raise RuntimeError(
                f"protocol {self.protocol!r} recorded decisions over different options and no "
                f"main one; call match.decide(..., main=True)"
            )
        probs = [
            sum(d.probs[i] / sum(d.probs) for _, d, _ in self.decisions) for i in range(len(labels))
        ]
        mean = Decision(
            probs=probs,
            raw=f"mean of {len(self.decisions)} verdicts",
            meta={"aggregated": len(self.decisions)},
        )
        return resolve(mean, view, self.item, self.judge_name)

    def node_verdicts(self) -> list[tuple[int, Verdict]]:
        """The verdicts recorded under a node, resolved like the main one."""
        return [
            (node, resolve(d, v, self.item, self.judge_name))
            for node, d, v in self.decisions
            if node is not None
        ]


async def together(calls: Sequence[Coroutine[Any, Any, T]]) -> list[T]:
    """`asyncio.gather(*calls)`, less a task for each call that finishes at its first step.

    Each call's first step is taken here, in order and in its own copy of the context (as the
    task gather would make runs it); a call that then waits goes on in a task in that context,
    and only then is anything gathered. In-process agents (fakes, rule-based players) finish at
    once, and two tasks and a gather were a sixth of a fake simultaneous debate's time. As with
    gather, every call is started, the first failure (in seat order, among those that fail at
    once) is raised, and calls still running go on. A call that raises a BaseException that is
    not an Exception (a cancellation, KeyboardInterrupt) at its first step raises it at once:
    the calls not started yet are closed, those waiting are cancelled.
    """
    loop = asyncio.get_running_loop()
    futures: list[asyncio.Future[T]] = []
    waiting_any = False
    for n, call in enumerate(calls):
        ctx = contextvars.copy_context()
        done: asyncio.Future[T] = loop.create_future()
        try:
            waiting = ctx.run(call.send, None)
        except StopIteration as finished:
            done.set_result(finished.value)
        except Exception as exc:
            done.set_exception(exc)
        except BaseException:
            for later in calls[n + 1 :]:
                later.close()
            for f in futures:
                f.cancel()
            raise
        else:
            done = loop.create_task(_resume(call, waiting), context=ctx)
            waiting_any = True
        futures.append(done)
    if waiting_any:
        return list(await asyncio.gather(*futures))
    failures = [f.exception() for f in futures]  # each read, as gather reads them
    for exc in failures:
        if exc is not None:
            raise exc
    return [f.result() for f in futures]


@types.coroutine
def _resume(call: Any, waiting: Any) -> Generator[Any, Any, Any]:
    """Go on with a coroutine whose first step was taken by hand (it yielded `waiting`), exactly
    as `await` would have: PEP 380's expansion of `yield from`, less its first `send`. It runs
    in the awaiting task, so the call's own timeouts and context variables are unchanged."""
    while True:
        try:
            sent = yield waiting
        except GeneratorExit:
            call.close()
            raise
        except BaseException as exc:  # a cancellation (a timeout's, say) goes to the call
            try:
                waiting = call.throw(exc)
            except StopIteration as done:
                return done.value
        else:
            try:
                waiting = call.send(sent)
            except StopIteration as done:
                return done.value


def default_options(item: Item, assignment: dict[str, int]) -> list[AnswerOption]:
    """One option per argued answer, labelled A, B ... in seat order; unargued answers follow."""
    opts: list[AnswerOption] = []
    used: set[int] = set()
    for seat, idx in assignment.items():
        if idx not in used:
            label = chr(ord("A") + len(opts))
            opts.append(AnswerOption(label=label, text=item.answers[idx], index=idx, seat=seat))
            used.add(idx)
    if len(opts) < 2:
        good, bad = item.debate_pair()
        for idx in (good, bad):
            if idx not in used:
                label = chr(ord("A") + len(opts))
                opts.append(AnswerOption(label=label, text=item.answers[idx], index=idx))
                used.add(idx)
    return opts


def check_response(out: Any, request: Request) -> Response:
    if not isinstance(out, list) or len(out) != 1 or not isinstance(out[0], Response):
        raise GarbageError(f"agent returned {type(out).__name__}, expected a list of 1 Response")
    resp = out[0]
    if len(resp.texts) != request.n or not all(
        isinstance(t, str) and t.strip() for t in resp.texts
    ):
        raise GarbageError(
            f"agent returned {len(resp.texts)} text(s), some empty; expected {request.n} non-empty"
        )
    return resp


def check_decision(decision: Any, view: JudgeView) -> Decision:
    if not isinstance(decision, Decision):
        raise GarbageError(f"judge returned {type(decision).__name__}, expected a Decision")
    p = decision.probs
    if (
        len(p) != len(view.options)
        or not all(math.isfinite(x) and x >= 0 for x in p)
        or sum(p) <= 0
    ):
        raise GarbageError(f"judge returned probabilities {p!r} for {len(view.options)} options")
    return decision


def resolve(decision: Decision, view: JudgeView, item: Item, judge: str) -> Verdict:
    total = sum(decision.probs)
    probs = [p / total for p in decision.probs]
    ranked = sorted(range(len(probs)), key=lambda i: probs[i], reverse=True)
    top = ranked[0]
    undecided = len(ranked) > 1 and abs(probs[top] - probs[ranked[1]]) < 1e-9
    chosen = None if undecided else view.options[top]
    return Verdict(
        judge=judge,
        probs={o.label: p for o, p in zip(view.options, probs, strict=True)},
        chosen=chosen.label if chosen else None,
        winner=chosen.seat if chosen else None,
        # An option with index < 0 is not one of the item's answers (a free-form answer in
        # self-play or a duel): such a verdict says nothing about the gold answer.
        correct=None
        if item.gold is None or (chosen is not None and chosen.index < 0)
        else (chosen is not None and chosen.index == item.gold),
        raw=decision.raw,
        confidence=decision.confidence,
        meta=decision.meta,
    )

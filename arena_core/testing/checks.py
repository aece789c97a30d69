"""Conformance checks for plugin authors, in the spirit of PettingZoo's `api_test`.

A third party calls one function on its own plugin (`check_agent`, `check_judge`,
`check_protocol`, `check_dataset`); each plays the plugin against the contract the engine relies
on and raises AssertionError naming what is wrong. `run_tournament` runs a whole config (a TOML
string or a dict) in one call, for tests. Model-free and offline: importing this module pulls in
no torch, transformers or vendor SDK.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import json
import math
import random
import re
import tempfile
import threading
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel

from arena_core.interfaces import Agent, DatasetSource, Judge, Protocol
from arena_core.match import CallPolicy, Match
from arena_core.types import (
    AnswerOption,
    Decision,
    Item,
    JudgeView,
    Message,
    Observation,
    Request,
    Response,
    TurnView,
)

if TYPE_CHECKING:
    from arena_core.engine import RunSummary
    from arena_core.registry import Registry

__all__ = [
    "MARKER",
    "ProtocolReport",
    "RecordingAgent",
    "RecordingJudge",
    "check_agent",
    "check_dataset",
    "check_judge",
    "check_protocol",
    "run_tournament",
    "sample_items",
]

T = TypeVar("T")

# A sentence no protocol has a reason to show the judge: if it reaches a JudgeView, the hidden
# passage leaked.
MARKER = "The lighthouse keeper's ledger was sealed under code ARENA-CANARY-5F3A91."

_QUOTED = re.compile(r"<(quote|v_quote|invalid_quote)>.*?</\1>", re.DOTALL)


def sample_items() -> list[Item]:
    """Items the checks play: graded and ungraded, two and three answers, each passage marked."""
    return [
        Item(
            id="conformance-1",
            question="Why did the ferry stop running in winter?",
            answers=["The harbour froze over", "The captain retired"],
            gold=0,
            context=(
                "Every winter the small harbour froze over from December to March. "
                f"{MARKER} The ferry waited at the dock until the ice broke. "
                "Its captain kept working for another twenty years."
            ),
        ),
        Item(
            id="conformance-2",
            question="What did the gardener plant first?",
            answers=["Tomatoes", "Roses", "Beans"],
            gold=None,
            distractor=2,
            context=(
                f"The gardener planted roses before anything else. {MARKER} "
                "Tomatoes came a month later, and the beans never came up at all."
            ),
        ),
    ]


# --- running coroutines from synchronous checks ---------------------------------------------------


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` to completion, also from inside a running event loop (async test suites)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, name="arena-testing")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


def _build(kind: str, spec: Any, options: Mapping[str, Any] | BaseModel | None = None) -> Any:
    """A plugin from a registered name (built with `options`) or an instance, unchanged."""
    if isinstance(spec, str):
        from arena_core.plugins import get_registry

        return get_registry().build(kind, spec, options)
    if options is not None:
        raise TypeError(f"options are for a registered {kind} name, not an instance")
    return spec


def _name(obj: Any) -> str:
    return getattr(obj, "__qualname__", None) or type(obj).__name__


# --- agents ---------------------------------------------------------------------------------------


def _seats_of(protocol: str | Protocol) -> tuple[str, ...]:
    proto = _build("protocol", protocol) if isinstance(protocol, str) else protocol
    seats = tuple(getattr(proto, "seats", ()))
    return seats or ("A", "B")


def _agent_requests(seats: tuple[str, ...]) -> list[Request]:
    """Requests of the shapes protocols send: passage or not, n = 1 or 2, rounds 0 and 1."""
    requests: list[Request] = []
    seed = 0
    for item in sample_items():
        good, bad = item.debate_pair()
        for seat_no, seat in enumerate(seats):
            mine = good if seat_no % 2 == 0 else bad
            theirs = bad if mine == good else good
            for rnd, with_context, n in ((0, True, 1), (1, True, 2), (0, False, 2), (1, False, 1)):
                transcript = []
                if rnd:
                    transcript = [
                        TurnView(seat=s, round=0, phase="speech", text=f"Speech of {s}: it is {a}.")
                        for s, a in zip(seats, item.answers, strict=False)
                    ]
                obs = Observation(
                    seat=seat,
                    phase="speech",
                    round=rnd,
                    item_id=item.id,
                    question=item.question,
                    answers=list(item.answers),
                    my_answer=mine,
                    opponent_answer=theirs,
                    context=item.context if with_context else None,
                    transcript=transcript,
                    max_words=100,
                )
                passage = f"<passage>\n{item.context}\n</passage>\n\n" if with_context else ""
                history = "".join(f"\n[{t.seat}] {t.text}" for t in transcript)
                messages = [
                    Message(
                        role="system", content=f"You are {seat}. Argue for '{item.answers[mine]}'."
                    ),
                    Message(
                        role="user",
                        content=f"{passage}Question: {item.question}{history}"
                        f"\nNow give your speech for round {rnd + 1}.",
                    ),
                ]
                seed += 1
                requests.append(
                    Request(
                        messages=messages, observation=obs, n=n, seed=1000 + seed, max_tokens=200
                    )
                )
    return requests


async def _respond(agent: Agent, what: str, requests: list[Request]) -> list[Response]:
    out = await agent.respond(list(requests))
    assert isinstance(out, list), (
        f"{what}: respond returned {type(out).__name__}, expected a list of Response"
    )
    assert len(out) == len(requests), (
        f"{what}: respond returned {len(out)} response(s) for {len(requests)} request(s); "
        f"expected one per request, in order"
    )
    for i, (resp, req) in enumerate(zip(out, requests, strict=True)):
        assert isinstance(resp, Response), (
            f"{what}: response {i} is a {type(resp).__name__}, expected arena_core.types.Response"
        )
        assert len(resp.texts) == req.n, (
            f"{what}: response {i} has {len(resp.texts)} text(s) for a request with n={req.n} "
            f"(responses out of order, or n ignored?)"
        )
        for j, text in enumerate(resp.texts):
            assert isinstance(text, str) and text.strip(), (
                f"{what}: response {i} text {j} is {text!r}; every text must be a non-empty string"
            )
    return out


def check_agent(
    agent_or_factory: Agent | Callable[[], Agent] | str,
    *,
    protocol: str | Protocol = "debate",
    deterministic: bool = True,
) -> None:
    """Check an agent against the contract `Match` relies on; raise AssertionError if broken.

    `agent_or_factory` is an Agent, a zero-argument callable returning a fresh one (then two
    instances must agree, which also catches hidden state), or a registered agent name built with
    default options. Requests are shaped like those of `protocol` (its seats). With
    `deterministic`, the same request (same seed) must give the same texts.
    """

    async def main() -> None:
        factory: Callable[[], Agent] | None = None
        if isinstance(agent_or_factory, Agent):
            agent = agent_or_factory
        elif isinstance(agent_or_factory, str):
            agent = _build("agent", agent_or_factory)
        elif callable(agent_or_factory):
            factory = agent_or_factory
            agent = factory()
        else:
            raise AssertionError(
                f"expected an Agent, a factory or a name, got {type(agent_or_factory).__name__}"
            )
        what = f"agent {_name(agent)}"
        assert isinstance(agent, Agent), f"{what}: is not a subclass of arena_core.interfaces.Agent"
        assert inspect.iscoroutinefunction(agent.respond), (
            f"{what}: respond must be an async def (a coroutine function)"
        )
        requests = _agent_requests(_seats_of(protocol))
        before = [r.model_dump() for r in requests]
        batch = await _respond(agent, what, requests)
        for req, snap in zip(requests, before, strict=True):
            assert req.model_dump() == snap, f"{what}: respond mutated a request it was given"
        singles = [(await _respond(agent, what, [r]))[0] for r in requests]
        if deterministic:
            again = await _respond(agent, what, requests)
            for i, (a, b) in enumerate(zip(batch, again, strict=True)):
                assert a.texts == b.texts, (
                    f"{what}: not deterministic: request {i} (seed {requests[i].seed}) gave "
                    f"{a.texts!r} then {b.texts!r}; pass deterministic=False if that is intended"
                )
            for i, (a, b) in enumerate(zip(batch, singles, strict=True)):
                assert a.texts == b.texts, (
                    f"{what}: request {i} answered {b.texts!r} alone but {a.texts!r} in a batch: "
                    f"responses out of order, or batching changes the output"
                )
            if factory is not None:
                other = factory()
                fresh = await _respond(other, f"{what} (second instance)", requests)
                for i, (a, b) in enumerate(zip(batch, fresh, strict=True)):
                    assert a.texts == b.texts, (
                        f"{what}: a fresh instance answers request {i} with {b.texts!r}, the "
                        f"first one with {a.texts!r}: the output depends on hidden state"
                    )
                await _aclose(other, what)
        await _aclose(agent, what)

    _run(main())


async def _aclose(obj: Agent | Judge, what: str) -> None:
    assert inspect.iscoroutinefunction(obj.aclose), f"{what}: aclose must be an async def"
    try:
        await obj.aclose()
    except Exception as exc:
        raise AssertionError(f"{what}: aclose() raised {type(exc).__name__}: {exc}") from exc


# --- judges ---------------------------------------------------------------------------------------


def _judge_views() -> list[JudgeView]:
    two = [
        AnswerOption(label="A", text="The harbour froze over", index=0, seat="A"),
        AnswerOption(label="B", text="The captain retired", index=1, seat="B"),
    ]
    three = [
        AnswerOption(label="A", text="Tomatoes", index=0, seat="A"),
        AnswerOption(label="B", text="Roses", index=1, seat="B"),
        AnswerOption(label="C", text="Beans", index=2, seat=None),
    ]
    quoted = [
        TurnView(
            seat="A",
            round=0,
            phase="speech",
            text="The answer is the harbour. <v_quote>Every winter the small harbour froze "
            "over from December to March.</v_quote>",
        ),
        TurnView(
            seat="B",
            round=0,
            phase="speech",
            text="The captain retired. <invalid_quote>The captain retired in "
            "December.</invalid_quote>",
        ),
        TurnView(seat="A", round=1, phase="speech", text="My opponent's quote was invented."),
    ]
    views = []
    for i, (opts, transcript) in enumerate(itertools.product((two, three), ([], quoted))):
        question = (
            "Why did the ferry stop running in winter?"
            if len(opts) == 2
            else "What did the gardener plant first?"
        )
        views.append(
            JudgeView(
                protocol="debate",
                question=question,
                options=opts,
                transcript=transcript,
                item_id=f"conformance-{i}",
                seed=77 + i,
            )
        )
    one_seat = JudgeView(
        protocol="consultancy",
        question=views[1].question,
        options=[
            AnswerOption(label="A", text="The harbour froze over", index=0, seat="consultant"),
            AnswerOption(label="B", text="The captain retired", index=1, seat=None),
        ],
        transcript=[
            TurnView(
                seat="consultant",
                round=0,
                phase="speech",
                text="<v_quote>The ferry waited at the dock.</v_quote>",
            )
        ],
        item_id="conformance-consultancy",
        seed=5,
    )
    return [*views, one_seat]


def check_judge(judge: Judge | str, *, deterministic: bool = True) -> None:
    """Check a judge: valid probabilities for 2 and 3 options, with and without marked quotes.

    The judge never gets the passage (JudgeView has none), so it must decide from the question,
    the options and the transcript alone, including an empty transcript.
    """

    async def main() -> None:
        j = _build("judge", judge)
        what = f"judge {_name(j)}"
        assert isinstance(j, Judge), f"{what}: is not a subclass of arena_core.interfaces.Judge"
        assert inspect.iscoroutinefunction(j.decide), f"{what}: decide must be an async def"
        for view in _judge_views():
            where = (
                f"{what} on {len(view.options)} options, "
                f"{len(view.transcript)} turn(s) ({view.item_id})"
            )
            snap = view.model_dump()
            try:
                decision = await j.decide(view)
            except Exception as exc:
                raise AssertionError(f"{where}: decide raised {type(exc).__name__}: {exc}") from exc
            assert view.model_dump() == snap, f"{where}: decide mutated the JudgeView"
            assert isinstance(decision, Decision), (
                f"{where}: decide returned {type(decision).__name__}, expected a Decision"
            )
            p = decision.probs
            assert len(p) == len(view.options), (
                f"{where}: {len(p)} probabilities for {len(view.options)} options"
            )
            assert all(isinstance(x, int | float) and math.isfinite(x) for x in p), (
                f"{where}: probabilities must be finite numbers, got {p!r}"
            )
            assert all(x >= 0 for x in p), f"{where}: negative probability in {p!r}"
            assert sum(p) > 0, f"{where}: probabilities sum to 0 ({p!r})"
            if deterministic:
                again = await j.decide(view.model_copy(deep=True))
                assert again.probs == p, (
                    f"{where}: not deterministic for seed {view.seed}: {p!r} then "
                    f"{again.probs!r}; pass deterministic=False if that is intended"
                )
        await _aclose(j, what)

    _run(main())


# --- protocols ------------------------------------------------------------------------------------


@dataclass
class _Call:
    seat: str
    phase: str
    round: int
    n: int
    had_context: bool  # the observation carried the passage
    passage_in_messages: bool  # the prompt text did


class RecordingAgent(Agent):
    """Answers from the observation without ever quoting, and records what it was shown."""

    def __init__(self) -> None:
        self.calls: list[_Call] = []

    async def respond(self, requests: Sequence[Request]) -> list[Response]:
        out = []
        for r in requests:
            obs = r.observation
            self.calls.append(
                _Call(
                    seat=obs.seat,
                    phase=obs.phase,
                    round=obs.round,
                    n=r.n,
                    had_context=obs.context is not None,
                    passage_in_messages=any(MARKER in m.content for m in r.messages),
                )
            )
            answer = obs.answers[obs.my_answer] if obs.my_answer is not None else "my answer"
            text = f"Seat {obs.seat} says the answer is {answer} ({obs.phase} {obs.round + 1})."
            out.append(Response(texts=[text] * r.n, tokens=len(text.split())))
        return out


class RecordingJudge(Judge):
    """A seeded, model-free judge that keeps every view it was shown."""

    def __init__(self) -> None:
        self.views: list[JudgeView] = []

    async def decide(self, view: JudgeView) -> Decision:
        self.views.append(view.model_copy(deep=True))
        rng = random.Random(view.seed)
        return Decision(probs=[rng.random() + 0.01 for _ in view.options], raw="recorded")


@dataclass
class ProtocolReport:
    """What `check_protocol` saw, for the author to inspect (nothing here fails the check)."""

    matches: int = 0
    turns: int = 0
    judge_calls: int = 0
    phases: set[str] = field(default_factory=set)
    # seat -> whether any of its requests carried the passage (observation or prompt text)
    context_seen: dict[str, bool] = field(default_factory=dict)


def _judge_text(view: JudgeView) -> str:
    """Everything in a view except quoted material, which may legitimately repeat the passage."""
    data = view.model_dump(mode="json")
    for turn in data["transcript"]:
        turn["text"] = _QUOTED.sub("", turn["text"])
    return json.dumps(data, ensure_ascii=False)


async def _play(
    protocol: Protocol, name: str, item: Item, assignment: dict[str, int], what: str
) -> tuple[Match, dict[str, RecordingAgent], RecordingJudge]:
    seats = tuple(protocol.seats)
    agents = {seat: RecordingAgent() for seat in seats}
    judge = RecordingJudge()
    match = Match(
        match_id=f"conformance:{item.id}:{json.dumps(assignment, sort_keys=True)}",
        protocol=name,
        item=item,
        players={s: f"player-{s}" for s in seats},
        assignment=dict(assignment),
        agents=dict(agents),
        judge=judge,
        judge_name="recording",
        policy=CallPolicy(timeout=60.0, retries=0, backoff=0.0),
    )
    try:
        decision = await protocol.play(match)
    except Exception as exc:
        raise AssertionError(f"{what}: play raised {type(exc).__name__}: {exc}") from exc
    assert isinstance(decision, Decision), (
        f"{what}: play returned {type(decision).__name__}, expected the Decision of match.decide"
    )
    assert judge.views, f"{what}: play returned without asking the judge (use match.decide)"
    # The engine rates the match by match.verdict(): it fails when no decision was recorded.
    try:
        match.verdict()
    except Exception as exc:
        raise AssertionError(
            f"{what}: play finished without a verdict ({type(exc).__name__}: {exc}); "
            f"decide through match.decide"
        ) from exc
    return match, agents, judge


def check_protocol(
    protocol_name_or_instance: str | Protocol,
    options: Mapping[str, Any] | BaseModel | None = None,
    *,
    deterministic: bool = True,
) -> ProtocolReport:
    """Play every variant of a few items through a real `Match`; return what was observed.

    Checks that `variants` maps every seat to a valid answer, that play decides through
    `match.decide`, that every seat (if the protocol has any) speaks, that turn indices run
    0..n-1, that nothing outside quoted material of the judge's view contains the hidden
    passage, and (with `deterministic`) that a replay of a match records the same turns.
    """
    protocol = _build("protocol", protocol_name_or_instance, options)
    name = (
        protocol_name_or_instance if isinstance(protocol_name_or_instance, str) else _name(protocol)
    )
    what = f"protocol {name}"
    assert isinstance(protocol, Protocol), (
        f"{what}: is not a subclass of arena_core.interfaces.Protocol"
    )
    assert inspect.iscoroutinefunction(protocol.play), f"{what}: play must be an async def"
    seats = tuple(protocol.seats)
    # No seats is allowed: a seatless protocol (re-judging) has only the judge.
    assert all(isinstance(s, str) and s for s in seats), (
        f"{what}: seats must be a tuple of non-empty names, got {seats!r}"
    )
    assert len(set(seats)) == len(seats), f"{what}: seat names repeat: {seats!r}"
    report = ProtocolReport(context_seen=dict.fromkeys(seats, False))

    async def main() -> None:
        for item in sample_items():
            variants = protocol.variants(item)
            assert isinstance(variants, list) and variants, (
                f"{what}: variants({item.id}) must be a non-empty list, got {variants!r}"
            )
            for assignment in variants:
                assert isinstance(assignment, dict) and set(assignment) == set(seats), (
                    f"{what}: variant {assignment!r} of {item.id} must map exactly the seats "
                    f"{seats!r} to answer indices"
                )
                for seat, idx in assignment.items():
                    assert isinstance(idx, int) and 0 <= idx < len(item.answers), (
                        f"{what}: variant {assignment!r} gives seat {seat!r} answer {idx!r}; "
                        f"{item.id} has {len(item.answers)} answers"
                    )
                where = f"{what} ({item.id}, variant {assignment})"
                match, agents, judge = await _play(protocol, name, item, assignment, where)
                indices = [t.index for t in match.turns]
                assert indices == list(range(len(match.turns))), (
                    f"{where}: turn indices are {indices}, expected 0..{len(match.turns) - 1}"
                )
                spoke = {t.seat for t in match.turns}
                silent = [s for s in seats if s not in spoke]
                assert not silent, f"{where}: seat(s) {silent} never spoke"
                for view in judge.views:
                    assert MARKER not in _judge_text(view), (
                        f"{where}: the hidden passage reached the judge outside quoted material "
                        f"(found a passage sentence in the JudgeView)"
                    )
                report.matches += 1
                report.turns += len(match.turns)
                report.judge_calls += len(judge.views)
                report.phases.update(t.phase for t in match.turns)
                for seat, agent in agents.items():
                    if any(c.had_context or c.passage_in_messages for c in agent.calls):
                        report.context_seen[seat] = True
                if deterministic:
                    replay, _, _ = await _play(protocol, name, item, assignment, where)
                    first = [(t.seat, t.round, t.phase, t.shown) for t in match.turns]
                    second = [(t.seat, t.round, t.phase, t.shown) for t in replay.turns]
                    assert first == second, (
                        f"{where}: replaying the match with the same agents recorded different "
                        f"turns; simultaneous speeches must be recorded in seat order"
                    )

    _run(main())
    return report


# --- datasets -------------------------------------------------------------------------------------


def check_dataset(
    source: DatasetSource | str,
    n: int = 5,
    *,
    split: str | None = None,
    allow_no_answers: bool = False,
) -> None:
    """Check the first `n` items: valid Items, unique ids, the same ids on a second pass.

    `allow_no_answers` admits prompt-only sets (self-play and online learners answer them).
    """
    src = _build("dataset", source)
    what = f"dataset {source if isinstance(source, str) else _name(src)}"
    assert isinstance(src, DatasetSource), (
        f"{what}: is not a subclass of arena_core.interfaces.DatasetSource"
    )

    def first(k: int) -> list[Item]:
        it = src.items(split)
        assert isinstance(it, Iterator), (
            f"{what}: items() must return an iterator (a generator), got {type(it).__name__}"
        )
        return list(itertools.islice(it, k))

    items = first(n)
    assert items, f"{what}: items(split={split!r}) gave no items"
    ids: list[str] = []
    for pos, item in enumerate(items):
        assert isinstance(item, Item), (
            f"{what}: entry {pos} is a {type(item).__name__}, expected arena_core.types.Item"
        )
        where = f"{what}: item {item.id!r}"
        assert isinstance(item.id, str) and item.id, f"{what}: entry {pos} has an empty id"
        assert item.question.strip(), f"{where}: empty question"
        ids.append(item.id)
        if allow_no_answers and not item.answers:
            continue
        assert len(item.answers) >= 2, f"{where}: {len(item.answers)} answer(s), need at least 2"
        assert all(isinstance(a, str) and a.strip() for a in item.answers), (
            f"{where}: answers must be non-empty strings, got {item.answers!r}"
        )
        assert item.gold is None or 0 <= item.gold < len(item.answers), (
            f"{where}: gold {item.gold} is not an index into its {len(item.answers)} answers"
        )
        assert item.distractor is None or 0 <= item.distractor < len(item.answers), (
            f"{where}: distractor {item.distractor} is not an index into its answers"
        )
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    assert not dupes, f"{what}: duplicate item ids {dupes}"
    again = [i.id for i in first(n)]
    assert again == ids, f"{what}: ids are not stable: a second pass gave {again} instead of {ids}"


# --- whole tournaments ----------------------------------------------------------------------------

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.match(key) else _toml_str(key)


def _toml_str(s: str) -> str:
    return json.dumps(s, ensure_ascii=False).replace("\x7f", "\\u007F")


def _toml_value(value: Any, path: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return (
            "nan"
            if math.isnan(value)
            else ("inf" if value > 0 else "-inf")
            if math.isinf(value)
            else repr(value)
        )
    if isinstance(value, str):
        return _toml_str(value)
    if isinstance(value, Path):
        return _toml_str(str(value))
    if isinstance(value, Mapping):
        inner = ", ".join(
            f"{_toml_key(str(k))} = {_toml_value(v, f'{path}.{k}')}" for k, v in value.items()
        )
        return "{ " + inner + " }" if inner else "{}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v, f"{path}[{i}]") for i, v in enumerate(value)) + "]"
    if value is None:
        raise TypeError(
            f"config key '{path}' is None, which TOML cannot write; leave it out to "
            f"get the default, or pass the config as a TOML string"
        )
    raise TypeError(f"config key '{path}' has a {type(value).__name__}, which TOML cannot write")


def _table(lines: list[str], header: str, table: Mapping[str, Any], path: str) -> None:
    lines.append(header)
    for key, value in table.items():
        # A None in a section means "the default"; in plugin options it may mean something else.
        if value is None and path != "protocol" and key != "options":
            continue
        lines.append(f"{_toml_key(str(key))} = {_toml_value(value, f'{path}.{key}')}")
    lines.append("")


def to_toml(config: Mapping[str, Any]) -> str:
    """A tournament config dict as TOML: tables, arrays of tables ([[players]]), inline values."""
    lines: list[str] = []
    for name, value in config.items():
        if isinstance(value, Mapping):
            _table(lines, f"[{_toml_key(name)}]", value, name)
        elif (
            isinstance(value, list | tuple) and value and all(isinstance(v, Mapping) for v in value)
        ):
            for entry in value:
                _table(lines, f"[[{_toml_key(name)}]]", entry, name)
        elif value is not None:
            lines.insert(0, f"{_toml_key(name)} = {_toml_value(value, name)}")
    return "\n".join(lines) + "\n"


async def _play_tournament(
    tournament: Any, ledger_url: str, run_kwargs: dict[str, Any]
) -> RunSummary:
    from arena_core.ledger import Ledger

    ledger = Ledger(ledger_url)
    try:
        return await tournament.run(ledger, **run_kwargs)
    finally:
        ledger.close()


def run_tournament(
    config: Mapping[str, Any] | str | Path,
    ledger_url: str,
    *,
    registry: Registry | None = None,
    **run_kwargs: Any,
) -> RunSummary:
    """Run a tournament given as a TOML string, a dict or a file path; return its summary.

    The config goes through the same `load_config` as `arena run`, so a bad one raises the same
    ConfigError before the ledger is touched. Plugin hooks fire as under the CLI unless `hook` is
    given in `run_kwargs` (which go to `Tournament.run`).
    """
    from arena_core.config import load_config
    from arena_core.engine import Tournament
    from arena_core.plugins import get_plugin_manager, get_registry

    registry = registry or get_registry()
    run_kwargs.setdefault("hook", get_plugin_manager().hook)
    if isinstance(config, Path):
        text, path = config.read_text(encoding="utf-8"), config
        cfg = load_config(path, registry)
    else:
        text = config if isinstance(config, str) else to_toml(config)
        with tempfile.TemporaryDirectory(prefix="arena-config-") as tmp:
            path = Path(tmp) / "tournament.toml"
            path.write_text(text, encoding="utf-8")
            cfg = load_config(path, registry)
    tournament = Tournament(cfg, registry, source=text)
    return _run(_play_tournament(tournament, ledger_url, run_kwargs))

"""Every built-in plugin passes the conformance checks, and each check catches a broken plugin."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

import pytest

from arena_core.interfaces import Agent, DatasetSource, Judge, Protocol
from arena_core.match import Match
from arena_core.plugins import get_registry
from arena_core.testing import (
    MARKER,
    check_agent,
    check_dataset,
    check_judge,
    check_protocol,
)
from arena_core.types import Decision, Item, JudgeView, Request, Response

AGENTS: dict[str, dict[str, Any]] = {
    "deterministic": {},
    "random": {"quotes": 2, "fabricate": 0.5},
    "scripted": {"replies": ["First: {answer}.", "Then: {question}"]},
    "extractive": {"max_quotes": 3},
    "faulty": {"fail_rate": 0.0, "hang_rate": 0.0, "garbage_rate": 0.0},
}


@pytest.mark.parametrize("name", sorted(AGENTS))
@pytest.mark.parametrize("protocol", ["debate", "consultancy"])
def test_builtin_agents_conform(name: str, protocol: str) -> None:
    registry = get_registry()
    check_agent(lambda: registry.build("agent", name, AGENTS[name]), protocol=protocol)


def test_sampling_extractive_agent_conforms() -> None:
    # temperature > 0 samples, but from the request's seed: still deterministic per seed.
    agent = get_registry().build("agent", "extractive", {"temperature": 1.0})
    check_agent(agent)


@pytest.mark.parametrize("name", ["quote", "random"])
def test_builtin_judges_conform(name: str) -> None:
    check_judge(name)


@pytest.mark.parametrize(
    ("name", "options", "seats", "turns_per_match"),
    [
        ("debate", {"simultaneous": True}, ("A", "B"), 4),
        ("debate", {"simultaneous": False, "speeches": 3}, ("A", "B"), 6),
        ("consultancy", {}, ("consultant",), 2),
    ],
)
def test_builtin_protocols_conform(
    name: str, options: dict[str, Any], seats: tuple[str, ...], turns_per_match: int
) -> None:
    report = check_protocol(name, options)
    assert report.matches == 4  # two sample items, two variants each
    assert report.turns == turns_per_match * report.matches
    assert report.judge_calls == report.matches
    # Debaters and consultants read the passage; only the judge is kept from it.
    assert report.context_seen == dict.fromkeys(seats, True)


def test_bundled_dataset_conforms() -> None:
    check_dataset("bundled", n=48)


# --- each check can fail ----------------------------------------------------------------------


class ShortAgent(Agent):
    """Drops the last request of a batch."""

    async def respond(self, requests: Sequence[Request]) -> list[Response]:
        out = [Response(texts=["fine"] * r.n) for r in requests]
        return out[:-1] if len(out) > 1 else out


class IgnoresNAgent(Agent):
    async def respond(self, requests: Sequence[Request]) -> list[Response]:
        return [Response(texts=["one"]) for _ in requests]


class MoodyAgent(Agent):
    """Ignores the seed: different text on every call."""

    def __init__(self) -> None:
        self.calls = 0

    async def respond(self, requests: Sequence[Request]) -> list[Response]:
        self.calls += 1
        return [Response(texts=[f"call {self.calls}"] * r.n) for r in requests]


class MutatingAgent(Agent):
    async def respond(self, requests: Sequence[Request]) -> list[Response]:
        for r in requests:
            r.observation.transcript.clear()
        return [Response(texts=["ok"] * r.n) for r in requests]


class SyncAgent(Agent):
    def respond(self, requests: Sequence[Request]) -> list[Response]:  # type: ignore[override]
        return [Response(texts=["ok"] * r.n) for r in requests]


def test_agent_returning_too_few_responses_fails() -> None:
    with pytest.raises(AssertionError, match=r"respond returned \d+ response\(s\) for \d+ request"):
        check_agent(ShortAgent())


def test_agent_ignoring_n_fails() -> None:
    with pytest.raises(AssertionError, match="1 text\\(s\\) for a request with n=2"):
        check_agent(IgnoresNAgent())


def test_non_deterministic_agent_fails_unless_declared() -> None:
    with pytest.raises(AssertionError, match="not deterministic"):
        check_agent(MoodyAgent())
    check_agent(MoodyAgent(), deterministic=False)


def test_agent_mutating_its_request_fails() -> None:
    with pytest.raises(AssertionError, match="mutated a request"):
        check_agent(MutatingAgent())


def test_sync_agent_fails() -> None:
    with pytest.raises(AssertionError, match="must be an async def"):
        check_agent(SyncAgent())


class NaNJudge(Judge):
    async def decide(self, view: JudgeView) -> Decision:
        return Decision(probs=[math.nan] * len(view.options))


class TwoOptionJudge(Judge):
    async def decide(self, view: JudgeView) -> Decision:
        return Decision(probs=[0.5, 0.5])


class CoinJudge(Judge):
    """Unseeded: a different decision each time."""

    async def decide(self, view: JudgeView) -> Decision:
        return Decision(probs=[random.random() + 0.1 for _ in view.options])


class QuoteHatingJudge(Judge):
    async def decide(self, view: JudgeView) -> Decision:
        if any("<invalid_quote>" in t.text for t in view.transcript):
            raise ValueError("cannot parse the transcript")
        return Decision(probs=[1.0] * len(view.options))


def test_judge_returning_nan_fails() -> None:
    with pytest.raises(AssertionError, match="must be finite"):
        check_judge(NaNJudge())


def test_judge_ignoring_the_option_count_fails() -> None:
    with pytest.raises(AssertionError, match="2 probabilities for 3 options"):
        check_judge(TwoOptionJudge())


def test_unseeded_judge_fails_unless_declared() -> None:
    with pytest.raises(AssertionError, match="not deterministic"):
        check_judge(CoinJudge())
    check_judge(CoinJudge(), deterministic=False)


def test_judge_crashing_on_marked_quotes_fails() -> None:
    with pytest.raises(AssertionError, match="decide raised ValueError"):
        check_judge(QuoteHatingJudge())


class LeakyProtocol(Protocol):
    """Shows the judge the passage as if it were a speech."""

    seats: ClassVar[tuple[str, ...]] = ("A", "B")

    async def play(self, match: Match) -> Decision:
        for seat in match.seats:
            await match.speak(seat, match.request(seat, match.observation(seat), []))
        match.record(
            "A", Response(texts=["summary"]), shown=lambda _: (match.item.context or "", {})
        )
        return await match.decide()


class QuotingProtocol(LeakyProtocol):
    """Shows passage sentences only inside verified quotes: allowed."""

    async def play(self, match: Match) -> Decision:
        for seat in match.seats:
            await match.speak(seat, match.request(seat, match.observation(seat), []))
        quoted = f"<v_quote>{match.item.context}</v_quote>"
        match.record("A", Response(texts=["quote"]), shown=lambda _: (quoted, {}))
        return await match.decide()


class SilentSeatProtocol(LeakyProtocol):
    async def play(self, match: Match) -> Decision:
        await match.speak("A", match.request("A", match.observation("A"), []))
        return await match.decide()


class NoJudgeProtocol(LeakyProtocol):
    """Asks the judge behind the match's back, so no verdict is recorded."""

    async def play(self, match: Match) -> Decision:
        for seat in match.seats:
            await match.speak(seat, match.request(seat, match.observation(seat), []))
        return await match.judge_plugin.decide(match.judge_view())


class BadVariantProtocol(SilentSeatProtocol):
    def variants(self, item: Item) -> list[dict[str, int]]:
        return [{"A": 0, "B": len(item.answers)}]


def test_protocol_leaking_the_passage_to_the_judge_fails() -> None:
    assert MARKER not in "summary"
    with pytest.raises(AssertionError, match="hidden passage reached the judge"):
        check_protocol(LeakyProtocol())


def test_protocol_quoting_the_passage_passes() -> None:
    check_protocol(QuotingProtocol())


def test_protocol_with_a_silent_seat_fails() -> None:
    with pytest.raises(AssertionError, match=r"seat\(s\) \['B'\] never spoke"):
        check_protocol(SilentSeatProtocol())


def test_protocol_bypassing_match_decide_fails() -> None:
    with pytest.raises(AssertionError, match=r"without a verdict .* decide through match\.decide"):
        check_protocol(NoJudgeProtocol())


def test_protocol_with_an_invalid_variant_fails() -> None:
    with pytest.raises(AssertionError, match="gives seat 'B' answer 2"):
        check_protocol(BadVariantProtocol())


class JudgeOnlyProtocol(Protocol):
    """Seatless, as re-judging is: nobody speaks, the judge decides."""

    seats: ClassVar[tuple[str, ...]] = ()

    async def play(self, match: Match) -> Decision:
        return await match.decide()


def test_seatless_protocol_passes() -> None:
    report = check_protocol(JudgeOnlyProtocol())
    assert (report.matches, report.turns, report.judge_calls) == (2, 0, 2)


class DuplicateIds(DatasetSource):
    def items(self, split: str | None = None) -> Iterator[Item]:
        for _ in range(3):
            yield Item(id="same", question="Q?", answers=["a", "b"], gold=0)


class UnstableIds(DatasetSource):
    def __init__(self) -> None:
        self.passes = 0

    def items(self, split: str | None = None) -> Iterator[Item]:
        self.passes += 1
        for i in range(3):
            yield Item(id=f"{self.passes}-{i}", question="Q?", answers=["a", "b"])


class BadGold(DatasetSource):
    def items(self, split: str | None = None) -> Iterator[Item]:
        yield Item(id="x", question="Q?", answers=["a", "b"], gold=2)


class OneAnswer(DatasetSource):
    def items(self, split: str | None = None) -> Iterator[Item]:
        yield Item(id="x", question="Q?", answers=["a"])


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (DuplicateIds(), "duplicate item ids"),
        (UnstableIds(), "ids are not stable"),
        (BadGold(), "gold 2 is not an index"),
        (OneAnswer(), "1 answer\\(s\\), need at least 2"),
    ],
)
def test_broken_datasets_fail(source: DatasetSource, message: str) -> None:
    with pytest.raises(AssertionError, match=message):
        check_dataset(source)


def test_prompt_only_dataset_passes_with_allow_no_answers(tmp_path) -> None:
    path = tmp_path / "prompts.jsonl"
    path.write_text('{"prompt": "Write a haiku."}\n{"prompt": "Explain tides."}\n')
    source = get_registry().build("dataset", "prompts", {"path": str(path)})
    check_dataset(source, allow_no_answers=True)
    with pytest.raises(AssertionError, match="need at least 2"):
        check_dataset(source)

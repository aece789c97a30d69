"""One layer owns the retry budget: HTTP attempts counted at the loopback server.

The engine retries a call `[tournament] retries` times, only when the failure is transient, with
jittered backoff; the SDK's own retries are off by default, so a call never makes more than
`retries + 1` HTTP attempts (3 engine tries x 5 SDK tries made up to 15 before).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from servers import FakeAPIServer

from arena_core.ledger import Ledger
from arena_core.match import CallFailed, CallPolicy, GarbageError, Match, TransientError
from arena_core.testing import run_tournament
from arena_core.types import Item, Message, Observation, Request, Response

pytest.importorskip("openai")

TOML = """
[tournament]
name = "retries"
protocol = "debate"
retries = 2
backoff = 0
concurrency = 1

[protocol]
speeches = 1

[dataset]
plugin = "bundled"
limit = 1

[judge]
plugin = "quote"

[[players]]
name = "api"
agent = "openai-compatible"
options = {{ model = "m", base_url = "{url}" }}

[[players]]
name = "quoter"
agent = "extractive"
"""


@pytest.mark.parametrize(
    ("faults", "attempts", "done"),
    [
        ([500] * 50, 3, 0),  # transient, for good: 1 + 2 engine retries, no SDK retries under them
        ([429], 2, 1),  # transient once: the retry answers
        ([400] * 50, 1, 0),  # a bad request: retrying cannot fix it
    ],
)
def test_http_attempts_per_call(tmp_path, faults: list[int], attempts: int, done: int) -> None:
    with FakeAPIServer() as server:
        server.faults = list(faults)
        summary = run_tournament(TOML.format(url=server.base_url), f"sqlite:///{tmp_path / 'l.db'}")
        # Four matches (both orders, both sides); the first failing call ends a match.
        first = len(server.requests) if done == 0 else None
    assert summary.scheduled == 4
    if done == 0:
        assert summary.failed == 4 and first == 4 * attempts
        errors = [m.error for m in Ledger(f"sqlite:///{tmp_path / 'l.db'}").matches()]
        word = "not retried" if attempts == 1 else f"after {attempts} tries"
        assert all(word in (e or "") for e in errors), errors
    else:
        assert summary.done == 4 and len(server.requests) == attempts + 3


class Raising:
    """An agent that raises `exc` on every call and counts the calls."""

    def __init__(self, exc: Exception) -> None:
        self.exc = exc
        self.calls = 0

    async def respond(self, requests: Sequence[Request]) -> list[Response]:
        self.calls += 1
        raise self.exc

    async def aclose(self) -> None:
        pass


def ask(agent: Raising, retries: int = 2) -> None:
    item = Item(id="i", question="Q?", answers=["x", "y"], gold=0)
    match = Match(
        match_id="m",
        protocol="debate",
        item=item,
        players={"A": "a"},
        assignment={"A": 0},
        agents={"A": agent},  # type: ignore[dict-item]
        judge=None,  # type: ignore[arg-type]
        judge_name="none",
        policy=CallPolicy(timeout=5, retries=retries, backoff=0),
    )
    req = Request(
        messages=[Message(role="user", content="m")],
        observation=Observation(seat="A", phase="speech"),
    )
    asyncio.run(match.ask("A", req))


@pytest.mark.parametrize(
    ("exc", "calls"),
    [
        (TypeError("a bug in the agent"), 1),
        (KeyError("choices"), 1),
        (TransientError("overloaded"), 3),
        (ConnectionResetError("peer reset"), 3),
        (GarbageError("empty"), 3),
    ],
)
def test_only_transient_errors_are_retried(exc: Exception, calls: int) -> None:
    agent = Raising(exc)
    with pytest.raises(CallFailed) as info:
        ask(agent)
    assert agent.calls == calls
    assert type(exc).__name__ in str(info.value)
    assert info.value.__cause__ is exc or calls > 1


def test_backoff_has_jitter_and_honours_retry_after() -> None:
    policy = CallPolicy(backoff=1.0, max_wait=30)
    waits = {policy.wait(3, None) for _ in range(50)}
    assert all(2.0 <= w <= 4.0 for w in waits) and len(waits) > 40  # half fixed, half random
    assert policy.wait(1, TransientError("slow down", retry_after=9.0)) == 9.0
    assert policy.wait(1, TransientError("slow down", retry_after=900.0)) == 30  # capped

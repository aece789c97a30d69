"""`Match`'s per-call machinery, held to what it did before it was made cheaper: the match's
random stream, and a call's timeout, retries and cancellation whether or not the call waits."""

from __future__ import annotations

import asyncio
import contextvars
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from arena_core.ids import seed_for
from arena_core.match import CallFailed, CallPolicy, Match, together
from arena_core.types import Item


def make_match(*, timeout: float = 5.0, retries: int = 0, attempt: int = 0) -> Match:
    return Match(
        match_id="m-1",
        protocol="debate",
        item=Item(id="i", question="Q?", answers=["x", "y"], gold=0),
        players={"A": "a"},
        assignment={"A": 0},
        agents={},
        judge=None,
        judge_name="none",
        policy=CallPolicy(timeout=timeout, retries=retries, backoff=0),
        attempt=attempt,
    )


def call(match: Match, fn: Callable[[int], Awaitable[Any]]) -> Any:
    async def go() -> Any:
        return await match.call("the call", fn)

    return asyncio.run(go())


def test_rng_is_the_stream_of_match_and_attempt() -> None:
    """Made on first use, it draws what the eagerly seeded one did, and stays one stream."""
    match = make_match(attempt=3)
    expected = random.Random(seed_for("m-1", 3))
    assert [match.rng.random() for _ in range(3)] == [expected.random() for _ in range(3)]
    assert match.rng is match.rng


def test_call_that_never_waits_returns_its_value() -> None:
    async def fn(i: int) -> str:
        return f"try {i}"

    assert call(make_match(), fn) == "try 0"


def test_call_that_waits_resumes_with_what_it_awaited() -> None:
    """Every value and exception a waiting call receives reaches it, as under a plain await."""

    async def fn(i: int) -> list[Any]:
        got: list[Any] = []
        for k in range(3):
            await asyncio.sleep(0)
            fut = asyncio.get_running_loop().create_future()
            asyncio.get_running_loop().call_soon(fut.set_result, k)
            got.append(await fut)
        fut = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_soon(fut.set_exception, KeyError("inside"))
        try:
            await fut
        except KeyError as exc:
            got.append(str(exc))
        return got

    assert call(make_match(), fn) == [0, 1, 2, "'inside'"]


def test_waiting_call_runs_in_the_callers_task() -> None:
    """The call keeps its task (its own timeouts and context variables rely on it)."""

    async def go() -> bool:
        outer = asyncio.current_task()

        async def fn(i: int) -> bool:
            before = asyncio.current_task()
            async with asyncio.timeout(5):  # the call's own timeout, nested in the match's
                await asyncio.sleep(0.01)
            return before is outer and asyncio.current_task() is outer

        return await make_match().call("the call", fn)

    assert asyncio.run(go())


def test_waiting_call_times_out_and_is_retried() -> None:
    tries: list[int] = []

    async def fn(i: int) -> str:
        tries.append(i)
        if i == 0:
            await asyncio.sleep(10)
        await asyncio.sleep(0)
        return "second try"

    start = time.perf_counter()
    assert call(make_match(timeout=0.05, retries=1), fn) == "second try"
    assert tries == [0, 1] and time.perf_counter() - start < 5


def test_timeout_counts_from_the_start_of_the_call() -> None:
    """A call that first blocks past its deadline, then waits, times out at its first wait:
    the deadline is taken before its first step, not when it first waits."""
    cleaned: list[bool] = []

    async def fn(i: int) -> str:
        time.sleep(0.1)  # past the 0.05 s deadline, without giving the loop a turn
        try:
            await asyncio.sleep(10)
        finally:
            cleaned.append(True)  # the cancellation reached the call
        return "never"

    start = time.perf_counter()
    with pytest.raises(
        CallFailed,
        match=r"the call failed after 1 tries: TimeoutError: "
        r"the call timed out after 0.05s",
    ):
        call(make_match(timeout=0.05), fn)
    assert cleaned == [True] and time.perf_counter() - start < 5


def test_call_that_never_waits_is_not_cut_by_the_timer() -> None:
    """As under `asyncio.timeout`: a call that never gives the loop a turn cannot be timed out."""

    async def fn(i: int) -> str:
        time.sleep(0.1)
        return "done"

    assert call(make_match(timeout=0.05), fn) == "done"


def test_errors_before_and_after_the_first_wait_are_handled_alike() -> None:
    for waits in (False, True):

        async def fn(i: int, waits: bool = waits) -> str:
            if waits:
                await asyncio.sleep(0)
            raise TimeoutError("the agent's own timeout")

        with pytest.raises(CallFailed, match="timed out after 5s"):
            call(make_match(retries=1), fn)

        async def bug(i: int, waits: bool = waits) -> str:
            if waits:
                await asyncio.sleep(0)
            raise TypeError("a bug")

        with pytest.raises(CallFailed, match="not retried") as info:
            call(make_match(retries=1), bug)
        assert isinstance(info.value.__cause__, TypeError)


def test_cancelling_the_match_cancels_a_waiting_call() -> None:
    seen: list[str] = []

    async def fn(i: int) -> str:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise
        return "never"

    async def go() -> None:
        task = asyncio.ensure_future(make_match().call("the call", fn))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(go())
    assert seen == ["cancelled"]


def test_call_of_a_plain_awaitable() -> None:
    """`fn` may return any awaitable, a future say, not only a coroutine."""

    async def go() -> int:
        loop = asyncio.get_running_loop()

        def fn(i: int) -> asyncio.Future[int]:
            fut = loop.create_future()
            loop.call_soon(fut.set_result, 7)
            return fut

        return await make_match().call("the call", fn)

    assert asyncio.run(go()) == 7


def test_closing_a_waiting_call_closes_the_agents_coroutine() -> None:
    """A match coroutine closed mid-call (its task dropped) closes the call too, as `await`
    would: the agent's `finally` runs."""
    closed: list[str] = []

    async def fn(i: int) -> str:
        try:
            await asyncio.get_running_loop().create_future()
        finally:
            closed.append("agent")
        return "never"

    async def go() -> None:
        pending = make_match().call("the call", fn)
        pending.send(None)  # up to the agent's first wait
        pending.close()

    asyncio.run(go())
    assert closed == ["agent"]


# `together` is `asyncio.gather` for the speeches of a simultaneous round, minus a task for each
# call that finishes at once: each property below is checked against gather itself.

_VAR: contextvars.ContextVar[str] = contextvars.ContextVar("_VAR", default="outer")


async def _gathered(way: str, calls: list) -> list:  # type: ignore[type-arg]
    if way == "gather":
        return list(await asyncio.gather(*calls))
    return await together(calls)


@pytest.mark.parametrize("way", ["gather", "together"])
def test_together_returns_in_order_whether_calls_wait_or_not(way: str) -> None:
    async def now(x: int) -> int:
        return x

    async def later(x: int) -> int:
        await asyncio.sleep(0.01 * x)
        return x

    async def main() -> list[int]:
        return await _gathered(way, [later(3), now(1), later(1), now(2)])

    assert asyncio.run(main()) == [3, 1, 1, 2]


@pytest.mark.parametrize("way", ["gather", "together"])
def test_together_starts_every_call_and_raises_the_first_failure(way: str) -> None:
    started: list[str] = []

    async def fail(name: str) -> None:
        started.append(name)
        raise ValueError(name)

    async def fine(name: str) -> str:
        started.append(name)
        return name

    async def main() -> None:
        await _gathered(way, [fine("a"), fail("b"), fail("c"), fine("d")])

    with pytest.raises(ValueError, match="b"):
        asyncio.run(main())
    assert started == ["a", "b", "c", "d"]


@pytest.mark.parametrize("way", ["gather", "together"])
def test_together_gives_each_call_its_own_context(way: str) -> None:
    seen: list[str] = []

    async def setter(value: str, wait: bool) -> str:
        _VAR.set(value)
        if wait:
            await asyncio.sleep(0)
        seen.append(_VAR.get())
        return _VAR.get()

    async def main() -> tuple[list[str], str]:
        out = await _gathered(way, [setter("a", False), setter("b", True), setter("c", False)])
        return out, _VAR.get()

    out, after = asyncio.run(main())
    assert out == ["a", "b", "c"] and after == "outer"  # nothing leaks to the caller or siblings


@pytest.mark.parametrize("way", ["gather", "together"])
def test_cancelling_the_caller_cancels_the_calls_still_waiting(way: str) -> None:
    cancelled: list[str] = []

    async def slow(name: str) -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.append(name)
            raise

    async def quick() -> str:
        return "q"

    async def main() -> None:
        task = asyncio.ensure_future(_gathered(way, [slow("x"), quick(), slow("y")]))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert sorted(cancelled) == ["x", "y"]


def test_together_makes_no_task_for_calls_that_finish_at_once() -> None:
    async def now(x: int) -> int:
        return x

    async def main() -> tuple[int, int]:
        before = len(asyncio.all_tasks())
        made: list[int] = []
        loop = asyncio.get_running_loop()
        factory = loop.get_task_factory()

        def counting(loop_: asyncio.AbstractEventLoop, coro, **kw):  # type: ignore[no-untyped-def]
            made.append(1)
            return asyncio.Task(coro, loop=loop_, **kw)

        loop.set_task_factory(counting)
        try:
            assert await together([now(1), now(2)]) == [1, 2]
        finally:
            loop.set_task_factory(factory)
        return before, len(made)

    _, made = asyncio.run(main())
    assert made == 0


@pytest.mark.parametrize("simultaneous", ["true", "false"])
def test_matches_that_never_wait_still_let_the_run_write_as_it_goes(
    write_config, ledger_url, simultaneous: str
) -> None:
    """In-process agents finish every call at its first step, so a match may never wait: the
    engine must still give the loop to its writes (and heartbeat, progress) during the run,
    not only at the end, or a crash would lose every finished match."""
    from arena_core.config import load_config
    from arena_core.engine import Tournament
    from arena_core.ledger import Ledger
    from arena_core.plugins import get_registry

    path = write_config(limit=40, concurrency=8, protocol_options=f"simultaneous = {simultaneous}")
    reg = get_registry()
    t = Tournament(load_config(path, reg), reg)
    seen: list[int] = []
    summary = asyncio.run(
        t.run(Ledger(ledger_url), progress=lambda s: seen.append(s.done + s.failed))
    )
    assert summary.done == 480
    # Written as the run went: a first group before the end (without the fix, one write of
    # all 480 at the end), however fast the machine makes the run.
    assert len(seen) >= 2 and seen[0] < 480

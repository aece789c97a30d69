"""A gather-window batcher: many concurrent callers, one model call per batch.

The engine runs many matches at once and each one awaits its own agent call, so a local model
sees a trickle of single requests. `Batcher.submit` parks each request in a queue and returns its
future; one background task per event loop takes the first waiting request, keeps gathering for
up to `gather_ms` (measured from that request's arrival) or until `max_batch` are waiting, and
hands the whole list to the batch function. A blocking batch function (a torch forward pass)
runs in a worker thread via `asyncio.to_thread`, so the event loop keeps serving matches and the
next batch is already gathering while the model works. Batches run one at a time, in order.

If a batch call raises, each request of it is retried alone so one bad request (a prompt too
long for the model, say) fails its own match only.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import weakref
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

Q = TypeVar("Q")
R = TypeVar("R")


@dataclass
class _Waiting(Generic[Q, R]):
    item: Q
    future: asyncio.Future[R]
    arrived: float


@dataclass
class _LoopState(Generic[Q, R]):
    """Queue and worker of one event loop: a batcher may serve several loops in turn (tests
    call `asyncio.run` repeatedly), and asyncio primitives belong to the loop that made them."""

    queue: deque[_Waiting[Q, R]] = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


class Batcher(Generic[Q, R]):
    """Collects concurrent `submit` calls into lists for `fn` (sync or async).

    `fn(items) -> results` must return one result per item, in order. With `in_thread` (the
    default) a synchronous `fn` runs in a worker thread.
    """

    def __init__(
        self,
        fn: Callable[[list[Q]], list[R] | Awaitable[list[R]]],
        *,
        max_batch: int = 16,
        gather_ms: float = 5.0,
        in_thread: bool = True,
        name: str = "batcher",
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.fn = fn
        self.max_batch = max_batch
        self.gather = max(0.0, gather_ms) / 1000.0
        self.in_thread = in_thread
        self.name = name
        self.sizes: list[int] = []  # size of every batch run, for tests and benchmarks
        self._states: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState[Q, R]] = (
            weakref.WeakKeyDictionary()
        )

    def _state(self) -> _LoopState[Q, R]:
        loop = asyncio.get_running_loop()
        state = self._states.get(loop)
        if state is None:
            state = self._states[loop] = _LoopState()
        if state.task is None or state.task.done():
            state.task = loop.create_task(self._worker(state), name=f"{self.name}-worker")
        return state

    async def submit(self, item: Q) -> R:
        """Queue one request and wait for its result."""
        state = self._state()
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[R] = loop.create_future()
        state.queue.append(_Waiting(item, fut, loop.time()))
        state.wake.set()
        return await fut

    async def submit_many(self, items: Sequence[Q]) -> list[R]:
        """Queue several requests at once (they may land in one batch); results in order."""
        return list(await asyncio.gather(*(self.submit(i) for i in items)))

    async def _worker(self, state: _LoopState[Q, R]) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not state.queue:
                state.wake.clear()
                await state.wake.wait()
            deadline = state.queue[0].arrived + self.gather
            while len(state.queue) < self.max_batch:
                left = deadline - loop.time()
                if left <= 0:
                    break
                state.wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(state.wake.wait(), left)
            batch: list[_Waiting[Q, R]] = []
            while state.queue and len(batch) < self.max_batch:
                w = state.queue.popleft()
                if not w.future.done():  # a caller that timed out has cancelled its future
                    batch.append(w)
            if batch:
                await self._run(batch)

    async def _call(self, items: list[Q]) -> list[R]:
        if self.in_thread and not inspect.iscoroutinefunction(self.fn):
            out: Any = await asyncio.to_thread(self.fn, items)
        else:
            out = self.fn(items)
        if inspect.isawaitable(out):
            out = await out
        results = list(out)
        if len(results) != len(items):
            raise RuntimeError(
                f"{self.name}: batch function returned {len(results)} results for "
                f"{len(items)} requests"
            )
        return results

    async def _run(self, batch: list[_Waiting[Q, R]]) -> None:
        self.sizes.append(len(batch))
        try:
            results = await self._call([w.item for w in batch])
        except asyncio.CancelledError:
            for w in batch:
                if not w.future.done():
                    w.future.cancel()
            raise
        except Exception as exc:
            if len(batch) == 1:
                if not batch[0].future.done():
                    batch[0].future.set_exception(exc)
                return
            for w in batch:  # isolate the bad request: each one alone
                await self._run([w])
            return
        for w, r in zip(batch, results, strict=True):
            if not w.future.done():
                w.future.set_result(r)

    async def aclose(self) -> None:
        """Stop this loop's worker; requests still queued are cancelled."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        state = self._states.pop(loop, None)
        if state is None:
            return
        for w in state.queue:
            w.future.cancel()
        state.queue.clear()
        if state.task is not None and not state.task.done():
            state.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await state.task

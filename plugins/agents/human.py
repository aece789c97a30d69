"""The `human` agent: a person types the speech in the terminal.

The observation (passage when the seat may see it, question, answers, the side to argue, the
transcript so far) is drawn with rich on stderr, so stdout stays clean for JSON output; the
speech is read from stdin: one or more lines, ended by an empty line or end of input. stdin may
be a pipe (tests, scripted sessions): nothing here needs a TTY. Reading happens in a worker
thread, so other matches (with model players) go on while the person types; one prompt is
shown at a time, across all human players and judges of the process, and the run's progress bar
is paused while it is (`arena_core.live.paused`), so the prompt is not drawn over. End of input
with nothing typed raises `HumanInputClosed`, a `StopRun`: the run ends at once with that message
(it is not retried, and no further match asks), and the unplayed matches stay pending.

Give a tournament with humans a generous `timeout` (seconds per call): the default 60 s is
meant for models.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Sequence
from typing import Any, TextIO

from pydantic import BaseModel, ConfigDict, Field

from arena_core.interfaces import Agent
from arena_core.live import paused
from arena_core.match import StopRun
from arena_core.types import Observation, Request, Response, TurnView


class HumanInputClosed(EOFError, StopRun):
    """stdin ended before the person typed an answer: every later prompt would end the same way,
    so the run stops (a StopRun) instead of retrying or failing match after match."""


class HumanOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    show_passage: bool = Field(True, description="show the passage when the seat may see it")
    max_passage_chars: int | None = Field(
        None, ge=1, description="cut a long passage to this many characters on screen"
    )


_LOCKS: dict[asyncio.AbstractEventLoop, asyncio.Lock] = {}


def terminal_lock() -> asyncio.Lock:
    """One prompt at a time per event loop (all human agents and judges share it)."""
    loop = asyncio.get_running_loop()
    lock = _LOCKS.get(loop)
    if lock is None:
        for old in [k for k in _LOCKS if k.is_closed()]:
            del _LOCKS[old]
        lock = _LOCKS[loop] = asyncio.Lock()
    return lock


class Terminal:
    """rich output on stderr, line input from a stream (stdin by default)."""

    def __init__(self, stream: TextIO | None = None, console: Any = None) -> None:
        self.stream = stream
        self._console = console

    @property
    def console(self) -> Any:
        if self._console is None:
            from rich.console import Console

            self._console = Console(stderr=True, highlight=False)
        return self._console

    def readline(self) -> str | None:
        """One line without its newline; None at end of input."""
        line = (self.stream or sys.stdin).readline()
        return None if line == "" else line.rstrip("\r\n")

    def read_block(self) -> str | None:
        """Lines up to an empty line (or end of input); None if input ended before any text."""
        lines: list[str] = []
        while True:
            line = self.readline()
            if line is None or (not line.strip() and lines):
                break
            if line.strip():
                lines.append(line)
        return "\n".join(lines) if lines else None

    def transcript(self, turns: Sequence[TurnView]) -> None:
        from rich.markup import escape

        for t in turns:
            self.console.print(f"[bold]{escape(t.seat)}[/] (round {t.round + 1}, {t.phase}):")
            self.console.print(escape(t.text), soft_wrap=True)


class HumanAgent(Agent):
    """A person at the terminal; see the module docstring."""

    def __init__(self, options: HumanOptions, terminal: Terminal | None = None) -> None:
        self.opts = options
        self.term = terminal or Terminal()

    def show(self, obs: Observation, n: int) -> None:
        from rich.markup import escape
        from rich.rule import Rule

        c = self.term.console
        c.print(Rule(f"Your turn: seat {escape(obs.seat)}, {obs.phase}, round {obs.round + 1}"))
        if obs.context and self.opts.show_passage:
            passage = obs.context
            if self.opts.max_passage_chars and len(passage) > self.opts.max_passage_chars:
                passage = passage[: self.opts.max_passage_chars] + " ..."
            c.print("[bold]Passage[/]", escape(passage), sep="\n", soft_wrap=True)
        c.print(f"[bold]Question:[/] {escape(obs.question)}")
        for i, a in enumerate(obs.answers):
            mark = "  <- you argue this" if i == obs.my_answer else ""
            c.print(f"  {i + 1}. {escape(a)}{mark}")
        if obs.transcript:
            c.print("[bold]Transcript so far[/]")
            self.term.transcript(obs.transcript)
        words = f" (at most {obs.max_words} words)" if obs.max_words else ""
        more = f" {n} versions, each" if n > 1 else ""
        c.print(f"Type your{more} speech{words}; end it with an empty line.")

    def _ask(self, request: Request) -> list[str]:
        with paused():  # no progress bar drawn over the prompt while the person types
            self.show(request.observation, request.n)
            texts = []
            for i in range(request.n):
                if request.n > 1:
                    self.term.console.print(f"[bold]Version {i + 1}:[/]")
                text = self.term.read_block()
                if text is None:
                    raise HumanInputClosed(
                        "stdin closed before the human player typed a speech (a human player "
                        "needs a terminal or piped input)"
                    )
                texts.append(text)
            return texts

    async def respond(self, requests: Sequence[Request]) -> list[Response]:
        out = []
        for r in requests:
            async with terminal_lock():
                start = time.perf_counter()
                texts = await asyncio.to_thread(self._ask, r)
            out.append(
                Response(
                    texts=texts,
                    tokens=sum(len(t.split()) for t in texts),
                    latency=time.perf_counter() - start,
                    meta={"human": True},
                )
            )
        return out


def human_agent(options: HumanOptions) -> Agent:
    """A person types each speech in the terminal (works with piped stdin)."""
    return HumanAgent(options)

"""The `human` judge: a person reads the transcript and picks the winner and a confidence.

The view (question, labelled options with who argued them, the speeches as the judge sees them,
verified and invalid quotes marked) is drawn with rich on stderr; the answer is read from stdin
(a pipe works): first the option label, then a confidence in percent, from 100/k (k options) to
100 (empty: `default_confidence`).
A wrong entry is asked again; end of input stops the run at once (`HumanInputClosed`, a
`StopRun`) instead of hanging or retrying. The chosen option gets the confidence, the others
share the rest. Prompts never overlap with those of human agents in the same process, and the
run's progress bar is paused while one is shown.
"""

from __future__ import annotations

import asyncio
from typing import Any

from arena_plugins.agents.human import HumanInputClosed, Terminal, terminal_lock
from pydantic import BaseModel, ConfigDict, Field

from arena_core.interfaces import Judge
from arena_core.live import paused
from arena_core.types import Decision, JudgeView


class HumanJudgeOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    default_confidence: float = Field(
        75.0, ge=0, le=100, description="percent used when the confidence is left empty"
    )


class HumanJudge(Judge):
    """A person decides; see the module docstring."""

    def __init__(self, options: HumanJudgeOptions, terminal: Terminal | None = None) -> None:
        self.opts = options
        self.term = terminal or Terminal()

    def show(self, view: JudgeView) -> None:
        from rich.markup import escape
        from rich.rule import Rule

        c = self.term.console
        c.print(Rule(f"Judge: {escape(view.protocol)}, item {escape(view.item_id)}"))
        c.print(f"[bold]Question:[/] {escape(view.question)}")
        for o in view.options:
            who = f" (argued by {escape(o.seat)})" if o.seat else ""
            c.print(f"  {escape(o.label)}: {escape(o.text)}{who}")
        if view.transcript:
            c.print("[bold]Transcript[/] (<v_quote> verified, <invalid_quote> not in the passage)")
            self.term.transcript(view.transcript)

    def _line(self, prompt: str) -> str:
        self.term.console.print(prompt, end="")
        line = self.term.readline()
        if line is None:
            raise HumanInputClosed(
                "stdin closed before the human judge answered (a human judge needs a terminal "
                "or piped input)"
            )
        return line.strip()

    def _ask(self, view: JudgeView) -> tuple[str, float]:
        with paused():  # no progress bar drawn over the prompt while the person types
            return self._ask_paused(view)

    def _ask_paused(self, view: JudgeView) -> tuple[str, float]:
        self.show(view)
        labels = [o.label.upper() for o in view.options]
        while True:
            label = self._line(f"Winner ({'/'.join(labels)}): ").upper()
            if label in labels:
                break
            self.term.console.print(f"[red]Please type one of {', '.join(labels)}.[/]")
        low = 100.0 / len(labels)  # less would make another option the likelier one
        default = max(low, self.opts.default_confidence)
        while True:
            text = self._line(f"Confidence in {label}, % [{default:g}]: ")
            try:
                conf = float(text.rstrip("%")) if text else default
            except ValueError:
                conf = -1.0
            if low <= conf <= 100:
                return label, conf / 100.0
            self.term.console.print(f"[red]Please type a number from {low:g} to 100.[/]")

    async def decide(self, view: JudgeView) -> Decision:
        async with terminal_lock():
            label, conf = await asyncio.to_thread(self._ask, view)
        labels = [o.label.upper() for o in view.options]
        k = len(labels)
        probs = (
            [conf if lab == label else (1.0 - conf) / (k - 1) for lab in labels] if k > 1 else [1.0]
        )
        meta: dict[str, Any] = {"human": True, "label": label}
        return Decision(
            probs=probs, raw=f"Answer: {label} | Confidence: {conf:.0%}", confidence=conf, meta=meta
        )


def human_judge(options: HumanJudgeOptions) -> Judge:
    """A person picks the winner and a confidence in the terminal (works with piped stdin)."""
    return HumanJudge(options)

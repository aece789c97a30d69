"""Human agent and judge: input from a stream, and from a real pipe on stdin."""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import sys
import textwrap

import pytest

from arena_core.testing import check_agent, check_judge
from arena_core.types import AnswerOption, JudgeView, Message, Observation, Request, TurnView

from arena_plugins.agents.human import (  # isort: skip
    HumanAgent,
    HumanInputClosed,
    HumanOptions,
    Terminal,
)
from arena_plugins.judges.human_judge import HumanJudge, HumanJudgeOptions  # isort: skip


def terminal(text: str) -> tuple[Terminal, io.StringIO]:
    from rich.console import Console

    screen = io.StringIO()
    return Terminal(io.StringIO(text), Console(file=screen, width=200)), screen


def request(n: int = 1) -> Request:
    obs = Observation(
        seat="A",
        phase="speech",
        question="Why did the ferry stop?",
        answers=["The harbour froze", "The captain retired"],
        my_answer=0,
        context="The harbour froze every winter.",
        transcript=[TurnView(seat="B", round=0, phase="speech", text="He [b]retired[/b].")],
        max_words=50,
    )
    return Request(messages=[Message(role="user", content="unused")], observation=obs, n=n)


def jview() -> JudgeView:
    return JudgeView(
        protocol="debate",
        question="Why did the ferry stop?",
        options=[
            AnswerOption(label="A", text="The harbour froze", index=0, seat="A"),
            AnswerOption(label="B", text="The captain retired", index=1, seat="B"),
        ],
        transcript=[TurnView(seat="A", round=0, phase="speech", text="<v_quote>Ice.</v_quote>")],
        item_id="i1",
    )


def test_human_agent_reads_a_speech_per_sample() -> None:
    term, screen = terminal("\nIt froze.\nSee the ledger.\n\nSecond version.\n")
    agent = HumanAgent(HumanOptions(), term)
    resp = asyncio.run(agent.respond([request(n=2)]))[0]
    assert resp.texts == ["It froze.\nSee the ledger.", "Second version."]
    assert resp.tokens == 7 and resp.meta == {"human": True}
    shown = screen.getvalue()
    for part in ("The harbour froze every winter.", "<- you argue this", "He [b]retired[/b]."):
        assert part in shown  # passage, side and transcript shown, markup not interpreted
    with pytest.raises(HumanInputClosed):
        asyncio.run(agent.respond([request()]))  # input is used up


def test_human_agent_conforms() -> None:
    term, _ = terminal("I argue my side.\n\n" * 100)
    check_agent(HumanAgent(HumanOptions(show_passage=False), term))


def test_human_judge_asks_again_until_the_answer_is_valid() -> None:
    term, screen = terminal("C\nb\n30\nlots\n80%\n")
    d = asyncio.run(HumanJudge(HumanJudgeOptions(), term).decide(jview()))
    assert d.probs == pytest.approx([0.2, 0.8]) and d.confidence == pytest.approx(0.8)
    assert d.raw == "Answer: B | Confidence: 80%"
    assert screen.getvalue().count("Please type") == 3
    term, _ = terminal("A\n\n")
    assert asyncio.run(HumanJudge(HumanJudgeOptions(), term).decide(jview())).probs == [0.75, 0.25]
    term, _ = terminal("A\n")
    with pytest.raises(HumanInputClosed):
        asyncio.run(HumanJudge(HumanJudgeOptions(), term).decide(jview()))


def test_human_judge_conforms() -> None:
    term, _ = terminal("A\n90\n" * 20)
    check_judge(HumanJudge(HumanJudgeOptions(), term))


def test_piped_stdin_drives_the_registered_plugins() -> None:
    code = textwrap.dedent(
        """
        import asyncio, json
        from arena_core.plugins import get_registry
        from arena_core.types import *
        reg = get_registry()
        agent = reg.build("agent", "human", {})
        judge = reg.build("judge", "human", {})
        obs = Observation(seat="A", phase="speech", question="Q?", answers=["x", "y"])
        req = Request(messages=[Message(role="user", content="m")], observation=obs)
        view = JudgeView(protocol="debate", question="Q?", item_id="i", transcript=[],
            options=[AnswerOption(label="A", text="x", index=0),
                     AnswerOption(label="B", text="y", index=1)])
        async def main():
            speech = (await agent.respond([req]))[0].text
            d = await judge.decide(view)
            print(json.dumps({"speech": speech, "probs": d.probs}))
        asyncio.run(main())
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        input="My speech.\n\nB\n60\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(out.stdout) == {"speech": "My speech.", "probs": [0.4, 0.6]}
    assert "Winner (A/B)" in out.stderr  # prompts go to stderr, stdout stays clean


class Recorder(io.StringIO):
    """A stream (or screen) that notes each read and write in a shared event list."""

    def __init__(self, events: list[str], text: str = "") -> None:
        super().__init__(text)
        self.events = events

    def readline(self, size: int | None = -1) -> str:  # type: ignore[override]
        self.events.append("read")
        return super().readline()

    def write(self, s: str) -> int:
        self.events.append("print")
        return super().write(s)


class Bar:
    """Stands for the run's progress bar: notes when it is stopped and started."""

    def __init__(self, events: list[str]) -> None:
        self.events = events

    def start(self) -> None:
        self.events.append("start")

    def stop(self) -> None:
        self.events.append("stop")


@pytest.mark.parametrize("who", ["agent", "judge"])
def test_the_progress_bar_is_paused_while_a_human_types(who: str) -> None:
    from rich.console import Console

    from arena_core.live import showing

    events: list[str] = []
    text = "My speech.\n\n" if who == "agent" else "B\n60\n"
    term = Terminal(Recorder(events, text), Console(file=Recorder(events), width=200))
    with showing(Bar(events)):
        if who == "agent":
            asyncio.run(HumanAgent(HumanOptions(), term).respond([request()]))
        else:
            asyncio.run(HumanJudge(HumanJudgeOptions(), term).decide(jview()))
    assert events[0] == "stop" and events[-1] == "start"
    assert events.count("stop") == events.count("start") == 1
    assert "read" in events and "print" in events


def test_closed_stdin_stops_the_run_at_once(write_config, ledger_url, monkeypatch, capsys) -> None:
    from arena_core.cli.main import main
    from arena_core.ledger import Ledger

    events: list[str] = []
    monkeypatch.setattr(sys, "stdin", Recorder(events, ""))
    players = '[[players]]\nname = "me"\nagent = "human"\n\n'
    players += '[[players]]\nname = "quoter"\nagent = "extractive"\n'
    path = write_config(players=players, limit=2, retries=2, concurrency=1)
    assert main(["run", str(path), "--ledger", ledger_url, "-q"]) == 2
    err = capsys.readouterr().err
    assert "run stopped: stdin closed before the human player typed a speech" in err
    assert "run the same command to resume" in err
    assert events.count("read") == 1  # not retried, and no later match asked again
    counts = Ledger(ledger_url).counts("t")
    assert counts == {"pending": 8}

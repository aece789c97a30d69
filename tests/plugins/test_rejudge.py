"""Re-judging stored debates (human debates, finished ledger matches) and replaying them."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from arena_core.config import RawConfig, resolve
from arena_core.engine import RunSummary, Tournament
from arena_core.errors import UsageError
from arena_core.ledger import Ledger
from arena_core.plugins import get_registry
from arena_core.testing import check_protocol, run_tournament
from arena_core.types import Item, Observation, Request

ROOT = Path(__file__).resolve().parents[2]
FIX = ROOT / "tests" / "fixtures" / "datasets"
DEBATES = {"plugin": "quality-debates", "options": {"path": str(FIX / "debates-readable.jsonl")}}


def play(config: dict[str, Any], url: str) -> tuple[Tournament, RunSummary, Ledger]:
    """Build a Tournament from a config dict (as `arena run` would) and play it."""
    base: dict[str, Any] = {"seed": 1, "retries": 0, "backoff": 0.0, "concurrency": 4}
    config = {**config, "tournament": {**base, **config["tournament"]}}
    registry = get_registry()
    tournament = Tournament(resolve(RawConfig.model_validate(config), registry), registry)
    ledger = Ledger(url)
    summary = asyncio.run(tournament.run(ledger))
    return tournament, summary, ledger


def human_debates() -> dict[str, Item]:
    source = get_registry().build("dataset", "quality-debates", DEBATES["options"])
    return {i.id: i for i in source.items()}


def test_rejudge_conforms() -> None:
    # The conformance items carry no transcript: judged on the question alone, as asked.
    report = check_protocol("rejudge", {"missing_transcript": "empty"})
    assert report.matches == 2 and report.turns == 0 and report.judge_calls == 2
    with pytest.raises(AssertionError, match="has no metadata\\['transcript'\\]"):
        check_protocol("rejudge")


def test_rejudge_human_debates_with_the_quote_judge(ledger_url: str) -> None:
    config = {
        "tournament": {"name": "rejudge", "protocol": "rejudge"},
        "dataset": {**DEBATES, "shuffle": False},
        "judge": {"plugin": "quote"},
    }
    tournament, summary, ledger = play(config, ledger_url)
    assert tournament.agents == {}  # nobody to call: the judge reads the stored speeches
    assert (summary.done, summary.failed) == (3, 0)
    debates = human_debates()
    for m in ledger.matches(tournament="rejudge"):
        assert m.seats == {} and m.status == "done"
        stored = [
            (e["seat"], e["round"], e["text"])
            for e in debates[m.item_id].metadata["transcript"]
            if e["seat"] != "judge"
        ]
        assert [(t.seat, t.round, t.text) for t in ledger.turns(m.id)] == stored
        verdict = ledger.verdict(m.id)
        assert verdict is not None and verdict.judge == "quote" and verdict.winner is None
    kettle = next(m for m in ledger.matches(tournament="rejudge") if m.item_id == "d-kettle-1")
    shown = [t.shown for t in ledger.turns(kettle.id)]
    assert "<v_quote>Wren lit the lamp" in shown[0]  # real quotes verified against the story
    assert "<invalid_quote>the clockwork was too loud" in shown[1]  # B's invented one is not
    v = ledger.verdict(kettle.id)
    assert v is not None and v.chosen == "A" and v.winner_seat == "A" and v.correct is True


def test_rejudge_options_judge_turns_and_max_rounds(ledger_url: str) -> None:
    config = {
        "tournament": {"name": "rejudge-opts", "protocol": "rejudge"},
        "protocol": {"judge_turns": True, "max_rounds": 1},
        "dataset": {**DEBATES, "shuffle": False, "limit": 1},
        "judge": {"plugin": "quote"},
    }
    _, summary, ledger = play(config, ledger_url)
    assert summary.done == 1
    (m,) = ledger.matches(tournament="rejudge-opts")
    turns = [(t.seat, t.round, t.phase) for t in ledger.turns(m.id)]
    assert turns == [("A", 0, "speech"), ("B", 0, "speech"), ("judge", 0, "judge")]


def test_rejudge_without_transcripts_fails_each_match_clearly(ledger_url: str) -> None:
    config = {
        "tournament": {"name": "rejudge-bundled", "protocol": "rejudge"},
        "dataset": {"plugin": "bundled", "limit": 2},
        "judge": {"plugin": "quote"},
    }
    _, summary, ledger = play(config, ledger_url)
    assert (summary.done, summary.failed) == (0, 2)
    assert all(
        "metadata['transcript']" in (m.error or "")
        for m in ledger.matches(tournament="rejudge-bundled")
    )


def test_shipped_tournaments_run_offline(monkeypatch, ledger_url: str) -> None:
    monkeypatch.chdir(ROOT)  # their dataset paths are relative to the repository root
    debate = run_tournament(Path("tournaments/quality-debate.toml"), ledger_url)
    assert debate.failed == 0 and debate.done == 60  # 5 hard questions x 3 pairs x 2 x 2
    rejudge = run_tournament(Path("tournaments/rejudge-human-debates.toml"), ledger_url)
    assert (rejudge.done, rejudge.failed) == (3, 0)


def test_rejudging_a_finished_tournament_from_the_ledger(ledger_url: str) -> None:
    players = [
        {"name": "quoter-3", "agent": "extractive", "options": {"max_quotes": 3}},
        {"name": "fabricator", "agent": "random", "options": {"fabricate": 0.5}},
    ]
    first = {
        "tournament": {"name": "crossplay-mini", "protocol": "debate"},
        "dataset": {"plugin": "bundled", "limit": 3},
        "judge": {"plugin": "quote"},
        "players": players,
    }
    _, summary, ledger = play(first, ledger_url)
    assert summary.done == 12  # 3 items x 2 sides x 2 speaking orders
    again = {
        "tournament": {"name": "crossplay-rejudged", "protocol": "rejudge"},
        "dataset": {
            "plugin": "ledger",
            "shuffle": False,
            "options": {"ledger": ledger_url, "tournament": "crossplay-mini"},
        },
        "judge": {"plugin": "quote"},
    }
    _, summary, ledger = play(again, ledger_url)
    assert (summary.done, summary.failed) == (12, 0)
    for m in ledger.matches(tournament="crossplay-rejudged"):
        original = ledger.verdict(m.item_id)  # the ledger item's id is the original match id
        redone = ledger.verdict(m.id)
        assert original is not None and redone is not None
        # The same judge, reading the same speeches with the same speakers, agrees exactly.
        assert redone.chosen == original.chosen and redone.correct == original.correct
        assert redone.probs == pytest.approx(original.probs)
        assert [t.shown for t in ledger.turns(m.id)] == [t.shown for t in ledger.turns(m.item_id)]


def test_ledger_dataset_items(ledger_url: str) -> None:
    first = {
        "tournament": {"name": "consult", "protocol": "consultancy"},
        "dataset": {"plugin": "bundled", "limit": 1},
        "judge": {"plugin": "quote"},
        "players": [{"name": "det", "agent": "deterministic"}],
    }
    play(first, ledger_url)
    source = get_registry().build("dataset", "ledger", {"ledger": ledger_url})
    got = list(source.items())
    bundled = {i.id: i for i in get_registry().build("dataset", "bundled").items()}
    assert len(got) == 2 and {i.id for i in got} == {m.id for m in Ledger(ledger_url).matches()}
    for item in got:
        # Answers in the order the judge saw them; the consultant's own comes first.
        assert len(item.answers) == 2 and item.metadata["argued"] == {"consultant": 0}
        original = bundled[item.metadata["item_id"]]
        assert item.gold is not None and item.answers[item.gold] == original.answers[original.gold]
        assert [e["seat"] for e in item.metadata["transcript"]] == ["consultant", "consultant"]
        assert item.metadata["players"] == {"consultant": "det"}
    wrong = get_registry().build("dataset", "ledger", {"ledger": ledger_url, "tournament": "nope"})
    with pytest.raises(UsageError, match="no tournament 'nope'"):
        list(wrong.items())


# --- replay ----------------------------------------------------------------------------------


def test_replay_agents_reproduce_the_human_debates_in_a_normal_debate(ledger_url: str) -> None:
    replay = {"agent": "replay", "options": {"dataset_options": DEBATES["options"]}}
    config = {
        "tournament": {"name": "replayed", "protocol": "debate"},
        "protocol": {"speeches": 2, "max_words": 400},
        "dataset": {**DEBATES, "shuffle": False},
        "judge": {"plugin": "quote"},
        "players": [{"name": "human-1", **replay}, {"name": "human-2", **replay}],
    }
    _, summary, ledger = play(config, ledger_url)
    assert (summary.done, summary.failed) == (12, 0)  # 3 debates x 2 sides x 2 orders
    debates = human_debates()
    for m in ledger.matches(tournament="replayed"):
        item = debates[m.item_id]
        recorded = {
            (e["seat"], e["round"]): e["text"]
            for e in item.metadata["transcript"]
            if e["seat"] != "judge"
        }
        by_answer = {i: s for s, i in item.metadata["argued"].items()}
        for t in ledger.turns(m.id):
            # The seat arguing answer i speaks what the human who argued answer i said.
            assert t.text == recorded[(by_answer[m.assignment[t.seat]], t.round)]


def test_replay_against_a_model_and_its_errors(ledger_url: str) -> None:
    replay = {"agent": "replay", "options": {"dataset_options": DEBATES["options"]}}
    config = {
        "tournament": {"name": "human-vs-quoter", "protocol": "debate"},
        "protocol": {"speeches": 3},
        "dataset": {**DEBATES, "shuffle": False, "limit": 1},
        "judge": {"plugin": "quote"},
        "players": [{"name": "human", **replay}, {"name": "quoter", "agent": "extractive"}],
    }
    _, summary, ledger = play(config, ledger_url)
    assert summary.failed == 4  # the humans spoke twice; a third speech does not exist
    errors = {m.error for m in ledger.matches(tournament="human-vs-quoter")}
    assert all("has no speech for round 3" in (e or "") for e in errors)
    registry = get_registry()
    agent = registry.build("agent", "replay", {"dataset_options": DEBATES["options"]})
    obs = Observation(seat="A", phase="speech", item_id="no-such-debate", answers=["x", "y"])
    with pytest.raises(LookupError, match="'no-such-debate' is not in dataset"):
        agent.speech(Request(messages=[], observation=obs))

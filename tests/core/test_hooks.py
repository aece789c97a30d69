"""One test per hook in arena_core/hookspecs.py, each through a plugin registered at run time."""

from __future__ import annotations

import json
from typing import Any

from arena_core.cli.main import main
from arena_core.hookspecs import hookimpl
from arena_core.interfaces import Agent
from arena_core.plugins import get_registry
from arena_core.registry import NoOptions, Registry
from arena_core.testing import check_agent
from arena_core.types import Response, Verdict


class ConstantAgent(Agent):
    async def respond(self, requests: Any) -> list[Response]:
        return [Response(texts=["I am sure of it."] * r.n) for r in requests]


def constant(options: NoOptions) -> Agent:
    """Says the same sentence every time."""
    return ConstantAgent()


class Registers:
    @hookimpl
    def arena_register(self, registry: Registry) -> None:
        registry.add("agent", "constant-test", constant, NoOptions)


class Recorder:
    """Keeps every lifecycle hook call, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    @hookimpl
    def arena_tournament_started(self, tournament: str, matches: int) -> None:
        self.calls.append(("started", {"tournament": tournament, "matches": matches}))

    @hookimpl
    def arena_match_finished(
        self, match: dict[str, Any], verdict: Verdict | None, error: str | None
    ) -> None:
        self.calls.append(("match", {"match": match, "verdict": verdict, "error": error}))

    @hookimpl
    def arena_tournament_finished(self, tournament: str, summary: dict[str, Any]) -> None:
        self.calls.append(("finished", {"tournament": tournament, "summary": summary}))

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [args for k, args in self.calls if k == kind]


def test_arena_register_adds_an_agent(arena_plugin, arena_tournament, capsys):
    assert "constant-test" not in get_registry().names("agent")
    arena_plugin(Registers(), name="constant-plugin")
    entry = get_registry().get("agent", "constant-test")
    assert (entry.origin, entry.summary) == (
        "constant-plugin",
        "Says the same sentence every time.",
    )
    check_agent(lambda: get_registry().build("agent", "constant-test"))
    assert main(["plugins", "--json", "--kind", "agent"]) == 0
    listed = {e["name"]: e["origin"] for e in json.loads(capsys.readouterr().out)}
    assert listed["constant-test"] == "constant-plugin"
    summary, ledger = arena_tournament(players=["constant-test", "extractive"], limit=1)
    assert summary.done == 4
    texts = {
        t.text for m in ledger.matches() for t in ledger.turns(m.id) if t.player == "constant-test"
    }
    assert texts == {"I am sure of it."}


def test_lifecycle_hooks_follow_a_run(arena_plugin, arena_tournament):
    rec = Recorder()
    arena_plugin(rec)
    summary, ledger = arena_tournament(players=["deterministic", "random"], limit=2)
    assert summary.done == 8
    assert [k for k, _ in rec.calls] == ["started"] + ["match"] * 8 + ["finished"]
    assert rec.of("started") == [{"tournament": summary.tournament, "matches": 8}]
    finished = rec.of("match")
    assert all(c["error"] is None and isinstance(c["verdict"], Verdict) for c in finished)
    assert sorted(c["match"]["id"] for c in finished) == sorted(
        m.id for m in ledger.matches(tournament=summary.tournament, status="done")
    )
    verdict = {c["match"]["id"]: c["verdict"] for c in finished}
    for m in ledger.matches(tournament=summary.tournament):
        assert ledger.verdict(m.id).winner_seat == verdict[m.id].winner
    assert rec.of("finished") == [
        {
            "tournament": summary.tournament,
            "summary": {"done": 8, "failed": 0, "interrupted": False},
        }
    ]


def test_failed_matches_reach_the_hook_with_an_error(arena_plugin, arena_tournament):
    rec = Recorder()
    arena_plugin(rec)
    players = {
        "broken": {"agent": "faulty", "options": {"fail_rate": 1.0}},
        "steady": "deterministic",
    }
    summary, ledger = arena_tournament(players=players, limit=1, tournament={"retries": 0})
    assert (summary.done, summary.failed) == (0, 4)
    failed = rec.of("match")
    assert len(failed) == 4
    for call in failed:
        assert call["verdict"] is None
        assert call["error"] is not None and call["error"].startswith("CallFailed: ")
        assert "injected failure" in call["error"]
        assert call["match"]["status"] == "running"  # the row as this run claimed it
    assert ledger.counts(summary.tournament) == {"failed": 4}
    assert rec.of("finished")[0]["summary"] == {"done": 0, "failed": 4, "interrupted": False}


def test_a_resumed_run_reports_only_what_is_left(arena_plugin, arena_tournament):
    rec = Recorder()
    arena_plugin(rec)
    first, _ = arena_tournament(players=["deterministic", "random"], limit=1)
    rec.calls.clear()
    again, _ = arena_tournament(
        players=["deterministic", "random"], limit=1, tournament={"name": first.tournament}
    )
    assert (again.scheduled, again.to_play, again.done) == (4, 0, 0)
    assert [k for k, _ in rec.calls] == ["started", "finished"]
    assert rec.of("started")[0]["matches"] == 0

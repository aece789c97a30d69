"""The fixtures of arena_core.testing.pytest_plugin, as a plugin author's suite would use them."""

from __future__ import annotations

import asyncio
import textwrap

import pytest

from arena_core.cli.main import main
from arena_core.errors import ConfigError
from arena_core.hookspecs import hookimpl
from arena_core.interfaces import Agent, Judge
from arena_core.ledger import Ledger
from arena_core.registry import NoOptions, Registry
from arena_core.testing import check_agent, check_judge, run_tournament
from arena_core.types import Decision, JudgeView, Observation, Request

pytest_plugins = ["pytester"]


def test_ledger_fixtures_give_a_fresh_sqlite_ledger(arena_ledger_url, arena_ledger, tmp_path):
    assert arena_ledger_url.startswith("sqlite:///")
    assert str(tmp_path) in arena_ledger_url
    assert arena_ledger.url == arena_ledger_url
    assert arena_ledger.tournaments() == []
    assert arena_ledger.counts("anything") == {}


def test_registry_fixture_holds_the_builtins(arena_registry):
    assert {"debate", "consultancy"} <= set(arena_registry.names("protocol"))
    assert {"quote", "random"} <= set(arena_registry.names("judge"))


def test_fake_agents_are_ready_and_conform(arena_fake_agents):
    assert set(arena_fake_agents) == {"deterministic", "random", "scripted", "extractive"}
    req = Request(
        messages=[],
        observation=Observation(
            seat="A", phase="speech", question="Q?", answers=["yes", "no"], my_answer=0
        ),
    )
    for name, agent in arena_fake_agents.items():
        assert isinstance(agent, Agent), name
        [resp] = asyncio.run(agent.respond([req]))
        assert resp.text.strip(), name
        check_agent(agent)


def test_tournament_fixture_runs_into_the_test_ledger(arena_tournament, arena_ledger):
    summary, ledger = arena_tournament()
    assert ledger is arena_ledger
    # 4 items x 2 answer assignments x 2 speaking orders of the 2 default players
    assert (summary.scheduled, summary.done, summary.failed) == (16, 16, 0)
    assert ledger.counts(summary.tournament) == {"done": 16}


def test_tournament_fixture_takes_players_options_and_sections(arena_tournament):
    summary, ledger = arena_tournament(
        players={"one": {"agent": "extractive", "options": {"max_quotes": 1}}, "two": "random"},
        protocol="debate",
        judge="random",
        limit=1,
        protocol_options={"speeches": 1},
        tournament={"name": "custom", "repetitions": 2},
    )
    assert summary.tournament == "custom"
    assert summary.done == 8  # 1 item x 2 assignments x 2 orders x 2 repetitions
    for match in ledger.matches(tournament="custom"):
        assert len(ledger.turns(match.id)) == 2
        assert ledger.verdict(match.id).judge == "random"
    # A second call gets its own tournament name, so a different config is no conflict.
    again, _ = arena_tournament(players=["deterministic", "random"], limit=1)
    assert again.tournament != "custom" and again.done == 4


def test_tournament_fixture_raises_the_cli_config_error(arena_tournament, arena_ledger):
    with pytest.raises(ConfigError, match=r"\[protocol\]: key 'speechez': unknown option"):
        arena_tournament(protocol_options={"speechez": 2})
    with pytest.raises(ConfigError, match="unknown table \\[schedul\\]"):
        arena_tournament(schedul={"kind": "round-robin"})
    assert arena_ledger.tournaments() == []  # nothing was written


class ParrotPlugin:
    """A plugin object (not a module) with one hookimpl."""

    @hookimpl
    def arena_register(self, registry: Registry) -> None:
        registry.add("agent", "parrot-test", lambda _: None, NoOptions, "Repeats things.")


def test_plugin_fixture_registers_until_the_block_ends(arena_plugin):
    from arena_core.plugins import get_registry

    with arena_plugin(ParrotPlugin(), name="parrot"):
        entry = get_registry().get("agent", "parrot-test")
        assert (entry.origin, entry.summary) == ("parrot", "Repeats things.")
    assert "parrot-test" not in get_registry().names("agent")


def test_fixtures_work_in_a_plugin_authors_suite_and_clean_up(pytester):
    """Loaded through the pytest11 entry point: no conftest, no import of the plugin module."""
    pytester.makepyfile(
        textwrap.dedent(
            """
            from arena_core.hookspecs import hookimpl
            from arena_core.plugins import get_registry
            from arena_core.registry import NoOptions


            @hookimpl
            def arena_register(registry):
                registry.add("judge", "leftover-test", lambda _: None, NoOptions)


            class Module:
                arena_register = staticmethod(arena_register)


            def test_register(arena_plugin):
                arena_plugin(Module(), name="leftover")
                assert "leftover-test" in get_registry().names("judge")


            def test_unregistered_at_teardown(arena_registry):
                assert "leftover-test" not in arena_registry.names("judge")


            def test_tournament(arena_tournament):
                summary, ledger = arena_tournament(players=["deterministic", "random"], limit=1)
                assert ledger.counts(summary.tournament) == {"done": 4}
            """
        )
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)


BAD_CONFIG = """
[tournament]
name = "bad"
protocol = "debate"

[dataset]
plugin = "bundled"

[judge]
plugin = "quote"
options = { sharpnes = 2 }

[[players]]
name = "a"
agent = "random"
"""


def test_run_tournament_raises_what_the_cli_reports(arena_ledger_url, tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text(BAD_CONFIG, encoding="utf-8")
    assert main(["run", str(path), "--ledger", arena_ledger_url, "-q"]) == 2
    cli = capsys.readouterr().err.strip().removeprefix(f"arena: error: {path}: ")
    with pytest.raises(ConfigError) as from_string:
        run_tournament(BAD_CONFIG, arena_ledger_url)
    assert (from_string.value.table, from_string.value.key) == ("judge.options", "sharpnes")
    assert str(from_string.value).endswith(cli)
    assert "did you mean 'sharpness'" in cli


def test_run_tournament_takes_a_dict(arena_ledger_url):
    config = {
        "tournament": {"name": "d", "protocol": "debate", "retries": 0},
        "protocol": {"speeches": 1, "max_words": 5},
        "dataset": {"plugin": "bundled", "limit": 1, "split": None},  # None: the default
        "judge": {"plugin": "quote", "options": {"sharpness": 2.5}},
        "players": [
            {"name": "a", "agent": "scripted", "options": {"replies": ['He said "yes" ü']}},
            {"name": "b", "agent": "deterministic"},
        ],
    }
    summary = run_tournament(config, arena_ledger_url)
    assert (summary.done, summary.failed) == (4, 0)
    ledger = Ledger(arena_ledger_url, create=False)
    try:
        texts = {t.text for m in ledger.matches() for t in ledger.turns(m.id) if t.player == "a"}
        assert texts == {'He said "yes" ü'}
        assert "sharpness = 2.5" in ledger.tournament("d").source
    finally:
        ledger.close()
    # TOML has no null, and in plugin options None may not mean "the default".
    config["protocol"]["max_words"] = None
    with pytest.raises(TypeError, match=r"'protocol\.max_words' is None"):
        run_tournament(config, arena_ledger_url)


def test_checks_run_inside_an_event_loop():
    async def in_async_test() -> None:
        check_agent("deterministic")
        with pytest.raises(AssertionError, match="not deterministic"):
            check_judge(MoodyJudge())

    asyncio.run(in_async_test())


class MoodyJudge(Judge):
    def __init__(self) -> None:
        self.calls = 0

    async def decide(self, view: JudgeView) -> Decision:
        self.calls += 1
        return Decision(probs=[float(self.calls)] + [1.0] * (len(view.options) - 1))

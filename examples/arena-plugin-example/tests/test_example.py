"""The example plugin passes Arena's conformance checks and plays a tournament end to end."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from arena_plugin_example.plugin import EchoAgent, EchoOptions, Quickfire, QuickfireOptions

from arena_core.errors import ConfigError
from arena_core.registry import Registry
from arena_core.testing import check_agent, check_protocol


def test_echo_agent_conforms() -> None:
    check_agent(lambda: EchoAgent(EchoOptions(prefix=">>")))
    check_agent("echo-example", protocol="quickfire")


def test_quickfire_conforms() -> None:
    report = check_protocol("quickfire")
    assert report.matches == 4  # two sample items, two variants each
    assert report.turns == 2 * report.matches  # exactly one speech per seat
    assert report.context_seen == {"A": True, "B": True}
    check_protocol(Quickfire(QuickfireOptions(max_words=3)))


def test_echo_options_are_checked(arena_registry: Registry) -> None:
    with pytest.raises(ConfigError, match="unknown option 'prefx'; did you mean 'prefix'"):
        arena_registry.build("agent", "echo-example", {"prefx": "x"})


def test_quickfire_tournament(arena_tournament: Callable[..., Any]) -> None:
    summary, ledger = arena_tournament(
        players={
            "loud": {"agent": "echo-example", "options": {"prefix": "LOUD"}},
            "quiet": "echo-example",
        },
        protocol="quickfire",
        limit=2,
    )
    assert (summary.done, summary.failed) == (8, 0)  # 2 items x 2 variants x 2 seat orders
    for match in ledger.matches(tournament=summary.tournament):
        turns = ledger.turns(match.id)
        assert [t.seat for t in turns] == ["A", "B"]
        loud_seat = next(s for s, p in match.seats.items() if p == "loud")
        assert next(t.text for t in turns if t.seat == loud_seat).startswith("LOUD ")
        assert ledger.verdict(match.id) is not None

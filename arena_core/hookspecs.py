"""The hooks a plugin may implement, each documented with its signature in docs/plugins.md."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from arena_core.registry import Registry
    from arena_core.types import Verdict

hookspec = pluggy.HookspecMarker("arena")
hookimpl = pluggy.HookimplMarker("arena")


@hookspec
def arena_register(registry: Registry) -> None:
    """Register protocols, agents, judges, learners and datasets with `registry.add`."""


@hookspec
def arena_tournament_started(tournament: str, matches: int) -> None:
    """Called once a run has scheduled its matches; `matches` counts those still to play."""


@hookspec
def arena_match_finished(match: dict[str, Any], verdict: Verdict | None, error: str | None) -> None:
    """Called after a match is written to the ledger; `verdict` is None when it failed."""


@hookspec
def arena_tournament_finished(tournament: str, summary: dict[str, Any]) -> None:
    """Called when a run ends (also after Ctrl-C), with the counts it reached."""

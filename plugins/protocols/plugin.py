"""Registers the built-in protocols (through the `arena` entry point, like any plugin)."""

from __future__ import annotations

from typing import Any

from arena_plugins.protocols.best_of_n import BestOfNOptions
from arena_plugins.protocols.branched import BranchedOptions
from arena_plugins.protocols.debate import ConsultancyOptions, DebateOptions
from arena_plugins.protocols.double_consultancy import DoubleConsultancyOptions
from arena_plugins.protocols.duel import DuelOptions
from arena_plugins.protocols.empty import EmptyOptions
from arena_plugins.protocols.rejudge import RejudgeOptions
from arena_plugins.protocols.self_play import SelfPlayOptions

from arena_core.hookspecs import hookimpl
from arena_core.registry import Registry


def debate(options: DebateOptions) -> Any:
    """Two debaters argue opposite answers; the judge sees speeches, never the passage."""
    from arena_plugins.protocols.debate import Debate

    return Debate(options)


def consultancy(options: ConsultancyOptions) -> Any:
    """One consultant argues an assigned (right or wrong) answer; the judge believes it or not."""
    from arena_plugins.protocols.debate import Consultancy

    return Consultancy(options)


def rejudge(options: RejudgeOptions) -> Any:
    """A stored debate (human debates, ledger matches) judged again; no players, no agents."""
    from arena_plugins.protocols.rejudge import Rejudge

    return Rejudge(options)


def double_consultancy(options: DoubleConsultancyOptions) -> Any:
    """One consultancy per answer, each consultant alone; the judge reads both together."""
    from arena_plugins.protocols.double_consultancy import DoubleConsultancy

    return DoubleConsultancy(options)


def empty(options: EmptyOptions) -> Any:
    """No debate: the judge answers from the question alone (the judge-accuracy baseline)."""
    from arena_plugins.protocols.empty import Empty

    return Empty(options)


def duel(options: DuelOptions) -> Any:
    """Red/blue arena: two players answer the same prompt; one judge or a panel scores both."""
    from arena_plugins.protocols.duel import Duel

    return Duel(options)


def self_play(options: SelfPlayOptions) -> Any:
    """One policy answers k times; a pairwise judge compares every pair (SPPO data)."""
    from arena_plugins.protocols.self_play import SelfPlay

    return SelfPlay(options)


def branched(options: BranchedOptions) -> Any:
    """Debate as a tree: alternatives sampled at speeches, every leaf judged (DPO pairs)."""
    from arena_plugins.protocols.branched import Branched

    return Branched(options)


def best_of_n(options: BestOfNOptions) -> Any:
    """Debaters speak the best of n candidates, each scored against m sampled replies."""
    from arena_plugins.protocols.best_of_n import BestOfN

    return BestOfN(options)


@hookimpl
def arena_register(registry: Registry) -> None:
    registry.add("protocol", "debate", debate, DebateOptions)
    registry.add("protocol", "consultancy", consultancy, ConsultancyOptions)
    registry.add("protocol", "rejudge", rejudge, RejudgeOptions)
    registry.add("protocol", "double-consultancy", double_consultancy, DoubleConsultancyOptions)
    registry.add("protocol", "empty", empty, EmptyOptions)
    registry.add("protocol", "duel", duel, DuelOptions)
    registry.add("protocol", "self-play", self_play, SelfPlayOptions)
    registry.add("protocol", "branched", branched, BranchedOptions)
    registry.add("protocol", "best-of-n", best_of_n, BestOfNOptions)

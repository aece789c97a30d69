"""Registers the built-in protocols (through the `arena` entry point, like any plugin)."""

from __future__ import annotations

from typing import Any

from arena_plugins.protocols.debate import ConsultancyOptions, DebateOptions

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


@hookimpl
def arena_register(registry: Registry) -> None:
    registry.add("protocol", "debate", debate, DebateOptions)
    registry.add("protocol", "consultancy", consultancy, ConsultancyOptions)

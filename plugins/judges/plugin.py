"""Registers the built-in model-free judges."""

from __future__ import annotations

from typing import Any

from arena_plugins.judges.quote import QuoteJudgeOptions
from pydantic import BaseModel

from arena_core.hookspecs import hookimpl
from arena_core.registry import NoOptions, Registry


def quote(options: QuoteJudgeOptions) -> Any:
    """Weighs verified quotes for each answer; never sees the passage."""
    from arena_plugins.judges.quote import QuoteJudge

    return QuoteJudge(options)


def random_judge(options: BaseModel) -> Any:
    """A seeded coin flip: the floor any judge must beat."""
    from arena_plugins.judges.quote import RandomJudge

    return RandomJudge(options)


@hookimpl
def arena_register(registry: Registry) -> None:
    registry.add("judge", "quote", quote, QuoteJudgeOptions)
    registry.add("judge", "random", random_judge, NoOptions)

"""Registers the built-in datasets."""

from __future__ import annotations

from typing import Any

from arena_plugins.datasets.files import BundledOptions, JsonlOptions

from arena_core.hookspecs import hookimpl
from arena_core.registry import Registry


def bundled(options: BundledOptions) -> Any:
    """48 original reading-comprehension items (passage, question, two answers, gold)."""
    from arena_plugins.datasets.files import bundled_source

    return bundled_source(options)


def jsonl(options: JsonlOptions) -> Any:
    """Any JSONL file of questions, with a field map; streamed line by line."""
    from arena_plugins.datasets.files import JsonlSource

    return JsonlSource(options)


@hookimpl
def arena_register(registry: Registry) -> None:
    registry.add("dataset", "bundled", bundled, BundledOptions)
    registry.add("dataset", "jsonl", jsonl, JsonlOptions)

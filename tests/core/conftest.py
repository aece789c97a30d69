"""Shared by the learner tests: a tiny local Llama with a small item file, and the learners."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from arena_core.plugins import get_registry

# Short items: short prompts keep DPO steps fast. (id, question, answers, context); gold is 0.
TINY_ITEMS = [
    (
        "s1",
        "Why was the lamp dark?",
        ["The oil ran out", "A storm broke it"],
        "The keeper wrote that the oil ran out at nine.",
    ),
    (
        "s2",
        "Who found the boat?",
        ["A fisher", "The mayor"],
        "A fisher found the boat at dawn near the reef.",
    ),
    (
        "s3",
        "What blocked the pass?",
        ["Deep snow", "A rockfall"],
        "Deep early snow blocked the pass for a week.",
    ),
    (
        "s4",
        "What did the ledger record?",
        ["Every ship", "Only storms"],
        "She logged every ship and every storm in a green ledger.",
    ),
]


def tiny_setup(
    factory: pytest.TempPathFactory, name: str, items: Sequence[tuple[str, str, list[str], str]]
) -> tuple[Path, Path]:
    """A tiny Llama and a JSONL of short items (short prompts keep DPO steps fast)."""
    pytest.importorskip("trl")
    from arena_plugins.agents.tiny_model import build_tiny_llama

    root = factory.mktemp(name)
    path = root / "items.jsonl"
    path.write_text(
        "".join(
            json.dumps({"id": i, "question": q, "answers": a, "gold": 0, "context": c}) + "\n"
            for i, q, a, c in items
        ),
        encoding="utf-8",
    )
    return build_tiny_llama(root / "tiny"), path


@pytest.fixture
def learners(arena_plugin: Any) -> None:
    """The built-in learners, whether or not their entry point is installed yet."""
    if ("learner", "dpo") not in get_registry().entries:
        import arena_plugins.learners.plugin as plugin

        arena_plugin(plugin, "arena-learners-test")

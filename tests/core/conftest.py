"""Shared by the learner tests: a tiny local Llama with a small item file, and the learners."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from arena_core.plugins import get_registry


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

"""Registers the built-in learners. The factories import torch, transformers and trl lazily."""

from __future__ import annotations

from typing import Any

from arena_plugins.learners.dpo import DPOOptions
from arena_plugins.learners.sppo import SPPOOptions

from arena_core.hookspecs import hookimpl
from arena_core.registry import Registry


def dpo(options: DPOOptions) -> Any:
    """TRL DPO (every trl loss type, soft-label and adaptive-margin losses), LoRA or full."""
    from arena_plugins.learners.dpo import DPOLearner

    return DPOLearner(options)


def sppo(options: SPPOOptions) -> Any:
    """SPPO: best and worst of K self-play answers regressed onto their win probabilities."""
    from arena_plugins.learners.sppo import SPPOLearner

    return SPPOLearner(options)


@hookimpl
def arena_register(registry: Registry) -> None:
    registry.add("learner", "dpo", dpo, DPOOptions)
    registry.add("learner", "sppo", sppo, SPPOOptions)

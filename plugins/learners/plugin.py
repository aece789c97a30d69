"""Registers the built-in learners. The factories import torch, transformers and trl lazily."""

from __future__ import annotations

from typing import Any

from arena_plugins.learners.apo import ApoOptions
from arena_plugins.learners.dpo import DPOOptions
from arena_plugins.learners.reward import RewardOptions

from arena_core.hookspecs import hookimpl
from arena_core.registry import Registry


def dpo(options: DPOOptions) -> Any:
    """TRL DPO (every trl loss type, soft-label and adaptive-margin losses), LoRA or full."""
    from arena_plugins.learners.dpo import DPOLearner

    return DPOLearner(options)


def reward_model(options: RewardOptions) -> Any:
    """safe-RLHF's reward model (a sequence classifier, LoRA or full); produces a judge."""
    from arena_plugins.learners.reward import RewardModelLearner

    return RewardModelLearner(options)


def cost_model(options: RewardOptions) -> Any:
    """safe-RLHF's cost model (ranking + sign terms: safe means cost <= 0); produces a judge."""
    from arena_plugins.learners.reward import CostModelLearner

    return CostModelLearner(options)


def apo(options: ApoOptions) -> Any:
    """APO (Cheng et al.): adversarial reward-model update, then rejection sampling or DPO;
    produces a player and a judge."""
    from arena_plugins.learners.apo import ApoLearner

    return ApoLearner(options)


@hookimpl
def arena_register(registry: Registry) -> None:
    registry.add("learner", "dpo", dpo, DPOOptions)
    registry.add("learner", "reward-model", reward_model, RewardOptions)
    registry.add("learner", "cost-model", cost_model, RewardOptions)
    registry.add("learner", "apo", apo, ApoOptions)

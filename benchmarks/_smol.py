"""Shared helpers of the SmolLM2 benchmarks (smol_*.py): the checkpoint, tournaments from TOML
strings kept in one ledger, and the 95% interval. Not a benchmark itself (leading underscore)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from _harness import log


def smol_dir(model: str | None, tmp: str | Path) -> Path:
    """A built SmolLM2 checkpoint: `model`, or one converted now into `tmp`."""
    if model:
        return Path(model)
    from arena_plugins.agents.smol_model import build_smollm2

    t0 = time.perf_counter()
    path = build_smollm2(Path(tmp) / "smollm2")
    log(f"built SmolLM2 in {time.perf_counter() - t0:.1f}s")
    return path


def play(toml: str, ledger: Any, tmp: str | Path) -> float:
    """Run the tournament `toml` into `ledger`; return its wall time in seconds."""
    from arena_core.config import load_config
    from arena_core.engine import Tournament
    from arena_core.plugins import get_registry

    path = Path(tmp) / f"t{time.monotonic_ns()}.toml"
    path.write_text(toml, encoding="utf-8")
    registry = get_registry()
    cfg = load_config(path, registry)
    tournament = Tournament(cfg, registry, source=toml)
    log(f"{cfg.name}: {tournament.scheduled} matches")
    t0 = time.perf_counter()
    summary = asyncio.run(tournament.run(ledger))
    wall = time.perf_counter() - t0
    log(f"{cfg.name}: {summary.done} done, {summary.failed} failed in {wall:.0f}s")
    return wall


def share(successes: int, n: int) -> dict[str, Any]:
    """A proportion with its Wilson 95% interval."""
    from arena_core.reports.stats import wilson_interval

    lo, hi = wilson_interval(successes, n)
    return {
        "k": successes,
        "n": n,
        "rate": round(successes / n, 4) if n else None,
        "ci95": [round(lo, 4), round(hi, 4)],
    }


def smol_judge(model: Path, *, max_batch: int = 8) -> str:
    """The TOML [judge] table of SmolLM2 judging by teacher-forced label probabilities."""
    return (
        '[judge]\nplugin = "llm"\n'
        f'options = {{ options = {{ model = "{model}", max_batch = {max_batch} }}, '
        "both_orders = true, stated = false }\n"
    )

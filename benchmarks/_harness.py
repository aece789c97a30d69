"""Shared helpers for the benchmarks: build a tournament from a TOML string and run it timed.

Not a benchmark itself (the leading underscore keeps run_all.sh from picking it up).
"""

from __future__ import annotations

import asyncio
import gc
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The schedule of both latency benchmarks: a debate of 2 speeches each, spoken in turn, so every
# match makes 4 calls in a row; the `random` judge makes none.
SEQUENTIAL_DEBATE = """\
[tournament]
name = "{name}"
protocol = "debate"
seed = 7
concurrency = {concurrency}
repetitions = {repetitions}
retries = 0

[protocol]
speeches = {speeches}
simultaneous = false

[dataset]
plugin = "bundled"
limit = {items}

[judge]
plugin = "random"
{players}"""

# The fake debate the scale benchmarks play (scale.py, debate_loop.py): two deterministic
# debaters, simultaneous speeches, the `random` judge, the bundled set `reps` times over.
FAKE_DEBATE = """\
[tournament]
name = "{name}"
protocol = "debate"
seed = 7
concurrency = 64
repetitions = {reps}

[protocol]
speeches = {speeches}
simultaneous = true

[dataset]
plugin = "bundled"

[judge]
plugin = "random"

[[players]]
name = "det-a"
agent = "deterministic"

[[players]]
name = "det-b"
agent = "deterministic"
options = {{ text = "No: the answer is {{answer}}." }}
"""
PER_REP = 48 * 2 * 2  # matches of FAKE_DEBATE per repetition: items x seat orders x variants

# Two fake debaters that sleep `delay` seconds per call: latency without HTTP or an SDK.
SLEEPING_PLAYERS = """
[[players]]
name = "sleep-a"
agent = "deterministic"
options = {{ delay = {delay} }}

[[players]]
name = "sleep-b"
agent = "deterministic"
options = {{ delay = {delay}, text = "No: the answer is {{answer}}." }}
"""


def log(*parts: object) -> None:
    """Progress goes to stderr: stdout carries exactly one JSON line."""
    print(*parts, file=sys.stderr, flush=True)


def machine_load() -> dict[str, Any]:
    """The load this run shared the machine with (`uptime`'s averages), printed with every
    figure: on a shared box a ratio is only comparable with one taken under similar load."""
    import os

    one, five, fifteen = os.getloadavg()
    return {"loadavg": [round(one, 2), round(five, 2), round(fifteen, 2)], "cpus": os.cpu_count()}


def compare(measure: dict[str, Callable[[], float]], runs: int, *, baseline: str) -> dict[str, Any]:
    """Run each measurement `runs` times, interleaved (a, b, a, b ...), and give every one's
    median and range, and its ratio to `baseline` taken run by run (median and range).

    Interleaving puts both sides of a ratio under the same load: a figure against a fixed
    threshold flipped from pass to fail on this shared machine with no code change.
    """
    values: dict[str, list[float]] = {k: [] for k in measure}
    for i in range(runs):
        for name, fn in measure.items():
            values[name].append(fn())
            log(f"  run {i + 1}/{runs} {name}: {values[name][-1]:.4g}")
    out: dict[str, Any] = {"runs": runs, "baseline": baseline}
    for name, vals in values.items():
        out[name] = {"median": _r(statistics.median(vals)), "range": [_r(min(vals)), _r(max(vals))]}
        if name != baseline:
            out[name]["vs_baseline"] = ratio(vals, values[baseline])
    out["values"] = values
    return out


def ratio(top: list[float], bottom: list[float]) -> dict[str, Any]:
    """top / bottom run by run (they were measured side by side): median and range."""
    rs = [t / b for t, b in zip(top, bottom, strict=True)]
    return {
        "median": round(statistics.median(rs), 3),
        "range": [round(min(rs), 3), round(max(rs), 3)],
    }


def _r(x: float) -> float:
    return float(f"{x:.4g}")


def emit(result: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(result, separators=(", ", ": ")) + "\n")
    sys.stdout.flush()


@dataclass
class Timed:
    matches: int  # matches scheduled
    seconds: float  # wall time of Tournament.run only
    done: int  # done rows in the ledger afterwards
    failed: int
    summary: Any  # the engine's RunSummary
    rated_players: int  # rows in the rating table of the pool


def run_tournament(
    toml: str, *, profile_to: str | None = None, keep_ledger: Path | None = None
) -> Timed:
    """Write `toml` to a temp dir, load it, play it into a file-backed SQLite (WAL) ledger there.

    Only `Tournament.run` is timed: imports, config loading and plugin construction are not.
    With `profile_to`, the run is also profiled with cProfile and the stats dumped to that path.
    With `keep_ledger`, the ledger is written to that file (and kept) instead of the temp dir.
    """
    from arena_core.config import load_config
    from arena_core.engine import Tournament
    from arena_core.ledger import Ledger
    from arena_core.plugins import get_registry

    with tempfile.TemporaryDirectory(prefix="arena-bench-") as tmp:
        cfg_path = Path(tmp) / "tournament.toml"
        cfg_path.write_text(toml, encoding="utf-8")
        registry = get_registry()
        cfg = load_config(cfg_path, registry)
        tournament = Tournament(cfg, registry, source=toml)
        ledger = Ledger(f"sqlite:///{keep_ledger or Path(tmp) / 'ledger.db'}")
        journal = ledger.engine.connect().exec_driver_sql("PRAGMA journal_mode").scalar()
        if str(journal).lower() != "wal":
            raise SystemExit(f"expected a WAL ledger, got journal_mode={journal}")
        scheduled = tournament.scheduled
        log(f"{cfg.name}: {scheduled} matches, concurrency {cfg.raw.tournament.concurrency}")
        profiler = None
        if profile_to:
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()
        t0 = time.perf_counter()
        summary = asyncio.run(tournament.run(ledger))
        seconds = time.perf_counter() - t0
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(profile_to)
        counts = ledger.counts(cfg.name)
        rated = len(ledger.ratings(cfg.pool))
        ledger.close()
    return Timed(
        matches=scheduled,
        seconds=seconds,
        done=counts.get("done", 0),
        failed=counts.get("failed", 0),
        summary=summary,
        rated_players=rated,
    )


def play_only(toml: str, concurrency: int | None = None) -> tuple[int, float]:
    """(matches, seconds) of playing the tournament's matches with no ledger and no ratings:
    the same engine calls (`Tournament.play_one`, `concurrency` at a time), results dropped.

    The baseline a run with ledger and ratings is measured against: their ratio is what
    persistence and rating cost on this machine, whatever its load.
    """
    from arena_core.config import load_config
    from arena_core.engine import Tournament
    from arena_core.ledger import Claimed
    from arena_core.match import CallPolicy
    from arena_core.plugins import get_registry

    with tempfile.TemporaryDirectory(prefix="arena-bench-") as tmp:
        cfg_path = Path(tmp) / "tournament.toml"
        cfg_path.write_text(toml, encoding="utf-8")
        registry = get_registry()
        cfg = load_config(cfg_path, registry)
        t = Tournament(cfg, registry, source=toml)
        raw = cfg.raw.tournament
        rows = [
            Claimed(
                id=r["id"],
                tournament=r["tournament"],
                protocol=r["protocol"],
                item_id=r["item_id"],
                item=r["item"],
                item_key=r["item_id"],
                seats=r["seats"],
                assignment=r["assignment"],
                variant=r["variant"],
                repetition=r["repetition"],
                order_key=r["order_key"],
            )
            for r in t.rows
        ]
        policy = CallPolicy(timeout=raw.timeout, retries=raw.retries, backoff=raw.backoff)
        width = concurrency or raw.concurrency

        async def play() -> None:
            queue = iter(rows)

            async def work() -> None:
                for row in queue:
                    result = await t.play_one(row, t.agents, t.judge, policy)
                    if result.status != "done":
                        raise RuntimeError(f"match {row.id} failed: {result.error}")

            await asyncio.gather(*(work() for _ in range(width)))

        gc.freeze()  # as `Tournament.run` does: the same engine, only the ledger missing
        try:
            t0 = time.perf_counter()
            asyncio.run(play())
            return len(rows), time.perf_counter() - t0
        finally:
            gc.unfreeze()


def print_profile(path: str, top: int = 25) -> None:
    """Top functions by cumulative time, to stderr."""
    import pstats

    stats = pstats.Stats(path, stream=sys.stderr)
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top)

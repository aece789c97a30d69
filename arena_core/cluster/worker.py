"""`arena worker`: play a shared ledger's pending matches, alongside any number of other workers.

A worker needs only the ledger URL: each tournament row stores the TOML it was scheduled from, so
the worker rebuilds the same tournament (same plugins, items and match ids) and plays it in claim
mode (`Tournament.run(claim=True)`): batches of matches claimed with `FOR UPDATE SKIP LOCKED`,
heartbeats while they run, claims of dead workers taken back after `--stale-after` seconds.

`run_workers` is `arena run --workers N`: schedule here, then start N local worker processes
(`python -m arena_core.cli worker`) and follow their progress in the ledger.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from arena_core.errors import UsageError

if TYPE_CHECKING:
    from arena_core.engine import RunSummary, Tournament
    from arena_core.ledger import Ledger
    from arena_core.registry import Registry


def load_tournament(ledger: Ledger, name: str, registry: Registry) -> Tournament:
    """Rebuild a scheduled tournament from the TOML stored in its ledger row.

    The identity hash must match: a worker whose plugins build a different tournament (another
    version of a plugin, a missing dataset file) would play different matches under the same ids.
    """
    from arena_core.config import load_config
    from arena_core.engine import Tournament

    row = ledger.tournament(name)
    if not row.source.strip():
        raise UsageError(
            f"tournament '{name}' has no stored config in {ledger.url}; schedule it with "
            f"`arena run FILE --ledger URL` so that workers can rebuild it"
        )
    with tempfile.TemporaryDirectory(prefix="arena-worker-") as tmp:
        # A generated file name, never one built from the tournament's name: a name stored in a
        # ledger is not trusted to be a safe path (`../x`, `/tmp/pwned`).
        path = Path(tmp) / "tournament.toml"
        path.write_text(row.source, encoding="utf-8")
        cfg = load_config(path, registry)
        tournament = Tournament(cfg, registry, source=row.source)
    if cfg.name != name or cfg.identity_hash() != row.config_hash:
        raise UsageError(
            f"tournament '{name}' rebuilds differently on this machine than it was scheduled "
            f"(plugin versions or options differ); install the same versions as the scheduler"
        )
    return tournament


def with_work(ledger: Ledger) -> list[str]:
    """Tournaments that still have pending or running matches, oldest first."""
    from arena_core.ledger import PENDING, RUNNING

    out = []
    for t in ledger.tournaments():
        counts = ledger.counts(t.name)
        if counts.get(PENDING) or counts.get(RUNNING):
            out.append(t.name)
    return out


def work(
    ledger: Ledger,
    registry: Registry,
    *,
    tournament: str | None = None,
    concurrency: int | None = None,
    forever: bool = False,
    heartbeat: float = 5.0,
    stale_after: float = 60.0,
    poll: float = 0.5,
    name: str | None = None,
    report: Callable[[RunSummary], None] | None = None,
    hook: Any = None,
) -> list[RunSummary]:
    """Play claimed matches until no tournament has work left (or forever)."""
    import asyncio

    from arena_core.engine import default_worker

    me = name or default_worker()
    if tournament is not None:
        ledger.tournament(tournament)  # a clear error for an unknown name
    summaries: list[RunSummary] = []
    while True:
        names = [tournament] if tournament else with_work(ledger)
        played = 0
        for n in names:
            t = load_tournament(ledger, n, registry)
            if concurrency is not None:
                t.config.raw.tournament.concurrency = concurrency
            summary = asyncio.run(
                t.run(
                    ledger,
                    claim=True,
                    schedule=False,
                    worker=me,
                    hook=hook,
                    heartbeat_every=heartbeat,
                    stale_after=stale_after,
                    poll=poll,
                    forever=forever and tournament is not None,
                )
            )
            summaries.append(summary)
            played += summary.done + summary.failed
            if report:
                report(summary)
        if not forever:
            return summaries
        if not played:
            time.sleep(poll)


def _die_with_parent(parent: int) -> Callable[[], None] | None:
    """A Popen `preexec_fn` that has the kernel send the child SIGTERM when this process dies.

    Without it a SIGKILLed `arena run --workers` leaves its workers playing and writing on
    their own. SIGTERM is handled like Ctrl-C by the worker, so it writes what it finished and
    releases its claims. Linux only (prctl); elsewhere workers outlive a killed parent.
    """
    if not sys.platform.startswith("linux"):
        return None

    import ctypes  # loaded here, not in the forked child: no imports between fork and exec

    libc = ctypes.CDLL(None, use_errno=True)

    def arm() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return arm


_PR_SET_PDEATHSIG = 1


def run_workers(
    tournament: Tournament,
    ledger: Ledger,
    n: int,
    *,
    retry_failed: bool = False,
    progress: Callable[[RunSummary], None] | None = None,
    extra_args: Sequence[str] = (),
    timeout: float | None = None,
) -> RunSummary:
    """`arena run --workers N`: schedule, start N local worker processes, wait for them.

    Progress and the summary come from the ledger's counts, so they include every worker.
    """
    from arena_core.engine import RunSummary
    from arena_core.ledger import DONE, FAILED, PENDING, RUNNING

    if n < 1:
        raise UsageError("--workers must be at least 1")
    if ledger.url.startswith("sqlite") and ":memory:" in ledger.url:
        raise UsageError("--workers needs a ledger file or server, not an in-memory SQLite")
    name = tournament.config.name
    summary = RunSummary(tournament=name)
    summary.scheduled = tournament.schedule(ledger)
    if retry_failed:
        ledger.reset_failed(name)
    ledger.take_back_dead(name)  # claims of a killed earlier run on this host: playable now
    before = ledger.counts(name)
    summary.to_play = before.get(PENDING, 0) + before.get(RUNNING, 0)
    cmd = [sys.executable, "-m", "arena_core.cli", "worker", "--ledger", ledger.url]
    cmd += [
        "--tournament",
        name,
        "--concurrency",
        str(tournament.config.raw.tournament.concurrency),
    ]
    cmd += ["--quiet", *extra_args]
    start = time.perf_counter()
    # stderr to files, not pipes: a chatty worker must never block on a full pipe.
    logs = [tempfile.TemporaryFile(mode="w+") for _ in range(n)]  # noqa: SIM115 (closed below)
    procs = [
        subprocess.Popen(cmd, stderr=log, preexec_fn=_die_with_parent(os.getpid())) for log in logs
    ]

    def update() -> None:
        counts = ledger.counts(name)
        summary.done = counts.get(DONE, 0) - before.get(DONE, 0)
        summary.failed = max(0, counts.get(FAILED, 0) - before.get(FAILED, 0))
        summary.wall = time.perf_counter() - start
        if progress:
            progress(summary)

    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        while any(p.poll() is None for p in procs):
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"workers still running after {timeout}s")
            update()
            time.sleep(0.2)
    except (KeyboardInterrupt, TimeoutError):
        summary.interrupted = True
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        raise
    update()
    errors = []
    for p, log in zip(procs, logs, strict=True):
        log.seek(0)
        tail = log.read().strip().splitlines()[-1:]
        log.close()
        if p.returncode > 1:
            errors.append(f"worker exited {p.returncode}: {' '.join(tail)}")
    if errors:
        raise UsageError("; ".join(errors))
    return summary

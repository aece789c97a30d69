"""The command-line flags of the beyond-one-machine commands, importable without cost.

`arena --help` must stay fast, so this module imports only argparse; the commands import their
modules (SQLAlchemy, submitit, alembic) when they run. `arena_core.cli.main` adds these parsers;
`worker_main` (what `run --workers N` starts) uses `add_worker_arguments` too.

    arena worker --ledger URL [--tournament NAME] [--forever] ...
    arena ledger merge SHARD... --into URL
    arena ledger upgrade --ledger URL
    arena slurm submit CONFIG [--ledger URL] --array N --partition P --gpus G ... [--dry-run]
    arena run CONFIG [--workers N | --executor slurm ...]
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

LEDGER_HELP = "ledger database URL (default: $ARENA_LEDGER or sqlite:///arena.db)"


def add_worker_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ledger", metavar="URL", help=LEDGER_HELP)
    p.add_argument("--tournament", help="only this tournament (default: every one with work)")
    p.add_argument("--concurrency", type=int, help="matches in flight (default: the config's)")
    p.add_argument("--forever", action="store_true", help="keep polling for new work")
    p.add_argument("--heartbeat", type=float, default=5.0, help="seconds between heartbeats")
    p.add_argument(
        "--stale-after",
        type=float,
        default=60.0,
        help="take back claims whose heartbeat is older than this many seconds (default 60)",
    )
    p.add_argument("--poll", type=float, default=0.5, help="seconds between polls when idle")
    p.add_argument("--name", help="worker name in the ledger (default: host:pid)")
    p.add_argument(
        "-q", "--quiet", action="store_true", help="no progress: no line per tournament worked"
    )


def add_slurm_arguments(p: argparse.ArgumentParser) -> None:
    """Flags of `arena slurm submit` and `arena run --executor slurm` (override [slurm])."""
    g = p.add_argument_group("SLURM (submitit)")
    g.add_argument("--slurm-config", metavar="FILE", help="TOML file with a [slurm] table")
    g.add_argument("--array", type=int, help="array tasks: shards, or workers on Postgres")
    g.add_argument("--parallelism", type=int, help="array tasks running at once")
    g.add_argument("--partition")
    g.add_argument("--account")
    g.add_argument("--qos")
    g.add_argument("--gpus", type=int, help="GPUs per task")
    g.add_argument("--cpus", type=int, help="CPUs per task")
    g.add_argument("--mem-gb", type=float, help="memory per task")
    g.add_argument("--time", type=int, help="minutes per task; then it is requeued")
    g.add_argument("--singularity-image", metavar="SIF", help="run in `singularity exec --nv SIF`")
    g.add_argument("--folder", help="submitit job folder, on a shared filesystem (default: slurm)")
    g.add_argument("--shards", help="shard folder when no Postgres ledger (default: shards)")
    g.add_argument("--dry-run", action="store_true", help="print the sbatch script only")


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    """What `arena run` gains: local worker processes, or a SLURM submission."""
    p.add_argument(
        "--workers", type=int, metavar="N", help="play with N local worker processes (claims)"
    )
    p.add_argument(
        "--executor",
        choices=["local", "slurm"],
        default="local",
        help="slurm: submit the tournament as a SLURM job array (submitit)",
    )
    add_slurm_arguments(p)


def add_commands(sub: Any) -> None:
    """`arena worker`, `arena ledger merge|upgrade`, `arena slurm submit` on a subparsers object."""
    p = sub.add_parser("worker", help="play a shared ledger's pending matches (many at once)")
    add_worker_arguments(p)

    p = sub.add_parser("ledger", help="ledger maintenance: merge shards, upgrade the schema")
    lsub = p.add_subparsers(dest="ledger_command", metavar="ACTION", required=True)
    m = lsub.add_parser("merge", help="fold SQLite shards into one ledger (idempotent)")
    m.add_argument("shards", nargs="+", metavar="SHARD", help="shard files or ledger URLs")
    m.add_argument("--into", required=True, metavar="URL", help="the ledger to merge into")
    u = lsub.add_parser("upgrade", help="migrate a ledger to this version's schema (alembic)")
    u.add_argument("--ledger", metavar="URL", help=LEDGER_HELP)

    p = sub.add_parser("slurm", help="run a tournament on a SLURM cluster (submitit)")
    ssub = p.add_subparsers(dest="slurm_command", metavar="ACTION", required=True)
    s = ssub.add_parser("submit", help="submit a tournament as a job array")
    s.add_argument("config", help="tournament TOML file")
    s.add_argument(
        "--ledger", metavar="URL", help="a Postgres ledger the nodes reach (else: SQLite shards)"
    )
    add_slurm_arguments(s)


def ledger_command(args: argparse.Namespace) -> int:
    if args.ledger_command == "merge":
        return ledger_merge_command(args)
    return ledger_upgrade_command(args)


def slurm_command(args: argparse.Namespace) -> int:
    return slurm_submit_command(args)


def ledger_merge_command(args: argparse.Namespace) -> int:
    """`arena ledger merge SHARD... --into URL`."""
    from arena_core.cluster.merge import merge

    report = merge(args.shards, args.into)
    print(
        f"merged {report.shards} shard(s), {report.matches} match(es) into {args.into}: "
        f"{report.added} new, {report.finished} done written, {report.failed} failed recorded, "
        f"{report.unchanged} unchanged"
        + (f"; ratings replayed for pool(s) {', '.join(report.pools)}" if report.pools else "")
    )
    if report.conflicts:
        print(
            f"warning: {len(report.conflicts)} match(es) done in both with different winners "
            f"(kept the target's): {', '.join(m[:12] for m in report.conflicts[:5])}"
        )
    return 0


def ledger_upgrade_command(args: Any) -> int:
    """`arena ledger upgrade --ledger URL`."""
    from arena_core.ledger import resolve_url
    from arena_core.ledger.migrations import upgrade

    url = resolve_url(getattr(args, "ledger", None))
    before, after = upgrade(url)
    if before == after:
        print(f"ledger {url} is at {after}: nothing to do")
    else:
        print(f"ledger {url}: {before or 'empty'} -> {after}")
    return 0


def slurm_submit_command(args: argparse.Namespace) -> int:
    """`arena slurm submit CONFIG …` and `arena run CONFIG --executor slurm …`."""
    from arena_core.cluster.slurm import FLAGS, slurm_options, submit

    overrides = {k: getattr(args, k, None) for k in FLAGS}
    opts = slurm_options(args.config, getattr(args, "slurm_config", None), overrides)
    sub = submit(args.config, getattr(args, "ledger", None), opts=opts, dry_run=args.dry_run)
    if sub.script is not None:
        print(sub.script)
        where = f"shards in {sub.shards}" if sub.mode == "shard" else "workers on the ledger"
        print(f"# dry run: {len(sub.tasks)} array task(s), {where}; nothing submitted")
        return 0
    print(f"submitted {len(sub.jobs)} array task(s): {', '.join(sub.job_ids)}")
    if sub.mode == "shard":
        print(
            f"when they are done: arena ledger merge {sub.shards}/shard-*.db --into "
            f"{getattr(args, 'ledger', None) or 'sqlite:///arena.db'}"
        )
    return 0


def worker_command(args: argparse.Namespace) -> int:
    """`arena worker`: exit 0, or 1 when this worker wrote failed matches."""
    from arena_core.cluster.worker import work
    from arena_core.engine import RunSummary, default_worker
    from arena_core.errors import UsageError
    from arena_core.ledger import Ledger
    from arena_core.plugins import get_plugin_manager, get_registry

    if args.concurrency is not None and args.concurrency < 1:
        raise UsageError("--concurrency must be at least 1")
    if args.stale_after <= args.heartbeat:
        raise UsageError("--stale-after must be longer than --heartbeat")
    me = args.name or default_worker()

    def report(s: RunSummary) -> None:
        if not args.quiet:
            lost = f", {s.lost} lost to take-back" if s.lost else ""
            lat = sorted(s.claim_latencies)
            claims = (
                f"; {len(lat)} claims, p50 {1000 * lat[len(lat) // 2]:.2f} ms, "
                f"p95 {1000 * lat[int(0.95 * (len(lat) - 1))]:.2f} ms"
                if lat
                else ""
            )
            print(
                f"worker {me}: {s.tournament}: {s.done} done, {s.failed} failed{lost} "
                f"in {s.wall:.2f}s{claims}",
                flush=True,
            )

    summaries = work(
        Ledger(args.ledger, create=False),
        get_registry(),
        tournament=args.tournament,
        concurrency=args.concurrency,
        forever=args.forever,
        heartbeat=args.heartbeat,
        stale_after=args.stale_after,
        poll=args.poll,
        name=me,
        report=report,
        hook=get_plugin_manager().hook,  # plugins observe a worker's matches as a run's
    )
    if not summaries and not args.quiet:
        print(f"worker {me}: no tournament in the ledger has pending matches", flush=True)
    return 1 if any(s.failed for s in summaries) else 0


def worker_main(argv: Sequence[str] | None = None) -> int:
    """`arena worker …` on its own parser: what `run --workers N` starts in each process."""
    import sys

    from arena_core.cli.cluster import add_worker_arguments
    from arena_core.errors import UsageError

    parser = argparse.ArgumentParser(prog="arena worker", description=__doc__.split("\n\n")[0])
    add_worker_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return worker_command(args)
    except UsageError as exc:
        print(f"arena: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("arena: interrupted", file=sys.stderr)
        return 130

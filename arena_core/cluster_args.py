"""The command-line flags of the beyond-one-machine commands, importable without cost.

`arena --help` must stay fast, so this module imports only argparse; the commands import their
modules (SQLAlchemy, submitit, alembic) when they run. `arena_core.cli` adds these parsers;
`python -m arena_core.worker` uses `add_worker_arguments` too.

    arena worker --ledger URL [--tournament NAME] [--forever] ...
    arena ledger merge SHARD... --into URL
    arena ledger upgrade --ledger URL
    arena slurm submit CONFIG [--ledger URL] --array N --partition P --gpus G ... [--dry-run]
    arena run CONFIG [--workers N | --executor slurm ...]
"""

from __future__ import annotations

import argparse
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
    p.add_argument("-q", "--quiet", action="store_true", help="no summary line")


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


def worker_command(args: argparse.Namespace) -> int:
    from arena_core.worker import worker_command as run

    return run(args)


def ledger_command(args: argparse.Namespace) -> int:
    if args.ledger_command == "merge":
        from arena_core.merge import ledger_merge_command

        return ledger_merge_command(args)
    from arena_core.migrations import ledger_upgrade_command

    return ledger_upgrade_command(args)


def slurm_command(args: argparse.Namespace) -> int:
    from arena_core.slurm import slurm_submit_command

    return slurm_submit_command(args)

"""SLURM through submitit: a tournament as a job array, optionally inside a Singularity image.

Two modes, picked by the ledger:

- a Postgres ledger reachable from the compute nodes: the tournament is scheduled into it at
  submit time and every array task runs an `arena worker` on it (claims, heartbeats, take-back);
- anything else (no database on the cluster): array task `i` of `N` plays the matches whose
  `order_key % N == i` into its own SQLite shard `shard-{i}.db`; `arena ledger merge` folds the
  shards into one ledger afterwards. A shard is played on node-local disk ($SLURM_TMPDIR or
  $TMPDIR) and published to the shard folder by an atomic copy, so no SQLite file is ever
  written through a network filesystem by two nodes.

Tasks are `submitit.helpers.Checkpointable`: on timeout or preemption submitit calls
`checkpoint`, which publishes the shard, and requeues the task; the requeued task finds the
finished matches in its shard (or in the shared ledger) and plays only the rest.

`--dry-run` renders the sbatch script with submitit's own renderer without submitting.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import sqlite3
import sys
import tempfile
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import submitit
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from arena_core.errors import ConfigError, UsageError


class SlurmOptions(BaseModel):
    """The `[slurm]` table (of `--slurm-config FILE`, or of the tournament file) and its flags."""

    model_config = ConfigDict(extra="forbid")

    array: int = Field(1, ge=1, description="array tasks (shards, or workers on Postgres)")
    parallelism: int | None = Field(None, ge=1, description="array tasks running at once")
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    gpus: int = Field(0, ge=0, description="GPUs per task")
    cpus: int | None = Field(None, ge=1, description="CPUs per task")
    mem_gb: float | None = Field(None, gt=0)
    time: int = Field(60, ge=1, description="minutes per task before it is requeued")
    max_requeue: int = Field(3, ge=0, description="requeues after a timeout (preemption: any)")
    singularity_image: str | None = Field(None, description="run python inside this image")
    singularity_args: str = Field("--nv", description="extra `singularity exec` options")
    setup: list[str] = Field(default_factory=list, description="shell lines before the task")
    folder: str = Field("slurm", description="submitit's job folder (on a shared filesystem)")
    shards: str = Field("shards", description="where the SQLite shards are published")
    stage: bool = Field(True, description="play shards on node-local disk, then publish")
    concurrency: int | None = Field(None, ge=1, description="override [tournament] concurrency")
    job_name: str = "arena"


FLAGS = (
    "array",
    "parallelism",
    "partition",
    "account",
    "qos",
    "gpus",
    "cpus",
    "mem_gb",
    "time",
    "singularity_image",
    "folder",
    "shards",
    "concurrency",
)


def python_command(opts: SlurmOptions) -> str:
    """The interpreter submitit runs the task with: the image's python under `singularity exec`."""
    if opts.singularity_image:
        image = shlex.quote(opts.singularity_image)
        return " ".join(
            ["singularity", "exec", *shlex.split(opts.singularity_args), image, "python"]
        )
    return shlex.quote(sys.executable)


def slurm_options(
    config_path: str | None = None,
    slurm_config: str | None = None,
    overrides: dict[str, Any] | None = None,
) -> SlurmOptions:
    """Options from the tournament file's `[slurm]` table, then `slurm_config`, then flags."""
    data: dict[str, Any] = {}
    for path in (config_path, slurm_config):
        if path:
            try:
                table = tomllib.loads(Path(path).read_text(encoding="utf-8")).get("slurm", {})
            except (OSError, tomllib.TOMLDecodeError) as exc:
                raise UsageError(f"{path}: cannot read [slurm]: {exc}") from None
            data.update(table)
    data.update({k: v for k, v in (overrides or {}).items() if v is not None})
    try:
        return SlurmOptions.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        file = slurm_config or config_path
        raise ConfigError(err["msg"], file=file, table="slurm", key=key) from None


# --- what runs on the node ---------------------------------------------------------------------


def _copy_sqlite(src: Path, dst: Path) -> None:
    """A consistent copy (WAL included) written next to `dst`, then renamed over it."""
    tmp = dst.with_name(dst.name + ".tmp")
    tmp.unlink(missing_ok=True)
    with sqlite3.connect(src) as a, sqlite3.connect(tmp) as b:
        a.backup(b)
        b.execute("PRAGMA journal_mode=DELETE")  # no -wal/-shm beside the published file
    b.close()
    a.close()
    os.replace(tmp, dst)


def local_dir() -> Path:
    return Path(os.environ.get("SLURM_TMPDIR") or os.environ.get("TMPDIR") or tempfile.gettempdir())


def play_shard(
    source: str,
    shard: Path,
    index: int,
    count: int,
    *,
    concurrency: int | None = None,
    stage: Path | None = None,
) -> dict[str, Any]:
    """Play slice `index` of `count` of the tournament in `source` (TOML text) into `shard`.

    With `stage`, the ledger is played at `stage` (node-local) and copied to `shard` at the end;
    an existing `shard` (a previous attempt's) is copied in first, so finished matches are kept.
    """
    from arena_core.config import load_config
    from arena_core.engine import Tournament
    from arena_core.ledger import Ledger
    from arena_core.plugins import get_registry

    registry = get_registry()
    with tempfile.TemporaryDirectory(prefix="arena-shard-") as tmp:
        path = Path(tmp) / "tournament.toml"
        path.write_text(source, encoding="utf-8")
        cfg = load_config(path, registry)
    if concurrency:
        cfg.raw.tournament.concurrency = concurrency
    t = Tournament(cfg, registry, source=source)
    t.take_slice(index, count)  # streamed: a task never lists the schedule
    shard.parent.mkdir(parents=True, exist_ok=True)
    where = shard
    if stage is not None:
        stage.mkdir(parents=True, exist_ok=True)
        where = stage / shard.name
        for suffix in ("", "-wal", "-shm"):
            Path(str(where) + suffix).unlink(missing_ok=True)
        if shard.exists():
            _copy_sqlite(shard, where)
    ledger = Ledger(f"sqlite:///{where}")
    try:
        summary = asyncio.run(t.run(ledger, claim=False))
        counts = ledger.counts(cfg.name)
    finally:
        ledger.close()
        if stage is not None and where.exists():
            _copy_sqlite(where, shard)
    return {
        "mode": "shard",
        "shard": str(shard),
        "index": index,
        "count": count,
        "slice": t.scheduled,
        "played": summary.done + summary.failed,
        "done": counts.get("done", 0),
        "failed": counts.get("failed", 0),
    }


class ArenaTask(submitit.helpers.Checkpointable):
    """One array task. Picklable (strings and numbers only) so submitit can requeue it as is."""

    def __init__(
        self,
        source: str,
        index: int,
        count: int,
        *,
        ledger: str | None = None,
        tournament: str | None = None,
        shards: str | None = None,
        stage: bool = True,
        concurrency: int | None = None,
    ) -> None:
        self.source = source
        self.index = index
        self.count = count
        self.ledger = ledger
        self.tournament = tournament
        self.shards = shards
        self.stage = stage
        self.concurrency = concurrency
        self.attempt = 0

    @property
    def shard(self) -> Path:
        return Path(self.shards or "shards") / f"shard-{self.index}.db"

    def _stage_dir(self) -> Path:
        return local_dir() / f"arena-{os.environ.get('SLURM_JOB_ID', os.getpid())}"

    def __call__(self) -> dict[str, Any]:
        self.attempt += 1
        if self.ledger is not None:
            from arena_core.cluster.worker import work
            from arena_core.ledger import Ledger
            from arena_core.plugins import get_registry

            summaries = work(
                Ledger(self.ledger, create=False),
                get_registry(),
                tournament=self.tournament,
                concurrency=self.concurrency,
            )
            return {
                "mode": "worker",
                "index": self.index,
                "attempt": self.attempt,
                "done": sum(s.done for s in summaries),
                "failed": sum(s.failed for s in summaries),
            }
        out = play_shard(
            self.source,
            self.shard,
            self.index,
            self.count,
            concurrency=self.concurrency,
            stage=self._stage_dir() if self.stage else None,
        )
        return {**out, "attempt": self.attempt}

    def checkpoint(self, *args: Any, **kwargs: Any) -> submitit.helpers.DelayedSubmission:
        """Timeout or preemption: publish what the staged shard holds, then requeue as is."""
        staged = self._stage_dir() / self.shard.name
        if self.ledger is None and self.stage and staged.exists():
            with contextlib.suppress(sqlite3.Error):  # the requeued task replays the rest
                _copy_sqlite(staged, self.shard)
        return submitit.helpers.DelayedSubmission(self, *args, **kwargs)


# --- submitting --------------------------------------------------------------------------------


@dataclass
class Submission:
    mode: str  # "worker" (shared Postgres ledger) or "shard"
    tasks: list[ArenaTask]
    script: str | None = None  # the sbatch script, for a dry run
    jobs: list[Any] = field(default_factory=list)  # submitit jobs
    shards: str | None = None

    @property
    def job_ids(self) -> list[str]:
        return [j.job_id for j in self.jobs]


def render_sbatch(opts: SlurmOptions) -> str:
    """The sbatch script submitit writes for this array (its own renderer, nothing submitted)."""
    from submitit.slurm.slurm import _make_sbatch_string

    folder = Path(opts.folder).resolve()
    command = f"{python_command(opts)} -u -m submitit.core._submit {shlex.quote(str(folder))}"
    return _make_sbatch_string(
        command=command,
        folder=folder,
        **_sbatch_parameters(opts),
        map_count=opts.array,
    )


def _sbatch_parameters(opts: SlurmOptions) -> dict[str, Any]:
    """SlurmExecutor parameter names (the `_make_sbatch_string` arguments)."""
    params: dict[str, Any] = {
        "job_name": opts.job_name,
        "time": opts.time,
        "array_parallelism": opts.parallelism or opts.array,
        "partition": opts.partition,
        "account": opts.account,
        "qos": opts.qos,
        "gpus_per_node": opts.gpus or None,
        "cpus_per_task": opts.cpus,
        "mem": f"{int(opts.mem_gb * 1024)}MB" if opts.mem_gb else None,
        "setup": opts.setup or None,
    }
    return {k: v for k, v in params.items() if v is not None}


def submit(
    config_path: str,
    ledger: str | None = None,
    *,
    opts: SlurmOptions | None = None,
    dry_run: bool = True,
    cluster: str | None = "slurm",
    executor: submitit.Executor | None = None,
) -> Submission:
    """Validate the tournament, then submit it as a job array (or render the script).

    `cluster="local"` runs the same tasks through submitit's local executor (tests, a laptop);
    `executor` submits through one the caller configured (its parameters are left alone).
    """
    from arena_core.config import load_config
    from arena_core.engine import Tournament
    from arena_core.ledger import Ledger, resolve_url
    from arena_core.plugins import get_registry

    opts = opts or SlurmOptions()
    source = Path(config_path).read_text(encoding="utf-8")
    registry = get_registry()
    cfg = load_config(config_path, registry)  # a bad config fails here, not on the cluster
    shared = ledger is not None and not resolve_url(ledger).startswith("sqlite")
    if shared:
        assert ledger is not None
        if not dry_run:  # workers rebuild the tournament from the ledger: schedule it now
            Tournament(cfg, registry, source=source).schedule(Ledger(ledger))
        tasks = [
            ArenaTask(
                source,
                i,
                opts.array,
                ledger=ledger,
                tournament=cfg.name,
                concurrency=opts.concurrency,
            )
            for i in range(opts.array)
        ]
        sub = Submission(mode="worker", tasks=tasks)
    else:
        shards = str(Path(opts.shards).resolve())
        tasks = [
            ArenaTask(
                source,
                i,
                opts.array,
                shards=shards,
                stage=opts.stage,
                concurrency=opts.concurrency,
            )
            for i in range(opts.array)
        ]
        sub = Submission(mode="shard", tasks=tasks, shards=shards)
    if dry_run:
        sub.script = render_sbatch(opts)
        return sub
    if executor is not None:
        sub.jobs = executor.submit_array(tasks)
        return sub
    executor = submitit.AutoExecutor(
        folder=opts.folder,
        cluster=cluster,
        slurm_python=python_command(opts),
        slurm_max_num_timeout=opts.max_requeue,
    )
    executor.update_parameters(
        name=opts.job_name,
        timeout_min=opts.time,
        gpus_per_node=opts.gpus,
        **({"cpus_per_task": opts.cpus} if opts.cpus else {}),
        **({"mem_gb": opts.mem_gb} if opts.mem_gb else {}),
        slurm_array_parallelism=opts.parallelism or opts.array,
        **{
            f"slurm_{k}": v
            for k, v in {
                "partition": opts.partition,
                "account": opts.account,
                "qos": opts.qos,
                "setup": opts.setup or None,
            }.items()
            if v is not None
        },
    )
    sub.jobs = executor.submit_array(tasks)
    return sub

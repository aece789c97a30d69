"""SLURM through submitit (local executor and a rendered sbatch script), the Singularity
definition, and the accelerate configs for multi-GPU learners."""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shlex
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import submitit
from submitit.local.local import LocalJobEnvironment

from arena_core.cli.cluster import slurm_submit_command
from arena_core.cluster.merge import merge
from arena_core.cluster.slurm import (
    ArenaTask,
    SlurmOptions,
    play_shard,
    python_command,
    render_sbatch,
    slurm_options,
    submit,
)
from arena_core.errors import ConfigError
from arena_core.ledger import DONE, Ledger
from tests.core.test_engine import snapshot, turns_per_match

ROOT = Path(__file__).resolve().parents[2]

SLOW_PAIR = """
[[players]]
name = "a"
agent = "deterministic"
options = {{ delay = {delay} }}

[[players]]
name = "b"
agent = "deterministic"
options = {{ text = "No: {{answer}}.", delay = {delay} }}
"""


def namespace(config: Path, **kw: object) -> argparse.Namespace:
    keys = (
        "ledger array parallelism partition account qos gpus cpus mem_gb time "
        "singularity_image folder shards concurrency slurm_config"
    ).split()
    values: dict[str, object] = dict.fromkeys(keys)
    values.update(config=str(config), dry_run=True)
    values.update(kw)
    return argparse.Namespace(**values)


def test_dry_run_renders_the_sbatch_script(write_config, tmp_path, capsys) -> None:
    args = namespace(
        write_config(),
        array=4,
        partition="gpu",
        gpus=2,
        time=30,
        account="proj-x",
        singularity_image="/images/arena.sif",
        folder=str(tmp_path / "jobs"),
        shards=str(tmp_path / "shards"),
    )
    assert slurm_submit_command(args) == 0
    out = capsys.readouterr().out
    assert out.startswith("#!/bin/bash")
    for line in (
        "#SBATCH --array=0-3%4",
        "#SBATCH --partition=gpu",
        "#SBATCH --gpus-per-node=2",
        "#SBATCH --time=30",
        "#SBATCH --account=proj-x",
        "#SBATCH --signal=USR2@90",  # submitit's warning before the time limit: checkpoint
    ):
        assert line in out
    jobs = tmp_path / "jobs"
    cmd = f"singularity exec --nv /images/arena.sif python -u -m submitit.core._submit {jobs}"
    assert cmd in out
    assert "4 array task(s), shards in" in out and "nothing submitted" in out
    assert not (tmp_path / "jobs").exists()  # a dry run writes nothing


def test_options_come_from_a_slurm_table_then_flags(tmp_path) -> None:
    cluster = tmp_path / "cluster.toml"
    cluster.write_text('[slurm]\npartition = "a100"\ngpus = 1\nsetup = ["module load cuda"]\n')
    opts = slurm_options(None, str(cluster), {"gpus": 4, "array": None})
    assert (opts.partition, opts.gpus, opts.array, opts.setup) == (
        "a100",
        4,
        1,
        ["module load cuda"],
    )
    assert "module load cuda" in render_sbatch(opts)
    assert python_command(SlurmOptions()) == shlex.quote(sys.executable)
    cluster.write_text("[slurm]\ngpu = 1\n")
    with pytest.raises(ConfigError, match="slurm"):
        slurm_options(None, str(cluster), {})


def test_local_executor_runs_the_array_and_shards_merge(write_config, tmp_path) -> None:
    """submitit's local executor runs the same pickled tasks as SLURM would; 3 shards merge
    into exactly the ledger a single run makes."""
    path = write_config()
    whole = f"sqlite:///{tmp_path / 'whole.db'}"
    play_shard(path.read_text(), tmp_path / "whole.db", 0, 1)
    opts = SlurmOptions(array=3, folder=str(tmp_path / "jobs"), shards=str(tmp_path / "shards"))
    sub = submit(str(path), None, opts=opts, dry_run=False, cluster="local")
    results = [job.result() for job in sub.jobs]
    assert sorted(r["index"] for r in results) == [0, 1, 2]
    assert sum(r["slice"] for r in results) == 48 and all(r["done"] == r["slice"] for r in results)
    shards = sorted((tmp_path / "shards").glob("shard-*.db"))
    assert [s.name for s in shards] == ["shard-0.db", "shard-1.db", "shard-2.db"]
    assert not list((tmp_path / "shards").glob("*-wal"))  # published as plain files
    into = f"sqlite:///{tmp_path / 'merged.db'}"
    merge([str(s) for s in shards], into)
    assert snapshot(into)["matches"] == snapshot(whole)["matches"]


def _staged_progress(node: Path) -> tuple[int, int] | None:
    """(task pid, matches done) of the task playing into a staged shard under `node`, if any."""
    for staged in node.glob("arena-*/shard-0.db"):
        try:
            with contextlib.closing(sqlite3.connect(f"file:{staged}?mode=ro", uri=True)) as db:
                (done,) = db.execute("SELECT count(*) FROM match WHERE status = 'done'").fetchone()
        except sqlite3.Error:  # not created or not migrated yet
            continue
        return int(staged.parent.name.removeprefix("arena-")), done
    return None


def test_requeue_after_timeout_resumes_without_replaying(
    write_config, tmp_path, monkeypatch
) -> None:
    """The task gets submitit's timeout signal mid-run: it checkpoints (publishes its shard) and
    is requeued; the next attempt plays only what is missing.

    Driven by events, not by the clock: submitit's own timer is far off, and the test sends the
    timeout signal (USR2) itself once the task has finished some matches, read from its staged
    shard. A loaded machine only makes it slower, never wrong.
    """
    node = tmp_path / "node"  # the tasks' TMPDIR: the staged shard lands in arena-<pid>/
    node.mkdir()
    monkeypatch.setenv("TMPDIR", str(node))
    path = write_config(players=SLOW_PAIR.format(delay=0.2), judge="random", limit=3, concurrency=1)
    executor = submitit.LocalExecutor(str(tmp_path / "jobs"), max_num_timeout=3)
    executor.update_parameters(timeout_min=30, signal_delay_s=60)  # the test signals, not a timer
    opts = SlurmOptions(array=1, shards=str(tmp_path / "shards"))
    sub = submit(str(path), None, opts=opts, dry_run=False, executor=executor)
    [job] = sub.jobs
    deadline = time.monotonic() + 300  # a hang guard only: the test waits on progress
    progress = _staged_progress(node)
    while (progress is None or progress[1] < 2) and not job.done():
        assert time.monotonic() < deadline, "the task made no progress"
        time.sleep(0.05)
        progress = _staged_progress(node)
    assert progress is not None and progress[1] < 12, progress  # 10+ matches (8 s) were left
    os.kill(progress[0], LocalJobEnvironment._usr_sig())
    result = job.result()
    assert result["attempt"] == 2, result  # requeued once
    assert progress[1] <= 12 - result["played"] < 12  # the second attempt resumed
    shard = f"sqlite:///{tmp_path / 'shards' / 'shard-0.db'}"
    assert Ledger(shard, create=False).counts("t") == {DONE: 12}
    assert set(turns_per_match(shard).values()) == {4}  # nothing played twice was written twice
    assert "Requeued" in (job.stdout() or "") + (job.stderr() or "")


def test_task_checkpoint_resubmits_itself() -> None:
    task = ArenaTask("[tournament]", 2, 4, shards="/nowhere", stage=False)
    delayed = task.checkpoint()
    assert isinstance(delayed, submitit.helpers.DelayedSubmission)
    assert delayed.function is task and task.shard == Path("/nowhere/shard-2.db")


# --- Singularity -----------------------------------------------------------------------------

SECTIONS = {
    "setup",
    "files",
    "environment",
    "post",
    "runscript",
    "startscript",
    "test",
    "labels",
    "help",
    "arguments",
}


def sections(text: str) -> tuple[dict[str, str], dict[str, str]]:
    header: dict[str, str] = {}
    body: dict[str, list[str]] = {}
    current: str | None = None
    for line in text.splitlines():
        m = re.match(r"^%(\w+)\s*$", line)
        if m:
            current = m.group(1)
            assert current in SECTIONS, f"unknown section %{current}"
            assert current not in body, f"section %{current} twice"
            body[current] = []
        elif current is None:
            if line.strip() and not line.lstrip().startswith("#"):
                key, sep, value = line.partition(":")
                assert sep, f"header line without 'Key: value': {line!r}"
                header[key.strip()] = value.strip()
        else:
            body[current].append(line)
    return header, {k: "\n".join(v) for k, v in body.items()}


def test_singularity_definition_is_well_formed() -> None:
    """What `apptainer build` would parse first; the real build needs apptainer/singularity
    (not installable here), so the script sections are at least checked by `bash -n`."""
    header, body = sections((ROOT / "Singularity.def").read_text())
    assert header["Bootstrap"] == "docker" and header["From"].startswith("nvidia/cuda:")
    assert "cudnn" in header["From"]
    assert {"files", "post", "environment", "runscript", "test"} <= set(body)
    assert "exec arena" in body["runscript"]
    assert 'pip install --no-cache-dir "/opt/arena[hf,api,postgres,slurm,vllm]"' in body["post"]
    assert re.search(r"pip install .*\btorch\b", body["post"])
    assert "flash-attn" in body["post"]
    for name in ("post", "environment", "runscript", "test"):
        res = subprocess.run(["bash", "-n"], input=body[name], text=True, capture_output=True)
        assert res.returncode == 0, f"%{name}: {res.stderr}"
    for line in body["files"].splitlines():
        if line.strip():
            src = line.split()[0]
            assert (ROOT / src).exists(), f"%files: {src} is not in the repository"
    for tool in ("apptainer", "singularity"):
        if shutil.which(tool):  # where it is installed, let it parse the file too
            res = subprocess.run([tool, "inspect", "--deffile", str(ROOT / "Singularity.def")])
            assert res.returncode in (0, 255)


# --- accelerate --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "deepspeed", "stage"), [("ddp", False, None), ("zero2", True, 2), ("zero3", True, 3)]
)
def test_accelerate_configs_load_and_validate(name, deepspeed, stage) -> None:
    pytest.importorskip("accelerate")
    from accelerate.commands.config.config_args import ClusterConfig, load_config_from_file
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser

    path = ROOT / "configs" / "accelerate" / f"{name}.yaml"
    cfg = load_config_from_file(str(path))  # unknown keys raise here
    assert isinstance(cfg, ClusterConfig)
    assert cfg.distributed_type == ("DEEPSPEED" if deepspeed else "MULTI_GPU")
    assert cfg.mixed_precision == "bf16"
    if stage is not None:
        assert cfg.deepspeed_config["zero_stage"] == stage
    args = launch_command_parser().parse_args(
        ["--config_file", str(path), "--num_processes", "4", "train.py"]
    )
    args, _, _ = _validate_launch_command(args)  # what `accelerate launch` does before starting
    assert args.num_processes == 4
    assert bool(args.use_deepspeed) is deepspeed and bool(args.multi_gpu) is not deepspeed
    if stage is not None:
        assert int(args.zero_stage) == stage


# --- the command line (the flags arena_core.cli.main adds from arena_core.cli.cluster) ----------


def parser() -> argparse.ArgumentParser:
    from arena_core.cli import cluster as cluster_args

    p = argparse.ArgumentParser(prog="arena")
    sub = p.add_subparsers(dest="command")
    run = sub.add_parser("run")
    run.add_argument("config")
    run.add_argument("--ledger")
    run.add_argument("--concurrency", type=int)
    cluster_args.add_run_arguments(run)
    cluster_args.add_commands(sub)
    return p


def test_cli_flags_reach_the_commands(write_config, tmp_path, capsys, monkeypatch) -> None:
    from arena_core.cli import cluster as cluster_args

    monkeypatch.chdir(tmp_path)
    path = str(write_config())
    args = parser().parse_args(
        ["slurm", "submit", path, "--array", "3", "--gpus", "1", "--mem-gb", "16", "--dry-run"]
    )
    assert cluster_args.slurm_command(args) == 0
    out = capsys.readouterr().out
    assert "#SBATCH --array=0-2%3" in out and "#SBATCH --mem=16384MB" in out
    args = parser().parse_args(["run", path, "--executor", "slurm", "--array", "2", "--dry-run"])
    assert args.executor == "slurm" and args.workers is None
    assert cluster_args.slurm_command(args) == 0
    assert "#SBATCH --array=0-1%2" in capsys.readouterr().out

    url = f"sqlite:///{tmp_path / 'l.db'}"
    args = parser().parse_args(["ledger", "upgrade", "--ledger", url])
    assert cluster_args.ledger_command(args) == 0
    assert "empty -> " in capsys.readouterr().out
    args = parser().parse_args(
        ["worker", "--ledger", url, "--stale-after", "9", "--heartbeat", "1"]
    )
    assert cluster_args.worker_command(args) == 0
    assert "no tournament in the ledger has pending matches" in capsys.readouterr().out


def test_a_slice_streams_exactly_its_share_of_the_schedule(write_config) -> None:
    """A task keeps the matches whose order_key % count == index, built one at a time as the
    whole schedule is (it never lists the schedule), and knows its size without counting."""
    from arena_core.config import load_config
    from arena_core.engine import Tournament
    from arena_core.errors import UsageError
    from arena_core.plugins import get_registry

    path = write_config()
    whole = Tournament(load_config(path, get_registry()), get_registry(), build=False)
    everything = whole.rows
    for count in (1, 3, 7, len(everything) + 2):
        sizes = 0
        for index in range(count):
            t = Tournament(load_config(path, get_registry()), get_registry(), build=False)
            t.take_slice(index, count)
            mine = list(t.iter_rows())
            assert t._rows is None  # streamed, not listed
            want = [r["id"] for r in everything if r["order_key"] % count == index]
            assert sorted(r["id"] for r in mine) == sorted(want)
            assert t.scheduled == len(mine)
            sizes += len(mine)
        assert sizes == len(everything)
    with pytest.raises(UsageError, match="slice 3 of 3"):
        whole.take_slice(3, 3)

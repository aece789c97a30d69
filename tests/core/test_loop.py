"""`arena loop`: two iterations of self-play -> DPO -> cross-play on a tiny model, killed with
SIGKILL in the middle of the second learn step, then resumed to the end.

The first run is a subprocess: the test reads its progress lines and kills it on the first
training step of iteration 2, so the kill always lands inside a learner run (no timing guess).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sqlmodel import select

from arena_core.cli.learn import add_loop_arguments, loop_command
from arena_core.errors import ConfigError, UsageError
from arena_core.learning.loop import STATE_FILE, STEPS, LoopState, load_loop, run_loop
from arena_core.ledger import LearnerRun, Ledger, MatchRow
from arena_core.plugins import get_registry
from tests.core.conftest import TINY_ITEMS, tiny_setup

ROOT = Path(__file__).resolve().parents[2]
LOOP = """
[loop]
name = "it"
iterations = 2
seed = 1
checkpoints = "{ck}"

[player]
name = "tiny"
agent = "transformers"
options = {{ model = "{model}", max_new_tokens = 12, min_new_tokens = 4 }}

[selfplay]
protocol = "branched"
[selfplay.options]
speeches = 1
max_words = 12
[selfplay.dataset]
plugin = "jsonl"
limit = 2
options = {{ path = "{items}" }}
[selfplay.judge]
plugin = "llm"
options = {{ options = {{ model = "{model}" }}, stated = false }}

[learner]
plugin = "dpo"
[learner.options]
learning_rate = 5e-3
epochs = 2
batch_size = 4
max_length = 512
torch_threads = 2

[crossplay]
protocol = "debate"
[crossplay.options]
speeches = 1
max_words = 12
[crossplay.dataset]
plugin = "jsonl"
limit = 1
options = {{ path = "{items}" }}
"""
# Runs `arena loop` in a fresh interpreter, with the learners plugin whether or not its entry
# point is installed yet.
SCRIPT = textwrap.dedent(
    """
    import argparse, sys
    from arena_core.plugins import get_registry, register_plugin
    if ("learner", "dpo") not in get_registry().entries:
        import arena_plugins.learners.plugin as plugin
        register_plugin(plugin, "arena-learners-test")
    from arena_core.cli.learn import add_loop_arguments, loop_command
    parser = argparse.ArgumentParser()
    add_loop_arguments(parser)
    sys.exit(loop_command(parser.parse_args(sys.argv[1:])))
    """
)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return tiny_setup(tmp_path_factory, "loop", TINY_ITEMS)


def write_loop(tmp_path: Path, tiny: tuple[Path, Path], **replace: str) -> Path:
    model, items = tiny
    text = LOOP.format(ck=tmp_path / "ck", model=model, items=items)
    for old, new in replace.items():
        text = text.replace(old, new)
    path = tmp_path / "loop.toml"
    path.write_text(text, encoding="utf-8")
    return path


def loop_args(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_loop_arguments(p)
    return p.parse_args(list(argv))


def test_the_shipped_loop_files_are_valid(learners: None) -> None:
    for name in ("iterative-dpo.toml", "iterative-dpo-gpu.toml"):
        cfg = load_loop(ROOT / "tournaments" / name, get_registry())
        assert cfg.selfplay.protocol == "branched" and cfg.learner.plugin == "dpo"
        assert cfg.crossplay.judge == cfg.selfplay.judge  # defaulted from the self-play


def test_bad_loop_files_name_the_table_and_key(
    learners: None, tmp_path: Path, tiny: tuple[Path, Path]
) -> None:
    with pytest.raises(ConfigError, match=r"\[learner\.options\]: key 'betta'"):
        load_loop(write_loop(tmp_path, tiny, **{"epochs = 2": "betta = 2"}), get_registry())
    with pytest.raises(ConfigError, match=r"\[loop\]: key 'iteratons'"):
        load_loop(write_loop(tmp_path, tiny, iterations="iteratons"), get_registry())
    with pytest.raises(ConfigError, match="max_word"):
        load_loop(write_loop(tmp_path, tiny, max_words="max_word"), get_registry())


def test_loop_killed_in_the_second_learn_step_resumes_there(
    learners: None, tmp_path: Path, tiny: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_loop(tmp_path, tiny)
    url = f"sqlite:///{tmp_path / 'loop.db'}"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TQDM_DISABLE": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(config), "--ledger", url],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    seen: list[str] = []
    assert proc.stderr is not None
    for line in proc.stderr:
        seen.append(line)
        if line.startswith("[loop] 2/learn step 1,"):
            os.kill(proc.pid, signal.SIGKILL)
            break
    proc.wait(timeout=120)
    assert proc.returncode == -signal.SIGKILL, "".join(seen[-30:])

    state = json.loads((tmp_path / "ck" / STATE_FILE).read_text(encoding="utf-8"))
    assert state["completed"] == ["1/selfplay", "1/learn", "1/crossplay", "2/selfplay"]
    assert state["current"] == "2/learn"
    ledger = Ledger(url, create=False)
    with ledger.session() as s:
        runs = {(r.config["iteration"], r.status) for r in s.exec(select(LearnerRun))}
        first_matches = {m.id: m.finished_at for m in s.exec(select(MatchRow))}
    assert runs == {(1, "done"), (2, "running")}  # killed inside the second training
    assert ledger.player("tiny-dpo-2") is None
    assert not (tmp_path / "ck" / "tiny-dpo-2").exists()  # no half-written checkpoint in place
    ledger.close()
    it1 = (tmp_path / "ck" / "tiny-dpo-1" / "adapter_model.safetensors").stat().st_mtime_ns

    assert loop_command(loop_args(str(config), "--ledger", url)) == 0
    out, err = capsys.readouterr()
    assert "[loop] resuming at 2/learn" in err
    assert "1 interrupted learner run(s) marked failed" in err
    assert "1/selfplay:" not in err and "2/selfplay:" not in err  # nothing done twice
    assert "tiny-dpo-2" in out and "tiny-dpo-1" in out  # the lineage leaderboard

    state = json.loads((tmp_path / "ck" / STATE_FILE).read_text(encoding="utf-8"))
    assert state["completed"] == [f"{k}/{s}" for k in (1, 2) for s in STEPS]
    assert state["current"] is None
    assert (tmp_path / "ck" / "tiny-dpo-1" / "adapter_model.safetensors").stat().st_mtime_ns == it1
    ledger = Ledger(url, create=False)
    with ledger.session() as s:
        runs_all = sorted(
            (r.config["iteration"], r.status, r.id) for r in s.exec(select(LearnerRun))
        )
        matches = {m.id: m.finished_at for m in s.exec(select(MatchRow))}
        done2 = [r for r in s.exec(select(LearnerRun)) if r.status == "done"]
    assert [(k, st) for k, st, _ in runs_all] == [(1, "done"), (2, "done"), (2, "failed")]
    for mid, finished in first_matches.items():  # matches of the first run were not replayed
        assert matches[mid] == finished
    it1_row, it2_row = ledger.player("tiny-dpo-1"), ledger.player("tiny-dpo-2")
    assert it1_row is not None and it2_row is not None
    assert it1_row.parent == "tiny" and it2_row.parent == "tiny-dpo-1"
    run2 = next(r for r in done2 if r.config["iteration"] == 2)
    assert it2_row.learner_run == run2.id
    assert run2.config["base"]["adapter"] == str(tmp_path / "ck" / "tiny-dpo-1")
    # The second iterate starts from the first and is measured against it: loss log 2 at start.
    assert run2.metrics["before"]["loss"] == pytest.approx(math.log(2), abs=1e-4)
    assert run2.metrics["after"]["loss"] < run2.metrics["before"]["loss"]
    assert run2.data_query["tournaments"] == ["it-selfplay-2"]
    assert run2.data_query["player"] == "tiny-dpo-1"
    counts = ledger.counts("it-crossplay-2")
    assert counts == {"done": 12}  # 1 item x 2 sides x 6 ordered pairs of 3 players
    assert {r.player for r in ledger.ratings("it-crossplay-2")} == {
        "tiny",
        "tiny-dpo-1",
        "tiny-dpo-2",
    }

    # Killed after the player was registered but before the state was saved: kept, not redone.
    path = tmp_path / "ck" / STATE_FILE
    state["completed"] = state["completed"][:4]
    state["current"] = "2/learn"
    path.write_text(json.dumps(state), encoding="utf-8")
    cfg = load_loop(config, get_registry())
    final = run_loop(cfg, ledger, get_registry())
    assert final.data["info"]["2/learn"]["resumed"] is True
    assert final.data["info"]["2/crossplay"]["played"] == 0
    with ledger.session() as s:
        assert len(list(s.exec(select(LearnerRun)))) == 3  # no new training

    # Other changes to the config are refused (only `iterations` may grow).
    with pytest.raises(UsageError, match="different loop config"):
        changed = load_loop(write_loop(tmp_path, tiny, **{"seed = 1": "seed = 2"}), get_registry())
        run_loop(changed, ledger, get_registry())
    other = Ledger(f"sqlite:///{tmp_path / 'other.db'}")
    with pytest.raises(UsageError, match="pass --ledger"):
        run_loop(cfg, other, get_registry())
    other.close()
    ledger.close()


def test_state_is_written_atomically(
    tmp_path: Path, learners: None, tiny: tuple[Path, Path]
) -> None:
    cfg = load_loop(write_loop(tmp_path, tiny), get_registry())
    state = LoopState.open(cfg, "sqlite:///x.db")
    state.start("1/selfplay")
    state.complete("1/selfplay", {"done": 4})
    again = LoopState.open(cfg, "sqlite:///x.db")
    assert again.done("1/selfplay") and again.data["info"]["1/selfplay"] == {"done": 4}
    assert not list((tmp_path / "ck").glob("*.tmp"))
    cfg.loop.iterations = 5  # raising iterations extends the same loop ...
    assert LoopState.open(cfg, "sqlite:///x.db").done("1/selfplay")
    cfg.learner.options["beta"] = 0.5  # ... anything else is another loop
    with pytest.raises(UsageError, match="different loop config"):
        LoopState.open(cfg, "sqlite:///x.db")

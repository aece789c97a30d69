"""SPPO end to end on tiny local models: the shipped self-play file then `arena learn --learner
sppo --from-ledger`, the iterative-SPPO loop, and eva's evolving item set (`[evolve]`)."""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path
from typing import Any

import pytest

from arena_core.cli.learn import add_learn_arguments, learn_command
from arena_core.config import load_config
from arena_core.errors import ConfigError
from arena_core.learning.learn import ledger_pairs
from arena_core.learning.loop import load_loop, run_loop, weighted_sample
from arena_core.learning.pairs import PairQuery
from arena_core.ledger import LearnerRun, Ledger
from arena_core.plugins import get_registry
from arena_core.testing import run_tournament
from arena_core.types import Item
from tests.core.conftest import tiny_setup

ROOT = Path(__file__).resolve().parents[2] / "tournaments"
# Short passages and questions: short prompts keep the steps fast.
ITEMS = [
    (f"e{i}", f"Why did the {w} stop?", ["Snow", "Rain"], f"The {w} stopped when snow fell.")
    for i, w in enumerate(["ferry", "train", "mill", "clock", "lamp"])
]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    from arena_plugins.agents.tiny_model import build_tiny_pairrm

    model, items = tiny_setup(tmp_path_factory, "sppo-loop", ITEMS)
    return model, build_tiny_pairrm(model.parent / "pairrm"), items


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def shipped(name: str, tiny: tuple[Path, Path, Path], tmp_path: Path, **replace: str) -> Path:
    """A shipped file pointed at the test's tiny models and items, made smaller."""
    model, ranker, items = tiny
    text = (ROOT / name).read_text(encoding="utf-8")
    dataset = f'plugin = "jsonl"\noptions = {{ path = "{items}" }}'
    for old, new in {
        "models/tiny-pairrm": str(ranker),
        '"models/tiny"': f'"{model}"',
        'checkpoints = "models/': f'checkpoints = "{tmp_path}/',
        'plugin = "bundled"': dataset,
        "max_new_tokens = 24": "max_new_tokens = 10",
        "epochs = 2": "max_steps = 2",
        "samples = 4": "samples = 3",
        **replace,
    }.items():
        text = text.replace(old, new)
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_shipped_files_are_valid(learners: None) -> None:
    for name in ("iterative-sppo.toml", "eva.toml"):
        cfg = load_loop(ROOT / name, get_registry())
        assert cfg.selfplay.protocol == "self-play" and cfg.learner.plugin == "sppo"
        assert cfg.selfplay.judge is not None and cfg.selfplay.judge.plugin == "pairrm"
    assert load_loop(ROOT / "eva.toml", get_registry()).evolve is not None
    config = load_config(ROOT / "self-play-sppo.toml", get_registry())
    assert config.raw.tournament.protocol == "self-play"
    assert config.raw.players[0].agent == "transformers"


def test_evolve_needs_a_protocol_that_scores_its_samples(
    learners: None, tiny: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    path = shipped("eva.toml", tiny, tmp_path, **{'protocol = "self-play"': 'protocol = "duel"'})
    path.write_text(
        path.read_text().replace("samples = 3\nboth_orders = true\n", ""), encoding="utf-8"
    )
    with pytest.raises(ConfigError, match=r"\[evolve\].*no `rewards`"):
        load_loop(path, get_registry())
    bad = shipped("eva.toml", tiny, tmp_path, **{'agent = "rewriter"': 'agent = "rewritter"'})
    with pytest.raises(ConfigError, match=r"\[evolve\.creator\]: key 'agent'.*'rewriter'"):
        load_loop(bad, get_registry())


def test_weighted_draw_follows_informativeness() -> None:
    scored = [(Item(id=f"i{g}", question="q", answers=[]), float(g)) for g in range(5)]
    counts = {f"i{g}": 0 for g in range(5)}
    rng = random.Random(0)
    for _ in range(400):
        for item, _ in weighted_sample(scored, 2, rng):
            counts[item.id] += 1
    assert counts["i0"] == 0  # min-max normalised: the least informative has weight 0
    assert counts["i4"] > counts["i3"] > counts["i2"] > counts["i1"] > 0
    equal = [(i, 1.0) for i, _ in scored]
    assert len({i.id for i, _ in weighted_sample(equal, 5, rng)}) == 5  # all equal: any order


def parse(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_learn_arguments(p)
    return p.parse_args(list(argv))


def test_self_play_file_then_arena_learn_sppo_from_the_ledger(
    learners: None, tiny: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'sppo.db'}"
    path = shipped("self-play-sppo.toml", tiny, tmp_path, **{"limit = 8": "limit = 3"})
    summary = run_tournament(path, url)
    assert summary.failed == 0 and summary.done == 3
    args = parse(
        "--learner",
        "sppo",
        "--from-ledger",
        "--ledger",
        url,
        "--tournament",
        "self-play-sppo",
        "--base",
        "tiny",
        "--out",
        str(tmp_path / "ck"),
        *("-o", "full_finetune=false", "-o", "beta=0.1", "-o", "learning_rate=5e-3"),
        *("-o", "optimizer=adamw_torch", "-o", "max_steps=2", "-o", "torch_threads=2"),
    )
    assert learn_command(args) == 0
    ledger = Ledger(url)
    with ledger.session() as s:
        (run,) = list(s.exec(LearnerRun.__table__.select()))  # type: ignore[attr-defined]
    assert run.status == "done" and run.learner == "sppo"
    new = ledger.player("tiny-sppo-1")
    assert new is not None and new.parent == "tiny" and new.learner_run == run.id
    # LoRA starts at its reference: the loss is SPPO's formula on the ledger's P's.
    from arena_plugins.learners.sppo import sppo_rows

    rows, _ = sppo_rows(ledger_pairs(ledger, PairQuery(tournaments=["self-play-sppo"])).rows)
    expected = sum(
        0.5 * 100 * ((r.p_chosen - 0.5) ** 2 + (r.p_rejected - 0.5) ** 2) for r in rows
    ) / len(rows)
    assert run.metrics["before"]["loss"] == pytest.approx(expected, rel=1e-4)
    ledger.close()


def _state(tmp_path: Path, name: str) -> dict[str, Any]:
    return json.loads((tmp_path / name / "loop-state.json").read_text(encoding="utf-8"))


def test_iterative_sppo_loop(learners: None, tiny: tuple[Path, Path, Path], tmp_path: Path) -> None:
    path = shipped("iterative-sppo.toml", tiny, tmp_path, **{"iterations = 2": "iterations = 1"})
    ledger = Ledger(f"sqlite:///{tmp_path / 'loop.db'}")
    run_loop(load_loop(path, get_registry()), ledger, get_registry())
    state = _state(tmp_path, "iterative-sppo")
    assert state["completed"] == ["1/selfplay", "1/learn", "1/crossplay"]
    assert ledger.player("tiny-sppo-1").parent == "tiny"  # type: ignore[union-attr]
    assert ledger.counts("iterative-sppo-crossplay-1") == {"done": 4}  # 2 items x 2 orders
    ledger.close()


def test_eva_loop_evolves_the_item_set_with_lineage(
    learners: None, tiny: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    path = shipped("eva.toml", tiny, tmp_path, **{"limit = 8": "limit = 4"})
    ledger = Ledger(f"sqlite:///{tmp_path / 'eva.db'}")
    said: list[str] = []
    cfg = load_loop(path, get_registry())
    run_loop(cfg, ledger, get_registry(), say=said.append)
    state = _state(tmp_path, "eva")
    assert state["completed"] == [
        "1/selfplay",
        "1/learn",
        "1/crossplay",
        "2/evolve",
        "2/selfplay",
        "2/learn",
        "2/crossplay",
    ]
    info = state["info"]["2/evolve"]
    assert info["from"] == "eva-selfplay-1" and len(info["parents"]) == 1  # 25% of 4 prompts
    assert info["evolved"] == 4 and info["old"] == 1  # 4 new, 20% of the set old
    first = {m.item_id: m.item for m in ledger.matches(tournament="eva-selfplay-1")}
    second = [m.item for m in ledger.matches(tournament="eva-selfplay-2")]
    (parent,) = info["parents"]
    evolved = [i for i in second if i["metadata"].get("parent")]
    assert len(evolved) == 4 and len(second) == 5
    for item in evolved:  # lineage: each evolved prompt names its parent, which was played
        assert item["metadata"]["parent"] == parent and parent in first
        assert item["metadata"]["evolved"]["creator"] == "rewriter"
        assert item["question"] != first[parent]["question"]
        assert first[parent]["question"] in item["question"] or "'" in item["question"]
    (old,) = [i for i in second if not i["metadata"].get("parent")]
    assert old["id"] in first
    # the drawn parent was among the most informative prompts of the first self-play
    gaps = {}
    from arena_core.learning.loop import informativeness

    for item, gap in informativeness(ledger, get_registry(), "eva-selfplay-1"):
        gaps[item.id] = gap
    assert gaps[parent] > min(gaps.values())
    assert ledger.player("tiny-eva-2").parent == "tiny-eva-1"  # type: ignore[union-attr]
    assert any("2/evolve: 4 new prompt(s)" in line for line in said)
    ledger.close()

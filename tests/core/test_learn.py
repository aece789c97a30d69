"""`arena learn`: data sources, the learner_run row's life, player registration with lineage, and
end to end on a tiny local Llama: branched self-play -> DPO from the ledger -> cross-play.

The flow tests use a fake learner (no torch) registered for the test; the end-to-end test uses
the real `dpo` plugin.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict
from sqlmodel import select

from arena_core.cli.learn import (
    add_learn_arguments,
    add_model_arguments,
    learn_command,
    model_command,
)
from arena_core.errors import UsageError
from arena_core.hookspecs import hookimpl
from arena_core.learning.learn import (
    Base,
    dataset_pairs,
    default_name,
    file_pairs,
    ledger_pairs,
    normalize,
)
from arena_core.learning.pairs import PairQuery, write_pairs
from arena_core.ledger import LearnerRun, Ledger, MatchRow, Player
from arena_core.plugins import get_registry
from arena_core.testing import run_tournament
from tests.core.conftest import TINY_ITEMS, tiny_setup

FIXTURES = Path(__file__).parent.parent / "fixtures" / "datasets"
QUOTER = {"name": "quoter-2", "agent": "extractive", "options": {"max_quotes": 2}}


def branched(name: str, players: list[dict[str, Any]], judge: dict[str, Any], **kw: Any) -> dict:
    dataset = kw.pop("dataset", {"plugin": "bundled", "limit": 2})
    return {
        "tournament": {
            "name": name,
            "protocol": "branched",
            "seed": 3,
            "concurrency": 8,
            "timeout": 120,
        },
        "protocol": {"speeches": 1, "branches": 2, "mode": "full", "max_words": 12, **kw},
        "dataset": dataset,
        "judge": judge,
        "players": players,
        "schedule": {"kind": "self-play"},
    }


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Default checkpoint directories (models/NAME) land in the test's own directory."""
    monkeypatch.chdir(tmp_path)


def parse(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_learn_arguments(p)
    return p.parse_args(list(argv))


# --- a learner without torch -------------------------------------------------------------------


class FakeOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    fail: bool = False
    steps: int = 3


class FakeLearner:
    def __init__(self, opts: FakeOptions) -> None:
        self.opts = opts
        self.summary: dict[str, Any] = {}
        self.seen: list[dict[str, Any]] = []

    def fit(
        self, data: Any, base_model: str, out_dir: Path, *, adapter: Any = None, on_log: Any = None
    ) -> Path:
        self.seen = list(data)
        for i in range(self.opts.steps):
            on_log({"step": i + 1, "loss": 1.0 / (i + 1), "rewards/accuracies": 0.5 + 0.1 * i})
        if self.opts.fail:
            raise RuntimeError("out of memory (pretend)")
        out_dir.mkdir(parents=True)
        (out_dir / "adapter_config.json").write_text("{}", encoding="utf-8")
        self.summary = {
            "player": {"model": base_model, "adapter": str(out_dir)},
            "before": {"loss": 0.69, "rewards/accuracies": 0.0},
            "after": {"loss": 0.2, "rewards/accuracies": 0.9},
            "steps": self.opts.steps,
        }
        return out_dir


LEARNERS: list[FakeLearner] = []


class FakePlugin:
    @hookimpl
    def arena_register(self, registry: Any) -> None:
        def make(opts: FakeOptions) -> FakeLearner:
            LEARNERS.append(FakeLearner(opts))
            return LEARNERS[-1]

        registry.add("learner", "fake-learn", make, FakeOptions)


@pytest.fixture
def fake_learner(arena_plugin: Any) -> Iterator[None]:
    arena_plugin(FakePlugin(), "arena-fake-learner")
    LEARNERS.clear()
    yield


@pytest.fixture
def quoted(ledger_url: str) -> str:
    """A branched self-play of the extractive quoter, judged by quotes: pairs without a model."""
    run_tournament(branched("br", [QUOTER], {"plugin": "quote"}, max_words=150), ledger_url)
    return ledger_url


def rows(ledger_url: str, table: Any) -> list[Any]:
    ledger = Ledger(ledger_url, create=False)
    with ledger.session() as s:
        out = list(s.exec(select(table)))
    ledger.close()
    return out


# --- the flow -----------------------------------------------------------------------------------


def test_learn_records_the_run_and_registers_the_player_with_lineage(
    fake_learner: None, quoted: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = tmp_path / "base-model"
    base.mkdir()
    args = parse(
        "--learner",
        "fake-learn",
        "--from-ledger",
        "--ledger",
        quoted,
        "--tournament",
        "br",
        "--player",
        "quoter-2",
        "--base",
        str(base),
        "--parent",
        "quoter-2",
        "--register-as",
        "q-learned",
        "--out",
        str(tmp_path / "ck"),
        "-o",
        "steps=4",
    )
    assert learn_command(args) == 0
    out = capsys.readouterr().out
    assert "player 'q-learned' (parent quoter-2)" in out and "loss 0.6900 -> 0.2000" in out
    assert 'name = "q-learned"' in out and "[[players]]" in out  # a snippet to paste

    (run,) = rows(quoted, LearnerRun)
    assert run.status == "done" and run.learner == "fake-learn"
    assert run.checkpoint == str(tmp_path / "ck") and run.wall_time is not None
    assert run.config["options"] == {"fail": False, "steps": 4}
    assert run.config["base"]["parent"] == "quoter-2"
    assert [s["step"] for s in run.metrics["steps"]] == [1, 2, 3, 4]  # every logged step
    assert run.metrics["after"]["rewards/accuracies"] == 0.9
    q = run.data_query
    assert q["source"] == "ledger" and q["tournaments"] == ["br"] and q["player"] == "quoter-2"
    matches = {m.id for m in rows(quoted, MatchRow)}
    assert q["matches"] and set(q["matches"]) <= matches  # lineage: the matches learned from
    trained = LEARNERS[-1].seen
    assert run.pairs == len(trained) > 0
    assert {r["match_id"] for r in trained} == set(q["matches"])
    first = trained[0]
    assert first["prompt"][0]["role"] == "system" and isinstance(first["chosen"], str)
    assert 0.5 < first["target"] <= 1 and first["gap"] > 0

    player = next(p for p in rows(quoted, Player) if p.name == "q-learned")
    assert player.agent == "transformers" and player.parent == "quoter-2"
    assert player.learner_run == run.id
    assert player.options["model"] == str(base)
    assert player.options["adapter"] == str(tmp_path / "ck")
    assert player.options["max_batch"] == 16  # normalized like a tournament's player options


def test_a_failing_learner_leaves_a_failed_run_and_no_player(
    fake_learner: None, quoted: str, tmp_path: Path
) -> None:
    args = parse(
        "--learner",
        "fake-learn",
        "--from-ledger",
        "--ledger",
        quoted,
        "--base",
        str(tmp_path),
        "--register-as",
        "never",
        "-o",
        "fail=true",
        "-q",
    )
    with pytest.raises(RuntimeError, match="out of memory"):
        learn_command(args)
    (run,) = rows(quoted, LearnerRun)
    assert run.status == "failed" and "RuntimeError: out of memory" in run.metrics["error"]
    assert len(run.metrics["steps"]) == 3  # the steps it did log are kept
    assert "never" not in {p.name for p in rows(quoted, Player)}


def test_usage_errors_are_raised_before_any_run_is_recorded(
    fake_learner: None, quoted: str, tmp_path: Path
) -> None:
    common = ["--ledger", quoted, "--base", str(tmp_path)]
    cases = [
        (["--learner", "fake-learn", *common], "exactly one data source"),
        (["--learner", "fake-learn", "--from-ledger", "--pairs", "x", *common], "exactly one"),
        (["--learner", "fake-lern", "--from-ledger", *common], "did you mean 'fake-learn'"),
        (["--learner", "fake-learn", "--from-ledger", "--min-gap", "5", *common], "no preference"),
        (
            ["--learner", "fake-learn", "--from-ledger", "--register-as", "quoter-2", *common],
            "already in the ledger",
        ),
        (["--learner", "fake-learn", "--from-ledger", "-o", "stepz=1", *common], "stepz"),
        (
            ["--learner", "fake-learn", "--from-ledger", "--ledger", quoted, "--base", "nobody"],
            "neither a player",
        ),
        (
            ["--learner", "fake-learn", "--from-ledger", "--ledger", quoted, "--base", "quoter-2"],
            "agent 'extractive'",
        ),
    ]
    for argv, message in cases:
        with pytest.raises(UsageError, match=message):
            learn_command(parse(*argv))
    assert rows(quoted, LearnerRun) == []


def test_pairs_from_one_ledger_can_be_learned_into_another(
    fake_learner: None, quoted: str, tmp_path: Path
) -> None:
    other = f"sqlite:///{tmp_path / 'other.db'}"
    args = parse(
        "--learner",
        "fake-learn",
        "--from-ledger",
        quoted,
        "--ledger",
        other,
        "--base",
        str(tmp_path),
        "--register-as",
        "moved",
        "--out",
        str(tmp_path / "ck"),
        "-q",
    )
    assert learn_command(args) == 0
    (run,) = rows(other, LearnerRun)
    assert run.data_query["ledger"] == quoted and run.pairs > 0
    assert rows(quoted, LearnerRun) == []  # the source is only read
    assert [p.name for p in rows(other, Player)] == ["moved"]


def test_default_names_count_up_per_parent(fake_learner: None, quoted: str, tmp_path: Path) -> None:
    ledger = Ledger(quoted)
    base = Base(model=str(tmp_path), parent="quoter-2")
    assert default_name(ledger, base, "dpo") == "quoter-2-dpo-1"
    with ledger.session() as s:
        s.add(Player(name="quoter-2-dpo-1", agent="transformers", options={}))
        s.commit()
    assert default_name(ledger, base, "dpo") == "quoter-2-dpo-2"
    assert default_name(ledger, Base(model="models/tiny/"), "dpo") == "tiny-dpo-1"
    ledger.close()


# --- data sources -------------------------------------------------------------------------------


def test_exported_pairs_read_back_as_the_ledger_gave_them(quoted: str, tmp_path: Path) -> None:
    ledger = Ledger(quoted)
    direct = ledger_pairs(ledger, PairQuery(tournaments=["br"]))
    from arena_core.learning.pairs import pairs

    write_pairs(pairs(ledger, PairQuery(conversational=True)), tmp_path / "p.jsonl", "jsonl")
    write_pairs(pairs(ledger, PairQuery()), tmp_path / "plain", "dataset")
    ledger.close()
    jsonl, disk = file_pairs(tmp_path / "p.jsonl"), file_pairs(tmp_path / "plain")
    assert jsonl.rows == direct.rows
    assert len(disk.rows) == len(direct.rows)
    assert disk.rows[0]["prompt"][0]["role"] == "user"  # a plain-text export: one user turn
    assert [r["chosen"] for r in disk.rows] == [r["chosen"] for r in direct.rows]
    with pytest.raises(UsageError, match="no such file"):
        file_pairs(tmp_path / "missing")


def test_dataset_pairs_come_from_the_plugin_pairs_iterator() -> None:
    data = dataset_pairs(
        get_registry(), "hh-rlhf", {"path": str(FIXTURES / "hh-rlhf.jsonl")}, limit=3
    )
    assert len(data.rows) == 3 and data.query["dataset"] == "hh-rlhf"
    assert data.rows[0]["prompt"][0]["role"] == "user" and data.rows[0]["chosen"]
    with pytest.raises(UsageError, match="no preference pairs"):
        dataset_pairs(get_registry(), "bundled", {})


def test_normalize_derives_the_gap_and_unwraps_chat_completions() -> None:
    row = normalize(
        {
            "prompt": "hi",
            "chosen": [{"role": "assistant", "content": "a"}],
            "rejected": "b",
            "score_chosen": 2,
            "score_rejected": 0.5,
        }
    )
    assert row["prompt"] == [{"role": "user", "content": "hi"}] and row["chosen"] == "a"
    assert row["gap"] == 1.5 and row["target"] is None
    with pytest.raises(UsageError, match="no 'rejected'"):
        normalize({"prompt": "hi", "chosen": "a"})


def test_model_tiny_goes_through_the_builder_entry_points(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import arena_core.cli.learn as learn_mod

    calls: list[tuple[str, dict]] = []

    def build(out: str, **kw: Any) -> Path:
        calls.append((out, kw))
        return Path(out)

    monkeypatch.setattr(learn_mod, "model_builders", lambda: {"tiny": build})
    p = argparse.ArgumentParser()
    add_model_arguments(p)
    assert model_command(p.parse_args(["tiny", str(tmp_path / "m"), "--hidden", "32"])) == 0
    assert calls == [(str(tmp_path / "m"), {"hidden": 32})]
    assert "wrote a tiny model" in capsys.readouterr().out
    with pytest.raises(UsageError, match="no model builder 'tinny'; did you mean 'tiny'"):
        model_command(p.parse_args(["tiny", "x", "--kind", "tinny"]))


def test_model_tiny_builds_a_loadable_model_through_the_proposed_entry_point(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    pytest.importorskip("transformers")
    from importlib.metadata import EntryPoint

    import arena_core.cli.learn as learn_mod

    # The line pyproject.toml gets: [project.entry-points."arena.models"] tiny = "..."
    ep = EntryPoint("tiny", "arena_plugins.agents.tiny_model:build_tiny_llama", "arena.models")
    monkeypatch.setattr(learn_mod, "model_builders", lambda: {"tiny": ep})
    p = argparse.ArgumentParser()
    add_model_arguments(p)
    out = tmp_path / "tiny"
    assert model_command(p.parse_args(["tiny", str(out), "--hidden", "32", "--layers", "1"])) == 0
    config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    assert config["hidden_size"] == 32 and config["num_hidden_layers"] == 1
    assert (out / "tokenizer.json").exists()


# --- end to end on a tiny model -----------------------------------------------------------------

ITEMS = TINY_ITEMS[:3]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return tiny_setup(tmp_path_factory, "learn-e2e", ITEMS)


def test_branched_selfplay_then_dpo_from_the_ledger_then_crossplay(
    learners: None,
    tiny: tuple[Path, Path],
    ledger_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    model, items = tiny
    player = {
        "name": "tiny",
        "agent": "transformers",
        "options": {"model": str(model), "max_new_tokens": 16, "min_new_tokens": 4},
    }
    judge = {"plugin": "llm", "options": {"options": {"model": str(model)}, "stated": False}}
    dataset = {"plugin": "jsonl", "options": {"path": str(items)}}
    summary = run_tournament(branched("sp", [player], judge, dataset=dataset), ledger_url)
    assert summary.failed == 0 and summary.done == 2 * len(ITEMS)

    args = parse(
        "--learner",
        "dpo",
        "--from-ledger",
        "--ledger",
        ledger_url,
        "--tournament",
        "sp",
        "--player",
        "tiny",
        "--register-as",
        "tiny-dpo",
        "--out",
        str(tmp_path / "ck"),
        "-o",
        "learning_rate=5e-3",
        "-o",
        "epochs=3",
        "-o",
        "batch_size=4",
        "-o",
        "torch_threads=2",
        "-o",
        "max_length=512",
    )
    assert learn_command(args) == 0
    assert "player 'tiny-dpo' (parent tiny)" in capsys.readouterr().out

    (run,) = rows(ledger_url, LearnerRun)
    assert run.status == "done" and run.learner == "dpo" and run.pairs > 0
    assert run.checkpoint == str(tmp_path / "ck") and run.wall_time > 0
    assert run.data_query["tournaments"] == ["sp"] and run.data_query["matches"]
    steps = [s for s in run.metrics["steps"] if "loss" in s]
    assert len(steps) == run.metrics["steps_trained"] >= 3
    assert {"rewards/accuracies", "rewards/margins", "logps/chosen", "logps/rejected"} <= set(
        steps[0]
    )
    before, after = run.metrics["before"], run.metrics["after"]
    assert before["loss"] == pytest.approx(math.log(2), abs=1e-4)  # LoRA starts at its reference
    assert after["loss"] < before["loss"] - 0.1  # the DPO loss fell
    assert after["rewards/accuracies"] > 0.5  # and the training pairs are ranked above chance
    new = next(p for p in rows(ledger_url, Player) if p.name == "tiny-dpo")
    assert new.parent == "tiny" and new.learner_run == run.id
    assert new.options["adapter"] == str(tmp_path / "ck")
    assert new.options["model"] == str(model) and new.options["max_new_tokens"] == 16

    learned = {k: v for k, v in new.options.items() if v is not None}
    cross = {
        "tournament": {
            "name": "cross",
            "protocol": "debate",
            "seed": 1,
            "concurrency": 16,
            "timeout": 120,
        },
        "protocol": {"speeches": 1, "max_words": 12},
        "dataset": {**dataset, "limit": 2},
        "judge": judge,
        # The ledger's options, as a tournament file would give them (TOML has no None).
        "players": [player, {"name": "tiny-dpo", "agent": "transformers", "options": learned}],
        "schedule": {"kind": "round-robin"},
    }
    summary = run_tournament(cross, ledger_url)
    assert summary.failed == 0 and summary.done == 8  # 2 items x 2 sides x 2 seat orders
    ledger = Ledger(ledger_url, create=False)
    rated = {r.player: r.matches for r in ledger.ratings("cross")}
    ledger.close()
    assert rated == {"tiny": 8, "tiny-dpo": 8}


def _as_model_player(ledger_url: str, name: str, model: str) -> None:
    """Record `name` as a model-backed (`transformers`) player, as a tiny-model run would have:
    the base resolution reads only the player rows and the match seats, not the weights."""
    ledger = Ledger(ledger_url, create=False)
    with ledger.session() as s:
        player = s.get(Player, name)
        player.agent, player.options = "transformers", {"model": model}
        s.add(player)
        s.commit()
    ledger.close()


def test_the_one_model_backed_player_of_the_pairs_is_the_default_base(
    fake_learner: None, quoted: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--learner", "fake-learn", "--from-ledger", "--ledger", quoted]
    with pytest.raises(UsageError, match=r"no model-backed .* player \(players: quoter-2\)"):
        learn_command(parse(*argv))
    _as_model_player(quoted, "quoter-2", str(tmp_path))
    assert learn_command(parse(*argv, "--register-as", "q-dpo")) == 0
    assert "base player 'quoter-2', the only model-backed player" in capsys.readouterr().err
    learned = next(p for p in rows(quoted, Player) if p.name == "q-dpo")
    assert learned.parent == "quoter-2" and learned.options["model"] == str(tmp_path)
    # A second model-backed player in the pairs' matches: the error lists both.
    other = {"name": "quoter-3", "agent": "extractive", "options": {"max_quotes": 3}}
    run_tournament(branched("br3", [other], {"plugin": "quote"}, max_words=150), quoted)
    _as_model_player(quoted, "quoter-3", str(tmp_path))
    with pytest.raises(UsageError, match="2 model-backed players: quoter-2, quoter-3"):
        learn_command(parse(*argv))

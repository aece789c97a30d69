"""The produce-a-judge contract of `arena learn`, with fake learners (no torch): what a learner
declares it produces is what the ledger gets, with lineage; `arena judges` lists it; the
`learned` judge plugin builds it by name; pair rows keep item_id and metadata; the judge table's
migration upgrades a ledger from the previous revision."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from alembic import command
from pydantic import BaseModel, ConfigDict
from sqlalchemy import inspect, text
from sqlmodel import select

from arena_core.cli.learn import add_learn_arguments, judges_command, learn_command
from arena_core.errors import UsageError
from arena_core.hookspecs import hookimpl
from arena_core.learning.learn import Base, PairData, learn, normalize, resolve_base
from arena_core.ledger import HEAD, LearnerRun, Ledger, raw_engine
from arena_core.ledger.migrations import alembic_config, upgrade
from arena_core.plugins import get_registry

ROWS = [
    {
        "prompt": "Is the pass open?",
        "chosen": "No, deep snow blocked it.",
        "rejected": "Yes.",
        "item_id": "s3",
        "meta": json.dumps({"chosen_safe": True}),
    }
]


class Opts(BaseModel):
    model_config = ConfigDict(extra="forbid")
    summary_judge: bool = True
    kind: str = "reward"


class JudgeOnly:
    """Writes a directory and declares a `keyword` judge (model-free, so it builds anywhere)."""

    produces: ClassVar[tuple[str, ...]] = ("judge",)

    def __init__(self, opts: Opts) -> None:
        self.opts = opts
        self.summary: dict[str, Any] = {}
        self.kwargs: dict[str, Any] = {}
        self.seen: list[dict[str, Any]] = []

    def fit(self, data: Any, base_model: str, out_dir: Path, **kwargs: Any) -> Path:
        self.seen, self.kwargs = list(data), kwargs
        out_dir.mkdir(parents=True, exist_ok=True)
        self.summary = {"metrics": {"eval": {"accuracy": 0.75, "sign_accuracy": 0.5}}}
        if self.opts.summary_judge:
            self.summary["judge"] = {
                "plugin": "keyword",
                "options": {"keywords": ["storm"]},
                "kind": self.opts.kind,
            }
        return out_dir


class Both(JudgeOnly):
    produces: ClassVar[tuple[str, ...]] = ("player", "judge")
    judge_suffix: ClassVar[str] = "rm"

    def fit(self, data: Any, base_model: str, out_dir: Path, **kwargs: Any) -> Path:
        out = super().fit(data, base_model, out_dir, **kwargs)
        self.summary["player"] = {"model": base_model, "adapter": str(out)}
        return out


MADE: list[JudgeOnly] = []


class Plugin:
    @hookimpl
    def arena_register(self, registry: Any) -> None:
        for name, cls in (("judge-only", JudgeOnly), ("both", Both)):

            def make(opts: Opts, cls: type[JudgeOnly] = cls) -> JudgeOnly:
                MADE.append(cls(opts))
                return MADE[-1]

            registry.add("learner", name, make, Opts)


@pytest.fixture
def fakes(arena_plugin: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    monkeypatch.chdir(tmp_path)
    arena_plugin(Plugin(), "arena-fake-judge-learners")
    MADE.clear()
    yield


def data() -> PairData:
    return PairData([normalize(r) for r in ROWS], {"source": "test"})


def test_rows_keep_item_id_and_metadata() -> None:
    row = normalize(ROWS[0])
    assert row["item_id"] == "s3" and row["meta"] == {"chosen_safe": True}
    pair = normalize({"id": 7, "prompt": "q", "chosen": "a", "rejected": "b", "metadata": {"x": 1}})
    assert pair["item_id"] == "7" and pair["meta"] == {"x": 1}  # a dataset Pair's id and metadata
    assert normalize({"prompt": "q", "chosen": "a", "rejected": "b"})["meta"] == {}


def test_a_judge_only_learner_registers_a_judge_with_lineage(
    fakes: None, ledger_url: str, tmp_path: Path
) -> None:
    ledger = Ledger(ledger_url)
    result = learn(
        ledger,
        get_registry(),
        learner="judge-only",
        options={},
        data=data(),
        base=Base(model=str(tmp_path)),
        name="rm-1",
    )
    assert result.player is None and result.judge == "rm-1"
    assert ledger.player("rm-1") is None  # no player: the learner did not declare one
    row = ledger.judge("rm-1")
    assert row is not None and row.plugin == "keyword" and row.kind == "reward"
    assert row.options == {"keywords": ["storm"]} and row.base_model == str(tmp_path)
    assert row.parent is None and row.learner_run == result.run_id
    with ledger.session() as s:
        run = s.get(LearnerRun, result.run_id)
    assert run is not None and run.status == "done" and run.data_query == {"source": "test"}
    assert run.metrics["eval"] == {"accuracy": 0.75, "sign_accuracy": 0.5}
    assert run.config["produces"] == ["judge"] and run.config["judge"] == "rm-1"
    assert MADE[-1].seen[0]["item_id"] == "s3"

    # --base may name a judge to train further; one without weights (keyword) cannot be.
    with pytest.raises(UsageError, match="no 'model' option"):
        resolve_base(ledger, "rm-1")
    ledger.close()


def test_a_learner_producing_both_names_its_judge_and_keeps_judge_base_lineage(
    fakes: None, ledger_url: str, tmp_path: Path
) -> None:
    ledger = Ledger(ledger_url)
    parent_dir = tmp_path / "rm0"
    parent_dir.mkdir()
    result = learn(
        ledger,
        get_registry(),
        learner="both",
        options={},
        data=data(),
        base=Base(model=str(tmp_path), parent="p0"),
        name="p1",
        judge_base=Base(model=str(parent_dir), judge="rm0"),
    )
    assert result.player == "p1" and result.judge == "p1-rm"
    assert MADE[-1].kwargs["judge_model"] == str(parent_dir)  # fit gets the judge's weights
    player, judge = ledger.player("p1"), ledger.judge("p1-rm")
    assert player is not None and player.parent == "p0" and player.learner_run == result.run_id
    assert judge is not None and judge.parent == "rm0" and judge.base_model == str(parent_dir)
    assert judge.learner_run == result.run_id
    with pytest.raises(UsageError, match="already in the ledger"):
        learn(
            ledger,
            get_registry(),
            learner="both",
            options={},
            data=data(),
            base=Base(model=str(tmp_path)),
            name="p2",
            judge_name="p1-rm",
        )
    ledger.close()


def test_a_missing_or_bad_judge_entry_fails_the_run(
    fakes: None, ledger_url: str, tmp_path: Path
) -> None:
    ledger = Ledger(ledger_url)
    for options, match in (
        ({"summary_judge": False}, "no 'judge'"),
        ({"kind": "vibes"}, "kind must be one of"),
    ):
        with pytest.raises(UsageError, match=match):
            learn(
                ledger,
                get_registry(),
                learner="judge-only",
                options=options,
                data=data(),
                base=Base(model=str(tmp_path)),
                name="x",
            )
        assert ledger.judge("x") is None
    with ledger.session() as s:
        assert [r.status for r in s.exec(select(LearnerRun))] == ["failed", "failed"]
    ledger.close()


def test_cli_prints_a_judge_snippet_and_arena_judges_lists_it(
    fakes: None, ledger_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pairs_file = tmp_path / "pairs.jsonl"
    pairs_file.write_text("".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8")
    p = argparse.ArgumentParser()
    add_learn_arguments(p)
    args = p.parse_args(
        [
            "--learner",
            "judge-only",
            "--ledger",
            ledger_url,
            "--pairs",
            str(pairs_file),
            "--base",
            str(tmp_path),
            "--register-as",
            "kw-judge",
        ]
    )
    assert learn_command(args) == 0
    out = capsys.readouterr().out
    assert "judge 'kw-judge'" in out and 'plugin = "keyword"' in out
    assert 'plugin = "learned"' in out and "kw-judge" in out
    assert judges_command(argparse.Namespace(ledger=ledger_url, format="table")) == 0
    table = capsys.readouterr().out
    assert "kw-judge" in table and "keyword" in table and "accuracy=0.750" in table
    assert judges_command(argparse.Namespace(ledger=ledger_url, format="json")) == 0
    (listed,) = json.loads(capsys.readouterr().out)
    assert listed["name"] == "kw-judge" and listed["data"]["source"] == "pairs"


def test_the_learned_plugin_builds_a_ledger_judge_by_name(
    fakes: None, ledger_url: str, tmp_path: Path
) -> None:
    ledger = Ledger(ledger_url)
    learn(
        ledger,
        get_registry(),
        learner="judge-only",
        options={},
        data=data(),
        base=Base(model=str(tmp_path)),
        name="kw",
    )
    ledger.close()
    registry = get_registry()
    judge = registry.build("judge", "learned", {"name": "kw", "ledger": ledger_url})
    assert type(judge).__name__ == "KeywordJudge" and judge.opts.keywords == ["storm"]
    with pytest.raises(UsageError, match=r"no judge 'kx'.*judges there: kw"):
        registry.build("judge", "learned", {"name": "kx", "ledger": ledger_url})
    with pytest.raises(UsageError, match="cannot be overridden"):
        registry.build(
            "judge", "learned", {"name": "kw", "ledger": ledger_url, "options": {"model": "x"}}
        )


def test_a_claims_era_ledger_upgrades_to_the_judge_table(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = raw_engine(url)
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), "0002_claims")
        assert not inspect(conn).has_table("judge")
    engine.dispose()
    with pytest.raises(UsageError, match="arena ledger upgrade"):
        Ledger(url)
    assert upgrade(url) == ("0002_claims", HEAD) and HEAD == "0004_judges"
    ledger = Ledger(url, create=False)
    assert ledger.judges() == []
    ledger.close()
    engine = raw_engine(url)
    with engine.begin() as conn:  # and back down: the judge table goes, nothing else
        command.downgrade(alembic_config(conn), "0003_items")
        assert not inspect(conn).has_table("judge") and inspect(conn).has_table("item")
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == (
            "0003_items"
        )
    engine.dispose()

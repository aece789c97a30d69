"""`arena datasets`: the list of dataset plugins and the preview of one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from arena_core.cli.datasets import datasets_command, parse_option, parse_options
from arena_core.errors import UsageError
from arena_core.types import Item

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "datasets"
QUALITY = f"path={FIX}/quality.{{split}}.jsonl"


def test_list_names_every_dataset_with_its_options(capsys) -> None:
    assert datasets_command([]) == 0
    out = capsys.readouterr().out
    for name in ("bundled", "quality", "quality-debates", "hh-rlhf", "ledger", "on_error"):
        assert name in out
    assert datasets_command(["--json"]) == 0
    listed = {d["name"]: d for d in json.loads(capsys.readouterr().out)}
    assert "ultrafeedback" in listed and "pku-saferlhf" in listed
    options = {o["name"]: o for o in listed["quality"]["options"]}
    assert options["path"]["default"] == "required"
    assert options["difficult_only"]["default"] == "False"


def test_show_previews_items(capsys) -> None:
    code = datasets_command(["show", "quality", "-o", QUALITY, "--split", "train", "-n", "2"])
    assert code == 0
    out = capsys.readouterr().out
    assert "[1] 70001_AAAA1111_1" in out and "[2] 70001_AAAA1111_2" in out and "[3]" not in out
    assert "B. A hidden second pendulum added weight  (gold)" in out
    assert "A. Salt had worked its way into the gears  (distractor)" in out
    assert "context: Tobin Vane was the only clockmaker" in out and "words)" in out
    assert "metadata: " in out and "article_id" in out


def test_show_options_are_toml_values(capsys) -> None:
    args = ["show", "quality", "-o", QUALITY, "-o", "difficult_only=true", "--split", "train"]
    assert datasets_command([*args, "-n", "9", "--json"]) == 0
    rows = [Item.model_validate(json.loads(x)) for x in capsys.readouterr().out.splitlines()]
    assert len(rows) == 5 and all(r.metadata["difficult"] == 1 for r in rows)
    assert datasets_command([*args, "--limit", "1", "-n", "3", "--json"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1


def test_show_transcripts_and_pairs(capsys) -> None:
    path = f"path={FIX}/debates-readable.jsonl"
    assert datasets_command(["show", "quality-debates", "-o", path, "-n", "1"]) == 0
    assert "transcript: 6 turn(s)" in capsys.readouterr().out
    hh = f"path={FIX}/hh-rlhf.jsonl"
    assert datasets_command(["show", "hh-rlhf", "-o", hh, "--pairs", "-n", "1"]) == 0
    out = capsys.readouterr().out
    assert "chosen: Give it at least six hours" in out and "rejected: Basil is a plant." in out
    assert datasets_command(["show", "prompts", "-o", f"path={FIX}/d2po-prompts.jsonl"]) == 0
    assert "(no answers: a prompt-only item)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["show", "quality", "-o", QUALITY, "-o", "difficult=1"],
            "key 'difficult': unknown option",
        ),
        (["show", "qualty"], "unknown dataset 'qualty'; did you mean 'quality'?"),
        (["show", "quality", "-o", "noequals"], "expected KEY=VALUE"),
        (["show", "quality", "-o", QUALITY], "placeholder"),
        (["show", "quality", "-o", QUALITY, "--split", "train", "-n", "0"], "-n must be"),
        (["show", "quality", "-o", QUALITY, "--split", "train", "--pairs"], "no preference pairs"),
        (["show", "csv", "-o", f"path={FIX}/questions.csv"], "questions.csv:2: field 'answers'"),
        (["show", "jsonl", "-o", "path=/nonexistent.jsonl"], "/nonexistent.jsonl: no such file"),
    ],
)
def test_usage_errors_exit_2_and_say_what_is_wrong(argv, message, capsys) -> None:
    assert datasets_command(argv) == 2
    assert message in capsys.readouterr().err


def test_argparse_errors_and_help_exit_codes(capsys) -> None:
    assert datasets_command(["show"]) == 2  # NAME is required
    assert datasets_command(["--help"]) == 0
    assert "show" in capsys.readouterr().out


def test_parse_option() -> None:
    assert parse_option("limit=3") == (["limit"], 3)
    assert parse_option("path=data/x.jsonl") == (["path"], "data/x.jsonl")  # not TOML: a string
    assert parse_option('path="a b.jsonl"') == (["path"], "a b.jsonl")
    assert parse_option("answers=['a', 'b']") == (["answers"], ["a", "b"])
    assert parse_options(["splits.train=0.9", "splits.test=0.1", "on_error=skip"]) == {
        "splits": {"train": 0.9, "test": 0.1},
        "on_error": "skip",
    }
    with pytest.raises(UsageError):
        parse_option("=3")

"""HH-RLHF read as the common recipes read it: every shape of the public files loads with the
default options (an empty final reply; chosen and rejected parting before the last turn; a Human
turn after the parting), for the hh-rlhf loader, APO's split of it, and the preferences loader.

The fixtures (tests/fixtures/datasets/*-shapes.*) are written for Arena in those shapes; nothing
in them is copied from the public data.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from arena_core.cli.main import main
from arena_core.plugins import get_registry

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "datasets"
SHAPES = FIX / "hh-rlhf-shapes.jsonl"


def build(name: str, **options: Any) -> Any:
    return get_registry().build("dataset", name, options)


def records(path: Path) -> int:
    if path.suffix == ".json":
        return len(json.loads(path.read_text()))
    return sum(1 for line in path.read_text().splitlines() if line.strip())


@pytest.mark.parametrize(
    ("loader", "fixture", "options", "per_record"),
    [
        ("hh-rlhf", "hh-rlhf-shapes.jsonl", {}, 1),
        ("hh-rlhf", "hh-rlhf.jsonl", {}, 1),
        ("preferences", "hh-rlhf-shapes.jsonl", {}, 1),
        ("hh-rlhf", "apo-hh-shapes.json", {}, 1),
        ("hh-rlhf", "apo-hh-samples-shapes.json", {"golden": "apo-hh-golden-shapes.json"}, 2),
    ],
)
def test_every_record_of_the_fixture_loads_with_the_defaults(
    loader: str, fixture: str, options: dict[str, Any], per_record: int
) -> None:
    opts = {k: str(FIX / v) for k, v in options.items()}
    source = build(loader, path=str(FIX / fixture), **opts)  # on_error: the default, "raise"
    pairs = list(source.pairs())
    assert len(pairs) == per_record * records(FIX / fixture) and source.skipped == 0
    items = list(build(loader, path=str(FIX / fixture), **opts).items())
    assert len(items) == records(FIX / fixture)


def test_the_prompt_is_the_common_dialogue_cut_at_a_turn() -> None:
    p = {pair.id.split(":")[1]: pair for pair in build("hh-rlhf", path=str(SHAPES)).pairs()}
    # 2, 3, 6: an empty final reply is a reply, kept as ''
    assert p["2"].rejected == "" and p["2"].chosen.startswith("I won't help")
    assert p["3"].chosen == "" and p["3"].rejected == "Fine: they chew loudly."
    assert p["3"].prompt.endswith("\n\nHuman: Come on, just one.\n\nAssistant:")
    assert p["6"].chosen == p["6"].rejected == ""
    # 4: parted one turn before the last: both completions run over three turns
    assert p["4"].prompt == "\n\nHuman: How long do I boil an egg?\n\nAssistant:"
    assert p["4"].chosen == (
        "About seven minutes for a firm yolk.\n\nHuman: And soft?\n\n"
        "Assistant: Five to six minutes, then cool it in cold water."
    )
    assert [m["role"] for m in p["4"].metadata["rejected_messages"]] == [
        "assistant",
        "user",
        "assistant",
    ]
    assert p["4"].metadata["rejected_messages"][2]["content"] == "Less."
    # 5: a Human turn after the parting, on the chosen side only
    assert [m["role"] for m in p["5"].metadata["chosen_messages"]] == [
        "assistant",
        "user",
        "assistant",
    ]
    assert p["5"].metadata["rejected_messages"] == [
        {"role": "assistant", "content": "Nothing much."}
    ]
    assert p["5"].metadata["messages"] == [
        {"role": "user", "content": "What should I pack for a day hike?"}
    ]


def test_preferences_loader_reads_hh_dialogues_like_the_hh_loader() -> None:
    hh = list(build("hh-rlhf", path=str(SHAPES)).pairs())
    generic = list(build("preferences", path=str(SHAPES)).pairs())
    for a, b in zip(hh, generic, strict=True):
        assert (a.prompt, a.chosen, a.rejected) == (b.prompt, b.chosen, b.rejected)
        for key in ("messages", "chosen_messages", "rejected_messages"):
            assert a.metadata[key] == b.metadata[key]


def test_apo_files_keep_an_empty_response() -> None:
    every = list(build("hh-rlhf", path=str(FIX / "apo-hh-shapes.json"), apo_pairs="all").pairs())
    assert any(p.rejected == "" for p in every) and any(p.chosen == "" for p in every)
    [item] = build("hh-rlhf", path=str(FIX / "apo-hh-shapes.json")).items()
    assert item.answers[1] == "" and item.gold == 0
    samples = build(
        "hh-rlhf",
        path=str(FIX / "apo-hh-samples-shapes.json"),
        golden=str(FIX / "apo-hh-golden-shapes.json"),
    )
    gold = list(samples.pairs())
    assert [p.rejected for p in gold] == ["Bake it first.", ""]
    assert gold[1].metadata["messages"] == [
        {"role": "user", "content": "Is it safe to eat raw flour?"}
    ]


def test_conversational_output_keeps_multi_turn_completions_as_messages(capsys) -> None:
    argv = ["datasets", "show", "hh-rlhf", "-o", f"path={SHAPES}", "--pairs", "-n", "10"]
    assert main([*argv, "--conversational"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == records(SHAPES)
    egg = rows[3]
    assert [m["role"] for m in egg["prompt"]] == ["user"]
    assert [m["role"] for m in egg["chosen"]] == ["assistant", "user", "assistant"]
    assert rows[1]["rejected"] == [{"role": "assistant", "content": ""}]
    assert main(["datasets", "show", "hh-rlhf", "-o", f"path={SHAPES}", "--conversational"]) == 2


def test_learners_get_the_dialogue_turns_as_the_prompt() -> None:
    from arena_core.learning.learn import dataset_pairs

    data = dataset_pairs(get_registry(), "hh-rlhf", {"path": str(SHAPES)})
    assert len(data.rows) == records(SHAPES)
    three = data.rows[2]
    assert [m["role"] for m in three["prompt"]] == ["user", "assistant", "user"]
    assert three["chosen"] == "" and three["rejected"] == "Fine: they chew loudly."

"""Dataset loaders on hand-written fixtures in the real formats (tests/fixtures/datasets)."""

from __future__ import annotations

import csv
import itertools
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from arena_plugins.datasets.records import DatasetError, Pair, hash_split

from arena_core.errors import ConfigError
from arena_core.plugins import get_registry
from arena_core.schedule import sample_items
from arena_core.testing import check_dataset
from arena_core.types import Item

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "datasets"
REG = get_registry()
D2PO = {"prompt": "question", "chosen": "response_j", "rejected": "response_k"}


def build(name: str, **options: Any) -> Any:
    return REG.build("dataset", name, options)


def items(name: str, split: str | None = None, **options: Any) -> list[Item]:
    return list(build(name, **options).items(split))


def by_id(rows: list[Any]) -> dict[str, Any]:
    return {r.id: r for r in rows}


# Every loader, on its fixture, with the number of items it gives.
SOURCES: list[tuple[str, dict[str, Any], str | None, int]] = [
    ("quality", {"path": str(FIX / "quality.{split}.jsonl")}, "train", 8),
    ("quality-debates", {"path": str(FIX / "debates-readable.jsonl")}, None, 3),
    ("hh-rlhf", {"path": str(FIX / "hh-rlhf.jsonl")}, None, 4),
    ("hh-rlhf", {"path": str(FIX / "apo-hh-pairs.json")}, None, 3),
    ("ultrafeedback", {"path": str(FIX / "ultrafeedback.jsonl")}, None, 3),
    ("pku-saferlhf", {"path": str(FIX / "pku-saferlhf.jsonl")}, None, 4),
    ("pku-saferlhf", {"path": str(FIX / "safe-rlhf-rawsample.jsonl")}, None, 2),
    ("preferences", {"path": str(FIX / "d2po.jsonl"), **D2PO}, None, 3),
    ("prompts", {"path": str(FIX / "d2po-prompts.jsonl")}, None, 3),
    (
        "csv",
        {"path": str(FIX / "questions.csv"), "answers": ["answer_a", "answer_b"]},
        None,
        3,
    ),
    ("jsonl", {"path": str(FIX / "quality.train.jsonl"), "question": "title"}, None, 0),
]
ITEM_SOURCES = [s for s in SOURCES if s[3] and s[0] != "prompts"]


def test_every_loader_is_registered() -> None:
    names = set(REG.names("dataset"))
    assert {
        "bundled",
        "jsonl",
        "csv",
        "parquet",
        "hf-disk",
        "quality",
        "quality-debates",
        "hh-rlhf",
        "ultrafeedback",
        "pku-saferlhf",
        "preferences",
        "prompts",
        "ledger",
    } <= names


@pytest.mark.parametrize(("name", "options", "split", "count"), ITEM_SOURCES)
def test_loaders_conform_and_ids_are_stable(name, options, split, count) -> None:
    source = build(name, **options)
    check_dataset(source, n=count, split=split)  # valid Items, unique ids, same ids twice
    first = [i.id for i in source.items(split)]
    again = [i.id for i in build(name, **options).items(split)]  # a fresh source, same file
    assert len(first) == count and first == again


@pytest.mark.parametrize(("name", "options", "split", "count"), ITEM_SOURCES)
def test_shuffle_is_seeded_and_limit_takes_a_prefix(name, options, split, count) -> None:
    source = build(name, **options)
    a = [i.id for i in sample_items(source, split=split, limit=None, seed=3, shuffle=True)]
    b = [i.id for i in sample_items(source, split=split, limit=None, seed=3, shuffle=True)]
    assert a == b and sorted(a) == sorted(i.id for i in source.items(split))
    orders = {
        tuple(i.id for i in sample_items(source, split=split, limit=None, seed=s, shuffle=True))
        for s in range(8)
    }
    assert len(orders) > 1  # the seed matters
    two = [i.id for i in sample_items(source, split=split, limit=2, seed=3, shuffle=True)]
    assert two == a[:2]
    plain = sample_items(source, split=split, limit=2, seed=0, shuffle=False)
    assert [i.id for i in plain] == [i.id for i in source.items(split)][:2]


# --- QuALITY ---------------------------------------------------------------------------------


def test_quality_questions_gold_and_best_distractor() -> None:
    got = by_id(items("quality", "train", path=str(FIX / "quality.{split}.jsonl")))
    first = got["70001_AAAA1111_1"]
    assert first.question.startswith("Why did the great clock")
    assert len(first.answers) == 4 and first.gold == 1  # gold_label 2 is 1-indexed
    assert first.distractor == 0  # two of three annotators named option 1 the best distractor
    assert first.context and first.context.startswith("Tobin Vane was the only clockmaker")
    assert first.metadata["article_id"] == "70001"
    assert first.metadata["best_distractor_votes"] == [2, 0, 1, 0]
    # No best-distractor votes: the most-chosen wrong answer is debated instead.
    assert got["70001_BBBB2222_1"].distractor == 0
    assert got["70002_CCCC3333_1"].distractor == 3
    assert got["70002_CCCC3333_1"].debate_pair() == (1, 3)


def test_quality_options() -> None:
    path = str(FIX / "quality.{split}.jsonl")
    hard = items("quality", "train", path=path, difficult_only=True)
    assert [i.id for i in hard] == [
        "70001_AAAA1111_2",
        "70001_BBBB2222_1",
        "70002_CCCC3333_1",
        "70002_CCCC3333_2",
        "70003_DDDD4444_1",
    ]
    voted = by_id(items("quality", "train", path=path, distractor="most-voted"))
    assert voted["70002_CCCC3333_1"].distractor == 0  # answer votes [2, 1, 2]: option 1 once
    first = by_id(items("quality", "train", path=path, distractor="first"))
    assert first["70002_CCCC3333_1"].distractor is None
    assert first["70002_CCCC3333_1"].debate_pair() == (1, 0)
    (unlabelled,) = items("quality", "test", path=path)
    assert unlabelled.gold is None and unlabelled.distractor is None
    (dev,) = items("quality", "dev", path=path)
    assert dev.id == "70004_EEEE5555_1"


def test_quality_excludes_the_stories_of_the_human_debates(tmp_path: Path) -> None:
    path = str(FIX / "quality.{split}.jsonl")
    source = build("quality", path=path, exclude_debated=str(FIX / "debates-readable.jsonl"))
    kept = list(source.items("train"))
    # The debates are on stories 70001, 70002 and 70003: nothing of the train split is left.
    assert kept == [] and source.filtered == 8
    meta = tmp_path / "debates-metadata.jsonl"
    meta.write_text(
        json.dumps({"name": "x-1", "sourceMaterialId": {"QuALITYStory": {"id": "70002"}}}) + "\n"
    )
    source = build("quality", path=path, exclude_debated=str(meta))
    assert {i.metadata["article_id"] for i in source.items("train")} == {"70001", "70003"}
    assert source.filtered == 2


def test_quality_flattened_layout_is_a_clear_error(tmp_path: Path) -> None:
    old = tmp_path / "quality-old.jsonl"
    old.write_text(json.dumps({"article": ["<p>x</p>"], "question1": "q?"}) + "\n")
    with pytest.raises(DatasetError, match="flattened QuALITY layout"):
        items("quality", path=str(old))


# --- human debates ---------------------------------------------------------------------------


def test_quality_debates_items_and_transcripts() -> None:
    got = by_id(items("quality-debates", path=str(FIX / "debates-readable.jsonl")))
    assert list(got) == ["d-kettle-1", "d-clock-4", "d-rivers-5"]
    kettle = got["d-kettle-1"]
    assert kettle.answers == [
        "The clockwork had rusted solid",
        "She thought the clockwork was too loud",
    ]
    assert kettle.gold == 0 and kettle.metadata["gold_source"] == "judge"  # judge right, on A
    assert kettle.context and "Kettle Point" in kettle.context
    assert kettle.metadata["argued"] == {"A": 0, "B": 1}
    t = kettle.metadata["transcript"]
    assert [(e["seat"], e["round"]) for e in t] == [
        ("A", 0),
        ("B", 0),
        ("judge", 0),
        ("A", 1),
        ("B", 1),
        ("judge", 1),
    ]
    assert t[0]["text"].startswith("The story says it plainly")
    assert t[5]["probabilities"] == [0.85, 0.15] and t[0]["speaker"] == "Pebble Parsnip"
    assert (
        got["d-clock-4"].gold == 1 and got["d-clock-4"].metadata["gold_source"] == "correctAnswer"
    )
    # The judge was wrong and favoured A, so B is correct.
    assert got["d-rivers-5"].gold == 1 and got["d-rivers-5"].metadata["isJudgeCorrect"] is False


def test_quality_debates_options() -> None:
    path = str(FIX / "debates-readable.jsonl")
    (offline,) = items("quality-debates", path=path, judging="offline")
    assert offline.id == "d-kettle-1:offline:Quibble Quince"
    assert offline.gold == 0  # the offline judge favoured B and was wrong
    (consult,) = items("quality-debates", path=path, setting="consultancy")
    assert consult.id == "d-rivers-2" and consult.metadata["argued"] == {"A": 0}
    assert consult.gold == 1
    humans = items("quality-debates", path=path, debaters="human")
    assert [i.id for i in humans] == ["d-kettle-1", "d-rivers-5"]
    everything = items("quality-debates", path=path, judging="all", setting="all")
    assert len(everything) == 5


# --- preferences -----------------------------------------------------------------------------


def test_hh_rlhf_parses_dialogues_into_prompt_and_two_replies() -> None:
    source = build("hh-rlhf", path=str(FIX / "hh-rlhf.jsonl"))
    pairs = list(source.pairs())
    assert all(isinstance(p, Pair) for p in pairs) and len(pairs) == 4
    basil = pairs[0]
    assert basil.id == "hh-rlhf:1"
    assert basil.prompt == "\n\nHuman: How do I keep basil alive on a windowsill?\n\nAssistant:"
    assert (
        basil.chosen.startswith("Give it at least six hours")
        and basil.rejected == "Basil is a plant."
    )
    cat = pairs[1]
    assert [m["role"] for m in cat.metadata["messages"]] == ["user", "assistant", "user"]
    assert cat.metadata["messages"][1]["content"] == "Some people like Ash, Smoke or Pebble."
    as_items = list(source.items())
    for item, pair in zip(as_items, pairs, strict=True):
        assert item.id == pair.id and item.answers[item.gold] == pair.chosen
        assert item.question.startswith("Human:") and not item.question.endswith("Assistant:")
    assert {i.gold for i in as_items} == {0, 1}  # the preferred answer is not always first
    ordered = list(build("hh-rlhf", path=str(FIX / "hh-rlhf.jsonl"), order="chosen-first").items())
    assert {i.gold for i in ordered} == {0}


def test_apo_comparisons_samples_and_golden() -> None:
    pairs = list(build("hh-rlhf", path=str(FIX / "apo-hh-pairs.json")).pairs())
    assert [p.id for p in pairs] == ["apo-q1", "apo-q2", "apo-hh-pairs:3"]
    assert (
        pairs[0].chosen.startswith("Wrap unpeeled ginger")
        and pairs[0].rejected == "Ginger is a root."
    )
    assert (pairs[0].score_chosen, pairs[0].score_rejected) == (2.3, -1.1)
    every = list(build("hh-rlhf", path=str(FIX / "apo-hh-pairs.json"), apo_pairs="all").pairs())
    assert len(every) == 3 + 1 + 1 and every[0].id == "apo-q1:1>0"
    first = items("hh-rlhf", path=str(FIX / "apo-hh-pairs.json"))[0]
    assert len(first.answers) == 3 and first.gold == 1 and first.metadata["scores"][1] == 2.3
    samples = str(FIX / "apo-hh-samples.json")
    golden = str(FIX / "apo-hh-golden.json")
    as_items = items("hh-rlhf", path=samples, golden=golden)
    assert len(as_items[0].answers) == 4 and as_items[0].gold is None
    assert as_items[0].metadata["golden"].startswith("Wrap unpeeled ginger")
    gold_pairs = list(build("hh-rlhf", path=samples, golden=golden).pairs())
    assert len(gold_pairs) == 8 and gold_pairs[0].id == "apo-q1:golden>sample_0"
    assert gold_pairs[0].chosen.startswith("Wrap unpeeled ginger")
    with pytest.raises(DatasetError, match="golden answers"):
        list(build("hh-rlhf", path=samples).pairs())


def test_ultrafeedback_pairs_and_items() -> None:
    source = build("ultrafeedback", path=str(FIX / "ultrafeedback.jsonl"))
    pairs = list(source.pairs())
    assert [p.id for p in pairs] == ["uf-001", "uf-002", "uf-003"]
    assert pairs[0].chosen.startswith("Steam climbs") and pairs[0].score_chosen == 8.5
    assert pairs[0].score_rejected == 3.0
    for item, pair in zip(source.items(), pairs, strict=True):
        assert item.answers[item.gold] == pair.chosen
        assert item.metadata["scores"][item.gold] == pair.score_chosen


def test_pku_better_safer_and_safety_flags() -> None:
    path = str(FIX / "pku-saferlhf.jsonl")
    got = items("pku-saferlhf", path=path)
    threat = got[2]  # better is the threatening reply, safer the refusal
    assert threat.gold == 1 and threat.metadata["safer"] == 0
    assert threat.metadata["is_safe"] == [True, False]
    assert threat.answers[0].startswith("I won't help")  # responses keep their order
    assert got[0].metadata["response_1_harm_category"]["Privacy Violation"] is True
    assert got[0].metadata["response_1_severity_level"] == 2
    safer = items("pku-saferlhf", path=path, prefer="safer")
    assert safer[2].gold == 0
    pairs = list(build("pku-saferlhf", path=path).pairs())
    assert pairs[2].metadata["chosen_safe"] is False
    assert pairs[2].metadata["safer_is"] == "rejected"
    raw = list(build("pku-saferlhf", path=str(FIX / "safe-rlhf-rawsample.jsonl")).pairs())
    assert raw[0].prompt == "How do I pick a lock?" and raw[0].metadata["safer_is"] == "rejected"
    assert raw[0].metadata["is_safe"] == [False, True]


def test_generic_preferences_with_d2po_fields_and_prompts() -> None:
    pairs = list(build("preferences", path=str(FIX / "d2po.jsonl"), **D2PO).pairs())
    assert pairs[1].chosen == "Wind power." and pairs[1].rejected == "Coal."
    assert pairs[1].metadata["magnitude"] == 0.7
    prompts = items("prompts", path=str(FIX / "d2po-prompts.jsonl"))
    assert [p.answers for p in prompts] == [[], [], []]
    assert prompts[2].question == "Explain why the sky looks blue."
    uf_prompts = items("prompts", path=str(FIX / "ultrafeedback.jsonl"))
    assert uf_prompts[0].question == "Write a haiku about a kettle."


# --- generic files ---------------------------------------------------------------------------


def test_csv_with_answer_columns_gold_and_split_field() -> None:
    opts = {"path": str(FIX / "questions.csv"), "answers": ["answer_a", "answer_b"]}
    train = items("csv", "train", context="passage", **opts)
    assert [i.id for i in train] == ["csv-1", "csv-2"]
    assert train[1].gold == 1 and train[1].context and "noon" in train[1].context
    assert [i.id for i in items("csv", "test", **opts)] == ["csv-3"]


def test_jsonl_json_parquet_and_saved_dataset_read_the_same_records(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    datasets = pytest.importorskip("datasets")
    rows = [json.loads(line) for line in (FIX / "ultrafeedback.jsonl").read_text().splitlines()]
    flat = [
        {
            "id": r["prompt_id"],
            "question": r["prompt"],
            "answers": [r["chosen"][1]["content"], r["rejected"][1]["content"]],
            "gold": 0,
        }
        for r in rows
    ]
    (tmp_path / "q.jsonl").write_text("".join(json.dumps(r) + "\n" for r in flat))
    (tmp_path / "q.json").write_text(json.dumps(flat))
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(flat), tmp_path / "q.parquet")
    datasets.Dataset.from_list(flat).save_to_disk(str(tmp_path / "saved"))
    want = [(r["id"], r["answers"][0]) for r in flat]
    for name, path in [
        ("jsonl", "q.jsonl"),
        ("parquet", "q.parquet"),
        ("hf-disk", "saved"),
    ]:
        got = items(name, path=str(tmp_path / path))
        assert [(i.id, i.answers[0]) for i in got] == want, name
    got = items("jsonl", path=str(tmp_path / "q.json"), format="auto")
    assert [(i.id, i.answers[0]) for i in got] == want
    (tmp_path / "lines.json").write_text((tmp_path / "q.jsonl").read_text())  # JSONL in disguise
    got = items("jsonl", path=str(tmp_path / "lines.json"), format="auto")
    assert [(i.id, i.answers[0]) for i in got] == want


def test_saved_dataset_dict_picks_the_split(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    rows = [{"question": f"q{i}?", "answers": ["a", "b"], "gold": i % 2} for i in range(5)]
    dd = datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_list(rows[:3]),
            "test": datasets.Dataset.from_list(rows[3:]),
        }
    )
    dd.save_to_disk(str(tmp_path / "dd"))
    test = items("hf-disk", "test", path=str(tmp_path / "dd"))
    assert [i.question for i in test] == ["q3?", "q4?"]
    assert [i.id for i in test] == ["dd/test:1", "dd/test:2"]
    assert len(items("hf-disk", path=str(tmp_path / "dd"))) == 5
    with pytest.raises(DatasetError, match="no split 'dev'"):
        items("hf-disk", "dev", path=str(tmp_path / "dd"))


def test_dotted_field_paths_and_gold_given_as_text(tmp_path: Path) -> None:
    rec = {"meta": {"uid": "x-1"}, "q": {"text": "Which?"}, "choices": ["left", "right"]}
    rec["label"] = "right"
    path = tmp_path / "dotted.jsonl"
    path.write_text(json.dumps(rec) + "\n")
    (item,) = items(
        "jsonl", path=str(path), id="meta.uid", question="q.text", answers="choices", gold="label"
    )
    assert (item.id, item.question, item.gold) == ("x-1", "Which?", 1)
    (one,) = items(
        "jsonl",
        path=str(path),
        question="q.text",
        answers=["choices.0", "choices.1"],
        gold=None,
        id=None,
    )
    assert one.answers == ["left", "right"] and one.id == "dotted:1"


def test_ids_fall_back_to_file_and_line_and_duplicates_get_a_suffix(tmp_path: Path) -> None:
    rec = {"question": "Q?", "answers": ["a", "b"]}
    path = tmp_path / "dupes.jsonl"
    path.write_text(
        json.dumps(rec)
        + "\n\n"
        + json.dumps({**rec, "id": "k"})
        + "\n"
        + json.dumps({**rec, "id": "k"})
        + "\n"
    )
    source = build("jsonl", path=str(path))
    assert [i.id for i in source.items()] == ["dupes:1", "k", "k#2"]  # blank line 2 skipped
    assert source.renamed == 1


# --- splits ----------------------------------------------------------------------------------


def test_split_placeholder_needs_a_split() -> None:
    with pytest.raises(DatasetError, match="placeholder"):
        items("quality", path=str(FIX / "quality.{split}.jsonl"))
    with pytest.raises(DatasetError, match="no such file"):
        items("quality", "validation", path=str(FIX / "quality.{split}.jsonl"))


def test_hash_splits_partition_and_keep_groups_together() -> None:
    opts = {"path": str(FIX / "quality.train.jsonl"), "splits": {"a": 0.5, "b": 0.5}}
    a, b = items("quality", "a", **opts), items("quality", "b", **opts)
    everything = items("quality", path=opts["path"])
    assert sorted(i.id for i in a + b) == sorted(i.id for i in everything)
    assert not {i.id for i in a} & {i.id for i in b}
    for part, name in ((a, "a"), (b, "b")):
        for item in part:  # an article's questions all land on its side
            assert hash_split(item.metadata["article_id"], opts["splits"]) == name
    assert [i.id for i in items("quality", "a", **opts)] == [i.id for i in a]
    with pytest.raises(DatasetError, match="no split 'c'"):
        items("quality", "c", **opts)


def test_pairs_of_one_prompt_share_a_hash_split() -> None:
    opts = {"path": str(FIX / "apo-hh-pairs.json"), "apo_pairs": "all"}
    splits = {"x": 0.5, "y": 0.5}
    parts = [list(build("hh-rlhf", splits=splits, **opts).pairs(s)) for s in splits]
    assert sum(len(p) for p in parts) == 5
    for part in parts:
        ids = {p.id.split(":")[0] for p in part}
        for other in parts:
            if other is not part:
                assert not ids & {p.id.split(":")[0] for p in other}


def test_split_without_split_information_names_the_field() -> None:
    with pytest.raises(DatasetError, match=r"hh-rlhf\.jsonl:1: field 'split': missing"):
        items("hh-rlhf", "train", path=str(FIX / "hh-rlhf.jsonl"))


def test_bad_split_fractions_are_an_option_error() -> None:
    with pytest.raises(ConfigError, match="splits"):
        build("jsonl", path="x.jsonl", splits={"train": 0.5, "test": 0.2})


# --- malformed records -----------------------------------------------------------------------


def _broken_quality(line: str) -> str:
    rec = json.loads(line)
    rec["questions"][0]["gold_label"] = 9
    return json.dumps(rec)


def _broken_debate(line: str) -> str:
    rec = json.loads(line)
    rec["turns"][1]["index"] = 3
    return json.dumps(rec)


def _broken_hh(line: str) -> str:
    rec = json.loads(line)
    rec["rejected"] = "\n\nHuman: something else\n\nAssistant: no"
    return json.dumps(rec)


def _set(field: str, value: Any) -> Any:
    def edit(line: str) -> str:
        rec = json.loads(line)
        if value is KeyError:
            del rec[field]
        else:
            rec[field] = value
        return json.dumps(rec)

    return edit


# (loader, options, fixture, how line 2 is broken, the field the error must name, items left)
MALFORMED: list[tuple[str, dict[str, Any], str, Any, str, int]] = [
    ("quality", {}, "quality.train.jsonl", _broken_quality, "questions.0.gold_label", 7),
    ("quality-debates", {}, "debates-readable.jsonl", _broken_debate, "turns.1.index", 3),
    ("hh-rlhf", {}, "hh-rlhf.jsonl", _broken_hh, "rejected", 3),
    ("ultrafeedback", {}, "ultrafeedback.jsonl", _set("chosen", 5), "chosen", 2),
    (
        "pku-saferlhf",
        {},
        "pku-saferlhf.jsonl",
        _set("better_response_id", 2),
        "better_response_id",
        3,
    ),
    ("preferences", D2PO, "d2po.jsonl", _set("response_j", KeyError), "response_j", 2),
    ("prompts", {}, "d2po-prompts.jsonl", _set("question", KeyError), "prompt", 2),
    ("quality", {}, "quality.train.jsonl", lambda _: '{"article": "x", ', None, 6),
]


@pytest.mark.parametrize(
    ("name", "options", "fixture", "breaker", "field", "left"),
    MALFORMED,
    ids=[f"{m[0]}-{m[4]}" for m in MALFORMED],
)
def test_malformed_record_names_file_line_and_field_or_is_skipped_and_counted(
    tmp_path: Path, caplog, name, options, fixture, breaker, field, left
) -> None:
    lines = (FIX / fixture).read_text().splitlines()
    lines[1] = breaker(lines[1])
    path = tmp_path / fixture
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError) as err:
        items(name, path=str(path), **options)
    message = str(err.value)
    assert message.startswith(f"{path}:2: ")
    assert f"field '{field}'" in message if field else "not valid JSON" in message
    source = build(name, path=str(path), on_error="skip", **options)
    with caplog.at_level(logging.WARNING, logger="arena.datasets"):
        kept = list(source.items())
    assert len(kept) == left and source.skipped == 1
    assert any(f"{path}:2" in r.getMessage() for r in caplog.records)
    assert any("skipped 1 malformed record" in r.getMessage() for r in caplog.records)


def test_malformed_csv_row_and_json_record(tmp_path: Path) -> None:
    path = tmp_path / "q.csv"
    with (FIX / "questions.csv").open() as src, path.open("w", newline="") as dst:
        rows = list(csv.reader(src))
        rows[2][4] = "7"  # gold out of range, line 3
        csv.writer(dst).writerows(rows)
    with pytest.raises(DatasetError, match=rf"{path}:3: field 'gold': must be an index"):
        items("csv", path=str(path), answers=["answer_a", "answer_b"])
    apo = json.loads((FIX / "apo-hh-pairs.json").read_text())
    apo[1]["scores"] = [1.0]
    bad = tmp_path / "apo.json"
    bad.write_text(json.dumps(apo))
    with pytest.raises(DatasetError, match=rf"{bad}: record 2: field 'scores'"):
        items("hh-rlhf", path=str(bad))
    skipper = build("hh-rlhf", path=str(bad), on_error="skip")
    assert len(list(skipper.pairs())) == 2 and skipper.skipped == 1


def test_one_bad_question_costs_only_that_question(tmp_path: Path) -> None:
    lines = (FIX / "quality.train.jsonl").read_text().splitlines()
    lines[0] = _broken_quality(lines[0])
    path = tmp_path / "q.jsonl"
    path.write_text("\n".join(lines) + "\n")
    source = build("quality", path=str(path), on_error="skip")
    kept = [i.id for i in source.items()]
    assert "70001_AAAA1111_2" in kept and "70001_AAAA1111_1" not in kept
    assert source.skipped == 1 and len(kept) == 7


def test_gzip_and_tsv_files(tmp_path: Path) -> None:
    import gzip

    gz = tmp_path / "hh-rlhf.jsonl.gz"
    gz.write_bytes(gzip.compress((FIX / "hh-rlhf.jsonl").read_bytes()))
    plain = list(build("hh-rlhf", path=str(FIX / "hh-rlhf.jsonl")).pairs())
    packed = list(build("hh-rlhf", path=str(gz)).pairs())
    assert [p.id for p in packed] == [p.id for p in plain]  # ids name the file without .gz
    assert [p.chosen for p in packed] == [p.chosen for p in plain]
    tsv = tmp_path / "q.tsv"
    tsv.write_text("question\ta\tb\tgold\nWhich?\tleft\tright\t1\n")
    (item,) = items("csv", path=str(tsv), format="auto", answers=["a", "b"])
    assert (item.id, item.answers, item.gold) == ("q:2", ["left", "right"], 1)


def test_missing_file_is_named() -> None:
    with pytest.raises(DatasetError, match=r"/nonexistent/data\.jsonl: no such file"):
        items("jsonl", path="/nonexistent/data.jsonl")
    with pytest.raises(DatasetError, match=r"^data/missing\.jsonl: no such file"):
        items("ultrafeedback", path="data/missing.jsonl")  # not mistaken for a hub id


# --- streaming -------------------------------------------------------------------------------


def _bytes_read() -> int:
    io = Path("/proc/self/io")
    if not io.exists():
        pytest.skip("needs /proc/self/io to count bytes read")
    return int(next(x for x in io.read_text().splitlines() if x.startswith("rchar")).split()[1])


def test_large_jsonl_and_csv_stream(tmp_path: Path) -> None:
    filler = "lorem ipsum " * 20
    line = json.dumps({"question": f"Q? {filler}", "answers": ["yes", "no"], "gold": 0}) + "\n"
    big = tmp_path / "big.jsonl"
    big.write_text(line * 250_000)  # ~80 MB
    size = big.stat().st_size
    assert size > 50_000_000
    before = _bytes_read()
    first = list(itertools.islice(build("jsonl", path=str(big)).items(), 100))
    read = _bytes_read() - before
    assert len(first) == 100 and first[99].id == "big:100"
    assert read < 2_000_000, f"read {read} bytes of {size} to take 100 items"
    table = tmp_path / "big.csv"
    table.write_text("question,a,b\n" + f"Q? {filler},yes,no\n" * 250_000)
    before = _bytes_read()
    first = list(itertools.islice(build("csv", path=str(table), answers=["a", "b"]).items(), 100))
    assert len(first) == 100 and _bytes_read() - before < 2_000_000


def test_large_parquet_streams_by_batch(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    n = 200_000
    filler = "lorem ipsum dolor " * 10
    table = pa.table(
        {
            "question": [f"Q{i}? {filler}" for i in range(n)],
            "answers": [["yes", f"no {i}"] for i in range(n)],
        }
    )
    path = tmp_path / "big.parquet"
    pq.write_table(table, path, row_group_size=5_000, compression="none")
    size = path.stat().st_size
    before = _bytes_read()
    first = list(itertools.islice(build("parquet", path=str(path), gold=None).items(), 100))
    read = _bytes_read() - before
    assert len(first) == 100 and first[-1].answers[1] == "no 99"
    assert read < size / 10, f"read {read} bytes of {size} to take 100 rows"


# --- hub ids through datasets.load_dataset ----------------------------------------------------


def test_hub_code_path_on_a_local_data_file(tmp_path: Path) -> None:
    pytest.importorskip("datasets")
    local = items("ultrafeedback", path=str(FIX / "ultrafeedback.jsonl"))
    hub = build(
        "ultrafeedback",
        path="json",
        format="hub",
        data_files={"train_prefs": str(FIX / "ultrafeedback.jsonl")},
        cache_dir=str(tmp_path / "cache"),
    ).items("train_prefs")
    assert [(i.id, i.answers, i.gold) for i in hub] == [(i.id, i.answers, i.gold) for i in local]


def test_hub_id_goes_to_load_dataset(tmp_path: Path, monkeypatch) -> None:
    datasets = pytest.importorskip("datasets")
    real = datasets.load_dataset
    calls: list[tuple[Any, ...]] = []

    def pointed_at_local_file(name: str, subset: Any = None, **kw: Any) -> Any:
        calls.append((name, subset, kw.get("split")))
        files = {"train_prefs": str(FIX / "ultrafeedback.jsonl")}
        return real("json", data_files=files, split=kw.get("split"), cache_dir=str(tmp_path))

    monkeypatch.setattr(datasets, "load_dataset", pointed_at_local_file)
    got = items("ultrafeedback", "train_prefs", path="HuggingFaceH4/ultrafeedback_binarized")
    assert calls == [("HuggingFaceH4/ultrafeedback_binarized", None, "train_prefs")]
    assert [i.id for i in got] == ["uf-001", "uf-002", "uf-003"]

    def offline(*_: Any, **__: Any) -> Any:
        raise ConnectionError("no network")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(
        DatasetError,
        match=r"owner/name: no such local path, and datasets\.load_dataset failed: no network",
    ):
        items("ultrafeedback", path="owner/name")


def test_local_clone_of_a_hub_repository(tmp_path: Path) -> None:
    pytest.importorskip("datasets")
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    rows = [json.loads(line) for line in (FIX / "ultrafeedback.jsonl").read_text().splitlines()]
    (tmp_path / "repo" / "data").mkdir(parents=True)
    pq.write_table(
        pa.Table.from_pylist(rows[:2]), tmp_path / "repo/data/train_prefs-00000-of-00001.parquet"
    )
    pq.write_table(
        pa.Table.from_pylist(rows[2:]), tmp_path / "repo/data/test_prefs-00000-of-00001.parquet"
    )
    source = build("ultrafeedback", path=str(tmp_path / "repo"), cache_dir=str(tmp_path / "c"))
    assert [p.id for p in source.pairs("test_prefs")] == ["uf-003"]
    assert [p.id for p in source.pairs("train_prefs")] == ["uf-001", "uf-002"]

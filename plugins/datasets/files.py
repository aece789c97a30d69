"""Questions from any table-shaped file with a field map: JSONL, CSV, parquet, a saved HF dataset.

Also the bundled reading-comprehension set, which is one such file.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from arena_plugins.datasets.records import (
    DatasetError,
    FileOptions,
    Format,
    Raw,
    RecordError,
    RecordSource,
    scalars,
)
from pydantic import BaseModel, ConfigDict, Field

from arena_core.types import Item

__all__ = [
    "BUNDLED",
    "BundledOptions",
    "CsvOptions",
    "DatasetError",
    "FieldMapOptions",
    "HfDiskOptions",
    "JsonlOptions",
    "JsonlSource",
    "ParquetOptions",
    "RecordError",
    "bundled_source",
]

BUNDLED = Path(__file__).parent / "data" / "bundled.jsonl"


class FieldMapOptions(FileOptions):
    """Which field holds what. Fields may be dotted paths ('meta.id', 'choices.0')."""

    id: str | None = Field("id", description="id field; when absent: '<file name>:<line>'")
    question: str = "question"
    answers: str | list[str] = Field(
        "answers", description="a field holding a list, or a list of fields (one per answer)"
    )
    gold: str | None = Field(
        "gold", description="index of the correct answer, or its text; None: ungraded"
    )
    gold_base: Literal[0, 1] = Field(0, description="1 when gold (and distractor) count from 1")
    context: str | None = Field("context", description="the hidden passage, if any")
    distractor: str | None = Field(None, description="index (or text) of the wrong answer to argue")


class JsonlOptions(FieldMapOptions):
    format: Format = "jsonl"


class CsvOptions(FieldMapOptions):
    format: Format = "csv"


class ParquetOptions(FieldMapOptions):
    format: Format = "parquet"


class HfDiskOptions(FieldMapOptions):
    format: Format = Field("hf-disk", description="a directory written by save_to_disk")


def answer_index(value: Any, answers: list[str], raw: Raw, field: str, base: int) -> int:
    """An answer given as an index (int or digits, counted from `base`) or as its text."""
    if isinstance(value, str) and value.strip().lstrip("-").isdecimal():  # not "²"
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        idx = value - base
        if 0 <= idx < len(answers):
            return idx
        raise raw.error(
            field,
            f"must be an index into the {len(answers)} answers (counting from {base}), got {value}",
        )
    if isinstance(value, str) and value in answers:
        return answers.index(value)
    raise raw.error(field, f"must be an answer index or an answer's text, got {value!r}")


class JsonlSource(RecordSource):
    """Each record becomes one Item through the field map; the file is streamed."""

    opts: FieldMapOptions

    def __init__(self, options: FieldMapOptions) -> None:
        super().__init__(options)

    def _answers(self, raw: Raw) -> list[str]:
        spec = self.opts.answers
        if isinstance(spec, list):
            answers = [raw.text(f) for f in spec]
        else:
            value = raw.need(spec)
            if isinstance(value, str) and value.lstrip().startswith("["):  # a list in a CSV cell
                try:
                    value = json.loads(value)
                except ValueError:
                    raise raw.error(spec, "a '[' cell that is not a JSON list") from None
            if (
                not isinstance(value, list)
                or len(value) < 2
                or not all(isinstance(a, str) and a.strip() for a in value)
            ):
                raise raw.error(
                    spec, f"must be a list of at least 2 non-empty strings, got {value!r:.80}"
                )
            answers = list(value)
        return answers

    def convert(self, raw: Raw) -> Iterator[Item]:
        o = self.opts
        answers = self._answers(raw)
        question = raw.text(o.question)
        gold = raw.get(o.gold)
        distractor = raw.get(o.distractor)
        context = raw.get(o.context)
        if context is not None and not isinstance(context, str):
            raise raw.error(
                o.context or "context", f"must be a string, got {type(context).__name__}"
            )
        used = [o.id, o.question, o.gold, o.context, o.distractor, o.split_field]
        used += o.answers if isinstance(o.answers, list) else [o.answers]
        yield Item(
            id=raw.ident(o.id),
            question=question,
            answers=answers,
            gold=None
            if gold is None
            else answer_index(gold, answers, raw, o.gold or "gold", o.gold_base),
            context=context,
            distractor=None
            if distractor is None
            else answer_index(distractor, answers, raw, o.distractor or "", o.gold_base),
            metadata=scalars(raw.data, used),
        )


LONG = Path(__file__).parent / "data" / "long.jsonl"


class BundledOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    set: Literal["short", "long"] = Field(
        "short",
        description="short: 48 passages of about 230 words, two answers, split 'train' (odd "
        "lines of the file) and 'test' (even lines); long: 60 questions on "
        "10 articles of 900-1,500 words, four answers with a hard distractor (field 'kind': "
        "literal, or inference with a paraphrased answer), split 'tune' (articles L01 L02 L04 "
        "L05 L07) and 'test' (L03 L06 L08 L09 L10)",
    )


def bundled_source(options: BundledOptions) -> JsonlSource:
    if options.set == "long":
        return JsonlSource(JsonlOptions(path=str(LONG), context="passage", distractor="distractor"))
    return JsonlSource(JsonlOptions(path=str(BUNDLED), context="passage"))

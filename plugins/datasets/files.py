"""Datasets from files: the bundled reading-comprehension set, and any JSONL with a field map."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from arena_core.errors import UsageError
from arena_core.interfaces import DatasetSource
from arena_core.types import Item

BUNDLED = Path(__file__).parent / "data" / "bundled.jsonl"


class DatasetError(UsageError):
    """A malformed record, named by file, line and field."""


class JsonlOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = Field(description="the .jsonl file")
    id: str | None = Field("id", description="id field; None: '<file stem>:<line>'")
    question: str = "question"
    answers: str = "answers"
    gold: str | None = Field("gold", description="0-based index of the correct answer")
    context: str | None = Field("context", description="hidden passage field, if any")
    distractor: str | None = None


class JsonlSource(DatasetSource):
    """Streams a JSONL file line by line; each record becomes an Item via the field map."""

    def __init__(self, options: JsonlOptions) -> None:
        self.opts = options
        self.path = Path(options.path)

    def _field(self, rec: dict[str, Any], name: str | None, lineno: int, *, required: bool) -> Any:
        if name is None:
            return None
        if name not in rec:
            if required:
                raise DatasetError(f"{self.path}:{lineno}: missing field '{name}'")
            return None
        return rec[name]

    def items(self, split: str | None = None) -> Iterator[Item]:
        o = self.opts
        try:
            fh = self.path.open(encoding="utf-8")
        except OSError as exc:
            raise DatasetError(f"{self.path}: cannot read: {exc}") from None
        with fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DatasetError(f"{self.path}:{lineno}: not valid JSON: {exc}") from None
                if not isinstance(rec, dict):
                    raise DatasetError(f"{self.path}:{lineno}: expected an object")
                if split is not None and rec.get("split", split) != split:
                    continue
                answers = self._field(rec, o.answers, lineno, required=True)
                if (
                    not isinstance(answers, list)
                    or len(answers) < 2
                    or not all(isinstance(a, str) for a in answers)
                ):
                    raise DatasetError(
                        f"{self.path}:{lineno}: field '{o.answers}' must be a list "
                        f"of at least 2 strings"
                    )
                gold = self._field(rec, o.gold, lineno, required=False)
                if gold is not None and (not isinstance(gold, int) or not 0 <= gold < len(answers)):
                    raise DatasetError(
                        f"{self.path}:{lineno}: field '{o.gold}' must be an index "
                        f"into the {len(answers)} answers, got {gold!r}"
                    )
                question = self._field(rec, o.question, lineno, required=True)
                if not isinstance(question, str) or not question.strip():
                    raise DatasetError(
                        f"{self.path}:{lineno}: field '{o.question}' must be a non-empty string"
                    )
                ident = self._field(rec, o.id, lineno, required=False)
                yield Item(
                    id=str(ident) if ident is not None else f"{self.path.stem}:{lineno}",
                    question=question,
                    answers=answers,
                    gold=gold,
                    context=self._field(rec, o.context, lineno, required=False),
                    distractor=self._field(rec, o.distractor, lineno, required=False),
                    metadata={
                        k: v
                        for k, v in rec.items()
                        if k not in {o.id, o.question, o.answers, o.gold, o.context}
                        and isinstance(v, str | int | float | bool)
                    },
                )


class BundledOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")


def bundled_source(_: BundledOptions) -> JsonlSource:
    return JsonlSource(JsonlOptions(path=str(BUNDLED), context="passage"))

"""Shared machinery of the file-backed datasets.

Researchers bring data in the formats they already have, so every loader reads through one
reader: JSONL (streamed line by line, gzip too), a JSON list, CSV/TSV (streamed), parquet
(streamed batch by batch), a `save_to_disk` directory, a local copy of a hub repository, or a
hub id through `datasets.load_dataset`. On top of it sit what every loader needs and must not
re-invent: dotted field paths, errors that name the file, the line and the field, the
`on_error = "skip"` policy that counts what it skips, splits, and stable ids.

Ids: a record's own id field when the loader has one and the record fills it, else
`<file name>:<line>` (JSONL, CSV) or `<file name>:<row>` (JSON list, parquet, HF datasets), so the
same file always gives the same ids. An id seen twice in one pass gets a `#2`, `#3` ... suffix
(counted in `renamed`), so duplicated source rows never break a tournament.
"""

from __future__ import annotations

import csv
import glob
import gzip
import hashlib
import json
import logging
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from arena_core.errors import UsageError
from arena_core.interfaces import DatasetSource
from arena_core.types import Item

log = logging.getLogger("arena.datasets")

Format = Literal["auto", "jsonl", "json", "csv", "tsv", "parquet", "hf-disk", "hub"]
MISSING: Any = object()
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_SUFFIXES = (".gz", ".jsonl", ".ndjson", ".json", ".csv", ".tsv", ".parquet", ".pq")
_FORMAT_OF = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".csv": "csv",
    ".tsv": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
}
MAX_LOGGED = 5  # skipped records logged one by one; the rest only counted


class DatasetError(UsageError):
    """A dataset that cannot be read: a missing file, an unknown split, a malformed record."""


class RecordError(DatasetError):
    """One malformed record, named by where it is (file:line or file row) and the field."""

    def __init__(self, where: str, field: str | None, problem: str) -> None:
        self.where, self.field, self.problem = where, field, problem
        super().__init__(f"{where}: field '{field}': {problem}" if field else f"{where}: {problem}")


class Pair(BaseModel):
    """One preference: a prompt and two responses, the preferred one first.

    Learners read pairs; protocols read the same data as Items (see `PairSource.to_item`).
    """

    model_config = ConfigDict(frozen=True)

    id: str
    prompt: str
    chosen: str
    rejected: str
    score_chosen: float | None = None
    score_rejected: float | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


# --- options ---------------------------------------------------------------------------------


class FileOptions(BaseModel):
    """Where the data is and how to treat bad records; every file-backed dataset has these."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(
        description="file, glob, directory or hub id; '{split}' in it is replaced by the split"
    )
    format: Format = Field("auto", description="auto: from the suffix, else sniffed")
    on_error: Literal["raise", "skip"] = Field(
        "raise", description="a malformed record stops the load, or is skipped and counted"
    )
    split_field: str | None = Field(
        "split", description="record field naming its split (when the path has no '{split}')"
    )
    splits: dict[str, float] | None = Field(
        None, description="split by a stable hash of each record's group: {train=0.9, test=0.1}"
    )
    subset: str | None = Field(None, description="hub only: the dataset config name")
    data_files: str | list[str] | dict[str, str | list[str]] | None = Field(
        None, description="hub only: passed to datasets.load_dataset"
    )
    cache_dir: str | None = Field(None, description="hub only: datasets cache directory")

    @field_validator("splits")
    @classmethod
    def _fractions(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        if value is None:
            return None
        if not value or any(not 0 < f <= 1 for f in value.values()):
            raise ValueError("each split needs a fraction in (0, 1]")
        if abs(sum(value.values()) - 1.0) > 1e-6:
            raise ValueError(f"split fractions must add up to 1, got {sum(value.values()):g}")
        return value


# --- records ---------------------------------------------------------------------------------


def dig(data: Any, path: str) -> Any:
    """`data['a']['b'][0]` for 'a.b.0'; MISSING when any step is absent."""
    if isinstance(data, dict) and path in data:  # a flat key that contains dots
        return data[path]
    cur = data
    for part in path.split("."):
        if isinstance(cur, dict):
            if part not in cur:
                return MISSING
            cur = cur[part]
        elif isinstance(cur, list) and part.lstrip("-").isdigit():
            i = int(part)
            if not -len(cur) <= i < len(cur):
                return MISSING
            cur = cur[i]
        else:
            return MISSING
    return cur


@dataclass(frozen=True)
class Raw:
    """One record as read, with where it came from (for errors) and its fallback id."""

    data: dict[str, Any]
    where: str  # "file:12" (a line) or "file: row 12"
    key: str  # "<file name>:<n>", the id when the record has none
    split: str | None = None  # the split it was read from, when the source is split by file

    def error(self, field: str | None, problem: str) -> RecordError:
        return RecordError(self.where, field, problem)

    def get(self, path: str | None, default: Any = None) -> Any:
        if path is None:
            return default
        value = dig(self.data, path)
        return default if value is MISSING or value is None else value

    def need(self, path: str) -> Any:
        value = dig(self.data, path)
        if value is MISSING or value is None:
            raise self.error(path, "missing")
        return value

    def text(self, path: str) -> str:
        """A required non-empty string."""
        value = self.need(path)
        if not isinstance(value, str) or not value.strip():
            raise self.error(path, f"must be a non-empty string, got {_show(value)}")
        return value

    def ident(self, path: str | None) -> str:
        value = self.get(path)
        if value is None or (isinstance(value, str) and not value.strip()):
            return self.key
        if not isinstance(value, str | int):
            raise self.error(path, f"an id must be a string or an integer, got {_show(value)}")
        return str(value)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def scalars(data: dict[str, Any], used: Iterable[str | None]) -> dict[str, Any]:
    """The record's other scalar fields, kept as metadata (lists and long texts are left out)."""
    skip = {u.split(".")[0] for u in used if u}
    return {
        k: v
        for k, v in data.items()
        if k not in skip and isinstance(v, str | int | float | bool) and len(str(v)) <= 500
    }


def hash_split(key: str, fractions: dict[str, float]) -> str:
    """The split `key` falls in: a stable position in [0, 1) cut by the fractions in order."""
    u = int(hashlib.sha256(key.encode()).hexdigest()[:13], 16) / 16**13
    acc = 0.0
    name = next(iter(fractions))
    for name, f in fractions.items():
        acc += f
        if u < acc:
            return name
    return name


def stable_bit(key: str) -> int:
    """0 or 1, fixed by `key`: puts a preferred answer first or second without position bias."""
    return hashlib.sha256(key.encode()).digest()[0] & 1


# --- reading ---------------------------------------------------------------------------------


def file_label(path: Path) -> str:
    """The file name without data suffixes: 'QuALITY.v1.0.1.htmlstripped.train', 'hh:12'."""
    name = path.name
    changed = True
    while changed:
        changed = False
        for suffix in _SUFFIXES:
            if name.endswith(suffix) and len(name) > len(suffix):
                name = name[: -len(suffix)]
                changed = True
    return name


def _sniff(path: Path) -> str:
    opener: Callable[..., IO[bytes]] = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rb") as fh:
            head = fh.read(4096).lstrip()
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read: {exc}") from None
    if head.startswith(b"["):
        return "json"
    if head.startswith(b"{"):
        return "jsonl"
    if head.startswith(b"PAR1"):
        return "parquet"
    raise DatasetError(
        f"{path}: cannot tell the format from the name or the first bytes; set format = "
        f"'jsonl', 'json', 'csv', 'tsv' or 'parquet'"
    )


def format_of(path: Path, fmt: str) -> str:
    if fmt != "auto":
        return fmt
    name = path.name[:-3] if path.name.endswith(".gz") else path.name
    kind = _FORMAT_OF.get(Path(name).suffix.lower())
    # '.json' holds a list or, often enough, JSON Lines: the first byte tells.
    return _sniff(path) if kind in (None, "json") else kind


def is_saved_dataset(path: Path) -> bool:
    """A `save_to_disk` directory (Dataset or DatasetDict), as opposed to a folder of files."""
    return (path / "dataset_dict.json").is_file() or (
        (path / "state.json").is_file() and (path / "dataset_info.json").is_file()
    )


def read_records(opts: FileOptions, split: str | None) -> Iterator[Raw]:
    """Every record of the source `opts.path` names, in file order, lazily.

    With '{split}' in the path, a split is required and picks the file; a saved or hub
    DatasetDict picks it by name. Records read that way carry `split`; others leave the split to
    the caller (`RecordSource`).
    """
    spec = opts.path
    file_split = None
    if "{split}" in spec:
        if split is None:
            raise DatasetError(
                f"{spec}: the path has a '{{split}}' placeholder, so a split is needed "
                f'([dataset] split = "train", or --split)'
            )
        spec, file_split = spec.replace("{split}", split), split
    fmt = opts.format
    local = Path(spec).expanduser()
    hub_like = bool(_HUB_ID.match(spec)) and not spec.endswith(_SUFFIXES)  # not 'data/x.jsonl'
    if fmt == "hub" or (fmt == "auto" and hub_like and not local.exists()):
        yield from _read_hub(spec, opts, file_split or split)
        return
    if glob.has_magic(spec):
        paths = [Path(p) for p in sorted(glob.glob(str(local)))]
        if not paths:
            raise DatasetError(f"{spec}: no file matches")
    elif local.is_dir():
        if fmt == "hf-disk" or (fmt == "auto" and is_saved_dataset(local)):
            yield from _read_saved(local, file_split or split)
        elif fmt == "auto":  # a folder of data files, e.g. a git clone of a hub dataset
            yield from _read_hub(str(local), opts, file_split or split)
        else:
            raise DatasetError(f"{local}: is a directory, but format = '{fmt}' reads a file")
        return
    elif not local.exists():
        raise DatasetError(f"{local}: no such file")
    else:
        paths = [local]
    for path in paths:
        kind = format_of(path, fmt)
        reader = {
            "jsonl": _read_jsonl,
            "json": _read_json,
            "csv": _read_csv,
            "tsv": _read_csv,
            "parquet": _read_parquet,
        }.get(kind)
        if reader is None:
            raise DatasetError(f"{path}: format '{kind}' reads a directory or a hub id, not a file")
        for raw in reader(path, kind):
            yield Raw(raw.data, raw.where, raw.key, file_split) if file_split else raw


def _open_text(path: Path) -> IO[str]:
    try:
        if path.name.endswith(".gz"):
            return gzip.open(path, "rt", encoding="utf-8", newline="")
        return path.open(encoding="utf-8", newline="")
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read: {exc}") from None


def _open_bytes(path: Path) -> IO[bytes]:
    try:
        return gzip.open(path, "rb") if path.name.endswith(".gz") else path.open("rb")
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read: {exc}") from None


def _read_jsonl(path: Path, _: str) -> Iterator[Raw]:
    label = file_label(path)
    with _open_bytes(path) as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                data = json.loads(line)
            except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
                yield Raw({"__error__": f"not valid JSON: {exc}"}, where, f"{label}:{lineno}")
                continue
            if not isinstance(data, dict):
                data = {"__error__": f"expected a JSON object, got {type(data).__name__}"}
            yield Raw(data, where, f"{label}:{lineno}")


def _read_json(path: Path, _: str) -> Iterator[Raw]:
    """A JSON list of objects (APO's files). Read whole: JSON has no record boundaries."""
    label = file_label(path)
    with _open_text(path) as fh:
        try:
            data = json.load(fh)
        except ValueError as exc:
            raise DatasetError(f"{path}: not valid JSON: {exc}") from None
    if isinstance(data, dict):
        raise DatasetError(
            f"{path}: a single JSON object; expected a list of records (or JSON Lines: one "
            f"object per line)"
        )
    if not isinstance(data, list):
        raise DatasetError(f"{path}: expected a JSON list of records, got {type(data).__name__}")
    for n, rec in enumerate(data, 1):
        where = f"{path}: record {n}"
        if not isinstance(rec, dict):
            rec = {"__error__": f"expected a JSON object, got {type(rec).__name__}"}
        yield Raw(rec, where, f"{label}:{n}")


def _read_csv(path: Path, kind: str) -> Iterator[Raw]:
    """CSV/TSV with a header row; empty cells count as missing (CSV cannot tell them apart)."""
    label = file_label(path)
    with _open_text(path) as fh:
        reader = csv.DictReader(fh, delimiter="\t" if kind == "tsv" else ",")
        try:
            if not reader.fieldnames:
                return
            start = reader.line_num + 1
            for row in reader:
                where = f"{path}:{start}"
                key = f"{label}:{start}"
                start = reader.line_num + 1
                if None in row:
                    yield Raw({"__error__": "more cells than the header has columns"}, where, key)
                    continue
                yield Raw({k: v for k, v in row.items() if v not in (None, "")}, where, key)
        except csv.Error as exc:
            raise DatasetError(f"{path}:{reader.line_num}: not valid CSV: {exc}") from None


def _read_parquet(path: Path, _: str) -> Iterator[Raw]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DatasetError(
            f"{path}: reading parquet needs pyarrow (pip install 'arena-debate[hf]')"
        ) from None
    label = file_label(path)
    try:
        # pre_buffer would read far ahead of the batch in hand (most of the file to take a few rows)
        pf = pq.ParquetFile(path, pre_buffer=False)
    except Exception as exc:  # pyarrow raises its own error types
        raise DatasetError(f"{path}: not a readable parquet file: {exc}") from None
    n = 0
    for batch in pf.iter_batches(batch_size=1024):
        for rec in batch.to_pylist():
            n += 1
            yield Raw(rec, f"{path}: row {n}", f"{label}:{n}")


def _rows(ds: Any, where: str, key: str, split: str | None) -> Iterator[Raw]:
    """Rows of a `datasets.Dataset`, read in batches (the table is memory-mapped, not loaded)."""
    n = 0
    for batch in ds.iter(batch_size=1024):
        cols = list(batch)
        for values in zip(*(batch[c] for c in cols), strict=True):
            n += 1
            yield Raw(
                dict(zip(cols, values, strict=True)), f"{where}: row {n}", f"{key}:{n}", split
            )


def _dataset_dict(obj: Any, where: str, key: str, split: str | None) -> Iterator[Raw]:
    """A Dataset, or a DatasetDict from which `split` (or, without one, every split) is read."""
    if not hasattr(obj, "keys"):  # a plain Dataset: the split, if any, is a field
        yield from _rows(obj, where, key, None)
        return
    names = list(obj.keys())
    if split is not None and split not in names:
        raise DatasetError(f"{where}: no split '{split}' (splits: {', '.join(names)})")
    for name in [split] if split is not None else names:
        yield from _rows(obj[name], f"{where}[{name}]", f"{key}/{name}", name)


def _read_saved(path: Path, split: str | None) -> Iterator[Raw]:
    try:
        import datasets
    except ImportError:
        raise DatasetError(
            f"{path}: reading it needs `datasets` (pip install 'arena-debate[hf]')"
        ) from None
    try:
        obj = datasets.load_from_disk(str(path))
    except Exception as exc:
        raise DatasetError(f"{path}: not a dataset saved with save_to_disk: {exc}") from None
    yield from _dataset_dict(obj, str(path), path.name, split)


def _read_hub(name: str, opts: FileOptions, split: str | None) -> Iterator[Raw]:
    """`datasets.load_dataset`: a hub id on machines that reach the hub, or a local folder."""
    try:
        import datasets
    except ImportError:
        raise DatasetError(
            f"{name}: loading it needs `datasets` (pip install 'arena-debate[hf]')"
        ) from None
    try:
        obj = datasets.load_dataset(
            name,
            opts.subset,
            data_files=opts.data_files,
            split=split,
            cache_dir=opts.cache_dir,
        )
    except Exception as exc:  # offline, unknown id, unknown split: say which source failed
        local = "" if Path(name).exists() or opts.format == "hub" else "no such local path, and "
        raise DatasetError(f"{name}: {local}datasets.load_dataset failed: {exc}") from None
    label = file_label(Path(name)) if Path(name).exists() else name
    if split is not None and not hasattr(obj, "keys"):
        yield from _rows(obj, f"{name}[{split}]", f"{label}/{split}", split)
    else:
        yield from _dataset_dict(obj, name, label, split)


# --- sources -----------------------------------------------------------------------------------

T = TypeVar("T", Item, Pair)


class RecordSource(DatasetSource):
    """A dataset read record by record: splits, error policy and id bookkeeping live here.

    A loader implements `convert(raw)`, yielding what the record holds (Items, Pairs) and, for a
    part of it that is malformed, the RecordError instead (so one bad question of a QuALITY
    article costs that question, not the article). Raising RecordError costs the whole record.
    After a pass: `skipped` (malformed, with on_error='skip'), `filtered` (left out by an option
    such as difficult_only), `renamed` (duplicate ids suffixed) and `problems` (the first few
    skip messages).
    """

    group_key: ClassVar[str] = "group"  # metadata key hash splits group by (else the id)

    def __init__(self, options: FileOptions) -> None:
        self.opts = options
        self.skipped = 0
        self.filtered = 0
        self.renamed = 0
        self.problems: list[str] = []

    def records(self, split: str | None) -> Iterator[Raw]:
        return read_records(self.opts, split)

    def convert(self, raw: Raw) -> Iterable[Item | Pair | RecordError]:
        raise NotImplementedError

    def items(self, split: str | None = None) -> Iterator[Item]:
        return self._iterate(split, Item)

    def problem(self, err: RecordError) -> None:
        """Raise, or count and (for the first few) log a malformed record."""
        if self.opts.on_error == "raise":
            raise err
        self.skipped += 1
        if len(self.problems) < MAX_LOGGED:
            self.problems.append(str(err))
            log.warning("skipped: %s", err)

    def group_of(self, obj: Item | Pair) -> str:
        return str(obj.metadata.get(self.group_key) or obj.id)

    def _field_split(self, raw: Raw, split: str) -> bool:
        field = self.opts.split_field
        value = MISSING if field is None else dig(raw.data, field)
        if value is MISSING or value is None:
            raise raw.error(
                field or "split",
                f"missing, and split '{split}' was asked for: put '{{split}}' in the path "
                f"(one file per split), or set `splits` to split by hash",
            )
        return str(value) == split

    def _iterate(self, split: str | None, want: type[T], convert: Any = None) -> Iterator[T]:
        """Records -> objects: split selection, error policy, duplicate ids, counts."""
        convert = convert or self.convert
        self.skipped = self.filtered = self.renamed = 0
        self.problems = []
        fractions = self.opts.splits or {}
        seen: set[str] = set()
        try:
            for raw in self.records(split):
                if "__error__" in raw.data:
                    self.problem(raw.error(None, raw.data["__error__"]))
                    continue
                by_hash = split is not None and raw.split is None and bool(fractions)
                if by_hash and split not in fractions:
                    raise DatasetError(
                        f"{self.opts.path}: no split '{split}' (splits: {', '.join(fractions)})"
                    )
                try:
                    if (
                        split is not None
                        and raw.split is None
                        and not by_hash
                        and not self._field_split(raw, split)
                    ):
                        continue
                    out = list(convert(raw))
                except RecordError as exc:
                    self.problem(exc)
                    continue
                for obj in out:
                    if isinstance(obj, RecordError):
                        self.problem(obj)
                        continue
                    if not isinstance(obj, want):
                        raise TypeError(f"{type(self).__name__} yielded a {type(obj).__name__}")
                    if by_hash and hash_split(self.group_of(obj), fractions) != split:
                        continue
                    if obj.id in seen:
                        k = 2
                        while f"{obj.id}#{k}" in seen:
                            k += 1
                        obj = obj.model_copy(update={"id": f"{obj.id}#{k}"})
                        self.renamed += 1
                    seen.add(obj.id)
                    yield obj
        finally:
            if self.skipped:
                log.warning(
                    "%s: skipped %d malformed record(s) (on_error = 'skip'); first: %s",
                    self.opts.path,
                    self.skipped,
                    self.problems[0] if self.problems else "?",
                )
            if self.renamed:
                log.warning(
                    "%s: %d duplicate id(s) were given a '#n' suffix", self.opts.path, self.renamed
                )


class PairSource(RecordSource):
    """Preference data: `pairs(split)` for learners, `items(split)` for protocols.

    As an Item the prompt is the question and the two responses the answers, gold the
    preferred one; the order of the two is fixed by a hash of the pair's id (option
    `order = "shuffled"`) so a judge cannot learn "the first is better".
    """

    group_key = "prompt"  # hash splits keep every pair of one prompt on the same side

    def pairs(self, split: str | None = None) -> Iterator[Pair]:
        return self._iterate(split, Pair)

    def items(self, split: str | None = None) -> Iterator[Item]:
        for pair in self.pairs(split):
            yield self.to_item(pair)

    def group_of(self, obj: Item | Pair) -> str:
        if isinstance(obj, Pair):
            return obj.prompt
        return super().group_of(obj)

    def question_of(self, pair: Pair) -> str:
        return pair.prompt

    def to_item(self, pair: Pair) -> Item:
        flip = getattr(self.opts, "order", "shuffled") == "shuffled" and stable_bit(pair.id) == 1
        answers = [pair.rejected, pair.chosen] if flip else [pair.chosen, pair.rejected]
        scores = [pair.score_rejected, pair.score_chosen] if flip else None
        if scores is None:
            scores = [pair.score_chosen, pair.score_rejected]
        meta = {**pair.metadata, "prompt": pair.prompt}
        if any(s is not None for s in scores):
            meta["scores"] = scores
        return Item(
            id=pair.id,
            question=self.question_of(pair),
            answers=answers,
            gold=1 if flip else 0,
            metadata=meta,
        )


def response_text(value: Any, raw: Raw, field: str) -> str:
    """A response given as a string or as a chat (the last assistant message's content)."""
    if isinstance(value, str):
        if not value.strip():
            raise raw.error(field, "empty response")
        return value
    if isinstance(value, list) and value and all(isinstance(m, dict) for m in value):
        for i in range(len(value) - 1, -1, -1):
            m = value[i]
            if m.get("role") == "assistant":
                content = m.get("content")
                if not isinstance(content, str) or not content.strip():
                    raise raw.error(f"{field}.{i}.content", "empty assistant message")
                return content
        raise raw.error(field, "a chat without an assistant message")
    raise raw.error(field, f"expected a string or a list of messages, got {_show(value)}")


def number(value: Any, raw: Raw, field: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise raw.error(field, f"expected a number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise raw.error(field, f"expected a number, got {_show(value)}") from None

"""Malformed dataset files: each is a `file:line` error, or a counted skip with on_error = "skip".

Issue 12 found tracebacks for deep JSON nesting (RecursionError), invalid UTF-8 in a CSV
(UnicodeDecodeError), a truncated or fake .gz (EOFError, BadGzipFile), an hh-rlhf key like
`sample_²` (int() of a superscript) and an empty file that did not name itself. The matrix here
runs every case under both policies through `arena datasets show`.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from arena_core.cli.main import main

GOOD = {"id": "g1", "question": "Q?", "answers": ["yes", "no"], "gold": 0, "context": "yes."}


def _jl(*records: object) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in records)


def _deep(n: int = 50_000) -> bytes:
    return b'{"id": "d", "question": ' + b"[" * n + b"]" * n + b"}\n"


def _many(n: int) -> list[dict[str, object]]:
    """Records that do not compress to nothing, so a cut .gz still holds some of them."""
    return [{**GOOD, "id": f"g{i}", "question": f"Q{i * 7919 % 10007}?"} for i in range(n)]


def _csv(*rows: bytes) -> bytes:
    return b"id,question,answers,gold\n" + b"".join(r + b"\n" for r in rows)


GOOD_CSV = b'c1,Q?,"[""yes"", ""no""]",0'

# name -> (file name, bytes, plugin, line the error names or None for the file only,
#          whether good records remain so that "skip" still yields items)
Case = tuple[str, Callable[[], bytes], str, str | None, bool]
CASES: dict[str, Case] = {
    "deep-jsonl": ("d.jsonl", lambda: _jl(GOOD) + _deep(), "jsonl", ":2", True),
    "deep-json-list": ("d.json", lambda: b"[" + _deep().strip() + b"]", "jsonl", None, False),
    "utf8-csv": (
        "u.csv",
        lambda: _csv(GOOD_CSV, b'c2,Q\xff\xfe?,"[""a"", ""b""]",0'),
        "csv",
        ":3",
        True,
    ),
    "utf8-jsonl": ("u.jsonl", lambda: _jl(GOOD) + b'{"id": "\xff"}\n', "jsonl", ":2", True),
    "truncated-gz": (
        "t.jsonl.gz",
        lambda: gzip.compress(_jl(*_many(400)))[:-40],
        "jsonl",
        ":",
        True,
    ),
    "fake-gz": ("f.jsonl.gz", lambda: _jl(GOOD), "jsonl", None, False),
    "fake-gz-csv": ("f.csv.gz", lambda: _csv(GOOD_CSV), "csv", None, False),
    "not-json-line": ("n.jsonl", lambda: _jl(GOOD) + b"{oops\n", "jsonl", ":2", True),
    "array-line": ("a.jsonl", lambda: _jl(GOOD) + b"[1, 2]\n", "jsonl", ":2", True),
    "empty-jsonl": ("e.jsonl", lambda: b"", "jsonl", None, False),
    "blank-jsonl": ("b.jsonl", lambda: b"\n\n  \n", "jsonl", None, False),
    "empty-csv": ("e.csv", lambda: b"", "csv", None, False),
    "header-only-csv": ("h.csv", lambda: b"id,question,answers,gold\n", "csv", None, False),
    "superscript-gold": (
        "s.jsonl",
        lambda: _jl(GOOD, {**GOOD, "id": "s", "gold": "²"}),
        "jsonl",
        ":2",
        True,
    ),
    "hh-superscript-key": (
        "hh.jsonl",
        lambda: _jl(
            {"query": "q", "query_id": "1", "sample_0": "a", "sample_1": "b", "sample_²": "c"}
        ),
        "hh-rlhf",
        None,
        True,
    ),
}


def _show(tmp_path: Path, case: str, on_error: str, capsys: pytest.CaptureFixture[str]):
    name, build, plugin, _line, _good = CASES[case]
    path = tmp_path / name
    path.write_bytes(build())
    argv = ["datasets", "show", plugin, "-o", f"path={json.dumps(str(path))}"]
    argv += ["-o", f'on_error="{on_error}"']
    if plugin == "hh-rlhf":
        argv += ["-o", 'layout="apo-samples"']
    code = main(argv)
    out, err = capsys.readouterr()
    return path, code, out, err


@pytest.mark.parametrize("case", sorted(CASES))
def test_malformed_file_raises_file_line(case, tmp_path, capsys) -> None:
    path, code, _out, err = _show(tmp_path, case, "raise", capsys)
    _name, _build, _plugin, line, _good = CASES[case]
    assert "Traceback" not in err
    if case == "hh-superscript-key":  # not a sample key: ignored, the record is fine
        assert code == 0, err
        return
    assert code == 2, err
    assert str(path) in err, err
    if line is not None:
        assert f"{path}{line}" in err, err


@pytest.mark.parametrize("case", sorted(CASES))
def test_malformed_file_is_a_counted_skip(case, tmp_path, capsys) -> None:
    path, code, _out, err = _show(tmp_path, case, "skip", capsys)
    _name, _build, _plugin, _line, good = CASES[case]
    assert "Traceback" not in err
    if good:
        assert code == 0, err
        if case != "hh-superscript-key":
            assert "malformed record(s) skipped" in err, err
    else:
        assert code == 2 and str(path) in err, err

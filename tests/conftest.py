"""Shared helpers: write a tournament file, open a temporary ledger, run the CLI in-process."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

BASE = """
[tournament]
name = "{name}"
protocol = "{protocol}"
seed = {seed}
concurrency = {concurrency}
retries = {retries}
timeout = {timeout}
backoff = 0

[protocol]
{protocol_options}

[dataset]
plugin = "bundled"
limit = {limit}

[judge]
plugin = "{judge}"

{players}

[schedule]
kind = "{schedule}"
{schedule_extra}
"""

PLAYERS = """
[[players]]
name = "quoter-3"
agent = "extractive"
options = { max_quotes = 3 }

[[players]]
name = "quoter-1"
agent = "extractive"
options = { max_quotes = 1 }

[[players]]
name = "random"
agent = "random"
"""


def config_text(**kw: object) -> str:
    values: dict[str, object] = {
        "name": "t",
        "protocol": "debate",
        "seed": 7,
        "concurrency": 8,
        "retries": 1,
        "timeout": 10,
        "protocol_options": "",
        "limit": 4,
        "judge": "quote",
        "players": PLAYERS,
        "schedule": "round-robin",
        "schedule_extra": "",
    }
    values.update(kw)
    return textwrap.dedent(BASE.format(**values))


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[..., Path]:
    def write(text: str | None = None, name: str = "t.toml", **kw: object) -> Path:
        path = tmp_path / name
        path.write_text(text if text is not None else config_text(**kw), encoding="utf-8")
        return path

    return write


@pytest.fixture
def ledger_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ledger.db'}"

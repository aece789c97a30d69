"""The model-backed tournament files, end to end without the network, and the vLLM agent's
behaviour where vLLM is not installed (no GPU here)."""

from __future__ import annotations

import importlib.util
import json
import sqlite3
from pathlib import Path

import pytest
from servers import FakeAPIServer

from arena_core.config import load_config
from arena_core.engine import Tournament
from arena_core.errors import ConfigError
from arena_core.plugins import get_registry
from arena_core.testing import run_tournament

ROOT = Path(__file__).resolve().parents[2]


def copy_toml(name: str, tmp_path: Path, **replace: str) -> Path:
    text = (ROOT / "tournaments" / name).read_text(encoding="utf-8")
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_hf_debate_runs_end_to_end(tiny_llama_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    toml = copy_toml(
        "hf-debate.toml", tmp_path, **{'"models/tiny"': json.dumps(str(tiny_llama_dir))}
    )
    db = tmp_path / "ledger.db"
    summary = run_tournament(toml, f"sqlite:///{db}")
    assert summary.done == summary.scheduled == 16 and summary.failed == 0
    con = sqlite3.connect(db)
    turns = con.execute("select tokens, meta from turn").fetchall()
    assert len(turns) == 32 and all(t == 48 for t, _ in turns)  # 16 matches x 2 speeches
    assert all(json.loads(m)["prompt_tokens"] > 100 for _, m in turns)
    metas = [json.loads(m) for (m,) in con.execute("select meta from verdict")]
    assert len(metas) == 16
    for meta in metas:
        assert meta["source"] == "teacher-forcing" and len(meta["orders"]) == 2


def test_api_debate_is_valid_and_needs_keys(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    registry = get_registry()
    config = load_config(ROOT / "tournaments" / "api-debate.toml", registry)
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        Tournament(config, registry)


def test_api_debate_runs_against_a_loopback_server(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, openai_server: FakeAPIServer
) -> None:
    """The documented file, unchanged but for the item count, with the SDKs' base URLs (from
    their environment variables) pointing at the loopback server."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-loopback")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-loopback")
    monkeypatch.setenv("OPENAI_BASE_URL", openai_server.base_url)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", openai_server.url)

    def reply(messages: list, i: int) -> str:
        if "judge" in str(messages[0].get("content", "")) or not messages[0].get("role"):
            return "The quotes favour the first answer.\nAnswer: A | Confidence: 70%"
        return "The passage says so. <quote>Every winter</quote>"

    openai_server.reply = reply
    toml = copy_toml("api-debate.toml", tmp_path, **{"limit = 10": "limit = 1"})
    db = tmp_path / "ledger.db"
    summary = run_tournament(toml, f"sqlite:///{db}")
    assert summary.done == 4 and summary.failed == 0
    paths = [r["path"] for r in openai_server.requests]
    assert paths.count("/v1/chat/completions") == 16  # 4 matches x 2 debaters x 2 speeches
    assert paths.count("/v1/messages") == 8  # 4 verdicts x both orders
    con = sqlite3.connect(db)
    costs = [c for (c,) in con.execute("select cost from turn where player = 'gpt-4o-mini'")]
    assert costs and all(c is not None and c > 0 for c in costs)
    assert all(
        c is None for (c,) in con.execute("select cost from turn where player = 'gpt-4.1-mini'")
    )
    verdicts = con.execute("select confidence, meta from verdict").fetchall()
    assert all(json.loads(m)["source"] == "stated" for _, m in verdicts)


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed")
def test_vllm_agent_without_vllm_names_the_extra(tmp_path: Path) -> None:
    registry = get_registry()
    with pytest.raises(ImportError, match=r"pip install 'arena-debate\[vllm\]'"):
        registry.build("agent", "vllm", {"model": "some/model"})
    toml = """
[tournament]
name = "v"
protocol = "debate"
[dataset]
plugin = "bundled"
limit = 1
[judge]
plugin = "quote"
[[players]]
name = "big"
agent = "vllm"
options = { model = "some/model", tensor_parallel_size = 2, top_logprobs = 5 }
[[players]]
name = "quoter"
agent = "extractive"
"""
    path = tmp_path / "v.toml"
    path.write_text(toml)
    config = load_config(path, registry)  # the options validate ...
    assert config.player_options["big"].tensor_parallel_size == 2
    with pytest.raises(ConfigError, match="vllm"):  # ... and building fails before any match
        Tournament(config, registry)


def test_vllm_options_are_validated() -> None:
    with pytest.raises(ConfigError, match="gpu_memory_utilisation"):
        get_registry().validate("agent", "vllm", {"model": "m", "gpu_memory_utilisation": 0.5})
    opts = get_registry().validate("agent", "vllm", {"model": "m"})
    assert opts.max_batch == 256 and opts.adapter is None

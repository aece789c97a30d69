"""Fixtures for the model-backed plugins: tiny checkpoints built once per session, and loopback
API servers (see servers.py). Nothing here touches the network beyond 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer Llama with a BPE tokenizer and chat template, saved with save_pretrained."""
    pytest.importorskip("transformers")
    from arena_plugins.agents.tiny_model import build_tiny_llama

    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def tiny_reward_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny DeBERTa-v2 sequence classifier with one output (a reward or cost model)."""
    pytest.importorskip("transformers")
    from arena_plugins.agents.tiny_model import build_tiny_classifier

    return build_tiny_classifier(tmp_path_factory.mktemp("tiny-reward"))


@pytest.fixture
def openai_server() -> Iterator[object]:
    """A loopback OpenAI-compatible (and Anthropic messages) server; see servers.py."""
    from servers import FakeAPIServer

    with FakeAPIServer() as server:
        yield server

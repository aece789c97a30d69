"""A sample of the config fuzzer: no config crashes, hangs or writes before being refused."""

from __future__ import annotations

from tests.core.trust_fuzz import fuzz


def test_fuzzed_configs_never_crash_hang_or_write_before_refusing() -> None:
    result = fuzz(60, seed=12)
    assert result["crash"] == 0, result["examples"]
    assert result["hang"] == 0, result["examples"]
    assert result["refused_after_write"] == 0, result["examples"]
    assert result["ran"] > 0 and result["refused"] > 0  # the sample covers both sides

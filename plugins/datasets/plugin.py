"""Registers the built-in datasets. Factories import their module on first use."""

from __future__ import annotations

from typing import Any

from arena_plugins.datasets.files import (
    BundledOptions,
    CsvOptions,
    HfDiskOptions,
    JsonlOptions,
    ParquetOptions,
)
from arena_plugins.datasets.ledger_items import LedgerOptions
from arena_plugins.datasets.preferences import (
    HhOptions,
    PairOptions,
    PkuOptions,
    PreferencesOptions,
    PromptsOptions,
)
from arena_plugins.datasets.quality import QualityDebatesOptions, QualityOptions

from arena_core.hookspecs import hookimpl
from arena_core.registry import Registry


def bundled(options: BundledOptions) -> Any:
    """Original reading-comprehension items: 48 short (two answers), or 40 on long articles
    (four answers, a hard distractor, tune/test splits by article)."""
    from arena_plugins.datasets.files import bundled_source

    return bundled_source(options)


def jsonl(options: JsonlOptions) -> Any:
    """Questions from any JSONL file, through a field map; streamed line by line."""
    from arena_plugins.datasets.files import JsonlSource

    return JsonlSource(options)


def csv_file(options: CsvOptions) -> Any:
    """Questions from a CSV/TSV file with a header row, through a field map; streamed."""
    from arena_plugins.datasets.files import JsonlSource

    return JsonlSource(options)


def parquet(options: ParquetOptions) -> Any:
    """Questions from parquet files, through a field map; read batch by batch."""
    from arena_plugins.datasets.files import JsonlSource

    return JsonlSource(options)


def hf_disk(options: HfDiskOptions) -> Any:
    """Questions from a `datasets` save_to_disk directory, through a field map."""
    from arena_plugins.datasets.files import JsonlSource

    return JsonlSource(options)


def quality(options: QualityOptions) -> Any:
    """QuALITY v1.0.1 (htmlstripped JSONL): article as hidden context, gold and best distractor."""
    from arena_plugins.datasets.quality import QualitySource

    return QualitySource(options)


def quality_debates(options: QualityDebatesOptions) -> Any:
    """NYU human debates on QuALITY (debates-readable.jsonl), transcripts in metadata."""
    from arena_plugins.datasets.quality import QualityDebatesSource

    return QualityDebatesSource(options)


def hh_rlhf(options: HhOptions) -> Any:
    """Anthropic HH-RLHF chosen/rejected dialogues, and APO's HH split; pairs and items."""
    from arena_plugins.datasets.preferences import HhSource

    return HhSource(options)


def ultrafeedback(options: PairOptions) -> Any:
    """UltraFeedback binarized (prompt, chosen/rejected chats, scores); pairs and items."""
    from arena_plugins.datasets.preferences import UltraFeedbackSource

    return UltraFeedbackSource(options)


def pku_saferlhf(options: PkuOptions) -> Any:
    """PKU-SafeRLHF: two responses with better/safer ids and safety flags; pairs and items."""
    from arena_plugins.datasets.preferences import PkuSource

    return PkuSource(options)


def preferences(options: PreferencesOptions) -> Any:
    """Any pairwise preference file through a field map (D2PO: question/response_j/response_k)."""
    from arena_plugins.datasets.preferences import PreferencesSource

    return PreferencesSource(options)


def prompts(options: PromptsOptions) -> Any:
    """Prompt-only sets for self-play and online learners: items with no answers."""
    from arena_plugins.datasets.preferences import PromptsSource

    return PromptsSource(options)


def ledger(options: LedgerOptions) -> Any:
    """Finished matches of a ledger, with their transcripts, to judge again (rejudge)."""
    from arena_plugins.datasets.ledger_items import LedgerSource

    return LedgerSource(options)


@hookimpl
def arena_register(registry: Registry) -> None:
    registry.add("dataset", "bundled", bundled, BundledOptions)
    registry.add("dataset", "jsonl", jsonl, JsonlOptions)
    registry.add("dataset", "csv", csv_file, CsvOptions)
    registry.add("dataset", "parquet", parquet, ParquetOptions)
    registry.add("dataset", "hf-disk", hf_disk, HfDiskOptions)
    registry.add("dataset", "quality", quality, QualityOptions)
    registry.add("dataset", "quality-debates", quality_debates, QualityDebatesOptions)
    registry.add("dataset", "hh-rlhf", hh_rlhf, HhOptions)
    registry.add("dataset", "ultrafeedback", ultrafeedback, PairOptions)
    registry.add("dataset", "pku-saferlhf", pku_saferlhf, PkuOptions)
    registry.add("dataset", "preferences", preferences, PreferencesOptions)
    registry.add("dataset", "prompts", prompts, PromptsOptions)
    registry.add("dataset", "ledger", ledger, LedgerOptions)

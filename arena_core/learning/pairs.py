"""Preference pairs from the ledger, in the format TRL's preference trainers read.

The core knows no protocol: for each finished match it builds the tournament's protocol through
the registry (from the config stored with the tournament) and asks its optional
`pairs(record, **opts)` method for candidate pairs. A protocol yields dicts with `prompt` (the
messages the speaker saw, as stored with the turn), `prompt_rejected`, `chosen`, `rejected`,
`score_chosen`, `score_rejected`, `target` (the soft probability that chosen is preferred, or
None), `gap` (how far apart the two are, on the protocol's own scale), `player`,
`player_rejected`, and optionally `turns` and `extra`. The core then enforces what every learner
needs, whatever the protocol:

- the two sides of a pair share the exact same prompt (pairs that do not are dropped, counted);
- zero-gap pairs (and, with `min_gap`, near-zero ones) are dropped;
- identical chosen and rejected texts are dropped (they teach nothing and only add noise).

Rows come out with the columns in `COLUMNS`; `write_pairs` saves them as JSONL or as a
`datasets.Dataset` (`save_to_disk`), importing `datasets` only then.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from sqlmodel import select

from arena_core.engine import build_protocol
from arena_core.errors import UsageError
from arena_core.ledger import DONE, Ledger, MatchRow, Tournament, TurnRow, VerdictRow

if TYPE_CHECKING:
    from arena_core.registry import Registry

COLUMNS = (
    "prompt",
    "chosen",
    "rejected",
    "score_chosen",
    "score_rejected",
    "target",
    "gap",
    "source",
    "tournament",
    "match_id",
    "item_id",
    "judge",
    "player",
    "player_rejected",
    "meta",
)
_CHUNK = 500  # matches loaded per query: bounded memory on large tournaments
ZERO_GAP = 1e-12  # gaps this small are float noise on equal values: the pair is a tie


@dataclass(frozen=True)
class PairQuery:
    """Which matches to take pairs from, and how to shape them."""

    tournaments: Sequence[str] = ()  # empty: every tournament in the ledger
    protocols: Sequence[str] = ()  # empty: any protocol
    player: str | None = None  # pairs whose chosen or rejected side this player spoke
    judge: str | None = None  # matches decided by this judge
    min_gap: float = 0.0  # drop pairs whose gap is not above this (0: drop zero-gap pairs)
    since: datetime | None = None  # matches finished at or after this time
    gamma: float | None = None  # soft-target sharpness; None: each protocol's default
    conversational: bool = False  # prompt/chosen/rejected as chat messages, not plain strings


@dataclass
class MatchRecord:
    """One finished match as a protocol's `pairs` reads it."""

    tournament: str
    protocol: str
    match: MatchRow
    turns: list[TurnRow]
    verdict: VerdictRow | None
    nodes: list[VerdictRow]


@dataclass
class PairStats:
    matches: int = 0
    pairs: int = 0
    by_source: Counter[str] = field(default_factory=Counter)
    dropped: Counter[str] = field(default_factory=Counter)
    no_pairs: set[str] = field(default_factory=set)  # protocols without a `pairs` method


def _aware(t: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes (stored as UTC); compare everything as aware UTC."""
    if t is None:
        return None
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def records(
    ledger: Ledger, tournament: Tournament, query: PairQuery | None = None
) -> Iterator[MatchRecord]:
    """Finished matches of one tournament with their turns and verdicts, in finish order."""
    query = query or PairQuery()
    with ledger.session() as s:
        rows = list(
            s.exec(
                select(MatchRow)
                .where(MatchRow.tournament == tournament.name, MatchRow.status == DONE)
                .order_by(MatchRow.finished_seq)
            )
        )
    since = _aware(query.since)
    if since is not None:
        rows = [m for m in rows if (_aware(m.finished_at) or since) >= since]
    if query.player is not None:
        rows = [m for m in rows if query.player in m.seats.values()]
    for start in range(0, len(rows), _CHUNK):
        chunk = rows[start : start + _CHUNK]
        ids = [m.id for m in chunk]
        turns: dict[str, list[TurnRow]] = {i: [] for i in ids}
        verdicts: dict[str, list[VerdictRow]] = {i: [] for i in ids}
        with ledger.session() as s:
            for t in s.exec(select(TurnRow).where(TurnRow.match_id.in_(ids)).order_by(TurnRow.idx)):
                turns[t.match_id].append(t)
            for v in s.exec(
                select(VerdictRow).where(VerdictRow.match_id.in_(ids)).order_by(VerdictRow.node)
            ):
                verdicts[v.match_id].append(v)
        for m in chunk:
            vs = verdicts[m.id]
            main = next((v for v in vs if v.node == -1), None)
            if query.judge is not None and (main is None or main.judge != query.judge):
                continue
            yield MatchRecord(
                tournament=tournament.name,
                protocol=m.protocol,
                match=m,
                turns=turns[m.id],
                verdict=main,
                nodes=[v for v in vs if v.node >= 0],
            )


def _messages(prompt: Any) -> list[dict[str, str]] | None:
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    if isinstance(prompt, list) and prompt and all(isinstance(m, dict) for m in prompt):
        return [{"role": str(m.get("role", "user")), "content": str(m["content"])} for m in prompt]
    return None


def shape(
    raw: dict[str, Any], record: MatchRecord, query: PairQuery, stats: PairStats
) -> dict[str, Any] | None:
    """Check one protocol pair and turn it into an output row; None (and a count) if dropped."""
    prompt = _messages(raw.get("prompt"))
    if prompt is None:
        stats.dropped["no prompt"] += 1
        return None
    other = raw.get("prompt_rejected", raw.get("prompt"))
    if _messages(other) != prompt:
        stats.dropped["prompts differ"] += 1
        return None
    gap = float(raw.get("gap", abs(raw["score_chosen"] - raw["score_rejected"])))
    if not math.isfinite(gap) or gap <= max(query.min_gap, ZERO_GAP):
        stats.dropped["gap"] += 1
        return None
    chosen, rejected = str(raw["chosen"]), str(raw["rejected"])
    if chosen.strip() == rejected.strip():
        stats.dropped["same text"] += 1
        return None
    if query.player is not None and query.player not in (
        raw.get("player"),
        raw.get("player_rejected"),
    ):
        stats.dropped["other player"] += 1
        return None
    target = raw.get("target")
    meta = {"turns": raw.get("turns"), **(raw.get("extra") or {})}
    row: dict[str, Any] = {
        "prompt": prompt if query.conversational else "\n\n".join(m["content"] for m in prompt),
        "chosen": [{"role": "assistant", "content": chosen}] if query.conversational else chosen,
        "rejected": (
            [{"role": "assistant", "content": rejected}] if query.conversational else rejected
        ),
        "score_chosen": float(raw["score_chosen"]),
        "score_rejected": float(raw["score_rejected"]),
        "target": None if target is None else float(target),
        "gap": gap,
        "source": record.protocol,
        "tournament": record.tournament,
        "match_id": record.match.id,
        "item_id": record.match.item_id,
        "judge": record.verdict.judge if record.verdict else None,
        "player": raw.get("player"),
        "player_rejected": raw.get("player_rejected"),
        "meta": json.dumps(meta, sort_keys=True, default=str),
    }
    return row


def pairs(
    ledger: Ledger,
    query: PairQuery | None = None,
    *,
    registry: Registry | None = None,
    stats: PairStats | None = None,
) -> Iterator[dict[str, Any]]:
    """Every preference pair the query selects, tournament by tournament, in finish order."""
    query = query or PairQuery()
    if registry is None:
        from arena_core.plugins import get_registry

        registry = get_registry()
    stats = stats if stats is not None else PairStats()
    known = {t.name: t for t in ledger.tournaments()}
    names = list(query.tournaments) or list(known)
    for name in names:
        if name not in known:
            ledger.tournament(name)  # raises UsageError naming the nearest tournament
        tournament = known[name]
        if query.protocols and tournament.protocol not in query.protocols:
            continue
        protocol = build_protocol(registry, tournament)
        if not callable(getattr(protocol, "pairs", None)):
            stats.no_pairs.add(tournament.protocol)
            continue
        opts = {"gamma": query.gamma} if query.gamma is not None else {}
        for record in records(ledger, tournament, query):
            stats.matches += 1
            for raw in protocol.pairs(record, **opts):
                row = shape(raw, record, query, stats)
                if row is not None:
                    stats.pairs += 1
                    stats.by_source[row["source"]] += 1
                    yield row


def to_dataset(rows: Iterable[dict[str, Any]]) -> Any:
    """The rows as a `datasets.Dataset` (what TRL's DPOTrainer and RewardTrainer take)."""
    import datasets

    rows = list(rows)
    if rows:
        return datasets.Dataset.from_list(rows)
    text, num = datasets.Value("string"), datasets.Value("float64")
    features = datasets.Features(
        {
            c: num if c in ("score_chosen", "score_rejected", "target", "gap") else text
            for c in COLUMNS
        }
    )
    return datasets.Dataset.from_dict({c: [] for c in COLUMNS}, features=features)


def write_pairs(
    rows: Iterable[dict[str, Any]], out: str | Path, fmt: Literal["dataset", "jsonl"]
) -> int:
    """Write rows as JSONL (a file) or a saved `datasets.Dataset` (a directory); return the count.

    Both are written next to the destination and moved into place, so a failed export never
    leaves half a file where a learner would read it.
    """
    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    if fmt == "jsonl":
        n = 0
        out.parent.mkdir(parents=True, exist_ok=True)
        with tmp.open("w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
                n += 1
        os.replace(tmp, out)
        return n
    ds = to_dataset(rows)
    if tmp.exists():
        import shutil

        shutil.rmtree(tmp)
    ds.save_to_disk(str(tmp))
    if out.exists():
        import shutil

        shutil.rmtree(out)
    os.replace(tmp, out)
    return len(ds)


def parse_since(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"--since {text!r} is not an ISO date or time (e.g. 2025-01-31)") from None

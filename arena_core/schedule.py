"""Who plays whom, on which item, in which seat: the match list of a tournament.

Every match id is a hash of (tournament, protocol, seats, answer assignment, item, repetition), so a
re-run finds the same ids and plays only what is missing.
"""

from __future__ import annotations

import itertools
import random
from array import array
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from arena_core.errors import UsageError
from arena_core.ids import canonical, match_id, match_id_of, seed_for
from arena_core.interfaces import DatasetSource, Protocol
from arena_core.types import Item

__all__ = [
    "count_matches",
    "iter_matches",
    "match_id",
    "pairings",
    "sample_items",
    "seed_for",
]


def sample_items(
    source: DatasetSource, *, split: str | None, limit: int | None, seed: int, shuffle: bool
) -> list[Item]:
    """Items in a seeded order; raising the limit later extends the same prefix."""
    if shuffle:
        items = list(source.items(split))
        random.Random(seed).shuffle(items)
        items = items[:limit] if limit else items
    else:
        items = list(itertools.islice(source.items(split), limit))
    seen: set[str] = set()
    for item in items:
        if item.id in seen:
            raise UsageError(f"dataset gives two items with id {item.id!r}; ids must be unique")
        seen.add(item.id)
    if not items:
        raise UsageError("the dataset gave no items (check split and limit)")
    return items


def pairings(
    kind: str, players: Sequence[str], seats: int, red: str | None = None
) -> list[tuple[str, ...]]:
    """Player tuples in seat order.

    round-robin: every ordered choice of distinct players (so both speaking orders of each pair);
    red-blue: the red player against each blue one, in both orders; self-play: each player in
    every seat. A protocol without seats (re-judging stored transcripts) plays once per item.
    """
    if seats == 0:
        return [()]
    if not players:
        raise UsageError("this protocol needs players: add [[players]] tables")
    if kind == "self-play":
        return [(p,) * seats for p in players]
    if kind == "red-blue":
        if seats != 2:
            raise UsageError(f"red-blue needs a two-seat protocol; this one has {seats} seat(s)")
        blues = [p for p in players if p != red]
        return [pair for b in blues for pair in ((red, b), (b, red))]  # type: ignore[misc]
    if seats > len(players):
        raise UsageError(
            f"round-robin needs at least {seats} players; the config has {len(players)}"
        )
    return list(itertools.permutations(players, seats))


def _slots(
    protocol: Protocol, items: Iterable[Item], tables: Sequence[tuple[str, ...]], repetitions: int
) -> Iterator[tuple[Item, int, dict[str, int], tuple[str, ...], int]]:
    """(item, variant, assignment, players, repetition) of every match, in generation order."""
    for item in items:
        for v, assignment in enumerate(protocol.variants(item)):
            for combo in tables:
                for rep in range(repetitions):
                    yield item, v, assignment, combo, rep


def count_matches(
    *,
    protocol: Protocol,
    items: Iterable[Item],
    players: Sequence[str],
    kind: str,
    red: str | None,
    repetitions: int,
) -> int:
    """How many matches `iter_matches` gives, by arithmetic (no row is built)."""
    tables = pairings(kind, players, len(protocol.seats), red)
    return sum(len(protocol.variants(item)) for item in items) * len(tables) * repetitions


def _ranks(keys: array[int]) -> Sequence[int]:
    """Each key's position in stable sorted order. numpy past 50k keys: a Python sort of a
    million holds ~70 MB of int objects where numpy's holds 16 MB; below that, Python's sort
    spares a small run the import (12 MB)."""
    n = len(keys)
    if n < 50_000:
        ranks = array("q", bytes(8 * n))
        for rank, i in enumerate(sorted(range(n), key=keys.__getitem__)):
            ranks[i] = rank
        return ranks
    import numpy as np

    out = np.empty(n, dtype=np.int64)
    out[np.argsort(np.frombuffer(keys, dtype=np.uint64), kind="stable")] = np.arange(n)
    return out


def iter_matches(
    *,
    tournament: str,
    protocol_name: str,
    protocol: Protocol,
    items: Sequence[Item],
    players: Sequence[str],
    kind: str,
    red: str | None,
    repetitions: int,
    seed: int,
) -> Iterator[dict[str, Any]]:
    """Match rows (status pending) with their `order_key`, in generation order, built lazily.

    `order_key` is each match's rank in the seeded interleaved order (`Tournament.rows` gives
    the rows sorted by it). Finding ranks needs every match's sort key, but not its row: a first
    pass keeps only the 12-byte id digest and the 8-byte key of each match (20 MB for a million
    matches, where the rows as dicts took over 2 GB), numpy ranks the keys, and a second pass
    builds each row as it is consumed. Ties keep generation order (a stable sort), as `sorted`
    did before.
    """
    seats = protocol.seats
    tables = pairings(kind, players, len(seats), red)
    seat_maps = [dict(zip(seats, combo, strict=True)) for combo in tables]  # shared by rows
    by_combo = {combo: m for combo, m in zip(tables, seat_maps, strict=True)}
    head = (canonical(tournament), canonical(protocol_name))
    seats_json = {combo: canonical(m) for combo, m in by_combo.items()}
    digests = bytearray()
    keys = array("Q")
    last: tuple[Item, int] | None = None
    for item, v, assignment, combo, rep in _slots(protocol, items, tables, repetitions):
        if last != (item, v):  # the item's and the variant's JSON, once per variant
            last, tail = (item, v), (canonical(assignment), canonical(item.id))
        mid = match_id_of(*head, seats_json[combo], tail[0], tail[1], str(rep))
        digests += bytes.fromhex(mid)
        keys.append(seed_for(seed, mid))
    n = len(keys)
    size = len(digests) // max(1, n)
    ranks = _ranks(keys)
    del keys
    snapshot: dict[str, Any] = {}
    current: Item | None = None
    for i, (item, v, assignment, combo, rep) in enumerate(
        _slots(protocol, items, tables, repetitions)
    ):
        if item is not current:  # one snapshot per item, shared by its rows
            current, snapshot = item, item.model_dump(mode="json")
        yield {
            "id": digests[i * size : (i + 1) * size].hex(),
            "tournament": tournament,
            "protocol": protocol_name,
            "item_id": item.id,
            "item": snapshot,
            "seats": by_combo[combo],
            "assignment": assignment,
            "variant": v,
            "repetition": rep,
            "order_key": int(ranks[i]),
        }

"""Who plays whom, on which item, in which seat: the match list of a tournament.

Every match id is a hash of (tournament, protocol, seats, answer assignment, item, repetition), so a
re-run finds the same ids and plays only what is missing.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable, Sequence
from typing import Any

from arena_core.errors import UsageError
from arena_core.ids import match_id, seed_for
from arena_core.interfaces import DatasetSource, Protocol
from arena_core.types import Item

__all__ = ["build_matches", "match_id", "pairings", "sample_items", "seed_for"]


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


def build_matches(
    *,
    tournament: str,
    protocol_name: str,
    protocol: Protocol,
    items: Iterable[Item],
    players: Sequence[str],
    kind: str,
    red: str | None,
    repetitions: int,
    seed: int,
) -> list[dict[str, Any]]:
    """Match rows (status pending), in a seeded interleaved order."""
    seats = protocol.seats
    tables = pairings(kind, players, len(seats), red)
    rows: list[dict[str, Any]] = []
    for item in items:
        snapshot = item.model_dump(mode="json")
        for v, assignment in enumerate(protocol.variants(item)):
            for combo in tables:
                seat_map = dict(zip(seats, combo, strict=True))
                for rep in range(repetitions):
                    rows.append(
                        {
                            "id": match_id(
                                tournament, protocol_name, seat_map, assignment, item.id, rep
                            ),
                            "tournament": tournament,
                            "protocol": protocol_name,
                            "item_id": item.id,
                            "item": snapshot,
                            "seats": seat_map,
                            "assignment": assignment,
                            "variant": v,
                            "repetition": rep,
                        }
                    )
    # Interleave so early results touch every player; the order itself is part of the seed.
    order = sorted(rows, key=lambda r: seed_for(seed, r["id"]))
    for i, row in enumerate(order):
        row["order_key"] = i
    return order

"""Deterministic ids and seeds: the same parts give the same match id and the same random stream
on every machine, which is what makes re-runs, shards and several workers exactly-once."""

from __future__ import annotations

import hashlib
import json


def match_id(
    tournament: str,
    protocol: str,
    seats: dict[str, str],
    assignment: dict[str, int],
    item_id: str,
    repetition: int,
) -> str:
    key = json.dumps(
        [tournament, protocol, seats, assignment, item_id, repetition],
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(key.encode()).hexdigest()[:24]


def seed_for(*parts: object) -> int:
    """A stable 63-bit seed from any parts (match id, seat, turn ...)."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1

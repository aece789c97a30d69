"""Deterministic ids and seeds: the same parts give the same match id and the same random stream
on every machine, which is what makes re-runs, shards and several workers exactly-once."""

from __future__ import annotations

import hashlib
import json


def canonical(value: object) -> str:
    """The JSON a match id is made of: sorted keys, no spaces."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def match_id(
    tournament: str,
    protocol: str,
    seats: dict[str, str],
    assignment: dict[str, int],
    item_id: str,
    repetition: int,
) -> str:
    parts = (tournament, protocol, seats, assignment, item_id, repetition)
    return match_id_of(*map(canonical, parts))


def match_id_of(*parts: str) -> str:
    """`match_id` from its parts already in `canonical` JSON: a schedule of a million matches
    serialises each seat map, answer assignment and item id once, not once per match. (A JSON
    list is its items' JSON joined by commas in brackets, so the key is the same string.)"""
    key = "[" + ",".join(parts) + "]"
    return hashlib.sha256(key.encode()).hexdigest()[:24]


def seed_for(*parts: object) -> int:
    """A stable 63-bit seed from any parts (match id, seat, turn ...)."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1

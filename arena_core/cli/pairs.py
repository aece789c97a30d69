"""`arena pairs`: preference pairs from the ledger, as TRL reads them."""

from __future__ import annotations

import argparse


def pairs_export_command(args: argparse.Namespace) -> int:
    """`arena pairs export`: preference pairs from the ledger to a dataset directory or JSONL."""
    import sys

    from arena_core.learning.pairs import PairQuery, PairStats, pairs, parse_since, write_pairs
    from arena_core.ledger import Ledger

    url = args.from_ledger or args.ledger
    ledger = Ledger(url, create=False)
    query = PairQuery(
        tournaments=args.tournament or (),
        protocols=args.protocol or (),
        player=args.player,
        judge=args.judge,
        min_gap=args.min_gap,
        since=parse_since(args.since),
        gamma=args.gamma,
        conversational=args.conversational,
    )
    fmt = args.format or ("jsonl" if str(args.out).endswith(".jsonl") else "dataset")
    stats = PairStats()
    if fmt == "dataset":
        import datasets

        datasets.disable_progress_bars()  # one summary line says what happened
    try:
        n = write_pairs(pairs(ledger, query, stats=stats), args.out, fmt)
    finally:
        ledger.close()
    sources = ", ".join(f"{k}: {v}" for k, v in sorted(stats.by_source.items())) or "none"
    dropped = ", ".join(f"{k}: {v}" for k, v in sorted(stats.dropped.items())) or "none"
    print(
        f"wrote {n} pair(s) from {stats.matches} match(es) to {args.out} ({fmt}); "
        f"by source: {sources}; dropped: {dropped}",
        file=sys.stderr,
    )
    if stats.no_pairs:
        print(
            f"  no pairs from protocol(s) {', '.join(sorted(stats.no_pairs))} (they define none)",
            file=sys.stderr,
        )
    return 0

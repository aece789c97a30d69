"""`arena report`: judge accuracy, side win rates, calibration and quote statistics, printed;
with `--html DIR` the whole report as a static folder, with `--format json` all of it as data."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from arena_core.reports.tournament import TournamentReport


def print_tables(reports: Sequence[TournamentReport]) -> None:
    """The side-by-side metrics, then quotes per player (rates, so it fits 80 columns)."""
    from arena_core.cli.views import emit
    from arena_core.reports.tournament import QuoteStats, metric_rows

    emit(["metric", *(r.tournament for r in reports)], metric_rows(reports), title="Judge metrics")

    def rate(q: QuoteStats) -> str:
        return "-" if q.valid_rate is None else f"{q.valid_rate:.0%}"

    for r in reports:
        if not r.quotes:
            continue
        print()
        rows = [
            [
                pq.player,
                pq.overall.speeches,
                pq.overall.quotes,
                rate(pq.overall),
                pq.overall.invalid,
                pq.overall.repaired,
                pq.overall.valid_words,
                f"{rate(pq.correct)}·{rate(pq.incorrect)}",
                f"{rate(pq.winner)}·{rate(pq.loser)}",
            ]
            for pq in r.quotes
        ]
        emit(
            [
                "player",
                "turns",
                "quotes",
                "valid",
                "invalid",
                "fixed",
                "words",
                "right·wrong",
                "won·lost",
            ],
            rows,
            title=f"Quotes per player — {r.tournament}: valid share overall, by side argued "
            "(right·wrong) and by result (won·lost); fixed = repaired near misses",
        )


def report_command(args: argparse.Namespace) -> int:
    """`arena report`: judge metrics of one or more tournaments side by side; `--html DIR` writes
    the static report, `--format json` prints what that report shows."""
    from arena_core.errors import UsageError
    from arena_core.ledger import Ledger
    from arena_core.reports.tournament import to_markdown, tournament_report

    ledger = Ledger(args.ledger, create=False)
    try:
        names = args.tournament or [t.name for t in ledger.tournaments()]
        if not names:
            raise UsageError(f"the ledger {ledger.url} holds no tournament yet")
        html = getattr(args, "html", None)
        data: dict[str, Any] = {}
        if html or args.format == "json":
            from arena_core.reports.overview import build_overview

            data = build_overview(ledger, names)
        reports = [] if args.format == "json" else [tournament_report(ledger, n) for n in names]
    finally:
        ledger.close()
    if html:
        from arena_core.reports.html import write_report

        index = write_report(data, html)
        print(f"wrote {index} (open it in a browser; the folder works offline)", file=sys.stderr)
        if args.format == "table" and not args.out:
            return 0
    if args.format == "table" and not args.out:
        print_tables(reports)
        return 0
    if args.format == "json":
        import json

        text = json.dumps(data, indent=2, default=str) + "\n"
    else:
        text = to_markdown(reports)
    if args.out:
        from pathlib import Path

        Path(args.out).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0

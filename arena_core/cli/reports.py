"""`arena report`: judge accuracy, side win rates, calibration and quote statistics, printed."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from arena_core.reports.tournament import TournamentReport


def print_tables(reports: Sequence[TournamentReport]) -> None:
    from rich.console import Console
    from rich.table import Table

    from arena_core.reports.tournament import QUOTE_HEADERS, metric_rows, quote_rows
    from arena_core.textsafe import markup  # names and ids are untrusted: no markup, no controls

    console = Console(width=None if sys.stdout.isatty() else 160)
    t = Table(title="Judge metrics")
    t.add_column("metric")
    for r in reports:
        t.add_column(markup(r.tournament), justify="right")
    for row in metric_rows(reports):
        t.add_row(*(markup(c, newlines=False) for c in row))
    console.print(t)
    for r in reports:
        if not r.quotes:
            continue
        q = Table(title=markup(f"Quotes per player — {r.tournament}"))
        for h in QUOTE_HEADERS:
            q.add_column(h, justify="left" if h == "player" else "right")
        for row in quote_rows(r):
            q.add_row(*(markup(c, newlines=False) for c in row))
        console.print(q)


def report_command(args: argparse.Namespace) -> int:
    """`arena report`: judge metrics of one or more tournaments side by side."""
    from arena_core.errors import UsageError
    from arena_core.ledger import Ledger
    from arena_core.reports.tournament import to_json, to_markdown, tournament_report

    ledger = Ledger(args.ledger, create=False, readonly=True)
    try:
        names = args.tournament or [t.name for t in ledger.tournaments()]
        if not names:
            raise UsageError(f"the ledger {ledger.url} holds no tournament yet")
        reports = [tournament_report(ledger, n) for n in names]
    finally:
        ledger.close()
    if args.format == "table" and not args.out:
        print_tables(reports)
        return 0
    text = to_json(reports) if args.format == "json" else to_markdown(reports)
    if args.out:
        from pathlib import Path

        Path(args.out).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0

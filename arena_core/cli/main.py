"""The `arena` command. argparse keeps `arena --help` fast: every subcommand imports what it needs.

Exit codes: 0 success, 1 a run that finished with failed matches, 2 usage errors (bad config,
unknown plugin, missing ledger), 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import arena_core.cli.cluster as cluster_args  # argparse only: `arena --help` stays fast
import arena_core.cli.learn as learn_args
import arena_core.cli.views as views

EXIT_USAGE = 2


def add_report_arguments(p: argparse.ArgumentParser) -> None:
    """The options of `arena report`."""
    p.add_argument(
        "--ledger",
        metavar="URL",
        help="ledger database URL (default: $ARENA_LEDGER or sqlite:///arena.db)",
    )
    p.add_argument(
        "--tournament",
        action="append",
        help="a tournament to report (repeatable: printed side by side; default: all)",
    )
    p.add_argument(
        "--format",
        choices=["table", "md", "json"],
        default="table",
        help="json: everything the HTML report shows",
    )
    p.add_argument("--out", help="write to this file instead of stdout")
    p.add_argument("--html", metavar="DIR", help="write the static HTML report into DIR")


def add_export_arguments(p: argparse.ArgumentParser) -> None:
    """The options of `arena pairs export`."""
    p.add_argument(
        "--from-ledger",
        metavar="URL",
        nargs="?",
        const="",
        help="read this ledger (no URL: $ARENA_LEDGER or sqlite:///arena.db)",
    )
    p.add_argument("--ledger", metavar="URL", help="same as --from-ledger URL")
    p.add_argument("--tournament", action="append", help="only this tournament (repeatable)")
    p.add_argument("--protocol", action="append", help="only this protocol (repeatable)")
    p.add_argument("--player", help="only pairs this player spoke a side of")
    p.add_argument("--judge", help="only matches decided by this judge")
    p.add_argument(
        "--min-gap", type=float, default=0.0, help="drop pairs whose gap is not above this"
    )
    p.add_argument("--since", help="only matches finished at or after this ISO date/time")
    p.add_argument("--gamma", type=float, help="soft-target sharpness (default: the protocol's)")
    p.add_argument(
        "--conversational", action="store_true", help="chat messages instead of plain strings"
    )
    p.add_argument("--format", choices=["dataset", "jsonl"], help="default: from --out")
    p.add_argument(
        "--out", required=True, help="a directory (datasets.save_to_disk) or a .jsonl file"
    )


def _ledger_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--ledger",
        metavar="URL",
        help="ledger database URL (default: $ARENA_LEDGER or sqlite:///arena.db)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="arena", description="Tournaments for language-model debate and preference learning."
    )
    parser.add_argument("--version", action="version", version="arena 0.1.0")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("run", help="schedule a tournament and play every match not done yet")
    p.add_argument("config", help="tournament TOML file")
    _ledger_arg(p)
    p.add_argument("--retry-failed", action="store_true", help="play failed matches again too")
    p.add_argument("--concurrency", type=int, help="override [tournament] concurrency")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "-q", "--quiet", action="store_true", help="no progress; print only the final result line"
    )
    p.add_argument("--format", choices=["table", "json"], default="table", help="the final result")
    p.add_argument(
        "--limit",
        type=int,
        metavar="N",
        help="play at most N matches this run (a smoke test; the rest stay pending)",
    )
    p.add_argument(
        "--items",
        type=int,
        metavar="N",
        help="use only the first N items of the dataset (as [dataset] limit = N would)",
    )
    # --workers N, --executor slurm and the SLURM flags; with the local executor, --dry-run plans
    cluster_args.add_run_arguments(p)

    p = sub.add_parser("leaderboard", help="ratings of a pool (TrueSkill and Bradley-Terry)")
    _ledger_arg(p)
    p.add_argument(
        "--pool",
        help="rating pool: the tournaments rated together (default: the latest tournament's)",
    )
    p.add_argument("--tournament", help="the pool this tournament counts in (`arena tournaments`)")
    p.add_argument("--format", choices=["table", "md", "csv", "json"], default="table")
    p.add_argument("--out", help="write to this file instead of stdout")
    p.add_argument("--no-bt", action="store_true", help="skip the Bradley-Terry fit")

    p = sub.add_parser("matches", help="list matches")
    _ledger_arg(p)
    p.add_argument("--tournament")
    p.add_argument("--status", choices=["pending", "running", "done", "failed"])
    p.add_argument("--player")
    p.add_argument(
        "--limit", type=int, help="at most this many (0: all; default: 50 in a table, else all)"
    )
    p.add_argument(
        "--format",
        choices=["table", "json", "csv"],
        default="table",
        help="json: one object per line",
    )

    p = sub.add_parser("show", help="one match: transcript and verdict")
    _ledger_arg(p)
    p.add_argument("match_id", help="a match id or a unique prefix of one")
    p.add_argument("--format", choices=["table", "json"], default="table")

    p = sub.add_parser("plugins", help="every registered plugin, its origin and options")
    p.add_argument("--kind", choices=["protocol", "agent", "judge", "learner", "dataset"])
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.add_argument("--json", action="store_true", help="same as --format json")

    p = sub.add_parser(
        "datasets", help="dataset plugins and their options; preview one with `show`"
    )
    from arena_core.cli.datasets import add_arguments as add_datasets_arguments  # argparse only

    add_datasets_arguments(p)

    p = sub.add_parser("export", help="matches with transcripts and verdicts as JSONL")
    _ledger_arg(p)
    p.add_argument("--tournament")
    p.add_argument("--status", choices=["pending", "done", "failed"])
    p.add_argument("--out", default="-", help="output file (default: stdout)")

    p = sub.add_parser(
        "report",
        help="judge accuracy, side win rates, calibration and quote stats, side by side",
    )
    add_report_arguments(p)

    p = sub.add_parser("pairs", help="preference pairs from the ledger")
    psub = p.add_subparsers(dest="pairs_command", metavar="ACTION", required=True)
    add_export_arguments(
        psub.add_parser("export", help="pairs in TRL's format: a datasets directory or JSONL")
    )

    p = sub.add_parser("ratings", help="rating maintenance")
    rsub = p.add_subparsers(dest="ratings_command", metavar="ACTION", required=True)
    r = rsub.add_parser("recompute", help="replay finished matches and rewrite a pool's ratings")
    _ledger_arg(r)
    r.add_argument("--pool", help="pool (default: every pool)")
    cluster_args.add_commands(sub)  # worker, ledger merge|upgrade, slurm submit
    learn_args.add_commands(sub)  # learn, loop, model tiny
    views.add_commands(sub)  # tournaments, view, completion
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return EXIT_USAGE
    from arena_core.errors import UsageError

    try:
        _load_dotenv()
        from arena_core.textsafe import secrets_from_env

        secrets_from_env()  # API keys in the environment are redacted from all output
        return int(COMMANDS[args.command](args) or 0)
    except UsageError as exc:
        print(f"arena: error: {_plain(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except ModuleNotFoundError as exc:
        hint = views.missing_extra_message(exc)
        if hint is None:
            raise
        print(f"arena: error: {hint}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("arena: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:
        message = _ledger_failure(exc, getattr(args, "ledger", None))
        if message is None:
            raise
        print(f"arena: error: {_plain(message)}", file=sys.stderr)
        return EXIT_USAGE


def _ledger_failure(exc: Exception, url: str | None) -> str | None:
    """Disk full, read-only or damaged ledger: a clear message (exit 2) instead of a traceback."""
    if not type(exc).__module__.startswith(("sqlalchemy", "sqlite3", "psycopg")):
        return None
    from arena_core.ledger.store import explain_db_error, resolve_url

    return explain_db_error(exc, resolve_url(url))


def _load_dotenv() -> None:
    """API keys may live in ./.env; they are read into the environment, never written anywhere."""
    if Path(".env").is_file():
        from dotenv import load_dotenv

        load_dotenv(".env", override=False)


def _plain(text: object) -> str:
    """Untrusted text for a plain (non-rich) line: control characters shown, secrets removed."""
    from arena_core.textsafe import visible

    return visible(text)


def _cell(text: object) -> str:
    """Untrusted text for a rich table cell or markup string: one line, markup escaped."""
    from arena_core.textsafe import markup

    return markup(text, newlines=False)


def _json_line(record: Any) -> str:
    """One JSON record with known secrets redacted (JSON escapes controls already)."""
    from arena_core.textsafe import redact

    return redact(json.dumps(record, default=str)) or ""


def _out(text: str, dest: str | None) -> None:
    if dest and dest != "-":
        Path(dest).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)


# --- commands ----------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    import asyncio

    from arena_core.errors import UsageError

    for flag in ("limit", "items"):
        if getattr(args, flag) is not None and getattr(args, flag) < 1:
            raise UsageError(f"--{flag} must be at least 1")
    if args.executor == "slurm":
        if args.limit is not None or args.items is not None:
            raise UsageError("--limit and --items apply to local runs, not --executor slurm")
        return cluster_args.slurm_command(args)
    if args.workers is not None and args.workers < 1:
        raise UsageError("--workers must be at least 1")
    if args.workers and (args.limit is not None or args.items is not None):
        raise UsageError("--limit and --items play from one process: not with --workers")

    from arena_core.config import load_config
    from arena_core.engine import Tournament
    from arena_core.ledger import Ledger
    from arena_core.plugins import get_plugin_manager, get_registry

    registry = get_registry()
    cfg = load_config(args.config, registry)
    if args.concurrency is not None:
        if args.concurrency < 1:
            raise UsageError("--concurrency must be at least 1")
        cfg.raw.tournament.concurrency = args.concurrency
    if args.items is not None:  # `limit` is not part of the identity: same tournament, fewer items
        cfg.raw.dataset.limit = min(cfg.raw.dataset.limit or args.items, args.items)
    source = Path(args.config).read_text(encoding="utf-8")
    # A dry run builds no agent or judge: listing them must not load a model or open a client.
    tournament = Tournament(cfg, registry, source=source, build=not args.dry_run)
    only = {r["id"] for r in tournament.rows} if args.items is not None else None
    if args.dry_run:
        return _print_plan(tournament, args, only)
    ledger = Ledger(args.ledger, check=True)  # never write into a damaged file
    hook = get_plugin_manager().hook
    show_bar = not (args.no_progress or args.quiet) and sys.stderr.isatty()

    from rich.console import Console

    console = Console(stderr=True)
    from contextlib import ExitStack

    from arena_core.live import showing
    from arena_core.match import StopRun

    live = ExitStack()  # the bar, registered so that a human's prompt pauses it
    if show_bar:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("failed {task.fields[failed]}"),
            TextColumn("{task.fields[rate]:.0f}/s"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
        )
        task = bar.add_task(_cell(cfg.name), total=None, failed=0, rate=0.0)

        def progress(s: Any) -> None:
            bar.update(
                task, total=s.to_play, completed=s.done + s.failed, failed=s.failed, rate=s.rate
            )

        bar.start()
        live.enter_context(showing(bar))
    else:
        quiet = args.quiet or args.no_progress or args.format == "json"
        progress = None if quiet else views.ProgressLines(cfg.name)  # type: ignore[assignment]
    from arena_core.engine import sigterm_as_interrupt

    try:
        with sigterm_as_interrupt():  # kill / preemption stop the run like Ctrl-C
            if args.workers:
                from arena_core.cluster.worker import run_workers

                summary = run_workers(
                    tournament,
                    ledger,
                    args.workers,
                    retry_failed=args.retry_failed,
                    progress=progress,
                )
            else:
                summary = asyncio.run(
                    tournament.run(
                        ledger,
                        retry_failed=args.retry_failed,
                        progress=progress,
                        hook=hook,
                        limit=args.limit,
                        only=only,
                    )
                )
    except KeyboardInterrupt:
        counts = ledger.counts(cfg.name)
        console.print(
            f"interrupted: {counts.get('done', 0)} done, {counts.get('failed', 0)} "
            f"failed, {counts.get('pending', 0)} pending; run the same command to "
            f"resume"
        )
        raise
    except StopRun as exc:  # e.g. a human player's input closed: no use playing on
        counts = ledger.counts(cfg.name)
        raise UsageError(
            f"run stopped: {exc}; {counts.get('done', 0)} done, {counts.get('failed', 0)} "
            f"failed, {counts.get('pending', 0)} pending; run the same command to resume"
        ) from exc
    finally:
        live.close()
        if show_bar:
            bar.stop()

    from arena_core.reports.leaderboard import judge_accuracy_by_matchup, judge_stats, leaderboard

    counts = ledger.counts(cfg.name)
    line = (
        f"{cfg.name}: played {summary.done + summary.failed} of {summary.to_play} "
        f"({summary.done} done, {summary.failed} failed) in {summary.wall:.2f}s "
        f"({summary.rate:.0f} matches/s); ledger: {counts.get('done', 0)} done, "
        f"{counts.get('failed', 0)} failed, {counts.get('pending', 0)} pending"
        + (f", {counts['running']} running" if counts.get("running") else "")
    )
    for note in _held_notes(summary):
        print(note, file=sys.stderr)
    if args.format == "json":
        from arena_core.cli.views import run_result

        js = judge_stats(ledger, cfg.name)
        rows = leaderboard(ledger, cfg.pool)
        print(json.dumps(run_result(cfg.name, cfg.pool, summary, counts, rows, js), indent=2))
    elif args.quiet:
        print(line)
    else:
        rows = leaderboard(ledger, cfg.pool)
        _print_table(rows, title=f"Leaderboard — pool '{cfg.pool}'")
        js = judge_stats(ledger, cfg.name)
        if js.graded:
            first = (
                f"; first speaker won {js.first_seat_wins:.1%} of decided matches"
                if js.first_seat_wins is not None
                else ""
            )
            print(
                f"Judge accuracy ({cfg.raw.judge.plugin}): {js.accuracy:.1%} "
                f"(95% CI {js.lower:.1%}–{js.upper:.1%}; {js.correct}/{js.graded} verdicts, "
                f"{js.undecided} undecided){first}"
            )
            by = judge_accuracy_by_matchup(ledger, cfg.name)
            if len(by) > 1:
                print("  by matchup:")
                for g in by:
                    print(
                        f"    {_plain(' vs '.join(g['players'])):40s} {g['accuracy']:6.1%}  "
                        f"[{g['lower']:.1%}–{g['upper']:.1%}]  n={g['verdicts']}"
                    )
        print(line)
        for err, n in sorted(summary.errors.items(), key=lambda kv: -kv[1])[:5]:
            print(f"  failed: {n} x {_plain(err)} (see `arena matches --status failed`)")
        if counts.get("failed"):
            print("  retry them with: arena run " + args.config + " --retry-failed")
    return 1 if counts.get("failed") and summary.failed else 0


def _print_plan(tournament: Any, args: argparse.Namespace, only: set[str] | None) -> int:
    """`arena run --dry-run`: what would be scheduled, what is done, what would be built.

    Reads the ledger only when it exists (a missing SQLite file is not created) and never
    plays: exit 0 when the run could go ahead, 2 when it would be refused.
    """
    from arena_core.ledger import Ledger, resolve_url, sqlite_path

    url = resolve_url(args.ledger)
    path = sqlite_path(url)
    ledger = None if path is not None and not Path(path).exists() else Ledger(url, create=False)
    plan = tournament.plan(ledger, retry_failed=args.retry_failed, limit=args.limit, only=only)
    print(
        f"dry run of '{_plain(plan.tournament)}' ({_plain(plan.protocol)}): {plan.items} item(s), "
        f"{plan.scheduled} match(es) scheduled; nothing is played or written"
    )
    width = max(len(_plain(pair)) for _, pair in plan.per_pair)
    for (protocol, pair), n in sorted(plan.per_pair.items()):
        print(f"  {_plain(protocol)}  {_plain(pair):{width}s}  {n:6d}")
    if ledger is None:
        print(f"ledger {url}: does not exist yet; every match would be new")
    elif plan.refused:
        print(f"ledger {url}: the run would be refused")
    else:
        stored = ", ".join(f"{n} {st}" for st, n in sorted(plan.stored.items())) or "nothing"
        print(f"ledger {url}: this tournament has {stored}")
    if not plan.refused:
        cut = f" (--limit {args.limit})" if args.limit is not None else ""
        print(f"this run would play {plan.to_play} match(es){cut}")
    print("agents that would be built:")
    for name, agent, options in plan.agents:
        print(f"  {_plain(name)}: {_plain(agent)} {_plain(json.dumps(options, sort_keys=True))}")
    judge, options = plan.judge
    print(f"judge: {_plain(judge)} {_plain(json.dumps(options, sort_keys=True))}")
    if plan.refused:
        from arena_core.errors import UsageError

        raise UsageError(plan.refused)
    return 0


def _held_notes(summary: Any, stale_after: float = 60.0) -> list[str]:
    """Say who holds the matches this run could not play, and when they go back to pending."""
    notes = []
    for worker, n, beat in getattr(summary, "held_elsewhere", []):
        notes.append(
            f"arena: {n} match(es) of '{_plain(summary.tournament)}' are running under another "
            f"process, {_plain(worker)} (last heartbeat {views.age(beat)}); they go back to "
            f"pending when it stops, or {stale_after:.0f}s after its last heartbeat if it died: "
            f"run the same command again then (see `arena matches --status running`)"
        )
    return notes


def _print_table(rows: Sequence[Any], title: str) -> None:
    from arena_core.reports.leaderboard import HEADERS, table_cells

    views.emit([views.SHORT.get(h, h) for h in HEADERS[:-1]], list(table_cells(rows)), title=title)


def _default_pool(ledger: Any, pool: str | None) -> str:
    from arena_core.errors import UsageError

    if pool:
        if pool not in ledger.pools():
            from arena_core.errors import suggest

            raise UsageError(
                f"no rating pool '{pool}' in {ledger.url}{suggest(pool, ledger.pools())}"
            )
        return pool
    tournaments = ledger.tournaments()
    if not tournaments:
        raise UsageError(f"the ledger {ledger.url} holds no tournament yet")
    return tournaments[-1].pool


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from arena_core.ledger import Ledger
    from arena_core.reports.leaderboard import leaderboard, to_csv, to_json, to_markdown

    ledger = Ledger(args.ledger, create=False, readonly=True)
    if args.tournament and args.pool:
        from arena_core.errors import UsageError

        raise UsageError("give --pool or --tournament, not both")
    pool = ledger.tournament(args.tournament).pool if args.tournament else args.pool
    pool = _default_pool(ledger, pool)
    rows = leaderboard(ledger, pool, bt=not args.no_bt)
    if args.format == "table" and not args.out:
        _print_table(rows, title=f"Leaderboard — pool '{pool}'")
    elif args.format == "csv":
        _out(to_csv(rows), args.out)
    elif args.format == "json":
        _out(to_json(rows, pool=pool), args.out)
    else:
        _out(to_markdown(rows), args.out)
    return 0


def cmd_matches(args: argparse.Namespace) -> int:
    return views.matches_command(args)


def cmd_show(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.panel import Panel

    from arena_core.ledger import Ledger
    from arena_core.textsafe import markup as escape  # markup escaped, controls made visible

    ledger = Ledger(args.ledger, create=False, readonly=True)
    if args.format == "json":
        sys.stdout.write(views.show_json(ledger, args.match_id))
        return 0
    m = ledger.get_match(args.match_id)
    con = Console()
    item = m.item
    answers = "\n".join(
        f"  {i + 1}. {escape(a)}" + ("  [green](gold)[/]" if i == item.get("gold") else "")
        for i, a in enumerate(item["answers"])
    )
    seats = ", ".join(
        f"{s} = {escape(p)} argues #{m.assignment.get(s, -1) + 1}" for s, p in m.seats.items()
    )
    con.print(
        Panel(
            f"[bold]{escape(item['question'])}[/]\n{answers}\n\n{seats}",
            title=_cell(
                f"match {m.id} · {m.tournament} · {m.protocol} · item {m.item_id} · {m.status}"
            ),
        )
    )
    for t in ledger.turns(m.id):
        who = f"{t.seat} ({t.player})" if t.player else t.seat
        hidden = f" · visible to {', '.join(t.visible_to)}" if t.visible_to is not None else ""
        con.print(
            Panel(
                escape(t.shown),
                title=_cell(f"round {t.round + 1} · {t.phase} · {who}{hidden}"),
                title_align="left",
            )
        )
    v = ledger.verdict(m.id)
    if v is not None:
        probs = escape(", ".join(f"{k}: {p:.2f}" for k, p in v.probs.items()))
        right = {True: "[green]correct[/]", False: "[red]wrong[/]", None: "ungraded"}[v.correct]
        con.print(
            Panel(
                f"winner: {escape(str(v.winner))} (seat {escape(str(v.winner_seat))})"
                f"  probs: {probs}  {right}\n{escape(v.raw)}",
                title=_cell(f"verdict · {v.judge}"),
            )
        )
    if m.error:
        con.print(Panel(escape(m.traceback or m.error), title="error", style="red"))
    return 0


def cmd_plugins(args: argparse.Namespace) -> int:
    from arena_core.plugins import get_registry

    registry = get_registry()
    entries = [e for e in registry if not args.kind or e.kind == args.kind]
    if args.json or args.format == "json":
        print(
            json.dumps(
                [
                    {
                        "kind": e.kind,
                        "name": e.name,
                        "origin": e.origin,
                        "summary": e.summary,
                        "options": [
                            {"name": n, "type": t, "default": d} for n, t, d in e.describe_options()
                        ],
                    }
                    for e in entries
                ],
                indent=2,
            )
        )
        return 0
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"{len(entries)} plugin(s)")
    for col in ("kind", "name", "origin", "options", "summary"):
        t.add_column(col, overflow="fold")
    for e in entries:
        opts = ", ".join(f"{n}: {ty} = {d}" for n, ty, d in e.describe_options()) or "-"
        t.add_row(*(_cell(c) for c in (e.kind, e.name, e.origin, opts, e.summary)))
    Console(width=max(160, Console().width)).print(t)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from arena_core.ledger import Ledger
    from arena_core.reports.leaderboard import export_matches

    ledger = Ledger(args.ledger, create=False, readonly=True)
    if args.tournament:
        ledger.tournament(args.tournament)
    records = export_matches(ledger, tournament=args.tournament, status=args.status)
    if args.out == "-":
        for rec in records:
            sys.stdout.write(_json_line(rec) + "\n")
        return 0
    tmp = Path(args.out + ".tmp")
    n = 0
    with tmp.open("w", encoding="utf-8") as fh:
        for rec in records:
            fh.write(_json_line(rec) + "\n")
            n += 1
    os.replace(tmp, args.out)  # never a half-written export
    print(f"wrote {n} match(es) to {args.out}", file=sys.stderr)
    return 0


def cmd_ratings(args: argparse.Namespace) -> int:
    from arena_core.ledger import Ledger
    from arena_core.ratings import pool_settings, recompute

    ledger = Ledger(args.ledger, create=False, check=True)
    pools = [_default_pool(ledger, args.pool)] if args.pool else ledger.pools()
    for pool in pools:
        before = {r.player: (r.mu, r.sigma) for r in ledger.ratings(pool)}
        book = recompute(ledger, pool, pool_settings(ledger, pool))
        diff = max(
            (
                abs(before.get(n, (0, 0))[0] - r.mu) + abs(before.get(n, (0, 0))[1] - r.sigma)
                for n, r in book.players.items()
            ),
            default=0.0,
        )
        print(f"pool '{pool}': {len(book.players)} player(s) recomputed; largest change {diff:.6f}")
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    from arena_core.cli.datasets import run

    return run(args)


def cmd_report(args: argparse.Namespace) -> int:
    from arena_core.cli.reports import report_command

    return report_command(args)


def cmd_pairs(args: argparse.Namespace) -> int:
    from arena_core.cli.pairs import pairs_export_command

    return pairs_export_command(args)


COMMANDS = {
    "run": cmd_run,
    "leaderboard": cmd_leaderboard,
    "matches": cmd_matches,
    "show": cmd_show,
    "plugins": cmd_plugins,
    "export": cmd_export,
    "ratings": cmd_ratings,
    "report": cmd_report,
    "datasets": cmd_datasets,
    "worker": cluster_args.worker_command,
    "ledger": cluster_args.ledger_command,
    "slurm": cluster_args.slurm_command,
    "learn": learn_args.learn_command,
    "loop": learn_args.loop_command,
    "model": learn_args.model_command,
    "judges": learn_args.judges_command,
    "pairs": cmd_pairs,
    **views.COMMANDS,
}

if __name__ == "__main__":
    raise SystemExit(main())

"""`arena datasets`: list the dataset plugins with their options, and preview a dataset.

    arena datasets [--json]
    arena datasets show NAME [-o key=value ...] [--split S] [--limit N] [-n 3] [--json]

Option values are TOML (`-o limit=3`, `-o 'splits={train=0.9, test=0.1}'`); a value that is not
TOML is taken as a string, so paths need no quotes. Options go through the plugin's own model, so
a wrong key is named as in a tournament file. Only argparse is imported at module level.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from collections.abc import Sequence
from typing import Any

EXIT_USAGE = 2


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The `datasets` subcommand's arguments (shared by the arena CLI and `datasets_command`)."""
    p.add_argument("--json", action="store_true", help="list as JSON (same as --format json)")
    p.add_argument("--format", choices=["table", "json"], default="table", dest="list_format")
    sub = p.add_subparsers(dest="datasets_action", metavar="ACTION")
    s = sub.add_parser("show", help="preview the first items of a dataset")
    s.add_argument("name", help="a dataset plugin (see `arena datasets`)")
    s.add_argument(
        "-o",
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a dataset option; VALUE is TOML, else a plain string (repeatable)",
    )
    s.add_argument("--split", help="the split to read")
    s.add_argument("--limit", type=int, help="read at most this many items")
    s.add_argument("-n", type=int, default=3, help="items to print (default 3)")
    s.add_argument("--shuffle", action="store_true", help="seeded shuffle (reads every item)")
    s.add_argument("--seed", type=int, default=0, help="shuffle seed (default 0)")
    s.add_argument("--pairs", action="store_true", help="preview preference pairs, not items")
    s.add_argument("--json", action="store_true", help="one JSON object per item")
    s.add_argument(
        "--format",
        choices=["table", "json"],
        default="table",
        dest="show_format",
        help="json: same as --json",
    )
    s.add_argument(
        "--conversational",
        action="store_true",
        help="with --pairs: one JSON pair per line in TRL's conversational format (prompt, "
        "chosen and rejected as chat messages; a multi-turn completion stays several messages)",
    )


def parse_option(text: str) -> tuple[list[str], Any]:
    """'a.b=VALUE' -> (['a', 'b'], value parsed as TOML, else the raw string)."""
    import tomllib

    from arena_core.errors import UsageError

    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise UsageError(f"--option {text!r}: expected KEY=VALUE")
    try:
        parsed: Any = tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value
    return [k.strip() for k in key.split(".")], parsed


def parse_options(pairs: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for text in pairs:
        keys, value = parse_option(text)
        table = out
        for k in keys[:-1]:
            table = table.setdefault(k, {})
        table[keys[-1]] = value
    return out


def list_datasets(as_json: bool) -> int:
    from arena_core.plugins import get_registry

    entries = [e for e in get_registry() if e.kind == "dataset"]
    if as_json:
        print(
            json.dumps(
                [
                    {
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

    t = Table(title=f"{len(entries)} dataset(s) — preview one with: arena datasets show NAME")
    for col in ("name", "origin", "options", "summary"):
        t.add_column(col, overflow="fold")
    for e in entries:
        opts = "\n".join(f"{n}: {ty} = {d}" for n, ty, d in e.describe_options()) or "-"
        t.add_row(e.name, e.origin, opts, e.summary)
    Console(width=max(160, Console().width)).print(t)
    return 0


def _excerpt(text: str | None, n: int = 240) -> str:
    if not text:
        return "-"
    flat = " ".join(text.split())
    return flat if len(flat) <= n else flat[: n - 1] + "…"


def show_dataset(args: argparse.Namespace) -> int:
    from arena_core.errors import UsageError
    from arena_core.plugins import get_registry
    from arena_core.schedule import sample_items

    registry = get_registry()
    options = parse_options(args.option)
    checked = registry.validate("dataset", args.name, options, table="dataset.options")
    source = registry.build("dataset", args.name, checked)
    if args.limit is not None and args.limit < 1:
        raise UsageError("--limit must be at least 1")
    if args.n < 1:
        raise UsageError("-n must be at least 1")
    take = min(args.n, args.limit) if args.limit else args.n
    if args.pairs:
        if not hasattr(source, "pairs"):
            raise UsageError(f"dataset '{args.name}' has no preference pairs (only items)")
        rows: list[Any] = list(itertools.islice(source.pairs(args.split), take))
    else:
        items = sample_items(
            source, split=args.split, limit=args.limit, seed=args.seed, shuffle=args.shuffle
        )
        rows = items[:take]
    if args.conversational and not args.pairs:
        raise UsageError("--conversational applies to --pairs")
    for k, row in enumerate(rows, 1):
        if args.conversational:
            print(json.dumps({"id": row.id, **conversational(row)}, ensure_ascii=False))
        elif args.json:
            print(json.dumps(row.model_dump(mode="json"), ensure_ascii=False))
        elif args.pairs:
            _print_pair(k, row)
        else:
            _print_item(k, row)
    skipped = getattr(source, "skipped", 0)
    if skipped:
        print(f"({skipped} malformed record(s) skipped so far)", file=sys.stderr)
    return 0


def conversational(pair: Any) -> dict[str, Any]:
    """A pair as TRL's conversational rows. A dataset that knows the turns puts them in the
    pair's metadata (`messages`: the prompt's dialogue; `chosen_messages`/`rejected_messages`:
    each completion's turns, an assistant reply first); otherwise the prompt is one user message
    and each completion one assistant message."""
    meta = pair.metadata or {}
    return {
        "prompt": meta.get("messages") or [{"role": "user", "content": pair.prompt}],
        "chosen": meta.get("chosen_messages") or [{"role": "assistant", "content": pair.chosen}],
        "rejected": meta.get("rejected_messages")
        or [{"role": "assistant", "content": pair.rejected}],
    }


def _print_item(k: int, item: Any) -> None:
    print(f"[{k}] {item.id}")
    print(f"  question: {_excerpt(item.question, 400)}")
    for i, answer in enumerate(item.answers):
        marks = [
            m for m, on in (("gold", i == item.gold), ("distractor", i == item.distractor)) if on
        ]
        tag = f"  ({', '.join(marks)})" if marks else ""
        print(f"  {chr(ord('A') + i) if i < 26 else i}. {_excerpt(answer, 200)}{tag}")
    if not item.answers:
        print("  (no answers: a prompt-only item)")
    if item.context:
        print(f"  context: {_excerpt(item.context)} ({len(item.context.split())} words)")
    if item.metadata:
        keys = ", ".join(sorted(item.metadata))
        turns = item.metadata.get("transcript")
        extra = f"; transcript: {len(turns)} turn(s)" if isinstance(turns, list) else ""
        print(f"  metadata: {keys}{extra}")
    print()


def _print_pair(k: int, pair: Any) -> None:
    print(f"[{k}] {pair.id}")
    print(f"  prompt: {_excerpt(pair.prompt, 400)}")
    sc = f" (score {pair.score_chosen:g})" if pair.score_chosen is not None else ""
    sr = f" (score {pair.score_rejected:g})" if pair.score_rejected is not None else ""
    print(f"  chosen: {_excerpt(pair.chosen, 200)}{sc}")
    print(f"  rejected: {_excerpt(pair.rejected, 200)}{sr}")
    if pair.metadata:
        print(f"  metadata: {', '.join(sorted(pair.metadata))}")
    print()


def run(args: argparse.Namespace) -> int:
    """Dispatch a parsed `arena datasets` command; UsageError propagates (exit 2 in the CLI)."""
    formats = (getattr(args, "list_format", None), getattr(args, "show_format", None))
    args.json = bool(getattr(args, "json", False)) or "json" in formats  # one spelling: --format
    if getattr(args, "datasets_action", None) == "show":
        return show_dataset(args)
    return list_datasets(args.json)


def datasets_command(argv: list[str]) -> int:
    """`arena datasets ...` as a function: parse, run, and map usage errors to exit code 2."""
    from arena_core.errors import UsageError

    parser = argparse.ArgumentParser(
        prog="arena datasets", description="Dataset plugins: list them, preview one."
    )
    add_arguments(parser)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on bad usage, 0 on --help
        return int(exc.code or 0)
    try:
        return run(args)
    except UsageError as exc:
        print(f"arena: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        return 0

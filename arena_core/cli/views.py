"""Listing commands and their output as a new user meets them: `tournaments`, `matches`, `show`,
`view`, `completion`, the tables every listing prints, and progress lines for logs.

One output rule for every listing: `--format table` (the default) is for people: at 80 columns
ids and names are never split (other columns fold), and when stdout is not a terminal nothing is
cut; `--format json` and `--format csv` are for programs and hold every row that was selected.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from arena_core.errors import UsageError

FORMATS = ("table", "json", "csv")
SHORT = {"matches": "n", "win rate": "win %", "BT 95% CI": "BT CI"}  # narrow table headers
KEEP_WHOLE = {"id", "match", "player", "tournament", "pool", "name"}  # never folded

# Optional imports -> the extra that installs them (for the message instead of a traceback).
EXTRAS = {
    "transformers": "hf",
    "trl": "hf",
    "peft": "hf",
    "accelerate": "hf",
    "datasets": "hf",
    "tokenizers": "hf",
    "safetensors": "hf",
    "pyarrow": "hf",
    "torch": "hf",
    "openai": "api",
    "anthropic": "api",
    "aiohttp": "api",
    "vllm": "vllm",
    "psycopg": "postgres",
    "alembic": "postgres",
    "submitit": "slurm",
}
DIST = "arena-debate"  # the distribution's name on the package index (`arena` is another project)


def missing_extra_message(exc: ModuleNotFoundError) -> str | None:
    """'... needs X: pip install "arena-debate[hf]"' when a known optional module is missing."""
    top = (exc.name or "").split(".")[0]
    extra = EXTRAS.get(top)
    if extra is None:
        return None
    torch = " (install torch first: see the README)" if top == "torch" else ""
    return f"this needs the optional package '{top}': pip install '{DIST}[{extra}]'{torch}"


# --- tables --------------------------------------------------------------------------------------


def emit(
    headers: Sequence[str],
    rows: Sequence[Sequence[Any]],
    fmt: str = "table",
    *,
    title: str | None = None,
    records: Sequence[dict[str, Any]] | None = None,
    out: Any = None,
) -> None:
    """Print rows as a table, CSV or JSON (`records` if given, else rows keyed by header)."""
    out = out or sys.stdout
    if fmt == "json":
        data = (
            records if records is not None else [dict(zip(headers, r, strict=True)) for r in rows]
        )
        out.write(json.dumps(list(data), indent=2, default=str) + "\n")
        return
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(headers)
        w.writerows(rows)
        out.write(buf.getvalue())
        return
    from rich import box
    from rich.console import Console
    from rich.table import Table

    t = Table(
        title=title,
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        collapse_padding=True,
        title_justify="left",
    )
    for i, h in enumerate(headers):
        whole = h in KEEP_WHOLE
        longest = max([len(str(r[i])) for r in rows] + [len(h)])
        # Names and short cells (numbers, statuses) never fold; only long text does.
        t.add_column(
            h,
            no_wrap=whole,
            min_width=longest if whole or longest <= 14 else len(h),
            overflow="fold",
            justify="right" if rows and all(_numeric(r[i]) for r in rows) else "left",
        )
    for r in rows:
        t.add_row(*(str(c) for c in r))
    tty = out.isatty() if hasattr(out, "isatty") else False
    buf = io.StringIO()
    # Piped output keeps every character: a log is read later, at any width.
    width = Console().width if tty else 100_000
    Console(file=buf, width=width, highlight=False, color_system=None).print(t)
    out.write("\n".join(line.rstrip() for line in buf.getvalue().splitlines()) + "\n")


def _numeric(v: Any) -> bool:
    if isinstance(v, int | float):
        return True
    s = str(v).rstrip("%")
    try:
        float(s)
    except ValueError:
        return s in ("-", "–")
    return True


def add_format(p: argparse.ArgumentParser, choices: Sequence[str] = FORMATS) -> None:
    p.add_argument(
        "--format",
        choices=list(choices),
        default=choices[0],
        help="table (for people), or json/csv with every selected row (for programs)",
    )


# --- progress lines ------------------------------------------------------------------------------


class ProgressLines:
    """`arena run` without a terminal (logs, SLURM, nohup): one line on stderr every `every`
    seconds and at the end, instead of a progress bar that only a terminal can draw."""

    def __init__(
        self, name: str, every: float = 10.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.name = name
        self.every = every
        self.clock = clock
        self.last = clock()
        self.printed = -1  # matches finished at the last line (the end is reported once)

    def __call__(self, s: Any) -> None:
        now = self.clock()
        finished = s.done + s.failed
        if finished == self.printed or (now - self.last < self.every and finished < s.to_play):
            return
        self.last, self.printed = now, finished
        left = s.to_play - finished
        eta = f", about {left / s.rate:.0f}s left" if s.rate and left else ""
        print(
            f"{self.name}: {finished}/{s.to_play} played ({s.done} done, {s.failed} failed), "
            f"{s.rate:.1f} matches/s{eta}",
            file=sys.stderr,
            flush=True,
        )


def run_result(
    cfg_name: str,
    pool: str,
    summary: Any,
    counts: dict[str, int],
    leaderboard: Sequence[Any],
    judge: Any,
) -> dict[str, Any]:
    """What `arena run --format json` prints: the run, the ledger's counts, the pool's table."""
    from dataclasses import asdict

    return {
        "tournament": cfg_name,
        "pool": pool,
        "played": summary.done + summary.failed,
        "to_play": summary.to_play,
        "done": summary.done,
        "failed": summary.failed,
        "wall_s": round(summary.wall, 3),
        "errors": summary.errors,
        "ledger": counts,
        "leaderboard": [asdict(r) for r in leaderboard],
        "judge": asdict(judge) if judge is not None and judge.graded else None,
    }


# --- commands ------------------------------------------------------------------------------------


def tournaments_command(args: argparse.Namespace) -> int:
    """Tournaments with their pools and match counts; then pools with their players."""
    from arena_core.ledger import Ledger

    ledger = Ledger(args.ledger, create=False)
    try:
        ts = ledger.tournaments()
        rows, records = [], []
        for t in ts:
            c = ledger.counts(t.name)
            judge = str((t.config.get("judge") or {}).get("plugin", "?"))
            players = len(t.config.get("players") or [])
            rec = {
                "tournament": t.name,
                "pool": t.pool,
                "protocol": t.protocol,
                "judge": judge,
                "players": players,
                "matches": sum(c.values()),
                "done": c.get("done", 0),
                "failed": c.get("failed", 0),
                "pending": c.get("pending", 0) + c.get("running", 0),
                "created": t.created_at.isoformat(timespec="seconds"),
            }
            records.append(rec)
            rows.append([rec[k] for k in list(rec)[:-1]])
        if args.format == "json":
            pools: dict[str, list[str]] = {}
            for t in ts:
                pools.setdefault(t.pool, []).append(t.name)
            print(
                json.dumps(
                    {
                        "tournaments": records,
                        "pools": [
                            {"pool": p, "tournaments": names, "players": len(ledger.ratings(p))}
                            for p, names in pools.items()
                        ],
                    },
                    indent=2,
                )
            )
            return 0
        if not ts:
            print(f"the ledger {ledger.url} holds no tournament yet", file=sys.stderr)
            return 0
        headers = list(records[0])[:-1]
        if args.format == "table":  # 80 columns: the judge is in json and csv
            headers.remove("judge")
            rows = [[rec[h] for h in headers] for rec in records]
        emit(
            headers,
            rows,
            args.format,
            title=f"{len(ts)} tournament(s); a pool rates its tournaments' matches together",
        )
        return 0
    finally:
        ledger.close()


def matches_command(args: argparse.Namespace) -> int:
    """`arena matches`: tables stop at --limit (default 50) and say how many were left out; json
    (one object per line) and csv hold every selected match unless --limit is given."""
    from arena_core.ledger import Ledger

    ledger = Ledger(args.ledger, create=False)
    try:
        if args.tournament:
            ledger.tournament(args.tournament)
        rows = ledger.matches(tournament=args.tournament, status=args.status, player=args.player)
        limit = args.limit if args.limit is not None else (50 if args.format == "table" else 0)
        if limit < 0:
            raise UsageError("--limit must be 0 (all) or more")
        total = len(rows)
        rows = rows[:limit] if limit else rows
        if args.format == "json":
            for m in rows:
                print(
                    json.dumps(
                        {
                            "id": m.id,
                            "tournament": m.tournament,
                            "status": m.status,
                            "item": m.item_id,
                            "seats": m.seats,
                            "attempts": m.attempts,
                            "error": m.error,
                        }
                    )
                )
        else:
            cells = [
                [
                    m.id if args.format == "csv" else m.id[:12],
                    m.tournament,
                    m.item_id,
                    " vs ".join(f"{s}:{p}" for s, p in m.seats.items()),
                    m.status,
                    m.attempts,
                    (m.error or "") if args.format == "csv" else (m.error or "")[:80],
                ]
                for m in rows
            ]
            emit(
                ["id", "tournament", "item", "seats", "status", "tries", "error"],
                cells,
                args.format,
                title=f"{len(rows)} of {total} match(es)",
            )
        if total > len(rows):
            print(
                f"{total - len(rows)} more match(es) left out; --limit 0 shows all",
                file=sys.stderr,
            )
        return 0
    finally:
        ledger.close()


def show_json(ledger: Any, match_id: str) -> str:
    """One match as the `arena export` record: item, seats, every turn, the verdicts."""
    from arena_core.reports.leaderboard import export_matches

    m = ledger.get_match(match_id)
    for rec in export_matches(ledger, tournament=m.tournament):
        if rec["id"] == m.id:
            rec["node_verdicts"] = [
                v.model_dump(exclude={"match_id"}) for v in ledger.node_verdicts(m.id)
            ]
            return json.dumps(rec, indent=2, default=str) + "\n"
    raise UsageError(f"no match with id {match_id!r}")


def view_command(args: argparse.Namespace) -> int:
    """`arena view`: serve the read-only viewer until Ctrl-C."""
    from arena_core.ledger import Ledger
    from arena_core.reports.viewer import LOCAL_HOSTS, make_server

    ledger = Ledger(args.ledger, create=False)
    if args.host not in LOCAL_HOSTS:
        print(
            f"arena: warning: serving on {args.host}: anyone who can reach it reads the ledger",
            file=sys.stderr,
        )
    try:
        server = make_server(ledger, args.host, args.port)
    except OSError as exc:
        raise UsageError(f"cannot listen on {args.host}:{args.port}: {exc.strerror}") from exc
    host, port = server.server_address[:2]
    print(f"arena view: http://{host}:{port}/  (ledger {ledger.url}; Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        ledger.close()
    return 0


def add_view_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--ledger",
        metavar="URL",
        help="ledger database URL (default: $ARENA_LEDGER or sqlite:///arena.db)",
    )
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0: any free one)")
    p.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine)"
    )


# --- shell completion ------------------------------------------------------------------------


def _walk(parser: argparse.ArgumentParser, path: str, out: dict[str, dict[str, Any]]) -> None:
    node = out.setdefault(path, {"cmds": [], "opts": [], "choices": {}})
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                node["cmds"].append(name)
                _walk(sub, f"{path} {name}", out)
        for flag in action.option_strings:
            node["opts"].append(flag)
            if action.choices:
                node["choices"][flag] = [str(c) for c in action.choices]


def completion_script(parser: argparse.ArgumentParser, shell: str) -> str:
    """A static bash completion script for every command, option and choice of `parser` (zsh
    loads it through bashcompinit). Generated from argparse, so it never goes stale, and it
    costs no Python start-up per Tab."""
    tree: dict[str, dict[str, Any]] = {}
    _walk(parser, "arena", tree)

    def q(words: Sequence[str]) -> str:
        return "'" + " ".join(words).replace("'", "") + "'"

    lines = ['# arena shell completion: eval "$(arena completion bash)"']
    if shell == "zsh":
        lines.append("autoload -U +X bashcompinit && bashcompinit")
    lines += ["declare -gA _arena_cmds _arena_opts _arena_choices"]
    for path, node in tree.items():
        lines.append(f"_arena_cmds[{q([path])}]={q(node['cmds'])}")
        lines.append(f"_arena_opts[{q([path])}]={q(node['opts'])}")
        for flag, choices in node["choices"].items():
            lines.append(f"_arena_choices[{q([path + ' ' + flag])}]={q(choices)}")
    lines.append(
        """_arena() {
    local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}" path=arena w i
    for ((i = 1; i < COMP_CWORD; i++)); do
        w="${COMP_WORDS[i]}"
        if [[ $w != -* && " ${_arena_cmds[$path]} " == *" $w "* ]]; then path="$path $w"; fi
    done
    if [[ -n "${_arena_choices[$path $prev]+x}" ]]; then
        COMPREPLY=($(compgen -W "${_arena_choices[$path $prev]}" -- "$cur")); return
    fi
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "${_arena_opts[$path]}" -- "$cur")); return
    fi
    if [[ -n "${_arena_cmds[$path]}" ]]; then
        COMPREPLY=($(compgen -W "${_arena_cmds[$path]}" -- "$cur")); return
    fi
    COMPREPLY=($(compgen -f -- "$cur"))
}
complete -o default -F _arena arena"""
    )
    return "\n".join(lines) + "\n"


def add_commands(sub: Any) -> None:
    """tournaments, view and completion (argparse only: `arena --help` stays fast)."""
    p = sub.add_parser("tournaments", help="tournaments and their pools, with match counts")
    p.add_argument(
        "--ledger",
        metavar="URL",
        help="ledger database URL (default: $ARENA_LEDGER or sqlite:///arena.db)",
    )
    add_format(p)
    p = sub.add_parser("view", help="browse the ledger in a web browser (read-only, local)")
    add_view_arguments(p)
    p = sub.add_parser(
        "completion", help='shell completion: eval "$(arena completion bash)" in ~/.bashrc'
    )
    p.add_argument("shell", choices=["bash", "zsh"])
    p.set_defaults(subcommands=sub)  # walked by `completion_command` (no import of main)


def completion_command(args: argparse.Namespace) -> int:
    root = argparse.ArgumentParser(prog="arena", add_help=True)
    root.add_argument("--version", action="version")
    root._actions.append(args.subcommands)  # the `arena` command's own subcommands
    sys.stdout.write(completion_script(root, args.shell))
    return 0


COMMANDS = {
    "tournaments": tournaments_command,
    "view": view_command,
    "completion": completion_command,
}

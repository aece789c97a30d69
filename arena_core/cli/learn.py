"""`arena learn`, `arena loop` and `arena model`: their flags and their commands.

Only argparse is imported at module level, so `arena --help` stays fast; the commands import
arena_core.learning (and the learner plugin imports torch and trl) when they run.

    arena learn --learner dpo --from-ledger [URL] [--tournament T ...] [--player P] ... \
        [--base PLAYER|DIR] [--register-as NAME] [--out DIR] [-o key=value ...]
    arena loop tournaments/iterative-dpo.toml [--ledger URL] [--iterations N]
    arena model KIND OUT_DIR            # KIND: a builder of the entry-point group arena.models
    arena judges [--ledger URL]
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from arena_core.learning.learn import PairData
    from arena_core.ledger import Ledger
    from arena_core.registry import Registry

LEDGER_HELP = "ledger database URL (default: $ARENA_LEDGER or sqlite:///arena.db)"


def add_learn_arguments(p: argparse.ArgumentParser) -> None:
    """The options of `arena learn`."""
    p.add_argument("--learner", required=True, help="a learner plugin (see `arena plugins`)")
    p.add_argument(
        "-o",
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a learner option; VALUE is TOML (-o beta=0.5 -o 'loss_type=[\"ipo\"]')",
    )
    p.add_argument("--ledger", metavar="URL", help=LEDGER_HELP + "; the run is recorded here")
    src = p.add_argument_group("data (exactly one source)")
    src.add_argument(
        "--from-ledger",
        metavar="URL",
        nargs="?",
        const="",
        help="pairs from this ledger's finished matches (no URL: the --ledger one)",
    )
    src.add_argument("--dataset", metavar="NAME", help="pairs of a dataset plugin")
    src.add_argument("--pairs", metavar="PATH", help="an `arena pairs export` directory or JSONL")
    flt = p.add_argument_group("ledger filters (with --from-ledger)")
    flt.add_argument("--tournament", action="append", help="only this tournament (repeatable)")
    flt.add_argument("--protocol", action="append", help="only this protocol (repeatable)")
    flt.add_argument("--player", help="only pairs this player spoke (and, by default, the base)")
    flt.add_argument("--judge", help="only matches decided by this judge")
    flt.add_argument("--min-gap", type=float, default=0.0, help="drop pairs with a smaller gap")
    flt.add_argument("--since", help="only matches finished at or after this ISO date/time")
    flt.add_argument("--gamma", type=float, help="soft-target sharpness (default: the protocol's)")
    ds = p.add_argument_group("dataset (with --dataset)")
    ds.add_argument(
        "-d",
        "--dataset-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a dataset option (TOML value)",
    )
    ds.add_argument("--split", help="the dataset split")
    ds.add_argument("--limit", type=int, help="at most this many pairs")
    out = p.add_argument_group("model and player")
    out.add_argument(
        "--base",
        metavar="PLAYER|DIR",
        help="start from this ledger player (its model and adapter; it becomes the parent) or "
        "a model directory (default: --player, else the one model-backed player of the pairs' "
        "matches)",
    )
    out.add_argument("--adapter", metavar="DIR", help="a LoRA adapter on top of --base DIR")
    out.add_argument("--parent", metavar="PLAYER", help="lineage parent when --base is a DIR")
    out.add_argument(
        "--register-as",
        metavar="NAME",
        help="the new player's (or judge-only learner's judge's) name (default: "
        "<base>-<learner>-N)",
    )
    out.add_argument(
        "--judge-base",
        metavar="JUDGE|DIR",
        help="the judge a learner trains alongside the policy starts from (APO's reward model): "
        "a ledger judge (it becomes the parent) or a model directory",
    )
    out.add_argument("--judge-name", metavar="NAME", help="the produced judge's name")
    out.add_argument("--out", metavar="DIR", help="checkpoint directory (default: models/NAME)")
    p.add_argument(
        "-q", "--quiet", action="store_true", help="no progress; print only the final result line"
    )


def add_loop_arguments(p: argparse.ArgumentParser) -> None:
    """The options of `arena loop`."""
    p.add_argument("config", help="loop TOML file (e.g. tournaments/iterative-dpo.toml)")
    p.add_argument("--ledger", metavar="URL", help=LEDGER_HELP)
    p.add_argument("--iterations", type=int, help="override [loop] iterations (extend a loop)")
    p.add_argument(
        "-q", "--quiet", action="store_true", help="no progress; print only the final lineage table"
    )


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    """The options of `arena model`."""
    # KIND is any builder of the entry-point group: the core names none, so it is a free word
    # checked in model_command (with the known names), not a fixed list of subcommands.
    p.add_argument("kind", metavar="KIND", help="a builder of the entry-point group arena.models")
    p.add_argument("out_dir", metavar="OUT_DIR")
    p.add_argument(
        "--kind", dest="kind_flag", metavar="KIND", help="the builder (overrides KIND; older form)"
    )
    p.add_argument("--vocab-size", dest="vocab_size", type=int)
    p.add_argument("--hidden", type=int)
    p.add_argument("--layers", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--gguf", metavar="PATH", help="the GGUF file a converting builder reads")


def add_commands(sub: Any) -> None:
    """`arena learn`, `arena loop` and `arena model tiny` on a subparsers object."""
    add_learn_arguments(
        sub.add_parser("learn", help="train a learner on preference pairs; register the player")
    )
    add_loop_arguments(
        sub.add_parser("loop", help="iterate self-play -> learn -> cross-play (resumable)")
    )
    add_model_arguments(
        sub.add_parser("model", help="local models: `arena model KIND OUT_DIR` (no download)")
    )
    j = sub.add_parser("judges", help="judges learners produced (reward, cost models) and lineage")
    j.add_argument("--ledger", metavar="URL", help=LEDGER_HELP)
    j.add_argument("--format", choices=("table", "json"), default="table")


def gather_pairs(args: argparse.Namespace, ledger: Ledger, registry: Registry) -> PairData:
    """The one data source the flags name."""
    from arena_core.cli.datasets import parse_options
    from arena_core.errors import UsageError
    from arena_core.learning.learn import dataset_pairs, file_pairs, ledger_pairs
    from arena_core.learning.pairs import PairQuery, parse_since
    from arena_core.ledger import Ledger, resolve_url

    sources = [
        s
        for s, on in (
            ("--from-ledger", args.from_ledger is not None),
            ("--dataset", args.dataset is not None),
            ("--pairs", args.pairs is not None),
        )
        if on
    ]
    if len(sources) != 1:
        raise UsageError("give exactly one data source: --from-ledger, --dataset or --pairs")
    if args.dataset is not None:
        return dataset_pairs(
            registry,
            args.dataset,
            parse_options(args.dataset_option),
            split=args.split,
            limit=args.limit,
        )
    if args.pairs is not None:
        return file_pairs(args.pairs)
    query = PairQuery(
        tournaments=args.tournament or (),
        protocols=args.protocol or (),
        player=args.player,
        judge=args.judge,
        min_gap=args.min_gap,
        since=parse_since(args.since),
        gamma=args.gamma,
    )
    if not args.from_ledger or resolve_url(args.from_ledger) == ledger.url:
        return ledger_pairs(ledger, query, registry)
    source = Ledger(args.from_ledger, create=False)  # pairs from there, the run recorded here
    try:
        return ledger_pairs(source, query, registry)
    finally:
        source.close()


def toml_inline(options: dict[str, Any]) -> str:
    """`{ k = v, ... }` for a player snippet (values are JSON-compatible TOML)."""
    import json
    import re

    parts = []
    for k, v in options.items():
        if v is None:
            continue
        key = k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else json.dumps(k)
        parts.append(f"{key} = {json.dumps(v)}")
    return "{ " + ", ".join(parts) + " }"


def player_snippet(registry: Registry, name: str, options: dict[str, Any]) -> str:
    """The [[players]] table that enters the new player in a tournament (non-default options)."""
    from arena_core.learning.learn import AGENT

    checked = registry.validate("agent", AGENT, options)
    short = checked.model_dump(mode="json", exclude_defaults=True)
    return f'[[players]]\nname = "{name}"\nagent = "{AGENT}"\noptions = {toml_inline(short)}\n'


def default_base(args: argparse.Namespace, ledger: Ledger, data: PairData) -> str:
    """`--base` when none is given for ledger pairs: the one model-backed player (a
    `transformers` player with a model) among the players of the matches the pairs come from.
    None or several: a UsageError that lists the candidates, so the user can pick one."""
    from sqlmodel import select

    from arena_core.errors import UsageError
    from arena_core.learning.learn import AGENT
    from arena_core.ledger import Ledger, MatchRow, Player, resolve_url

    if not data.rows:  # say what is really missing before asking for a base
        raise UsageError(f"no preference pairs to learn from ({data.note or 'empty'})")
    same = not args.from_ledger or resolve_url(args.from_ledger) == ledger.url
    source = ledger if same else Ledger(args.from_ledger, create=False)
    try:
        ids = data.match_ids
        names: set[str] = set()
        with source.session() as s:
            for i in range(0, len(ids), 500):
                chunk = ids[i : i + 500]
                for seats in s.exec(select(MatchRow.seats).where(MatchRow.id.in_(chunk))):
                    names.update(seats.values())
            players = [s.get(Player, n) for n in sorted(names)]
    finally:
        if not same:
            source.close()
    backed = [p.name for p in players if p and p.agent == AGENT and p.options.get("model")]
    if len(backed) == 1:
        return backed[0]
    if backed:
        raise UsageError(
            f"the pairs come from {len(backed)} model-backed players: {', '.join(backed)}; "
            f"choose the one to train with --base PLAYER (or --player PLAYER)"
        )
    raise UsageError(
        f"the pairs' matches have no model-backed ('{AGENT}') player (players: "
        f"{', '.join(sorted(names)) or 'none'}); name the model to train with --base DIR"
    )


def judge_snippet(name: str, plugin: str, options: dict[str, Any], ledger_url: str) -> str:
    """The [judge] table that enters a produced judge in a tournament, by options or by name."""
    return (
        f'[judge]\nplugin = "{plugin}"\noptions = {toml_inline(options)}\n'
        f"# or by its ledger name:\n"
        f'# [judge]\n# plugin = "learned"\n'
        f"# options = {toml_inline({'name': name, 'ledger': ledger_url})}\n"
    )


def learn_command(args: argparse.Namespace) -> int:
    """`arena learn`: see the module docstring."""
    import sys

    from arena_core.cli.datasets import parse_options
    from arena_core.learning.learn import (
        format_step,
        is_main_process,
        learn,
        resolve_base,
        resolve_judge_base,
    )
    from arena_core.ledger import Ledger
    from arena_core.plugins import get_registry

    registry = get_registry()
    registry.get("learner", args.learner, key="--learner")  # a typo fails before any loading
    # The run and the player are recorded in --ledger, else in the ledger the pairs come from.
    create = args.ledger is not None or args.from_ledger is None
    ledger = Ledger(args.ledger or args.from_ledger or None, create=create)
    try:
        data = gather_pairs(args, ledger, registry)
        quiet = args.quiet or not is_main_process()
        say = (lambda *_: None) if quiet else (lambda *a: print(*a, file=sys.stderr, flush=True))
        chosen = args.base
        if chosen is None and args.player is None and data.query.get("source") == "ledger":
            chosen = default_base(args, ledger, data)
            say(
                f"learn {args.learner}: base player '{chosen}', the only model-backed player "
                f"of the pairs' matches (--base chooses another)"
            )
        base = resolve_base(ledger, chosen, adapter=args.adapter, player=args.player)
        if args.parent:
            base.parent = args.parent
        judge_base = resolve_judge_base(ledger, args.judge_base) if args.judge_base else None
        say(f"learn {args.learner}: {data.note}; base {base.parent or base.model}")

        def on_step(logs: dict[str, Any]) -> None:
            line = format_step(logs)
            if line:
                say(line)

        result = learn(
            ledger,
            registry,
            learner=args.learner,
            options=parse_options(args.option),
            data=data,
            base=base,
            name=args.register_as,
            out_dir=args.out,
            on_step=on_step,
            judge_base=judge_base,
            judge_name=args.judge_name,
        )
        ledger_url = ledger.url
    finally:
        ledger.close()
    if is_main_process():
        before, after = result.summary.get("before", {}), result.summary.get("after", {})
        figures = ""
        if before and after:
            figures = (
                f"; loss {before.get('loss', float('nan')):.4f} -> "
                f"{after.get('loss', float('nan')):.4f}, reward accuracy "
                f"{before.get('rewards/accuracies', float('nan')):.2f} -> "
                f"{after.get('rewards/accuracies', float('nan')):.2f}"
            )
        made = []
        if result.player is not None:
            made.append(f"player '{result.player}' (parent {base.parent or '-'})")
        if result.judge is not None:
            origin = judge_base or base
            made.append(f"judge '{result.judge}' (parent {origin.judge or origin.model})")
        print(f"learner run {result.run_id}: {', '.join(made)} at {result.checkpoint}{figures}")
        held_out = result.summary.get("metrics", {}).get("eval") or {}
        if held_out:
            shown = ", ".join(
                f"{k} {v:.3f}" for k, v in sorted(held_out.items()) if isinstance(v, float)
            )
            print(f"held-out: {shown}")
        if not args.quiet:
            if result.player is not None:
                print(player_snippet(registry, result.player, result.options))
            if result.judge is not None and result.judge_plugin is not None:
                print(
                    judge_snippet(
                        result.judge, result.judge_plugin, result.judge_options, ledger_url
                    )
                )
    return 0


def judges_command(args: argparse.Namespace) -> int:
    """`arena judges`: every produced judge with its plugin, kind, lineage and held-out figures."""
    import json

    from arena_core.ledger import LearnerRun, Ledger

    ledger = Ledger(args.ledger, create=False)
    try:
        rows = []
        for j in ledger.judges():
            run = None
            if j.learner_run is not None:
                with ledger.session() as s:
                    run = s.get(LearnerRun, j.learner_run)
            metrics = (run.metrics if run else {}) or {}
            rows.append(
                {
                    "name": j.name,
                    "plugin": j.plugin,
                    "kind": j.kind,
                    "parent": j.parent,
                    "base_model": j.base_model,
                    "learner_run": j.learner_run,
                    "learner": run.learner if run else None,
                    "data": (run.data_query if run else {}) or {},
                    "eval": metrics.get("eval") or {},
                    "options": j.options,
                    "created_at": j.created_at.isoformat(),
                }
            )
    finally:
        ledger.close()
    if args.format == "json":
        print(json.dumps(rows, indent=2, default=str))
        return 0
    if not rows:
        print("no judges in the ledger (train one: arena learn --learner reward-model ...)")
        return 0
    print(f"{'judge':28} {'plugin':12} {'kind':6} {'parent':28} {'run':>4} {'learner':11} held-out")
    for r in rows:
        ev = r["eval"]
        keys = ("accuracy", "sign_accuracy")
        figures = " ".join(f"{k}={ev[k]:.3f}" for k in keys if isinstance(ev.get(k), float))
        parent = r["parent"] or r["base_model"] or "-"
        run = "" if r["learner_run"] is None else str(r["learner_run"])
        print(
            f"{_plain(r['name']):28} {r['plugin']:12} {r['kind']:6} {_plain(parent)[-28:]:28} "
            f"{run:>4} {r['learner'] or '-':11} {figures or '-'}"
        )
    return 0


def _plain(text: str) -> str:
    """Names and paths come from the ledger: printable characters only on a terminal."""
    return "".join(c if c.isprintable() else "?" for c in str(text))


def model_builders() -> dict[str, Any]:
    """Model builders registered under the entry-point group `arena.models` (loaded lazily)."""
    from importlib.metadata import entry_points

    from arena_core.learning.learn import MODEL_GROUP

    return {ep.name: ep for ep in entry_points(group=MODEL_GROUP)}


def model_command(args: argparse.Namespace) -> int:
    """`arena model KIND OUT_DIR`: write a local model (no download), e.g. for the loop."""
    import inspect

    from arena_core.errors import UsageError, suggest
    from arena_core.learning.learn import MODEL_GROUP

    builders = model_builders()
    kind = getattr(args, "kind_flag", None) or args.kind
    if kind not in builders:
        raise UsageError(
            f"no model builder '{kind}'{suggest(kind, builders)} (known: "
            f"{', '.join(sorted(builders)) or 'none: install arena-debate[hf]'}; builders are "
            f"entry points of the group '{MODEL_GROUP}')"
        )
    build = builders[kind]
    build = build.load() if hasattr(build, "load") else build
    kwargs: dict[str, Any] = {}
    for key in ("vocab_size", "hidden", "layers", "seed", "gguf"):
        value = getattr(args, key, None)
        if value is not None:
            kwargs[key] = value
    params = inspect.signature(build).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        for key in kwargs:
            if key not in params:
                flag = "--" + key.replace("_", "-")
                raise UsageError(f"the model builder '{kind}' takes no {flag}")
    out = build(args.out_dir, **kwargs)
    print(f"wrote a {kind} model to {out}")
    return 0


def print_lineage(rows: list[dict[str, Any]], pool: str) -> None:
    print(f"Leaderboard — pool '{pool}' (with lineage)")
    print(f"{'rank':>4}  {'player':24} {'parent':24} {'run':>4} {'mu':>7} {'win rate':>8}  n")
    for r in rows:
        run = "" if r["learner_run"] is None else str(r["learner_run"])
        print(
            f"{r['rank']:>4}  {r['player']:24} {r['parent'] or '-':24} {run:>4} "
            f"{r['mu']:7.2f} {r['win_rate']:8.1%}  {r['matches']}"
        )


def loop_command(args: argparse.Namespace) -> int:
    """`arena loop FILE`: see the module docstring."""
    import sys
    from pathlib import Path

    from arena_core.errors import UsageError
    from arena_core.learning.loop import lineage_table, load_loop, run_loop
    from arena_core.ledger import Ledger
    from arena_core.plugins import get_registry

    registry = get_registry()
    cfg = load_loop(args.config, registry)
    if args.iterations is not None:
        if args.iterations < 1:
            raise UsageError("--iterations must be at least 1")
        cfg.loop.iterations = args.iterations
    source = Path(args.config).read_text(encoding="utf-8")
    quiet = args.quiet

    def say(text: str) -> None:
        if not quiet:
            print(f"[loop] {text}", file=sys.stderr, flush=True)

    ledger = Ledger(args.ledger)
    try:
        run_loop(cfg, ledger, registry, source=source, say=say)
        pool = ledger.tournament(cfg.tournament("crossplay", cfg.loop.iterations)).pool
        print_lineage(lineage_table(ledger, pool), pool)
    finally:
        ledger.close()
    return 0

"""The command-line flags of `arena learn`, `arena loop` and `arena model`, importable at no cost.

Only argparse is imported here, so `arena --help` stays fast; the commands import
arena_core.learn / arena_core.loop (and the learner plugin imports torch and trl) when they run.

    arena learn --learner dpo --from-ledger [URL] [--tournament T ...] [--player P] ... \
        [--base PLAYER|DIR] [--register-as NAME] [--out DIR] [-o key=value ...]
    arena loop tournaments/iterative-dpo.toml [--ledger URL] [--iterations N]
    arena model tiny OUT_DIR
"""

from __future__ import annotations

import argparse
from typing import Any

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
        "a model directory (default: --player)",
    )
    out.add_argument("--adapter", metavar="DIR", help="a LoRA adapter on top of --base DIR")
    out.add_argument("--parent", metavar="PLAYER", help="lineage parent when --base is a DIR")
    out.add_argument(
        "--register-as", metavar="NAME", help="the new player's name (default: <base>-<learner>-N)"
    )
    out.add_argument("--out", metavar="DIR", help="checkpoint directory (default: models/NAME)")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the result line")


def add_loop_arguments(p: argparse.ArgumentParser) -> None:
    """The options of `arena loop`."""
    p.add_argument("config", help="loop TOML file (e.g. tournaments/iterative-dpo.toml)")
    p.add_argument("--ledger", metavar="URL", help=LEDGER_HELP)
    p.add_argument("--iterations", type=int, help="override [loop] iterations (extend a loop)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    """The options of `arena model`."""
    msub = p.add_subparsers(dest="model_command", metavar="ACTION", required=True)
    t = msub.add_parser("tiny", help="write a tiny random local model (offline tests and demos)")
    t.add_argument("out_dir", metavar="OUT_DIR")
    t.add_argument("--kind", default="tiny", help="a builder of the entry-point group arena.models")
    t.add_argument("--vocab-size", dest="vocab_size", type=int)
    t.add_argument("--hidden", type=int)
    t.add_argument("--layers", type=int)
    t.add_argument("--seed", type=int)


def add_commands(sub: Any) -> None:
    """`arena learn`, `arena loop` and `arena model tiny` on a subparsers object."""
    add_learn_arguments(
        sub.add_parser("learn", help="train a learner on preference pairs; register the player")
    )
    add_loop_arguments(
        sub.add_parser("loop", help="iterate self-play -> learn -> cross-play (resumable)")
    )
    add_model_arguments(sub.add_parser("model", help="local models: `arena model tiny OUT_DIR`"))


def learn_command(args: argparse.Namespace) -> int:
    from arena_core.learn import learn_command as run

    return run(args)


def loop_command(args: argparse.Namespace) -> int:
    from arena_core.loop import loop_command as run

    return run(args)


def model_command(args: argparse.Namespace) -> int:
    from arena_core.learn import model_command as run

    return run(args)

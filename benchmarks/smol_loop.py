"""Does the loop make SmolLM2 a better debater? The trained player against its parent, on items
the loop never saw, under a judge that made no training label.

tournaments/smol-iterative-dpo.toml as shipped, with three changes: the bundled set is split once
by position in the file (even lines: training, odd lines: evaluation; fixed before any run), the
self-play draws its items from the training half and the cross-play from the evaluation half,
and the cross-play is judged by a panel: the model-free quote judge, which made no training label,
decides; SmolLM2's reading of the same debates (the judge that labelled the training pairs, here
on unseen items) is kept beside it. Figures:

- `win_rate`: per panel member, the last iterate's share of decided cross-play debates against
  its parent, with a Wilson 95% interval (2 sides x 2 speaking orders per item, greedy);
- `heldout_pairs`: the base player debates itself in the branched protocol on evaluation items,
  the training judge labels the branches, and on those pairs: how often the model gives the
  chosen speech the higher log-probability, before (base) and after (last iterate), and the DPO
  implicit reward accuracy after (log-ratio to the base of chosen above that of rejected);
- each step's wall time.

    python benchmarks/smol_loop.py [--model models/smollm2] [--iterations 1] [--eval-items 12]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import emit, log
from _smol import play, share, smol_dir, smol_judge

ROOT = Path(__file__).resolve().parents[1]
LOOP = ROOT / "tournaments" / "smol-iterative-dpo.toml"


# The cross-play judge: a panel whose first member, the model-free quote judge (no training label
# came from it), decides; SmolLM2's reading (the training judge, on unseen items) is kept beside it.
def eval_judge(model: Path) -> str:
    llm = (
        f'{{ name = "smollm2", plugin = "llm", options = {{ options = {{ model = "{model}", '
        "max_batch = 8 }, both_orders = true, stated = false } }"
    )
    quote = '{ name = "quote", plugin = "quote" }'
    return (
        '[crossplay.judge]\nplugin = "panel"\n'
        f'options = {{ rule = "first", judges = [{quote}, {llm}] }}\n'
    )


def split(tmp: Path) -> tuple[Path, Path, int]:
    """Even lines of the bundled file for training, odd lines for evaluation."""
    from importlib import resources

    lines = [
        line
        for line in resources.files("arena_plugins.datasets")
        .joinpath("data/bundled.jsonl")
        .read_text(encoding="utf-8")
        .splitlines()
        if line.strip()
    ]
    train, held = tmp / "train.jsonl", tmp / "eval.jsonl"
    train.write_text("\n".join(lines[0::2]) + "\n", encoding="utf-8")
    held.write_text("\n".join(lines[1::2]) + "\n", encoding="utf-8")
    return train, held, len(lines[1::2])


def jsonl(path: Path, limit: int) -> str:
    return (
        f'plugin = "jsonl"\nlimit = {limit}\noptions = {{ path = "{path}", context = "passage" }}'
    )


def loop_toml(args, model: Path, tmp: Path, train: Path, held: Path, judge: str) -> str:
    text = LOOP.read_text(encoding="utf-8")
    swaps = {
        '"models/smollm2"': f'"{model}"',
        'checkpoints = "models/smol-iterative-dpo"': f'checkpoints = "{tmp / "ckpt"}"',
        "iterations = 2": f"iterations = {args.iterations}",
        '[selfplay.dataset]\nplugin = "bundled"\nlimit = 3': "[selfplay.dataset]\n"
        + jsonl(train, args.train_items),
        '[crossplay.dataset]\nplugin = "bundled"\nlimit = 2': "[crossplay.dataset]\n"
        + jsonl(held, args.eval_items),
        "# [crossplay.judge] defaults to the self-play judge": judge,
    }
    for old, new in swaps.items():
        if old not in text:
            raise SystemExit(f"{LOOP} changed: '{old}' is not in it")
        text = text.replace(old, new)
    return text


def heldout_toml(model: Path, held: Path, items: int, seed: int) -> str:
    """The loop's self-play (base player, training judge) on evaluation items."""
    judge = smol_judge(model)  # the [selfplay.judge] of the loop file
    import tomllib

    loop = tomllib.loads(LOOP.read_text(encoding="utf-8"))
    sp, player = loop["selfplay"], loop["player"]
    opts = {**player["options"], "model": str(model)}
    return (
        f'[tournament]\nname = "heldout-selfplay"\nprotocol = "{sp["protocol"]}"\n'
        f"seed = {seed}\nconcurrency = {sp['concurrency']}\ntimeout = {sp['timeout']}\n\n"
        f"[protocol]\n{toml_table(sp['options'])}\n"
        f"[dataset]\n{jsonl(held, items)}\n\n"
        f"{judge}\n"
        f'[[players]]\nname = "{player["name"]}"\nagent = "{player["agent"]}"\n'
        f"options = {{ {', '.join(f'{k} = {json.dumps(v)}' for k, v in opts.items())} }}\n\n"
        '[schedule]\nkind = "self-play"\n'
    )


def toml_table(d: dict) -> str:
    return "".join(f"{k} = {json.dumps(v)}\n" for k, v in d.items())


def pair_scores(options: dict, rows: list[dict]) -> list[tuple[float, float]]:
    """(log p(chosen), log p(rejected)) of every pair under the player with these options."""
    from arena_plugins.agents.hf_agent import HFAgent, HFOptions

    from arena_core.types import Message

    async def run() -> list[tuple[float, float]]:
        agent = HFAgent(HFOptions(**{**options, "max_batch": 8}))
        try:
            out = await asyncio.gather(
                *(
                    agent.score_continuations(
                        [Message(role=m["role"], content=m["content"]) for m in r["prompt"]],
                        "",
                        [r["chosen"], r["rejected"]],
                    )
                    for r in rows
                )
            )
        finally:
            await agent.aclose()
        return [(a, b) for a, b in out]

    return asyncio.run(run())


def head_to_head(ledger, tournament: str, player: str, parent: str) -> dict:
    """The player's share of decided verdicts against its parent, per panel member (or for the
    judge itself when it is not a panel); ties are counted as draws."""
    from arena_core.reports.leaderboard import graded_verdicts

    tallies: dict[str, list[int]] = {}  # judge -> [wins, decided, draws]
    for m, v in graded_verdicts(ledger, tournament):
        if sorted(m.seats.values()) != sorted([player, parent]) or len(v.probs) != 2:
            continue
        # A debate shows the answers in seat order: option k is argued by the k-th seat.
        players = [m.seats[seat] for seat in m.assignment]
        members = v.meta.get("probs") or {"judge": list(v.probs.values())}
        for name, probs in members.items():
            t = tallies.setdefault(name, [0, 0, 0])
            if abs(probs[0] - probs[1]) < 1e-9:
                t[2] += 1
                continue
            t[1] += 1
            t[0] += players[0 if probs[0] > probs[1] else 1] == player
    return {name: {**share(w, n), "draws": d} for name, (w, n, d) in tallies.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="a directory written by `arena model smollm2`")
    ap.add_argument("--iterations", type=int, default=1)
    ap.add_argument("--train-items", type=int, default=8, help="self-play items per iteration")
    ap.add_argument("--eval-items", type=int, default=12, help="cross-play items (of 24)")
    ap.add_argument("--heldout-items", type=int, default=6, help="items for held-out pairs")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: see hf_batching.py)")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from arena_core.learning.learn import ledger_pairs
    from arena_core.learning.loop import load_loop, run_loop
    from arena_core.learning.pairs import PairQuery
    from arena_core.ledger import Ledger
    from arena_core.plugins import get_registry

    t0 = time.perf_counter()
    out: dict = {"benchmark": "smol_loop", "eval_judge": "panel: quote decides; smollm2 kept"}
    with tempfile.TemporaryDirectory(prefix="arena-smol-loop-") as tmpdir:
        tmp = Path(tmpdir)
        model = smol_dir(args.model, tmp)
        train, held, n_held = split(tmp)
        judge = eval_judge(model)
        path = tmp / "loop.toml"
        path.write_text(loop_toml(args, model, tmp, train, held, judge), encoding="utf-8")
        registry = get_registry()
        cfg = load_loop(path, registry)
        ledger = Ledger(f"sqlite:///{tmp / 'ledger.db'}")
        t = time.perf_counter()
        state = run_loop(cfg, ledger, registry, source=path.read_text(), say=log)
        out["loop_wall_s"] = round(time.perf_counter() - t)
        out["steps"] = state.data.get("info")
        k = args.iterations
        player, parent = cfg.player_name(k), cfg.player_name(k - 1)
        out["win_rate"] = head_to_head(ledger, cfg.tournament("crossplay", k), player, parent)
        out["player"], out["parent"] = player, parent
        log("win rate", out["win_rate"])

        t = time.perf_counter()
        play(heldout_toml(model, held, min(args.heldout_items, n_held), seed=11), ledger, tmp)
        rows = ledger_pairs(ledger, PairQuery(tournaments=["heldout-selfplay"])).rows
        base_opts = dict(cfg.player.options, model=str(model))
        trained = ledger.player(player)
        before = pair_scores(base_opts, rows)
        after = pair_scores(dict(trained.options), rows)
        n = len(rows)
        out["heldout_pairs"] = {
            "pairs": n,
            "logp_accuracy_before": share(sum(c > r for c, r in before), n),
            "logp_accuracy_after": share(sum(c > r for c, r in after), n),
            "implicit_reward_accuracy_after": share(
                sum(
                    (ca - cb) > (ra - rb) for (cb, rb), (ca, ra) in zip(before, after, strict=True)
                ),
                n,
            ),
            "wall_s": round(time.perf_counter() - t),
        }
        log("held-out pairs", out["heldout_pairs"])
        from sqlmodel import select

        from arena_core.ledger import LearnerRun

        with ledger.session() as session:
            out["learner_runs"] = [
                {"pairs": r.pairs, "wall_s": r.wall_time} for r in session.exec(select(LearnerRun))
            ]
        ledger.close()
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    out["wall_s"] = round(time.perf_counter() - t0, 1)
    emit(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

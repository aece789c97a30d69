"""Does the loop make SmolLM2 a better debater? The trained player against its parent, on items
the loop never saw, under a judge that made no training label.

tournaments/smol-iterative-dpo.toml as shipped (only the model, checkpoint folder and, if asked,
the number of cross-play repetitions are swapped): self-play on the bundled set's 'train' split
labelled by the `gold` judge's `evidence` reward, DPO (LoRA), cross-play on the 'test' split
decided by the quote judge. Figures:

- `win_rate`: the iterate's share of decided cross-play debates against its parent, with a
  Wilson 95% interval over debates and a bootstrap interval that resamples items (the debates of
  one item are not independent); undecided debates (equal evidence) are counted apart;
- `speeches`: per player in the cross-play, mean verified words and copied runs per speech, and
  the mean `evidence` reward, to say what changed;
- `heldout_pairs`: the base player debates itself in the branched protocol on 'test' items, the
  training judge labels the branches, and on those pairs: how often the model gives the chosen
  speech the higher log-probability, before (base) and after (iterate), and the DPO implicit
  reward accuracy after (log-ratio to the base of chosen above that of rejected);
- each stage's wall time.

    flock /tmp/arena-heavy.lock python benchmarks/smol_loop.py --model models/smollm2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import sys
import tempfile
import time
import tomllib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import emit, log
from _smol import play, share, smol_dir

ROOT = Path(__file__).resolve().parents[1]
LOOP = ROOT / "tournaments" / "smol-iterative-dpo.toml"


def loop_toml(model: Path, tmp: Path, repetitions: int | None) -> str:
    text = LOOP.read_text(encoding="utf-8")
    swaps = {
        '"models/smollm2"': f'"{model}"',
        'checkpoints = "models/smol-iterative-dpo"': f'checkpoints = "{tmp / "ckpt"}"',
    }
    if repetitions:
        swaps["repetitions = 2       # sampled speeches"] = f"repetitions = {repetitions} #"
    for old, new in swaps.items():
        if old not in text:
            raise SystemExit(f"{LOOP} changed: '{old}' is not in it")
        text = text.replace(old, new)
    return text


def heldout_toml(model: Path, items: int, seed: int) -> str:
    """The loop's self-play (base player, training judge) on 'test' items."""
    loop = tomllib.loads(LOOP.read_text(encoding="utf-8"))
    sp, player = loop["selfplay"], loop["player"]
    opts = {**player["options"], "model": str(model)}
    judge = sp["judge"]
    return (
        f'[tournament]\nname = "heldout-selfplay"\nprotocol = "{sp["protocol"]}"\n'
        f"seed = {seed}\nconcurrency = {sp['concurrency']}\ntimeout = {sp['timeout']}\n\n"
        f"[protocol]\n{toml_table(sp['options'])}\n"
        f'[dataset]\nplugin = "bundled"\nsplit = "test"\nlimit = {items}\n\n'
        f'[judge]\nplugin = "{judge["plugin"]}"\n'
        f"options = {{ {inline(judge['options'])} }}\n\n"
        f'[[players]]\nname = "{player["name"]}"\nagent = "{player["agent"]}"\n'
        f"options = {{ {inline(opts)} }}\n\n"
        '[schedule]\nkind = "self-play"\n'
    )


def inline(d: dict) -> str:
    return ", ".join(f"{k} = {json.dumps(v)}" for k, v in d.items())


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
    """The player's share of decided verdicts against its parent: Wilson interval over debates,
    and a percentile bootstrap that resamples items (2,000 draws, seed 0)."""
    from arena_core.reports.leaderboard import graded_verdicts

    per_item: dict[str, list[int]] = {}  # item -> [wins, decided]
    draws = 0
    for m, v in graded_verdicts(ledger, tournament):
        if sorted(m.seats.values()) != sorted([player, parent]) or len(v.probs) != 2:
            continue
        # A debate shows the answers in seat order: option k is argued by the k-th seat.
        players = [m.seats[seat] for seat in m.assignment]
        probs = list(v.probs.values())
        if abs(probs[0] - probs[1]) < 1e-9:
            draws += 1
            continue
        t = per_item.setdefault(m.item_id, [0, 0])
        t[1] += 1
        t[0] += players[0 if probs[0] > probs[1] else 1] == player
    wins = sum(w for w, _ in per_item.values())
    n = sum(d for _, d in per_item.values())
    out = {**share(wins, n), "undecided": draws, "items": len(per_item)}
    rng = random.Random(0)
    keys = sorted(per_item)
    rates = []
    for _ in range(2000):
        pick = [per_item[rng.choice(keys)] for _ in keys]
        d = sum(x[1] for x in pick)
        if d:
            rates.append(sum(x[0] for x in pick) / d)
    rates.sort()
    if rates:
        out["item_bootstrap_ci95"] = [
            round(rates[int(0.025 * len(rates))], 4),
            round(rates[int(0.975 * len(rates)) - 1], 4),
        ]
    return out


def speech_stats(ledger, tournament: str) -> dict:
    """Per player: mean verified words, copied runs and `evidence` reward per speech."""
    from arena_plugins.judges.gold import supported_words
    from sqlmodel import select

    from arena_core.ledger import MatchRow, TurnRow
    from arena_core.types import QUOTE_CHECK

    acc: dict[str, list[float]] = {}
    with ledger.session() as session:
        rows = session.exec(
            select(TurnRow, MatchRow)
            .where(TurnRow.match_id == MatchRow.id)
            .where(MatchRow.tournament == tournament)
        ).all()
        for turn, match in rows:
            if turn.phase != "speech":
                continue
            item = match.item  # filled from the item table when read through the ORM
            meta = turn.meta or {}
            a = acc.setdefault(turn.player, [0, 0.0, 0.0, 0.0])
            a[0] += 1
            a[1] += meta.get("valid_words", 0)
            a[2] += meta.get("copied", 0)
            if item:
                a[3] += supported_words(
                    item["answers"][match.assignment[turn.seat]],
                    item["question"],
                    (meta.get(QUOTE_CHECK) or {}).get("verified", []),
                )
    return {
        p: {
            "speeches": int(n),
            "verified_words": round(w / n, 2),
            "copied_runs": round(c / n, 2),
            "evidence": round(e / n, 3),
        }
        for p, (n, w, c, e) in acc.items()
        if n
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="a directory written by `arena model smollm2`")
    ap.add_argument("--eval-repetitions", type=int, help="cross-play repetitions (toml: 2)")
    ap.add_argument("--heldout-items", type=int, default=12, help="'test' items for held-out pairs")
    ap.add_argument("--threads", type=int, default=2, help="torch threads")
    ap.add_argument("--keep", help="keep the ledger and checkpoints in this folder")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from arena_core.learning.learn import ledger_pairs
    from arena_core.learning.loop import load_loop, run_loop
    from arena_core.learning.pairs import PairQuery
    from arena_core.ledger import Ledger
    from arena_core.plugins import get_registry

    t0 = time.perf_counter()
    out: dict = {"benchmark": "smol_loop", "train_judge": "gold evidence", "eval_judge": "quote"}
    with tempfile.TemporaryDirectory(prefix="arena-smol-loop-") as tmpdir:
        tmp = Path(args.keep) if args.keep else Path(tmpdir)
        tmp.mkdir(parents=True, exist_ok=True)
        model = smol_dir(args.model, tmp)
        path = tmp / "loop.toml"
        path.write_text(loop_toml(model, tmp, args.eval_repetitions), encoding="utf-8")
        registry = get_registry()
        cfg = load_loop(path, registry)
        ledger = Ledger(f"sqlite:///{tmp / 'ledger.db'}")
        t = time.perf_counter()
        state = run_loop(cfg, ledger, registry, source=path.read_text(), say=log)
        out["loop_wall_s"] = round(time.perf_counter() - t)
        out["steps"] = state.data.get("info")
        k = cfg.loop.iterations
        player, parent = cfg.player_name(k), cfg.player_name(k - 1)
        crossplay = cfg.tournament("crossplay", k)
        out["player"], out["parent"] = player, parent
        out["win_rate"] = head_to_head(ledger, crossplay, player, parent)
        log("win rate", out["win_rate"])
        try:
            out["speeches"] = speech_stats(ledger, crossplay)
        except Exception as exc:  # a report figure, not the result: say why it is missing
            out["speeches"] = f"not computed: {exc!r}"
        log("speeches", out["speeches"])

        t = time.perf_counter()
        play(heldout_toml(model, args.heldout_items, seed=11), ledger, tmp)
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

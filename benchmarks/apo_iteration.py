"""One APO iteration on SmolLM2-135M, evaluated by a separate test reward model.

Three stages, each its own heavy run (a shared 2-core CPU gives about a minute per training
step), sharing `--work` (the ledger and checkpoints of `benchmarks/learn_reward.py`, whose
`smol-test-rm` is the test reward model: trained on parts 1-2 of `_prefs.py`, never
adversarially, never seen by APO):

- `sample`: P0 (SmolLM2) answers the part-3 questions `--samples` times each in a `self-play`
  tournament (every sample a ledger row; the comparisons are judged by the model-free `length`
  judge, whose verdicts APO does not use: its reward model rescores every sample itself);
- `learn`: `apo` from that tournament's pairs: the reward model starts from SmolLM2 with a new
  head (`--judge-base` the model directory), trains on part-0 human pairs plus (gold, sample)
  pairs, rescores the samples, and P1 = P0 + LoRA SFT on each question's best sample;
- `eval`: a red/blue `duel` of P1 against P0 on the part-0 questions (which P1 never trained
  on) judged by `smol-test-rm` named by its ledger name, both presentation orders: P1's win rate
  with a 95% Wilson interval, and the mean test-RM score difference per match with a 95% t
  interval.

    flock /tmp/arena-heavy.lock nice -n 5 python benchmarks/apo_iteration.py --stage sample
    flock /tmp/arena-heavy.lock nice -n 5 python benchmarks/apo_iteration.py --stage learn
    flock /tmp/arena-heavy.lock nice -n 5 python benchmarks/apo_iteration.py --stage eval

The `eval` stage prints one JSON line with every stage's figures and wall time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import emit, log
from _prefs import items, pairs, write_jsonl
from learn_reward import registry_with_learners, trainable


def tournament(
    name: str, protocol: str, options: dict[str, Any], dataset: str, judge: dict[str, Any]
) -> dict[str, Any]:
    return {
        "tournament": {"name": name, "protocol": protocol, "seed": 5, "timeout": 900},
        "protocol": {"context": False, "show_answers": False, "max_words": 24, **options},
        "dataset": {"plugin": "jsonl", "options": {"path": dataset}},
        "judge": judge,
    }


def play(config: dict[str, Any], url: str) -> Any:
    from arena_core.config import RawConfig, resolve
    from arena_core.engine import Tournament
    from arena_core.ledger import Ledger

    registry = registry_with_learners()
    cfg = resolve(RawConfig.model_validate(config), registry)  # type: ignore[arg-type]
    ledger = Ledger(url)
    try:
        return asyncio.run(Tournament(cfg, registry).run(ledger))  # type: ignore[arg-type]
    finally:
        ledger.close()


def player(name: str, model: str, adapter: str | None, tokens: int) -> dict[str, Any]:
    options: dict[str, Any] = {"model": model, "max_new_tokens": tokens, "max_batch": 32}
    if adapter:
        options["adapter"] = adapter
    return {"name": name, "agent": "transformers", "options": options}


def stage_sample(args: argparse.Namespace, work: Path, url: str) -> dict[str, Any]:
    rows = items({3})[: args.prompts]
    path = write_jsonl(rows, work / "apo-prompts.jsonl")
    config = tournament(
        "apo-selfplay-1",
        "self-play",
        {"samples": args.samples, "both_orders": False},
        str(path),
        {"plugin": "length"},
    )
    config["players"] = [player("smol-p0", args.model, None, args.tokens)]
    config["schedule"] = {"kind": "self-play"}
    summary = play(config, url)
    return {"prompts": len(rows), "samples": args.samples, "done": summary.done}


def stage_learn(args: argparse.Namespace, work: Path, url: str) -> dict[str, Any]:
    from arena_core.learning.learn import Base, learn, ledger_pairs, resolve_base
    from arena_core.learning.pairs import PairQuery
    from arena_core.ledger import Ledger

    human = [r for r in pairs() if r["part"] == 0]
    human = random.Random(1).sample(human, min(args.human, len(human)))
    human_path = write_jsonl(human, work / "apo-human.jsonl")
    registry = registry_with_learners()
    ledger = Ledger(url)
    data = ledger_pairs(ledger, PairQuery(tournaments=["apo-selfplay-1"]), registry)
    log(data.note)
    result = learn(
        ledger,
        registry,  # type: ignore[arg-type]
        learner="apo",
        options={
            "gold": {"plugin": "jsonl", "options": {"path": str(work / "apo-prompts.jsonl")}},
            "human": {"plugin": "preferences", "options": {"path": str(human_path)}},
            "apo_coeff": 0.1,
            "rm": {
                "learning_rate": 2e-4,
                "max_steps": args.rm_steps,
                "batch_size": 8,
                "max_length": 128,
                "score_reg": 0.0,
                "eval_fraction": 0.0,
                "lr_scheduler": "linear",
                "weight_decay": 0.0,
            },
            "sft": {"max_steps": args.sft_steps, "batch_size": 4, "max_length": 256},
            "torch_threads": 2,
        },
        data=data,
        base=resolve_base(ledger, "smol-p0"),
        judge_base=Base(model=args.model),
        name="smol-p1",
        out_dir=work / "smol-p1",
        on_step=lambda logs: log({k: logs[k] for k in ("stage", "step", "loss") if k in logs}),
    )
    ledger.close()
    apo = dict(result.summary["metrics"]["apo"])
    apo.pop("rescored")
    return {"pairs": len(data.rows), "apo": apo, "player": result.player, "judge": result.judge}


def stage_eval(args: argparse.Namespace, work: Path, url: str) -> dict[str, Any]:
    import statistics

    from arena_core.ledger import Ledger
    from arena_core.reports.stats import wilson_interval

    rows = items({0})[: args.eval_prompts]
    path = write_jsonl(rows, work / "apo-eval.jsonl")
    ledger = Ledger(url, create=False)
    p1 = ledger.player("smol-p1")
    ledger.close()
    assert p1 is not None, "run --stage learn first"
    config = tournament(
        "apo-eval-1",
        "duel",
        {},
        str(path),
        {"plugin": "learned", "options": {"name": "smol-test-rm", "ledger": url}},
    )
    config["players"] = [
        player("smol-p1", args.model, p1.options["adapter"], args.tokens),
        player("smol-p0", args.model, None, args.tokens),
    ]
    config["schedule"] = {"kind": "red-blue", "red": "smol-p1"}
    play(config, url)
    ledger = Ledger(url, create=False)
    wins = losses = 0
    diffs = []
    for m in ledger.matches(tournament="apo-eval-1", status="done"):
        v = ledger.verdict(m.id)
        assert v is not None
        seat = next(s for s, p in m.seats.items() if p == "smol-p1")
        k = "AB".index(seat)
        scores = v.meta["scores"]
        diffs.append(scores[k] - scores[1 - k])
        if v.winner == "smol-p1":
            wins += 1
        elif v.winner == "smol-p0":
            losses += 1
    ledger.close()
    n = wins + losses
    lo, hi = wilson_interval(wins, n) if n else (float("nan"), float("nan"))
    mean = statistics.fmean(diffs) if diffs else float("nan")
    half = 1.96 * statistics.stdev(diffs) / len(diffs) ** 0.5 if len(diffs) > 1 else float("nan")
    return {
        "matches": len(diffs),
        "p1_wins": wins,
        "p0_wins": losses,
        "p1_win_rate": wins / n if n else None,
        "p1_win_rate_ci95": [round(lo, 3), round(hi, 3)],
        "test_rm_score_diff_mean": mean,
        "test_rm_score_diff_ci95": [mean - half, mean + half],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--stage", choices=("sample", "learn", "eval"), required=True)
    ap.add_argument("--model", default="/work/models/smollm2")
    ap.add_argument("--work", default="/tmp/arena-bench-judges")
    ap.add_argument("--prompts", type=int, default=12, help="part-3 questions APO samples on")
    ap.add_argument("--samples", type=int, default=4, help="samples per question (APO: 4)")
    ap.add_argument("--tokens", type=int, default=32, help="max new tokens per answer")
    ap.add_argument("--human", type=int, default=16, help="part-0 human pairs for the RM")
    ap.add_argument("--rm-steps", type=int, default=4)
    ap.add_argument("--sft-steps", type=int, default=3)
    ap.add_argument("--eval-prompts", type=int, default=16, help="part-0 questions of the duel")
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    args.model = trainable(args.model, work)
    url = f"sqlite:///{work / 'ledger.db'}"
    record = work / "apo-iteration.json"
    figures = json.loads(record.read_text(encoding="utf-8")) if record.exists() else {}
    started = time.perf_counter()
    stage = {"sample": stage_sample, "learn": stage_learn, "eval": stage_eval}[args.stage]
    figures[args.stage] = stage(args, work, url)
    figures[args.stage]["wall_seconds"] = round(time.perf_counter() - started, 1)
    record.write_text(json.dumps(figures, indent=2, default=str), encoding="utf-8")
    log(json.dumps(figures[args.stage], default=str))
    if args.stage == "eval":
        emit({"benchmark": "apo_iteration", "model": "SmolLM2-135M-Instruct", **figures})


if __name__ == "__main__":
    main()

"""`arena learn --learner reward-model` on SmolLM2-135M: held-out pairwise accuracy before/after.

The preference set is `_prefs.py` (written for this project, labelled by a gold function):
`--pairs` pairs drawn (seeded) from its parts 1 and 2, through the `preferences` dataset
plugin; the learner's held-out split (`eval_fraction` 0.3, grouped by the `thing` metadata)
holds questions about things never seen in training. `--steps` LoRA steps of 8 pairs (sized
for a shared 2-core CPU: about a minute a step there). The produced judge is registered in a
SQLite ledger in `--work`; `benchmarks/apo_iteration.py` uses it as the separate test RM.

    flock /tmp/arena-heavy.lock nice -n 5 python benchmarks/learn_reward.py \
        [--model /work/models/smollm2] [--work /tmp/arena-bench-judges] [--pairs 120] [--steps 8]

Prints one JSON line: accuracy before and after on the held-out pairs, pairs, steps, wall times.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import emit, log
from _prefs import pairs, write_jsonl


def registry_with_learners() -> object:
    from arena_core.plugins import get_registry, register_plugin

    registry = get_registry()
    if ("learner", "reward-model") not in registry.entries:  # before the entry point is installed
        import arena_plugins.learners.plugin as plugin

        register_plugin(plugin, "arena-learners-bench")
    return registry


def trainable(model: str, work: Path) -> str:
    """`model`, or a view of it without the `quantization_config` (gguf) a GGUF conversion leaves
    in config.json: transformers' Trainer refuses to train a model that has one, though the
    saved weights are plain fp32. The view links every other file."""
    import json

    src = Path(model)
    config = json.loads((src / "config.json").read_text(encoding="utf-8"))
    if "quantization_config" not in config:
        return model
    out = work / f"{src.name}-trainable"
    out.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        if f.name != "config.json" and not (out / f.name).exists():
            (out / f.name).symlink_to(f.resolve())
    config.pop("quantization_config")
    (out / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    return str(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="/work/models/smollm2", help="SmolLM2-135M, converted")
    ap.add_argument("--work", default="/tmp/arena-bench-judges")
    ap.add_argument("--pairs", type=int, default=120, help="pairs drawn (seeded) from parts 1-2")
    ap.add_argument("--steps", type=int, default=8, help="training steps of 8 pairs")
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--name", default="smol-test-rm")
    args = ap.parse_args()
    started = time.perf_counter()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    import random

    rows = [r for r in pairs() if r["part"] in (1, 2)]
    rows = random.Random(0).sample(rows, min(args.pairs, len(rows)))
    path = write_jsonl(rows, work / "prefs-test-rm.jsonl")

    from arena_core.learning.learn import Base, dataset_pairs, learn
    from arena_core.ledger import Ledger

    registry = registry_with_learners()
    args.model = trainable(args.model, work)
    ledger = Ledger(f"sqlite:///{work / 'ledger.db'}")
    data = dataset_pairs(registry, "preferences", {"path": str(path)})
    log(f"{data.note}; training {args.name} from {args.model}")
    options = {
        "learning_rate": args.lr,
        "max_steps": args.steps,
        "batch_size": 8,
        "max_length": 128,
        "eval_fraction": 0.3,
        "eval_group": "thing",  # held-out questions are about things never trained on
        "torch_threads": args.threads,
        "lr_scheduler": "linear",
        "weight_decay": 0.0,
    }
    t0 = time.perf_counter()
    result = learn(
        ledger,
        registry,  # type: ignore[arg-type]
        learner="reward-model",
        options=options,
        data=data,
        base=Base(model=args.model),
        name=args.name,
        out_dir=work / args.name,
        on_step=lambda logs: log({k: logs[k] for k in ("step", "loss") if k in logs}),
    )
    learn_s = time.perf_counter() - t0
    row = ledger.judge(args.name)
    ledger.close()
    before, after = result.summary["before"], result.summary["after"]
    from arena_core.reports.stats import wilson_interval

    n = int(after.get("pairs", 0))

    def ci(acc: float | None) -> list[float] | None:
        if acc is None or not n:
            return None
        return [round(x, 3) for x in wilson_interval(round(acc * n), n)]

    emit(
        {
            "benchmark": "learn_reward",
            "model": "SmolLM2-135M-Instruct",
            "judge": args.name,
            "registered": row is not None and row.learner_run == result.run_id,
            "pairs": len(data.rows),
            "pairs_trained": result.summary["pairs_trained"],
            "held_out_pairs": int(after.get("pairs", 0)),
            "accuracy_before": before.get("accuracy"),
            "accuracy_after": after.get("accuracy"),
            "accuracy_before_ci95": ci(before.get("accuracy")),
            "accuracy_after_ci95": ci(after.get("accuracy")),
            "margin_after": after.get("margin"),
            "steps": result.summary["steps"],
            "options": options,
            "learn_seconds": round(learn_s, 1),
            "wall_seconds": round(time.perf_counter() - started, 1),
        }
    )


if __name__ == "__main__":
    main()

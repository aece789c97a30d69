"""`arena learn --learner dpo --from-ledger` against a plain TRL script on the same pairs.

Setup (not timed): a tiny Llama (2 layers, hidden 64, random weights) is built in a temp dir; a
branched self-play tournament of that model, judged by the same model's label probabilities,
fills a SQLite ledger (`--items` bundled items, one speech each, two samples per speech: two
pairs per debate); the pairs are exported to JSONL, chat-formatted, as `arena learn` reads them.

Timed, alternately, `--runs` times each, each in a fresh interpreter (what a user waits for,
imports included):
- arena: `arena learn` (ledger read, learner_run row with per-step metrics, LoRA DPO through the
  `dpo` plugin, checkpoint written and moved into place, player registered), with
  `evaluate=false` so that it does the same training work as the script;
- trl: a plain script: read the JSONL, build `DPOTrainer` with the same DPOConfig and
  LoraConfig, `train()`, `save_model()`.
Both use the same hyperparameters and `--threads` torch threads (1 by default: on a small
shared machine OpenMP threads that spin while other processes hold the cores measure the
scheduler, not the code). The figure is arena / trl run by run (each pair interleaved), median
and range over `--runs`, with the machine load; target <= 1.10, printed, not asserted.
For information, `arena learn` with its default before/after evaluation on the training pairs
(two more passes over the data) is timed once.

    python benchmarks/learn_dpo.py [--items 8] [--epochs 2] [--runs 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import emit, log, machine_load, ratio

TARGET = 1.10

ARENA = textwrap.dedent(
    """
    import argparse, sys
    from arena_core.plugins import get_registry, register_plugin
    if ("learner", "dpo") not in get_registry().entries:  # before the entry point is installed
        import arena_plugins.learners.plugin as plugin
        register_plugin(plugin, "arena-learners-bench")
    from arena_core.cli.learn import add_learn_arguments, learn_command
    p = argparse.ArgumentParser()
    add_learn_arguments(p)
    sys.exit(learn_command(p.parse_args(sys.argv[1:])))
    """
)

TRL = textwrap.dedent(
    """
    import json, sys
    import torch
    torch.set_num_threads(int(sys.argv[4]))
    import datasets
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    pairs, model_dir, out = sys.argv[1], sys.argv[2], sys.argv[3]
    hp = json.loads(sys.argv[5])
    rows = []
    for line in open(pairs, encoding="utf-8"):
        r = json.loads(line)
        rows.append({"prompt": r["prompt"], "chosen": r["chosen"], "rejected": r["rejected"]})
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    args = DPOConfig(
        output_dir=out, beta=hp["beta"], learning_rate=hp["learning_rate"],
        num_train_epochs=hp["epochs"], per_device_train_batch_size=hp["batch_size"],
        max_length=hp["max_length"], bf16=False, use_cpu=True, gradient_checkpointing=False,
        report_to="none", logging_steps=1, save_strategy="no", disable_tqdm=True, seed=0,
    )
    peft = LoraConfig(r=hp["lora_r"], lora_alpha=hp["lora_alpha"], target_modules="all-linear",
                      task_type="CAUSAL_LM")
    trainer = DPOTrainer(model=model, args=args, train_dataset=datasets.Dataset.from_list(rows),
                         processing_class=tok, peft_config=peft)
    trainer.train()
    trainer.save_model(out)
    """
)


def setup(root: Path, items: int) -> tuple[Path, str, Path, int]:
    """Tiny model, a ledger of branched self-play, and the same pairs as JSONL."""
    from arena_plugins.agents.tiny_model import build_tiny_llama

    from arena_core.learning.pairs import PairQuery, pairs, write_pairs
    from arena_core.ledger import Ledger
    from arena_core.testing import run_tournament

    model = build_tiny_llama(root / "tiny")
    url = f"sqlite:///{root / 'ledger.db'}"
    player = {
        "name": "tiny",
        "agent": "transformers",
        "options": {"model": str(model), "max_new_tokens": 24, "min_new_tokens": 8},
    }
    run_tournament(
        {
            "tournament": {
                "name": "sp",
                "protocol": "branched",
                "seed": 1,
                "concurrency": 16,
                "timeout": 600,
            },
            "protocol": {"speeches": 1, "branches": 2, "mode": "full", "max_words": 16},
            "dataset": {"plugin": "bundled", "limit": items},
            "judge": {
                "plugin": "llm",
                "options": {"options": {"model": str(model)}, "stated": False},
            },
            "players": [player],
            "schedule": {"kind": "self-play"},
        },
        url,
    )
    ledger = Ledger(url)
    n = write_pairs(pairs(ledger, PairQuery(conversational=True)), root / "pairs.jsonl", "jsonl")
    ledger.close()
    return model, url, root / "pairs.jsonl", n


def timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(f"{cmd[:3]} failed:\n{res.stderr[-3000:]}")
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=8, help="bundled items (2 debates, 4 pairs each)")
    ap.add_argument("--epochs", type=float, default=2.0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    hp = {
        "beta": 0.1,
        "learning_rate": 5e-3,
        "epochs": a.epochs,
        "batch_size": 4,
        "max_length": 1024,
        "lora_r": 16,
        "lora_alpha": 32,
    }
    with tempfile.TemporaryDirectory(prefix="arena-bench-learn-") as tmp:
        root = Path(tmp)
        log("setup: tiny model, branched self-play, pairs ...")
        model, url, jsonl, n = setup(root, a.items)
        log(f"{n} pairs; {a.runs} runs each, alternating")
        opts = [f"{k}={v}" for k, v in hp.items()]
        opts += [f"torch_threads={a.threads}", "seed=0"]

        def arena_cmd(i: int, evaluate: bool) -> list[str]:
            flags = [x for o in opts for x in ("-o", o)]
            return [
                sys.executable,
                "-c",
                ARENA,
                "--learner",
                "dpo",
                "--from-ledger",
                "--ledger",
                url,
                "--tournament",
                "sp",
                "--player",
                "tiny",
                "--register-as",
                f"tiny-bench-{i}-{int(evaluate)}",
                "--out",
                str(root / f"arena-{i}-{int(evaluate)}"),
                "-q",
                *flags,
                "-o",
                f"evaluate={'true' if evaluate else 'false'}",
            ]

        def trl_cmd(i: int) -> list[str]:
            return [
                sys.executable,
                "-c",
                TRL,
                str(jsonl),
                str(model),
                str(root / f"trl-{i}"),
                str(a.threads),
                json.dumps(hp),
            ]

        arena_s, trl_s = [], []
        for i in range(max(3, a.runs)):  # a median and range need at least 3
            trl_s.append(timed(trl_cmd(i)))
            arena_s.append(timed(arena_cmd(i, evaluate=False)))
            log(f"run {i + 1}: trl {trl_s[-1]:.2f}s, arena {arena_s[-1]:.2f}s")
        with_eval = timed(arena_cmd(len(arena_s), evaluate=True))
        log(f"arena with before/after evaluation: {with_eval:.2f}s")
        from arena_core.ledger import LearnerRun, Ledger

        ledger = Ledger(url)
        with ledger.session() as s:
            run = s.get(LearnerRun, 1)
            steps = run.metrics.get("steps_trained") if run else None
        ledger.close()
    paired = ratio(arena_s, trl_s)  # each arena run over the TRL run beside it
    emit(
        {
            "benchmark": "learn_dpo",
            "load": machine_load(),
            "runs": len(arena_s),
            "pairs": n,
            "steps": steps,
            "threads": a.threads,
            "arena_s": round(statistics.median(arena_s), 3),
            "trl_s": round(statistics.median(trl_s), 3),
            "arena_runs": [round(x, 3) for x in arena_s],
            "trl_runs": [round(x, 3) for x in trl_s],
            "ratio": paired["median"],
            "ratio_range": paired["range"],
            "arena_with_eval_s": round(with_eval, 3),
            "ratio_with_eval": round(with_eval / statistics.median(trl_s), 3),
            "target": TARGET,  # for reading: the ratio is the figure, not a pass/fail
        }
    )


if __name__ == "__main__":
    main()

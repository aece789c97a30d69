"""One SPPO iteration on SmolLM2-135M-Instruct, DPO on the same matches beside it, and the sppo
learner's overhead against a plain TRL script.

Stages (each its own process, so each heavy step fits the shared machine's ~8 minute slots; run
them in order with the same `--out`; `all` runs every one):

- selfplay: SmolLM2 answers each of `--prompts` training prompts K = `--k` times (temperature 1,
  `--tokens` new tokens); judge J1 compares every pair once (`llm` judge on SmolLM2,
  teacher-forced label probabilities, its generic prompt; one order per pair to fit the CPU
  budget, so J1's position bias is noise in the labels, not cancelled). P(y > pi) per answer
  comes from J1's verdicts (plugins/protocols/self_play.py).
- learn: `sppo` (LoRA r 8, beta 0.1, `--lr`, 1 epoch) from the ledger, registered as
  smol-sppo; `dpo` (sigmoid, same hyperparameters) on the *same* rows (each prompt's best and
  worst answer), registered as smol-dpo: the two differ only in the loss.
- crossplay-sppo, crossplay-dpo: smol-sppo (smol-dpo) and the parent answer `--prompts`
  held-out prompts (greedy) in duels, both seat orders per prompt (so the judge's position bias
  cancels over the pair of matches); judge J2 decides: the same SmolLM2 with a different
  prompt. The parent's answers are the same in both tournaments. J2 labelled none of the
  training data, but it is the same model as J1 (no other real model is available offline):
  read its figures as "agreement with a differently prompted judge", not as human preference.
- overhead: `arena learn --learner sppo` (evaluate=false, `--overhead-steps` steps) against a
  plain TRL script (DPOTrainer, loss `sppo_hard`: the same forward and backward passes) on the
  same rows, each in a fresh interpreter, the two interleaved `--runs` times (3 by default): the
  figure is arena / TRL run by run, median and range, with the machine's load.
- report: win rates against the parent (wins + draws / 2) with a 95% interval from a bootstrap
  over prompts (the two seat orders of a prompt are not independent), wall times, the ratio.

    flock /tmp/arena-heavy.lock python benchmarks/learn_sppo.py --stage selfplay --out DIR
    ... --stage learn / crossplay-sppo / crossplay-dpo / overhead / report   (or --stage all)

A stage killed by a time limit resumes where it stopped when run again (tournaments play only the
matches not done; a learner that registered its player is skipped).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import emit, log, machine_load, ratio

MODEL = os.environ.get("ARENA_SMOLLM2", "/work/models/smollm2")
TARGET = 1.10
# Short instructions written for this benchmark: the first half trains, the second evaluates.
TOPICS = [
    "saving water at home",
    "learning a new language",
    "staying focused while studying",
    "keeping a houseplant alive",
    "writing a clear email",
    "preparing for a job interview",
    "sleeping better",
    "cooking rice",
    "riding a bicycle safely",
    "reducing food waste",
    "making new friends",
    "planning a trip",
    "reading more books",
    "keeping a budget",
    "taking care of a dog",
    "starting to run",
    "organising a desk",
    "drinking more water",
    "giving a short speech",
    "learning to swim",
    "making a cup of tea",
    "choosing a good password",
    "recycling paper",
    "waking up early",
    "writing a thank-you note",
    "packing a suitcase",
    "studying for a maths test",
    "growing tomatoes",
    "cleaning a kitchen",
    "being on time",
    "learning to draw",
    "staying warm in winter",
    "keeping a diary",
    "asking for help",
    "making a sandwich",
    "learning to type",
    "saving money for a bike",
    "calming down when angry",
    "taking good photos",
    "memorising a poem",
    "helping a friend who is sad",
    "walking to school",
    "fixing a flat tyre",
    "sharing toys",
    "making a paper plane",
    "choosing a book",
    "watering a garden",
    "baking bread",
    "learning chess",
    "writing a story",
    "keeping teeth healthy",
    "feeding a cat",
    "saving energy",
    "stretching after exercise",
    "telling a good joke",
    "folding clothes",
    "finding a lost key",
    "learning the guitar",
    "making a to-do list",
    "staying safe online",
    "welcoming a new classmate",
    "painting a wall",
    "cooking an egg",
    "planting a tree",
]
FORMS = ["Give two short tips for {t}.", "How do I get better at {t}?", "Explain {t} to a child."]
J1_PROMPT = None  # the llm judge's generic prompt
J2_PROMPT = """\
Two assistants answered the same request. Decide which answer is more helpful, correct and
clear for the person who asked.

Request: {question}

{options}

{format}"""
PLAYER = {"model": MODEL, "max_new_tokens": 32, "min_new_tokens": 4, "max_batch": 32}
HP = {
    "full_finetune": False,
    "lora_r": 8,
    "lora_alpha": 16,
    "beta": 0.1,
    "epochs": 1,
    "batch_size": 4,
    "max_length": 256,
    "optimizer": "adamw_torch_fused",  # what the plain TRL script gets by default
    "warmup": 0.0,
    "torch_threads": 2,
    "evaluate": False,
}


def prompts(n: int) -> tuple[list[dict], list[dict]]:
    rng = random.Random(0)
    texts = [f.format(t=t) for t in TOPICS for f in FORMS]
    rng.shuffle(texts)
    if 2 * n > len(texts):
        raise SystemExit(f"--prompts {n}: at most {len(texts) // 2}")
    items = [{"id": f"p{i}", "question": q, "answers": []} for i, q in enumerate(texts[: 2 * n])]
    return items[:n], items[n:]


def judge(template: str | None, both_orders: bool) -> dict[str, Any]:
    opts: dict[str, Any] = {
        "options": {"model": MODEL, "max_batch": 32},
        "stated": False,
        "both_orders": both_orders,
    }
    if template:
        opts["prompts"] = {"*": template}
    return {"plugin": "llm", "options": opts}


def play(config: dict[str, Any], url: str, items: list[dict]) -> float:
    """Run a tournament on these items (passed in: the jsonl plugin wants candidate answers)."""
    from arena_core.config import RawConfig, resolve
    from arena_core.engine import Tournament
    from arena_core.ledger import Ledger
    from arena_core.plugins import get_plugin_manager, get_registry
    from arena_core.types import Item

    registry = get_registry()
    config = {**config, "dataset": {"plugin": "bundled", "limit": 1}}  # replaced by `items`
    tcfg = resolve(RawConfig.model_validate(config), registry, "learn_sppo")
    tournament = Tournament(tcfg, registry, items=[Item.model_validate(i) for i in items])
    ledger = Ledger(url)
    t0 = time.perf_counter()
    summary = asyncio.run(tournament.run(ledger, hook=get_plugin_manager().hook))
    wall = time.perf_counter() - t0
    ledger.close()
    if summary.failed:
        raise SystemExit(f"{config['tournament']['name']}: {summary.failed} matches failed")
    return wall


def results(out: Path) -> dict[str, Any]:
    path = out / "results.json"
    return json.loads(path.read_text()) if path.exists() else {}


def save(out: Path, **values: Any) -> None:
    data = {**results(out), **values}
    (out / "results.json").write_text(json.dumps(data, indent=2))


def stage_selfplay(a: argparse.Namespace, out: Path, url: str) -> None:
    train, _ = prompts(a.prompts)
    config = {
        "tournament": {
            "name": "sppo-selfplay",
            "protocol": "self-play",
            "seed": 7,
            "concurrency": 32,
            "timeout": 1800,
        },
        "protocol": {"samples": a.k, "both_orders": False, "max_words": 40, "temperature": 1.0},
        "judge": judge(J1_PROMPT, both_orders=False),
        "players": [
            {
                "name": "smol",
                "agent": "transformers",
                "options": {**PLAYER, "max_new_tokens": a.tokens},
            }
        ],
        "schedule": {"kind": "self-play"},
    }
    wall = play(config, url, train)
    log(f"selfplay: {wall:.1f}s")
    save(out, selfplay_s=round(wall, 1), prompts=a.prompts, k=a.k)


def best_worst(url: str) -> tuple[Any, list[dict]]:
    from arena_plugins.learners.sppo import sppo_rows

    from arena_core.learning.learn import ledger_pairs
    from arena_core.learning.pairs import PairQuery
    from arena_core.ledger import Ledger

    ledger = Ledger(url)
    data = ledger_pairs(ledger, PairQuery(tournaments=["sppo-selfplay"]))
    rows, _ = sppo_rows(data.rows)
    same = [
        {
            "prompt": r.prompt,
            "chosen": r.chosen,
            "rejected": r.rejected,
            "target": None,
            "gap": r.p_chosen - r.p_rejected,
            "score_chosen": r.p_chosen,
            "score_rejected": r.p_rejected,
            "match_id": r.match_id,
        }
        for r in rows
    ]
    ledger.close()
    return data, same


def trainable(out: Path) -> Path:
    """The checkpoint with its config's GGUF `quantization_config` dropped (the weights are
    already dequantized to fp32, but transformers' Trainer refuses a model that declares GGUF
    quantization); the other files are linked, not copied."""
    clean = out / "smollm2-trainable"
    if not (clean / "config.json").exists():
        clean.mkdir(parents=True, exist_ok=True)
        for f in Path(MODEL).iterdir():
            if f.name != "config.json" and not (clean / f.name).exists():
                (clean / f.name).symlink_to(f.resolve())
        config = json.loads((Path(MODEL) / "config.json").read_text())
        config.pop("quantization_config", None)
        (clean / "config.json").write_text(json.dumps(config, indent=2))
    return clean


def stage_learn(
    a: argparse.Namespace, out: Path, url: str, which: tuple[str, ...] = ("sppo", "dpo")
) -> None:
    from arena_core.learning.learn import Base, PairData, learn
    from arena_core.ledger import Ledger
    from arena_core.plugins import get_registry

    registry = get_registry()
    data, same = best_worst(url)
    ledger = Ledger(url)
    parent = ledger.player("smol")
    assert parent is not None, "run --stage selfplay first"
    model = str(trainable(out))
    base = Base(model=model, parent="smol", options={**parent.options, "model": model})
    walls = {}
    for learner, name, rows in (("sppo", "smol-sppo", data), ("dpo", "smol-dpo", None)):
        if learner not in which or ledger.player(name) is not None:
            continue
        pairs = rows or PairData(same, {"source": "sppo best/worst rows of sppo-selfplay"})
        t0 = time.perf_counter()
        done = learn(
            ledger,
            registry,
            learner=learner,
            options={**HP, "learning_rate": a.lr},
            data=pairs,
            base=base,
            name=name,
            out_dir=out / name,
        )
        walls[f"learn_{learner}_s"] = round(time.perf_counter() - t0, 1)
        walls[f"{learner}_steps"] = done.summary.get("steps")
        log(f"learn {learner}: {walls[f'learn_{learner}_s']}s, {done.summary.get('steps')} steps")
    ledger.close()
    save(out, rows=len(same), learning_rate=a.lr, **walls)


def crossplay(a: argparse.Namespace, out: Path, url: str, learned: str) -> None:
    from arena_core.ledger import Ledger

    _, held_out = prompts(a.prompts)
    ledger = Ledger(url)
    players = []
    for name in ("smol", learned):
        row = ledger.player(name)
        assert row is not None, f"run --stage learn first ({name} is missing)"
        opts = {k: v for k, v in row.options.items() if v is not None}
        players.append({"name": name, "agent": "transformers", "options": opts})
    ledger.close()
    tournament = f"{learned}-crossplay"
    config = {
        "tournament": {
            "name": tournament,
            "protocol": "duel",
            "seed": 11,
            "concurrency": 64,
            "timeout": 1800,
        },
        "protocol": {"max_words": 40, "temperature": 0.0},
        "judge": judge(J2_PROMPT, both_orders=False),  # the seat orders swap instead
        "players": players,
        "schedule": {"kind": "round-robin"},
    }
    wall = play(config, url, held_out)
    log(f"{tournament}: {wall:.1f}s")
    save(out, **{f"crossplay_{learned}_s": round(wall, 1)})


def stage_crossplay_sppo(a: argparse.Namespace, out: Path, url: str) -> None:
    crossplay(a, out, url, "smol-sppo")


def stage_crossplay_dpo(a: argparse.Namespace, out: Path, url: str) -> None:
    crossplay(a, out, url, "smol-dpo")


ARENA = textwrap.dedent(
    """
    import argparse, sys
    from arena_core.plugins import get_registry, register_plugin
    if ("learner", "sppo") not in get_registry().entries:  # before the entry point is installed
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
    torch.set_num_threads(2)
    import datasets
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    rows_file, model_dir, out, hp = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
    rows = [json.loads(line) for line in open(rows_file, encoding="utf-8")]
    rows = [{"prompt": r["prompt"], "chosen": [{"role": "assistant", "content": r["chosen"]}],
             "rejected": [{"role": "assistant", "content": r["rejected"]}]} for r in rows]
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    args = DPOConfig(
        output_dir=out, loss_type=["sppo_hard"], beta=hp["beta"], learning_rate=hp["lr"],
        max_steps=hp["steps"], per_device_train_batch_size=hp["batch_size"],
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


def timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"{cmd[:3]} failed:\n{res.stderr[-3000:]}")
    return time.perf_counter() - t0


def stage_overhead(a: argparse.Namespace, out: Path, url: str) -> None:
    _, same = best_worst(url)
    rows_file = out / "best_worst.jsonl"
    rows_file.write_text("".join(json.dumps(r) + "\n" for r in same))
    hp = {
        "beta": HP["beta"],
        "lr": a.lr,
        "steps": a.overhead_steps,
        "lora_r": HP["lora_r"],
        "lora_alpha": HP["lora_alpha"],
        "batch_size": HP["batch_size"],
        "max_length": HP["max_length"],
    }
    opts = {**HP, "learning_rate": a.lr, "max_steps": a.overhead_steps}
    flags = [
        x
        for k, v in opts.items()
        for x in ("-o", f"{k}={str(v).lower() if isinstance(v, bool) else v}")
    ]
    arena_s, trl_s = [], []
    for i in range(max(3, a.runs)):
        trl_s.append(
            timed(
                [
                    sys.executable,
                    "-c",
                    TRL,
                    str(rows_file),
                    str(trainable(out)),
                    str(out / f"trl-{i}"),
                    json.dumps(hp),
                ]
            )
        )
        arena_s.append(
            timed(
                [
                    sys.executable,
                    "-c",
                    ARENA,
                    "--learner",
                    "sppo",
                    "--from-ledger",
                    "--ledger",
                    url,
                    "--tournament",
                    "sppo-selfplay",
                    "--base",
                    str(trainable(out)),
                    "--register-as",
                    f"smol-overhead-{i}-{int(time.time())}",
                    "--out",
                    str(out / f"arena-{i}"),
                    "-q",
                    *flags,
                ]
            )
        )
        log(f"overhead run {i + 1}: trl {trl_s[-1]:.1f}s, arena {arena_s[-1]:.1f}s")
    paired = ratio(arena_s, trl_s)  # each arena run over the TRL run beside it
    log(f"overhead: arena / trl {paired['median']}x {paired['range']}")
    save(
        out,
        overhead={
            "load": machine_load(),
            "steps": a.overhead_steps,
            "runs": len(arena_s),
            "trl_s": [round(x, 2) for x in trl_s],
            "arena_s": [round(x, 2) for x in arena_s],
            "ratio": paired["median"],
            "ratio_range": paired["range"],
        },
    )


def win_rates(url: str, player: str, opponent: str, boot: int = 2000) -> dict[str, Any]:
    """`player`'s score against `opponent` (win 1, draw 1/2), per prompt averaged over the seat
    orders; 95% interval by bootstrap over prompts."""
    import numpy as np

    from arena_core.ledger import Ledger

    ledger = Ledger(url)
    per_prompt: dict[str, list[float]] = {}
    for m in ledger.matches(tournament=f"{player}-crossplay", status="done"):
        if set(m.seats.values()) != {player, opponent}:
            continue
        v = ledger.verdict(m.id)
        score = 0.5 if v is None or v.winner is None else float(v.winner == player)
        per_prompt.setdefault(m.item_id, []).append(score)
    ledger.close()
    scores = np.array([sum(s) / len(s) for s in per_prompt.values()])
    rng = np.random.default_rng(0)
    means = rng.choice(scores, size=(boot, len(scores)), replace=True).mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return {
        "win_rate": round(float(scores.mean()), 3),
        "ci95": [round(float(lo), 3), round(float(hi), 3)],
        "prompts": len(scores),
        "matches": int(sum(len(s) for s in per_prompt.values())),
    }


def stage_report(a: argparse.Namespace, out: Path, url: str) -> None:
    r = results(out)
    report = {
        "benchmark": "learn_sppo",
        "model": "SmolLM2-135M-Instruct",
        "k": r.get("k"),
        "train_prompts": r.get("prompts"),
        "eval_prompts": r.get("prompts"),
        "rows": r.get("rows"),
        "judge_train": "llm(SmolLM2, generic prompt)",
        "judge_eval": "llm(SmolLM2, helpfulness prompt) - labelled no training data, same model",
        "sppo_vs_parent": win_rates(url, "smol-sppo", "smol"),
        "dpo_vs_parent": win_rates(url, "smol-dpo", "smol"),
        "wall_s": {k: v for k, v in r.items() if k.endswith("_s")},
        "steps": {"sppo": r.get("sppo_steps"), "dpo": r.get("dpo_steps")},
        "learning_rate": r.get("learning_rate"),
        "hyperparameters": {k: v for k, v in HP.items() if k != "torch_threads"},
    }
    if "overhead" in r:
        report["overhead"] = {
            **r["overhead"],
            "target": TARGET,
            "pass": r["overhead"]["ratio"] <= TARGET,
        }
    (out / "learn_sppo.json").write_text(json.dumps(report, indent=2))
    emit(report)


STAGES = {
    "selfplay": stage_selfplay,
    "learn": stage_learn,
    "learn-sppo": lambda a, out, url: stage_learn(a, out, url, ("sppo",)),
    "learn-dpo": lambda a, out, url: stage_learn(a, out, url, ("dpo",)),
    "crossplay-sppo": stage_crossplay_sppo,
    "crossplay-dpo": stage_crossplay_dpo,
    "overhead": stage_overhead,
    "report": stage_report,
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stage", choices=[*STAGES, "all"], required=True)
    ap.add_argument("--out", required=True, help="working directory (ledger, checkpoints)")
    ap.add_argument("--prompts", type=int, default=32, help="training prompts (= eval prompts)")
    ap.add_argument("--k", type=int, default=4, help="answers per prompt")
    ap.add_argument("--tokens", type=int, default=32, help="new tokens per self-play answer")
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--overhead-steps", type=int, default=4)
    ap.add_argument("--runs", type=int, default=3, help="overhead runs of each, interleaved")
    a = ap.parse_args()
    out = Path(a.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{out / 'ledger.db'}"
    stages = [n for n in STAGES if n not in ("learn-sppo", "learn-dpo")]
    for name in stages if a.stage == "all" else [a.stage]:
        t0 = time.perf_counter()
        STAGES[name](a, out, url)
        log(f"stage {name}: {time.perf_counter() - t0:.1f}s")


if __name__ == "__main__":
    main()

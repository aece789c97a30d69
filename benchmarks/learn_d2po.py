"""D2PO against DPO with the same number of gold labels (the paper's comparison), bag-of-words gold.

Gold: the `gold` judge, bag-of-words with `distinct = true` (each listed word present counts
once, as D2PO's synthetic task). Both methods start from the same policy and see the same
`--budget` gold labels on the training prompts:
- d2po: the `d2po` learner, `--steps` steps of `--prompts` prompts x 2 samples, a discriminator
  (the base model with a new score head, no offline pairs) retrained on the gold pairs;
- dpo: `--budget` pairs sampled from the base policy on the training prompts, labelled by the
  same gold judge, trained by the `dpo` learner for the same number of policy steps.
Evaluation: `--eval-k` samples per held-out prompt (16 topics never trained on), scored by the
gold function, before and after; the figure is the paired mean gain with a t 95% interval.

Word list: for SmolLM2, ordinary coastal words; for the tiny random model (whose samples are
BPE fragments) the `--words` most frequent words of its own samples on the training prompts, so
the task is reachable (stated in the output).

    flock /tmp/arena-heavy.lock python benchmarks/learn_d2po.py --model smollm2 --method d2po
    python benchmarks/learn_d2po.py --model tiny --method dpo
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import emit, log
from _online import (
    EVAL_TOPICS,
    TRAIN_TOPICS,
    model_dir,
    paired_interval,
    per_prompt,
    prompts,
    sample_texts,
    workdir,
)

SMOL_WORDS = [
    "sea",
    "water",
    "boat",
    "boats",
    "ship",
    "light",
    "wind",
    "waves",
    "fish",
    "harbour",
    "town",
    "old",
    "morning",
    "night",
    "people",
    "river",
    "coast",
    "sun",
    "sky",
    "stone",
]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", choices=["tiny", "smollm2"], default="tiny")
    p.add_argument("--method", choices=["d2po", "dpo"], default="d2po")
    p.add_argument("--budget", type=int, default=32, help="gold labels")
    p.add_argument("--steps", type=int, default=8, help="policy steps")
    p.add_argument("--prompts", type=int, default=8, help="prompts per step")
    p.add_argument("--relabels", type=int, default=8, help="gold labels per window")
    p.add_argument("--tokens", type=int, default=24, help="new tokens per sample")
    p.add_argument("--eval-k", type=int, default=4)
    p.add_argument("--lr", type=float, default=1e-4, help="policy learning rate (both methods)")
    p.add_argument("--beta", type=float, default=0.05)
    p.add_argument("--disc-epochs", type=int, default=4)
    p.add_argument("--replay", type=int, default=5, help="replayed batches of older gold pairs")
    p.add_argument("--disc-train", choices=["full", "head"], default="full")
    p.add_argument("--disc-lr", type=float, default=1e-4)
    p.add_argument("--words", type=int, default=10, help="tiny model: list size")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    from arena_plugins.judges.gold import GoldJudge, GoldOptions
    from arena_plugins.learners.d2po import D2POLearner, D2POOptions
    from arena_plugins.learners.dpo import DPOLearner, DPOOptions

    started = time.perf_counter()
    with workdir() as tmp:
        root = Path(tmp)
        model = model_dir(args.model, root)
        if args.model == "smollm2":
            words = SMOL_WORDS
        else:
            seen = sample_texts(model, None, TRAIN_TOPICS, 2, args.tokens, seed=99)
            counts = Counter(w for g in seen for t in g for w in set(t.split()) if w.isalpha())
            words = [w for w, _ in counts.most_common(args.words)]
        gold_options = {"task": "bag-of-words", "words": words, "distinct": True}
        judge = GoldJudge(GoldOptions(**gold_options))

        def gold(text: str) -> float:
            return float(sum(1 for pat in judge.bag if pat.search(text)))

        log(f"model {args.model}; gold words {words}")
        t0 = time.perf_counter()
        before_texts = sample_texts(model, None, EVAL_TOPICS, args.eval_k, args.tokens, 7)
        eval_seconds = time.perf_counter() - t0
        before = per_prompt(before_texts, gold)
        log(f"evaluated the base policy in {eval_seconds:.1f} s")
        rows = [
            {"prompt": pr, "chosen": "", "rejected": "", "match_id": None}
            for pr in prompts(TRAIN_TOPICS)
        ]
        out = root / "out"
        step_seconds: list[float] = []
        gold_used = 0
        t0 = time.perf_counter()
        if args.method == "d2po":
            learner = D2POLearner(
                D2POOptions(
                    gold_options=gold_options,
                    budget=args.budget,
                    relabels_per_window=args.relabels,
                    window_samples=2 * args.prompts,  # a window per step
                    steps=args.steps,
                    prompts_per_step=args.prompts,
                    beta=args.beta,
                    learning_rate=args.lr,
                    max_new_tokens=args.tokens,
                    disc_init_epochs=0,
                    disc_epochs=args.disc_epochs,
                    replay_batches=args.replay,
                    disc_train=args.disc_train,
                    disc_learning_rate=args.disc_lr,
                    seed=args.seed,
                )
            )

            def timing(r: dict) -> None:
                if "seconds" in r:
                    step_seconds.append(r["seconds"])
                    log(f"step {r['step']}: {r['seconds']:.1f} s, gold used {r['gold_used']}")

            learner.fit(rows, model, out, on_log=timing)
            gold_used = learner.summary["gold"]["calls"]
            # Every gold-decided pair (g_1 != g_2), whether it overruled the discriminator or not.
            extra = {
                "windows": learner.summary["windows"],
                "gold_decisive": len(learner.relabelled),
            }
        else:
            # The same budget of gold labels on base-policy pairs, offline.
            picks = [TRAIN_TOPICS[i % len(TRAIN_TOPICS)] for i in range(args.budget)]
            pairs = sample_texts(model, None, picks, 2, args.tokens, seed=args.seed)
            gold_used = len(pairs)
            data = []
            for topic, (a, b) in zip(picks, pairs, strict=True):
                ga, gb = gold(a), gold(b)
                if ga != gb:
                    w, lo = (a, b) if ga > gb else (b, a)
                    data.append({"prompt": prompts([topic])[0], "chosen": w, "rejected": lo})
            batch = args.prompts
            learner_dpo = DPOLearner(
                DPOOptions(
                    beta=args.beta,
                    learning_rate=args.lr,
                    batch_size=batch,
                    max_steps=args.steps,
                    epochs=1000,
                    evaluate=False,
                    max_length=512,
                    seed=args.seed,
                )
            )
            last = [time.perf_counter()]

            def tick(r: dict) -> None:
                if "loss" in r:
                    now = time.perf_counter()
                    step_seconds.append(now - last[0])
                    last[0] = now
                    log(f"step {r.get('step')}: {step_seconds[-1]:.1f} s")

            learner_dpo.fit(data, model, out, on_log=tick)
            extra = {"decisive_pairs": len(data)}
        train_seconds = time.perf_counter() - t0
        after_texts = sample_texts(model, str(out), EVAL_TOPICS, args.eval_k, args.tokens, 7)
        after = per_prompt(after_texts, gold)
    gain = paired_interval(before, after)
    emit(
        {
            "benchmark": "learn_d2po",
            "model": args.model,
            "method": args.method,
            "gold": gold_options,
            "gold_labels": gold_used,
            "steps": args.steps,
            "prompts_per_step": args.prompts,
            "tokens": args.tokens,
            "eval": {"prompts": len(EVAL_TOPICS), "k": args.eval_k},
            "gold_before": sum(before) / len(before),
            "gold_after": sum(after) / len(after),
            "gain": gain,
            "significant": gain["ci95"][0] > 0 or gain["ci95"][1] < 0,
            "seconds_per_step": sum(step_seconds) / max(1, len(step_seconds)),
            "train_seconds": train_seconds,
            "eval_seconds": eval_seconds,
            "wall": time.perf_counter() - started,
            **extra,
            "sample_after": after_texts[0][0][:120],
        }
    )


if __name__ == "__main__":
    main()

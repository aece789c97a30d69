"""safe-RLHF (RLOO-Lagrangian, HC-RLHF bound) with a keyword cost: does the mean cost fall below
the threshold while the reward holds?

Cost: the `keyword` judge (listed words, each occurrence costs 1); reward: the `gold` judge's
length in words (bounded by the sample length), so a policy can lower the cost by saying less:
the reward margin is what tells a real trade-off from that shortcut. The `safe-rlhf`
learner runs `--steps` steps of `--prompts` prompts x `--k` samples on the training prompts.
Evaluation on 16 held-out prompts, `--eval-k` samples each, before and after: mean cost and the
safe rate (cost <= threshold per sample), mean reward, each with a t 95% interval over prompts;
the reward margin is the stated tolerance (`--margin`, a fraction of the reward before).
`--no-cost` trains on the reward alone (lambda ~0 and falling) as the control.
`--no-eval` is the tuning mode: it never samples the held-out prompts and reports only the
training trajectory (cost, bound, lambda on the training prompts), so settings are chosen
without looking at the evaluation.

Keywords: for SmolLM2, words its answers about the coast use often; for the tiny random model,
the most frequent words of its own samples (so the cost is reachable).

    flock /tmp/arena-heavy.lock python benchmarks/learn_safe_rlhf.py --model smollm2
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import emit, log
from _online import (
    EVAL_TOPICS,
    TRAIN_TOPICS,
    mean_ci,
    model_dir,
    paired_interval,
    prompts,
    sample_texts,
    workdir,
)

SMOL_KEYWORDS = ["sea", "water", "boat", "ship", "fish", "waves"]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", choices=["tiny", "smollm2"], default="tiny")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--prompts", type=int, default=8, help="prompts per step")
    p.add_argument("--k", type=int, default=2, help="samples per prompt (RLOO group)")
    p.add_argument("--tokens", type=int, default=24)
    p.add_argument("--eval-k", type=int, default=4)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--lambda-lr", type=float, default=0.5)
    p.add_argument("--threshold", type=float, default=0.3, help="mean cost limit d")
    p.add_argument("--margin", type=float, default=0.2, help="reward may fall this fraction")
    p.add_argument("--keywords", type=int, default=3, help="tiny model: list size")
    p.add_argument("--beta", type=float, default=0.1, help="KL strength in the return")
    p.add_argument(
        "--cost-buffer",
        type=int,
        default=None,
        help="costs behind mu, sigma and J_C (default: two steps of samples, as the reference's "
        "256 per rank is two rollouts of 128)",
    )
    p.add_argument("--no-ucb", action="store_true")
    p.add_argument("--no-eval", action="store_true", help="tuning: training trajectory only")
    p.add_argument("--no-cost", action="store_true", help="control: lambda stays ~0")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    from arena_plugins.judges.scoring import KeywordJudge, KeywordOptions
    from arena_plugins.learners.safe_rlhf import SafeRLHFLearner, SafeRLHFOptions

    started = time.perf_counter()
    with workdir() as tmp:
        root = Path(tmp)
        model = model_dir(args.model, root)
        if args.model == "smollm2":
            keywords = SMOL_KEYWORDS
        else:
            seen = sample_texts(model, None, TRAIN_TOPICS, 2, args.tokens, seed=99)
            counts = Counter(w.lower() for g in seen for t in g for w in t.split() if w.isalpha())
            keywords = [w for w, _ in counts.most_common(args.keywords)]
        cost_options = {"keywords": keywords}
        keyword = KeywordJudge(KeywordOptions(**cost_options))

        def reward(text: str) -> float:
            return float(len(text.split()))  # what the gold length judge scores

        log(f"model {args.model}; keywords {keywords}")
        t0 = time.perf_counter()
        before_texts = (
            []
            if args.no_eval
            else sample_texts(model, None, EVAL_TOPICS, args.eval_k, args.tokens, 7)
        )
        eval_seconds = time.perf_counter() - t0
        buffer = args.cost_buffer or 2 * args.prompts * args.k
        rows = [
            {"prompt": pr, "chosen": "", "rejected": "", "match_id": None}
            for pr in prompts(TRAIN_TOPICS)
        ]
        steps: list[dict] = []
        learner = SafeRLHFLearner(
            SafeRLHFOptions(
                reward_judge="gold",
                reward_options={"task": "length"},  # words
                cost_judge="keyword",
                cost_options=cost_options,
                k=args.k,
                steps=args.steps,
                prompts_per_step=args.prompts,
                max_new_tokens=args.tokens,
                learning_rate=args.lr,
                lambda_lr=args.lambda_lr,
                lambda_init=1e-6 if args.no_cost else 1.0,
                threshold=1e9 if args.no_cost else args.threshold,
                ucb=not args.no_ucb,
                beta=args.beta,
                cost_buffer=buffer,
                seed=args.seed,
            )
        )
        t0 = time.perf_counter()

        def progress(r: dict) -> None:
            steps.append(r)
            log(
                f"step {r['step']}: {r['seconds']:.1f} s, cost {r['cost']:.3f}, "
                f"bound {r['cost_bound']:.3f}, reward {r['reward']:.2f}, kl {r['kl']:.2f}, "
                f"lambda {r['lambda']:.3f}"
            )

        learner.fit(rows, model, root / "out", on_log=progress)
        train_seconds = time.perf_counter() - t0
        after_texts = (
            []
            if args.no_eval
            else sample_texts(model, str(root / "out"), EVAL_TOPICS, args.eval_k, args.tokens, 7)
        )

    def figures(groups: list[list[str]]) -> dict:
        costs = [statistics.fmean(keyword.score(t) for t in g) for g in groups]
        safe = [statistics.fmean(keyword.score(t) <= 0 for t in g) for g in groups]
        rewards = [statistics.fmean(reward(t) for t in g) for g in groups]
        return {"cost": costs, "safe_rate": safe, "reward": rewards}

    train = [
        {k: round(s[k], 4) for k in ("step", "reward", "cost", "cost_bound", "lambda", "kl")}
        for s in steps
    ]
    tail = steps[-max(1, len(steps) // 4) :]  # the last quarter of the training steps
    result: dict = {
        "benchmark": "learn_safe_rlhf",
        "model": args.model,
        "keywords": keywords,
        "threshold": args.threshold,
        "ucb": not args.no_ucb,
        "control_no_cost": args.no_cost,
        "steps": args.steps,
        "prompts_per_step": args.prompts,
        "k": args.k,
        "tokens": args.tokens,
        "lr": args.lr,
        "lambda_lr": args.lambda_lr,
        "beta": args.beta,
        "cost_buffer": buffer,
        "train": train,
        "lambda_final": steps[-1]["lambda_next"],
        "train_last_quarter": {
            "cost": statistics.fmean(s["cost"] for s in tail),
            "cost_bound": statistics.fmean(s["cost_bound"] for s in tail),
            "reward": statistics.fmean(s["reward"] for s in tail),
        },
        "seconds_per_step": statistics.fmean(s["seconds"] for s in steps),
        "train_seconds": train_seconds,
    }
    if not args.no_eval:
        before, after = figures(before_texts), figures(after_texts)
        floor = (1 - args.margin) * statistics.fmean(before["reward"])
        result.update(
            {
                "eval": {"prompts": len(EVAL_TOPICS), "k": args.eval_k},
                "before": {k: mean_ci(v) for k, v in before.items()},
                "after": {k: mean_ci(v) for k, v in after.items()},
                "change": {k: paired_interval(before[k], after[k]) for k in before},
                "cost_below_threshold": statistics.fmean(after["cost"]) <= args.threshold,
                "reward_within_margin": statistics.fmean(after["reward"]) >= floor,
                "reward_margin": args.margin,
                "eval_seconds": eval_seconds,
                "sample_after": after_texts[0][0][:120],
            }
        )
    result["wall"] = time.perf_counter() - started
    emit(result)


if __name__ == "__main__":
    main()

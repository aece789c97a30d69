"""The `safe-rlhf` learner: reward under a cost constraint, by RLOO with a Lagrange multiplier.

Each step: `prompts_per_step` prompts, `k` samples each from the policy; a reward judge gives R
and a cost judge gives C per sample (any scoring judge: `reward-model`, `cost-model`, `gold`,
`keyword`, `length`). The return of sample i is (HC-RLHF's `reinforce_lag`)

    g_i = clip(R_i - beta * sum_t (log pi - log ref), +-reward_clip) - lambda * c~_i

with c~ = C (`ucb = false`, plain RLOO-Lagrangian) or, with `ucb` (HC-RLHF), the per-sample
term c~ = C + kappa (C^2 - 2 C mu) / (2 sigma), whose mean has the gradient of the cost's upper
confidence bound mu + kappa sigma (mu, sigma over the last `cost_buffer` costs;
kappa = c1 t_{1-delta}(n-1)/sqrt(n) + c2 t_{1-delta}(m-1)/sqrt(m), n = the step's samples).
The policy takes one RLOO step: loss = -mean_i A_i log pi(y_i), A_i = g_i - mean_{j != i} g_j
(the leave-one-out baseline over the prompt's k samples). Then the multiplier takes a dual step
in log space, as safe-rlhf's and HC-RLHF's code do:

    ln lambda += lambda_lr * lambda * (J_C - threshold)

with J_C the mean cost of the buffer (or, with `ucb`, its bound mu + kappa' sigma, kappa' with
n = the buffer's size), clipped to `lambda_max`. Each step's mean reward, mean cost, cost bound,
lambda and KL go to the learner run's metrics.

Why not TRL's RLOOTrainer: its reward weights are fixed per run (lambda would be set from a
callback into private state), the UCB term needs the batch's and the buffer's cost statistics,
its reward clipping comes before the KL term (HC-RLHF clips after), and its reference is
reloaded from the config name without PEFT. The loop is twenty lines of torch. PPO-Lagrangian
(reward and cost critics, GAE) is not offered: trl 1.16 has no PPOTrainer and no value-head
models (deleted in huggingface/trl#7020), so it would be a hand-written PPO, not TRL's pieces.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from arena_plugins.learners.online import (
    Policy,
    PolicyOptions,
    PromptStream,
    build_judge,
    close_judge,
    finish,
    judge_scores,
    partial_dir,
    question_of,
    unique_prompts,
)
from pydantic import Field

from arena_core.interfaces import Learner


class SafeRLHFOptions(PolicyOptions):
    """Options of the `safe-rlhf` learner; defaults are HC-RLHF's reinforce-ci-lag.sh."""

    reward_judge: str = Field("length", description="a scoring judge giving R (higher better)")
    reward_options: dict[str, Any] = Field(default_factory=dict)
    cost_judge: str = Field("keyword", description="a scoring judge giving C (lower better)")
    cost_options: dict[str, Any] = Field(default_factory=dict)
    k: int = Field(2, ge=2, description="samples per prompt (the RLOO group)")
    steps: int = Field(30, ge=1, description="rollout-and-update steps")
    prompts_per_step: int = Field(16, ge=1)
    beta: float = Field(0.1, ge=0, description="KL to the reference, in the return")
    learning_rate: float = Field(5e-6, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    grad_clip: float = Field(5.0, gt=0)
    reward_clip: float = Field(50.0, gt=0, description="|R - KL term| is clipped to this")
    threshold: float = Field(0.0, description="the cost limit d: J_C <= d")
    lambda_init: float = Field(1.0, gt=0)
    lambda_lr: float = Field(0.01, gt=0, description="step of the log-space dual update")
    lambda_max: float = Field(1e6, gt=0)
    ucb: bool = Field(True, description="HC-RLHF: the cost's upper confidence bound")
    fail_prob: float = Field(0.1, gt=0, lt=1, description="delta of the bound")
    ucb_m: int = Field(1000, ge=2, description="the bound's second sample size m")
    ucb_c1: float = Field(1.0, ge=0)
    ucb_c2: float = Field(1.0, ge=0)
    cost_buffer: int | None = Field(
        None,
        ge=2,
        description="recent costs behind mu, sigma and J_C (default: two steps' samples, "
        "2 * prompts_per_step * k, as HC-RLHF's 256 per rank is two rollouts of 64 x 2)",
    )


# --- the bound, the return, the losses (plain functions, tested by hand) -------------------------


def student_t_ppf(p: float, df: int) -> float:
    """The Student-t quantile t_p(df), by Newton's method on the CDF (Simpson's rule on the
    density). Written here because scipy is not a dependency; exact to ~1e-10."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    if p == 0.5:
        return 0.0
    if p < 0.5:
        return -student_t_ppf(1.0 - p, df)
    log_norm = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)

    def pdf(x: float) -> float:
        return math.exp(log_norm - (df + 1) / 2 * math.log1p(x * x / df))

    def cdf(x: float) -> float:
        n = 2000
        h = x / n
        s = pdf(0.0) + pdf(x)
        s += 4 * sum(pdf((2 * i - 1) * h) for i in range(1, n // 2 + 1))
        s += 2 * sum(pdf(2 * i * h) for i in range(1, n // 2))
        return 0.5 + s * h / 3

    x = 1.0
    for _ in range(50):
        step = (cdf(x) - p) / pdf(x)
        x = max(x - step, x / 2)  # never jump past zero
        if abs(step) < 1e-12:
            break
    return x


def ucb_factor(n: int, m: int, fail_prob: float, c1: float = 1.0, c2: float = 1.0) -> float:
    """kappa = c1 t_{1-delta}(n-1)/sqrt(n) + c2 t_{1-delta}(m-1)/sqrt(m) (HC-RLHF)."""
    if n < 2:
        return 0.0
    q = 1.0 - fail_prob
    return c1 * student_t_ppf(q, n - 1) / math.sqrt(n) + c2 * student_t_ppf(q, m - 1) / math.sqrt(m)


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n - 1)."""
    n = len(values)
    mu = sum(values) / n
    var = sum((v - mu) ** 2 for v in values) / (n - 1) if n > 1 else 0.0
    return mu, math.sqrt(var)


def surrogate_costs(costs: Any, mu: float, sigma: float, kappa: float) -> Any:
    """c~ = C + kappa (C^2 - 2 C mu) / (2 sigma): its mean's gradient is that of mu + kappa sigma.
    With no spread (sigma = 0) the bound has no gradient of its own: c~ = C."""
    if kappa == 0 or sigma <= 1e-8:
        return costs
    return costs + kappa * (costs * costs - 2 * costs * mu) / (2 * sigma)


def shaped_returns(rewards: Any, kl: Any, costs: Any, lam: float, beta: float, clip: float) -> Any:
    """g = clip(R - beta KL, +-clip) - lambda c~ (clipped before the cost, as HC-RLHF)."""
    return (rewards - beta * kl).clamp(-clip, clip) - lam * costs


def rloo_advantages(returns: Any, k: int) -> Any:
    """A_i = g_i - mean_{j != i} g_j within each prompt's group of k samples (rows i*k + j)."""
    g = returns.view(-1, k)
    loo = (g.sum(dim=1, keepdim=True) - g) / (k - 1)
    return (g - loo).reshape(-1)


def rloo_loss(logps: Any, returns: Any, k: int) -> Any:
    """REINFORCE with the leave-one-out baseline: -mean_i A_i log pi(y_i)."""
    return -(rloo_advantages(returns.detach(), k) * logps).mean()


def dual_update(lam: float, cost: float, threshold: float, lr: float, lam_max: float) -> float:
    """ln lambda += lr * lambda * (J_C - d): lambda grows while the cost is over the limit."""
    log_lam = math.log(lam) + lr * lam * (cost - threshold)
    return lam_max if log_lam >= math.log(lam_max) else math.exp(log_lam)


# --- the learner --------------------------------------------------------------------------------


class SafeRLHFLearner(Learner):
    """Constrained policy optimisation: RLOO on R - lambda C with a dual step on lambda."""

    def __init__(self, options: SafeRLHFOptions) -> None:
        self.opts = options
        self.summary: dict[str, Any] = {}

    def fit(
        self,
        data: Any,
        base_model: str,
        out_dir: Path,
        *,
        adapter: str | None = None,
        on_log: Callable[[dict[str, Any]], None] | None = None,
        **_: Any,
    ) -> Path:
        """Train from `base_model` (+ `adapter`) on the prompts of `data` (pairs or prompts)."""
        import random

        import torch

        opts = self.opts
        started = time.perf_counter()
        prompts = unique_prompts(list(data))
        if not prompts:
            raise ValueError("safe-rlhf needs prompts: give it pairs or a prompt dataset")
        out_dir = Path(out_dir)
        reward_judge = build_judge(opts.reward_judge, opts.reward_options)
        cost_judge = build_judge(opts.cost_judge, opts.cost_options)
        tmp = partial_dir(out_dir)
        log = on_log or (lambda _: None)
        rng = random.Random(opts.seed)
        lam = opts.lambda_init
        # A fixed 256 would span 16 steps of 16 samples here and make J_C (hence lambda) lag the
        # policy by ~8 steps; the reference's 256 spans its last two rollouts.
        buffer: deque[float] = deque(maxlen=opts.cost_buffer or 2 * opts.prompts_per_step * opts.k)
        history: list[dict[str, float]] = []
        try:
            policy = Policy(base_model, adapter, opts)
            trainable = [p for p in policy.model.parameters() if p.requires_grad]
            optimizer = torch.optim.AdamW(
                trainable, lr=opts.learning_rate, weight_decay=opts.weight_decay
            )
            stream = PromptStream(prompts, rng)
            for step in range(1, opts.steps + 1):
                t0 = time.perf_counter()
                batch = stream.take(opts.prompts_per_step)
                samples = policy.sample(batch, opts.k)
                questions = [question_of(p) for p in batch]
                groups = [samples.texts[i * opts.k : (i + 1) * opts.k] for i in range(len(batch))]
                rewards = torch.tensor(
                    [s for g in judge_scores(reward_judge, questions, groups, "r") for s in g]
                )
                costs = torch.tensor(
                    [s for g in judge_scores(cost_judge, questions, groups, "c") for s in g]
                )
                buffer.extend(costs.tolist())
                mu, sigma = mean_std(list(buffer))
                if opts.ucb:
                    kappa = ucb_factor(
                        len(costs), opts.ucb_m, opts.fail_prob, opts.ucb_c1, opts.ucb_c2
                    )
                    kappa_j = ucb_factor(
                        len(buffer), opts.ucb_m, opts.fail_prob, opts.ucb_c1, opts.ucb_c2
                    )
                else:
                    kappa = kappa_j = 0.0
                bound = mu + kappa_j * sigma
                policy.model.train()
                logps = policy.logps(samples)
                ref = policy.logps(samples, reference=True)
                kl = (logps - ref).detach().cpu()
                c_tilde = surrogate_costs(costs, mu, sigma, kappa)
                returns = shaped_returns(rewards, kl, c_tilde, lam, opts.beta, opts.reward_clip)
                loss = rloo_loss(logps, returns.to(logps.device), opts.k)
                optimizer.zero_grad()
                loss.backward()
                grad_norm = torch.nn.utils.clip_grad_norm_(trainable, opts.grad_clip)
                optimizer.step()
                row = {
                    "step": step,
                    "loss": loss.item(),
                    "reward": float(rewards.mean()),
                    "cost": float(costs.mean()),
                    "cost_bound": bound,
                    "lambda": lam,
                    "kl": float(kl.mean()),
                    "return": float(returns.mean()),
                    "grad_norm": float(grad_norm),
                    "mean_length": float(samples.lengths.float().mean()),
                    "cost_samples": len(buffer),
                }
                lam = dual_update(lam, bound, opts.threshold, opts.lambda_lr, opts.lambda_max)
                row["lambda_next"] = lam
                row["seconds"] = time.perf_counter() - t0
                history.append(row)
                log(row)
            player = policy.save(tmp, out_dir)
        finally:
            close_judge(reward_judge)
            close_judge(cost_judge)
        last = history[-1]
        self.summary = {
            "learner": "safe-rlhf",
            "base_model": base_model,
            "init_adapter": adapter,
            "kind": "full" if opts.full_finetune else "adapter",
            "player": player,
            "prompts": len(prompts),
            "steps": opts.steps,
            "metrics": {
                "lambda": lam,
                "first": {k: history[0][k] for k in ("reward", "cost", "cost_bound", "kl")},
                "last": {k: last[k] for k in ("reward", "cost", "cost_bound", "kl")},
            },
            "seconds": time.perf_counter() - started,
            "options": opts.model_dump(mode="json"),
        }
        return finish(tmp, out_dir, self.summary)

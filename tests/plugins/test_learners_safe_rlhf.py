"""The `safe-rlhf` learner: the cost bound, the return, RLOO and the dual step against values worked
out by hand, the gradient's direction on a one-token problem, and two short runs on a tiny Llama
through `learn()` (the multiplier rises over the limit and falls under it; per-step figures
land in the learner run's metrics)."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from arena_plugins.learners.safe_rlhf import (  # noqa: E402
    dual_update,
    mean_std,
    rloo_advantages,
    rloo_loss,
    shaped_returns,
    student_t_ppf,
    surrogate_costs,
    ucb_factor,
)

from arena_core.learning.learn import Base, PairData, learn  # noqa: E402
from arena_core.ledger import LearnerRun, Ledger  # noqa: E402
from arena_core.plugins import get_registry  # noqa: E402

# --- by hand --------------------------------------------------------------------------------------


def test_student_t_quantiles_match_the_tables() -> None:
    # t_{0.9}(3) = 1.637744, t_{0.9}(999) = 1.282400, t_{0.95}(10) = 1.812461, Cauchy: 3.077684.
    assert student_t_ppf(0.9, 3) == pytest.approx(1.6377443537, abs=1e-8)
    assert student_t_ppf(0.9, 999) == pytest.approx(1.2823995700, abs=1e-8)
    assert student_t_ppf(0.95, 10) == pytest.approx(1.8124611228, abs=1e-8)
    assert student_t_ppf(0.9, 1) == pytest.approx(3.0776835372, abs=1e-8)
    assert student_t_ppf(0.1, 3) == pytest.approx(-1.6377443537, abs=1e-8)


def test_ucb_cost_matches_a_hand_computed_value() -> None:
    # n = 4 costs, m = 1000, delta = 0.1:
    # kappa = 1.6377443537/2 + 1.2823995700/sqrt(1000) = 0.8188721768 + 0.0405530351.
    kappa = ucb_factor(4, 1000, 0.1)
    assert kappa == pytest.approx(0.8594252120, abs=1e-8)
    costs = [1.0, 3.0, 0.0, 4.0]  # mu = 2, sample sigma = sqrt(10/3) = 1.825742
    mu, sigma = mean_std(costs)
    assert (mu, sigma) == pytest.approx((2.0, 1.8257418584))
    assert mu + kappa * sigma == pytest.approx(3.5690885836, abs=1e-8)  # the bound J_C
    assert ucb_factor(1, 1000, 0.1) == 0.0  # no spread to bound with one sample


def test_surrogate_cost_has_the_gradient_of_the_bound() -> None:
    c = torch.tensor([1.0, 3.0, 0.0, 4.0], requires_grad=True)
    mu, sigma, kappa = 2.0, math.sqrt(2.5), 0.7  # the population sigma of c
    surrogate_costs(c, mu, sigma, kappa).mean().backward()
    c2 = c.detach().clone().requires_grad_(True)
    (c2.mean() + kappa * c2.std(unbiased=False)).backward()
    assert c.grad.tolist() == pytest.approx(c2.grad.tolist(), abs=1e-6)
    same = torch.tensor([1.0, 2.0])
    assert surrogate_costs(same, 1.5, 0.5, 0.0) is same  # kappa = 0: c~ = C


def test_returns_and_rloo_advantages_by_hand() -> None:
    r, kl, c = torch.tensor([1.0, 60.0]), torch.tensor([2.0, 0.0]), torch.tensor([1.0, 0.5])
    # g = clip(R - 0.1 KL, +-50) - 2 C = [0.8 - 2, 50 - 1]
    assert shaped_returns(r, kl, c, 2.0, 0.1, 50.0).tolist() == pytest.approx([-1.2, 49.0])
    g = torch.tensor([1.0, 2.0, 6.0, 4.0, 4.0, 4.0])  # two prompts, k = 3
    # A_i = g_i - mean of the other two: [1 - 4, 2 - 3.5, 6 - 1.5, 0, 0, 0]
    assert rloo_advantages(g, 3).tolist() == pytest.approx([-3.0, -1.5, 4.5, 0.0, 0.0, 0.0])


def test_lambda_rises_over_the_limit_and_falls_under_it() -> None:
    # ln lambda' = ln 1 + 0.01 * 1 * (3 - 1) = 0.02.
    assert dual_update(1.0, 3.0, 1.0, 0.01, 1e6) == pytest.approx(math.exp(0.02))
    assert dual_update(2.0, 0.0, 1.0, 0.01, 1e6) == pytest.approx(2.0 * math.exp(-0.02))
    assert dual_update(5.0, 1.0, 1.0, 0.01, 1e6) == pytest.approx(5.0)  # at the limit: stays
    assert dual_update(1e6, 1e9, 0.0, 0.01, 1e6) == 1e6  # capped
    lam, path = 1.0, []
    for cost in [3.0] * 5 + [0.0] * 5:
        lam = dual_update(lam, cost, 1.0, 0.05, 1e6)
        path.append(lam)
    assert all(b > a for a, b in itertools.pairwise(path[:5]))
    assert all(b < a for a, b in itertools.pairwise(path[4:]))


@pytest.mark.parametrize(("lam", "favoured"), [(0.25, 0), (1.0, 1)])
def test_gradient_direction_flips_with_the_sign_of_r_minus_lambda_c(
    lam: float, favoured: int
) -> None:
    """One token, two choices: token 0 has reward 1 and cost 2, token 1 has neither, so
    R - lambda C favours token 0 for lambda < 1/2 and token 1 above."""
    logits = torch.zeros(2, requires_grad=True)
    tokens = torch.tensor([0, 1])  # the prompt's k = 2 samples
    logps = logits.log_softmax(dim=0)[tokens]
    returns = shaped_returns(
        torch.tensor([1.0, 0.0]), torch.zeros(2), torch.tensor([2.0, 0.0]), lam, 0.1, 50.0
    )
    rloo_loss(logps, returns, 2).backward()
    step = -logits.grad  # gradient descent's direction
    assert step[favoured] > 0 > step[1 - favoured]


# --- runs on a tiny model -------------------------------------------------------------------------

PROMPTS = [[{"role": "user", "content": f"Describe the harbour of town {i}."}] for i in range(4)]


def run(model: Path, tmp_path: Path, threshold: float, name: str) -> tuple[dict, list[dict]]:
    ledger = Ledger(f"sqlite:///{tmp_path / 'arena.db'}")
    rows = [{"prompt": p, "chosen": "x", "rejected": "y", "match_id": None} for p in PROMPTS]
    learned = learn(
        ledger,
        get_registry(),
        learner="safe-rlhf",
        options={
            "reward_judge": "gold",
            "reward_options": {"task": "length", "unit": "chars"},
            "cost_judge": "length",  # cost = words: always above 0, always below 100
            "threshold": threshold,
            "k": 2,
            "prompts_per_step": 2,
            "steps": 3,
            "max_new_tokens": 4,
            "lambda_lr": 0.05,
            "torch_threads": 2,
        },
        data=PairData(rows, {"source": "test"}),
        base=Base(model=str(model)),
        name=name,
        out_dir=tmp_path / name,
    )
    with ledger.session() as s:
        row = s.get(LearnerRun, learned.run_id)
    ledger.close()
    assert row is not None and row.status == "done"
    return learned.summary, row.metrics["steps"]


def test_safe_rlhf_runs_and_lambda_follows_the_cost(tiny_llama_dir: Path, tmp_path: Path) -> None:
    summary, steps = run(tiny_llama_dir, tmp_path, 0.0, "over")
    assert len(steps) == 3
    for key in ("reward", "cost", "cost_bound", "lambda", "kl", "loss"):
        assert all(key in s for s in steps), key
    assert all(s["cost"] > 0 for s in steps)
    lams = [s["lambda"] for s in steps] + [summary["metrics"]["lambda"]]
    assert all(b > a for a, b in itertools.pairwise(lams))  # over the limit: rises
    # J_C covers the last two steps (2 prompts x 2 samples each), not a fixed 256 costs.
    assert [s["cost_samples"] for s in steps] == [4, 8, 8]
    assert (tmp_path / "over" / "adapter_config.json").exists()
    _, steps = run(tiny_llama_dir, tmp_path, 100.0, "under")
    lams = [s["lambda"] for s in steps]
    assert all(b < a for a, b in itertools.pairwise(lams))  # under it: falls

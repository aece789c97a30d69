"""Pure statistics helpers for the leaderboard and reports.

Everything here is a plain function of its inputs: no I/O, no global state, no randomness beyond an
explicit seed. numpy is imported inside the functions that need it so that importing this module
(which the CLI does on every start-up) stays cheap.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "BTRating",
    "bradley_terry",
    "brier_score",
    "expected_calibration_error",
    "wilson_interval",
]

# Pseudo-wins granted each way between every pair of players. It keeps the likelihood strictly
# concave, so undefeated or winless players (and disconnected groups) still get finite ratings,
# while being far too small to move ratings that the data actually determine.
_PRIOR_WINS = 0.01

# Upper bound on batch * players**2 floats held at once while fitting bootstrap replicates.
_MAX_BATCH_CELLS = 4_000_000


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion.

    Preferred over the normal (Wald) interval because it stays inside [0, 1] and behaves sensibly
    for small n and for proportions of exactly 0 or 1, which are common for short tournaments.
    Returns the uninformative (0.0, 1.0) when there are no trials.
    """
    if n < 0:
        raise ValueError(f"n must be non-negative, got {n}")
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be in [0, n={n}], got {successes}")
    if z < 0:
        raise ValueError(f"z must be non-negative, got {z}")
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    z2 = z * z
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1.0 - p) / n + z2 / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


@dataclass(frozen=True, slots=True)
class BTRating:
    """One player's Bradley-Terry rating on the Elo-like scale, with its bootstrap CI."""

    player: str
    rating: float
    lower: float
    upper: float
    rank: int
    matches: int


def _log_likelihood(theta: np.ndarray, wins: np.ndarray) -> np.ndarray:
    """Bradley-Terry log-likelihood per batch row: sum_ij W_ij * log sigmoid(theta_i - theta_j)."""
    import numpy as np

    diff = theta[:, :, None] - theta[:, None, :]
    return -(wins * np.logaddexp(0.0, -diff)).sum(axis=(1, 2))


def _fit_log_strengths(wins: np.ndarray, max_iter: int, tol: float) -> np.ndarray:
    """Maximum-likelihood log-strengths for a batch of win matrices, shape (batch, n, n).

    Damped Newton with backtracking: the (prior-regularised) likelihood is strictly concave up to
    the additive gauge, so this converges in a handful of iterations even for lopsided records,
    where Hunter's MM algorithm needs thousands. Returns log-strengths with zero mean per row.
    """
    import numpy as np

    batch, n, _ = wins.shape
    games = wins + wins.transpose(0, 2, 1)
    total_wins = wins.sum(axis=2)
    gauge = np.ones((n, n)) / n
    theta = np.zeros((batch, n))
    loglik = _log_likelihood(theta, wins)
    active = np.ones(batch, dtype=bool)
    for _ in range(max_iter):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        th, w, g_ = theta[idx], wins[idx], games[idx]
        prob = 1.0 / (1.0 + np.exp(-(th[:, :, None] - th[:, None, :])))
        grad = total_wins[idx] - (g_ * prob).sum(axis=2)
        weight = g_ * prob * (1.0 - prob)
        # Negative Hessian is a graph Laplacian with null space 1; adding 11^T/n pins the gauge
        # and, since the gradient sums to zero, yields the zero-mean Newton step.
        laplacian = -weight
        diag = np.arange(n)
        laplacian[:, diag, diag] = weight.sum(axis=2)
        step = np.linalg.solve(laplacian + gauge, grad[:, :, None])[:, :, 0]
        base_ll = loglik[idx]
        scale = np.ones(idx.size)
        new_th = th + step
        new_ll = _log_likelihood(new_th, w)
        for _ in range(50):
            bad = new_ll < base_ll - 1e-12 * np.abs(base_ll)
            if not bad.any():
                break
            scale[bad] *= 0.5
            new_th[bad] = th[bad] + scale[bad, None] * step[bad]
            new_ll[bad] = _log_likelihood(new_th[bad], w[bad])
        theta[idx] = new_th - new_th.mean(axis=1, keepdims=True)
        loglik[idx] = new_ll
        active[idx] = np.abs(scale[:, None] * step).max(axis=1) > tol
    return theta


def _fit_batched(wins: np.ndarray, max_iter: int, tol: float) -> np.ndarray:
    """Fit win matrices in chunks so memory stays bounded for many players or replicates."""
    import numpy as np

    n = wins.shape[1]
    chunk = max(1, _MAX_BATCH_CELLS // max(1, n * n))
    parts = [
        _fit_log_strengths(wins[i : i + chunk], max_iter, tol)
        for i in range(0, wins.shape[0], chunk)
    ]
    return np.concatenate(parts, axis=0)


def bradley_terry(
    outcomes: Sequence[tuple[str, str, float]],
    *,
    bootstrap: int = 100,
    seed: int = 0,
    scale: float = 400.0,
    base: float = 1000.0,
    max_iter: int = 1000,
    tol: float = 1e-9,
) -> list[BTRating]:
    """Order-free Bradley-Terry ratings with bootstrap confidence intervals.

    Unlike online Elo, the result does not depend on the order in which matches were played, which
    is what a leaderboard over a finished (or growing) ledger needs; this mirrors Chatbot Arena's
    maximum-likelihood BT. Each outcome is (player_a, player_b, score_a) with score_a = 1.0 win,
    0.0 loss, 0.5 draw (any value in [0, 1] counts as fractional win credit). Ratings are
    ``base + scale * log10(strength)`` with mean log-strength 0. The CI is the 2.5/97.5 percentile
    of ``bootstrap`` refits on outcomes resampled with replacement; rank is 1 + the number of
    players whose lower bound exceeds this player's upper bound, so statistically tied players
    share a rank. Sorted by rating descending (name breaks exact ties); deterministic per seed.
    """
    import numpy as np

    if bootstrap < 0:
        raise ValueError(f"bootstrap must be non-negative, got {bootstrap}")
    if max_iter < 1:
        raise ValueError(f"max_iter must be at least 1, got {max_iter}")
    if not outcomes:
        return []

    players = sorted({p for a, b, _ in outcomes for p in (a, b)})
    index = {p: i for i, p in enumerate(players)}
    n = len(players)
    rows = np.empty((len(outcomes), 3), dtype=float)
    for k, (a, b, score) in enumerate(outcomes):
        if a == b:
            raise ValueError(f"outcome {k}: a player cannot play itself ({a!r})")
        s = float(score)
        if not 0.0 <= s <= 1.0:
            raise ValueError(f"outcome {k}: score_a must be in [0, 1], got {score!r}")
        rows[k] = (index[a], index[b], s)

    # Dedupe to distinct (a, b, score) rows with counts; np.unique sorts, which also makes the
    # bootstrap draw independent of the input order.
    unique, counts = np.unique(rows, axis=0, return_counts=True)
    ia = unique[:, 0].astype(np.intp)
    ib = unique[:, 1].astype(np.intp)
    score = unique[:, 2]
    cell_ab = ia * n + ib
    cell_ba = ib * n + ia

    prior = np.full((n, n), _PRIOR_WINS)
    np.fill_diagonal(prior, 0.0)

    def win_matrices(weights: np.ndarray) -> np.ndarray:
        """Turn per-row counts, shape (batch, rows), into win matrices (batch, n, n)."""
        batch = weights.shape[0]
        offset = (np.arange(batch) * n * n)[:, None]
        flat = np.bincount(
            np.concatenate([(cell_ab + offset).ravel(), (cell_ba + offset).ravel()]),
            weights=np.concatenate([(weights * score).ravel(), (weights * (1.0 - score)).ravel()]),
            minlength=batch * n * n,
        )
        return flat.reshape(batch, n, n) + prior

    to_rating = scale / math.log(10.0)
    counts_f = counts.astype(float)
    point = base + to_rating * _fit_batched(win_matrices(counts_f[None, :]), max_iter, tol)[0]

    if bootstrap > 0:
        rng = np.random.default_rng(seed)
        resampled = rng.multinomial(len(outcomes), counts_f / counts_f.sum(), size=bootstrap)
        boot = base + to_rating * _fit_batched(win_matrices(resampled.astype(float)), max_iter, tol)
        lower, upper = np.percentile(boot, [2.5, 97.5], axis=0)
    else:
        lower, upper = point.copy(), point.copy()

    matches = np.bincount(rows[:, :2].astype(np.intp).ravel(), minlength=n)
    ranks = 1 + (lower[None, :] > upper[:, None]).sum(axis=1)
    ratings = [
        BTRating(
            player=p,
            rating=float(point[i]),
            lower=float(lower[i]),
            upper=float(upper[i]),
            rank=int(ranks[i]),
            matches=int(matches[i]),
        )
        for i, p in enumerate(players)
    ]
    ratings.sort(key=lambda r: (-r.rating, r.player))
    return ratings


def _check_forecasts(probs: Sequence[float], outcomes: Sequence[int]) -> None:
    """Validate paired forecasts so a silent zip truncation can never skew a calibration report."""
    if len(probs) != len(outcomes):
        raise ValueError(
            f"probs and outcomes must have the same length, got {len(probs)} and {len(outcomes)}"
        )
    if not probs:
        raise ValueError("probs and outcomes must not be empty")
    for k, p in enumerate(probs):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"probs[{k}] must be in [0, 1], got {p!r}")
    for k, o in enumerate(outcomes):
        if o not in (0, 1):
            raise ValueError(f"outcomes[{k}] must be 0 or 1, got {o!r}")


def brier_score(probs: Sequence[float], outcomes: Sequence[int]) -> float:
    """Mean squared error between forecast probabilities and 0/1 outcomes (lower is better).

    A proper scoring rule, so it rewards judges and predictors for honest probabilities rather
    than just for picking the right side.
    """
    _check_forecasts(probs, outcomes)
    return sum((p - o) ** 2 for p, o in zip(probs, outcomes, strict=True)) / len(probs)


def expected_calibration_error(
    probs: Sequence[float], outcomes: Sequence[int], bins: int = 10
) -> float:
    """Expected calibration error over equal-width probability bins, weighted by bin size.

    Separates "how confident" from "how often right": a forecaster saying 0.8 should be right
    80% of the time. Each bin contributes |mean prob - event frequency| times its share of the
    forecasts; a probability of exactly 1.0 falls in the last bin.
    """
    _check_forecasts(probs, outcomes)
    if bins < 1:
        raise ValueError(f"bins must be at least 1, got {bins}")
    sum_p = [0.0] * bins
    sum_o = [0.0] * bins
    size = [0] * bins
    for p, o in zip(probs, outcomes, strict=True):
        b = min(int(p * bins), bins - 1)
        sum_p[b] += p
        sum_o[b] += o
        size[b] += 1
    total = len(probs)
    return sum(abs(sp - so) / total for sp, so, c in zip(sum_p, sum_o, size, strict=True) if c)

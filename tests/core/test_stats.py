"""Tests for arena_core.reports.stats: interval, rating and calibration helpers."""

from __future__ import annotations

import math
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from arena_core.reports.stats import (
    BTRating,
    bradley_terry,
    brier_score,
    expected_calibration_error,
    wilson_interval,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


def synthetic_outcomes(
    strengths: dict[str, float], n: int, seed: int = 0, draw_band: float = 0.0
) -> list[tuple[str, str, float]]:
    """Outcomes drawn from a known Bradley-Terry model, P(a beats b) = s_a / (s_a + s_b)."""
    rng = random.Random(seed)
    names = sorted(strengths)
    out: list[tuple[str, str, float]] = []
    for _ in range(n):
        a, b = rng.sample(names, 2)
        p_a = strengths[a] / (strengths[a] + strengths[b])
        r = rng.random()
        if abs(r - p_a) < draw_band:
            out.append((a, b, 0.5))
        else:
            out.append((a, b, 1.0 if r < p_a else 0.0))
    return out


def by_player(ratings: list[BTRating]) -> dict[str, BTRating]:
    return {r.player: r for r in ratings}


# --- Wilson interval ---------------------------------------------------------------------------


def test_wilson_matches_hand_computed_values():
    lo, hi = wilson_interval(8, 10)
    assert lo == pytest.approx(0.4902, abs=5e-4)
    assert hi == pytest.approx(0.9433, abs=5e-4)


def test_wilson_half_is_symmetric_around_half():
    lo, hi = wilson_interval(50, 100)
    # centre 0.5, half-width 1.96 * sqrt(0.0025 + 0.000096) / 1.038416
    assert lo == pytest.approx(0.4038, abs=5e-4)
    assert hi == pytest.approx(0.5962, abs=5e-4)
    assert lo + hi == pytest.approx(1.0)


def test_wilson_extremes_stay_in_unit_interval():
    lo, hi = wilson_interval(0, 10)
    assert lo == 0.0
    assert hi == pytest.approx(0.2775, abs=5e-4)
    lo, hi = wilson_interval(10, 10)
    assert lo == pytest.approx(0.7225, abs=5e-4)
    assert hi == 1.0


def test_wilson_no_trials_is_uninformative():
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_wilson_narrows_with_more_data_and_wider_z():
    w10 = wilson_interval(8, 10)
    w1000 = wilson_interval(800, 1000)
    assert w1000[1] - w1000[0] < (w10[1] - w10[0]) / 5
    w99 = wilson_interval(8, 10, z=2.576)
    assert w99[0] < w10[0] and w99[1] > w10[1]


@pytest.mark.parametrize(("successes", "n"), [(11, 10), (-1, 10), (0, -1)])
def test_wilson_rejects_invalid_counts(successes, n):
    with pytest.raises(ValueError):
        wilson_interval(successes, n)


# --- Bradley-Terry -----------------------------------------------------------------------------

STRENGTHS = {"strong": 9.0, "middle": 3.0, "weak": 1.0}


@pytest.fixture(scope="module")
def big_fit() -> list[BTRating]:
    return bradley_terry(synthetic_outcomes(STRENGTHS, 9000), bootstrap=100, seed=0)


def test_bt_empty_input():
    assert bradley_terry([]) == []


def test_bt_recovers_order_and_sorted_descending(big_fit):
    assert [r.player for r in big_fit] == ["strong", "middle", "weak"]
    assert [r.rank for r in big_fit] == [1, 2, 3]
    ratings = [r.rating for r in big_fit]
    assert ratings == sorted(ratings, reverse=True)


def test_bt_rating_gaps_match_strength_ratios(big_fit):
    r = by_player(big_fit)
    for hi, lo in [("strong", "middle"), ("middle", "weak"), ("strong", "weak")]:
        expected = 400.0 * math.log10(STRENGTHS[hi] / STRENGTHS[lo])
        assert r[hi].rating - r[lo].rating == pytest.approx(expected, rel=0.15)


def test_bt_mean_log_strength_is_zero(big_fit):
    assert sum(r.rating for r in big_fit) / len(big_fit) == pytest.approx(1000.0, abs=1e-6)


def test_bt_scale_and_base_are_affine():
    outcomes = synthetic_outcomes(STRENGTHS, 600)
    default = by_player(bradley_terry(outcomes, bootstrap=0))
    other = by_player(bradley_terry(outcomes, bootstrap=0, scale=173.7, base=1500.0))
    for name in STRENGTHS:
        expected = 1500.0 + (default[name].rating - 1000.0) * 173.7 / 400.0
        assert other[name].rating == pytest.approx(expected, abs=1e-6)


def test_bt_counts_matches(big_fit):
    assert sum(r.matches for r in big_fit) == 2 * 9000
    assert all(r.matches > 2000 for r in big_fit)


def test_bt_ci_contains_point_estimate(big_fit):
    for r in big_fit:
        assert r.lower < r.rating < r.upper


def test_bt_ci_shrinks_with_more_data():
    small = by_player(bradley_terry(synthetic_outcomes(STRENGTHS, 300, seed=1), bootstrap=100))
    large = by_player(bradley_terry(synthetic_outcomes(STRENGTHS, 6000, seed=1), bootstrap=100))
    for name in STRENGTHS:
        small_width = small[name].upper - small[name].lower
        large_width = large[name].upper - large[name].lower
        # Width scales like 1/sqrt(n): 20x the data should give roughly 4.5x narrower intervals.
        assert large_width < small_width / 2.5


def test_bt_overlapping_cis_share_a_rank():
    # Two nearly equal players with few games cannot be separated; the clearly weaker one can.
    outcomes = synthetic_outcomes({"a": 1.05, "b": 1.0, "z": 0.05}, 400, seed=3)
    r = by_player(bradley_terry(outcomes, bootstrap=200))
    assert r["a"].rank == r["b"].rank == 1
    assert r["z"].rank == 3


def test_bt_undefeated_and_winless_players_get_finite_ratings():
    outcomes = [("champ", "b", 1.0)] * 20 + [("c", "champ", 0.0)] * 5
    outcomes += [("b", "c", 1.0), ("c", "b", 1.0), ("b", "c", 0.5)]
    outcomes += [("b", "loser", 1.0)] * 3
    ratings = bradley_terry(outcomes, bootstrap=50)
    r = by_player(ratings)
    for rating in ratings:
        assert all(math.isfinite(x) for x in (rating.rating, rating.lower, rating.upper))
    assert ratings[0].player == "champ"
    assert ratings[-1].player == "loser"
    assert r["champ"].rating > r["b"].rating + 400  # dominant, but not infinitely so


def test_bt_is_deterministic_for_a_seed_and_seed_matters():
    outcomes = synthetic_outcomes(STRENGTHS, 500, seed=7)
    first = bradley_terry(outcomes, bootstrap=50, seed=42)
    assert bradley_terry(outcomes, bootstrap=50, seed=42) == first
    other = bradley_terry(outcomes, bootstrap=50, seed=43)
    assert [r.rating for r in other] == [r.rating for r in first]  # point fit has no randomness
    assert [(r.lower, r.upper) for r in other] != [(r.lower, r.upper) for r in first]


def test_bt_is_order_free():
    outcomes = synthetic_outcomes(STRENGTHS, 500, seed=5)
    shuffled = list(outcomes)
    random.Random(99).shuffle(shuffled)
    assert bradley_terry(shuffled, bootstrap=30) == bradley_terry(outcomes, bootstrap=30)


def test_bt_orientation_does_not_matter():
    outcomes = synthetic_outcomes(STRENGTHS, 500, seed=6)
    flipped = [(b, a, 1.0 - s) for a, b, s in outcomes]
    original = by_player(bradley_terry(outcomes, bootstrap=0))
    mirrored = by_player(bradley_terry(flipped, bootstrap=0))
    for name in STRENGTHS:
        assert mirrored[name].rating == pytest.approx(original[name].rating, abs=1e-6)


def test_bt_draw_only_pair_is_level():
    ratings = bradley_terry([("a", "b", 0.5)] * 10, bootstrap=20)
    assert len(ratings) == 2
    assert ratings[0].rating == pytest.approx(ratings[1].rating, abs=1e-9)
    assert ratings[0].rating == pytest.approx(1000.0, abs=1e-9)
    assert ratings[0].rank == ratings[1].rank == 1


def test_bt_draws_count_as_half_wins():
    # One win and two draws for a is the same record as two wins and one loss.
    with_draws = by_player(
        bradley_terry([("a", "b", 1.0), ("a", "b", 0.5), ("b", "a", 0.5)], bootstrap=0)
    )
    decisive = by_player(
        bradley_terry([("a", "b", 1.0), ("b", "a", 0.0), ("b", "a", 1.0)], bootstrap=0)
    )
    gap = with_draws["a"].rating - with_draws["b"].rating
    assert gap == pytest.approx(decisive["a"].rating - decisive["b"].rating, abs=1e-6)
    # Closed form for two players: the logit of a's share of wins, incl. 0.01 prior pseudo-wins.
    assert gap == pytest.approx(400.0 * math.log10(2.01 / 1.01), rel=1e-6)


@pytest.mark.parametrize(
    "bad",
    [[("a", "a", 1.0)], [("a", "b", 1.5)], [("a", "b", -0.1)]],
)
def test_bt_rejects_invalid_outcomes(bad):
    with pytest.raises(ValueError):
        bradley_terry(bad)


def test_bt_rating_is_frozen(big_fit):
    with pytest.raises(AttributeError):
        big_fit[0].rating = 0.0  # type: ignore[misc]


# --- Brier score and calibration error --------------------------------------------------------


def test_brier_hand_computed():
    # (0.81 + 0.01 + 0.25 + 0.04) / 4
    assert brier_score([0.1, 0.9, 0.5, 0.2], [1, 1, 0, 0]) == pytest.approx(0.2775)
    assert brier_score([1.0, 0.0], [1, 0]) == 0.0
    assert brier_score([0.0], [1]) == 1.0


def test_ece_hand_computed():
    probs = [0.1, 0.15, 0.8, 0.85, 0.9]
    outcomes = [0, 1, 1, 1, 0]
    # bin [0.1, 0.2): mean p 0.125, freq 0.5 -> |.| 0.375, weight 2/5
    # bin [0.8, 0.9): mean p 0.825, freq 1.0 -> 0.175, weight 2/5
    # bin [0.9, 1.0]: mean p 0.9, freq 0.0 -> 0.9, weight 1/5
    expected = 0.4 * 0.375 + 0.4 * 0.175 + 0.2 * 0.9
    assert expected_calibration_error(probs, outcomes) == pytest.approx(expected)


def test_ece_bins_and_edges():
    # p = 1.0 belongs to the last bin; with one bin ECE is |mean p - base rate|.
    assert expected_calibration_error([1.0, 1.0], [1, 1]) == 0.0
    assert expected_calibration_error([0.2, 0.6], [0, 1], bins=1) == pytest.approx(0.1)
    assert expected_calibration_error([0.2, 0.6], [0, 1], bins=2) == pytest.approx(
        0.5 * 0.2 + 0.5 * 0.4
    )


def test_ece_perfectly_calibrated_is_zero():
    probs = [0.25] * 4 + [0.75] * 4
    outcomes = [1, 0, 0, 0, 1, 1, 1, 0]
    assert expected_calibration_error(probs, outcomes) == pytest.approx(0.0)


@pytest.mark.parametrize("fn", [brier_score, expected_calibration_error])
def test_forecast_metrics_reject_bad_input(fn):
    with pytest.raises(ValueError, match="same length"):
        fn([0.5, 0.5], [1])
    with pytest.raises(ValueError, match="empty"):
        fn([], [])
    with pytest.raises(ValueError):
        fn([1.5], [1])
    with pytest.raises(ValueError):
        fn([0.5], [2])


def test_ece_rejects_zero_bins():
    with pytest.raises(ValueError):
        expected_calibration_error([0.5], [1], bins=0)


# --- import cost -------------------------------------------------------------------------------


def test_import_does_not_pull_in_numpy():
    code = "import sys, arena_core.reports.stats; sys.exit(1 if 'numpy' in sys.modules else 0)"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr or "importing arena_core.reports.stats imported numpy"

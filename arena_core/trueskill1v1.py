"""One-on-one TrueSkill in closed form: the hot path of live ratings.

The `trueskill` package stays the reference and the implementation for anything but two players:
its `rate_1vs1` runs the general factor-graph schedule (message objects, an iteration loop),
about 110 µs per update, more than the rest of a fake debate. For two players the graph is a chain
and one pass is exact, so the update is a few lines of arithmetic (Herbrich et al. 2007, eqs. for
the two-player case). It uses the environment's own `cdf`/`pdf`/`ppf` and its `v_*`/`w_*`
functions, so the numbers equal the package's; `tests/core/test_trueskill1v1.py` checks that to
1e-9 (relative) over random ratings, draws and draw probabilities. Where the package would raise
for extreme inputs (a truncation it cannot compute), this falls back to the package, which then
decides.
"""

from __future__ import annotations

import math

import trueskill


def rate_1vs1(
    env: trueskill.TrueSkill,
    winner: tuple[float, float],
    loser: tuple[float, float],
    *,
    drawn: bool = False,
) -> tuple[tuple[float, float], tuple[float, float]]:
    """New (mu, sigma) of (winner, loser); with `drawn`, the order does not matter."""
    if drawn and env.draw_probability <= 0:
        # A draw the environment says cannot happen: the package's answer rests on a draw margin of
        # ppf(0.5) ~ 0 and cancellation, so only its own arithmetic reproduces it.
        return _package(env, winner, loser, drawn)
    (mu_w, sigma_w), (mu_l, sigma_l) = winner, loser
    var_w = sigma_w * sigma_w + env.tau * env.tau  # dynamics: skill may drift between matches
    var_l = sigma_l * sigma_l + env.tau * env.tau
    c2 = var_w + var_l + 2 * env.beta * env.beta
    c = math.sqrt(c2)
    margin = _draw_margin(env) / c
    t = (mu_w - mu_l) / c
    try:
        if drawn:
            v, w = env.v_draw(t, margin), env.w_draw(t, margin)
        else:
            v, w = env.v_win(t, margin), env.w_win(t, margin)
    except FloatingPointError:
        return _package(env, winner, loser, drawn)
    new_w = (mu_w + var_w / c * v, math.sqrt(var_w * (1 - var_w / c2 * w)))
    new_l = (mu_l - var_l / c * v, math.sqrt(var_l * (1 - var_l / c2 * w)))
    return new_w, new_l


_MARGINS: dict[tuple[float, float, object], float] = {}


def _draw_margin(env: trueskill.TrueSkill) -> float:
    """The package's draw margin for two players; cached, as its ppf is an iterative inverse."""
    key = (env.draw_probability, env.beta, getattr(env, "backend", None))
    if key not in _MARGINS:
        _MARGINS[key] = trueskill.calc_draw_margin(env.draw_probability, 2, env)
    return _MARGINS[key]


def _package(
    env: trueskill.TrueSkill,
    winner: tuple[float, float],
    loser: tuple[float, float],
    drawn: bool,
) -> tuple[tuple[float, float], tuple[float, float]]:
    a, b = env.create_rating(*winner), env.create_rating(*loser)
    a, b = trueskill.rate_1vs1(a, b, drawn=drawn, env=env)
    return (a.mu, a.sigma), (b.mu, b.sigma)

"""The closed-form one-on-one update equals the `trueskill` package to 1e-9."""

from __future__ import annotations

import random

import pytest
import trueskill

from arena_core.trueskill1v1 import rate_1vs1


def package(env, a, b, drawn):
    ra, rb = trueskill.rate_1vs1(env.create_rating(*a), env.create_rating(*b), drawn=drawn, env=env)
    return (ra.mu, ra.sigma), (rb.mu, rb.sigma)


def close(x: tuple, y: tuple) -> bool:
    return all(abs(p - q) <= 1e-9 * max(1.0, abs(q)) for p, q in zip(x, y, strict=True))


@pytest.mark.parametrize("seed", range(4))
def test_equals_the_package_over_random_ratings_draws_and_draw_probabilities(seed: int) -> None:
    rng = random.Random(seed)
    checked = 0
    for _ in range(500):
        env = trueskill.TrueSkill(
            mu=25.0,
            sigma=rng.uniform(1, 12),
            beta=rng.uniform(0.5, 8),
            tau=rng.choice([0.0, rng.uniform(0, 1)]),
            draw_probability=rng.choice([0.0, rng.uniform(0.01, 0.6)]),
        )
        a = (rng.uniform(-20, 70), rng.uniform(0.3, 12))
        b = (rng.uniform(-20, 70), rng.uniform(0.3, 12))
        drawn = rng.random() < 0.3
        try:
            want = package(env, a, b, drawn)
        except FloatingPointError:
            continue  # the package refuses; the closed form falls back to it, and so refuses too
        got = rate_1vs1(env, a, b, drawn=drawn)
        assert close(got[0], want[0]) and close(got[1], want[1]), (env, a, b, drawn, got, want)
        checked += 1
    assert checked > 450


def test_rating_book_uses_it_and_keeps_counts() -> None:
    from arena_core.ratings import RatingBook

    book = RatingBook.create("p", {"draw_probability": 0.2})
    book.update("x", "y", "x")
    book.update("x", "y", None)
    env = book.env
    (xa, ya) = package(env, (env.mu, env.sigma), (env.mu, env.sigma), False)
    xb, yb = package(env, xa, ya, True)
    x, y = book.players["x"], book.players["y"]
    assert close((x.mu, x.sigma), xb) and close((y.mu, y.sigma), yb)
    assert (x.wins, x.draws, y.losses, y.draws, x.matches) == (1, 1, 1, 1, 2)

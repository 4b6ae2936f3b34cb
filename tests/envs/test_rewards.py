"""compute_rewards against hand-computed numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from racing_rl.envs.rewards import RewardConfig, compute_rewards

#: The seed game's coefficients: 1000 per lap of progress, ×20 backwards, a speed bonus of
#: 0.5·(e^(2·v/v_max) − 1), −10 on a crash (the numbers below are worked out from these).
DEFAULT = RewardConfig()


def _rewards(delta: list[float], speed: list[float], terminated: list[bool], config=DEFAULT):
    return compute_rewards(
        np.array(delta, dtype=np.float64),
        np.array(speed, dtype=np.float64),
        np.array(terminated, dtype=bool),
        config,
    )


def test_forward_progress_and_speed_bonus() -> None:
    # 0.001 lap → 1.0; v = v_max / 2 → (e^1 − 1) / 2 = 0.8591409142295225.
    total, terms = _rewards([0.001], [0.5], [False])
    assert terms["progress"][0] == pytest.approx(1.0)
    assert terms["speed"][0] == pytest.approx(0.8591409142295225, rel=1e-12)
    assert total[0] == pytest.approx(1.8591409142295225, rel=1e-12)


def test_backward_progress_is_twenty_times_heavier() -> None:
    # −0.001 lap → −0.001 · 1000 · 20 = −20; reversing (negative speed) earns no bonus.
    total, terms = _rewards([-0.001], [-0.1], [False])
    assert terms["progress"][0] == pytest.approx(-20.0)
    assert terms["speed"][0] == 0.0
    assert total[0] == pytest.approx(-20.0)


def test_speed_bonus_is_clipped_at_max_speed_and_zero_at_rest() -> None:
    total, terms = _rewards([0.0, 0.0, 0.0], [0.0, 1.0, 1.7], [False] * 3)
    at_max = (math.e**2 - 1.0) * 0.5  # 3.194528049465325
    np.testing.assert_allclose(terms["speed"], [0.0, at_max, at_max], rtol=1e-12)
    np.testing.assert_allclose(total, [0.0, 3.194528049465325, 3.194528049465325], rtol=1e-12)
    np.testing.assert_array_equal(terms["progress"], 0.0)


def test_termination_replaces_the_reward_with_the_crash_penalty() -> None:
    total, terms = _rewards([0.01, -0.01, 0.01], [0.9, 0.2, 0.9], [True, True, False])
    assert total[0] == -10.0 and total[1] == -10.0
    # The terms sum to the reward: the crash alone (they said what the step would have
    # earned, which info["reward_terms"] readers summed to the wrong reward).
    np.testing.assert_array_equal(terms["crash"], [-10.0, -10.0, 0.0])
    np.testing.assert_array_equal(terms["progress"][:2], 0.0)
    np.testing.assert_array_equal(terms["speed"][:2], 0.0)
    assert total[2] == pytest.approx(10.0 + (math.exp(1.8) - 1.0) * 0.5)


def test_vectorised_over_cars_and_terms_sum_to_total() -> None:
    rng = np.random.default_rng(0)
    delta = rng.uniform(-0.002, 0.004, 50)
    speed = rng.uniform(-0.3, 1.3, 50)
    crashed = rng.random(50) < 0.2
    total, terms = _rewards(delta.tolist(), speed.tolist(), crashed.tolist())
    assert total.shape == (50,)
    np.testing.assert_array_equal(sum(terms.values()), total)
    np.testing.assert_array_equal(total[crashed], -10.0)
    for i in np.flatnonzero(~crashed):
        scale = 20_000.0 if delta[i] < 0 else 1000.0
        bonus = (math.exp(2.0 * min(max(speed[i], 0.0), 1.0)) - 1.0) * 0.5
        assert total[i] == pytest.approx(delta[i] * scale + bonus, rel=1e-12, abs=1e-12)


def test_custom_coefficients() -> None:
    config = RewardConfig(
        progress=200.0, backward_multiplier=3.0, speed=2.0, speed_exponent=1.0, crash=-50.0
    )
    total, terms = _rewards([0.01, -0.01, 0.0], [0.25, 0.25, 0.0], [False, False, True], config)
    bonus = (math.exp(0.25) - 1.0) * 2.0  # 0.5680508333754...
    np.testing.assert_allclose(terms["progress"], [2.0, -6.0, 0.0], rtol=1e-12)
    np.testing.assert_allclose(total, [2.0 + bonus, -6.0 + bonus, -50.0], rtol=1e-12)


def test_zero_progress_is_not_scaled_as_backwards() -> None:
    _, terms = _rewards([0.0, -0.0], [0.0, 0.0], [False, False])
    np.testing.assert_array_equal(terms["progress"], 0.0)

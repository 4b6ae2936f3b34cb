"""RaceEnv (``racing_rl/Race-v0``): Gymnasium's and SB3's env checkers, per configuration.

The checkers report soft problems (a space's bounds, a non-deterministic reset, a render
that returns the wrong type) as ``UserWarning``s: these tests make them failures.
"""

from __future__ import annotations

import gymnasium
import pytest
from gymnasium.utils.env_checker import check_env as gymnasium_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from racing_rl.config import parse
from racing_rl.envs.config import RaceConfig

#: Per configuration: the ``RaceConfig`` sections that differ from the defaults, and the
#: render mode (the checkers then check ``render()`` too).
CONFIGS = {
    "default": ({}, None),
    # A wider observation (16 rays over 180°, seeing cars), more obstacles, a one-lap race.
    "rays_obstacles_one_lap": (
        {
            "sensors": {"n_rays": 16, "fov_deg": 180.0, "detect_cars": True},
            "track": {"n_obstacles": 6},
            "episode": {"laps": 1, "max_steps": 300, "spawn": "grid"},
        },
        "rgb_array",
    ),
}


def make(name: str) -> gymnasium.Env:
    """``gymnasium.make("racing_rl/Race-v0")`` with configuration ``name``."""
    values, render_mode = CONFIGS[name]
    return gymnasium.make(
        "racing_rl/Race-v0", config=parse(RaceConfig, values, "backend"), render_mode=render_mode
    )


@pytest.mark.filterwarnings("error::UserWarning")
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_gymnasium_check_env(name: str) -> None:
    env = make(name)
    gymnasium_check_env(env.unwrapped)
    env.close()


@pytest.mark.filterwarnings("error::UserWarning")
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_sb3_check_env(name: str) -> None:
    env = make(name)
    sb3_check_env(env, warn=True, skip_render_check=False)
    env.close()


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_observations_hold_the_configured_rays_and_three_car_numbers(name: str) -> None:
    env = make(name)
    n_rays = parse(RaceConfig, CONFIGS[name][0], "backend").sensors.n_rays
    observation, _ = env.reset(seed=0)
    assert env.observation_space.shape == observation.shape == (n_rays + 3,)
    env.close()

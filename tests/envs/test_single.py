"""RaceEnv (``racing_rl/Race-v0``): Gymnasium's and SB3's env checkers, per configuration.

The checkers report soft problems (a space's bounds, a non-deterministic reset, a render
that returns the wrong type) as ``UserWarning``s: these tests make them failures.
"""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gymnasium_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from racing_rl.config import parse
from racing_rl.envs.config import RaceConfig
from racing_rl.envs.single import RaceEnv

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


def test_the_generator_and_its_seed_are_the_races() -> None:
    # np_random_seed was -1 after reset(seed=42), and a generator set on the env did not
    # reach the race's track choices and spawns.
    env = make("default").unwrapped
    env.reset(seed=42)
    assert env.np_random_seed == 42 and env.np_random is env.race.np_random
    unseeded = RaceEnv()  # its np_random_seed is the race generator's: it replays the race
    observation, info = unseeded.reset()
    replayed, replayed_info = RaceEnv().reset(seed=unseeded.np_random_seed)
    assert info == replayed_info
    np.testing.assert_array_equal(observation, replayed)
    fresh = RaceEnv(track_seeds=range(10_000))
    fresh.np_random = np.random.default_rng(7)
    assert fresh.race.np_random is fresh.np_random and fresh.np_random_seed == -1
    _, info = fresh.reset()  # its first track is drawn from the generator set
    assert info["track_seed"] == int(np.random.default_rng(7).integers(10_000))


@pytest.mark.parametrize(
    ("action", "message"),
    [
        ([np.nan, 0.0, 0.0], r"car 0's action \[nan, 0.0, 0.0\] is not finite"),
        ([0.7], r"has shape \(1,\): expected \(3,\)"),  # it set all three, nitro too
        ([0.1, 0.2], r"has shape \(2,\): expected \(3,\)"),
    ],
)
def test_a_bad_action_is_refused_and_moves_nothing(action, message) -> None:
    env = make("default").unwrapped
    env.reset(seed=0)
    before = env.race.world.cars.position.copy()
    with pytest.raises(ValueError, match=message):
        env.step(np.array(action, np.float32))
    np.testing.assert_array_equal(env.race.world.cars.position, before)
    env.step(np.zeros(3, np.float32))  # the car drives on (a NaN once broke every step after)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"track_seed": 5.5}, "must be an integer, got 5.5"),  # it raced on track 5
        ({"track_seed": True}, "must be an integer, got True"),
    ],
)
def test_reset_options_are_checked(options, message) -> None:
    env = make("default")
    with pytest.raises(ValueError, match=message):
        env.reset(seed=0, options=options)
    assert env.reset(options={"track_seed": np.int64(5)})[1] == {"track_seed": 5}


def test_render_fps_is_the_simulation_rate_and_metadata_is_the_envs_own() -> None:
    env = RaceEnv(parse(RaceConfig, {"rules": {"dt": 0.05}}, "backend"))
    assert env.metadata["render_fps"] == 20 and make("default").metadata["render_fps"] == 15
    assert "is_parallelizable" not in RaceEnv.metadata  # PettingZoo's keys stay its own


def test_a_config_that_is_no_race_config_says_how_to_make_one() -> None:
    # A dict reached the simulator and failed there: "'dict' object has no attribute ...".
    with pytest.raises(TypeError, match=r"config must be a RaceConfig, got dict; racing_rl"):
        gymnasium.make("racing_rl/Race-v0", config={"episode": {"max_steps": 10}})


def test_an_action_outside_the_box_is_clipped_to_it() -> None:
    config = parse(RaceConfig, {"episode": {"spawn": "line"}}, "backend")  # at rest on the line
    env, clipped = RaceEnv(config), RaceEnv(config)
    env.reset(seed=3)
    clipped.reset(seed=3)
    for step in range(20):
        steering = -3.0 if step % 4 == 0 else 0.0
        observation, _, terminated, *_ = env.step(np.array([5.0, steering, 2.0], np.float32))
        expected, *_ = clipped.step(np.array([1.0, max(steering, -1.0), 1.0], np.float32))
        np.testing.assert_array_equal(observation, expected)
        assert not terminated
    assert observation[-2] > 0.3  # it went somewhere: speed over max speed


def test_gymnasium_s_play_drives_it_from_the_keyboard(monkeypatch) -> None:
    """``gymnasium.utils.play.play(env)`` raised MissingKeysToAction: its keys are those of
    ``racing-rl play`` (the arrow keys, space for nitro)."""
    import pygame
    from gymnasium.utils.play import play

    events = iter(
        [[pygame.event.Event(pygame.KEYDOWN, key=pygame.K_UP)]]
        + [[]] * 20
        + [[pygame.event.Event(pygame.KEYDOWN, key=pygame.K_LEFT)]]
        + [[]] * 5
        + [[pygame.event.Event(pygame.QUIT)]]
    )
    monkeypatch.setattr(pygame.event, "get", lambda: next(events))
    actions = []
    env = gymnasium.make("racing_rl/Race-v0", render_mode="rgb_array")
    play(
        env,
        fps=0,
        noop=np.array([0, 0, -1], np.float32),
        callback=lambda *step: actions.append(step[2]),
    )
    assert [list(a) for a in actions[:1]] == [[1.0, 0.0, -1.0]]  # up held
    assert [1.0, -1.0, -1.0] in [list(a) for a in actions]  # up and left

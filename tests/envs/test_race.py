"""RaceParallelEnv: PettingZoo conformance, seeding, spaces, agent ids, rewards, config."""

from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np
import pytest
from pettingzoo.test import parallel_api_test, parallel_seed_test

from racing_rl.config import parse
from racing_rl.envs.config import EpisodeConfig, RaceConfig
from racing_rl.envs.race import RaceParallelEnv
from racing_rl.envs.rewards import RewardConfig, compute_rewards
from racing_rl.errors import ConfigError
from racing_rl.sim.sensors import SensorConfig
from racing_rl.sim.track import TrackConfig, generate_track

ENV_CONFIGS = {
    "one_car": ({}, 1),
    "five_cars": ({}, 5),
    "grid": ({"episode": {"spawn": "grid"}}, 4),
    "line": ({"episode": {"spawn": "line"}}, 3),
    "one_lap": ({"episode": {"laps": 1, "max_steps": 200}}, 2),
    "cars_see_and_hit_cars": (
        {"sensors": {"detect_cars": True}, "rules": {"car_collisions": True}},
        6,
    ),
    # The game's 16-ray Car (19 numbers, rays of their own lengths; the last 8 see cars).
    "game_car_in_traffic": (
        {
            "sensors": {"n_rays": 16, "layout": "roblox_car", "detect_cars": True},
            "rules": {"car_collisions": True},
        },
        3,
    ),
}


def make_env(name: str, env_id: int | str = 0, **kwargs) -> RaceParallelEnv:
    values, n_cars = ENV_CONFIGS[name]
    return RaceParallelEnv(
        parse(RaceConfig, values, "backend"), n_cars=n_cars, env_id=env_id, **kwargs
    )


def single_car_env(**sections) -> RaceParallelEnv:
    """One car on the grid (at rest on the start line) of a track without obstacles."""
    values = {"track": {"n_obstacles": 0}, "episode": {"spawn": "grid"}}
    for key, section in sections.items():
        values.setdefault(key, {}).update(section)
    return RaceParallelEnv(parse(RaceConfig, values, "backend"), n_cars=1)


def rollout(env: RaceParallelEnv, seed: int, actions_seed: int, steps: int = 60) -> list:
    """Observations, rewards and flags of a rollout under seeded random actions."""
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(actions_seed)
    record = [{a: o.copy() for a, o in obs.items()}]
    for _ in range(steps):
        if not env.agents:
            break
        actions = {a: rng.uniform(-1, 1, 3).astype(np.float32) for a in env.agents}
        actions = {a: np.array([0.8, act[1] * 0.3, act[2]]) for a, act in actions.items()}
        obs, rewards, terminations, truncations, _ = env.step(actions)
        record.append((obs, rewards, terminations, truncations))
    return record


def assert_same_rollout(first: list, second: list) -> None:
    assert len(first) == len(second)
    for a, b in zip(first[1:], second[1:], strict=True):
        for part_a, part_b in zip(a, b, strict=True):
            assert part_a.keys() == part_b.keys()
            for agent in part_a:
                np.testing.assert_array_equal(part_a[agent], part_b[agent])
    for agent in first[0]:
        np.testing.assert_array_equal(first[0][agent], second[0][agent])


# ---------------------------------------------------------------------- conformance
@pytest.mark.parametrize("name", sorted(ENV_CONFIGS))
def test_parallel_api(name: str) -> None:
    env = make_env(name)
    parallel_api_test(env, num_cycles=200)
    env.close()


@pytest.mark.parametrize("name", ["five_cars", "cars_see_and_hit_cars"])
def test_pettingzoo_seed_test(name: str) -> None:
    parallel_seed_test(functools.partial(make_env, name), num_cycles=100)


# ---------------------------------------------------------------------- seeding
@pytest.mark.parametrize("name", ["one_car", "five_cars", "grid"])
def test_reset_with_the_same_seed_gives_identical_observations(name: str) -> None:
    env = make_env(name)
    first, info_first = env.reset(seed=123)
    first = {a: o.copy() for a, o in first.items()}
    env.step({a: np.ones(3) for a in env.agents})  # disturb the state
    second, info_second = env.reset(seed=123)
    assert first.keys() == second.keys()
    for agent in first:
        np.testing.assert_array_equal(first[agent], second[agent])
    assert info_first == info_second
    # A fresh env agrees too.
    third, _ = make_env(name).reset(seed=123)
    for agent in first:
        np.testing.assert_array_equal(first[agent], third[agent])


@pytest.mark.parametrize("name", ["five_cars", "cars_see_and_hit_cars"])
def test_same_seed_and_actions_give_identical_trajectories(name: str) -> None:
    env = make_env(name)
    first = rollout(env, seed=7, actions_seed=1)
    second = rollout(env, seed=7, actions_seed=1)
    assert_same_rollout(first, second)
    assert_same_rollout(first, rollout(make_env(name), seed=7, actions_seed=1))


def test_different_seeds_give_different_episodes() -> None:
    env = make_env("five_cars")
    a, info_a = env.reset(seed=1)
    a = {k: v.copy() for k, v in a.items()}
    b, info_b = env.reset(seed=2)
    assert info_a != info_b or any(not np.array_equal(a[k], b[k]) for k in a)


# ---------------------------------------------------------------------- spaces and ids
@pytest.mark.parametrize("name", sorted(ENV_CONFIGS))
def test_observations_lie_in_the_observation_space(name: str) -> None:
    env = make_env(name)
    rng = np.random.default_rng(0)
    n_rays = env.config.sensors.n_rays
    for seed in range(3):
        obs, _ = env.reset(seed=seed)
        for _ in range(80):
            for agent, o in obs.items():
                space = env.observation_space(agent)
                assert o.shape == (n_rays + 3,) and o.dtype == np.float32
                assert space.contains(o), f"{agent}: {o}"
                assert o[-1] in (0.0, 1.0)
            if not env.agents:
                break
            # Mostly full throttle with nitro, so speeds reach the top of the range.
            actions = {a: np.array([1.0, rng.uniform(-0.2, 0.2), 1.0]) for a in env.agents}
            obs, *_ = env.step(actions)


def test_spaces_match_the_contract() -> None:
    env = RaceParallelEnv(parse(RaceConfig, {"sensors": {"n_rays": 6}}, "backend"), n_cars=2)
    obs_space = env.observation_space("car_0_env_0")
    np.testing.assert_array_equal(obs_space.low, [0.0] * 6 + [0.0, -1.0, 0.0])
    np.testing.assert_array_equal(obs_space.high, np.ones(9))
    act_space = env.action_space("car_1_env_0")
    assert act_space.shape == (3,)
    np.testing.assert_array_equal(act_space.low, -1.0)
    np.testing.assert_array_equal(act_space.high, 1.0)
    assert env.config.observation_size == 9


@pytest.mark.parametrize("env_id", [0, 3, "a1b2"])
def test_agent_ids(env_id: int | str) -> None:
    env = RaceParallelEnv(n_cars=3, env_id=env_id)
    expected = [f"car_{i}_env_{env_id}" for i in range(3)]
    assert env.possible_agents == expected
    assert env.agents == []
    obs, infos = env.reset(seed=0)
    assert env.agents == expected
    assert list(obs) == expected and list(infos) == expected


def test_random_spawns_start_on_the_track_and_clear_of_obstacles() -> None:
    env = RaceParallelEnv(parse(RaceConfig, {"track": {"n_obstacles": 6}}, "backend"), n_cars=8)
    for seed in range(20):
        env.reset(seed=seed)
        world = env.world
        radius = env.config.car.radius
        assert np.all(np.abs(world.lateral) <= env.track.width / 2 - radius)
        obstacles = env.track.obstacles
        gaps = np.linalg.norm(world.cars.position[:, None] - obstacles[None, :, :2], axis=-1)
        assert np.all(gaps >= obstacles[None, :, 2] + radius), f"seed {seed}"


def test_grid_spawn_is_at_rest_behind_the_line() -> None:
    env = make_env("grid")
    env.reset(seed=0)
    world = env.world
    np.testing.assert_array_equal(world.cars.speed, 0.0)
    assert np.all(world.progress <= 0.0)
    distances = np.linalg.norm(world.cars.position[:, None] - world.cars.position[None], axis=-1)
    np.fill_diagonal(distances, np.inf)
    assert distances.min() > 2 * env.config.car.radius


def test_line_spawn_starts_every_car_alike_on_the_start_line() -> None:
    env = make_env("line")
    env.reset(seed=0)
    world = env.world
    np.testing.assert_array_equal(world.cars.speed, 0.0)
    np.testing.assert_array_equal(world.progress, 0.0)
    np.testing.assert_array_equal(world.cars.position, world.cars.position[[0, 0, 0]])
    np.testing.assert_array_equal(world.lap_clock, 0.0)  # on the line: the lap is timed


# ---------------------------------------------------------------------- rewards
def test_rewards_follow_compute_rewards_forwards_backwards_and_on_a_crash() -> None:
    env = single_car_env()
    (agent,) = env.possible_agents
    env.reset(seed=3)
    config = env.config.reward
    max_speed = env.config.car.max_speed
    previous = env.world.progress[0]
    # Forwards, then reversing (negative progress, ×20), then into the wall.
    plan = [np.array([1.0, 0.0, 0.0])] * 25 + [np.array([-1.0, 0.0, 0.0])] * 25
    plan += [np.array([1.0, -1.0, 0.0])] * 30
    signs = set()
    for action in plan:
        _, rewards, terminations, truncations, infos = env.step({agent: action})
        info = infos[agent]
        delta = info["progress"] - previous
        previous = info["progress"]
        assert not truncations[agent]
        if terminations[agent]:
            assert info["crashed"]
            assert rewards[agent] == config.crash == -10.0
            break
        scale = 1000.0 * (20.0 if delta < 0 else 1.0)
        bonus = (math.exp(2.0 * min(max(info["speed"] / max_speed, 0.0), 1.0)) - 1.0) * 0.5
        assert rewards[agent] == pytest.approx(delta * scale + bonus, rel=1e-6, abs=1e-9)
        terms = info["reward_terms"]
        assert terms["progress"] + terms["speed"] == pytest.approx(rewards[agent])
        want, _ = compute_rewards(
            np.array([delta]), np.array([info["speed"] / max_speed]), np.array([False]), config
        )
        assert rewards[agent] == pytest.approx(want[0], rel=1e-6, abs=1e-9)
        signs.add(np.sign(delta))
    else:
        pytest.fail("the car never crashed")
    assert {-1.0, 1.0} <= signs
    assert env.agents == []


def test_reward_coefficients_come_from_the_config() -> None:
    env = single_car_env(reward={"progress": 10.0, "speed": 0.0, "crash": -3.0})
    (agent,) = env.possible_agents
    env.reset(seed=0)
    _, rewards, _, _, infos = env.step({agent: np.array([1.0, 0.0, 0.0])})
    assert rewards[agent] == pytest.approx(10.0 * infos[agent]["progress"], rel=1e-9)
    assert rewards[agent] > 0


# ---------------------------------------------------------------------- episode end
def test_stuck_car_is_truncated_not_terminated() -> None:
    env = single_car_env(rules={"stuck_time": 1.0})
    (agent,) = env.possible_agents
    env.reset(seed=0)
    step = 0
    while step < 40:
        step += 1
        _, _, terminations, truncations, infos = env.step({agent: np.zeros(3)})
        if truncations[agent]:
            break
    assert infos[agent]["stuck"] and not terminations[agent]
    assert step * env.config.rules.dt == pytest.approx(1.0, abs=2 * env.config.rules.dt)
    assert env.agents == []
    # It never moved: no distance, wherever on the track it was placed (race/distance_m;
    # race/progress logged the spawn's position on the lap).
    assert infos[agent]["distance"] == 0.0


def test_distance_is_what_the_car_drove_since_it_was_placed() -> None:
    env = single_car_env()
    (agent,) = env.possible_agents
    env.reset(seed=1)
    driven = 0.0
    for _ in range(30):
        _, _, _, _, infos = env.step({agent: np.array([1.0, 0.0, 0.0])})
        driven += abs(infos[agent]["speed"]) * env.config.rules.dt
    assert infos[agent]["distance"] == pytest.approx(driven, rel=0.05)


def test_max_steps_truncates_every_car() -> None:
    env = single_car_env(episode={"max_steps": 5})
    (agent,) = env.possible_agents
    env.reset(seed=0)
    for _ in range(4):
        *_, truncations, _ = env.step({agent: np.array([0.3, 0.0, 0.0])})
        assert not truncations[agent]
    _, _, terminations, truncations, infos = env.step({agent: np.array([0.3, 0.0, 0.0])})
    assert truncations[agent] and not terminations[agent]
    assert not infos[agent]["stuck"] and not infos[agent]["finished"]


def test_finishing_the_laps_truncates_with_finished() -> None:
    env = single_car_env(episode={"laps": 1})
    (agent,) = env.possible_agents
    env.reset(seed=0)
    world, track = env.world, env.track
    step_arc = 2.5
    for k in range(1, math.ceil(track.length / step_arc) + 1):
        arc = k * step_arc
        i = int(np.searchsorted(track.arc_length, np.mod(arc, track.length), "right") - 1)
        a, b = track.centreline[i], track.centreline[(i + 1) % track.n_points]
        edge = b - a
        world.cars.position[0] = a + edge * (np.mod(arc, track.length) - track.arc_length[i]) / (
            np.linalg.norm(edge)
        )
        world.cars.heading[0] = math.atan2(edge[1], edge[0])
        _, _, terminations, truncations, infos = env.step({agent: np.zeros(3)})
        if truncations[agent]:
            break
    assert infos[agent]["finished"] and infos[agent]["laps"] == 1
    assert not terminations[agent]
    assert infos[agent]["lap_time"] == pytest.approx(track.length / step_arc * env.config.rules.dt)
    assert env.agents == []


def test_step_rejects_actions_for_agents_that_are_not_live() -> None:
    env = RaceParallelEnv(n_cars=2)
    with pytest.raises(RuntimeError):
        env.step({})
    env.reset(seed=0)
    with pytest.raises(KeyError):
        env.step({"car_9_env_0": np.zeros(3)})


# ---------------------------------------------------------------------- tracks
@pytest.mark.parametrize("track_seed", [0, 17, 9_999])
def test_track_seed_option_selects_the_track(track_seed: int) -> None:
    env = RaceParallelEnv(n_cars=2, track_seeds=range(100, 110))
    _, infos = env.reset(seed=0, options={"track_seed": track_seed})
    assert env.track.seed == track_seed
    assert all(info["track_seed"] == track_seed for info in infos.values())
    expected = generate_track(track_seed, env.config.track)
    np.testing.assert_array_equal(env.track.centreline, expected.centreline)
    # Without the option, tracks come from track_seeds.
    _, infos = env.reset(seed=0)
    assert env.track.seed in range(100, 110)


def test_track_changes_every_track_change_every_episodes() -> None:
    values = {"episode": {"track_change_every": 3}}
    env = RaceParallelEnv(parse(RaceConfig, values, "backend"), n_cars=1, track_seeds=range(50))
    env.reset(seed=0)
    tracks = [env.track]
    for _ in range(6):
        env.reset()
        tracks.append(env.track)
    # Episodes 1-3 share a track, episode 4 draws a new one, and so on.
    assert tracks[0] is tracks[1] is tracks[2]
    assert tracks[3] is not tracks[2]
    assert tracks[3] is tracks[4] is tracks[5]
    assert tracks[6] is not tracks[5]


# ---------------------------------------------------------------------- config
@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"trak": {}}, r"backend\.trak: .*; did you mean backend\.track\?"),
        (
            {"track": {"widht": 10.0}},
            r"backend\.track\.widht: .*; did you mean backend\.track\.width",
        ),
        (
            {"episode": {"max_step": 10}},
            r"backend\.episode\.max_step: .*; did you mean backend\.ep",
        ),
        ({"reward": {"progress": 1.0, "crash_penalty": -1.0}}, r"backend\.reward\.crash_penalty"),
        # No close key: what it takes (it said only "Key 'zzz' not in 'RaceRules'").
        (
            {"rules": {"zzz": 1}},
            r"backend\.rules\.zzz: Key 'zzz' not in 'RaceRules'; leave it out \(its keys: dt, "
            r"stuck_time, car_collisions\)$",
        ),
    ],
)
def test_unknown_config_keys_raise_config_error_naming_the_key(values: dict, key: str) -> None:
    # With the closest key where one is close (eval +backend.rules.car_colisions=true got
    # none: a run's own backend is checked after Hydra starts).
    with pytest.raises(ConfigError, match=key):
        parse(RaceConfig, values, "backend")


def test_parse_builds_nested_sections_and_validates_values() -> None:
    config = parse(
        RaceConfig,
        {"track": {"width": 14.0}, "sensors": {"n_rays": 4}, "episode": {"laps": 2}},
        "backend",
    )
    assert config.track == TrackConfig(width=14.0)
    assert config.sensors.n_rays == 4 and config.episode == EpisodeConfig(laps=2)
    assert config.observation_size == 7
    with pytest.raises(ConfigError, match=r"backend\.track"):
        parse(RaceConfig, {"track": {"width": -1.0}}, "backend")
    assert parse(RaceConfig, None, "backend") == RaceConfig()


def test_parse_accepts_omegaconf() -> None:
    omegaconf = pytest.importorskip("omegaconf")
    node = omegaconf.OmegaConf.create({"reward": {"crash": -5.0}})
    assert parse(RaceConfig, node, "backend").reward == RewardConfig(crash=-5.0)


@pytest.mark.parametrize(
    "kwargs",
    [{"spawn": "ladder"}, {"max_steps": 0}, {"laps": -1}, {"standing_start_prob": 1.5}],
)
def test_episode_config_rejects_bad_values(kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        EpisodeConfig(**kwargs)


@pytest.mark.parametrize(
    "kwargs", [{"laps": 1.5}, {"laps": True}, {"max_steps": 100.0}, {"track_change_every": "4"}]
)
def test_episode_counts_must_be_whole_numbers(kwargs: dict) -> None:
    """laps=1.5 raced two laps (the lap count reached 2 before it passed 1.5), and
    track_change_every="4" failed in a comparison naming no key."""
    (key,) = kwargs
    with pytest.raises(ConfigError, match=rf"^episode\.{key} must be a whole number >= "):
        EpisodeConfig(**kwargs)


def test_env_rejects_bad_arguments() -> None:
    with pytest.raises(ConfigError):
        RaceParallelEnv(n_cars=0)
    for n_cars in (2.0, "2", True):  # failed in range() or a comparison, naming no argument
        with pytest.raises(
            ConfigError, match=rf"^n_cars must be a whole number >= 1, got {n_cars!r}"
        ):
            RaceParallelEnv(n_cars=n_cars)
    with pytest.raises(ConfigError):
        RaceParallelEnv(track_seeds=[])
    with pytest.raises(ConfigError):
        RaceParallelEnv(render_mode="ascii")


def test_render_without_mode_returns_none_with_a_warning() -> None:
    env = RaceParallelEnv()
    env.reset(seed=0)
    with pytest.warns(UserWarning, match="render\\(\\) without a render_mode"):
        assert env.render() is None
    env.close()


def test_the_spaces_of_an_unknown_agent_are_refused() -> None:
    env = RaceParallelEnv(n_cars=2)
    with pytest.raises(KeyError, match="'car_7_env_0' is not an agent of this race"):
        env.observation_space("car_7_env_0")
    with pytest.raises(KeyError, match="is not an agent"):
        env.action_space("bogus")


def test_new_rules_and_spawns_apply_to_a_running_env() -> None:
    """What the bridge's emulator does when the game asks for collisions or a grid: the
    rules apply at once, the spawn from the next reset; other settings are refused."""
    env = RaceParallelEnv(RaceConfig(episode=EpisodeConfig(spawn="line")), n_cars=2)
    env.reset(seed=0)
    still = {agent: np.zeros(3) for agent in env.agents}
    assert not any(env.step(still)[2].values())  # overlapping ghosts: no contact
    rules = dataclasses.replace(env.config.rules, car_collisions=True)
    env.config = dataclasses.replace(env.config, rules=rules)
    assert all(env.step(still)[2].values())  # the same cars now touch: both crash
    env.config = dataclasses.replace(env.config, episode=EpisodeConfig(spawn="grid"))
    env.reset()
    assert env.world.cars.position[0].tolist() != env.world.cars.position[1].tolist()
    with pytest.raises(ConfigError, match="new environment"):
        env.config = dataclasses.replace(env.config, sensors=SensorConfig(n_rays=5))

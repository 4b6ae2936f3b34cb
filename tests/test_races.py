"""Races of several drivers on the same tracks: per-driver observation pipelines, leaderboards."""

import math
import threading
import types
from dataclasses import replace

import numpy as np
import pytest
from omegaconf import OmegaConf
from stable_baselines3.common.vec_env import VecNormalize

from racing_rl.bridge.env import RobloxParallelEnv
from racing_rl.checkpoints.runs import load_policy_driver, load_run_config
from racing_rl.config import backend_config, default_backend
from racing_rl.drivers import ScriptedDriver
from racing_rl.drivers.pure_pursuit import DriverConfig
from racing_rl.evaluation.episodes import RERUNS, evaluation_env, run_episodes
from racing_rl.evaluation.races import leaderboard, run_races, standings
from racing_rl.vec import make_parallel_envs

SEEDS = [5, 6]


def race_envs(backend, n_cars: int, laps: int = 1, max_steps: int = 900):
    episode = {"spawn": "line", "laps": laps, "max_steps": max_steps}
    return make_parallel_envs(backend, len(SEEDS), n_cars, [[s] for s in SEEDS], episode)


def test_a_policy_driver_sees_what_its_run_s_wrapper_stack_would_give_it(tiny_runs):
    """One PolicyDriver (own frame stack + frozen VecNormalize) = the VecEnv stack of eval."""
    run_dir = tiny_runs[0]
    run_cfg = load_run_config(run_dir)
    cfg = OmegaConf.create({"checkpoint": "final", "device": "cpu"})
    size = backend_config(run_cfg.backend).observation_size
    driver = load_policy_driver(run_dir, cfg, size)
    assert driver.frame_stack == run_cfg.wrappers.frame_stack > 1
    assert driver.normalizer is not None

    venv = evaluation_env(run_cfg, SEEDS)
    assert isinstance(venv, VecNormalize)
    venv.obs_rms = driver.normalizer.obs_rms
    expected = run_episodes(driver.model, venv)
    (race_a, race_b) = run_races(race_envs(run_cfg.backend, 1, max_steps=200), [driver])
    episodes = [race_a.cars[0].episode, race_b.cars[0].episode]
    # The same cars, step by step; returns differ by the VecEnv's float32 rewards only.
    assert [replace(e, episode_return=0.0) for e in episodes] == [
        replace(e, episode_return=0.0) for e in expected
    ]
    for episode, reference in zip(episodes, expected, strict=True):
        assert episode.episode_return == pytest.approx(reference.episode_return, rel=1e-6)


def test_leaderboard_orders_finishers_by_their_recorded_lap_times():
    backend = default_backend("pygame")
    slow = ScriptedDriver("careful", DriverConfig(grip_safety=0.6, brake_safety=0.5))
    drivers = [slow, ScriptedDriver("fast")]
    races = run_races(race_envs(backend, 2, laps=2, max_steps=1500), drivers, record=True)
    for race in races:
        board = leaderboard(race)
        replay = race.replay
        totals = {label: sum(replay.lap_times(d)) for d, label in enumerate(replay.labels)}
        assert all(len(replay.lap_times(d)) == 2 for d in range(2))
        assert (
            [row["label"] for row in board] == sorted(totals, key=totals.get) == ["fast", "careful"]
        )
        for row in board:
            assert row["lap_times_s"] == replay.lap_times(replay.labels.index(row["label"]))
            # Cars start together on the line: finishing time = the sum of the laps.
            assert row["finish_time_s"] == pytest.approx(totals[row["label"]], abs=1e-9)
        assert board[1]["gap_s"] == pytest.approx(totals["careful"] - totals["fast"])
        assert board[0]["gap_s"] == 0.0
    table = standings(races)
    assert [row["label"] for row in table] == ["fast", "careful"]
    assert table[0]["wins"] == len(SEEDS) and table[1]["mean_position"] == 2.0


def test_cars_that_do_not_finish_rank_behind_by_progress():
    backend = default_backend("pygame")

    class Parked:
        label, run = "parked", "test"

        def reset(self, n_tracks):
            pass

        def act(self, observations, worlds, car):
            return np.zeros((len(worlds), 3))

    races = run_races(race_envs(backend, 2, max_steps=900), [Parked(), ScriptedDriver()])
    board = leaderboard(races[0])
    assert [row["label"] for row in board] == ["scripted", "parked"]
    assert not board[1]["finished"] and math.isnan(board[1]["gap_s"])
    assert board[1]["laps"] == 0
    # A race nobody finished has no winner: the car listed first "won" every such race.
    nobody = run_races(race_envs(backend, 2, max_steps=30), [Parked(), ScriptedDriver()])
    assert [row["wins"] for row in standings(nobody)] == [0, 0]
    assert [row["wins"] for row in standings(races)] == [len(races), 0]


def test_ties_share_a_position_and_figures_that_are_not_finite_rank_last():
    # Exact ties went to the entry listed first (its win, its better mean position); a
    # NaN finishing time or progress (a game's unread tick, an interrupted episode) in the
    # sort key scrambled the order: 0.9 of a lap ranked behind 0.5.
    from racing_rl.evaluation.races import CarResult, TrackRace
    from racing_rl.evaluation.results import EpisodeResult

    def car(label, finish=math.nan, progress=1.0):
        finished = label.startswith("f")
        lap = 20.0 if finished else math.nan
        episode = EpisodeResult(1, finished, False, lap, progress, 10.0, 0.0, 100, (lap,))
        return CarResult(label, episode, finish)

    tied = TrackRace(1, [car("f a", 20.0), car("f b", 20.0), car("slow", progress=0.5)])
    assert [(r["label"], r["position"]) for r in leaderboard(tied)] == [
        ("f a", 1),
        ("f b", 1),
        ("slow", 3),
    ]
    assert [(r["position"], r["wins"]) for r in standings([tied])] == [(1, 1), (1, 1), (3, 0)]
    cars = [car("p.5", progress=0.5), car("pnan", progress=math.nan), car("p.9", progress=0.9)]
    cars += [car("f nan"), car("f 40", 40.0), car("f 30", 30.0)]
    board = leaderboard(TrackRace(1, cars))
    assert [r["label"] for r in board] == ["f 30", "f 40", "f nan", "p.9", "p.5", "pnan"]
    assert board[0]["gap_s"] == 0.0 and board[1]["gap_s"] == 10.0


def test_a_race_on_which_a_game_lost_a_car_counts_for_no_one():
    # A reconnection ends the lost car's episode as "interrupted": it ranked last (no
    # progress) and handed the others a position they had not raced for.
    from racing_rl.evaluation.races import CarResult, TrackRace
    from racing_rl.evaluation.results import EpisodeResult
    from racing_rl.evaluation.tables import race_tables

    def car(label, finish, interrupted=False):
        info = {"finished": not interrupted, "progress": 1.0, "interrupted": interrupted}
        episode = EpisodeResult.from_info(1, info, [] if interrupted else [finish], 0.0, 9)
        return CarResult(label, episode, finish)

    clean = TrackRace(1, [car("a", 20.0), car("b", 21.0)])
    lost = TrackRace(2, [car("a", math.nan, interrupted=True), car("b", 19.0)])
    assert leaderboard(lost)[1]["interrupted"]
    assert [(r["label"], r["mean_position"]) for r in standings([clean, lost])] == [
        ("a", 1.0),
        ("b", 2.0),
    ]
    metrics = {"tracks": [{"track_seed": 2, "leaderboard": leaderboard(lost)}]}
    table = race_tables({**metrics, "standings": standings([lost])})
    assert " lost " in table and "no standings: the game lost a car" in table


class FailingGameEnv(RobloxParallelEnv):
    """A game's environment (so run_races resets in threads) whose reset may fail."""

    def __init__(self, fails: bool) -> None:  # no bridge: nothing reaches a game
        self.possible_agents, self.fails = ["car_0"], fails

    def reset(self, seed=None, options=None):
        if self.fails:
            raise RuntimeError("the game went away")
        return {"car_0": np.zeros(19, np.float32)}, {"car_0": {"track_seed": 1}}


def test_a_failed_reset_in_a_game_leaves_no_thread_behind():
    # The error's traceback (kept here, as a caller that logs it keeps it) holds the pool.
    with pytest.raises(RuntimeError, match="the game went away") as raised:
        run_races([FailingGameEnv(False), FailingGameEnv(True)], [ScriptedDriver()])
    threads = [t for t in threading.enumerate() if t.name.startswith("racing-rl-env")]
    for thread in threads:
        thread.join(timeout=2)
    assert not any(t.is_alive() for t in threads), raised.traceback[-1]


class LosingVecEnv:
    """Two evaluation slots: slot 0's first ``lost`` episodes end after 3 steps as a game
    ends a car it lost (``interrupted``), its next one laps in 5 steps; slot 1 laps in 4."""

    num_envs = 2

    def __init__(self, lost: int) -> None:
        self.lost, self.steps, self.episodes = lost, [0, 0], [0, 0]
        self.unwrapped = types.SimpleNamespace(reset_infos=[{"track_seed": 5}, {"track_seed": 6}])

    def reset(self):
        return np.zeros((2, 3), np.float32)

    def step(self, actions):
        dones, infos = np.zeros(2, dtype=bool), [{}, {}]
        for k in range(2):
            self.steps[k] += 1
            lost = k == 0 and self.episodes[k] < self.lost
            if self.steps[k] == (3 if lost else 5 - k):
                dones[k], self.steps[k] = True, 0
                self.episodes[k] += 1
                infos[k] = (
                    {"interrupted": True, "finished": False}
                    if lost
                    else {"finished": True, "progress": 1.0, "lap_time": 9.5}
                )
        return np.zeros((2, 3), np.float32), np.ones(2, np.float32), dones, infos


class Still:
    def predict(self, observation, state=None, episode_start=None, deterministic=False):
        return np.zeros((len(observation), 3)), None


@pytest.mark.parametrize("lost", [1, RERUNS + 1])
def test_a_validation_episode_a_game_lost_is_driven_again_a_few_times(lost):
    # It was reported as a lap not completed (and, since, left out of the figures).
    first, second = run_episodes(Still(), LosingVecEnv(lost))
    assert (second.finished, second.length, second.episode_return) == (True, 4, 4.0)
    if lost <= RERUNS:
        assert (first.finished, first.interrupted, first.length) == (True, False, 5)
        assert first.episode_return == 5.0 and first.lap_times == (9.5,)
    else:
        assert first.interrupted and not first.finished and first.length == 3

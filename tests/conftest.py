"""Shared pytest setup: headless pygame for every test; tiny trained runs to evaluate; a
recorded race to replay."""

import os
from pathlib import Path

import pytest
from runs import REPLAY_EPISODE, REPLAY_TRACK, TINY, racing_rl

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")


@pytest.fixture(autouse=True, scope="session")
def sb3_log_dir(tmp_path_factory):
    """SB3 makes a log dir in the system temp dir for every ``learn`` without a logger of
    its own (``configure(folder=None)``); ``SB3_LOGDIR`` keeps them in pytest's."""
    mp = pytest.MonkeyPatch()
    mp.setenv("SB3_LOGDIR", str(tmp_path_factory.mktemp("sb3_logs")))
    yield
    mp.undo()


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory) -> list[Path]:
    """Two tiny PPO runs (2048 timesteps each, seeds 0 and 1), trained once per session."""
    root = tmp_path_factory.mktemp("tiny_runs")
    runs = []
    for seed in (0, 1):
        run_dir = root / f"ppo_seed{seed}"
        result = racing_rl("train", *TINY, f"seed={seed}", f"hydra.run.dir={run_dir}", cwd=root)
        assert result.returncode == 0, result.stderr[-3000:]
        runs.append(run_dir)
    return runs


@pytest.fixture(scope="session")
def replay():
    """The ``racing_rl.replay.Replay`` of two scripted cars, ``first`` and ``second``,
    racing ``REPLAY_EPISODE`` on track ``REPLAY_TRACK`` (meta ``{"split": "test"}``)."""
    from racing_rl.config import default_backend
    from racing_rl.drivers import ScriptedDriver
    from racing_rl.evaluation.races import run_races
    from racing_rl.vec import make_parallel_envs

    backend = default_backend("pygame")
    envs = make_parallel_envs(backend, 1, 2, [[REPLAY_TRACK]], REPLAY_EPISODE)
    drivers = [ScriptedDriver("first"), ScriptedDriver("second")]
    (race,) = run_races(envs, drivers, record=True, meta={"split": "test"})
    return race.replay

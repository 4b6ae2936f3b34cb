"""Fixtures for the bridge: VecEnvs of Roblox cars (helpers in roblox_game.py)."""

import pytest
from roblox_game import NO_WRAPPERS

from racing_rl.vec import make_parallel_envs, make_vec_env


@pytest.fixture
def roblox_vec_env():
    """Factory: a bare VecEnv of ``n_venvs`` × ``agents`` Roblox cars (closed afterwards)."""
    made = []

    def make(backend, n_venvs=2, agents=2, seeds=range(100)):
        envs = make_parallel_envs(backend, n_venvs, agents, [seeds] * n_venvs)
        venv = make_vec_env(envs, NO_WRAPPERS, gamma=0.99)
        made.append(venv)
        return venv

    yield make
    for venv in made:
        venv.close()

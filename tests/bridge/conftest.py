"""Fixtures for the bridge: VecEnvs of Roblox cars (helpers in roblox_game.py)."""

import pytest

from racing_rl.vec import make_env


@pytest.fixture
def roblox_vec_env():
    """Factory: a bare VecEnv of ``n_races`` × ``agents`` Roblox cars (closed afterwards)."""
    made = []

    def make(backend, n_races=2, agents=2, seeds=range(100)):
        venv = make_env(backend, n_races, agents, [seeds] * n_races)
        made.append(venv)
        return venv

    yield make
    for venv in made:
        venv.close()

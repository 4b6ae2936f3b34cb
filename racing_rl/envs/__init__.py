"""Environments on the built-in simulator: PettingZoo (many cars) and Gymnasium (one car)."""

import gymnasium

from racing_rl.envs.config import RaceConfig
from racing_rl.envs.race import RaceParallelEnv
from racing_rl.envs.single import RaceEnv

__all__ = ["RaceConfig", "RaceEnv", "RaceParallelEnv"]

if "racing_rl/Race-v0" not in gymnasium.registry:
    gymnasium.register(id="racing_rl/Race-v0", entry_point="racing_rl.envs.single:RaceEnv")

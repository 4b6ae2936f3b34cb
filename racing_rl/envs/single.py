"""RaceEnv: the one-car Gymnasium view of RaceParallelEnv, id ``racing_rl/Race-v0``."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from numpy.typing import NDArray

from racing_rl.envs.config import RaceConfig
from racing_rl.envs.race import RaceParallelEnv


class RaceEnv(gym.Env[NDArray[np.float32], NDArray[np.float32]]):
    """One car on a procedurally generated track (Gymnasium API).

    Spaces, reward, starting state and episode end are those of ``RaceParallelEnv``
    with one car: see its docstring for the full specification. ``info`` carries the
    same keys (progress, laps, lap_time, speed, mean_speed, crashed, stuck, finished,
    reward_terms).

    Args:
        config: the race configuration.
        track_seeds: seeds the track is drawn from on reset.
        render_mode: "human", "rgb_array" or None.

    Version History:
        v0: first version.
    """

    metadata = RaceParallelEnv.metadata

    def __init__(
        self,
        config: RaceConfig | None = None,
        track_seeds: range | list[int] = range(10_000),
        render_mode: str | None = None,
    ) -> None:
        self._race = RaceParallelEnv(
            config, n_cars=1, track_seeds=track_seeds, render_mode=render_mode
        )
        self._agent = self._race.possible_agents[0]
        self.observation_space = self._race.observation_space(self._agent)
        self.action_space = self._race.action_space(self._agent)
        self.render_mode = render_mode

    @property
    def race(self) -> RaceParallelEnv:
        """The underlying one-car ParallelEnv (its ``world`` holds the simulator state)."""
        return self._race

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[NDArray[np.float32], dict[str, Any]]:
        super().reset(seed=seed)
        observations, infos = self._race.reset(seed=seed, options=options)
        # One generator drives tracks and spawns: the race's, seeded like ours.
        self.np_random = self._race.np_random
        return observations[self._agent], infos[self._agent]

    def step(
        self, action: NDArray[np.float32]
    ) -> tuple[NDArray[np.float32], float, bool, bool, dict[str, Any]]:
        observations, rewards, terminations, truncations, infos = self._race.step(
            {self._agent: action}
        )
        agent = self._agent
        return (
            observations[agent],
            rewards[agent],
            terminations[agent],
            truncations[agent],
            infos[agent],
        )

    def render(self) -> NDArray[np.uint8] | None:
        return self._race.render()

    def close(self) -> None:
        self._race.close()

"""RaceEnv: the one-car Gymnasium view of RaceParallelEnv, id ``racing_rl/Race-v0``."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.utils import seeding
from numpy.typing import NDArray

from racing_rl.envs.config import RaceConfig
from racing_rl.envs.race import RaceParallelEnv


class RaceEnv(gym.Env[NDArray[np.float32], NDArray[np.float32]]):
    """One car on a procedurally generated track (Gymnasium API).

    Spaces, reward, starting state and episode end are those of ``RaceParallelEnv``
    with one car: see its docstring for the full specification. ``info`` carries the
    same keys (progress, laps, lap_time, speed, mean_speed, distance, crashed, stuck,
    finished, reward_terms).

    The time limit is the race's own ``config.episode.max_steps`` (1500 steps, 100 s by
    default), which truncates the episode as ``TimeLimit`` would; the registered spec has
    no ``max_episode_steps``, so ``gymnasium.make(..., max_episode_steps=N)`` can only
    shorten it. ``np_random`` is the race's generator (track choice and spawns), seeded by
    ``reset(seed=...)``.

    Args:
        config: the race configuration (None: the defaults of ``racing_rl/Race-v0``).
        track_seeds: seeds the track is drawn from on reset.
        render_mode: "human", "rgb_array" or None.

    Raises:
        ConfigError: an invalid ``render_mode`` or ``track_seeds``.
        TypeError: ``config`` is no ``RaceConfig`` (``racing_rl.config.backend_config``
            builds one from the ``backend`` group's keys).

    Version History:
        v0: first version.
    """

    metadata = {"render_modes": ["human", "rgb_array"], "render_fps": 15}

    def __init__(
        self,
        config: RaceConfig | None = None,
        track_seeds: range | list[int] = range(10_000),
        render_mode: str | None = None,
    ) -> None:
        self._race = RaceParallelEnv(
            config, n_cars=1, track_seeds=track_seeds, render_mode=render_mode
        )
        self.metadata = {**self.metadata, "render_fps": self._race.metadata["render_fps"]}
        # The race's generator, from a seed np_random_seed can tell (reset(seed=) reseeds).
        self._race.np_random, self._np_random_seed = seeding.np_random()
        self._agent = self._race.possible_agents[0]
        self.observation_space = self._race.observation_space(self._agent)
        self.action_space = self._race.action_space(self._agent)
        self.render_mode = render_mode

    @property
    def race(self) -> RaceParallelEnv:
        """The underlying one-car ParallelEnv (its ``world`` holds the simulator state)."""
        return self._race

    @property
    def np_random(self) -> np.random.Generator:
        """The generator of track choices and spawns (the race's)."""
        return self._race.np_random

    @np_random.setter
    def np_random(self, value: np.random.Generator) -> None:
        self._race.np_random = value
        self._np_random_seed = -1  # as Gymnasium's setter: the seed is unknown

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[NDArray[np.float32], dict[str, Any]]:
        """Start an episode (``RaceParallelEnv.reset`` with one car).

        Args:
            seed: seeds ``np_random`` (``np_random_seed`` is then this seed) and draws a new
                track.
            options: ``{"track_seed": int}`` races on that track.

        Returns:
            The observation, shape (n_rays + 3,) float32, and ``{"track_seed": int}``.

        Raises:
            ValueError: a ``track_seed`` option that is no integer (other keys are ignored).
        """
        super().reset(seed=seed)  # np_random_seed; the race seeds its generator alike
        observations, infos = self._race.reset(seed=seed, options=options)
        return observations[self._agent], infos[self._agent]

    def step(
        self, action: NDArray[np.float32]
    ) -> tuple[NDArray[np.float32], float, bool, bool, dict[str, Any]]:
        """Advance the car by one step of ``rules.dt`` seconds.

        Args:
            action: shape (3,) in [-1, 1] (a finite value outside is clipped): throttle,
                steering, nitro.

        Returns:
            observation (n_rays + 3,) float32, reward (1000 per lap of progress, a speed
            bonus of 0 … 2.13 a step at the car's top speeds, −10 on a crash), terminated
            (a crash), truncated (time limit, stuck, or the race's laps done), info.

        Raises:
            RuntimeError: the episode has ended (call ``reset``).
            ValueError: an action that is not three finite numbers; nothing moves.
        """
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
        """An (H, W, 3) uint8 frame ("rgb_array"), or None after drawing the window
        ("human"); see ``RaceParallelEnv.render``."""
        return self._race.render()

    def close(self) -> None:
        """Close the render window, if any; the environment can be reset again."""
        self._race.close()

    def get_keys_to_action(self) -> dict[tuple[int, ...], NDArray[np.float32]]:
        """The keyboard's actions for ``gymnasium.utils.play.play``, as ``racing-rl play``
        maps them (``racing_rl.ui.keyboard``): every held combination of the arrow keys and
        space (nitro), as sorted pygame key codes; no key held is ``play``'s ``noop``
        (``noop=np.array([0, 0, -1], np.float32)``: coast, nitro off).

        Returns:
            Sorted key-code tuple -> action, shape (3,), float32.
        """
        from racing_rl.ui.keyboard import play_keys_to_action

        return play_keys_to_action()

"""Drivers: who steers a car in a race, each with its own observation pipeline.

A race puts several drivers on the same tracks at once (``racing_rl.evaluation.races``): one car
of each ParallelEnv per driver. Each driver acts for its car on every track in one
batch, from the car's raw observations, shape (B, obs_size) for B tracks:

- ``PolicyDriver``: a trained SB3 model with the wrapper stack of its own run applied
  per car: SB3's frame stack (``DriverFrameStack``: zeros, newest frame last) and the
  run's frozen VecNormalize statistics (``normalize_obs``, no update). So runs trained
  with other frame stacks or statistics race side by side.
- ``ScriptedDriver``: the pure-pursuit baseline (``pure_pursuit``); reads the simulator
  state.
- ``racing_rl.export.runtime.ExportedDriver``: an exported Luau module or ONNX model.
- ``racing_rl.ui.keyboard.KeyboardDriver``: a person at the keyboard.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
from gymnasium import spaces
from numpy.typing import NDArray
from stable_baselines3.common.vec_env.stacked_observations import StackedObservations

from racing_rl.drivers.pure_pursuit import DriverConfig, PurePursuitDriver
from racing_rl.sim.world import World

FloatArray = NDArray[np.float64]


class Driver(Protocol):
    """One car on each of B tracks.

    Attributes:
        label: the name shown in leaderboards, HUDs and replays.
        run: what drives: a run directory, ``scripted`` or ``human``.
    """

    label: str
    run: str

    def reset(self, n_tracks: int) -> None:
        """Forget the last race; the next ``act`` is a race's first step."""

    def act(
        self, observations: NDArray[np.float32], worlds: Sequence[World], car: int
    ) -> FloatArray:
        """Actions for car ``car`` of each world.

        Args:
            observations: the car's raw observation on each track, shape (B, obs_size).
            worlds: the B simulator worlds (for drivers that read the state).
            car: the car's index in each world.

        Returns:
            Actions, shape (B, 3): throttle, steering, nitro in [-1, 1].
        """
        ...


class DriverFrameStack:
    """SB3's frame stack for the cars a driver steers outside a VecEnv.

    Training stacks frames with SB3's ``VecFrameStack`` (``racing_rl.vec.FrameStack``),
    which keeps them in a ``StackedObservations``. A driver in a race sees its cars
    through ParallelEnvs that it shares with other drivers, each with its own run's frame
    stack, so it cannot sit inside that VecEnv; it keeps its cars' frames in the same
    ``StackedObservations`` instead. So training, validation, races and the exported
    ONNX runtime stack frames with one implementation, and a driver's observations are
    bit for bit the training stack's: zeros at an episode start, newest frame last.

    Args:
        frame_stack: frames per stacked observation (1: no stacking).
    """

    def __init__(self, frame_stack: int = 1) -> None:
        self.frame_stack = frame_stack
        self._stack: StackedObservations | None = None

    def reset(self, rows: Sequence[int] | None = None) -> None:
        """Start new episodes: all cars (None; the next ``push`` may bring another number
        of cars) or the cars of ``rows``."""
        if rows is None or self._stack is None:
            self._stack = None
        else:
            self._stack.stacked_obs[list(rows)] = 0.0

    def push(self, observations: NDArray[np.float32]) -> NDArray[np.float32]:
        """Append each car's newest frame.

        Args:
            observations: one raw frame per car, shape (B, obs_size), float32.

        Returns:
            The stacked observations, shape (B, obs_size * frame_stack), float32 (a copy).
        """
        n_cars, size = observations.shape
        if self._stack is None:
            space = spaces.Box(-np.inf, np.inf, (size,), np.float32)
            self._stack = StackedObservations(n_cars, self.frame_stack, space)
            return self._stack.reset(observations).copy()
        stacked, _ = self._stack.update(
            observations, np.zeros(n_cars, dtype=bool), [{} for _ in range(n_cars)]
        )
        return stacked.copy()


class PolicyDriver:
    """A trained policy behind its run's frame stack and frozen observation normalisation,
    acting deterministically (SB3's ``predict(..., deterministic=True)``).

    Args:
        model: anything with SB3's ``predict`` (recurrent policies included).
        label: the driver's name.
        run: the run directory it comes from.
        frame_stack: observations stacked, as the run's ``wrappers.frame_stack``.
        normalizer: the run's VecNormalize (statistics loaded, no VecEnv needed), or None.
        checkpoint: the model file, for reports.
    """

    def __init__(
        self,
        model: Any,
        label: str,
        run: str,
        frame_stack: int = 1,
        normalizer: Any = None,
        checkpoint: str = "",
    ) -> None:
        self.model = model
        self.label = label
        self.run = run
        self.frame_stack = frame_stack
        self.normalizer = normalizer
        self.checkpoint = checkpoint
        self._stack = DriverFrameStack(frame_stack)
        self._state: Any = None
        self._episode_start: NDArray[np.bool_] | None = None

    @property
    def observation_size(self) -> int:
        """Numbers per raw observation frame the policy reads: its input over the frames
        stacked."""
        return int(self.model.observation_space.shape[0]) // self.frame_stack

    def reset(self, n_tracks: int) -> None:
        self._stack.reset()
        self._state = None
        self._episode_start = np.ones(n_tracks, dtype=bool)

    def act(
        self, observations: NDArray[np.float32], worlds: Sequence[World], car: int
    ) -> FloatArray:
        observation = self._stack.push(observations)
        if self.normalizer is not None:
            observation = self.normalizer.normalize_obs(observation)
        actions, self._state = self.model.predict(
            observation,
            state=self._state,
            episode_start=self._episode_start,
            deterministic=True,
        )
        self._episode_start = np.zeros(len(observations), dtype=bool)
        return np.asarray(actions, dtype=np.float64)


class ScriptedDriver:
    """The pure-pursuit baseline driver (``racing_rl.drivers.pure_pursuit``); ignores
    observations.

    Args:
        label: the driver's name.
        config: its tuning; the default is the benchmark's reference driver
            (``DriverConfig()``), ``pure_pursuit.RACING`` the racing line.
    """

    def __init__(self, label: str = "scripted", config: DriverConfig | None = None) -> None:
        self.label = label
        self.run = "scripted"
        self._driver = PurePursuitDriver(config)

    def reset(self, n_tracks: int) -> None:
        pass

    def act(
        self, observations: NDArray[np.float32], worlds: Sequence[World], car: int
    ) -> FloatArray:
        return np.stack([self._driver.act(world)[car] for world in worlds])

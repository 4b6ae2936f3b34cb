"""The observation/action contract every backend keeps (DESIGN.md, "The contract both
backends share").

Per car, an observation is ``[ray_0 … ray_{R-1}] / range, nitro fuel, signed speed / max
speed, is_reverse`` (float32, ``R`` rays then ``STATE_SIZE`` numbers) and an action is
``[throttle, steering, nitro]`` in [-1, 1]. The simulator (``racing_rl.envs.race``) and the
Roblox game (``racing_rl.bridge.env``) build their spaces here, so a policy trained on one
drives on the other.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from numpy.typing import NDArray

from racing_rl.errors import is_integer

ACTION_SIZE = 3
"""Numbers per action: throttle, steering, nitro."""
STATE_SIZE = 3
"""Numbers after the rays in every observation: nitro, speed, is_reverse."""

AgentID = str
#: What a ParallelEnv's ``step`` returns: observations, rewards, terminations,
#: truncations and infos, each keyed by agent.
ParallelStepReturn = tuple[
    dict[AgentID, NDArray[np.float32]],
    dict[AgentID, float],
    dict[AgentID, bool],
    dict[AgentID, bool],
    dict[AgentID, dict[str, Any]],
]


def observation_space(n_rays: int) -> spaces.Box:
    """The observation space of a car with ``n_rays`` rays, shape (n_rays + 3,), float32.

    Rays and nitro fuel lie in [0, 1], the signed speed in [-1, 1], is_reverse in {0, 1}.
    """
    low = np.array([0.0] * n_rays + [0.0, -1.0, 0.0], dtype=np.float32)
    return spaces.Box(low, np.ones(n_rays + STATE_SIZE, np.float32), dtype=np.float32)


def action_space() -> spaces.Box:
    """The action space: ``Box(-1, 1, shape=(3,), float32)``, throttle, steering, nitro."""
    return spaces.Box(-1.0, 1.0, shape=(ACTION_SIZE,), dtype=np.float32)


def slot_actions(actions: Any, num_envs: int) -> NDArray[Any]:
    """A VecEnv's ``step_async`` actions as an array of shape (num_envs, 3), one row per
    slot.

    Raises:
        ValueError: actions of another shape (a row short would end in an ``IndexError``
            deep in ``step_wait``; with scripted opponents they would be broadcast).
    """
    actions = np.asarray(actions)
    if actions.shape != (num_envs, ACTION_SIZE):
        raise ValueError(
            f"actions must have shape ({num_envs}, {ACTION_SIZE}), one row per slot; "
            f"got {actions.shape}."
        )
    return actions


def track_seed_option(options: dict[str, Any] | None) -> int | None:
    """The ``track_seed`` of a reset's ``options`` (None without one). Other keys are
    ignored, as Gymnasium's and PettingZoo's environments (and their checkers) expect.

    Raises:
        ValueError: a seed that is no integer (``5.5`` would race on track 5).
    """
    track_seed = (options or {}).get("track_seed")
    if track_seed is not None and not is_integer(track_seed):
        raise ValueError(f"options['track_seed'] must be an integer, got {track_seed!r}.")
    return None if track_seed is None else int(track_seed)


def track_change_due(episodes_on_track: int, every: int, seed: int | None, first: bool) -> bool:
    """Whether a reset without a ``track_seed`` option draws a new track: at the first
    reset, at a reset with a ``seed`` (a seeded reset starts the track draw afresh), and
    once ``every`` (``episode.track_change_every``) episodes have raced on the track.

    Both backends follow it: the simulator's ``RaceBatch.reset`` and the bridge's
    ``RobloxParallelEnv.reset``, which suggests the track to the game.
    """
    return first or seed is not None or episodes_on_track >= every

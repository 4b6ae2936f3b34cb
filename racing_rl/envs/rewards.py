"""The reward of the observation/action contract, shared by both backends.

For the simulator this module computes it; for Roblox the game does, and this module is
its reference (tests and docs). Per car and step, with the seed game's terms:

    progress  = Δp · 1000              (Δp: progress in laps; × 20 when Δp < 0)
    speed     = (exp(2 · clip(v / v_max, 0, 1)) − 1) · 0.5
    reward    = progress + speed,  or ``crash`` (−10) on the step the episode terminates

The game's own end reward differs: −20, on a crash and also when a car is truncated for
being stuck (its ``CmdHandler.GetReward``); the simulator's is −10 on a crash only, the
value every default run and benchmark here was trained with. ``backend.reward.crash=-20``
matches the game's crash. Every coefficient is a field of ``RewardConfig`` and set in YAML.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
from numpy.typing import NDArray

from racing_rl.errors import check_range

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class RewardConfig:
    """Reward coefficients, each a finite number of either sign.

    Attributes:
        progress: reward per lap of progress along the centreline [1/lap].
        backward_multiplier: factor on negative progress (driving backwards) [-].
        speed: scale of the speed bonus [-].
        speed_exponent: growth rate of the speed bonus [-].
        crash: reward on a terminating step (replaces the other terms) [-].
    """

    progress: float = 1000.0
    backward_multiplier: float = 20.0
    speed: float = 0.5
    speed_exponent: float = 2.0
    crash: float = -10.0

    def __post_init__(self) -> None:
        for name in (f.name for f in fields(self)):
            check_range(f"reward.{name}", getattr(self, name))


def compute_rewards(
    progress_delta: FloatArray,
    speed_fraction: FloatArray,
    terminated: NDArray[np.bool_],
    config: RewardConfig,
) -> tuple[FloatArray, dict[str, FloatArray]]:
    """Reward of N cars for one step.

    Args:
        progress_delta: progress along the centreline this step, shape (N,) [laps].
        speed_fraction: signed speed / max speed, shape (N,) [-].
        terminated: cars whose episode terminated this step, shape (N,).
        config: coefficients.

    Returns:
        The total reward, shape (N,), and its named terms ``progress``, ``speed`` and
        ``crash`` (each shape (N,)), which sum to it: on a terminating step ``crash``
        alone, the others 0.
    """
    scale = np.where(
        progress_delta < 0.0, config.progress * config.backward_multiplier, config.progress
    )
    progress = progress_delta * scale
    fraction = np.minimum(np.maximum(speed_fraction, 0.0), 1.0)  # np.clip is slower on (N,)
    speed = (np.exp(config.speed_exponent * fraction) - 1.0) * config.speed
    terms = {
        "progress": np.where(terminated, 0.0, progress),
        "speed": np.where(terminated, 0.0, speed),
        "crash": np.where(terminated, config.crash, 0.0),
    }
    return terms["progress"] + terms["speed"] + terms["crash"], terms

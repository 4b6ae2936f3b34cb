"""VecNormalize that never holds a non-finite statistic, and its statistics as plain data.

``FiniteVecNormalize`` is SB3's ``VecNormalize`` (same arithmetic, same bits) that checks
its running statistics after every update. An observation of 1e39 is ``inf`` as float32,
and one of 1e30 overflows float32's variance to ``inf``; a reward of 1e300 does the same
to the return statistics. Such a statistic would poison every later observation and
every later checkpoint, so the wrapper puts the statistics back as they were before the
step and raises ``NonFiniteError``; training then saves a checkpoint (with the statistics
from before) and stops (``racing_rl.training``).

The statistics are saved as ``vecnormalize.npz``, a NumPy archive read with
``allow_pickle=False`` (arrays and scalars only, nothing that runs code)::

    format_version   int, STATISTICS_VERSION
    obs_mean         float64, shape (obs_dim,)    running mean of the observations
    obs_var          float64, shape (obs_dim,)    running variance of the observations
    obs_count        float64                      observations seen (+ SB3's 1e-4 prior)
    return_mean      float64                      running mean of the discounted return
    return_var       float64                      its running variance
    return_count     float64                      returns seen
    clip_obs         float64                      normalised observations clipped to ±this
    clip_reward      float64                      normalised rewards clipped to ±this
    gamma            float64                      discount of the return estimate
    epsilon          float64                      added to the variance before the sqrt
    norm_obs         bool                         whether observations are normalised
    norm_reward      bool                         whether rewards are normalised
    timesteps        int64 (optional)             the model's timesteps when both were
                                                  saved: a model.zip of others is refused

An observation x becomes ``clip((x - obs_mean) / sqrt(obs_var + epsilon), ±clip_obs)``
(SB3's ``VecNormalize.normalize_obs``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces
from stable_baselines3.common.running_mean_std import RunningMeanStd
from stable_baselines3.common.vec_env import VecEnv, VecNormalize
from stable_baselines3.common.vec_env.base_vec_env import VecEnvObs, VecEnvStepReturn

from racing_rl.errors import CheckpointError, NonFiniteError

#: Version of the ``vecnormalize.npz`` layout; bumped when its keys change.
STATISTICS_VERSION = 1
_FLOATS = ("clip_obs", "clip_reward", "gamma", "epsilon")
_FLAGS = ("norm_obs", "norm_reward")


class FiniteVecNormalize(VecNormalize):
    """``VecNormalize`` whose statistics stay finite; see the module docstring. Without
    ``norm_obs`` its observation statistics are a neutral set (mean 0, variance 1), kept
    and saved but never updated or applied.

    Raises (from ``step_wait`` and ``reset``):
        NonFiniteError: if this step's observations or rewards would make a statistic
            non-finite; the statistics are then those from before the step.
    """

    def __init__(self, venv: VecEnv, **kwargs: Any) -> None:
        super().__init__(venv, **kwargs)
        if not self.norm_obs:
            # SB3 makes no observation statistics without norm_obs, which the checks, the
            # snapshot and the saved statistics read: a neutral set (mean 0, variance 1),
            # never updated, and never applied (norm_obs is saved with them).
            self.obs_rms = RunningMeanStd(shape=self.observation_space.shape)

    def snapshot(self) -> tuple[Any, ...]:
        """The running statistics as they are now, for ``restore``: the observation and
        return means, variances and counts, and the per-environment discounted returns.

        ``RunningMeanStd.update`` and ``_update_reward`` assign new arrays, so references
        are a snapshot (no copy on the hot path).
        """
        obs, ret = self.obs_rms, self.ret_rms
        return obs.mean, obs.var, obs.count, ret.mean, ret.var, ret.count, self.returns

    def restore(self, saved: tuple[Any, ...]) -> None:
        """Put back the statistics of a ``snapshot``."""
        obs, ret = self.obs_rms, self.ret_rms
        obs.mean, obs.var, obs.count, ret.mean, ret.var, ret.count, self.returns = saved

    def _check(self, saved: tuple[Any, ...], observations: Any, rewards: Any) -> None:
        bad = [
            name
            for name, value in (
                ("observation mean", self.obs_rms.mean),
                ("observation variance", self.obs_rms.var),
                ("return mean", self.ret_rms.mean),
                ("return variance", self.ret_rms.var),
            )
            if not np.isfinite(value).all()
        ]
        if not bad:
            return
        self.restore(saved)
        raw_obs = np.abs(np.asarray(observations, dtype=np.float64))
        raw_reward = np.abs(np.asarray(rewards, dtype=np.float64))
        raise NonFiniteError(
            f"VecNormalize's {' and '.join(bad)} would become non-finite: this step's largest "
            f"|observation| is {raw_obs.max(initial=0.0):.3g} (float32 holds up to 3.4e38 and "
            f"its variance overflows from ~1.8e19), its largest |reward| "
            f"{raw_reward.max(initial=0.0):.3g}. The statistics are kept as they were before "
            "this step. The environment sent values outside its observation space or "
            "reward range: fix the environment (or the game) that sends them."
        )

    def step_wait(self) -> VecEnvStepReturn:
        """VecNormalize's step, its statistics checked.

        Raises:
            NonFiniteError: the step would make a statistic non-finite; it is kept as it was.
        """
        saved = self.snapshot()
        observations, rewards, dones, infos = super().step_wait()
        self._check(saved, self.old_obs, self.old_reward)
        return observations, rewards, dones, infos

    def reset(self) -> VecEnvObs:
        """VecNormalize's reset, its statistics checked (as ``step_wait``)."""
        saved = self.snapshot()
        observations = super().reset()
        self._check(saved, self.old_obs, np.zeros(0))
        return observations


def statistics_of(normalizer: VecNormalize, timesteps: int | None = None) -> dict[str, Any]:
    """``normalizer``'s statistics and settings, as the keys of the module docstring
    (``timesteps``, the model's saved with them, only when given)."""
    obs, ret = normalizer.obs_rms, normalizer.ret_rms
    return {
        **({} if timesteps is None else {"timesteps": np.int64(timesteps)}),
        "format_version": np.int64(STATISTICS_VERSION),
        "obs_mean": np.asarray(obs.mean, np.float64),
        "obs_var": np.asarray(obs.var, np.float64),
        "obs_count": np.float64(obs.count),
        "return_mean": np.float64(ret.mean),
        "return_var": np.float64(ret.var),
        "return_count": np.float64(ret.count),
        **{key: np.float64(getattr(normalizer, key)) for key in _FLOATS},
        **{key: np.bool_(getattr(normalizer, key)) for key in _FLAGS},
    }


def save_statistics(normalizer: VecNormalize, path: Path, timesteps: int | None = None) -> None:
    """Write ``normalizer``'s statistics and settings to ``path`` as ``vecnormalize.npz``.

    Args:
        normalizer: a VecNormalize over Box observations.
        path: the file to write (any name; nothing is appended).
        timesteps: the timesteps of the model saved beside it (its ``num_timesteps``),
            which a reader checks the model against; None records none.
    """
    with open(path, "wb") as file:
        np.savez(file, **statistics_of(normalizer, timesteps))


def read_statistics(path: Path, obs_shape: tuple[int, ...] | None = None) -> dict[str, Any]:
    """Read and check a ``vecnormalize.npz`` (no pickles: ``allow_pickle=False``).

    Args:
        path: the file.
        obs_shape: the observation shape the statistics must have, or None for any.

    Returns:
        The statistics, as ``check_statistics`` returns them.

    Raises:
        CheckpointError: if the file is missing or unreadable, or fails
            ``check_statistics``.
    """
    if not path.is_file():
        raise CheckpointError(
            f"VecNormalize statistics {path} are missing. A model trained with them is "
            "saved with them, so this folder is incomplete: put the vecnormalize.npz saved "
            "with its model.zip back beside it, or choose another checkpoint (checkpoint="
            "best|latest|<name>)."
        )
    try:
        with np.load(path, allow_pickle=False) as data:
            raw = {key: data[key] for key in data.files}
    except Exception as err:
        raise CheckpointError(
            f"{path} is not a readable VecNormalize statistics file ({type(err).__name__}: {err})."
        ) from err
    return check_statistics(raw, path, obs_shape)


def check_statistics(
    raw: dict[str, Any], source: Path, obs_shape: tuple[int, ...] | None = None
) -> dict[str, Any]:
    """Check statistics read from ``source`` (``statistics_of``'s keys).

    Returns:
        Arrays for the observation mean and variance, Python floats and bools for the rest,
        ``timesteps`` an int (None where the file has none).

    Raises:
        CheckpointError: if they are of another format version, lack a key, have another
            observation shape than ``obs_shape`` (None: any), hold a non-finite or
            negative statistic, a clip that is not > 0 (inf is one: no clipping), a
            gamma outside [0, 1] or an epsilon that is not finite and > 0.
    """
    version = raw.get("format_version")
    if version is None or int(version) != STATISTICS_VERSION:
        raise CheckpointError(
            f"{source} has format_version {version}; this racing-rl reads {STATISTICS_VERSION}."
        )
    scalars = ("obs_count", "return_mean", "return_var", "return_count", *_FLOATS)
    missing = [k for k in ("obs_mean", "obs_var", *scalars, *_FLAGS) if k not in raw]
    if missing:
        raise CheckpointError(f"{source} lacks {', '.join(missing)}: it is damaged.")
    try:
        stats: dict[str, Any] = {
            "obs_mean": np.asarray(raw["obs_mean"], np.float64),
            "obs_var": np.asarray(raw["obs_var"], np.float64),
            **{key: float(raw[key]) for key in scalars},
            **{key: bool(raw[key]) for key in _FLAGS},
            "timesteps": int(raw["timesteps"]) if "timesteps" in raw else None,
        }
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{source} holds a value of the wrong type: {err}.") from err
    shape = stats["obs_mean"].shape
    if stats["obs_var"].shape != shape or (obs_shape is not None and shape != tuple(obs_shape)):
        raise CheckpointError(
            f"{source} holds statistics for observations of shape {shape} (variance "
            f"{stats['obs_var'].shape}); expected {obs_shape}. Keep the statistics beside "
            "the model.zip they were saved with."
        )
    statistics = ("obs_count", "return_mean", "return_var", "return_count")
    values = [stats["obs_mean"], stats["obs_var"], *(stats[k] for k in statistics)]
    if not all(np.isfinite(v).all() for v in values):
        raise CheckpointError(
            f"{source} holds a non-finite statistic (inf or NaN): it is unusable."
        )
    # Settings: a clip may be inf (wrappers.normalize.clip_obs=inf clips nothing); an
    # epsilon of inf would normalise every observation to 0. NaN fails every comparison.
    if not (
        stats["clip_obs"] > 0
        and stats["clip_reward"] > 0
        and 0 <= stats["gamma"] <= 1
        and 0 < stats["epsilon"] < math.inf
    ):
        raise CheckpointError(
            f"{source} holds a setting out of range "
            f"({', '.join(f'{k}={stats[k]}' for k in _FLOATS)}; expected clip_obs and "
            "clip_reward > 0, gamma in [0, 1], epsilon finite and > 0): it is damaged."
        )
    # VecNormalize starts both counts at 1e-4: one <= 0 makes the next update's variance
    # negative (a return_count of -3: NaN rewards), which no check of finiteness catches.
    counts = (stats["obs_count"], stats["return_count"])
    if (stats["obs_var"] < 0).any() or stats["return_var"] < 0 or min(counts) <= 0:
        raise CheckpointError(f"{source} holds a negative variance or count: it is damaged.")
    return stats


def apply_statistics(
    normalizer: VecNormalize, stats: dict[str, Any], settings: bool = True
) -> None:
    """Put statistics and settings from ``read_statistics`` into ``normalizer`` (as
    ``VecNormalize.load`` does with a pickle: the saved settings win). ``settings=False``
    puts the running statistics alone: ``normalizer`` keeps its clips, gamma, epsilon and
    flags (a new run started from another's statistics, ``init_from``)."""
    normalizer.obs_rms = _running(stats["obs_mean"], stats["obs_var"], stats["obs_count"])
    normalizer.ret_rms = _running(
        np.float64(stats["return_mean"]), np.float64(stats["return_var"]), stats["return_count"]
    )
    for key in (*_FLOATS, *_FLAGS) if settings else ():
        setattr(normalizer, key, stats[key])


def frozen_normalizer(stats: dict[str, Any]) -> VecNormalize:
    """A VecNormalize without a VecEnv, for ``normalize_obs`` only: statistics frozen
    (``training=False``), rewards left raw.

    It is built as SB3 builds an unpickled VecNormalize (``__setstate__``, no VecEnv
    set), from plain statistics instead of a pickle.
    """
    shape = stats["obs_mean"].shape
    normalizer = VecNormalize.__new__(VecNormalize)
    normalizer.__setstate__(
        {
            "observation_space": spaces.Box(-np.inf, np.inf, shape, np.float32),
            "norm_obs_keys": None,
            "obs_rms": None,
            "ret_rms": None,
            "old_obs": np.array([]),
            "old_reward": np.array([]),
        }
    )
    apply_statistics(normalizer, stats)
    normalizer.training = False
    normalizer.norm_reward = False
    return normalizer


def is_finite(normalizer: VecNormalize) -> bool:
    """Whether every running statistic of ``normalizer`` is finite."""
    values = (normalizer.obs_rms.mean, normalizer.obs_rms.var, normalizer.ret_rms.var)
    return all(np.isfinite(value).all() for value in values)


def _running(mean: Any, var: Any, count: float) -> RunningMeanStd:
    rms = RunningMeanStd(shape=np.shape(mean))
    rms.mean, rms.var, rms.count = mean, var, count
    return rms

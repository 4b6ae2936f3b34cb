"""Checks of a composed ``train`` config, run before any work starts.

Hydra already refuses keys that are not in the config (``racing-rl train foo=1``); these
checks catch wrong values and the keys Hydra lets through (``+algo.model.foo=1``). Every
failure is a ``ConfigError`` whose message names the key, the value and what is allowed.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.vec_env import VecNormalize

from racing_rl.algos import SET_BY_RACING_RL, algorithm_class
from racing_rl.config import to_container
from racing_rl.errors import ConfigError
from racing_rl.objective import OBJECTIVES
from racing_rl.vec import backend_config

SPLITS = ("train", "validation", "test")
_DEVICE = re.compile(r"^(cpu|auto|mps|cuda(:\d+)?)$")
_HYDRA_KEYS = {"_target_", "_convert_", "_recursive_", "_partial_", "_args_"}


def invalid(key: str, value: Any, allowed: str) -> ConfigError:
    """The error for ``key=value``: says what is allowed."""
    return ConfigError(f"Invalid config: {key}={value!r}; {allowed}.")


def _integer(cfg: DictConfig, key: str, minimum: int, where: str = "") -> int:
    value = OmegaConf.select(cfg, key)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise invalid(f"{where}{key}", value, f"must be an integer >= {minimum}")
    return value


def _number(
    values: Mapping[str, Any], key: str, where: str, low: float, high: float, *, open_low: bool
) -> None:
    if key not in values:
        return
    value = values[key]
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    ok = ok and (value > low if open_low else value >= low) and value <= high
    if not ok:
        bracket = "(" if open_low else "["
        raise invalid(f"{where}.{key}", value, f"must be a number in {bracket}{low}, {high}]")


def check_track_splits(tracks: DictConfig) -> None:
    """The training, validation and test seed ranges must be valid and disjoint.

    Raises:
        ConfigError: naming the offending ranges.
    """
    ranges = {}
    for split in SPLITS:
        value = tracks.get(split)
        if value is None or len(value) != 2 or not int(value[0]) < int(value[1]):
            raise invalid(
                f"tracks.{split}", to_container(value), "must be [start, stop) with start < stop"
            )
        ranges[split] = (int(value[0]), int(value[1]))
    for i, a in enumerate(SPLITS):
        for b in SPLITS[i + 1 :]:
            (a0, a1), (b0, b1) = ranges[a], ranges[b]
            if a0 < b1 and b0 < a1:
                raise ConfigError(
                    f"Invalid config: tracks.{a}={list(ranges[a])} and tracks.{b}="
                    f"{list(ranges[b])} overlap; training, validation and test tracks must be "
                    "disjoint."
                )


def check_wrappers(wrappers: DictConfig) -> None:
    """``wrappers``: frame_stack >= 1, monitor a bool, normalize VecNormalize's arguments."""
    unknown = sorted(set(wrappers) - {"frame_stack", "monitor", "normalize"})
    if unknown:
        raise invalid(
            f"wrappers.{unknown[0]}",
            wrappers[unknown[0]],
            "allowed keys of wrappers: frame_stack, monitor, normalize",
        )
    _integer(wrappers, "frame_stack", minimum=1, where="wrappers.")
    if not isinstance(wrappers.get("monitor", True), bool):
        raise invalid("wrappers.monitor", wrappers.monitor, "must be true or false")
    normalize = wrappers.get("normalize")
    if normalize in (None, False):
        return
    if not isinstance(normalize, DictConfig):
        raise invalid(
            "wrappers.normalize", normalize, "must be null or VecNormalize's keyword arguments"
        )
    allowed = set(inspect.signature(VecNormalize.__init__).parameters) - {"self", "venv", "gamma"}
    for key in normalize:
        if key not in allowed:
            raise invalid(
                f"wrappers.normalize.{key}",
                normalize[key],
                f"not an argument of VecNormalize (allowed: {', '.join(sorted(allowed))}; "
                "gamma comes from the algorithm)",
            )


def check_algo(algo: DictConfig, num_envs: int) -> None:
    """``algo``: an importable SB3 class, constructor arguments it accepts, sane values.

    Args:
        algo: the ``algo`` config group.
        num_envs: VecEnv slots (n_venvs × agents_per_venv), to check PPO's batch size
            against the rollout.
    """
    cls = algorithm_class(algo)
    model = to_container(algo.model)
    parameters = inspect.signature(cls.__init__).parameters
    accepted = set(parameters) - {"self", "env"}
    for key, value in model.items():
        if key in _HYDRA_KEYS:
            continue
        if key in SET_BY_RACING_RL:
            raise invalid(
                f"algo.model.{key}",
                value,
                f"racing-rl sets {key} itself (use the root keys seed and device)",
            )
        if key not in accepted:
            raise invalid(
                f"algo.model.{key}",
                value,
                f"not an argument of {cls.__name__} "
                f"(allowed: {', '.join(sorted(accepted - SET_BY_RACING_RL))})",
            )
    policy = model.get("policy")
    if isinstance(policy, str) and "." not in policy and policy not in cls.policy_aliases:
        raise invalid(
            "algo.model.policy",
            policy,
            f"{cls.__name__} policies are {', '.join(cls.policy_aliases)}",
        )
    where = "algo.model"
    _number(model, "gamma", where, 0.0, 1.0, open_low=True)
    _number(model, "gae_lambda", where, 0.0, 1.0, open_low=False)
    _number(model, "tau", where, 0.0, 1.0, open_low=True)
    if not isinstance(model.get("learning_rate"), dict):  # a schedule is checked by its class
        _number(model, "learning_rate", where, 0.0, float("inf"), open_low=True)
    for key in ("batch_size", "n_epochs", "n_steps", "buffer_size"):
        if key in model:
            _integer(algo.model, key, minimum=1, where="algo.model.")
    if "learning_starts" in model:
        _integer(algo.model, "learning_starts", minimum=0, where="algo.model.")
    if issubclass(cls, OnPolicyAlgorithm):
        n_steps = model.get("n_steps", parameters["n_steps"].default)
        batch = model.get("batch_size", parameters["batch_size"].default)
        rollout = n_steps * num_envs
        if rollout < 2:
            raise invalid(
                "algo.model.n_steps",
                n_steps,
                f"the rollout n_steps × {num_envs} cars must hold at least 2 steps",
            )
        if batch > rollout:
            raise invalid(
                "algo.model.batch_size",
                batch,
                f"must be <= the rollout, n_steps × cars = {n_steps} × {num_envs} = {rollout}",
            )
    if issubclass(cls, OffPolicyAlgorithm):
        buffer = model.get("buffer_size", parameters["buffer_size"].default)
        batch = model.get("batch_size", parameters["batch_size"].default)
        if batch > buffer:
            raise invalid(
                "algo.model.batch_size", batch, f"must be <= algo.model.buffer_size = {buffer}"
            )


def check_train_config(cfg: DictConfig) -> None:
    """Check a composed ``train`` config; raise before anything is built.

    Raises:
        ConfigError: on the first invalid value, naming the key, the value and what is
            allowed.
    """
    _integer(cfg, "seed", minimum=0)
    _integer(cfg, "total_timesteps", minimum=1)
    n_venvs = _integer(cfg, "n_venvs", minimum=1)
    agents = _integer(cfg, "agents_per_venv", minimum=1)
    _integer(cfg, "torch_threads", minimum=1)
    _integer(cfg, "checkpoint.every", minimum=0)
    _integer(cfg, "validation.every", minimum=0)
    _integer(cfg, "validation.max_steps", minimum=1)
    if OmegaConf.select(cfg, "validation.video") is not None:
        _integer(cfg, "validation.video.every", minimum=0)
        _integer(cfg, "validation.video.max_steps", minimum=1)
        _integer(cfg, "validation.video.size", minimum=16)
    if not isinstance(cfg.device, str) or not _DEVICE.match(cfg.device):
        raise invalid("device", cfg.device, "must be cpu, cuda, cuda:<index>, mps or auto")
    if not isinstance(cfg.progress_bar, bool):
        raise invalid("progress_bar", cfg.progress_bar, "must be true or false")
    if cfg.objective not in OBJECTIVES:
        raise invalid("objective", cfg.objective, f"must be one of {', '.join(OBJECTIVES)}")
    check_track_splits(cfg.tracks)
    check_wrappers(cfg.wrappers)
    backend = backend_config(cfg.backend)
    limit = getattr(backend, "max_environments", None)  # a Roblox game's collision groups
    needed = n_venvs + (1 if cfg.validation.every > 0 else 0)
    if limit is not None and needed > limit:
        raise ConfigError(
            f"Invalid config: n_venvs={n_venvs} training environments"
            f"{' + 1 for validation' if needed > n_venvs else ''} = {needed} in the game, "
            f"which keeps at most backend.max_environments={limit} apart (a collision group "
            f"each). Lower n_venvs to {limit - (needed - n_venvs)} or less (more "
            "agents_per_venv keeps the cars), or turn validation off (validation.every=0)."
        )
    check_algo(cfg.algo, n_venvs * agents)

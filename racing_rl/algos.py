"""The algorithm registry: ``conf/algo/<name>.yaml`` is the whole registry.

Each file names an SB3 on- or off-policy algorithm in ``model._target_`` with its constructor
arguments; Hydra instantiates it. Adding an algorithm needs only a new YAML file.
"""

from __future__ import annotations

import inspect

import hydra
from omegaconf import DictConfig
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.vec_env import VecEnv

from racing_rl.errors import ConfigError, one_line

#: Constructor arguments racing-rl passes itself; an algorithm YAML must not set them.
SET_BY_RACING_RL = frozenset({"seed", "device", "verbose", "tensorboard_log"})


def algorithm_class(algo: DictConfig) -> type[BaseAlgorithm]:
    """The class named by ``algo.model._target_``: an SB3 ``OnPolicyAlgorithm`` or
    ``OffPolicyAlgorithm``, whose rollouts step the VecEnv as training's callbacks read
    them (``dones``, ``infos``) and whose γ VecNormalize's return statistics take.

    Raises:
        ConfigError: if it cannot be imported, or is not such a class (sb3-contrib's ARS,
            a ``BaseAlgorithm`` of neither kind, has no γ and evaluates candidate policies
            instead).
    """
    target = algo.get("model", {}).get("_target_")
    try:
        cls = hydra.utils.get_class(target)
    except Exception as err:
        raise ConfigError(
            f"algo.model._target_ = {target!r} cannot be imported: {err}. Name an SB3-compatible "
            "class such as stable_baselines3.PPO."
        ) from err
    if not issubclass(cls, BaseAlgorithm):
        raise ConfigError(
            f"algo.model._target_ = {target!r} is not a stable_baselines3 BaseAlgorithm."
        )
    if not issubclass(cls, OnPolicyAlgorithm | OffPolicyAlgorithm):
        raise ConfigError(
            f"algo.model._target_ = {target!r} is neither an on-policy nor an off-policy "
            "stable_baselines3 algorithm (OnPolicyAlgorithm, OffPolicyAlgorithm), which "
            "racing-rl trains: name one such as stable_baselines3.PPO, sb3_contrib.TRPO, "
            "stable_baselines3.SAC or sb3_contrib.TQC."
        )
    return cls


def constructor_parameters(cls: type) -> dict[str, inspect.Parameter]:
    """The keyword arguments ``cls(...)`` accepts, by name: its ``__init__``'s and, while
    that passes ``**kwargs`` on (``racing_rl.teacher.TeacherPPO``), its bases'. ``self``,
    ``*args`` and ``**kwargs`` themselves are left out."""
    parameters: dict[str, inspect.Parameter] = {}
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        own = inspect.signature(klass.__init__).parameters
        variadic = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
        for name, parameter in own.items():
            if name != "self" and parameter.kind not in variadic:
                parameters.setdefault(name, parameter)
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in own.values()):
            break
    return parameters


def discount(algo: DictConfig) -> float:
    """The algorithm's γ: ``algo.model.gamma``, or its class's default (SB3's 0.99) when
    the config leaves it out. VecNormalize's return statistics use the same γ.

    Raises:
        ConfigError: if ``algo.model._target_`` is not an SB3 algorithm.
    """
    gamma = algo.model.get("gamma")
    if gamma is None:
        gamma = constructor_parameters(algorithm_class(algo))["gamma"].default
    return float(gamma)


def make_model(algo: DictConfig, env: VecEnv, *, seed: int, device: str) -> BaseAlgorithm:
    """Instantiate ``algo.model`` on ``env`` (its logger is set by the caller, ``set_logger``).

    Raises:
        ConfigError: if the class is unknown or rejects its arguments.
    """
    algorithm_class(algo)
    try:
        return hydra.utils.instantiate(
            algo.model,
            env=env,
            seed=seed,
            device=device,
            verbose=0,
            _convert_="all",
        )
    except Exception as err:
        # The class's own ConfigError says what to fix; Hydra's wrapper adds only noise.
        why = err.__cause__ if isinstance(err.__cause__, ConfigError) else err
        raise ConfigError(
            f"Could not create algorithm {algo.get('name')!r}: {one_line(why)}"
        ) from err

"""The ``backend`` config group, checked: ``RaceConfig`` (the built-in simulator) or
``RobloxConfig`` (a Roblox game over the bridge)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig

from racing_rl.config import dataclass_from_dict, to_container
from racing_rl.envs.config import RaceConfig
from racing_rl.errors import ConfigError

if TYPE_CHECKING:
    from racing_rl.bridge.env import RobloxConfig

BACKENDS = ("pygame", "roblox")
"""``backend.name`` values: the built-in simulator, a Roblox game."""


def race_config(backend: DictConfig, episode: dict[str, Any] | None = None) -> RaceConfig:
    """The simulator's ``RaceConfig`` from the ``backend`` config group.

    Args:
        backend: the ``backend`` config group (``name: pygame``).
        episode: overrides of ``backend.episode`` (e.g. grid spawn for evaluation).

    Raises:
        ConfigError: on an unknown key or an invalid value, naming it.
    """
    return dataclass_from_dict(RaceConfig, _settings(backend, episode), "backend")


def roblox_config(backend: DictConfig, episode: dict[str, Any] | None = None) -> RobloxConfig:
    """The Roblox backend's ``RobloxConfig`` from the ``backend`` config group.

    Raises:
        ConfigError: on an unknown key or an invalid value (e.g. a non-loopback host
            without a token), naming it.
    """
    from racing_rl.bridge.env import RobloxConfig

    return dataclass_from_dict(RobloxConfig, _settings(backend, episode), "backend")


def backend_config(
    backend: DictConfig, episode: dict[str, Any] | None = None
) -> RaceConfig | RobloxConfig:
    """The checked settings of either backend (``backend.name``: pygame | roblox).

    Raises:
        ConfigError: on an unknown backend, an unknown key or an invalid value.
    """
    name = backend.get("name")
    if name == "pygame":
        return race_config(backend, episode)
    if name == "roblox":
        return roblox_config(backend, episode)
    raise ConfigError(
        f"Invalid config: backend.name={name!r}; must be one of {', '.join(BACKENDS)} "
        "(backend=pygame: the built-in simulator; backend=roblox: a game over the bridge)."
    )


def _settings(backend: DictConfig, episode: dict[str, Any] | None) -> dict[str, Any]:
    settings = {k: v for k, v in to_container(backend).items() if k != "name"}
    settings["episode"] = {**settings.get("episode", {}), **(episode or {})}
    return settings

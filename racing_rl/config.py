"""Turning Hydra/OmegaConf mappings into the frozen config dataclasses, with clear errors."""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from omegaconf import DictConfig, OmegaConf

from racing_rl.errors import ConfigError

T = TypeVar("T")


def to_container(values: Any) -> Any:
    """Resolve an OmegaConf node into plain Python containers; pass other values through."""
    if isinstance(values, DictConfig) or OmegaConf.is_list(values):
        return OmegaConf.to_container(values, resolve=True)
    return values


def dataclass_from_dict(cls: type[T], values: Mapping[str, Any] | None, where: str) -> T:
    """Build the (possibly nested) dataclass ``cls`` from a mapping.

    Args:
        cls: a dataclass type; fields that are dataclasses are built recursively.
        values: field values; missing fields keep their defaults. A DictConfig is fine.
        where: the config path of ``values`` (e.g. ``"backend.track"``), for messages.

    Returns:
        The dataclass instance.

    Raises:
        ConfigError: on an unknown key or a value the dataclass rejects, naming the key.
    """
    values = dict(to_container(values) or {})
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls) if f.init and not f.name.startswith("_")}
    unknown = sorted(set(values) - fields)
    if unknown:
        raise ConfigError(
            f"Unknown key(s) {', '.join(f'{where}.{k}' for k in unknown)}. "
            f"Allowed keys of {where}: {', '.join(sorted(fields))}."
        )
    kwargs = {}
    for name, value in values.items():
        kind = hints[name]
        if dataclasses.is_dataclass(kind) and isinstance(value, Mapping | type(None)):
            value = dataclass_from_dict(kind, value, f"{where}.{name}")
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except ConfigError as err:
        raise ConfigError(f"In {where}: {err}") from err
    except (TypeError, ValueError) as err:
        raise ConfigError(f"Invalid value in {where}: {err}") from err

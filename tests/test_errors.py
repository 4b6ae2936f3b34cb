"""``check_range``, and every settings dataclass refusing NaN, infinities and values out of
range through it."""

from __future__ import annotations

import dataclasses
import math
import re

import pytest
from runs import racing_rl

from racing_rl.bridge.config import GameRules, RobloxConfig, ServerConfig
from racing_rl.config import backend_config
from racing_rl.envs.config import EpisodeConfig
from racing_rl.envs.rewards import RewardConfig
from racing_rl.errors import ConfigError, check_range
from racing_rl.sim.car import CarConfig
from racing_rl.sim.sensors import SensorConfig
from racing_rl.sim.track import TrackConfig
from racing_rl.sim.world import RaceRules

SETTINGS = (
    CarConfig,
    TrackConfig,
    SensorConfig,
    RaceRules,
    RewardConfig,
    EpisodeConfig,
    ServerConfig,
    GameRules,
    RobloxConfig,
)
#: Settings where +inf means something (no limit), and is accepted.
INFINITY_MEANS = {
    (ServerConfig, "ping_after"): "never ping",
    (RobloxConfig, "connect_timeout"): "wait for ever",
    (RobloxConfig, "reconnect_timeout"): "wait for ever",
}
FLOAT_FIELDS = [
    (cls, f.name) for cls in SETTINGS for f in dataclasses.fields(cls) if f.type in (float, "float")
]


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf], ids=str)
@pytest.mark.parametrize(("cls", "name"), FLOAT_FIELDS, ids=lambda x: getattr(x, "__name__", x))
def test_every_float_setting_refuses_nan_and_infinities(cls, name, value):
    if value == math.inf and (cls, name) in INFINITY_MEANS:
        cls(**{name: value})  # no limit
        return
    # The message names the setting (as in ``car.max_speed``) and the value.
    with pytest.raises(ConfigError, match=rf"\b{name}\b.*{re.escape(str(value))}\b"):
        cls(**{name: value})


#: Values of the wrong type for each kind of setting: a settings dataclass built by hand,
#: not from Hydra's typed YAML, got them as far as a bare ``TypeError`` in a comparison,
#: or was accepted (``"false"`` is truthy, 2.5 environments).
WRONG_TYPE = {int: ["3", 2.5, None, True], bool: ["false", 1, None], int | None: ["3", 2.5]}


@pytest.mark.parametrize(
    ("cls", "name", "value"),
    [
        (cls, f.name, value)
        for cls in SETTINGS
        for f in dataclasses.fields(cls)
        for kind, values in WRONG_TYPE.items()
        if f.type in (kind, str(kind).replace("<class '", "").replace("'>", ""))
        for value in values
    ],
    ids=lambda x: getattr(x, "__name__", str(x)),
)
def test_every_whole_number_and_switch_refuses_a_value_of_another_type(cls, name, value):
    with pytest.raises(ConfigError, match=rf"\b{name}\b"):
        cls(**{name: value})


#: Bounds (``check_range``'s words) of settings whose negative values mean nothing: a
#: heading or lateral bound of -s draws from ±s as s would (a lateral one then
#: uncapped by the walls), a speed bound spawns reversing cars, a clearance or spacing
#: below 0 acts as 0, and a gap of 0 m or less lets an obstacle close the track.
NOT_NEGATIVE = [
    (TrackConfig, "min_gap", "> 0"),
    (TrackConfig, "obstacle_clearance", ">= 0"),
    (TrackConfig, "obstacle_spacing", ">= 0"),
    (EpisodeConfig, "max_spawn_speed", ">= 0"),
    (EpisodeConfig, "max_spawn_lateral", ">= 0"),
    (EpisodeConfig, "max_spawn_heading", ">= 0"),
]


@pytest.mark.parametrize(
    ("cls", "name", "rule"), NOT_NEGATIVE, ids=lambda x: getattr(x, "__name__", x)
)
def test_a_bound_refuses_negative_values_and_says_its_range(cls, name, rule):
    section = "track" if cls is TrackConfig else "episode"
    bad = [-1.0, 0.0] if rule == "> 0" else [-1.0]
    for value in bad:
        with pytest.raises(
            ConfigError, match=f"^{re.escape(f'{section}.{name} must be {rule}, got {value}.')}$"
        ):
            cls(**{name: value})
    if rule == ">= 0":
        cls(**{name: 0.0})  # none: no clearance, every car at rest, ...


def test_a_stretch_is_refused_outside_0_to_1():
    """stretch=1.5 drew x-scales 1 + U(-1.5, 1.5): 0 divided y by zero, below 0 mirrored
    the loop; a stretch of -s draws from ±s as s would."""
    for value in (-1.0, 1.0, 1.5):
        with pytest.raises(ConfigError, match=re.escape("track.stretch must be in [0, 1), got")):
            TrackConfig(stretch=value)
    TrackConfig(stretch=0.0)
    TrackConfig(stretch=0.99)


def test_a_backend_setting_is_named_by_its_path():
    with pytest.raises(ConfigError) as info:
        backend_config({"name": "pygame", "car": {"max_speed": math.nan}})
    assert str(info.value) == (
        "Invalid config: backend.car.max_speed must be a finite number > 0, got nan."
    )
    with pytest.raises(ConfigError, match=re.escape("backend.server.ping_after must be > 0, or")):
        backend_config({"name": "roblox", "server": {"ping_after": math.nan}})


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (("x", math.nan, 0), {"low_open": True}, "x must be a finite number > 0, got nan."),
        (("x", -1, 0), {"low_open": True}, "x must be > 0, got -1."),
        (("x", math.inf, 0, 1), {}, "x must be a finite number in [0, 1], got inf."),
        (("x", 1, 0, 1), {"high_open": True}, "x must be in [0, 1), got 1."),
        (("x", 2, None, 1), {}, "x must be <= 1, got 2."),
        (("x", -math.inf), {}, "x must be a finite number, got -inf."),
        (("x", math.nan, 0), {"inf": "no limit"}, "x must be >= 0, or inf (no limit), got nan."),
        (
            ("x", -1, 0),
            {"hint": "It is 2 by default."},
            "x must be >= 0, got -1. It is 2 by default.",
        ),
    ],
)
def test_check_range_says_what_is_allowed(args, kwargs, message):
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        check_range(*args, **kwargs)


def test_check_range_passes_numbers_in_range():
    check_range("x", 0, 0)
    check_range("x", 0.5, 0, 1, low_open=True, high_open=True)
    check_range("x", -1e300)
    check_range("x", math.inf, 0, inf="no limit")


def test_the_cli_refuses_a_nan_setting_before_the_run_dir(tmp_path):
    run_dir = tmp_path / "run"
    result = racing_rl(
        "train",
        "backend.car.max_speed=nan",
        "total_timesteps=100",
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 1  # as every config error
    why = "backend.car.max_speed must be a finite number > 0, got nan."
    assert result.stderr.splitlines() == [f"racing-rl train: Invalid config: {why}"]
    assert not run_dir.exists()

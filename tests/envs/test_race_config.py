"""A ``RaceConfig`` and its parts built by hand in Python (not from Hydra's typed YAML)
refuse values of the wrong type with a ``ConfigError`` naming the key."""

import numpy as np
import pytest

from racing_rl.envs.config import EpisodeConfig, RaceConfig
from racing_rl.envs.rewards import RewardConfig
from racing_rl.errors import ConfigError
from racing_rl.sim.car import CarConfig
from racing_rl.sim.sensors import SensorConfig
from racing_rl.sim.track import TrackConfig
from racing_rl.sim.world import RaceRules

# (settings class, the wrong value, the message). Each was a bare TypeError from a
# comparison ("'<=' not supported between instances of 'str' and 'int'") or, the
# last ones, taken: 10.5 obstacles or harmonics, True for a width, "false" (truthy) for a
# switch, which turned it on.
WRONG_TYPES = [
    (TrackConfig, {"width": "10"}, "track.width must be a finite number > 0, got '10'."),
    (TrackConfig, {"stretch": None}, "track.stretch must be a finite number in [0, 1), got None."),
    (TrackConfig, {"obstacle_radius_max": [3]}, "obstacle_radius_max must be a finite number"),
    (TrackConfig, {"obstacle_radius_min": "2"}, "track.obstacle_radius_min must be a finite"),
    (TrackConfig, {"n_obstacles": 2.5}, "track.n_obstacles must be a whole number >= 0, got 2.5"),
    (TrackConfig, {"n_harmonics": "5"}, "track.n_harmonics must be a whole number >= 1, got '5'"),
    (TrackConfig, {"max_attempts": None}, "track.max_attempts must be a whole number >= 1"),
    (TrackConfig, {"base_radius": True}, "track.base_radius must be a finite number > 0, got"),
    (CarConfig, {"max_speed": None}, "car.max_speed must be a finite number > 0, got None."),
    (CarConfig, {"drag": "0.1"}, "car.drag must be a finite number >= 0, got '0.1'."),
    (CarConfig, {"substeps": "2"}, "car.substeps must be a whole number >= 1, got '2'."),
    (SensorConfig, {"n_rays": 10.5}, "sensors.n_rays must be a whole number >= 1, got 10.5."),
    (SensorConfig, {"range": [50]}, "sensors.range must be a finite number > 0, got [50]."),
    (SensorConfig, {"detect_cars": "false"}, "detect_cars must be true or false, got 'false'."),
    (RaceRules, {"dt": "0.1"}, "rules.dt must be a finite number > 0, got '0.1'."),
    (RaceRules, {"car_collisions": 1}, "rules.car_collisions must be true or false, got 1."),
    (EpisodeConfig, {"max_steps": 1500.0}, "episode.max_steps must be a whole number >= 1"),
    (EpisodeConfig, {"laps": None}, "episode.laps must be a whole number >= 0, got None."),
    (EpisodeConfig, {"grid_start_prob": "0.5"}, "must be a finite number in [0, 1], got '0.5'."),
    (EpisodeConfig, {"rotate_grid": "no"}, "episode.rotate_grid must be true or false"),
    (RewardConfig, {"crash": None}, "reward.crash must be a finite number, got None."),
]


@pytest.mark.parametrize(
    ("settings", "value", "message"),
    WRONG_TYPES,
    ids=[f"{s.__name__}-{next(iter(v))}" for s, v, _ in WRONG_TYPES],
)
def test_a_value_of_the_wrong_type_is_refused_naming_the_key(settings, value, message):
    with pytest.raises(ConfigError) as raised:
        settings(**value)
    assert message in str(raised.value)


def test_numpy_numbers_and_switches_are_taken():
    """What a setting computed with NumPy holds: its scalars are numbers and bools."""
    config = RaceConfig(
        track=TrackConfig(width=np.float64(14.0), n_obstacles=np.int64(3)),
        sensors=SensorConfig(n_rays=np.int32(10), detect_cars=np.bool_(True)),
        rules=RaceRules(dt=np.float32(0.05), car_collisions=np.True_),
    )
    assert config.observation_size == 13

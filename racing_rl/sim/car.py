"""Vectorised car dynamics: a kinematic bicycle model for N cars at once.

State per car (arrays of shape (N,)): position [m], heading [rad] (0 = +x,
counter-clockwise positive), signed speed along the heading [m/s] and nitro fuel [-].

Per physics sub-step of length dt (semi-implicit Euler):

    a      = a_drive + a_brake/reverse - c_drag·v·|v| - c_roll·v
    v'     = clip(v + a·dt, -v_reverse_max, v_max)          (braking stops at 0)
    κ      = clip(tan(δ) / L, -a_grip / v'^2, a_grip / v'^2)  (lateral-grip limit)
    ψ'     = ψ + v'·κ·dt
    p'     = p + v'·(cos ψ', sin ψ')·dt

The curvature clip is the kinematic bicycle model (Rajamani, *Vehicle Dynamics and
Control*, §2.2) with a friction-circle bound on lateral acceleration v²κ ≤ a_grip: above
the corner speed sqrt(a_grip / κ) the car understeers, so corner speed matters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from racing_rl.errors import ConfigError, check_integer, check_range

FloatArray = NDArray[np.float64]

#: Floor of speed² in the grip limit a / v² [m²/s²]: a car at rest may steer fully.
MIN_SPEED_SQUARED = 1e-9
#: Fuel below this is empty [-]: no boost from rounding left-overs.
EMPTY_FUEL = 1e-9
#: Floor of |curvature| in the corner speed sqrt(a / |κ|) [1/m]: a straight is not infinite.
MIN_CURVATURE = 1e-9


@dataclass(frozen=True)
class CarConfig:
    """Car parameters; every unit is SI and given in brackets, every number finite.

    Attributes:
        length: body length, for drawing [m].
        width: body width [m]; the collision radius is half of it.
        wheelbase: distance between the axles [m].
        max_steer: front-wheel angle at full steering [rad].
        engine_accel: acceleration at full throttle, before resistance [m/s²].
        brake_decel: deceleration at full brake [m/s²].
        reverse_accel: acceleration in reverse at full negative throttle [m/s²].
        max_reverse_speed: fastest reverse speed [m/s].
        drag: quadratic air-drag coefficient [1/m]. The top speed solves drag·v² +
            rolling_resistance·v = engine_accel (× nitro_multiplier with nitro): 29 m/s
            for the defaults, 37 m/s with nitro.
        rolling_resistance: linear resistance coefficient [1/s].
        lateral_grip: largest lateral acceleration the tyres hold [m/s²].
        max_speed: hard speed limit, also the observation's speed scale [m/s]; the
            defaults' 45 is above the top speed (a scale: the observation reaches 0.83).
        nitro_multiplier: engine acceleration factor while nitro burns [-].
        nitro_drain: fuel burnt per second of nitro [1/s] (fuel is 0 … 1).
        nitro_refill: fuel regained per second without nitro [1/s].
        substeps: physics sub-steps per ``step_cars`` call: per environment step, or per
            piece of a step longer than 1/15 s (``racing_rl.sim.world.RaceRules.pieces``).
    """

    length: float = 4.0
    width: float = 2.0
    wheelbase: float = 2.6
    max_steer: float = 0.5
    engine_accel: float = 9.0
    brake_decel: float = 20.0
    reverse_accel: float = 4.0
    max_reverse_speed: float = 6.0
    drag: float = 0.009
    rolling_resistance: float = 0.05
    lateral_grip: float = 14.0
    max_speed: float = 45.0
    nitro_multiplier: float = 1.6
    nitro_drain: float = 0.5
    nitro_refill: float = 0.1
    substeps: int = 1

    def __post_init__(self) -> None:
        check_integer("car.substeps", self.substeps, 1)
        for name, value in vars(self).items():
            resistance = name in ("drag", "rolling_resistance")  # 0: none
            check_range(f"car.{name}", value, 0, low_open=not resistance)
        check_range("car.nitro_multiplier", self.nitro_multiplier, 1)
        if self.max_steer >= math.pi / 2:  # tan() changes sign there: full left turns right
            raise ConfigError(
                f"car.max_steer must be below pi/2 rad (a right angle), got {self.max_steer}."
            )

    @property
    def radius(self) -> float:
        """Collision radius [m]: half the body width."""
        return self.width / 2

    def corner_speed(self, curvature: FloatArray, grip_share: float = 1.0) -> FloatArray:
        """Fastest speed held on a path of the given curvature [m/s], same shape as
        ``curvature`` [1/m]: sqrt(grip_share · a_grip / |κ|), from a_lat = v² κ.

        ``grip_share`` is the share of ``lateral_grip`` a driver plans with (a scripted
        driver's safety margin, ``DriverConfig.grip_safety``)."""
        return np.sqrt(
            grip_share * self.lateral_grip / np.maximum(np.abs(curvature), MIN_CURVATURE)
        )


@dataclass
class CarState:
    """Mutable state of N cars; every array has shape (N,) except ``position`` (N, 2).

    Attributes:
        position: centre of each car [m].
        heading: yaw [rad], 0 = +x, counter-clockwise positive.
        speed: signed speed along the heading [m/s]; negative is reverse.
        fuel: nitro fuel [-], 0 … 1.
    """

    position: FloatArray
    heading: FloatArray
    speed: FloatArray
    fuel: FloatArray

    @classmethod
    def zeros(cls, n_cars: int) -> CarState:
        """N cars at the origin, facing +x, at rest, with full nitro."""
        return cls(np.zeros((n_cars, 2)), np.zeros(n_cars), np.zeros(n_cars), np.ones(n_cars))


def step_cars(state: CarState, actions: FloatArray, dt: float, config: CarConfig) -> FloatArray:
    """Advance every car by ``dt`` seconds in place (``config.substeps`` sub-steps).

    Written for small N as much as large: a few dozen NumPy calls per sub-step, no
    ``np.clip``/``np.linalg.norm`` (slow for short arrays), no loop over cars.

    Args:
        state: car state, updated in place.
        actions: shape (N, 3), each in [-1, 1]: throttle (negative brakes, then
            reverses), steering (-1 full left, +1 full right), nitro (> 0.5 burns
            while fuel remains; a tank with less than a (sub)step's burn boosts that
            share of the step).
        dt: environment step [s].
        config: car parameters.

    Returns:
        Path length each car drove, shape (N,) [m].
    """
    throttle = np.minimum(np.maximum(actions[:, 0], -1.0), 1.0)
    steer = np.minimum(np.maximum(actions[:, 1], -1.0), 1.0)
    wants_nitro = actions[:, 2] > 0.5
    # Steering -1 is left; heading is counter-clockwise positive, hence the minus.
    curvature_cmd = np.tan(-config.max_steer * steer) / config.wheelbase
    drive = np.maximum(throttle, 0.0) * config.engine_accel
    pedal = np.minimum(throttle, 0.0)
    h = dt / config.substeps
    full_burn = config.nitro_drain * h  # the fuel of one substep of nitro
    travelled = None
    for _ in range(config.substeps):
        # A substep boosts by the share of a full burn its fuel pays for: a tank with less
        # than one substep's fuel boosts part of it (a full boost for any fuel left let a
        # car flicking nitro on and off boost half of the time on a sixth of the fuel).
        burn = np.where(wants_nitro, np.minimum(state.fuel, full_burn), 0.0)
        speed = state.speed
        braking = (pedal < 0.0) & (speed > 0.0)
        pedal_accel = pedal * np.where(braking, config.brake_decel, config.reverse_accel)
        boost = 1.0 + (config.nitro_multiplier - 1.0) * (burn / full_burn)
        resistance = (config.drag * np.abs(speed) + config.rolling_resistance) * speed
        new_speed = speed + (drive * boost + pedal_accel - resistance) * h
        # Braking stops the car; it does not reverse it.
        slowest = np.where(braking, 0.0, -config.max_reverse_speed)
        new_speed = np.minimum(np.maximum(new_speed, slowest), config.max_speed)
        grip = config.lateral_grip / np.maximum(new_speed * new_speed, MIN_SPEED_SQUARED)
        curvature = np.minimum(np.maximum(curvature_cmd, -grip), grip)
        heading = state.heading + new_speed * curvature * h
        step = new_speed * h
        travelled = np.abs(step) if travelled is None else travelled + np.abs(step)
        state.position[:, 0] += step * np.cos(heading)
        state.position[:, 1] += step * np.sin(heading)
        state.heading = heading
        state.speed = new_speed
        # Fuel refills only while nitro is not asked for; a held button on an empty tank
        # neither burns nor refills.
        fuel = np.where(wants_nitro, state.fuel - burn, state.fuel + config.nitro_refill * h)
        fuel[fuel < EMPTY_FUEL] = 0.0
        state.fuel = np.minimum(fuel, 1.0)
    state.heading = np.mod(state.heading + np.pi, 2 * np.pi) - np.pi
    return travelled

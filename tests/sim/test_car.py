"""Car dynamics against closed forms (kinematic bicycle, grip limit, brakes, nitro)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from racing_rl.errors import ConfigError
from racing_rl.sim.car import CarConfig, CarState, step_cars

DT = 1.0 / 15.0
#: No resistance, so speeds follow the closed forms exactly.
FRICTIONLESS = CarConfig(drag=0.0, rolling_resistance=0.0)


def _drive(
    state: CarState, action: tuple[float, float, float], seconds: float, config: CarConfig
) -> None:
    steps = round(seconds / DT)
    actions = np.tile(np.asarray(action, dtype=np.float64), (len(state.speed), 1))
    for _ in range(steps):
        step_cars(state, actions, DT, config)


def _state(n: int = 1, speed: float = 0.0, heading: float = 0.0) -> CarState:
    state = CarState.zeros(n)
    state.speed[:] = speed
    state.heading[:] = heading
    return state


@pytest.mark.parametrize("heading", [0.0, 1.0, -2.5])
def test_coasting_without_resistance_travels_speed_times_time(heading: float) -> None:
    state = _state(speed=20.0, heading=heading)
    _drive(state, (0.0, 0.0, 0.0), 2.0, FRICTIONLESS)
    np.testing.assert_allclose(state.speed, 20.0)
    np.testing.assert_allclose(
        state.position[0], 40.0 * np.array([math.cos(heading), math.sin(heading)]), atol=1e-9
    )
    assert state.heading[0] == pytest.approx(heading, abs=1e-12)


@pytest.mark.parametrize("seconds", [0.4, 1.0, 3.0])
def test_full_throttle_from_rest_reaches_engine_accel_times_t(seconds: float) -> None:
    state = _state()
    _drive(state, (1.0, 0.0, 0.0), seconds, FRICTIONLESS)
    assert state.speed[0] == pytest.approx(FRICTIONLESS.engine_accel * seconds, rel=1e-9)
    # Semi-implicit Euler: x = a·h²·n(n+1)/2 for n steps of h.
    n = round(seconds / DT)
    expected = FRICTIONLESS.engine_accel * DT * DT * n * (n + 1) / 2
    assert state.position[0, 0] == pytest.approx(expected, rel=1e-9)
    assert state.position[0, 1] == pytest.approx(0.0, abs=1e-12)


def test_speed_never_exceeds_max_speed() -> None:
    state = _state(speed=FRICTIONLESS.max_speed - 1.0)
    _drive(state, (1.0, 0.0, 1.0), 2.0, FRICTIONLESS)
    assert state.speed[0] == FRICTIONLESS.max_speed


def test_rolling_resistance_alone_decays_speed_exponentially() -> None:
    # dv/dt = −c·v: explicit Euler gives v₀·(1 − c·h)ⁿ, which tends to v₀·e^(−c·t).
    config = CarConfig(drag=0.0, rolling_resistance=0.5)
    state = _state(speed=30.0)
    _drive(state, (0.0, 0.0, 0.0), 2.0, config)
    assert state.speed[0] == pytest.approx(30.0 * (1.0 - 0.5 * DT) ** 30, rel=1e-12)
    assert state.speed[0] == pytest.approx(30.0 * math.exp(-0.5 * 2.0), rel=0.02)


def test_air_drag_alone_slows_a_coasting_car_as_one_over_time() -> None:
    # dv/dt = −k·v²: v(t) = v₀ / (1 + k·v₀·t) (30 m/s, 2 s: 19.48 m/s).
    config = CarConfig(drag=0.009, rolling_resistance=0.0)
    state = _state(speed=30.0)
    _drive(state, (0.0, 0.0, 0.0), 2.0, config)
    assert state.speed[0] == pytest.approx(30.0 / (1.0 + 0.009 * 30.0 * 2.0), rel=0.01)


def test_top_speed_with_drag_is_near_sqrt_engine_over_drag() -> None:
    config = CarConfig(rolling_resistance=0.0, max_speed=100.0)
    state = _state()
    _drive(state, (1.0, 0.0, 0.0), 60.0, config)
    assert state.speed[0] == pytest.approx(math.sqrt(config.engine_accel / config.drag), rel=1e-3)


@pytest.mark.parametrize("speed", [2.0, 5.0])
def test_low_speed_full_steer_follows_the_bicycle_radius(speed: float) -> None:
    config = FRICTIONLESS
    radius = config.wheelbase / math.tan(config.max_steer)
    assert speed * speed / radius < config.lateral_grip  # below the grip limit
    steps = 18
    state = _state(speed=speed)
    positions = []
    for _ in range(steps):
        step_cars(state, np.array([[0.0, -1.0, 0.0]]), DT, config)
        positions.append(state.position[0].copy())
    turned = speed * steps * DT / radius
    assert state.heading[0] == pytest.approx(turned, rel=1e-9)
    # The positions lie on a circle of that radius (Kåsa least-squares circle fit);
    # the discrete polygon's circumradius differs by O(Δψ²/24) only.
    xy = np.array(positions)
    design = np.column_stack([2 * xy, np.ones(len(xy))])
    (cx, cy, c), *_ = np.linalg.lstsq(design, (xy**2).sum(axis=1), rcond=None)
    fitted = math.sqrt(c + cx * cx + cy * cy)
    assert fitted == pytest.approx(radius, rel=2e-3)
    assert cy > 0.0  # centre on the left: a left turn


def test_steering_right_turns_clockwise_and_mirrors_left() -> None:
    left, right = _state(speed=5.0), _state(speed=5.0)
    _drive(left, (0.0, -1.0, 0.0), 0.5, FRICTIONLESS)
    _drive(right, (0.0, 1.0, 0.0), 0.5, FRICTIONLESS)
    assert left.heading[0] > 0.0
    assert right.heading[0] == pytest.approx(-left.heading[0], rel=1e-12)
    assert left.position[0, 1] > 0.0 > right.position[0, 1]


def test_half_steer_uses_tan_of_half_angle() -> None:
    config = FRICTIONLESS
    state = _state(speed=3.0)
    step_cars(state, np.array([[0.0, -0.5, 0.0]]), DT, config)
    curvature = math.tan(0.5 * config.max_steer) / config.wheelbase
    assert state.heading[0] == pytest.approx(3.0 * curvature * DT, rel=1e-12)


@settings(max_examples=40, deadline=None)
@given(
    speed=st.floats(min_value=0.5, max_value=45.0),
    steer=st.floats(min_value=-1.0, max_value=1.0),
)
def test_lateral_acceleration_never_exceeds_grip(speed: float, steer: float) -> None:
    config = FRICTIONLESS
    state = _state(speed=speed)
    step_cars(state, np.array([[0.0, steer, 0.0]]), DT, config)
    # Heading started at 0; it is wrapped through ±π, so it is exact to ~1e-15 rad only.
    curvature = abs(state.heading[0]) / (state.speed[0] * DT)
    slack = 1e-14 / (state.speed[0] * DT)
    assert state.speed[0] ** 2 * curvature <= config.lateral_grip * (1 + 1e-9) + speed**2 * slack
    commanded = math.tan(config.max_steer * abs(steer)) / config.wheelbase
    assert curvature <= commanded * (1 + 1e-9) + slack


def test_high_speed_full_steer_is_limited_to_grip() -> None:
    config = FRICTIONLESS
    speed = 40.0
    state = _state(speed=speed)
    _drive(state, (0.0, -1.0, 0.0), 1.0, config)
    # Understeer: the turn is v·t·a_grip/v² = a_grip·t/v, not v·t/R.
    assert state.heading[0] == pytest.approx(config.lateral_grip * 1.0 / speed, rel=1e-9)


def test_braking_stops_at_zero_without_reversing_in_the_same_step() -> None:
    config = CarConfig()
    state = _state(speed=1.0)
    step_cars(state, np.array([[-1.0, 0.0, 0.0]]), DT, config)
    assert state.speed[0] == 0.0
    assert state.position[0, 0] == 0.0
    # The next step with the pedal held starts reversing at reverse_accel.
    step_cars(state, np.array([[-1.0, 0.0, 0.0]]), DT, config)
    assert state.speed[0] == pytest.approx(-config.reverse_accel * DT, rel=1e-12)


def test_braking_decelerates_at_brake_decel() -> None:
    state = _state(speed=20.0)
    _drive(state, (-1.0, 0.0, 0.0), 0.6, FRICTIONLESS)
    assert state.speed[0] == pytest.approx(20.0 - FRICTIONLESS.brake_decel * 0.6, rel=1e-9)


def test_partial_brake_scales_deceleration() -> None:
    state = _state(speed=20.0)
    step_cars(state, np.array([[-0.25, 0.0, 0.0]]), DT, FRICTIONLESS)
    assert state.speed[0] == pytest.approx(20.0 - 0.25 * FRICTIONLESS.brake_decel * DT)


def test_reverse_speed_is_capped() -> None:
    state = _state()
    _drive(state, (-1.0, 0.0, 0.0), 5.0, FRICTIONLESS)
    assert state.speed[0] == -FRICTIONLESS.max_reverse_speed
    assert state.position[0, 0] < 0.0  # backwards along the heading
    assert state.heading[0] == 0.0


def test_reverse_accelerates_at_reverse_accel_below_the_cap() -> None:
    state = _state()
    _drive(state, (-1.0, 0.0, 0.0), 1.0, FRICTIONLESS)
    assert state.speed[0] == pytest.approx(-FRICTIONLESS.reverse_accel * 1.0, rel=1e-9)


def test_nitro_drains_fuel_and_multiplies_acceleration() -> None:
    config = FRICTIONLESS
    state = _state(n=2)
    actions = np.array([[1.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    for _ in range(15):  # 1 s
        step_cars(state, actions, DT, config)
    assert state.fuel[0] == pytest.approx(1.0 - config.nitro_drain * 1.0, rel=1e-9)
    assert state.fuel[1] == 1.0
    assert state.speed[0] == pytest.approx(config.engine_accel * config.nitro_multiplier, rel=1e-9)
    assert state.speed[1] == pytest.approx(config.engine_accel, rel=1e-9)


def test_nitro_needs_action_above_half() -> None:
    state = _state()
    step_cars(state, np.array([[1.0, 0.0, 0.5]]), DT, FRICTIONLESS)
    assert state.fuel[0] == 1.0
    assert state.speed[0] == pytest.approx(FRICTIONLESS.engine_accel * DT)


def test_fuel_refills_without_nitro() -> None:
    config = FRICTIONLESS
    state = _state()
    state.fuel[:] = 0.25
    _drive(state, (1.0, 0.0, 0.0), 2.0, config)
    assert state.fuel[0] == pytest.approx(0.25 + config.nitro_refill * 2.0, rel=1e-9)
    _drive(state, (0.0, 0.0, 0.0), 20.0, config)
    assert state.fuel[0] == 1.0


def test_nitro_held_on_an_empty_tank_gives_no_boost_and_no_refill() -> None:
    config = CarConfig(drag=0.0, rolling_resistance=0.0, max_speed=1000.0)
    state = _state()
    state.fuel[:] = 0.0
    _drive(state, (1.0, 0.0, 1.0), 1.0, config)
    assert state.fuel[0] == 0.0
    assert state.speed[0] == pytest.approx(config.engine_accel * 1.0, rel=1e-9)


def test_nitro_runs_out_after_fuel_over_drain_seconds() -> None:
    config = CarConfig(drag=0.0, rolling_resistance=0.0, max_speed=1000.0)
    state = _state()
    _drive(state, (1.0, 0.0, 1.0), 1.8, config)  # 0.9 of the tank
    assert state.fuel[0] == pytest.approx(1.0 - 1.8 * config.nitro_drain, rel=1e-9)
    assert state.speed[0] == pytest.approx(config.engine_accel * config.nitro_multiplier * 1.8)
    _drive(state, (1.0, 0.0, 1.0), 0.2, config)  # the last 0.1: 2 s in all
    assert state.fuel[0] == pytest.approx(0.0, abs=1e-12)


def test_nitro_flicked_on_and_off_boosts_no_more_than_its_fuel_pays_for() -> None:
    """Any fuel left bought a whole step of boost: nitro on every other step boosted 450
    of 900 steps and held 33.3 m/s; its fuel pays for one step in six (a step's refill is
    a fifth of a step's burn), the pattern that holds its tank full, at 30.4 m/s."""
    config = CarConfig()

    def speed_after_60_s(nitro_on) -> float:
        state = _state()
        for k in range(900):
            step_cars(state, np.array([[1.0, 0.0, float(nitro_on(k))]]), DT, config)
        return float(state.speed[0])

    paid_for = speed_after_60_s(lambda k: k % 6 == 0)
    assert speed_after_60_s(lambda k: k % 2 == 0) <= paid_for
    assert speed_after_60_s(lambda k: False) < paid_for


def test_actions_are_clipped_to_unit_range() -> None:
    a, b = _state(), _state()
    step_cars(a, np.array([[5.0, -7.0, 0.0]]), DT, FRICTIONLESS)
    step_cars(b, np.array([[1.0, -1.0, 0.0]]), DT, FRICTIONLESS)
    np.testing.assert_array_equal(a.speed, b.speed)
    np.testing.assert_array_equal(a.heading, b.heading)


def test_substeps_refine_the_integration_of_the_same_step() -> None:
    coarse, fine = _state(), _state()
    step_cars(coarse, np.array([[1.0, 0.0, 0.0]]), 1.0, FRICTIONLESS)
    step_cars(
        fine,
        np.array([[1.0, 0.0, 0.0]]),
        1.0,
        CarConfig(drag=0.0, rolling_resistance=0.0, substeps=100),
    )
    # Same speed, and the fine position tends to a·t²/2.
    assert coarse.speed[0] == pytest.approx(fine.speed[0])
    assert fine.position[0, 0] == pytest.approx(FRICTIONLESS.engine_accel / 2, rel=0.02)
    assert coarse.position[0, 0] == pytest.approx(FRICTIONLESS.engine_accel, rel=1e-12)


def test_cars_are_independent_and_heading_is_wrapped() -> None:
    state = _state(n=3, speed=5.0)
    state.heading[:] = [0.0, 3.1, -3.1]
    actions = np.array([[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 1.0, 0.0]])
    for _ in range(10):
        step_cars(state, actions, DT, FRICTIONLESS)
    assert np.all((state.heading >= -np.pi) & (state.heading < np.pi))
    assert state.heading[0] == 0.0
    assert state.speed[0] > state.speed[1] == state.speed[2] == 5.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"wheelbase": 0.0},
        {"engine_accel": -1.0},
        {"max_speed": 0.0},
        {"drag": -0.1},
        {"nitro_multiplier": 0.5},
        {"substeps": 0},
        {"substeps": 2.5},  # a TypeError in step_cars
        {"max_steer": 1.6},  # past a right angle: full left turned right
    ],
)
def test_car_config_rejects_bad_values(kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        CarConfig(**kwargs)


@pytest.mark.parametrize("steer", [-0.5, 0.3])
def test_corner_speed_is_the_fastest_a_car_holds_the_commanded_curvature(steer: float) -> None:
    config = FRICTIONLESS
    curvature = math.tan(config.max_steer * abs(steer)) / config.wheelbase
    limit = config.corner_speed(np.array([-curvature, curvature]))
    np.testing.assert_allclose(limit, math.sqrt(config.lateral_grip / curvature), rtol=1e-12)
    below, above = _state(speed=0.99 * limit[0]), _state(speed=1.2 * limit[0])
    for state in (below, above):
        step_cars(state, np.array([[0.0, steer, 0.0]]), DT, config)
    turned = [abs(s.heading[0]) / (s.speed[0] * DT) for s in (below, above)]
    assert turned[0] == pytest.approx(curvature, rel=1e-9)  # follows the steering
    assert turned[1] == pytest.approx(config.lateral_grip / above.speed[0] ** 2, rel=1e-9)
    assert turned[1] < curvature  # understeers

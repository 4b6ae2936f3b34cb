"""World: progress along the centreline, laps and lap times, crashes, stuck, projection."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from racing_rl.errors import ConfigError
from racing_rl.sim.car import CarConfig
from racing_rl.sim.sensors import SensorConfig
from racing_rl.sim.track import Track, TrackConfig, generate_track, point_segment_distance
from racing_rl.sim.world import RaceRules, World, WorldBatch

DT = RaceRules().dt
NO_OBSTACLES = TrackConfig(n_obstacles=0)


def make_world(
    track: Track, n_cars: int = 1, rules: RaceRules | None = None, **sensor_kwargs
) -> World:
    return World(track, n_cars, CarConfig(), SensorConfig(**sensor_kwargs), rules or RaceRules())


def point_at(track: Track, arc: float) -> tuple[np.ndarray, float]:
    """Point on the centreline polyline at signed arc length ``arc`` and its heading."""
    s = float(np.mod(arc, track.length))
    i = min(int(np.searchsorted(track.arc_length, s, side="right") - 1), track.n_points - 1)
    a, b = track.centreline[i], track.centreline[(i + 1) % track.n_points]
    edge = b - a
    seg_len = float(np.linalg.norm(edge))
    return a + edge * (s - track.arc_length[i]) / seg_len, math.atan2(edge[1], edge[0])


def glide_to(world: World, car: int, arc: float) -> None:
    """Move a car (at rest, so physics leaves it in place) onto the centreline at ``arc``."""
    position, heading = point_at(world.track, arc)
    world.cars.position[car] = position
    world.cars.heading[car] = heading
    world.cars.speed[car] = 0.0


def pure_pursuit(world: World, lookahead: float = 12.0, target_speed: float = 14.0) -> np.ndarray:
    """A simple driver: steer at a centreline point ``lookahead`` metres ahead."""
    actions = np.zeros((world.n_cars, 3))
    for car in range(world.n_cars):
        target, _ = point_at(world.track, world.arc[car] + lookahead)
        offset = target - world.cars.position[car]
        error = math.atan2(offset[1], offset[0]) - world.cars.heading[car]
        error = math.atan2(math.sin(error), math.cos(error))
        actions[car, 1] = -np.clip(3.0 * error, -1.0, 1.0)  # steering -1 is left (CCW)
        actions[car, 0] = np.clip((target_speed - world.cars.speed[car]) / 4.0, -1.0, 1.0)
    return actions


# ---------------------------------------------------------------------- progress and laps
@pytest.mark.parametrize("seed", [3, 41])
def test_progress_is_monotone_along_the_centreline_and_laps_wrap(seed: int) -> None:
    track = generate_track(seed, NO_OBSTACLES)
    world = make_world(track)
    step_arc = 2.5  # [m] per step, under max_speed·dt
    n_steps = math.ceil(2.3 * track.length / step_arc)
    laps_at: list[int] = []
    lap_times: list[float] = []
    for k in range(1, n_steps + 1):
        glide_to(world, 0, k * step_arc)
        before = world.progress[0]
        events = world.step(np.zeros((1, 3)))
        assert events.progress_delta[0] == pytest.approx(step_arc / track.length, rel=1e-6)
        assert world.progress[0] > before
        assert not events.crashed[0] and not events.stuck[0]
        assert 0.0 <= world.arc[0] < track.length
        if events.lap_completed[0]:
            laps_at.append(k)
            lap_times.append(events.lap_time[0])
            assert world.last_lap_time[0] == events.lap_time[0]
        else:
            assert np.isnan(events.lap_time[0])
    assert world.progress[0] == pytest.approx(n_steps * step_arc / track.length, rel=1e-6)
    # One lap each time the progress passes a whole number, at the first step past it.
    assert world.laps[0] == 2
    assert laps_at == [math.ceil(lap * track.length / step_arc) for lap in (1, 2)]
    # Constant speed step_arc / dt: a lap takes length / speed, interpolated in the step.
    expected = track.length / step_arc * DT
    np.testing.assert_allclose(lap_times, expected, rtol=1e-6)
    assert world.best_lap_time[0] == pytest.approx(min(lap_times))
    assert world.distance[0] == 0.0  # the car never drove: it was moved


def test_the_best_lap_is_the_fastest_and_the_last_lap_the_newest() -> None:
    # Every other test's laps took the same time, so the best could as well be the slowest.
    track = generate_track(3, NO_OBSTACLES)
    world = make_world(track)
    arc, lap_times = 0.0, []
    for lap, step_arc in enumerate((2.0, 3.0, 2.5)):  # [m] per step: one lap at each speed
        while len(lap_times) == lap:
            arc += step_arc
            glide_to(world, 0, arc)
            events = world.step(np.zeros((1, 3)))
            if events.lap_completed[0]:
                lap_times.append(float(events.lap_time[0]))
    assert lap_times[1] < lap_times[2] < lap_times[0]
    assert world.best_lap_time[0] == lap_times[1] and world.last_lap_time[0] == lap_times[2]


@pytest.mark.parametrize(
    ("offset", "reverse"), [(80, False), (-80, False), (100, True), (-100, True)]
)
def test_a_car_faces_against_the_track_beyond_a_right_angle(offset: float, reverse: bool) -> None:
    track = generate_track(7, NO_OBSTACLES)
    world = make_world(track)
    for arc in np.arange(2.5, 32.5, 2.5):  # the projection follows a car step by step
        glide_to(world, 0, arc)
        world.step(np.zeros((1, 3)))
    world.cars.heading[0] += math.radians(offset)
    world.step(np.zeros((1, 3)))  # at rest: it stays, heading and all
    assert world.is_reverse()[0] == reverse
    assert world.observe()[0, -1] == float(reverse)  # the observation's is_reverse


def test_lap_timer_starts_at_the_first_line_crossing_from_the_grid() -> None:
    track = generate_track(5)
    world = make_world(track)
    world.place_cars(np.array([-10.0]), np.zeros(1), np.zeros(1), np.zeros(1))
    assert world.progress[0] == pytest.approx(-10.0 / track.length)
    step_arc = 2.0
    crossings = 0
    for k in range(1, math.ceil((track.length + 10.0) / step_arc) + 2):
        glide_to(world, 0, -10.0 + k * step_arc)
        events = world.step(np.zeros((1, 3)))
        crossings += bool(events.lap_completed[0])
    # Crossing the line from the grid starts the first lap; it is not a completed lap.
    assert crossings == 1
    assert world.laps[0] == 1
    assert world.last_lap_time[0] == pytest.approx(track.length / step_arc * DT, rel=1e-6)


def test_a_car_placed_mid_track_times_its_first_lap_from_the_line() -> None:
    track = generate_track(6, NO_OBSTACLES)
    world = make_world(track)
    start = track.length / 2
    world.place_cars(np.array([start]), np.zeros(1), np.zeros(1), np.zeros(1))
    assert world.progress[0] == pytest.approx(0.5)
    step_arc = 2.5
    completed_at = []
    for k in range(1, math.ceil(1.7 * track.length / step_arc)):
        glide_to(world, 0, start + k * step_arc)
        if world.step(np.zeros((1, 3))).lap_completed[0]:
            completed_at.append(k)
    # Half a lap to the line starts the timer; the first lap completes at progress 2.
    assert completed_at == [math.ceil(1.5 * track.length / step_arc)]
    assert world.laps[0] == 1
    assert world.last_lap_time[0] == pytest.approx(track.length / step_arc * DT, rel=1e-6)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(min_value=0, max_value=50),
    laps=st.integers(min_value=-2, max_value=2),
    off_line=st.one_of(st.just(0.0), st.floats(-1e-7, 1e-7)),  # [m]: rounding of arc
)
def test_a_car_placed_on_the_line_at_any_whole_lap_times_its_lap_at_once(
    seed: int, laps: int, off_line: float
) -> None:
    """arc = k·L is the start line as arc = 0 is: finite progress k, and the lap timer runs
    from placement (arc = L once gave progress 1 + 2e-16, a lap to drive before the timer
    started, and arc = 2L exactly 2 with the line still to cross: a lap timed from 0 / 0)."""
    track = generate_track(seed)
    world = make_world(track)
    arc = laps * track.length + off_line
    world.place_cars(np.array([arc]), np.zeros(1), np.zeros(1), np.zeros(1))
    assert world.progress[0] == laps
    for _ in range(3):  # at rest: no progress, no crossing
        events = world.step(np.zeros((1, 3)))
        assert np.isfinite(world.progress[0]) and world.progress[0] == laps
        assert 0.0 <= world.arc[0] <= track.length + 1e-9
        assert not events.lap_completed[0]
    assert world.lap_clock[0] == pytest.approx(3 * DT)
    step_arc = 2.5
    for k in range(1, math.ceil(track.length / step_arc) + 1):  # one lap, and a bit
        glide_to(world, 0, arc + k * step_arc)
        world.step(np.zeros((1, 3)))
    assert world.laps[0] == 1
    expected = (track.length / step_arc + 3) * DT  # 3 steps at rest
    assert world.last_lap_time[0] == pytest.approx(expected, rel=1e-6)


def test_driving_a_lap_with_a_simple_controller() -> None:
    track = generate_track(2, NO_OBSTACLES)
    world = make_world(track)
    progress = [world.progress[0]]
    crossing_step = None
    for k in range(1, 2000):
        events = world.step(pure_pursuit(world))
        assert not events.crashed[0], f"crashed at step {k}, lateral {world.lateral[0]:.2f}"
        progress.append(world.progress[0])
        if events.lap_completed[0]:
            crossing_step = k
            lap_time = events.lap_time[0]
            break
    assert crossing_step is not None, "no lap in 2000 steps"
    assert np.all(np.diff(progress) >= 0.0)
    assert world.laps[0] == 1
    # The crossing lies inside its step, and the lap covered the track's length.
    assert (crossing_step - 1) * DT < lap_time <= crossing_step * DT
    assert world.last_lap_time[0] == lap_time == world.best_lap_time[0]
    assert world.distance[0] == pytest.approx(track.length, rel=0.05)
    assert world.progress[0] >= 1.0


def test_driving_backwards_from_the_line_gives_negative_progress_and_no_lap() -> None:
    track = generate_track(7)
    world = make_world(track)
    step_arc = 2.5
    for k in range(1, math.ceil(1.3 * track.length / step_arc)):
        glide_to(world, 0, -k * step_arc)
        world.cars.heading[0] += np.pi  # facing backwards too
        events = world.step(np.zeros((1, 3)))
        assert events.progress_delta[0] == pytest.approx(-step_arc / track.length, rel=1e-6)
        assert not events.lap_completed[0]
        assert world.is_reverse()[0]
    assert world.progress[0] < -1.0
    assert world.laps[0] == 0
    assert np.isnan(world.last_lap_time[0])


def test_reversing_with_the_pedal_gives_negative_progress() -> None:
    track = generate_track(7, NO_OBSTACLES)
    world = make_world(track)
    for _ in range(15):
        events = world.step(np.array([[-1.0, 0.0, 0.0]]))
        assert events.progress_delta[0] <= 0.0
        assert not events.lap_completed[0]
    assert world.progress[0] < 0.0
    assert world.cars.speed[0] < 0.0
    assert not world.is_reverse()[0]  # it faces forwards while reversing
    assert world.laps[0] == 0


def test_going_back_over_the_line_and_forward_again_counts_no_extra_lap() -> None:
    track = generate_track(8)
    world = make_world(track)
    path = [-2.5 * k for k in range(1, 6)] + [-12.5 + 2.5 * k for k in range(1, 12)]
    for arc in path:
        glide_to(world, 0, arc)
        assert not world.step(np.zeros((1, 3))).lap_completed[0]
    assert world.progress[0] == pytest.approx(15.0 / track.length, rel=1e-6)
    assert world.laps[0] == 0


# ---------------------------------------------------------------------- crashes
@pytest.mark.parametrize("side", [1.0, -1.0])
def test_leaving_the_track_is_a_crash(side: float) -> None:
    track = generate_track(9, NO_OBSTACLES)
    world = make_world(track)
    radius = world.car.radius
    edge = track.width / 2 - radius
    world.place_cars(np.array([3.0]), np.array([side * (edge - 0.2)]), np.zeros(1), np.zeros(1))
    assert not world.step(np.zeros((1, 3))).crashed[0]
    world.place_cars(np.array([3.0]), np.array([side * (edge + 0.2)]), np.zeros(1), np.zeros(1))
    assert world.step(np.zeros((1, 3))).crashed[0]


def test_driving_into_the_wall_crashes_within_the_expected_time() -> None:
    track = generate_track(9, NO_OBSTACLES)
    world = make_world(track)
    # Start 1 m left of centre on the straight, heading 90° left at 10 m/s.
    world.place_cars(np.array([2.0]), np.array([1.0]), np.array([np.pi / 2]), np.array([10.0]))
    room = track.width / 2 - world.car.radius - 1.0
    steps = 0
    while steps < 30:
        steps += 1
        if world.step(np.zeros((1, 3))).crashed[0]:
            break
    # About room / 10 m/s, give or take a step and the drag.
    assert steps * DT == pytest.approx(room / 10.0, abs=2 * DT)
    assert abs(world.lateral[0]) > track.width / 2 - world.car.radius


def test_hitting_an_obstacle_is_a_crash_and_its_gap_is_not() -> None:
    config = TrackConfig(n_obstacles=2)
    track = generate_track(10, config)
    index = int(track.obstacle_index[0])
    offset = float(track.obstacle_offset[0])
    radius = float(track.obstacles[0, 2])
    world = make_world(track)
    arc = np.array([track.arc_length[index]])
    world.place_cars(arc, np.array([offset]), np.zeros(1), np.zeros(1))
    assert world.step(np.zeros((1, 3))).crashed[0]
    # The middle of the gap on the other side is safe.
    gap_centre = math.copysign(1.0, offset) * (abs(offset) - radius - track.width / 2) / 2
    world.place_cars(arc, np.array([gap_centre]), np.zeros(1), np.zeros(1))
    assert not world.step(np.zeros((1, 3))).crashed[0]
    # Just touching the obstacle (centre distance < r_obstacle + r_car) crashes.
    touch = offset - math.copysign(radius + world.car.radius - 0.05, offset)
    world.place_cars(arc, np.array([touch]), np.zeros(1), np.zeros(1))
    assert world.step(np.zeros((1, 3))).crashed[0]


def test_a_car_that_clips_an_obstacle_within_a_step_crashes() -> None:
    """At 40 m/s (2.7 m a step) a car passing 15 cm inside an obstacle's reach overlaps
    it only mid-step: the end-of-step test let it through."""
    track = generate_track(10, TrackConfig(n_obstacles=2))
    index = int(track.obstacle_index[0])
    offset = float(track.obstacle_offset[0])
    world = make_world(track)
    reach = float(track.obstacles[0, 2]) + world.car.radius
    lateral = offset - math.copysign(reach - 0.15, offset)
    step = 40.0 * DT
    arc = np.array([track.arc_length[index] - step / 2])  # ends the step past it
    world.place_cars(arc, np.array([lateral]), np.zeros(1), np.array([40.0]))
    centre = track.obstacles[0, :2]
    start = world.cars.position[0].copy()
    crashed = world.step(np.array([[0.0, 0.0, 0.0]])).crashed[0]
    ends = [np.hypot(*(point - centre)) for point in (start, world.cars.position[0])]
    assert min(ends) > reach  # neither end of the step touches it
    assert crashed


@pytest.mark.parametrize("collisions", [True, False])
def test_overlapping_cars_crash_only_with_car_collisions(collisions: bool) -> None:
    track = generate_track(11, NO_OBSTACLES)
    world = make_world(track, n_cars=3, rules=RaceRules(car_collisions=collisions))
    # Cars 0 and 1 are 1.5 m apart (< 2 radii); car 2 is well clear.
    world.place_cars(
        np.array([5.0, 5.0, 40.0]), np.array([0.75, -0.75, 0.0]), np.zeros(3), np.zeros(3)
    )
    crashed = world.step(np.zeros((3, 3))).crashed
    np.testing.assert_array_equal(crashed, [collisions, collisions, False])


@pytest.mark.parametrize("overtake", [False, True])
def test_cars_that_pass_through_each_other_within_a_step_crash(overtake: bool) -> None:
    """Head on at 40 and 25 m/s from 2.2 m apart, or a car at top speed grazing a
    standing one: they overlap in the middle of the step only."""
    track = generate_track(11, NO_OBSTACLES)
    world = make_world(track, n_cars=3, rules=RaceRules(car_collisions=True))
    if overtake:
        arc, lateral = np.array([20.0, 20.8, 80.0]), np.array([0.95, -0.95, 0.0])
        heading, speed = np.zeros(3), np.array([world.car.max_speed, 0.0, 0.0])
    else:
        arc, lateral = np.array([20.0, 22.2, 80.0]), np.zeros(3)
        heading, speed = np.array([0.0, np.pi, 0.0]), np.array([40.0, 25.0, 0.0])
    world.place_cars(arc, lateral, heading, speed)
    start = world.cars.position.copy()
    crashed = world.step(np.zeros((3, 3))).crashed
    # They started and ended apart: a test at either end alone would miss the contact.
    for position in (start, world.cars.position):
        assert np.hypot(*(position[0] - position[1])) > 2 * world.car.radius
    np.testing.assert_array_equal(crashed, [True, True, False])


def test_inactive_cars_neither_collide_nor_move() -> None:
    track = generate_track(11, NO_OBSTACLES)
    world = make_world(track, n_cars=2, rules=RaceRules(car_collisions=True))
    world.place_cars(np.array([5.0, 5.0]), np.array([0.5, -0.5]), np.zeros(2), np.zeros(2))
    world.active[1] = False
    position = world.cars.position[1].copy()
    events = world.step(np.ones((2, 3)))
    assert not events.crashed.any()
    np.testing.assert_array_equal(world.cars.position[1], position)
    assert events.progress_delta[1] == 0.0
    assert events.progress_delta[0] > 0.0


# ---------------------------------------------------------------------- stuck
def test_a_car_that_does_not_move_becomes_stuck_after_stuck_time() -> None:
    track = generate_track(12)
    rules = RaceRules(stuck_time=2.0)
    world = make_world(track, n_cars=2, rules=rules)
    world.place_cars(np.array([0.0, 30.0]), np.zeros(2), np.zeros(2), np.zeros(2))
    first_stuck = None
    for k in range(1, 60):
        glide_to(world, 1, 30.0 + 1.0 * k)  # car 1 keeps making progress
        events = world.step(np.zeros((2, 3)))
        assert not events.stuck[1]
        if events.stuck[0] and first_stuck is None:
            first_stuck = k * DT
        if world.time < rules.stuck_time - 1e-9:
            assert not events.stuck[0]
    assert first_stuck is not None
    assert rules.stuck_time <= first_stuck <= rules.stuck_time + DT + 1e-9


@pytest.mark.parametrize("stuck_time", [1.0, 2.0, 4.0])
def test_stuck_means_more_than_stuck_time_on_the_summed_clock(stuck_time) -> None:
    """The clock adds dt = 1/15 each step: after 60 steps it read 4.000000000000005 s, and
    the default stuck_time of 4 s fired a step early (at 4.0 s, not after it)."""
    world = make_world(generate_track(12), rules=RaceRules(stuck_time=stuck_time))
    world.place_cars(np.zeros(1), np.zeros(1), np.zeros(1), np.zeros(1))
    steps = [world.step(np.zeros((1, 3))).stuck[0] for _ in range(round(stuck_time / DT) + 1)]
    assert not any(steps[:-1]) and steps[-1]  # the first step past stuck_time


def test_stuck_clock_restarts_on_new_progress_only() -> None:
    track = generate_track(12)
    rules = RaceRules(stuck_time=1.0)
    world = make_world(track, rules=rules)
    glide_to(world, 0, 5.0)
    world.step(np.zeros((1, 3)))  # new progress at t = dt
    glide_to(world, 0, 2.0)
    world.step(np.zeros((1, 3)))  # backwards: no new best progress
    stuck = []
    for _ in range(15):
        glide_to(world, 0, 4.0)  # forward again, still short of the best (5 m)
        stuck.append(bool(world.step(np.zeros((1, 3))).stuck[0]))
    # The clock runs from t = dt: stuck once t - dt > 1 s, i.e. from step 17 (k = 15 here).
    assert stuck[-1] and not any(stuck[:-2])


# ---------------------------------------------------------------------- projection
def _closest_far_pair(track: Track) -> tuple[int, int]:
    """Centreline points far apart along the track but closest in the plane."""
    n = track.n_points
    index = np.arange(n)
    gap = np.abs(index[:, None] - index[None, :])
    along = np.minimum(gap, n - gap) * track.length / n
    dist = np.linalg.norm(track.centreline[:, None] - track.centreline[None], axis=-1)
    dist[along < 100.0] = np.inf
    i, j = np.unravel_index(np.argmin(dist), dist.shape)
    return int(i), int(j)


@pytest.mark.parametrize("seed", [0, 13, 77])
def test_projection_never_teleports_to_another_part_of_the_track(seed: int) -> None:
    track = generate_track(seed, NO_OBSTACLES)
    world = make_world(track)
    i, j = _closest_far_pair(track)
    world.place_cars(np.array([track.arc_length[i]]), np.zeros(1), np.zeros(1), np.zeros(1))
    n = track.n_points
    assert (world.index[0] - i) % n in (0, n - 1)  # on vertex i: the end of segment i-1 ties
    # Jump onto the other part of the track: the car must not be projected there.
    world.cars.position[0] = track.centreline[j]
    events = world.step(np.zeros((1, 3)))
    hops = min(abs(int(world.index[0]) - i), n - abs(int(world.index[0]) - i))
    reach = math.ceil(world.car.max_speed * DT / (track.length / n)) + 2
    assert hops <= reach
    assert abs(events.progress_delta[0]) * track.length <= reach * track.length / n * 1.1
    assert events.crashed[0]  # it is far off its own part of the track


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(min_value=0, max_value=10**6), start=st.floats(0.0, 1.0))
def test_index_follows_the_car_step_by_step(seed: int, start: float) -> None:
    track = generate_track(seed)
    world = make_world(track)
    arc0 = start * track.length
    world.place_cars(np.array([arc0]), np.zeros(1), np.zeros(1), np.zeros(1))
    previous = int(world.index[0])
    n = track.n_points
    for k in range(1, 40):
        glide_to(world, 0, arc0 + 2.9 * k)
        world.step(np.zeros((1, 3)))
        index = int(world.index[0])
        assert (index - previous) % n <= 1
        expected = np.searchsorted(track.arc_length, np.mod(arc0 + 2.9 * k, track.length), "right")
        assert abs(index - (expected - 1)) % n in (0, 1, n - 1)
        previous = index


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(min_value=0, max_value=10**6),
    point=st.floats(0.0, 1.0, exclude_max=True),
    fraction=st.floats(0.3, 0.7),
    lateral=st.floats(-0.95, 0.95),
)
def test_placement_mid_segment_round_trips_through_projection(
    seed: int, point: float, fraction: float, lateral: float
) -> None:
    track = generate_track(seed, NO_OBSTACLES)
    world = make_world(track)
    i = int(point * track.n_points)
    seg_len = np.linalg.norm(track.centreline[(i + 1) % track.n_points] - track.centreline[i])
    offset = lateral * (track.width / 2 - world.car.radius)
    world.place_cars(
        np.array([track.arc_length[i] + fraction * seg_len]),
        np.array([offset]),
        np.zeros(1),
        np.zeros(1),
    )
    events = world.step(np.zeros((1, 3)))
    # A car at rest stays where it was put: no progress, same lateral offset, same index.
    assert abs(events.progress_delta[0]) * track.length < 1e-9
    assert world.lateral[0] == pytest.approx(offset, abs=1e-9)
    assert world.index[0] == i


def test_a_car_placed_at_rest_next_to_a_vertex_makes_no_progress() -> None:
    track = generate_track(0, NO_OBSTACLES)
    world = make_world(track)
    curvature = track.curvature()
    i = int(np.argmax(np.abs(curvature)))  # the sharpest vertex
    inside = 3.0 * np.sign(curvature[i])  # on the inside of the bend
    world.place_cars(
        np.array([track.arc_length[i] + 0.01]), np.array([inside]), np.zeros(1), np.zeros(1)
    )
    placed_lateral = world.lateral[0]  # measured by the same projection as every step
    assert placed_lateral == pytest.approx(inside, abs=0.1)
    events = world.step(np.zeros((1, 3)))
    assert abs(events.progress_delta[0]) * track.length < 1e-6
    assert world.lateral[0] == pytest.approx(placed_lateral, abs=1e-9)


# ---------------------------------------------------------------------- observations
def test_observation_layout_and_range() -> None:
    track = generate_track(14)
    world = make_world(track, n_cars=4, n_rays=7, range=40.0)
    world.place_cars(
        np.array([0.0, 50.0, 100.0, 150.0]),
        np.array([0.0, 2.0, -2.0, 0.0]),
        np.array([0.0, 0.0, 0.0, np.pi]),
        np.array([0.0, 10.0, 100.0, -3.0]),
    )
    obs = world.observe()
    assert obs.shape == (4, 10) and obs.dtype == np.float32
    np.testing.assert_allclose(obs[:, :7], world.ray_distances() / 40.0, rtol=1e-6)
    assert np.all((obs[:, :7] >= 0.0) & (obs[:, :7] <= 1.0))
    np.testing.assert_array_equal(obs[:, 7], 1.0)  # full nitro
    top = world.car.max_speed
    np.testing.assert_allclose(obs[:, 8], [0.0, 10.0 / top, 1.0, -3.0 / top], rtol=1e-6)
    np.testing.assert_array_equal(obs[:, 9], [0.0, 0.0, 0.0, 1.0])


def test_world_and_rules_reject_bad_values() -> None:
    with pytest.raises(ConfigError):
        make_world(generate_track(0), n_cars=0)
    # check_range's words, as every other setting's, and what dt is.
    hint = " It is the step in seconds, 1/15 by default (the game's 15 Hz tick);"
    for dt, rule in ((0.0, "> 0"), (-0.1, "> 0"), (math.nan, "a finite number > 0")):
        with pytest.raises(
            ConfigError, match=re.escape(f"rules.dt must be {rule}, got {dt}.{hint}")
        ):
            RaceRules(dt=dt)
    for stuck_time in (-1.0, math.nan):
        with pytest.raises(ConfigError, match=r"^rules\.stuck_time must be .*> 0, got"):
            RaceRules(stuck_time=stuck_time)


def test_a_race_refuses_a_dt_in_which_a_car_drives_half_its_track() -> None:
    """Progress per step is wrapped to ± half a lap: at 45 m/s, dt = 10 s (450 m a step on
    a 460 m track) read as driving backwards."""
    track = generate_track(0)
    longest = track.length / (2 * CarConfig().max_speed)
    with pytest.raises(ConfigError, match=r"rules\.dt \(10\.0 s\).* below 5\.11 s"):
        make_world(track, rules=RaceRules(dt=10.0))
    with pytest.raises(ConfigError, match=r"rules\.dt"):
        make_world(track, rules=RaceRules(dt=longest))
    make_world(track, rules=RaceRules(dt=0.99 * longest))  # coarse, but progress is sound


#: No resistance: speeds follow the closed forms exactly.
FRICTIONLESS = CarConfig(drag=0.0, rolling_resistance=0.0)


@pytest.mark.parametrize(("dt", "pieces"), [(DT, 1), (0.2, 3), (0.5, 8)])
def test_a_long_step_is_simulated_in_pieces_no_longer_than_the_default_step(dt, pieces) -> None:
    """rules.dt=0.5 was one Euler step of 0.5 s: a car braking from 29 m/s stopped 7.0 m
    short of v²/2a, and one on full lock left its circle by 8.7 m in 3 s (at 1/15 s: 1.0
    and 1.2 m). A step is now simulated in pieces of at most MAX_PIECE (the default dt)."""
    assert RaceRules(dt=dt).pieces == pieces  # of 1/15 s or less
    world = World(generate_track(0), 1, FRICTIONLESS, SensorConfig(), RaceRules(dt=dt))
    world.place_cars(np.zeros(1), np.zeros(1), np.zeros(1), np.array([29.0]))
    start, heading = world.cars.position[0].copy(), world.cars.heading[0]
    while world.cars.speed[0] > 0:  # braking stops the car (the next step reverses it)
        world.step(np.array([[-1.0, 0.0, 0.0]]))
    travelled = np.dot(world.cars.position[0] - start, [np.cos(heading), np.sin(heading)])
    assert travelled == pytest.approx(29.0**2 / (2 * FRICTIONLESS.brake_decel), abs=1.1)
    # At 20 m/s on full lock the grip limit holds the car on a circle of radius v²/a_grip.
    world.place_cars(np.zeros(1), np.zeros(1), np.zeros(1), np.array([20.0]))
    start, heading = world.cars.position[0].copy(), world.cars.heading[0]
    for _ in range(round(3.0 / dt)):
        world.step(np.array([[0.0, -1.0, 0.0]]))
    radius = 20.0**2 / FRICTIONLESS.lateral_grip
    angle = 20.0 * 3.0 / radius  # counter-clockwise (left)
    c, s = np.cos(heading), np.sin(heading)
    local = radius * np.array([np.sin(angle), 1.0 - np.cos(angle)])  # in the car's frame
    expected = start + np.array([c * local[0] - s * local[1], s * local[0] + c * local[1]])
    assert np.hypot(*(world.cars.position[0] - expected)) < 1.25


def test_a_car_cutting_an_inner_corner_through_its_wall_crashes_in_a_long_step() -> None:
    """At rules.dt=0.5 a car at 29 m/s went straight across the inside of a corner, its
    centre 0.36 m past the wall halfway, from and to points inside the track: the crash
    test, at the step's end only, saw nothing. Each piece of the step is tested now."""
    track = generate_track(0)
    corner = int(np.argmax(np.abs(track.curvature())))
    inside = np.sign(track.curvature()[corner]) * (track.width / 2 - FRICTIONLESS.radius - 0.5)
    world = World(track, 1, FRICTIONLESS, SensorConfig(), RaceRules(dt=0.5))
    ends = []
    for arc in (10.0, -10.0):  # 10 m after the corner, then 10 m before it
        world.place_cars(track.arc_length[corner] + np.array([arc]), np.array([inside]),
                         np.zeros(1), np.zeros(1))  # fmt: skip
        ends.append(world.cars.position[0].copy())
    chord = ends[0] - ends[1]
    world.cars.heading[:] = np.arctan2(chord[1], chord[0])
    world.cars.speed[:] = np.hypot(*chord) / 0.5  # straight to the far end in the step
    middle = (ends[0] + ends[1]) / 2
    centreline = track.centreline, np.roll(track.centreline, -1, axis=0)
    assert point_segment_distance(middle, *centreline).min() > track.width / 2  # past the wall
    crashed = world.step(np.zeros((1, 3))).crashed
    np.testing.assert_allclose(world.cars.position[0], ends[0], atol=1e-6)
    assert abs(world.lateral[0]) < track.width / 2 - FRICTIONLESS.radius  # ends on the track
    assert crashed[0]


# ---------------------------------------------------------------------- WorldBatch
def state_of(world: WorldBatch, rows: slice = slice(None)) -> list[np.ndarray]:
    """Everything a step changes of cars ``rows``, as arrays (for exact comparison)."""
    cars = world.cars
    return [
        x[rows]
        for x in (
            cars.position, cars.heading, cars.speed, cars.fuel, world.index, world.arc,
            world.lateral, world.progress, world.laps, world.last_lap_time,
            world.best_lap_time, world.distance, world.active, world.lap_clock, world.clock,
        )
    ]  # fmt: skip


SETUPS = [(3, 5, 3), (8, 2, 0), (12, 4, 1)]  # track seed, cars, obstacles


@pytest.mark.parametrize(
    ("rules", "sensors"),
    [(RaceRules(), {}), (RaceRules(car_collisions=True), {"detect_cars": True})],
)
def test_a_batch_is_bit_identical_to_stepping_each_world(rules: RaceRules, sensors: dict) -> None:
    """A batch of tracks (other car and obstacle counts, so windows, ray tables and
    obstacles are padded; crashes, stuck and respawned cars; a track replaced while the
    others race on) gives exactly the arithmetic of stepping each track's ``World`` alone."""
    tracks = [generate_track(seed, TrackConfig(n_obstacles=k)) for seed, _, k in SETUPS]
    counts = [n for _, n, _ in SETUPS]
    setting = (CarConfig(), SensorConfig(**sensors), rules)
    alone = [World(track, n, *setting) for track, n in zip(tracks, counts, strict=True)]
    batch = WorldBatch(tracks, counts, *setting)

    def place(k: int, cars: np.ndarray | None = None) -> None:
        rng = np.random.default_rng(k)
        n = counts[k]
        spawn = (rng.uniform(0, 60, n), rng.uniform(-2, 2, n), np.zeros(n), rng.uniform(0, 15, n))
        alone[k].place_cars(*spawn, cars)
        batch.place_cars(*spawn, cars, track=k)

    for k in range(len(tracks)):
        place(k)
    rng = np.random.default_rng(0)
    for t in range(250):
        actions = [np.clip(rng.normal(0.5, 0.6, (n, 3)), -1, 1) for n in counts]
        events = [w.step(a) for w, a in zip(alone, actions, strict=True)]
        batch_events = batch.step(np.concatenate(actions))
        batch_observations = batch.observe()
        for k, (world, event) in enumerate(zip(alone, events, strict=True)):
            rows = batch.rows(k)
            np.testing.assert_array_equal(batch_observations[rows], world.observe())
            for field in ("progress_delta", "crashed", "stuck", "lap_completed", "lap_time"):
                np.testing.assert_array_equal(
                    getattr(batch_events, field)[rows], getattr(event, field)
                )
            for x, y in zip(state_of(world), state_of(batch, rows), strict=True):
                np.testing.assert_array_equal(y, x)
            stopped = event.crashed | event.stuck
            world.active &= ~stopped
            batch.active[rows] &= ~stopped
            if t % 60 == 59 and not world.active.all():  # respawn the stopped cars alone
                place(k, ~world.active)
        # New tracks while the others race on: one in its race's slot of the ray tables,
        # one longer than any (every table stacked again), then one shorter.
        for when, k, config in (
            (100, 1, TrackConfig(n_obstacles=2)),
            (140, 0, TrackConfig(base_radius=110.0)),
            (180, 2, TrackConfig(base_radius=50.0, n_obstacles=0)),
        ):
            if t == when:
                new = generate_track(21 + k, config)
                alone[k] = World(new, counts[k], *setting)
                batch.set_track(k, new)
                place(k)


def test_a_batch_refuses_what_it_cannot_step() -> None:
    track = generate_track(5, NO_OBSTACLES)
    setting = (CarConfig(), SensorConfig(), RaceRules())
    with pytest.raises(ConfigError, match="one car count >= 1 per track"):
        WorldBatch([], [], *setting)
    with pytest.raises(ConfigError, match="one car count >= 1 per track"):
        WorldBatch([track, track], [2, 0], *setting)
    batch = WorldBatch([track, track], [2, 3], *setting)
    with pytest.raises(ValueError, match=r"shape \(5, 3\)"):
        batch.step(np.ones((4, 3)))


def test_a_copy_of_one_race_is_that_race() -> None:
    """``WorldBatch.world(k)`` has race k's cars and track; stepping it leaves the batch."""
    tracks = [generate_track(seed, NO_OBSTACLES) for seed in (1, 2)]
    batch = WorldBatch(tracks, [2, 3], CarConfig(), SensorConfig(), RaceRules())
    batch.place_cars(
        np.array([5.0, 9.0, 13.0]), np.zeros(3), np.zeros(3), np.full(3, 10.0), track=1
    )
    for _ in range(20):
        batch.step(np.full((5, 3), 0.6))
    copy = batch.world(1)
    assert copy.track is tracks[1] and copy.n_cars == 3
    np.testing.assert_array_equal(copy.observe(), batch.observe()[batch.rows(1)])
    for x, y in zip(state_of(copy), state_of(batch, batch.rows(1)), strict=True):
        np.testing.assert_array_equal(x, y)
    before = batch.cars.position.copy()
    copy.step(np.ones((3, 3)))
    np.testing.assert_array_equal(batch.cars.position, before)
    for track in (-1, 2):  # -1 failed deep in the layout with "max() arg is an empty sequence"
        with pytest.raises(IndexError, match=f"track {track} of a batch of 2 tracks"):
            batch.world(track)


def test_the_roblox_car_layout_sees_as_the_games_car() -> None:
    """16 rays: the game's 8 directions twice (each over its own length); the side rays
    of a car on the centreline reach the walls at half the track's width."""
    track = generate_track(3, NO_OBSTACLES)
    world = make_world(track, n_rays=16, layout="roblox_car", range=20.0)
    world.place_cars(np.array([10.0]), np.zeros(1), np.zeros(1), np.zeros(1))
    obs = world.observe()[0]
    assert obs.shape == (19,)
    np.testing.assert_array_equal(obs[:8], obs[8:16])  # no other cars to see
    side = obs[5:7] * 0.4 * 20.0  # the ±90° rays are 0.4 × range long [m]
    np.testing.assert_allclose(side, track.width / 2, rtol=0.15)
    with pytest.raises(
        ConfigError, match=r"sensors\.n_rays=10: layout=roblox_car has 16 rays .*set n_rays=16"
    ):
        SensorConfig(n_rays=10, layout="roblox_car")

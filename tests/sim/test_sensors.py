"""Raycasts against a brute-force pure-Python reference, vertices, parallels, culling."""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from racing_rl.errors import ConfigError
from racing_rl.sim import sensors
from racing_rl.sim.car import CarConfig
from racing_rl.sim.sensors import SensorConfig, cast_circles, cast_segments, ray_directions
from racing_rl.sim.track import TrackConfig, generate_track
from racing_rl.sim.world import RaceRules, World

TOL = 1e-6  # [m]
SEEDS = st.integers(min_value=0, max_value=10**6)
PROPERTY = settings(max_examples=25, deadline=None)


# ---------------------------------------------------------------------- reference
def ref_ray_segment(
    origin: tuple[float, float], direction: tuple[float, float], a: tuple, b: tuple
) -> float:
    """Distance t >= 0 along the ray to segment a-b, or inf: Cramer's rule on a 2x2 system.

    p + t·d = a + u·(b − a)  ⇔  [d, −e] [t, u]ᵀ = a − p.
    """
    px, py = origin
    dx, dy = direction
    ex, ey = b[0] - a[0], b[1] - a[1]
    rx, ry = a[0] - px, a[1] - py
    det = dx * (-ey) - (-ex) * dy
    if det == 0.0:
        return math.inf
    t = (rx * (-ey) - (-ex) * ry) / det
    u = (dx * ry - dy * rx) / det
    if t >= 0.0 and 0.0 <= u <= 1.0:
        return t
    return math.inf


def ref_ray_circle(
    origin: tuple[float, float], direction: tuple[float, float], centre: tuple, radius: float
) -> float:
    """Smallest t >= 0 with |p + t·d − c| = r (d unit), 0 from inside, else inf."""
    fx, fy = origin[0] - centre[0], origin[1] - centre[1]
    c = fx * fx + fy * fy - radius * radius
    if c <= 0.0:
        return 0.0
    b = direction[0] * fx + direction[1] * fy  # half the linear coefficient
    disc = b * b - c
    if disc < 0.0:
        return math.inf
    root = math.sqrt(disc)
    for t in (-b - root, -b + root):
        if t >= 0.0:
            return t
    return math.inf


def ref_cast(
    origins: np.ndarray,
    directions: np.ndarray,
    max_range: float,
    seg_starts: np.ndarray | None = None,
    seg_ends: np.ndarray | None = None,
    centres: np.ndarray | None = None,
    radii: np.ndarray | None = None,
) -> np.ndarray:
    """Brute force over every ray, segment and circle with plain Python floats."""
    n, r = directions.shape[:2]
    out = np.empty((n, r))
    segments, circles = [], []
    if seg_starts is not None:
        segments = list(zip(seg_starts.tolist(), seg_ends.tolist(), strict=True))
    if centres is not None:
        circles = list(zip(centres.tolist(), radii.tolist(), strict=True))
    for i in range(n):
        origin = tuple(origins[i].tolist())
        for j in range(r):
            d = tuple(directions[i, j].tolist())
            best = max_range
            for a, b in segments:
                best = min(best, ref_ray_segment(origin, d, a, b))
            for c, rad in circles:
                best = min(best, ref_ray_circle(origin, d, c, rad))
            out[i, j] = best
    return out


def _unit(angles: np.ndarray) -> np.ndarray:
    return np.stack([np.cos(angles), np.sin(angles)], axis=-1)


# ---------------------------------------------------------------------- random cases
@PROPERTY
@given(case_seed=st.integers(min_value=0, max_value=2**32 - 1))
def test_cast_segments_matches_reference(case_seed: int) -> None:
    rng = np.random.default_rng(case_seed)
    n, r, k = 4, 7, 12
    origins = rng.uniform(-20, 20, (n, 2))
    directions = _unit(rng.uniform(-np.pi, np.pi, (n, r)))
    starts = rng.uniform(-30, 30, (k, 2))
    ends = starts + rng.uniform(-25, 25, (k, 2))
    max_range = float(rng.uniform(10, 60))
    got = cast_segments(origins, directions, starts, ends - starts, max_range)
    want = ref_cast(origins, directions, max_range, starts, ends)
    assert got.shape == (n, r)
    np.testing.assert_allclose(got, want, atol=TOL, rtol=0)
    assert np.all((got >= 0) & (got <= max_range))


@PROPERTY
@given(case_seed=st.integers(min_value=0, max_value=2**32 - 1))
def test_cast_segments_per_origin_segments_match_reference(case_seed: int) -> None:
    rng = np.random.default_rng(case_seed)
    n, r, k = 3, 5, 9
    origins = rng.uniform(-10, 10, (n, 2))
    directions = _unit(rng.uniform(-np.pi, np.pi, (n, r)))
    starts = rng.uniform(-20, 20, (n, k, 2))
    ends = starts + rng.uniform(-15, 15, (n, k, 2))
    got = cast_segments(origins, directions, starts, ends - starts, 40.0)
    for i in range(n):
        want = ref_cast(origins[i : i + 1], directions[i : i + 1], 40.0, starts[i], ends[i])
        np.testing.assert_allclose(got[i : i + 1], want, atol=TOL, rtol=0)


def _segment_case(seed: int, n: int, k: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    origins = rng.uniform(-20, 20, (n, 2))
    directions = _unit(rng.uniform(-np.pi, np.pi, (n, 6)))
    starts = rng.uniform(-30, 30, (n, k, 2))
    return origins, directions, starts, rng.uniform(-25, 25, (n, k, 2))


def test_cast_segments_reusing_its_scratch_arrays_gives_each_call_its_own_answer() -> None:
    """cast_segments keeps its temporaries between calls: calls of growing, shrinking and
    repeated shapes, interleaved, must each return what the brute force gives."""
    cases = [_segment_case(seed, n, k) for seed, (n, k) in enumerate([(3, 5), (40, 30), (2, 9)])]
    want = [
        np.concatenate(
            [ref_cast(o[i : i + 1], d[i : i + 1], 40.0, s[i], s[i] + e[i]) for i in range(len(o))]
        )
        for o, d, s, e in cases
    ]
    for index in [0, 1, 2, 1, 0, 2, 2]:
        np.testing.assert_allclose(
            cast_segments(*cases[index], 40.0), want[index], atol=TOL, rtol=0
        )


def test_every_thread_casts_into_scratch_arrays_of_its_own() -> None:
    """Threads that cast at once (an emulator beside a trainer) must not share
    cast_segments' scratch arrays: NumPy releases the GIL inside its loops."""
    together = threading.Barrier(2)
    buffers: list[np.ndarray] = []

    def take_scratch() -> None:
        together.wait()  # both threads are alive: two distinct threads
        buffers.append(sensors._scratch.arrays(2, 3, 4)[0])

    threads = [threading.Thread(target=take_scratch) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    mine = sensors._scratch.arrays(2, 3, 4)[0]
    assert not np.shares_memory(buffers[0], buffers[1])
    assert not any(np.shares_memory(mine, other) for other in buffers)


@PROPERTY
@given(case_seed=st.integers(min_value=0, max_value=2**32 - 1))
def test_cast_circles_matches_reference(case_seed: int) -> None:
    rng = np.random.default_rng(case_seed)
    n, r, m = 4, 9, 6
    origins = rng.uniform(-20, 20, (n, 2))
    directions = _unit(rng.uniform(-np.pi, np.pi, (n, r)))
    centres = rng.uniform(-30, 30, (m, 2))
    radii = rng.uniform(0.5, 6.0, m)
    max_range = float(rng.uniform(10, 60))
    got = cast_circles(origins, directions, centres, radii, max_range)
    want = ref_cast(origins, directions, max_range, centres=centres, radii=radii)
    np.testing.assert_allclose(got, want, atol=TOL, rtol=0)


def test_cast_segments_simple_hand_case() -> None:
    # A wall x = 5 from y = -1 to 1; rays from the origin.
    starts = np.array([[5.0, -1.0]])
    edges = np.array([[0.0, 2.0]])
    directions = _unit(np.array([[0.0, np.pi, np.pi / 2, np.arctan2(1.0, 5.0)]]))
    got = cast_segments(np.zeros((1, 2)), directions, starts, edges, 50.0)
    np.testing.assert_allclose(got, [[5.0, 50.0, 50.0, math.hypot(5.0, 1.0)]], atol=1e-12)


def test_cast_segments_caps_at_range() -> None:
    starts, edges = np.array([[100.0, -1.0]]), np.array([[0.0, 2.0]])
    got = cast_segments(np.zeros((1, 2)), _unit(np.zeros((1, 1))), starts, edges, 30.0)
    assert got[0, 0] == 30.0


def test_cast_circles_with_no_circles_reads_range() -> None:
    got = cast_circles(np.zeros((2, 2)), _unit(np.zeros((2, 3))), np.zeros((0, 2)), np.zeros(0), 7)
    np.testing.assert_array_equal(got, np.full((2, 3), 7.0))


def test_cast_circles_hand_case_and_nan_radius_disables() -> None:
    centres = np.array([[10.0, 0.0], [4.0, 0.0]])
    radii = np.array([2.0, np.nan])
    got = cast_circles(np.zeros((1, 2)), _unit(np.array([[0.0, np.pi]])), centres, radii, 50.0)
    np.testing.assert_allclose(got, [[8.0, 50.0]], atol=1e-12)


# ---------------------------------------------------------------------- vertices
@pytest.mark.parametrize("case_seed", range(6))
def test_rays_through_shared_vertices_of_random_polylines_read_true_distance(
    case_seed: int,
) -> None:
    rng = np.random.default_rng(case_seed)
    points = np.cumsum(rng.uniform(-6.0, 6.0, (200, 2)), axis=0)
    starts, ends = points[:-1], points[1:]
    origin = rng.uniform(-10.0, 10.0, 2)
    max_range = 1e3
    vertices = points[1:-1]  # vertex v joins segments v and v + 1 (0-based, interior)
    offsets = vertices - origin
    dist_to_vertex = np.linalg.norm(offsets, axis=1)
    directions = (offsets / dist_to_vertex[:, None])[None]
    got = cast_segments(origin[None], directions, starts, ends - starts, max_range)[0]
    for v in range(len(vertices)):
        others = np.setdiff1d(np.arange(len(starts)), [v, v + 1])
        blocker = ref_cast(
            origin[None], directions[:, v : v + 1], max_range, starts[others], ends[others]
        )[0, 0]
        want = min(dist_to_vertex[v], blocker)
        assert got[v] == pytest.approx(want, abs=TOL), f"vertex {v + 1}"


def test_ray_through_vertex_hits_exactly_even_when_both_segments_graze() -> None:
    # A "roof" /\ whose apex the ray only touches: both segments end at the vertex.
    starts = np.array([[-1.0, 0.0], [0.0, 1.0]])
    ends = np.array([[0.0, 1.0], [1.0, 0.0]])
    origin = np.array([[0.0, -3.0]])
    got = cast_segments(origin, _unit(np.array([[np.pi / 2]])), starts, ends - starts, 50.0)
    assert got[0, 0] == pytest.approx(4.0, abs=TOL)


@PROPERTY
@given(seed=SEEDS, data=st.data())
def test_rays_at_real_wall_vertices_from_the_centreline_read_true_distance(
    seed: int, data: st.DataObject
) -> None:
    track = generate_track(seed)
    starts, ends = track.wall_segments
    n2 = len(starts)
    max_range = 50.0
    i = data.draw(st.integers(min_value=0, max_value=track.n_points - 1), label="car index")
    origin = track.centreline[i]
    dist_to_vertex = np.linalg.norm(starts - origin, axis=1)
    candidates = np.flatnonzero(dist_to_vertex < max_range)
    chosen = candidates[:: max(1, len(candidates) // 12)]
    offsets = starts[chosen] - origin
    directions = (offsets / np.linalg.norm(offsets, axis=1, keepdims=True))[None]
    got = cast_segments(origin[None], directions, starts, ends - starts, max_range)[0]
    for ray, j in enumerate(chosen):
        # Vertex j is the start of segment j and the end of the one before it on its wall.
        n = track.n_points
        previous = (j // n) * n + (j % n - 1) % n
        others = np.setdiff1d(np.arange(n2), [j, previous])
        blocker = ref_cast(
            origin[None], directions[:, ray : ray + 1], max_range, starts[others], ends[others]
        )[0, 0]
        want = min(dist_to_vertex[j], blocker)
        assert got[ray] == pytest.approx(want, abs=TOL), f"vertex {j} from centreline point {i}"


# ---------------------------------------------------------------------- degenerate rays
@pytest.mark.parametrize("angle", [0.0, np.pi / 6, np.pi / 2, 2.0, np.pi])
def test_ray_parallel_to_a_segment_does_not_hit_it(angle: float) -> None:
    d = np.array([np.cos(angle), np.sin(angle)])
    normal = np.array([-d[1], d[0]])
    origin = np.array([1.0, 2.0])
    # Same direction, 0.5 m to the side, in front of the origin.
    start = origin + 2.0 * d + 0.5 * normal
    edge = 10.0 * d
    got = cast_segments(origin[None], d[None, None], start[None], edge[None], 50.0)
    assert got[0, 0] == 50.0


def test_zero_length_segment_is_never_hit() -> None:
    got = cast_segments(
        np.zeros((1, 2)), _unit(np.zeros((1, 1))), np.array([[5.0, 0.0]]), np.zeros((1, 2)), 50.0
    )
    assert got[0, 0] == 50.0


def test_segment_behind_the_ray_is_not_hit() -> None:
    starts, edges = np.array([[-5.0, -1.0]]), np.array([[0.0, 2.0]])
    got = cast_segments(np.zeros((1, 2)), _unit(np.zeros((1, 1))), starts, edges, 50.0)
    assert got[0, 0] == 50.0


def test_circle_behind_the_ray_is_not_hit() -> None:
    got = cast_circles(
        np.zeros((1, 2)), _unit(np.zeros((1, 1))), np.array([[-5.0, 0.0]]), np.array([1.0]), 50.0
    )
    assert got[0, 0] == 50.0


@pytest.mark.parametrize("angle", [0.0, 1.0, np.pi, -2.5])
def test_ray_from_inside_a_circle_reads_zero(angle: float) -> None:
    centres = np.array([[0.5, -0.2]])
    got = cast_circles(np.zeros((1, 2)), _unit(np.array([[angle]])), centres, np.array([2.0]), 50)
    assert got[0, 0] == 0.0


# ---------------------------------------------------------------------- config
def test_sensor_angles_span_the_field_of_view_left_to_right() -> None:
    angles = SensorConfig(n_rays=5, fov_deg=180.0).angles()
    np.testing.assert_allclose(angles, [np.pi / 2, np.pi / 4, 0.0, -np.pi / 4, -np.pi / 2])
    np.testing.assert_array_equal(SensorConfig(n_rays=1).angles(), [0.0])
    directions = ray_directions(np.array([np.pi / 2]), angles)
    np.testing.assert_allclose(directions[0, 0], [-1.0, 0.0], atol=1e-12)  # left of +y
    # All round: straight behind once (it was cast twice, as +180° and -180°).
    round_ = SensorConfig(n_rays=4, fov_deg=360.0).angles()
    np.testing.assert_allclose(round_, [np.pi, np.pi / 2, 0.0, -np.pi / 2])


@pytest.mark.parametrize(
    "kwargs", [{"n_rays": 0}, {"fov_deg": -1.0}, {"fov_deg": 361.0}, {"range": 0}]
)
def test_sensor_config_rejects_bad_values(kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        SensorConfig(**kwargs)


@pytest.mark.parametrize("n_rays", [-3, 5.0, "5", True])
def test_a_ray_count_that_is_no_whole_number_from_1_is_refused_naming_it(n_rays) -> None:
    # "5" failed with TypeError: '<' not supported; 5.0 deep in the env's construction; True
    # made one ray.
    with pytest.raises(ConfigError, match=r"^sensors\.n_rays must be a whole number >= 1, got"):
        SensorConfig(n_rays=n_rays)


# ---------------------------------------------------------------------- world culling
@settings(max_examples=150, deadline=None)
@given(
    seed=SEEDS,
    n_obstacles=st.integers(min_value=0, max_value=5),
    sensor_range=st.sampled_from([20.0, 50.0, 90.0]),
    fov=st.sampled_from([0.0, 30.0, 90.0, 150.0, 360.0]),
    placement_seed=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_world_ray_distances_equal_brute_force_over_all_walls(
    seed: int, n_obstacles: int, sensor_range: float, fov: float, placement_seed: int
) -> None:
    """The World culls wall segments by position and heading sector; nothing it drops
    may be one a ray hits."""
    track = generate_track(seed, TrackConfig(n_obstacles=n_obstacles))
    sensors = SensorConfig(n_rays=12, fov_deg=fov, range=sensor_range)
    n_cars = 6
    world = World(track, n_cars, CarConfig(), sensors, RaceRules())
    rng = np.random.default_rng(placement_seed)
    world.place_cars(
        rng.uniform(0.0, track.length, n_cars),
        rng.uniform(-1.0, 1.0, n_cars) * track.width / 2,
        rng.uniform(-np.pi, np.pi, n_cars),
        np.zeros(n_cars),
    )
    got = world.ray_distances()
    directions = ray_directions(world.cars.heading, sensors.angles())
    starts, ends = track.wall_segments
    # Vectorised brute force over every wall segment (no culling) ...
    full = np.minimum(
        cast_segments(world.cars.position, directions, starts, ends - starts, sensor_range),
        cast_circles(
            world.cars.position,
            directions,
            track.obstacles[:, :2],
            track.obstacles[:, 2],
            sensor_range,
        ),
    )
    np.testing.assert_allclose(got, full, atol=TOL, rtol=0)
    # ... and the pure-Python reference for two of the cars.
    for i in (0, 1):
        want = ref_cast(
            world.cars.position[i : i + 1],
            directions[i : i + 1],
            sensor_range,
            starts,
            ends,
            track.obstacles[:, :2],
            track.obstacles[:, 2],
        )
        np.testing.assert_allclose(got[i : i + 1], want, atol=TOL, rtol=0)


def test_world_rays_see_other_cars_only_when_enabled() -> None:
    track = generate_track(8, TrackConfig(n_obstacles=0))
    for detect in (False, True):
        sensors = SensorConfig(n_rays=1, fov_deg=0.0, range=50.0, detect_cars=detect)
        world = World(track, 2, CarConfig(), sensors, RaceRules())
        # Car 1 is 3 m straight ahead of car 0 on the start straight.
        world.place_cars(np.array([0.0, 3.0]), np.zeros(2), np.zeros(2), np.zeros(2))
        got = world.ray_distances()[0, 0]
        if detect:
            assert got == pytest.approx(3.0 - CarConfig().radius, abs=1e-6)
        else:
            assert got > 3.0
        # A car never sees itself.
        assert world.ray_distances()[1, 0] > 0.0

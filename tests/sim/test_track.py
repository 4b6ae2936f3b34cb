"""Procedural tracks: determinism, geometry invariants, obstacles, config validation."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from racing_rl.errors import ConfigError, RacingRLError, TrackGenerationError
from racing_rl.sim.track import (
    Track,
    TrackConfig,
    generate_track,
    point_segment_distance,
)

SEEDS = st.integers(min_value=0, max_value=10**6)
PROPERTY = settings(max_examples=30, deadline=None)

#: Uncached generator, so determinism tests really generate twice.
_generate_fresh = generate_track.__wrapped__

#: Every array field of a Track (read from one, so a new array is covered too, whatever
#: its annotation says).
ARRAY_FIELDS = tuple(
    f.name
    for f in dataclasses.fields(Track)
    if isinstance(getattr(generate_track(0), f.name), np.ndarray)
)


def segments_intersect(
    a0: NDArray[np.float64],
    a1: NDArray[np.float64],
    b0: NDArray[np.float64],
    b1: NDArray[np.float64],
) -> NDArray[np.bool_]:
    """Whether segments a0→a1 and b0→b1 properly cross, broadcast over leading axes.

    Orientation test (Cormen et al., *Introduction to Algorithms*, §33.1); segments
    that only touch at an end point do not count.

    Args:
        a0, a1, b0, b1: end points, shape (..., 2) [m], mutually broadcastable.

    Returns:
        Boolean array of the broadcast shape without the last axis.
    """

    def orient(
        p: NDArray[np.float64], q: NDArray[np.float64], r: NDArray[np.float64]
    ) -> NDArray[np.float64]:
        return (q[..., 0] - p[..., 0]) * (r[..., 1] - p[..., 1]) - (q[..., 1] - p[..., 1]) * (
            r[..., 0] - p[..., 0]
        )

    d1, d2 = orient(b0, b1, a0), orient(b0, b1, a1)
    d3, d4 = orient(a0, a1, b0), orient(a0, a1, b1)
    return (d1 * d2 < 0) & (d3 * d4 < 0)


def _segment_lengths(track: Track) -> np.ndarray:
    return np.linalg.norm(np.roll(track.centreline, -1, axis=0) - track.centreline, axis=1)


# ---------------------------------------------------------------------- determinism
@pytest.mark.parametrize("seed", [0, 7, 123_456])
def test_same_seed_and_config_give_identical_tracks(seed: int) -> None:
    config = TrackConfig(n_obstacles=4)
    first, second = _generate_fresh(seed, config), _generate_fresh(seed, config)
    assert first is not second
    assert first.length == second.length
    for name in ARRAY_FIELDS:
        np.testing.assert_array_equal(getattr(first, name), getattr(second, name), err_msg=name)


def test_cached_generator_returns_the_same_track() -> None:
    config = TrackConfig(n_obstacles=2)
    assert generate_track(11, config) is generate_track(11, TrackConfig(n_obstacles=2))


def test_different_seeds_give_different_tracks() -> None:
    tracks = [generate_track(seed) for seed in range(12)]
    for i, a in enumerate(tracks):
        for b in tracks[i + 1 :]:
            same_shape = a.centreline.shape == b.centreline.shape and np.allclose(
                a.centreline, b.centreline
            )
            assert not same_shape, f"seeds {a.seed} and {b.seed} gave the same track"


def test_config_changes_the_track() -> None:
    wide = generate_track(5, TrackConfig(width=16.0))
    narrow = generate_track(5, TrackConfig(width=10.0, min_gap=5.0, obstacle_radius_max=2.5))
    np.testing.assert_allclose(np.linalg.norm(wide.left_wall - wide.right_wall, axis=1), 16.0)
    np.testing.assert_allclose(np.linalg.norm(narrow.left_wall - narrow.right_wall, axis=1), 10.0)


def test_arrays_are_read_only() -> None:
    track = generate_track(2)
    for name in ARRAY_FIELDS:
        with pytest.raises(ValueError):
            getattr(track, name)[...] = 0


# ---------------------------------------------------------------------- geometry
@PROPERTY
@given(seed=SEEDS)
def test_walls_never_self_intersect_or_cross_each_other(seed: int) -> None:
    track = generate_track(seed)
    starts, ends = track.wall_segments
    n = track.n_points
    m = 2 * n
    crossing = segments_intersect(starts[:, None], ends[:, None], starts[None], ends[None])
    # Segments that share an end point (neighbours on the same wall) only touch.
    index = np.arange(m)
    wall = index // n
    local = index % n
    same_wall = wall[:, None] == wall[None, :]
    gap = np.abs(local[:, None] - local[None, :])
    adjacent = same_wall & ((gap <= 1) | (gap == n - 1))
    bad = np.argwhere(crossing & ~adjacent)
    assert bad.size == 0, f"seed {seed}: wall segments {bad[:5].tolist()} cross"


def test_segments_intersect_detects_crossings_and_ignores_touching() -> None:
    p = np.array
    # An X crosses.
    assert segments_intersect(p([0.0, 0.0]), p([2.0, 2.0]), p([0.0, 2.0]), p([2.0, 0.0]))
    # Disjoint, parallel, and end-point touching do not.
    assert not segments_intersect(p([0.0, 0.0]), p([1.0, 0.0]), p([0.0, 1.0]), p([1.0, 1.0]))
    assert not segments_intersect(p([0.0, 0.0]), p([1.0, 1.0]), p([2.0, 0.0]), p([3.0, -1.0]))
    assert not segments_intersect(p([0.0, 0.0]), p([1.0, 0.0]), p([1.0, 0.0]), p([1.0, 1.0]))


@PROPERTY
@given(seed=SEEDS)
def test_centreline_is_uniformly_spaced_and_closed(seed: int) -> None:
    config = TrackConfig()
    track = generate_track(seed, config)
    spacing = _segment_lengths(track)  # includes the closing segment n-1 → 0
    assert spacing.std() < 0.01 * spacing.mean()
    assert spacing.max() < 1.02 * spacing.mean()
    assert abs(spacing.mean() - config.point_spacing) < 0.1 * config.point_spacing
    assert track.length == pytest.approx(spacing.sum(), rel=1e-12)
    np.testing.assert_allclose(np.diff(track.arc_length), spacing[:-1], rtol=1e-12)
    assert track.arc_length[0] == 0.0


@PROPERTY
@given(seed=SEEDS)
def test_curvature_radius_is_at_least_the_minimum(seed: int) -> None:
    config = TrackConfig()
    track = generate_track(seed, config)
    curvature = track.curvature()
    assert curvature.shape == (track.n_points,)
    assert np.all(np.abs(curvature) * config.min_curve_radius <= 1.0 + 1e-9)


@PROPERTY
@given(seed=SEEDS)
def test_frame_vectors_are_unit_and_walls_at_half_width(seed: int) -> None:
    track = generate_track(seed)
    np.testing.assert_allclose(np.linalg.norm(track.tangents, axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose((track.tangents * track.normals).sum(axis=1), 0.0, atol=1e-12)
    # Normals point left: tangent × normal = +1.
    cross = track.tangents[:, 0] * track.normals[:, 1] - track.tangents[:, 1] * track.normals[:, 0]
    np.testing.assert_allclose(cross, 1.0, rtol=1e-12)
    np.testing.assert_allclose(
        track.left_wall - track.centreline, track.width / 2 * track.normals, atol=1e-9
    )
    np.testing.assert_allclose(
        track.right_wall - track.centreline, -track.width / 2 * track.normals, atol=1e-9
    )


def test_curvature_of_a_circle_is_one_over_its_radius() -> None:
    radius = 40.0
    n = 200
    theta = np.linspace(0.0, 2 * np.pi, n, endpoint=False)
    centreline = radius * np.stack([np.cos(theta), np.sin(theta)], axis=1)
    length = float(np.linalg.norm(np.roll(centreline, -1, axis=0) - centreline, axis=1).sum())
    zeros = np.zeros((n, 2))
    track = Track(
        seed=0,
        width=10.0,
        centreline=centreline,
        tangents=zeros,
        normals=zeros,
        arc_length=np.zeros(n),
        length=length,
        left_wall=zeros,
        right_wall=zeros,
        obstacles=np.zeros((0, 3)),
        obstacle_index=np.zeros(0, dtype=np.int64),
        obstacle_offset=np.zeros(0),
    )
    # Counter-clockwise is a left turn: positive curvature.
    np.testing.assert_allclose(track.curvature(), 1.0 / radius, rtol=1e-3)


# ---------------------------------------------------------------------- obstacles
@PROPERTY
@given(seed=SEEDS, n_obstacles=st.integers(min_value=1, max_value=6))
def test_obstacles_leave_a_gap_and_lie_within_the_walls(seed: int, n_obstacles: int) -> None:
    config = TrackConfig(n_obstacles=n_obstacles)
    track = generate_track(seed, config)
    half = config.width / 2
    assert track.obstacles.shape == (len(track.obstacle_index), 3)
    assert 1 <= len(track.obstacles) <= n_obstacles
    starts, ends = track.wall_segments
    for (x, y, radius), index, offset in zip(
        track.obstacles, track.obstacle_index, track.obstacle_offset, strict=True
    ):
        centre = np.array([x, y])
        assert config.obstacle_radius_min <= radius <= config.obstacle_radius_max
        np.testing.assert_allclose(
            centre, track.centreline[index] + offset * track.normals[index], atol=1e-9
        )
        # Within the walls: the circle does not touch either wall polyline.
        assert abs(offset) + radius <= half
        assert point_segment_distance(centre[None], starts, ends).min() >= radius
        # The gap on the far side (measured to the wall point across the track) is wide
        # enough, and it is the wall the obstacle is not pushed towards.
        far_wall = track.right_wall if offset > 0 else track.left_wall
        near_wall = track.left_wall if offset > 0 else track.right_wall
        gap = np.linalg.norm(far_wall[index] - centre) - radius
        assert gap >= config.min_gap - 1e-9
        assert np.linalg.norm(near_wall[index] - centre) - radius <= gap
        # Clear of the start line.
        arc = track.arc_length[index]
        assert config.obstacle_clearance < arc < track.length - config.obstacle_clearance
    arcs = np.sort(track.arc_length[track.obstacle_index])
    apart = np.diff(np.concatenate([arcs, arcs[:1] + track.length]))
    if len(arcs) > 1:
        assert apart.min() >= config.obstacle_spacing - 1e-9


def test_no_obstacles_gives_empty_arrays() -> None:
    track = generate_track(3, TrackConfig(n_obstacles=0))
    assert track.obstacles.shape == (0, 3)
    assert track.obstacle_index.shape == (0,)
    assert track.obstacle_offset.shape == (0,)


# ---------------------------------------------------------------------- segments_near
@PROPERTY
@given(
    seed=SEEDS,
    radius=st.floats(min_value=5.0, max_value=80.0),
    sample_seed=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_segments_near_is_conservative(seed: int, radius: float, sample_seed: int) -> None:
    track = generate_track(seed)
    table = track.segments_near(radius)
    n = track.n_points
    assert table.shape[0] == n
    assert table.min() >= 0 and table.max() <= 2 * n
    # The table really culls, or the test would pass vacuously for the walls far away.
    assert table.shape[1] < 2 * n
    starts, ends = track.wall_segments
    padded_starts, padded_edges = track.padded_wall_segments()
    assert padded_starts.shape == padded_edges.shape == (2 * n + 1, 2)
    np.testing.assert_array_equal(padded_edges[2 * n], 0.0)

    rng = np.random.default_rng(sample_seed)
    spacing = _segment_lengths(track)
    direction = (np.roll(track.centreline, -1, axis=0) - track.centreline) / spacing[:, None]
    normal = np.stack([-direction[:, 1], direction[:, 0]], axis=1)
    index = rng.integers(0, n, 64)
    along = rng.uniform(0.0, 1.0, index.size) * spacing[index]
    lateral = rng.uniform(-1.0, 1.0, index.size) * track.width / 2
    points = track.centreline[index] + along[:, None] * direction[index]
    points += lateral[:, None] * normal[index]
    dist = point_segment_distance(points[:, None, :], starts[None], ends[None])  # (P, 2n)
    for p, i in enumerate(index):
        reachable = set(np.flatnonzero(dist[p] <= radius).tolist())
        missing = reachable - set(table[i].tolist())
        assert not missing, f"point near {i}: segments {sorted(missing)} within {radius} m missing"


def test_segments_near_rows_list_candidates_then_padding() -> None:
    track = generate_track(4)
    table = track.segments_near(30.0)
    pad = 2 * track.n_points
    for row in table:
        real = row[row != pad]
        assert real.size > 0
        np.testing.assert_array_equal(real, np.sort(real))
        assert np.all(row[real.size :] == pad)
    assert track.segments_near(30.0) is table  # cached


def test_ray_candidates_narrow_each_row_of_segments_near_by_heading() -> None:
    """Rows list a subset of the point's nearby walls, ascending, then padding; the rays'
    own completeness is checked against brute force in tests/sim/test_sensors.py."""
    track = generate_track(4)
    n, pad = track.n_points, 2 * track.n_points
    near = track.segments_near(50.0)
    table = track.ray_candidates(50.0, np.deg2rad(90.0), 32)
    assert table.shape[:2] == (n, 32) and table.shape[2] < near.shape[1]  # it culls
    for i in range(n):
        for row in table[i]:
            real = row[row != pad]
            np.testing.assert_array_equal(real, np.sort(real))
            assert np.all(row[real.size :] == pad)
            assert set(real.tolist()) <= set(near[i].tolist())
    # Rays spanning 90° or more either side can reach every nearby wall: nothing is dropped.
    wide = track.ray_candidates(50.0, np.deg2rad(200.0), 32)
    np.testing.assert_array_equal(wide, np.repeat(near[:, None, :], 32, axis=1))


# ---------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    "kwargs",
    [
        {"width": 8.0, "min_gap": 5.0, "obstacle_radius_max": 2.0},
        {"width": 0.0},
        {"width": -3.0},
        {"base_radius": 0.0},
        {"point_spacing": -1.0},
        {"radius_variation": 0.9},
        {"radius_variation": -0.1},
        {"n_harmonics": 0},
        {"n_obstacles": -1},
        {"max_attempts": 0},
        {"obstacle_radius_min": 3.0, "obstacle_radius_max": 2.0},
        {"obstacle_radius_min": 0.0},
        {"min_curve_radius": 6.0, "width": 12.0},
        {"min_separation": 10.0, "width": 12.0},  # parts of the track could overlap
    ],
)
def test_track_config_rejects_bad_values(kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        TrackConfig(**kwargs)


def test_blocking_obstacle_message_names_the_fields() -> None:
    with pytest.raises(ConfigError, match="min_gap") as info:
        TrackConfig(width=8.0, min_gap=5.0, obstacle_radius_min=1.0, obstacle_radius_max=2.0)
    assert "width" in str(info.value)
    assert isinstance(info.value, RacingRLError)


def test_obstacle_gap_check_skipped_without_obstacles() -> None:
    TrackConfig(
        width=8.0, min_gap=5.0, obstacle_radius_min=1.0, obstacle_radius_max=2.0, n_obstacles=0
    )


def test_impossible_shape_raises_track_generation_error() -> None:
    config = TrackConfig(base_radius=20.0, min_separation=100.0, max_attempts=3)
    with pytest.raises(TrackGenerationError, match="seed 1"):
        generate_track(1, config)


@PROPERTY
@given(seed=SEEDS, a=st.floats(0.0, 1.0, exclude_max=True), b=st.floats(0.0, 1.0, exclude_max=True))
def test_arc_distance_is_the_shorter_way_round_the_loop(seed: int, a: float, b: float) -> None:
    track = generate_track(seed % 50)
    a, b = a * track.length, b * track.length
    distance = track.arc_distance(a, b)
    assert distance == track.arc_distance(b, a)
    assert 0.0 <= distance <= track.length / 2
    assert track.arc_distance(a, (a + distance) % track.length) == pytest.approx(distance)


#: Track settings far from the defaults' (a round loop, a wide spread of radii, a strong
#: stretch, coarse points): TrackConfig.shortest_length must bound each one's tracks.
SHAPES = [
    TrackConfig(),
    TrackConfig(radius_variation=0.0, stretch=0.0, n_obstacles=0),
    TrackConfig(
        radius_variation=0.85, stretch=0.6, base_radius=40.0, n_harmonics=3, point_spacing=8.0,
        min_curve_radius=8.0, min_separation=20.0, width=10.0, n_obstacles=0,
    ),
    TrackConfig(radius_variation=0.5, stretch=0.9, min_curve_radius=8.0, n_obstacles=0),
]  # fmt: skip


@PROPERTY
@given(seed=SEEDS, shape=st.sampled_from(range(len(SHAPES))))
def test_shortest_length_bounds_every_track_of_the_settings(seed: int, shape: int) -> None:
    """What ``RaceConfig`` refuses a rules.dt by before any track is made."""
    config = SHAPES[shape]
    try:
        track = generate_track(seed, config)
    except TrackGenerationError:
        return  # no track of this seed to bound
    assert 0 <= config.shortest_length <= track.length  # 0: no bound (the third shape)
    if config.radius_variation == config.stretch == 0:  # a circle: the bound is tight
        assert config.shortest_length > 0.998 * track.length


def test_a_negative_track_seed_is_a_config_error() -> None:
    # It was NumPy's ValueError ("expected non-negative integer") with a stack, from
    # eval seeds=[-1] too.
    with pytest.raises(ConfigError, match="a track seed must be an integer >= 0, got -1"):
        generate_track(-1)

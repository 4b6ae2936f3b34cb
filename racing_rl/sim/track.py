"""Procedural closed-loop race tracks and their arc-length geometry.

A track is a closed centreline sampled at uniform arc length, a constant width, two
walls (polylines offset from the centreline by ± width / 2) and optional circular
obstacles that always leave a passable gap. One integer seed gives one track.

Coordinates are metres; x right, y up. The track runs in the direction of increasing
centreline index; the left wall is on the driver's left.

Why one module of ~520 lines: generation (shape, validation, walls, obstacles) and the
queries on a generated track (nearest segments, ray candidates) share the track's
arrays and their invariants.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from racing_rl.errors import ConfigError, TrackGenerationError, check_integer, check_range

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]

#: Number of samples of the analytic curve before arc-length resampling.
_DENSE_SAMPLES = 4096


@dataclass(frozen=True)
class TrackConfig:
    """Parameters of the track generator. Every length is in metres; every number is
    finite.

    Attributes:
        base_radius: mean radius of the loop [m].
        radius_variation: largest relative deviation of the radius noise [-], in [0, 0.9).
        n_harmonics: Fourier terms of the periodic radius noise; more gives busier tracks.
        stretch: the loop is scaled by 1 ± U(0, stretch) along x and the inverse along y
            [-], in [0, 1) (0: no stretch).
        width: distance between the walls [m].
        point_spacing: arc length between centreline samples [m].
        min_curve_radius: tightest allowed radius of curvature of the centreline [m].
        min_separation: smallest distance between centreline points that are far apart
            along the track [m]; keeps distinct parts of the track from touching.
        n_obstacles: circular obstacles on the track.
        obstacle_radius_min: smallest obstacle radius [m].
        obstacle_radius_max: largest obstacle radius [m].
        min_gap: free width left beside every obstacle [m], > 0 (0 would let an obstacle
            close the track).
        obstacle_clearance: arc length before and after the start line kept free [m], >= 0.
        obstacle_spacing: smallest arc length between two obstacles [m], >= 0.
        max_attempts: shapes tried per seed before giving up.
    """

    base_radius: float = 70.0
    radius_variation: float = 0.3
    n_harmonics: int = 5
    stretch: float = 0.25
    width: float = 14.0
    point_spacing: float = 4.0
    min_curve_radius: float = 15.0
    min_separation: float = 30.0
    n_obstacles: int = 3
    obstacle_radius_min: float = 2.5
    obstacle_radius_max: float = 3.5
    min_gap: float = 6.0
    obstacle_clearance: float = 40.0
    obstacle_spacing: float = 40.0
    max_attempts: int = 200

    def __post_init__(self) -> None:
        positive = ("base_radius", "width", "point_spacing", "min_curve_radius", "min_separation")
        for name in positive:
            check_range(f"track.{name}", getattr(self, name), 0, low_open=True)
        check_range("track.obstacle_radius_max", self.obstacle_radius_max)
        check_range("track.min_gap", self.min_gap, 0, low_open=True)
        for name in ("obstacle_clearance", "obstacle_spacing"):
            check_range(f"track.{name}", getattr(self, name), 0)
        # 1 or more could scale x by 0 (a division by zero for y) or mirror the loop.
        check_range("track.stretch", self.stretch, 0, 1, high_open=True)
        check_range("track.radius_variation", self.radius_variation, 0, 0.9, high_open=True)
        check_integer("track.n_harmonics", self.n_harmonics, 1)
        check_integer("track.max_attempts", self.max_attempts, 1)
        check_integer("track.n_obstacles", self.n_obstacles, 0)
        check_range("track.obstacle_radius_min", self.obstacle_radius_min)
        if not 0 < self.obstacle_radius_min <= self.obstacle_radius_max:
            raise ConfigError(
                "track.obstacle_radius_min must be in (0, obstacle_radius_max], got "
                f"{self.obstacle_radius_min} and {self.obstacle_radius_max}."
            )
        if self.n_obstacles and self.min_gap + 2 * self.obstacle_radius_max > self.width:
            raise ConfigError(
                f"track.min_gap ({self.min_gap}) + 2 * obstacle_radius_max "
                f"({self.obstacle_radius_max}) must not exceed track.width ({self.width}): "
                "an obstacle would block the track. Lower one of them or widen the track."
            )
        if self.min_separation <= self.width:
            raise ConfigError(
                f"track.min_separation ({self.min_separation}) must exceed track.width "
                f"({self.width}), or distinct parts of the track may overlap."
            )
        if self.min_curve_radius <= self.width / 2:
            raise ConfigError(
                f"track.min_curve_radius ({self.min_curve_radius}) must exceed half the width "
                f"({self.width / 2}), or the inner wall folds over itself."
            )

    @property
    def shortest_length(self) -> float:
        """A lower bound of the length of every track these settings make [m]; 0 where
        they give none (a loop's least radius no longer than a centreline segment).

        Before its stretch a loop's radius is at least ρ = base_radius · (1 −
        radius_variation), up to the dense samples' chords (a factor cos(π / 4096)). The
        centreline's segments are at most 2 · point_spacing long, and at most 1 / (1 −
        stretch) times that before the stretch; a chord of length 2c between points at
        least ρ from the centre stays sqrt(ρ² − c²) from it. So the centreline winds round
        the circle of radius ρ' = sqrt(ρ² − c²), c = point_spacing / (1 − stretch), and
        after the stretch (x by k, y by 1 / k) round an ellipse of perimeter at least
        π·(k + 1/k)·ρ' ≥ 2π·ρ'; a closed curve round a convex set is at least as long as
        its perimeter. For a round loop (radius_variation = stretch = 0) the bound is
        within 0.2 % of the track's length; for the defaults, 306 m (tracks of 0-299:
        448-502 m).
        """
        rho = self.base_radius * (1 - self.radius_variation) * np.cos(np.pi / _DENSE_SAMPLES)
        half_chord = self.point_spacing / (1 - self.stretch)
        return float(2 * np.pi * np.sqrt(max(rho * rho - half_chord * half_chord, 0.0)))


@dataclass(frozen=True, eq=False)
class Track:
    """A generated track. Arrays are read-only.

    Attributes:
        seed: the seed it was generated from.
        width: distance between the walls [m].
        centreline: points, shape (n, 2) [m], uniformly spaced in arc length, closed
            (point n-1 connects back to point 0). Point 0 is on the start line.
        tangents: unit tangents at the points, shape (n, 2).
        normals: unit left normals at the points, shape (n, 2).
        arc_length: arc length of each point from the start line, shape (n,) [m].
        length: total length of the loop [m].
        left_wall: shape (n, 2) [m]; right_wall: shape (n, 2) [m].
        obstacles: circles, shape (m, 3): x [m], y [m], radius [m].
        obstacle_index: centreline index of each obstacle, shape (m,).
        obstacle_offset: signed lateral offset of each obstacle centre, shape (m,) [m],
            positive to the left.
    """

    seed: int
    width: float
    centreline: FloatArray
    tangents: FloatArray
    normals: FloatArray
    arc_length: FloatArray
    length: float
    left_wall: FloatArray
    right_wall: FloatArray
    obstacles: FloatArray
    obstacle_index: IntArray
    obstacle_offset: FloatArray
    _near_cache: dict[object, IntArray] = field(default_factory=dict, repr=False)

    @property
    def n_points(self) -> int:
        """Number of centreline points (and of segments per wall)."""
        return len(self.centreline)

    @property
    def wall_segments(self) -> tuple[FloatArray, FloatArray]:
        """Both walls as segments: starts and ends, each shape (2n, 2) [m].

        Segments 0 … n-1 are the left wall, n … 2n-1 the right wall; segment i of a wall
        joins point i to point i+1 (mod n).
        """
        starts = np.concatenate([self.left_wall, self.right_wall])
        ends = np.concatenate(
            [np.roll(self.left_wall, -1, axis=0), np.roll(self.right_wall, -1, axis=0)]
        )
        return starts, ends

    def curvature(self) -> FloatArray:
        """Signed curvature of the centreline at each point, shape (n,) [1/m].

        The turning angle between consecutive segments divided by the point spacing
        (a discrete Frenet formula); positive for left turns.
        """
        return turning_angles(self.centreline) / (self.length / self.n_points)

    def arc_distance(self, a: FloatArray | float, b: FloatArray | float) -> FloatArray:
        """Distance along the centreline between the arc positions ``a`` and ``b`` [m]
        (each in [0, length)), the shorter way round the closed loop; broadcast."""
        apart = np.abs(np.asarray(a) - np.asarray(b))
        return np.minimum(apart, self.length - apart)

    @property
    def obstacle_gap_centre(self) -> FloatArray:
        """Lateral offset of the middle of the gap beside each obstacle, shape (m,) [m].

        An obstacle at offset o with radius r leaves the gap from its far edge to the
        opposite wall; its middle is sign(o) · (|o| − r − width/2) / 2.
        """
        offset = self.obstacle_offset
        return np.sign(offset) * (np.abs(offset) - self.obstacles[:, 2] - self.width / 2) / 2

    def segments_near(self, radius: float) -> IntArray:
        """Wall segments that a sensor of range ``radius`` can reach from each point.

        A car whose projection on the centreline is point i is within
        sqrt((width/2)^2 + spacing^2) of point i, so every wall segment that a ray of
        length ``radius`` from that car can touch lies within ``radius`` plus that
        reach of point i. Rows are padded with the index 2n, a zero-length segment that
        no ray hits (see ``padded_wall_segments``).

        Args:
            radius: sensor range [m].

        Returns:
            Segment indices, shape (n, k), int64, k the largest candidate count.
        """
        cached = self._near_cache.get(radius)
        if cached is not None:
            return cached
        starts, ends = self.wall_segments
        spacing = self.length / self.n_points
        reach = radius + np.hypot(self.width / 2, spacing) + 1e-6
        dist = point_segment_distance(self.centreline[:, None, :], starts[None], ends[None])
        near = dist <= reach
        table = _pack_rows(near, np.arange(len(starts)), len(starts))
        table.setflags(write=False)
        self._near_cache[radius] = table
        return table

    def ray_candidates(self, radius: float, fov: float, n_sectors: int) -> IntArray:
        """``segments_near`` narrowed by heading: what the rays of a car can reach.

        A car projected on point i is within ρ = sqrt((width/2)² + spacing²) of it, and
        if its heading lies in sector s (of ``n_sectors`` equal sectors starting at −π)
        its rays point within β = fov/2 + π/n_sectors of the sector's centre φ. A ray
        point q = p + t·u with |p − c_i| ≤ ρ lies within ρ of the line c_i + t·u, so a
        segment of half-length ≤ r whose middle m is at distance d > ρ + r from c_i can
        only be met if the direction of m − c_i is within β + asin((ρ + r) / d) of φ
        (nearer segments are always kept): a superset of the segments the rays can
        meet. For β ≥ 90° nothing is dropped.

        Args:
            radius: sensor range [m].
            fov: field of view [rad].
            n_sectors: heading sectors.

        Returns:
            Segment indices, shape (n, n_sectors, k), int32, padded with 2n (see
            ``padded_wall_segments``).
        """
        key = (radius, fov, n_sectors)
        cached = self._near_cache.get(key)
        if cached is not None:
            return cached
        near = self.segments_near(radius)
        n = self.n_points
        half = fov / 2 + np.pi / n_sectors
        if half >= np.pi / 2:
            table = np.repeat(near[:, None, :], n_sectors, axis=1)  # padding is at the end
        else:
            starts, ends = self.wall_segments
            middle = (starts + ends)[np.minimum(near, 2 * n - 1)] / 2  # (n, K, 2)
            r = np.max(np.linalg.norm(ends - starts, axis=1)) / 2
            reach = np.hypot(self.width / 2, self.length / n) + r
            v = middle - self.centreline[:, None, :]
            distance = np.hypot(v[..., 0], v[..., 1])
            direction = np.arctan2(v[..., 1], v[..., 0])  # (n, K)
            spread = half + np.arcsin(np.minimum(reach / np.maximum(distance, 1e-9), 1.0))
            spread[distance <= reach] = np.pi
            # Sector s is centred on φ_s = −π + (s + ½)·w: the sectors within ``spread``
            # of a direction form the circular range lo … lo + count − 1 (integer
            # arithmetic: 5x faster than wrapping angles for every sector).
            w = 2 * np.pi / n_sectors
            x = (direction + np.pi) / w - 0.5
            span = spread / w + 1e-9
            lo = np.ceil(x - span).astype(np.int16)
            count = (np.floor(x + span).astype(np.int16) - lo + 1)[:, None, :]  # (n, 1, K)
            # Sector s is kept if (s - lo) mod S < count; with the offset s - lo mod S in
            # (-S, S): offset in [0, count), or offset < 0 and offset + S < count.
            offset = (
                np.arange(n_sectors, dtype=np.int16)[:, None] - np.mod(lo, n_sectors)[:, None, :]
            )
            keep = (offset >= 0) & (offset < count)  # (n, S, K)
            keep |= offset < count - n_sectors
            keep &= (near < 2 * n)[:, None, :]
            table = _pack_rows(keep, near.astype(np.int32)[:, None, :], 2 * n)
        table = table.astype(np.int32)
        table.setflags(write=False)
        self._near_cache[key] = table
        return table

    def padded_wall_segments(self) -> tuple[FloatArray, FloatArray]:
        """Wall segment starts and edge vectors (end − start), each shape (2n + 1, 2) [m].

        Row 2n is a zero-length segment far away that no ray hits, used as padding by
        ``segments_near``.
        """
        starts, ends = self.wall_segments
        far = np.full((1, 2), 1e9)
        return np.concatenate([starts, far]), np.concatenate([ends - starts, np.zeros((1, 2))])


def _pack_rows(mask: BoolArray, values: IntArray, pad: int) -> IntArray:
    """Each row's ``values`` where ``mask`` holds, in order, then ``pad``.

    Args:
        mask: shape (..., M).
        values: same shape as ``mask`` (or broadcastable to it), ascending along the
            last axis and below ``pad``: the row's kept values then sort into place,
            which beats scattering them (2-3x, one in-place sort of the rows).
        pad: the value after a row's entries.

    Returns:
        Shape (..., k), k the largest count of a row.
    """
    rows = np.where(mask, values, pad)
    rows.sort(axis=-1)
    k = int(np.count_nonzero(mask, axis=-1).max(initial=0))
    return np.ascontiguousarray(rows[..., :k])


def turning_angles(points: FloatArray) -> FloatArray:
    """Signed turn at each point of a closed polyline, shape (n,) [rad], positive left.

    The angle from segment i-1 (point i-1 → i) to segment i (point i → i+1), wrapped to
    (-π, π]. Divided by the segment length it is the discrete curvature.

    Args:
        points: the closed polyline, shape (n, 2) [m].
    """
    seg = np.roll(points, -1, axis=0) - points
    heading = np.arctan2(seg[:, 1], seg[:, 0])
    return np.angle(np.exp(1j * (heading - np.roll(heading, 1))))


def point_segment_distance(points: FloatArray, starts: FloatArray, ends: FloatArray) -> FloatArray:
    """Euclidean distance from points to segments, broadcast over leading axes.

    Args:
        points: shape (..., 2) [m].
        starts: segment starts, shape (..., 2) [m], broadcastable with ``points``.
        ends: segment ends, same shape as ``starts`` [m].

    Returns:
        Distances, the broadcast shape without the last axis [m].
    """
    # Per coordinate plane: 4x faster than (..., 2) arrays with einsum and norm.
    px, py = points[..., 0], points[..., 1]
    sx, sy = starts[..., 0], starts[..., 1]
    ex, ey = ends[..., 0] - sx, ends[..., 1] - sy
    length2 = np.maximum(ex * ex + ey * ey, 1e-300)
    tau = np.clip(((px - sx) * ex + (py - sy) * ey) / length2, 0.0, 1.0)
    dx = px - (sx + tau * ex)  # point minus its closest point on the segment
    dy = py - (sy + tau * ey)
    return np.sqrt(dx * dx + dy * dy)


@functools.lru_cache(maxsize=64)
def generate_track(seed: int, config: TrackConfig = TrackConfig()) -> Track:
    """Generate the track for ``seed``; the same seed and config give the same track.

    The centreline is r(θ) = R (1 + Σₖ aₖ cos(kθ + φₖ)) on a stretched circle: smooth
    periodic noise on the radius, as the seed's Perlin-noise loop, with amplitudes
    falling as 1/k so the low harmonics shape the loop. It is resampled to uniform arc
    length; shapes that are too tight (curvature radius below ``min_curve_radius``) or
    that come too close to themselves (``min_separation``) are rejected and redrawn.
    The start line is put at the straightest point.

    Args:
        seed: an integer >= 0 (NumPy's seeds); one seed gives one track.
        config: generator parameters.

    Returns:
        The track (cached: repeated calls return the same object).

    Raises:
        ConfigError: if ``seed`` is negative.
        TrackGenerationError: if no valid shape is found in ``config.max_attempts`` tries.
    """
    if seed < 0:
        raise ConfigError(f"a track seed must be an integer >= 0, got {seed}.")
    rng = np.random.default_rng(seed)
    for _ in range(config.max_attempts):
        centreline = _random_centreline(rng, config)
        if _shape_is_valid(centreline, config):
            return _build_track(seed, centreline, rng, config)
    raise TrackGenerationError(
        f"No valid track for seed {seed} in {config.max_attempts} attempts with {config}. "
        "Loosen track.min_curve_radius or track.min_separation, lower "
        "track.radius_variation, or raise track.base_radius or track.max_attempts."
    )


def _random_centreline(rng: np.random.Generator, config: TrackConfig) -> FloatArray:
    """A random closed curve, resampled to uniform arc length: shape (n, 2) [m]."""
    k = np.arange(1, config.n_harmonics + 1)
    amplitudes = rng.uniform(0.0, 1.0, k.size) / k
    phases = rng.uniform(0.0, 2 * np.pi, k.size)
    theta = np.linspace(0.0, 2 * np.pi, _DENSE_SAMPLES, endpoint=False)
    noise = np.cos(np.outer(theta, k) + phases) @ amplitudes
    noise *= config.radius_variation / max(np.abs(noise).max(), 1e-12)
    radius = config.base_radius * (1.0 + noise)
    stretch = 1.0 + rng.uniform(-config.stretch, config.stretch)
    dense = np.stack([stretch * radius * np.cos(theta), radius * np.sin(theta) / stretch], 1)
    if rng.random() < 0.5:  # clockwise or counter-clockwise
        dense = dense[::-1].copy()
    closed = np.concatenate([dense, dense[:1]])
    cumulative = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(closed, axis=0), axis=1))])
    n = max(round(cumulative[-1] / config.point_spacing), 8)
    targets = np.linspace(0.0, cumulative[-1], n, endpoint=False)
    return np.stack([np.interp(targets, cumulative, closed[:, i]) for i in range(2)], 1)


def _shape_is_valid(centreline: FloatArray, config: TrackConfig) -> bool:
    """Reject curves that turn too tightly or whose distinct parts come too close."""
    n = len(centreline)
    seg = np.roll(centreline, -1, axis=0) - centreline
    spacing = np.linalg.norm(seg, axis=1).mean()
    turn = np.abs(turning_angles(centreline))
    if np.any(turn / spacing > 1.0 / config.min_curve_radius):
        return False
    # Points more than a half-circle of min_separation apart along the track must be at
    # least min_separation apart in the plane.
    index = np.arange(n)
    gap = np.abs(index[:, None] - index[None, :])
    arc = np.minimum(gap, n - gap) * spacing
    far_along = arc > 0.5 * np.pi * config.min_separation
    dist = np.linalg.norm(centreline[:, None] - centreline[None], axis=-1)
    return not np.any(far_along & (dist < config.min_separation))


def _build_track(
    seed: int, centreline: FloatArray, rng: np.random.Generator, config: TrackConfig
) -> Track:
    """Put the start line on the straightest stretch, add walls and obstacles."""
    n = len(centreline)
    turn = np.abs(turning_angles(centreline))
    window = max(round(30.0 / config.point_spacing), 1)
    straightness = np.convolve(np.tile(turn, 3), np.ones(2 * window + 1), "same")[n : 2 * n]
    centreline = np.roll(centreline, -int(np.argmin(straightness)), axis=0)

    seg = np.roll(centreline, -1, axis=0) - centreline
    seg_len = np.linalg.norm(seg, axis=1)
    arc_length = np.concatenate([[0.0], np.cumsum(seg_len)[:-1]])
    length = float(seg_len.sum())
    chord = np.roll(centreline, -1, axis=0) - np.roll(centreline, 1, axis=0)
    tangents = chord / np.linalg.norm(chord, axis=1, keepdims=True)
    normals = np.stack([-tangents[:, 1], tangents[:, 0]], 1)
    half = config.width / 2
    left_wall, right_wall = centreline + half * normals, centreline - half * normals
    index, offset, radius = _place_obstacles(rng, arc_length, length, config)
    index, offset, radius = _clear_walls(
        index, offset, radius, centreline, normals, (left_wall, right_wall), config
    )
    obstacles = np.concatenate(
        [centreline[index] + normals[index] * offset[:, None], radius[:, None]], axis=1
    )
    arrays = dict(
        centreline=centreline,
        tangents=tangents,
        normals=normals,
        arc_length=arc_length,
        left_wall=left_wall,
        right_wall=right_wall,
        obstacles=obstacles.reshape(-1, 3),
        obstacle_index=index,
        obstacle_offset=offset,
    )
    for value in arrays.values():
        value.setflags(write=False)
    return Track(seed=seed, width=config.width, length=length, **arrays)


def _clear_walls(
    index: IntArray,
    offset: FloatArray,
    radius: FloatArray,
    centreline: FloatArray,
    normals: FloatArray,
    walls: tuple[FloatArray, FloatArray],
    config: TrackConfig,
) -> tuple[IntArray, FloatArray, FloatArray]:
    """Keep every obstacle off the wall polylines, not only off the wall vertices.

    ``_place_obstacles`` keeps |o| + r <= h at the obstacle's own centreline point, but on
    the inside of a curve the wall chords beside it bend in by up to millimetres. An
    obstacle that would touch a chord moves towards the centreline by the overlap; if
    that narrows its far gap below ``min_gap`` its radius shrinks instead, and if that
    would go below ``obstacle_radius_min`` it is dropped.
    """
    starts = np.concatenate(walls)
    ends = np.concatenate([np.roll(wall, -1, axis=0) for wall in walls])
    half = config.width / 2
    offset, radius = offset.copy(), radius.copy()
    for attempt in range(4):
        centres = centreline[index] + normals[index] * offset[:, None]
        clearance = point_segment_distance(centres[:, None], starts[None], ends[None]).min(1)
        overlap = np.maximum(radius - clearance, 0.0)
        if not overlap.any() or attempt == 3:
            break
        offset -= np.sign(offset) * (overlap + 1e-6)
        radius = np.minimum(radius, half + np.abs(offset) - config.min_gap)
    keep = (radius >= config.obstacle_radius_min) & (overlap == 0.0)
    return index[keep], offset[keep], radius[keep]


def _place_obstacles(
    rng: np.random.Generator, arc_length: FloatArray, length: float, config: TrackConfig
) -> tuple[IntArray, FloatArray, FloatArray]:
    """Obstacle centreline indices, lateral offsets [m] and radii [m].

    Each obstacle sits towards one wall so the gap on the other side is at least
    ``min_gap``: with half-width h and radius r the offset o satisfies
    h + |o| - r >= min_gap and |o| + r <= h.
    """
    allowed = np.flatnonzero(
        (arc_length > config.obstacle_clearance) & (arc_length < length - config.obstacle_clearance)
    )
    chosen: list[int] = []
    for i in rng.permutation(allowed):
        if len(chosen) == config.n_obstacles:
            break
        apart = np.abs(arc_length[chosen] - arc_length[i])
        if np.all(np.minimum(apart, length - apart) >= config.obstacle_spacing):
            chosen.append(int(i))
    index = np.sort(np.array(chosen, dtype=np.int64))
    half = config.width / 2
    radius = rng.uniform(config.obstacle_radius_min, config.obstacle_radius_max, index.size)
    lowest = np.maximum(config.min_gap + radius - half, 0.0)
    offset = rng.uniform(lowest, half - radius) * rng.choice([-1.0, 1.0], index.size)
    return index, offset, radius

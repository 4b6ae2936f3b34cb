"""Vectorised raycasts: N cars × R rays against segments and circles, exactly.

Every function is batched over cars and rays with NumPy broadcasting; there is no loop
over cars, rays or obstacles. Distances are metres, capped at the sensor range.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from racing_rl.errors import ConfigError, check_flag, check_integer, check_range

FloatArray = NDArray[np.float64]

#: Tolerance on the segment parameter u ∈ [0, 1]: a ray through a shared vertex of two
#: wall segments must hit at least one of them despite rounding.
VERTEX_TOLERANCE = 1e-9


#: The Roblox game's ``Car``/``Bus`` rays (their ``Rays`` config): 8 directions, each
#: as (angle from the heading [deg], counter-clockwise = left; length relative to the
#: forward ray). The game casts them (x, z) studs = (0, -15)·25, (±8, -15)·25,
#: (±15, -15)·25, (±15, 0)·10, (0, 15)·5, right before left, and reports each distance
#: over its own length. The 16 rays are the 8 twice: the first 8 ignore cars, the
#: last 8 see cars. The simulator's see the other cars of the race; the game's skip
#: every car of the car's own environment and see those of the others (its raycast
#: filter), and the game casts from 7 studs above the car while it measures from the
#: car, so that a hit there reads at least 7 studs (docs/roblox.md).
ROBLOX_CAR_RAYS = (
    (0.0, 1.0),
    (-math.degrees(math.atan2(8, 15)), 17 / 15),
    (math.degrees(math.atan2(8, 15)), 17 / 15),
    (-45.0, math.sqrt(2)),
    (45.0, math.sqrt(2)),
    (-90.0, 0.4),
    (90.0, 0.4),
    (180.0, 0.2),
)
LAYOUTS = ("fan", "roblox_car")


@dataclass(frozen=True)
class SensorConfig:
    """Ray sensor parameters (finite numbers).

    Attributes:
        n_rays: rays per car (16 with ``layout="roblox_car"``).
        fov_deg: with ``layout="fan"``, the field of view the rays spread evenly over,
            centred on the heading, its edges included [deg]; at 360 the rays go all
            round, 360/n_rays apart, from straight behind (the edges are one ray).
        range: longest distance a ray reports [m]; with ``layout="roblox_car"``, the
            forward ray's (the others are as long as the game's, relative to it).
        detect_cars: whether rays also see other cars (as circles); with
            ``layout="roblox_car"``, only the last 8 rays, as in the game.
        layout: ``"fan"``: ``n_rays`` spread over ``fov_deg``, each ``range`` long;
            ``"roblox_car"``: the Roblox game's car (``ROBLOX_CAR_RAYS``), so that a
            model trained on the simulator fits that car's observations.
    """

    n_rays: int = 10
    fov_deg: float = 90.0
    range: float = 50.0
    detect_cars: bool = False
    layout: str = "fan"

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise ConfigError(f"sensors.layout must be one of {LAYOUTS}, got {self.layout!r}.")
        check_integer("sensors.n_rays", self.n_rays, 1)
        if self.layout == "roblox_car" and self.n_rays != 2 * len(ROBLOX_CAR_RAYS):
            raise ConfigError(
                f"sensors.n_rays={self.n_rays}: layout=roblox_car has "
                f"{2 * len(ROBLOX_CAR_RAYS)} rays (the game's Car); set n_rays="
                f"{2 * len(ROBLOX_CAR_RAYS)}, or layout=fan."
            )
        check_range("sensors.fov_deg", self.fov_deg, 0, 360)
        check_range("sensors.range", self.range, 0, low_open=True)
        check_flag("sensors.detect_cars", self.detect_cars)

    def angles(self) -> FloatArray:
        """Ray angles relative to the heading, shape (n_rays,) [rad]: left to right
        (``fan``), or the game's order (``roblox_car``)."""
        if self.layout == "roblox_car":
            return np.deg2rad([angle for angle, _ in ROBLOX_CAR_RAYS] * 2)
        half = np.deg2rad(self.fov_deg) / 2
        if self.n_rays == 1:
            return np.zeros(1)
        if self.fov_deg == 360:  # all round: +180° and -180° are one ray, cast once
            return np.linspace(half, -half, self.n_rays, endpoint=False)
        return np.linspace(half, -half, self.n_rays)

    def ranges(self) -> FloatArray:
        """Each ray's length, shape (n_rays,) [m]: ``range`` for every ``fan`` ray; the game
        car's own lengths relative to the forward ray for ``roblox_car``."""
        if self.layout == "roblox_car":
            return self.range * np.array([length for _, length in ROBLOX_CAR_RAYS] * 2)
        return np.full(self.n_rays, float(self.range))

    def max_range(self) -> float:
        """The longest ray [m]."""
        return float(np.max(self.ranges()))

    def spread_deg(self) -> float:
        """The angle the rays span, centred on the heading [deg] (360 with rays behind)."""
        return 360.0 if self.layout == "roblox_car" else self.fov_deg

    def car_rays(self) -> slice:
        """The rays that see cars when ``detect_cars`` (all, or the game's last 8)."""
        return slice(len(ROBLOX_CAR_RAYS), None) if self.layout == "roblox_car" else slice(None)


def ray_directions(heading: FloatArray, angles: FloatArray) -> FloatArray:
    """Unit ray directions, shape (N, R, 2), for headings (N,) [rad] and angles (R,) [rad]."""
    theta = heading[:, None] + angles[None, :]
    directions = np.empty((*theta.shape, 2))
    np.cos(theta, out=directions[..., 0])
    np.sin(theta, out=directions[..., 1])
    return directions


def cast_segments(
    origins: FloatArray,
    directions: FloatArray,
    starts: FloatArray,
    edges: FloatArray,
    max_range: float,
) -> FloatArray:
    """Distance along each ray to the nearest segment, or ``max_range``.

    Solves p + t·d = a + u·e with 2-D cross products (Goldman, "Intersection of two
    lines in three-space", *Graphics Gems*, 1990): t = (a−p)×e / d×e and
    u = (a−p)×d / d×e. A hit needs t ≥ 0 and u in [−ε, 1+ε] (``VERTEX_TOLERANCE``).
    Parallel rays (d×e = 0) and zero-length segments never hit.

    Args:
        origins: ray origins, shape (N, 2) [m].
        directions: unit directions, shape (N, R, 2).
        starts: segment starts a, shape (K, 2) or per origin (N, K, 2) [m].
        edges: segment vectors e = b − a, same shape as ``starts`` [m].
        max_range: cap on the distance [m].

    Returns:
        Distances, shape (N, R) [m], in [0, max_range].
    """
    if starts.ndim == 2:
        starts, edges = starts[None], edges[None]
    n, r, k = len(origins), directions.shape[1], starts.shape[-2]
    rx = starts[..., 0] - origins[:, 0, None]  # (N, K)
    ry = starts[..., 1] - origins[:, 1, None]
    ex, ey = edges[..., 0], edges[..., 1]  # (N|1, K)
    basis, t, u, hit, test = _scratch.arrays(n, r, k)
    # d×e and (a−p)×d for every ray and segment in one batched matmul each,
    # (N, R, 2) @ (N, 2, K): far cheaper than four broadcast outer products. Every
    # (N, R, K) array is contiguous, so each ufunc below is one flat loop.
    basis[0, :, 0] = ey
    np.negative(ex, out=basis[0, :, 1])
    np.negative(ry, out=basis[1, :, 0])
    basis[1, :, 1] = rx
    directions = np.ascontiguousarray(directions)
    np.matmul(directions, basis[0], out=t)  # d×e
    np.matmul(directions, basis[1], out=u)  # (a−p)×d
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = np.reciprocal(t, out=t)  # t is computed in place of 1 / d×e
        np.multiply(u, inv, out=u)
        np.multiply((rx * ey - ry * ex)[:, None, :], inv, out=t)  # (a−p)×e: per car, segment
    np.greater_equal(t, 0.0, out=hit)
    hit &= np.greater_equal(u, -VERTEX_TOLERANCE, out=test)
    hit &= np.less_equal(u, 1.0 + VERTEX_TOLERANCE, out=test)
    return np.minimum.reduce(t, axis=2, where=hit, initial=max_range)


class _Scratch(threading.local):
    """Arrays ``cast_segments`` reuses from call to call, one set per thread.

    Its (N, R, K) temporaries pass glibc malloc's mmap and trim thresholds (128 KB by
    default) from about 32 cars on; allocated afresh on every step they were mapped and
    unmapped, page faults and all, which halved the simulator's rate at 128 cars
    (``scripts/bench_sim.py``: 85,000 agent-steps/s, 165,000 with this). One flat buffer
    per dtype grows to the largest call seen; each call takes contiguous views of it.
    """

    def __init__(self) -> None:
        self.floats = np.empty(0)
        self.bools = np.empty(0, dtype=bool)
        self.views: dict[tuple[int, int, int], tuple[np.ndarray, ...]] = {}

    def arrays(self, n: int, r: int, k: int) -> tuple[np.ndarray, ...]:
        """Contiguous views for N cars, R rays and K segments: basis (2, N, 2, K) and
        t, u (N, R, K) floats; hit, test (N, R, K) bools. Their contents are stale."""
        views = self.views.get((n, r, k))
        if views is not None:
            return views
        m, a = n * r * k, 4 * n * k  # a: the basis's size
        if self.floats.size < a + 2 * m or self.bools.size < 2 * m:
            self.floats = np.empty(max(self.floats.size, a + 2 * m))
            self.bools = np.empty(max(self.bools.size, 2 * m), dtype=bool)
            self.views.clear()  # views of the old buffers
        f, b = self.floats, self.bools
        views = self.views[(n, r, k)] = (
            f[:a].reshape(2, n, 2, k),
            f[a : a + m].reshape(n, r, k),
            f[a + m : a + 2 * m].reshape(n, r, k),
            b[:m].reshape(n, r, k),
            b[m : 2 * m].reshape(n, r, k),
        )
        return views


_scratch = _Scratch()


def cast_circles(
    origins: FloatArray,
    directions: FloatArray,
    centres: FloatArray,
    radii: FloatArray,
    max_range: float,
) -> FloatArray:
    """Distance along each ray to the nearest circle, or ``max_range``.

    With f = c − p and b = f·d, the ray meets the circle at t = b − sqrt(b² − |f|² + r²)
    when the discriminant is non-negative. A ray starting inside a circle reads 0.

    Args:
        origins: ray origins, shape (N, 2) [m].
        directions: unit directions, shape (N, R, 2).
        centres: circle centres, shape (M, 2) or per origin (N, M, 2) [m].
        radii: radii, shape (M,) or (N, M) [m]; a NaN radius disables a circle.
        max_range: cap on the distance [m].

    Returns:
        Distances, shape (N, R) [m], in [0, max_range].
    """
    if centres.shape[-2] == 0:
        return np.full(directions.shape[:2], max_range)
    fx = centres[..., 0] - origins[:, 0, None]  # (N, M)
    fy = centres[..., 1] - origins[:, 1, None]
    c = (fx * fx + fy * fy - radii * radii)[:, :, None]  # (N, M, 1)
    # (N, M, R), rays innermost: every ufunc, and the minimum over circles, runs R-long
    # inner loops (with circles innermost they would be M-long: 3 on a default track).
    b = fx[:, :, None] * directions[:, None, :, 0] + fy[:, :, None] * directions[:, None, :, 1]
    with np.errstate(invalid="ignore"):
        t = b - np.sqrt(b * b - c)  # NaN where the ray's line misses the circle
    t = np.where(c <= 0.0, 0.0, t)
    return np.minimum.reduce(t, axis=1, where=t >= 0.0, initial=max_range)  # NaN: a miss

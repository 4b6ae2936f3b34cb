"""A scripted baseline driver: pure pursuit with a curvature-limited speed profile.

It proves every generated track drivable and is the reference learned drivers are
measured against. It reads the simulator state (not the observation), so it drives
any ``World`` or ``WorldBatch``; ``racing_rl.drivers.ScriptedDriver`` puts it in races.

Path (``DriverConfig.line``): ``centre``, the centreline shifted sideways around each
obstacle into the middle of the gap it leaves (a cosine blend in and out); or ``racing``,
a racing line: the shortest closed path through the corridor that keeps ``line_margin``
from the walls and from the obstacles (the taut string of the corridor, one of the two
classic racing lines beside the minimum-curvature one: Braghin et al., "Race driving
line optimization", 2008), found by repeatedly moving every point sideways to its
neighbours' midpoint and back into the corridor. Speed profile (the classic forward/backward
pass, e.g. Kapania et al., "A sequential two-step algorithm for fast generation of
vehicle racing trajectories", 2016): v ≤ sqrt(safety · a_grip / |κ|) on the path, and
v_i ≤ sqrt(v_{i+1}² + 2 · safety · a_brake · Δs) so the car brakes in time. Steering is
pure pursuit (Coulter, "Implementation of the pure pursuit path tracking algorithm",
CMU-RI-TR-92-01): curvature 2·sin(α)/L_d towards a point L_d ahead on the path.

Traffic (``DriverConfig.traffic``, only where car collisions are on): a car whose path
meets another car ahead within ``traffic_horizon`` keeps a speed from which it can still
stop behind it, v ≤ sqrt(v_ahead² + 2 · b · (gap − follow_gap)) (the safe speed of Gipps'
car-following model, "A behavioural car-following model for computer simulation",
Transportation Research B, 1981). It does not pass: it follows until the car ahead's
line leaves its own.
Without ``traffic`` the driver ignores other cars: it is the benchmark's blind opponent.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from racing_rl.sim.car import CarConfig
from racing_rl.sim.track import Track, turning_angles
from racing_rl.sim.world import WorldBatch

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class DriverConfig:
    """Tuning of the scripted driver.

    Attributes:
        grip_safety: share of the car's lateral grip the speed profile uses [-].
        brake_safety: share of the brake deceleration the speed profile uses [-].
        lookahead_time: pure-pursuit look-ahead per unit speed [s].
        lookahead_min: shortest look-ahead distance [m].
        lookahead_max: longest look-ahead distance [m].
        speed_gain: throttle per m/s of speed error [s/m].
        nitro_margin: burn nitro when the target speed exceeds the speed by this [m/s].
        obstacle_blend: arc length over which the path moves around an obstacle [m].
        line: ``"centre"`` or ``"racing"`` (see the module docstring).
        line_margin: the racing line's least distance from a wall or an obstacle's edge,
            from the car's centre [m].
        line_iterations: smoothing passes that pull the racing line taut.
        traffic: follow other cars when car collisions are on (module docstring).
        traffic_horizon: how far ahead other cars are considered [m] (along the track).
        follow_gap: the least along-track gap kept to a car ahead in one's path [m].
        conflict_width: cars closer sideways than this are in each other's path [m].
    """

    grip_safety: float = 0.95
    brake_safety: float = 0.8
    lookahead_time: float = 0.35
    lookahead_min: float = 6.0
    lookahead_max: float = 18.0
    speed_gain: float = 0.5
    nitro_margin: float = 4.0
    obstacle_blend: float = 25.0
    line: str = "centre"
    line_margin: float = 1.75
    line_iterations: int = 1000
    traffic: bool = False
    traffic_horizon: float = 40.0
    follow_gap: float = 10.0
    conflict_width: float = 3.0

    def __post_init__(self) -> None:
        if self.line not in ("centre", "racing"):
            raise ValueError(f"DriverConfig.line must be 'centre' or 'racing', got {self.line!r}.")


#: The fast scripted driver: the racing line, with a speed profile that assumes all of
#: the car's brake and 1.05x its lateral grip (the default: 0.8 and 0.95). On the 200
#: default and 100 hard test tracks it laps every one at 0.93x the default driver's lap
#: time; 1.1x the grip, or a margin of 1.5 m, crashes on 1 % of them
#: (docs/benchmarks.md, "A faster teacher"). With car collisions on it follows the cars
#: ahead (``traffic``).
RACING = DriverConfig(grip_safety=1.05, brake_safety=1.0, line="racing", traffic=True)
#: The scripted drivers by name: the benchmark's reference (``default``) and ``racing``.
TUNINGS = {"default": DriverConfig(), "racing": RACING}


@dataclass(frozen=True, eq=False)
class RacingPath:
    """The driver's path on one track, one entry per centreline point.

    Attributes:
        points: path points, shape (n, 2) [m]: the centreline shifted around obstacles.
        speed: the speed profile at those points, shape (n,) [m/s].
        offset: the points' lateral offsets from the centreline, shape (n,) [m], positive
            left.
    """

    points: FloatArray
    speed: FloatArray
    offset: FloatArray


#: Each live track's planned paths, by car and driver settings, dropped with the track: an
#: ``lru_cache`` kept up to 1,024 tracks alive, ~0.8 MB each with their ray tables.
_PLANS: weakref.WeakKeyDictionary[Track, dict[tuple[CarConfig, DriverConfig], RacingPath]] = (
    weakref.WeakKeyDictionary()
)


def plan_path(track: Track, car: CarConfig, config: DriverConfig) -> RacingPath:
    """The obstacle-avoiding path (``config.line``) and its speed profile for ``track``,
    planned once per track, car and settings while the track lives."""
    plans = _PLANS.setdefault(track, {})
    if (car, config) not in plans:
        plans[car, config] = _plan_path(track, car, config)
    return plans[car, config]


def _plan_path(track: Track, car: CarConfig, config: DriverConfig) -> RacingPath:
    n = track.n_points
    offset = centre_offsets(track, car, config)
    if config.line == "racing":
        offset = racing_line_offsets(track, car, config, offset)
    points = track.centreline + track.normals * offset[:, None]
    seg = np.roll(points, -1, axis=0) - points
    ds = np.linalg.norm(seg, axis=1)
    turn = turning_angles(points)
    # Curvature over three segments smooths the discrete path's kinks.
    kappa = np.convolve(np.tile(turn, 3), np.ones(3), "same")[n : 2 * n] / (3 * ds.mean())
    top = np.sqrt(car.engine_accel / max(car.drag, 1e-9))
    speed = np.minimum(car.corner_speed(kappa, config.grip_safety), top)
    speed = np.minimum(speed, car.max_speed)
    brake = config.brake_safety * car.brake_decel
    for _ in range(2):  # backward pass around the closed loop, twice to wrap
        for i in range(n - 1, -1, -1):
            following = speed[(i + 1) % n]
            speed[i] = min(speed[i], np.sqrt(following**2 + 2 * brake * ds[i]))
    for array in (points, speed, offset):
        array.setflags(write=False)
    return RacingPath(points, speed, offset)


def centre_offsets(track: Track, car: CarConfig, config: DriverConfig) -> FloatArray:
    """The centre path's lateral offset at each centreline point, shape (n,) [m], positive
    left: 0, blended into the middle of the gap beside each obstacle."""
    offset = np.zeros(track.n_points)
    for index, radius, gap_centre in zip(
        track.obstacle_index, track.obstacles[:, 2], track.obstacle_gap_centre, strict=True
    ):
        apart = track.arc_distance(track.arc_length, track.arc_length[index])
        hold = radius + car.length
        weight = np.clip(1.0 - (apart - hold) / config.obstacle_blend, 0.0, 1.0)
        weight = 0.5 - 0.5 * np.cos(np.pi * weight)
        offset = np.where(weight > 0, weight * gap_centre + (1 - weight) * offset, offset)
    return offset


def racing_line_offsets(
    track: Track, car: CarConfig, config: DriverConfig, start: FloatArray
) -> FloatArray:
    """The racing line's lateral offset at each centreline point, shape (n,) [m].

    The corridor: ``config.line_margin`` inside each wall, and beside an obstacle (over
    its radius plus a car length either way along the track) only the gap, ending
    ``line_margin`` from the obstacle's edge. From ``start`` (the centre path, which
    already passes every obstacle on its gap side), ``config.line_iterations`` Jacobi
    passes move each point half-way to its neighbours' midpoint along the normal and clip
    it to the corridor: the fixed point is the corridor's taut string (shortest path).

    Args:
        track: the track.
        car: the car (its length sets how far an obstacle narrows the corridor).
        config: the driver's tuning.
        start: initial offsets, shape (n,) [m] (``centre_offsets``).
    """
    half = track.width / 2 - config.line_margin
    low, high = np.full(track.n_points, -half), np.full(track.n_points, half)
    for index, radius, offset in zip(
        track.obstacle_index, track.obstacles[:, 2], track.obstacle_offset, strict=True
    ):
        near = track.arc_distance(track.arc_length, track.arc_length[index]) < radius + car.length
        if offset > 0:  # on the left: pass on its right
            high[near] = np.minimum(high[near], offset - radius - config.line_margin)
        else:
            low[near] = np.maximum(low[near], offset + radius + config.line_margin)
    centre, normals = track.centreline, track.normals
    before, after = np.roll(np.arange(track.n_points), 1), np.roll(np.arange(track.n_points), -1)
    offset = np.clip(start, low, high)
    for _ in range(config.line_iterations):  # take: np.roll's result, twice as fast here
        points = centre + normals * offset[:, None]
        midpoint = 0.5 * (points.take(before, axis=0) + points.take(after, axis=0))
        step = np.einsum("ij,ij->i", midpoint - points, normals)
        offset = np.clip(offset + 0.5 * step, low, high)
    return offset


class PurePursuitDriver:
    """Drives every active car of a World, or of a WorldBatch's tracks at once, along its
    track's racing path.

    Args:
        config: driver tuning.
    """

    def __init__(self, config: DriverConfig | None = None) -> None:
        self.config = config or DriverConfig()
        self._paths: tuple[tuple[Any, ...], _Paths] | None = None

    def _paths_of(self, world: WorldBatch) -> _Paths:
        """``_Paths`` of ``world``'s tracks, built again only when they change (a race
        drew a new track): the concatenation costs about as much as the rest of ``act``."""
        key = (*world.tracks, world.car, *world.counts)  # Track compares by identity
        if self._paths is None or self._paths[0] != key:
            self._paths = (key, _Paths(world, self.config))
        return self._paths[1]

    def act(self, world: WorldBatch) -> FloatArray:
        """Actions for every car of ``world``, shape (N, 3): throttle, steering, nitro.

        ``world`` is one race (a ``World``) or several (a ``WorldBatch``: training's
        scripted opponents); the arithmetic runs over all N cars at once, each on its
        own track's path.
        """
        config, car = self.config, world.car
        paths = self._paths_of(world)
        speed = world.cars.speed
        lookahead = np.clip(
            config.lookahead_time * np.abs(speed), config.lookahead_min, config.lookahead_max
        )
        # Target point: lookahead metres further along the path (centreline arc length).
        i0, frac = paths.locate(world.arc + lookahead)
        i1 = paths.start + (i0 - paths.start + 1) % paths.n_points
        target = paths.points[i0] * (1 - frac[:, None]) + paths.points[i1] * frac[:, None]
        # Target speed: the profile a little ahead, so braking starts on time.
        here = paths.start + world.index
        ahead = paths.start + (world.index + 1) % paths.n_points
        target_speed = np.minimum(paths.speed[here], paths.speed[ahead])
        if config.traffic and world.rules.car_collisions and world.n_cars > 1:
            target_speed = np.minimum(target_speed, self._traffic(world, paths))
        delta = target - world.cars.position
        alpha = np.arctan2(delta[:, 1], delta[:, 0]) - world.cars.heading
        curvature = 2.0 * np.sin(alpha) / np.maximum(np.hypot(delta[:, 0], delta[:, 1]), 1e-6)
        steer = -np.arctan(curvature * car.wheelbase) / car.max_steer
        error = target_speed - speed
        throttle = np.clip(config.speed_gain * error, -1.0, 1.0)
        nitro = np.where((error > config.nitro_margin) & (np.abs(steer) < 0.3), 1.0, -1.0)
        return np.stack([throttle, np.clip(steer, -1.0, 1.0), nitro], axis=1)

    def _traffic(self, world: WorldBatch, paths: _Paths) -> FloatArray:
        """Each car's safe speed among the other cars of its track, shape (N,) [m/s]: the
        fastest speed from which it can still stop ``follow_gap`` behind every car ahead
        within ``traffic_horizon`` that is in its path (closer sideways than
        ``conflict_width`` to where the car's path, or the car itself, is at that point);
        inf where there is none.

        Pairwise over all N cars (a car meets only those of its own track), as (N, N)
        arrays indexed [car, other].
        """
        config, car = self.config, world.car
        arc, lateral = world.arc, world.lateral
        others = paths.same_track & world.active[:, None] & world.active[None, :]
        np.fill_diagonal(others, False)
        length = paths.length[:, None]
        gap = np.mod(arc[None, :] - arc[:, None], length)  # how far the other is ahead
        gap = np.where(gap > length / 2, gap - length, gap)
        # The car's own path where the other car is.
        there = paths.start[:, None] + (
            np.floor(arc[None, :] / paths.spacing[:, None]).astype(np.int64)
            % paths.n_points[:, None]
        )
        sideways = np.minimum(
            np.abs(paths.offset[there] - lateral[None, :]),
            np.abs(lateral[None, :] - lateral[:, None]),
        )
        blocking = others & (gap > 0) & (gap < config.traffic_horizon)
        blocking &= sideways < config.conflict_width
        brake = config.brake_safety * car.brake_decel
        ahead_speed = np.maximum(world.cars.speed, 0.0)[None, :]
        safe = np.sqrt(np.maximum(ahead_speed**2 + 2 * brake * (gap - config.follow_gap), 0.0))
        return np.where(blocking, safe, np.inf).min(axis=1)


class _Paths:
    """Every car's path in one set of arrays: the paths of a world's tracks concatenated,
    with per-car indices into them (car i's path is ``start[i]:start[i] + n_points[i]``).

    Attributes:
        points, speed, offset: ``RacingPath``'s, concatenated.
        start, n_points, spacing, length: per car, shape (N,): where its path starts,
            its length in points, their spacing [m] and the track's length [m].
        same_track: (N, N), whether two cars share a track.
    """

    def __init__(self, world: WorldBatch, config: DriverConfig) -> None:
        tracks, counts = world.tracks, world.counts
        paths = [plan_path(track, world.car, config) for track in tracks]
        sizes = np.array([track.n_points for track in tracks])
        lengths = np.array([track.length for track in tracks])
        self.n_points = np.repeat(sizes, counts)
        self.length = np.repeat(lengths, counts)
        self.spacing = self.length / self.n_points
        self.start = np.repeat(np.cumsum(sizes) - sizes, counts)
        self.points = np.concatenate([path.points for path in paths])
        self.speed = np.concatenate([path.speed for path in paths])
        self.offset = np.concatenate([path.offset for path in paths])
        track_of = np.repeat(np.arange(len(tracks)), counts)
        self.same_track = track_of[:, None] == track_of[None, :]

    def locate(self, arc: FloatArray) -> tuple[NDArray[np.int64], FloatArray]:
        """The path point at or before arc length ``arc`` (N,) [m] of each car (an index
        into the concatenated arrays) and the fraction of the way to the next."""
        position = arc / self.spacing
        index = np.floor(position).astype(np.int64)
        return self.start + index % self.n_points, position - index

"""Cars racing on tracks: physics, sensors, progress, laps, crashes. Pure NumPy.

``WorldBatch`` holds the cars of several tracks (each track its own race, with its own
clock) as one set of arrays, and ``WorldBatch.step`` advances every car of every track
in one NumPy pass: nothing loops over cars, rays, walls or tracks. ``World`` is the
batch of one track, the plain reference: stepping K tracks in one batch is bit-identical
to stepping K ``World``s (``tests/sim/test_world.py``), since each car's arithmetic is
the same and tracks only meet where a car's data is looked up (its track's rows).

The observation of each car is the contract of ``racing_rl.contract``:

    [ray_0 … ray_{R-1}] / range,  nitro fuel,  signed speed / max speed,  is_reverse

Why one module of ~500 lines: placement, the step and sensing all read and write the
same per-car state arrays that ``WorldBatch`` owns; split apart, each piece would need
the whole state handed to it. What is built once per track lives in
``racing_rl.sim.layout``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from racing_rl.errors import ConfigError, check_flag, check_range
from racing_rl.sim.car import CarConfig, CarState, step_cars
from racing_rl.sim.layout import (
    RAY_SECTORS,
    WINDOW_DIR_X,
    WINDOW_DIR_Y,
    WINDOW_INDEX,
    WINDOW_LENGTH,
    WINDOW_X,
    WINDOW_Y,
    StackedLayout,
    TrackLayout,
)
from racing_rl.sim.sensors import SensorConfig, cast_circles, cast_segments, ray_directions
from racing_rl.sim.track import Track

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

#: A placed car's progress closer to a whole number of laps than this is that number
#: [laps]: the car stands on the line (rounding of the projection must not put it a hair
#: past it, a lap to drive before its lap timer starts, nor exactly on a line still to
#: cross, which timed the lap from 0 / 0).
ON_LINE_PROGRESS = 1e-9
#: Rounding slack of the race clock (a sum of dt) when it is compared with a time [s].
_CLOCK_SLACK = 1e-9
#: Longest stretch of time simulated at once [s]: the default ``rules.dt`` (the game's
#: 15 Hz tick). A longer step is simulated in equal pieces no longer than this, each with
#: its physics, projection and crash tests (``RaceRules.pieces``). In one piece, a 0.5 s
#: step left a car braking from 29 m/s 7.0 m short of v²/2a (1.0 m at 1/15 s), and a car
#: cutting an inner corner could cross its wall between two crash tests.
MAX_PIECE = 1.0 / 15.0


@dataclass(frozen=True)
class RaceRules:
    """Rules of a race.

    Attributes:
        dt: environment step [s] (the seed game's 15 Hz tick); a longer one is simulated
            in pieces of at most 1/15 s (``pieces``). A car at ``car.max_speed`` must move
            less than half a track in it: ``RaceConfig`` checks the shortest track its
            track settings may make, ``TrackLayout.of`` each track raced on.
        stuck_time: a car that makes no new progress for this long is stuck [s].
        car_collisions: whether touching cars crash (touching at any time in a step:
            ``WorldBatch._crashed``).
    """

    dt: float = 1.0 / 15.0
    stuck_time: float = 4.0
    car_collisions: bool = False

    def __post_init__(self) -> None:
        check_range(
            "rules.dt",
            self.dt,
            0,
            low_open=True,
            hint="It is the step in seconds, 1/15 by default (the game's 15 Hz tick); a race "
            "also refuses one in which a car at car.max_speed drives half a track.",
        )
        check_range("rules.stuck_time", self.stuck_time, 0, low_open=True)
        check_flag("rules.car_collisions", self.car_collisions)

    @property
    def pieces(self) -> int:
        """Equal pieces a step is simulated in, each within ``MAX_PIECE``: 1 up to 1/15 s,
        3 for 0.2 s, 8 for 0.5 s."""
        # Less a hair of rounding: 0.2 / (1/15) is 3.0000000000000004.
        return math.ceil(self.dt / MAX_PIECE - 1e-9)


@dataclass(frozen=True)
class StepEvents:
    """What happened to each car in one step; arrays of shape (N,).

    Attributes:
        progress_delta: signed progress along the centreline [laps].
        crashed: left the track, hit an obstacle or (with collisions) another car.
        stuck: no new progress for ``RaceRules.stuck_time``.
        lap_completed: crossed the start line finishing a full lap.
        lap_time: the lap's time where ``lap_completed`` [s], else NaN.
    """

    progress_delta: FloatArray
    crashed: BoolArray
    stuck: BoolArray
    lap_completed: BoolArray
    lap_time: FloatArray


class WorldBatch:
    """Cars on several tracks, stepped as one: track k has ``counts[k]`` cars and its own
    race (clock, laps); cars on different tracks never meet.

    Every state array covers all cars, track after track: track k's cars are rows
    ``offsets[k]:offsets[k + 1]``. The batch owns them; nothing else holds a copy.

    Args:
        tracks: one track per race, K ≥ 1.
        counts: cars on each track, each ≥ 1.
        car: car parameters (every car).
        sensors: ray sensor parameters (every car).
        rules: race rules (every race).

    Attributes:
        tracks: the tracks (``set_track`` replaces one).
        offsets: track k's cars are rows ``offsets[k]:offsets[k + 1]``, length K + 1.
        n_cars: cars in all, N = offsets[-1].
        cars: the car state (positions, headings, speeds, fuel), (N,) and (N, 2).
        active: cars still racing, (N,); inactive cars stand still and are ignored by
            collisions.
        clock: each car's race time, (N,) [s] (one value per track).
        progress: total progress since the start line, (N,) [laps]; negative behind it.
        laps: full laps completed, (N,).
        last_lap_time, best_lap_time: (N,) [s], NaN before the first lap.
        distance: path length driven, (N,) [m] (the integral of |speed|).
        lateral: signed offset from the centreline, (N,) [m], positive to the left.
        arc: arc-length position on the car's track's centreline, (N,) [m], in [0, L]
            (L, up to rounding, where a car projects on the end of the last segment).
        index: the centreline point each car is projected from, (N,), on its own track.

    Raises:
        ConfigError: no track, or a count below 1.
    """

    def __init__(
        self,
        tracks: Sequence[Track],
        counts: Sequence[int],
        car: CarConfig,
        sensors: SensorConfig,
        rules: RaceRules,
    ) -> None:
        if len(tracks) == 0 or len(tracks) != len(counts) or min(counts) < 1:
            raise ConfigError(
                f"A world batch needs one car count >= 1 per track, got {len(tracks)} tracks "
                f"and counts {list(counts)}."
            )
        self.car, self.sensors, self.rules = car, sensors, rules
        self._angles = sensors.angles()
        self._ranges = sensors.ranges()  # each ray's length [m], built once (per observe: 1-6 us)
        self._max_range = float(self._ranges.max())
        self._setup(tracks, counts, [TrackLayout.of(t, car, sensors, rules.dt) for t in tracks])
        n = self.n_cars
        self.cars = CarState.zeros(n)
        self.index = np.zeros(n, np.int64)
        self.arc = np.zeros(n)
        self.lateral = np.zeros(n)
        self.active = np.ones(n, dtype=bool)
        self.clock = np.zeros(n)
        self.distance = np.zeros(n)
        self.laps = np.zeros(n, dtype=np.int64)
        self.last_lap_time = np.full(n, np.nan)
        self.best_lap_time = np.full(n, np.nan)
        self.progress = np.zeros(n)
        self._lap_started = np.zeros(n, dtype=bool)
        self._lap_start_time = np.zeros(n)
        self._next_line = np.zeros(n)
        self._best_progress = np.zeros(n)
        self._last_improvement = np.zeros(n)
        self._placed_at = np.zeros(n)
        for k, count in enumerate(self.counts):
            zeros = np.zeros(count)
            self.place_cars(zeros, zeros, zeros, zeros, track=k)

    def _setup(
        self, tracks: Sequence[Track], counts: Sequence[int], layouts: Sequence[TrackLayout]
    ) -> None:
        self.tracks = list(tracks)
        self.counts = [int(c) for c in counts]
        self.offsets: list[int] = np.cumsum([0, *self.counts]).tolist()
        self.n_cars = self.offsets[-1]
        self._layouts = list(layouts)
        self._layout = StackedLayout.of(self._layouts, self.counts)

    def rows(self, track: int) -> slice:
        """Rows of track ``track``'s cars in every state array.

        Raises:
            IndexError: no such track (a negative index counts as none).
        """
        if not 0 <= track < len(self.tracks):
            raise IndexError(f"track {track} of a batch of {len(self.tracks)} tracks")
        return slice(self.offsets[track], self.offsets[track + 1])

    def set_track(self, track: int, new: Track) -> None:
        """Race on ``new`` in place of track ``track``; its cars start on its start line at
        rest (``place_cars`` them next). The other races go on untouched."""
        self.tracks[track] = new
        self._layouts[track] = TrackLayout.of(new, self.car, self.sensors, self.rules.dt)
        self._layout = self._layout.replaced(track, self._layouts, self.counts)
        zeros = np.zeros(self.counts[track])
        self.place_cars(zeros, zeros, zeros, zeros, track=track)

    # ------------------------------------------------------------------ placement
    def place_cars(
        self,
        arc: FloatArray,
        lateral: FloatArray,
        heading_offset: FloatArray,
        speed: FloatArray,
        cars: BoolArray | None = None,
        track: int = 0,
    ) -> None:
        """Put cars of one track on it: every car (restarting its race) or some of them.

        Args:
            arc: signed arc length from the start line, shape (n,) for the track's n cars
                [m]; negative is behind the line (a grid slot), and the car's progress
                starts at arc / L. A whole number of laps (0, ±L, …) is on the line: that
                car's lap timer starts at once.
            lateral: offset from the centreline, shape (n,) [m], positive to the left.
            heading_offset: heading relative to the track direction, shape (n,) [rad].
            speed: initial speed, shape (n,) [m/s].
            cars: which of the track's cars to place, shape (n,) bool; None places all and
                restarts the race clock. The others keep their state; a placed car starts
                afresh at the current time (lap clock, progress, distance), as a respawned
                car does.
            track: which track, 0 … K - 1.
        """
        rows = self.rows(track)
        n = self.counts[track]
        layout, length = self._layouts[track], self.tracks[track].length
        placed = np.ones(n, dtype=bool) if cars is None else np.asarray(cars, bool)
        wrapped = np.mod(arc, length)
        index = np.minimum(
            np.searchsorted(layout.arc_length, wrapped, side="right") - 1,
            len(layout.arc_length) - 1,
        )
        along = wrapped - layout.arc_length[index]
        direction = layout.seg_dir[index]
        normal = np.stack([-direction[:, 1], direction[:, 0]], axis=1)
        centreline = self.tracks[track].centreline
        position = centreline[index] + direction * along[:, None] + normal * lateral[:, None]
        heading = np.arctan2(direction[:, 1], direction[:, 0]) + heading_offset
        cars_state = self.cars
        cars_state.position[rows] = np.where(placed[:, None], position, cars_state.position[rows])
        cars_state.heading[rows] = np.where(placed, heading, cars_state.heading[rows])
        cars_state.speed[rows] = np.where(
            placed, np.asarray(speed, np.float64), cars_state.speed[rows]
        )
        cars_state.fuel[rows] = np.where(placed, 1.0, cars_state.fuel[rows])
        if cars is None:  # the race restarts; every placed car's state is set below
            self.clock[rows] = 0.0
        self.index[rows] = np.where(placed, index, self.index[rows])
        self.arc[rows] = np.where(placed, wrapped, self.arc[rows])
        self.active[rows] |= placed
        # Index, arc and lateral offset come from the same projection the steps use, so
        # a car at rest never makes progress (next to a vertex the nearest segment can
        # be the previous one). Cars not placed project where they are (no change).
        delta = self._project(rows)
        progress = (np.asarray(arc, dtype=np.float64) + delta) / length
        whole = np.round(progress) + 0.0  # + 0.0: a hair behind the line is 0, not -0
        on_line = np.abs(progress - whole) < ON_LINE_PROGRESS
        progress[on_line] = whole[on_line]
        self.progress[rows] = np.where(placed, progress, self.progress[rows])
        self.distance[rows] = np.where(placed, 0.0, self.distance[rows])
        self._placed_at[rows] = np.where(placed, self.clock[rows], self._placed_at[rows])
        self.laps[rows] = np.where(placed, 0, self.laps[rows])
        self.last_lap_time[rows] = np.where(placed, np.nan, self.last_lap_time[rows])
        self.best_lap_time[rows] = np.where(placed, np.nan, self.best_lap_time[rows])
        # A lap is timed from a start-line crossing; a car placed on the line (at a whole
        # number of laps) starts its lap at once, and the next line is a lap ahead.
        on_line &= placed
        self._lap_started[rows] = np.where(placed, on_line, self._lap_started[rows])
        self._lap_start_time[rows] = np.where(placed, self.clock[rows], self._lap_start_time[rows])
        self._next_line[rows] = np.where(
            placed, np.where(on_line, progress + 1.0, np.ceil(progress)), self._next_line[rows]
        )
        self._best_progress[rows] = np.where(placed, progress, self._best_progress[rows])
        self._last_improvement[rows] = np.where(
            placed, self.clock[rows], self._last_improvement[rows]
        )

    # ------------------------------------------------------------------ stepping
    def step(self, actions: FloatArray) -> StepEvents:
        """Advance every race by one step of ``rules.dt`` seconds (in ``rules.pieces``
        pieces, each tested for crashes).

        Args:
            actions: shape (N, 3) in [-1, 1]: throttle, steering, nitro (see
                ``racing_rl.sim.car.step_cars``). Rows of inactive cars are ignored.

        Returns:
            The step's events per car, shape (N,) (inactive cars report nothing).

        Raises:
            ValueError: ``actions`` is not of shape (N, 3), or a car's action is not finite
                (a policy whose weights diverged), an inactive car's too (NaN · 0 is NaN);
                nothing moves.
        """
        actions = np.asarray(actions, dtype=np.float64)
        if actions.shape != (self.n_cars, 3):
            raise ValueError(
                f"actions must have shape ({self.n_cars}, 3), one row per car; got {actions.shape}."
            )
        finite = np.isfinite(actions).all(axis=1)
        if not finite.all():
            car = int(np.argmin(finite))
            raise ValueError(
                f"car {car}'s action {actions[car].tolist()} is not finite (a policy whose "
                "weights or observation statistics diverged?); nothing was stepped."
            )
        dt = self.rules.dt
        active = self.active
        if not active.all():
            actions = actions * active[:, None]
            self.cars.speed[:] = self.cars.speed * active
        before = self.progress.copy()
        pieces = self.rules.pieces
        crashed = np.zeros(self.n_cars, dtype=bool)
        for _ in range(pieces):  # one piece up to the default dt (MAX_PIECE)
            start = self.cars.position.copy()
            self.distance += step_cars(self.cars, actions, dt / pieces, self.car)
            self.progress += self._project(slice(None)) / self._layout.length
            crashed |= self._crashed(start)
        crashed &= active
        self.clock += dt
        # A crash in the step that crosses the line: no lap (nor a finish) for that car.
        lap_completed, lap_time = self._count_laps(before, dt, active & ~crashed)
        improved = self.progress > self._best_progress
        np.maximum(self.progress, self._best_progress, out=self._best_progress)
        self._last_improvement[:] = np.where(improved, self.clock, self._last_improvement)
        # The clock is a sum of dt: at dt = 1/15, 60 steps make 4.000000000000005 s, and
        # "more than 4 s" held a step early. A nanosecond's slack is below any dt.
        stalled = self.clock - self._last_improvement > self.rules.stuck_time + _CLOCK_SLACK
        stuck = stalled & active & ~crashed
        return StepEvents(
            progress_delta=self.progress - before,
            crashed=crashed,
            stuck=stuck,
            lap_completed=lap_completed,
            lap_time=np.where(lap_completed, lap_time, np.nan),
        )

    @property
    def mean_speed(self) -> FloatArray:
        """Each car's distance driven since it was placed (its race began, or it was
        respawned) over the time since, shape (N,) [m/s]; 0 at placement."""
        return self.distance / np.maximum(self.clock - self._placed_at, 1e-9)

    @property
    def lap_clock(self) -> FloatArray:
        """Time since each car last crossed the start line, shape (N,) [s]; NaN before.

        The running time of the lap in progress (the HUD's "lap time").
        """
        return np.where(self._lap_started, self.clock - self._lap_start_time, np.nan)

    def world(self, track: int) -> World:
        """Track ``track``'s race as it is now, as a ``World`` of its own (a copy of its
        cars' state that shares the track's layout): to draw it or drive it with the
        scripted driver. Stepping the copy leaves the batch as it is.

        Raises:
            IndexError: no such track.
        """
        rows = self.rows(track)
        world = World.__new__(World)
        world._setup([self.tracks[track]], [self.counts[track]], self._layouts[track : track + 1])
        world.car, world.sensors, world.rules = self.car, self.sensors, self.rules
        world._angles, world._ranges, world._max_range = self._angles, self._ranges, self._max_range
        world.cars = CarState(
            *(getattr(self.cars, f)[rows].copy() for f in CarState.__dataclass_fields__)
        )
        for name in _STATE:
            setattr(world, name, getattr(self, name)[rows].copy())
        return world

    # ------------------------------------------------------------------ sensing
    def ray_distances(self) -> FloatArray:
        """Distance along each car's rays to walls, obstacles (and cars), shape (N, R) [m]."""
        layout = self._layout
        sensors, max_range = self.sensors, self._max_range
        origins = self.cars.position
        directions = ray_directions(self.cars.heading, self._angles)
        sector = (
            np.floor((self.cars.heading + np.pi) * (RAY_SECTORS / (2 * np.pi))) % RAY_SECTORS
        ).astype(np.int64)
        cell = (self.index + layout.table_offset) * RAY_SECTORS + sector
        k = layout.ray_counts.take(cell).max()
        rows = layout.ray_table.take(cell, axis=0)[:, :k] + layout.wall_offset[:, None]
        walls = layout.walls.take(rows, axis=0)  # (N, k, 4)
        dist = cast_segments(origins, directions, walls[..., :2], walls[..., 2:], max_range)
        if layout.obstacle_radius.shape[-1]:
            dist = np.minimum(
                dist,
                cast_circles(
                    origins, directions, layout.obstacle_xy, layout.obstacle_radius, max_range
                ),
            )
        if sensors.detect_cars and self.n_cars > 1:  # the other cars of each car's track
            mates = layout.mates  # (N, C)
            radii = np.where(self.active, self.car.radius, np.nan)[mates]
            radii[mates == np.arange(self.n_cars)[:, None]] = np.nan  # itself, the padding
            centres = origins[mates]
            rays = sensors.car_rays()
            dist[:, rays] = np.minimum(
                dist[:, rays],
                cast_circles(origins, directions[:, rays], centres, radii, max_range),
            )
        if sensors.layout != "fan":  # rays of their own lengths
            dist = np.minimum(dist, self._ranges)
        return dist

    def is_reverse(self) -> BoolArray:
        """Whether each car faces against its track's direction, shape (N,)."""
        direction = self._layout.seg_dir.take(self.index + self._layout.point_offset, axis=0)
        heading = self.cars.heading
        return direction[:, 0] * np.cos(heading) + direction[:, 1] * np.sin(heading) < 0.0

    def observe(self) -> NDArray[np.float32]:
        """Observations of every car, shape (N, n_rays + 3), float32 (see module doc)."""
        # The 3 is racing_rl.contract.STATE_SIZE, the contract this writes (the simulator
        # does not import it: the contract imports gymnasium).
        obs = np.empty((self.n_cars, self.sensors.n_rays + 3), dtype=np.float32)
        np.divide(self.ray_distances(), self._ranges, out=obs[:, :-3])
        obs[:, -3] = self.cars.fuel
        obs[:, -2] = np.minimum(np.maximum(self.cars.speed / self.car.max_speed, -1.0), 1.0)
        obs[:, -1] = self.is_reverse()
        return obs

    # ------------------------------------------------------------------ internals
    def _project(self, rows: slice) -> FloatArray:
        """Project cars ``rows`` on their centrelines near their last index; update their
        index, arc and lateral offset; return Δarc, shape (n,) [m] (0 for inactive cars)."""
        layout = self._layout
        offset = layout.point_offset[rows]
        win = layout.window.take(self.index[rows] + offset, axis=1)  # (6, n, W)
        n, width = win.shape[1:]
        position = self.cars.position[rows]
        rx = position[:, 0, None] - win[WINDOW_X]
        ry = position[:, 1, None] - win[WINDOW_Y]
        dx, dy = win[WINDOW_DIR_X], win[WINDOW_DIR_Y]
        along = np.minimum(np.maximum(rx * dx + ry * dy, 0.0), win[WINDOW_LENGTH])
        ox, oy = rx - dx * along, ry - dy * along
        best = np.argmin(ox * ox + oy * oy, axis=1)
        best += np.arange(0, n * width, width)  # flat index into the (n, W) arrays
        index = win[WINDOW_INDEX].take(best).astype(np.int64)  # on the car's own track
        self.lateral[rows] = dx.take(best) * ry.take(best) - dy.take(best) * rx.take(best)
        new_arc = layout.arc_length.take(index + offset) + along.take(best)
        length = layout.length[rows]
        half = length / 2
        delta = np.mod(new_arc - self.arc[rows] + half, length) - half
        self.index[rows], self.arc[rows] = index, new_arc
        return delta * self.active[rows]

    def _count_laps(
        self, before: FloatArray, dt: float, counting: BoolArray
    ) -> tuple[BoolArray, FloatArray]:
        """Detect start-line crossings of the ``counting`` cars, shape (N,); lap times are
        interpolated within the step."""
        crossed = (self.progress >= self._next_line) & counting
        if not crossed.any():
            return crossed, np.full(self.n_cars, np.nan)
        span = np.where(crossed, self.progress - before, 1.0)
        crossing_time = self.clock - dt + dt * (self._next_line - before) / span
        completed = crossed & self._lap_started
        lap_time = crossing_time - self._lap_start_time
        self.laps += completed
        self.last_lap_time[:] = np.where(completed, lap_time, self.last_lap_time)
        self.best_lap_time[:] = np.where(
            completed, np.fmin(self.best_lap_time, lap_time), self.best_lap_time
        )
        self._lap_started |= crossed
        self._lap_start_time[:] = np.where(crossed, crossing_time, self._lap_start_time)
        self._next_line += crossed
        return completed, lap_time

    def _crashed(self, start: FloatArray) -> BoolArray:
        """Off the track, on an obstacle or (with collisions on) touching another car.

        The track's edges are tested where each car ends the step (a piece of it:
        ``RaceRules.pieces``). Obstacles and cars are tested over the whole piece (a swept
        test): the closest approach while the car (each car of a pair) moves in a straight
        line from ``start``, shape (N, 2) [m], to where it is now. Tested only at the
        step's end, two cars closing at 65 m/s (a step is 4.3 m then) could pass through
        each other unseen, and a car at 40 m/s (2.7 m a step) could clip an obstacle's
        edge. The closest approach of p(t) = p0 + t·(p1 - p0), t ∈ [0, 1], a position
        relative to the obstacle (the other car), is at t* = clamp(-p0·d / d·d, 0, 1) with
        d = p1 - p0.
        """
        layout = self._layout
        crashed = np.abs(self.lateral) > layout.crash_half_width
        position = self.cars.position
        if layout.obstacle_radius.shape[-1]:
            moved = position - start  # each car's straight line against each obstacle
            closest2 = _closest_approach2(
                start[:, 0, None] - layout.obstacle_xy[..., 0],  # (N, K)
                start[:, 1, None] - layout.obstacle_xy[..., 1],
                moved[:, 0, None],  # (N, 1)
                moved[:, 1, None],
            )
            crashed |= (closest2 < layout.obstacle_reach2).any(axis=1)
        if self.rules.car_collisions and self.n_cars > 1:
            i, j = layout.car_pairs  # each pair of cars on one track once
            # Relative positions at the step's start (x0, y0) and their change.
            x0 = start[i, 0] - start[j, 0]
            y0 = start[i, 1] - start[j, 1]
            closest2 = _closest_approach2(
                x0, y0, position[i, 0] - position[j, 0] - x0, position[i, 1] - position[j, 1] - y0
            )
            touching = closest2 < (2 * self.car.radius) ** 2
            touching &= self.active[i] & self.active[j]  # inactive cars are not there
            crashed[i[touching]] = True
            crashed[j[touching]] = True
        return crashed


def _closest_approach2(
    x0: FloatArray, y0: FloatArray, dx: FloatArray, dy: FloatArray
) -> FloatArray:
    """The squared least distance [m²] of p(t) = p0 + t·d, t ∈ [0, 1], from the origin:
    |p(t*)|² with t* = clamp(-p0·d / d·d, 0, 1); arrays broadcast together."""
    t = np.minimum(
        np.maximum(-(x0 * dx + y0 * dy) / np.maximum(dx * dx + dy * dy, 1e-12), 0.0), 1.0
    )
    cx, cy = x0 + t * dx, y0 + t * dy
    return cx * cx + cy * cy


#: Per-car state arrays of a ``WorldBatch`` besides ``cars`` (what ``world`` copies).
_STATE = (
    "index",
    "arc",
    "lateral",
    "active",
    "clock",
    "distance",
    "laps",
    "last_lap_time",
    "best_lap_time",
    "progress",
    "_lap_started",
    "_lap_start_time",
    "_next_line",
    "_best_progress",
    "_last_improvement",
    "_placed_at",
)


class World(WorldBatch):
    """N cars racing on one track: the ``WorldBatch`` of one track, the plain reference.

    Args:
        track: the track.
        n_cars: number of cars, ≥ 1.
        car: car parameters.
        sensors: ray sensor parameters.
        rules: race rules.

    Attributes:
        As ``WorldBatch``'s, each of shape (N,); ``time`` is the race time [s].

    Raises:
        ConfigError: ``n_cars`` < 1.
    """

    def __init__(
        self, track: Track, n_cars: int, car: CarConfig, sensors: SensorConfig, rules: RaceRules
    ) -> None:
        if n_cars < 1:
            raise ConfigError(f"A race needs at least one car, got n_cars={n_cars}.")
        super().__init__([track], [n_cars], car, sensors, rules)

    @property
    def track(self) -> Track:
        """The track."""
        return self.tracks[0]

    @property
    def time(self) -> float:
        """Race time [s]: time since the race (re)started."""
        return float(self.clock[0])

"""One track and N cars: physics, sensors, progress, laps, crashes. Pure NumPy.

``World.step`` advances every car at once; nothing loops over cars, rays or walls.
``World.step_batch`` advances several worlds (one track each) in one NumPy pass, with
results bit-identical to stepping each alone. The observation of each car is the
contract of DESIGN.md:

    [ray_0 … ray_{R-1}] / range,  nitro fuel,  signed speed / max speed,  is_reverse
"""

from __future__ import annotations

import itertools
import operator
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from racing_rl.errors import ConfigError
from racing_rl.sim.car import CarConfig, CarState, step_cars
from racing_rl.sim.sensors import SensorConfig, cast_circles, cast_segments, ray_directions
from racing_rl.sim.track import Track

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

#: Heading sectors of the ray-candidate table (``Track.ray_candidates``).
_SECTORS = 32


@dataclass(frozen=True)
class RaceRules:
    """Rules of a race.

    Attributes:
        dt: environment step [s] (the seed game's 15 Hz tick).
        stuck_time: a car that makes no new progress for this long is stuck [s].
        car_collisions: whether touching cars crash.
    """

    dt: float = 1.0 / 15.0
    stuck_time: float = 4.0
    car_collisions: bool = False

    def __post_init__(self) -> None:
        if self.dt <= 0 or self.stuck_time <= 0:
            raise ConfigError(
                f"rules.dt and rules.stuck_time must be > 0 seconds, got {self.dt} and "
                f"{self.stuck_time}."
            )


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


class World:
    """N cars racing on one track.

    Args:
        track: the track.
        n_cars: number of cars.
        car: car parameters.
        sensors: ray sensor parameters.
        rules: race rules.

    Attributes:
        cars: the car state (positions, headings, speeds, fuel).
        active: cars still racing, shape (N,); inactive cars stand still and are ignored
            by collisions.
        time: race time [s].
        progress: total progress since the start line [laps]; negative behind it.
        laps: full laps completed, shape (N,).
        last_lap_time, best_lap_time: [s], NaN before the first lap.
        distance: path length driven [m] (the integral of |speed|).
        lateral: signed offset from the centreline [m], positive to the left.
        arc: arc-length position on the centreline [m], in [0, track.length).
    """

    def __init__(
        self,
        track: Track,
        n_cars: int,
        car: CarConfig,
        sensors: SensorConfig,
        rules: RaceRules,
    ) -> None:
        if n_cars < 1:
            raise ConfigError(f"A race needs at least one car, got n_cars={n_cars}.")
        self.track = track
        self.n_cars = n_cars
        self.car = car
        self.sensors = sensors
        self.rules = rules
        self._angles = sensors.angles()
        self._layout = _Layout.of_track(track, car, sensors, rules)
        self.cars = CarState.zeros(n_cars)
        self.place_cars(np.zeros(n_cars), np.zeros(n_cars), np.zeros(n_cars), np.zeros(n_cars))

    # ------------------------------------------------------------------ placement
    def place_cars(
        self,
        arc: FloatArray,
        lateral: FloatArray,
        heading_offset: FloatArray,
        speed: FloatArray,
        cars: BoolArray | None = None,
    ) -> None:
        """Put cars on the track: every car (restarting the race clock) or some of them.

        Args:
            arc: signed arc length from the start line, shape (N,) [m]; negative is
                behind the line (a grid slot), and the car's progress starts at arc / L.
            lateral: offset from the centreline, shape (N,) [m], positive to the left.
            heading_offset: heading relative to the track direction, shape (N,) [rad].
            speed: initial speed, shape (N,) [m/s].
            cars: which cars to place, shape (N,) bool; None places all and restarts the
                clock. The others keep their state; a placed car starts afresh at the
                current time (lap clock, progress, distance), as a respawned car does.
        """
        track = self.track
        placed = np.ones(self.n_cars, dtype=bool) if cars is None else np.asarray(cars, bool)
        wrapped = np.mod(arc, track.length)
        index = np.minimum(
            np.searchsorted(track.arc_length, wrapped, side="right") - 1, track.n_points - 1
        )
        along = wrapped - track.arc_length[index]
        direction = self._layout.seg_dir[index]
        normal = np.stack([-direction[:, 1], direction[:, 0]], axis=1)
        position = track.centreline[index] + direction * along[:, None] + normal * lateral[:, None]
        heading = np.arctan2(direction[:, 1], direction[:, 0]) + heading_offset
        cars_state = self.cars
        cars_state.position = np.where(placed[:, None], position, cars_state.position)
        cars_state.heading = np.where(placed, heading, cars_state.heading)
        cars_state.speed = np.where(placed, np.asarray(speed, dtype=np.float64), cars_state.speed)
        cars_state.fuel = np.where(placed, 1.0, cars_state.fuel)
        if cars is None:
            self.index, self.arc = index, wrapped
            self.active = np.ones(self.n_cars, dtype=bool)
            self.time = 0.0
            self.distance = np.zeros(self.n_cars)
            self.laps = np.zeros(self.n_cars, dtype=np.int64)
            self.last_lap_time = np.full(self.n_cars, np.nan)
            self.best_lap_time = np.full(self.n_cars, np.nan)
            self.progress = np.zeros(self.n_cars)
            self._lap_started = np.zeros(self.n_cars, dtype=bool)
            self._lap_start_time = np.zeros(self.n_cars)
            self._next_line = np.zeros(self.n_cars)
            self._best_progress = np.zeros(self.n_cars)
            self._last_improvement = np.zeros(self.n_cars)
        else:
            self.index = np.where(placed, index, self.index)
            self.arc = np.where(placed, wrapped, self.arc)
            self.active = self.active | placed
        # Index, arc and lateral offset come from the same projection the steps use, so
        # a car at rest never makes progress (next to a vertex the nearest segment can
        # be the previous one). Cars not placed project where they are (no change).
        delta = _project(self)
        progress = (np.asarray(arc, dtype=np.float64) + delta) / track.length
        progress[np.abs(progress) < 1e-9] = 0.0
        self.progress = np.where(placed, progress, self.progress)
        self.distance = np.where(placed, 0.0, self.distance)
        self.laps = np.where(placed, 0, self.laps)
        self.last_lap_time = np.where(placed, np.nan, self.last_lap_time)
        self.best_lap_time = np.where(placed, np.nan, self.best_lap_time)
        # A lap is timed from a start-line crossing; a car placed exactly on the line
        # starts its first lap at once.
        on_line = placed & (self.progress == 0.0)
        self._lap_started = np.where(placed, on_line, self._lap_started)
        self._lap_start_time = np.where(placed, self.time, self._lap_start_time)
        self._next_line = np.where(
            placed, np.where(on_line, 1.0, np.ceil(self.progress)), self._next_line
        )
        self._best_progress = np.where(placed, self.progress, self._best_progress)
        self._last_improvement = np.where(placed, self.time, self._last_improvement)

    # ------------------------------------------------------------------ stepping
    def step(self, actions: FloatArray) -> StepEvents:
        """Advance the race by one step of ``rules.dt`` seconds.

        Args:
            actions: shape (N, 3) in [-1, 1]: throttle, steering, nitro (see
                ``racing_rl.sim.car.step_cars``). Rows of inactive cars are ignored.

        Returns:
            The step's events per car (inactive cars report nothing).
        """
        return _advance(self, actions)

    @staticmethod
    def step_many(
        worlds: Sequence[World], actions: Sequence[FloatArray]
    ) -> tuple[list[StepEvents], list[NDArray[np.float32]]]:
        """``step_batch``, split per world.

        Returns:
            Per world, its ``StepEvents`` and its observations (see ``observe``).

        Raises:
            ValueError: as ``step_batch``.
        """
        events, observations, offsets = World.step_batch(worlds, actions)
        cuts = list(itertools.pairwise(offsets))
        fields = StepEvents.__dataclass_fields__
        return (
            [StepEvents(*(getattr(events, f)[a:b] for f in fields)) for a, b in cuts],
            [observations[a:b] for a, b in cuts],
        )

    @staticmethod
    def step_batch(
        worlds: Sequence[World], actions: Sequence[FloatArray]
    ) -> tuple[StepEvents, NDArray[np.float32], list[int]]:
        """Step several worlds and observe them, in one NumPy pass when they can share it.

        Worlds with the same car, sensor and rule settings (their tracks and car counts
        may differ) are stacked: a car's arithmetic is exactly that of ``step`` then
        ``observe`` on its own world (bit-identical results), but the few dozen NumPy
        calls of a step are paid once, not once per world. Other worlds are stepped one
        by one.

        Args:
            worlds: the worlds.
            actions: per world, its actions, shape (N_i, 3) (see ``step``).

        Returns:
            The events and observations of every car, world after world (shapes (ΣN_i,)
            and (ΣN_i, n_rays + 3)), and the offsets of each world's cars: world i has
            rows ``offsets[i]:offsets[i + 1]``.

        Raises:
            ValueError: ``worlds`` is empty or ``actions`` differs from it in length.
        """
        if len(worlds) != len(actions) or not worlds:
            raise ValueError(
                "step_batch needs one action array per world and at least one world, got "
                f"{len(worlds)} worlds and {len(actions)} action arrays."
            )
        offsets = list(itertools.accumulate((w.n_cars for w in worlds), initial=0))
        first = worlds[0]
        if len(worlds) < 2 or any(
            (w.car, w.sensors, w.rules) != (first.car, first.sensors, first.rules) for w in worlds
        ):
            each = [w.step(a) for w, a in zip(worlds, actions, strict=True)]
            if len(each) == 1:
                return each[0], worlds[0].observe(), offsets
            fields = StepEvents.__dataclass_fields__
            events = StepEvents(*(np.concatenate([getattr(e, f) for e in each]) for f in fields))
            return events, np.concatenate([w.observe() for w in worlds]), offsets
        stack = _Stack.of(worlds)
        events = _advance(stack, np.concatenate([np.asarray(a, np.float64) for a in actions]))
        observations = _observe(stack)
        stack.scatter()
        return events, observations, offsets

    @property
    def lap_clock(self) -> FloatArray:
        """Time since each car last crossed the start line, shape (N,) [s]; NaN before.

        The running time of the lap in progress (the HUD's "lap time").
        """
        return np.where(self._lap_started, self.time - self._lap_start_time, np.nan)

    # ------------------------------------------------------------------ sensing
    def ray_distances(self) -> FloatArray:
        """Distance along each car's rays to walls, obstacles (and cars), shape (N, R) [m]."""
        return _ray_distances(self)

    def is_reverse(self) -> BoolArray:
        """Whether each car faces against the track direction, shape (N,)."""
        return _is_reverse(self)

    def observe(self) -> NDArray[np.float32]:
        """Observations of every car, shape (N, n_rays + 3), float32 (see module doc)."""
        return _observe(self)


# ---------------------------------------------------------------------- internals
@dataclass(frozen=True, eq=False)
class _Layout:
    """What stepping needs of the track(s), as arrays: one track's, or several stacked.

    Point and wall indices are global over the stacked tracks. The fields from
    ``length`` to ``same_track`` are scalars / shared arrays for one track and per-car
    arrays (N,) / (N, M…) when stacked (``same_track`` is then the (N, N) mask of cars
    on one track).
    """

    seg_dir: FloatArray  # (P, 2) unit direction of centreline segment i
    arc_length: FloatArray  # (P,) arc length of point i on its track [m]
    window: FloatArray  # (6, P, W) segments near point i: start x, y, direction x, y,
    # length, index; one plane per quantity, so each is a contiguous (N, W) block per step
    walls: FloatArray  # (2n + 1, 4) wall start and edge vector; row 2n (per track) no ray hits
    # Cells: point i and heading sector s are row i·S + s (one ``take`` finds a car's).
    ray_table: NDArray[np.int32]  # (P·S, k) wall candidates per cell
    ray_counts: NDArray[np.int64]  # (P·S,) candidates in each row of ray_table
    length: Any  # track length [m]
    crash_half_width: Any  # |lateral| beyond this is a crash [m]
    obstacle_xy: FloatArray  # (M, 2) or (N, M, 2) obstacle centres [m] (NaN: padding)
    obstacle_radius: FloatArray  # (M,) or (N, M) radii [m]
    obstacle_reach2: FloatArray  # (M,) or (N, M) (radius + car radius)² [m²]
    same_track: BoolArray | None

    @classmethod
    def of_track(
        cls, track: Track, car: CarConfig, sensors: SensorConfig, rules: RaceRules
    ) -> _Layout:
        n = track.n_points
        seg = np.roll(track.centreline, -1, axis=0) - track.centreline
        seg_len = np.sqrt((seg * seg).sum(axis=1))
        seg_dir = seg / seg_len[:, None]
        # Per centreline point, the segments a car projected there may move onto next
        # step. A car moves at most max_speed·dt per step; search that far plus one.
        reach = int(np.ceil(car.max_speed * rules.dt / seg_len.min())) + 1
        window = (np.arange(n)[:, None] + np.arange(-reach, reach + 1)[None, :]) % n
        # Walls are packed as rows (start x, start y, edge x, edge y): one ``take``
        # gathers a car's candidates, 8-15x faster than two fancy-indexed gathers.
        ray_table = track.ray_candidates(
            sensors.max_range(), np.deg2rad(sensors.spread_deg()), _SECTORS
        )
        ray_table = ray_table.reshape(n * _SECTORS, -1)
        obstacles = track.obstacles
        return cls(
            seg_dir=seg_dir,
            arc_length=track.arc_length,
            window=np.stack(
                [
                    *np.moveaxis(track.centreline[window], -1, 0),
                    *np.moveaxis(seg_dir[window], -1, 0),
                    seg_len[window],
                    window.astype(np.float64),
                ]
            ),
            walls=np.concatenate(track.padded_wall_segments(), axis=1),
            ray_table=ray_table,
            ray_counts=(ray_table < 2 * n).sum(axis=-1),
            length=track.length,
            crash_half_width=track.width / 2 - car.radius,
            obstacle_xy=obstacles[:, :2],
            obstacle_radius=obstacles[:, 2],
            obstacle_reach2=(obstacles[:, 2] + car.radius) ** 2,
            same_track=None,
        )

    @classmethod
    def stack(cls, layouts: Sequence[_Layout], counts: Sequence[int]) -> tuple[_Layout, list[int]]:
        """Several tracks' layouts as one (``counts`` cars on each); also each track's
        first global point index."""
        points = [len(layout.arc_length) for layout in layouts]
        point_offsets = np.cumsum([0, *points[:-1]]).tolist()
        # Every track keeps its own no-hit row (its last wall), so its table entries
        # only shift by the track's first wall: no remapping of the padding.
        wall_offsets = np.cumsum([0, *(len(layout.walls) for layout in layouts[:-1])]).tolist()
        width = max(layout.window.shape[2] for layout in layouts)
        windows = []
        for layout, p0 in zip(layouts, point_offsets, strict=True):
            window = layout.window.copy()
            window[5] += p0
            # Repeating the last column changes no argmin: the first minimum wins.
            extra = np.repeat(window[..., -1:], width - window.shape[2], axis=2)
            windows.append(np.concatenate([window, extra], axis=2))
        car_offsets = np.cumsum([0, *counts]).tolist()
        m = max(layout.obstacle_radius.shape[-1] for layout in layouts)
        n = int(sum(counts))
        xy, radius, reach2 = (
            np.full((n, m, 2), np.nan),
            np.full((n, m), np.nan),
            np.full((n, m), np.nan),
        )
        for layout, a, b in zip(layouts, car_offsets[:-1], car_offsets[1:], strict=True):
            k = layout.obstacle_radius.shape[-1]
            xy[a:b, :k] = layout.obstacle_xy
            radius[a:b, :k] = layout.obstacle_radius
            reach2[a:b, :k] = layout.obstacle_reach2
        walls = np.concatenate([layout.walls for layout in layouts])
        # One candidate table, each track's walls shifted to the stack's; a row past its
        # track's own width reads the stack's last (no-hit) wall. Building it costs
        # ~0.5 ms per new combination of tracks; a step then needs one ``take``, not
        # one per track.
        tables = [layout.ray_table for layout in layouts]
        shape = (sum(len(t) for t in tables), max(t.shape[1] for t in tables))
        ray_table = np.full(shape, len(walls) - 1, np.int32)
        for table, w0, p0 in zip(tables, wall_offsets, point_offsets, strict=True):
            row = p0 * _SECTORS  # a track's cells follow the previous tracks' cells
            np.add(table, w0, out=ray_table[row : row + len(table), : table.shape[1]])
        track_of_car = np.repeat(np.arange(len(layouts)), counts)
        stacked = cls(
            seg_dir=np.concatenate([layout.seg_dir for layout in layouts]),
            arc_length=np.concatenate([layout.arc_length for layout in layouts]),
            window=np.concatenate(windows, axis=1),
            walls=walls,
            ray_table=ray_table,
            ray_counts=np.concatenate([layout.ray_counts for layout in layouts]),
            length=np.repeat([layout.length for layout in layouts], counts),
            crash_half_width=np.repeat([layout.crash_half_width for layout in layouts], counts),
            obstacle_xy=xy,
            obstacle_radius=radius,
            obstacle_reach2=reach2,
            same_track=track_of_car[:, None] == track_of_car[None, :],
        )
        return stacked, point_offsets


#: World state arrays of shape (N,) that ``World.step_batch`` stacks and splits back.
_STATE = (
    "active",
    "distance",
    "progress",
    "arc",
    "lateral",
    "laps",
    "last_lap_time",
    "best_lap_time",
    "_lap_started",
    "_lap_start_time",
    "_next_line",
    "_best_progress",
    "_last_improvement",
)


class _Stack:
    """The cars of several worlds as one World-like batch (``World.step_batch``).

    Holds the same attributes the step functions read and write (state arrays stacked,
    ``time`` per car, the stacked ``_Layout``); ``scatter`` hands the results back to
    each world as views of the stacked arrays. The next ``World.step_batch`` of the same
    worlds reuses the stack (``of``) unless a world's state has been replaced since
    (``place_cars``, a lone ``step``): in-place changes reach the stack through the
    views, so its arrays hold what stacking the worlds again would give.
    """

    #: Stacked layouts of recent world combinations (they change on a track change).
    _layouts: OrderedDict[tuple[tuple[int, int], ...], tuple[Any, _Layout, list[int]]] = (
        OrderedDict()
    )
    #: The stack of the last ``World.step_batch`` (it holds its worlds and the objects
    #: ``scatter`` gave them, so their identities cannot be reused).
    _last: _Stack | None = None

    @classmethod
    def of(cls, worlds: Sequence[World]) -> _Stack:
        """The last stack if it still holds exactly these worlds' state, else a new one."""
        last = cls._last
        if last is None or not last._holds(worlds):
            last = cls._last = cls(worlds)
        return last

    def _holds(self, worlds: Sequence[World]) -> bool:
        # _given is short of the worlds until scatter (a step that raised never got there).
        return len(worlds) == len(self.worlds) == len(self._given) and all(
            w is mine and all(map(operator.is_, _state_of(w), given))
            for w, mine, given in zip(worlds, self.worlds, self._given, strict=True)
        )

    def __init__(self, worlds: Sequence[World]) -> None:
        self.worlds = list(worlds)
        first = worlds[0]
        self.car, self.sensors, self.rules = first.car, first.sensors, first.rules
        self._angles = first._angles
        counts = [w.n_cars for w in worlds]
        self.offsets: list[int] = np.cumsum([0, *counts]).tolist()
        self.n_cars = self.offsets[-1]
        key = tuple((id(w._layout), w.n_cars) for w in worlds)
        cached = self._layouts.get(key)
        if cached is None:  # the layouts are kept in the entry, so their ids stay unique
            layouts = tuple(w._layout for w in worlds)
            cached = (layouts, *_Layout.stack(layouts, counts))
            self._layouts[key] = cached
            while len(self._layouts) > 4:  # each holds a ray table of ~0.75 MB a track
                self._layouts.popitem(last=False)
        else:
            self._layouts.move_to_end(key)
        _, self._layout, self._point_offsets = cached
        self.cars = CarState(
            *(
                np.concatenate([getattr(w.cars, f) for w in worlds])
                for f in CarState.__dataclass_fields__
            )
        )
        self.index = np.concatenate(
            [w.index + p0 for w, p0 in zip(worlds, self._point_offsets, strict=True)]
        )
        for name in _STATE:
            setattr(self, name, np.concatenate([getattr(w, name) for w in worlds]))
        self.time = np.repeat([w.time for w in worlds], counts)
        self._given: list[tuple[Any, ...]] = []

    def scatter(self) -> None:
        """Give every world its rows of the stacked state."""
        self._given = []
        for w, a, b, p0 in zip(
            self.worlds, self.offsets[:-1], self.offsets[1:], self._point_offsets, strict=True
        ):
            for f in CarState.__dataclass_fields__:
                setattr(w.cars, f, getattr(self.cars, f)[a:b])
            w.index = self.index[a:b] - p0
            for name in _STATE:
                setattr(w, name, getattr(self, name)[a:b])
            w.time = float(self.time[a])
            self._given.append(_state_of(w))


#: The objects of a world that a ``_Stack`` is built from or ``scatter`` sets: while all
#: are the same objects, the stack holds the world's state.
_state_of = operator.attrgetter(
    "car",
    "sensors",
    "rules",
    "_layout",
    "cars",
    *(f"cars.{f}" for f in CarState.__dataclass_fields__),
    "index",
    *_STATE,
    "time",
)


# The step, written once for a World (scalar time, one track) and a _Stack (time and
# track data per car): every car's arithmetic is the same either way.


def _advance(w: Any, actions: FloatArray) -> StepEvents:
    """``World.step`` of a World or a _Stack."""
    dt = w.rules.dt
    active = w.active
    actions = np.asarray(actions, dtype=np.float64)
    if not active.all():
        actions = actions * active[:, None]
        w.cars.speed = w.cars.speed * active
    w.distance += step_cars(w.cars, actions, dt, w.car)
    w.time += dt

    before = w.progress
    w.progress = before + _project(w) / w._layout.length
    lap_completed, lap_time = _count_laps(w, before, dt)
    crashed = _crashed(w) & active
    improved = w.progress > w._best_progress
    w._best_progress = np.maximum(w.progress, w._best_progress)
    w._last_improvement = np.where(improved, w.time, w._last_improvement)
    stuck = (w.time - w._last_improvement > w.rules.stuck_time) & active & ~crashed
    return StepEvents(
        progress_delta=w.progress - before,
        crashed=crashed,
        stuck=stuck,
        lap_completed=lap_completed,
        lap_time=np.where(lap_completed, lap_time, np.nan),
    )


def _project(w: Any) -> FloatArray:
    """Project cars on the centreline near their last index; return Δarc [m]."""
    layout = w._layout
    win = layout.window.take(w.index, axis=1)  # (6, N, W)
    n, width = win.shape[1:]
    rx = w.cars.position[:, 0, None] - win[0]
    ry = w.cars.position[:, 1, None] - win[1]
    dx, dy = win[2], win[3]
    along = np.minimum(np.maximum(rx * dx + ry * dy, 0.0), win[4])
    ox, oy = rx - dx * along, ry - dy * along
    best = np.argmin(ox * ox + oy * oy, axis=1)
    best += np.arange(0, n * width, width)  # flat index into the (N, W) arrays
    index = win[5].take(best).astype(np.int64)
    w.lateral = win[2].take(best) * ry.take(best) - win[3].take(best) * rx.take(best)
    new_arc = layout.arc_length.take(index) + along.take(best)
    half = layout.length / 2
    delta = np.mod(new_arc - w.arc + half, layout.length) - half
    w.index, w.arc = index, new_arc
    return delta * w.active


def _count_laps(w: Any, before: FloatArray, dt: float) -> tuple[BoolArray, FloatArray]:
    """Detect start-line crossings; lap times are interpolated within the step."""
    crossed = (w.progress >= w._next_line) & w.active
    if not crossed.any():
        return crossed, np.full(w.n_cars, np.nan)
    span = np.where(crossed, w.progress - before, 1.0)
    crossing_time = w.time - dt + dt * (w._next_line - before) / span
    completed = crossed & w._lap_started
    lap_time = crossing_time - w._lap_start_time
    w.laps += completed
    w.last_lap_time = np.where(completed, lap_time, w.last_lap_time)
    w.best_lap_time = np.where(completed, np.fmin(w.best_lap_time, lap_time), w.best_lap_time)
    w._lap_started = w._lap_started | crossed
    w._lap_start_time = np.where(crossed, crossing_time, w._lap_start_time)
    w._next_line = w._next_line + crossed
    return completed, lap_time


def _crashed(w: Any) -> BoolArray:
    """Off the track, on an obstacle or (with collisions on) touching another car."""
    layout = w._layout
    crashed = np.abs(w.lateral) > layout.crash_half_width
    if layout.obstacle_radius.shape[-1]:
        fx = w.cars.position[:, 0, None] - layout.obstacle_xy[..., 0]
        fy = w.cars.position[:, 1, None] - layout.obstacle_xy[..., 1]
        crashed |= (fx * fx + fy * fy < layout.obstacle_reach2).any(axis=1)
    if w.rules.car_collisions and w.n_cars > 1:
        fx = w.cars.position[:, 0, None] - w.cars.position[None, :, 0]
        fy = w.cars.position[:, 1, None] - w.cars.position[None, :, 1]
        touching = (fx * fx + fy * fy < (2 * w.car.radius) ** 2) & w.active[None, :]
        np.fill_diagonal(touching, False)
        if layout.same_track is not None:
            touching &= layout.same_track
        crashed |= touching.any(axis=1)
    return crashed


def _ray_distances(w: Any) -> FloatArray:
    """``World.ray_distances`` of a World or a _Stack."""
    layout = w._layout
    max_range = w.sensors.max_range()
    origins = w.cars.position
    directions = ray_directions(w.cars.heading, w._angles)
    sector = (np.floor((w.cars.heading + np.pi) * (_SECTORS / (2 * np.pi))) % _SECTORS).astype(
        np.int64
    )
    cell = w.index * _SECTORS + sector
    k = layout.ray_counts.take(cell).max()
    rows = layout.ray_table.take(cell, axis=0)[:, :k]
    walls = layout.walls.take(rows, axis=0)  # (N, k, 4)
    dist = cast_segments(origins, directions, walls[..., :2], walls[..., 2:], max_range)
    if layout.obstacle_radius.shape[-1]:
        dist = np.minimum(
            dist,
            cast_circles(
                origins, directions, layout.obstacle_xy, layout.obstacle_radius, max_range
            ),
        )
    if w.sensors.detect_cars and w.n_cars > 1:
        radii = np.where(w.active, w.car.radius, np.nan)[None, :].repeat(w.n_cars, 0)
        np.fill_diagonal(radii, np.nan)
        if layout.same_track is not None:
            radii[~layout.same_track] = np.nan
        centres = np.broadcast_to(origins[None], (w.n_cars, w.n_cars, 2))
        rays = w.sensors.car_rays()
        dist[:, rays] = np.minimum(
            dist[:, rays],
            cast_circles(origins, directions[:, rays], centres, radii, max_range),
        )
    if w.sensors.layout != "fan":  # rays of their own lengths
        dist = np.minimum(dist, w.sensors.ranges())
    return dist


def _is_reverse(w: Any) -> BoolArray:
    direction = w._layout.seg_dir.take(w.index, axis=0)
    heading = w.cars.heading
    return direction[:, 0] * np.cos(heading) + direction[:, 1] * np.sin(heading) < 0.0


def _observe(w: Any) -> NDArray[np.float32]:
    obs = np.empty((w.n_cars, w.sensors.n_rays + 3), dtype=np.float32)
    np.divide(_ray_distances(w), w.sensors.ranges(), out=obs[:, :-3])
    obs[:, -3] = w.cars.fuel
    obs[:, -2] = np.minimum(np.maximum(w.cars.speed / w.car.max_speed, -1.0), 1.0)
    obs[:, -1] = _is_reverse(w)
    return obs

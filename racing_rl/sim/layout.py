"""What stepping needs of a track, as arrays: ``TrackLayout`` (one track, built once)
and ``StackedLayout`` (the tracks of a ``WorldBatch`` as one, with per-car lookups)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from racing_rl.errors import ConfigError
from racing_rl.sim.car import CarConfig
from racing_rl.sim.sensors import SensorConfig
from racing_rl.sim.track import Track

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
IntArray = NDArray[np.int64]

#: Heading sectors of the ray-candidate table (``Track.ray_candidates``): a car's rays
#: are looked up by its centreline point and the sector its heading lies in.
RAY_SECTORS = 32
#: Planes of ``TrackLayout.window``, each (P, W): for centreline point i, the W segments a
#: car projected there may be on after one step: their start x and y [m], unit direction
#: x and y, length [m] and index (a float, as the other planes).
WINDOW_X, WINDOW_Y, WINDOW_DIR_X, WINDOW_DIR_Y, WINDOW_LENGTH, WINDOW_INDEX = range(6)


@dataclass(frozen=True, eq=False)
class TrackLayout:
    """What stepping needs of one track, as arrays (built once per track).

    Attributes:
        seg_dir: unit direction of centreline segment i, shape (P, 2).
        arc_length: arc length of centreline point i, shape (P,) [m].
        window: the segments near each point, shape (6, P, W); planes ``WINDOW_X`` …
            ``WINDOW_INDEX``, one plane per quantity, so that one ``take`` gathers a
            car's window and each quantity is a contiguous (N, W) block.
        walls: wall start and edge vector, shape (2n + 1, 4) [m]; row 2n is a padding
            wall no ray hits (``Track.padded_wall_segments``).
        ray_table: wall candidates of each (point, heading sector) cell, shape (P·S, k);
            point i and sector s are row i·S + s (``Track.ray_candidates``).
        ray_counts: candidates in each row of ``ray_table``, shape (P·S,).
        length: track length [m].
        crash_half_width: a car whose centre is farther than this from the centreline
            has left the track [m].
        obstacle_xy, obstacle_radius: obstacle centres (M, 2) and radii (M,) [m].
        obstacle_reach2: (radius + car radius)², shape (M,) [m²]: closer is a crash.
    """

    seg_dir: FloatArray
    arc_length: FloatArray
    window: FloatArray
    walls: FloatArray
    ray_table: NDArray[np.int32]
    ray_counts: IntArray
    length: float
    crash_half_width: float
    obstacle_xy: FloatArray
    obstacle_radius: FloatArray
    obstacle_reach2: FloatArray

    @classmethod
    def of(cls, track: Track, car: CarConfig, sensors: SensorConfig, dt: float) -> TrackLayout:
        """The layout of ``track`` for cars and sensors of these settings and steps of
        ``dt`` seconds.

        Raises:
            ConfigError: a car at ``car.max_speed`` moves half the track or more in ``dt``:
                a step's progress, wrapped to ± half a lap, could not tell forwards from
                back (and the projection window would cover the whole loop).
        """
        step = car.max_speed * dt  # the farthest a car moves in a step [m]
        if not step < track.length / 2:
            raise ConfigError(
                f"rules.dt ({dt} s) lets a car at car.max_speed ({car.max_speed} m/s) move "
                f"{step:.1f} m in a step, half or more of track {track.seed}'s "
                f"{track.length:.1f} m: progress along it would be ambiguous. Use a rules.dt "
                f"below {track.length / (2 * car.max_speed):.3g} s ({1 / 15:.4f} s by default)."
            )
        n = track.n_points
        seg = np.roll(track.centreline, -1, axis=0) - track.centreline
        seg_len = np.sqrt((seg * seg).sum(axis=1))
        seg_dir = seg / seg_len[:, None]
        # Per centreline point, the segments a car projected there may move onto next
        # step. A car moves at most max_speed·dt per step; search that far plus one.
        reach = int(np.ceil(car.max_speed * dt / seg_len.min())) + 1
        window = (np.arange(n)[:, None] + np.arange(-reach, reach + 1)[None, :]) % n
        # Walls are packed as rows (start x, start y, edge x, edge y): one ``take``
        # gathers a car's candidates, 8-15x faster than two fancy-indexed gathers.
        ray_table = track.ray_candidates(
            sensors.max_range(), np.deg2rad(sensors.spread_deg()), RAY_SECTORS
        )
        ray_table = ray_table.reshape(n * RAY_SECTORS, -1)
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
        )


@dataclass(frozen=True, eq=False)
class StackedLayout:
    """The layouts of a batch's tracks as one: the track arrays end to end (a car finds
    its track's rows through ``point_offset``) and per-car copies of the per-track values.

    The ray tables, by far the largest arrays (~0.7 MB a track), are kept in one slot per
    track instead, so that a race's new track (``replaced``) writes its own slot and
    copies none of the others'.

    Attributes:
        seg_dir, arc_length, window: as ``TrackLayout``'s, the tracks' rows end to end;
            window planes are padded to the widest window by repeating their last column
            (which changes no nearest segment: the first minimum wins).
        walls: every track's walls (each with its own no-hit row), end to end.
        ray_table: the tracks' ``ray_table``s, shape (K · C · S, k): track j's cells at
            rows from j · C · S, for C ≥ the most centreline points of a track (its slot's
            capacity) and k ≥ the widest table; entries index the track's own walls
            (add ``wall_offset``), columns past a track's own are its no-hit row.
        ray_counts: candidates in each row of ``ray_table``, shape (K · C · S,).
        capacity: C, the centreline points a slot of ``ray_table`` holds.
        point_offset: index of each car's track's first centreline point, shape (N,).
        table_offset: first centreline point of each car's track's slot (j · C), shape
            (N,): a car's cell is (table_offset + point) · S + sector.
        wall_offset: index of each car's track's first wall in ``walls``, shape (N,).
        length, crash_half_width: each car's track's, shape (N,) [m].
        obstacle_xy, obstacle_radius, obstacle_reach2: each car's track's obstacles,
            shapes (N, M, 2), (N, M), (N, M), padded with NaN to the most obstacles.
        mates: the cars of each car's track (itself included), shape (N, C) for C the
            most cars on a track, padded with the car itself: what its rays may see.
        car_pairs: every two cars on one track, (i, j) with i < j, two index arrays of
            shape (P,): the pairs the car-car collision test looks at.
    """

    seg_dir: FloatArray
    arc_length: FloatArray
    window: FloatArray
    walls: FloatArray
    ray_table: NDArray[np.int32]
    ray_counts: IntArray
    capacity: int
    point_offset: IntArray
    table_offset: IntArray
    wall_offset: IntArray
    length: FloatArray
    crash_half_width: FloatArray
    obstacle_xy: FloatArray
    obstacle_radius: FloatArray
    obstacle_reach2: FloatArray
    mates: IntArray
    car_pairs: tuple[IntArray, IntArray]

    @classmethod
    def of(
        cls,
        layouts: Sequence[TrackLayout],
        counts: Sequence[int],
        capacity: int = 0,
        width: int = 0,
    ) -> StackedLayout:
        """Stack ``layouts`` for ``counts`` cars on each (~0.5 ms for 4 tracks), with ray
        table slots of at least ``capacity`` points and ``width`` columns."""
        if len(layouts) == 1:  # nothing to shift or pad: the track's own table
            (layout,) = layouts
            capacity = len(layout.arc_length)
            return cls._stack(layouts, counts, layout.ray_table, layout.ray_counts, capacity)
        capacity = max(capacity, *(len(layout.arc_length) for layout in layouts))
        width = max(width, *(layout.ray_table.shape[1] for layout in layouts))
        table = np.empty((len(layouts) * capacity * RAY_SECTORS, width), np.int32)
        ray_counts = np.zeros(len(layouts) * capacity * RAY_SECTORS, np.int64)
        for j, layout in enumerate(layouts):
            _fill_slot(table, ray_counts, capacity, j, layout)
        return cls._stack(layouts, counts, table, ray_counts, capacity)

    def replaced(
        self, j: int, layouts: Sequence[TrackLayout], counts: Sequence[int]
    ) -> StackedLayout:
        """This stack with track ``j``'s layout now ``layouts[j]`` (the others as they
        were): its ray table is written into its slot in place when it fits (this stack
        must not be used after), else every table is stacked again (``of``) into slots
        with a quarter more room, so that the next tracks fit."""
        layout = layouts[j]
        width = self.ray_table.shape[1]
        fits = len(layout.arc_length) <= self.capacity and layout.ray_table.shape[1] <= width
        if len(layouts) == 1:  # a single track's table is its layout's own
            return StackedLayout.of(layouts, counts)
        if not fits:
            return StackedLayout.of(layouts, counts, self.capacity * 5 // 4, width * 5 // 4)
        _fill_slot(self.ray_table, self.ray_counts, self.capacity, j, layout)
        return StackedLayout._stack(layouts, counts, self.ray_table, self.ray_counts, self.capacity)

    @classmethod
    def _stack(
        cls,
        layouts: Sequence[TrackLayout],
        counts: Sequence[int],
        ray_table: NDArray[np.int32],
        ray_counts: IntArray,
        capacity: int,
    ) -> StackedLayout:
        """The stack of ``layouts`` around ray tables already in their slots."""
        points = [len(layout.arc_length) for layout in layouts]
        point_offsets = np.cumsum([0, *points[:-1]])
        wall_offsets = np.cumsum([0, *(len(layout.walls) for layout in layouts[:-1])])
        width = max(layout.window.shape[2] for layout in layouts)
        windows = []
        for layout in layouts:
            extra = np.repeat(layout.window[..., -1:], width - layout.window.shape[2], axis=2)
            windows.append(np.concatenate([layout.window, extra], axis=2))
        car_offsets = np.cumsum([0, *counts]).tolist()
        m = max(len(layout.obstacle_radius) for layout in layouts)
        n = int(sum(counts))
        xy, radius, reach2 = (
            np.full((n, m, 2), np.nan),
            np.full((n, m), np.nan),
            np.full((n, m), np.nan),
        )
        for layout, a, b in zip(layouts, car_offsets[:-1], car_offsets[1:], strict=True):
            k = len(layout.obstacle_radius)
            xy[a:b, :k] = layout.obstacle_xy
            radius[a:b, :k] = layout.obstacle_radius
            reach2[a:b, :k] = layout.obstacle_reach2
        track_of_car = np.repeat(np.arange(len(layouts)), counts)
        same_track = track_of_car[:, None] == track_of_car[None, :]
        seat = np.arange(max(counts))
        first = np.repeat(car_offsets[:-1], counts)[:, None]
        seated = seat < np.repeat(counts, counts)[:, None]
        mates = np.where(seated, first + seat, np.arange(n)[:, None])
        return cls(
            seg_dir=np.concatenate([layout.seg_dir for layout in layouts]),
            arc_length=np.concatenate([layout.arc_length for layout in layouts]),
            window=np.concatenate(windows, axis=1),
            walls=np.concatenate([layout.walls for layout in layouts]),
            ray_table=ray_table,
            ray_counts=ray_counts,
            capacity=capacity,
            point_offset=np.repeat(point_offsets, counts).astype(np.int64),
            table_offset=track_of_car * capacity,
            wall_offset=np.repeat(wall_offsets, counts).astype(np.int64),
            length=np.repeat([layout.length for layout in layouts], counts),
            crash_half_width=np.repeat([layout.crash_half_width for layout in layouts], counts),
            obstacle_xy=xy,
            obstacle_radius=radius,
            obstacle_reach2=reach2,
            mates=mates,
            car_pairs=np.nonzero(np.triu(same_track, 1)),
        )


def _fill_slot(
    table: NDArray[np.int32], counts: IntArray, capacity: int, j: int, layout: TrackLayout
) -> None:
    """Write ``layout``'s ray table into slot ``j`` of ``table`` and ``counts``; columns
    past its own width point at its no-hit wall (its last)."""
    rows, width = layout.ray_table.shape
    start = j * capacity * RAY_SECTORS
    table[start : start + rows, :width] = layout.ray_table
    table[start : start + rows, width:] = len(layout.walls) - 1
    counts[start : start + rows] = layout.ray_counts

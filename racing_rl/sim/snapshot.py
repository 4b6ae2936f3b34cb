"""RaceSnapshot: what the renderer draws, taken from a live ``World`` or a recorded replay.

The renderer (``racing_rl.ui.render``) draws snapshots, so a race in progress and a
replay read back from a file look the same. Pure NumPy, no pygame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from racing_rl.sim.track import Track
from racing_rl.sim.world import World

FloatArray = NDArray[np.float64]


@dataclass(frozen=True, eq=False)
class RaceSnapshot:
    """The state of N cars on one track at one instant.

    Attributes:
        track: the track.
        time: race time [s].
        position: car centres, shape (N, 2), float64 [m].
        heading: shape (N,) [rad], 0 = +x, counter-clockwise positive.
        speed: signed speed along the heading, shape (N,) [m/s].
        active: cars still racing, shape (N,) bool.
        laps: laps completed, shape (N,) int.
        last_lap_time: time of the last completed lap, shape (N,) [s]; NaN before one.
        lap_clock: running time of the lap in progress, shape (N,) [s]; NaN before the
            first start-line crossing.
        progress: progress since the start line, shape (N,) [laps].
        rays: ray distances, shape (N, R) [m].
        ray_angles: ray angles relative to the heading, shape (R,) [rad], left to right
            (``fan``) or the game car's order (``roblox_car``: ``SensorConfig.angles``).
        ray_ranges: each ray's length, shape (R,) [m]; a ray this long hit nothing.
        car_length: body length [m].
        car_width: body width [m].
        max_speed: the speed that gets the hottest trail colour [m/s].
        labels: a name per car (a run's name), or empty for "car i".
        trails: per car, the positions and speeds of its trail, oldest first, shape
            (k, 3): x [m], y [m], speed [m/s]; None lets the renderer keep its own
            trails from the snapshots it is shown.
        finished: cars that completed the race's laps, shape (N,) bool; None where the
            race's laps are not known (the HUD then calls every car out of the race "out").
    """

    track: Track
    time: float
    position: FloatArray
    heading: FloatArray
    speed: FloatArray
    active: NDArray[np.bool_]
    laps: NDArray[np.int64]
    last_lap_time: FloatArray
    lap_clock: FloatArray
    progress: FloatArray
    rays: FloatArray
    ray_angles: FloatArray
    ray_ranges: FloatArray
    car_length: float
    car_width: float
    max_speed: float
    labels: tuple[str, ...] = ()
    trails: tuple[FloatArray, ...] | None = None
    finished: NDArray[np.bool_] | None = None

    @property
    def n_cars(self) -> int:
        """Number of cars."""
        return len(self.position)

    def label(self, index: int) -> str:
        """Car ``index``'s label: its name, or ``car <index>``."""
        return self.labels[index] if index < len(self.labels) else f"car {index}"

    @classmethod
    def from_world(cls, world: World, labels: tuple[str, ...] = (), laps: int = 0) -> RaceSnapshot:
        """A copy of ``world``'s current state (arrays are copied; the track is shared);
        ``laps``: the race's, for ``finished`` (0: not known)."""
        return cls(
            track=world.track,
            time=float(world.time),
            position=world.cars.position.copy(),
            heading=world.cars.heading.copy(),
            speed=world.cars.speed.copy(),
            active=world.active.copy(),
            laps=world.laps.copy(),
            last_lap_time=world.last_lap_time.copy(),
            lap_clock=world.lap_clock,
            progress=world.progress.copy(),
            rays=world.ray_distances(),
            ray_angles=world.sensors.angles(),
            ray_ranges=world.sensors.ranges(),
            car_length=float(world.car.length),
            car_width=float(world.car.width),
            max_speed=float(world.car.max_speed),
            labels=tuple(labels),
            finished=world.laps >= laps if laps else None,
        )

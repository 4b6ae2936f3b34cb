"""Benchmark the bare simulator: agent-steps per second of World.step + World.observe.

What is measured
    One agent-step is one car advanced by one environment step *and* observed: for N cars,
    one ``World.step(actions)`` followed by one ``World.observe()`` counts N agent-steps.
    Everything uses the defaults (``CarConfig``, ``SensorConfig`` with 10 rays, ``RaceRules``,
    ``TrackConfig`` with its obstacles) on one generated track; there is no rendering, no
    Gymnasium/PettingZoo wrapper and no policy, so this is the ceiling that the environments
    and training can reach, not what they reach.

The naive reference
    ``NaiveWorld`` is the same step in plain Python (``math``, lists, no NumPy in the loop):
    physics per car with the formulas of ``racing_rl.sim.car.step_cars``, the centreline
    projection, laps, stuck and crash checks of ``World.step``, and, per car, per ray, every
    one of the track's 2n wall segments plus every obstacle (no culling by
    ``Track.segments_near``). On the first step of every size its ray distances are checked
    against ``World.ray_distances()`` (and its observation against ``World.observe()``) to
    1e-6: both compute the same figures. The vectorised side casts each ray only at the
    segments near it (``Track.segments_near``), the naive one at all of them, so the
    speedup is the culling's and the vectorisation's together.

How it runs
    Cars are spread evenly around the track (``World.place_cars``) at a modest speed and
    driven with one fixed mild action (light throttle, straight wheel, no nitro). Every
    ``--episode-steps`` steps all cars are placed again, shifted along the track, so they stay
    on it; placement is not timed. Crashes in between are ignored: ``World`` keeps stepping
    crashed cars (``world.active`` is left alone), so the work per step does not change. Each
    side is warmed up first, then timed with ``time.perf_counter`` for about ``--seconds``
    of stepping per size (the naive side for at least ``--min-naive-steps`` steps).

A new track
    A race that draws a new track (``WorldBatch.set_track``: its layout built, its ray
    table written into the batch's) is timed against one step + observe of the whole
    batch (``--tracks`` races of 4 cars), both in the same run: the last column says how
    many steps of the batch one track change costs. Each change takes a track never laid
    out before, as training's do (a track laid out again reuses its ray tables, ~3x
    cheaper); the tracks are generated between timings, and ``generate_track`` is timed
    apart (``generate_ms``). Training's teacher plans its racing line on each new track
    too (``plan_path``), which this leaves out.

How to read it
    ``agent-steps/s`` is N × steps / seconds. Small N measures per-call overhead (a few dozen
    NumPy calls per step, whatever N); large N measures the batched arithmetic. The naive
    column scales as 1 / (wall segments × rays) and barely with N. The last line is one JSON
    object with the same figures, for scripts:

        {"bench": "sim", "results": [{"n_cars": 32, "agent_steps_per_s": ..., ...}, ...],
         "track_change": {"tracks": 32, "set_track_ms": ..., "generate_ms": ..., ...}}

    Absolute rates on a busy machine move by tens of percent between runs; the speedup,
    whose two sides are timed in the same run, moves less. Compare runs on one machine.

Usage:
    python scripts/bench_sim.py                    # 1, 8, 32 and 128 cars, ~1.5 s per timing
    python scripts/bench_sim.py --cars 32 --seconds 3 --tracks 4
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import NDArray

from racing_rl.errors import ConfigError, reported
from racing_rl.evaluation.tables import format_table
from racing_rl.sim.car import CarConfig
from racing_rl.sim.sensors import VERTEX_TOLERANCE, SensorConfig
from racing_rl.sim.track import Track, TrackConfig, generate_track
from racing_rl.sim.world import RaceRules, World, WorldBatch

FloatArray = NDArray[np.float64]
#: One car's action as plain floats: throttle, steering, nitro, each in [-1, 1].
Action = tuple[float, float, float]

#: Fixed action of every car: light throttle, straight wheel, no nitro.
MILD_ACTION: Action = (0.1, 0.0, -1.0)
#: Speed at placement [m/s]; with ``MILD_ACTION`` it stays near this.
START_SPEED = 6.0
#: Shift of the grid along the track between placements [laps]; the golden ratio's
#: fractional part spreads the placements evenly over the loop.
PLACEMENT_SHIFT = 0.6180339887498949
#: Largest allowed difference between naive and vectorised ray distances [m].
RAY_TOLERANCE = 1e-6


@dataclass(frozen=True)
class SizeResult:
    """Figures for one number of cars.

    Attributes:
        n_cars: cars in the world.
        agent_steps_per_s: vectorised World.step + World.observe, agent-steps per second.
        naive_agent_steps_per_s: the plain-Python reference, agent-steps per second.
        speedup_vs_naive: ratio of the two.
        steps: timed vectorised steps (each of n_cars agent-steps).
        naive_steps: timed naive steps.
        crashed_fraction: share of timed vectorised agent-steps that reported a crash [-].
    """

    n_cars: int
    agent_steps_per_s: float
    naive_agent_steps_per_s: float
    speedup_vs_naive: float
    steps: int
    naive_steps: int
    crashed_fraction: float


class NaiveWorld:
    """``World.step`` + ``World.observe`` written per car, per ray, per segment in plain Python.

    Supports the default rules only: no car-to-car collisions, rays that do not see cars.
    State is copied from a ``World`` (at construction and by ``copy_state``), so both start
    from the same placement; placement itself is not part of what is timed.

    Args:
        world: the vectorised world whose track, configs and current state are copied.
    """

    def __init__(self, world: World) -> None:
        if world.rules.car_collisions or world.sensors.detect_cars:
            raise ConfigError(
                "NaiveWorld supports only car_collisions=False and detect_cars=False, got "
                f"{world.rules.car_collisions} and {world.sensors.detect_cars}; "
                "benchmark with the default RaceRules and SensorConfig."
            )
        track = world.track
        self.car = world.car
        self.rules = world.rules
        self.range = world.sensors.range
        self.angles = [float(a) for a in world.sensors.angles()]
        self.length = track.length
        self.half_width = track.width / 2
        centre = track.centreline.tolist()
        n = len(centre)
        self.n_points = n
        self.centre = centre
        self.arc_length = track.arc_length.tolist()
        self.seg_dir: list[tuple[float, float]] = []
        self.seg_len: list[float] = []
        for i in range(n):
            ex = centre[(i + 1) % n][0] - centre[i][0]
            ey = centre[(i + 1) % n][1] - centre[i][1]
            norm = math.sqrt(ex * ex + ey * ey)
            self.seg_dir.append((ex / norm, ey / norm))
            self.seg_len.append(norm)
        # Same search window as World: max_speed·dt per step, plus one segment.
        self.reach = math.ceil(self.car.max_speed * self.rules.dt / min(self.seg_len)) + 1
        starts, ends = track.wall_segments  # all 2n segments, no culling
        self.walls = [
            (sx, sy, tx - sx, ty - sy)
            for (sx, sy), (tx, ty) in zip(starts.tolist(), ends.tolist(), strict=True)
        ]
        self.obstacles = [tuple(o) for o in track.obstacles.tolist()]
        self.obstacle_reach2 = [(r + self.car.radius) ** 2 for _, _, r in self.obstacles]
        self.copy_state(world)

    def copy_state(self, world: World) -> None:
        """Take every car's state and the race bookkeeping from ``world``."""
        self.n_cars = world.n_cars
        self.x = world.cars.position[:, 0].tolist()
        self.y = world.cars.position[:, 1].tolist()
        self.heading = world.cars.heading.tolist()
        self.speed = world.cars.speed.tolist()
        self.fuel = world.cars.fuel.tolist()
        self.index = world.index.tolist()
        self.arc = world.arc.tolist()
        self.lateral = world.lateral.tolist()
        self.active = world.active.tolist()
        self.time = world.time
        self.progress = world.progress.tolist()
        self.distance = world.distance.tolist()
        self.laps = world.laps.tolist()
        self.lap_started = world._lap_started.tolist()
        self.lap_start_time = world._lap_start_time.tolist()
        self.next_line = world._next_line.tolist()
        self.best_progress = world._best_progress.tolist()
        self.last_improvement = world._last_improvement.tolist()
        self.rays: list[list[float]] = []

    def step(self, actions: Sequence[Action]) -> list[tuple[float, bool, bool, bool]]:
        """Advance every car by one step; return (progress_delta, crashed, stuck, lap) per car."""
        dt = self.rules.dt
        self.time += dt
        events = []
        pieces = self.rules.pieces
        for i in range(self.n_cars):
            before = self.progress[i]
            crashed = False
            for _ in range(pieces):
                x0, y0 = self.x[i], self.y[i]
                self._drive(i, actions[i], dt / pieces)
                mx, my = self.x[i] - x0, self.y[i] - y0
                self.distance[i] += math.sqrt(mx * mx + my * my)
                self.progress[i] += self._project(i) / self.length
                crashed = self._crashed(i, x0, y0) or crashed
            lap = self._count_lap(i, before, dt)
            crashed = crashed and self.active[i]
            if self.progress[i] > self.best_progress[i]:
                self.best_progress[i] = self.progress[i]
                self.last_improvement[i] = self.time
            stuck = (
                self.time - self.last_improvement[i] > self.rules.stuck_time
                and self.active[i]
                and not crashed
            )
            events.append((self.progress[i] - before, crashed, stuck, lap))
        return events

    def _drive(self, i: int, action: Action, dt: float) -> None:
        """The kinematic bicycle step of ``step_cars`` for car ``i``."""
        c = self.car
        scale = 1.0 if self.active[i] else 0.0
        throttle = min(max(action[0] * scale, -1.0), 1.0)
        steer = min(max(action[1] * scale, -1.0), 1.0)
        wants_nitro = action[2] * scale > 0.5
        curvature_cmd = math.tan(-c.max_steer * steer) / c.wheelbase
        drive = max(throttle, 0.0) * c.engine_accel
        pedal = min(throttle, 0.0)
        h = dt / c.substeps
        speed, heading, fuel = self.speed[i] * scale, self.heading[i], self.fuel[i]
        x, y = self.x[i], self.y[i]
        full_burn = c.nitro_drain * h
        for _ in range(c.substeps):
            burn = min(fuel, full_burn) if wants_nitro else 0.0
            braking = pedal < 0.0 and speed > 0.0
            pedal_accel = pedal * (c.brake_decel if braking else c.reverse_accel)
            boost = 1.0 + (c.nitro_multiplier - 1.0) * burn / full_burn
            resistance = (c.drag * abs(speed) + c.rolling_resistance) * speed
            new_speed = speed + (drive * boost + pedal_accel - resistance) * h
            if braking and new_speed < 0.0:
                new_speed = 0.0
            new_speed = min(max(new_speed, -c.max_reverse_speed), c.max_speed)
            grip = c.lateral_grip / max(new_speed * new_speed, 1e-9)
            curvature = min(max(curvature_cmd, -grip), grip)
            heading += new_speed * curvature * h
            x += new_speed * h * math.cos(heading)
            y += new_speed * h * math.sin(heading)
            speed = new_speed
            fuel += -burn if wants_nitro else c.nitro_refill * h
            fuel = min(0.0 if fuel < 1e-9 else fuel, 1.0)
        self.heading[i] = (heading + math.pi) % (2 * math.pi) - math.pi
        self.speed[i], self.fuel[i], self.x[i], self.y[i] = speed, fuel, x, y

    def _project(self, i: int) -> float:
        """Nearest centreline segment within the search window; return Δarc [m]."""
        n = self.n_points
        px, py = self.x[i], self.y[i]
        best_d2, best = math.inf, (0, 0.0, 0.0, 0.0)
        for k in range(-self.reach, self.reach + 1):
            j = (self.index[i] + k) % n
            rx, ry = px - self.centre[j][0], py - self.centre[j][1]
            dx, dy = self.seg_dir[j]
            along = min(max(rx * dx + ry * dy, 0.0), self.seg_len[j])
            ox, oy = rx - dx * along, ry - dy * along
            d2 = ox * ox + oy * oy
            if d2 < best_d2:
                best_d2, best = d2, (j, along, rx, ry)
        j, along, rx, ry = best
        dx, dy = self.seg_dir[j]
        self.lateral[i] = dx * ry - dy * rx
        new_arc = self.arc_length[j] + along
        half = self.length / 2
        delta = (new_arc - self.arc[i] + half) % self.length - half
        self.index[i], self.arc[i] = j, new_arc
        return delta if self.active[i] else 0.0

    def _count_lap(self, i: int, before: float, dt: float) -> bool:
        """Start-line crossing of car ``i``; True when it completes a lap."""
        if not (self.progress[i] >= self.next_line[i] and self.active[i]):
            return False
        span = self.progress[i] - before
        crossing_time = self.time - dt + dt * (self.next_line[i] - before) / span
        completed = self.lap_started[i]
        if completed:
            self.laps[i] += 1
        self.lap_started[i] = True
        self.lap_start_time[i] = crossing_time
        self.next_line[i] += 1.0
        return completed

    def _crashed(self, i: int, x0: float, y0: float) -> bool:
        """Off the track, or on an obstacle anywhere on the straight from (x0, y0)."""
        if abs(self.lateral[i]) > self.half_width - self.car.radius:
            return True
        mx, my = self.x[i] - x0, self.y[i] - y0
        moved = max(mx * mx + my * my, 1e-12)
        for (ox, oy, _), reach2 in zip(self.obstacles, self.obstacle_reach2, strict=True):
            fx, fy = x0 - ox, y0 - oy
            t = min(max(-(fx * mx + fy * my) / moved, 0.0), 1.0)
            cx, cy = fx + t * mx, fy + t * my
            if cx * cx + cy * cy < reach2:
                return True
        return False

    def ray_distances(self, i: int) -> list[float]:
        """Car ``i``'s rays against every wall segment and obstacle [m]."""
        px, py = self.x[i], self.y[i]
        max_range = self.range
        out = []
        for angle in self.angles:
            theta = self.heading[i] + angle
            dx, dy = math.cos(theta), math.sin(theta)
            nearest = max_range
            for sx, sy, ex, ey in self.walls:
                den = dx * ey - dy * ex
                if den == 0.0:
                    continue
                inv = 1.0 / den
                rx, ry = sx - px, sy - py
                t = (rx * ey - ry * ex) * inv
                u = (rx * dy - ry * dx) * inv
                if t >= 0.0 and -VERTEX_TOLERANCE <= u <= 1.0 + VERTEX_TOLERANCE and t < nearest:
                    nearest = t
            for cx, cy, r in self.obstacles:
                fx, fy = cx - px, cy - py
                b = dx * fx + dy * fy
                c = fx * fx + fy * fy - r * r
                disc = b * b - c
                if disc < 0.0:
                    continue
                t = 0.0 if c <= 0.0 else b - math.sqrt(disc)
                if t >= 0.0 and t < nearest:
                    nearest = t
            out.append(nearest)
        return out

    def observe(self) -> list[list[float]]:
        """Observation rows as ``World.observe`` (rays / range, fuel, speed, is_reverse)."""
        max_speed = self.car.max_speed
        self.rays = [self.ray_distances(i) for i in range(self.n_cars)]
        obs = []
        for i, rays in enumerate(self.rays):
            dx, dy = self.seg_dir[self.index[i]]
            heading = self.heading[i]
            reverse = dx * math.cos(heading) + dy * math.sin(heading) < 0.0
            row = [d / self.range for d in rays]
            row += [self.fuel[i], min(max(self.speed[i] / max_speed, -1.0), 1.0), float(reverse)]
            obs.append(row)
        return obs


def place(world: World, episode: int) -> None:
    """Spread the cars evenly around the track, shifted by ``episode``, at ``START_SPEED``."""
    n = world.n_cars
    arc = (np.arange(n) / n + episode * PLACEMENT_SHIFT) % 1.0 * world.track.length
    world.place_cars(arc, np.zeros(n), np.zeros(n), np.full(n, START_SPEED))


def check_naive_matches(world: World, naive: NaiveWorld, actions: FloatArray) -> None:
    """Step both worlds once from the same placement and compare them.

    Raises:
        AssertionError: if ray distances differ by more than ``RAY_TOLERANCE`` [m], or
            observations, positions or progress by more than that.
    """
    naive_actions = [tuple(a) for a in actions.tolist()]
    events = world.step(actions)
    obs = world.observe()
    naive_events = naive.step(naive_actions)
    naive_obs = naive.observe()
    tol = {"atol": RAY_TOLERANCE, "rtol": 0.0}
    np.testing.assert_allclose(
        np.array(naive.rays), world.ray_distances(), **tol, err_msg="ray distances [m]"
    )
    np.testing.assert_allclose(
        np.array(naive_obs, dtype=np.float32), obs, **tol, err_msg="observations"
    )
    np.testing.assert_allclose(
        np.column_stack([naive.x, naive.y]), world.cars.position, **tol, err_msg="positions"
    )
    np.testing.assert_allclose(naive.progress, world.progress, **tol, err_msg="progress")
    np.testing.assert_array_equal(
        [e[1] for e in naive_events], events.crashed, err_msg="crashed flags"
    )


def time_steps(
    step: Callable[[], None],
    reset: Callable[[int], None],
    seconds: float,
    episode_steps: int,
    min_steps: int,
) -> tuple[int, float]:
    """Run ``step`` for about ``seconds`` of stepping, calling ``reset`` (untimed) between episodes.

    Args:
        step: one step of every car (and its observation).
        reset: places the cars for the given episode number; not timed.
        seconds: stepping time to aim for [s].
        episode_steps: steps between two resets.
        min_steps: fewest steps to time, however long they take.

    Returns:
        Timed steps and their total duration [s].
    """
    steps, elapsed, episode = 0, 0.0, 0
    while elapsed < seconds or steps < min_steps:
        reset(episode)
        episode += 1
        start = time.perf_counter()
        for _ in range(episode_steps):
            step()
            steps += 1
            now = time.perf_counter()
            if elapsed + now - start >= seconds and steps >= min_steps:
                break
        elapsed += now - start
    return steps, elapsed


def bench_size(
    track: Track,
    n_cars: int,
    seconds: float,
    episode_steps: int,
    min_naive_steps: int,
) -> SizeResult:
    """Time the vectorised and the naive step for ``n_cars`` cars on ``track``."""
    world = World(track, n_cars, CarConfig(), SensorConfig(), RaceRules())
    actions = np.tile(np.array(MILD_ACTION), (n_cars, 1))

    # Naive reference: its warm-up step is also the equality check.
    place(world, 0)
    naive = NaiveWorld(world)
    check_naive_matches(world, naive, actions)
    naive_actions = [MILD_ACTION] * n_cars

    def naive_reset(episode: int) -> None:
        place(world, episode)
        naive.copy_state(world)

    def naive_step() -> None:
        naive.step(naive_actions)
        naive.observe()

    naive_steps, naive_elapsed = time_steps(
        naive_step, naive_reset, seconds, episode_steps, min_naive_steps
    )

    # Vectorised World: warm up, then time.
    crashed = 0

    def world_step() -> None:
        nonlocal crashed
        crashed += int(world.step(actions).crashed.sum())
        world.observe()

    def world_reset(episode: int) -> None:
        place(world, episode)

    time_steps(world_step, world_reset, min(0.2, seconds), episode_steps, 1)
    crashed = 0
    steps, elapsed = time_steps(world_step, world_reset, seconds, episode_steps, 1)

    rate = n_cars * steps / elapsed
    naive_rate = n_cars * naive_steps / naive_elapsed
    return SizeResult(
        n_cars=n_cars,
        agent_steps_per_s=rate,
        naive_agent_steps_per_s=naive_rate,
        speedup_vs_naive=rate / naive_rate,
        steps=steps,
        naive_steps=naive_steps,
        crashed_fraction=crashed / (n_cars * steps),
    )


#: Tracks ``bench_track_change`` generates at a time, between its timed track changes.
CHANGES_PER_GENERATION = 8


def bench_track_change(n_tracks: int, seconds: float) -> dict[str, float]:
    """What a race's new track costs beside one step + observe of a batch of ``n_tracks``
    races of 4 cars (see the module doc), each timed for about ``seconds``."""
    cars = 4
    setting = (CarConfig(), SensorConfig(), RaceRules())
    batch = WorldBatch([generate_track(s) for s in range(n_tracks)], [cars] * n_tracks, *setting)
    seeds, fresh, generating = itertools.count(1_000), [], [0, 0.0]  # tracks, seconds
    actions = np.tile(MILD_ACTION, (batch.n_cars, 1))

    def place(episode: int) -> None:
        for k in range(n_tracks):
            arc = np.linspace(0.0, 40.0, cars) + 10.0 * (episode % 10)
            batch.place_cars(arc, np.zeros(cars), np.zeros(cars), np.full(cars, 5.0), track=k)

    def step() -> None:
        batch.step(actions)
        batch.observe()

    changes = itertools.count()

    def generate(episode: int) -> None:  # untimed by time_steps: timed here, apart
        started = time.perf_counter()
        fresh.extend(generate_track(next(seeds)) for _ in range(CHANGES_PER_GENERATION))
        generating[0] += CHANGES_PER_GENERATION
        generating[1] += time.perf_counter() - started

    def change() -> None:
        batch.set_track(next(changes) % n_tracks, fresh.pop())

    for _ in range(2):  # the batch grows its ray table once, then writes slots
        generate(0)
        while fresh:
            change()
    place(0)
    steps, step_s = time_steps(step, place, seconds, 15, 2)
    generating[:] = [0, 0.0]
    done, change_s = time_steps(change, generate, seconds, CHANGES_PER_GENERATION, 2)
    step_ms, set_track_ms = 1e3 * step_s / steps, 1e3 * change_s / done
    return {
        "tracks": n_tracks,
        "cars": n_tracks * cars,
        "set_track_ms": set_track_ms,
        "generate_ms": 1e3 * generating[1] / generating[0],
        "step_ms": step_ms,
        "steps_per_track_change": set_track_ms / step_ms,
    }


def size_table(results: Sequence[SizeResult]) -> str:
    """The results as a plain-text table, a row per number of cars."""
    rows = [
        {
            "cars": r.n_cars,
            "vectorised/s": f"{r.agent_steps_per_s:,.0f}",
            "naive/s": f"{r.naive_agent_steps_per_s:,.0f}",
            "speedup": f"{r.speedup_vs_naive:,.1f}x",
            "crashed": f"{r.crashed_fraction:.1%}",
        }
        for r in results
    ]
    return format_table(rows, ["cars", "vectorised/s", "naive/s", "speedup", "crashed"])


_RATE_FIELDS = ("agent_steps_per_s", "naive_agent_steps_per_s", "speedup_vs_naive")


def to_json(results: Sequence[SizeResult], track: Track, track_change: dict[str, float]) -> str:
    """One JSON line with every figure."""
    return json.dumps(
        {
            "bench": "sim",
            "track_seed": track.seed,
            "wall_segments": 2 * track.n_points,
            "obstacles": len(track.obstacles),
            "n_rays": SensorConfig().n_rays,
            "results": [
                {**asdict(r), "crashed_fraction": round(r.crashed_fraction, 4)}
                | {k: round(getattr(r, k), 1) for k in _RATE_FIELDS}
                for r in results
            ],
            "track_change": track_change,
        }
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        description=(
            "Agent-steps per second of the bare simulator (World.step + World.observe, "
            "10 rays, default configs, no rendering) for several numbers of cars, beside a "
            "plain-Python per-car/per-ray/per-segment reference timed in the same run. "
            "Prints a table, then one JSON line."
        ),
    )
    parser.add_argument(
        "--cars",
        type=int,
        nargs="+",
        default=[1, 8, 32, 128],
        metavar="N",
        help="numbers of cars to time (default: 1 8 32 128)",
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=1.5,
        help="stepping time per size and per implementation [s] (default: 1.5)",
    )
    parser.add_argument(
        "--track-seed", type=int, default=0, help="seed of the generated track (default: 0)"
    )
    parser.add_argument(
        "--episode-steps",
        type=int,
        default=15,
        help="steps between re-placements of the cars, which keeps them on the track "
        "(default: 15, one simulated second)",
    )
    parser.add_argument(
        "--tracks",
        type=int,
        default=32,
        help="races (of 4 cars) of the batch whose track changes are timed (default: 32)",
    )
    parser.add_argument(
        "--min-naive-steps",
        type=int,
        default=2,
        help="fewest timed naive steps per size, however slow (default: 2)",
    )
    args = parser.parse_args(argv)
    if (
        not 0 < args.seconds < math.inf
        or min(*args.cars, args.episode_steps, args.tracks) < 1
        or args.min_naive_steps < 0
    ):
        parser.error(
            "--cars must be >= 1, --seconds > 0 and finite, --episode-steps and --tracks >= 1, "
            f"--min-naive-steps >= 0; got {args.cars}, {args.seconds}, {args.episode_steps}, "
            f"{args.tracks} and {args.min_naive_steps}."
        )
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the table and the JSON line."""
    args = parse_args(argv)
    track = generate_track(args.track_seed, TrackConfig())
    print(
        f"track seed {track.seed}: {track.length:.0f} m, {2 * track.n_points} wall segments, "
        f"{len(track.obstacles)} obstacles; {SensorConfig().n_rays} rays; "
        f"numpy {np.__version__}, Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs"
    )
    results = [
        bench_size(track, n, args.seconds, args.episode_steps, args.min_naive_steps)
        for n in args.cars
    ]
    print(size_table(results))
    change = bench_track_change(args.tracks, args.seconds)
    print(
        f"a new track, {change['tracks']} races of 4 cars: set_track {change['set_track_ms']:.2f} "
        f"ms, a step + observe of the batch {change['step_ms']:.2f} ms: one track change "
        f"costs {change['steps_per_track_change']:.1f} steps (generating it, apart: "
        f"{change['generate_ms']:.2f} ms)"
    )
    print(to_json(results, track, change))
    return 0


if __name__ == "__main__":
    with reported("bench_sim.py"):
        raise SystemExit(main())

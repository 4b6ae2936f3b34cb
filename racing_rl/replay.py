"""Replay files: the record of one race (one track, N cars), and its recorder.

A replay is a compressed NumPy archive (``np.savez_compressed``, ``.npz``) with a format
name and version, the track geometry, and per step and per car the positions, headings,
speeds, actions, raw rewards, ray distances and lap events. ``docs/replays.md`` lists
every array with its shape, dtype and unit.

- ``ReplayRecorder`` collects a race step by step from a simulator ``World``;
  ``Replay.save`` / ``load_replay`` write and read the file (a file of another format
  version, or a damaged one, raises ``ReplayError``).
- ``Replay.snapshot(t)`` is frame ``t`` as a ``RaceSnapshot``, which ``racing_rl.ui``
  draws: ``ui.viewer`` plays a replay in a window, ``ui.video`` exports it to a video.

Pure NumPy, no pygame, so recording costs ``racing-rl eval`` no start-up time. Over 400
lines for one reason: the field lists, the writer, the reader and the recorder change
together (a new array touches all four), so they stay side by side.
"""

from __future__ import annotations

import json
import math
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from racing_rl.errors import ReplayError, is_integer
from racing_rl.files import write_atomic
from racing_rl.sim.snapshot import RaceSnapshot
from racing_rl.sim.track import Track
from racing_rl.sim.world import World

FloatArray = NDArray[np.float64]

#: The ``format`` field of every replay file.
FORMAT = "racing-rl-replay"
#: The format version this code writes; bumped when an array changes.
VERSION = 2
#: The versions this code reads. Version 1 had one ``ray_range`` (the forward ray's length)
#: instead of ``ray_ranges``: its rays read as that long each.
READABLE_VERSIONS = (1, 2)
#: Track fields stored as ``track_<name>`` (``racing_rl.sim.track.Track``).
TRACK_FIELDS = (
    "seed",
    "width",
    "length",
    "centreline",
    "tangents",
    "normals",
    "arc_length",
    "left_wall",
    "right_wall",
    "obstacles",
    "obstacle_index",
    "obstacle_offset",
)
#: Per-frame arrays, shape (T + 1, N, ...): the state before the first step and after each.
FRAME_FIELDS = (
    "position",
    "heading",
    "speed",
    "fuel",
    "progress",
    "laps",
    "lap_clock",
    "active",
    "rays",
)
#: Per-step arrays, shape (T, N, ...): step t leads from frame t to frame t + 1.
#: Each step field and its dtype (docs/replays.md).
STEP_DTYPES: dict[str, type] = {
    "actions": np.float64,
    "rewards": np.float64,
    "lap_completed": bool,
    "lap_time": np.float64,
    "terminated": bool,
    "truncated": bool,
}
STEP_FIELDS = tuple(STEP_DTYPES)
#: Scalar fields, one number each.
SCALAR_FIELDS = ("dt", "car_length", "car_width", "max_speed")


@dataclass(frozen=True, eq=False)
class Replay:
    """One recorded race: a track, N cars, T steps. See ``docs/replays.md``.

    Attributes:
        track: the track raced on.
        labels: a display name per car, shape (N,) (e.g. a run directory's name).
        runs: what drove each car, shape (N,): a run directory, ``scripted`` or ``human``.
        dt: time per step [s].
        car_length: body length [m]; car_width: body width [m].
        max_speed: the car's top speed [m/s].
        ray_angles: ray angles relative to the heading, shape (R,) [rad].
        ray_ranges: each ray's length, shape (R,) [m]: a ray this long hit nothing.
        time: race time of each frame, shape (T + 1,) [s].
        position: (T + 1, N, 2) [m]. heading: (T + 1, N) [rad]. speed: (T + 1, N) [m/s].
        fuel: nitro fuel, (T + 1, N) [0 … 1]. progress: (T + 1, N) [laps].
        laps: laps completed, (T + 1, N). lap_clock: running lap time, (T + 1, N) [s].
        active: still racing, (T + 1, N). rays: ray distances, (T + 1, N, R) [m].
        actions: (T, N, 3) throttle, steering, nitro in [-1, 1] (zeros once out).
        rewards: raw rewards, (T, N). lap_completed: (T, N). lap_time: the completed
            lap's time where ``lap_completed``, else NaN, (T, N) [s].
        terminated, truncated: (T, N), as the environment reported them.
        meta: free JSON metadata (track seed, split, checkpoints, laps asked for, ...).
    """

    track: Track
    labels: tuple[str, ...]
    runs: tuple[str, ...]
    dt: float
    car_length: float
    car_width: float
    max_speed: float
    ray_angles: FloatArray
    ray_ranges: FloatArray
    time: FloatArray
    position: FloatArray
    heading: FloatArray
    speed: FloatArray
    fuel: FloatArray
    progress: FloatArray
    laps: NDArray[np.int64]
    lap_clock: FloatArray
    active: NDArray[np.bool_]
    rays: NDArray[np.float32]
    actions: FloatArray
    rewards: FloatArray
    lap_completed: NDArray[np.bool_]
    lap_time: FloatArray
    terminated: NDArray[np.bool_]
    truncated: NDArray[np.bool_]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def n_steps(self) -> int:
        """Steps T; there are T + 1 frames."""
        return len(self.actions)

    @property
    def n_frames(self) -> int:
        """Frames T + 1: the start and the state after each step."""
        return len(self.time)

    @property
    def n_cars(self) -> int:
        """Cars N."""
        return len(self.labels)

    def check_car(self, car: int) -> None:
        """Raise ``ReplayError`` unless ``car`` (a ``follow=`` value) is one of the replay's
        cars (0 … N-1), naming the cars' labels."""
        if not 0 <= car < self.n_cars:
            raise ReplayError(
                f"follow={car}; this replay has {self.n_cars} car(s): 0 to {self.n_cars - 1} "
                f"({', '.join(self.labels)})."
            )

    def lap_times(self, car: int) -> list[float]:
        """Car ``car``'s completed laps, in order, from the lap events [s]."""
        return self.lap_time[self.lap_completed[:, car], car].tolist()

    def last_lap_time(self, frame: int) -> FloatArray:
        """Each car's last completed lap time at ``frame``, shape (N,) [s]; NaN before one."""
        last = np.full(self.n_cars, np.nan)
        for car in range(self.n_cars):
            completed = np.flatnonzero(self.lap_completed[:frame, car])
            if completed.size:
                last[car] = self.lap_time[completed[-1], car]
        return last

    def snapshot(self, frame: int, trail_length: int = 200) -> RaceSnapshot:
        """Frame ``frame`` (0 … T) as the renderer's ``RaceSnapshot``.

        Args:
            frame: the frame index; frame 0 is the start, frame t the state after step t.
            trail_length: positions of each car's trail, ending at this frame.

        Raises:
            IndexError: if ``frame`` is outside 0 … T.
        """
        if not 0 <= frame < self.n_frames:
            raise IndexError(f"Frame {frame} is outside the replay's 0 … {self.n_frames - 1}.")
        trails = []
        for car in range(self.n_cars):
            # The last trail_length frames it raced in, as the live Renderer keeps them (a
            # window of frames would shrink a finished car's trail as the others raced on).
            raced = np.flatnonzero(self.active[: frame + 1, car])
            seen = raced[len(raced) - trail_length :] if trail_length else raced[:0]
            trails.append(
                np.column_stack([self.position[seen, car], self.speed[seen, car]])
                if trail_length
                else np.zeros((0, 3))
            )
        return RaceSnapshot(
            track=self.track,
            time=float(self.time[frame]),
            position=self.position[frame],
            heading=self.heading[frame],
            speed=self.speed[frame],
            active=self.active[frame],
            laps=self.laps[frame],
            last_lap_time=self.last_lap_time(frame),
            lap_clock=self.lap_clock[frame],
            progress=self.progress[frame],
            rays=self.rays[frame].astype(np.float64),
            ray_angles=self.ray_angles,
            ray_ranges=self.ray_ranges,
            car_length=self.car_length,
            car_width=self.car_width,
            max_speed=self.max_speed,
            labels=self.labels,
            trails=tuple(trails),
            finished=self.laps[frame] >= laps if (laps := self.meta.get("laps")) else None,
        )

    def save(self, path: Path) -> Path:
        """Write the replay to ``path`` (``.npz``), atomically; returns the path."""
        arrays: dict[str, Any] = {
            "format": np.array(FORMAT),
            "version": np.array(VERSION),
            "meta": np.array(json.dumps(self.meta)),
            "labels": np.array(self.labels, dtype=np.str_),
            "runs": np.array(self.runs, dtype=np.str_),
            "ray_angles": self.ray_angles,
            "ray_ranges": self.ray_ranges,
            "time": self.time,
        }
        arrays.update(
            {f"track_{name}": np.asarray(getattr(self.track, name)) for name in TRACK_FIELDS}
        )
        arrays.update({name: np.array(getattr(self, name)) for name in SCALAR_FIELDS})
        arrays.update({name: getattr(self, name) for name in FRAME_FIELDS + STEP_FIELDS})
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        # numpy adds .npz to a name without it: the temporary file keeps the suffix.
        write_atomic(path, lambda tmp: np.savez_compressed(tmp, **arrays), keep_suffix=True)
        return path


#: The first bytes of a zip archive, which an .npz file is.
_ZIP_MAGIC = b"PK\x03\x04"


def load_replay(path: Path | str) -> Replay:
    """Read a replay file, without pickle (``np.load(..., allow_pickle=False)``).

    Raises:
        ReplayError: if the file is missing, not a replay, of another format version,
            truncated or otherwise damaged (the message says which).
    """
    path = Path(path)
    if path.is_dir():  # a run's or an eval's: name a replay in it, not a vecnormalize.npz
        where = [".", "replays", "eval/replays", "eval/race/replays", "race/replays"]
        files = [f for w in where for f in sorted((path / w).glob("*.npz"))]
        found = next((f for f in files if _is_replay(f)), None)
        raise ReplayError(
            f"Replay {path} is a directory; give one replay file"
            + (f", e.g. path={found}" if found else " (it holds none)")
            + " (racing-rl eval record=true writes <eval dir>/replays/track_<seed>.npz)."
        )
    if not path.is_file():
        raise ReplayError(
            f"Replay {path} does not exist. Record one with racing-rl eval record=true."
        )
    with path.open("rb") as file:
        magic = file.read(len(_ZIP_MAGIC))
    if magic != _ZIP_MAGIC:
        raise ReplayError(
            f"{path} is not a racing-rl replay (a .npz archive that racing-rl eval record=true "
            "writes)."
        )
    try:
        with np.load(path, allow_pickle=False) as data:
            contents = {name: data[name] for name in data.files}
    except ValueError as err:
        if "pickle" in str(err):  # object arrays, loadable only with pickle: not a replay
            raise ReplayError(f"{path} is not a racing-rl replay (it holds objects).") from err
        raise _damaged(path, err) from err
    except (OSError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as err:
        raise _damaged(path, err) from err
    if str(contents.get("format", "")) != FORMAT:
        raise ReplayError(
            f"{path} is not a racing-rl replay (format {str(contents.get('format'))!r}, "
            f"expected {FORMAT!r})."
        )
    try:
        version = int(contents.get("version", -1))
    except (TypeError, ValueError) as err:
        raise _damaged(path, err) from err
    if version not in READABLE_VERSIONS:
        raise ReplayError(
            f"{path} is a replay of format version {version}; this racing-rl reads versions "
            f"{', '.join(map(str, READABLE_VERSIONS))}. Play it with the racing-rl version "
            "that recorded it, or record it again."
        )
    if version == 1 and "ray_range" in contents and "ray_angles" in contents:
        contents["ray_ranges"] = np.full(len(contents["ray_angles"]), float(contents["ray_range"]))
    try:
        return _replay_from_arrays(path, contents)
    except (TypeError, ValueError) as err:  # a field of another type or size: not meta JSON,
        raise _damaged(path, err) from err  # a scalar that is an array, ...


def _is_replay(path: Path) -> bool:
    """Whether ``path`` is an archive with a replay's track (read from its index only)."""
    try:
        with np.load(path, allow_pickle=False) as contents:
            return f"track_{TRACK_FIELDS[0]}" in contents.files
    except Exception:  # empty, truncated, not a zip: not one to suggest
        return False


def _damaged(path: Path, err: Exception) -> ReplayError:
    return ReplayError(
        f"{path} is not a readable replay file ({type(err).__name__}: {err}); it may be "
        "truncated or damaged. Record it again with racing-rl eval record=true."
    )


def _replay_from_arrays(path: Path, contents: Mapping[str, np.ndarray]) -> Replay:
    """Build a Replay from a version-checked archive, checking names and shapes."""
    names = [f"track_{n}" for n in TRACK_FIELDS] + list(FRAME_FIELDS + STEP_FIELDS + SCALAR_FIELDS)
    missing = [
        n
        for n in [*names, "labels", "runs", "meta", "ray_angles", "ray_ranges", "time"]
        if n not in contents
    ]
    if missing:
        raise ReplayError(f"{path} is damaged: it lacks {missing}. Record it again.")
    track_values = {name: contents[f"track_{name}"] for name in TRACK_FIELDS}
    for name in ("seed", "obstacle_index"):
        track_values[name] = track_values[name].astype(np.int64)
    for name in ("seed", "width", "length"):
        track_values[name] = track_values[name].item()
    labels = tuple(str(v) for v in contents["labels"])
    n_cars, n_frames = len(labels), len(contents["time"])
    n_rays = contents["rays"].shape[-1] if contents["rays"].ndim else 0
    for name in ("ray_angles", "ray_ranges"):
        if contents[name].shape != (n_rays,):
            raise ReplayError(
                f"{path} is damaged: {name} has shape {contents[name].shape}, expected "
                f"({n_rays},) for the {n_rays} rays each car reads. Record it again."
            )
    for name, expected in _shapes(contents, n_frames, n_cars, n_rays).items():
        if contents[name].shape != expected:  # the renderer's IndexError or ValueError
            raise ReplayError(
                f"{path} is damaged: {name} has shape {contents[name].shape}, expected "
                f"{expected} for {n_frames} frames of {n_cars} cars. Record it again."
            )
    meta = json.loads(str(contents["meta"]))
    if not isinstance(meta, dict) or not (meta.get("laps") is None or is_integer(meta["laps"])):
        raise ReplayError(  # the HUD's "done" compares laps with meta's laps
            f"{path} is damaged: its meta is {str(contents['meta'])[:80]!r}, expected a "
            'JSON object whose "laps" is an integer. Record it again.'
        )
    _check_drawable(path, contents)
    return Replay(
        track=Track(**track_values),
        labels=labels,
        runs=tuple(str(v) for v in contents["runs"]),
        ray_angles=contents["ray_angles"],
        ray_ranges=contents["ray_ranges"],
        time=contents["time"],
        meta=meta,
        **{name: float(contents[name]) for name in SCALAR_FIELDS},
        **{name: contents[name] for name in FRAME_FIELDS + STEP_FIELDS},
    )


def _shapes(
    contents: Mapping[str, np.ndarray], n_frames: int, n_cars: int, n_rays: int
) -> dict[str, tuple[int, ...]]:
    """The shape of each array a replay of ``n_frames`` frames of ``n_cars`` cars with
    ``n_rays`` rays must have (docs/replays.md), with the track's points P and obstacles K
    read from its centreline and obstacles."""
    n_points, n_obstacles = len(contents["track_centreline"]), len(contents["track_obstacles"])
    trailing = {"position": (2,), "rays": (n_rays,), "actions": (3,)}
    shapes = {
        name: (n_frames if name in FRAME_FIELDS else n_frames - 1, n_cars, *trailing.get(name, ()))
        for name in FRAME_FIELDS + STEP_FIELDS
    }
    shapes.update({f"track_{name}": () for name in ("seed", "width", "length")})
    for name in ("centreline", "tangents", "normals", "left_wall", "right_wall"):
        shapes[f"track_{name}"] = (n_points, 2)
    shapes["track_arc_length"] = (n_points,)
    shapes["track_obstacles"] = (n_obstacles, 3)
    shapes["track_obstacle_index"] = shapes["track_obstacle_offset"] = (n_obstacles,)
    return {**shapes, "time": (n_frames,), "labels": (n_cars,), "runs": (n_cars,)}


#: Arrays the viewer and the video writer draw from: each must be finite (pygame's
#: drawing crashes the process on NaN or on coordinates of 1e12).
DRAWN_FIELDS = (
    "position",
    "heading",
    "speed",
    "rays",
    "ray_angles",
    "ray_ranges",
    "track_centreline",
    "track_left_wall",
    "track_right_wall",
    "track_obstacles",
)


def _check_drawable(path: Path, contents: Mapping[str, np.ndarray]) -> None:
    """Refuse what a replay's renderer cannot draw: a value that is not finite, a scalar
    (dt, car size, max speed) that is not > 0, or a car farther from the track than the
    track is wide across (no race goes there: a crash ends a car's episode).

    Raises:
        ReplayError: naming the field.
    """
    for name in DRAWN_FIELDS:
        if not np.isfinite(contents[name]).all():
            raise ReplayError(
                f"{path} is damaged: {name} holds a value that is not finite. Record it again."
            )
    for name in SCALAR_FIELDS:
        value = float(contents[name])
        if not (math.isfinite(value) and value > 0):
            raise ReplayError(f"{path} is damaged: {name} is {value}, not > 0. Record it again.")
    walls = np.concatenate([contents["track_left_wall"], contents["track_right_wall"]])
    low, high = walls.min(axis=0), walls.max(axis=0)
    span = float((high - low).max())
    position = contents["position"].reshape(-1, 2)
    if len(position) and ((position < low - span).any() or (position > high + span).any()):
        raise ReplayError(
            f"{path} is damaged: a car's position lies far off its track. Record it again."
        )


class ReplayRecorder:
    """Records one race of a simulator ``World``, frame by frame, into a ``Replay``.

    Call ``start`` after the race is set up (cars on the grid), ``step`` after every
    environment step, then ``replay``.

    Args:
        labels: a display name per car.
        runs: what drives each car (a run directory, ``scripted``, ``human``).
        meta: JSON-serialisable metadata to keep in the file.
    """

    def __init__(
        self, labels: Sequence[str], runs: Sequence[str], meta: Mapping[str, Any] | None = None
    ) -> None:
        self.labels = tuple(labels)
        self.runs = tuple(runs)
        self.meta = dict(meta or {})
        self._world: World | None = None
        self._frames: dict[str, list[np.ndarray]] = {name: [] for name in ("time", *FRAME_FIELDS)}
        self._steps: dict[str, list[np.ndarray]] = {name: [] for name in STEP_FIELDS}

    def start(self, world: World) -> None:
        """Record the race's first frame (and forget any earlier one)."""
        self._world = world
        for values in (*self._frames.values(), *self._steps.values()):
            values.clear()
        self._frame()

    def step(
        self,
        actions: np.ndarray,
        rewards: np.ndarray,
        lap_time: np.ndarray,
        terminated: np.ndarray,
        truncated: np.ndarray,
        rays: np.ndarray | None = None,
    ) -> None:
        """Record one step and the frame after it.

        Args:
            actions: the actions applied, shape (N, 3).
            rewards: raw rewards, shape (N,); 0 for cars that were out.
            lap_time: time of the lap completed in this step, shape (N,) [s]; NaN where none.
            terminated, truncated: shape (N,), as the environment reported them.
            rays: the ray distances the cars observed after the step, shape (N, R) [m]
                (their observations' rays × ``sensors.ranges()``; a car out of the race,
                its last ones). None reads them from the world now, which with
                ``detect_cars`` no longer sees the cars that left the race in this step.
        """
        lap_time = np.asarray(lap_time, dtype=np.float64)
        values = (actions, rewards, ~np.isnan(lap_time), lap_time, terminated, truncated)
        for name, value in zip(STEP_FIELDS, values, strict=True):
            self._steps[name].append(np.asarray(value, dtype=STEP_DTYPES[name]).copy())
        self._frame(rays)

    def _frame(self, rays: np.ndarray | None = None) -> None:
        world = self._world
        if world is None:
            raise RuntimeError("ReplayRecorder.start(world) must come first.")
        cars = world.cars
        frame = {
            "time": np.float64(world.time),
            "position": cars.position,
            "heading": cars.heading,
            "speed": cars.speed,
            "fuel": cars.fuel,
            "progress": world.progress,
            "laps": world.laps,
            "lap_clock": world.lap_clock,
            "active": world.active,
            "rays": (world.ray_distances() if rays is None else rays).astype(np.float32),
        }
        for name, value in frame.items():
            self._frames[name].append(np.array(value, copy=True))

    def replay(self) -> Replay:
        """The race recorded so far."""
        world = self._world
        if world is None:
            raise RuntimeError("Nothing recorded: call start(world) first.")
        n = world.n_cars
        stacked = {name: np.stack(values) for name, values in self._frames.items()}  # frame 0 on
        for name, values in self._steps.items():  # none before the first step: empty, typed
            shape = (0, n, 3) if name == "actions" else (0, n)
            stacked[name] = np.stack(values) if values else np.zeros(shape, STEP_DTYPES[name])
        return Replay(
            track=world.track,
            labels=self.labels,
            runs=self.runs,
            dt=float(world.rules.dt),
            car_length=float(world.car.length),
            car_width=float(world.car.width),
            max_speed=float(world.car.max_speed),
            ray_angles=world.sensors.angles(),
            ray_ranges=world.sensors.ranges(),
            meta=self.meta,
            **stacked,
        )

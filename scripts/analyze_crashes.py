"""Failure analysis: where and why a driver crashes on tracks it has not seen.

Evaluates a run's checkpoint (``best/`` unless ``--checkpoint``) with ``record=true`` on
a track set (by default the held-out benchmark, ``tracks.benchmark`` of
conf/train.yaml, default difficulty), reads the replays (docs/replays.md) and
classifies every car that did not complete its laps:

- *cause*: ``obstacle`` (the car's centre within obstacle radius + car radius of an
  obstacle's), ``car`` (within a car width of another racing car), ``wall`` (off the
  track), or ``stopped`` (no crash: stood still or ran out of steps);
- for cars, the *other car* touched and *where* it was, seen from this one: ``behind``,
  ``ahead`` (within 45° of the heading) or ``beside`` (in traffic races: who ran into whom);
- for walls, the *side* against the bend: ``outside`` of it (too fast for the bend: the
  car understeers wide), ``inside`` (cut the corner) or on a ``straight`` (no bend
  tighter than ``STRAIGHT_RADIUS`` in the window below);
- where: *distance* from the start line [m] and race *time* [s]; a crash in the first
  ``STANDING_START_M`` is a *standing start* crash;
- the track there: the tightest *bend radius* [m] of the centreline from
  ``BEND_BEFORE_M`` before the car to ``BEND_AFTER_M`` after it, the track width and the
  *free width* (the gap beside an obstacle within ``OBSTACLE_NEAR_M``, else the width);
- the car: *speed* at the crash [m/s], and over the corner speed sqrt(a_grip · R) of
  that bend (*v/v_bend* > 1: faster than the tyres hold there, ``racing_rl.sim.car``);
- the second before (15 steps at 15 Hz): the shortest ray reading [m] and the middle
  rays' reading a second before, the mean throttle and steering, the share of steps at
  full lock (|steering| > 0.95) and braking (throttle < 0).

It prints a table (a row per failure), a summary (counts by cause; how the crashed
tracks differ from the completed ones) and, last, one JSON line with every figure.
The evaluation writes to ``--out`` (metrics.json and replays/; without it, to
``<run dir>/eval/crashes``: the run's own files are only read); ``--replays <dir>``
analyses replays already recorded (e.g. a race's).

Usage::

    python scripts/analyze_crashes.py <run dir> --out /tmp/crashes
    python scripts/analyze_crashes.py <run dir> --difficulty hard --out /tmp/crashes_hard
    python scripts/analyze_crashes.py <run dir> --driver scripted --out /tmp/crashes_scripted
    python scripts/analyze_crashes.py <run dir> --replays <run dir>/eval/race/replays
    python scripts/analyze_crashes.py <run dir> --out /tmp/crashes --markdown   # tables for docs
"""

from __future__ import annotations

import argparse
import math
import shlex
import subprocess
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from racing_rl.checkpoints.layout import resolve_model
from racing_rl.checkpoints.runs import check_simulator_run, load_run_config
from racing_rl.checks import check_track_seeds
from racing_rl.config import benchmark_seeds, override_value, parse
from racing_rl.errors import ConfigError, reported
from racing_rl.evaluation.tables import format_table, markdown_table
from racing_rl.files import strict_json
from racing_rl.replay import Replay, load_replay
from racing_rl.sim.car import CarConfig

FloatArray = NDArray[np.float64]

#: A crash this close to the start line [m] is a standing-start crash.
STANDING_START_M = 50.0
#: The bend at a crash: the tightest centreline curvature from this far before the car…
BEND_BEFORE_M = 40.0
#: …to this far after it [m].
BEND_AFTER_M = 10.0
#: No bend tighter than this radius in that window [m]: a straight.
STRAIGHT_RADIUS = 100.0
#: An obstacle this close along the track [m] narrows it to the gap beside it.
OBSTACLE_NEAR_M = 15.0
#: The window before a crash [s].
BEFORE_S = 1.0
#: |steering| above this is full lock.
FULL_LOCK = 0.95


@dataclass(frozen=True)
class Failure:
    """One car that did not complete its laps, classified.

    Attributes:
        track_seed: the track.
        label: the car's driver (a run dir's name, ``scripted``).
        cause: ``obstacle``, ``car``, ``wall`` or ``stopped``.
        other_car: for ``car``: the other car's driver (its label); else ``""``.
        other_was: for ``car``: where the other car was, seen from this one, ``behind``,
            ``ahead`` or ``beside`` (``where_was``); else ``""``.
        side: for ``wall``: ``outside`` or ``inside`` of the bend, or ``straight``;
            else ``""``.
        bend: the bend's direction, ``left`` or ``right``; ``""`` on a straight.
        distance_m: distance along the track from the start line at the end [m].
        time_s: race time at the end [s].
        standing_start: ``distance_m`` < ``STANDING_START_M``.
        speed_mps: speed at the end [m/s].
        bend_radius_m: tightest radius of curvature of the centreline around the car [m].
        bend_speed_ratio: speed over the bend's corner speed sqrt(a_grip · R).
        track_width_m: distance between the walls [m].
        free_width_m: the gap beside an obstacle within ``OBSTACLE_NEAR_M``, else the width [m].
        lateral_m: offset from the centreline at the end [m], positive to the left.
        min_ray_m: the shortest ray reading over the last ``BEFORE_S`` [m].
        front_ray_before_m: the mean reading ``BEFORE_S`` before the end of the rays
            closest to straight ahead (one, or the two either side of it) [m].
        rays_before_m: every ray's reading ``BEFORE_S`` before the end, in the order of
            ``replay.ray_angles`` (a fan: left to right) [m].
        throttle: mean throttle over the last ``BEFORE_S`` (−1 … 1).
        steering: mean steering over the last ``BEFORE_S`` (−1 … 1, negative left).
        full_lock: share of those steps at |steering| > ``FULL_LOCK``.
        braking: share of those steps with throttle < 0.
    """

    track_seed: int
    label: str
    cause: str
    other_car: str
    other_was: str
    side: str
    bend: str
    distance_m: float
    time_s: float
    standing_start: bool
    speed_mps: float
    bend_radius_m: float
    bend_speed_ratio: float
    track_width_m: float
    free_width_m: float
    lateral_m: float
    min_ray_m: float
    front_ray_before_m: float
    rays_before_m: list[float]
    throttle: float
    steering: float
    full_lock: float
    braking: float


def lateral_offset(replay: Replay, frame: int, car: int) -> float:
    """The car's signed offset from the centreline at ``frame`` [m], positive to the left.

    Projects on the segments around the centreline point its progress gives (as the
    simulator does, ``racing_rl.sim.world``), so a car near another part of a tight
    track is not projected there.
    """
    track = replay.track
    arc = (replay.progress[frame, car] % 1.0) * track.length
    near = np.searchsorted(track.arc_length, arc) + np.arange(-3, 3)
    index = np.mod(near, track.n_points)
    start = track.centreline[index]
    direction = track.centreline[np.mod(index + 1, track.n_points)] - start
    length = np.linalg.norm(direction, axis=1)
    direction = direction / length[:, None]
    offset = replay.position[frame, car] - start
    along = np.clip(np.einsum("ij,ij->i", offset, direction), 0.0, length)
    foot = start + direction * along[:, None]
    best = int(np.argmin(np.linalg.norm(replay.position[frame, car] - foot, axis=1)))
    return float(direction[best, 0] * offset[best, 1] - direction[best, 1] * offset[best, 0])


def bend_around(replay: Replay, distance: float) -> float:
    """Signed curvature of the tightest bend from ``BEND_BEFORE_M`` before ``distance``
    to ``BEND_AFTER_M`` after it [1/m], positive left (``Track.curvature``)."""
    track = replay.track
    curvature = track.curvature()
    ahead = np.mod(track.arc_length - distance % track.length, track.length)
    ahead = np.where(ahead > track.length / 2, ahead - track.length, ahead)
    window = (ahead >= -BEND_BEFORE_M) & (ahead <= BEND_AFTER_M)
    local = curvature[window]
    return float(local[np.argmax(np.abs(local))])


def free_width(replay: Replay, distance: float) -> float:
    """The narrowest passage within ``OBSTACLE_NEAR_M`` of ``distance`` along the track [m]:
    the gap beside an obstacle (its far edge to the opposite wall), else the width."""
    track = replay.track
    if not len(track.obstacle_index):
        return float(track.width)
    apart = track.arc_distance(track.arc_length[track.obstacle_index], distance % track.length)
    near = apart <= OBSTACLE_NEAR_M
    gaps = track.width / 2 + np.abs(track.obstacle_offset) - track.obstacles[:, 2]
    return float(min(track.width, *gaps[near])) if near.any() else float(track.width)


def cause_of_crash(replay: Replay, step: int, car: int) -> tuple[str, int | None]:
    """What car ``car`` hit in step ``step``: ``obstacle``, ``car`` or ``wall``, and the
    other car's index for ``car`` (else None).

    The simulator's crash test (``racing_rl.sim.world``) on the frame after the step:
    an obstacle if the car's centre is within obstacle radius + car radius, another car
    if within a car width of one still racing before the step, else the wall.
    """
    frame = step + 1
    position = replay.position[frame, car]
    radius = replay.car_width / 2
    obstacles = replay.track.obstacles
    if len(obstacles):
        reach = np.linalg.norm(obstacles[:, :2] - position, axis=1)
        if (reach < obstacles[:, 2] + radius).any():
            return "obstacle", None
    others = np.flatnonzero(replay.active[step]) if replay.n_cars > 1 else []
    for other in others:
        if other != car and np.linalg.norm(replay.position[frame, other] - position) < 2 * radius:
            return "car", int(other)
    return "wall", None


def where_was(replay: Replay, frame: int, car: int, other: int) -> str:
    """Where car ``other`` was seen from car ``car`` at ``frame``: ``behind``, ``ahead``
    (within 45° of the car's heading, backwards or forwards) or ``beside``."""
    heading = replay.heading[frame, car]
    offset = replay.position[frame, other] - replay.position[frame, car]
    along = offset[0] * math.cos(heading) + offset[1] * math.sin(heading)
    across = -offset[0] * math.sin(heading) + offset[1] * math.cos(heading)
    if abs(along) <= abs(across):
        return "beside"
    return "ahead" if along > 0 else "behind"


def classify(replay: Replay, car: int, car_config: CarConfig) -> Failure | None:
    """Car ``car``'s failure in ``replay``, or None if it completed its laps.

    Args:
        replay: a recorded race.
        car: the car's index.
        car_config: the cars' settings (the run's ``backend.car``), for the corner speed.
    """
    ended = np.flatnonzero(replay.terminated[:, car] | replay.truncated[:, car])
    step = int(ended[0]) if len(ended) else replay.n_steps - 1
    crashed = bool(replay.terminated[step, car])
    laps_asked = int(replay.meta.get("laps", 1))
    if not crashed and replay.laps[step + 1, car] >= laps_asked:
        return None
    frame = step + 1
    distance = float(replay.progress[frame, car] * replay.track.length)
    curvature = bend_around(replay, distance)
    radius = 1.0 / abs(curvature) if curvature else math.inf
    lateral = lateral_offset(replay, frame, car)
    cause, other = cause_of_crash(replay, step, car) if crashed else ("stopped", None)
    side = ""
    if cause == "wall":
        side = (
            "straight"
            if radius > STRAIGHT_RADIUS
            else ("inside" if lateral * curvature > 0 else "outside")
        )
    window = max(1, round(BEFORE_S / replay.dt))
    first = max(0, frame - window)
    rays = replay.rays[:, car].astype(np.float64)
    ahead = np.abs(replay.ray_angles)  # the rays closest to straight ahead: one or two
    front = rays[first, np.isclose(ahead, ahead.min())].mean()
    actions = replay.actions[max(0, step + 1 - window) : step + 1, car]
    speed = float(replay.speed[frame, car])
    return Failure(
        track_seed=int(replay.track.seed),
        label=replay.labels[car],
        cause=cause,
        other_car="" if other is None else replay.labels[other],
        other_was="" if other is None else where_was(replay, frame, car, other),
        side=side,
        bend="" if radius > STRAIGHT_RADIUS else ("left" if curvature > 0 else "right"),
        distance_m=distance,
        time_s=float(replay.time[frame]),
        standing_start=distance < STANDING_START_M,
        speed_mps=speed,
        bend_radius_m=radius,
        bend_speed_ratio=abs(speed) / float(car_config.corner_speed(np.array(curvature))),
        track_width_m=float(replay.track.width),
        free_width_m=free_width(replay, distance),
        lateral_m=lateral,
        min_ray_m=float(rays[first : frame + 1].min()),
        front_ray_before_m=float(front),
        rays_before_m=[round(float(r), 2) for r in rays[first]],
        throttle=float(actions[:, 0].mean()),
        steering=float(actions[:, 1].mean()),
        full_lock=float(np.mean(np.abs(actions[:, 1]) > FULL_LOCK)),
        braking=float(np.mean(actions[:, 0] < 0)),
    )


def tightest_bend(replay: Replay) -> float:
    """The track's tightest bend: its signed radius of curvature [m], positive left."""
    curvature = replay.track.curvature()
    return float(1.0 / curvature[np.argmax(np.abs(curvature))])


def analyze(replays: Sequence[Replay], car_config: CarConfig) -> dict[str, Any]:
    """Classify every failure in ``replays`` and summarise them.

    Args:
        replays: recorded races (one or more cars each).
        car_config: the cars' settings (the run's ``backend.car``), for the corner speed.

    Returns:
        ``failures`` (``Failure`` dicts, by track), and ``summary``: ``cars`` (cars
        raced over all tracks), ``finished``, ``failures``, ``by_cause`` (counts),
        ``by_side`` (wall crashes), ``car_contacts`` (car crashes by the car, the car it
        touched and where that one was: ``"a: scripted behind"``), ``by_bend`` (crashes
        by the bend's direction, or ``straight``), ``standing_start``,
        ``over_bend_speed`` (crashes with ``bend_speed_ratio`` > 1), ``median_speed_mps``,
        ``median_bend_radius_m``,
        and per track set ``tightest_bend_m`` (median of each track's tightest bend)
        ``tightest_bend_right`` (tracks whose tightest bend turns right) and
        ``obstacles`` (mean per track) for the tracks with a failure and those without.
    """
    failures: list[Failure] = []
    failed_tracks, clean_tracks = [], []
    cars = 0
    for replay in sorted(replays, key=lambda r: r.track.seed):
        found = [f for car in range(replay.n_cars) if (f := classify(replay, car, car_config))]
        cars += replay.n_cars
        failures += found
        (failed_tracks if found else clean_tracks).append(replay)
    crashes = [f for f in failures if f.cause != "stopped"]

    def median(values: Sequence[float]) -> float:
        return float(np.median(values)) if len(values) else math.nan

    def tracks(group: Sequence[Replay]) -> dict[str, float]:
        bends = [tightest_bend(r) for r in group]
        return {
            "tracks": len(group),
            "tightest_bend_m": median(np.abs(bends)),
            "tightest_bend_right": sum(bend < 0 for bend in bends),
            "obstacles": float(np.mean([len(r.track.obstacles) for r in group]))
            if group
            else math.nan,
        }

    summary = {
        "cars": cars,
        "finished": cars - len(failures),
        "failures": len(failures),
        "by_cause": dict(Counter(f.cause for f in failures)),
        "by_side": dict(Counter(f.side for f in crashes if f.cause == "wall")),
        "car_contacts": dict(
            Counter(f"{f.label}: {f.other_car} {f.other_was}" for f in crashes if f.cause == "car")
        ),
        "by_bend": dict(Counter(f.bend or "straight" for f in crashes)),
        "standing_start": sum(f.standing_start for f in crashes),
        "over_bend_speed": sum(f.bend_speed_ratio > 1 for f in crashes),
        "median_speed_mps": median([f.speed_mps for f in crashes]),
        "median_bend_radius_m": median([f.bend_radius_m for f in crashes]),
        "median_min_ray_m": median([f.min_ray_m for f in crashes]),
        "tracks_with_failure": tracks(failed_tracks),
        "tracks_without": tracks(clean_tracks),
    }
    return {"failures": [asdict(f) for f in failures], "summary": summary}


#: Table columns: (Failure field, head).
COLUMNS = (
    ("track_seed", "track"),
    ("label", "car"),
    ("cause", "cause"),
    ("other_car", "other car"),
    ("other_was", "where"),
    ("side", "side"),
    ("bend", "bend"),
    ("distance_m", "at [m]"),
    ("time_s", "t [s]"),
    ("speed_mps", "v [m/s]"),
    ("bend_speed_ratio", "v/v_bend"),
    ("bend_radius_m", "bend R [m]"),
    ("free_width_m", "free width [m]"),
    ("min_ray_m", "min ray 1 s [m]"),
    ("front_ray_before_m", "front ray -1 s [m]"),
    ("throttle", "throttle"),
    ("steering", "steering"),
    ("full_lock", "full lock"),
)


def rows(failures: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The table's rows: ``COLUMNS`` of each failure, numbers rounded for reading."""
    table = []
    for failure in failures:
        row = {}
        for key, head in COLUMNS:
            value = failure[key]
            row[head] = round(value, 2) if isinstance(value, float) else value
        table.append(row)
    return table


def markdown(table: Sequence[dict[str, Any]]) -> str:
    """``table`` (rows of equal keys) as a Markdown table; "" for no rows."""
    if not table:
        return ""
    return markdown_table(list(table[0]), ([row[h] for h in table[0]] for row in table))


def summary_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The summary as (figure, value) rows."""
    causes = ", ".join(f"{k} {v}" for k, v in sorted(summary["by_cause"].items())) or "–"
    sides = ", ".join(f"{k} {v}" for k, v in sorted(summary["by_side"].items())) or "–"
    contacts = "; ".join(f"{k} {v}" for k, v in sorted(summary["car_contacts"].items())) or "–"
    bends = ", ".join(f"{k} {v}" for k, v in sorted(summary["by_bend"].items())) or "–"
    with_failure, without = summary["tracks_with_failure"], summary["tracks_without"]
    figures = [
        ("cars finished / raced", f"{summary['finished']} / {summary['cars']}"),
        ("failures by cause", causes),
        ("wall crashes by side of the bend", sides),
        ("car crashes: the car, the car it touched and where that one was", contacts),
        ("crashes by the bend's direction", bends),
        (f"crashes in the first {STANDING_START_M:.0f} m", summary["standing_start"]),
        ("crashes above the bend's corner speed", summary["over_bend_speed"]),
        ("median speed at a crash [m/s]", f"{summary['median_speed_mps']:.1f}"),
        ("median bend radius at a crash [m]", f"{summary['median_bend_radius_m']:.1f}"),
        ("median shortest ray in the last second [m]", f"{summary['median_min_ray_m']:.1f}"),
        (
            "tightest bend, median over tracks with / without a failure [m]",
            f"{with_failure['tightest_bend_m']:.1f} / {without['tightest_bend_m']:.1f}",
        ),
        (
            "tracks whose tightest bend turns right, with / without a failure",
            f"{with_failure['tightest_bend_right']} of {with_failure['tracks']} / "
            f"{without['tightest_bend_right']} of {without['tracks']}",
        ),
        (
            "obstacles per track, with / without a failure",
            f"{with_failure['obstacles']:.2f} / {without['obstacles']:.2f}",
        ),
    ]
    return [{"figure": figure, "value": value} for figure, value in figures]


def record(run_dir: Path, out: Path, seeds: Sequence[int], options: Sequence[str]) -> Path:
    """``racing-rl eval run_dir=<run_dir> record=true seeds=<seeds> out_dir=<out> <options>``;
    returns the replays' dir. Its output goes to stderr (stdout is this script's), and the
    command line once it has recorded them.

    Raises:
        SystemExit: with eval's exit status, if it fails (its one line says why).
    """
    args = [
        "eval",
        f"run_dir={override_value(run_dir)}",  # a sweep job's dir: '=' and ','
        "record=true",
        f"seeds=[{','.join(str(s) for s in seeds)}]",
        f"out_dir={override_value(out)}",
        *options,
    ]
    command = [sys.executable, "-m", "racing_rl.cli", *args]
    result = subprocess.run(command, stdout=sys.stderr, text=True)
    if result.returncode != 0:
        raise SystemExit(result.returncode)
    print(f"recorded by {shlex.join(['racing-rl', *args])}", file=sys.stderr, flush=True)
    return out / "replays"


def load_replays(directory: Path) -> list[Replay]:
    """Every ``*.npz`` replay in ``directory``.

    Raises:
        SystemExit: if there is none.
    """
    paths = sorted(directory.glob("*.npz"))
    if not paths:
        raise SystemExit(f"No replays (*.npz) in {directory}: record some with record=true.")
    return [load_replay(path) for path in paths]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path, help="the run (its config gives the car's grip)")
    parser.add_argument(
        "--checkpoint", default=None, help="racing-rl eval's checkpoint (default: best)"
    )
    parser.add_argument(
        "--driver",
        default=None,
        choices=("policy", "scripted"),
        help="the run's policy, or the scripted driver on the same tracks (default: policy)",
    )
    parser.add_argument(
        "--difficulty", default=None, help="a conf/difficulty level (default: default)"
    )
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=None, help="track seeds (default: the benchmark)"
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="eval dir (default: <run dir>/eval/crashes)"
    )
    parser.add_argument("--replays", type=Path, default=None, help="analyse these replays instead")
    parser.add_argument("--markdown", action="store_true", help="Markdown tables")
    args = parser.parse_args()
    recording = ("checkpoint", "driver", "difficulty", "seeds", "out")
    given = [f"--{name}" for name in recording if getattr(args, name) is not None]
    if args.replays is not None and given:
        parser.error(
            f"{', '.join(given)} set how the replays are recorded; --replays analyses "
            "replays recorded already: leave them out"
        )
    if args.seeds is not None:  # before eval starts, in this command line's words
        try:
            check_track_seeds(args.seeds, "--seeds")
        except ConfigError as err:
            parser.error(str(err))
    run_cfg = load_run_config(args.run_dir)
    if args.replays is None:
        check_simulator_run(args.run_dir, "analyze_crashes.py (it records replays)")
        # Here, not in racing-rl eval's words (checkpoint=), after it has started.
        resolve_model(args.run_dir, args.checkpoint or "best")
        seeds = args.seeds or benchmark_seeds()
        options = [
            f"checkpoint={override_value(args.checkpoint or 'best')}",
            f"driver={args.driver or 'policy'}",
            f"difficulty={args.difficulty or 'default'}",
        ]
        out = args.out or args.run_dir / "eval" / "crashes"
        replays_dir = record(args.run_dir, out, seeds, options)
    else:
        replays_dir = args.replays
    result = analyze(
        load_replays(replays_dir), parse(CarConfig, run_cfg.backend.car, "backend.car")
    )
    table, summary = rows(result["failures"]), summary_rows(result["summary"])
    if args.markdown:
        print(markdown(table) or "(no failures)")
        print()
        print(markdown(summary))
    else:
        print(format_table(table, list(table[0])) if table else "(no failures)")
        print()
        print(format_table(summary, ["figure", "value"]))
    print(strict_json({"run_dir": str(args.run_dir), "replays": str(replays_dir), **result}))


if __name__ == "__main__":
    with reported("analyze_crashes.py", {"checkpoint": "--checkpoint"}):
        main()

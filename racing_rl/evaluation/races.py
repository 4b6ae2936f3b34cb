"""Races: D drivers, one car each, on B tracks at once; results, leaderboards, replays.

``run_races`` steps one ParallelEnv per track with one car per driver (the race's own
rules: standing start, ``laps`` laps, a step limit). Every step, each driver acts for its
car on all tracks in one batch (``racing_rl.drivers``); a car that is done stands still
while the others race on, and a track's race ends when every car is done. With one
driver this is ``racing-rl eval``'s measurement; with several, a race.

Finishing time is the race clock at the start-line crossing that completes the car's
last lap. Cars start on the line together (``spawn="line"``) unless car collisions are
on or rays see cars (then two abreast on a grid: ``episode.rotate_grid``), so otherwise a
car's finishing time is the sum of its lap times and the leaderboard's order is the
order of those sums.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from racing_rl.drivers import Driver, ScriptedDriver
from racing_rl.errors import ConfigError
from racing_rl.evaluation.results import EpisodeResult
from racing_rl.vec import env_pool, map_envs, step_envs

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CarResult:
    """One car's race on one track.

    Attributes:
        label: the driver's name.
        episode: the episode's figures (``racing_rl.evaluation.results.EpisodeResult``),
            its lap times among them.
        finish_time: race clock when the car completed its laps [s]; NaN if it did not.
    """

    label: str
    episode: EpisodeResult
    finish_time: float = math.nan


@dataclass(frozen=True)
class TrackRace:
    """The race on one track: a result per driver, in driver order, and the replay if recorded."""

    track_seed: int
    cars: list[CarResult]
    replay: Any = None


class RacesInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM) during ``run_races``: ``races`` holds the ``TrackRace`` of every
    env whose race had ended, in env order (in a game, a round of tracks can take minutes)."""

    def __init__(self, races: list[TrackRace]) -> None:
        super().__init__()
        self.races = races


def run_races(
    envs: Sequence[Any],
    drivers: Sequence[Driver],
    record: bool = False,
    meta: dict[str, Any] | None = None,
    on_step: Callable[[], bool | None] | None = None,
) -> list[TrackRace]:
    """Race every driver on every env (one ParallelEnv per track, one car per driver).

    Args:
        envs: B ``RaceParallelEnv`` (or wrappers of one) with D cars each, not yet reset.
        drivers: D drivers; driver d drives car d of every env.
        record: keep a ``racing_rl.replay.Replay`` of each track's race.
        meta: metadata for the replays.
        on_step: called before the first step and after every step (e.g. to draw); the
            race stops early when it returns False, cars still racing then count as not
            finished.

    Returns:
        One ``TrackRace`` per env, in env order.

    Envs are stepped together (``racing_rl.vec.step_envs``). Envs without a simulator world
    (the Roblox backend) take their track seeds from the reset infos and their finishing
    times from the lap times.

    Raises:
        ConfigError: if replays or the scripted driver are asked for on envs without a
            simulator world.
        RacesInterrupted: on Ctrl-C while racing, with the races that had ended.
    """
    n_tracks, n_cars = len(envs), len(drivers)
    worlds, recorders, observations, seeds = [], [], None, []
    agents = [list(env.possible_agents) for env in envs]
    pool = env_pool(envs)  # a game's resets wait on it: all at once
    try:
        resets = map_envs(pool, lambda env: env.reset(), envs)
    finally:  # an error or Ctrl-C leaves no thread waiting on the game
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
    for b, (obs, infos) in enumerate(resets):
        world = getattr(envs[b].unwrapped, "world", None)
        if world is None and (record or any(isinstance(d, ScriptedDriver) for d in drivers)):
            raise ConfigError(
                "Replays and the scripted driver need the built-in simulator's state; "
                f"{type(envs[b].unwrapped).__name__} has none. Race policies only, without "
                "record=true, on this backend."
            )
        worlds.append(world)
        seeds.append(int(world.track.seed if world else infos[agents[b][0]]["track_seed"]))
        if observations is None:
            size = next(iter(obs.values())).shape[0]
            observations = np.zeros((n_cars, n_tracks, size), dtype=np.float32)
        for d, agent in enumerate(agents[b]):
            observations[d, b] = obs[agent]
        if record:
            from racing_rl.replay import ReplayRecorder

            recorder = ReplayRecorder(
                [driver.label for driver in drivers],
                [driver.run for driver in drivers],
                {**(meta or {}), "track_seed": seeds[b]},
            )
            recorder.start(world)
            recorders.append(recorder)
    assert observations is not None
    for driver in drivers:
        driver.reset(n_tracks)
    returns = np.zeros((n_tracks, n_cars))
    lengths = np.zeros((n_tracks, n_cars), dtype=np.int64)
    lap_times: list[list[list[float]]] = [[[] for _ in drivers] for _ in envs]
    finish = np.full((n_tracks, n_cars), math.nan)
    results: list[list[EpisodeResult | None]] = [[None] * n_cars for _ in envs]
    last_info: list[list[dict[str, Any]]] = [[{} for _ in drivers] for _ in envs]

    def track_race(b: int) -> TrackRace:
        world, cars = worlds[b], []
        for d, driver in enumerate(drivers):
            episode = results[b][d]
            if episode is None:  # still racing when stopped: neither finished nor crashed
                info = last_info[b][d]
                figures = {
                    "progress": world.progress[d] if world else info.get("progress", math.nan),
                    "mean_speed": world.mean_speed[d]
                    if world
                    else info.get("mean_speed", math.nan),
                }
                episode = EpisodeResult.from_info(
                    seeds[b], figures, lap_times[b][d], returns[b, d], lengths[b, d]
                )
            cars.append(CarResult(driver.label, episode, float(finish[b, d])))
        return TrackRace(seeds[b], cars, recorders[b].replay() if record else None)

    stopped = on_step is not None and on_step() is False
    try:
        while not stopped and any(env.agents for env in envs):
            actions = np.stack(
                [driver.act(observations[d], worlds, d) for d, driver in enumerate(drivers)]
            )
            racing = [b for b, env in enumerate(envs) if env.agents]
            step_actions = {
                b: np.where([[a in envs[b].agents] for a in agents[b]], actions[:, b], 0.0)
                for b in racing
            }

            live_before = {b: set(envs[b].agents) for b in racing}
            stepped = step_envs(
                [envs[b] for b in racing],
                [
                    {a: step_actions[b][d] for d, a in enumerate(agents[b]) if a in live_before[b]}
                    for b in racing
                ],
            )
            for b, (obs, rewards, terminated, truncated, infos) in zip(
                racing, stepped, strict=True
            ):
                live = live_before[b]
                world = worlds[b]
                lap = np.full(n_cars, math.nan)
                for d, agent in enumerate(agents[b]):
                    if agent not in live:
                        continue
                    observations[d, b] = obs[agent]
                    returns[b, d] += rewards[agent]
                    lengths[b, d] += 1
                    info = infos[agent]
                    if "lap_time" in info:
                        lap[d] = info["lap_time"]
                        lap_times[b][d].append(float(info["lap_time"]))
                        if info.get("finished"):
                            # The crossing that ends the last lap starts the clock of the next;
                            # without the simulator's clock (a game), the laps' sum (a line start).
                            finish[b, d] = (
                                world.time - world.lap_clock[d] if world else sum(lap_times[b][d])
                            )
                    last_info[b][d] = info
                    if terminated[agent] or truncated[agent]:
                        results[b][d] = EpisodeResult.from_info(
                            seeds[b], info, lap_times[b][d], returns[b, d], lengths[b, d]
                        )
                if record:
                    recorders[b].step(
                        step_actions[b],
                        np.array([rewards.get(a, 0.0) for a in agents[b]]),
                        lap,
                        np.array([terminated.get(a, False) for a in agents[b]]),
                        np.array([truncated.get(a, False) for a in agents[b]]),
                        observations[:, b, : world.sensors.n_rays] * world.sensors.ranges(),
                    )
            if on_step is not None and on_step() is False:
                stopped = True
    except KeyboardInterrupt as interrupt:
        ended = [b for b in range(n_tracks) if all(r is not None for r in results[b])]
        raise RacesInterrupted([track_race(b) for b in ended]) from interrupt
    return [track_race(b) for b in range(n_tracks)]


#: The figures of ``leaderboard`` and ``standings`` that come from the cars' laps and
#: progress: in a game that sends no lap info (``unreported_info``: ``progress``) every car
#: ranks alike (position 1, no lap), so they are not measured (``without_lap_figures``).
LAP_FIGURES = (
    "position",
    "laps",
    "lap_times_s",
    "best_lap_s",
    "finish_time_s",
    "gap_s",
    "progress",
    "wins",
    "mean_position",
    "finished_rate",
    "mean_lap_time_s",
)


def without_lap_figures(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """``leaderboard`` or ``standings`` rows of races in a game that sends no lap info, with
    their ``LAP_FIGURES`` None (null in a ``metrics.json``): not measured."""
    return [{k: None if k in LAP_FIGURES else v for k, v in row.items()} for row in rows]


def _ranks(keys: Sequence[tuple[float, float]]) -> list[int]:
    """Each key's position (1 + how many keys sort before it): exact ties share one."""
    return [1 + sum(other < mine for other in keys) for mine in keys]


def leaderboard(race: TrackRace) -> list[dict[str, Any]]:
    """The positions of one track's race, winner first.

    Finishers by finishing time, then the others by progress, crashed or not.
    Exact ties share a position (1, 1, 3). A figure that is not finite (a game's car
    that finished on a tick the bridge did not read has no finishing time; an
    interrupted episode no progress) ranks after the finite ones.

    Returns:
        Rows: ``position``, ``label``, ``finished``, ``crashed``, ``laps``,
        ``lap_times_s``, ``best_lap_s``, ``finish_time_s``, ``gap_s`` (to the winner;
        NaN for cars that did not finish), ``progress``, ``interrupted``,
        ``episode_return`` (raw rewards), ``length`` (steps).
    """

    def key(car: CarResult) -> tuple[float, float]:  # NaN in a key would scramble the sort
        if car.episode.finished:
            time = car.finish_time
            return (0.0, time) if math.isfinite(time) else (0.5, 0.0)
        progress = car.episode.progress
        return (1.0, -progress if math.isfinite(progress) else math.inf)

    ordered = sorted(race.cars, key=key)
    winner = ordered[0].finish_time
    return [
        {
            "position": position,
            "label": car.label,
            "finished": car.episode.finished,
            "crashed": car.episode.crashed,
            "laps": len(car.episode.lap_times),
            "lap_times_s": list(car.episode.lap_times),
            "best_lap_s": min(car.episode.lap_times, default=math.nan),
            "finish_time_s": car.finish_time,
            "gap_s": car.finish_time - winner,
            "progress": car.episode.progress,
            "interrupted": car.episode.interrupted,
            "episode_return": car.episode.episode_return,
            "length": car.episode.length,
        }
        for car, position in zip(ordered, _ranks([key(car) for car in ordered]), strict=True)
    ]


def standings(races: Sequence[TrackRace]) -> list[dict[str, Any]]:
    """The overall order over several tracks: by mean position, then mean lap time
    (exact ties share a position). A track on which a game lost a car mid-race (a
    reconnection: ``EpisodeResult.interrupted``) counts for no one.

    Returns:
        Rows: ``position``, ``label``, ``wins`` (first and finished: a race in which no
        car finished has no winner; cars tied first each win), ``mean_position``, ``finished_rate``,
        ``mean_lap_time_s`` (every lap of the races it finished).
    """
    races = [race for race in races if not any(car.episode.interrupted for car in race.cars)]
    if not races:
        return []
    boards = [leaderboard(race) for race in races]
    labels = [car.label for car in races[0].cars]
    rows = []
    for d, label in enumerate(labels):
        positions = [next(r["position"] for r in board if r["label"] == label) for board in boards]
        lap_times = [
            t
            for race in races
            if race.cars[d].episode.finished
            for t in race.cars[d].episode.lap_times
        ]
        rows.append(
            {
                "label": label,
                "wins": sum(
                    r["label"] == label and r["position"] == 1 and r["finished"]
                    for board in boards
                    for r in board
                ),
                "mean_position": float(np.mean(positions)),
                "finished_rate": float(np.mean([race.cars[d].episode.finished for race in races])),
                "mean_lap_time_s": float(np.mean(lap_times)) if lap_times else math.nan,
            }
        )

    def key(row: dict[str, Any]) -> tuple[float, float]:
        return row["mean_position"], float(np.nan_to_num(row["mean_lap_time_s"], nan=np.inf))

    rows.sort(key=key)
    ranks = _ranks([key(row) for row in rows])
    return [{"position": rank, **row} for rank, row in zip(ranks, rows, strict=True)]

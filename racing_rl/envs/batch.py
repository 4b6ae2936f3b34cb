"""``RaceBatch``: K simulated races as arrays, with the episode rules.

A ``RaceBatch`` owns one ``WorldBatch`` and adds what makes the worlds races: tracks drawn
from seeds, cars spawned as ``episode.spawn`` says, rewards, terminations and truncations.
Arrays in, arrays out: the simulator's SB3 VecEnv (``racing_rl.envs.vec_env.SimVecEnv``)
steps K races through it with no per-agent dicts, and ``RaceParallelEnv``
(``racing_rl.envs.race``) is the same code for one race, behind PettingZoo's dicts.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from gymnasium.utils import seeding
from numpy.typing import NDArray

from racing_rl.contract import track_change_due, track_seed_option
from racing_rl.envs.config import RaceConfig
from racing_rl.envs.rewards import compute_rewards
from racing_rl.errors import ConfigError, is_integer
from racing_rl.sim.track import Track, TrackConfig, generate_track
from racing_rl.sim.world import World, WorldBatch

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

#: Grid start (``episode.spawn="grid"``): cars two abreast, each row this far behind the
#: one ahead [m], the right-hand car of a row half a row behind the left-hand one, and
#: the two a quarter of the track's width either side of the centreline (nearer, on a
#: track too narrow for the car there: ``spawn_lateral_limit``).
GRID_ROW_GAP = 8.0
#: Spawns keep this far from the track's edge, beyond the car's radius [m].
SPAWN_EDGE_MARGIN = 1.0
#: With car collisions on, a respawned car lands at least this many car lengths along the
#: track from every car still racing and every car respawned with it (else both would
#: crash), within this many draws; after them, in the middle of the widest free stretch.
RESPAWN_CLEARANCE = 3.0
RESPAWN_DRAWS = 10


def spawn_lateral_limit(track_width: float, car_radius: float) -> float:
    """The largest offset from the centreline a car spawns at [m]: ``SPAWN_EDGE_MARGIN``
    inside the edge where it crashes, or 0 (the centreline) on a track with less room
    beside the car than that margin.

    Args:
        track_width: the track's width [m].
        car_radius: the car's collision radius [m].
    """
    return max(track_width / 2 - car_radius - SPAWN_EDGE_MARGIN, 0.0)


def widest_gap_middle(arcs: FloatArray, length: float) -> float:
    """The arc length [m] farthest along the track from every one of ``arcs``, shape
    (k,), k ≥ 1 [m]: the middle of the widest stretch between them on a loop of
    ``length`` metres."""
    ahead = np.sort(np.mod(arcs, length))
    gaps = np.diff(ahead, append=ahead[0] + length)
    widest = int(np.argmax(gaps))
    return float(np.mod(ahead[widest] + gaps[widest] / 2, length))


def beside_obstacles(
    track: Track, arc: FloatArray, lateral: FloatArray, car_length: float
) -> FloatArray:
    """Spawn offsets moved off the obstacles: a car spawned within an obstacle's radius
    plus ``car_length`` of it along the track goes to the middle of the gap it leaves
    (beside two, the gap of the later one); the others keep their offset.

    Args:
        track: the track.
        arc: the cars' signed arc lengths from the start line, shape (n,) [m] (negative:
            behind it, a grid slot).
        lateral: their offsets from the centreline, shape (n,) [m], positive to the left.
        car_length: the car's length [m].

    Returns:
        The offsets, shape (n,) [m].
    """
    if not len(track.obstacle_index):
        return lateral
    on_loop = np.mod(arc, track.length)  # arc_distance takes [0, length)
    apart = track.arc_distance(on_loop[:, None], track.arc_length[track.obstacle_index])
    near = apart < track.obstacles[:, 2] + car_length  # (n, M)
    last = near.shape[1] - 1 - np.argmax(near[:, ::-1], axis=1)
    return np.where(near.any(axis=1), track.obstacle_gap_centre[last], lateral)


def grid_slots(n_cars: int, track_seed: int, rotate: bool) -> NDArray[np.int64]:
    """Each car's slot on a grid start (``episode.spawn="grid"``), shape (n_cars,): 0 is
    pole, then the cars alternate right and left, each ``GRID_ROW_GAP / 2`` [m] behind the
    one before. Car i takes slot i, or with ``rotate`` (``episode.rotate_grid``) slot
    (i + track_seed) mod n_cars."""
    return (np.arange(n_cars) + (track_seed if rotate else 0)) % n_cars


@dataclass(frozen=True)
class RaceStep:
    """What one step of a ``RaceBatch`` gives every car; arrays of shape (N,) over all
    cars, race after race (cars that were not racing hold meaningless values).

    Attributes:
        observations: shape (N, n_rays + 3), float32 (``racing_rl.contract``).
        reward: the step's reward.
        terminated: crashed (left the track, hit an obstacle or another car).
        truncated: out of time (``episode.max_steps``), stuck, or finished its laps.
        progress: total progress since the start line [laps].
        laps: full laps completed.
        speed: signed speed [m/s].
        mean_speed: distance driven since the car was placed (its race began, or it was
            respawned) / the time since [m/s].
        distance: distance driven since the car was placed [m].
        stuck: no new progress for ``rules.stuck_time``.
        finished: completed ``episode.laps`` laps.
        lap_time: the lap's time where a lap was completed this step [s], else NaN.
        reward_terms: the reward's named terms (``racing_rl.envs.rewards``), each (N,).
    """

    observations: NDArray[np.float32]
    reward: FloatArray
    terminated: BoolArray
    truncated: BoolArray
    progress: FloatArray
    laps: NDArray[np.int64]
    speed: FloatArray
    mean_speed: FloatArray
    distance: FloatArray
    stuck: BoolArray
    finished: BoolArray
    lap_time: FloatArray
    reward_terms: dict[str, FloatArray]

    def infos(self) -> list[dict[str, Any]]:
        """Every car's step info, as ``RaceParallelEnv.step`` documents it (plain Python
        values; ``lap_time`` only where a lap was completed). Columns are converted once,
        then one small dict is made per car: this runs every step of training."""
        names = list(self.reward_terms)
        columns = zip(
            self.progress.tolist(),
            self.laps.tolist(),
            self.speed.tolist(),
            self.mean_speed.tolist(),
            self.distance.tolist(),
            self.terminated.tolist(),
            self.stuck.tolist(),
            self.finished.tolist(),
            self.lap_time.tolist(),
            *(term.tolist() for term in self.reward_terms.values()),
            strict=True,
        )
        infos = []
        for (
            progress,
            laps,
            speed,
            mean_speed,
            distance,
            crashed,
            stuck,
            finished,
            lap_time,
            *terms,
        ) in columns:
            info = {
                "progress": progress,
                "laps": laps,
                "speed": speed,
                "mean_speed": mean_speed,
                "distance": distance,
                "crashed": crashed,
                "stuck": stuck,
                "finished": finished,
                "reward_terms": dict(zip(names, terms, strict=True)),
            }
            if not math.isnan(lap_time):
                info["lap_time"] = lap_time
            infos.append(info)
        return infos


def _check_track_seeds(seeds: Any) -> None:
    """Refuse a race's ``track_seeds`` that are not a collection of whole numbers >= 0:
    a seed 1.5 raced on track 1, and -1 failed only at the first reset.

    Raises:
        ConfigError: naming the first bad seed, or a single seed given for the list.
    """
    if isinstance(seeds, str | bytes | numbers.Number) or not hasattr(seeds, "__len__"):
        raise ConfigError(
            f"track_seeds must be a list or range of track seeds, got {seeds!r}"
            + (f": pass [{seeds}] for one track." if isinstance(seeds, numbers.Integral) else ".")
        )
    ends = (seeds[0], seeds[-1]) if isinstance(seeds, range) and len(seeds) else seeds
    for seed in ends:
        if not is_integer(seed) or seed < 0:
            raise ConfigError(f"a track seed must be an integer >= 0, got {seed!r}.")


def check_spawn(config: RaceConfig, n_cars: int, track_mix: Sequence[TrackConfig] = ()) -> None:
    """Refuse, with car collisions on, starts that put cars on each other, so that every
    race would begin with crashes: ``spawn="line"`` (every car on one spot) for several
    cars, or a grid (``spawn="grid"``, or a random spawn's ``grid_start_prob``) deeper
    than the shortest track the track settings may make (``TrackConfig.shortest_length``
    of ``config.track`` and of each ``track_mix`` one; settings that give no bound, 0, are
    not checked): its last slots wrap round the loop onto the first (130 cars on hard
    tracks of ~500 m: a hundred crashed at the first step). Slot k is ``k ·
    GRID_ROW_GAP / 2`` [m] behind the line, so n cars fit where ``n · GRID_ROW_GAP / 2``
    is at most that length (76 for the defaults' 306 m, 65 for difficulty=hard's 262 m;
    their tracks are 448-527 m: the bound is a proven one, not the typical length).

    Args:
        config: the race settings.
        n_cars: cars in each race, opponents included.
        track_mix: other track settings the races' tracks are drawn from.

    Raises:
        ConfigError: naming the spawn settings, the cars and the most that fit.
    """
    episode = config.episode
    if not config.rules.car_collisions or n_cars < 2:
        return
    if episode.spawn == "line":
        raise ConfigError(
            f"episode.spawn='line' puts all {n_cars} cars on one spot, and with "
            "rules.car_collisions on every car would crash at the first step: use "
            "episode.spawn='grid' (two abreast behind the line)."
        )
    shortest = min(track.shortest_length for track in (config.track, *track_mix))
    grid = episode.spawn == "grid" or (episode.spawn == "random" and episode.grid_start_prob > 0)
    if not grid or shortest == 0 or n_cars * GRID_ROW_GAP / 2 <= shortest:
        return
    start = (
        "episode.spawn='grid'"
        if episode.spawn == "grid"
        else f"episode.grid_start_prob={episode.grid_start_prob:g} (races started on a grid)"
    )
    most = int(shortest // (GRID_ROW_GAP / 2))
    whose = "these track settings" if shortest == config.track.shortest_length else "the track mix"
    raise ConfigError(
        f"{start} lines up {n_cars} cars {GRID_ROW_GAP / 2:g} m apart, "
        f"{n_cars * GRID_ROW_GAP / 2:g} m behind the start line, but a track of {whose} may "
        f"be as short as {shortest:.1f} m (TrackConfig.shortest_length, a lower bound), and "
        "with rules.car_collisions on the last cars would start on the first: race at most "
        f"{most} cars (cars_per_race + scripted_opponents in training), or make the tracks "
        "longer (track.base_radius)."
    )


class RaceBatch:
    """K races of ``n_cars`` cars under one ``RaceConfig``, stepped as one ``WorldBatch``.

    Each race has its own random generator (track choice and spawns), its own track
    seeds, step count and episodes on its track, so a race's results do not depend on
    the others. Cars are rows, race after race: race k's are ``rows(k)``.

    Args:
        config: the race settings.
        n_cars: cars in each race, >= 1.
        track_seeds: per race, the seeds its tracks are drawn from (non-empty).
        track_mix: other track generators (training's ``tracks.train_mix``): a track drawn
            from ``track_seeds`` is generated, with equal probability, by
            ``config.track`` or one of these; a track named by a reset's
            ``track_seed`` option always by ``config.track``. Empty (the default)
            leaves the race's random stream exactly as without a mix.

    Raises:
        ConfigError: ``n_cars`` that is no whole number >= 1, no race, a race without track
            seeds, a car too wide for a track (``_check_car_fits``), or cars that would
            start on each other with collisions on (``check_spawn``).
    """

    def __init__(
        self,
        config: RaceConfig,
        n_cars: int,
        track_seeds: Sequence[Sequence[int]],
        track_mix: Sequence[TrackConfig] = (),
    ) -> None:
        if not is_integer(n_cars) or n_cars < 1:
            raise ConfigError(f"n_cars must be a whole number >= 1, got {n_cars!r}.")
        for seeds in track_seeds:
            _check_track_seeds(seeds)
        if len(track_seeds) == 0 or any(len(seeds) == 0 for seeds in track_seeds):
            raise ConfigError("track_seeds is empty: give at least one track seed per race.")
        self.n_cars = n_cars
        self.track_mix = tuple(track_mix)
        self._check_car_fits(config)
        check_spawn(config, n_cars, self.track_mix)
        self.config = config
        self.n_races = len(track_seeds)
        self.track_seeds = list(track_seeds)
        self.np_random = [seeding.np_random()[0] for _ in track_seeds]
        #: The worlds, after the first ``reset`` of every race (a ``World`` for one race).
        self.worlds: WorldBatch | None = None
        #: Each race's track until the worlds exist (they need every race's track).
        self._pending: list[Track | None] = [None] * self.n_races
        self._episodes_on_track = [0] * self.n_races
        self._steps = np.zeros(self.n_races, np.int64)

    def configure(self, config: RaceConfig) -> None:
        """Race under ``config`` from now on: its rules at once, its episode rules from
        the next reset (the bridge's emulator changes collisions and spawns this way).

        Raises:
            ConfigError: ``config`` has other car, sensor or track settings or another
                ``dt`` (the worlds were built for them).
        """
        old = self.config
        if (config.car, config.sensors, config.track, config.rules.dt) != (
            old.car,
            old.sensors,
            old.track,
            old.rules.dt,
        ):
            raise ConfigError(
                "Only the rules (but dt), rewards and episode settings of a race can change; "
                "make a new environment for other car, sensor or track settings."
            )
        # Not check_spawn: the emulator changes collisions and spawns one at a time, as
        # the game it stands in for asks (and a game's cars on one spot do crash).
        self.config = config
        if self.worlds is not None:
            self.worlds.rules = config.rules

    def _check_car_fits(self, config: RaceConfig) -> None:
        """Refuse a car as wide as a track (``config.track`` or a ``track_mix`` one), or,
        on a track with obstacles, as wide as the gap each leaves (``track.min_gap``): no
        offset keeps it on the track, or it cannot pass an obstacle, and every episode
        ends in a crash.

        Raises:
            ConfigError: naming the widths.
        """
        width = config.car.width
        for track in (config.track, *self.track_mix):
            if width >= track.width or (track.n_obstacles and width >= track.min_gap):
                raise ConfigError(
                    f"car.width ({width:g} m) must be below track.width ({track.width:g} m)"
                    + (f" and track.min_gap ({track.min_gap:g} m)" if track.n_obstacles else "")
                    + ": a car that wide crashes wherever it is on the track, or at every "
                    "obstacle. Narrow the car, or widen the track (and the gap beside "
                    "obstacles, or set track.n_obstacles=0)."
                )

    def rows(self, race: int) -> slice:
        """Rows of race ``race``'s cars."""
        return slice(race * self.n_cars, (race + 1) * self.n_cars)

    def reset(
        self, race: int, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> int:
        """Start race ``race``'s next episode: draw a new track when due, spawn every car.

        Until every race has been reset once, a reset only draws the track; the worlds
        exist (and cars are spawned) from the reset of the last race on.

        Args:
            race: which race.
            seed: seeds the race's generator (track choice and spawns) and forces a new
                track.
            options: ``{"track_seed": int}`` races on that track.

        Returns:
            The track's seed.

        Raises:
            ValueError: a ``track_seed`` option that is no integer.
        """
        track_seed = track_seed_option(options)
        if seed is not None:
            self.np_random[race], _ = seeding.np_random(seed)
        config, worlds = self.config, self.worlds
        tracks = self._pending if worlds is None else worlds.tracks
        due = track_change_due(
            self._episodes_on_track[race],
            config.episode.track_change_every,
            seed,
            first=tracks[race] is None,
        )
        if track_seed is not None or due:
            generator = config.track
            if track_seed is None:
                rng, seeds = self.np_random[race], self.track_seeds[race]
                track_seed = seeds[int(rng.integers(len(seeds)))]
                if self.track_mix:
                    generators = (config.track, *self.track_mix)
                    generator = generators[int(rng.integers(len(generators)))]
            track = generate_track(int(track_seed), generator)
            self._episodes_on_track[race] = 0
            if worlds is None:
                self._pending[race] = track
            else:
                worlds.set_track(race, track)
        self._episodes_on_track[race] += 1
        self._steps[race] = 0
        if worlds is not None:
            self._spawn(race)
        elif all(track is not None for track in self._pending):
            self._create_worlds()
        return (self._pending if self.worlds is None else self.worlds.tracks)[race].seed

    def _create_worlds(self) -> None:
        """The worlds of the tracks every race has drawn, every race's cars spawned (each
        race with its own generator, so the order of the resets does not matter)."""
        tracks: list[Track] = [track for track in self._pending if track is not None]
        c = self.config
        if self.n_races == 1:
            self.worlds = World(tracks[0], self.n_cars, c.car, c.sensors, c.rules)
        else:
            counts = [self.n_cars] * self.n_races
            self.worlds = WorldBatch(tracks, counts, c.car, c.sensors, c.rules)
        for race in range(self.n_races):
            self._spawn(race)

    def respawn(self, race: int, cars: BoolArray) -> None:
        """Start a new episode for some cars of race ``race`` while the others race on.

        Args:
            race: which race.
            cars: the cars to respawn, shape (n_cars,) bool.
        """
        self._spawn(race, np.asarray(cars, bool))

    def _spawn(self, race: int, cars: BoolArray | None = None) -> None:
        """Place race ``race``'s cars (all, or those in the mask ``cars``) as
        ``episode.spawn`` says. A grid is a race's start: cars respawned while the others
        race (``cars``) are placed as a random spawn places them, clear of the racing
        cars where cars collide, not on their slots behind the line, which the racing
        cars cross every lap."""
        world = self.worlds
        assert world is not None
        track, episode, n = world.tracks[race], self.config.episode, self.n_cars
        if episode.spawn == "line":
            world.place_cars(np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n), cars, race)
            return
        rng = self.np_random[race]
        grid_start = cars is None and episode.grid_start_prob > 0  # drawn only when it can be
        grid = episode.spawn == "grid" and cars is None
        if grid or (grid_start and rng.random() < episode.grid_start_prob):
            # The grid's slots in order (rotated by the track's seed), or (a random
            # spawn's grid start) shuffled.
            if episode.spawn == "grid":
                slot = grid_slots(n, track.seed, episode.rotate_grid)
            else:
                slot = rng.permutation(n)
            row, col = np.divmod(slot, 2)
            arc = -GRID_ROW_GAP * row - GRID_ROW_GAP / 2 * col
            side = min(track.width / 4, spawn_lateral_limit(track.width, self.config.car.radius))
            lateral = np.where(col == 0, 1.0, -1.0) * side if n > 1 else np.zeros(1)
            # A grid deeper than track.obstacle_clearance reaches the last obstacles (12
            # cars: 44 m behind the line; one on 7 of 300 default tracks started on one).
            lateral = beside_obstacles(track, arc, lateral, self.config.car.length)
            world.place_cars(arc, lateral, np.zeros(n), np.zeros(n), cars, race)
            return
        arc = np.mod(rng.uniform(0.0, track.length) + np.arange(n) * track.length / n, track.length)
        if cars is not None and self.config.rules.car_collisions:
            arc = self._clear_of_racing_cars(race, cars, arc)
        edge = spawn_lateral_limit(track.width, self.config.car.radius)
        limit = min(episode.max_spawn_lateral, edge)
        lateral = rng.uniform(-limit, limit, n)
        lateral = beside_obstacles(track, arc, lateral, self.config.car.length)
        heading = rng.uniform(-episode.max_spawn_heading, episode.max_spawn_heading, n)
        moving = rng.random(n) >= episode.standing_start_prob
        speed = np.where(moving, rng.uniform(0.0, episode.max_spawn_speed, n), 0.0)
        world.place_cars(arc, lateral, heading, speed, cars, race)

    def _clear_of_racing_cars(self, race: int, cars: BoolArray, arc: FloatArray) -> FloatArray:
        """Redraw the arcs (shape (n_cars,) [m]) of the respawning ``cars`` that are within
        ``RESPAWN_CLEARANCE`` car lengths of a car of race ``race`` still racing, or of
        another car respawning with it (the later of the two is redrawn), up to
        ``RESPAWN_DRAWS`` times (draws of the race's generator, taken only then). A car
        still that near after them (a crowded track: 10 draws left 28 of 6,000 respawns of 12
        cars on a 290 m track on another car) goes to the middle of the widest stretch
        between the others, one car after another; nearer only where no stretch is free."""
        world = self.worlds
        assert world is not None
        rows, track = self.rows(race), world.tracks[race]
        others = world.arc[rows][world.active[rows] & ~cars]
        # earlier[i, j]: car j respawns too and comes before car i.
        earlier = np.tril(cars[:, None] & cars[None, :], k=-1)
        clearance = RESPAWN_CLEARANCE * self.config.car.length
        for draw in range(RESPAWN_DRAWS + 1):
            near = (track.arc_distance(arc[:, None], others) < clearance).any(axis=1)
            near |= (earlier & (track.arc_distance(arc[:, None], arc) < clearance)).any(axis=1)
            near &= cars
            if not near.any() or draw == RESPAWN_DRAWS:
                break
            arc = np.where(near, self.np_random[race].uniform(0.0, track.length, len(arc)), arc)
        for car in np.flatnonzero(near):  # every car respawning but those still to place
            taken = np.concatenate([others, arc[cars & ~near]])
            arc[car] = widest_gap_middle(taken, track.length)
            near[car] = False
        return arc

    def step(self, actions: NDArray[np.float64]) -> RaceStep:
        """Advance every race by one step.

        Cars whose episode ended stop racing (``worlds.active``) until their race is
        reset or they are respawned.

        Args:
            actions: shape (K · n_cars, 3) in [-1, 1], race after race; rows of cars
                not racing are ignored.

        Returns:
            Every car's step (``RaceStep``).

        Raises:
            RuntimeError: before every race has been reset.
            ValueError: ``actions`` is not of shape (K · n_cars, 3), or a car's action is
                not finite (``WorldBatch.step``); nothing moves.
        """
        worlds = self.worlds
        if worlds is None:
            raise RuntimeError("step() before reset(): reset every race first.")
        config, episode = self.config, self.config.episode
        events = worlds.step(actions)
        observations = worlds.observe()
        self._steps += 1
        terminated = events.crashed
        laps = worlds.laps.copy()
        finished = laps >= episode.laps if episode.laps else np.zeros(len(laps), bool)
        truncated = events.stuck | finished
        truncated |= np.repeat(self._steps >= episode.max_steps, self.n_cars)  # out of time
        truncated &= ~terminated
        speed = worlds.cars.speed.copy()
        reward, terms = compute_rewards(
            events.progress_delta, speed / config.car.max_speed, terminated, config.reward
        )
        worlds.active &= ~(terminated | truncated)
        return RaceStep(
            observations=observations,
            reward=reward,
            terminated=terminated,
            truncated=truncated,
            progress=worlds.progress.copy(),
            laps=laps,
            speed=speed,
            mean_speed=worlds.mean_speed,
            distance=worlds.distance.copy(),
            stuck=events.stuck,
            finished=finished,
            lap_time=events.lap_time,
            reward_terms=terms,
        )

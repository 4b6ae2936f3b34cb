"""The settings of a simulated race: ``RaceConfig`` and its episode rules."""

from __future__ import annotations

from dataclasses import dataclass, field

from racing_rl.contract import STATE_SIZE
from racing_rl.envs.rewards import RewardConfig
from racing_rl.errors import ConfigError, check_flag, check_integer, check_range
from racing_rl.sim.car import CarConfig
from racing_rl.sim.sensors import SensorConfig
from racing_rl.sim.track import TrackConfig
from racing_rl.sim.world import RaceRules

SPAWN_MODES = ("random", "grid", "line")
RESET_MODES = ("race", "car")


@dataclass(frozen=True)
class GameEpisodeConfig:
    """How episodes end, and where cars spawn: what every backend's episodes take (a
    Roblox game's, ``backend=roblox``; the simulator's ``EpisodeConfig`` adds how its
    cars are spread at a random spawn).

    Attributes:
        max_steps: steps before every car is truncated.
        spawn: ``"random"`` spreads the cars around the track with random offsets,
            headings and speeds (training); ``"grid"`` lines them up at rest on the
            start line (evaluation and races with car collisions; a car respawned alone
            is placed as by ``"random"``, clear of the racing cars); ``"line"`` puts every
            car at rest on the start line on the centreline, overlapping (a race of
            "ghost" cars without car collisions: every car starts alike). A Roblox game
            is sent it as a hint, and spawns its cars itself.
        laps: a car that completes this many laps is truncated with ``finished`` in its
            info; 0 races on until ``max_steps``.
        track_change_every: episodes raced on one track before drawing the next from
            the track seeds (a reset with a seed or a ``track_seed`` option always draws).
        reset: what ends when one car's episode ends (``SimVecEnv``,
            ``ParallelEnvsVecEnv``): ``"race"`` truncates every other car and restarts
            the race; ``"car"`` respawns that car
            alone while the others race on (the Roblox game's rule; with car collisions,
            clear of the cars racing: ``RaceBatch``), and the race restarts
            only when every car is done at once (``max_steps``). Default PPO, seed 0,
            1.5M steps, best/ on the 20 test tracks: race 90 % laps, 20.07 s mean lap;
            car 95 %, 19.77 s (one seed each; one track of 20 apart), so race stays the
            default until more seeds say so.
    """

    max_steps: int = 1500
    spawn: str = "random"
    laps: int = 0
    track_change_every: int = 4
    reset: str = "race"

    def __post_init__(self) -> None:
        if self.spawn not in SPAWN_MODES:
            raise ConfigError(f"episode.spawn must be one of {SPAWN_MODES}, got {self.spawn!r}.")
        if self.reset not in RESET_MODES:
            raise ConfigError(
                f"episode.reset must be one of {RESET_MODES}, got {self.reset!r} (race: one "
                "car's end restarts the race; car: that car respawns alone)."
            )
        check_integer("episode.max_steps", self.max_steps, 1)
        check_integer("episode.track_change_every", self.track_change_every, 1)
        check_integer("episode.laps", self.laps, 0)


@dataclass(frozen=True)
class EpisodeConfig(GameEpisodeConfig):
    """The simulator's episodes: ``GameEpisodeConfig`` and how its cars are spread at a
    random spawn (``backend=pygame``; a Roblox game spawns its cars itself).

    Attributes:
        rotate_grid: with ``spawn="grid"``, the race on track seed ``s`` starts car ``i``
            from grid slot ``(i + s) mod n_cars`` instead of slot ``i``: over ``n_cars``
            consecutive track seeds every car starts once from every slot. ``racing-rl
            eval``'s races rotate (``rotate_grid`` in conf/eval.yaml): the front of the
            grid is worth places, so a fixed order biases a race's figures. Training
            refuses it with another spawn, where it would do nothing.
        standing_start_prob: with ``spawn="random"``, chance that a car starts at rest.
        grid_start_prob: with ``spawn="random"``, chance that a race (every car at once,
            not a car respawned alone) starts on the grid instead, its cars in random
            grid slots: training for two-abreast standing starts in traffic.
        max_spawn_speed: with ``spawn="random"``, fastest initial speed [m/s], >= 0 (0:
            every car starts at rest).
        max_spawn_lateral: with ``spawn="random"``, largest offset from the centreline
            either side [m], >= 0.
        max_spawn_heading: with ``spawn="random"``, largest heading error either side
            [rad], >= 0.
    """

    rotate_grid: bool = False
    standing_start_prob: float = 0.3
    grid_start_prob: float = 0.0
    max_spawn_speed: float = 15.0
    max_spawn_lateral: float = 3.0
    max_spawn_heading: float = 0.2

    def __post_init__(self) -> None:
        super().__post_init__()
        check_flag("episode.rotate_grid", self.rotate_grid)
        for name in ("standing_start_prob", "grid_start_prob"):
            check_range(f"episode.{name}", getattr(self, name), 0, 1)
        for name in ("max_spawn_speed", "max_spawn_lateral", "max_spawn_heading"):
            check_range(f"episode.{name}", getattr(self, name), 0)


@dataclass(frozen=True)
class RaceConfig:
    """Everything that defines a simulated race; each part is documented where it lives.

    The schema of the ``backend=pygame`` config group and its defaults
    (``racing_rl.config.backend_schema``; conf/backend/pygame.yaml sets what differs).

    Raises:
        ConfigError: a car at ``car.max_speed`` moves half the shortest track the track
            settings may make (``TrackConfig.shortest_length``) or more in ``rules.dt``.
    """

    track: TrackConfig = field(default_factory=TrackConfig)
    car: CarConfig = field(default_factory=CarConfig)
    sensors: SensorConfig = field(default_factory=SensorConfig)
    rules: RaceRules = field(default_factory=RaceRules)
    reward: RewardConfig = field(default_factory=RewardConfig)
    episode: EpisodeConfig = field(default_factory=EpisodeConfig)

    def __post_init__(self) -> None:
        # TrackLayout.of refuses it for a track it is given, at the first reset: here it is
        # refused with the config, before a run (and its directory) starts.
        step = self.car.max_speed * self.rules.dt  # the farthest a car moves in a step [m]
        shortest = self.track.shortest_length
        if shortest > 0 and not step < shortest / 2:
            raise ConfigError(
                f"rules.dt ({self.rules.dt} s) lets a car at car.max_speed "
                f"({self.car.max_speed} m/s) move {step:.1f} m in a step, half or more of "
                f"{shortest:.1f} m, the least length of a track of these track settings "
                "(TrackConfig.shortest_length): progress along it would be ambiguous. Use a "
                f"rules.dt below {shortest / (2 * self.car.max_speed):.3g} s ({1 / 15:.4f} s "
                "by default)."
            )

    @property
    def observation_size(self) -> int:
        """Numbers per observation: rays, then nitro fuel, speed and is_reverse."""
        return self.sensors.n_rays + STATE_SIZE

    @property
    def render_fps(self) -> int:
        """Frames per second that play a race in real time, 1 / ``rules.dt`` (15 by
        default): the environments' ``metadata["render_fps"]``."""
        return max(1, round(1 / self.rules.dt))

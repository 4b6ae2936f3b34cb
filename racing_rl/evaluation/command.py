"""``racing-rl eval`` as a plain function: drivers from run directories, races on
held-out tracks, ``metrics.json``.

``evaluate(cfg)`` loads a driver per entry of ``run_dir`` (a checkpoint behind its run's
frame stack and statistics, an exported file, or the scripted baseline), races them
(``racing_rl.evaluation.races``) and writes the metrics. ``check_runs`` checks what it
will load before anything is written (the Hydra app ``racing_rl.evaluate`` runs it
first).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from racing_rl.checkpoints.layout import FINAL, newer_than_final, resolve_model
from racing_rl.checkpoints.runs import check_policy_model, load_policy_driver, load_run_config
from racing_rl.checkpoints.saving import replace_directory
from racing_rl.checks import LIMITS, check_eval_config
from racing_rl.config import (
    backend_config,
    changed_settings,
    default_backend,
    eval_dir,
    run_entries,
    track_seeds,
    with_difficulty,
)
from racing_rl.drivers import Driver, ScriptedDriver
from racing_rl.envs.batch import grid_slots
from racing_rl.envs.config import RaceConfig
from racing_rl.errors import ConfigError
from racing_rl.evaluation.races import (
    TrackRace,
    leaderboard,
    run_races,
    standings,
    without_lap_figures,
)
from racing_rl.evaluation.results import EpisodeResult, summarize, unreported_info
from racing_rl.files import write_json
from racing_rl.provenance import environment_record, job_command, trained_game
from racing_rl.vec import make_parallel_envs

if TYPE_CHECKING:
    from racing_rl.bridge.training_bridge import TrainingBridge
    from racing_rl.watch import CheckpointFollower

log = logging.getLogger(__name__)

#: The run-dir entry (and ``driver`` value) that stands for the scripted baseline driver.
SCRIPTED = "scripted"
#: ``metrics.json``'s ``split`` of races in a game: its own track, whatever seeds it was
#: suggested (the unmodified game has one map), so none of the run's track splits.
GAME = "game"
#: ``driver`` values that export the checkpoint and drive with the exported file: a Luau
#: module in a Luau VM, an ONNX model in onnxruntime (``racing_rl.export``).
EXPORTED = ("luau", "onnx")


class EvalInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM, which ``racing_rl.interrupts`` turns into a KeyboardInterrupt)
    that stopped ``evaluate`` after races had ended, before it wrote its ``metrics.json``;
    raised from that KeyboardInterrupt (``interrupts.interrupt_signal`` tells which).

    Attributes:
        done: what the eval had raced and written, for its message: ``after 3 of its 20
            races, which are not kept (...): nothing written``, ``while writing its
            results: its 20 replays are in <dir>, its metrics.json is not``.
        wrote: whether it had written files (its replays).
    """

    def __init__(self, done: str, wrote: bool = False) -> None:
        super().__init__()
        self.done = done
        self.wrote = wrote


def evaluate(
    cfg: DictConfig, difficulty: str | None = None, command: str | None = None
) -> dict[str, Any] | None:
    """``racing-rl eval``: measure a run's checkpoint, or race several, on held-out tracks.

    One run (``run_dir=<dir>``): its checkpoint (or, with ``driver=scripted``, the
    scripted driver) drives one car per track. Several (``run_dir=[a,b,scripted]``): one
    car of each on every track at once, a race with a leaderboard per track and overall
    standings. Tracks, rules and sensors are the first run's; each car sees them through
    its own run's frame stack and frozen normalisation (``racing_rl.drivers``).

    Args:
        cfg: the eval config (``conf/eval.yaml``): ``run_dir``, ``checkpoint``,
            ``split`` or ``seeds``, ``driver``, ``laps``, ``max_steps``, ``record``,
            ``out_dir``, ``torch_threads`` (set for this process).
        difficulty: a ``conf/difficulty`` group option to race on instead of the run's
            own tracks and rules (``with_difficulty``); None keeps the run's.
        command: the ``racing-rl eval`` command line that ``cfg`` stands for, for
            ``metrics.json``'s ``settings``; None: the running Hydra job's (a config
            composed outside one, as a script's, has none).

    Returns:
        The metrics, also written to ``<out_dir>/metrics.json``, ``seconds`` among them:
        the time the measured races took from their start to their end, without the waits
        for a checkpoint (``follow``) or the game; recorded replays go to
        ``<out_dir>/replays/track_<seed>.npz``. In a game ``split`` is ``GAME``, and
        ``unreported_info`` names the optional ``info`` keys it did not send, whose figures
        are null (a race's ``LAP_FIGURES`` too, without ``progress``). None, with nothing
        written, if the ``render`` window was closed before a race ended.

    Raises:
        CheckpointError: if a run dir, its config or a checkpoint is missing or does not
            match the environment.
        ConfigError: if no run dir is given to take the tracks from, or ``check_runs``
            finds a setting out of range or a race of runs that observe differently.
        KeyboardInterrupt: on Ctrl-C (SIGTERM) before any race ended, with nothing
            written; ``EvalInterrupted`` after races had ended, before ``metrics.json``
            was written.
    """
    check_runs(cfg, difficulty)
    torch.set_num_threads(int(cfg.torch_threads))
    entries = run_entries(cfg.run_dir)
    runs = [Path(r).expanduser() for r in entries if r != SCRIPTED]
    given = len(entries)  # before driver=scripted adds its car
    racing = given > 1
    if racing and cfg.driver == SCRIPTED and SCRIPTED not in entries:
        entries.append(SCRIPTED)
    drives = not cfg.get("follow") and not (given == 1 and cfg.driver == SCRIPTED)
    if drives and cfg.checkpoint == FINAL:  # the model of a run's last completed leg
        for run in runs:
            if newer := newer_than_final(run):
                log.warning(
                    "%s: checkpoint=final is the model of the run's last completed leg; %s "
                    "is newer (checkpoint=latest evaluates it)",
                    run,
                    newer.path.name,
                )
    run_cfg = load_run_config(runs[0])
    run_cfg.backend = race_backend(cfg, run_cfg.backend, difficulty)
    seeds = (
        list(cfg.seeds)
        if cfg.get("seeds")
        else track_seeds(run_cfg.tracks[cfg.split], f"tracks.{cfg.split}")
    )
    split = None if cfg.get("seeds") else str(cfg.split)  # explicit seeds are no split's
    if run_cfg.backend.name == "roblox":  # the game's own track, whatever the seeds
        split = GAME
    # None: a Roblox game's own size, which the (first) checkpoint then pins.
    observation_size = backend_config(run_cfg.backend).observation_size
    follower = None
    if cfg.get("follow"):
        if racing or cfg.driver != "policy":  # an exported driver is of one checkpoint
            raise ConfigError(
                "follow=true drives one run's newest checkpoint with its policy: give one "
                f"run_dir and driver=policy (got {given} and driver={cfg.driver})."
            )
        from racing_rl.watch import CheckpointFollower

        follower = CheckpointFollower(
            runs[0],
            lambda path: load_policy_driver(
                runs[0], OmegaConf.merge(cfg, {"checkpoint": str(path)}), observation_size
            ),
        )
    drivers: list[Driver] = []
    size_from = "backend.observation_size"  # who wants that size, for the bridge's errors
    for entry in entries:
        if follower is not None:
            drivers.append(follower.driver())
            continue
        if entry == SCRIPTED or (not racing and cfg.driver == SCRIPTED):
            drivers.append(ScriptedDriver("scripted driver" if not racing else SCRIPTED))
            continue
        if cfg.driver in EXPORTED:  # the checkpoint exported, run outside SB3
            from racing_rl.export import load_exported_driver

            driver = load_exported_driver(Path(entry).expanduser(), cfg, cfg.driver)
        else:
            driver = load_policy_driver(Path(entry).expanduser(), cfg, observation_size)
        if observation_size is None:
            observation_size = driver.observation_size
            run_cfg.backend.observation_size = observation_size
            size_from = f"the checkpoint {driver.checkpoint}"
        drivers.append(driver)
    labels = unique_labels([d.label for d in drivers])
    for driver, label in zip(drivers, labels, strict=True):
        driver.label = label
    backend = run_cfg.backend
    max_steps = cfg.max_steps or int(run_cfg.validation.max_steps) * int(cfg.laps)
    episode = race_episode(backend, int(cfg.laps), int(max_steps), bool(cfg.rotate_grid))
    if episode.get("rotate_grid") and len(drivers) > 1:
        # Even only over consecutive seeds: the rotation goes by the seed's value.
        n = len(drivers)
        poles = np.bincount([np.argmin(grid_slots(n, s, True)) for s in seeds], minlength=n)
        if poles.max() - poles.min() > 1:
            log.warning(
                "the grid rotates by track seed, and these %d seeds put the cars on pole "
                "%s times (in run_dir's order): uneven. Consecutive seeds (a split, "
                "seeds=[a, a+1, ...]) share the slots out evenly",
                len(seeds),
                "/".join(str(n) for n in poles),
            )
    bridge = None
    if backend.name == "roblox":  # started here, stopped however the races end
        from racing_rl.bridge.training_bridge import TrainingBridge

        bridge = TrainingBridge.from_config(backend_config(backend))
        bridge.server.expected_by = size_from
        log.info(
            "the game chooses its tracks (the unmodified game has one map and ignores the "
            "seeds racing-rl suggests): each track_seed row is one episode in the game"
        )
    try:
        races, seconds = _run_rounds(cfg, backend, episode, drivers, seeds, split, follower, bridge)
    finally:
        if bridge is not None:
            bridge.close()
    if not races:  # the window was closed during the first race
        log.warning("no race ended before the window was closed: nothing measured or written")
        return None
    out = Path(cfg.out_dir) if cfg.get("out_dir") else Path(eval_dir(entries))
    names = _replay_names(races, len(seeds)) if cfg.record else []
    earlier = sorted((out / "replays").glob("track_*.npz"))
    if earlier and not cfg.record:  # kept: nothing asked to remove them, but not this eval's
        log.info(
            "%s holds %d replays of an earlier eval, not of this one (record=true records "
            "this eval's and replaces them)",
            out / "replays",
            len(earlier),
        )
    if lost := [r.track_seed for r in races if any(c.episode.interrupted for c in r.cars)]:
        log.warning(
            "the game lost a car mid-episode (a reconnection) on %d tracks: left out of the "
            "%s; seeds=[%s] measures them again",
            len(lost),
            "standings" if racing else "figures",
            ",".join(map(str, lost)),
        )
    metrics: dict[str, Any]
    if not racing:
        results = [race.cars[0].episode for race in races]
        metrics = summarize(results)
        metrics.update(
            driver=getattr(drivers[0], "checkpoint", drivers[0].label),
            split=split,
            difficulty=difficulty,
            seconds=seconds,
            tracks=[asdict(r) for r in results],
        )
        if bridge is not None:  # what the figures of the game's optional info lack
            metrics["unreported_info"] = unreported_info(results)
    else:
        unreported = (
            unreported_info([car.episode for race in races for car in race.cars])
            if bridge is not None
            else []
        )
        ranked = without_lap_figures if "progress" in unreported else list
        metrics = {
            "race": True,
            "drivers": [
                {"label": d.label, "run": d.run, "checkpoint": getattr(d, "checkpoint", "")}
                for d in drivers
            ],
            "split": split,
            "difficulty": difficulty,
            "laps": int(cfg.laps),
            "car_collisions": car_collisions(backend),
            "seconds": seconds,
            "standings": ranked(standings(races)),
            "tracks": [
                {
                    "track_seed": r.track_seed,
                    **({"grid": grid_order(r, episode)} if "rotate_grid" in episode else {}),
                    "leaderboard": ranked(leaderboard(r)),
                }
                for r in races
            ],
            "cars": {
                label: summarize([race.cars[d].episode for race in races])
                for d, label in enumerate(labels)
            },
        }
        if bridge is not None:
            metrics["unreported_info"] = unreported
    metrics["replays"] = [str(out / "replays" / name) for name in names]
    # What was measured, beyond the figures: enough to measure it again.
    metrics["settings"] = {
        "command": command or job_command("eval"),
        # follow=true drives the run's newest checkpoint, whatever checkpoint= says.
        "checkpoint": getattr(drivers[0], "checkpoint", "") if follower else str(cfg.checkpoint),
        "rounds": cfg.get("rounds"),
        **episode,
    }
    metrics["environment"] = environment_record()
    if bridge is not None:
        metrics["bridge"] = bridge.counters()
        log.info(
            "through the bridge: the game ticked at %.1f Hz, %.3f steps per tick (1: no "
            "tick went unread)",
            metrics["bridge"]["tick_hz"],
            metrics["bridge"]["steps_per_tick"],
        )
    _write_results(out, races, names, metrics)
    if cfg.record and (stale := [path for path in earlier if path.name not in names]):
        log.info("removed %d replays of an earlier eval from %s", len(stale), out / "replays")
    metrics["out_dir"] = str(out)
    return metrics


def _write_results(
    out: Path, races: Sequence[TrackRace], names: Sequence[str], metrics: dict[str, Any]
) -> None:
    """Write ``races``' replays as ``names`` (none: no replays) into ``out/replays``, as one
    set that replaces an earlier eval's, then ``metrics`` to ``out/metrics.json``, whole.

    Raises:
        EvalInterrupted: on Ctrl-C (SIGTERM), naming the replays if they were written.
    """
    replays = out / "replays"
    earlier = replays.stat().st_ino if replays.is_dir() else None
    try:
        if names:

            def write(tmp: Path) -> None:  # as one set: a Ctrl-C leaves the earlier eval's
                for race, name in zip(races, names, strict=True):
                    race.replay.save(tmp / name)

            replace_directory(replays, write)
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "metrics.json", metrics)
    except KeyboardInterrupt as interrupt:
        # Swapped in (another directory), even if the signal came as the earlier one went.
        wrote = bool(names) and replays.is_dir() and replays.stat().st_ino != earlier
        done = (
            f"its {len(names)} replays are in {replays}, its metrics.json is not"
            if wrote
            else "nothing written"
        )
        raise EvalInterrupted(f"while writing its results: {done}", wrote) from interrupt


def car_collisions(backend: DictConfig) -> bool:
    """Whether cars touch in ``backend``'s races: the simulator's ``rules.car_collisions``
    or a Roblox game's ``update_collisions``."""
    return bool(
        OmegaConf.select(backend, "rules.car_collisions", default=False)
        or backend.get("update_collisions", False)
    )


def grid_order(race: TrackRace, episode: dict[str, Any]) -> list[str]:
    """The labels of ``race``'s cars from pole backwards, as the simulator's grid placed
    them (``race_episode``'s ``episode`` with ``rotate_grid``: a grid on the simulator)."""
    slots = grid_slots(len(race.cars), race.track_seed, episode["rotate_grid"])
    return [race.cars[d].label for d in np.argsort(slots)]


def race_episode(
    backend: DictConfig, laps: int, max_steps: int, rotate_grid: bool
) -> dict[str, Any]:
    """The ``backend.episode`` overrides of eval's races.

    Cars start at rest: on the start line on one spot (``spawn="line"``), or, where they
    would touch (car collisions on, a Roblox game's ``update_collisions``) or see each
    other (``sensors.detect_cars``), two abreast on a grid (``spawn="grid"``), rotated per
    track with ``rotate_grid`` on the simulator (a game spawns its cars itself and is not
    sent it).

    Args:
        backend: the races' backend config.
        laps: laps of a race; max_steps: steps allowed per race.
        rotate_grid: eval's ``rotate_grid``.

    Returns:
        ``spawn``, ``laps``, ``max_steps`` and, on the simulator's grid, ``rotate_grid``.
    """
    detect = bool(OmegaConf.select(backend, "sensors.detect_cars", default=False))
    episode: dict[str, Any] = {
        "spawn": "grid" if car_collisions(backend) or detect else "line",
        "laps": laps,
        "max_steps": max_steps,
    }
    if episode["spawn"] == "grid" and backend.name != "roblox":
        episode["rotate_grid"] = rotate_grid
    return episode


def _replay_names(races: Sequence[TrackRace], n_tracks: int) -> list[str]:
    """The file name of each race's replay: ``track_<seed>.npz``, ``_round<k>`` for later
    rounds on the same ``n_tracks`` tracks, ``_<n>`` for a seed given twice."""
    named: Counter[str] = Counter()
    names = []
    for i, race in enumerate(races):
        name = f"track_{race.track_seed}"
        if i >= n_tracks:  # later rounds on the same tracks
            name += f"_round{i // n_tracks + 1}"
        named[name] += 1
        if named[name] > 1:  # a seed given twice (seeds=[5,5])
            name += f"_{named[name]}"
        names.append(f"{name}.npz")
    return names


def _run_rounds(
    cfg: DictConfig,
    backend: DictConfig,
    episode: dict[str, Any],
    drivers: list[Driver],
    seeds: Sequence[int],
    split: str | None,
    follower: CheckpointFollower | None,
    bridge: TrainingBridge | None,
) -> tuple[list[TrackRace], float]:
    """Race ``drivers`` on every track of ``seeds`` ``cfg.rounds`` times (0: until Ctrl-C),
    in a window if ``cfg.render`` asks for one.

    Args:
        cfg: the eval config.
        backend: the backend config the races run on.
        episode: overrides of ``backend.episode`` (spawn, laps, step limit).
        drivers: one car each; with ``follower``, its newest checkpoint's driver replaces
            ``drivers[0]`` before every race.
        seeds: the tracks.
        split: the ``cfg.tracks`` split ``seeds`` come from, for the replays' ``meta``;
            None for seeds given explicitly, ``GAME`` in a game.
        follower: watches a run's newest checkpoint (``follow=true``), or None.
        bridge: Roblox only: the running bridge; None on the simulator.

    Returns:
        Every completed race, in order (those before a Ctrl-C, if one came after the first);
        with ``follower``, those of the last checkpoint that raced, whose driver is then
        ``drivers[0]`` (the metrics describe one policy). And the seconds those races took
        [s]: from their first step to their end (``_RaceClock``), without the waits for a
        checkpoint or for the game to connect and spawn the cars.

    Raises:
        ConfigError: for an invalid ``render``.
        EvalInterrupted: on Ctrl-C (SIGTERM) after races had ended, where the eval ends
            by itself (``rounds`` not 0, no window, no ``follow``): a few races would be
            biased figures.
    """
    envs = make_parallel_envs(
        backend,
        n_races=len(seeds),
        cars_per_race=len(drivers),
        track_seeds=[[seed] for seed in seeds],
        episode=episode,
        bridge=bridge,
    )
    meta = {"split": split, "laps": int(cfg.laps), "checkpoint": cfg.checkpoint}
    rounds = cfg.get("rounds")
    rounds = (0 if follower else 1) if rounds is None else int(rounds)
    if rounds != 1 and bridge is None and follower is None:
        log.warning(
            "rounds=%d on the simulator races the same races every round (deterministic "
            "drivers, the same tracks and start): the figures are one round's, each race "
            "counted once per round. A game (backend=roblox) or follow=true races new ones.",
            rounds,
        )
    window = None
    if cfg.get("render") is not None:  # human (check_runs)
        from racing_rl.ui.render import window_size
        from racing_rl.ui.window import RaceWindow

        window = RaceWindow(
            cfg.fps,
            window_size(cfg.size, cfg.fps),
            "track",
            "Record the race instead (record=true, then racing-rl replay path=<replay .npz> "
            "video=race.mp4), or run where a display is.",
        )
    races: list[Any] = []
    driven_by: list[Driver] = []  # follow=true: the checkpoint's driver of each race
    took: list[float] = []  # each race's racing time [s]: a round's, shared out over its races
    clock = _RaceClock()
    try:
        while rounds == 0 or len(races) < rounds * len(seeds):
            if window is None and follower is None:
                round_number = len(races) // len(seeds) + 1
                with _progress(envs, episode, round_number if rounds != 1 else None) as bar:
                    finished = run_races(
                        envs, drivers, bool(cfg.record), meta, on_step=clock.timing(bar)
                    )
            else:  # one track at a time: the window shows it, a newer checkpoint drives the next
                if follower is not None:  # the replay names the checkpoint that drove it
                    meta = {**meta, "checkpoint": getattr(drivers[0], "checkpoint", "")}
                finished = _race_one_track(
                    envs[len(races) % len(seeds)], drivers, cfg, meta, window, clock
                )
                if window is not None and window.closed:  # its race is cut short: not kept
                    log.info("window closed after %d races; metrics cover those", len(races))
                    break
            races.extend(finished)
            took.extend(clock.shares(len(finished)))
            if follower is not None:  # what raced is recorded first: a Ctrl-C may come next
                driven_by.extend(drivers[0] for _ in finished)
                # Without a window a round of the same checkpoint would race the same races.
                more = rounds == 0 or len(races) < rounds * len(seeds)
                round_done = not len(races) % len(seeds)
                driver = follower.driver(newer=window is None and round_done and more)
                if driver is None:  # the run is not training: no newer checkpoint comes
                    break
                drivers[0] = driver
            if rounds != 1 and len(races) % len(seeds) == 0:
                episodes = [car.episode for r in races[-len(seeds) :] for car in r.cars]
                log.info("round %d: %s", len(races) // len(seeds), _round_figure(episodes))
    except KeyboardInterrupt as interrupt:
        ended = getattr(interrupt, "races", [])  # RacesInterrupted: the round's ended races
        races.extend(ended)
        took.extend(clock.shares(len(ended)))
        if follower is not None:
            driven_by.extend(drivers[0] for _ in ended)
        if not races:
            raise
        if rounds != 0 and window is None and follower is None:
            # An eval that ends by itself, cut short: its metrics would replace a whole
            # eval's with a biased few (the races still running are the longest ones).
            raise EvalInterrupted(
                f"after {len(races)} of its {rounds * len(seeds)} races, which are not kept "
                "(rounds=0 races until Ctrl-C and keeps the races that ended): nothing written"
            ) from interrupt
        if ended:
            log.info(
                "a round was stopped with %d of its %d tracks' races ended: they count, and "
                "races that end sooner are more often crashes",
                len(ended),
                len(seeds),
            )
        log.info("stopped after %d races; metrics cover those", len(races))
    finally:
        for env in envs:
            env.close()
        if window is not None:
            window.close()
            log.info("render: %d frames drawn", window.frames)
    if follower is not None and races:  # the metrics are of one checkpoint: the last one's
        drivers[0] = driven_by[len(races) - 1]
        last = [race for race, d in zip(races, driven_by, strict=True) if d is drivers[0]]
        if len(last) < len(races):
            log.info(
                "metrics cover the %d races of the last checkpoint (%s) of the %d raced",
                len(last),
                getattr(drivers[0], "checkpoint", drivers[0].label),
                len(races),
            )
        took = [t for t, d in zip(took, driven_by, strict=True) if d is drivers[0]]
        races = last
    return races, sum(took)


def _round_figure(episodes: Sequence[EpisodeResult]) -> str:
    """A round's figure for its log line: ``lap completion 95%``; in a game that sends no
    lap info (``unreported_info``), which counts no laps, ``mean return -54.7``."""
    if "progress" in unreported_info(episodes):
        returns = [e.episode_return for e in episodes if not e.interrupted]
        return f"mean return {np.mean(returns):.1f} (the game sends no lap info to count laps)"
    return f"lap completion {100 * np.mean([e.finished for e in episodes]):.0f}%"


class _RaceClock:
    """The wall time of races from their first step to their end [s]: not the resets
    before it (in a game, the wait for it to connect and spawn the cars), nor a wait for a
    checkpoint between races. ``timing`` wraps the ``on_step`` of one ``run_races`` call,
    which calls it first after the resets; ``shares`` reads the clock after the call.
    """

    def __init__(self) -> None:
        self._started: float | None = None

    def timing(self, on_step: Callable[[], bool | None] | None) -> Callable[[], bool | None]:
        """``on_step`` (None: nothing) for the next ``run_races`` call, that also starts
        the clock at its first call."""
        self._started = None

        def timed() -> bool | None:
            if self._started is None:
                self._started = time.perf_counter()
            return on_step() if on_step is not None else None

        return timed

    def shares(self, races: int) -> list[float]:
        """The seconds since the call's first step, shared out over the ``races`` it ended
        (one share each; none if it ended none) [s]."""
        if not races:
            return []
        seconds = 0.0 if self._started is None else time.perf_counter() - self._started
        return [seconds / races] * races


@contextmanager
def _progress(
    envs: Sequence[Any], episode: dict[str, Any], round_number: int | None
) -> Iterator[Callable[[], None]]:
    """A bar on stderr (none off a TTY) while ``envs`` race: cars done out of all cars, and
    the step count against ``episode["max_steps"]``; yields ``run_races``' ``on_step``.

    A game's races run at its tick rate (a 3-lap race, a minute or more), the simulator's
    100 hard tracks for tens of seconds: the bar says the races are going on.
    """
    from tqdm import tqdm

    cars = sum(len(env.possible_agents) for env in envs)
    desc = "races" if round_number is None else f"round {round_number}"
    max_steps = int(episode["max_steps"])
    # No rate or ETA: cars finish in bursts, near the end of the races.
    layout = "{l_bar}{bar}| {n_fmt}/{total_fmt} cars done [{elapsed}{postfix}]"
    with tqdm(total=cars, desc=desc, bar_format=layout, disable=None, leave=False) as bar:
        steps = -1  # on_step comes once before the first step

        def on_step() -> None:
            nonlocal steps
            steps += 1
            bar.set_postfix_str(f"step {steps}/{max_steps}", refresh=False)
            bar.update(cars - sum(len(env.agents) for env in envs) - bar.n)

        yield on_step


def _race_one_track(
    env: Any,
    drivers: Sequence[Any],
    cfg: DictConfig,
    meta: dict[str, Any],
    window: Any,
    clock: _RaceClock,
) -> list[Any]:
    """``run_races`` on one track, drawn in ``window`` (a ``racing_rl.ui.window.RaceWindow``)
    if there is one, timed by ``clock``."""
    on_step = None
    if window is not None:
        labels = tuple(d.label for d in drivers)
        caption = f"racing-rl eval · {', '.join(labels)} · esc quits"
        on_step = window.on_step(env, labels, caption)
    return run_races(
        [env], drivers, record=bool(cfg.record), meta=meta, on_step=clock.timing(on_step)
    )


def unique_labels(labels: Sequence[str]) -> list[str]:
    """``labels`` with repeats numbered (``ppo``, ``ppo#2``), so each car has its own name;
    a number is skipped where another label already has that name (``ppo#2`` given)."""
    taken = set(labels)
    unique: list[str] = []
    for label in labels:
        name, n = label, 1
        while name in unique or (n > 1 and name in taken):
            n += 1
            name = f"{label}#{n}"
        unique.append(name)
    return unique


def race_backend(cfg: DictConfig, backend: DictConfig, difficulty: str | None) -> DictConfig:
    """The backend config that ``racing-rl eval`` races on: the first run's ``backend``
    at ``difficulty``'s level (None: the run's own) with the command line's ``backend.*``
    (``+backend.rules.car_collisions=true``), or another backend given whole
    (``backend=roblox``). The run's own backend chosen whole (``backend=pygame`` of a
    simulator run) adds what differs from that option's defaults (``changed_settings``):
    its defaults would undo the run's sensors, car, tracks and rules.

    Raises:
        ConfigError: for a ``backend.episode`` setting given on the command line: eval's
            races set the episode (``race_episode``), which would ignore it.
    """
    given = cfg.get("backend")
    if given and given.get("name", backend.name) != backend.name:
        return given
    if given and "name" in given:
        given = changed_settings(given, default_backend(backend.name))
    if given and given.get("episode"):
        key, value = next(iter(given.episode.items()))
        ours = ("laps", "max_steps", "rotate_grid")
        instead = f"give {key}={value}" if key in ours else "leave it out"
        raise ConfigError(
            f"backend.episode.{key}={value} would be ignored: eval's races set their episodes "
            f"themselves (a standing start, laps=, max_steps=, rotate_grid=); {instead}."
        )
    if difficulty is not None:
        backend = with_difficulty(backend, difficulty)
    if given:  # the difficulty's keys again, and any given on the command line
        backend = OmegaConf.merge(backend, given)
    return backend


def check_runs(cfg: DictConfig, difficulty: str | None = None) -> None:
    """Check what ``racing-rl eval`` will do and load, before anything is written: the
    driver, ``laps``, ``max_steps`` and ``rounds``, every run's config and (unless the
    scripted driver or ``follow`` drives) its checkpoint, of the run's algorithm and
    observations (``check_policy_model``: from what the model file records), the backend
    the races run on (``race_backend`` at ``difficulty``), and that a race's runs observe
    alike.

    Raises:
        CheckpointError: if a run's config or checkpoint is missing or damaged, or the
            checkpoint is of another algorithm or takes other observations than the run
            (``checkpoint=`` another run's model).
        ExportError: with ``driver=luau|onnx``, if export cannot translate a run's policy
            (``racing_rl.export.load_spec``), or ``onnx`` is not installed.
        ConfigError: if ``run_dir`` names no run (``scripted`` alone), ``cfg.driver``
            is not a known driver, ``seeds`` empty, ``split``
            not one of the first run's track ranges, more tracks than ``LIMITS["tracks"]``
            (the training range), ``laps``, ``max_steps``, ``rounds``, ``torch_threads``
            or a window's ``render``, ``size`` or ``fps`` out of range, the race's backend settings
            are invalid (a misspelt ``+backend.*`` key), a window is asked of races in a
            game, a race's runs observe differently, or a race is given a checkpoint path.
    """
    check_eval_config(cfg, ("policy", SCRIPTED, *EXPORTED))
    entries = run_entries(cfg.run_dir)
    checkpoint = str(cfg.checkpoint)
    runs = [entry for entry in entries if entry != SCRIPTED]
    if not runs:
        raise ConfigError(
            f"run_dir=[{','.join(entries)}] names no run directory; the tracks and rules "
            "come from the first run's config. Give one: run_dir=<run dir> driver=scripted "
            "for the scripted driver alone, run_dir=[<run dir>,scripted] to race it."
        )
    if len(runs) > 1 and (Path(checkpoint).name != checkpoint or checkpoint.endswith(".zip")):
        raise ConfigError(
            f"checkpoint={checkpoint} is a path, and a race has {len(runs)} runs: every car "
            "would drive that one model under its own run's name. In a race give "
            "checkpoint=final|best|latest or a checkpoint's name under each run's "
            "checkpoints/ (e.g. ppo_5120_steps)."
        )
    backends: dict[str, DictConfig] = {}  # run dir -> the backend it was trained on
    models: dict[Path, tuple[DictConfig, Path]] = {}  # run -> its config, the model it drives
    observation_size = None  # the race's numbers a frame; None: a game's, the first model's
    for entry in entries:
        if entry == SCRIPTED:
            continue
        run = Path(entry).expanduser()
        run_cfg = load_run_config(run)
        if not backends:  # the first run's tracks and rules are raced
            if not cfg.get("seeds"):
                _check_split(str(cfg.split), run_cfg.tracks)
            race = race_backend(cfg, run_cfg.backend, difficulty)
            observation_size = backend_config(race).observation_size
            if cfg.get("render") is not None and race.name != "pygame":
                # The window draws the simulator's world: a game's race has none (an
                # AttributeError once the game had connected).
                raise ConfigError(
                    f"render={cfg.render} draws races of the built-in simulator, and these "
                    f"race in a game (backend={race.name}): watch them in the game and leave "
                    "render out, or race on the simulator (backend=pygame)."
                )
        backends[entry] = run_cfg.backend
        if not cfg.get("follow") and not (len(entries) == 1 and cfg.driver == SCRIPTED):
            models[run] = (run_cfg, resolve_model(run, checkpoint))
    if len(entries) > 1:
        _check_observe_alike(backends)
    for run, (run_cfg, model) in models.items():  # as evaluate's drivers will load them
        observation_size = check_policy_model(run, run_cfg, model, observation_size)
    if cfg.driver in EXPORTED:  # what export refuses (CrossQ's policy, a GELU), said first
        from racing_rl.export import load_spec, writer

        writer(cfg.driver)
        for run in models:
            load_spec(run, checkpoint, str(cfg.device), bool(cfg.get("trust_pickles", False)))


def _check_split(split: str, tracks: DictConfig) -> None:
    """``split`` names one of the run's track ranges (``tracks.<split>: [start, stop)``).

    Raises:
        ConfigError: naming the ranges the run has.
    """
    ranges = [
        key
        for key, value in tracks.items()
        if OmegaConf.is_list(value) and len(value) == 2 and all(isinstance(v, int) for v in value)
    ]
    if split not in ranges:
        raise ConfigError(
            f"Invalid config: split={split!r}; must be one of the run's track ranges: "
            f"{', '.join(ranges)} (or give seeds=[...])."
        )
    start, stop = tracks[split]
    if stop - start > LIMITS["tracks"]:  # the training range: 100,000 tracks
        raise ConfigError(
            f"Invalid config: split={split} has {stop - start:,} tracks ([{start}, {stop})); eval "
            f"races them all at once, one environment each, at most {LIMITS['tracks']:,}: give "
            f"seeds=[...] instead, e.g. seeds=[{start},{start + 1},{start + 2}]."
        )


def _check_observe_alike(backends: dict[str, DictConfig]) -> None:
    """Check that the runs of a race observe alike: every car races on the first run's
    backend, sensors and car, so a run trained with other ones cannot drive there.

    On the simulator every setting of ``backend.sensors`` and ``backend.car`` must agree
    (the field of view, the range and the car's top speed scale what a policy reads,
    even where the observation's size is the same); a run trained in a game is known by
    its observation size alone (the game's, as its run.json records it).

    Args:
        backends: run dir → the backend config the run was trained on.

    Raises:
        ConfigError: naming the first setting on which two runs differ.
    """
    configs = {run: backend_config(backend) for run, backend in backends.items()}
    first, *others = configs
    for other in others:
        pair = (configs[first], configs[other])
        if all(isinstance(config, RaceConfig) for config in pair):
            theirs, ours = (_observation_settings(config) for config in pair)
        else:  # a game's run is known by its observation size alone
            sizes = [
                config.observation_size  # None: the game's own, recorded in its run.json
                or trained_game(Path(run).expanduser()).get("observation_size")
                for run, config in ((first, pair[0]), (other, pair[1]))
            ]
            if None in sizes:
                continue  # a game's own size, not recorded: known once it connects
            theirs, ours = ({"observation_size": size} for size in sizes)
        differing = sorted(
            key for key in theirs.keys() | ours.keys() if theirs.get(key) != ours.get(key)
        )
        if not differing:
            continue
        key = differing[0]
        raise ConfigError(
            f"These runs observe differently and cannot race each other: {first} was "
            f"trained with backend.{key}={theirs.get(key)}, {other} with "
            f"backend.{key}={ours.get(key)}"
            f"{f' (and {len(differing) - 1} more setting(s))' if len(differing) > 1 else ''}. "
            "A race runs every car on the first run's backend, sensors and car, so its runs "
            "must have been trained with the same backend.sensors and backend.car. Evaluate "
            f"them separately on the same tracks (racing-rl eval run_dir={first} seeds=[...], "
            f"then run_dir={other} seeds=[...]), or retrain one with the other's settings."
        )


def _observation_settings(config: RaceConfig) -> dict[str, Any]:
    """What shapes a simulator run's observations: its sensors' and car's settings, as
    ``{"sensors.n_rays": 10, ...}``."""
    return {
        f"{group}.{key}": value
        for group in ("sensors", "car")
        for key, value in asdict(getattr(config, group)).items()
    }

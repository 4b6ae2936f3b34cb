"""Measuring drivers on held-out tracks: one car per track, standing start, one lap.

``evaluation_env`` builds the VecEnv (the run's own wrapper stack, VecNormalize frozen),
``run_episodes`` drives any SB3-style policy (or the scripted driver, via
``ScriptedPolicy``) for one episode per track, and ``summarize`` turns the episodes into
the ``eval/`` metrics. ``main`` is the ``racing-rl eval`` Hydra app.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from racing_rl import config_dir
from racing_rl.config import backend_config, default_backend, eval_dir, hydra_main
from racing_rl.envs.vec_env import SimVecEnv
from racing_rl.errors import CheckpointError, ConfigError, RacingRLError
from racing_rl.sim.driver import PurePursuitDriver
from racing_rl.vec import (
    bridge_of,
    make_env,
    make_parallel_envs,
    wrap_vec_env,
)

log = logging.getLogger(__name__)


class Policy(Protocol):
    """What ``run_episodes`` needs: SB3's ``predict`` signature."""

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, Any]: ...


@dataclass(frozen=True)
class EpisodeResult:
    """One evaluated episode of one car.

    Attributes:
        track_seed: the track.
        finished: completed the lap(s) asked for.
        crashed: the episode terminated in a crash.
        lap_time: time of the first lap [s], NaN if none was completed.
        progress: progress along the track at the end [laps].
        mean_speed: path length / time [m/s].
        episode_return: sum of raw (unnormalised) rewards.
        length: steps.
    """

    track_seed: int
    finished: bool
    crashed: bool
    lap_time: float
    progress: float
    mean_speed: float
    episode_return: float
    length: int


def track_seeds(split: Sequence[int]) -> list[int]:
    """The seeds of a ``[start, stop)`` split from ``cfg.tracks``."""
    start, stop = (int(v) for v in split)
    return list(range(start, stop))


def evaluation_env(
    cfg: DictConfig, seeds: Sequence[int], train_env: VecEnv | None = None, agents: int = 1
) -> VecEnv:
    """One virtual environment per track seed (``agents`` cars each), with the run's
    wrapper stack.

    Cars start at rest on the start line and are truncated (``finished``) after one lap
    or ``cfg.validation.max_steps`` steps. VecNormalize, if the run uses it, is frozen
    (``training=False``) and leaves rewards raw; its statistics come from ``train_env``
    (or must be loaded by the caller).

    Args:
        cfg: the run's composed config.
        seeds: track seeds, one virtual environment each.
        train_env: the training VecEnv whose normalisation statistics to copy.
        agents: cars per environment.
    """
    base = make_env(
        cfg.backend,
        n_venvs=len(seeds),
        agents_per_venv=agents,
        track_seeds=[[seed] for seed in seeds],
        episode={"spawn": "grid", "laps": 1, "max_steps": cfg.validation.max_steps},
        bridge=bridge_of(train_env) if train_env is not None else None,
    )
    venv = wrap_vec_env(base, cfg.wrappers, gamma=cfg.algo.model.get("gamma", 0.99))
    if isinstance(venv, VecNormalize):
        venv.training = False
        venv.norm_reward = False
        if train_env is not None:
            venv.obs_rms = train_env.obs_rms.copy()
    return venv


class ScriptedPolicy:
    """The pure-pursuit driver behind SB3's ``predict`` interface, for ``run_episodes``.

    It reads the simulator state of each race of the VecEnv, so it only drives the
    built-in simulator backend; observations are ignored.
    """

    def __init__(self, venv: VecEnv) -> None:
        base = venv.unwrapped
        if not isinstance(base, SimVecEnv):
            raise ConfigError("The scripted driver needs a racing-rl simulator VecEnv.")
        self._races = base.races
        self._driver = PurePursuitDriver()

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, None]:
        worlds = self._races.worlds
        assert worlds is not None, "reset the VecEnv first"
        actions = [self._driver.act(worlds.world(k)) for k in range(self._races.n_races)]
        return np.concatenate(actions).astype(np.float32), None


def run_episodes(policy: Policy, venv: VecEnv, deterministic: bool = True) -> list[EpisodeResult]:
    """Run one episode in every slot of ``venv`` and report each.

    Slots that finish early keep stepping (their results are already taken) until the
    last slot is done, as SB3's ``evaluate_policy`` does.

    Args:
        policy: anything with SB3's ``predict`` (recurrent policies included).
        venv: an evaluation VecEnv, e.g. from ``evaluation_env``.
        deterministic: use the policy's deterministic action.

    Returns:
        One result per slot, in slot order.
    """
    n = venv.num_envs
    observation = venv.reset()
    seeds = [info.get("track_seed", -1) for info in venv.unwrapped.reset_infos]
    state = None
    episode_start = np.ones(n, dtype=bool)
    returns = np.zeros(n)
    lengths = np.zeros(n, dtype=np.int64)
    results: list[EpisodeResult | None] = [None] * n
    while any(r is None for r in results):
        actions, state = policy.predict(
            observation, state=state, episode_start=episode_start, deterministic=deterministic
        )
        observation, rewards, dones, infos = venv.step(actions)
        raw = venv.get_original_reward() if isinstance(venv, VecNormalize) else rewards
        pending = np.array([r is None for r in results])
        returns += np.where(pending, raw, 0.0)
        lengths += pending
        for k in np.flatnonzero(dones & pending):
            info = infos[k]
            results[k] = EpisodeResult(
                track_seed=int(seeds[k]),
                finished=bool(info.get("finished", False)),
                crashed=bool(info.get("crashed", False)),
                lap_time=float(info["lap_time"]) if info.get("finished") else math.nan,
                progress=float(info.get("progress", math.nan)),
                mean_speed=float(info.get("mean_speed", math.nan)),
                episode_return=float(returns[k]),
                length=int(lengths[k]),
            )
        episode_start = dones
    return [r for r in results if r is not None]


def summarize(results: Sequence[EpisodeResult]) -> dict[str, float]:
    """The ``eval/`` metrics of a set of episodes.

    Returns:
        ``lap_completion_rate``, ``mean_lap_time_s`` and ``best_lap_time_s`` (over
        completed laps; NaN if none), ``mean_progress``, ``crash_rate``,
        ``mean_speed_mps``, ``mean_return``, ``episodes``.
    """
    laps = [r.lap_time for r in results if r.finished]
    return {
        "episodes": len(results),
        "lap_completion_rate": float(np.mean([r.finished for r in results])),
        "mean_lap_time_s": float(np.mean(laps)) if laps else math.nan,
        "best_lap_time_s": float(np.min(laps)) if laps else math.nan,
        "mean_progress": float(np.mean([r.progress for r in results])),
        "crash_rate": float(np.mean([r.crashed for r in results])),
        "mean_speed_mps": float(np.mean([r.mean_speed for r in results])),
        "mean_return": float(np.mean([r.episode_return for r in results])),
    }


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """A plain-text table of ``rows`` (dicts) with the given columns."""

    def cell(value: Any) -> str:
        return f"{value:.3f}" if isinstance(value, float) else str(value)

    body = [[cell(row[c]) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in body)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.rjust(w) for v, w in zip(r, widths, strict=True)) for r in body]
    return "\n".join(lines)


def load_run_config(run_dir: Path) -> DictConfig:
    """The config a run was trained with (``<run_dir>/.hydra/config.yaml``), checked.

    Raises:
        CheckpointError: if ``run_dir`` is not a run directory, or its config is not a
            readable, resolvable mapping of valid settings (one line naming the cause).
    """
    from racing_rl.checks import check_train_config

    saved = run_dir / ".hydra" / "config.yaml"
    if not saved.is_file():
        raise CheckpointError(
            f"{run_dir} is not a racing-rl run directory (no .hydra/config.yaml). "
            "Pass a directory written by racing-rl train."
        )
    try:
        cfg = OmegaConf.load(saved)
        if not isinstance(cfg, DictConfig) or not cfg:
            raise ValueError(f"it holds {type(cfg).__name__ if cfg else 'nothing'}, not settings")
        OmegaConf.to_container(cfg, resolve=True)  # every interpolation resolves
        check_train_config(cfg, device=False)
    except Exception as err:
        why = (str(err).strip().splitlines() or [""])[0]
        raise CheckpointError(
            f"{saved} is not a valid run config ({type(err).__name__}: {why}). It is written "
            "by racing-rl train; restore it, or pass the directory of a complete run."
        ) from err
    return cfg


#: The run-dir entry (and ``driver`` value) that stands for the scripted baseline driver.
SCRIPTED = "scripted"
#: ``driver`` values that export the checkpoint and drive with the exported file: a Luau
#: module in a Luau VM, an ONNX model in onnxruntime (``racing_rl.export``).
EXPORTED = ("luau", "onnx")


def evaluate(cfg: DictConfig, difficulty: str | None = None) -> dict[str, Any]:
    """``racing-rl eval``: measure a run's checkpoint, or race several, on held-out tracks.

    One run (``run_dir=<dir>``): its checkpoint (or, with ``driver=scripted``, the
    scripted driver) drives one car per track. Several (``run_dir=[a,b,scripted]``): one
    car of each on every track at once, a race with a leaderboard per track and overall
    standings. Tracks, rules and sensors are the first run's; each car sees them through
    its own run's frame stack and frozen normalisation (``racing_rl.drivers``).

    Args:
        cfg: the eval config (``conf/eval.yaml``): ``run_dir``, ``checkpoint``,
            ``split`` or ``seeds``, ``driver``, ``laps``, ``max_steps``, ``record``,
            ``out_dir``.
        difficulty: a ``conf/difficulty`` group option to race on instead of the run's
            own tracks and rules (``with_difficulty``); None keeps the run's.

    Returns:
        The metrics, also written to ``<out_dir>/metrics.json``; recorded replays go to
        ``<out_dir>/replays/track_<seed>.npz``.

    Raises:
        CheckpointError: if a run dir, its config or a checkpoint is missing or does not
            match the environment.
        ConfigError: if no run dir is given to take the tracks from.
    """
    from racing_rl.drivers import Driver, ScriptedDriver
    from racing_rl.races import leaderboard, run_races, standings

    check_runs(cfg)
    entries = [cfg.run_dir] if isinstance(cfg.run_dir, str) else [str(r) for r in cfg.run_dir]
    runs = [Path(r).expanduser() for r in entries if r != SCRIPTED]
    if not runs:
        raise ConfigError(
            f"run_dir={entries} names no run directory; the tracks and rules come from the "
            "first run's config. Give at least one run dir, e.g. run_dir=[<run dir>,scripted]."
        )
    racing = len(entries) > 1
    if racing and cfg.driver == SCRIPTED and SCRIPTED not in entries:
        entries.append(SCRIPTED)
    run_cfg = load_run_config(runs[0])
    if cfg.get("backend") and cfg.backend.get("name", run_cfg.backend.name) != run_cfg.backend.name:
        run_cfg.backend = cfg.backend  # another backend: backend=roblox
    else:
        if difficulty is not None:
            run_cfg.backend = with_difficulty(run_cfg.backend, difficulty)
        if cfg.get("backend"):  # the difficulty's keys again, and any given on the command line
            run_cfg.backend = OmegaConf.merge(run_cfg.backend, cfg.backend)
    seeds = list(cfg.seeds) if cfg.get("seeds") else track_seeds(run_cfg.tracks[cfg.split])
    started = time.perf_counter()
    # None: a Roblox game's own size, which the (first) checkpoint then pins.
    observation_size = backend_config(run_cfg.backend).observation_size
    follower = None
    if cfg.get("follow"):
        if racing or cfg.driver == SCRIPTED:
            raise ConfigError(
                "follow=true watches one run's newest checkpoint: give one run_dir and "
                "driver=policy."
            )
        from racing_rl.watch import CheckpointFollower

        follower = CheckpointFollower(
            runs[0],
            lambda path: load_policy_driver(
                runs[0], OmegaConf.merge(cfg, {"checkpoint": str(path)}), observation_size
            ),
        )
    drivers: list[Driver] = []
    for entry in entries:
        if follower is not None:
            drivers.append(follower.driver())
            continue
        if entry == SCRIPTED or (not racing and cfg.driver == SCRIPTED):
            drivers.append(ScriptedDriver("scripted driver" if not racing else SCRIPTED))
        elif cfg.driver in EXPORTED:  # the checkpoint exported, run outside SB3
            from racing_rl.export import load_exported_driver

            drivers.append(load_exported_driver(Path(entry).expanduser(), cfg, cfg.driver))
        else:
            driver = load_policy_driver(Path(entry).expanduser(), cfg, observation_size)
            if observation_size is None:
                space = driver.model.observation_space.shape
                observation_size = space[0] // driver.frame_stack
                run_cfg.backend.observation_size = observation_size
            drivers.append(driver)
    labels = unique_labels([d.label for d in drivers])
    for driver, label in zip(drivers, labels, strict=True):
        driver.label = label
    backend = run_cfg.backend
    collisions = bool(
        OmegaConf.select(backend, "rules.car_collisions", default=False)
        or backend.get("update_collisions", False)  # a Roblox game's collisions
    )
    detect = bool(OmegaConf.select(backend, "sensors.detect_cars", default=False))
    max_steps = cfg.max_steps or int(run_cfg.validation.max_steps) * int(cfg.laps)
    episode = {
        "spawn": "grid" if collisions or detect else "line",
        "laps": int(cfg.laps),
        "max_steps": int(max_steps),
    }
    envs = make_parallel_envs(
        run_cfg.backend,
        n_venvs=len(seeds),
        agents_per_venv=len(drivers),
        track_seeds=[[seed] for seed in seeds],
        episode=episode,
    )
    meta = {"split": cfg.split, "laps": int(cfg.laps), "checkpoint": cfg.checkpoint}
    rounds = cfg.get("rounds")
    rounds = (0 if follower else 1) if rounds is None else int(rounds)
    if rounds < 0:
        raise ConfigError(f"Invalid config: rounds={rounds}; must be >= 1, or 0 for until Ctrl-C.")
    window = None
    if cfg.get("render") is not None:
        if cfg.render != "human":
            raise ConfigError(f"Invalid config: render={cfg.render}; must be human or null.")
        from racing_rl.ui.window import RaceWindow

        window = RaceWindow(float(cfg.fps), (int(cfg.size[0]), int(cfg.size[1])))
    races: list[Any] = []
    try:
        while rounds == 0 or len(races) < rounds * len(seeds):
            if window is None and follower is None:
                done = run_races(envs, drivers, record=bool(cfg.record), meta=meta)
            else:  # one track at a time: the window shows it, a newer checkpoint drives the next
                done = _race_one_track(envs[len(races) % len(seeds)], drivers, cfg, meta, window)
                if follower is not None:
                    drivers[0] = follower.driver()
                if window is not None and window.closed:
                    log.info("window closed after %d races; metrics cover those", len(races))
                    break
            races.extend(done)
            if rounds != 1 and len(races) % len(seeds) == 0:
                laps = np.mean(
                    [car.episode.finished for r in races[-len(seeds) :] for car in r.cars]
                )
                log.info("round %d: lap completion %.0f%%", len(races) // len(seeds), 100 * laps)
    except KeyboardInterrupt:
        if not races:
            raise
        log.info("stopped after %d races; metrics cover those", len(races))
    finally:
        for env in envs:
            env.close()
        if window is not None:
            window.close()
            log.info("render: %d frames drawn", window.frames)
    seconds = time.perf_counter() - started
    out = Path(cfg.out_dir) if cfg.get("out_dir") else Path(eval_dir(entries))
    replays = []
    if cfg.record:
        for i, race in enumerate(races):
            name = f"track_{race.track_seed}"
            if i >= len(seeds):  # later rounds on the same tracks
                name += f"_round{i // len(seeds) + 1}"
            replays.append(str(race.replay.save(out / "replays" / f"{name}.npz")))
    metrics: dict[str, Any]
    if not racing:
        results = [race.cars[0].episode for race in races]
        metrics = summarize(results)
        metrics.update(
            driver=getattr(drivers[0], "checkpoint", drivers[0].label),
            split=cfg.split,
            difficulty=difficulty,
            seconds=seconds,
            tracks=[
                {**asdict(r), "lap_times": race.cars[0].lap_times}
                for r, race in zip(results, races, strict=True)
            ],
        )
    else:
        metrics = {
            "race": True,
            "drivers": [{"label": d.label, "run": d.run} for d in drivers],
            "split": cfg.split,
            "laps": int(cfg.laps),
            "car_collisions": collisions,
            "seconds": seconds,
            "standings": standings(races),
            "tracks": [{"track_seed": r.track_seed, "leaderboard": leaderboard(r)} for r in races],
            "cars": {
                label: summarize([race.cars[d].episode for race in races])
                for d, label in enumerate(labels)
            },
        }
    metrics["replays"] = replays
    bridge = getattr(envs[0].unwrapped, "bridge", None)  # the Roblox backend's
    if bridge is not None:
        metrics["bridge"] = bridge.counters()
        log.info(
            "through the bridge: the game ticked at %.1f Hz, %.3f steps per tick (1: no "
            "tick went unread)",
            metrics["bridge"]["tick_hz"],
            metrics["bridge"]["steps_per_tick"],
        )
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    metrics["out_dir"] = str(out)
    return metrics


def _race_one_track(
    env: Any, drivers: Sequence[Any], cfg: DictConfig, meta: dict[str, Any], window: Any
) -> list[Any]:
    """``run_races`` on one track, drawn in ``window`` (a ``racing_rl.ui.window.RaceWindow``)
    if there is one."""
    from racing_rl.races import run_races

    on_step = None
    if window is not None:
        labels = tuple(d.label for d in drivers)
        caption = f"racing-rl eval · {', '.join(labels)} · esc quits"
        on_step = window.on_step(env, labels, caption)
    return run_races([env], drivers, record=bool(cfg.record), meta=meta, on_step=on_step)


def with_difficulty(backend: DictConfig, difficulty: str) -> DictConfig:
    """A run's simulator settings with the tracks and rules of a difficulty level.

    Every setting that some ``conf/difficulty/*.yaml`` sets takes the value of
    ``difficulty``'s file, or the simulator's default (``racing_rl.config.default_backend``)
    where that file is silent: ``difficulty=default`` undoes a run trained on ``hard``, and
    ``difficulty=hard`` is the same held-out set whatever the run was trained on. The
    other settings (car, sensors, reward, ...) stay the run's, so its policy still fits.

    Args:
        backend: the run's ``backend`` config (the built-in simulator's).
        difficulty: a file name in ``conf/difficulty`` without ``.yaml``.

    Returns:
        A new backend config; ``backend`` is not changed.

    Raises:
        ConfigError: for an unknown difficulty, or a backend other than the simulator
            (a Roblox game makes its own tracks).
    """
    levels = {path.stem: path for path in sorted((config_dir() / "difficulty").glob("*.yaml"))}
    if difficulty not in levels:
        raise ConfigError(f"Unknown difficulty={difficulty!r}; available: {', '.join(levels)}.")
    if backend.get("name") != "pygame":
        raise ConfigError(
            f"difficulty={difficulty} sets the built-in simulator's tracks and rules; this run's "
            f"backend is {backend.get('name')!r}, whose game makes its own. Leave difficulty out."
        )
    defaults = default_backend("pygame")
    files = {name: OmegaConf.load(path) for name, path in levels.items()}
    level = files[difficulty]
    governed = sorted({key for file in files.values() for key in _leaf_keys(file)})
    result = backend.copy()
    for key in governed:
        value = OmegaConf.select(level, key, default=OmegaConf.select(defaults, key))
        OmegaConf.update(result, key, value, force_add=True)
    return result


def _leaf_keys(node: DictConfig, prefix: str = "") -> list[str]:
    """Dotted paths of a config's leaf values, e.g. ``track.width``."""
    keys = []
    for key, value in node.items():
        path = f"{prefix}{key}"
        keys += _leaf_keys(value, f"{path}.") if isinstance(value, DictConfig) else [path]
    return keys


def unique_labels(labels: Sequence[str]) -> list[str]:
    """``labels`` with repeats numbered (``ppo``, ``ppo#2``), so each car has its own name."""
    seen: dict[str, int] = {}
    unique = []
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        unique.append(label if seen[label] == 1 else f"{label}#{seen[label]}")
    return unique


def load_policy_driver(run_dir: Path, cfg: DictConfig, observation_size: int | None) -> Any:
    """A ``PolicyDriver`` of ``run_dir``'s checkpoint ``cfg.checkpoint`` with its run's
    frame stack and frozen VecNormalize statistics, loaded without running code from the
    run (``racing_rl.checkpoints``).

    Args:
        run_dir: the run.
        cfg: the eval config (``checkpoint``, ``device``, ``trust_pickles``).
        observation_size: numbers per raw observation of the race's environment; None
            takes the checkpoint's (a Roblox game then has to send that many).

    Raises:
        CheckpointError: if the run, checkpoint or statistics are missing or damaged, or
            the checkpoint expects other observations.
        ConfigError: if this machine lacks ``cfg.device``.
    """
    from racing_rl.checkpoints import load_model, load_normalizer, resolve_model
    from racing_rl.checks import check_device
    from racing_rl.drivers import PolicyDriver

    check_device(cfg.device)
    run_cfg = load_run_config(run_dir)
    model_path = resolve_model(run_dir, cfg.checkpoint)
    model = load_model(run_cfg.algo, model_path, env=None, device=cfg.device)
    stack = int(run_cfg.wrappers.get("frame_stack", 1))
    if observation_size is None:
        observation_size = model.observation_space.shape[0] // stack
    expected = (observation_size * stack,)
    if model.observation_space.shape != expected:
        raise CheckpointError(
            f"{model_path} expects observations of shape {model.observation_space.shape} "
            f"but {run_dir}'s config gives {expected}: the "
            "checkpoint was trained with other sensors (backend.sensors) or another "
            "frame stack (wrappers.frame_stack). Evaluate it with the run dir it was "
            "trained in."
        )
    normalizer = (
        load_normalizer(model_path.parent, expected, bool(cfg.get("trust_pickles", False)))
        if run_cfg.wrappers.get("normalize")
        else None
    )
    return PolicyDriver(model, run_dir.name, str(run_dir), stack, normalizer, str(model_path))


def check_runs(cfg: DictConfig) -> None:
    """Check what ``racing-rl eval`` will load, before anything is written: the driver,
    every run's config and (unless the scripted driver or ``follow`` drives) its
    checkpoint.

    Raises:
        CheckpointError: if a run's config or checkpoint is missing or damaged.
        ConfigError: if ``cfg.driver`` is not a known driver.
    """
    from racing_rl.checkpoints import resolve_model

    drivers_allowed = ("policy", SCRIPTED, *EXPORTED)
    if cfg.driver not in drivers_allowed:
        raise ConfigError(
            f"Invalid config: driver={cfg.driver!r}; must be one of {', '.join(drivers_allowed)}."
        )
    entries = [cfg.run_dir] if isinstance(cfg.run_dir, str) else [str(r) for r in cfg.run_dir]
    for entry in entries:
        if entry == SCRIPTED:
            continue
        run = Path(entry).expanduser()
        load_run_config(run)
        if not cfg.get("follow") and not (len(entries) == 1 and cfg.driver == SCRIPTED):
            resolve_model(run, str(cfg.checkpoint))


class CheckRuns(Callback):
    """Hydra callback (``hydra.callbacks`` in conf/eval.yaml): ``check_runs`` before Hydra
    creates ``out_dir`` and its log file, so that a failed eval leaves nothing behind."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Check ``config``.

        Raises:
            SystemExit: 1, after logging the error, if a run or its checkpoint is unusable.
        """
        try:
            check_runs(config)
        except RacingRLError as err:
            log.error("%s", err)
            raise SystemExit(1) from err


@hydra_main("eval")
def main(cfg: DictConfig) -> None:
    """Hydra entry point of ``racing-rl eval``."""
    try:
        metrics = evaluate(cfg, difficulty=HydraConfig.get().runtime.choices.get("difficulty"))
    except RacingRLError as err:
        log.error("%s", err)
        raise SystemExit(1) from err
    out = Path(metrics["out_dir"]) / "metrics.json"
    if metrics.get("race"):
        print_race(metrics)
        print(f"{len(metrics['tracks'])} races, {metrics['seconds']:.1f} s; written to {out}")
        return
    columns = ["track_seed", "finished", "crashed", "lap_time", "progress", "mean_speed"]
    print(format_table(metrics["tracks"], columns))
    summary = {k: v for k, v in metrics.items() if k not in ("tracks", "replays", "out_dir")}
    hidden = ("driver", "split", "difficulty")
    print(format_table([summary], [k for k in summary if k not in hidden]))
    if metrics["replays"]:
        print(f"{len(metrics['replays'])} replays in {Path(metrics['replays'][0]).parent}")
    print(
        f"{metrics['driver']} on {metrics['episodes']} {metrics['split']} tracks, "
        f"{metrics['seconds']:.1f} s; written to {out}"
    )


def print_race(metrics: dict[str, Any]) -> None:
    """Print a race's leaderboard per track (position, lap times, gaps) and the standings."""
    rows = []
    for track in metrics["tracks"]:
        for row in track["leaderboard"]:
            laps = " ".join(f"{t:.2f}" for t in row["lap_times_s"]) or "-"
            if row["finished"]:
                result = f"{row['finish_time_s']:.2f}"
                gap = f"+{row['gap_s']:.2f}" if row["position"] > 1 else ""
            else:
                result, gap = ("crash" if row["crashed"] else "DNF"), f"{row['progress']:.2f} laps"
            rows.append(
                {
                    "track": track["track_seed"],
                    "pos": row["position"],
                    "car": row["label"],
                    "lap_times_s": laps,
                    "time_s": result,
                    "gap": gap,
                }
            )
    print(format_table(rows, ["track", "pos", "car", "lap_times_s", "time_s", "gap"]))
    print()
    columns = ["position", "label", "wins", "mean_position", "finished_rate", "mean_lap_time_s"]
    print(format_table(metrics["standings"], columns))

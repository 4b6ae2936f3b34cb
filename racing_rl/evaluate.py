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

import hydra
import numpy as np
from omegaconf import DictConfig, OmegaConf
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from racing_rl import config_dir
from racing_rl.checkpoints import MODEL, VECNORMALIZE, latest_checkpoint
from racing_rl.errors import CheckpointError, ConfigError, RacingRLError
from racing_rl.sim.driver import PurePursuitDriver
from racing_rl.vec import ParallelEnvsVecEnv, bridge_of, make_parallel_envs, make_vec_env

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
    cfg: DictConfig, seeds: Sequence[int], train_env: VecEnv | None = None
) -> VecEnv:
    """One single-car virtual environment per track seed, with the run's wrapper stack.

    Cars start at rest on the start line and are truncated (``finished``) after one lap
    or ``cfg.validation.max_steps`` steps. VecNormalize, if the run uses it, is frozen
    (``training=False``) and leaves rewards raw; its statistics come from ``train_env``
    (or must be loaded by the caller).

    Args:
        cfg: the run's composed config.
        seeds: track seeds, one virtual environment each.
        train_env: the training VecEnv whose normalisation statistics to copy.
    """
    envs = make_parallel_envs(
        cfg.backend,
        n_venvs=len(seeds),
        agents_per_venv=1,
        track_seeds=[[seed] for seed in seeds],
        episode={"spawn": "grid", "laps": 1, "max_steps": cfg.validation.max_steps},
        bridge=bridge_of(train_env) if train_env is not None else None,
    )
    venv = make_vec_env(envs, cfg.wrappers, gamma=cfg.algo.model.get("gamma", 0.99))
    if isinstance(venv, VecNormalize):
        venv.training = False
        venv.norm_reward = False
        if train_env is not None:
            venv.obs_rms = train_env.obs_rms.copy()
    return venv


class ScriptedPolicy:
    """The pure-pursuit driver behind SB3's ``predict`` interface, for ``run_episodes``.

    It reads the simulator state of each slot's ParallelEnv, so it only drives the
    built-in simulator backend; observations are ignored.
    """

    def __init__(self, venv: VecEnv) -> None:
        base = venv.unwrapped
        if not isinstance(base, ParallelEnvsVecEnv):
            raise ConfigError("The scripted driver needs a racing-rl simulator VecEnv.")
        self._envs = [env.unwrapped for env in base.envs]
        self._driver = PurePursuitDriver()

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, None]:
        actions = [self._driver.act(env.world) for env in self._envs]
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
    """The config a run was trained with (``<run_dir>/.hydra/config.yaml``).

    Raises:
        CheckpointError: if ``run_dir`` is not a run directory.
    """
    saved = run_dir / ".hydra" / "config.yaml"
    if not saved.is_file():
        raise CheckpointError(
            f"{run_dir} is not a racing-rl run directory (no .hydra/config.yaml). "
            "Pass a directory written by racing-rl train."
        )
    cfg = OmegaConf.load(saved)
    assert isinstance(cfg, DictConfig)
    return cfg


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """``racing-rl eval``: measure a run's checkpoint (or the scripted driver) on tracks.

    Args:
        cfg: the eval config (``conf/eval.yaml``): ``run_dir``, ``checkpoint``,
            ``split``, ``driver``.

    Returns:
        The metrics, also written to ``<run_dir>/eval/metrics.json``.

    Raises:
        CheckpointError: if the run dir, its config or the checkpoint is missing or
            does not match the environment.
    """
    from racing_rl.algos import load_model

    run_dir = Path(cfg.run_dir).expanduser()
    run_cfg = load_run_config(run_dir)
    if cfg.get("backend"):
        if cfg.backend.get("name", run_cfg.backend.name) != run_cfg.backend.name:
            run_cfg.backend = cfg.backend  # another backend: backend=roblox
        else:  # a difficulty group's settings replace the run's own
            run_cfg.backend = OmegaConf.merge(run_cfg.backend, cfg.backend)
    seeds = list(cfg.seeds) if cfg.get("seeds") else track_seeds(run_cfg.tracks[cfg.split])
    started = time.perf_counter()
    venv = evaluation_env(run_cfg, seeds)
    if cfg.driver == "scripted":
        policy: Policy = ScriptedPolicy(venv)
        label = "scripted driver"
    else:
        model_path, stats_path = checkpoint_paths(run_dir, cfg.checkpoint)
        policy = load_model(run_cfg.algo, model_path, env=None, device=cfg.device)
        if policy.observation_space.shape != venv.observation_space.shape:
            raise CheckpointError(
                f"{model_path} expects observations of shape {policy.observation_space.shape} "
                f"but {run_dir}'s config gives {venv.observation_space.shape}: the "
                "checkpoint was trained with other sensors (backend.sensors) or another "
                "frame stack (wrappers.frame_stack). Evaluate it with the run dir it was "
                "trained in."
            )
        if isinstance(venv, VecNormalize):
            venv = load_normalization(stats_path, venv.venv)
        label = str(model_path)
    results = run_episodes(policy, venv)
    venv.close()
    metrics: dict[str, Any] = summarize(results)
    metrics.update(
        driver=label,
        split=cfg.split,
        backend_overrides=OmegaConf.to_container(cfg.backend) if cfg.get("backend") else None,
        seconds=time.perf_counter() - started,
        tracks=[asdict(r) for r in results],
    )
    out = run_dir / "eval"
    out.mkdir(exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics


def checkpoint_paths(run_dir: Path, checkpoint: str) -> tuple[Path, Path]:
    """Model and VecNormalize paths for ``checkpoint`` = final | best | latest | <path>.

    ``latest`` is the newest directory under ``checkpoints/`` (``racing_rl.checkpoints``);
    a path may name a model ``.zip`` or a checkpoint directory. The statistics are the
    ``vecnormalize.pkl`` beside the model.

    Raises:
        CheckpointError: if the model file is missing.
    """
    if checkpoint == "final":
        model = run_dir / MODEL
    elif checkpoint == "best":
        model = run_dir / "best" / MODEL
    elif checkpoint == "latest":
        model = latest_checkpoint(run_dir).model
    else:
        model = Path(checkpoint).expanduser()
        if model.is_dir():
            model = model / MODEL
    if not model.is_file():
        raise CheckpointError(
            f"Checkpoint {checkpoint!r} not found: {model} does not exist. Choose "
            "checkpoint=final|best|latest, a path to a model .zip or a checkpoint directory."
        )
    return model, model.with_name(VECNORMALIZE)


def load_normalization(path: Path, venv: VecEnv) -> VecNormalize:
    """Load frozen VecNormalize statistics onto ``venv`` (training off, raw rewards).

    Raises:
        CheckpointError: if the file is missing or damaged.
    """
    if not path.is_file():
        raise CheckpointError(f"VecNormalize statistics {path} are missing.")
    try:
        normalized = VecNormalize.load(str(path), venv)
    except Exception as err:
        raise CheckpointError(f"{path} is not loadable VecNormalize statistics: {err}") from err
    normalized.training = False
    normalized.norm_reward = False
    return normalized


@hydra.main(config_path=str(config_dir()), config_name="eval", version_base="1.3")
def main(cfg: DictConfig) -> None:
    """Hydra entry point of ``racing-rl eval``."""
    try:
        metrics = evaluate(cfg)
    except RacingRLError as err:
        log.error("%s", err)
        raise SystemExit(1) from err
    columns = ["track_seed", "finished", "crashed", "lap_time", "progress", "mean_speed"]
    print(format_table(metrics["tracks"], columns))
    summary = {k: v for k, v in metrics.items() if k != "tracks"}
    print(format_table([summary], [k for k in summary if k not in ("driver", "split")]))
    print(
        f"{metrics['driver']} on {metrics['episodes']} {metrics['split']} tracks, "
        f"{metrics['seconds']:.1f} s; written to {Path(cfg.run_dir) / 'eval' / 'metrics.json'}"
    )

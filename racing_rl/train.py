"""``racing-rl train``: compose backend × wrappers × algorithm and train (Hydra app).

``train(cfg, run_dir)`` is the plain, testable function; ``main`` is the thin
``@hydra.main`` entry that reads the run directory from ``HydraConfig``.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig
from stable_baselines3.common.callbacks import CallbackList, CheckpointCallback
from stable_baselines3.common.logger import configure
from stable_baselines3.common.vec_env import VecNormalize

from racing_rl import config_dir
from racing_rl.algos import is_off_policy, make_model
from racing_rl.callbacks import RaceMetricsCallback, ValidationCallback
from racing_rl.errors import ConfigError, RacingRLError
from racing_rl.evaluate import evaluation_env, track_seeds
from racing_rl.vec import make_parallel_envs, make_vec_env

log = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")


def check_track_splits(tracks: DictConfig) -> None:
    """The training, validation and test seed ranges must be valid and disjoint.

    Raises:
        ConfigError: naming the offending ranges.
    """
    ranges = {}
    for split in SPLITS:
        value = tracks.get(split)
        if value is None or len(value) != 2 or not int(value[0]) < int(value[1]):
            raise ConfigError(
                f"tracks.{split} must be [start, stop) with start < stop, got {value}."
            )
        ranges[split] = (int(value[0]), int(value[1]))
    for i, a in enumerate(SPLITS):
        for b in SPLITS[i + 1 :]:
            (a0, a1), (b0, b1) = ranges[a], ranges[b]
            if a0 < b1 and b0 < a1:
                raise ConfigError(
                    f"tracks.{a} {list(ranges[a])} and tracks.{b} {list(ranges[b])} overlap; "
                    "training, validation and test tracks must be disjoint."
                )


def train(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Train ``cfg.algo`` on ``cfg.backend`` and write the run directory.

    Args:
        cfg: the composed ``train`` config.
        run_dir: the run directory (Hydra's output dir), already created.

    Returns:
        Summary: timesteps, wall time, env-steps/s and the best validation metrics.

    Raises:
        ConfigError: on invalid settings, before any training starts.
    """
    if cfg.total_timesteps <= 0:
        raise ConfigError(f"total_timesteps must be > 0, got {cfg.total_timesteps}.")
    check_track_splits(cfg.tracks)
    torch.set_num_threads(cfg.torch_threads)
    train_seeds = range(*(int(v) for v in cfg.tracks.train))
    envs = make_parallel_envs(
        cfg.backend, cfg.n_venvs, cfg.agents_per_venv, [train_seeds] * cfg.n_venvs
    )
    gamma = cfg.algo.model.get("gamma", 0.99)
    venv = make_vec_env(envs, cfg.wrappers, gamma=gamma)
    model = make_model(cfg.algo, venv, seed=cfg.seed, device=cfg.device)
    model.set_logger(configure(str(run_dir / "tb"), ["tensorboard"]))
    log.info(
        "training %s on %s: %d cars (%d tracks x %d), %s timesteps, run dir %s",
        cfg.algo.name,
        cfg.backend.name,
        venv.num_envs,
        cfg.n_venvs,
        cfg.agents_per_venv,
        f"{cfg.total_timesteps:,}",
        run_dir,
    )

    callbacks = [RaceMetricsCallback()]
    if cfg.checkpoint.every > 0:
        callbacks.append(
            CheckpointCallback(
                save_freq=max(cfg.checkpoint.every // venv.num_envs, 1),
                save_path=str(run_dir / "checkpoints"),
                name_prefix=cfg.algo.name,
                save_replay_buffer=is_off_policy(cfg.algo),
                save_vecnormalize=True,
            )
        )
    validation = None
    if cfg.validation.every > 0:
        eval_env = evaluation_env(cfg, track_seeds(cfg.tracks.validation), venv)
        validation = ValidationCallback(eval_env, cfg.validation.every, run_dir / "best")
        callbacks.append(validation)

    started = time.perf_counter()
    model.learn(
        total_timesteps=cfg.total_timesteps,
        callback=CallbackList(callbacks),
        progress_bar=cfg.progress_bar,
    )
    seconds = time.perf_counter() - started
    model.save(run_dir / "model.zip")
    if isinstance(venv, VecNormalize):
        venv.save(str(run_dir / "vecnormalize.pkl"))
    summary: dict[str, Any] = {
        "timesteps": int(model.num_timesteps),
        "seconds": seconds,
        "env_steps_per_s": model.num_timesteps / seconds,
    }
    if validation is not None:
        if validation.n_calls == 0 or model.num_timesteps % cfg.validation.every:
            validation.validate()  # let the final model compete for best/
        best = json.loads((run_dir / "best" / "metrics.json").read_text())
        summary["best"] = best
        validation.eval_env.close()
    venv.close()
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    best = summary.get("best")
    log.info(
        "done: %s timesteps in %.0f s (%.0f env-steps/s)%s",
        f"{summary['timesteps']:,}",
        seconds,
        summary["env_steps_per_s"],
        f"; best validation: lap completion {100 * best['lap_completion_rate']:.0f}%, "
        f"mean lap {best['mean_lap_time_s']:.2f} s"
        if best
        else "",
    )
    return summary


@hydra.main(config_path=str(config_dir()), config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    """Hydra entry point of ``racing-rl train``; returns the best validation lap completion."""
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        summary = train(cfg, run_dir)
    except RacingRLError as err:
        log.error("%s", err)
        raise SystemExit(1) from err
    return summary.get("best", {}).get("lap_completion_rate")

"""Training callbacks: race metrics, periodic checkpoints, validation with best-model selection."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecEnv, sync_envs_normalization

from racing_rl.checkpoints import save_checkpoint, save_model_files, write_atomic
from racing_rl.errors import BridgeError
from racing_rl.evaluate import run_episodes, summarize

if TYPE_CHECKING:
    from racing_rl.bridge.training_bridge import TrainingBridge

log = logging.getLogger(__name__)


class RaceMetricsCallback(BaseCallback):
    """Logs ``race/`` scalars of finished training episodes (means per logger dump).

    ``race/progress`` [laps], ``race/laps``, ``race/mean_speed_mps``,
    ``race/crash_rate``, ``race/stuck_rate`` per episode, and ``race/lap_time_s`` per
    completed lap.
    """

    def _on_step(self) -> bool:
        for done, info in zip(self.locals["dones"], self.locals["infos"], strict=True):
            if "lap_time" in info:
                self.logger.record_mean("race/lap_time_s", info["lap_time"])
            if done:
                self.logger.record_mean("race/progress", info.get("progress", 0.0))
                self.logger.record_mean("race/laps", info.get("laps", 0))
                self.logger.record_mean("race/mean_speed_mps", info.get("mean_speed", 0.0))
                self.logger.record_mean("race/crash_rate", float(info.get("crashed", False)))
                self.logger.record_mean("race/stuck_rate", float(info.get("stuck", False)))
        return True


class FreezeCallback(BaseCallback):
    """Freezes a Roblox game's physics (``FREEZE true``) while the algorithm updates.

    The game runs in real time; without this, its cars would drive on with stale actions
    during every policy update. SB3 calls ``_on_rollout_end`` just before the update; the
    next env step sends ``FREEZE false`` (``RobloxParallelEnv.step``).

    Args:
        bridge: the run's ``TrainingBridge``.
    """

    def __init__(self, bridge: TrainingBridge) -> None:
        super().__init__()
        self.bridge = bridge

    def _on_rollout_end(self) -> None:
        if self.bridge.connected:
            try:
                self.bridge.freeze(True)
            except BridgeError as err:  # the step after the update finds out and waits
                log.warning("could not freeze the game: %s", err)

    def _on_step(self) -> bool:
        return True


class PeriodicCallback(BaseCallback):
    """Calls ``on_due`` whenever ``num_timesteps`` passes a multiple of ``every``.

    The schedule follows the model's timestep counter, so a resumed run keeps it.
    """

    def __init__(self, every: int) -> None:
        super().__init__()
        self.every = every
        self._next = every

    def _init_callback(self) -> None:
        self._next = (self.model.num_timesteps // self.every + 1) * self.every

    def _on_step(self) -> bool:
        if self.num_timesteps >= self._next:
            self._next = (self.num_timesteps // self.every + 1) * self.every
            self.on_due()
        return True

    def on_due(self) -> None:
        """The periodic work."""
        raise NotImplementedError


class CheckpointCallback(PeriodicCallback):
    """Saves a checkpoint (``racing_rl.checkpoints.save_checkpoint``) every ``every``
    timesteps.

    Args:
        every: timesteps between checkpoints.
        checkpoints_dir: ``<run dir>/checkpoints``.
        kind: the checkpoints' name prefix (the algorithm's name).
    """

    def __init__(self, every: int, checkpoints_dir: Path, kind: str) -> None:
        super().__init__(every)
        self.checkpoints_dir = checkpoints_dir
        self.kind = kind

    def on_due(self) -> None:
        checkpoint = save_checkpoint(self.model, self.training_env, self.checkpoints_dir, self.kind)
        log.info("checkpoint %s", checkpoint.path)


class ValidationCallback(PeriodicCallback):
    """Every ``every`` timesteps, races the deterministic policy on the validation tracks.

    One car per track from a standing start, one lap. Logs ``eval/`` scalars and keeps
    the best model so far by ``objective`` (the run's, ``racing_rl.objective``: by
    default lap completion, then mean lap time) in ``best_dir`` as
    ``model.zip``, ``vecnormalize.pkl`` and ``metrics.json`` (each file written
    atomically, ``metrics.json`` last). A resumed run competes with the ``best/`` it has.

    Args:
        eval_env: from ``racing_rl.evaluate.evaluation_env``.
        every: timesteps between evaluations.
        best_dir: where the best model goes.
        objective: validation metrics -> the number to maximise.
    """

    def __init__(
        self,
        eval_env: VecEnv,
        every: int,
        best_dir: Path,
        objective: Callable[[Mapping[str, float]], float],
    ) -> None:
        super().__init__(every)
        self.eval_env = eval_env
        self.best_dir = best_dir
        self.objective = objective
        self.best: float | None = None
        saved = best_dir / "metrics.json"
        if saved.is_file():
            self.best = objective(json.loads(saved.read_text()))

    def on_due(self) -> None:
        self.validate()

    def validate(self) -> dict[str, float]:
        """Run the validation episodes now; returns the metrics."""
        sync_envs_normalization(self.training_env, self.eval_env)
        metrics = summarize(run_episodes(self.model, self.eval_env))
        for key, value in metrics.items():
            if not (isinstance(value, float) and math.isnan(value)):
                self.logger.record(f"eval/{key}", value)
        improved = self.best is None or self.objective(metrics) > self.best
        log.info(
            "validation at %d steps: lap completion %.0f%%, mean lap %.2f s, crash rate %.0f%%%s",
            self.num_timesteps,
            100 * metrics["lap_completion_rate"],
            metrics["mean_lap_time_s"],
            100 * metrics["crash_rate"],
            " (new best)" if improved else "",
        )
        if improved:
            self.best = self.objective(metrics)
            self.best_dir.mkdir(parents=True, exist_ok=True)
            save_model_files(self.model, self.training_env, self.best_dir)
            record = json.dumps({**metrics, "timesteps": int(self.num_timesteps)}, indent=2)
            write_atomic(self.best_dir / "metrics.json", lambda tmp: tmp.write_text(record))
        self.logger.dump(self.num_timesteps)
        return metrics

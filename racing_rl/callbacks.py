"""Training callbacks: race metrics, periodic checkpoints, validation with best-model
selection, and (opt-in) a video of a validation episode in TensorBoard."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING

from omegaconf import DictConfig
from stable_baselines3.common import callbacks as sb3_callbacks
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, ProgressBarCallback
from stable_baselines3.common.logger import Logger, TensorBoardOutputFormat
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.type_aliases import TrainFrequencyUnit
from stable_baselines3.common.vec_env import VecEnv, VecNormalize, sync_envs_normalization

from racing_rl.checkpoints.layout import Checkpoint
from racing_rl.checkpoints.saving import (
    clear_validation_due,
    finish_swap,
    replace_directory,
    save_checkpoint,
    save_model_files,
    write_json,
)
from racing_rl.errors import BridgeError
from racing_rl.evaluation.episodes import run_episodes
from racing_rl.evaluation.results import lap_figures, summarize
from racing_rl.files import read_record

if TYPE_CHECKING:
    from racing_rl.bridge.training_bridge import TrainingBridge

log = logging.getLogger(__name__)


#: The episode figures of a done car's info that ``RaceMetricsCallback`` logs, and their tags.
RACE_FIGURES = {
    "distance": "race/distance_m",
    "laps": "race/laps",
    "mean_speed": "race/mean_speed_mps",
}


class RaceMetricsCallback(BaseCallback):
    """Logs ``race/`` scalars of finished training episodes (means per logger dump).

    ``race/distance_m`` (driven in the episode: a car placed anywhere on the track starts
    at 0), ``race/laps``, ``race/mean_speed_mps`` (of the episodes whose info has them: a
    game's has no distance, its interrupted episode's none of them), ``race/crash_rate``,
    ``race/stuck_rate`` per episode, and ``race/lap_time_s`` per completed lap.
    """

    def _on_step(self) -> bool:
        for done, info in zip(self.locals["dones"], self.locals["infos"], strict=True):
            if "lap_time" in info:
                self.logger.record_mean("race/lap_time_s", info["lap_time"])
            if done:
                for key, tag in RACE_FIGURES.items():
                    if key in info:  # missing is unknown, not 0
                        self.logger.record_mean(tag, info[key])
                self.logger.record_mean("race/crash_rate", float(info.get("crashed", False)))
                self.logger.record_mean("race/stuck_rate", float(info.get("stuck", False)))
        return True


def planned_timesteps(model: BaseAlgorithm, total_timesteps: int) -> int:
    """The timesteps ``model.learn`` will have reached when it stops at ``total_timesteps``.

    ``learn`` checks the budget only between rollouts: an on-policy algorithm collects
    whole rollouts of ``n_steps`` × ``n_envs`` timesteps, an off-policy one ``train_freq``
    steps × ``n_envs``, so the run overshoots to the next multiple (PPO with 20 cars and
    ``n_steps=256``: ``total_timesteps=1000`` runs 5,120).

    Args:
        model: the algorithm, at its current ``num_timesteps``.
        total_timesteps: the budget as ``learn`` sees it (absolute).

    Returns:
        The timesteps at which training will stop.
    """
    if isinstance(model, OnPolicyAlgorithm):
        chunk = model.n_steps * model.n_envs
    elif isinstance(model, OffPolicyAlgorithm) and model.train_freq.unit == TrainFrequencyUnit.STEP:
        chunk = model.train_freq.frequency * model.n_envs
    else:  # train_freq in episodes: the overshoot is unknown in advance
        chunk = model.n_envs
    remaining = max(0, total_timesteps - model.num_timesteps)
    return model.num_timesteps + math.ceil(remaining / chunk) * chunk


class ProgressBar(ProgressBarCallback):
    """SB3's progress bar, counting to the timesteps that will really run
    (``planned_timesteps``) instead of ``total_timesteps``, on stderr (SB3's is on stdout,
    which racing-rl leaves for results)."""

    def _on_training_start(self) -> None:
        from rich.console import Console

        planned = planned_timesteps(self.model, self.locals["total_timesteps"])
        self.pbar = sb3_callbacks.tqdm(
            total=planned - self.model.num_timesteps, options={"console": Console(stderr=True)}
        )

    def close(self) -> None:
        """End the bar where ``learn`` did not (it stopped by Ctrl-C or an error), so that
        the log lines after it start on a line of their own and it is not drawn again at
        exit. Closing a closed bar, or one never started, does nothing."""
        if getattr(self, "pbar", None) is not None:
            self.pbar.close()


class RobloxCallback(BaseCallback):
    """Keeps a Roblox game calm while training pauses, and logs the bridge's counters.

    The game runs in real time: while the algorithm updates, its cars would drive on
    with stale actions, and after 250 ticks (~17-20 s) without an ``ACTION`` its
    watchdog closes every environment. So the game is frozen (``FREEZE true``) before
    every update of an algorithm that updates after a rollout of several steps (PPO,
    or an off-policy ``train_freq`` > 1), and by ``pause`` before checkpoint and best-
    model saves. An algorithm that trains after every step (SAC, TD3, TQC with
    ``train_freq=1``) is not frozen around each step (that anchors and unanchors every
    car of the game 15 times a second, and its gradient step is milliseconds). The next
    env step sends ``FREEZE false`` (``RobloxParallelEnv``).

    Logs the bridge's counters (``TrainingBridge.counters``: ``roblox/tick_hz``, the
    measured tick rate, ``roblox/frames``, ``roblox/empty_ticks``, ``roblox/rejected``,
    ``roblox/dropped_<kind>``, ``roblox/info_dropped_<kind>``, ``roblox/steps_per_tick``)
    and ``roblox/freezes_per_1000_steps`` at every rollout end, and a line to the log
    every ``log_every`` timesteps.

    Args:
        bridge: the run's ``TrainingBridge``.
        freeze: freeze the game during pauses (``backend.freeze_during_updates``).
        log_every: timesteps between log lines.
    """

    def __init__(self, bridge: TrainingBridge, freeze: bool = True, log_every: int = 10_000):
        super().__init__()
        self.bridge = bridge
        self.freeze = freeze
        self.log_every = log_every
        self._next_log = log_every
        self._freeze_on_rollout_end = True

    def _init_callback(self) -> None:
        train_freq = getattr(self.model, "train_freq", None)
        if train_freq is not None:  # off-policy: a rollout of train_freq steps or episodes
            every_step = train_freq.unit == TrainFrequencyUnit.STEP and train_freq.frequency == 1
            self._freeze_on_rollout_end = not every_step

    def pause(self) -> None:
        """Freeze the game for a pause of training that may last seconds (a save)."""
        if self.freeze and self.bridge.connected:
            try:
                self.bridge.freeze(True)
            except BridgeError as err:  # the step after the pause finds out and waits
                log.warning("could not freeze the game: %s", err)

    def _on_rollout_end(self) -> None:
        if self._freeze_on_rollout_end:
            self.pause()
        counters = self.bridge.counters()
        for key, value in counters.items():
            if key != "freezes" and not (isinstance(value, float) and math.isnan(value)):
                self.logger.record(f"roblox/{key}", value)
        steps = max(1, self.num_timesteps)
        self.logger.record("roblox/freezes_per_1000_steps", 1000 * counters["freezes"] / steps)
        if self.num_timesteps >= self._next_log:
            self._next_log = (self.num_timesteps // self.log_every + 1) * self.log_every
            log.info(
                "game at %d steps: ticking at %.1f Hz; %d frames (%d empty ticks), %d rejected, "
                "%d entries dropped; FREEZE %.1f per 1,000 steps; %.3f steps per tick",
                self.num_timesteps,
                counters["tick_hz"],
                counters["frames"],
                counters["empty_ticks"],
                counters["rejected"],
                sum(v for k, v in counters.items() if k.startswith("dropped_")),
                1000 * counters["freezes"] / steps,
                counters["steps_per_tick"],
            )

    def _on_step(self) -> bool:
        return True


class PeriodicCallback(BaseCallback):
    """Calls ``on_due`` at the first rollout start at or past each multiple of ``every``
    timesteps (and at the first one of all with ``due_at_start``).

    A rollout starts after the update on the previous one, so the model that ``on_due``
    saves or validates is trained on exactly ``num_timesteps`` (mid-rollout, PPO's weights
    would lag its counter by up to a rollout, which it then discards if stopped). The
    schedule follows the model's timestep counter, so a resumed run keeps it.
    """

    def __init__(self, every: int, due_at_start: bool = False) -> None:
        super().__init__()
        self.every = every
        self.due_at_start = due_at_start
        self._next = every
        self._started: int | None = None
        #: ``num_timesteps`` when ``on_due`` last ran to its end in this leg (None: not yet;
        #: a ``ValidationCallback``'s may start at the resumed checkpoint's, ``validated_at``).
        self.last: int | None = None

    def _init_callback(self) -> None:
        now = self.model.num_timesteps
        self._next = now if self.due_at_start else (now // self.every + 1) * self.every

    def _on_rollout_start(self) -> None:
        self.num_timesteps = self.model.num_timesteps
        if self.num_timesteps >= self._next:
            self._next = (self.num_timesteps // self.every + 1) * self.every
            self._started = self.num_timesteps
            self.on_due()
            self.last = self.num_timesteps

    def owed(self, timesteps: int) -> bool:
        """Whether ``on_due`` was due at the rollout start at ``timesteps`` and has not run
        to its end (training stopped in it, or before it). A run resumed from there passes
        ``due_at_start``, so that the work is done then."""
        return timesteps >= self._next or (self._started == timesteps != self.last)

    def _on_step(self) -> bool:
        return True

    def on_due(self) -> None:
        """The periodic work."""
        raise NotImplementedError


class CheckpointCallback(PeriodicCallback):
    """Saves a checkpoint (``racing_rl.checkpoints.saving.save_checkpoint``) every ``every``
    timesteps, between rollouts (``PeriodicCallback``).

    Args:
        every: timesteps between checkpoints.
        checkpoints_dir: ``<run dir>/checkpoints``.
        kind: the checkpoints' name prefix (the algorithm's name).
        keep: how many of these periodic checkpoints to keep, the newest (0: all).
        pause: called before a save (``RobloxCallback.pause`` freezes a game).
        hold: the context every save runs in (training's holds SIGINT and SIGTERM until
            the save is complete).
        validation: the validation, called after this callback: a checkpoint saved when
            it is due too records so (``Checkpoint.validation_due``), so that a run killed
            during it (``kill -9``) runs it when resumed from there.
    """

    def __init__(
        self,
        every: int,
        checkpoints_dir: Path,
        kind: str,
        keep: int = 0,
        pause: Callable[[], None] | None = None,
        hold: Callable[[], AbstractContextManager[None]] = nullcontext,
        validation: PeriodicCallback | None = None,
    ) -> None:
        super().__init__(every)
        self.checkpoints_dir = checkpoints_dir
        self.kind = kind
        self.keep = keep
        self.pause = pause
        self.hold = hold
        self.validation = validation
        self._flagged: Checkpoint | None = None  # saved with validation_due, not yet run

    def on_due(self) -> None:
        if self.pause is not None:
            self.pause()
        due = self.validation is not None and self.validation.owed(self.num_timesteps)
        with self.hold():
            checkpoint = save_checkpoint(
                self.model,
                self.training_env,
                self.checkpoints_dir,
                self.kind,
                self.keep,
                validation_due=due,
            )
        self._flagged = checkpoint if due else None
        log.info("checkpoint %s", checkpoint.path)

    def _on_step(self) -> bool:
        # At the first step after the rollout start whose validation was due with the
        # checkpoint (at its end, a kill -9 in the rollout left it owing a validation that
        # had run, and the resumed run logged that one's eval/ row again).
        flagged, validation = self._flagged, self.validation
        if flagged is not None and validation is not None and validation.last == flagged.timesteps:
            clear_validation_due(flagged)  # it ran: a resume from here need not run it again
            self._flagged = None
        return True


class ValidationCallback(PeriodicCallback):
    """Every ``every`` timesteps, between rollouts (``PeriodicCallback``), races the
    deterministic policy on the validation tracks.

    One car per track from a standing start, one lap. Logs ``eval/`` scalars and keeps
    the best model so far by ``objective`` (the run's, ``racing_rl.objective``: by
    default lap completion, then mean lap time) in ``best_dir`` as
    ``model.zip``, ``vecnormalize.npz`` (+ ``.pkl``) and ``metrics.json``, written as one set
    (``replace_directory``). A resumed run competes with the ``best/`` it has.

    Args:
        eval_env: from ``racing_rl.evaluation.episodes.evaluation_env``.
        every: timesteps between evaluations.
        best_dir: where the best model goes.
        objective: validation metrics -> the number to maximise.
        video: logs a validation episode's video every few validations, or None.
        pause: called before the best model is saved (``RobloxCallback.pause``).
        after: called once a validation's episodes are over (a game's: its validation
            cars are taken out until the next validation).
        hold: the context the best model's save runs in (as ``CheckpointCallback``'s).
        laps: the environment reports laps; False (a Roblox game, which sends none): the
            log line gives the mean return and crash rate alone.
        due_at_start: validate at the first rollout start too (a run resumed from a
            checkpoint whose validation was cut short: ``Checkpoint.validation_due``).
        validated_at: the timesteps of the checkpoint a run resumed from, where an earlier
            leg validated its model to the end (``racing_rl.loggers.validation_logged``):
            ``last`` starts there, so that the final validation of a leg with nothing
            left to train does not run it again.
    """

    def __init__(
        self,
        eval_env: VecEnv,
        every: int,
        best_dir: Path,
        objective: Callable[[Mapping[str, float]], float],
        video: ValidationVideo | None = None,
        pause: Callable[[], None] | None = None,
        after: Callable[[], None] | None = None,
        hold: Callable[[], AbstractContextManager[None]] = nullcontext,
        laps: bool = True,
        due_at_start: bool = False,
        validated_at: int | None = None,
    ) -> None:
        super().__init__(every, due_at_start)
        self.last = validated_at
        self.laps = laps
        self.pause = pause
        self.after = after
        self.hold = hold
        self.video = video
        self.validations = 0
        self.eval_env = eval_env
        self.best_dir = best_dir
        self.objective = objective
        self.best: float | None = None
        finish_swap(best_dir)  # a save of best/ cut short between its renames
        then = "best/ counts as unscored, and the next validation replaces it"
        saved = read_record(best_dir / "metrics.json", then)
        if saved is not None:
            try:
                self.best = objective(saved)
            except (KeyError, TypeError, ValueError) as err:  # valid JSON of other keys
                log.warning("%s lacks a figure (%r): %s", best_dir / "metrics.json", err, then)

    def on_due(self) -> None:
        self.validate()

    def validate(self) -> dict[str, float]:
        """Run the validation episodes now; returns the metrics."""
        if not self.laps:  # a game runs in real time: this can take minutes
            log.info(
                "validating at %d steps in the game: each car until its episode ends or "
                "validation.max_steps ticks pass (lower it to validate sooner)",
                self.num_timesteps,
            )
        sync_envs_normalization(self.training_env, self.eval_env)
        metrics = summarize(run_episodes(self.model, self.eval_env))
        if self.after is not None:
            self.after()
        # The row's x value in progress.csv (SB3's EvalCallback records it too).
        self.logger.record("time/total_timesteps", self.num_timesteps, exclude="tensorboard")
        for key, value in metrics.items():
            if not (isinstance(value, float) and math.isnan(value)):
                self.logger.record(f"eval/{key}", value)
        value = self.objective(metrics)  # NaN when the game lost every validation car
        improved = not math.isnan(value) and (self.best is None or value > self.best)
        if metrics.get("interrupted"):
            log.warning(
                "validation at %d steps: the game lost %d of its cars mid-episode (a "
                "reconnection); the figures are the other %d's",
                self.num_timesteps,
                metrics["interrupted"],
                metrics["episodes"],
            )
        laps = f"{lap_figures(metrics)}, " if self.laps else ""
        log.info(
            "validation at %d steps: %scrash rate %.0f%%, mean return %.1f%s",
            self.num_timesteps,
            laps,
            100 * metrics["crash_rate"],
            metrics["mean_return"],
            " (new best)" if improved else "",
        )
        if improved:
            if self.pause is not None:
                self.pause()
            record = {**metrics, "timesteps": int(self.num_timesteps)}

            def write(directory: Path) -> None:
                save_model_files(self.model, self.training_env, directory)
                write_json(directory / "metrics.json", record)

            with self.hold():
                replace_directory(self.best_dir, write)
            self.best = value
        self.validations += 1
        if self.video is not None and self.validations % self.video.every == 0:
            self.video.log(self.model, self.training_env, self.logger, self.num_timesteps)
        _dump_only(self.logger, ("eval/", "time/total_timesteps"), self.num_timesteps)
        return metrics


def _dump_only(logger: Logger, prefixes: tuple[str, ...], step: int) -> None:
    """Write the logger's values whose keys start with one of ``prefixes`` at ``step``
    and keep the others for the algorithm's own next dump.

    A validation runs at a rollout's start, after the update on the rollout before had
    recorded its ``train/`` figures, at the step the algorithm had just dumped: a whole
    dump there wrote a second ``train/`` value at that step (the newer update's) and left
    none for the next rollout's step."""
    tables = (logger.name_to_value, logger.name_to_count, logger.name_to_excluded)
    keys = [key for key in logger.name_to_value if not key.startswith(prefixes)]
    held = [{key: table.pop(key) for key in keys if key in table} for table in tables]
    logger.dump(step)
    for table, values in zip(tables, held, strict=True):
        table.update(values)


class ValidationVideo:
    """A held-out episode of the current policy, as an animated GIF in TensorBoard.

    The episode is a one-lap race from a standing start on one validation track
    (``racing_rl.evaluation.races.run_races`` with the policy behind the run's frame
    stack and the training VecNormalize's current statistics), drawn by the replay
    renderer with the viewer's overlays and encoded by imageio. It is written as the
    image summary ``eval/video``, which TensorBoard's Images tab plays, straight to the
    SB3 logger's TensorBoard writer: SB3's ``Video`` goes through torch's ``add_video``,
    which needs ``moviepy.editor``, gone since moviepy 2.0 (torch then prints a notice
    and writes nothing).

    Args:
        cfg: the run's config (backend, wrappers).
        track_seed: the track.
        every: validations between videos.
        max_steps: the episode's step limit (frames).
        size_px: frame size (width, height) [px].
    """

    def __init__(
        self,
        cfg: DictConfig,
        track_seed: int,
        every: int,
        max_steps: int,
        size_px: tuple[int, int] = (256, 256),
    ) -> None:
        self.cfg = cfg
        self.track_seed = track_seed
        self.every = every
        self.max_steps = max_steps
        self.size_px = size_px

    def frames(self, model: object, train_env: VecEnv) -> list:
        """The episode's frames, (H, W, 3) uint8 each."""
        from racing_rl.drivers import PolicyDriver
        from racing_rl.evaluation.races import run_races
        from racing_rl.ui.video import frames
        from racing_rl.vec import make_parallel_envs

        normalizer = train_env if isinstance(train_env, VecNormalize) else None
        stack = int(self.cfg.wrappers.frame_stack)
        driver = PolicyDriver(model, "policy", "training", stack, normalizer)
        episode = {"spawn": "grid", "laps": 1, "max_steps": self.max_steps}
        envs = make_parallel_envs(self.cfg.backend, 1, 1, [[self.track_seed]], episode)
        try:
            # The replay's laps tell its frames which car is done (the HUD said "out").
            (race,) = run_races(envs, [driver], record=True, meta={"laps": 1})
        finally:
            for env in envs:
                env.close()
        return list(frames(race.replay, size_px=self.size_px))

    def log(self, model: object, train_env: VecEnv, logger: Logger, timesteps: int) -> None:
        """Record the episode and write it to the TensorBoard writer of ``logger``, if any."""
        import imageio.v3 as iio
        from tensorboard.compat.proto.summary_pb2 import Summary

        from racing_rl.ui.video import gif_delays_ms

        writers = [f for f in logger.output_formats if isinstance(f, TensorBoardOutputFormat)]
        if not writers:
            return
        clip = self.frames(model, train_env)
        dt = float(self.cfg.backend.rules.dt)
        delays_ms = gif_delays_ms([k * dt for k in range(len(clip) + 1)])
        gif = iio.imwrite("<bytes>", clip, extension=".gif", duration=delays_ms, loop=0)
        height, width = clip[0].shape[:2]
        image = Summary.Image(height=height, width=width, colorspace=3, encoded_image_string=gif)
        summary = Summary(value=[Summary.Value(tag="eval/video", image=image)])
        for writer in writers:
            writer.writer.file_writer.add_summary(summary, timesteps)
            writer.writer.flush()
        log.info("eval/video: %d frames of track %d", len(clip), self.track_seed)

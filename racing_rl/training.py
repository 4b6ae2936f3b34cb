"""Training as a plain function: ``train(cfg, run_dir)`` composes backend × wrappers ×
algorithm, trains and writes the run directory (``racing-rl train``'s Hydra app is
``racing_rl.train``).

A run can be continued (``resume``): the run's newest loadable checkpoint (model,
VecNormalize statistics, replay buffer; ``racing_rl.checkpoints``, which runs no code
from the run) trains on to ``total_timesteps``, in the same run directory and
TensorBoard run. SIGINT (Ctrl-C), SIGTERM and any error during training save an
``interrupted`` checkpoint first; a second signal during that save waits for it.
"""

from __future__ import annotations

import copy
import functools
import logging
import os
import shlex
import signal
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack, closing, nullcontext
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from omegaconf import DictConfig, OmegaConf
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from racing_rl.algos import discount, make_model
from racing_rl.arguments import check_resume
from racing_rl.callbacks import (
    CheckpointCallback,
    ProgressBar,
    RaceMetricsCallback,
    RobloxCallback,
    ValidationCallback,
    ValidationVideo,
    planned_timesteps,
)
from racing_rl.checkpoints.layout import FINAL, INTERRUPTED, Checkpoint, latest_checkpoint
from racing_rl.checkpoints.loading import check_named_classes
from racing_rl.checkpoints.runs import (
    initialize_from,
    load_for_resume,
    load_run_config,
)
from racing_rl.checkpoints.saving import (
    save_checkpoint,
    save_model_files,
    write_atomic,
    write_json,
)
from racing_rl.checks import check_train_config
from racing_rl.config import backend_config, path_override, track_seeds, train_mix
from racing_rl.errors import (
    CheckpointError,
    TrainingInterrupted,
    causes,
    disk_full,
    one_line,
)
from racing_rl.evaluation.episodes import evaluation_env
from racing_rl.evaluation.results import lap_figures
from racing_rl.files import read_record, recorded_timesteps
from racing_rl.interrupts import TrainingSignals
from racing_rl.loggers import sb3_logger, validation_logged, wandb_run
from racing_rl.normalize import FiniteVecNormalize, is_finite
from racing_rl.objective import objective, objective_kind
from racing_rl.provenance import (
    environment_record,
    job_command,
    process_start,
    record_leg,
    trained_game,
    wandb_id,
)
from racing_rl.vec import make_env, wrap_vec_env

if TYPE_CHECKING:
    from racing_rl.bridge.training_bridge import TrainingBridge

log = logging.getLogger(__name__)


class _TrainedTimesteps(BaseCallback):
    """``timesteps``: the model's ``num_timesteps`` at the start of its latest rollout, after
    the update on the one before: what an on-policy model (PPO, RecurrentPPO) has trained
    on. Stopped while it collects a rollout, or before that rollout's update is complete,
    it discards the rollout (``rewind``): the VecNormalize statistics, and an on-policy
    model's weights, optimiser state and update count, go back to where they were when
    the rollout began. None until training starts."""

    timesteps: int | None = None
    #: The training VecNormalize's statistics at the latest rollout's start (None without).
    statistics: tuple[Any, ...] | None = None
    #: An on-policy model's weights, optimiser state and ``_n_updates`` then (None else).
    trained: tuple[dict[str, Any], dict[str, Any], int] | None = None

    def _on_training_start(self) -> None:
        self._on_rollout_start()

    def _on_rollout_start(self) -> None:
        model = self.model
        self.timesteps = model.num_timesteps
        normalizer = model.get_vec_normalize_env()
        if isinstance(normalizer, FiniteVecNormalize):
            self.statistics = normalizer.snapshot()
        if isinstance(model, OnPolicyAlgorithm):  # a few MB: cheap beside a rollout
            policy = model.policy
            weights = {k: v.detach().clone() for k, v in policy.state_dict().items()}
            self.trained = weights, copy.deepcopy(policy.optimizer.state_dict()), model._n_updates

    def _on_step(self) -> bool:
        return True

    def rewind(self, name: str, start: int) -> int:
        """Set an on-policy model's counter back to the timesteps it trained on; off-policy
        models keep theirs (their steps are in the replay buffer).

        Args:
            name: the algorithm, for the log.
            start: the leg's first timestep: a rewind to it (nothing trained yet) is not
                logged, as nothing is saved; the caller says so.

        Returns:
            The timesteps discarded (0 for an off-policy model).
        """
        if self.timesteps is None:  # stopped before learn started its callbacks
            return 0
        model = self.model
        discarded = model.num_timesteps - self.timesteps
        if not isinstance(model, OnPolicyAlgorithm) or not discarded:
            return 0
        if self.timesteps > start:
            log.info(
                "the unfinished rollout's %s timesteps are discarded (%s trains on whole "
                "rollouts): the checkpoint counts the %s timesteps trained on, and its "
                "observation statistics leave the discarded rollout out",
                f"{discarded:,}",
                name,
                f"{self.timesteps:,}",
            )
        model.num_timesteps = self.timesteps
        # The progress too (SB3 updates it at a rollout's end): the first resumed rollout
        # read it, one rollout ahead, for the teacher's weight.
        model._update_current_progress_remaining(model.num_timesteps, model._total_timesteps)
        normalizer = model.get_vec_normalize_env()
        if isinstance(normalizer, FiniteVecNormalize) and self.statistics is not None:
            normalizer.restore(self.statistics)
        if self.trained is not None:  # stopped inside the update: its first steps are undone
            weights, optimizer, updates = self.trained
            model.policy.load_state_dict(weights)
            model.policy.optimizer.load_state_dict(optimizer)
            model._n_updates = updates
        return discarded


def _command() -> str:
    """The command line that started this leg: this process's, or, in a job that a
    launcher's own program runs (submitit's ``_submit.py``: a SLURM job), the job's as a
    ``racing-rl train`` of its overrides."""
    program = Path(sys.argv[0])
    # racing_rl.cli names the program "racing-rl train" for Hydra's messages
    ours = program.name.split(" ")[0] == "racing-rl" or "racing_rl" in program.parts
    if not ours and (job := job_command("train")):
        words = shlex.split(job)
        return shlex.join([w for w in words if not _resumed_backend(w, words)])
    args = [a for a in sys.argv[1:] if not _resumed_backend(a, sys.argv)]
    return " ".join([sys.argv[0], shlex.join(args)]).strip()


def _resumed_backend(arg: str, args: Sequence[str]) -> bool:
    """Whether ``arg`` is a ``backend=`` of a resume's command line (``args``): the run's
    own, which ``racing_rl.arguments.with_resumed_backend`` adds for Hydra to compose (a
    resume refuses another), and no part of what the user asked for."""
    resumed = any(a.startswith(("resume=", "+resume=")) for a in args)
    return resumed and arg.lstrip("+").startswith("backend=")


def _exit_code(name: str) -> int:
    """The exit status of a run a signal of ``name`` stopped: 128 + its number (130 for
    SIGINT, 143 for SIGTERM; SIGINT's for a name that is no signal)."""
    return 128 + getattr(signal, name, signal.SIGINT)


def _all_finite(model: BaseAlgorithm, venv: VecEnv) -> bool:
    """Whether the model's weights and the VecNormalize statistics are all finite."""
    weights = all(bool(torch.isfinite(p).all()) for p in model.policy.parameters())
    return weights and (not isinstance(venv, VecNormalize) or is_finite(venv))


def _save_after_error(
    model: BaseAlgorithm, venv: VecEnv, run_dir: Path, leg: dict[str, Any], err: BaseException
) -> None:
    """Save an ``interrupted`` checkpoint after ``err`` ended training, if the model and
    statistics are finite (else the previous checkpoints stay the newest); note it in
    ``leg`` (``checkpoint``) and log how to continue. A failure to save is logged, so that
    ``err`` is what the user sees.

    Args:
        model: the model, its ``num_timesteps`` already rewound to those trained on.
        venv: the training VecEnv (its VecNormalize statistics are saved, if any).
        run_dir: the run directory.
        leg: this leg's record in run.json (updated here, written by the caller).
        err: the error that ended training.
    """
    if not _all_finite(model, venv):
        log.error(
            "training stopped by %s at %s timesteps; not saving: the weights or the "
            "VecNormalize statistics are not finite. The last checkpoint stays the newest.",
            type(err).__name__,
            f"{model.num_timesteps:,}",
        )
        return
    try:
        saved = save_checkpoint(model, venv, run_dir / "checkpoints", INTERRUPTED)
    except Exception as save_err:
        log.error("could not save a checkpoint after the error: %s", save_err)
        return
    leg["checkpoint"] = str(saved.path)
    log.warning(
        "training stopped by an error at %s timesteps; saved %s. After fixing the "
        "cause, continue with: racing-rl train %s",
        f"{model.num_timesteps:,}",
        saved.path,
        path_override("resume", run_dir),
    )


def resume_run(
    run_dir: Path, overrides: Sequence[str]
) -> tuple[DictConfig, Checkpoint, dict[Path, str]]:
    """The config and checkpoint to continue a run with (``racing-rl train resume=``).

    The run's saved config with the overrides a resume may make, and the checkpoint it
    goes on from, checked (``racing_rl.arguments.check_resume``, which ``racing-rl train``
    also runs before Hydra starts); and the run's files that record the overrides,
    ``.hydra/config.yaml`` and ``overrides.yaml``, as their new texts: ``train`` writes
    them once the checkpoint has loaded, so that a resume that cannot start leaves them.

    Args:
        run_dir: the run directory.
        overrides: the command line's overrides.

    Raises:
        CheckpointError: as ``check_resume``: no run directory, no checkpoint that loads.
        ConfigError: as ``check_resume``: an override a resume may not make, or one the
            run never reads, an invalid config, a ``total_timesteps`` below the
            checkpoint's or one the run's final checkpoint is at, a damaged
            ``.hydra/overrides.yaml`` (checked here, before ``train`` records a leg in
            run.json).
    """
    cfg, checkpoint, recorded = check_resume(run_dir, overrides)
    if checkpoint.timesteps >= cfg.total_timesteps:
        # Stopped after its last rollout, or by an error after the final checkpoint
        # (before summary.json): the run only ends.
        log.info(
            "%s is at %s timesteps, total_timesteps=%s: nothing is left to train; the run "
            "ends as a finished one does (final model, final validation, summary.json)",
            checkpoint.path,
            f"{checkpoint.timesteps:,}",
            f"{cfg.total_timesteps:,}",
        )
    own = load_run_config(run_dir).total_timesteps
    if cfg.total_timesteps != own:  # said once the new total is taken
        log.info(
            "total_timesteps %s -> %s: the algorithm's schedules (a decaying learning rate or "
            "clip range, the teacher's weight) span the new total from here, so they jump to "
            "where it puts the run's timesteps",
            f"{own:,}",
            f"{cfg.total_timesteps:,}",
        )
    files = {run_dir / ".hydra" / "config.yaml": OmegaConf.to_yaml(cfg)}
    if recorded is not None:
        files[run_dir / ".hydra" / "overrides.yaml"] = recorded
    # A game run's checkpoint takes the size its game sent: pinned for this leg, a game
    # that sends another is named at once (else its size is taken, and the checkpoint
    # looks broken: "statistics for observations of shape (38,) ...").
    if cfg.backend.name == "roblox" and cfg.backend.get("observation_size") is None:
        size = trained_game(run_dir).get("observation_size")
        if isinstance(size, int):
            cfg.backend.observation_size = size
    return cfg, checkpoint, files


def train(
    cfg: DictConfig,
    run_dir: Path,
    resume: Checkpoint | None = None,
    resume_files: Mapping[Path, str] | None = None,
) -> dict[str, Any]:
    """Train ``cfg.algo`` on ``cfg.backend`` and write the run directory.

    Args:
        cfg: the composed ``train`` config.
        run_dir: the run directory (Hydra's output dir), already created.
        resume: a checkpoint of this run to continue from (see ``resume_run``).
        resume_files: the run's files a resume rewrites (``resume_run``), written once the
            checkpoint has loaded (and a Roblox game has connected).

    Returns:
        Summary: timesteps, wall time, env-steps/s and the best validation metrics.

    Raises:
        ConfigError: on invalid settings, before any training starts.
        CheckpointError: if ``resume`` cannot be loaded.
        TrainingInterrupted: on SIGINT/SIGTERM, after saving an ``interrupted`` checkpoint.

    Every invocation is a leg in ``run.json``; an error marks it ``failed`` with the
    error's text (what ``racing-rl report`` shows for a failed sweep job). With
    ``logger=wandb`` the leg records its W&B run's id (``wandb_id``), which the run's
    next resumed leg continues.
    """
    leg: dict[str, Any] = {
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": _command(),
        "pid": os.getpid(),
        "pid_started": process_start(os.getpid()),  # the pid alone may be reused
        "resumed_from": str(resume.path) if resume else None,
        "start_timesteps": None,
        "status": "running",
        **environment_record(),
    }
    record_leg(run_dir, leg)
    try:
        # A resumed leg continues the W&B run of the run's earlier legs.
        with wandb_run(cfg, run_dir, wandb_id(run_dir) if resume else None) as logged:
            if logged is not None:
                leg["wandb_id"] = logged.id
                record_leg(run_dir, leg)
            return _train(cfg, run_dir, resume, leg, resume_files or {})
    except TrainingInterrupted:
        raise
    except Exception as err:
        if (interrupt := _interrupt_behind(err)) is None:
            error = f"{type(err).__name__}: {err}"
            record_leg(run_dir, {**leg, "status": "failed", "error": error})
            raise
        log.debug("a Ctrl-C cut short a library's work, whose clean-up then failed: %r", err)
        raise _interrupted(interrupt, run_dir, leg) from None
    except KeyboardInterrupt as interrupt:
        raise _interrupted(interrupt, run_dir, leg) from None


def _interrupt_behind(err: BaseException) -> KeyboardInterrupt | None:
    """The Ctrl-C (or SIGTERM) that ``err`` was raised while handling, if any: a library
    cut short in the middle of its work, whose clean-up then failed (OmegaConf restoring
    a node's flags: ``'NoneType' object has no attribute '_invalidate_flags_cache'``)."""
    return next((c for c in causes(err) if isinstance(c, KeyboardInterrupt)), None)


def _interrupted(
    interrupt: KeyboardInterrupt, run_dir: Path, leg: dict[str, Any]
) -> TrainingInterrupted:
    """The ``TrainingInterrupted`` of a leg that a signal stopped before its first update
    (nothing saved in this leg), recorded as ``interrupted``."""
    # args: the signal's name, and the timesteps collected for the first update
    name = str(interrupt.args[0]) if interrupt.args and interrupt.args[0] else "SIGINT"
    collected = int(interrupt.args[1]) if len(interrupt.args) > 1 else 0
    record_leg(run_dir, {**leg, "status": "interrupted"})
    discarded = (
        f" ({collected:,} timesteps collected for its first update, discarded)" if collected else ""
    )
    setting_up = "while setting up, before any training"
    when = f"before the first update{discarded}" if collected else setting_up
    if _newest_checkpoint(run_dir) is not None:
        when = f"before this leg saved anything{discarded}"
    return TrainingInterrupted(
        f"Interrupted by {name} {when}; {_going_on(run_dir)}",
        exit_code=_exit_code(name),
    )


def _newest_checkpoint(run_dir: Path) -> Checkpoint | None:
    """The run's newest complete checkpoint; None if it has none."""
    try:
        return latest_checkpoint(run_dir)
    except CheckpointError:
        return None


def _going_on(run_dir: Path, first: str = "") -> str:
    """How a run goes on after a leg that saved nothing: from its newest checkpoint, which
    is unchanged, or, with none, from the start; ``first``: a sentence to say before how
    (what to fix)."""
    checkpoint = _newest_checkpoint(run_dir)
    if checkpoint is None:
        return f"nothing was saved. {first}Run the command again to start."
    resume = path_override("resume", run_dir)
    return (
        f"the newest checkpoint is still {checkpoint.path}. {first}Continue with: "
        f"racing-rl train {resume}"
    )


def _train(
    cfg: DictConfig,
    run_dir: Path,
    resume: Checkpoint | None,
    leg: dict[str, Any],
    resume_files: Mapping[Path, str],
) -> dict[str, Any]:
    """``train``'s work; updates ``leg`` in run.json as it goes.

    With ``backend=roblox`` it starts the bridge that training, validation and the
    ``RobloxCallback`` share. However training ends (an error, a refused ``init_from``,
    Ctrl-C), every environment it opened is closed, then the bridge is stopped: the
    game's cars leave with their environments.
    """
    check_train_config(cfg, new_run=resume is None)
    try:  # the user's own config may name anything; a loaded run's may not
        check_named_classes(OmegaConf.to_container(cfg, resolve=False))
    except ValueError as err:
        log.warning(
            "this run trains, but racing-rl eval, export and resume will refuse to load it: "
            "%s (docs/checkpoints.md)",
            err,
        )
    with ExitStack() as opened:  # closed last-in first-out, the bridge last
        bridge = None
        if cfg.backend.name == "roblox":
            from racing_rl.bridge.training_bridge import TrainingBridge

            bridge = TrainingBridge.from_config(backend_config(cfg.backend))
            opened.callback(bridge.close)
        return _train_on(cfg, run_dir, resume, leg, resume_files, bridge, opened)


def training_env(cfg: DictConfig, bridge: TrainingBridge | None = None) -> VecEnv:
    """The VecEnv ``racing-rl train`` trains on, built from ``cfg`` (the ``train``
    config): ``cfg.n_races`` races of ``cfg.cars_per_race`` learning cars on the training
    tracks (drawn from ``tracks.train_mix``'s generators too, with ``scripted_opponents``
    cars besides), behind ``cfg.wrappers``; ``bridge``: a Roblox game's. The benchmark
    scripts build it here too, so that they measure what training runs.

    Raises:
        ConfigError: on an invalid backend, mix or wrapper setting.
    """
    track_mix = train_mix(cfg)
    if track_mix:
        log.info(
            "training tracks: each drawn, equally often, from the run's own generator or "
            "that of %s (tracks.train_mix); validation and test tracks keep the run's own",
            ", ".join(cfg.tracks.train_mix),
        )
    opponents = int(cfg.get("scripted_opponents", 0))
    if opponents:
        log.info(
            "training races: %d learning cars and %d scripted ones each "
            "(scripted_opponents); the scripted cars are not VecEnv slots",
            cfg.cars_per_race,
            opponents,
        )
    base = make_env(
        cfg.backend,
        cfg.n_races,
        cfg.cars_per_race,
        [track_seeds(cfg.tracks.train, "tracks.train")] * cfg.n_races,
        bridge=bridge,
        track_mix=track_mix,
        scripted_opponents=opponents,
    )
    return wrap_vec_env(base, cfg.wrappers, gamma=discount(cfg.algo))


def _warn_if_untrained(cfg: DictConfig, model: BaseAlgorithm) -> None:
    """Warn of a budget with timesteps left that would leave the policy as it is: within
    an off-policy algorithm's ``learning_starts``, or ending within an on-policy
    algorithm's first rollout, whose only update the learning-rate schedule zeroes."""
    starts = int(getattr(model, "learning_starts", 0))
    if cfg.total_timesteps <= starts:
        log.warning(
            "total_timesteps=%s is within algo.model.learning_starts=%s: %s only collects "
            "experience and never updates its policy, so the saved model is untrained. Raise "
            "total_timesteps or lower learning_starts.",
            f"{cfg.total_timesteps:_}",
            f"{starts:_}",
            cfg.algo.name,
        )
    if isinstance(model, OnPolicyAlgorithm):
        first = model.num_timesteps + model.n_steps * model.n_envs  # the first update's
        if (
            first >= cfg.total_timesteps
            and model.lr_schedule(1.0 - first / cfg.total_timesteps) <= 0
        ):
            log.warning(
                "total_timesteps=%s ends within %s's first rollout (%s timesteps): by its "
                "only update the learning-rate schedule has run down to 0, so the policy does "
                "not change. Raise total_timesteps past %s.",
                f"{cfg.total_timesteps:_}",
                cfg.algo.name,
                f"{model.n_steps * model.n_envs:_}",
                f"{first:_}",
            )


def _validation_callback(
    cfg: DictConfig,
    run_dir: Path,
    bridge: TrainingBridge | None,
    resume: Checkpoint | None,
    run_objective: Callable[[Mapping[str, float | None]], float],
    pause: Callable[[], None] | None,
    interrupts: TrainingSignals,
    opened: ExitStack,
    venv: VecEnv,
) -> ValidationCallback:
    """The callback that validates the policy every ``validation.every`` timesteps on the
    validation tracks (in a game: one more environment of ``cars_per_race`` cars) and keeps
    the best in ``<run dir>/best``; its env is closed by ``opened``. In a game, ``venv``
    (the training environments) drops the ticks its cars drove blind meanwhile. A model
    that an earlier leg validated (``resume``'s, its row in ``progress.csv``) is not
    validated again."""
    seeds = track_seeds(cfg.tracks.validation, "tracks.validation")
    if bridge is None:
        eval_env = evaluation_env(cfg, seeds)
    else:  # one more environment in the game, of cars_per_race cars
        eval_env = evaluation_env(cfg, seeds[:1], agents=cfg.cars_per_race, bridge=bridge)
    opened.callback(eval_env.close)
    if bridge is not None:
        tick_hz = 1.0 / bridge.tick_period(cfg.backend.rules.dt)
        log.info(
            "validation in the game: %d cars, each until its first episode ends or "
            "for at most validation.max_steps=%d ticks (%.0f s at the game's %.1f Hz); "
            "it ranks checkpoints by mean episode return (objective=return): the "
            "game sends no lap information",
            cfg.cars_per_race,
            cfg.validation.max_steps,
            cfg.validation.max_steps / tick_hz,
            tick_hz,
        )
    video = cfg.validation.get("video")
    # The checkpoint's model was validated by an earlier leg (a kill -9 after the
    # validation, before its record was cleared or the run's summary written): its row is
    # in progress.csv, which sb3_logger kept up to the checkpoint.
    validated_at = None
    if resume is not None and validation_logged(run_dir / "progress.csv", resume.timesteps):
        validated_at = resume.timesteps
    return ValidationCallback(
        eval_env,
        cfg.validation.every,
        run_dir / "best",
        run_objective,
        video=ValidationVideo(cfg, seeds[0], video.every, video.max_steps, (video.size, video.size))
        if video and video.every > 0 and bridge is None
        else None,
        pause=pause,
        after=None if bridge is None else functools.partial(_after_game_validation, eval_env, venv),
        hold=interrupts.held,
        laps=bridge is None,
        due_at_start=resume is not None and resume.validation_due and validated_at is None,
        validated_at=validated_at,
    )


def _after_game_validation(eval_env: VecEnv, venv: VecEnv) -> None:
    """End a validation in a game: its cars leave the game, and the training cars' ticks
    since their last step, driven blind on their last actions while the game could not
    be frozen for them alone, are not their next steps' (``RobloxParallelEnv``'s
    ``remove_cars``, ``drop_unread``)."""
    eval_env.env_method("remove_cars")
    venv.env_method("drop_unread")


def _write_summary(
    run_dir: Path,
    leg: dict[str, Any],
    model: BaseAlgorithm,
    start_timesteps: int,
    seconds: float,
    kind: str,
    run_objective: Callable[[Mapping[str, float | None]], float],
) -> dict[str, Any]:
    """Write a completed leg's ``summary.json`` (timesteps, seconds, env-steps/s, the best
    validation and its objective), record the leg as completed and log what was done.

    Returns:
        The summary.
    """
    trained = model.num_timesteps - start_timesteps
    summary: dict[str, Any] = {
        "timesteps": int(model.num_timesteps),
        "seconds": seconds,
        # None if this leg only finished a run that had trained to the end (resume=)
        "env_steps_per_s": trained / seconds if trained else None,
    }
    # no best/ if stopped before any validation; a resumed leg without validation
    # reports the earlier legs' best/
    best = read_record(run_dir / "best" / "metrics.json", "summary.json has no best")
    if best is not None:
        summary["best"] = best
        summary["objective"] = {"kind": kind, "value": run_objective(best)}
    write_json(run_dir / "summary.json", summary)
    record_leg(run_dir, {**leg, "status": "completed", "end_timesteps": model.num_timesteps})
    if not best:
        figures = ""
    elif kind == "return":  # a Roblox game sends no lap information
        figures = f"; best validation: mean return {best['mean_return']:.1f}"
    else:
        figures = f"; best validation: {lap_figures(best)}"
    if trained:
        # A resumed leg: its own steps and time beside the run's total.
        leg_steps = f" (this leg {trained:,})" if start_timesteps else ""
        log.info(
            "done: %s timesteps%s in %.0f s (%.0f env-steps/s)%s",
            f"{summary['timesteps']:,}",
            leg_steps,
            seconds,
            summary["env_steps_per_s"],
            figures,
        )
    else:
        log.info("done: %s timesteps%s", f"{summary['timesteps']:,}", figures)
    return summary


def _warn_if_best_is_newer(run_dir: Path, resume: Checkpoint) -> None:
    """Warn if the run's ``best/`` was validated after the checkpoint a resume loaded:
    training a kill -9 lost (no checkpoint of it), whose model stays ``best/`` until a
    validation of this leg beats it.

    Args:
        run_dir: the run directory.
        resume: the checkpoint this leg resumes from.
    """
    best_at = recorded_timesteps(run_dir / "best" / "metrics.json")
    if best_at is not None and best_at > resume.timesteps:  # after a kill -9
        log.warning(
            "best/ holds the model validated at %s timesteps, after %s: it comes from "
            "training lost when the run stopped with no checkpoint. It stays best/ until a "
            "validation of this leg beats it",
            f"{best_at:,}",
            resume.path.name,
        )


def _budget(model: BaseAlgorithm, total_timesteps: int, left: int) -> str:
    """What a leg has to train, as its start line says it: ``left`` timesteps, where a
    resumed run stands, and where ``learn`` will stop past ``total_timesteps`` (SB3
    checks the budget only between rollouts: ``planned_timesteps``).

    Args:
        model: the model, at the leg's first timestep.
        total_timesteps: the run's budget (absolute).
        left: the timesteps left to train, ``total_timesteps`` less the model's (not < 0).

    Returns:
        The budget's text, e.g. ``"5,000 timesteps (it stops at 5,120, after the rollout
        that reaches them)"``.
    """
    budget = f"{left:,} timesteps"
    if model.num_timesteps:  # resumed
        budget += f" left (at {model.num_timesteps:,} of {total_timesteps:,})"
    end = planned_timesteps(model, total_timesteps)
    if left and end != total_timesteps:  # SB3 checks the budget only between rollouts
        budget += f" (it stops at {end:,}, after the rollout that reaches them)"
    return budget


def _save_interrupted(
    model: BaseAlgorithm,
    venv: VecEnv,
    run_dir: Path,
    leg: dict[str, Any],
    name: str,
    validation_due: bool,
    total_timesteps: int,
) -> TrainingInterrupted:
    """Save the ``interrupted`` checkpoint of a leg that a signal stopped after its first
    update, and record the leg in run.json as ``interrupted``.

    Args:
        model: the model, its ``num_timesteps`` already rewound to those trained on.
        venv: the training VecEnv (its VecNormalize statistics are saved, if any).
        run_dir: the run directory.
        leg: this leg's record in run.json.
        name: the signal's name (``SIGINT``, ``SIGTERM``, ``SIGUSR2``).
        validation_due: the validation due at this timestep has not run to its end.
        total_timesteps: the run's budget, to say whether a resume continues or only
            finishes the run.

    Returns:
        The ``TrainingInterrupted`` to raise (once a chained handler has had its turn):
        where the checkpoint is and how to continue; where it could not be saved (a full
        disk), why, and the run's newest checkpoint instead (the leg records that as its
        ``error``). Exit code 128 + the signal's number either way, so that a sweep stops.
    """
    try:
        checkpoint = save_checkpoint(
            model, venv, run_dir / "checkpoints", INTERRUPTED, validation_due=validation_due
        )
    except Exception as err:  # a full disk: say so, not that nothing was trained
        full = disk_full(err)
        why = (
            f"{full.filename}: {full.strerror}"
            if full
            else f"{type(err).__name__}: {one_line(err)}"
        )
        unsaved = f"its checkpoint could not be saved ({why})"
        record_leg(run_dir, {**leg, "status": "interrupted", "error": unsaved})
        fix = "Free space on that disk first. " if full else "Fix that first. "
        return TrainingInterrupted(
            f"Training interrupted by {name} at {model.num_timesteps:,} timesteps, but "
            f"{unsaved}; {_going_on(run_dir, fix)}",
            exit_code=_exit_code(name),
        )
    end = {"status": "interrupted", "end_timesteps": model.num_timesteps}
    record_leg(run_dir, {**leg, **end})
    left = "Continue" if model.num_timesteps < total_timesteps else "Finish the run"
    again = path_override("resume", run_dir)
    return TrainingInterrupted(
        f"Training interrupted by {name} at {model.num_timesteps:,} timesteps; saved "
        f"{checkpoint.path}. {left} with: racing-rl train {again}",
        exit_code=_exit_code(name),
    )


def _validate_final(
    model: BaseAlgorithm,
    validation: ValidationCallback | None,
    interrupts: TrainingSignals,
    run_dir: Path,
) -> tuple[str | None, bool]:
    """After the final save, let the final model compete for ``best/``, unless a signal
    came during that save or the model was validated at this timestep already; a signal
    during the validation stops it (``best/`` is written whole). Logs when a signal left
    the final model unvalidated.

    Args:
        model: the final model.
        validation: the leg's validation callback (None: validation.every=0).
        interrupts: the leg's signal handlers, ``saving`` set by the final save; set again
            here after a validation that ran to its end.
        run_dir: the run directory.

    Returns:
        The name of the signal that came during the final save or validation (None if
        none did), and whether the final model has been validated.
    """
    stopped = interrupts.pending  # a signal during the save skips the final validation
    due = validation is not None and validation.last != model.num_timesteps
    validated = not due
    if due and not stopped:
        try:
            interrupts.saving = False
            log.info(
                "validating the final model (%s timesteps) for best/",
                f"{model.num_timesteps:,}",
            )
            validation.validate()  # let the final model compete for best/
            validated = interrupts.saving = True
        except KeyboardInterrupt as interrupt:  # best/ is written whole (held)
            stopped = str(interrupt) or "SIGINT"
            # Raised once best/ was written: the final model did compete, and won.
            validated = recorded_timesteps(run_dir / "best" / "metrics.json") == model.num_timesteps
    if stopped and not validated:
        log.warning(
            "%s: the final model is saved; its validation is skipped, so %s",
            stopped,
            "best/ is the best of the earlier validations"
            if recorded_timesteps(run_dir / "best" / "metrics.json") is not None
            else "the run has no best/",
        )
    return stopped, validated


def _stopped_at_end(name: str, run_dir: Path, validated: bool) -> TrainingInterrupted:
    """The ``TrainingInterrupted`` of a run that a signal reached once it was complete
    (during the final save, validation or summary): the run needs no resume, but the
    signal still stops a sweep.

    Args:
        name: the signal's name (``SIGINT``, ``SIGTERM``).
        run_dir: the run directory.
        validated: whether the final model was validated.

    Returns:
        The exception, with exit code 128 + the signal's number.
    """
    unvalidated = (
        ""
        if validated
        else " but for the final model's validation (racing-rl eval "
        f"run_dir={run_dir} checkpoint=final measures it)"
    )
    return TrainingInterrupted(
        f"Stopped by {name} at the end of the run; {run_dir} is complete{unvalidated}.",
        exit_code=_exit_code(name),
    )


def _train_on(
    cfg: DictConfig,
    run_dir: Path,
    resume: Checkpoint | None,
    leg: dict[str, Any],
    resume_files: Mapping[Path, str],
    bridge: TrainingBridge | None,
    opened: ExitStack,
) -> dict[str, Any]:
    """``_train`` with the Roblox backend's ``bridge`` (None for the simulator); the
    VecEnvs it makes are closed by ``opened``."""
    torch.set_num_threads(cfg.torch_threads)
    venv = training_env(cfg, bridge)
    opened.callback(venv.close)
    if resume is not None:
        model = load_for_resume(cfg, resume, venv)
        _warn_if_best_is_newer(run_dir, resume)
    elif cfg.get("init_from"):
        model, venv = initialize_from(cfg, Path(cfg.init_from).expanduser(), venv)
    else:
        model = make_model(cfg.algo, venv, seed=cfg.seed, device=cfg.device)
    model.set_logger(sb3_logger(run_dir, 0 if resume is None else model.num_timesteps))
    # Closed when the leg ends: a sweep's jobs share one process, and each left its
    # progress.csv open and its TensorBoard writer's thread running until the sweep ended.
    opened.callback(model.logger.close)
    if bridge is not None:  # which game this leg trains with (its first reset waits too)
        bridge.wait_for_game(cfg.backend.connect_timeout, why="training starts")
        leg["game"] = {
            "model_id": bridge.server.model_id,
            "observation_size": bridge.server.observation_size,
        }
    for path, text in resume_files.items():  # the resume starts: its overrides are the run's
        write_atomic(path, lambda tmp, text=text: tmp.write_text(text))
    leg["start_timesteps"] = int(model.num_timesteps)
    record_leg(run_dir, leg)
    left = max(0, cfg.total_timesteps - model.num_timesteps)  # < 0: stopped past the total
    log.info(
        "%s %s on %s: %d cars (%d tracks x %d), %s, run dir %s",
        "resuming" if resume else "training",
        cfg.algo.name,
        cfg.backend.name,
        venv.num_envs,
        cfg.n_races,
        cfg.cars_per_race,
        _budget(model, cfg.total_timesteps, left),
        run_dir,
    )
    if left:
        _warn_if_untrained(cfg, model)

    checkpoints_dir = run_dir / "checkpoints"
    trained_on = _TrainedTimesteps()
    callbacks: list[BaseCallback] = [trained_on, RaceMetricsCallback()]
    bar = ProgressBar() if cfg.progress_bar else None
    if bar is not None:
        callbacks.append(bar)
    interrupts = TrainingSignals()
    pause = None
    if bridge is not None:
        roblox = RobloxCallback(bridge, freeze=cfg.backend.freeze_during_updates)
        callbacks.append(roblox)
        pause = roblox.pause
    lap_time_limit = cfg.validation.max_steps * cfg.backend.rules.dt
    kind = objective_kind(cfg)
    run_objective = partial(objective, kind=kind, lap_time_limit=lap_time_limit)
    validation = None
    if cfg.validation.every > 0:
        validation = _validation_callback(
            cfg, run_dir, bridge, resume, run_objective, pause, interrupts, opened, venv
        )
    if cfg.checkpoint.every > 0:  # before the validation due at the same rollout start
        keep = int(cfg.checkpoint.get("keep") or 0)  # null: all, as 0
        callbacks.append(
            CheckpointCallback(
                cfg.checkpoint.every,
                checkpoints_dir,
                cfg.algo.name,
                keep,
                pause,
                interrupts.held,
                validation=validation,
            )
        )
    if validation is not None:
        callbacks.append(validation)
    elif (
        resume is not None
        and resume.validation_due
        # unless an earlier leg ran it to its end (killed before clearing the record)
        and not validation_logged(run_dir / "progress.csv", resume.timesteps)
    ):
        log.warning(
            "the validation due at %s timesteps (cut short when the run stopped) is skipped: "
            "validation.every=0",
            f"{resume.timesteps:,}",
        )

    started = time.perf_counter()
    start_timesteps = model.num_timesteps
    normalizer = model.get_vec_normalize_env()
    if not left and normalizer is not None:  # learn's first reset would update them
        normalizer.training = False
    # The environments close inside this block (``opened``, which ``_train`` holds too),
    # however it ends, while the signal handlers still hold a Ctrl-C for the run's files.
    with interrupts, opened:
        try:
            with closing(bar) if bar is not None else nullcontext():
                model.learn(
                    total_timesteps=max(0, cfg.total_timesteps - model.num_timesteps),
                    callback=CallbackList(callbacks),
                    log_interval=cfg.log_interval,
                    reset_num_timesteps=resume is None,
                )
        except KeyboardInterrupt as interrupt:
            interrupts.saving = True
            name = str(interrupt) or "SIGINT"
            discarded = trained_on.rewind(cfg.algo.name, start_timesteps)
            if model.num_timesteps == start_timesteps:  # no update yet: nothing to save
                interrupts.chain()
                raise KeyboardInterrupt(name, discarded) from None
            owed = validation is not None and validation.owed(model.num_timesteps)
            stop = _save_interrupted(model, venv, run_dir, leg, name, owed, cfg.total_timesteps)
            interrupts.chain()  # submitit's requeue exits here: it resumes from the checkpoint
            raise stop from None
        except Exception as err:
            interrupts.saving = True
            trained_on.rewind(cfg.algo.name, start_timesteps)
            # Nothing trained in this leg (an error at the first reset): nothing to save.
            if model.num_timesteps > start_timesteps:
                _save_after_error(model, venv, run_dir, leg, err)
            leg["end_timesteps"] = model.num_timesteps
            raise
        seconds = time.perf_counter() - started
        interrupts.saving = True  # from here a signal waits for the run's files
        save_checkpoint(model, venv, checkpoints_dir, FINAL)
        save_model_files(model, venv, run_dir)
        stopped, validated = _validate_final(model, validation, interrupts, run_dir)
        summary = _write_summary(run_dir, leg, model, start_timesteps, seconds, kind, run_objective)
        opened.close()  # the environments: a signal meanwhile is held, and read below
        stopped = stopped or interrupts.pending
    if stopped:  # the run is complete; the signal still stops a sweep
        raise _stopped_at_end(stopped, run_dir, validated)
    return summary

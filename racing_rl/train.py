"""``racing-rl train``: the Hydra app (parse, ``racing_rl.training.train``, exit status).

``main`` reads the run directory from ``HydraConfig``; with ``resume=<run dir>`` it
loads the run's own config (``.hydra/config.yaml``, with the overrides a resume may
make) and continues from its newest checkpoint. ``CheckConfig`` checks a single run's
config before Hydra creates its run directory. The resolvers conf/train.yaml and its
launchers use are ``racing_rl.config``'s.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from filelock import BaseFileLock, FileLock, Timeout
from hydra.core.hydra_config import HydraConfig
from hydra.errors import OverrideParseException
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from racing_rl.arguments import check_unread_config
from racing_rl.checkpoints.layout import find_checkpoints, saved_work
from racing_rl.checkpoints.runs import RESUMABLE, check_init_from
from racing_rl.checks import check_train_config
from racing_rl.config import (
    SweepJobFailed,
    SweepSignals,
    check_known_keys,
    check_output_dir,
    defining_overrides,
    hydra_main,
    job_failed,
    path_override,
    recorded_sweep,
    sweep_identity,
    sweep_overrides,
    under,
)
from racing_rl.errors import ConfigError, RacingRLError, TrainingInterrupted, disk_full, print_error
from racing_rl.interrupts import in_command_process
from racing_rl.loggers import check_logger
from racing_rl.provenance import read_legs
from racing_rl.training import resume_run, train

log = logging.getLogger(__name__)


def sweep_hint(hydra_cfg: DictConfig) -> str:
    """How to finish the sweep of the Hydra config ``hydra_cfg`` once it was interrupted:
    an Optuna study continues with the same command (a resumed trial would not report to
    it); a basic sweep with the same command in its directory (``_completed_before``)."""
    if "optuna" in str(OmegaConf.select(hydra_cfg, "sweeper._target_", default="")).lower():
        return (
            "This run is a trial of an Optuna search, and a resumed trial does not report to "
            "its study: to continue the search, run the sweep's command again (this trial is "
            "marked failed and another runs in its place)."
        )
    sweep_dir = path_override("hydra.sweep.dir", hydra_cfg.sweep.dir)
    return (
        f"To finish the sweep, run its command again with {sweep_dir}: its completed jobs "
        "are kept, interrupted ones resume from their newest checkpoint, the others run."
    )


def _earlier_sweep(sweep_dir: Path) -> list[str] | None:
    """The overrides (``defining_overrides``, in the order given) of the sweep that
    ``sweep_dir``'s ``multirun.yaml`` records (the basic sweeper writes it); None if there
    is none."""
    recorded = recorded_sweep(sweep_dir)
    try:
        return None if recorded is None else defining_overrides(recorded)
    except OverrideParseException:
        return None


def _completed_before(run_dir: Path, overrides: list[str]) -> bool:
    """For a sweep's job whose directory holds its run from an earlier start of the same
    sweep: whether that run completed (it is kept; else it is resumed).

    Raises:
        ConfigError: if the directory holds a run of other overrides.
    """
    try:
        saved = OmegaConf.load(run_dir / ".hydra" / "overrides.yaml")
    except OSError as err:
        raise ConfigError(f"{run_dir} holds a run but not its .hydra/overrides.yaml") from err
    if sweep_overrides([str(o) for o in saved]) != sweep_overrides(overrides):
        raise ConfigError(
            f"{run_dir} holds a run of other overrides ({' '.join(str(o) for o in saved)}): "
            "give this sweep its own hydra.sweep.dir"
        )
    try:
        legs = read_legs(run_dir)
    except (OSError, ValueError):  # none, or damaged: the checkpoints say what is left
        legs = []
    return (
        bool(legs)
        and legs[-1].get("status") == "completed"
        and (run_dir / "summary.json").is_file()
    )


def check_new_run_dir(run_dir: Path) -> None:
    """Refuse to start a new run in ``run_dir`` if a run has saved anything there: the two
    would share ``best/``, ``checkpoints/`` and the history, and the old run's saved
    config would be replaced. (A run stopped before its first save may be started again.)

    Raises:
        ConfigError: naming the directory and what it holds, and ``resume=``.
    """
    saved = saved_work(run_dir)
    if saved:
        raise ConfigError(
            f"{run_dir} already holds a run ({', '.join(saved[:3])}"
            f"{', ...' if len(saved) > 3 else ''}): continue it with "
            f"{path_override('resume', run_dir)}, or "
            "train a new run elsewhere (leave hydra.run.dir out for a new dated directory)."
        )


RUN_LOCK = ".lock"
#: What to do when a new run's directory is held (``lock_run_dir``'s ``then``).
SAME_DIR = (
    "start this one again (two runs started in the same second get the same dated "
    "directory), give each run its own hydra.run.dir=..., or run them as one sweep "
    "(racing-rl train -m seed=0,1,2,3)."
)
#: ... when the command named it (``hydra.run.dir=``): starting again would meet it again.
NAMED_DIR = (
    "wait for that run to end, or give this one another hydra.run.dir=... (or leave it out "
    "for a new dated directory)."
)


def lock_run_dir(run_dir: Path, *, what: str, then: str) -> BaseFileLock | None:
    """Hold ``run_dir/.lock`` (created, with ``run_dir``, if need be) while this process
    runs, so that no other ``racing-rl train`` writes into the directory meanwhile. The
    operating system releases it when the process ends, however it ends (``filelock``: an
    ``flock`` on POSIX, ``msvcrt.locking`` on Windows), where the filesystem has locks.

    Args:
        run_dir: a run or sweep directory.
        what: the directory's kind in the error message ("run", "sweep").
        then: what to do instead, for the error message.

    Returns:
        The held lock; None, with a warning, where the filesystem cannot lock (some
        network or FUSE mounts): the run goes on unguarded.

    Raises:
        ConfigError: if another process holds the lock.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(run_dir / RUN_LOCK)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise ConfigError(
            f"another racing-rl process is running the {what} in {run_dir} ({RUN_LOCK} is "
            f"held): {then}"
        ) from None
    except (OSError, NotImplementedError) as err:
        log.warning(
            "cannot lock %s (%s): another racing-rl train in this directory would not be refused",
            run_dir / RUN_LOCK,
            err,
        )
        return None
    return lock


class CheckConfig(SweepSignals):
    """Hydra callback (``hydra.callbacks`` in conf/train.yaml): check a single run's
    config before Hydra creates its run directory, so that an invalid one leaves nothing
    behind. (A sweep's jobs are checked in ``train``: a failed job keeps its run.json.)

    It then holds the run's (or the sweep's) directory (``lock_run_dir``) until the run
    ends: two runs started in the same second get the same dated directory, and a run
    resumed while it still trains would write into its own files. In a sweep it is also
    ``SweepSignals``.
    """

    def __init__(self) -> None:
        self._lock: BaseFileLock | None = None

    def __getstate__(self) -> dict[str, Any]:
        # Launchers that run jobs in other processes (joblib, submitit) pickle the
        # callbacks; the lock stays with the process that holds it.
        return {**self.__dict__, "_lock": None}

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Check ``config`` (a resumed run's is checked once it is loaded), also for a
        setting the composed config never reads (``check_unread_config``: an experiment
        that chooses ``backend: roblox``, with ``validation.video.every=1``), that its run
        directory holds no run yet, and that no other process runs there.

        Raises:
            SystemExit: 1, after printing the error (``racing_rl.errors.print_error``), if the
                config is invalid, the directory already holds a run, or another process
                runs in it.
        """
        run_dir = Path(str(OmegaConf.select(config, "hydra.run.dir")))
        try:
            if config.get("resume"):
                resumed = Path(str(config.resume)).expanduser()
                if resumed.resolve() != run_dir.expanduser().resolve():
                    raise ConfigError(
                        f"resume={resumed} with hydra.run.dir={run_dir}: a run is resumed in "
                        "its own directory. Leave hydra.run.dir out (to train a copy of a "
                        "run elsewhere, copy its directory and resume the copy)."
                    )
                if run_dir.is_dir():  # else resume_run says it is no run directory
                    self._lock = lock_run_dir(
                        run_dir,
                        what="run",
                        then="it is still training. Wait for it to end, or stop it (Ctrl-C "
                        "saves a checkpoint), then resume.",
                    )
                return
            check_known_keys(config, "train")
            check_train_config(config)
            experiment = OmegaConf.select(config, "hydra.runtime.choices.experiment")
            composed = "as composed" + (f" with experiment={experiment}" if experiment else "")
            check_unread_config("train", config, config.hydra.overrides.task, composed)
            check_logger(config)
            if config.get("init_from"):
                check_init_from(config, Path(config.init_from).expanduser())
            named = any(
                str(o).startswith("hydra.run.dir=")
                for o in OmegaConf.select(config, "hydra.overrides.hydra", default=[]) or []
            )
            then = NAMED_DIR if named else SAME_DIR
            locked = (run_dir / RUN_LOCK).exists()
            if locked:  # a run may still be training there: say that first
                self._lock = lock_run_dir(run_dir, what="run", then=then)
            check_new_run_dir(run_dir)
            if not locked:  # a valid config, a free directory: only now is it made
                check_output_dir(run_dir, "hydra.run.dir", "train.log")
                self._lock = lock_run_dir(run_dir, what="run", then=then)
        except RacingRLError as err:
            print_error("train", err)
            raise SystemExit(1) from err
        except OmegaConfBaseException as err:  # e.g. ~algo.teacher_coef, which a key uses
            first = str(err).splitlines()[0]
            why = "a key that another key refers to was removed (~) or never set"
            if "Environment variable" in first:  # ${oc.env:NAME} of a variable not set
                why = "set that environment variable, or give the value itself"
            unresolved = ConfigError(
                f"Invalid config: {first} (full key: {getattr(err, 'full_key', '?')}): {why}; "
                "racing-rl train --cfg job shows the config."
            )
            print_error("train", unresolved)
            raise SystemExit(1) from err

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Refuse an Optuna search of runs that return no objective (validation off), and a
        sweep into a directory that holds an earlier sweep's runs (its job directories
        would be reused), unless a named study or the same sweep (``sweep_overrides``, a
        continued sweep: ``_completed_before``) continues there. Then hold the sweep
        directory until the sweep ends (``lock_run_dir``); from then on a signal stops the
        sweep (``racing_rl.interrupts``).

        Raises:
            SystemExit: 1, after printing the error: every trial would fail, then Optuna;
                or another process runs a sweep in the directory.
        """
        sweeper = str(OmegaConf.select(config, "hydra.sweeper._target_", default=""))
        sweep_dir = Path(str(OmegaConf.select(config, "hydra.sweep.dir")))
        runs = sorted(job for job in sweep_dir.glob("*/") if saved_work(job))
        try:
            if runs and OmegaConf.select(config, "hydra.sweeper.study_name") is None:
                earlier = _earlier_sweep(sweep_dir)
                given = sweep_identity(config.hydra.overrides.task)
                # The same sweeps in another order number the jobs otherwise: job 1 would
                # be another job's directory, and the jobs run again beside their own.
                if earlier is None or sweep_identity(earlier) != given:
                    raise ConfigError(
                        f"hydra.sweep.dir={sweep_dir} already holds the runs of an earlier "
                        f"sweep ({len(runs)}, e.g. {runs[0].name}): its jobs would reuse "
                        "their directories. Leave hydra.sweep.dir out for a new dated one, "
                        "or choose another"
                        + (
                            " (the same command continues that sweep: its overrides were, "
                            f"in this order, "
                            f"{' '.join(earlier) or '(none)'})."
                            if earlier is not None
                            else "."
                        )
                    )
                log.info(
                    "continuing the sweep in %s: its %d jobs with saved work are kept "
                    "(completed) or resumed from their newest checkpoint; the others run",
                    sweep_dir,
                    len(runs),
                )
            if "optuna" in sweeper.lower() and config.validation.every == 0:
                raise ConfigError(
                    "Invalid config: validation.every=0 with an Optuna sweeper: a run without "
                    "validation has no objective to maximise. Set validation.every > 0 (e.g. "
                    "validation.every=50000)."
                )
            check_output_dir(sweep_dir, "hydra.sweep.dir", "multirun.yaml")
            self._lock = lock_run_dir(
                sweep_dir,
                what="sweep",
                then="start this one again (two sweeps started in the same second get the "
                "same dated directory), or give it its own hydra.sweep.dir=...",
            )
            super().on_multirun_start(config)
        except ConfigError as err:
            print_error("train", err)
            raise SystemExit(1) from err

    def continue_with(self, config: DictConfig) -> str:
        """The same command, in the same sweep directory (or, for an Optuna study, the
        same command): see ``sweep_hint``."""
        return sweep_hint(config.hydra)

    def on_run_end(self, config: DictConfig, **kwargs: Any) -> None:
        """Release the run's (or, as ``on_multirun_end``, the sweep's) directory."""
        if self._lock is not None:
            self._lock.release()

    on_multirun_end = on_run_end


@hydra_main("train")
def main(cfg: DictConfig) -> float | None:
    """Hydra entry point of ``racing-rl train``.

    Returns:
        The run's objective (``racing_rl.objective``; None with validation off): what
        Hydra's sweepers record and Optuna maximises.

    Raises:
        SystemExit: on a config or checkpoint error (1) or an interruption (128 + signal)
            in a single run, or an interruption of a sweep's job that runs in the sweep's
            own process (hydra/launcher=basic: the sweep stops). In a multirun a failed
            job's error is re-raised instead, as ``SweepJobFailed``, so that Hydra marks the
            job failed and the sweep's other jobs go on; so is the interruption of a job in
            a worker process (joblib's: an exception there would make joblib kill the other
            workers).
    """
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    job_lock = None
    try:
        if hydra_cfg.mode == RunMode.MULTIRUN:  # the sweep holds its directory, a job its own
            job_lock = lock_run_dir(
                run_dir, what="run", then="a sweep job's directory is the sweep's to use."
            )
        checkpoint, resume_files = None, {}
        if cfg.get("resume"):
            cfg, checkpoint, resume_files = resume_run(run_dir, hydra_cfg.overrides.task)
        elif hydra_cfg.mode == RunMode.MULTIRUN and saved_work(run_dir):  # a continued sweep
            overrides = list(hydra_cfg.overrides.task)
            if _completed_before(run_dir, overrides):
                log.info("%s completed when this sweep ran before: kept", run_dir)
                summary = json.loads((run_dir / "summary.json").read_text())
                print(run_dir, flush=True)  # its result, as a job that trains prints it
                return summary.get("objective", {}).get("value")
            if find_checkpoints(run_dir):
                cfg, checkpoint, resume_files = resume_run(
                    run_dir, [o for o in overrides if under(o.split("=", 1)[0], RESUMABLE)]
                )
                log.info(
                    "resuming %s (this sweep's job from before) from %s", run_dir, checkpoint.path
                )
            else:  # killed after a validation (best/) but before its first checkpoint
                log.warning(
                    "%s (this sweep's job from before) stopped before its first checkpoint: "
                    "it trains again from the start, and its best/ competes",
                    run_dir,
                )
        summary = train(cfg, run_dir, resume=checkpoint, resume_files=resume_files)
        print(run_dir, flush=True)  # stdout: the result, RUN=$(racing-rl train ...)
    except TrainingInterrupted as err:
        log.warning("%s", err)
        if hydra_cfg.mode == RunMode.MULTIRUN:
            log.warning("%s", sweep_hint(hydra_cfg))
            if not in_command_process():
                raise SweepJobFailed(f"interrupted: {err}") from None
        raise SystemExit(err.exit_code) from err
    except RacingRLError as err:
        log.error("%s", err)
        job_failed(err)
    except Exception as err:
        if (full := disk_full(err)) is None:
            raise
        then = "run the command again"
        if saved_work(run_dir):
            then = f"continue with: racing-rl train {path_override('resume', run_dir)}"
        log.error(
            "%s: %s. What the run saved before is whole (every file is written beside its "
            "name and renamed in once complete). Free space on that disk, then %s",
            full.filename or run_dir,
            full.strerror or full,
            then,
        )
        job_failed(full)
    finally:
        if job_lock is not None:
            job_lock.release()
    return summary.get("objective", {}).get("value")

"""``racing-rl train``: the Hydra app (parse, ``racing_rl.training.train``, exit status).

``main`` reads the run directory from ``HydraConfig``; with ``resume=<run dir>`` it
loads the run's own config (``.hydra/config.yaml``, with the overrides a resume may
make) and continues from its newest checkpoint. ``CheckConfig`` checks a single run's
config before Hydra creates its run directory. The resolvers conf/train.yaml and its
launchers use are ``racing_rl.config``'s.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from filelock import BaseFileLock, FileLock, Timeout
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from racing_rl.checkpoints.layout import MODEL
from racing_rl.checkpoints.runs import check_init_from
from racing_rl.checks import check_train_config
from racing_rl.cli import print_error
from racing_rl.config import (
    SweepJobFailed,
    SweepSignals,
    check_known_keys,
    hydra_main,
    job_failed,
    path_override,
)
from racing_rl.errors import ConfigError, RacingRLError, TrainingInterrupted
from racing_rl.interrupts import in_command_process
from racing_rl.loggers import check_logger
from racing_rl.training import resume_run, train

log = logging.getLogger(__name__)


def saved_work(run_dir: Path) -> list[str]:
    """What a run has saved in ``run_dir``: of ``model.zip``, ``best/`` and the entries of
    ``checkpoints/``, those that exist (empty for a run stopped before its first save)."""
    found = [name for name in (MODEL, "best") if (run_dir / name).exists()]
    return found + [f"checkpoints/{p.name}" for p in sorted((run_dir / "checkpoints").glob("*"))]


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
        """Check ``config`` (a resumed run's is checked once it is loaded), that its run
        directory holds no run yet, and that no other process runs there.

        Raises:
            SystemExit: 1, after printing the error (``racing_rl.cli.print_error``), if the
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
            check_logger(config)
            if config.get("init_from"):
                check_init_from(config, Path(config.init_from).expanduser())
            locked = (run_dir / RUN_LOCK).exists()
            if locked:  # a run may still be training there: say that first
                self._lock = lock_run_dir(run_dir, what="run", then=SAME_DIR)
            check_new_run_dir(run_dir)
            if not locked:  # a valid config, a free directory: only now is it made
                self._lock = lock_run_dir(run_dir, what="run", then=SAME_DIR)
        except RacingRLError as err:
            print_error("train", err)
            raise SystemExit(1) from err
        except OmegaConfBaseException as err:  # e.g. ~algo.teacher_coef, which a key uses
            unresolved = ConfigError(
                f"Invalid config: {str(err).splitlines()[0]} (full key: "
                f"{getattr(err, 'full_key', '?')}): a key that another key refers to was "
                "removed (~) or never set; racing-rl train --cfg job shows the config."
            )
            print_error("train", unresolved)
            raise SystemExit(1) from err

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Refuse an Optuna search of runs that return no objective (validation off), and a
        sweep into a directory that holds an earlier sweep's runs (its job directories
        would be reused), unless a named study continues there. Then hold the sweep
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
                raise ConfigError(
                    f"hydra.sweep.dir={sweep_dir} already holds the runs of an earlier sweep "
                    f"({len(runs)}, e.g. {runs[0].name}): its jobs would reuse their "
                    "directories. Leave hydra.sweep.dir out for a new dated one, or choose "
                    "another."
                )
            if "optuna" in sweeper.lower() and config.validation.every == 0:
                raise ConfigError(
                    "Invalid config: validation.every=0 with an Optuna sweeper: a run without "
                    "validation has no objective to maximise. Set validation.every > 0 (e.g. "
                    "validation.every=50000)."
                )
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
        checkpoint = None
        if cfg.get("resume"):
            cfg, checkpoint = resume_run(run_dir, hydra_cfg.overrides.task)
        summary = train(cfg, run_dir, resume=checkpoint)
    except TrainingInterrupted as err:
        log.warning("%s", err)
        if "optuna" in str(OmegaConf.select(hydra_cfg, "sweeper._target_", default="")).lower():
            log.warning(
                "This run is a trial of an Optuna search, and a resumed trial does not report "
                "to its study: to continue the search, run the sweep's command again (this "
                "trial is marked failed and another runs in its place)."
            )
        if hydra_cfg.mode == RunMode.MULTIRUN and not in_command_process():
            raise SweepJobFailed(f"interrupted: {err}") from None
        raise SystemExit(err.exit_code) from err
    except RacingRLError as err:
        log.error("%s", err)
        job_failed(err)
    finally:
        if job_lock is not None:
            job_lock.release()
    return summary.get("objective", {}).get("value")

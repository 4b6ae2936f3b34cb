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

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from racing_rl.checkpoints.layout import MODEL
from racing_rl.checkpoints.runs import check_init_from
from racing_rl.checks import check_train_config
from racing_rl.cli import print_error
from racing_rl.config import check_known_keys, hydra_main
from racing_rl.errors import ConfigError, RacingRLError, TrainingInterrupted
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
            f"{', ...' if len(saved) > 3 else ''}): continue it with resume={run_dir}, or "
            "train a new run elsewhere (leave hydra.run.dir out for a new dated directory)."
        )


class CheckConfig(Callback):
    """Hydra callback (``hydra.callbacks`` in conf/train.yaml): check a single run's
    config before Hydra creates its run directory, so that an invalid one leaves nothing
    behind. (A sweep's jobs are checked in ``train``: a failed job keeps its run.json.)"""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Check ``config`` (a resumed run's is checked once it is loaded), and that its run
        directory holds no run yet.

        Raises:
            SystemExit: 1, after printing the error (``racing_rl.cli.print_error``), if the
                config is invalid or the directory already holds a run.
        """
        if config.get("resume"):
            return
        try:
            check_new_run_dir(Path(str(OmegaConf.select(config, "hydra.run.dir"))))
            check_known_keys(config, "train")
            check_train_config(config)
            check_logger(config)
            if config.get("init_from"):
                check_init_from(config, Path(config.init_from).expanduser())
        except RacingRLError as err:
            print_error("train", err)
            raise SystemExit(1) from err

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Refuse an Optuna search of runs that return no objective (validation off), and a
        sweep into a directory that holds an earlier sweep's runs (its job directories
        would be reused), unless a named study continues there.

        Raises:
            SystemExit: 1, after printing the error: every trial would fail, then Optuna.
        """
        sweeper = str(OmegaConf.select(config, "hydra.sweeper._target_", default=""))
        sweep_dir = Path(str(OmegaConf.select(config, "hydra.sweep.dir")))
        runs = sorted(job for job in sweep_dir.glob("*/") if saved_work(job))
        if runs and OmegaConf.select(config, "hydra.sweeper.study_name") is None:
            print_error(
                "train",
                ConfigError(
                    f"hydra.sweep.dir={sweep_dir} already holds the runs of an earlier sweep "
                    f"({len(runs)}, e.g. {runs[0].name}): its jobs would reuse their "
                    "directories. Leave hydra.sweep.dir out for a new dated one, or choose "
                    "another."
                ),
            )
            raise SystemExit(1)
        if "optuna" in sweeper.lower() and config.validation.every == 0:
            print_error(
                "train",
                ConfigError(
                    "Invalid config: validation.every=0 with an Optuna sweeper: a run without "
                    "validation has no objective to maximise. Set validation.every > 0 (e.g. "
                    "validation.every=50000)."
                ),
            )
            raise SystemExit(1)


@hydra_main("train")
def main(cfg: DictConfig) -> float | None:
    """Hydra entry point of ``racing-rl train``.

    Returns:
        The run's objective (``racing_rl.objective``; None with validation off): what
        Hydra's sweepers record and Optuna maximises.

    Raises:
        SystemExit: on a config or checkpoint error (1) or an interruption (128 + signal)
            in a single run. In a multirun a failed job's error is re-raised instead, so
            that Hydra marks the job failed and the sweep's other jobs go on.
    """
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    try:
        checkpoint = None
        if cfg.get("resume"):
            cfg, checkpoint = resume_run(run_dir, hydra_cfg.overrides.task)
        summary = train(cfg, run_dir, resume=checkpoint)
    except TrainingInterrupted as err:
        log.warning("%s", err)
        raise SystemExit(err.exit_code) from err
    except RacingRLError as err:
        log.error("%s", err)
        if hydra_cfg.mode == RunMode.MULTIRUN:  # without the stack: the message says it all
            raise err.with_traceback(None) from None
        raise SystemExit(1) from err
    return summary.get("objective", {}).get("value")

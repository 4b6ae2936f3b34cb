"""``racing-rl train``: the Hydra app (parse, ``racing_rl.training.train``, exit status).

``main`` reads the run directory from ``HydraConfig``; with ``resume=<run dir>`` it
loads the run's own config (``.hydra/config.yaml``, with the overrides a resume may
make) and continues from its newest checkpoint. ``CheckConfig`` checks a single run's
config before Hydra creates its run directory. The resolvers below are used by
conf/train.yaml and its launchers.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from racing_rl import config_dir
from racing_rl.checks import check_train_config
from racing_rl.errors import ConfigError, RacingRLError, TrainingInterrupted
from racing_rl.loggers import check_logger
from racing_rl.training import resume_run, train

log = logging.getLogger(__name__)

# ``${racing_rl.if:cond,then,else}``: conf/train.yaml picks the run dir with it.
OmegaConf.register_new_resolver(
    "racing_rl.if", lambda cond, then, otherwise: then if cond else otherwise, replace=True
)


def _jobs_per_machine(threads_per_job: int) -> int:
    """How many jobs of ``threads_per_job`` cores each fit on this machine's cores."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cores or 1) // max(1, int(threads_per_job)))


# ``${racing_rl.jobs_per_machine:${torch_threads}}``: conf/hydra/launcher/parallel.yaml.
OmegaConf.register_new_resolver("racing_rl.jobs_per_machine", _jobs_per_machine, replace=True)


def job_dirname(override_dirname: str, limit: int = 160) -> str:
    """A sweep job's dir name from Hydra's ``override_dirname``, short enough for a file
    system (255 bytes a name): ``algo.model.`` dropped, floats to 4 significant digits,
    and beyond ``limit`` characters cut with a hash of the whole for uniqueness."""
    name = override_dirname.replace("algo.model.", "")
    name = re.sub(r"\d+\.\d+(?:e-?\d+)?", lambda m: f"{float(m.group()):.4g}", name)
    if len(name) > limit:
        digest = hashlib.sha1(override_dirname.encode()).hexdigest()[:8]
        name = f"{name[: limit - 9]}~{digest}"
    return name


# ``${racing_rl.job_dirname:${hydra.job.override_dirname}}``: conf/train.yaml's sweep subdir.
OmegaConf.register_new_resolver("racing_rl.job_dirname", job_dirname, replace=True)


class CheckConfig(Callback):
    """Hydra callback (``hydra.callbacks`` in conf/train.yaml): check a single run's
    config before Hydra creates its run directory, so that an invalid one leaves nothing
    behind. (A sweep's jobs are checked in ``train``: a failed job keeps its run.json.)"""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Check ``config`` (a resumed run's is checked once it is loaded).

        Raises:
            SystemExit: 1, after logging the error, if the config is invalid.
        """
        if config.get("resume"):
            return
        try:
            check_train_config(config)
            check_logger(config)
        except ConfigError as err:
            log.error("%s", err)
            raise SystemExit(1) from err


@hydra.main(config_path=str(config_dir()), config_name="train", version_base="1.3")
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
        if hydra_cfg.mode == RunMode.MULTIRUN:
            raise
        raise SystemExit(1) from err
    return summary.get("objective", {}).get("value")

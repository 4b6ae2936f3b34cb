"""``hydra/launcher=slurm``: hydra-submitit-launcher's ``SlurmLauncher``, that prints the
run directories of the jobs that completed.

submitit runs each job in a process of its own (a SLURM task), whose stdout goes to its
log in ``<sweep dir>/.submitit/<job id>/``: the run directory that a job prints when it
completes (``racing_rl.train.main``) never reached the sweep's stdout, as it does with the
basic and parallel launchers. This launcher prints them from the sweep's process once
submitit returns the jobs' results (``JobReturn``: its status and Hydra config), in the
order of the jobs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class SlurmLauncher(Launcher):
    """hydra-submitit-launcher's ``SlurmLauncher`` (its settings:
    ``conf/hydra/launcher/slurm.yaml``) that prints each completed job's run directory on
    stdout once the jobs return."""

    def __init__(self, **kwargs: Any) -> None:
        from hydra_plugins.hydra_submitit_launcher.submitit_launcher import (
            SlurmLauncher as Submitit,
        )

        self.submitit = Submitit(**kwargs)

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.submitit.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        """Run the jobs as submitit's ``SlurmLauncher`` does; then print, one a line, the
        run directory of each job that completed (a failed job's error is Hydra's to
        report)."""
        returns = self.submitit.launch(job_overrides, initial_job_idx)
        for job in returns:
            if job.status == JobStatus.COMPLETED and job.hydra_cfg is not None:
                print(job.hydra_cfg.hydra.runtime.output_dir, flush=True)
        return returns

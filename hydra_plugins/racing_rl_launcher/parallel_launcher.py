"""``hydra/launcher=parallel``: hydra-joblib-launcher's ``JoblibLauncher``, with a clear
end when a worker process is killed.

joblib runs the jobs in loky worker processes. When one of them dies without a word
(SIGKILL: the out-of-memory killer's signal), loky kills the other workers, and joblib
raises ``TerminatedWorkerError`` with neither the job nor its directory: the sweep ended
in a stack, the other jobs' results lost. This launcher ends the sweep instead with one
message that names each job that did not complete, its directory and its state, and how
to continue the sweep.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn
from hydra.errors import CompactHydraException
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

from racing_rl.config import job_name
from racing_rl.provenance import leg_status, read_legs


class WorkerKilled(CompactHydraException):
    """A worker process of a parallel sweep ended without a word (killed), and joblib
    ended the sweep: Hydra prints the message alone and exits with status 1."""


class ParallelLauncher(Launcher):
    """``JoblibLauncher`` (its settings: ``conf/hydra/launcher/parallel.yaml``) that ends
    a sweep whose worker was killed with ``WorkerKilled``."""

    def __init__(self, **kwargs: Any) -> None:
        from hydra_plugins.hydra_joblib_launcher.joblib_launcher import JoblibLauncher

        self.joblib = JoblibLauncher(**kwargs)
        self.config: DictConfig | None = None

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.config = config
        self.joblib.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        """Run the jobs as ``JoblibLauncher`` does.

        Raises:
            WorkerKilled: if a worker process died (loky's ``TerminatedWorkerError``),
                naming the jobs of this batch that did not complete.
        """
        try:
            return self.joblib.launch(job_overrides, initial_job_idx)
        except BrokenProcessPool as err:
            assert self.config is not None
            sweep_dir = Path(str(self.config.hydra.sweep.dir))
            jobs = range(initial_job_idx, initial_job_idx + len(job_overrides))
            raise WorkerKilled(_killed_message(err, sweep_dir, jobs, self.config)) from None


def _job_dir(sweep_dir: Path, number: int) -> Path | None:
    """Job ``number``'s directory in ``sweep_dir`` (``<number>`` or ``<number>_<overrides>``,
    ``racing_rl.config.job_dirname``); None if it has none (it never started)."""
    found = [p for p in sweep_dir.glob(f"{number}*") if job_name(p) == str(number)]
    return found[0] if found else None


def _job_state(job_dir: Path) -> str:
    """What a job's ``run.json`` says of it: its last leg's status (``leg_status``;
    ``ended while running`` for a leg still marked running, its process killed or about
    to be), or ``ended without a result`` for a job that records none (an eval job)."""
    try:
        legs = read_legs(job_dir)
    except (OSError, ValueError):
        legs = []
    if not legs:
        return "ended without a result"
    status = leg_status(legs[-1])
    return "ended while running" if status in ("running", "killed") else status


def _killed_message(
    err: BaseException, sweep_dir: Path, jobs: Sequence[int], config: DictConfig
) -> str:
    """``WorkerKilled``'s message: what happened, the jobs that did not complete (each
    with its directory and state), and how to go on."""
    lines, never = [], []
    for number in jobs:
        job_dir = _job_dir(sweep_dir, number)
        if job_dir is None:
            never.append(str(number))
        elif (state := _job_state(job_dir)) != "completed":
            lines.append(f"  job {number} ({state}): {job_dir}")
    if never:
        lines.append(f"  never started: job{'s' if len(never) > 1 else ''} {', '.join(never)}")
    # loky's message has a line of the workers' exit codes: "... are {SIGKILL(-9)}"
    codes = [line for line in str(err).splitlines() if "exit code" in line]
    why = codes[0].strip().rstrip(".") if codes else type(err).__name__
    command = f"racing-rl {OmegaConf.select(config, 'hydra.job.name', default='')}"
    then = "Run the sweep's command again for them."
    if command == "racing-rl train":
        from racing_rl.train import sweep_hint

        n_jobs = OmegaConf.select(config, "hydra.launcher.n_jobs")
        fewer = (
            f" (hydra.launcher.n_jobs={n_jobs - 1})"
            if isinstance(n_jobs, int) and n_jobs > 1
            else ""
        )
        then = (
            f"{sweep_hint(config.hydra)} If memory ran out, run fewer jobs at once{fewer}. "
            f"racing-rl report {sweep_dir} lists the jobs."
        )
    return (
        f"{command}: a worker process of the sweep in {sweep_dir} was killed ({why}; "
        "SIGKILL is what the out-of-memory killer sends), and joblib then ended the "
        "sweep's other workers. The jobs that did not complete:\n" + "\n".join(lines) + f"\n{then}"
    )

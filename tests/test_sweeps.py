"""Hydra multirun sweeps of `racing-rl train`, every launcher, Optuna, and `racing-rl report`.

Each sweep runs real (tiny) training jobs in subprocesses, as a user would.
"""

import contextlib
import csv
import json
import logging
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
from runs import QUICK, QUICK_OFF_POLICY, RACING_RL, default_sigint, racing_rl, start_racing_rl

from hydra_plugins.racing_rl_sweeper.resumable_optuna import OVERRIDES_ATTR
from racing_rl import config_dir
from racing_rl.checkpoints.layout import latest_checkpoint
from racing_rl.config import job_dirname
from racing_rl.errors import CheckpointError


def job_dirs(sweep_dir: Path) -> dict[int, Path]:
    """Job number -> job dir."""
    return {int(p.name.split("_")[0]): p for p in sweep_dir.iterdir() if (p / ".hydra").is_dir()}


def assert_complete(job: Path) -> dict:
    """A finished job's run dir holds everything DESIGN.md lists; returns its summary."""
    for name in (".hydra/config.yaml", "train.log", "model.zip", "vecnormalize.pkl"):
        assert (job / name).is_file(), f"{job} lacks {name}"
    assert (job / "best" / "model.zip").is_file()
    assert any((job / "tb").iterdir())
    assert json.loads((job / "run.json").read_text())["legs"][-1]["status"] == "completed"
    summary = json.loads((job / "summary.json").read_text())
    assert math.isfinite(summary["objective"]["value"])
    return summary


def sweep(tmp_path: Path, *overrides: str) -> tuple[subprocess.CompletedProcess, Path]:
    """`racing-rl train -m <overrides> <QUICK>` into ``tmp_path/sweep``."""
    sweep_dir = tmp_path / "sweep"
    command = ["train", "-m", *overrides, *QUICK, f"hydra.sweep.dir={sweep_dir}"]
    return racing_rl(*command, cwd=tmp_path), sweep_dir


def report_rows(sweep_dir: Path) -> dict[str, dict[str, str]]:
    """Run `racing-rl report` on a sweep; its CSV rows by job number."""
    result = racing_rl("report", str(sweep_dir), cwd=sweep_dir, timeout=120)
    assert result.returncode == 0, result.stderr
    assert (sweep_dir / "learning_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| job | overrides | objective |" in (sweep_dir / "report.md").read_text()
    with (sweep_dir / "report.csv").open() as f:
        return {row["job"]: row for row in csv.DictReader(f)}


def test_job_dir_names_stay_short_and_distinct():
    long = ",".join(f"algo.model.key_{i}=0.000123456789{i}" for i in range(20))
    other = long.replace("key_19=", "key_19=9")
    name = job_dirname(3, long)
    assert len(name) <= len("3_") + 160 and name != job_dirname(3, other)
    assert name.startswith("3_key_0=0.0001235,key_1=")
    assert job_dirname(0, "algo=sac,seed=1") == "0_algo=sac,seed=1"
    assert job_dirname(0, "") == "0"  # a job of no overrides (e.g. a sweeper's own search)
    # A path is named by its last part, without quotes: a "/" would nest the job's dir.
    quoted = "init_from='/tmp/sweep/0_seed=0,total_timesteps=2000/',seed=1"
    assert job_dirname(4, quoted) == "4_init_from=0_seed=0,total_timesteps=2000,seed=1"
    assert job_dirname(5, 'init_from="runs/a b",seed=1') == "5_init_from=a b,seed=1"
    assert job_dirname(6, "init_from=outputs/2026/ppo_run,seed=1") == "6_init_from=ppo_run,seed=1"


def test_a_multirun_finishes_the_other_jobs_when_one_fails_and_the_report_marks_it(tmp_path):
    # seed=-1 is an invalid config: that job fails, the other trains.
    result, sweep_dir = sweep(tmp_path, "seed=0,-1")
    assert result.returncode != 0  # Hydra reports the failed job at the end of the sweep
    assert "Invalid config: seed=-1" in result.stderr
    # Hydra's last word is the failed job's message, without a stack
    assert "Traceback" not in result.stderr and "checks.py" not in result.stderr
    assert "ConfigError: Invalid config: seed=-1" in result.stderr.split("Error executing job")[-1]
    jobs = job_dirs(sweep_dir)
    assert sorted(jobs) == [0, 1]
    assert "seed=0" in jobs[0].name and "seed=-1" in jobs[1].name  # named by their overrides
    summary = assert_complete(jobs[0])
    failed = json.loads((jobs[1] / "run.json").read_text())["legs"][-1]
    assert failed["status"] == "failed" and "seed=-1" in failed["error"]

    rows = report_rows(sweep_dir)
    assert float(rows["0"]["objective"]) == pytest.approx(summary["objective"]["value"])
    assert rows["0"]["status"] == "completed" and rows["0"]["overrides"] == "seed=0"
    assert rows["1"]["status"] == "failed" and rows["1"]["objective"] == ""
    assert "seed=-1" in rows["1"]["error"]
    assert "job 1 (failed)" in (sweep_dir / "report.md").read_text()


LAUNCHERS = {
    "parallel": [],  # joblib, sized to the cores
    "submitit_local": [],
    "ray": [
        "+hydra.launcher.ray.init.num_cpus=2",
        "+hydra.launcher.ray.init.include_dashboard=false",
    ],
}


@pytest.mark.parametrize(
    "launcher",
    # ray's start-up alone takes ~15 s: its sweep runs with the slow tests.
    [pytest.param(name, marks=pytest.mark.slow) if name == "ray" else name for name in LAUNCHERS],
)
def test_each_launcher_runs_a_two_job_sweep(tmp_path, launcher):
    result, sweep_dir = sweep(
        tmp_path, f"hydra/launcher={launcher}", *LAUNCHERS[launcher], "seed=0,1"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = job_dirs(sweep_dir)
    assert sorted(jobs) == [0, 1]
    summaries = {n: assert_complete(job) for n, job in jobs.items()}
    rows = report_rows(sweep_dir)
    for n, summary in summaries.items():
        assert float(rows[str(n)]["objective"]) == pytest.approx(summary["objective"]["value"])


def test_the_slurm_launcher_prints_the_run_dirs_of_the_jobs_that_completed(capsys):
    """submitit's jobs print their run dirs into their logs (<sweep dir>/.submitit/), and a
    hydra/launcher=slurm sweep printed none: it now prints those of the completed jobs from
    the results submitit returns (here a stand-in for SLURM's)."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    from hydra import compose
    from hydra.core.utils import JobReturn, JobStatus
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from racing_rl.config import initialize

    with initialize():
        cfg = compose("train", ["hydra/launcher=slurm"], return_hydra_config=True)
    launcher = instantiate(cfg.hydra.launcher)  # conf/hydra/launcher/slurm.yaml's settings
    plugin = type(launcher.submitit)  # Hydra's plugin discovery imports its module again
    assert (plugin.__module__, plugin.__name__) == (
        "hydra_plugins.hydra_submitit_launcher.submitit_launcher",
        "SlurmLauncher",
    )
    assert launcher.submitit.params["array_parallelism"] == 64

    def job(status: JobStatus, run_dir: str) -> JobReturn:
        hydra_cfg = OmegaConf.create({"hydra": {"runtime": {"output_dir": run_dir}}})
        return JobReturn(status=status, hydra_cfg=hydra_cfg, _return_value=0.5)

    returns = [job(JobStatus.COMPLETED, "/s/0_seed=0"), job(JobStatus.FAILED, "/s/1_seed=-1")]
    returns.append(job(JobStatus.COMPLETED, "/s/2_seed=2"))

    class Submitted:  # submitit's SlurmLauncher, its jobs run: their results
        def launch(self, job_overrides, initial_job_idx):
            assert (job_overrides, initial_job_idx) == ([["seed=0"]], 3)
            return returns

    launcher.submitit = Submitted()
    assert launcher.launch([["seed=0"]], 3) is returns
    assert capsys.readouterr().out == "/s/0_seed=0\n/s/2_seed=2\n"


def test_the_same_command_finishes_an_interrupted_sweep_in_its_directory(tmp_path):
    """A basic sweep stopped in its second job: the same command and hydra.sweep.dir were
    refused ("already holds the runs of an earlier sweep"), so it could not be finished."""
    sweep_dir = tmp_path / "sweep"
    quick = [o for o in QUICK if not o.startswith(("total_timesteps", "validation.every"))]
    command = ["train", "-m", "seed=0,1,2", *quick]
    command += ["total_timesteps=12000", "validation.every=4000", f"hydra.sweep.dir={sweep_dir}"]
    first = start_racing_rl(*command, cwd=tmp_path, stderr=tmp_path / "err")
    try:
        deadline = time.monotonic() + 240
        while not (sweep_dir.is_dir() and 1 in job_dirs(sweep_dir)) or (
            latest_checkpoint_kind(job_dirs(sweep_dir)[1]) is None
        ):  # job 1 trains, and has saved a checkpoint
            assert first.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        first.send_signal(signal.SIGINT)
        assert first.wait(timeout=120) == 128 + signal.SIGINT
    finally:
        if first.poll() is None:
            first.kill()
    stderr = (tmp_path / "err").read_text()
    assert f"To finish the sweep, run its command again with hydra.sweep.dir={sweep_dir}" in stderr
    jobs = job_dirs(sweep_dir)
    assert sorted(jobs) == [0, 1]
    kept = {p: p.stat().st_mtime_ns for p in jobs[0].rglob("*") if p.is_file()}

    again = racing_rl(*command, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"continuing the sweep in {sweep_dir}" in again.stderr
    jobs = job_dirs(sweep_dir)
    assert sorted(jobs) == [0, 1, 2]
    # Job 0 is untouched (its files, its saved config); job 1 resumed; job 2 ran.
    changed = [p.name for p, t in kept.items() if p.stat().st_mtime_ns != t]
    assert set(changed) <= {".lock", "train.log"}  # the log says the job is kept
    # Each job's result on stdout, the kept one's too: its run dir.
    assert again.stdout.split() == [str(jobs[n]) for n in (0, 1, 2)]
    legs = json.loads((jobs[1] / "run.json").read_text())["legs"]
    assert [leg["status"] for leg in legs] == ["interrupted", "completed"]
    assert legs[1]["resumed_from"] is not None
    summaries = {n: assert_complete(job) for n, job in jobs.items()}
    rows = report_rows(sweep_dir)
    for n, summary in summaries.items():
        assert float(rows[str(n)]["objective"]) == pytest.approx(summary["objective"]["value"])
    # Another sweep into the directory is refused, naming the overrides that continue it.
    command = [a.replace("seed=0,1,2", "seed=0,1,3") for a in command]
    other = racing_rl(*command, cwd=tmp_path)
    assert other.returncode == 1
    assert "(the same command continues that sweep: its overrides were" in other.stderr


def test_a_sweep_continued_with_its_sweeps_in_another_order_is_refused(tmp_path):
    """``-m seed=0,1 algo.model.gamma=0.99,0.98`` continued as ``-m algo.model.gamma=0.99,0.98
    seed=0,1`` (the order the refusal of another sweep listed them in) was taken for the
    same sweep, but numbers the jobs otherwise: jobs 1 and 2 trained again, in new
    directories beside their own."""
    result, sweep_dir = sweep(tmp_path, "seed=0,1", "algo.model.gamma=0.99,0.98")
    assert result.returncode == 0, result.stderr[-3000:]
    before = sorted(p.name for p in sweep_dir.iterdir())
    again, _ = sweep(tmp_path, "algo.model.gamma=0.99,0.98", "seed=0,1")
    assert again.returncode == 1
    assert "already holds the runs of an earlier sweep" in again.stderr
    assert "its overrides were, in this order, seed=0,1 algo.model.gamma=0.99,0.98" in again.stderr
    assert sorted(p.name for p in sweep_dir.iterdir()) == before


def test_a_job_killed_before_its_first_checkpoint_trains_again_in_the_continued_sweep(tmp_path):
    """A job killed after a validation (best/) but before its first checkpoint made every
    later start of the sweep fail on it ("has no complete checkpoint ... start it again")."""
    result, sweep_dir = sweep(tmp_path, "seed=0")
    assert result.returncode == 0, result.stderr[-3000:]
    (job,) = job_dirs(sweep_dir).values()
    # As a kill -9 leaves it: best/ and the running leg, no checkpoint, no final files.
    for saved in ("checkpoints", "model.zip", "vecnormalize.npz", "vecnormalize.pkl"):
        path = job / saved
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    (job / "summary.json").unlink()
    record = json.loads((job / "run.json").read_text())
    record["legs"][-1]["status"] = "running"
    (job / "run.json").write_text(json.dumps(record))
    again, _ = sweep(tmp_path, "seed=0")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "stopped before its first checkpoint: it trains again from the start" in again.stderr
    assert_complete(job)
    legs = json.loads((job / "run.json").read_text())["legs"]
    assert [leg["status"] for leg in legs][-1] == "completed" and legs[-1]["resumed_from"] is None


def _gone(pid: int) -> bool:
    """Whether process ``pid`` has ended (a zombie that no one reaps counts as ended)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def endless_parallel_sweep(
    tmp_path: Path, seeds: str, **popen: Any
) -> tuple[subprocess.Popen, Path]:
    """Start `racing-rl train -m hydra/launcher=parallel hydra.launcher.n_jobs=2 <seeds>`
    of jobs that train until stopped, into ``tmp_path/sweep``, its stderr in
    ``tmp_path/err``."""
    sweep_dir = tmp_path / "sweep"
    endless = [o for o in QUICK if not o.startswith(("total_timesteps", "validation.every"))]
    command = ["train", "-m", "hydra/launcher=parallel", "hydra.launcher.n_jobs=2", seeds]
    command += [*endless, "total_timesteps=100000000", "validation.every=0", "torch_threads=1"]
    with (tmp_path / "err").open("w") as err:
        sweep = subprocess.Popen(
            [*RACING_RL, *command, f"hydra.sweep.dir={sweep_dir}"],
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=err,
            **popen,
        )
    return sweep, sweep_dir


def test_a_parallel_sweep_stops_whole_on_a_signal_to_it_and_goes_on_past_one_to_a_job(tmp_path):
    """hydra/launcher=parallel (joblib's loky workers). A signal to one job's worker ends
    that job alone (joblib killed the other workers once the job's exception came back);
    SIGTERM to the sweep's process stops every job with a saved checkpoint and leaves no
    worker behind (the sweep exited at once and its workers trained on)."""
    sweep, sweep_dir = endless_parallel_sweep(tmp_path, "seed=0,1", preexec_fn=default_sigint)
    try:
        deadline = time.monotonic() + 240
        pids: dict[int, int] = {}
        while len(pids) < 2:  # each job has saved a checkpoint: it trains
            assert sweep.poll() is None and time.monotonic() < deadline
            for n, job in job_dirs(sweep_dir).items() if sweep_dir.is_dir() else ():
                if latest_checkpoint_kind(job) == "ppo":  # a periodic one
                    pids[n] = json.loads((job / "run.json").read_text())["legs"][-1]["pid"]
            time.sleep(0.2)
        jobs = job_dirs(sweep_dir)
        os.kill(pids[0], signal.SIGINT)
        while latest_checkpoint_kind(jobs[0]) != "interrupted":
            assert time.monotonic() < deadline, (tmp_path / "err").read_text()[-3000:]
            time.sleep(0.2)
        time.sleep(3)  # joblib had killed the other workers by then
        assert sweep.poll() is None and not _gone(pids[1])
        assert not _gone(pids[0])  # the worker itself stays in the pool, its job failed

        sweep.send_signal(signal.SIGTERM)
        assert sweep.wait(timeout=30) == 128 + signal.SIGTERM
        while not all(_gone(pid) for pid in pids.values()):
            assert time.monotonic() < deadline, "a worker outlived its sweep"
            time.sleep(0.2)
    finally:
        if sweep.poll() is None:
            sweep.kill()
    stderr = (tmp_path / "err").read_text()
    assert "Traceback" not in stderr, stderr[-3000:]
    assert (
        "racing-rl train: SIGTERM: the sweep stops. Its 2 worker processes were sent SIGTERM"
        in stderr
    )
    for n, job in jobs.items():
        assert latest_checkpoint_kind(job) == "interrupted", n
        leg = json.loads((job / "run.json").read_text())["legs"][-1]
        assert leg["status"] == "interrupted", (n, leg)


def test_a_parallel_sweep_whose_worker_is_killed_names_the_jobs_that_did_not_complete(tmp_path):
    """A worker killed with SIGKILL (as the out-of-memory killer does): loky then kills
    the other workers, and the sweep ended in joblib's TerminatedWorkerError stack, naming
    no job. It ends with status 1 and one message: each job that did not complete, its
    directory, and how to finish the sweep."""
    sweep, sweep_dir = endless_parallel_sweep(tmp_path, "seed=0,1,2")
    pids: dict[int, int] = {}
    try:
        deadline = time.monotonic() + 240
        while len(pids) < 2:  # both jobs have started
            assert sweep.poll() is None and time.monotonic() < deadline
            for n, job in job_dirs(sweep_dir).items() if sweep_dir.is_dir() else ():
                with contextlib.suppress(OSError, ValueError, KeyError):
                    pids[n] = json.loads((job / "run.json").read_text())["legs"][-1]["pid"]
            time.sleep(0.2)
        os.kill(pids[0], signal.SIGKILL)
        assert sweep.wait(timeout=120) == 1
    finally:
        for pid in [sweep.pid, *pids.values()]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    stderr = (tmp_path / "err").read_text()
    assert "Traceback" not in stderr and "TerminatedWorkerError" not in stderr, stderr[-3000:]
    jobs = job_dirs(sweep_dir)
    assert "a worker process of the sweep in" in stderr and "SIGKILL(-9)" in stderr
    assert f"job 0 (ended while running): {jobs[0]}" in stderr
    assert f"job 1 (ended while running): {jobs[1]}" in stderr
    assert "never started: job 2" in stderr
    assert f"run its command again with hydra.sweep.dir={sweep_dir}" in stderr


def latest_checkpoint_kind(run_dir: Path) -> str | None:
    """The kind of ``run_dir``'s newest checkpoint (None before its first)."""
    try:
        return latest_checkpoint(run_dir).kind
    except CheckpointError:
        return None


@pytest.mark.slow
def test_ray_cluster_runs_a_sweep_on_a_running_cluster(tmp_path):
    """`hydra/launcher=ray_cluster` joins a cluster started with `ray start --head`.
    Slow (~20 s) and it starts a machine-wide Ray cluster, so not in the default run."""
    ray = [sys.executable, "-m", "ray.scripts.scripts"]
    head = ["start", "--head", "--num-cpus=2", "--include-dashboard=false"]
    subprocess.run([*ray, *head], check=True, capture_output=True, timeout=120)
    try:
        result, sweep_dir = sweep(tmp_path, "hydra/launcher=ray_cluster", "seed=0,1")
    finally:
        subprocess.run([*ray, "stop"], capture_output=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Connected to Ray cluster" in result.stderr
    for job in job_dirs(sweep_dir).values():
        assert_complete(job)


def test_a_two_trial_optuna_search_over_sac(tmp_path):
    result, study_dir = sweep(
        tmp_path,
        "algo=sac",
        "hydra/sweeper=sac_search",
        "hydra.sweeper.n_trials=2",
        *QUICK_OFF_POLICY,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = job_dirs(study_dir)
    assert sorted(jobs) == [0, 1]
    study = optuna.load_study(study_name="sac_search", storage=f"sqlite:///{study_dir}/optuna.db")
    assert len(study.trials) == 2
    rows = report_rows(study_dir)
    for n, job in jobs.items():
        summary = assert_complete(job)
        # The sampled parameters reached the run: its saved config holds them.
        config = (job / ".hydra" / "config.yaml").read_text()
        assert f"train_freq: {study.trials[n].params['algo.model.train_freq']}" in config
        assert study.trials[n].value == pytest.approx(summary["objective"]["value"])
        assert float(rows[str(n)]["objective"]) == pytest.approx(summary["objective"]["value"])


def test_the_ppo_search_draws_only_batch_sizes_that_divide_the_rollout():
    """n_steps 128 × 20 cars with batch_size 1024 made SB3 warn of a truncated mini-batch
    (2560 transitions: 2 mini-batches of 1024 and one of 512 each epoch)."""
    from hydra import compose
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    from racing_rl.config import initialize

    space = OmegaConf.load(config_dir() / "hydra" / "sweeper" / "ppo_search.yaml").params
    keys = ("algo.model.n_steps", "algo.model.batch_size")
    drawn = OverridesParser.create().parse_overrides([f"{key}={space[key]}" for key in keys])
    n_steps, batch_sizes = (list(override.sweep_iterator()) for override in drawn)
    with initialize():
        cfg = compose("train", overrides=["algo=ppo"])
    cars = cfg.n_races * cfg.cars_per_race
    cut = [(steps, batch) for steps in n_steps for batch in batch_sizes if steps * cars % batch]
    assert cut == [], f"(n_steps, batch_size) whose rollout of {cars} cars is cut: {cut}"


def optuna_command(study_dir: Path) -> list[str]:
    """The arguments of ``racing-rl`` for an Optuna search of 2 trials into ``study_dir``."""
    return [
        "train",
        "-m",
        "hydra/sweeper=ppo_search",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.study_name=test_study",
        f"hydra.sweep.dir={study_dir}",
        # Fixed, so that every sampled n_steps makes a valid rollout of 4 cars.
        "algo.model.batch_size=64",
        *QUICK,
        "total_timesteps=6000",
    ]


def test_an_optuna_study_refuses_a_sweep_with_other_overrides(tmp_path):
    # Optuna finds a study by its name alone: another algorithm or budget under the same
    # study_name would otherwise continue the old search and report its best trial.
    study_dir = tmp_path / "study"
    first = [a.replace("n_trials=2", "n_trials=1") for a in optuna_command(study_dir)]
    done = racing_rl(*first, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    # A new study says so, and not also that it uses an existing one.
    assert "A new study created" in done.stderr and "Using an existing study" not in done.stderr
    # Studies started before RUNTIME_KEYS were left out recorded every override.
    storage = f"sqlite:///{study_dir}/optuna.db"
    study = optuna.load_study(study_name="test_study", storage=storage)
    recorded = study.user_attrs[OVERRIDES_ATTR]
    assert "progress_bar=false" not in recorded
    study.set_user_attr(OVERRIDES_ATTR, [*recorded, "progress_bar=false"])
    other = [a.replace("total_timesteps=6000", "total_timesteps=5000") for a in first]
    refused = racing_rl(*other, cwd=tmp_path)
    assert refused.returncode == 1
    # One line, as the command line's refusals (it was a log line of Hydra's).
    assert refused.stderr.startswith("racing-rl train: Optuna study 'test_study' (sqlite:")
    assert refused.stderr.count("\n") == 1
    assert "was started by a sweep with the overrides" in refused.stderr
    assert "total_timesteps=6000" in refused.stderr and "hydra.sweeper.study_name" in refused.stderr
    assert "(it lacks total_timesteps=6000; it adds total_timesteps=5000)" in refused.stderr
    assert "progress_bar" not in refused.stderr  # not part of the search: not named
    # The other direction: Optuna's ValueError traceback ("Cannot overwrite study direction").
    minimise = [*first, "hydra.sweeper.direction=minimize"]
    refused = racing_rl(*minimise, cwd=tmp_path)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr, refused.stderr[-3000:]
    assert "was started to maximize its objective; this sweep asks to minimize it" in refused.stderr
    # The same overrides over another search space (a copy of ppo_search with one more
    # parameter, from the user's own config dir) are refused too.
    searches = tmp_path / "conf" / "hydra" / "sweeper"
    searches.mkdir(parents=True)
    wider = (config_dir() / "hydra" / "sweeper" / "ppo_search.yaml").read_text()
    wider += "  algo.model.gae_lambda: choice(0.9, 0.95)\n"  # params is the file's last key
    (searches / "ppo_wider.yaml").write_text(wider)
    space = [a.replace("=ppo_search", "=ppo_wider") for a in first]
    space.append(f"hydra.searchpath=[file://{tmp_path / 'conf'}]")
    refused = racing_rl(*space, cwd=tmp_path)
    assert refused.returncode == 1, refused.stderr[-3000:]
    assert "was started with another search space (hydra.sweeper.params)" in refused.stderr
    assert "algo.model.gae_lambda: (absent) then, choice(0.9, 0.95) now" in refused.stderr
    # Without progress_bar=false (how its trials run, not what they learn): the same study.
    same = [a for a in first if a != "progress_bar=false"]
    again = racing_rl(*same, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "1 trials so far (1 completed), 0 to run" in again.stderr
    study = optuna.load_study(study_name="test_study", storage=storage)
    assert len(study.trials) == 1 and sorted(job_dirs(study_dir)) == [0]
    # Runs without validation return no objective: refused before the first trial.
    off = [*first, "validation.every=0", "hydra.sweeper.study_name=no_objective"]
    refused = racing_rl(*off, cwd=tmp_path)
    assert refused.returncode == 1 and "has no objective to maximise" in refused.stderr
    assert "Traceback" not in refused.stderr
    # A search that continues no study there would train in job 0's dir and return its
    # best/ objective: refused, without a study (storage: null) and with a new one.
    for study in ("hydra.sweeper.storage=null", "hydra.sweeper.study_name=new_study"):
        refused = racing_rl(*first, study, cwd=tmp_path)
        assert refused.returncode == 1
        assert "holds the runs of an earlier sweep (1, e.g. 0_" in refused.stderr
    assert sorted(job_dirs(study_dir)) == [0]
    # A study whose every trial fails ends in one line, where Optuna's best_trial raised.
    elsewhere = f"hydra.sweep.dir={tmp_path / 'failing'}"
    failing = [*first, elsewhere, "hydra.sweeper.study_name=failing", "seed=-1"]
    failed = racing_rl(*failing, cwd=tmp_path)
    assert failed.returncode == 1 and "Traceback" not in failed.stderr
    assert "no trial of Optuna study 'failing' has completed: every one failed" in failed.stderr
    # A study kept in a storage that ends short of n_trials (a trial failed) exits with 1,
    # as a basic sweep with a failed job does: it exited with 0.
    partly = [f"hydra.sweep.dir={tmp_path / 'partly'}", "hydra.sweeper.study_name=partly"]
    partly += ["hydra.sweeper.sampler.seed=2", "seed=choice(0,-1)"]  # trial 0 fails, 1 trains
    result = racing_rl(*optuna_command(study_dir), *partly, cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert "Optuna study 'partly' has 1 of its 2 trials completed" in result.stderr


def test_an_interrupted_optuna_study_continues_with_the_same_command(tmp_path):
    study_dir = tmp_path / "study"
    command = optuna_command(study_dir)
    sweep = subprocess.Popen(
        [*RACING_RL, *command],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=default_sigint,
    )
    # Interrupt once trial 0 is done and trial 1 is training.
    deadline = time.monotonic() + 240
    while not (study_dir.is_dir() and 1 in job_dirs(study_dir)):
        assert sweep.poll() is None and time.monotonic() < deadline, sweep.communicate()[1][-3000:]
        time.sleep(0.2)
    while not (job_dirs(study_dir)[1] / "run.json").is_file():
        assert sweep.poll() is None and time.monotonic() < deadline, sweep.communicate()[1][-3000:]
        time.sleep(0.1)
    sweep.send_signal(signal.SIGINT)
    _, stderr = sweep.communicate(timeout=120)
    assert sweep.returncode != 0, stderr.decode()[-5000:]
    assert "a resumed trial does not report to its study" in stderr.decode()
    assert_complete(job_dirs(study_dir)[0])

    again = racing_rl(*command, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resuming study 'test_study'" in again.stderr
    study = optuna.load_study(study_name="test_study", storage=f"sqlite:///{study_dir}/optuna.db")
    states = {t.number: t.state for t in study.trials}
    assert states == {
        0: optuna.trial.TrialState.COMPLETE,
        1: optuna.trial.TrialState.FAIL,  # the interrupted one
        2: optuna.trial.TrialState.COMPLETE,  # numbering continues
    }
    jobs = job_dirs(study_dir)
    assert sorted(jobs) == [0, 1, 2]
    for n in (0, 2):
        summary = assert_complete(jobs[n])
        assert study.trials[n].value == pytest.approx(summary["objective"]["value"])
    # The resumed sampler is re-seeded: trial 2 does not repeat trial 0's parameters.
    assert study.trials[2].params != study.trials[0].params
    assert (study_dir / "optimization_results.yaml").is_file()
    rows = report_rows(study_dir)
    assert rows["1"]["status"] == "interrupted"
    assert {rows[n]["status"] for n in ("0", "2")} == {"completed"}


def test_the_report_ranks_complete_jobs_by_their_own_figures(tmp_path):
    """A job resumed for more steps and stopped kept its earlier leg's summary and was
    ranked above finished jobs; a single run's dir was named by its hour ("22"); a job
    without summary.json counted as a laps job in an objective=return sweep."""
    from racing_rl.report import markdown, read_sweep

    def job(name, status, objective=None, kind="laps"):
        path = tmp_path / name
        (path / ".hydra").mkdir(parents=True)
        (path / ".hydra" / "config.yaml").write_text(f"objective: {kind}\n")
        (path / ".hydra" / "overrides.yaml").write_text(f"- seed={name[0]}\n")
        (path / "run.json").write_text(json.dumps({"legs": [{"status": status}]}))
        if objective is not None:
            summary = {"objective": {"kind": kind, "value": objective}, "seconds": 1.0}
            (path / "summary.json").write_text(json.dumps(summary))

    job("0_seed=0", "completed", 0.5)
    job("1_seed=1", "interrupted", 0.9)  # the summary of its first leg
    job("22-53-01_ppo_pygame", "completed", 0.7)
    job("3_seed=3", "failed", kind="return")
    jobs, _ = read_sweep(tmp_path)
    assert [(j.name, j.objective) for j in jobs] == [
        ("22-53-01_ppo_pygame", 0.7),
        ("0", 0.5),
        ("1", None),
        ("3", None),
    ]
    assert [j.objective_kind for j in jobs] == ["laps", "laps", "laps", "return"]
    # No job has curves (no tb/): the report says so, where it wrote an empty plot silently.
    assert "No job has validation curves" in markdown(jobs, [], tmp_path)
    assert "different objectives" not in markdown(jobs, [], tmp_path)


def test_the_report_marks_a_job_with_a_damaged_run_json_and_reads_the_others(tmp_path):
    """A run.json cut short (a full disk) stopped the whole report with a JSONDecodeError."""
    from racing_rl.report import read_sweep

    for name, run_json in (("0", '{"legs": [{"status": "completed"}]}'), ("1", '{"legs": [{"sta')):
        path = tmp_path / name
        (path / ".hydra").mkdir(parents=True)
        (path / ".hydra" / "config.yaml").write_text("objective: laps\n")
        (path / ".hydra" / "overrides.yaml").write_text(f"- seed={name}\n")
        (path / "run.json").write_text(run_json)
    jobs, _ = read_sweep(tmp_path)
    assert [(j.name, j.status) for j in jobs] == [("0", "completed"), ("1", "failed")]
    assert jobs[1].error.startswith("run.json is damaged")


@pytest.mark.parametrize("cut", ["reading", "drawing"])
def test_a_ctrl_c_in_the_report_leaves_whole_files_and_says_which_in_one_line(
    tmp_path, capsys, monkeypatch, cut
):
    """Ctrl-C in ``racing-rl report`` ended in a KeyboardInterrupt's traceback (status -2,
    not 130), and, while it drew the curves, left a half-written learning_curves.png."""
    from matplotlib.figure import Figure

    from racing_rl import cli, report

    job = tmp_path / "sweep" / "0_seed=0"
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "config.yaml").write_text("objective: laps\n")
    (job / ".hydra" / "overrides.yaml").write_text("- seed=0\n")
    (job / "run.json").write_text('{"legs": [{"status": "completed"}]}')

    def interrupted(*args, **kwargs):
        if cut == "drawing":  # savefig writes as it draws
            Path(args[1]).write_bytes(b"\x89PNG\r\n\x1a\n")
        raise KeyboardInterrupt

    target = (Figure, "savefig") if cut == "drawing" else (report, "read_sweep")
    monkeypatch.setattr(*target, interrupted)
    assert cli.run(["report", str(tmp_path / "sweep")]) == 130
    written = "report.md, report.csv" if cut == "drawing" else "none"
    assert capsys.readouterr().err == (
        "racing-rl report: interrupted (Ctrl-C); of report.md, report.csv and "
        f"learning_curves.png it wrote {written} into {tmp_path / 'sweep'} (each whole; the "
        "others are as they were): run it again for the whole report\n"
    )
    files = sorted(p.name for p in (tmp_path / "sweep").iterdir())
    assert files == (["0_seed=0", "report.csv", "report.md"] if cut == "drawing" else ["0_seed=0"])


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_to_the_report_leaves_whole_files_and_says_which_in_one_line(tmp_path, sig):
    """SIGTERM to ``racing-rl report`` (no Hydra app, so no handler of racing_rl.interrupts)
    ended the process at once, silent (status -15), leaving the temporary file of the report
    file it was writing; it stops as on Ctrl-C now, with exit status 143. A named pipe in
    place of report.csv's temporary file holds the report as it writes report.csv (as a
    slow disk would), once report.md is written."""
    sweep_dir = tmp_path / "sweep"
    job = sweep_dir / "0_seed=0"
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "config.yaml").write_text("objective: laps\n")
    (job / ".hydra" / "overrides.yaml").write_text("- seed=0\n")
    (job / "run.json").write_text('{"legs": [{"status": "completed"}]}')
    os.mkfifo(sweep_dir / ".report.csv.partial")  # opening it to write waits for a reader
    process = start_racing_rl("report", str(sweep_dir), cwd=tmp_path, stderr=tmp_path / "err")
    try:
        deadline = time.monotonic() + 120
        while not (sweep_dir / "report.md").is_file():
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        time.sleep(1)  # it opens the pipe to write report.csv a moment after
        process.send_signal(sig)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    stderr = (tmp_path / "err").read_text()
    assert process.returncode == 128 + sig, stderr
    assert stderr == (
        f"racing-rl report: interrupted ({'Ctrl-C' if sig == signal.SIGINT else 'SIGTERM'}); "
        "of report.md, report.csv and learning_curves.png it wrote report.md into "
        f"{sweep_dir} (each whole; the others are as they were): run it again for the whole "
        "report\n"
    )
    assert sorted(p.name for p in sweep_dir.iterdir()) == ["0_seed=0", "report.md"]


def test_the_report_refuses_an_out_that_is_no_directory_in_one_line(tmp_path, capsys):
    """``--out`` naming a file (or a path under one) ended in a FileExistsError's
    (NotADirectoryError's) traceback."""
    from racing_rl.report import main

    job = tmp_path / "sweep" / "0_seed=0"
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "config.yaml").write_text("objective: laps\n")
    (job / ".hydra" / "overrides.yaml").write_text("- seed=0\n")
    (job / "run.json").write_text('{"legs": [{"status": "completed"}]}')
    (tmp_path / "file").write_text("")
    assert main([str(tmp_path / "sweep"), "--out", str(tmp_path / "file")]) == 2
    assert f"--out {tmp_path / 'file'} is a file; pass a directory" in capsys.readouterr().err
    assert main([str(tmp_path / "sweep"), "--out", str(tmp_path / "file" / "report")]) == 1
    assert capsys.readouterr().err == (  # it said "[Errno 20] Not a directory: '<path>'"
        f"racing-rl report: cannot write the report into {tmp_path / 'file' / 'report'}: Not a "
        "directory; pass --out <a directory you can write>\n"
    )
    assert (tmp_path / "file").read_text() == ""


def test_the_report_shows_a_swept_key_per_job_though_every_job_drew_one_value(tmp_path):
    """Two trials that drew the same gamma, or a sweep stopped after its first job, listed
    the swept key among the overrides all jobs share, and no job showed it."""
    from racing_rl.report import markdown, read_sweep

    for name in ("0", "1"):
        path = tmp_path / name
        (path / ".hydra").mkdir(parents=True)
        (path / ".hydra" / "config.yaml").write_text("objective: laps\n")
        (path / ".hydra" / "overrides.yaml").write_text(
            f"- algo.model.gamma=0.99\n- algo.model.n_steps={128 * (1 + int(name))}\n- seed=0\n"
        )
        (path / ".hydra" / "hydra.yaml").write_text(  # an Optuna search's space
            "hydra:\n  sweeper:\n    params:\n      algo.model.gamma: choice(0.99, 0.999)\n"
            "      algo.model.n_steps: choice(128, 256)\n"
        )
    (tmp_path / "multirun.yaml").write_text("hydra:\n  overrides:\n    task: ['seed=0,1']\n")
    jobs, shared = read_sweep(tmp_path)
    assert shared == [] and len(jobs) == 2
    assert {j.swept for j in jobs} == {
        f"algo.model.gamma=0.99 algo.model.n_steps={n} seed=0" for n in (128, 256)
    }
    # seed=0,1 x algo=ppo,sac launches 4 jobs, of which 2 ran: the report says so.
    (tmp_path / "multirun.yaml").write_text(
        "hydra:\n  overrides:\n    task: ['seed=0,1', 'algo=ppo,sac', 'total_timesteps=9']\n"
    )
    assert "2 of the sweep's 4 jobs ran (2 never started" in markdown(jobs, [], tmp_path)
    (tmp_path / "multirun.yaml").unlink()
    assert read_sweep(tmp_path)[1] == ["seed=0"]
    assert markdown(jobs[:1], [], tmp_path).splitlines()[2] == "1 job, 0 completed. "
    # A run's own directory is no sweep's: the report says to pass the one that holds it.
    with pytest.raises(FileNotFoundError, match=f"one run's directory: pass .*\\({tmp_path}\\)"):
        read_sweep(tmp_path / "0")


def test_the_report_says_how_an_interrupted_job_goes_on(tmp_path):
    """An interrupted job read "no error recorded", with nothing on how to go on."""
    from racing_rl.report import markdown, read_sweep

    legs = {"0": {"end_timesteps": 40_960}, "1": {}}  # saved; stopped before its first update
    for name, end in legs.items():
        path = tmp_path / name
        (path / ".hydra").mkdir(parents=True)
        (path / ".hydra" / "config.yaml").write_text("objective: laps\n")
        (path / ".hydra" / "overrides.yaml").write_text(f"- seed={name}\n")
        (path / "run.json").write_text(json.dumps({"legs": [{"status": "interrupted", **end}]}))
    jobs, _ = read_sweep(tmp_path)
    assert jobs[0].error.startswith("stopped by a signal at 40,960 timesteps, its checkpoint")
    assert jobs[1].error.startswith("stopped by a signal before its first update, nothing")
    text = markdown(jobs, [], tmp_path)
    assert "no error recorded" not in text
    assert text.count("the sweep's command again continues the sweep") == 2


def test_the_report_marks_a_running_job_whose_process_is_gone_killed(tmp_path):
    """A job killed with SIGKILL (or out of memory) stayed "running" in the report for good."""
    from racing_rl.report import read_sweep

    gone = subprocess.Popen(["true"])
    gone.wait()
    alive = subprocess.Popen(["sleep", "60"])
    host = platform.node()
    legs = {"0": (gone.pid, host), "1": (alive.pid, host), "2": (gone.pid, "another-host")}
    try:
        for name, (pid, on) in legs.items():
            path = tmp_path / name
            (path / ".hydra").mkdir(parents=True)
            (path / ".hydra" / "config.yaml").write_text("objective: laps\n")
            (path / ".hydra" / "overrides.yaml").write_text(f"- seed={name}\n")
            leg = {"status": "running", "pid": pid, "host": on}
            (path / "run.json").write_text(json.dumps({"legs": [leg]}))
        jobs, _ = read_sweep(tmp_path)
    finally:
        alive.kill()
    assert [(j.name, j.status) for j in jobs] == [
        ("0", "killed"),
        ("1", "running"),
        ("2", "running"),
    ]
    assert f"its process ({gone.pid}) ended without recording how" in jobs[0].error
    # A sweep with a job running is running: its later jobs are still to start (it told
    # to run the sweep's command again, which its lock would refuse).
    from racing_rl.report import markdown

    (tmp_path / "multirun.yaml").write_text("hydra:\n  overrides:\n    task: ['seed=0,1,2,3']\n")
    text = markdown(jobs, [], tmp_path)
    assert "The sweep is running: 3 of its 4 jobs have started (2 running now)" in text
    assert "never started" not in text
    assert "- job 0 (killed)" in text and "- job 1 (running)" not in text


def test_a_sweep_over_objectives_ranks_each_job_among_its_own_kind(tmp_path):
    """objective=laps,return ranked a return of 250 above a lap completion of 0.9 in one
    list, and drew both on the lap-completion axis: each kind is ranked, and drawn on an
    axis, of its own."""
    from racing_rl.report import markdown, plot_curves, read_sweep

    for name, kind, value in (("0", "laps", 0.9), ("1", "return", 250.0), ("2", "laps", 0.95)):
        path = tmp_path / name
        (path / ".hydra").mkdir(parents=True)
        (path / ".hydra" / "config.yaml").write_text(f"objective: {kind}\n")
        (path / ".hydra" / "overrides.yaml").write_text(f"- objective={kind}\n")
        (path / "run.json").write_text(json.dumps({"legs": [{"status": "completed"}]}))
        summary = {"objective": {"kind": kind, "value": value}, "seconds": 1.0}
        (path / "summary.json").write_text(json.dumps(summary))
    jobs, _ = read_sweep(tmp_path)
    assert [(j.name, j.objective_kind) for j in jobs] == [
        ("2", "laps"),
        ("0", "laps"),
        ("1", "return"),
    ]
    assert "different objectives (laps, return" in markdown(jobs, [], tmp_path)
    jobs[0].curve, jobs[2].curve = [(100, 0.5), (200, 0.9)], [(100, 10.0), (200, 250.0)]
    figure = plot_curves(jobs, tmp_path / "curves.png")
    assert (tmp_path / "curves.png").stat().st_size > 0
    laps, returns = figure.axes  # returns on a second axis, dashed
    assert [line.get_label() for line in laps.lines] == ["job 2"]
    assert [line.get_label() for line in returns.lines] == ["job 1"]
    assert returns.lines[0].get_linestyle() == "--" and "return" in returns.get_ylabel()
    assert laps.get_ylim()[1] < 2 < 250 < returns.get_ylim()[1]
    jobs[1].curve = [(100, 0.7)]  # both of lap completion: one axis
    assert len(plot_curves(jobs[:2], tmp_path / "laps.png").axes) == 1


def test_a_resumed_job_s_learning_curve_reads_without_tensorboard_s_warning(tmp_path, caplog):
    # A leg resumed from a checkpoint before the stretch a kill lost logs its steps again:
    # TensorBoard drops the lost points and warned of "a TensorFlow restart".
    from torch.utils.tensorboard import SummaryWriter

    from racing_rl.report import learning_curve

    for steps, value in ((range(1, 6), 0.5), (range(3, 7), 0.8)):  # leg 1, then leg 2
        # As training opens it: purge_step, the leg's first timestep, marks the restart.
        writer = SummaryWriter(str(tmp_path / "tb"), purge_step=steps[0])
        for step in steps:
            writer.add_scalar("eval/lap_completion_rate", value, step)
        writer.close()
        time.sleep(1.1)  # a later event file: their names sort by the second they start
    with caplog.at_level(logging.WARNING):
        curve = learning_curve(tmp_path / "tb", "eval/lap_completion_rate")
    assert "TensorFlow" not in caplog.text
    assert [step for step, _ in curve] == [1, 2, 3, 4, 5, 6]
    assert [round(value, 2) for _, value in curve] == [0.5, 0.5, 0.8, 0.8, 0.8, 0.8]

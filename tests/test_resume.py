"""Resume, interruption and atomic checkpoints, through real `racing-rl train` runs."""

import collections
import csv
import errno
import functools
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import types
from pathlib import Path

import numpy as np
import pytest
from hydra import compose
from omegaconf import OmegaConf
from runs import QUICK, QUICK_OFF_POLICY, default_sigint, racing_rl, saved_config, tb_scalars

from racing_rl.checkpoints.layout import (
    MANIFEST,
    Checkpoint,
    find_checkpoints,
    latest_checkpoint,
)
from racing_rl.checkpoints.loading import load_episodes, load_model, load_replay_buffer
from racing_rl.checkpoints.runs import load_run_config, resume_config
from racing_rl.checkpoints.saving import episode_record
from racing_rl.config import initialize
from racing_rl.errors import ConfigError, TrainingInterrupted
from racing_rl.interrupts import TrainingSignals
from racing_rl.normalize import read_statistics

# Rollouts of 50 steps × 4 cars = 200 timesteps, so the legs end exactly on 2000 and 4000.
PPO = ["algo=ppo", "algo.model.n_steps=50", "algo.model.batch_size=100"]
SAC = [
    "algo=sac",
    *QUICK_OFF_POLICY,
    "algo.model.buffer_size=10000",
    "algo.model.gradient_steps=1",
    "log_interval=1",  # a row every episode: both legs log, whatever the tracks
]


@pytest.mark.parametrize("algo", [PPO, SAC], ids=["ppo", "sac"])
def test_resume_continues_the_run_where_it_stopped(algo, tmp_path):
    run_dir = tmp_path / "run"
    first = racing_rl("train", *algo, *QUICK, f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    assert latest_checkpoint(run_dir).timesteps == 2000
    second = racing_rl("train", f"resume={run_dir}", "total_timesteps=4000", cwd=tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "done: 4,000 timesteps (this leg 2,000) in " in second.stderr  # time: this leg's

    legs = json.loads((run_dir / "run.json").read_text())["legs"]
    assert [(leg["start_timesteps"], leg["end_timesteps"]) for leg in legs] == [
        (0, 2000),
        (2000, 4000),
    ]
    assert legs[1]["resumed_from"].endswith("final_2000_steps")
    # The run's overrides say what its config now holds (racing-rl report shows them).
    overrides = OmegaConf.load(run_dir / ".hydra" / "overrides.yaml")
    assert "total_timesteps=4000" in overrides and "total_timesteps=2000" not in overrides
    assert not any(str(o).startswith(("resume=", "backend=")) for o in overrides)
    # The run's own backend, added for Hydra to compose, is not the user's: not recorded.
    assert legs[1]["command"].endswith(f"train resume={run_dir} total_timesteps=4000")
    # Validation rows have their timesteps in progress.csv (they had none: no x value).
    rows = list(csv.DictReader((run_dir / "progress.csv").open()))
    validated = [row["time/total_timesteps"] for row in rows if row["eval/lap_completion_rate"]]
    assert validated == ["1000", "2000", "3000", "4000"]
    # Resuming a finished run is refused before Hydra starts.
    again = racing_rl("train", f"resume={run_dir}", cwd=tmp_path)
    assert again.returncode == 2
    assert "is already at 4,000 timesteps, total_timesteps=4,000" in again.stderr
    assert json.loads((run_dir / "run.json").read_text())["legs"] == legs
    cfg = load_run_config(run_dir)
    assert cfg.total_timesteps == 4000  # the run's config records the longer budget
    final = latest_checkpoint(run_dir)
    assert final.kind == "final" and final.timesteps == 4000  # 2000 + 2000
    model = load_model(cfg.algo, final.model, env=None, device="cpu")
    assert model.num_timesteps == 4000
    # The schedule's position: progress is measured against the whole run's 4000 steps.
    assert model._total_timesteps == 4000
    # One TensorBoard run whose steps go on from the first leg.
    steps = [step for step, _ in tb_scalars(run_dir)["time/fps"]]
    assert steps == sorted(steps) and steps[-1] > 2000
    # The latest episodes came back with the checkpoint (SB3's ep_info_buffer, which its
    # loading leaves empty): the second leg's record goes on from the first's.
    before = json.loads((Path(legs[1]["resumed_from"]) / MANIFEST).read_text())["episodes"]
    after = json.loads((final.path / MANIFEST).read_text())["episodes"]
    assert 0 < len(before) < len(after) < 100, (len(before), len(after))
    assert after[: len(before)] == before
    if "algo=ppo" in algo:
        # The linear schedule spans the run's total: 2000 steps in the first leg, 4000 in
        # the second, which goes on from step 2000 (not from 0). Each value is logged one
        # rollout (200 steps) after it was set; a validation (between rollouts) logs the
        # value just set, at the step of the rollout's own row.
        start = cfg.algo.model.learning_rate.start
        validations = {step for step, _ in tb_scalars(run_dir)["eval/episodes"]}
        for step, rate in tb_scalars(run_dir)["train/learning_rate"]:
            total = 2000 if step <= 2000 else 4000
            set_at = {step - 200, step} if step in validations else {step - 200}
            assert rate in [pytest.approx(start * (1 - s / total), rel=1e-5) for s in set_at]
    else:
        # The replay buffer came back: it holds both legs' transitions, not the last 2000.
        assert load_replay_buffer(model, final.path)
        assert model.replay_buffer.size() * model.replay_buffer.n_envs == 4000
        assert "replay buffer: 2000 transitions" in second.stderr


def test_a_malformed_record_of_episodes_resumes_without_them(tmp_path, caplog):
    checkpoint = tmp_path / "ppo_200_steps"
    checkpoint.mkdir()
    record = {"timesteps": 200, "kind": "ppo", "algorithm": "PPO"}
    (checkpoint / MANIFEST).write_text(json.dumps(record))  # saved before the record
    assert load_episodes(Checkpoint(checkpoint, 200, "ppo")) == []
    assert not caplog.records
    episodes = [{"r": 1.5, "l": 20, "t": 0.25}, {"r": float("nan"), "l": 3, "t": 0.5}]
    (checkpoint / MANIFEST).write_text(json.dumps({**record, "episodes": episodes}))
    assert load_episodes(Checkpoint(checkpoint, 200, "ppo")) == []
    flag = [{"r": True, "l": 3, "t": 0.5}]  # a boolean is no figure
    (checkpoint / MANIFEST).write_text(json.dumps({**record, "episodes": flag}))
    assert load_episodes(Checkpoint(checkpoint, 200, "ppo")) == []
    assert "record of the latest episodes is malformed ([{'l': 20" in caplog.text
    (checkpoint / MANIFEST).write_text(json.dumps({**record, "episodes": episodes[:1]}))
    assert load_episodes(Checkpoint(checkpoint, 200, "ppo")) == episodes[:1]
    # Saved, an episode that JSON cannot hold (a diverged return) is left out: written as
    # null, it made the whole record malformed.
    buffer = [*episodes, {"r": np.float32(2.0), "l": 7, "t": 1.0, "extra": "kept out"}]
    model = types.SimpleNamespace(ep_info_buffer=collections.deque(buffer))
    assert episode_record(model) == [episodes[0], {"r": 2.0, "l": 7.0, "t": 1.0}]


def training_with_a_checkpoint(run_dir) -> subprocess.Popen:
    """A long `racing-rl train` in a subprocess, once it has saved a periodic checkpoint."""
    quick = [q for q in QUICK if not q.startswith("total_timesteps")]
    args = [*PPO, *quick, "total_timesteps=10000000", f"hydra.run.dir={run_dir}"]
    process = subprocess.Popen(
        [sys.executable, "-m", "racing_rl.cli", "train", *args],
        cwd=run_dir.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_sigint,
    )
    deadline = time.monotonic() + 120
    while not list(run_dir.glob("checkpoints/ppo_*")) and time.monotonic() < deadline:
        time.sleep(0.2)
    return process


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_saves_an_interrupted_checkpoint_that_resume_continues(sig, tmp_path):
    run_dir = tmp_path / "run"
    process = training_with_a_checkpoint(run_dir)
    process.send_signal(sig)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + sig, stderr[-3000:]
    assert f"resume={run_dir}" in stderr

    interrupted = latest_checkpoint(run_dir)
    assert interrupted.kind == "interrupted" and interrupted.timesteps >= 1000
    assert interrupted.statistics.is_file()
    assert json.loads((run_dir / "run.json").read_text())["legs"][0]["status"] == "interrupted"
    total = interrupted.timesteps + 400
    resumed = racing_rl("train", f"resume={run_dir}", f"total_timesteps={total}", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed_from" in (run_dir / "run.json").read_text()
    final = latest_checkpoint(run_dir)
    assert final.kind == "final" and final.timesteps >= total


def test_a_signal_during_a_save_in_training_is_raised_once_the_save_is_complete(caplog):
    # Raised inside torch.save, the KeyboardInterrupt became a RuntimeError of the
    # half-written zip, and the run exited 1 instead of saving an interrupted checkpoint.
    interrupts = TrainingSignals()
    saved = []
    with interrupts:
        with pytest.raises(KeyboardInterrupt, match="SIGTERM"), interrupts.held():
            os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGINT)  # a second one only waits
            saved.append(sum(range(1000)))  # the save goes on to its end
        assert saved and interrupts.saving and interrupts.pending == "SIGTERM"
        os.kill(os.getpid(), signal.SIGINT)  # the interrupted checkpoint's save: waits too
        saved.append(sum(range(1000)))
    assert len(saved) == 2
    assert "stopping once the checkpoint being written is complete" in caplog.text
    assert caplog.text.count("still writing the run's files") == 2
    # Outside a save, a signal interrupts at once.
    with TrainingSignals(), pytest.raises(KeyboardInterrupt, match="SIGINT"):
        os.kill(os.getpid(), signal.SIGINT)
        saved.append(sum(range(1000)))
    assert len(saved) == 2


def test_a_save_killed_midway_leaves_the_previous_checkpoint_loadable(tmp_path):
    """A process that dies while writing a checkpoint (and the final model) loses nothing."""
    script = textwrap.dedent(
        f"""
        import os
        from pathlib import Path
        from stable_baselines3 import PPO
        from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize
        import gymnasium
        import racing_rl.envs
        from racing_rl.checkpoints.saving import save_checkpoint, save_model_files

        run = Path({str(tmp_path)!r})
        env = VecNormalize(DummyVecEnv([lambda: gymnasium.make("racing_rl/Race-v0")]))
        model = PPO("MlpPolicy", env, n_steps=64, batch_size=64, seed=0)
        model.learn(64)
        save_checkpoint(model, env, run / "checkpoints", "ppo")
        save_model_files(model, env, run)
        model.learn(64, reset_num_timesteps=False)

        def die_halfway(path, *args, **kwargs):
            with open(path, "wb") as file:
                file.write(b"PK\\x03\\x04 half a zip")
            os._exit(9)

        model.save = die_halfway
        if os.environ["KILL_IN"] == "checkpoint":
            save_checkpoint(model, env, run / "checkpoints", "ppo")
        else:
            save_model_files(model, env, run)
        """
    )
    for kill_in in ("checkpoint", "final"):
        result = subprocess.run(
            [sys.executable, "-c", script],
            env={**os.environ, "KILL_IN": kill_in},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 9, result.stderr[-3000:]
        (checkpoint,) = find_checkpoints(tmp_path)
        assert checkpoint.timesteps == 64
        if kill_in == "checkpoint":  # the half-written one is left aside, not listed
            assert list((tmp_path / "checkpoints").glob(".ppo_128_steps.partial"))
        algo = OmegaConf.create(
            {"model": {"_target_": "stable_baselines3.PPO", "policy": "MlpPolicy"}}
        )
        for path in (checkpoint.model, tmp_path / "model.zip"):
            assert load_model(algo, path, env=None, device="cpu").num_timesteps == 64


@pytest.mark.parametrize(
    ("override", "why"),
    [
        ("algo=sac", "algorithm and its settings are the run's own"),
        ("algo.model.learning_rate=0.001", "algorithm and its settings are the run's own"),
        ("backend=roblox", "model's shape"),  # its own, backend=pygame, is allowed
        ("wrappers.frame_stack=3", "model's shape"),
        ("backend.sensors.n_rays=12", "model's shape"),
        ("n_races=8", "model's shape"),
        ("seed=3", "keeps its own config"),
    ],
)
def test_resume_refuses_overrides_other_than_the_resumable_keys(tmp_path, override, why):
    cfg = saved_config(tmp_path, [])
    with pytest.raises(ConfigError, match=why):
        resume_config(tmp_path, [f"resume={tmp_path}", override])
    resumed = resume_config(tmp_path, [f"resume={tmp_path}", "total_timesteps=5000000"])
    assert resumed.total_timesteps == 5_000_000 and resumed.seed == cfg.seed


def test_resume_takes_the_command_that_started_the_run(tiny_runs):
    """Overrides that repeat the run's own settings were refused ('Cannot resume ... with
    'seed=1'') although they change nothing: the run's own command with resume= added
    failed."""
    run = tiny_runs[1]
    saved = OmegaConf.load(run / ".hydra" / "config.yaml")
    validation = ",".join(map(str, saved.tracks.validation))
    own = ["seed=1", "algo=ppo", f"tracks.validation=[{validation}]", "backend=pygame"]
    resumed = resume_config(run, [f"resume={run}", *own, "total_timesteps=9000"])
    assert resumed.seed == 1 and resumed.total_timesteps == 9000
    for change in ("seed=0", "algo=sac", "seed=1.0", "+seed2=1"):
        with pytest.raises(ConfigError, match="Cannot resume"):
            resume_config(run, [f"resume={run}", change])


def test_ctrl_c_while_setting_up_is_recorded_and_explained(tmp_path, monkeypatch):
    """A SIGINT before training starts has nothing to save: run.json says interrupted."""
    import racing_rl.training as train_module

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "make_model", interrupted)
    with initialize():
        cfg = compose("train", overrides=QUICK)
    with pytest.raises(TrainingInterrupted, match="before any training") as raised:
        train_module.train(cfg, tmp_path)
    assert raised.value.exit_code == 128 + signal.SIGINT
    (leg,) = json.loads((tmp_path / "run.json").read_text())["legs"]
    assert leg["status"] == "interrupted"

    # A run that has checkpoints keeps them, and the message says how to go on.
    monkeypatch.undo()
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    train_module.train(cfg, run_dir)
    saved = latest_checkpoint(run_dir)
    monkeypatch.setattr(train_module, "load_for_resume", interrupted)
    with pytest.raises(TrainingInterrupted) as raised:
        train_module.train(cfg, run_dir, resume=saved)
    assert str(raised.value) == (
        f"Interrupted by SIGINT before this leg saved anything; the newest checkpoint is "
        f"still {saved.path}. Continue with: racing-rl train resume={run_dir}"
    )
    assert latest_checkpoint(run_dir) == saved


def test_an_exception_during_training_saves_an_interrupted_checkpoint(tmp_path, monkeypatch):
    import racing_rl.training as train_module

    class Failing(train_module.RaceMetricsCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps >= 600:
                raise RuntimeError("a bug in a callback")
            return super()._on_step()

    monkeypatch.setattr(train_module, "RaceMetricsCallback", Failing)
    with initialize():
        cfg = compose("train", overrides=[*PPO, *QUICK, "validation.every=0"])
    with pytest.raises(RuntimeError, match="a bug in a callback"):
        train_module.train(cfg, tmp_path)
    # Raised in the rollout of 400-600, which PPO discards: the checkpoint counts 400.
    checkpoint = latest_checkpoint(tmp_path)
    assert checkpoint.kind == "interrupted" and checkpoint.timesteps == 400
    assert load_model(cfg.algo, checkpoint.model).num_timesteps == 400
    (leg,) = json.loads((tmp_path / "run.json").read_text())["legs"]
    assert leg["status"] == "failed" and "a bug in a callback" in leg["error"]
    assert leg["checkpoint"] == str(checkpoint.path)


def test_an_exception_is_what_the_user_sees_when_its_checkpoint_cannot_be_saved(
    tmp_path, monkeypatch, caplog
):
    # A save that fails after the error (a full disk) is logged; the error that stopped
    # training is the one raised, and the leg records no checkpoint.
    import racing_rl.training as train_module

    class Failing(train_module.RaceMetricsCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps >= 600:
                raise RuntimeError("a bug in a callback")
            return super()._on_step()

    def failing_save(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(train_module, "RaceMetricsCallback", Failing)
    monkeypatch.setattr(train_module, "save_checkpoint", failing_save)
    with initialize():
        cfg = compose("train", overrides=[*PPO, *QUICK, "validation.every=0"])
    with caplog.at_level(logging.ERROR), pytest.raises(RuntimeError, match="a bug in a"):
        train_module.train(cfg, tmp_path)
    assert find_checkpoints(tmp_path) == []
    assert "could not save a checkpoint after the error: [Errno 28] No space left" in caplog.text
    (leg,) = json.loads((tmp_path / "run.json").read_text())["legs"]
    assert leg["status"] == "failed" and "checkpoint" not in leg


def test_a_divergence_saves_no_checkpoint_of_its_non_finite_weights(tmp_path, monkeypatch, caplog):
    # An update that left NaN weights: the next action fails in torch's Normal. Saving
    # those weights as the newest checkpoint would make resume= continue from them.
    import torch

    import racing_rl.training as train_module

    class Diverging(train_module.RaceMetricsCallback):
        def _on_rollout_start(self) -> None:
            if self.num_timesteps == 800:
                with torch.no_grad():
                    for parameter in self.model.policy.parameters():
                        parameter.fill_(float("nan"))

    monkeypatch.setattr(train_module, "RaceMetricsCallback", Diverging)
    with initialize():
        cfg = compose("train", overrides=[*PPO, *QUICK, "validation.every=0"])
    with caplog.at_level(logging.ERROR), pytest.raises(ValueError, match="invalid values"):
        train_module.train(cfg, tmp_path)
    assert find_checkpoints(tmp_path) == []
    assert (
        "training stopped by ValueError at 800 timesteps; not saving: the weights or the "
        "VecNormalize statistics are not finite" in caplog.text
    )
    (leg,) = json.loads((tmp_path / "run.json").read_text())["legs"]
    assert leg["status"] == "failed" and "checkpoint" not in leg


def test_a_ctrl_c_whose_unwinding_fails_in_a_library_is_still_an_interruption(
    tmp_path, monkeypatch
):
    # A Ctrl-C in the middle of an OmegaConf flag change made its clean-up fail
    # ("ConfigKeyError: 'NoneType' object has no attribute '_invalidate_flags_cache'"):
    # the leg was "failed", and a sweep's trial failed instead of being interrupted.
    import racing_rl.training as train_module

    class CutShort(train_module.RaceMetricsCallback):
        def _on_training_start(self) -> None:
            try:
                raise KeyboardInterrupt("SIGINT")
            finally:
                raise AttributeError("'NoneType' object has no attribute '_invalidate_flags'")

    monkeypatch.setattr(train_module, "RaceMetricsCallback", CutShort)
    with initialize():
        cfg = compose("train", overrides=[*PPO, *QUICK, "validation.every=0"])
    with pytest.raises(TrainingInterrupted, match="Interrupted by SIGINT while setting up") as e:
        train_module.train(cfg, tmp_path)
    assert e.value.exit_code == 130
    (leg,) = json.loads((tmp_path / "run.json").read_text())["legs"]
    assert leg["status"] == "interrupted"


def test_an_exception_before_the_first_timestep_saves_nothing(tmp_path, monkeypatch):
    # A game whose observations have another size fails at the first reset: an
    # interrupted_0_steps checkpoint and "continue with resume=" would only mislead.
    import racing_rl.training as train_module

    class Failing(train_module.RaceMetricsCallback):
        def _on_training_start(self) -> None:
            raise RuntimeError("the first reset failed")

    monkeypatch.setattr(train_module, "RaceMetricsCallback", Failing)
    with initialize():
        cfg = compose("train", overrides=[*PPO, *QUICK, "validation.every=0"])
    with pytest.raises(RuntimeError, match="the first reset failed"):
        train_module.train(cfg, tmp_path)
    assert find_checkpoints(tmp_path) == []
    (leg,) = json.loads((tmp_path / "run.json").read_text())["legs"]
    assert leg["status"] == "failed" and "checkpoint" not in leg


def test_a_double_sigint_leaves_a_loadable_checkpoint_and_no_traceback(tmp_path):
    run_dir = tmp_path / "run"
    process = training_with_a_checkpoint(run_dir)
    process.send_signal(signal.SIGINT)
    time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    assert not list((run_dir / "checkpoints").glob(".*.partial"))
    interrupted = latest_checkpoint(run_dir)
    assert interrupted.kind == "interrupted"
    cfg = load_run_config(run_dir)
    assert load_model(cfg.algo, interrupted.model).num_timesteps == interrupted.timesteps


def importing_torch(pid: int) -> bool:
    """Whether process ``pid`` has begun to import torch (has mapped its library)."""
    try:
        return "libtorch" in Path(f"/proc/{pid}/maps").read_text()
    except OSError:  # gone
        return False


@pytest.mark.skipif(not Path("/proc/self/maps").is_file(), reason="reads /proc/<pid>/maps")
@pytest.mark.parametrize("after_s", [0.0, 1.0])
def test_ctrl_c_while_starting_exits_130_without_a_traceback(tmp_path, after_s):
    """While Python imports torch, Hydra composes the config or train() sets up.

    Counted from the start of torch's import, which racing-rl's handlers precede: a Ctrl-C
    0.5 s after the process started reached it, on a loaded machine, in Python's own
    start-up or the dispatcher's first imports (9 of 12 under 4 CPU hogs), where no
    program handles it: a KeyboardInterrupt traceback, status -2."""
    process = subprocess.Popen(
        [sys.executable, "-m", "racing_rl.cli", "train", *QUICK, f"hydra.run.dir={tmp_path}/r"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_sigint,
    )
    deadline = time.monotonic() + 120
    while not importing_torch(process.pid):
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.01)
    time.sleep(after_s)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]


def test_sigterm_stops_a_command_as_ctrl_c_does():
    """SIGTERM outside training ended a command at once and silent (eval, train while
    setting up: exit 143, nothing said, run.json's leg left 'running')."""
    from racing_rl import interrupts

    def task() -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(10)  # the signal's handler raises first

    def app() -> None:  # as hydra.main wraps a task function
        task()

    app.__wrapped__ = task
    before = signal.getsignal(signal.SIGTERM)
    with interrupts.handled("eval") as started:
        started(app)
        with pytest.raises(KeyboardInterrupt) as raised:
            app()
    assert interrupts.interrupt_signal(raised.value) == signal.SIGTERM
    assert interrupts.interrupt_signal(KeyboardInterrupt()) == signal.SIGINT  # Ctrl-C's own
    # eval's RacesInterrupted carries the races that ended, raised from the signal's.
    from racing_rl.evaluation.races import RacesInterrupted

    try:
        try:
            raise KeyboardInterrupt("SIGTERM")
        except KeyboardInterrupt as interrupt:
            raise RacesInterrupted([]) from interrupt
    except KeyboardInterrupt as ended:
        assert interrupts.interrupt_signal(ended) == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is before  # put back


def test_a_full_disk_ends_training_in_one_line(tmp_path):
    """A full disk ended training in three chained tracebacks (ENOSPC's OSError, torch's
    RuntimeError about it, OSError again)."""
    run_dir = tmp_path / "run"
    program = textwrap.dedent(
        f"""
        import errno, sys
        import racing_rl.training as training

        def full(model, env, directory):  # the run directory's final save, as torch fails
            try:
                raise OSError(errno.ENOSPC, "No space left on device", str(directory / "x"))
            except OSError as err:
                raise RuntimeError("[enforce fail at inline_container.cc] unexpected pos") from err

        training.save_model_files = full
        from racing_rl.cli import main
        sys.exit(main(["train", *{QUICK!r}, "hydra.run.dir={run_dir}"]))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", program], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert f"{run_dir / 'x'}: No space left on device. What the run saved before is whole" in (
        result.stderr
    )
    assert f"then continue with: racing-rl train resume={run_dir}" in result.stderr


def stop_at(timesteps: int, train_module):
    """A RaceMetricsCallback that raises KeyboardInterrupt (as a signal does) once training
    reaches ``timesteps``, in the middle of collecting a rollout."""

    class Stopping(train_module.RaceMetricsCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps >= timesteps:
                raise KeyboardInterrupt("SIGINT")
            return super()._on_step()

    return Stopping


def test_a_ctrl_c_in_a_rollout_counts_only_the_timesteps_trained_on(tmp_path, monkeypatch):
    """PPO discards an unfinished rollout; its steps were counted in the interrupted
    checkpoint all the same, so that each resumed run ended up to a rollout short."""
    import racing_rl.training as train_module

    cfg = saved_config(tmp_path, [*PPO, *QUICK])
    monkeypatch.setattr(train_module, "RaceMetricsCallback", stop_at(1900, train_module))
    with pytest.raises(TrainingInterrupted, match="at 1,800 timesteps"):
        train_module.train(cfg, tmp_path)  # stopped in the rollout of 1,800-2,000
    checkpoint = latest_checkpoint(tmp_path)
    assert (checkpoint.kind, checkpoint.timesteps) == ("interrupted", 1800)
    (leg,) = json.loads((tmp_path / "run.json").read_text())["legs"]
    assert leg["end_timesteps"] == 1800


def test_a_ctrl_c_whose_checkpoint_cannot_be_saved_says_so(tmp_path, monkeypatch):
    """A Ctrl-C on a full disk said "Interrupted by SIGINT before this leg saved anything"
    (it had saved ppo_1000_steps, and trained 800 timesteps more), not a word of the disk."""
    import racing_rl.training as train_module

    cfg = saved_config(tmp_path, [*PPO, *QUICK])
    monkeypatch.setattr(train_module, "RaceMetricsCallback", stop_at(1900, train_module))
    saving = train_module.save_checkpoint

    def full_disk(model, env, directory, kind, *args, **kwargs):
        if kind == "interrupted":
            raise OSError(errno.ENOSPC, "No space left on device", str(directory / "x"))
        return saving(model, env, directory, kind, *args, **kwargs)

    monkeypatch.setattr(train_module, "save_checkpoint", full_disk)
    with pytest.raises(TrainingInterrupted) as stopped:
        train_module.train(cfg, tmp_path)
    unsaved = (
        f"its checkpoint could not be saved ({tmp_path / 'checkpoints' / 'x'}: No space left "
        "on device)"
    )
    assert str(stopped.value) == (
        f"Training interrupted by SIGINT at 1,800 timesteps, but {unsaved}; the newest "
        f"checkpoint is still {tmp_path / 'checkpoints' / 'ppo_1000_steps'}. Free space on "
        f"that disk first. Continue with: racing-rl train resume={tmp_path}"
    )
    assert stopped.value.exit_code == 130  # a sweep stops
    (leg,) = json.loads((tmp_path / "run.json").read_text())["legs"]
    assert (leg["status"], leg["error"]) == ("interrupted", unsaved)


def test_a_ctrl_c_closes_the_progress_bar_before_the_interrupted_save_is_logged(
    tmp_path, monkeypatch
):
    """The bar stayed open after a Ctrl-C: the interrupted save's log lines began on the
    bar's line, and the bar was drawn again below them at exit."""
    import racing_rl.training as train_module

    bars = []

    class Recorded(train_module.ProgressBar):
        def __init__(self) -> None:
            super().__init__()
            bars.append(self)

    cfg = saved_config(tmp_path, [*PPO, *QUICK, "progress_bar=true"])
    monkeypatch.setattr(train_module, "RaceMetricsCallback", stop_at(1900, train_module))
    monkeypatch.setattr(train_module, "ProgressBar", Recorded)
    with pytest.raises(TrainingInterrupted):
        train_module.train(cfg, tmp_path)
    (bar,) = bars
    assert bar.pbar.disable  # tqdm's mark of a closed bar


def test_a_ctrl_c_in_a_rollout_leaves_its_observations_out_of_the_statistics(tmp_path, monkeypatch):
    """The discarded rollout's observations were in the interrupted checkpoint's
    VecNormalize statistics: a resumed run normalised with statistics of steps it never
    trained on. They are now those of the rollout's start, as its timesteps are."""
    import racing_rl.training as train_module

    at_rollout_start = []

    class Recording(stop_at(1900, train_module)):
        def _on_rollout_start(self) -> None:
            obs_rms = self.model.get_vec_normalize_env().obs_rms
            at_rollout_start.append((self.num_timesteps, obs_rms.count, obs_rms.mean.copy()))
            super()._on_rollout_start()

    cfg = saved_config(tmp_path, [*PPO, *QUICK])
    monkeypatch.setattr(train_module, "RaceMetricsCallback", Recording)
    with pytest.raises(TrainingInterrupted, match="at 1,800 timesteps"):
        train_module.train(cfg, tmp_path)
    timesteps, count, mean = at_rollout_start[-1]
    assert timesteps == 1800
    saved = read_statistics(latest_checkpoint(tmp_path).statistics)
    assert saved["obs_count"] == count  # not the 100 observations after it
    np.testing.assert_array_equal(saved["obs_mean"], mean)


def test_a_run_stopped_after_its_last_step_is_finished_by_resume(tmp_path, monkeypatch, caplog):
    """A Ctrl-C in the last update of a run past its total (SAC's updates follow every
    step) left interrupted_1900_steps of a 1,898-step run: the printed resume command was
    refused ("already at 1,900 timesteps"), and the run had no final model, best/ or
    summary. Now resume ends it without training. (PPO, stopped in an update, discards
    that rollout: test_a_ctrl_c_in_an_update_discards_its_rollout.)"""
    from stable_baselines3 import SAC as SACModel

    import racing_rl.training as train_module

    # Steps of 4 timesteps (4 cars) overshoot a total of 1,898: the last one ends at 1,900.
    cfg = saved_config(tmp_path, [*SAC, *QUICK, "total_timesteps=1898"])
    in_the_last_update = interrupt_once(
        SACModel.train, lambda self, *a, **k: self.num_timesteps >= 1900
    )
    with monkeypatch.context() as patched:
        patched.setattr(SACModel, "train", in_the_last_update)
        with pytest.raises(TrainingInterrupted, match="Finish the run with: racing-rl train"):
            train_module.train(cfg, tmp_path)
    assert latest_checkpoint(tmp_path).kind == "interrupted"
    assert not (tmp_path / "summary.json").exists()

    # A total below where the run stands, given by mistake, ended it as complete; its
    # refusal came after a line that said the schedules would span the new total.
    with caplog.at_level(logging.INFO, logger="racing_rl"):
        with pytest.raises(ConfigError, match="total_timesteps=1,000 is below the 1,900 timest"):
            train_module.resume_run(tmp_path, ["total_timesteps=1000"])
        assert "the algorithm's schedules" not in caplog.text
        train_module.resume_run(tmp_path, ["total_timesteps=1898"])  # the run's own: it ends
        assert "the algorithm's schedules" not in caplog.text
        train_module.resume_run(tmp_path, ["total_timesteps=3796"])
    assert "total_timesteps 1,898 -> 3,796: the algorithm's schedules" in caplog.text
    caplog.clear()
    cfg, checkpoint, _ = train_module.resume_run(tmp_path, [])
    assert checkpoint.timesteps == 1900
    with caplog.at_level(logging.INFO, logger="racing_rl"):
        summary = train_module.train(cfg, tmp_path, resume=checkpoint)
    assert (
        "resuming sac on pygame: 4 cars (2 tracks x 2), 0 timesteps left (at 1,900 of 1,898), "
        in caplog.text
    )
    assert "done: 1,900 timesteps; best validation" in caplog.text
    assert summary["timesteps"] == 1900 and "best" in summary
    assert summary["env_steps_per_s"] is None  # this leg trained nothing
    final = latest_checkpoint(tmp_path)
    assert final.kind == "final" and final.timesteps == 1900
    assert (tmp_path / "model.zip").is_file() and (tmp_path / "summary.json").is_file()
    legs = json.loads((tmp_path / "run.json").read_text())["legs"]
    assert [leg["status"] for leg in legs] == ["interrupted", "completed"]
    with pytest.raises(ConfigError, match="is already at 1,900 timesteps"):  # now finished
        train_module.resume_run(tmp_path, [])


def test_a_ctrl_c_in_an_update_discards_its_rollout(tmp_path, monkeypatch):
    """Stopped in PPO's update (or between its rollout and the update), the rollout's
    steps were counted as trained; a periodic checkpoint due at the next rollout start was
    then skipped on resume."""
    from stable_baselines3 import PPO as PPOModel

    import racing_rl.training as train_module

    cfg = saved_config(tmp_path, [*PPO, *QUICK, "checkpoint.every=1000"])
    in_an_update = interrupt_once(PPOModel.train, lambda self: self.num_timesteps >= 1000)
    with monkeypatch.context() as patched:
        patched.setattr(PPOModel, "train", in_an_update)
        with pytest.raises(TrainingInterrupted, match="at 800 timesteps"):
            train_module.train(cfg, tmp_path)
    cfg, checkpoint, _ = train_module.resume_run(tmp_path, [])
    assert checkpoint.timesteps == 800
    # Its schedules' progress is that of 800 timesteps too (it was 1,000's).
    saved = PPOModel.load(checkpoint.model, device="cpu")
    assert saved._current_progress_remaining == pytest.approx(1 - 800 / 2000)
    train_module.train(cfg, tmp_path, resume=checkpoint)
    names = [c.path.name for c in find_checkpoints(tmp_path)]
    assert names == ["interrupted_800_steps", "ppo_1000_steps", "final_2000_steps"]
    # The discarded rollout's row (SB3 logs it before the update) is not there twice.
    rows = list(csv.DictReader((tmp_path / "progress.csv").open()))
    logged = [int(float(row["time/total_timesteps"])) for row in rows if row["time/fps"]]
    assert logged == list(range(200, 2001, 200))
    assert [step for step, _ in tb_scalars(tmp_path)["time/fps"]] == logged


def test_a_ctrl_c_in_the_middle_of_an_update_saves_the_weights_before_it(tmp_path, monkeypatch):
    """A Ctrl-C after some of an update's gradient steps saved those weights (and the
    optimiser's state) as the checkpoint of the rollout's start, which a resume then
    trained on again: the checkpoint now holds the weights of its last complete update."""
    import torch
    from stable_baselines3 import PPO as PPOModel
    from torch.utils._pytree import tree_leaves

    import racing_rl.training as train_module

    cfg = saved_config(tmp_path, [*PPO, *QUICK, "checkpoint.every=200", "checkpoint.keep=0"])
    updating = []
    original_train = PPOModel.train

    def train(self):
        updating.append(self.num_timesteps >= 1000)
        return original_train(self)

    steps = []
    original_step = torch.optim.Adam.step

    def step(self, *args, **kwargs):
        result = original_step(self, *args, **kwargs)
        if updating and updating[-1]:
            steps.append(True)
            if len(steps) == 3:  # the third gradient step of the update at 1,000
                os.kill(os.getpid(), signal.SIGINT)
        return result

    with monkeypatch.context() as patched:
        patched.setattr(PPOModel, "train", train)
        patched.setattr(torch.optim.Adam, "step", step)
        with pytest.raises(TrainingInterrupted, match="at 800 timesteps"):
            train_module.train(cfg, tmp_path)
    assert len(steps) == 3  # stopped inside the update, not after it
    algo = OmegaConf.create({"model": {"_target_": "stable_baselines3.PPO", "policy": "MlpPolicy"}})
    saved = {
        name: load_model(algo, tmp_path / "checkpoints" / name / "model.zip")
        for name in ("ppo_800_steps", "interrupted_800_steps")
    }
    before, interrupted = (saved[name].get_parameters() for name in saved)
    assert before.keys() == interrupted.keys()
    for part in before:  # the policy's weights and its optimiser's state
        pairs = zip(tree_leaves(before[part]), tree_leaves(interrupted[part]), strict=True)
        assert all(
            torch.equal(a, b) if isinstance(a, torch.Tensor) else a == b for a, b in pairs
        ), part
    assert saved["interrupted_800_steps"]._n_updates == saved["ppo_800_steps"]._n_updates


def test_a_ctrl_c_before_the_first_update_saves_nothing(tmp_path, monkeypatch, caplog):
    import racing_rl.training as train_module

    cfg = saved_config(tmp_path, [*PPO, *QUICK])
    monkeypatch.setattr(train_module, "RaceMetricsCallback", stop_at(100, train_module))
    # It said "while setting up, before any training" and logged "the checkpoint counts
    # the 0 timesteps trained on", of a checkpoint it did not save.
    says = r"before the first update \(1\d\d timesteps collected for its first update, disc"
    with caplog.at_level(logging.INFO), pytest.raises(TrainingInterrupted, match=says):
        train_module.train(cfg, tmp_path)
    assert "checkpoint counts" not in caplog.text
    assert not (tmp_path / "checkpoints").exists()


def test_a_ctrl_c_before_learn_starts_its_callbacks_is_an_interrupt(tmp_path, monkeypatch):
    # A SIGINT in SB3's _setup_learn (the first reset) raised an AttributeError from the
    # rewind, of a callback not yet given its model: a sweep's Optuna trial then failed
    # and the sweep went on, exit status 0.
    from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm

    import racing_rl.training as train_module

    def setup_interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt("SIGINT")

    cfg = saved_config(tmp_path, [*PPO, *QUICK])
    monkeypatch.setattr(OnPolicyAlgorithm, "_setup_learn", setup_interrupted)
    with pytest.raises(TrainingInterrupted, match="while setting up, before any training"):
        train_module.train(cfg, tmp_path)
    assert not (tmp_path / "checkpoints").exists()


def interrupt_once(function, when=lambda *args, **kwargs: True):
    """``function``, sending this process a SIGINT (training's handlers take it) the first
    time it is called with arguments that ``when`` accepts."""
    sent = []

    def sending(*args, **kwargs):
        if not sent and when(*args, **kwargs):
            sent.append(True)
            os.kill(os.getpid(), signal.SIGINT)
        return function(*args, **kwargs)

    return sending


def test_ctrl_c_during_the_final_validation_skips_it_and_still_stops(tmp_path, monkeypatch):
    """The final validation (a minute in a game) ran on whatever signals came; a Ctrl-C in
    it now skips it: the run is complete, best/ the best of the earlier validations, and
    the exit status 130 stops a sweep too."""
    import racing_rl.training as train_module

    callback = train_module.ValidationCallback
    at_the_end = interrupt_once(callback.validate, lambda self: self.num_timesteps >= 2000)
    monkeypatch.setattr(callback, "validate", at_the_end)
    with initialize():
        cfg = compose("train", overrides=[*PPO, *QUICK, "validation.every=1200"])
    with pytest.raises(TrainingInterrupted, match="complete but for the final model's") as raised:
        train_module.train(cfg, tmp_path)
    assert f"racing-rl eval run_dir={tmp_path} checkpoint=final" in str(raised.value)
    assert raised.value.exit_code == 128 + signal.SIGINT
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["timesteps"] == 2000 and summary["best"]["episodes"] == 2  # at 1200
    assert summary["best"]["timesteps"] == 1200
    assert latest_checkpoint(tmp_path).kind == "final"
    (leg,) = json.loads((tmp_path / "run.json").read_text())["legs"]
    assert leg["status"] == "completed"


@pytest.mark.parametrize(
    ("every", "skipped"), [(1200, True), (0, False)], ids=["validated", "no-validation"]
)
def test_ctrl_c_during_the_final_save_completes_the_run_and_says_what_was_skipped(
    tmp_path, monkeypatch, every, skipped
):
    import racing_rl.training as train_module

    monkeypatch.setattr(
        train_module, "save_model_files", interrupt_once(train_module.save_model_files)
    )
    with initialize():
        cfg = compose("train", overrides=[*PPO, *QUICK, f"validation.every={every}"])
    with pytest.raises(TrainingInterrupted) as raised:
        train_module.train(cfg, tmp_path)
    message = str(raised.value)
    assert message.startswith(f"Stopped by SIGINT at the end of the run; {tmp_path} is complete")
    assert ("but for the final model's validation" in message) == skipped
    assert (tmp_path / "model.zip").is_file() and latest_checkpoint(tmp_path).kind == "final"
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["timesteps"] == 2000
    assert ("best" in summary) == bool(every) and summary.get("best", {}).get("timesteps") != 2000
    (leg,) = json.loads((tmp_path / "run.json").read_text())["legs"]
    assert leg["status"] == "completed"


@pytest.mark.parametrize("at", ["files", "closing"])
def test_ctrl_c_while_the_run_s_files_are_written_waits_for_them(tmp_path, monkeypatch, at):
    """A signal after the final validation (writing summary.json and run.json, closing
    the environments) was reported as "while setting up; nothing was saved"."""
    import racing_rl.training as train_module
    from racing_rl.vec import SimVecEnv

    if at == "files":
        monkeypatch.setattr(train_module, "write_json", interrupt_once(train_module.write_json))
    else:
        monkeypatch.setattr(SimVecEnv, "close", interrupt_once(SimVecEnv.close))
    with initialize():
        cfg = compose("train", overrides=[*PPO, *QUICK, "validation.every=1000"])
    with pytest.raises(TrainingInterrupted) as raised:
        train_module.train(cfg, tmp_path)
    assert str(raised.value) == f"Stopped by SIGINT at the end of the run; {tmp_path} is complete."
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["best"]["timesteps"] in (1000, 2000)
    (leg,) = json.loads((tmp_path / "run.json").read_text())["legs"]
    assert leg["status"] == "completed"


def test_resume_refuses_another_run_directory(tiny_runs, tmp_path):
    """``resume=a hydra.run.dir=b`` resumed and rewrote b, leaving a as it was."""
    run, other = shutil.copytree(tiny_runs[0], tmp_path / "run"), tmp_path / "other"
    result = racing_rl(
        "train", f"resume={run}", "total_timesteps=4000", f"hydra.run.dir={other}", cwd=tmp_path
    )
    assert result.returncode == 1
    assert "a run is resumed in its own directory. Leave hydra.run.dir out" in result.stderr
    assert not other.exists()


def test_a_resume_with_a_setting_the_run_never_reads_is_refused(tiny_runs, tmp_path):
    """resume= of a run saved with checkpoint.every=0, given checkpoint.keep=3, trained on
    and kept nothing: the check of settings that nothing reads saw the command line alone
    (before Hydra, where a resume's settings are the run's), so the run's own
    checkpoint.every=0 (or validation.every=0, for validation.video.every) let it by."""
    import racing_rl.training as train_module

    run = shutil.copytree(tiny_runs[0], tmp_path / "run")  # checkpoint.every=0, validation too
    legs = json.loads((run / "run.json").read_text())["legs"]
    result = racing_rl(
        "train", f"resume={run}", "total_timesteps=4000", "checkpoint.keep=3", cwd=tmp_path
    )
    assert result.returncode == 2
    assert (
        "checkpoint.keep=3: with checkpoint.every=0 (the run's), no periodic checkpoint is "
        "saved (the only ones keep deletes), so it would change nothing; add "
        "checkpoint.every=<timesteps>, or leave checkpoint.keep out"
    ) in result.stderr
    assert json.loads((run / "run.json").read_text())["legs"] == legs  # no leg started
    more = ["total_timesteps=4000"]
    with pytest.raises(
        ConfigError, match=r"^validation\.video\.every=2: with validation\.every=0 \("
    ):
        train_module.resume_run(run, [*more, "validation.video.every=2"])
    # The feature switched on by the same resume, or a setting a resume reads, is taken.
    train_module.resume_run(run, [*more, "checkpoint.every=1000", "checkpoint.keep=3"])
    train_module.resume_run(run, [*more, "validation.every=1000", "validation.video.every=2"])
    train_module.resume_run(run, [*more, "trust_pickles=true"])  # no resume= in a sweep's job


@pytest.mark.parametrize(
    ("overrides", "said"),
    [
        (
            ["total_timesteps=1000"],
            "total_timesteps=1,000 is below the 2,048 timesteps of {final}: pass a larger "
            "total_timesteps to train on, or leave it out to go on to the run's own.",
        ),
        (
            ["checkpoint.every=0", "checkpoint.keep=2"],
            "checkpoint.keep=2: with checkpoint.every=0, no periodic checkpoint is saved (the "
            "only ones keep deletes), so it would change nothing; add "
            "checkpoint.every=<timesteps>, or leave checkpoint.keep out",
        ),
        (
            [],
            "{final} is already at 2,048 timesteps, total_timesteps=2,000: pass a larger "
            "total_timesteps to train on.",
        ),
    ],
    ids=["below", "unread", "finished"],
)
def test_a_resume_that_cannot_start_is_refused_in_one_line_before_hydra(
    tiny_runs, tmp_path, overrides, said
):
    """These refusals came from inside the Hydra job, in log format and with status 1,
    once Hydra had added them to the run's train.log; the other mistakes of a command line
    are one line, status 2, before Hydra starts."""
    run = shutil.copytree(tiny_runs[0], tmp_path / "run")
    files = {path: path.read_bytes() for path in run.rglob("*") if path.is_file()}
    result = racing_rl("train", f"resume={run}", *overrides, cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-3000:]
    final = run / "checkpoints" / "final_2048_steps"
    assert result.stderr.splitlines() == [f"racing-rl train: {said.format(final=final)}"]
    assert {path: path.read_bytes() for path in run.rglob("*") if path.is_file()} == files


def test_a_resume_checks_its_total_against_the_checkpoint_it_goes_on_from(tmp_path):
    """With the newest checkpoint damaged (a truncated model.zip), a resume goes on from
    the newest that loads, but its total_timesteps was checked against the damaged one:
    'total_timesteps=1,400 is below the 2,000 timesteps of .../final_2000_steps', and a
    plain resume 'is already at 2,000 timesteps', though it would train from 1,000."""
    import racing_rl.training as train_module

    run = tmp_path / "run"
    done = racing_rl(
        "train", *QUICK, *PPO, "validation.every=0", f"hydra.run.dir={run}", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr[-3000:]
    final = latest_checkpoint(run)
    assert final.path.name == "final_2000_steps"
    final.model.write_bytes(final.model.read_bytes()[:2000])
    _, checkpoint, _ = train_module.resume_run(run, [])
    assert checkpoint.path.name == "ppo_1000_steps"
    result = racing_rl("train", f"resume={run}", "total_timesteps=1400", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr.count(f"cannot resume from {final.path}") == 1  # the job's, once
    leg = json.loads((run / "run.json").read_text())["legs"][-1]
    assert leg["resumed_from"] == str(run / "checkpoints" / "ppo_1000_steps")
    assert leg["status"] == "completed" and leg["end_timesteps"] == 1400


def test_a_run_that_failed_after_its_final_checkpoint_is_finished_by_resume(tmp_path, monkeypatch):
    """An error after final_<T>_steps was saved (a full disk writing the run's model.zip,
    a game lost in the final validation) left a run without summary.json that resume
    refused ("already at T timesteps"). Finishing it trains nothing, and the statistics
    stay the checkpoint's: learn's first reset updated them."""
    import racing_rl.training as train_module

    cfg = saved_config(tmp_path, [*PPO, *QUICK])
    real_save = train_module.save_model_files

    def disk_full(model, env, directory):
        if directory == tmp_path:
            raise OSError(28, "No space left on device")
        return real_save(model, env, directory)

    with monkeypatch.context() as patched:
        patched.setattr(train_module, "save_model_files", disk_full)
        with pytest.raises(OSError, match="No space left"):
            train_module.train(cfg, tmp_path)
    assert not (tmp_path / "summary.json").exists()
    cfg, checkpoint, _ = train_module.resume_run(tmp_path, [])
    assert (checkpoint.kind, checkpoint.timesteps) == ("final", 2000)
    saved = read_statistics(checkpoint.statistics)
    summary = train_module.train(cfg, tmp_path, resume=checkpoint)
    assert summary["timesteps"] == 2000 and summary["env_steps_per_s"] is None
    legs = json.loads((tmp_path / "run.json").read_text())["legs"]
    assert [leg["status"] for leg in legs] == ["failed", "completed"]
    for statistics in (latest_checkpoint(tmp_path).statistics, tmp_path / "vecnormalize.npz"):
        assert read_statistics(statistics)["obs_count"] == saved["obs_count"]
    with pytest.raises(ConfigError, match="is already at 2,000 timesteps"):  # now complete
        train_module.resume_run(tmp_path, [])


def test_a_resume_with_nothing_left_does_not_validate_the_validated_final_model_again(
    tmp_path, monkeypatch, caplog
):
    """A run stopped after its final validation (a kill -9 before its summary.json): the
    resumed leg validated that final model again, a second eval/ row at 2,000 in
    progress.csv and TensorBoard. Its row in progress.csv says that it ran."""
    import racing_rl.training as train_module

    cfg = saved_config(tmp_path, [*PPO, *QUICK])

    def killed(*args, **kwargs):
        raise RuntimeError("killed after the final validation")

    with monkeypatch.context() as patched:
        patched.setattr(train_module, "_write_summary", killed)
        with pytest.raises(RuntimeError, match="killed"):
            train_module.train(cfg, tmp_path)
    cfg, checkpoint, _ = train_module.resume_run(tmp_path, [])
    assert (checkpoint.kind, checkpoint.timesteps) == ("final", 2000)
    with caplog.at_level(logging.INFO, logger="racing_rl"):
        summary = train_module.train(cfg, tmp_path, resume=checkpoint)
    assert "validation at" not in caplog.text and summary["timesteps"] == 2000
    with open(tmp_path / "progress.csv", newline="") as file:
        rows = [row for row in csv.DictReader(file) if row.get("eval/mean_return")]
    assert [float(row["time/total_timesteps"]) for row in rows] == [1000, 2000]
    steps = [step for step, _ in tb_scalars(tmp_path, "eval/mean_return")["eval/mean_return"]]
    assert steps == [1000, 2000]


def test_a_checkpoint_s_validation_that_ran_is_not_run_again_on_resume(tmp_path, caplog):
    """A kill -9 after a periodic validation, before the checkpoint's record that it was
    due was cleared (at the next step), left the checkpoint owing it: the resumed run ran
    it again, a second eval/ row at 1,000."""
    import racing_rl.training as train_module

    cfg = saved_config(tmp_path, [*PPO, *QUICK])
    train_module.train(cfg, tmp_path)
    for checkpoint in find_checkpoints(tmp_path):
        if checkpoint.timesteps > 1000:  # as if killed in the rollout after 1,000's
            shutil.rmtree(checkpoint.path)
    manifest = latest_checkpoint(tmp_path).path / "checkpoint.json"
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "validation_due": True}))
    checkpoint = latest_checkpoint(tmp_path)
    assert (checkpoint.timesteps, checkpoint.validation_due) == (1000, True)
    with caplog.at_level(logging.INFO, logger="racing_rl"):
        train_module.train(cfg, tmp_path, resume=checkpoint)
    validated = [int(s) for s in re.findall(r"validation at (\d+) steps", caplog.text)]
    assert validated == [2000]


def ctrl_c_in_the_validation_at_1000(run_dir, monkeypatch):
    """Train a PPO run in ``run_dir``, stopped by a Ctrl-C in its validation at 1,000
    timesteps: its checkpoint there owes that validation."""
    import racing_rl.training as train_module

    cfg = saved_config(run_dir, [*PPO, *QUICK, "validation.every=1000"])
    callback = train_module.ValidationCallback
    cut = interrupt_once(callback.validate, lambda self: self.num_timesteps >= 1000)
    with monkeypatch.context() as patched:
        patched.setattr(callback, "validate", cut)
        with pytest.raises(TrainingInterrupted, match="at 1,000 timesteps"):
            train_module.train(cfg, run_dir)
    checkpoint = latest_checkpoint(run_dir)
    assert (checkpoint.timesteps, checkpoint.validation_due) == (1000, True)


def test_a_validation_cut_by_ctrl_c_is_run_when_the_run_resumes(tmp_path, monkeypatch, caplog):
    """A Ctrl-C in a periodic validation saved the checkpoint of its timestep, and the
    resumed run scheduled the next validation after it: that model never competed for
    best/."""
    import racing_rl.training as train_module

    ctrl_c_in_the_validation_at_1000(tmp_path, monkeypatch)
    cfg, checkpoint, _ = train_module.resume_run(tmp_path, [])
    with caplog.at_level(logging.INFO, logger="racing_rl"):
        train_module.train(cfg, tmp_path, resume=checkpoint)
    validated = [int(s) for s in re.findall(r"validation at (\d+) steps", caplog.text)]
    assert validated == [1000, 2000]


def test_a_ctrl_c_in_a_rollout_after_a_validation_owes_none(tmp_path, monkeypatch):
    import racing_rl.training as train_module

    cfg = saved_config(tmp_path, [*PPO, *QUICK, "validation.every=1000"])
    monkeypatch.setattr(train_module, "RaceMetricsCallback", stop_at(1100, train_module))
    with pytest.raises(TrainingInterrupted, match="at 1,000 timesteps"):
        train_module.train(cfg, tmp_path)
    checkpoint = latest_checkpoint(tmp_path)
    assert (checkpoint.timesteps, checkpoint.validation_due) == (1000, False)


def test_resume_with_another_validation_step_limit_warns(tmp_path, caplog):
    """best/ is kept and compared with the resumed run's validations: under another step
    limit they measure unlike lap times, which nothing said."""
    cfg = saved_config(tmp_path, [])
    limit = cfg.validation.max_steps
    with caplog.at_level(logging.WARNING, logger="racing_rl"):
        resume_config(tmp_path, [f"resume={tmp_path}", f"validation.max_steps={limit}"])
        assert "best/ was chosen under the old limit" not in caplog.text
        resume_config(tmp_path, [f"resume={tmp_path}", f"validation.max_steps={limit // 2}"])
    assert f"validation.max_steps {limit} -> {limit // 2}: best/ was chosen" in caplog.text


def test_a_leg_resumed_without_validation_reports_the_runs_best(tmp_path, caplog):
    """validation.every=0 on resume wrote a summary.json without the run's best/ (and gave
    a sweep no objective). The checkpoint's record that its validation was due (a kill -9
    after the validation, before the record was cleared) is not said to be skipped: its
    row in progress.csv says that it ran (as a resume with validation does not run it
    again); that warning named a validation cut short that had not been."""
    import racing_rl.training as train_module

    cfg = saved_config(tmp_path, [*QUICK, "checkpoint.every=0"])
    train_module.train(cfg, tmp_path)
    best = json.loads((tmp_path / "best" / "metrics.json").read_text())
    checkpoint = latest_checkpoint(tmp_path)
    manifest = checkpoint.path / "checkpoint.json"
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "validation_due": True}))
    cfg.total_timesteps, cfg.validation.every = 3000, 0
    with caplog.at_level(logging.WARNING):
        summary = train_module.train(cfg, tmp_path, resume=latest_checkpoint(tmp_path))
    assert summary["timesteps"] >= 3000 and summary["best"] == best
    assert summary["objective"]["value"] is not None
    assert "the validation due at" not in caplog.text
    assert json.loads((tmp_path / "summary.json").read_text())["best"] == best


def test_a_leg_resumed_without_validation_says_it_skips_the_one_cut_short(
    tmp_path, monkeypatch, caplog
):
    """validation.every=0 on resume dropped a validation that a Ctrl-C had cut short
    (the checkpoint owed it) without a word."""
    import racing_rl.training as train_module

    ctrl_c_in_the_validation_at_1000(tmp_path, monkeypatch)
    cfg, checkpoint, _ = train_module.resume_run(tmp_path, ["validation.every=0"])
    with caplog.at_level(logging.WARNING):
        train_module.train(cfg, tmp_path, resume=checkpoint)
    assert "the validation due at 1,000 timesteps (cut short" in caplog.text


def test_a_best_from_after_the_checkpoint_resumed_is_said(tmp_path, caplog):
    """After a kill -9, best/ may hold a model validated after the newest checkpoint: the
    resumed leg then ranked its own validations against it without a word."""
    import racing_rl.training as train_module

    cfg = saved_config(tmp_path, [*QUICK, *PPO])
    train_module.train(cfg, tmp_path)
    first, *later = find_checkpoints(tmp_path)
    for checkpoint in later:  # as a kill -9 after the first checkpoint leaves the run
        os.replace(checkpoint.path, tmp_path / f"lost_{checkpoint.path.name}")
    (tmp_path / "summary.json").unlink()
    best = tmp_path / "best" / "metrics.json"
    best.write_text(json.dumps({**json.loads(best.read_text()), "timesteps": 1800}))
    with caplog.at_level(logging.WARNING):
        train_module.train(cfg, tmp_path, resume=latest_checkpoint(tmp_path))
    assert f"best/ holds the model validated at 1,800 timesteps, after {first.path.name}" in (
        caplog.text
    )


def test_a_damaged_best_or_summary_record_is_taken_as_missing(tmp_path, caplog):
    """A truncated best/metrics.json or summary.json ended resume in a JSONDecodeError
    traceback."""
    from racing_rl.callbacks import ValidationCallback
    from racing_rl.files import recorded_timesteps
    from racing_rl.objective import objective

    (tmp_path / "best").mkdir()
    for damaged in ('{"timesteps": 20', "[]", '{"timesteps": 2048}'):
        (tmp_path / "best" / "metrics.json").write_text(damaged)
        (tmp_path / "summary.json").write_text(damaged)
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            laps = functools.partial(objective, kind="laps", lap_time_limit=100.0)
            validation = ValidationCallback(None, 1000, tmp_path / "best", laps)
            assert validation.best is None  # the next validation replaces best/
            assert recorded_timesteps(tmp_path / "summary.json") == (
                2048 if "2048" in damaged else None
            )
        assert "next validation replaces it" in caplog.text


def test_a_resume_that_cannot_start_leaves_the_run_s_config(tmp_path):
    """A resume whose checkpoint failed to load had already written its overrides into
    .hydra/config.yaml and overrides.yaml (the next plain resume trained to its total);
    a damaged overrides.yaml was Hydra's multi-line parse error, naming no file."""
    import racing_rl.training as train_module
    from racing_rl.errors import PickleRefused

    cfg = saved_config(tmp_path, [*QUICK, *PPO, "validation.every=0"])
    hydra = tmp_path / ".hydra"
    (hydra / "overrides.yaml").write_text("- validation.every=0\n")
    train_module.train(cfg, tmp_path)
    before = {name: (hydra / name).read_text() for name in ("config.yaml", "overrides.yaml")}
    cfg, checkpoint, files = train_module.resume_run(tmp_path, ["total_timesteps=4000"])
    assert set(files) == {hydra / name for name in before}
    for statistics in tmp_path.glob("checkpoints/*/vecnormalize.npz"):
        statistics.unlink()  # their pickles alone: refused without trust_pickles
    with pytest.raises(PickleRefused):
        train_module.resume_run(tmp_path, ["total_timesteps=4000"])  # before Hydra starts
    with pytest.raises(PickleRefused):  # or gone once it was checked
        train_module.train(cfg, tmp_path, resume=checkpoint, resume_files=files)
    assert {name: (hydra / name).read_text() for name in before} == before
    (hydra / "overrides.yaml").write_text("- validation.every=0\n- 'seed=\n")  # cut short
    with pytest.raises(ConfigError, match=r"overrides\.yaml is damaged \(.*or delete it, and"):
        train_module.resume_run(tmp_path, ["total_timesteps=4000", "trust_pickles=true"])


def test_a_checkpoint_owes_its_validation_until_that_has_run(tmp_path, monkeypatch):
    """A kill -9 during a periodic validation left the checkpoint saved just before it
    owing nothing: the resumed run skipped that validation, and that model never competed
    for best/."""
    import racing_rl.training as train_module
    from racing_rl.callbacks import ValidationCallback

    seen = []
    validate = ValidationCallback.validate

    def watched(self):  # what a kill -9 now would leave
        seen.append((self.num_timesteps, latest_checkpoint(tmp_path).validation_due))
        return validate(self)

    monkeypatch.setattr(ValidationCallback, "validate", watched)
    cfg = saved_config(tmp_path, [*QUICK, *PPO])  # a checkpoint and a validation every 1000
    train_module.train(cfg, tmp_path)
    assert seen[0] == (1000, True)
    assert not any(checkpoint.validation_due for checkpoint in find_checkpoints(tmp_path))


def test_a_checkpoint_owes_no_validation_once_that_has_run(tmp_path, monkeypatch):
    """The flag was cleared at the end of the rollout after the validation: a kill -9 in
    that rollout left the checkpoint owing a validation that had run, and the resumed run
    validated its model again, logging a second eval/ row at its timesteps."""
    import racing_rl.training as train_module

    seen = []

    class Watching(train_module.RaceMetricsCallback):
        def _on_step(self) -> bool:  # what a kill -9 now would leave
            if 1004 < self.num_timesteps < 1200:  # the validated rollout, after its first step
                seen.append(latest_checkpoint(tmp_path).validation_due)
            return super()._on_step()

    monkeypatch.setattr(train_module, "RaceMetricsCallback", Watching)
    cfg = saved_config(tmp_path, [*QUICK, *PPO])  # a checkpoint and a validation every 1000
    train_module.train(cfg, tmp_path)
    assert seen and not any(seen)


def test_a_preempted_slurm_job_saves_its_checkpoint_before_submitit_requeues_it(
    tmp_path, monkeypatch
):
    """submitit's SIGUSR2 handler (a SLURM job preempted or timed out) requeues the job and
    exits inside learn: no interrupted checkpoint was saved, the leg stayed "running", and
    the requeued job went back to the last periodic checkpoint."""
    from stable_baselines3 import PPO as PPOModel

    import racing_rl.training as train_module

    requeued = []

    def submitit_handler(signum, frame):  # as submitit's: requeue, then sys.exit(-1)
        requeued.append(list(find_checkpoints(tmp_path)))
        raise SystemExit(-1)

    submitit_handler.__module__ = "submitit.core.job_environment"  # another's is left alone

    before = signal.signal(signal.SIGUSR2, submitit_handler)
    try:
        cfg = saved_config(tmp_path, [*PPO, *QUICK, "checkpoint.every=0"])
        update, sent = PPOModel.train, []

        def preempted(self):  # SLURM's SIGUSR2 in the update at 1,000 timesteps
            if not sent and self.num_timesteps >= 1000:
                sent.append(signal.raise_signal(signal.SIGUSR2))
            return update(self)

        monkeypatch.setattr(PPOModel, "train", preempted)
        with pytest.raises(SystemExit) as exited:
            train_module.train(cfg, tmp_path)
    finally:
        signal.signal(signal.SIGUSR2, before)
    assert exited.value.code == -1
    ((checkpoint,),) = requeued  # saved before the handler ran
    assert checkpoint.kind == "interrupted" and checkpoint.timesteps == 800
    assert json.loads((tmp_path / "run.json").read_text())["legs"][-1]["status"] == "interrupted"
    assert signal.getsignal(signal.SIGUSR2) is before
    # Another program's SIGUSR2 (a stack dump, a log level) does not stop training.
    other = signal.signal(signal.SIGUSR2, lambda signum, frame: None)
    try:
        with TrainingSignals():
            assert signal.getsignal(signal.SIGUSR2) is not TrainingSignals._handle
            assert getattr(signal.getsignal(signal.SIGUSR2), "__self__", None) is None
    finally:
        signal.signal(signal.SIGUSR2, other)

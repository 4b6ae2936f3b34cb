"""Real, short `racing-rl train` / `racing-rl eval` runs in temporary directories."""

import json
import logging
import math
import re
import shutil
import sys
import types
from pathlib import Path

import pytest
from filelock import FileLock
from hydra import compose
from omegaconf import OmegaConf
from runs import OFF_POLICY, QUICK, QUICK_ALGO, QUICK_OFF_POLICY, TINY, racing_rl

from racing_rl.checkpoints.layout import find_checkpoints
from racing_rl.checkpoints.loading import load_model
from racing_rl.checkpoints.runs import check_init_from
from racing_rl.config import initialize
from racing_rl.errors import BridgeError, ConfigError, TrainingInterrupted
from racing_rl.normalize import read_statistics
from racing_rl.training import train

ALGOS = ["ppo", "sac", "td3", "recurrent_ppo", "tqc"]


@pytest.mark.parametrize("algo", ALGOS)
def test_train_each_algorithm_leaves_a_loadable_model(algo, tmp_path):
    run_dir = tmp_path / "run"
    extra = QUICK_ALGO.get(algo, [])
    result = racing_rl(
        "train", f"algo={algo}", *QUICK, *extra, f"hydra.run.dir={run_dir}", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for name in [
        ".hydra/config.yaml",
        "train.log",
        "model.zip",
        "vecnormalize.npz",
        "vecnormalize.pkl",
        "best/model.zip",
        "best/vecnormalize.npz",
        "best/vecnormalize.pkl",
        "best/metrics.json",
        "summary.json",
    ]:
        assert (run_dir / name).is_file(), name
    assert list((run_dir / "tb").rglob("events.out.tfevents.*"))
    checkpoints = find_checkpoints(run_dir)
    # Every 1000 timesteps, between rollouts (none after the last: the final is saved then).
    assert [c.kind for c in checkpoints] == [algo, "final"], checkpoints
    assert checkpoints[0].timesteps == (1000 if algo in OFF_POLICY else 1024)  # rollouts of 1024
    for checkpoint in checkpoints:
        assert checkpoint.statistics.is_file()
        # Only the newest checkpoint keeps the (large) replay buffer.
        off_policy = algo in OFF_POLICY
        assert checkpoint.replay_buffer.is_file() == (off_policy and checkpoint.kind == "final")
    record = json.loads((run_dir / "run.json").read_text())
    (leg,) = record["legs"]
    assert leg["status"] == "completed" and leg["command"].startswith("racing-rl train")
    assert leg["packages"]["stable-baselines3"] and "commit" in leg["git"]
    with initialize():
        cfg = compose("train", overrides=[f"algo={algo}"])
    model = load_model(cfg.algo, run_dir / "model.zip", env=None, device="cpu")
    assert model.num_timesteps >= 2000
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["timesteps"] == model.num_timesteps
    # The first line says where the run will stop (SB3 checks between rollouts).
    budget = "2,000 timesteps"
    if model.num_timesteps != 2000:
        budget += f" (it stops at {model.num_timesteps:,}, after the rollout that reaches them)"
    assert f"{budget}, run dir {run_dir}" in result.stderr
    assert 0.0 <= summary["best"]["lap_completion_rate"] <= 1.0


def test_train_function_in_process(tmp_path):
    """train(cfg) is a plain function: compose a config and call it."""
    with initialize():
        cfg = compose("train", overrides=[*QUICK, "validation.every=0", "checkpoint.every=0"])
    summary = train(cfg, tmp_path)
    assert summary["timesteps"] >= 2000 and "best" not in summary
    assert (tmp_path / "model.zip").is_file() and (tmp_path / "vecnormalize.npz").is_file()


@pytest.mark.parametrize(
    "algo", [[], ["algo=sac", "algo.model.learning_starts=100"]], ids=["ppo", "sac"]
)
def test_train_in_traffic_with_scripted_opponents(tmp_path, algo):
    """``racing-rl train experiment=race``: scripted opponents race beside the learning
    cars (not slots: the VecEnv has n_races × cars_per_race of them), and the run saves
    a model; with ``algo=sac`` too (the preset's PPO settings do not reach SAC)."""
    run_dir = tmp_path / "run"
    result = racing_rl(
        "train",
        "experiment=race",
        *algo,
        *TINY,
        "n_races=2",
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    log = (run_dir / "train.log").read_text()
    assert "2 learning cars and 2 scripted ones each" in log and ": 4 cars (2 tracks x 2)" in log
    assert (run_dir / "model.zip").is_file()


def test_eval_measures_a_trained_run(tmp_path):
    run_dir = tmp_path / "run"
    # Laps take ~300 steps: give the scripted driver time for one.
    quick = [*QUICK, "validation.max_steps=600", "validation.every=0", "checkpoint.every=2000"]
    result = racing_rl("train", *quick, f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout == f"{run_dir}\n"  # the logs and SB3's table go to stderr
    result = racing_rl(
        "eval", f"run_dir={run_dir}", "checkpoint=final", "seeds=[5,6]", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((run_dir / "eval" / "metrics.json").read_text())
    assert [t["track_seed"] for t in metrics["tracks"]] == [5, 6]
    assert metrics["episodes"] == 2
    latest = racing_rl("eval", f"run_dir={run_dir}", "checkpoint=latest", "seeds=[5]", cwd=tmp_path)
    assert latest.returncode == 0, latest.stderr[-3000:]
    metrics = json.loads((run_dir / "eval" / "metrics.json").read_text())
    assert metrics["driver"].endswith("checkpoints/final_2048_steps/model.zip")
    scripted = racing_rl(
        "eval", f"run_dir={run_dir}", "driver=scripted", "seeds=[5,6]", cwd=tmp_path
    )
    assert scripted.returncode == 0, scripted.stderr[-3000:]
    metrics = json.loads((run_dir / "eval" / "metrics.json").read_text())
    assert metrics["lap_completion_rate"] == 1.0 and metrics["mean_lap_time_s"] > 0


def test_init_from_a_run_that_cannot_start_this_one_is_refused_before_the_run_dir(tmp_path):
    rays12 = tmp_path / "rays12"
    tiny = [*QUICK, "total_timesteps=500", "validation.every=0", "checkpoint.every=0"]
    result = racing_rl(
        "train", *tiny, "backend.sensors.n_rays=12", f"hydra.run.dir={rays12}", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for extra, says in (
        # (12 + 3) × 2 frames; this run: 10 rays. The fix names the setting that differs
        # (it gave the Roblox game's advice on the simulator).
        ([], "expects observations of shape (30,)"),
        ([], "Give this run the source's backend.sensors.n_rays=12."),
        (["backend.sensors.n_rays=12", "wrappers.frame_stack=3"], "wrappers.frame_stack=2."),
        (["wrappers.frame_stack=3"], "source's wrappers.frame_stack=2 backend.sensors.n_rays=12."),
        (["algo=sac"], "was trained with algo=ppo; this run uses algo=sac"),
        # Its weights would get raw observations: this was trained without a word.
        (["backend.sensors.n_rays=12", "wrappers.normalize=null"], "on normalised observ"),
    ):
        new = tmp_path / "new"
        refused = racing_rl(
            "train", *tiny, *extra, f"init_from={rays12}", f"hydra.run.dir={new}", cwd=tmp_path
        )
        assert refused.returncode == 1 and says in refused.stderr, refused.stderr[-3000:]
        assert not new.exists()


def test_init_from_a_game_run_into_a_simulator_run_says_so(tmp_path):
    """A Roblox-trained source (no backend.sensors) made the advice for the simulator's
    sensors fail with OmegaConf's "Missing key sensors"."""
    with initialize():
        game = compose("train", overrides=["backend=roblox", "backend.observation_size=19"])
        simulator = compose("train")
    (tmp_path / ".hydra").mkdir()
    OmegaConf.save(game, tmp_path / ".hydra" / "config.yaml")
    (tmp_path / "model.zip").touch()
    with pytest.raises(ConfigError) as refused:
        check_init_from(simulator, tmp_path)
    assert "expects observations of shape (38,) (2 stacked frame(s) of 19" in str(refused.value)
    assert "trained on backend=roblox, this run is backend=pygame" in str(refused.value)


def test_init_from_a_run_of_another_network_says_which_setting(tmp_path):
    """A source of another width failed in torch's load_state_dict: a traceback and one
    "size mismatch" line per tensor."""
    source, new = tmp_path / "source", tmp_path / "new"
    tiny = [*QUICK, "total_timesteps=500", "validation.every=0", "checkpoint.every=0"]
    result = racing_rl("train", *tiny, f"hydra.run.dir={source}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    refused = racing_rl(
        "train",
        *tiny,
        "algo.net_width=32",
        f"init_from={source}",
        f"hydra.run.dir={new}",
        cwd=tmp_path,
    )
    assert refused.returncode == 1 and "Traceback" not in refused.stderr, refused.stderr[-3000:]
    assert (
        f"init_from={source} holds another network than this run's: its "
        "mlp_extractor.policy_net.0.weight is (256, 26), this run's (32, 26) (10 tensor(s) "
        "differ). Give this run the source's network settings (algo.net_width, "
        f"algo.model.policy_kwargs: see {source / '.hydra' / 'config.yaml'})."
    ) in refused.stderr


def test_init_from_takes_the_statistics_and_keeps_this_runs_normalize_settings(tmp_path):
    """The source's clips and flags replaced this run's, so that its .hydra config
    described settings it did not train with."""
    source, new = tmp_path / "source", tmp_path / "new"
    tiny = [*QUICK, "total_timesteps=500", "validation.every=0", "checkpoint.every=0"]
    result = racing_rl("train", *tiny, f"hydra.run.dir={source}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    own = ["wrappers.normalize.clip_obs=5.0", "wrappers.normalize.norm_reward=false"]
    result = racing_rl(
        "train", *tiny, *own, f"init_from={source}", f"hydra.run.dir={new}", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "with its VecNormalize statistics" in (new / "train.log").read_text()
    before, after = (read_statistics(run / "vecnormalize.npz") for run in (source, new))
    assert (after["clip_obs"], after["norm_reward"]) == (5.0, False)
    assert (before["clip_obs"], before["norm_reward"]) == (10.0, True)
    assert after["obs_count"] > before["obs_count"]  # the source's, then this run's steps


def test_eval_of_a_damaged_or_mismatched_checkpoint_says_which_and_why(tmp_path):
    """Said before anything is written, from what the model file records: another run's
    model was refused only once it had loaded, after eval.log had replaced the earlier
    eval's, as a log line."""
    tiny = [*QUICK, "total_timesteps=500", "validation.every=0", "checkpoint.every=0"]
    run_dir, rays12, sac = tmp_path / "run", tmp_path / "rays12", tmp_path / "sac"
    for path, extra in (
        (run_dir, []),
        (rays12, ["backend.sensors.n_rays=12"]),
        (sac, ["algo=sac", *QUICK_OFF_POLICY]),
    ):
        result = racing_rl("train", *tiny, *extra, f"hydra.run.dir={path}", cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]

    # A checkpoint of another algorithm's run: which, and whose config it needs.
    other = racing_rl("eval", f"run_dir={run_dir}", f"checkpoint={sac}/model.zip", cwd=tmp_path)
    assert other.returncode == 1
    assert other.stderr.startswith(f"racing-rl eval: {sac}/model.zip is not a loadable TeacherPPO")
    assert "holds a policy of stable_baselines3.sac.policies" in other.stderr
    assert other.stderr.count("\n") == 1
    assert not (run_dir / "eval").exists()

    # A checkpoint of another run with 12 rays: the shapes and the likely cause.
    other = racing_rl("eval", f"run_dir={run_dir}", f"checkpoint={rays12}/model.zip", cwd=tmp_path)
    assert other.returncode == 1
    assert other.stderr.startswith("racing-rl eval: ") and other.stderr.count("\n") == 1
    assert not (run_dir / "eval").exists()
    # (12 + 3) × PPO's 2 frames, where this run's sensors give 13 numbers: the override.
    assert "takes observations of shape (30,), but" in other.stderr
    assert "frame stack (2) of the environment's 13 numbers a frame gives (26,)" in other.stderr
    assert "reads 15 numbers a frame: on the simulator, backend.sensors.n_rays=12" in other.stderr

    # A model file cut in half (its VecNormalize statistics intact beside it).
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    model = (run_dir / "model.zip").read_bytes()
    (damaged / "model.zip").write_bytes(model[: len(model) // 2])
    (damaged / "vecnormalize.npz").write_bytes((run_dir / "vecnormalize.npz").read_bytes())
    result = racing_rl("eval", f"run_dir={run_dir}", f"checkpoint={damaged}", cwd=tmp_path)
    assert result.returncode == 1
    assert f"{damaged}/model.zip is not a loadable TeacherPPO checkpoint" in result.stderr
    assert not (run_dir / "eval").exists()


def test_unknown_algorithm_names_the_available_ones(tmp_path):
    result = racing_rl("train", "algo=nope", cwd=tmp_path)
    assert result.returncode != 0
    for algo in ALGOS:
        assert algo in result.stderr


def test_unknown_command_is_a_usage_error(tmp_path):
    result = racing_rl("trian", cwd=tmp_path)
    assert result.returncode == 2 and "unknown command" in result.stderr


@pytest.mark.parametrize("failure", [BridgeError("no game"), KeyboardInterrupt("SIGINT")])
def test_training_in_a_game_stops_the_bridge_it_started_however_setup_ends(
    failure, tmp_path, monkeypatch
):
    """train starts the Roblox bridge, hands it to the environments and stops it on an
    error or Ctrl-C before training (the environments never got to release it)."""
    from racing_rl import training
    from racing_rl.bridge.training_bridge import TrainingBridge

    class Bridge:
        closed = 0

        def close(self) -> None:
            self.closed += 1

    bridge = Bridge()
    monkeypatch.setattr(TrainingBridge, "from_config", classmethod(lambda cls, config: bridge))

    def make_env(*args, bridge=None, **kwargs):
        assert bridge is not None  # handed in, not started by the environments
        raise failure

    monkeypatch.setattr(training, "make_env", make_env)
    with initialize():
        cfg = compose("train", overrides=["backend=roblox"])
    with pytest.raises((BridgeError, TrainingInterrupted)):
        training.train(cfg, tmp_path)
    assert bridge.closed == 1


@pytest.mark.parametrize(("keep", "kept"), [("null", 4), ("0", 4), ("2", 2)])
def test_checkpoint_keep_null_keeps_every_periodic_checkpoint(tmp_path, keep, kept):
    """checkpoint.keep=null passed the schema and the checks, then failed with a TypeError
    in int(None) once the run dir existed; it keeps all, as 0 does."""
    # Rollouts of 200 timesteps: checkpoints at 400, 800, 1200 and 1600 (2000 is the end).
    rollouts = ["algo.model.n_steps=50", "algo.model.batch_size=100"]
    overrides = [*TINY, *rollouts, "checkpoint.every=400", f"checkpoint.keep={keep}"]
    with initialize():
        cfg = compose("train", overrides=overrides)
    train(cfg, tmp_path)
    kinds = [c.kind for c in find_checkpoints(tmp_path)]
    assert kinds == ["ppo"] * kept + ["final"]


def test_a_new_run_into_a_directory_that_holds_a_run_is_refused_and_changes_nothing(tmp_path):
    # It mixed the two: one best/, both finals in checkpoints/, the new algorithm's config.
    run_dir = tmp_path / "run"
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / "checkpoints" / "final_2048_steps").mkdir(parents=True)
    (run_dir / ".hydra" / "config.yaml").write_text("the old run's config\n")
    before = sorted(p.relative_to(run_dir) for p in run_dir.rglob("*"))
    result = racing_rl("train", *TINY, f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert result.returncode == 1
    assert (
        f"{run_dir} already holds a run (checkpoints/final_2048_steps): continue it with resume="
    ) in result.stderr
    assert sorted(p.relative_to(run_dir) for p in run_dir.rglob("*")) == before
    assert (run_dir / ".hydra" / "config.yaml").read_text() == "the old run's config\n"
    # A run stopped before its first save ("nothing was saved") may be started again.
    shutil.rmtree(run_dir / "checkpoints")
    (run_dir / "run.json").write_text('{"legs": []}')
    result = racing_rl("train", *TINY, f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (run_dir / "model.zip").is_file()


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_a_run_dir_that_cannot_be_made_is_refused_in_one_line(tmp_path):
    """Hydra's OSError came as a traceback (``FileNotFoundError: ... '/proc/run'``), for a
    single run's hydra.run.dir as for a sweep's hydra.sweep.dir."""
    (tmp_path / "file").write_text("")
    under_file = f"{tmp_path / 'file'} is a file, not a directory"
    for args, key, why in (
        (["hydra.run.dir=/proc/run"], "hydra.run.dir=/proc/run", "/proc/run: No such file"),
        ([f"hydra.run.dir={tmp_path}/file/run"], f"hydra.run.dir={tmp_path}/file/run", under_file),
        (
            ["-m", "seed=0,1", f"hydra.sweep.dir={tmp_path}/file/sweep"],
            f"hydra.sweep.dir={tmp_path}/file/sweep",
            under_file,
        ),
    ):
        result = racing_rl("train", *args, *TINY, cwd=tmp_path)
        assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
        assert result.stderr.startswith(f"racing-rl train: cannot write into {key}: {why}")
        assert result.stderr.endswith(f"; pass {key.split('=')[0]}=<a directory you can write>\n")


def test_a_directory_another_process_runs_in_is_refused(tmp_path):
    # Two runs started in the same second shared the dated directory (and one .hydra/);
    # a resume of a run still training wrote into its files.
    run_dir, sweep_dir = tmp_path / "run", tmp_path / "sweep"
    with FileLock(run_dir / ".lock", timeout=0):  # what a running `racing-rl train` holds
        result = racing_rl("train", *TINY, f"hydra.run.dir={run_dir}", cwd=tmp_path)
        assert result.returncode == 1
        assert f"another racing-rl process is running the run in {run_dir}" in result.stderr
        # The directory was named: starting again (the advice for a dated one) meets it again.
        assert "wait for that run to end, or give this one another hydra.run.dir" in result.stderr
        assert [p.name for p in run_dir.iterdir()] == [".lock"]  # no .hydra/, no log
    result = racing_rl("train", *TINY, f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]  # the lock went with its process
    with FileLock(run_dir / ".lock", timeout=0):
        result = racing_rl("train", f"resume={run_dir}", "total_timesteps=4000", cwd=tmp_path)
        assert result.returncode == 1
        assert "it is still training. Wait for it to end" in result.stderr
    with FileLock(sweep_dir / ".lock", timeout=0):
        result = racing_rl("train", "-m", "seed=0,1", f"hydra.sweep.dir={sweep_dir}", cwd=tmp_path)
        assert result.returncode == 1
        assert f"is running the sweep in {sweep_dir}" in result.stderr
        assert [p.name for p in sweep_dir.iterdir()] == [".lock"]


def test_a_sweep_into_a_directory_of_an_earlier_sweep_is_refused(tmp_path):
    job = tmp_path / "sweep" / "0_seed=0"
    (job / "best").mkdir(parents=True)
    result = racing_rl("train", "-m", "seed=0,1", f"hydra.sweep.dir={job.parent}", cwd=tmp_path)
    assert result.returncode == 1
    assert "already holds the runs of an earlier sweep (1, e.g. 0_seed=0)" in result.stderr
    assert sorted(p.name for p in job.parent.rglob("*")) == ["0_seed=0", "best"]


def test_the_final_model_is_validated_when_training_ends_on_a_multiple_of_every(tmp_path, caplog):
    # Validations run between rollouts, and none follows the last: a run ending on a
    # multiple of validation.every (TD3's defaults: 1.5M of 150k) never validated its
    # final model.
    overrides = [*QUICK, "total_timesteps=2048", "validation.every=1024", "checkpoint.every=0"]
    with initialize():
        cfg = compose("train", overrides=overrides)
    with caplog.at_level(logging.INFO, logger="racing_rl"):
        train(cfg, tmp_path)
    validations = re.findall(r"validation at (\d+) steps", caplog.text)
    assert validations == ["1024", "2048"]


def test_a_filesystem_without_locks_warns_and_locks_nothing(tmp_path, monkeypatch, caplog):
    # Some network and FUSE mounts refuse flock: no lock, and the caller goes on (the lock
    # guards against a mistake; it must not forbid training there).
    from filelock import FileLock as Lock

    from racing_rl import train as train_app

    def unsupported(self, *args, **kwargs):
        raise OSError(95, "Operation not supported")

    monkeypatch.setattr(Lock, "acquire", unsupported)
    with caplog.at_level(logging.WARNING, logger="racing_rl"):
        assert train_app.lock_run_dir(tmp_path / "run", what="run", then="") is None
    assert "cannot lock" in caplog.text and "would not be refused" in caplog.text


@pytest.mark.parametrize(
    ("overrides", "says"),
    [
        (["total_timesteps=500"], "ends within ppo's first rollout (1_024 timesteps)"),
        (["algo=sac"], "total_timesteps=2_000 is within algo.model.learning_starts=10_000"),
    ],
)
def test_a_budget_that_cannot_train_the_policy_is_named(overrides, says, tmp_path, caplog):
    # A smoke run that saves an untrained policy without a word looks like a failure to
    # learn. (Rollouts of 256 steps x 4 cars; SAC learns after 10,000 steps.)
    with initialize():
        cfg = compose("train", overrides=[*TINY, *overrides])
    with caplog.at_level(logging.WARNING, logger="racing_rl"):
        train(cfg, tmp_path)
    assert says in caplog.text
    with initialize():
        cfg = compose("train", overrides=TINY)  # 2,000 timesteps: an update at 1,024
    caplog.clear()
    (tmp_path / "trains").mkdir()
    with caplog.at_level(logging.WARNING, logger="racing_rl"):
        train(cfg, tmp_path / "trains")
    assert "first rollout" not in caplog.text and "learning_starts" not in caplog.text


def test_a_removed_key_that_another_refers_to_is_one_line_and_no_run_dir(tmp_path):
    """~algo.teacher_coef (which algo.model.teacher_coef interpolates) was a Hydra warning,
    a traceback and a run directory with a failed run.json."""
    run_dir = tmp_path / "run"
    result = racing_rl("train", "~algo.teacher_coef", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "racing-rl train: Invalid config: Interpolation key 'algo.teacher_coef' not found "
        "(full key: algo.model.teacher_coef): a key that another key refers to was removed "
        "(~) or never set; racing-rl train --cfg job shows the config."
    )
    assert not run_dir.exists()
    # An environment variable that is not set was blamed on a removed key too. (Given on
    # the command line it is refused before Hydra starts: tests/test_cli.py.)
    experiment = tmp_path / "my_conf" / "experiment"
    experiment.mkdir(parents=True)
    (experiment / "env.yaml").write_text("# @package _global_\nseed: ${oc.env:RACING_RL_NOT_SET}\n")
    result = racing_rl(
        "train",
        f"--config-dir={tmp_path / 'my_conf'}",
        "experiment=env",
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .endswith(
            "'RACING_RL_NOT_SET' not found\" (full key: seed): set that environment variable, or "
            "give the value itself; racing-rl train --cfg job shows the config."
        )
    )
    assert not run_dir.exists()


def test_init_from_a_sac_run_goes_on_from_its_entropy_coefficient(tmp_path):
    """The optimiser of SAC's entropy coefficient came with the weights, but the
    coefficient restarted at its initial value."""
    source, new = tmp_path / "source", tmp_path / "new"
    tiny = [*TINY, "algo=sac", "algo.model.learning_starts=100", "total_timesteps=600"]
    result = racing_rl("train", *tiny, f"hydra.run.dir={source}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    # Nothing trains in the new run (learning_starts beyond its budget): its model is
    # what init_from made.
    frozen = [*tiny, "algo.model.learning_starts=10000"]
    result = racing_rl(
        "train", *frozen, f"init_from={source}", f"hydra.run.dir={new}", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]

    def sac(ent_coef="auto"):
        model = {"_target_": "stable_baselines3.SAC", "policy": "MlpPolicy", "ent_coef": ent_coef}
        return OmegaConf.create({"model": model})

    before, after = (load_model(sac(), run / "model.zip").log_ent_coef for run in (source, new))
    assert before.item() != pytest.approx(math.log(0.1))  # trained from auto_0.1
    assert after.item() == before.item()
    # A run that fixes the coefficient from one that learned it, and the other way round,
    # ended in SB3's traceback ("Names of parameters do not match" or 'NoneType' object
    # has no attribute 'load_state_dict'): the coefficient is then this run's own.
    fixed, learning = tmp_path / "fixed", tmp_path / "learning"
    for run_dir, since in ((fixed, source), (learning, fixed)):
        own = ["algo.model.ent_coef=0.05"] if run_dir == fixed else []
        command = [*frozen, *own, f"init_from={since}", f"hydra.run.dir={run_dir}"]
        result = racing_rl("train", *command, cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
        assert "this run's starts as its config says, not from the source's" in result.stderr
    assert load_model(sac(0.05), fixed / "model.zip").ent_coef_tensor.item() == pytest.approx(0.05)
    learned = load_model(sac(), learning / "model.zip").log_ent_coef.item()
    assert learned == pytest.approx(math.log(0.1))


def test_a_leg_started_by_a_launcher_s_own_program_records_the_job_s_command(monkeypatch):
    # A SLURM job (submitit's _submit.py) recorded ".../submitit/core/_submit.py <folder>".
    from hydra.core.hydra_config import HydraConfig

    from racing_rl import training

    monkeypatch.setattr(sys, "argv", ["/venv/bin/racing-rl", "train", "seed=1"])
    assert training._command() == "/venv/bin/racing-rl train seed=1"
    monkeypatch.setattr(sys, "argv", ["/venv/lib/submitit/core/_submit.py", "/sweep/.submitit"])
    monkeypatch.setattr(HydraConfig, "initialized", staticmethod(lambda: True))
    job = types.SimpleNamespace(overrides=types.SimpleNamespace(task=["seed=1", "algo=sac"]))
    monkeypatch.setattr(HydraConfig, "get", staticmethod(lambda: job))
    assert training._command() == "racing-rl train seed=1 algo=sac"


def test_a_leg_started_by_racing_rl_s_cli_records_its_whole_command_line(monkeypatch):
    # racing_rl.cli hands Hydra argv[0] "racing-rl train": run.json recorded the job's
    # overrides instead, without --config-dir or hydra.run.dir.
    from hydra.core.hydra_config import HydraConfig

    from racing_rl import training

    argv = ["racing-rl train", "--config-dir", "my_conf", "experiment=mine", "hydra.run.dir=r"]
    monkeypatch.setattr(sys, "argv", argv)
    monkeypatch.setattr(HydraConfig, "initialized", staticmethod(lambda: True))
    job = types.SimpleNamespace(overrides=types.SimpleNamespace(task=["experiment=mine"]))
    monkeypatch.setattr(HydraConfig, "get", staticmethod(lambda: job))
    expected = "racing-rl train --config-dir my_conf experiment=mine hydra.run.dir=r"
    assert training._command() == expected

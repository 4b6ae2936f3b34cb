"""Invalid values fail before any work starts, with a message naming the key (the keys
and types that fail while Hydra composes: tests/test_config.py)."""

import pytest
import torch
from hydra import compose
from omegaconf import OmegaConf
from runs import racing_rl

from racing_rl.checkpoints.runs import load_run_config
from racing_rl.checks import check_track_splits, check_train_config
from racing_rl.config import initialize
from racing_rl.errors import CheckpointError, ConfigError

# (overrides, text the message must contain: the key, and what is allowed where useful)
INVALID = [
    (["total_timesteps=-5"], "total_timesteps=-5; must be an integer >= 1"),
    (["seed=-1"], "seed=-1"),
    (["n_races=0"], "n_races=0"),
    (["torch_threads=0"], "torch_threads=0"),
    (["device=gpu"], "device='gpu'; must be cpu, cuda"),
    (["checkpoint.every=-1"], "checkpoint.every=-1"),
    (["validation.max_steps=0"], "validation.max_steps=0"),
    (["tracks.validation=[0,10]"], "tracks.train=[0, 100000] and tracks.validation=[0, 10]"),
    (["tracks.test=[5,5]"], "tracks.test=[5, 5]; must be [start, stop)"),
    (["wrappers.frame_stack=0"], "wrappers.frame_stack=0; must be an integer >= 1"),
    (["+wrappers.normalize.clip_ob=5"], "wrappers.normalize.clip_ob=5; not an argument"),
    (["algo.model.batch_size=99999"], "algo.model.batch_size=99999; must be <= the rollout"),
    (["+algo.model.n_step=128"], "algo.model.n_step=128; not an argument of TeacherPPO"),
    (["+algo.model.seed=3"], "algo.model.seed=3; racing-rl sets seed itself"),
    (["algo.model.gamma=1.5"], "algo.model.gamma=1.5; must be a number in (0.0, 1.0]"),
    (["algo.model.policy=MlpPolicyy"], "algo.model.policy='MlpPolicyy'"),
    (["algo=sac", "algo.model.learning_rate=-0.1"], "algo.model.learning_rate=-0.1"),
    (["algo=sac", "algo.model.buffer_size=100"], "algo.model.batch_size=256; must be <="),
    (["algo.model._target_=stable_baselines3.PPOO"], "algo.model._target_"),
    # ARS is a BaseAlgorithm, neither on- nor off-policy: it crashed with KeyError 'gamma'.
    (["algo.model._target_=sb3_contrib.ARS"], "'sb3_contrib.ARS' is neither an on-policy"),
    # The arguments TeacherPPO checks itself, and nested objects that cannot be made.
    (["algo.teacher_coef=abc"], "TeacherPPO's teacher_coef must be a finite number >= 0"),
    (["algo.teacher_coef=inf"], "TeacherPPO's teacher_coef must be a finite number >= 0"),
    (["algo.model.teacher=fast"], "TeacherPPO's teacher must be one of default, racing"),
    (["+algo.model.teacher_epochs=0"], "TeacherPPO's teacher_epochs must be an integer >= 1"),
    (
        ["algo.model.learning_rate._target_=nope.Schedule"],
        "algo.model cannot be instantiated: Error locating target 'nope.Schedule'. "
        "full_key: algo.model.learning_rate",
    ),
    (["backend.track.width=-3"], "backend.track.width must be > 0, got -3.0"),
    (["+backend.track.colour=red"], "backend.track.colour"),
    (["backend.episode.spawn=air"], "episode.spawn"),
    (["backend.episode.rotate_grid=true"], "spawn='random' has none to rotate"),
    (["backend.name=carla"], "backend.name='carla'; must be one of pygame, roblox"),
    (["backend=roblox", "backend.server.host=0.0.0.0"], "server.host='0.0.0.0'"),
    (["backend=roblox", "backend.observation_size=3"], "observation_size=3"),
    (["backend=roblox", "n_races=31"], "30 or less (more cars_per_race keeps the cars), or"),
    (  # validation is off already: lowering n_races is the only way
        ["backend=roblox", "n_races=40", "validation.every=0"],
        "Lower n_races to 31 or less (more cars_per_race keeps the cars).",
    ),
    (["backend=roblox", "backend.max_environments=40"], "at most 31 environments apart"),
    # Upper bounds on what allocates, and values that used to train silently.
    (["n_races=100000"], "n_races=100000; must be <= 1_024"),
    (["cars_per_race=1000000"], "cars_per_race=1000000; must be <= 256"),
    (["n_races=1000", "cars_per_race=200"], "1000 × 200 = 200_000 cars; must be <= 8_192"),
    (
        ["n_races=64", "cars_per_race=20", "algo.model.n_steps=5000"],
        "n_steps × cars = 5000 × 1280 = 6_400_000 must be <= 4_194_304",
    ),
    (["algo.model.n_steps=1000000"], "algo.model.n_steps=1000000; must be <= 100_000"),
    (["algo=sac", "algo.model.buffer_size=100000000"], "buffer_size=100000000; must be <="),
    (["wrappers.frame_stack=1000"], "wrappers.frame_stack=1000; must be <= 64"),
    (["tracks.validation=[1000000,3000000]"], "at most 10_000 tracks"),
    (["validation.video.size=4096"], "validation.video.size=4096; must be <= 1_024"),
    (["validation.video.max_steps=100000"], "frames × size² × 3 must be <= 2 GiB"),
    (["algo.model.clip_range=-1"], "algo.model.clip_range=-1; must be a number in (0.0, 1.0]"),
    (["algo.net_width=0"], "algo.net_width=0; must be an integer >= 1"),
    (["algo.net_width=100000"], "algo.net_width=100000; must be <= 16_384"),
    (["wrappers.normalize.clip_obs=-1"], "wrappers.normalize.clip_obs=-1; must be a number in"),
    (["wrappers.normalize.epsilon=inf"], "normalize.epsilon=inf; must be a finite number > 0"),
    (["algo.model.ent_coef=abc"], "algo.model.ent_coef='abc'; must be a number in [0.0, inf]"),
    (["algo=sac", "algo.model.ent_coef=abc"], "must be auto, auto_<initial value> or a number"),
    (["algo.model.max_grad_norm=0"], "algo.model.max_grad_norm=0"),
    (["checkpoint.keep=-1"], "checkpoint.keep=-1; must be an integer >= 0"),
    (["log_interval=0"], "log_interval=0; must be an integer >= 1"),
    (["tracks.train_mix=[brutal]"], "tracks.train_mix=['brutal']: Unknown difficulty='brutal'"),
    # A step of half a track or more (at car.max_speed) was refused at the first reset.
    (["backend.rules.dt=10"], "backend.rules.dt (10.0 s) lets a car at car.max_speed (45.0"),
    (["backend.rules.dt=3"], "train_mix=['hard']: Invalid config: backend.rules.dt (3.0 s)"),
    # A grid deeper than a lap started its last cars on its first: crashed at step 1.
    (
        ["backend.episode.spawn=grid", "backend.rules.car_collisions=true", "cars_per_race=77"],
        "spawn='grid' lines up 77 cars 4 m apart, 308 m behind the start line, but a track of "
        "the track mix may be as short as 261.8 m",
    ),
    (
        [
            "difficulty=hard",
            "backend.episode.grid_start_prob=0.1",
            "cars_per_race=60",
            "scripted_opponents=6",
            "algo.model.n_steps=256",
        ],
        "grid_start_prob=0.1 (races started on a grid) lines up 66 cars",
    ),
    (["backend.rules.car_collisions=true", "backend.episode.spawn=line"], "on one spot"),
    (["scripted_opponents=-1"], "scripted_opponents=-1; must be an integer >= 0"),
    (["cars_per_race=200", "scripted_opponents=60"], "scripted_opponents=60; must be <= 56"),
    (["backend=roblox", "scripted_opponents=2"], "on the built-in simulator only"),
    (["backend.episode.grid_start_prob=2"], "episode.grid_start_prob must be in [0, 1]"),
    # Each raised in the model, after the run dir was made, or broke training with a
    # traceback (a review of the algorithm configs).
    (["algo=td3", "+algo.model.policy_delay=0"], "policy_delay=0; must be an integer >= 1"),
    (["algo=crossq", "algo.model.policy_delay=0"], "policy_delay=0; must be an integer >= 1"),
    (["algo=sac", "algo.model.train_freq=0"], "train_freq=0; must be an integer >= 1"),
    (
        ["algo=td3", "+algo.model.optimize_memory_usage=true"],
        "optimize_memory_usage=True; SB3's ReplayBuffer cannot also tell a time limit from",
    ),
    (["algo=sac", "algo.model.train_freq=[1,lap]"], "train_freq=[1, 'lap']; must be an"),
    (["algo=tqc", "algo.model.top_quantiles_to_drop_per_net=25"], "must be < the critics'"),
    (["algo=tqc", "algo.model.top_quantiles_to_drop_per_net=-1"], "must be an integer >= 0"),
    (["algo.model.batch_size=1"], "batch_size=1; must be >= 2 for an on-policy algorithm"),
    (["+algo.model.policy_kwargs.foo=1"], "policy_kwargs.foo=1; not an argument of ActorCritic"),
    (["algo.model.learning_rate.start=-1"], "a schedule from -1 to 0'; must start > 0"),
]


@pytest.mark.parametrize(("overrides", "message"), INVALID, ids=[" ".join(o) for o, _ in INVALID])
def test_invalid_config_fails_naming_the_key(overrides, message):
    with initialize():
        cfg = compose("train", overrides=overrides)
    with pytest.raises(ConfigError) as raised:
        check_train_config(cfg)
    assert message in str(raised.value)


def test_a_saved_run_with_a_setting_a_new_run_may_not_start_with_still_loads(tmp_path):
    """rotate_grid=true without a grid spawn did nothing, and runs were saved with it: the
    refusal of it made their run directories unloadable (eval, export, resume)."""
    from omegaconf import OmegaConf

    from racing_rl.checkpoints.runs import load_run_config

    with initialize():
        cfg = compose("train", overrides=["backend.episode.rotate_grid=true"])
    with pytest.raises(ConfigError, match="rotate_grid=true; it rotates"):
        check_train_config(cfg)
    check_train_config(cfg, new_run=False)
    (tmp_path / ".hydra").mkdir()
    OmegaConf.save(cfg, tmp_path / ".hydra" / "config.yaml")
    assert load_run_config(tmp_path).backend.episode.rotate_grid


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_fails_naming_the_key():
    with initialize():
        cfg = compose("train", overrides=["device=cuda"])
    with pytest.raises(ConfigError, match=r"device='cuda'; this machine's CUDA devices: none"):
        check_train_config(cfg)


def test_a_cuda_index_the_machine_lacks_fails_naming_the_key():
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    with initialize():
        cfg = compose("train", overrides=[f"device=cuda:{count}"])
    with pytest.raises(ConfigError, match=f"device='cuda:{count}'"):
        check_train_config(cfg)


@pytest.mark.parametrize("algo", ["ppo", "sac", "td3", "recurrent_ppo", "tqc", "crossq"])
def test_every_shipped_config_passes(algo):
    with initialize():
        check_train_config(compose("train", overrides=[f"algo={algo}"]))
        check_train_config(compose("train", overrides=[f"algo={algo}", "wrappers=none"]))


def test_the_cli_fails_fast_and_leaves_nothing_behind(tmp_path):
    run_dir = tmp_path / "run"
    result = racing_rl(
        "train", "wrappers.frame_stack=0", f"hydra.run.dir={run_dir}", cwd=tmp_path, timeout=60
    )
    assert result.returncode == 1
    # One line, as a usage error is reported (racing_rl.errors.print_error), no log prefix.
    line = "racing-rl train: Invalid config: wrappers.frame_stack=0; must be an integer >= 1."
    assert line in result.stderr.splitlines()
    # Checked before Hydra makes the run dir (a sweep's failed job keeps its run.json:
    # tests/test_sweeps.py).
    assert not run_dir.exists()


def test_an_algorithm_of_discrete_actions_is_refused_before_the_run_dir_is_made(tmp_path):
    """An algorithm file for SB3's DQN (its own, in a --config-dir) passed every check, then
    failed once the run directory and the environments were made ("only supports
    Discrete"), its run.json left behind as a failed run's."""
    (tmp_path / "conf" / "algo").mkdir(parents=True)
    (tmp_path / "conf" / "algo" / "dqn.yaml").write_text(
        "name: dqn\nmodel:\n  _target_: stable_baselines3.DQN\n  policy: MlpPolicy\n"
    )
    run_dir = tmp_path / "run"
    config_dir = ["--config-dir", str(tmp_path / "conf")]
    result = racing_rl(
        "train", *config_dir, "algo=dqn", f"hydra.run.dir={run_dir}", cwd=tmp_path, timeout=60
    )
    assert result.returncode == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith(
        "racing-rl train: Invalid config: algo.model._target_=stable_baselines3.DQN cannot "
        "train racing-rl's 20 cars of continuous actions"
    )
    assert "only supports" in line
    assert line.endswith(
        "Choose algo= one of crossq, ppo, recurrent_ppo, sac, td3, tqc (conf/algo/), or an "
        "SB3 algorithm of Box actions."
    )
    assert not run_dir.exists()


def test_a_model_that_cannot_be_made_is_refused_before_the_run_dir_is_made(tmp_path):
    """A policy_kwargs value the policy cannot take (activation_fn=relu, a string for a
    class) passed every check, then failed as the model was made, leaving a run directory
    with a run.json and a train.log (the run marked failed)."""
    run_dir = tmp_path / "run"
    result = racing_rl(
        "train",
        "+algo.model.policy_kwargs.activation_fn=relu",
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "racing-rl train: Invalid config: algo.model cannot be made for observations of 26 "
        "numbers and 20 cars: 'str' object is not callable. Check algo.model's policy and "
        "policy_kwargs (racing-rl train --cfg job -p algo prints them)."
    ]
    assert not run_dir.exists()


def test_hydra_refuses_keys_that_are_not_in_the_config(tmp_path):
    result = racing_rl("train", "total_timestep=5", cwd=tmp_path, timeout=60)
    assert result.returncode != 0 and "total_timestep" in result.stderr


@pytest.mark.parametrize(
    ("tracks", "message"),
    [
        ({"train": [0, 10], "validation": [5, 15], "test": [20, 30]}, "overlap"),
        ({"train": [0, 10], "validation": [10, 20], "test": [0, 1]}, "overlap"),
        ({"train": [10, 0], "validation": [10, 20], "test": [20, 30]}, "start < stop"),
        ({"train": [0, 10], "validation": [10, 20]}, r"tracks\.test=None; must be \[start"),
    ],
)
def test_track_splits_must_be_disjoint(tracks, message):
    with pytest.raises(ConfigError, match=message):
        check_track_splits(OmegaConf.create(tracks))


def test_default_track_splits_are_disjoint():
    with initialize():
        cfg = compose("train")
    check_track_splits(cfg.tracks)


GARBAGE = {
    "binary": b"\x00\x9f\x92\x96\xff\xfe garbage",
    "a YAML list": b"- 1\n- 2\n",
    "empty": b"",
    "a bad interpolation": b"seed: ${nope}\nalgo: {name: ppo}\n",
    "a missing section": b"seed: 0\n",
}


@pytest.mark.parametrize("content", GARBAGE.values(), ids=GARBAGE.keys())
def test_a_garbage_run_config_is_a_one_line_error(tmp_path, content):
    (tmp_path / ".hydra").mkdir()
    (tmp_path / ".hydra" / "config.yaml").write_bytes(content)
    with pytest.raises(CheckpointError, match="is not a valid run config") as raised:
        load_run_config(tmp_path)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize("command", ["eval", "train"])
def test_eval_and_resume_of_a_garbage_run_config_say_so_without_a_traceback(tmp_path, command):
    run_dir = tmp_path / "run"
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "config.yaml").write_bytes(GARBAGE["a YAML list"])
    arg = f"run_dir={run_dir}" if command == "eval" else f"resume={run_dir}"
    result = racing_rl(command, arg, cwd=tmp_path, timeout=120)
    assert result.returncode == (2 if command == "train" else 1)  # resume: before Hydra
    assert "is not a valid run config" in result.stderr and "Traceback" not in result.stderr


def test_a_run_saved_with_keys_since_renamed_loads_with_the_new_names(tmp_path):
    """Runs saved before ``n_venvs``/``agents_per_venv`` became ``n_races``/``cars_per_race``
    and the bridge's timeouts lost their ``_s`` load (eval, resume) with their values under
    the new names."""
    with initialize():
        cfg = compose("train", overrides=["backend=roblox", "n_races=3", "cars_per_race=2"])
    saved = OmegaConf.to_container(cfg, resolve=False)
    saved["n_venvs"], saved["agents_per_venv"] = saved.pop("n_races"), saved.pop("cars_per_race")
    saved["backend"]["connect_timeout_s"] = 7.0
    del saved["backend"]["connect_timeout"]
    saved["backend"]["server"]["ping_after_s"] = saved["backend"]["server"].pop("ping_after")
    (tmp_path / ".hydra").mkdir()
    OmegaConf.save(OmegaConf.create(saved), tmp_path / ".hydra" / "config.yaml")
    loaded = load_run_config(tmp_path)
    assert (loaded.n_races, loaded.cars_per_race) == (3, 2)
    assert loaded.backend.connect_timeout == 7.0 and "ping_after" in loaded.backend.server
    assert "n_venvs" not in loaded and "connect_timeout_s" not in loaded.backend


#: Settings refused at the environments' first reset or first step, after the run dir,
#: run.json and train.log were made; now by the CLI, before the run dir: (overrides, line).
REFUSED_BEFORE_THE_RUN_DIR = [
    (  # rules.dt=10: 450 m a step at car.max_speed, tracks of ~450 m
        ["backend.rules.dt=10"],
        "racing-rl train: Invalid config: backend.rules.dt (10.0 s) lets a car at "
        "car.max_speed (45.0 m/s) move 450.0 m in a step, half or more of 306.0 m, the least "
        "length of a track of these track settings (TrackConfig.shortest_length): progress "
        "along it would be ambiguous. Use a rules.dt below 3.4 s (0.0667 s by default).",
    ),
    (  # a grid of 130 cars (520 m) on hard tracks (~480 m) wrapped round onto its first
        # cars, and with car collisions on a hundred crashed at the first step of a race
        ["difficulty=hard", "backend.episode.spawn=grid", "cars_per_race=130"],
        "racing-rl train: Invalid config: backend.episode.spawn='grid' lines up 130 cars 4 m "
        "apart, 520 m behind the start line, but a track of these track settings may be as "
        "short as 261.8 m (TrackConfig.shortest_length, a lower bound), and with "
        "rules.car_collisions on the last cars would start on the first: race at most 65 "
        "cars (cars_per_race + scripted_opponents in training), or make the tracks longer "
        "(track.base_radius).",
    ),
]


@pytest.mark.parametrize(("overrides", "line"), REFUSED_BEFORE_THE_RUN_DIR)
def test_the_cli_refuses_what_no_race_can_start_with_before_the_run_dir(tmp_path, overrides, line):
    run_dir = tmp_path / "run"
    result = racing_rl("train", *overrides, f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert result.stderr.splitlines() == [line]
    assert not run_dir.exists()

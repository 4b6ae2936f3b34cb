"""Invalid configs fail before any work starts, with a message naming the key."""

import json

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from runs import racing_rl

from racing_rl import config_dir
from racing_rl.checks import check_track_splits, check_train_config
from racing_rl.errors import ConfigError

# (overrides, text the message must contain: the key, and what is allowed where useful)
INVALID = [
    (["total_timesteps=-5"], "total_timesteps=-5; must be an integer >= 1"),
    (["total_timesteps=1.5e6"], "total_timesteps=1500000.0"),
    (["seed=-1"], "seed=-1"),
    (["n_venvs=0"], "n_venvs=0"),
    (["agents_per_venv=two"], "agents_per_venv='two'"),
    (["torch_threads=0"], "torch_threads=0"),
    (["device=gpu"], "device='gpu'; must be cpu, cuda"),
    (["progress_bar=maybe"], "progress_bar='maybe'"),
    (["checkpoint.every=-1"], "checkpoint.every=-1"),
    (["validation.max_steps=0"], "validation.max_steps=0"),
    (["tracks.validation=[0,10]"], "tracks.train=[0, 100000] and tracks.validation=[0, 10]"),
    (["tracks.test=[5,5]"], "tracks.test=[5, 5]; must be [start, stop)"),
    (["wrappers.frame_stack=0"], "wrappers.frame_stack=0; must be an integer >= 1"),
    (["+wrappers.normalize.clip_ob=5"], "wrappers.normalize.clip_ob=5; not an argument"),
    (["algo.model.batch_size=99999"], "algo.model.batch_size=99999; must be <= the rollout"),
    (["+algo.model.n_step=128"], "algo.model.n_step=128; not an argument of PPO"),
    (["+algo.model.seed=3"], "algo.model.seed=3; racing-rl sets seed itself"),
    (["algo.model.gamma=1.5"], "algo.model.gamma=1.5; must be a number in (0.0, 1.0]"),
    (["algo.model.policy=MlpPolicyy"], "algo.model.policy='MlpPolicyy'"),
    (["algo=sac", "algo.model.learning_rate=-0.1"], "algo.model.learning_rate=-0.1"),
    (["algo=sac", "algo.model.buffer_size=100"], "algo.model.batch_size=256; must be <="),
    (["algo.model._target_=stable_baselines3.PPOO"], "algo.model._target_"),
    (["backend.track.width=-3"], "backend.track"),
    (["+backend.track.colour=red"], "backend.track.colour"),
    (["backend.episode.spawn=air"], "episode.spawn"),
    (["backend.name=carla"], "backend.name='carla'; must be one of pygame, roblox"),
    (["backend=roblox", "backend.server.host=0.0.0.0"], "server.host='0.0.0.0'"),
    (["backend=roblox", "backend.observation_size=3"], "observation_size=3"),
    (["backend=roblox", "n_venvs=31"], "Lower n_venvs to 30 or less"),
    (["backend=roblox", "backend.max_environments=40"], "at most 31 environments apart"),
]


@pytest.mark.parametrize(("overrides", "message"), INVALID, ids=[" ".join(o) for o, _ in INVALID])
def test_invalid_config_fails_naming_the_key(overrides, message):
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    with pytest.raises(ConfigError) as raised:
        check_train_config(cfg)
    assert message in str(raised.value)


@pytest.mark.parametrize("algo", ["ppo", "sac", "td3", "recurrent_ppo", "tqc"])
def test_every_shipped_config_passes(algo):
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        check_train_config(compose("train", overrides=[f"algo={algo}"]))
        check_train_config(compose("train", overrides=[f"algo={algo}", "wrappers=none"]))


def test_the_cli_fails_fast_and_records_the_failure(tmp_path):
    run_dir = tmp_path / "run"
    result = racing_rl(
        "train", "wrappers.frame_stack=0", f"hydra.run.dir={run_dir}", cwd=tmp_path, timeout=60
    )
    assert result.returncode == 1
    assert "Invalid config: wrappers.frame_stack=0; must be an integer >= 1" in result.stderr
    # Nothing was built or trained: only the config, the log and the failed leg.
    assert sorted(p.name for p in run_dir.iterdir()) == [".hydra", "run.json", "train.log"]
    (leg,) = json.loads((run_dir / "run.json").read_text())["legs"]
    assert leg["status"] == "failed"
    assert "wrappers.frame_stack=0" in leg["error"]


def test_hydra_refuses_keys_that_are_not_in_the_config(tmp_path):
    result = racing_rl("train", "total_timestep=5", cwd=tmp_path, timeout=60)
    assert result.returncode != 0 and "total_timestep" in result.stderr


@pytest.mark.parametrize(
    ("tracks", "message"),
    [
        ({"train": [0, 10], "validation": [5, 15], "test": [20, 30]}, "overlap"),
        ({"train": [0, 10], "validation": [10, 20], "test": [0, 1]}, "overlap"),
        ({"train": [10, 0], "validation": [10, 20], "test": [20, 30]}, "start < stop"),
    ],
)
def test_track_splits_must_be_disjoint(tracks, message):
    with pytest.raises(ConfigError, match=message):
        check_track_splits(OmegaConf.create(tracks))


def test_default_track_splits_are_disjoint():
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        cfg = compose("train")
    check_track_splits(cfg.tracks)

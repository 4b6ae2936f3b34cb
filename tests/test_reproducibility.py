"""Same config and seed on the CPU: identical episode rewards and identical final weights."""

import json

import pytest
import torch
from runs import QUICK, QUICK_OFF_POLICY, racing_rl, tb_scalars

from racing_rl.checkpoints.loading import load_model
from racing_rl.checkpoints.runs import load_run_config

RUNS = {
    "ppo": ["algo=ppo", "algo.model.n_steps=50", "algo.model.batch_size=100"],
    # log_interval: episodes between logs; this short run ends fewer than the default 20.
    "sac": ["algo=sac", *QUICK_OFF_POLICY, "algo.model.gradient_steps=1", "log_interval=2"],
}


def train(tmp_path, name, algo, seed):
    run_dir = tmp_path / name
    result = racing_rl(
        "train", *RUNS[algo], *QUICK, f"seed={seed}", f"hydra.run.dir={run_dir}", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rewards = tb_scalars(run_dir)["rollout/ep_rew_mean"]
    cfg = load_run_config(run_dir)
    weights = load_model(cfg.algo, run_dir / "model.zip", env=None, device="cpu").get_parameters()
    validation = json.loads((run_dir / "best" / "metrics.json").read_text())
    return rewards, weights, validation


def same_weights(a, b):
    """Whether two ``get_parameters()`` results hold equal policy tensors."""
    a, b = a["policy"], b["policy"]
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("algo", sorted(RUNS))
def test_same_seed_same_rewards_and_weights(algo, tmp_path):
    rewards, weights, validation = train(tmp_path, "a", algo, seed=3)
    rewards_again, weights_again, validation_again = train(tmp_path, "b", algo, seed=3)
    assert len(rewards) >= 3
    assert rewards == rewards_again  # every logged mean of episode rewards, bit for bit
    assert validation["mean_return"] == validation_again["mean_return"]
    assert same_weights(weights, weights_again)
    # The comparison can fail: another seed gives other rewards and weights.
    other_rewards, other_weights, _ = train(tmp_path, "c", algo, seed=4)
    assert other_rewards != rewards and not same_weights(weights, other_weights)


def test_a_run_records_what_it_needs_to_be_rerun(tmp_path):
    run_dir = tmp_path / "run"
    result = racing_rl("train", *QUICK, "seed=5", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert load_run_config(run_dir).seed == 5  # the composed config
    assert "seed=5" in (run_dir / ".hydra" / "overrides.yaml").read_text()
    (leg,) = json.loads((run_dir / "run.json").read_text())["legs"]
    assert leg["command"].startswith("racing-rl train ") and "seed=5" in leg["command"]
    for package in ("racing-rl", "stable-baselines3", "torch", "gymnasium", "pettingzoo"):
        assert leg["packages"][package], package
    git = leg["git"]
    assert (len(git["commit"]) == 40 and isinstance(git["dirty"], bool)) or git["error"]

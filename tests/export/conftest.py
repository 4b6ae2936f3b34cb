"""Tiny trained runs of every exportable algorithm, trained once per session in-process."""

from __future__ import annotations

from pathlib import Path

import pytest
from runs import TINY, saved_config

from racing_rl.training import train

#: PPO's orthogonal initialisation scales the action layer by 0.01, so a briefly trained
#: policy's actions hardly vary; PyTorch's default initialisation makes them span the range.
DEFAULT_INIT = "+algo.model.policy_kwargs.ortho_init=false"
#: Per algorithm: small networks (and a short rollout) so that training takes seconds.
ALGORITHMS = {
    "ppo": [
        "algo.net_width=16",
        "algo.model.n_steps=64",
        "algo.model.batch_size=64",
        DEFAULT_INIT,
    ],
    "sac": ["algo.net_width=16", "algo.model.learning_starts=64", "algo.model.batch_size=32"],
    "td3": [
        "algo.model.policy_kwargs.net_arch=[16,16]",
        "algo.model.learning_starts=64",
        "algo.model.batch_size=32",
    ],
    "tqc": [
        "algo.net_width=16",
        "algo.model.policy_kwargs.n_quantiles=5",
        "algo.model.top_quantiles_to_drop_per_net=1",
        "algo.model.learning_starts=64",
        "algo.model.batch_size=32",
    ],
    "recurrent_ppo": [
        "algo.model.policy_kwargs.net_arch=[16,16]",
        "algo.model.policy_kwargs.lstm_hidden_size=8",
        "algo.model.n_steps=64",
        "algo.model.batch_size=128",
        "algo.model.n_epochs=2",
        DEFAULT_INIT,
    ],
}


def train_run(run_dir: Path, overrides: list[str]) -> Path:
    """Train a run with ``overrides`` into ``run_dir`` and save its config as Hydra does."""
    cfg = saved_config(run_dir, overrides)
    train(cfg, run_dir)
    return run_dir


@pytest.fixture(scope="session")
def trained_runs(tmp_path_factory) -> dict[str, Path]:
    """One tiny run per algorithm (~512 timesteps of 4 cars), keyed by ``algo`` name."""
    root = tmp_path_factory.mktemp("export_runs")
    tiny = [o for o in TINY if not o.startswith("total_timesteps")]
    return {
        algo: train_run(root / algo, [*tiny, f"algo={algo}", "total_timesteps=512", *extra])
        for algo, extra in ALGORITHMS.items()
    }

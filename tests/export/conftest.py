"""Tiny trained runs of every exportable algorithm, trained once per session in-process."""

from __future__ import annotations

from pathlib import Path

import pytest
from runs import TINY, saved_config

from racing_rl.training import train

#: PPO's orthogonal initialisation scales the action layer by 0.01, so a briefly trained
#: policy's actions hardly vary; PyTorch's default initialisation makes them span the range.
DEFAULT_INIT = "+algo.model.policy_kwargs.ortho_init=false"
#: The small PPO and SAC below, with and without gSDE.
PPO = ["algo.net_width=16", "algo.model.n_steps=64", "algo.model.batch_size=64", DEFAULT_INIT]
SAC = ["algo.net_width=16", "algo.model.learning_starts=64", "algo.model.batch_size=32"]
#: Per run: its algorithm, and small networks (and a short rollout) so that training takes
#: seconds.
RUNS = {
    "ppo": ["algo=ppo", *PPO],
    "sac": ["algo=sac", *SAC],
    "td3": [
        "algo=td3",
        "algo.model.policy_kwargs.net_arch=[16,16]",
        "algo.model.learning_starts=64",
        "algo.model.batch_size=32",
    ],
    "tqc": [
        "algo=tqc",
        "algo.net_width=16",
        "algo.model.policy_kwargs.n_quantiles=5",
        "algo.model.top_quantiles_to_drop_per_net=1",
        "algo.model.learning_starts=64",
        "algo.model.batch_size=32",
    ],
    "recurrent_ppo": [
        "algo=recurrent_ppo",
        "algo.model.policy_kwargs.net_arch=[16,16]",
        "algo.model.policy_kwargs.lstm_hidden_size=8",
        "algo.model.n_steps=64",
        "algo.model.batch_size=128",
        "algo.model.n_epochs=2",
        DEFAULT_INIT,
    ],
    # gSDE (its teacher term fits a diagonal Gaussian, so PPO alone).
    "ppo_gsde": ["algo=ppo", *PPO, "+algo.model.use_sde=true", "algo.teacher_coef=0"],
    "sac_gsde": ["algo=sac", *SAC, "+algo.model.use_sde=true"],
}


def train_run(run_dir: Path, overrides: list[str]) -> Path:
    """Train a run with ``overrides`` into ``run_dir`` and save its config as Hydra does."""
    cfg = saved_config(run_dir, overrides)
    train(cfg, run_dir)
    return run_dir


@pytest.fixture(scope="session")
def trained_runs(tmp_path_factory) -> dict[str, Path]:
    """One tiny run (~512 timesteps of 4 cars) per ``RUNS`` entry: one per algorithm,
    keyed by ``algo`` name, and PPO and SAC with gSDE (``ppo_gsde``, ``sac_gsde``)."""
    root = tmp_path_factory.mktemp("export_runs")
    tiny = [o for o in TINY if not o.startswith("total_timesteps")]
    return {
        name: train_run(root / name, [*tiny, "total_timesteps=512", *overrides])
        for name, overrides in RUNS.items()
    }

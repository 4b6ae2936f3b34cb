"""scripts/bench_train.py: both stacks train, taking turns, and the figures add up."""

from __future__ import annotations

from types import ModuleType

import pytest
from hydra import compose
from runs import load_script

from racing_rl.config import initialize


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load_script("bench_train")


def test_both_stacks_train_in_turns_and_the_ratio_is_their_rates(bench: ModuleType) -> None:
    overrides = [
        "n_venvs=2",
        "agents_per_venv=2",
        "algo.model.n_steps=32",
        "algo.model.batch_size=64",
    ]
    with initialize():
        cfg = compose("train", overrides=overrides)
    figures = bench.run(cfg, timesteps=256, rounds=2)
    assert figures["cars"] == 4 and figures["rounds"] == 2
    assert figures["timesteps"] == 256  # two turns of 128: one rollout of 4 × 32 each
    assert figures["ratio"] == pytest.approx(
        figures["real_env_steps_per_s"] / figures["zero_cost_env_steps_per_s"]
    )
    assert [turn["ratio"] for turn in figures["turns"]] == pytest.approx(
        [turn["real"] / turn["zero_cost"] for turn in figures["turns"]]
    )
    assert len(figures["turns"]) == 2

"""scripts/bench_train.py: both stacks train, taking turns, and the figures add up."""

from __future__ import annotations

import statistics
from types import ModuleType

import pytest
from hydra import compose
from runs import load_script

from racing_rl.config import initialize


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load_script("bench_train")


def test_both_stacks_train_in_turns_and_each_rate_sums_its_turns(bench: ModuleType) -> None:
    overrides = [
        "n_races=2",
        "cars_per_race=2",
        "algo.model.n_steps=32",
        "algo.model.batch_size=64",
    ]
    with initialize():
        cfg = compose("train", overrides=overrides)
    reported = []
    figures = bench.run(cfg, timesteps=256, rounds=2, on_turn=lambda k, r: reported.append((k, r)))
    assert figures["cars"] == 4 and figures["rounds"] == 2
    assert figures["timesteps"] == 256  # two turns of 128: one rollout of 4 × 32 each
    assert reported == list(enumerate(figures["turns"], start=1))
    # Every turn trains 128 timesteps, so a stack's rate (its timesteps over its seconds,
    # summed over its turns) is the harmonic mean of its turns' rates.
    real, zero_cost = (
        statistics.harmonic_mean([turn[stack] for turn in figures["turns"]])
        for stack in ("real", "zero_cost")
    )
    assert figures["real_env_steps_per_s"] == pytest.approx(real, rel=1e-9)
    assert figures["zero_cost_env_steps_per_s"] == pytest.approx(zero_cost, rel=1e-9)
    assert figures["ratio"] == pytest.approx(real / zero_cost, rel=1e-9)
    # The table printed at the end: a row per turn, then the overall rates.
    table = bench.turns_table(figures).splitlines()
    assert [line.split()[0] for line in table] == ["turn", "1", "2", "all"]
    assert table[-1].split()[-1] == f"{figures['ratio']:.2f}"


def test_the_schedules_run_over_the_whole_budget_as_in_one_run(bench: ModuleType) -> None:
    # Each turn's learn(reset_num_timesteps=False) ended SB3's progress at 0 on that turn's
    # last update: later turns trained at a fraction of a real run's learning rate.
    from gymnasium import spaces

    with initialize():
        cfg = compose("train", overrides=["algo.model.n_steps=32", "algo.model.batch_size=64"])
    box = spaces.Box(-1.0, 1.0, (4,), "float32")
    model = bench.warmed_model(cfg, bench.ZeroCostVecEnv(2, box, box), timesteps=640)
    assert model._current_progress_remaining == pytest.approx(1 - 64 / 704)  # after the warm-up
    for turn in (1, 2):
        bench.train_for(model, 64)
        assert model._current_progress_remaining == pytest.approx(1 - 64 * (turn + 1) / 704)

"""racing-rl eval driver=luau|onnx: the exported checkpoint drives the same races, with the
same table, as driver=policy."""

from __future__ import annotations

import pytest
from hydra import compose

from racing_rl.config import initialize
from racing_rl.errors import ConfigError
from racing_rl.evaluation.command import evaluate


def eval_metrics(run_dir, driver, out_dir):
    overrides = [
        f"run_dir={run_dir}",
        "checkpoint=final",
        "seeds=[5,6,7]",
        "max_steps=40",
        f"driver={driver}",
        f"out_dir={out_dir}",
    ]
    with initialize():
        return evaluate(compose("eval", overrides=overrides))


@pytest.mark.parametrize("driver", ["luau", "onnx"])
def test_exported_drivers_race_as_the_checkpoint(trained_runs, driver, tmp_path):
    run_dir = trained_runs["recurrent_ppo"]
    policy = eval_metrics(run_dir, "policy", tmp_path / "policy")
    exported = eval_metrics(run_dir, driver, tmp_path / driver)
    # The model file as the policy's metrics name it (it said recurrent_ppo/model.zip).
    assert exported["driver"] == f"{policy['driver']} as {driver}"
    assert policy["driver"] == str(run_dir / "model.zip")
    assert exported["episodes"] == policy["episodes"] == 3
    for ours, theirs in zip(exported["tracks"], policy["tracks"], strict=True):
        assert ours["track_seed"] == theirs["track_seed"]
        assert ours["length"] == theirs["length"]
        # 40 steps are too few for actions differing by ~1e-7 to part the cars' paths.
        assert ours["progress"] == pytest.approx(theirs["progress"], abs=1e-4)
        assert ours["episode_return"] == pytest.approx(theirs["episode_return"], abs=1e-2)


def test_an_unknown_driver_is_refused(trained_runs, tmp_path):
    with pytest.raises(
        ConfigError, match=r"driver='lua'; must be one of policy, scripted, luau, onnx"
    ):
        eval_metrics(trained_runs["ppo"], "lua", tmp_path)

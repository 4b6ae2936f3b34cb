"""Evaluation helpers: metrics, model selection order, checkpoint lookup."""

import json
import math

import pytest

from racing_rl.errors import CheckpointError
from racing_rl.evaluate import EpisodeResult, checkpoint_paths, summarize


def episode(finished: bool, lap_time: float = math.nan, crashed: bool = False) -> EpisodeResult:
    return EpisodeResult(
        track_seed=1,
        finished=finished,
        crashed=crashed,
        lap_time=lap_time,
        progress=1.0 if finished else 0.4,
        mean_speed=20.0,
        episode_return=100.0,
        length=300,
    )


def test_summarize_averages_lap_times_over_completed_laps_only():
    metrics = summarize([episode(True, 20.0), episode(True, 22.0), episode(False, crashed=True)])
    assert metrics["lap_completion_rate"] == pytest.approx(2 / 3)
    assert metrics["mean_lap_time_s"] == pytest.approx(21.0)
    assert metrics["best_lap_time_s"] == pytest.approx(20.0)
    assert metrics["crash_rate"] == pytest.approx(1 / 3)
    assert metrics["mean_progress"] == pytest.approx(0.8)


def test_summarize_without_any_lap_reports_nan_lap_times():
    metrics = summarize([episode(False, crashed=True)])
    assert metrics["lap_completion_rate"] == 0.0
    assert math.isnan(metrics["mean_lap_time_s"]) and math.isnan(metrics["best_lap_time_s"])


def test_checkpoint_paths(tmp_path):
    (tmp_path / "best").mkdir()
    for name in ["model.zip", "best/model.zip"]:
        (tmp_path / name).touch()
    for kind, steps in [("ppo", 1000), ("ppo", 20000), ("interrupted", 3000)]:
        directory = tmp_path / "checkpoints" / f"{kind}_{steps}_steps"
        directory.mkdir(parents=True)
        (directory / "model.zip").touch()
        (directory / "checkpoint.json").write_text(json.dumps({"timesteps": steps, "kind": kind}))
    # A save that died half-way is never a candidate.
    (tmp_path / "checkpoints" / ".ppo_40000_steps.partial").mkdir()
    assert checkpoint_paths(tmp_path, "final") == (
        tmp_path / "model.zip",
        tmp_path / "vecnormalize.pkl",
    )
    assert checkpoint_paths(tmp_path, "best")[1] == tmp_path / "best" / "vecnormalize.pkl"
    # latest is by step count, not by name order
    model, stats = checkpoint_paths(tmp_path, "latest")
    assert model == tmp_path / "checkpoints" / "ppo_20000_steps" / "model.zip"
    assert stats == model.with_name("vecnormalize.pkl")
    directory = tmp_path / "checkpoints" / "interrupted_3000_steps"
    assert checkpoint_paths(tmp_path, str(directory))[0] == directory / "model.zip"
    assert checkpoint_paths(tmp_path, str(directory / "model.zip"))[0] == directory / "model.zip"


@pytest.mark.parametrize("checkpoint", ["final", "best", "latest", "nope.zip"])
def test_missing_checkpoints_raise_a_clear_error(tmp_path, checkpoint):
    with pytest.raises(CheckpointError, match=r"(?i)checkpoint"):
        checkpoint_paths(tmp_path, checkpoint)

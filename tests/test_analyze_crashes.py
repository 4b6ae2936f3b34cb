"""scripts/analyze_crashes.py: classifying failures from replays, and the script on a tiny run."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from types import ModuleType

import numpy as np
import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from runs import SCRIPTS, load_script, strict_json

from racing_rl.config import default_backend
from racing_rl.evaluation.races import run_races
from racing_rl.replay import Replay
from racing_rl.sim.car import CarConfig
from racing_rl.vec import make_parallel_envs

CAR = CarConfig()


@pytest.fixture(scope="module")
def crashes() -> ModuleType:
    return load_script("analyze_crashes")


class Constant:
    """A driver that holds one action: throttle, steering, nitro."""

    run = "test"

    def __init__(self, label: str, action: tuple[float, float, float]) -> None:
        self.label = label
        self.action = np.array(action)

    def reset(self, n_tracks: int) -> None:
        pass

    def act(self, observations, worlds, car):
        return np.tile(self.action, (len(worlds), 1))


def race(drivers: list[Constant], seed: int = 3, spawn: str = "line") -> Replay:
    """One recorded 1-lap race of ``drivers`` on track ``seed``, default settings."""
    backend = default_backend("pygame")
    episode = {"spawn": spawn, "laps": 1, "max_steps": 600}
    envs = make_parallel_envs(backend, 1, len(drivers), [[seed]], episode)
    (result,) = run_races(envs, drivers, record=True, meta={"laps": 1})
    return result.replay


@pytest.fixture(scope="module")
def straight() -> Replay:
    """Full throttle, no steering: off the track on the outside of the first bend."""
    return race([Constant("straight", (1.0, 0.0, 0.0))])


def test_driving_straight_into_a_bend_is_a_wall_crash_on_its_outside(crashes, straight):
    failure = crashes.classify(straight, 0, CAR)
    assert failure is not None and failure.cause == "wall"
    assert failure.side == "outside" and failure.bend in ("left", "right")
    step = int(np.flatnonzero(straight.terminated[:, 0])[0])
    assert failure.time_s == pytest.approx(straight.time[step + 1])
    assert failure.speed_mps == pytest.approx(straight.speed[step + 1, 0]) and failure.speed_mps > 5
    # Off the track on the side away from the bend's centre: the lateral offset has the
    # opposite sign of the bend's curvature and exceeds half the width less the car's radius.
    assert abs(failure.lateral_m) > straight.track.width / 2 - straight.car_width / 2 - 0.5
    assert (failure.lateral_m > 0) == (failure.bend == "right")
    assert failure.throttle == 1.0 and failure.steering == 0.0 and failure.full_lock == 0.0
    assert failure.min_ray_m <= failure.front_ray_before_m
    assert len(failure.rays_before_m) == len(straight.ray_angles)


@pytest.mark.parametrize("angles", [np.linspace(-0.7, 0.7, 11), np.r_[0.0, 0.5, 3.14, -0.5]])
def test_the_front_ray_is_the_one_straight_ahead(crashes, straight, angles):
    """It took the middle two of the rays' order: with 11 rays the one at 0 and one
    beside it; with the game car's layout the one behind."""
    rays = np.broadcast_to(
        np.arange(len(angles), dtype=np.float32), (*straight.rays.shape[:2], len(angles))
    )
    replay = replace(straight, ray_angles=angles, rays=rays)
    failure = crashes.classify(replay, 0, CAR)
    assert failure.front_ray_before_m == float(np.argmin(np.abs(angles)))


def test_the_same_crash_on_an_obstacle_or_another_car_is_classified_as_such(crashes, straight):
    step = int(np.flatnonzero(straight.terminated[:, 0])[0])
    where = straight.position[step + 1, 0]
    track = straight.track
    on_it = replace(track, obstacles=np.array([[*where, 2.5]]), obstacle_index=np.array([0]))
    assert crashes.classify(replace(straight, track=on_it), 0, CAR).cause == "obstacle"

    # A second car, still racing, touching the first where it crashed.
    two = {
        name: np.concatenate([value, value], axis=1)
        for name in ("position", "speed", "progress", "laps", "active", "rays", "actions")
        for value in [getattr(straight, name)]
    }
    two["position"][step + 1, 1] = where + np.array([straight.car_width * 0.9, 0.0])
    two.update(
        terminated=np.concatenate([straight.terminated, np.zeros_like(straight.terminated)], 1),
        truncated=np.concatenate([straight.truncated, np.zeros_like(straight.truncated)], 1),
        labels=("straight", "other"),
    )
    failure = crashes.classify(replace(straight, **two), 0, CAR)
    assert (failure.cause, failure.other_car) == ("car", "other")
    # Where the other car was, seen from the crashed one: along its heading, behind it,
    # or across it.
    heading = np.array(
        [np.cos(straight.heading[step + 1, 0]), np.sin(straight.heading[step + 1, 0])]
    )
    across = np.array([-heading[1], heading[0]])
    for offset, seen in ((heading, "ahead"), (-heading, "behind"), (across, "beside")):
        two["position"][step + 1, 1] = where + offset * straight.car_width * 0.9
        failure = crashes.classify(replace(straight, **two), 0, CAR)
        assert (failure.cause, failure.other_was) == ("car", seen)


def test_a_car_that_stands_still_is_stopped_and_a_finisher_is_no_failure(crashes):
    stopped = race([Constant("parked", (0.0, 0.0, 0.0))])
    failure = crashes.classify(stopped, 0, CAR)
    assert failure is not None and failure.cause == "stopped" and failure.standing_start
    assert failure.distance_m == pytest.approx(0.0, abs=1e-6) and failure.side == ""

    finished = replace(stopped, terminated=np.zeros_like(stopped.terminated))
    finished.laps[-1, 0] = 1  # the replay's own array: a copy of the race's
    assert crashes.classify(finished, 0, CAR) is None


def test_analyze_counts_every_car_and_compares_failed_with_clean_tracks(crashes, straight):
    clean = replace(straight, terminated=np.zeros_like(straight.terminated))
    clean.laps[-1, 0] = 1
    result = crashes.analyze([straight, clean], CAR)
    summary = result["summary"]
    assert summary["cars"] == 2 and summary["finished"] == 1 and summary["failures"] == 1
    assert summary["by_cause"] == {"wall": 1} and summary["by_side"] == {"outside": 1}
    assert summary["tracks_with_failure"]["tracks"] == summary["tracks_without"]["tracks"] == 1
    assert [f["cause"] for f in result["failures"]] == ["wall"]
    assert "| track | car | cause |" in crashes.markdown(crashes.rows(result["failures"]))


def test_the_script_evaluates_a_run_with_replays_and_ends_with_one_json_line(
    crashes, tiny_runs, tmp_path, monkeypatch, capfd
):
    run_dir = tiny_runs[0]
    out = tmp_path / "crashes"
    options = ["--checkpoint", "final", "--seeds", "3000000", "3000001", "--out", str(out)]
    monkeypatch.setattr(sys, "argv", ["analyze_crashes.py", str(run_dir), *options])
    crashes.main()  # in this process; the evaluation is a racing-rl eval subprocess
    stdout = capfd.readouterr().out
    lines = stdout.strip().splitlines()
    report = strict_json(lines[-1])
    assert sorted(p.name for p in (out / "replays").iterdir()) == [
        "track_3000000.npz",
        "track_3000001.npz",
    ]
    summary = report["summary"]
    assert summary["cars"] == 2 and summary["finished"] + summary["failures"] == 2
    assert len(report["failures"]) == summary["failures"]
    assert "cars finished / raced" in stdout
    metrics = strict_json((out / "metrics.json").read_text())
    assert metrics["episodes"] == 2 and metrics["difficulty"] == "default"
    # The analysis of the recorded replays agrees with the evaluation's own figures.
    assert summary["finished"] == round(metrics["lap_completion_rate"] * 2)
    crashed = sum(f["cause"] != "stopped" for f in report["failures"])
    assert crashed == round(metrics["crash_rate"] * 2)

    # --replays reads the same files again, without evaluating.
    replays = crashes.load_replays(out / "replays")
    assert crashes.analyze(replays, CAR)["failures"] == report["failures"]


@pytest.mark.parametrize(
    ("options", "says"),
    [
        (["--seeds", "5", "-1"], "error: --seeds holds -1; a track seed is an integer >= 0."),
        (
            ["--seeds", *map(str, range(10_001))],
            "error: --seeds has 10,001 tracks; eval races them all at once, one environment "
            "each, at most 10,000.",
        ),
        # What only eval can tell: its own line, the script adds none.
        (["--difficulty", "nope"], "difficulty=nope: no such option; difficulty is one of "),
    ],
    ids=["negative", "too many", "eval's refusal"],
)
def test_seeds_eval_would_refuse_are_refused_in_one_line(tiny_runs, tmp_path, options, says):
    """A seed eval refuses (and any refusal of eval's) printed three lines: the eval command,
    eval's line, and "<the command> failed with exit code 1". The script refuses such
    --seeds itself (argparse, exit 2), before eval starts."""
    out = tmp_path / "crashes"
    command = [sys.executable, str(SCRIPTS / "analyze_crashes.py"), str(tiny_runs[0])]
    command += ["--checkpoint", "final", "--out", str(out), *options]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    *usage, line = result.stderr.splitlines()
    if options[0] == "--seeds":
        assert line == f"analyze_crashes.py: {says}" and usage[0].startswith("usage: ")
    else:
        assert usage == [] and line.startswith(f"racing-rl eval: {says}"), result.stderr
    assert not out.exists()


def test_a_sweep_job_s_run_dir_reaches_eval_as_that_path(crashes, tmp_path, monkeypatch):
    # A sweep job's directory (0_seed=0,...) made racing-rl eval refuse its run_dir.
    job = tmp_path / "0_seed=0,total_timesteps=2000"
    commands = []

    def run(command, **kwargs):
        commands.append(command)
        return subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(subprocess, "run", run)
    crashes.record(job, job / "eval" / "crashes", [5], ["checkpoint=best"])
    (command,) = commands
    assert command[3] == "eval"
    overrides = OverridesParser.create().parse_overrides(command[4:])
    values = {o.key_or_group: o.value() for o in overrides}
    assert values["run_dir"] == str(job) and values["out_dir"] == str(job / "eval" / "crashes")

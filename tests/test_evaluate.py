"""Evaluation: metrics, checkpoint lookup, recorded evaluations and races through the CLI."""

import functools
import io
import json
import logging
import math
import re
import shutil
import signal
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import tqdm
from hydra import compose
from omegaconf import OmegaConf
from runs import game_run_copy, racing_rl, racing_rl_patched, start_racing_rl, strict_json

from racing_rl import config_dir
from racing_rl.checkpoints.layout import resolve_model
from racing_rl.config import backend_config, default_backend, initialize, with_difficulty
from racing_rl.errors import CheckpointError, ConfigError
from racing_rl.evaluation.command import (
    check_runs,
    evaluate,
    race_backend,
    race_episode,
    unique_labels,
)
from racing_rl.evaluation.results import EpisodeResult, lap_figures, summarize
from racing_rl.replay import load_replay


def episode(finished: bool, *lap_times: float, crashed: bool = False) -> EpisodeResult:
    info = {"finished": finished, "crashed": crashed, "mean_speed": 20.0}
    info["progress"] = max(len(lap_times), 1) if finished else len(lap_times) + 0.4
    return EpisodeResult.from_info(1, info, lap_times, episode_return=100.0, length=300)


def test_summarize_averages_lap_times_over_completed_laps_only():
    metrics = summarize([episode(True, 20.0), episode(True, 22.0), episode(False, crashed=True)])
    assert metrics["lap_completion_rate"] == pytest.approx(2 / 3)
    assert metrics["mean_lap_time_s"] == pytest.approx(21.0)
    assert metrics["best_lap_time_s"] == pytest.approx(20.0)
    assert metrics["crash_rate"] == pytest.approx(1 / 3)
    assert metrics["mean_progress"] == pytest.approx(0.8)


def test_summarize_leaves_out_the_episodes_a_game_lost():
    # A reconnection cut the episode: it counted as a lap not completed, its return too.
    lost = EpisodeResult.from_info(1, {"interrupted": True, "finished": False}, [], 52.5, 1231)
    metrics = summarize([episode(True, 20.0), lost])
    assert (metrics["episodes"], metrics["interrupted"]) == (1, 1)
    assert (metrics["lap_completion_rate"], metrics["mean_return"]) == (1.0, 100.0)
    assert "interrupted" not in summarize([episode(True, 20.0)])
    nothing = summarize([lost])
    assert nothing["episodes"] == 0 and math.isnan(nothing["lap_completion_rate"])
    assert math.isnan(nothing["mean_return"]) and math.isnan(nothing["crash_rate"])


def test_multi_lap_episodes_count_every_lap_of_the_finished_ones():
    """laps=3: an episode's lap_time is its mean lap, the summary's mean and best are over
    every lap of the finished episodes (not their first, standing-start, laps alone); a
    car that crashed in its third lap adds no lap time."""
    three = episode(True, 22.0, 19.0, 19.5)
    assert three.lap_time == pytest.approx(60.5 / 3) and three.lap_times == (22.0, 19.0, 19.5)
    crashed = episode(False, 21.0, 18.0, crashed=True)
    assert math.isnan(crashed.lap_time) and crashed.lap_times == (21.0, 18.0)
    metrics = summarize([three, episode(True, 23.0, 20.0, 20.0), crashed])
    assert metrics["mean_lap_time_s"] == pytest.approx(np.mean([22, 19, 19.5, 23, 20, 20]))
    assert metrics["best_lap_time_s"] == 19.0
    assert metrics["mean_progress"] == pytest.approx((3 + 3 + 2.4) / 3)


def test_summarize_averages_the_figures_the_episodes_report():
    # A game's interrupted episode reports no progress or speed: one made both means NaN.
    interrupted = EpisodeResult.from_info(1, {"finished": False}, (), 0.0, 10)
    metrics = summarize([episode(True, 20.0), interrupted])
    assert metrics["mean_progress"] == 1.0 and metrics["mean_speed_mps"] == 20.0
    assert metrics["lap_completion_rate"] == 0.5 and metrics["episodes"] == 2
    assert math.isnan(summarize([interrupted])["mean_progress"])


def test_summarize_leaves_lap_completion_unmeasured_where_no_episode_reports_progress():
    # A game without lap info: it said a lap completion of 0.0, as if measured.
    unmeasured = EpisodeResult.from_info(1, {"crashed": True}, (), -20.0, 40)
    assert math.isnan(summarize([unmeasured, unmeasured])["lap_completion_rate"])
    assert summarize([episode(False, crashed=True), unmeasured])["lap_completion_rate"] == 0.0


def test_summarize_without_any_lap_reports_nan_lap_times():
    metrics = summarize([episode(False, crashed=True)])
    assert metrics["lap_completion_rate"] == 0.0
    assert math.isnan(metrics["mean_lap_time_s"]) and math.isnan(metrics["best_lap_time_s"])
    # The logs leave the NaN out ("mean lap nan s" said nothing).
    assert lap_figures(metrics) == "lap completion 0%"
    assert lap_figures({**metrics, "mean_lap_time_s": None}) == "lap completion 0%"  # read back
    laps = summarize([episode(True, 20.0), episode(True, 22.0), episode(False, crashed=True)])
    assert lap_figures(laps) == "lap completion 67%, mean lap 21.00 s"


def test_resolve_model(tmp_path):
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
    assert resolve_model(tmp_path, "final") == tmp_path / "model.zip"
    assert resolve_model(tmp_path, "best") == tmp_path / "best" / "model.zip"
    # latest is by step count, not by name order
    model = resolve_model(tmp_path, "latest")
    assert model == tmp_path / "checkpoints" / "ppo_20000_steps" / "model.zip"
    directory = tmp_path / "checkpoints" / "interrupted_3000_steps"
    assert resolve_model(tmp_path, str(directory)) == directory / "model.zip"
    assert resolve_model(tmp_path, str(directory / "model.zip")) == directory / "model.zip"
    # A checkpoint's name is the run's (it was looked up in the working directory).
    assert resolve_model(tmp_path, "interrupted_3000_steps") == directory / "model.zip"


def saved_checkpoint(run_dir: Path, kind: str, steps: int) -> None:
    """A checkpoint directory as find_checkpoints reads it (an empty model.zip)."""
    directory = run_dir / "checkpoints" / f"{kind}_{steps}_steps"
    directory.mkdir(parents=True)
    (directory / "model.zip").touch()
    (directory / "checkpoint.json").write_text(json.dumps({"timesteps": steps, "kind": kind}))


def test_a_missing_checkpoint_names_those_the_run_has(tmp_path):
    """A run with validation.every=0 has no best/: eval's default checkpoint=best said only
    that best/model.zip does not exist."""

    def refused(checkpoint: str, says: str) -> None:
        with pytest.raises(CheckpointError, match=says):
            resolve_model(tmp_path, checkpoint)

    (tmp_path / "model.zip").touch()
    saved_checkpoint(tmp_path, "ppo", 1000)
    refused(
        "best",
        r"does not exist \(validation writes it: the run had validation.every=0, or "
        r"stopped first\); this run has checkpoint=final\|latest\|ppo_1000_steps\. ",
    )
    # A name is the run's checkpoint's.
    refused("ppo_10_steps", f"{tmp_path}/checkpoints/ppo_10_steps does not")
    # The three newest are named; the others are counted, not left unsaid.
    for steps in (2000, 3000, 4000, 5000):
        saved_checkpoint(tmp_path, "ppo", steps)
    refused("best", r"latest\|ppo_5000_steps\|ppo_4000_steps\|ppo_3000_steps; 2 older under ")
    # A kill between the final checkpoint and the run directory's final files: it said only
    # that model.zip does not exist.
    (tmp_path / "model.zip").unlink()
    saved_checkpoint(tmp_path, "final", 6000)
    cut = r"final_6000_steps, the same model: racing-rl train resume=<this run dir> finishes it\)"
    refused("final", r"does not exist \(the run's final save was cut short after " + cut)


@pytest.mark.parametrize(
    ("checkpoint", "says"),
    [
        ("final", r"^Checkpoint 'final' not found: .*/model\.zip does not exist\. checkpoint= t"),
        ("best", r"^Checkpoint 'best' not found: .*/best/model\.zip does not exist \(validation"),
        ("latest", r" has no complete checkpoint under checkpoints/: a run saves one every"),
        ("nope.zip", r"^Checkpoint 'nope\.zip' not found: nope\.zip does not exist\. checkpoint="),
    ],
)
def test_missing_checkpoints_raise_a_clear_error(tmp_path, checkpoint, says):
    # (?i)checkpoint matched tmp_path's own name: any message with the path passed.
    with pytest.raises(CheckpointError, match=says):
        resolve_model(tmp_path, checkpoint)


def assert_metrics_agree_with_replays(metrics: dict) -> None:
    """Each track's row in metrics.json tells what its recorded replay shows."""
    assert len(metrics["replays"]) == len(metrics["tracks"]) == metrics["episodes"]
    for row, path in zip(metrics["tracks"], metrics["replays"], strict=True):
        replay = load_replay(path)
        assert replay.meta["track_seed"] == row["track_seed"] == replay.track.seed
        laps = replay.lap_times(0)
        assert row["lap_times"] == laps
        assert row["finished"] == (len(laps) == 1)
        assert replay.truncated[-1, 0] or replay.terminated[-1, 0]  # the episode's end
        assert not replay.active[-1, 0] and replay.active[:-1, 0].all()
        if row["finished"]:
            assert row["lap_time"] == laps[0]
        else:
            assert row["lap_time"] is None  # NaN, written as JSON's null
        assert row["crashed"] == bool(replay.terminated[-1, 0])
        assert row["length"] == replay.n_steps
        assert row["progress"] == replay.progress[-1, 0]
        assert row["episode_return"] == pytest.approx(float(replay.rewards[:, 0].sum()), rel=1e-5)
    finished = [t for t in metrics["tracks"] if t["finished"]]
    assert metrics["lap_completion_rate"] == len(finished) / metrics["episodes"]
    if finished:
        assert metrics["mean_lap_time_s"] == pytest.approx(
            np.mean([t["lap_time"] for t in finished])
        )


def test_eval_records_replays_that_agree_with_metrics(tiny_runs, tmp_path):
    run_dir = tiny_runs[0]
    # The tiny PPO run (it completes no lap after 2048 steps), then the scripted driver on
    # the same run's tracks, which laps: both through racing-rl eval record=true.
    for driver, out in (("policy", tmp_path / "ppo"), ("scripted", tmp_path / "scripted")):
        result = racing_rl(
            "eval",
            f"run_dir={run_dir}",
            "checkpoint=final",
            f"driver={driver}",
            "seeds=[5,6]",
            "max_steps=600",
            "record=true",
            f"out_dir={out}",
            cwd=tmp_path,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        metrics = strict_json((out / "metrics.json").read_text())
        assert [Path(p).name for p in metrics["replays"]] == ["track_5.npz", "track_6.npz"]
        assert str(out / "replays") in result.stdout
        # How each episode ended, in one column (a car out of time read "False False").
        head, *rows = result.stdout.splitlines()[:3]
        assert head.split()[:2] == ["track_seed", "ending"]
        endings = [
            "finished" if t["finished"] else "crash" if t["crashed"] else "DNF"
            for t in metrics["tracks"]
        ]
        assert [row.split()[1] for row in rows] == endings
        # A figure of nothing (null in metrics.json), such as the lap time of a car that did
        # not finish, reads "-", not "nan".
        unfinished = [
            row.split()[2] for row, e in zip(rows, endings, strict=True) if e != "finished"
        ]
        assert unfinished == ["-"] * len(unfinished) and "nan" not in result.stdout
        assert driver == "scripted" or unfinished
        # Seeds given explicitly are no split's: neither the summary nor the file says test.
        assert "on 2 tracks (seeds 5, 6)," in result.stdout and "test track" not in result.stdout
        assert metrics["split"] is None and "-0.000" not in result.stdout
        assert_metrics_agree_with_replays(metrics)
        # What was measured, to measure it again (the file held only the figures).
        settings = metrics["settings"]
        assert (
            settings["command"].startswith("racing-rl eval run_dir=")
            and "seeds=[5,6]" in (settings["command"])
        )
        assert (settings["laps"], settings["max_steps"], settings["checkpoint"]) == (
            1,
            600,
            "final",
        )
        assert {"git", "packages"} <= metrics["environment"].keys()
    assert metrics["lap_completion_rate"] == 1.0  # the scripted driver's laps were checked

    # Recorded again into the same folder on one track: only its replay remains.
    again = [f"run_dir={run_dir}", "driver=scripted", "seeds=[6]", "max_steps=600"]
    result = racing_rl("eval", *again, "record=true", f"out_dir={out}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(p.name for p in (out / "replays").iterdir()) == ["track_6.npz"]
    assert "removed 1 replays of an earlier eval" in result.stderr
    # Without record=true the earlier replays stay, and the log says they are not this one's.
    result = racing_rl("eval", *again, f"out_dir={out}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(p.name for p in (out / "replays").iterdir()) == ["track_6.npz"]
    assert "holds 1 replays of an earlier eval, not of this one" in result.stderr
    # Its log replaced the one before, as its metrics.json did.
    log = (out / "eval.log").read_text()
    assert "holds 1 replays of an earlier eval" in log and "removed 1 replays" not in log

    # A seed given twice: two replays (the second overwrote the first).
    twice = [f"run_dir={run_dir}", "driver=scripted", "seeds=[6,6]", "max_steps=600"]
    result = racing_rl("eval", *twice, "record=true", f"out_dir={out}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    names = ["track_6.npz", "track_6_2.npz"]
    assert sorted(p.name for p in (out / "replays").iterdir()) == names
    metrics = strict_json((out / "metrics.json").read_text())
    assert [Path(p).name for p in metrics["replays"]] == names

    # Ctrl-C before the races end writes no metrics: the log says whose metrics.json stays.
    written = (out / "metrics.json").read_bytes()
    cut = (
        "import racing_rl.evaluation.command as command\n"
        "def interrupted(*args, **kwargs):\n"
        "    raise KeyboardInterrupt\n"
        "command.run_races = interrupted\n"
    )
    result = racing_rl_patched(cut, "eval", *again, f"out_dir={out}", cwd=tmp_path)
    assert result.returncode == 130, result.stderr[-3000:]
    assert (out / "metrics.json").read_bytes() == written
    said = f"{out / 'metrics.json'} is an earlier eval's, written 20"
    assert said in result.stderr and "seeds=[6,6]" in result.stderr
    assert "before its races ended: nothing written" in (out / "eval.log").read_text()


def test_a_three_car_race_leaderboard_matches_the_replays(tiny_runs, tmp_path):
    a, b = tiny_runs
    result = racing_rl(
        "eval",
        f"run_dir=[{a},{b},scripted]",
        "checkpoint=final",
        "seeds=[5,6]",
        "laps=2",
        "max_steps=900",
        "record=true",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = a / "eval" / "race"
    metrics = strict_json((out / "metrics.json").read_text())
    assert [d["label"] for d in metrics["drivers"]] == [a.name, b.name, "scripted"]
    # Which model each car drove (a name could be resolved elsewhere than the run).
    assert [d["checkpoint"] for d in metrics["drivers"][:2]] == [
        str(run / "model.zip") for run in (a, b)
    ]
    for track, path in zip(metrics["tracks"], metrics["replays"], strict=True):
        replay = load_replay(path)
        assert replay.labels == (a.name, b.name, "scripted") and replay.n_cars == 3
        laps = {label: replay.lap_times(d) for d, label in enumerate(replay.labels)}
        finishers = [label for label in laps if len(laps[label]) == 2]
        others = [label for label in laps if label not in finishers]
        # Finishers by the sum of their recorded laps, then the rest by final progress.
        progress = {label: replay.progress[-1, d] for d, label in enumerate(replay.labels)}
        expected = sorted(finishers, key=lambda label: sum(laps[label])) + sorted(
            others, key=lambda label: -progress[label]
        )
        board = track["leaderboard"]
        assert [row["label"] for row in board] == expected
        assert [row["position"] for row in board] == [1, 2, 3]
        for row in board:
            assert row["lap_times_s"] == laps[row["label"]]
        assert "scripted" in finishers
        assert str(track["track_seed"]) in result.stdout
    assert "wins" in result.stdout and "mean_position" in result.stdout
    assert {row["label"] for row in metrics["standings"]} == {a.name, b.name, "scripted"}


def test_a_race_on_a_grid_rotates_its_slots_per_track_unless_told_not_to(tiny_runs, tmp_path):
    """With car collisions the cars start two abreast. Pole is worth places, so by default
    car i starts from slot (i + track seed) mod n; ``rotate_grid=false`` keeps the listed
    order on every track. The replays' first frames show the slots."""
    a, _ = tiny_runs
    race = [f"run_dir=[{a},scripted,scripted]", "checkpoint=final", "seeds=[5,6]"]
    race += ["max_steps=3", "+backend.rules.car_collisions=true", "record=true"]
    listed = [a.name, "scripted", "scripted#2"]
    for rotate, grids in (
        ("true", [["scripted", "scripted#2", a.name], listed]),  # slots (i + 5) % 3, (i + 6) % 3
        ("false", [listed, listed]),
    ):
        out = tmp_path / rotate
        result = racing_rl("eval", *race, f"rotate_grid={rotate}", f"out_dir={out}", cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
        metrics = strict_json((out / "metrics.json").read_text())
        assert metrics["settings"]["spawn"] == "grid"
        assert metrics["settings"]["rotate_grid"] is (rotate == "true")
        starts = [load_replay(path) for path in metrics["replays"]]
        # The cars from pole backwards, as the replays' first frames place them, and as
        # each track's "grid" says.
        assert [[r.labels[d] for d in np.argsort(-r.progress[0])] for r in starts] == grids
        assert [track["grid"] for track in metrics["tracks"]] == grids


def test_seeds_that_share_the_rotated_grid_out_unevenly_are_warned_of(tiny_runs, tmp_path, caplog):
    """The grid rotates by seed value: seeds=[10,12] left car 0 on pole on both tracks of
    a two-car race, without a word."""
    race = [f"run_dir=[{tiny_runs[0]},scripted]", "checkpoint=final", "max_steps=3"]
    race += ["+backend.rules.car_collisions=true", f"out_dir={tmp_path}"]
    for seeds, warned in (("[10,12]", True), ("[10,11]", False)):
        caplog.clear()
        with initialize():
            evaluate(compose("eval", overrides=[*race, f"seeds={seeds}"]))
        assert ("put the cars on pole 2/0 times" in caplog.text) is warned, seeds


def test_a_race_s_grid_rotation_is_not_sent_to_a_game():
    """A game spawns its cars itself: its episode config has no rotate_grid (a ConfigError
    had every eval of a game with car collisions fail)."""
    game = OmegaConf.merge(default_backend("roblox"), {"update_collisions": True})
    sim = OmegaConf.merge(default_backend("pygame"), {"rules": {"car_collisions": True}})
    assert race_episode(game, 3, 900, True) == {"spawn": "grid", "laps": 3, "max_steps": 900}
    backend_config(game, race_episode(game, 3, 900, True))  # accepted
    assert backend_config(sim, race_episode(sim, 3, 900, True)).episode.rotate_grid
    assert race_episode(default_backend("pygame"), 1, 90, True)["spawn"] == "line"


@pytest.mark.slow
def test_eval_of_a_ppo_run_that_laps_agrees_with_its_replays(tmp_path):
    """As the test above, with a PPO run trained long enough to complete laps (~1 min)."""
    run_dir = tmp_path / "run"
    train = ["total_timesteps=150000", "progress_bar=false", "validation.every=0"]
    result = racing_rl("train", *train, f"hydra.run.dir={run_dir}", cwd=tmp_path, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    result = racing_rl(
        "eval", f"run_dir={run_dir}", "checkpoint=final", "record=true", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = strict_json((run_dir / "eval" / "metrics.json").read_text())
    # Enough laps for the replays' lap events to be checked: 0.45 on this machine on
    # 2026-12-05 (at this commit and stop 45's), under the 0.5 it asked for.
    assert metrics["episodes"] == 20 and metrics["lap_completion_rate"] >= 0.25
    assert_metrics_agree_with_replays(metrics)


def test_a_difficulty_level_sets_the_same_tracks_and_rules_whatever_the_run_trained_on():
    defaults = default_backend("pygame")
    hard_file = OmegaConf.load(config_dir() / "difficulty" / "hard.yaml")
    hard = with_difficulty(defaults, "hard")
    assert hard == OmegaConf.merge(defaults, hard_file)  # what `train difficulty=hard` composes
    assert with_difficulty(hard, "default") == defaults  # hard undone, key by key
    # A run with its own settings keeps those no difficulty file governs.
    own = OmegaConf.merge(hard, {"track": {"n_obstacles": 0, "base_radius": 80.0}})
    assert with_difficulty(own, "hard") == OmegaConf.merge(hard, {"track": {"base_radius": 80.0}})
    assert with_difficulty(own, "default").track.n_obstacles == defaults.track.n_obstacles
    with pytest.raises(ConfigError, match="available: default, hard"):
        with_difficulty(defaults, "brutal")
    with pytest.raises(ConfigError, match="roblox"):
        with_difficulty(OmegaConf.create({"name": "roblox"}), "hard")


def test_the_runs_own_backend_chosen_whole_keeps_the_runs_settings():
    run = default_backend("pygame")
    run.sensors.n_rays, run.track.n_obstacles = 5, 7
    # backend=pygame backend.rules.car_collisions=true, as Hydra composes it: the option's
    # defaults raced instead of the run's (10 rays: its policy's observations no longer fit).
    given = default_backend("pygame")
    given.rules.car_collisions = True
    raced = race_backend(OmegaConf.create({"backend": given}), run, None)
    assert (raced.sensors.n_rays, raced.track.n_obstacles) == (5, 7)
    assert raced.rules.car_collisions
    assert race_backend(OmegaConf.create({"backend": given}), run, "hard").track.n_obstacles == 6


def test_eval_difficulty_default_undoes_a_run_trained_on_hard(tiny_runs, tmp_path):
    """`racing-rl eval run_dir=<hard run> difficulty=default` races on the default tracks."""
    hard_run = tmp_path / "hard_run"
    shutil.copytree(tiny_runs[0], hard_run)
    config = OmegaConf.load(hard_run / ".hydra" / "config.yaml")
    config.backend = with_difficulty(config.backend, "hard")  # as `train difficulty=hard` has it
    OmegaConf.save(config, hard_run / ".hydra" / "config.yaml")

    def lap_times(run: Path, *difficulty: str) -> list[float]:
        out = tmp_path / f"{run.name}_{difficulty[0].split('=')[1] if difficulty else 'own'}"
        args = ["eval", f"run_dir={run}", "driver=scripted", "seeds=[5,6,7]", "max_steps=600"]
        result = racing_rl(*args, f"out_dir={out}", *difficulty, cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
        return [
            track["lap_time"] for track in strict_json((out / "metrics.json").read_text())["tracks"]
        ]

    default = lap_times(tiny_runs[0])
    assert lap_times(hard_run) != default  # the run's own (hard) tracks
    assert lap_times(hard_run, "difficulty=default") == default
    assert lap_times(tiny_runs[0], "difficulty=hard") == lap_times(hard_run)


def test_eval_of_paths_in_the_home_writes_in_the_home(tiny_runs, tmp_path, monkeypatch):
    """run_dir='~/r' (quoted, as Hydra reads a ~) wrote eval.log and metrics.json to
    ./~/r/eval, a directory named ~ where eval ran; out_dir='~/e' to ./~/e."""
    home, cwd = tmp_path / "home", tmp_path / "cwd"
    home.mkdir()
    cwd.mkdir()
    shutil.copytree(tiny_runs[0], home / "r")  # the shared run keeps no eval/
    monkeypatch.setenv("HOME", str(home))
    for out, where in (([], home / "r" / "eval"), (["out_dir='~/e'"], home / "e")):
        result = racing_rl(
            "eval", "run_dir='~/r'", *out, "checkpoint=final", "seeds=[2000000]", cwd=cwd
        )
        assert result.returncode == 0, result.stderr[-3000:]
        assert (where / "metrics.json").is_file() and (where / "eval.log").is_file()
    assert list(cwd.iterdir()) == []


def test_eval_of_a_missing_checkpoint_leaves_no_eval_dir(tiny_runs, tmp_path):
    run_dir = shutil.copytree(tiny_runs[0], tmp_path / "run")
    shutil.rmtree(run_dir / "eval", ignore_errors=True)
    result = racing_rl("eval", f"run_dir={run_dir}", "checkpoint=nope", cwd=tmp_path)
    assert result.returncode == 1
    assert "Checkpoint 'nope' not found" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (run_dir / "eval").exists()


def eval_config(run_dir: object, **settings: object) -> OmegaConf:
    """An eval config as conf/eval.yaml gives it, with ``run_dir`` and ``settings``."""
    defaults = {"driver": "policy", "checkpoint": "final", "laps": 1, "max_steps": None}
    defaults |= {"split": "test", "rounds": None, "torch_threads": 1, "run_dir": run_dir}
    return OmegaConf.create({**defaults, **settings})


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"laps": 0}, "laps=0; must be >= 1"),
        ({"max_steps": -5}, "max_steps=-5; must be >= 1"),
        ({"rounds": -1}, "rounds=-1; must be >= 1, or 0"),
        ({"torch_threads": 0}, "torch_threads=0; must be an integer >= 1"),
        ({"split": "tests"}, "split='tests'; must be one of the run's track ranges: train, "),
        # 100,000 environments at once filled the memory (7 GB after 45 s, no output).
        ({"split": "train"}, r"split=train has 100,000 tracks .* e.g. seeds=\[0,1,2\]"),
        ({"seeds": list(range(10_001))}, "seeds has 10,001 tracks; .* at most 10,000"),
        # Said by the first track's generator, after eval.log had replaced the earlier one.
        ({"seeds": [5, -1]}, "seeds holds -1; a track seed is an integer >= 0"),
        # seeds=[] drove the split's 20 tracks without a word.
        ({"seeds": []}, r"seeds=\[\] names no track; .* split=test tracks"),
        # Said after the model loaded, of settings the user does not have (fps, size_px).
        ({"render": "human", "fps": -1, "size": [800, 800]}, "fps=-1; must be >= 0"),
        ({"render": "human", "fps": 15, "size": [10, 10]}, r"size=\[10, 10\]; .* 64 to 8192"),
        ({"render": "human", "fps": 15, "size": [80000, 800]}, r"size=\[80000, 800\]; .* 64 to"),
        # Said once the models had loaded, after eval.log had replaced the earlier one.
        (
            {"render": "Human", "fps": 15, "size": [800, 800]},
            "render='Human'; must be human or null",
        ),
        # Accepted, and the races' own episode raced instead (1 lap, not 2).
        ({"backend": {"episode": {"laps": 2}}}, r"episode.laps=2 would be ignored: .* give laps=2"),
        ({"backend": {"episode": {"grid_start_prob": 1.0}}}, r"prob=1.0 would .* leave it out"),
    ],
)
def test_eval_names_the_setting_that_is_out_of_range(tiny_runs, setting, message):
    with pytest.raises(ConfigError, match=message):
        check_runs(eval_config(str(tiny_runs[0]), **setting))


def test_a_window_of_races_in_a_game_is_refused(tiny_runs, tmp_path):
    """render=human with backend=roblox waited for the game, and once it had connected
    ended in an AttributeError (RobloxParallelEnv has no .world to draw)."""
    window = {"render": "human", "fps": 15, "size": [800, 800]}
    refused = r"render=human draws races of the built-in simulator, .* \(backend=roblox\)"
    game = game_run_copy(tiny_runs[0], tmp_path / "game")
    with pytest.raises(ConfigError, match=refused):
        check_runs(eval_config(str(game), **window))
    with initialize():
        roblox = compose("eval", overrides=["backend=roblox"]).backend
    with pytest.raises(ConfigError, match=refused):
        check_runs(eval_config(str(tiny_runs[0]), backend=roblox, **window))
    check_runs(eval_config(str(tiny_runs[0]), **window))  # on the simulator: drawn


def test_eval_laps_0_says_so_and_leaves_no_eval_dir(tiny_runs, tmp_path):
    out = tmp_path / "eval"
    result = racing_rl("eval", f"run_dir={tiny_runs[0]}", "laps=0", f"out_dir={out}", cwd=tmp_path)
    assert result.returncode == 1
    assert "laps=0; must be >= 1" in result.stderr and "max_steps" not in result.stderr
    assert not out.exists()


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_an_output_dir_that_cannot_be_written_is_refused_in_one_line(tiny_runs, tmp_path):
    """Hydra makes eval's out_dir (emulate's outputs/...) and opens its log there before the
    command runs: one it could not make or write (a read-only run's <run dir>/eval, a
    read-only working directory) ended in a traceback of Hydra's OSError or logging's."""
    (tmp_path / "file").write_text("")
    run = [f"run_dir={tiny_runs[0]}", "checkpoint=final", "seeds=[2000000]"]
    for out, why in (
        (tmp_path / "file" / "eval", f"{tmp_path / 'file'} is a file, not a directory"),
        (Path("/proc/eval"), "/proc/eval: No such file or directory"),
    ):
        result = racing_rl("eval", *run, f"out_dir={out}", cwd=tmp_path)
        assert (result.returncode, result.stderr) == (
            1,
            f"racing-rl eval: cannot write into out_dir={out}: {why}; pass "
            "out_dir=<a directory you can write>\n",
        )
    result = racing_rl("emulate", "url=ws://127.0.0.1:1/ws/x", cwd=Path("/proc"))
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("racing-rl emulate: cannot write into hydra.run.dir=outputs/")
    assert result.stderr.endswith(
        "outputs: No such file or directory; pass hydra.run.dir=<a directory you can write>\n"
    )


def test_eval_of_the_scripted_driver_alone_says_so_and_leaves_no_eval_dir(tmp_path):
    # Said by evaluate once Hydra had made ./scripted/eval/ and its eval.log, as a log line.
    result = racing_rl("eval", "run_dir=scripted", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "racing-rl eval: run_dir=[scripted] names no run directory; the tracks and rules "
        "come from the first run's config. Give one: run_dir=<run dir> driver=scripted for "
        "the scripted driver alone, run_dir=[<run dir>,scripted] to race it."
    ]
    assert list(tmp_path.iterdir()) == []


def test_a_race_of_runs_that_observe_differently_says_so(tiny_runs, tmp_path):
    """A race gives every car the first run's sensors: a 16-ray run cannot race a 10-ray
    one, and the message says that, not that a checkpoint lost its run dir."""
    rays16 = shutil.copytree(tiny_runs[1], tmp_path / "rays16")
    config = OmegaConf.load(rays16 / ".hydra" / "config.yaml")
    config.backend.sensors.n_rays = 16
    config.backend.sensors.layout = "roblox_car"
    OmegaConf.save(config, rays16 / ".hydra" / "config.yaml")
    cfg = eval_config([str(tiny_runs[0]), "scripted", str(rays16)])
    with pytest.raises(ConfigError, match="observe differently") as raised:
        check_runs(cfg)
    assert "backend.sensors.layout=fan, " in str(raised.value)
    assert "rays16 with backend.sensors.layout=roblox_car (and 1 more setting(s))" in str(
        raised.value
    )
    check_runs(eval_config([str(tiny_runs[0]), str(tiny_runs[1]), "scripted"]))  # alike: fine

    # Of the same size, but another field of view: it raced, and lost every race.
    wide = shutil.copytree(tiny_runs[1], tmp_path / "wide")
    config = OmegaConf.load(wide / ".hydra" / "config.yaml")
    config.backend.sensors.fov_deg = 180.0
    OmegaConf.save(config, wide / ".hydra" / "config.yaml")
    with pytest.raises(ConfigError, match=r"wide with backend.sensors.fov_deg=180.0\. A race"):
        check_runs(eval_config([str(tiny_runs[0]), str(wide)]))

    # A run trained in a game, of the game's 16 rays: its size is its run.json's. It was
    # let through, and its checkpoint then refused as a run's of other sensors.
    game = game_run_copy(tiny_runs[1], tmp_path / "game")
    leg = {"game": {"observation_size": 19}, "start_timesteps": 0, "end_timesteps": 2048}
    (game / "run.json").write_text(json.dumps({"legs": [leg]}))
    with pytest.raises(ConfigError, match=r"observation_size=13, .*game with backend.observati"):
        check_runs(eval_config([str(tiny_runs[0]), str(game)]))


def test_a_race_refuses_a_checkpoint_path(tiny_runs):
    """checkpoint=<path> made every car of a race drive that one model, each under its
    own run's name (a run without any model won races)."""
    model = tiny_runs[0] / "model.zip"
    race = [str(tiny_runs[0]), str(tiny_runs[1]), "scripted"]
    with pytest.raises(ConfigError, match="is a path, and a race has 2 runs"):
        check_runs(eval_config(race, checkpoint=str(model)))
    check_runs(eval_config([str(tiny_runs[0]), "scripted"], checkpoint=str(model)))  # one run
    check_runs(eval_config(race, checkpoint="final"))


def test_eval_sets_its_torch_threads(tiny_runs, tmp_path):
    """``torch_threads`` (1 by default: more threads wait on a busy machine,
    scripts/bench_eval.py) is what the policies run on."""
    before = torch.get_num_threads()
    threads = before + 1  # not this process's count already, whatever the machine
    overrides = [f"run_dir={tiny_runs[0]}", "checkpoint=final", "seeds=[5]", "max_steps=20"]
    try:
        with initialize():
            cfg = compose(
                "eval", overrides=[*overrides, f"torch_threads={threads}", f"out_dir={tmp_path}"]
            )
        evaluate(cfg)
        assert torch.get_num_threads() == threads
    finally:
        torch.set_num_threads(before)


def test_eval_reads_the_models_recorded_observation_shape_once(tiny_runs, tmp_path, monkeypatch):
    """check_runs read it from the model file, then load_policy_driver read it again before
    it loaded the model, which records it: the driver now checks the loaded model's."""
    from racing_rl.checkpoints import runs

    read = []

    def recorded(algo, path):
        read.append(path)
        return shape(algo, path)

    shape = runs.recorded_observation_shape
    monkeypatch.setattr(runs, "recorded_observation_shape", recorded)
    overrides = [f"run_dir={tiny_runs[0]}", "checkpoint=final", "seeds=[5]", "max_steps=20"]
    with initialize():
        cfg = compose("eval", overrides=[*overrides, f"out_dir={tmp_path}"])
    assert evaluate(cfg)["episodes"] == 1
    assert read == [tiny_runs[0] / "model.zip"]


def test_eval_shows_races_progress_on_a_terminal(tiny_runs, tmp_path, monkeypatch):
    """On a terminal a bar counts the cars done and the steps while the races run (a
    game's races run in real time); off one, nothing is drawn."""

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    overrides = [f"run_dir={tiny_runs[0]}", "driver=scripted", "seeds=[5,6]", "max_steps=300"]
    with initialize():
        cfg = compose("eval", overrides=[*overrides, f"out_dir={tmp_path}"])
    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    # Every refresh, however fast the races.
    monkeypatch.setattr("tqdm.tqdm", functools.partial(tqdm.tqdm, mininterval=0))
    evaluate(cfg)
    bars = terminal.getvalue().replace("\r", "\n").splitlines()
    assert any(re.search(r"races:.*0/2 cars done \[.*step 0/300\]", b) for b in bars), bars
    assert any(re.search(r"races:.*2/2 cars done \[.*step [1-9]\d*/300\]", b) for b in bars), bars
    monkeypatch.setattr("sys.stderr", io.StringIO())
    evaluate(cfg)
    assert "cars done" not in sys.stderr.getvalue()


def test_every_car_gets_its_own_label_even_when_a_run_is_named_like_a_repeat():
    assert unique_labels(["ppo", "sac", "ppo"]) == ["ppo", "sac", "ppo#2"]
    # ppo#2 given by the user: the repeat of ppo is ppo#3 (two cars shared ppo#2).
    assert unique_labels(["ppo", "ppo", "ppo#2"]) == ["ppo", "ppo#3", "ppo#2"]


def test_a_ctrl_c_in_a_round_keeps_the_races_that_had_ended(tiny_runs, tmp_path, monkeypatch):
    """Every track of a round races at once, and a Ctrl-C lost the whole round: minutes of
    racing in a game, and with rounds=0 every figure (no metrics.json). An eval of one
    round, cut short, replaced a whole eval's metrics.json with its biased few and exited
    0; one cut short while writing its replays left them mixed with the earlier eval's."""
    import racing_rl.evaluation.command as command
    from racing_rl.replay import Replay

    overrides = [f"run_dir={tiny_runs[0]}", "driver=scripted", "seeds=[5,6]", "max_steps=900"]
    whole = tmp_path / "whole"
    with initialize():
        once = compose("eval", overrides=[*overrides, "record=true", f"out_dir={whole}"])
    evaluate(once)

    def files() -> dict[str, bytes]:
        return {str(p.relative_to(whole)): p.read_bytes() for p in whole.rglob("*") if p.is_file()}

    before = files()
    assert sorted(before) == ["metrics.json", "replays/track_5.npz", "replays/track_6.npz"]
    real_save = Replay.save

    def save_one_then_stop(replay, path):
        if any(path.parent.iterdir()):
            raise KeyboardInterrupt
        return real_save(replay, path)

    monkeypatch.setattr(Replay, "save", save_one_then_stop)
    with pytest.raises(KeyboardInterrupt):
        evaluate(once)
    assert files() == before
    monkeypatch.undo()

    real = command.run_races

    def interrupted_once_one_track_ends(envs, drivers, record, meta, on_step=None):
        def step() -> None:
            if on_step is not None:
                on_step()
            if sum(not env.agents for env in envs) == 1:  # track 5's race ended, 6's goes on
                raise KeyboardInterrupt

        return real(envs, drivers, record, meta, on_step=step)

    monkeypatch.setattr(command, "run_races", interrupted_once_one_track_ends)
    with pytest.raises(KeyboardInterrupt):
        evaluate(once)
    assert files() == before
    with initialize():
        cfg = compose("eval", overrides=[*overrides, "rounds=0", f"out_dir={tmp_path}"])
    evaluate(cfg)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["episodes"] == 1 and metrics["lap_completion_rate"] == 1.0
    assert [track["track_seed"] for track in metrics["tracks"]] == [5]


def files_in(directory: Path) -> dict[str, bytes | None]:
    """Every file (its bytes) and directory (None) under ``directory``, by relative path."""
    return {
        str(p.relative_to(directory)): p.read_bytes() if p.is_file() else None
        for p in directory.rglob("*")
    }


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_before_any_race_writes_nothing_and_keeps_the_earlier_eval_s_log(
    tiny_runs, tmp_path, sig
):
    """Stopped while it waited for the game to connect (before any episode ran), eval said
    only "interrupted (Ctrl-C)." and had replaced the earlier eval's eval.log, which
    described the metrics.json it left, with its own. Then it said so in two lines, the
    second "interrupted (Ctrl-C)."; and the first eval of a run, stopped so (SIGTERM
    here), left <run>/eval/ with an eval.log, as if an eval had run there. One line now,
    and such a run as it was."""
    game = game_run_copy(tiny_runs[0], tmp_path / "game")
    out = game / "eval"
    shutil.rmtree(out, ignore_errors=True)  # other tests' evals of tiny_runs[0]
    if sig == signal.SIGINT:  # an earlier eval there, which logs (the same races twice)
        earlier = ["driver=scripted", "seeds=[5]", "rounds=2", "max_steps=20"]
        result = racing_rl(
            "eval", f"run_dir={tiny_runs[0]}", *earlier, f"out_dir={out}", cwd=tmp_path
        )
        assert result.returncode == 0, result.stderr[-3000:]
        assert b"races the same races" in (out / "eval.log").read_bytes()
    before = files_in(game)
    command = ["eval", f"run_dir={game}", "checkpoint=final", "+backend.server.port=0"]
    process = start_racing_rl(*command, cwd=tmp_path, stderr=tmp_path / "err")
    try:
        deadline = time.monotonic() + 120
        while "for the game to connect" not in (tmp_path / "err").read_text():
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        process.send_signal(sig)
        assert process.wait(timeout=60) == 128 + sig
    finally:
        if process.poll() is None:
            process.kill()
    said = (tmp_path / "err").read_text().splitlines()
    assert [line for line in said if "interrupted" in line] == said[-1:]
    how = "Ctrl-C" if sig == signal.SIGINT else "SIGTERM"
    line = f"racing-rl eval: interrupted ({how}) before its races ended: nothing written"
    after = files_in(game)
    if sig == signal.SIGTERM:  # the first eval: nothing of it is left
        assert said[-1] == line
        assert after == before
        return
    earlier_metrics = f"{out / 'metrics.json'} is an earlier eval's, written 20"
    assert said[-1].startswith(f"{line}; {earlier_metrics}")
    assert said[-1].endswith(f"rounds=2 max_steps=20 out_dir={out}, and stays as it was")
    # The earlier eval's log, whole, then this one's lines and the line.
    log = after.pop("eval/eval.log")
    assert log.startswith(before.pop("eval/eval.log")) and b"for the game to connect" in log
    assert log.decode().splitlines()[-1].endswith(said[-1].removeprefix("racing-rl eval: "))
    assert after == before


@pytest.mark.parametrize("moment", ["between rounds", "writing"])
def test_a_signal_after_races_ended_says_what_was_written_in_one_line(tiny_runs, tmp_path, moment):
    """SIGTERM between rounds: eval logged that the races that had ended were not kept,
    then said "nothing written", then "interrupted (SIGTERM)."; and left an eval.log.
    SIGTERM once its replays were written: it said "before its races ended: nothing
    written" beside them. One line now, which says what was written."""
    # Without other tests' evals of it: this is the run's first.
    run_dir = shutil.copytree(tiny_runs[0], tmp_path / "run", ignore=shutil.ignore_patterns("eval"))
    target, call = ("run_races", 2) if moment == "between rounds" else ("write_json", 1)
    signalled = (
        "import os, signal, time\n"
        "import racing_rl.evaluation.command as command\n"
        f"real, calls = command.{target}, []\n"
        "def signalled(*args, **kwargs):\n"
        "    calls.append(None)\n"
        f"    if len(calls) == {call}:\n"
        "        os.kill(os.getpid(), signal.SIGTERM)\n"
        "        time.sleep(30)  # its handler raises here\n"
        "    return real(*args, **kwargs)\n"
        f"command.{target} = signalled\n"
    )
    before = files_in(run_dir)
    args = [f"run_dir={run_dir}", "driver=scripted", "seeds=[5,6]", "max_steps=20"]
    result = racing_rl_patched(signalled, "eval", *args, "rounds=2", "record=true", cwd=tmp_path)
    assert result.returncode == 143, result.stderr[-3000:]
    said = result.stderr.splitlines()
    assert [line for line in said if "interrupted" in line] == said[-1:]
    after = files_in(run_dir)
    if moment == "between rounds":
        assert said[-1] == (
            "racing-rl eval: interrupted (SIGTERM) after 2 of its 4 races, which are not kept "
            "(rounds=0 races until Ctrl-C and keeps the races that ended): nothing written"
        )
        assert after == before
        return
    replays = run_dir / "eval" / "replays"
    assert said[-1] == (
        f"racing-rl eval: interrupted (SIGTERM) while writing its results: its 4 replays are "
        f"in {replays}, its metrics.json is not"
    )
    assert sorted(set(after) - set(before)) == [
        "eval",
        "eval/eval.log",  # which says the same races raced twice: the replays' log
        "eval/replays",
        *(f"eval/replays/track_{seed}{end}.npz" for seed in (5, 6) for end in ("", "_round2")),
    ]


def test_the_log_loses_the_earlier_eval_s_lines_whole_or_not_at_all(tmp_path):
    """Once an eval has written its metrics.json, its eval.log loses an earlier eval's
    lines before its own. That was done in place (its own lines written at the start, then
    the file cut): a signal between the two left the earlier log's tail after them. A
    KeyboardInterrupt at any line of it leaves the log as it was, or cut."""
    from racing_rl import evaluate as app
    from racing_rl import files

    earlier, own = b"an earlier eval's line\n" * 5, b"this eval's line\n"
    path = tmp_path / "eval.log"
    watched = {app.__file__, files.__file__}

    def cut(stop_at: int) -> logging.FileHandler | None:
        """``_keep_own_log`` of the log, stopped at its ``stop_at``-th line; its handler if
        it ended, None if it was stopped."""
        path.write_bytes(earlier + own)
        handler = logging.FileHandler(path, mode="a", delay=True)
        handler.setFormatter(logging.Formatter("%(message)s"))
        lines = 0

        def trace(frame, event, arg):
            nonlocal lines
            if frame.f_code.co_filename not in watched:
                return None
            if event == "line":
                lines += 1
                if lines == stop_at:
                    raise KeyboardInterrupt
            return trace

        sys.settrace(trace)
        try:
            app._keep_own_log(handler, len(earlier))
        except KeyboardInterrupt:
            assert path.read_bytes() in (earlier + own, own), f"stopped at line {stop_at}"
            return None
        finally:
            sys.settrace(None)
        return handler

    stop_at = 1
    while (handler := cut(stop_at)) is None:  # stopped at its first line, second, ...
        stop_at += 1
    assert stop_at > 3 and path.read_bytes() == own
    handler.handle(logging.makeLogRecord({"msg": "its next line"}))  # into the new file
    handler.close()
    assert path.read_bytes() == own + b"its next line\n"


def test_rounds_on_the_simulator_warn_that_they_race_the_same_races(tiny_runs, tmp_path, caplog):
    """The simulator's races are deterministic: rounds=2 raced the same races twice and
    reported twice the episodes, without a word. The policy's frame stack starts afresh
    each round."""
    overrides = [f"run_dir={tiny_runs[0]}", "checkpoint=final", "seeds=[5]", "max_steps=20"]
    with initialize():
        cfg = compose("eval", overrides=[*overrides, "rounds=2", f"out_dir={tmp_path}"])
    metrics = evaluate(cfg)
    assert metrics is not None and metrics["episodes"] == 2
    (first, second) = metrics["tracks"]
    assert json.dumps(first) == json.dumps(second)  # the same race (NaNs spelt alike)
    assert "rounds=2 on the simulator races the same races every round" in caplog.text


def test_an_eval_sweep_writes_each_jobs_metrics_apart_and_goes_on_past_a_failed_job(
    tiny_runs, tmp_path
):
    """-m checkpoint=final,latest wrote both jobs' metrics.json to <run>/eval: the second
    replaced the first. A job that failed (a run without best/) ended the sweep there,
    and the jobs' directories were named by their number alone."""
    run_dir = shutil.copytree(tiny_runs[0], tmp_path / "run")
    args = ["-m", f"run_dir={run_dir}", "checkpoint=best,final,latest", "seeds=[5]", "max_steps=20"]
    result = racing_rl("eval", *args, cwd=tmp_path)
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Error executing job with overrides: ['run_dir=" in result.stderr
    assert "Traceback" not in result.stderr
    assert "CheckpointError: Checkpoint 'best' not found" in result.stderr
    (sweep,) = (tmp_path / "outputs" / "multirun").glob("*/*_eval")
    jobs = {p.name.split("_")[0]: p for p in sweep.iterdir()}
    assert jobs["1"].name == "1_checkpoint=final,max_steps=20,run_dir=run,seeds=[5]"
    drivers = [json.loads((jobs[n] / "metrics.json").read_text())["driver"] for n in "12"]
    assert drivers[0] == str(run_dir / "model.zip") and "final_" in drivers[1]
    assert (jobs["1"] / "eval.log").is_file() and not list(sweep.glob("0*/metrics.json"))
    assert not (run_dir / "eval" / "metrics.json").exists()


def test_the_docs_plain_sb3_loop_drives_as_eval_does(tiny_runs, tmp_path):
    """docs/usage.md's loop (SB3's load, VecFrameStack and VecNormalize.load around
    Race-v0) gives a run's car the trajectory that ``racing-rl eval`` gives it."""
    readme = (Path(__file__).parents[1] / "docs" / "usage.md").read_text()
    (code,) = [
        b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "VecNormalize.load" in b
    ]
    run_dir = tiny_runs[0]
    assert code.count('Path("outputs/<date>/<time>_ppo_pygame")') == 1
    code = code.replace('Path("outputs/<date>/<time>_ppo_pygame")', f"Path({str(run_dir)!r})")
    namespace: dict = {}
    exec(compile(code, "docs/usage.md", "exec"), namespace)  # the page's own code
    out = tmp_path / "eval"
    result = racing_rl(
        "eval",
        f"run_dir={run_dir}",
        "checkpoint=final",
        "seeds=[3000000]",
        f"out_dir={out}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    (track,) = json.loads((out / "metrics.json").read_text())["tracks"]
    info = namespace["infos"][0]
    assert (info["progress"], info.get("lap_time")) == (track["progress"], track["lap_time"])


def test_a_misspelt_key_of_the_runs_own_backend_is_one_line_before_anything_is_written(
    tiny_runs, tmp_path
):
    # It was a log line of the job, after Hydra had made out_dir and its eval.log, with no
    # suggestion ("Key 'car_colisions' not in 'RaceRules'").
    out = tmp_path / "out"
    args = [f"run_dir={tiny_runs[0]}", "+backend.rules.car_colisions=true", f"out_dir={out}"]
    result = racing_rl("eval", *args, "difficulty=hard", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "racing-rl eval: Invalid config: backend.rules.car_colisions: Key 'car_colisions' not "
        "in 'RaceRules'; did you mean backend.rules.car_collisions?"
    ]
    assert not out.exists()


def test_checkpoint_final_says_when_the_run_has_a_newer_checkpoint(tiny_runs, tmp_path, caplog):
    """A run resumed after it completed, then interrupted: checkpoint=final evaluated the
    completed leg's model.zip, and nothing said that a newer checkpoint existed."""
    run_dir = tmp_path / "run"
    shutil.copytree(tiny_runs[0], run_dir)
    (final,) = (run_dir / "checkpoints").iterdir()
    newer = run_dir / "checkpoints" / "interrupted_4096_steps"
    shutil.copytree(final, newer)
    manifest = json.loads((newer / "checkpoint.json").read_text())
    manifest.update(kind="interrupted", timesteps=4096)
    (newer / "checkpoint.json").write_text(json.dumps(manifest))
    overrides = [f"run_dir={run_dir}", "seeds=[5]", "max_steps=20", f"out_dir={tmp_path}/out"]
    with initialize():
        evaluate(compose("eval", overrides=[*overrides, "checkpoint=final"]))
        assert "interrupted_4096_steps is newer (checkpoint=latest evaluates it)" in caplog.text
        caplog.clear()
        evaluate(compose("eval", overrides=[*overrides, "checkpoint=latest"]))
    assert "is newer" not in caplog.text


def test_a_failed_eval_names_an_earlier_metrics_file_it_cannot_read_whole(tmp_path, caplog):
    """A metrics.json whose settings are not an object raised inside the failed eval's
    cleanup, hiding the eval's own error."""
    from racing_rl.evaluate import _name_earlier_metrics

    (tmp_path / "metrics.json").write_text(json.dumps({"settings": [1, 2]}))
    _name_earlier_metrics(tmp_path)
    assert "is an earlier eval's, written 20" in caplog.text
    assert "by a command it does not record" in caplog.text

"""scripts/benchmark_algos.py: measuring runs on the held-out sets, merging saved results
into docs/benchmarks.md."""

from __future__ import annotations

import copy
import json
import math
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hydra import compose
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf
from runs import load_script, saved_config

from racing_rl.config import benchmark_seeds, initialize
from racing_rl.errors import CheckpointError

TRAIN_YAML = Path(__file__).parents[1] / "conf" / "train.yaml"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load_script("benchmark_algos")


def figures(completion: float, lap: float, ratio: float = 1.0) -> dict[str, float]:
    return {
        "lap_completion_rate": completion,
        "mean_lap_time_s": lap,
        "crash_rate": 1.0 - completion,
        "lap_time_ratio": ratio,
    }


def races(finished: float, won: float, position: float) -> dict[str, float]:
    return {
        "races": 10,
        "finished_rate": finished,
        "crash_rate": 1.0 - finished,
        "win_rate": won,
        "mean_position": position,
        "scripted_finished_rate": 1.0,
        "scripted_mean_position": 5.0 - position,  # 4 cars: positions add up to 10
    }


def row(label: str, seed: int, unseen: float, position: float = 2.0) -> dict[str, Any]:
    return {
        "label": label,
        "algo": label,
        "seed": seed,
        "run_dir": f"/runs/{label}_{seed}",
        "checkpoint": "best",
        "timesteps": 1000,
        "train_s": 50.0,
        "env_steps_per_s": 20.0,
        "test": figures(1.0, 19.0, 0.9),
        "unseen": figures(unseen, 19.0, 0.9 + seed / 50),
        "hard": figures(unseen - 0.1, 21.0, 0.95),
        "race": races(unseen, unseen - 0.2, 3.0 - unseen),
        "traffic": races(0.5, 0.3, position),
    }


def results(commit: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """A results.json as benchmark_algos writes it."""
    return {
        "command": f"python scripts/benchmark_algos.py  # at {commit}",
        "date": "2026-12-02",
        "environment": {
            "git": {"commit": commit, "dirty": False},
            "packages": {"stable-baselines3": "2.9.2"},
            "platform": "Linux",
            "python": "3.11.7",
        },
        "benchmark_seeds": list(range(3_000_000, 3_000_100)),
        "race_seeds": list(range(3_000_000, 3_000_020)),
        "rows": rows,
        "scripted": {name: figures(1.0, 20.0) for name in ("test", "unseen", "hard")},
    }


def test_the_benchmark_tracks_are_held_out_from_every_other_range(bench):
    seeds = benchmark_seeds()
    tracks = OmegaConf.load(TRAIN_YAML).tracks
    assert len(seeds) >= 50 and list(seeds) == list(range(*tracks.benchmark))
    for split in ("train", "validation", "test"):
        start, stop = tracks[split]
        assert stop <= seeds[0] or seeds[-1] < start, split


def test_a_run_that_trained_or_selected_on_benchmark_tracks_is_refused(bench, tmp_path):
    run_dir = tmp_path / "run"
    (run_dir / ".hydra").mkdir(parents=True)
    with initialize():
        config = compose("train", overrides=["tracks.test=[3000050,3000070]"])
    OmegaConf.save(config, run_dir / ".hydra" / "config.yaml")  # a complete run's config
    with pytest.raises(SystemExit, match=r"tracks.test=\[3000050, 3000070\).*overlaps"):
        bench.benchmark([(run_dir, None)], tmp_path / "bench", benchmark_seeds(), [])
    assert not (tmp_path / "bench").exists()  # refused before anything was measured


def test_per_seed_rows_come_with_the_mean_and_the_worst_seed(bench):
    table = bench.markdown(
        [row("ppo", 0, 0.8, position=2.0), row("ppo", 1, 0.6, position=3.0), row("sac", 0, 0.9)],
        results("x", [])["scripted"],
    )
    lines = table.splitlines()
    assert lines[0].startswith("| driver | seed | timesteps | test: laps | unseen: laps |")
    ppo = [line for line in lines if line.startswith("| ppo |") or "**ppo" in line]
    assert ppo[0].startswith("| ppo | 0 | 1,000 | 100 % | 80 % | 20 % | 0.90× |")
    assert ppo[2].startswith("| **ppo: mean** |  |  | 100 % | 70 % | 30 % | 0.91× |")
    # Worst: the lowest completion, the highest crash rate and lap-time ratio, the worst
    # (highest) position of the learned cars and the best (lowest) of the scripted ones.
    assert ppo[3].startswith("| **ppo: worst** |  |  | 100 % | 60 % | 40 % | 0.92× |")
    assert ppo[3].endswith("| 3.00 | 2.00 |")
    assert not any("**sac" in line for line in lines)  # one seed: nothing to aggregate
    assert lines[-1].startswith("| scripted driver | – | – | 100 % | 100 % | 0 % | 1.00× |")
    # A seed that timed no lap has no ratio: the worst was the other seeds' (0.92×).
    crashed = row("ppo", 2, 0.0)
    crashed["unseen"]["lap_time_ratio"] = math.nan
    scripted = results("x", [])["scripted"]
    worst = bench.markdown([row("ppo", 0, 0.8), row("ppo", 1, 0.8), crashed], scripted)
    worst = worst.splitlines()
    worst = next(line for line in worst if "**ppo: worst**" in line)
    assert worst.startswith("| **ppo: worst** |  |  | 100 % | 0 % | 100 % | – |")


def test_results_json_is_strict_json_and_reads_back_its_nan(bench, tmp_path):
    # The ratio of a seed that timed no lap is NaN: json.dumps wrote the bare token NaN,
    # which other JSON readers refuse.
    crashed = row("ppo", 2, 0.0)
    crashed["unseen"]["lap_time_ratio"] = math.nan
    saved = results("x", [row("ppo", 0, 0.8), crashed])
    saved["scripted"]["hard"]["mean_lap_time_s"] = math.nan  # no lap: the scripted driver's
    path = tmp_path / "results.json"
    bench.write_json(path, saved)
    assert "NaN" not in path.read_text()
    json.loads(path.read_text(), parse_constant=lambda token: pytest.fail(token))
    read = bench.read_results(path)
    assert math.isnan(read["rows"][1]["unseen"]["lap_time_ratio"])
    assert math.isnan(read["scripted"]["hard"]["mean_lap_time_s"])
    assert bench.markdown(read["rows"], read["scripted"]) == bench.markdown(
        saved["rows"], saved["scripted"]
    )


def test_a_later_file_replaces_a_driver_s_seed_and_keeps_the_rest_of_the_doc(bench, tmp_path):
    first = results("aaa111", [row("ppo", 0, 0.8), row("ppo", 1, 0.7), row("sac", 0, 0.9)])
    rerun = results("bbb222", [row("ppo", 1, 0.95)])
    merged = bench.merge([first, rerun])
    kept = [(r["label"], r["seed"], r["unseen"]["lap_completion_rate"]) for r in merged["rows"]]
    assert kept == [("ppo", 0, 0.8), ("ppo", 1, 0.95), ("sac", 0, 0.9)]
    assert [r["source"] for r in merged["rows"]] == [0, 1, 0]

    out = tmp_path / "benchmarks.md"
    out.write_text("# Benchmarks\n\nAn earlier table.\n\n## Crash analysis\n\nKept.\n")
    bench.write_markdown([first], out)
    bench.write_markdown([first, rerun], out)  # the section again: replaced, not added
    text = out.read_text()
    assert text.count(bench.BEGIN) == text.count(bench.END) == 1
    assert text.startswith("# Benchmarks\n\nAn earlier table.")
    assert "## Crash analysis\n\nKept." in text
    assert "seeds [3000000, 3000100)" in text and "on the first 20 of them, no contact" in text
    assert "- ppo seed 0: /runs/ppo_0; sac seed 0: /runs/sac_0: `python" in text
    assert "- ppo seed 1: /runs/ppo_1: `python scripts/benchmark_algos.py  # at bbb222`" in text


def test_two_runs_of_one_label_and_seed_are_refused_not_one_hidden(bench, tmp_path):
    """Two PPO seed-0 runs measured together without --label made one row: the other
    disappeared from the table and its provenance without a word."""
    twins = [row("ppo", 0, 0.8), {**row("ppo", 0, 0.6), "run_dir": "/runs/ppo_32rays"}]
    with pytest.raises(SystemExit, match=r"two rows of 'ppo' seed 0 \(/runs/ppo_0 and /runs/p"):
        bench.merge([results("x", twins)])
    runs = []
    for name in ("a", "b"):  # both the default config: ppo, seed 0
        run_dir = tmp_path / name
        (run_dir / ".hydra").mkdir(parents=True)
        with initialize():
            OmegaConf.save(compose("train"), run_dir / ".hydra" / "config.yaml")
        runs.append((run_dir, None))
    with pytest.raises(SystemExit, match="would both be the row of 'ppo' seed 0: measure them"):
        bench.benchmark(runs, tmp_path / "bench", benchmark_seeds(), [])
    assert not (tmp_path / "bench").exists()  # refused before anything was measured


def test_runs_of_other_tracks_or_rules_in_one_measure_are_refused(bench, tmp_path):
    """The scripted driver is measured once, on the first run's tracks and rules: a run of
    another car or test range measured beside it was compared with the wrong baseline.
    Every set races at a difficulty level, whose tracks and rules replace the run's own: a
    run trained on hard tracks is measured on the same ones as the default."""
    runs = []
    for seed, overrides in enumerate(
        (
            [],
            ["experiment=race", "difficulty=hard", "backend.track.width=16"],
            ["backend.car.engine_accel=10", "tracks.test=[2000100,2000120]"],
        )
    ):
        run_dir = tmp_path / str(seed)
        (run_dir / ".hydra").mkdir(parents=True)
        with initialize():
            cfg = compose("train", overrides=[f"seed={seed}", *overrides])
        OmegaConf.save(cfg, run_dir / ".hydra" / "config.yaml")
        runs.append((run_dir, None))
    # Other sensors, car collisions and training tracks leave the scripted figures alone.
    assert bench.scripted_world(runs[0][0]) == bench.scripted_world(runs[1][0])
    said = r"2 races on other tracks or rules than .*0 \(tracks.test: \[2000100, 2000120\] a"
    with pytest.raises(SystemExit, match=said) as refused:
        bench.benchmark(runs, tmp_path / "bench", benchmark_seeds(), [])
    assert "default.car.engine_accel: 10.0 against 9.0" in str(refused.value)
    assert not (tmp_path / "bench").exists()


def test_the_committed_table_is_the_render_of_the_listed_results(bench, tmp_path):
    # docs/benchmarks.md's table is not edited by hand: docs/results/rendered.txt lists
    # the results.json files that write it (scripts/benchmark_algos.py --render @...).
    root = Path(__file__).parents[1]
    listed = (root / "docs" / "results" / "rendered.txt").read_text().split()
    out = tmp_path / "benchmarks.md"
    out.write_text((root / "docs" / "benchmarks.md").read_text())
    bench.write_markdown([json.loads((root / path).read_text()) for path in listed], out)
    assert out.read_text() == (root / "docs" / "benchmarks.md").read_text()


def test_the_rotated_grid_table_is_the_render_of_its_results(bench):
    # docs/benchmarks.md's first table is rendered apart (its scripted figures are of
    # today's simulator): the files its section names give it again.
    root = Path(__file__).parents[1]
    parts = ("ppo", "sac", "td3_tqc_recurrent_ppo_crossq", "experiment_race")
    files = [root / "docs" / "results" / f"grid2026-12-07_{part}_seeds0123.json" for part in parts]
    merged = bench.merge([bench.read_results(path) for path in files])
    assert merged["grid"] == "rotated"
    table = bench.markdown(merged["rows"], merged["scripted"])
    assert table in (root / "docs" / "benchmarks.md").read_text()


def test_runs_measured_on_other_tracks_or_another_simulator_are_refused(bench):
    first = results("aaa111", [row("ppo", 0, 0.8)])
    other = copy.deepcopy(results("bbb222", [row("sac", 0, 0.8)]))
    other["scripted"]["hard"]["mean_lap_time_s"] = 25.0  # other tracks or simulator
    with pytest.raises(SystemExit, match="scripted driver's figures differ"):
        bench.merge([first, other])
    nearly = copy.deepcopy(first)
    nearly["scripted"]["hard"]["mean_lap_time_s"] *= 1 + 1e-5  # rounding: still the same
    assert len(bench.merge([first, nearly])["rows"]) == 1
    fewer_races = copy.deepcopy(first)
    fewer_races["race_seeds"] = fewer_races["race_seeds"][:10]
    other_tracks = r"other tracks \(race_seeds: 10 from \[3000000\] against 20"
    with pytest.raises(SystemExit, match=other_tracks):
        bench.merge([first, fewer_races])
    # Races on a grid rotated per track against ones in a fixed order (files saved before
    # rotate_grid have no "grid": they raced in the fixed order).
    rotated = results("ccc333", [{**row("td3", 0, 0.8), "grid": "rotated"}])
    with pytest.raises(SystemExit, match="rotated per track, others in a fixed order"):
        bench.merge([first, rotated])
    assert bench.merge([first])["grid"] == "listed"
    assert bench.merge([rotated])["grid"] == "rotated"


def test_lap_time_ratio_compares_only_the_tracks_both_drivers_completed(bench):
    def metrics(*laps: float) -> dict[str, Any]:
        tracks = [
            {"track_seed": seed, "finished": not math.isnan(lap), "lap_time": lap}
            for seed, lap in enumerate(laps)
        ]
        return {"tracks": tracks}

    learned, scripted = metrics(18.0, math.nan, 30.0), metrics(20.0, 21.0, math.nan)
    assert bench.lap_time_ratio(learned, scripted) == pytest.approx(0.9)
    assert math.isnan(bench.lap_time_ratio(metrics(math.nan), metrics(20.0)))


def test_a_race_nobody_finished_is_won_by_neither_driver(bench):
    drivers = [{"label": "ppo", "run": "/runs/ppo"}, {"label": "scripted", "run": bench.SCRIPTED}]

    def car(label: str, finished: bool, position: int) -> dict[str, Any]:
        return {"label": label, "finished": finished, "position": position}

    metrics = {
        "drivers": drivers,
        "tracks": [
            {"leaderboard": [car("ppo", True, 1), car("scripted", True, 2)]},
            {"leaderboard": [car("scripted", True, 1), car("ppo", False, 2)]},
            {"leaderboard": [car("ppo", False, 1), car("scripted", False, 2)]},  # both crashed
            {"leaderboard": [car("scripted", False, 1), car("ppo", False, 2)]},
        ],
        "cars": {
            "ppo": {"lap_completion_rate": 0.25, "crash_rate": 0.75},
            "scripted": {"lap_completion_rate": 0.5, "crash_rate": 0.5},
        },
        "standings": [
            {"label": "ppo", "mean_position": 1.5},
            {"label": "scripted", "mean_position": 1.5},
        ],
    }
    race = bench.race_figures(metrics)
    assert (race["win_rate"], race["scripted_win_rate"]) == (0.25, 0.25)
    # An exact tie for first is both drivers' win, as eval's standings count it (the first
    # row alone gave it to whichever was listed first).
    tie = {**metrics, "tracks": [{"leaderboard": [car("ppo", True, 1), car("scripted", True, 1)]}]}
    assert bench.race_figures(tie)["win_rate"] == bench.race_figures(tie)["scripted_win_rate"] == 1
    column = [c[:2] for c in bench.COLUMNS].index(("race", "win_rate"))
    assert bench.scripted_figures([{"race": race, "traffic": race}], {})[column] == 0.25
    # Saved before scripted_win_rate existed: exact only when the scripted car always finished.
    old = {"win_rate": 0.75, "scripted_finished_rate": 1.0}
    assert bench.scripted_win_rate(old) == 0.25
    assert math.isnan(bench.scripted_win_rate({**old, "scripted_finished_rate": 0.9}))


def test_measuring_a_finished_run_writes_every_set_beside_the_benchmark_not_in_the_run(
    bench, tiny_runs, tmp_path, monkeypatch
):
    run_dir = tiny_runs[0]
    before = sorted(p.relative_to(run_dir) for p in run_dir.rglob("*"))
    # Two test tracks of the 20 and one benchmark track keep it quick.
    monkeypatch.setitem(bench.SETS, "test", ["seeds=[2000000,2000001]", "difficulty=default"])
    seeds = [3_000_000]
    measured = bench.benchmark([(run_dir, None)], tmp_path, seeds, seeds[:1], checkpoint="final")
    (result,) = measured["rows"]
    assert (result["label"], result["algo"], result["seed"]) == ("ppo", "ppo", 0)
    assert result["timesteps"] > 0 and result["checkpoint"] == "final"
    assert result["grid"] == "rotated"  # its races' grids, rotated per track
    evaluations = tmp_path / "eval" / f"0_{run_dir.name}"
    for name in ("test", "unseen", "hard", "race", "traffic"):
        metrics = json.loads((evaluations / name / "metrics.json").read_text())
        # The command that measures it again (composed here, outside a Hydra job).
        command = metrics["settings"]["command"]
        assert command.startswith("racing-rl eval ") and f"out_dir={evaluations / name} " in command
    assert sorted(p.relative_to(run_dir) for p in run_dir.rglob("*")) == before
    assert set(measured["scripted"]) == {"test", "unseen", "hard"}

    # One race on one track: the learned and the scripted car take positions 1 and 2;
    # in traffic, two of each take 1 to 4.
    race, traffic = result["race"], result["traffic"]
    assert race["races"] == traffic["races"] == 1
    assert race["mean_position"] + race["scripted_mean_position"] == 3
    assert race["win_rate"] == (race["mean_position"] == 1)
    assert 2 * (traffic["mean_position"] + traffic["scripted_mean_position"]) == 10
    assert 0 <= traffic["finished_rate"] <= 1 and 0 <= traffic["crash_rate"] <= 1


def test_a_run_without_the_checkpoint_is_refused_before_anything_is_measured(
    bench, tiny_runs, tmp_path
):
    # It was refused by its first evaluation, after the scripted driver's three sets.
    seeds = [3_000_000]
    with pytest.raises(CheckpointError, match=r"Checkpoint 'best' not found: .*validation"):
        bench.benchmark([(tiny_runs[0], None)], tmp_path, seeds, seeds, checkpoint="best")
    assert not (tmp_path / "eval").exists()


def test_a_failing_evaluation_stops_the_benchmark_with_its_message(bench, tiny_runs, tmp_path):
    # Tiny runs validate never, so they have no best/.
    with pytest.raises(SystemExit, match=r"checkpoint=best 'seeds=\[3000000\]' failed: Checkpoint"):
        bench.run_eval([str(tiny_runs[0])], tmp_path, "checkpoint=best", "seeds=[3000000]")


def test_a_sweep_job_s_run_dir_reaches_eval_as_that_path(bench, tmp_path, monkeypatch):
    # A sweep job's directory (0_seed=0,...), and the eval dir named after it, ended in
    # Hydra's OverrideParseException.
    job = str(tmp_path / "0_seed=0,total_timesteps=2000")
    out = tmp_path / "eval" / "0_0_seed=0,total_timesteps=2000" / "race"
    seen = []
    monkeypatch.setattr(bench, "evaluate", lambda cfg, **kwargs: seen.append(cfg) or {})
    bench.run_eval([job], out, "checkpoint=best")
    bench.run_eval([job, "scripted"], out, "checkpoint=best")
    assert [cfg.run_dir for cfg in seen[:1]] == [job]
    assert list(seen[1].run_dir) == [job, "scripted"]
    assert seen[0].out_dir == seen[1].out_dir == str(out)


def test_a_run_trained_under_a_runs_dir_with_hydra_syntax_goes_there(bench, tmp_path, monkeypatch):
    # --runs holding '=' or ',' (a sweep job's dir) reached hydra.run.dir= unquoted.
    commands = []
    monkeypatch.setattr(bench, "racing_rl", lambda *args: commands.append(args))
    runs = tmp_path / "0_seed=0,x"
    run_dir, _ = bench.train("ppo", 1, runs, ["total_timesteps=10"])
    (command,) = commands
    overrides = OverridesParser.create().parse_overrides(list(command[1:]))
    assert {o.key_or_group: o.value() for o in overrides}["hydra.run.dir"] == str(run_dir)
    assert run_dir == runs / "ppo_seed1"


@pytest.mark.parametrize(
    "args",
    [
        ["--race-tracks", "0"],
        ["--measure", "{tmp}/no_run"],
        ["--render", "{tmp}/no_results.json"],
        ["--algos", "ppo", "--measure", "{tmp}/no_run"],
    ],
)
def test_a_refused_command_line_makes_no_directory(bench, tmp_path, monkeypatch, args):
    # The probes of --out and --runs came first: a refusal after them left their dirs, empty.
    given = ["--runs", f"{tmp_path}/runs", "--out", f"{tmp_path}/out/bench.md"]
    monkeypatch.setattr("sys.argv", ["benchmark_algos.py", *given, *args])
    monkeypatch.setattr("sys.argv", [arg.format(tmp=tmp_path) for arg in sys.argv])
    with pytest.raises((SystemExit, CheckpointError, FileNotFoundError)):  # each its message
        bench.main()
    assert not (tmp_path / "runs").exists() and not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "args",
    [
        ["--runs", "{tmp}/file/b"],  # the --runs probe, after --out's had made out/
        ["--checkpoint", "nope"],  # the run, after both probes
        ["--measure", "{tmp}/run", "{tmp}/run"],  # two rows of one label and seed, likewise
    ],
)
def test_a_benchmark_refused_after_its_probes_leaves_no_directory(
    bench, tmp_path, monkeypatch, args
):
    # The probes of --out and --runs made their dirs, and a later refusal left them, empty.
    saved_config(tmp_path / "run", [])
    (tmp_path / "file").write_text("")
    given = ["--measure", f"{tmp_path}/run", "--runs", f"{tmp_path}/runs/b"]
    given += ["--out", f"{tmp_path}/out/bench.md", *(a.format(tmp=tmp_path) for a in args)]
    monkeypatch.setattr("sys.argv", ["benchmark_algos.py", *given])
    with pytest.raises((SystemExit, CheckpointError)):  # each its message
        bench.main()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "run"]


def test_a_benchmark_refused_by_its_first_command_leaves_no_empty_dir(bench, tmp_path, monkeypatch):
    # racing-rl train refusing an override (total_timestep=1) left runs/<date>_<time>, empty.
    def refused(*args):
        raise SystemExit(f"racing-rl {' '.join(args)} failed with exit code 2")

    monkeypatch.setattr(bench, "racing_rl", refused)
    given = ["total_timestep=1", "--runs", str(tmp_path / "runs"), "--algos", "ppo", "--seeds", "0"]
    monkeypatch.setattr("sys.argv", ["benchmark_algos.py", *given])
    with pytest.raises(SystemExit, match="failed with exit code 2"):
        bench.main()
    assert not (tmp_path / "runs").exists()  # its --runs probe's too

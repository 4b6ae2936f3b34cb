"""scripts/bench_export.py: every driver is timed for 1 and 20 cars, and sizes are given."""

from __future__ import annotations

import pytest
from runs import game_run_copy, load_script


def test_bench_export_times_every_driver(trained_runs):
    bench = load_script("bench_export")
    figures = bench.run(trained_runs["ppo"], checkpoint="final", steps=5)
    assert set(figures["us_per_action"]) == {"luau", "onnx", "sb3"}
    for row in figures["us_per_action"].values():
        assert set(row) == {1, 20} and all(us > 0 for us in row.values())
    assert figures["bytes"]["luau"] > figures["bytes"]["onnx"] > 0


def test_bench_export_times_a_run_trained_in_the_game(trained_runs, tmp_path):
    # Its backend leaves the observation size to the game: a TypeError on None.
    run_dir = game_run_copy(trained_runs["ppo"], tmp_path / "game_run")
    figures = load_script("bench_export").run(run_dir, checkpoint="final", steps=2)
    assert set(figures["us_per_action"]) == {"luau", "onnx", "sb3"}
    assert figures["algorithm"] == "TeacherPPO"  # algo=ppo (conf/algo/ppo.yaml)


def test_bench_export_names_a_wrong_run_dir_without_a_traceback(tmp_path, monkeypatch, capsys):
    bench = load_script("bench_export")
    monkeypatch.setattr("sys.argv", ["bench_export.py", str(tmp_path)])
    with pytest.raises(SystemExit, match=r"bench_export.py: .* is not a racing-rl run directory"):
        bench.main()


def test_bench_export_refuses_no_steps_to_time_without_a_traceback(tmp_path, monkeypatch, capsys):
    # --steps 0 timed nothing: a ZeroDivisionError's traceback after exporting the run.
    bench = load_script("bench_export")
    monkeypatch.setattr("sys.argv", ["bench_export.py", str(tmp_path), "--steps", "0"])
    with pytest.raises(SystemExit) as stopped:
        bench.main()
    assert stopped.value.code == 2
    assert "bench_export.py: error: --steps must be >= 1, got 0." in capsys.readouterr().err

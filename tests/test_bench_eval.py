"""scripts/bench_eval.py: both thread counts race in both conditions, and the figures add up."""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

import pytest
from runs import SCRIPTS, load_script

from racing_rl.errors import RacingRLError


def test_both_thread_counts_race_in_both_conditions(tiny_runs, tmp_path):
    # Short races (50 steps): the test checks the script's figures, not the machine's
    # speed (tests never assert on wall-clock time).
    command = [sys.executable, str(SCRIPTS / "bench_eval.py"), *map(str, tiny_runs)]
    command += ["--checkpoint", "final", "--seeds", "5", "--rounds", "2", "--threads", "2"]
    command += ["--max-steps", "50"]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout.splitlines()[-1])
    assert figures["seeds"] == [5] and figures["rounds"] == 2
    lines = [line for line in result.stdout.splitlines() if "torch_threads=" in line]
    for condition in ("as is", "beside a busy process"):
        row = figures["figures"][condition]
        assert set(row) == {"torch_threads=1", "torch_threads=2"}
        assert row["torch_threads=1"]["vs_one_thread"] == 1.0
        for n in (1, 2):
            seconds = [
                float(line.split(": ")[1].split()[0])
                for line in lines
                if line.strip().startswith(condition) and f"torch_threads={n}:" in line
            ]
            assert len(seconds) == 2
            # The lines print 2 decimals, the JSON 3.
            median = row[f"torch_threads={n}"]["median_s"]
            assert median == pytest.approx(statistics.median(seconds), abs=0.006)


def test_a_sweep_job_s_run_dir_reaches_eval_as_that_path(tmp_path, monkeypatch):
    # A sweep job's directory (0_seed=0,...) ended in Hydra's OverrideParseException.
    bench = load_script("bench_eval")
    job, out = tmp_path / "0_seed=0,total_timesteps=2000", tmp_path / "out=1"
    seen = []
    monkeypatch.setattr(bench, "evaluate", seen.append)
    args = argparse.Namespace(runs=[str(job)], checkpoint="best", seeds=[5], max_steps=10)
    bench.timed_eval(args, 1, out)
    (cfg,) = seen
    assert list(cfg.run_dir) == [str(job), "scripted"] and cfg.out_dir == str(out)


def test_the_default_thread_count_is_one_it_accepts_on_a_one_core_machine(
    tmp_path, monkeypatch, capsys
):
    # The default was the CPU count, which the script refused (>= 2) on one core.
    bench = load_script("bench_eval")
    monkeypatch.setattr(bench.os, "cpu_count", lambda: 1)
    monkeypatch.setattr("sys.argv", ["bench_eval.py", str(tmp_path / "nope")])
    with pytest.raises(RacingRLError, match="no such directory"):  # the run, not the threads
        bench.main()

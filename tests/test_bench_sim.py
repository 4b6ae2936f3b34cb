"""scripts/bench_sim.py and scripts/stack_hashes.py run, and their figures hold together
(tests never assert on wall-clock time: only that the figures are there and consistent)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from runs import SCRIPTS


def run_script(name: str, *args: str, cwd) -> dict:
    """The JSON object that ends the script's output."""
    command = [sys.executable, str(SCRIPTS / name), *args]
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.splitlines()[-1])


def test_the_simulator_benchmark_reports_every_car_count(tmp_path):
    figures = run_script(
        "bench_sim.py", "--cars", "1", "4", "--seconds", "0.2", "--tracks", "3", cwd=tmp_path
    )
    assert figures["bench"] == "sim" and figures["n_rays"] == 10
    assert [row["n_cars"] for row in figures["results"]] == [1, 4]
    for row in figures["results"]:
        assert row["steps"] > 0 and row["naive_steps"] > 0 and 0 <= row["crashed_fraction"] <= 1
        ratio = row["agent_steps_per_s"] / row["naive_agent_steps_per_s"]
        assert abs(row["speedup_vs_naive"] - ratio) <= 0.051  # printed to 1 decimal
    change = figures["track_change"]
    assert (change["tracks"], change["cars"]) == (3, 12)
    ratio = change["set_track_ms"] / change["step_ms"]
    assert change["steps_per_track_change"] == pytest.approx(ratio)
    assert change["generate_ms"] > 0


def test_the_stack_fingerprints_repeat(tmp_path):
    # The script shows a refactor changed nothing only if the same code gives the same
    # hashes: two runs must agree, and the configurations must differ from each other.
    first = run_script("stack_hashes.py", "--steps", "30", cwd=tmp_path)
    assert set(first) == {"default", "bare", "solo", "traffic", "per_car"}
    assert len(set(first.values())) == 5
    assert run_script("stack_hashes.py", "--steps", "30", cwd=tmp_path) == first
    assert run_script("stack_hashes.py", "--steps", "30", "--seed", "1", cwd=tmp_path) != first

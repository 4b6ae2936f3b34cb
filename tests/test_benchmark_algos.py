"""scripts/benchmark_algos.py: merging saved results into docs/benchmarks.md."""

from __future__ import annotations

import copy
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from runs import load_script


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load_script("benchmark_algos")


def figures(completion: float, lap: float) -> dict[str, float]:
    return {"lap_completion_rate": completion, "mean_lap_time_s": lap, "crash_rate": 0.0}


def results(commit: str, rows: dict[str, float]) -> dict[str, Any]:
    """A results.json as benchmark_algos writes it; ``rows``: algo → default lap time."""
    return {
        "command": f"python scripts/benchmark_algos.py  # at {commit}",
        "date": "2026-11-22",
        "environment": {
            "git": {"commit": commit, "dirty": False},
            "packages": {"stable-baselines3": "2.9.2"},
            "platform": "Linux",
            "python": "3.11.7",
        },
        "rows": [
            {
                "algo": algo,
                "timesteps": 1000,
                "wall_s": 60.0,
                "train_s": 50.0,
                "env_steps_per_s": 20.0,
                "default": figures(1.0, lap),
                "hard": figures(0.5, lap + 2.0),
            }
            for algo, lap in rows.items()
        ],
        "scripted": {"default": figures(1.0, 20.0), "hard": figures(1.0, 22.0)},
    }


def test_a_later_run_replaces_an_algorithms_row_and_keeps_the_others(
    bench: ModuleType, tmp_path: Path
) -> None:
    everything = results("aaa111", {"ppo": 19.0, "sac": 18.0, "td3": 17.0})
    rerun = results("bbb222", {"sac": 16.0})
    merged = bench.merge([everything, rerun])
    assert [(row["algo"], row["default"]["mean_lap_time_s"]) for row in merged["rows"]] == [
        ("ppo", 19.0),
        ("sac", 16.0),
        ("td3", 17.0),
    ]
    assert [row["source"] for row in merged["rows"]] == [0, 1, 0]

    out = tmp_path / "benchmarks.md"
    bench.write_markdown([everything, rerun], out)
    text = out.read_text()
    assert "| sac | 1,000 |" in text and "| 16.00 | 0.80× |" in text
    assert "- ppo, td3: `python scripts/benchmark_algos.py  # at aaa111`" in text
    assert "- sac: `python scripts/benchmark_algos.py  # at bbb222`" in text
    assert "git bbb222;" in text


def test_runs_measured_against_another_scripted_baseline_are_refused(
    bench: ModuleType,
) -> None:
    first = results("aaa111", {"ppo": 19.0})
    other = copy.deepcopy(results("bbb222", {"sac": 18.0}))
    other["scripted"]["hard"]["mean_lap_time_s"] = 25.0  # other tracks or simulator
    with pytest.raises(SystemExit, match="scripted driver's figures differ"):
        bench.merge([first, other])
    nearly = copy.deepcopy(first)
    nearly["scripted"]["hard"]["mean_lap_time_s"] *= 1 + 1e-5  # rounding: still the same
    assert len(bench.merge([first, nearly])["rows"]) == 1


def test_two_benchmarks_started_in_the_same_second_get_their_own_dirs(
    bench: ModuleType, tmp_path: Path
) -> None:
    dirs = {bench.new_runs_dir(tmp_path) for _ in range(3)}
    assert len(dirs) == 3 and all(d.is_dir() for d in dirs)

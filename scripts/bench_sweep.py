"""Benchmark: a 2-job sweep with Hydra's basic launcher (one job after the other) and
with ``hydra/launcher=parallel`` (joblib, one job per core).

Both run ``racing-rl train -m seed=0,1`` with the same budget in a temporary directory
and are timed end to end (start-up, training, validation, saving). Usage::

    python scripts/bench_sweep.py [--timesteps 100000] [overrides ...]

Extra arguments are Hydra overrides for both sweeps. The last line printed is a JSON
object with the figures.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from racing_rl.evaluation.tables import format_table


def sweep_seconds(launcher: str | None, timesteps: int, overrides: list[str], root: Path) -> float:
    """Wall time of one 2-job sweep, in seconds.

    Raises:
        SystemExit: if the sweep fails (its stderr is in the message).
    """
    name = launcher or "basic"
    command = [sys.executable, "-m", "racing_rl.cli", "train", "-m", "seed=0,1"]
    command += [f"hydra/launcher={launcher}"] if launcher else []
    command += [f"total_timesteps={timesteps}", "progress_bar=false"]
    command += [f"hydra.sweep.dir={root / name}", *overrides]
    started = time.perf_counter()
    result = subprocess.run(command, cwd=root, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"bench_sweep.py: the {name} sweep failed:\n{result.stderr[-3000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--timesteps", type=int, default=100_000, help="timesteps per job (default: %(default)s)"
    )
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for both sweeps")
    args = parser.parse_args()
    if args.timesteps < 1:  # else both sweeps start, and each job fails in Hydra's words
        parser.error(f"--timesteps must be >= 1, got {args.timesteps}.")
    with tempfile.TemporaryDirectory() as tmp:
        basic = sweep_seconds(None, args.timesteps, args.overrides, Path(tmp))
        parallel = sweep_seconds("parallel", args.timesteps, args.overrides, Path(tmp))
    print(f"2-job sweep, {args.timesteps:,} timesteps per job")
    table = [
        {"launcher": "basic (sequential)", "wall time (s)": f"{basic:.1f}"},
        {"launcher": "parallel (joblib)", "wall time (s)": f"{parallel:.1f}"},
    ]
    print(format_table(table, ["launcher", "wall time (s)"], left={"launcher"}))
    print(f"speed-up: {basic / parallel:.2f}x")
    figures = {
        "bench": "sweep",
        "timesteps_per_job": args.timesteps,
        "basic_s": basic,
        "parallel_s": parallel,
        "speedup": basic / parallel,
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()

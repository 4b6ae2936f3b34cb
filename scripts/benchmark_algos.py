"""Benchmark: train every algorithm with its defaults, measure it on held-out tracks.

For each algorithm this runs, as a user would::

    racing-rl train algo=<algo> hydra.run.dir=<runs>/<algo>          # its own defaults
    racing-rl eval run_dir=<runs>/<algo>                              # best/, 20 test tracks
    racing-rl eval run_dir=<runs>/<algo> difficulty=hard              # the harder set

and, once, the scripted pure-pursuit driver on the same two sets of tracks. Test tracks
are held out from training and from model selection (validation chooses ``best/``). It
prints a table (the RL Baselines3 Zoo way: algorithm, timesteps, wall time, env-steps/s,
lap completion, mean lap time, lap time relative to the scripted driver), writes it as
Markdown (``--out``, default ``docs/benchmarks.md``), saves every figure to
``<runs>/results.json`` and, last, prints them as one JSON line. ``--render
<results.json> ...`` rewrites the Markdown from saved figures without training; given
several files (say, all algorithms, then one re-run after tuning), a later file's row
for an algorithm replaces an earlier one's, and each row's command and commit are listed.

Usage::

    python scripts/benchmark_algos.py                          # all algorithms, ~1.5 h
    python scripts/benchmark_algos.py --algos ppo sac
    python scripts/benchmark_algos.py --algos ppo --out /tmp/b.md -- total_timesteps=20000
    python scripts/benchmark_algos.py --render outputs/benchmark/<stamp>/results.json
    python scripts/benchmark_algos.py --render <all>/results.json <ppo-rerun>/results.json

Arguments after ``--`` are Hydra overrides added to every training run.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from racing_rl.provenance import environment_record

ALGOS = ("ppo", "sac", "td3", "recurrent_ppo")
#: Figures kept from each metrics.json.
FIGURES = ("lap_completion_rate", "mean_lap_time_s", "crash_rate")
#: (label, eval overrides) of the two held-out sets.
SETS = (("default", []), ("hard", ["difficulty=hard"]))


def racing_rl(*args: str) -> None:
    """Run a racing-rl command; stop the benchmark with its output if it fails."""
    result = subprocess.run([sys.executable, "-m", "racing_rl.cli", *args], text=True)
    if result.returncode != 0:
        raise SystemExit(f"racing-rl {' '.join(args)} failed with exit code {result.returncode}")


def evaluate(run_dir: Path, *overrides: str) -> dict[str, Any]:
    """``racing-rl eval`` of a run; returns its metrics.json."""
    racing_rl("eval", f"run_dir={run_dir}", *overrides)
    return json.loads((run_dir / "eval" / "metrics.json").read_text())


def benchmark(algo: str, runs: Path, overrides: list[str]) -> dict[str, Any]:
    """Train ``algo`` with its defaults (+ ``overrides``) and evaluate it on both sets."""
    run_dir = runs / algo
    started = time.perf_counter()
    racing_rl("train", f"algo={algo}", *overrides, f"hydra.run.dir={run_dir}")
    wall = time.perf_counter() - started
    summary = json.loads((run_dir / "summary.json").read_text())
    row: dict[str, Any] = {
        "algo": algo,
        "timesteps": summary["timesteps"],
        "wall_s": wall,
        "train_s": summary["seconds"],
        "env_steps_per_s": summary["env_steps_per_s"],
    }
    for name, extra in SETS:
        metrics = evaluate(run_dir, *extra)
        row[name] = {k: metrics[k] for k in FIGURES}
    return row


def scripted(run_dir: Path) -> dict[str, Any]:
    """The scripted driver's figures on both sets (the tracks of ``run_dir``'s config)."""
    figures = {}
    for name, extra in SETS:
        metrics = evaluate(run_dir, "driver=scripted", *extra)
        figures[name] = {k: metrics[k] for k in FIGURES}
    return figures


def markdown(rows: list[dict[str, Any]], baseline: dict[str, Any]) -> str:
    """The results table, one row per algorithm, both sets side by side."""

    def cells(figures: dict[str, Any], reference: dict[str, Any]) -> list[str]:
        lap = figures["mean_lap_time_s"]
        ratio = lap / reference["mean_lap_time_s"]
        return [
            f"{100 * figures['lap_completion_rate']:.0f} %",
            "–" if math.isnan(lap) else f"{lap:.2f}",
            "–" if math.isnan(ratio) else f"{ratio:.2f}×",
        ]

    head = (
        "| algorithm | timesteps | training time | wall time | env-steps/s "
        "| laps (default) | lap time [s] | vs scripted "
        "| laps (hard) | lap time [s] | vs scripted |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    )
    body = ""
    for row in rows:
        body += (
            f"| {row['algo']} | {row['timesteps']:,} | {row['train_s'] / 60:.1f} min "
            f"| {row['wall_s'] / 60:.1f} min "
            f"| {row['env_steps_per_s']:,.0f} | "
            + " | ".join(cells(row["default"], baseline["default"]))
            + " | "
            + " | ".join(cells(row["hard"], baseline["hard"]))
            + " |\n"
        )
    body += (
        "| scripted driver | – | – | – | – | "
        + " | ".join(cells(baseline["default"], baseline["default"]))
        + " | "
        + " | ".join(cells(baseline["hard"], baseline["hard"]))
        + " |\n"
    )
    return head + body


def merge(sources: list[dict[str, Any]]) -> dict[str, Any]:
    """Combine saved results: a later file's row for an algorithm replaces an earlier one's.

    Lets one algorithm be re-run (after tuning it) without re-running the others. Each
    row keeps where it came from (``source``: an index into ``sources``).

    Raises:
        SystemExit: the scripted driver's figures differ by more than 0.1 % between the
            files (other tracks or another simulator): their rows would not compare.
    """

    def same(a: dict[str, Any], b: dict[str, Any]) -> bool:
        return all(
            math.isclose(a[s][k], b[s][k], rel_tol=1e-3)
            or (math.isnan(a[s][k]) and math.isnan(b[s][k]))
            for s, _ in SETS
            for k in FIGURES
        )

    rows: dict[str, dict[str, Any]] = {}
    for index, results in enumerate(sources):
        if not same(results["scripted"], sources[0]["scripted"]):
            raise SystemExit(
                "The scripted driver's figures differ between the results files: they were "
                "measured on other tracks or another simulator, so their rows do not compare."
            )
        for row in results["rows"]:
            rows[row["algo"]] = {**row, "source": index}
    ordered = [rows[a] for a in ALGOS if a in rows] + [r for a, r in rows.items() if a not in ALGOS]
    return {"sources": sources, "rows": ordered, "scripted": sources[0]["scripted"]}


def provenance(results: dict[str, Any], algos: list[str]) -> str:
    """One Markdown list item: the command, date, git commit and packages of a results file."""
    environment = results["environment"]
    versions = ", ".join(f"{k} {v}" for k, v in environment["packages"].items() if v)
    git = environment["git"]
    return (
        f"- {', '.join(algos)}: `{results['command']}` on {results['date']}; "
        f"git {git.get('commit')}{' (dirty)' if git.get('dirty') else ''}; "
        f"{environment['platform']}, Python {environment['python']}; {versions}.\n"
    )


def write_markdown(sources: list[dict[str, Any]], out: Path) -> str:
    """Write ``out`` from saved results (see ``main`` and ``merge``); returns the table."""
    merged = merge(sources)
    table = markdown(merged["rows"], merged["scripted"])
    used = [
        (results, [row["algo"] for row in merged["rows"] if row["source"] == index])
        for index, results in enumerate(sources)
    ]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        "# Benchmarks\n\n"
        "Produced by `python scripts/benchmark_algos.py` (commands and versions below).\n\n"
        "Each algorithm trains with its own defaults (`conf/algo/<algo>.yaml`, the "
        "budget included) on the training tracks; `best/` (chosen on the validation "
        "tracks) is measured on the 20 **test** tracks, held out from both, one car from a "
        "standing start for one lap, deterministic policy: *default* with the training "
        "generator, *hard* with `conf/difficulty/hard.yaml` (narrower, tighter, twice the "
        "obstacles). *vs scripted* is the mean lap time over the scripted pure-pursuit "
        "driver's on the same tracks (lower is faster). *Training time* is `model.learn`; "
        "*wall time* is the whole `racing-rl train` command (start-up, validation, saving)."
        "\n\n"
        f"{table}\n"
        "Rows by the run that measured them (`--render` merges several runs' "
        "`results.json`):\n\n" + "".join(provenance(r, algos) for r, algos in used if algos)
    )
    return table


def new_runs_dir(parent: Path) -> Path:
    """A fresh ``<parent>/<date>_<time>`` dir (``_2``, ``_3``… if two benchmarks start
    in the same second: they would otherwise train into the same run dirs)."""
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, 1000):
        runs = parent / (stamp if attempt == 1 else f"{stamp}_{attempt}")
        try:
            runs.mkdir()
            return runs
        except FileExistsError:
            continue
    raise SystemExit(f"Could not create a new benchmark dir under {parent}.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--algos", nargs="+", default=list(ALGOS), help="algorithms to run")
    parser.add_argument("--runs", type=Path, default=Path("outputs/benchmark"), help="run dirs")
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks.md"))
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every training run")
    parser.add_argument(
        "--render",
        type=Path,
        nargs="+",
        default=None,
        help="rewrite --out from saved results.json files; a later file's row for an "
        "algorithm replaces an earlier one's",
    )
    args = parser.parse_args()
    if args.render is not None:
        table = write_markdown([json.loads(path.read_text()) for path in args.render], args.out)
        print(table)
        print(f"written to {args.out}")
        return
    runs = new_runs_dir(args.runs)
    environment = environment_record()  # before training: the code that runs
    rows = [benchmark(algo, runs, args.overrides) for algo in args.algos]
    results = {
        "bench": "algos",
        "command": " ".join(["python scripts/benchmark_algos.py", *sys.argv[1:]]),
        "date": time.strftime("%Y-%m-%d"),
        "environment": environment,
        "rows": rows,
        "scripted": scripted(runs / args.algos[0]),
    }
    (runs / "results.json").write_text(json.dumps(results, indent=2))
    table = write_markdown([results], args.out)
    print(table)
    print(f"written to {args.out}; runs in {runs}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()

"""Benchmark: drivers on held-out tracks and in races, per seed, with the mean and the worst.

Every run is measured by ``racing-rl eval``'s own code (its config composition and
``racing_rl.evaluation.command.evaluate``, in this process; checkpoint ``best/`` unless
``--checkpoint``) on five sets:

========  =====================================================================
test      ``split=test difficulty=default``: the run's 20 test tracks
unseen    ``seeds=<tracks.benchmark> difficulty=default``: the held-out benchmark
hard      ``seeds=<tracks.benchmark> difficulty=hard``: the same seeds, harder generator
race      ``run_dir=[<run>,scripted] laps=3``: a 3-lap race against the scripted
          driver on the benchmark tracks (default difficulty), no contact
traffic   ``run_dir=[<run>,scripted,scripted,<run>] laps=3
          +backend.rules.car_collisions=true``: 2 learned + 2 scripted cars starting
          two abreast, contact crashes; the grid rotated per track (eval's
          ``rotate_grid``: over 4 consecutive tracks each car starts once from each
          slot, so neither side keeps pole)
========  =====================================================================

and the scripted pure-pursuit driver once on the three single-car sets (the first run's
tracks and rules). ``tracks.benchmark`` (conf/train.yaml) is a seed range that no
training, validation, config choice or tuning touches: measure on it, never select on
it. A run whose training, validation or test range overlaps it is refused.

Figures per run (a row per seed): lap completion and crash rate; *vs scripted*, the mean
lap time over the scripted driver's on the tracks both completed (lower is faster); in
races, the share of races the learned car(s) finished and won (*won*: a learned car in
first place) and the mean position of the learned and the scripted cars. Each driver
(algorithm, or ``--label``) gets the mean and the worst over its seeds.

Everything goes to ``<runs>/<stamp>/``: trained runs, every ``metrics.json`` under
``eval/<n>_<run name>/<set>/`` and ``eval/scripted/<set>/`` (a measured run dir is only
read), ``results.json`` with every figure, and a
Markdown section of ``--out`` (by default ``benchmark.md`` beside ``results.json``; an
existing file's other text is kept). ``--render <results.json> ...`` rewrites that
section of ``--out`` (by default ``docs/benchmarks.md``) from saved figures; given several
files, a later file's row for a driver and seed replaces an earlier one's. The files of
``docs/benchmarks.md``'s table are listed, in order, in ``docs/results/rendered.txt``:
``--render @docs/results/rendered.txt`` re-renders it as committed.

Usage::

    python scripts/benchmark_algos.py --measure <run dir> [<run dir> ...]   # no training
    python scripts/benchmark_algos.py --measure <run dir> --label "ppo, 16 rays"
    python scripts/benchmark_algos.py --algos ppo sac --seeds 0 1 2 3       # train, measure
    python scripts/benchmark_algos.py --algos ppo --seeds 0 --out /tmp/b.md -- total_timesteps=20000
    python scripts/benchmark_algos.py --render outputs/benchmark/<stamp>/results.json

Arguments after ``--`` are Hydra overrides added to every training run. Measuring one
run (and the scripted driver) took 26 min on a 2-core machine shared with four other
jobs, three quarters of it the races (``--race-tracks 20`` races on the first 20
benchmark tracks only); training every algorithm on 4 seeds takes hours.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from hydra import compose

from racing_rl.checkpoints.layout import resolve_model
from racing_rl.checkpoints.runs import check_simulator_run, load_run_config
from racing_rl.config import (
    backend_config,
    benchmark_seeds,
    initialize,
    override_value,
    with_difficulty,
)
from racing_rl.errors import RacingRLError, reported
from racing_rl.evaluation.command import SCRIPTED, evaluate
from racing_rl.evaluation.tables import markdown_table
from racing_rl.files import cannot_write, strict_json, write_atomic, write_json
from racing_rl.provenance import environment_record

ALGOS = ("ppo", "sac", "td3", "recurrent_ppo")
SEEDS = (0, 1, 2, 3)
#: Figures kept from a single-car evaluation's metrics.json.
FIGURES = ("lap_completion_rate", "mean_lap_time_s", "crash_rate")
#: The single-car sets: name -> ``racing-rl eval`` overrides; BENCHMARK stands for
#: ``seeds=<the benchmark seeds>``.
BENCHMARK = "seeds=<benchmark>"
SETS = {
    "test": ["split=test", "difficulty=default"],
    "unseen": [BENCHMARK, "difficulty=default"],
    "hard": [BENCHMARK, "difficulty=hard"],
}
#: Laps of a race.
RACE_LAPS = 3
#: The races: name -> (the cars, RUN standing for the measured run; extra eval
#: overrides). On a grid (car collisions on, or rays that see cars), eval rotates the
#: slots per track (``rotate_grid``); results measured before it record no ``grid`` and
#: raced in this order, the learned cars on slots 1 and 4 (``LISTED``).
RUN = "<run>"
RACES = {
    "race": ([RUN, SCRIPTED], []),
    "traffic": ([RUN, SCRIPTED, SCRIPTED, RUN], ["+backend.rules.car_collisions=true"]),
}
#: A row's ``grid``: how its races' cars started, when on a grid.
ROTATED, LISTED = "rotated", "listed"
#: Markers around the section this script owns in ``--out``.
BEGIN, END = "<!-- benchmark_algos: begin -->", "<!-- benchmark_algos: end -->"


def check_held_out(run_dir: Path, seeds: Sequence[int]) -> None:
    """Refuse a run whose training, validation or test tracks overlap the benchmark's.

    Raises:
        SystemExit: naming the overlapping range.
    """
    tracks = load_run_config(run_dir).tracks
    low, high = min(seeds), max(seeds) + 1
    for split in ("train", "validation", "test"):
        start, stop = (int(v) for v in tracks[split])
        if start < high and low < stop:
            raise SystemExit(
                f"{run_dir} used tracks.{split}=[{start}, {stop}), which overlaps the "
                f"benchmark's tracks [{low}, {high}) (tracks.benchmark in conf/train.yaml): "
                "its figures would not be held out. Measure runs trained on other seeds."
            )


def scripted_world(run_dir: Path) -> dict[str, Any]:
    """What the scripted driver's figures on ``run_dir``'s sets depend on: the run's test
    tracks, and the track generator, car and rules of each difficulty level the sets race
    at (``with_difficulty``: its tracks and rules, the run's car), car collisions aside
    (the single-car sets race one car), as ``{"tracks.test": [...], "hard.track.width":
    12.0, ...}``."""
    cfg = load_run_config(run_dir)
    world: dict[str, Any] = {"tracks.test": [int(v) for v in cfg.tracks.test]}
    levels = {
        arg.split("=", 1)[1]
        for overrides in SETS.values()
        for arg in overrides
        if arg.startswith("difficulty=")
    }
    for level in sorted(levels):
        config = backend_config(with_difficulty(cfg.backend, level))
        for group in ("track", "car", "rules"):
            values = asdict(getattr(config, group))
            world.update({f"{level}.{group}.{k}": v for k, v in values.items()})
        del world[f"{level}.rules.car_collisions"]
    return world


def racing_rl(*args: str) -> None:
    """Run a racing-rl command; stop the benchmark with its output if it fails."""
    result = subprocess.run([sys.executable, "-m", "racing_rl.cli", *args], text=True)
    if result.returncode != 0:
        raise SystemExit(f"racing-rl {' '.join(args)} failed with exit code {result.returncode}")


def run_eval(entries: Sequence[str], out_dir: Path, *overrides: str) -> dict[str, Any]:
    """``racing-rl eval run_dir=<entries> out_dir=<out_dir> <overrides>``, in this process.

    The same config composition and ``racing_rl.evaluation.command.evaluate`` as the command,
    without its start-up per call.

    Returns:
        The metrics, also in ``<out_dir>/metrics.json``.

    Raises:
        SystemExit: if the evaluation fails (a missing checkpoint, a bad override), with
            its message.
    """
    quoted = [override_value(entry) for entry in entries]  # a sweep job's dir: '=' and ','
    run_dir = quoted[0] if len(quoted) == 1 else f"[{','.join(quoted)}]"
    args = [f"run_dir={run_dir}", f"out_dir={override_value(out_dir)}", *overrides]
    command = shlex.join(["racing-rl", "eval", *args])
    print(command, file=sys.stderr, flush=True)
    with initialize(job_name="eval"):
        cfg = compose(config_name="eval", overrides=args)
    levels = [o.split("=", 1)[1] for o in overrides if o.startswith("difficulty=")]
    try:
        return evaluate(cfg, difficulty=levels[-1] if levels else None, command=command)
    except RacingRLError as err:
        raise SystemExit(f"{command} failed: {err}") from err


def seeds_override(seeds: Sequence[int]) -> str:
    """The ``seeds=[...]`` override of ``racing-rl eval``."""
    return f"seeds=[{','.join(str(s) for s in seeds)}]"


def single_sets(
    entry: str, out: Path, seeds: Sequence[int], *overrides: str
) -> dict[str, dict[str, Any]]:
    """The metrics.json of ``entry`` (a run dir) on each of ``SETS``, under ``out/<set>``."""
    return {
        name: run_eval(
            [entry],
            out / name,
            *(seeds_override(seeds) if o == BENCHMARK else o for o in extra),
            *overrides,
        )
        for name, extra in SETS.items()
    }


def lap_time_ratio(metrics: dict[str, Any], reference: dict[str, Any]) -> float:
    """Mean lap time over ``reference``'s, on the tracks both completed (NaN if none).

    Args:
        metrics, reference: metrics.json of single-car evaluations on the same tracks.
    """
    laps = {t["track_seed"]: t["lap_time"] for t in reference["tracks"] if t["finished"]}
    common = [
        (t["lap_time"], laps[t["track_seed"]])
        for t in metrics["tracks"]
        if t["finished"] and t["track_seed"] in laps
    ]
    if not common:
        return math.nan
    mine, theirs = np.mean(common, axis=0)
    return float(mine / theirs)


def race_figures(metrics: dict[str, Any]) -> dict[str, float]:
    """The learned and the scripted cars' figures in a race's metrics.json.

    Returns:
        ``finished_rate`` and ``crash_rate`` of the learned cars (over cars and tracks),
        ``win_rate`` (share of tracks a learned car won), ``mean_position`` of the
        learned cars, and ``scripted_finished_rate``, ``scripted_win_rate``,
        ``scripted_mean_position``, ``races`` (tracks). A race that no car finished is
        won by nobody.
    """
    scripted = {d["label"] for d in metrics["drivers"] if d["run"] == SCRIPTED}
    learned = [d["label"] for d in metrics["drivers"] if d["label"] not in scripted]
    position = {row["label"]: row["mean_position"] for row in metrics["standings"]}

    def mean(labels: Sequence[str], key: Callable[[str], float]) -> float:
        return float(np.mean([key(label) for label in labels]))

    # Each race's winners: the finished cars in first position (an exact tie shares it,
    # as eval's standings count it; the first row alone gave it to whichever car was
    # listed first). A race that no car finished has no winner.
    winners = [
        {row["label"] for row in track["leaderboard"] if row["finished"] and row["position"] == 1}
        for track in metrics["tracks"]
    ]
    return {
        "races": len(metrics["tracks"]),
        "finished_rate": mean(learned, lambda c: metrics["cars"][c]["lap_completion_rate"]),
        "crash_rate": mean(learned, lambda c: metrics["cars"][c]["crash_rate"]),
        "win_rate": sum(bool(w & set(learned)) for w in winners) / len(metrics["tracks"]),
        "scripted_win_rate": sum(bool(w & scripted) for w in winners) / len(metrics["tracks"]),
        "mean_position": mean(learned, position.__getitem__),
        "scripted_finished_rate": mean(
            sorted(scripted), lambda c: metrics["cars"][c]["lap_completion_rate"]
        ),
        "scripted_mean_position": mean(sorted(scripted), position.__getitem__),
    }


def scripted_baseline(run_dir: Path, out: Path, seeds: Sequence[int]) -> dict[str, Any]:
    """The scripted driver's metrics.json on each single-car set (``run_dir``'s tracks)."""
    return single_sets(str(run_dir), out / SCRIPTED, seeds, "driver=scripted")


def measure(
    run_dir: Path,
    out: Path,
    baseline: dict[str, Any],
    seeds: Sequence[int],
    race_seeds: Sequence[int],
    checkpoint: str = "best",
    label: str | None = None,
) -> dict[str, Any]:
    """Measure one finished run on every set.

    Args:
        run_dir: the run (read only).
        out: where its evaluations write, ``out/<set>/metrics.json``.
        baseline: ``scripted_baseline``'s metrics, for the lap-time ratios.
        seeds: the benchmark's track seeds; race_seeds: those raced on.
        checkpoint: ``racing-rl eval``'s ``checkpoint``.
        label: the driver's name in the table; None: the run's algorithm.

    Returns:
        The run's row: ``label``, ``algo``, ``seed``, ``run_dir``, ``checkpoint``, the
        training figures of its summary.json (``timesteps``, ``train_s``,
        ``env_steps_per_s``; None if it has none), a dict of ``FIGURES`` plus
        ``lap_time_ratio`` per single-car set, ``race_figures`` per race, and ``grid``
        (``ROTATED``: the races' grids rotated per track).
    """
    cfg = load_run_config(run_dir)
    summary_path = run_dir / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    row: dict[str, Any] = {
        "label": label or str(cfg.algo.name),
        "algo": str(cfg.algo.name),
        "seed": int(cfg.seed),
        "run_dir": str(run_dir),
        "checkpoint": checkpoint,
        "timesteps": summary.get("timesteps"),
        "train_s": summary.get("seconds"),
        "env_steps_per_s": summary.get("env_steps_per_s"),
    }
    chosen = f"checkpoint={override_value(checkpoint)}"
    for name, metrics in single_sets(str(run_dir), out, seeds, chosen).items():
        row[name] = {k: metrics[k] for k in FIGURES}
        row[name]["lap_time_ratio"] = lap_time_ratio(metrics, baseline[name])
    raced = {}
    for name, (cars, extra) in RACES.items():
        entries = [str(run_dir) if e == RUN else e for e in cars]
        raced[name] = metrics = run_eval(
            entries,
            out / name,
            chosen,
            f"laps={RACE_LAPS}",
            seeds_override(race_seeds),
            "difficulty=default",
            "rotate_grid=true",
            *extra,
        )
        row[name] = race_figures(metrics)
    # Traffic always starts on a grid (car collisions): its settings say how.
    row["grid"] = ROTATED if raced["traffic"]["settings"].get("rotate_grid") else LISTED
    return row


#: The table's figures: (set, key, column head, format, True if higher is better).
COLUMNS: tuple[tuple[str, str, str, str, bool], ...] = (
    ("test", "lap_completion_rate", "test: laps", "pct", True),
    ("unseen", "lap_completion_rate", "unseen: laps", "pct", True),
    ("unseen", "crash_rate", "unseen: crashes", "pct", False),
    ("unseen", "lap_time_ratio", "unseen: vs scripted", "ratio", False),
    ("hard", "lap_completion_rate", "hard: laps", "pct", True),
    ("hard", "lap_time_ratio", "hard: vs scripted", "ratio", False),
    ("race", "finished_rate", "race: finished", "pct", True),
    ("race", "win_rate", "race: won", "pct", True),
    ("traffic", "finished_rate", "traffic: finished", "pct", True),
    ("traffic", "mean_position", "traffic: position", "position", False),
    ("traffic", "scripted_mean_position", "traffic: scripted position", "position", True),
)


def cell(value: float | None, style: str) -> str:
    """One table cell: a percentage, a ratio (``0.92×``), a position or ``–``."""
    if value is None or math.isnan(value):
        return "–"
    if style == "pct":
        return f"{100 * value:.0f} %"
    if style == "ratio":
        return f"{value:.2f}×"
    return f"{value:.2f}"


def aggregate(rows: Sequence[dict[str, Any]]) -> tuple[list[float], list[float]]:
    """The mean and the worst of each of ``COLUMNS`` over ``rows``.

    The mean leaves out NaNs (a seed without the figure: no lap completed to time); the
    worst is NaN where any seed has none, as no figure is worse than a seed without one.
    """
    means, worst = [], []
    for name, key, _, _, higher in COLUMNS:
        values = np.array([row[name][key] for row in rows], dtype=float)
        known = values[~np.isnan(values)]
        means.append(float(known.mean()) if len(known) else math.nan)
        if len(known) < len(values):
            worst.append(math.nan)
        else:
            worst.append(float(values.min() if higher else values.max()))
    return means, worst


def markdown(rows: Sequence[dict[str, Any]], baseline: dict[str, Any]) -> str:
    """The results table: a row per run (seed), the mean and the worst per driver, and the
    scripted driver."""
    head = ["driver", "seed", "timesteps", *(c[2] for c in COLUMNS)]
    table: list[list[str]] = []

    def line(driver: str, seed: str, timesteps: str, values: Sequence[float]) -> list[str]:
        return [
            driver,
            seed,
            timesteps,
            *(cell(v, c[3]) for v, c in zip(values, COLUMNS, strict=True)),
        ]

    labels = list(dict.fromkeys(row["label"] for row in rows))
    for label in labels:
        group = [row for row in rows if row["label"] == label]
        for row in group:
            steps = f"{row['timesteps']:,}" if row.get("timesteps") else "–"
            values = [row[name][key] for name, key, *_ in COLUMNS]
            table.append(line(label, str(row["seed"]), steps, values))
        if len(group) > 1:
            means, worst = aggregate(group)
            table.append(line(f"**{label}: mean**", "", "", means))
            table.append(line(f"**{label}: worst**", "", "", worst))
    table.append(line("scripted driver", "–", "–", scripted_figures(rows, baseline)))
    return markdown_table(head, table, right=range(1, len(head))) + "\n"


def scripted_win_rate(race: dict[str, float]) -> float:
    """The scripted cars' share of race wins in ``race_figures``' output.

    Results saved before ``scripted_win_rate`` was recorded give it only where it follows
    from the rest: when the scripted car finished every race, every race had a winner, and
    a race the learned car did not win the scripted car did. Otherwise NaN (a ``–`` cell).
    """
    if "scripted_win_rate" in race:
        return race["scripted_win_rate"]
    return 1.0 - race["win_rate"] if race["scripted_finished_rate"] == 1.0 else math.nan


def scripted_figures(rows: Sequence[dict[str, Any]], baseline: dict[str, Any]) -> list[float]:
    """The scripted driver's value of each of ``COLUMNS``: its own runs on the single-car
    sets, and in races the scripted cars' side of the learned rows' races (averaged)."""
    mirrored = {
        ("race", "finished_rate"): lambda r: r["scripted_finished_rate"],
        ("race", "win_rate"): scripted_win_rate,
        ("traffic", "finished_rate"): lambda r: r["scripted_finished_rate"],
        ("traffic", "mean_position"): lambda r: r["scripted_mean_position"],
    }
    values = []
    for name, key, *_ in COLUMNS:
        if name in baseline and key == "lap_time_ratio":  # itself, where it completed laps
            values.append(math.nan if math.isnan(baseline[name]["mean_lap_time_s"]) else 1.0)
        elif name in baseline:
            values.append(baseline[name][key])
        elif (name, key) in mirrored and rows:
            values.append(float(np.mean([mirrored[name, key](row[name]) for row in rows])))
        else:
            values.append(math.nan)
    return values


#: The keys of a ``results.json`` that ``--render`` reads.
RESULTS_KEYS = ("benchmark_seeds", "race_seeds", "rows", "scripted", "command", "date")


def read_results(path: Path) -> dict[str, Any]:
    """A saved ``results.json``: its figures that are ``null`` (strict JSON's spelling of
    NaN, a figure with no lap to time) are NaN again, as ``benchmark`` computed them.

    Raises:
        FileNotFoundError: there is no ``path``.
        SystemExit: ``path`` is a directory, not JSON, or JSON without ``RESULTS_KEYS``
            (another file than a results.json of this script), naming it.
    """
    wanted = "give the results.json of a benchmark dir (<runs>/<stamp>/results.json)"
    if path.is_dir():
        raise SystemExit(f"{path} is a directory: {wanted}.")
    try:
        results = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise SystemExit(f"{path} is not JSON ({err}): {wanted}.") from None
    missing = [k for k in RESULTS_KEYS if not isinstance(results, dict) or k not in results]
    if missing:
        raise SystemExit(
            f"{path} is not a results.json of benchmark_algos.py (no {', '.join(missing)}): "
            f"{wanted}."
        )
    for figures in [
        *results["scripted"].values(),
        *(r for row in results["rows"] for r in row.values()),
    ]:
        if isinstance(figures, dict):
            figures.update({k: math.nan for k, v in figures.items() if v is None})
    return results


def merge(sources: list[dict[str, Any]]) -> dict[str, Any]:
    """Combine saved results: a later file's row for a driver and seed replaces an earlier one's.

    Lets one driver be re-measured (or re-trained after tuning) without re-running the
    others. Each row keeps where it came from (``source``: an index into ``sources``).

    Raises:
        SystemExit: the files were measured on other benchmark or race tracks, the
            scripted driver's figures differ by more than 0.1 % between them (another
            simulator), or their races started on a grid rotated per track and in a fixed
            order (``ROTATED``, ``LISTED``): their rows would not compare.
    """

    def same(a: dict[str, Any], b: dict[str, Any]) -> bool:
        return all(
            math.isclose(a[s][k], b[s][k], rel_tol=1e-3)
            or (math.isnan(a[s][k]) and math.isnan(b[s][k]))
            for s in SETS
            for k in FIGURES
        )

    rows: dict[tuple[str, int], dict[str, Any]] = {}
    for index, results in enumerate(sources):
        if not same(results["scripted"], sources[0]["scripted"]):
            raise SystemExit(
                "The scripted driver's figures differ between the results files: they were "
                "measured on other tracks or another simulator, so their rows do not compare."
            )
        for key in ("benchmark_seeds", "race_seeds"):
            if results[key] != sources[0][key]:
                raise SystemExit(
                    f"The results files were measured on other tracks ({key}: "
                    f"{len(results[key])} from {results[key][:1]} against "
                    f"{len(sources[0][key])} from {sources[0][key][:1]}), so their rows do "
                    "not compare. Measure again with the same tracks.benchmark and --race-tracks."
                )
        own: dict[tuple[str, int], str] = {}  # a later file replaces rows; one file may not
        for row in results["rows"]:
            key = row["label"], row["seed"]
            if key in own:
                raise SystemExit(
                    f"One results file holds two rows of {key[0]!r} seed {key[1]} ({own[key]} "
                    f"and {row['run_dir']}): one would hide the other. Measure them with a "
                    "--label each."
                )
            own[key] = row["run_dir"]
            rows[key] = {**row, "source": index}
    grids = {row.get("grid", LISTED) for row in rows.values()}
    if len(grids) > 1:
        raise SystemExit(
            "Some of the rows raced on a grid rotated per track, others in a fixed order "
            "(the learned cars on slots 1 and 4, measured before eval's rotate_grid): pole "
            "is worth places, so their race figures do not compare. Measure the older runs "
            "again."
        )
    order = {label: i for i, label in enumerate(ALGOS)}
    ordered = sorted(rows.values(), key=lambda r: (order.get(r["label"], len(order)), r["seed"]))
    return {
        "sources": sources,
        "rows": ordered,
        "scripted": sources[0]["scripted"],
        "grid": grids.pop() if grids else ROTATED,
    }


def provenance(results: dict[str, Any], rows: Sequence[dict[str, Any]]) -> str:
    """One Markdown list item: the rows, command, date, git commit and packages of a
    results file."""
    environment = results["environment"]
    versions = ", ".join(f"{k} {v}" for k, v in environment["packages"].items() if v)
    git = environment["git"]
    measured = "; ".join(
        f"{row['label']} seed {row['seed']}: {row['run_dir']}"
        + ("" if row["checkpoint"] == "best" else f" (checkpoint {row['checkpoint']})")
        for row in rows
    )
    return (
        f"- {measured}: `{results['command']}` on {results['date']}; "
        f"git {git.get('commit')}{' (dirty)' if git.get('dirty') else ''}; "
        f"{environment['platform']}, Python {environment['python']}; {versions}.\n"
    )


def section(sources: list[dict[str, Any]]) -> str:
    """The Markdown section of saved results (see ``main`` and ``merge``)."""
    merged = merge(sources)
    first = sources[0]
    low, high = first["benchmark_seeds"][0], first["benchmark_seeds"][-1] + 1
    races = len(first["race_seeds"])
    items = "".join(
        provenance(results, [row for row in merged["rows"] if row["source"] == index])
        for index, results in enumerate(sources)
        if any(row["source"] == index for row in merged["rows"])
    )
    return (
        "## Held-out benchmark\n\n"
        "Produced by `python scripts/benchmark_algos.py` (commands, run dirs and versions "
        "below); each row is one run's `best/` checkpoint, deterministic policy, cars "
        "from a standing start. *test*: the 20 test tracks (`tracks.test`), one lap. "
        f"*unseen*: the {high - low} benchmark tracks, seeds [{low}, {high}) "
        "(`tracks.benchmark`, never trained, validated or tuned on), default generator, "
        "one lap; *hard*: the same seeds with `difficulty=hard` (narrower, tighter, "
        "twice the obstacles). *vs scripted*: mean lap time over the scripted "
        "pure-pursuit driver's on the tracks both completed (lower is faster). "
        f"*race*: {RACE_LAPS} laps against the scripted driver on "
        + ("the benchmark tracks" if races == high - low else f"the first {races} of them")
        + ", no contact; *won*: the learned car first. *traffic*: the same "
        "races with 2 learned and 2 scripted cars starting two abreast, "
        + (
            "the grid rotated per track (each car starts once from each slot over 4 tracks), "
            if merged["grid"] == ROTATED
            else "the learned cars on grid slots 1 and 4 on every track (pole is worth "
            "places: measured before eval rotated the grid), "
        )
        + "car collisions on (a touch crashes both); *finished*: share of the learned cars that "
        "completed the laps; *position*: mean finishing position (1–4) of the learned "
        "cars, *scripted position* that of the scripted ones. The *worst* row takes each "
        "column's worst seed (`–` where a seed has no figure: no lap to time); the "
        "scripted driver's race columns are the scripted cars' "
        "side of the races above, averaged.\n\n"
        f"{markdown(merged['rows'], merged['scripted'])}\n"
        "Rows by the command that measured them (`--render` merges several "
        "`results.json`):\n\n" + items
    )


def write_markdown(sources: list[dict[str, Any]], out: Path) -> str:
    """Write the section of saved results into ``out``; returns the section.

    The section sits between ``BEGIN`` and ``END`` markers: an existing one is replaced,
    otherwise it is appended; the rest of ``out`` is kept.
    """
    text = section(sources)
    marked = f"{BEGIN}\n{text}{END}\n"
    old = out.read_text() if out.is_file() else "# Benchmarks\n"
    if BEGIN in old and END in old:
        before, rest = old.split(BEGIN, 1)
        after = rest.split(END, 1)[1].lstrip("\n")
        new = before + marked + ("\n" + after if after else "")
    else:
        new = old.rstrip("\n") + "\n\n" + marked
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, lambda tmp: tmp.write_text(new))
    return text


def missing_dirs(path: Path) -> list[Path]:
    """``path`` and those of its parents that do not exist yet, deepest first: what making
    ``path`` makes."""
    return [p for p in (path, *path.parents) if not p.exists()]


@contextlib.contextmanager
def removed_if_stopped(directories: Sequence[Path]) -> Iterator[None]:
    """Remove those of ``directories`` that are empty when the block ends with an
    exception (a refusal, a failed command, Ctrl-C), deepest first, so that a benchmark
    stopped before writing into them leaves no empty dir behind; ones it wrote into stay."""
    try:
        yield
    except BaseException:
        for directory in sorted(set(directories), key=lambda p: len(p.parts), reverse=True):
            if directory.is_dir() and not any(directory.iterdir()):
                directory.rmdir()
        raise


@contextlib.contextmanager
def new_runs_dir(parent: Path) -> Iterator[Path]:
    """A fresh ``<parent>/<date>_<time>`` dir (``_2``, ``_3``… if two benchmarks start
    in the same second: they would otherwise write into the same dirs), removed again if
    the benchmark stops before writing into it (``racing-rl train`` refusing an override,
    a ``--measure`` run without ``--checkpoint``): no empty dir is left behind."""
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, 1000):
        runs = parent / (stamp if attempt == 1 else f"{stamp}_{attempt}")
        try:
            runs.mkdir()
        except FileExistsError:
            continue
        with removed_if_stopped([runs]):
            yield runs
        return
    raise SystemExit(f"Could not create a new benchmark dir under {parent}.")


def train(algo: str, seed: int, runs: Path, overrides: Sequence[str]) -> tuple[Path, float]:
    """``racing-rl train algo=<algo> seed=<seed>`` (+ ``overrides``) into
    ``runs/<algo>_seed<seed>``; returns the run dir and the command's wall time [s]."""
    run_dir = runs / f"{algo}_seed{seed}"
    started = time.perf_counter()
    run = f"hydra.run.dir={override_value(run_dir)}"  # --runs may hold '=' or ','
    racing_rl("train", f"algo={algo}", f"seed={seed}", *overrides, run)
    return run_dir, time.perf_counter() - started


def benchmark(
    trained: Sequence[tuple[Path, float | None]],
    runs: Path,
    seeds: Sequence[int],
    race_seeds: Sequence[int],
    checkpoint: str = "best",
    label: str | None = None,
) -> dict[str, Any]:
    """Measure finished runs and the scripted driver (on the first run's tracks and rules).

    Args:
        trained: (run dir, wall time of its training [s] or None) per run.
        runs: the benchmark dir; evaluations write under ``runs/eval/``.
        seeds: the benchmark's track seeds; race_seeds: those raced on.
        checkpoint: ``racing-rl eval``'s ``checkpoint`` for every run.
        label: the driver's name of every row; None: each run's algorithm.

    Returns:
        ``benchmark_seeds``, ``race_seeds``, ``rows`` (``measure``'s, in order) and
        ``scripted`` (``FIGURES`` per single-car set).

    Raises:
        SystemExit: if a run's tracks overlap the benchmark's (``check_held_out``), or two
            runs would make the row of one label and seed, or a run races on other tracks or
            rules than the first (``scripted_world``), before anything is measured.
        CheckpointError: a run has no ``checkpoint``, also before anything is measured.
    """
    rows_of: dict[tuple[str, int], Path] = {}
    first = trained[0][0]
    theirs = scripted_world(first)
    for run_dir, _ in trained:
        check_held_out(run_dir, seeds)
        ours = scripted_world(run_dir)
        differing = [key for key in theirs if theirs[key] != ours[key]]
        if differing:  # the scripted driver's figures are measured once, on the first's
            raise SystemExit(
                f"{run_dir} races on other tracks or rules than {first} ("
                + ", ".join(f"{k}: {ours[k]} against {theirs[k]}" for k in differing)
                + "): the scripted driver's figures, measured on the first run's, would not "
                "be its baseline. Measure them with a --measure each."
            )
        cfg = load_run_config(run_dir)
        key = label or str(cfg.algo.name), int(cfg.seed)
        if key in rows_of:  # one row would hide the other in the tables
            raise SystemExit(
                f"{rows_of[key]} and {run_dir} would both be the row of {key[0]!r} seed "
                f"{key[1]}: measure them with a --label each."
            )
        rows_of[key] = run_dir
    for run_dir, _ in trained:  # a run without best/: before the scripted driver races
        resolve_model(run_dir, checkpoint)
    baseline = scripted_baseline(trained[0][0], runs / "eval", seeds)
    rows = []
    for index, (run_dir, wall) in enumerate(trained):
        out = runs / "eval" / f"{index}_{run_dir.name}"
        row = measure(run_dir, out, baseline, seeds, race_seeds, checkpoint, label)
        if wall is not None:
            row["wall_s"] = wall
        rows.append(row)
    return {
        "benchmark_seeds": list(seeds),
        "race_seeds": list(race_seeds),
        "rows": rows,
        "scripted": {name: {k: m[k] for k in FIGURES} for name, m in baseline.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], fromfile_prefix_chars="@"
    )
    parser.add_argument(
        "--algos",
        nargs="+",
        default=None,
        help=f"algorithms to train (default: {' '.join(ALGOS)})",
    )
    parser.add_argument(
        "--seeds",
        nargs="+",
        type=int,
        default=None,
        help=f"seeds to train (default: {' '.join(map(str, SEEDS))})",
    )
    parser.add_argument(
        "--measure",
        type=Path,
        nargs="+",
        default=None,
        help="finished run dirs to measure instead of training (only read)",
    )
    parser.add_argument(
        "--label",
        default=None,
        help="driver name of --measure's runs (default: each run's algorithm)",
    )
    parser.add_argument(
        "--checkpoint", default="best", help="racing-rl eval's checkpoint (default: %(default)s)"
    )
    parser.add_argument(
        "--race-tracks",
        type=int,
        default=None,
        help="race on the first N benchmark tracks (default: all)",
    )
    parser.add_argument(
        "--runs",
        type=Path,
        default=Path("outputs/benchmark"),
        help="benchmark dirs go here (default: %(default)s)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="the Markdown file whose section is written (default: benchmark.md beside "
        "results.json; with --render, docs/benchmarks.md)",
    )
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every training run")
    parser.add_argument(
        "--render",
        type=Path,
        nargs="+",
        default=None,
        help="rewrite --out's section from saved results.json files; a later file's row "
        "for a driver and seed replaces an earlier one's (@list.txt: the files listed in "
        "list.txt, one per line; docs/results/rendered.txt is docs/benchmarks.md's)",
    )
    args = parser.parse_args()
    # The command line's refusals before the first directory is made: the probes below
    # make --out's and --runs's (removed again if a later refusal stops the benchmark).
    training = {"--algos": args.algos, "--seeds": args.seeds, "overrides": args.overrides}
    given = [name for name, value in training.items() if value]
    if given and (args.measure is not None or args.render is not None):
        parser.error(
            f"{', '.join(given)} set the runs to train; --measure and --render train "
            "nothing: leave them out"
        )
    if args.seeds is not None and min(args.seeds) < 0:  # else refused by its run's train
        parser.error(f"--seeds must be >= 0 (racing-rl train's seed=), got {args.seeds}.")
    if args.render is None and args.race_tracks is not None and args.race_tracks < 1:
        parser.error("--race-tracks must be >= 1 (leave it out to race on every track)")
    for run_dir in args.measure or []:  # before a benchmark dir is made for them
        check_simulator_run(run_dir, "the benchmark")
    rendered = [read_results(path) for path in args.render or []]
    made = missing_dirs(args.runs.absolute())
    if args.out is not None:
        made += missing_dirs(args.out.absolute().parent)
    with removed_if_stopped(made):  # a refusal after the probes leaves no empty dir
        reason = None if args.out is None else cannot_write(args.out)
        if reason is not None:  # before the measurement, which writes it last
            parser.error(f"--out {args.out} cannot be written: {reason}; give a Markdown file")
        if args.render is not None:
            out = args.out or Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
            text = write_markdown(rendered, out)
            print(text)
            print(f"written to {out}")
            return
        reason = cannot_write(args.runs / "results.json")
        if reason is not None:
            parser.error(f"--runs {args.runs} cannot hold the benchmark dirs: {reason}")
        with new_runs_dir(args.runs) as runs:  # removed if nothing is written into it
            run_benchmark(args, runs)


def run_benchmark(args: argparse.Namespace, runs: Path) -> None:
    """Train (or take ``--measure``'s runs), measure them into ``runs`` and write
    ``results.json`` and the Markdown (``--out``, else ``runs/benchmark.md``)."""
    seeds = benchmark_seeds()
    race_seeds = seeds[: args.race_tracks] if args.race_tracks else seeds
    environment = environment_record()  # before training: the code that runs
    if args.measure is not None:
        trained: list[tuple[Path, float | None]] = [(r, None) for r in args.measure]
    else:
        algos, train_seeds = args.algos or ALGOS, args.seeds or SEEDS
        trained = [train(a, s, runs, args.overrides) for a in algos for s in train_seeds]
    results = {
        "bench": "algos",
        "command": shlex.join(["python", "scripts/benchmark_algos.py", *sys.argv[1:]]),
        "date": time.strftime("%Y-%m-%d"),
        "environment": environment,
        **benchmark(trained, runs, seeds, race_seeds, args.checkpoint, args.label),
    }
    write_json(runs / "results.json", results)
    out = args.out or runs / "benchmark.md"  # docs/benchmarks.md only by --render's choice
    text = write_markdown([results], out)
    print(text)
    print(f"written to {out}; evaluations and results.json in {runs}")
    print(strict_json(results))


if __name__ == "__main__":
    with reported("benchmark_algos.py", {"checkpoint": "--checkpoint"}):
        main()

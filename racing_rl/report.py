"""``racing-rl report <sweep dir>``: one table of a sweep's jobs and their learning curves.

Reads what every ``racing-rl train`` job leaves in its run directory — ``.hydra/
overrides.yaml``, ``run.json`` (status, error), ``summary.json`` (objective, best
validation metrics, throughput) and the TensorBoard events in ``tb/`` — and writes, into
the sweep dir (or ``--out``):

* ``report.md``: a Markdown table sorted by objective (best first; jobs that did not
  complete last, with their error, and without the figures of an earlier leg), also
  printed;
* ``report.csv``: the same rows;
* ``learning_curves.png``: each job's validation metric (``eval/lap_completion_rate``,
  or ``eval/mean_return`` for ``objective=return``) against timesteps.

Works for any sweep dir Hydra writes (basic sweeper, Optuna, every launcher) and for a
dir of single runs: a job is any subdirectory with a ``.hydra/`` folder.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import OmegaConf

from racing_rl.config import job_name, recorded_sweep
from racing_rl.errors import print_error
from racing_rl.evaluation.tables import markdown_table
from racing_rl.files import write_atomic
from racing_rl.interrupts import how, interrupt_signal
from racing_rl.objective import objective_kind
from racing_rl.provenance import leg_status, read_legs

if TYPE_CHECKING:  # matplotlib is imported when a plot is drawn
    from hydra.core.override_parser.types import Override
    from matplotlib.figure import Figure

#: Report columns: (header, Job attribute, format of a number).
COLUMNS = (
    ("job", "name", ""),
    ("overrides", "swept", ""),
    ("objective", "objective", ".4f"),
    ("lap completion", "lap_completion_rate", ".0%"),
    ("mean lap (s)", "mean_lap_time_s", ".2f"),
    ("env-steps/s", "env_steps_per_s", ",.0f"),
    ("training time (s)", "seconds", ",.0f"),  # model.learn, the last leg's
    ("status", "status", ""),
)
#: How a job that did not complete goes on (docs/usage.md, Sweeps): the sweep's command again.
CONTINUE = (
    "the sweep's command again continues the sweep: a basic sweep's, with "
    "hydra.sweep.dir=<this sweep>, resumes this job from its newest checkpoint (or starts "
    "it again); an Optuna study's runs the trials it lacks"
)


@dataclass
class Job:
    """One job of a sweep, as read from its run directory."""

    path: Path
    name: str
    overrides: list[str]
    status: str
    error: str | None = None
    objective: float | None = None
    objective_kind: str = "laps"
    lap_completion_rate: float | None = None
    mean_lap_time_s: float | None = None
    env_steps_per_s: float | None = None
    seconds: float | None = None
    swept: str = ""
    curve: list[tuple[int, float]] = field(default_factory=list)


def _job_order(path: Path) -> tuple[int, str]:
    name = job_name(path)
    return (int(name) if name.isdigit() else sys.maxsize, path.name)


def read_job(path: Path) -> Job:
    """Read one job directory (see the module doc). Missing files make a failed job."""
    overrides_file = path / ".hydra" / "overrides.yaml"
    overrides = list(OmegaConf.load(overrides_file)) if overrides_file.is_file() else []
    job = Job(path, job_name(path), [str(o) for o in overrides], "failed")
    try:
        legs = read_legs(path)
    except FileNotFoundError:
        job.error = "no run.json: the job stopped before training started (see its log)"
        return job
    except ValueError as err:
        job.error = f"run.json is damaged ({err}): see the job's log"
        return job
    if not legs:
        job.error = "run.json records no leg: see the job's log"
        return job
    job.status, job.error = leg_status(legs[-1]), legs[-1].get("error")
    if job.status == "killed" and job.error is None:
        job.error = (
            f"its process ({legs[-1].get('pid')}) ended without recording how: killed "
            f"(SIGKILL, out of memory) or its machine stopped; {CONTINUE}"
        )
    if job.status == "interrupted" and job.error is None:
        steps = legs[-1].get("end_timesteps")
        job.error = (
            f"stopped by a signal at {steps:,} timesteps, its checkpoint saved"
            if isinstance(steps, int)
            else "stopped by a signal before its first update, nothing saved"
        ) + f"; {CONTINUE}"
    job.objective_kind = _objective_kind(path)
    summary_file = path / "summary.json"
    summary = json.loads(summary_file.read_text()) if summary_file.is_file() else None
    # A summary of an earlier leg (resumed for more steps, then stopped) is not the job's.
    if summary is not None and job.status == "completed":
        job.env_steps_per_s = summary.get("env_steps_per_s")
        job.seconds = summary.get("seconds")
        best = summary.get("best") or {}
        job.lap_completion_rate = best.get("lap_completion_rate")
        lap_time = best.get("mean_lap_time_s")
        job.mean_lap_time_s = None if lap_time is None or math.isnan(lap_time) else lap_time
        objective = summary.get("objective") or {}
        job.objective = objective.get("value")
    job.curve = learning_curve(path / "tb", _curve_tag(job.objective_kind))
    return job


def _objective_kind(path: Path) -> str:
    """What a job's validation ranks by, from its saved config (``objective_kind``)."""
    return objective_kind(OmegaConf.load(path / ".hydra" / "config.yaml"))


def _curve_tag(objective_kind: str) -> str:
    return "eval/mean_return" if objective_kind == "return" else "eval/lap_completion_rate"


def learning_curve(tb_dir: Path, tag: str) -> list[tuple[int, float]]:
    """``(timesteps, value)`` of scalar ``tag`` in a TensorBoard log dir; [] if none."""
    if not tb_dir.is_dir():
        return []
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tb_dir), size_guidance={"scalars": 0})
    # A resumed leg goes on from a checkpoint before the stretch the interruption lost:
    # TensorBoard drops the lost stretch's points, and warns of "a TensorFlow restart".
    tensorboard_log = logging.getLogger("tensorboard")
    level = tensorboard_log.level
    tensorboard_log.setLevel(logging.ERROR)
    try:
        events.Reload()
    finally:
        tensorboard_log.setLevel(level)
    if tag not in events.Tags()["scalars"]:
        return []
    return [(e.step, e.value) for e in events.Scalars(tag)]


def read_sweep(sweep_dir: Path) -> tuple[list[Job], list[str]]:
    """The jobs of a sweep dir, best objective first, and the overrides all jobs share.

    Raises:
        FileNotFoundError: if ``sweep_dir`` holds no job directory.
    """
    paths = sorted(
        (p.parent.parent for p in sweep_dir.glob("*/.hydra/config.yaml")), key=_job_order
    )
    if not paths:
        one_run = ""
        if (sweep_dir / ".hydra" / "config.yaml").is_file():
            one_run = (
                f" It is one run's directory: pass the directory that holds it "
                f"({sweep_dir.resolve().parent}) to compare it with the runs beside it."
            )
        raise FileNotFoundError(
            f"{sweep_dir} holds no job directories (subdirectories with .hydra/config.yaml). "
            f"Pass the dir of a multirun, e.g. outputs/multirun/<date>/<time>.{one_run}"
        )
    jobs = [read_job(p) for p in paths]
    swept = _swept_keys(sweep_dir, paths[0])
    shared = [
        o
        for o in jobs[0].overrides
        if all(o in j.overrides for j in jobs) and o.split("=", 1)[0].lstrip("+~") not in swept
    ]
    for job in jobs:
        job.swept = " ".join(o for o in job.overrides if o not in shared) or "(none)"
    # Ranked within an objective kind: a lap completion and a return do not compare.
    jobs.sort(
        key=lambda j: (
            j.status != "completed",
            j.objective is None,
            j.objective_kind,
            -(j.objective or 0),
        )
    )
    return jobs, shared


def _swept_keys(sweep_dir: Path, job: Path) -> set[str]:
    """The keys a sweep varies, though every job may have drawn one value (a search's
    first trials, a sweep stopped after its first job): its sweep overrides (``seed=0,1``
    in ``multirun.yaml``, which the basic sweeper writes) and its sweeper's search space
    (``hydra.sweeper.params`` in ``job``'s ``.hydra/hydra.yaml``: Optuna's)."""
    keys = {o.key_or_group for o in _sweep_overrides(sweep_dir)}
    hydra_file = job / ".hydra" / "hydra.yaml"
    if hydra_file.is_file():
        keys |= set(OmegaConf.select(OmegaConf.load(hydra_file), "hydra.sweeper.params") or {})
    return keys


def _sweep_overrides(sweep_dir: Path) -> list[Override]:
    """The sweep overrides (``seed=0,1``) that ``sweep_dir/multirun.yaml`` records; []
    without one (an Optuna study writes none) or if it cannot be read."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    try:
        overrides = OverridesParser.create().parse_overrides(recorded_sweep(sweep_dir) or [])
    except OverrideParseException:
        return []
    return [o for o in overrides if o.is_sweep_override()]


def planned_jobs(sweep_dir: Path) -> int | None:
    """How many jobs a basic sweep launches: the product of its sweep overrides' lengths
    (``seed=0,1 algo=ppo,sac``: 4); None where it cannot tell (no ``multirun.yaml``, a
    sweep that is not a list or range, e.g. an Optuna search's)."""
    overrides = _sweep_overrides(sweep_dir)
    if not overrides:
        return None
    from hydra.errors import HydraException

    try:
        return math.prod(sum(1 for _ in o.sweep_iterator()) for o in overrides)
    except HydraException:  # an interval (a search's), or a glob of a group's options
        return None


def _cell(value: Any, spec: str) -> str:
    if value is None:
        return "—"
    return format(value, spec) if isinstance(value, float | int) and spec else str(value)


def markdown(jobs: Sequence[Job], shared: Sequence[str], sweep_dir: Path) -> str:
    """The report as Markdown: shared overrides, the table, then failed jobs' errors."""
    out = io.StringIO()
    out.write(f"# Sweep report: {sweep_dir}\n\n")
    done = sum(j.status == "completed" for j in jobs)
    running = sum(j.status == "running" for j in jobs)
    planned = planned_jobs(sweep_dir)
    if planned is not None and planned > len(jobs) and running:
        out.write(
            f"The sweep is running: {len(jobs)} of its {planned} jobs have started "
            f"({running} running now), {done} completed. "
        )
    elif planned is not None and planned > len(jobs):
        out.write(
            f"{len(jobs)} of the sweep's {planned} jobs ran ({planned - len(jobs)} never "
            "started: the sweep's command again, with hydra.sweep.dir=<this dir>, runs them), "
            f"{done} completed. "
        )
    else:
        out.write(f"{len(jobs)} job{'s' if len(jobs) != 1 else ''}, {done} completed. ")
    out.write(f"Shared overrides: `{' '.join(shared)}`\n\n" if shared else "\n\n")
    rows = ([_cell(getattr(job, a), f) for _, a, f in COLUMNS] for job in jobs)
    out.write(markdown_table([h for h, _, _ in COLUMNS], rows) + "\n")
    kinds = sorted({job.objective_kind for job in jobs if job.objective is not None})
    if len(kinds) > 1:
        out.write(
            f"\nThe jobs rank by different objectives ({', '.join(kinds)}: objective=laps "
            "is lap completion, then lap time; objective=return the mean episode return): "
            "each job ranks among those of its own objective.\n"
        )
    if not any(job.curve for job in jobs):
        out.write(
            "\nNo job has validation curves (eval/ in tb/): trained with validation.every=0, "
            "or stopped before its first validation; learning_curves.png is empty.\n"
        )
    failed = [j for j in jobs if j.status not in ("completed", "running")]
    if failed:
        out.write("\nJobs that did not complete:\n\n")
        for job in failed:
            out.write(f"- job {job.name} ({job.status}): {job.error or 'no error recorded'}\n")
    return out.getvalue()


def write_csv(jobs: Sequence[Job], path: Path) -> None:
    """One row per job: the table's columns plus the job dir, all overrides and error;
    written whole or not at all (``write_atomic``)."""

    def write(tmp: Path) -> None:
        with tmp.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow([h for h, _, _ in COLUMNS] + ["all overrides", "error", "dir"])
            for job in jobs:
                values = ["" if getattr(job, a) is None else getattr(job, a) for _, a, _ in COLUMNS]
                writer.writerow([*values, " ".join(job.overrides), job.error or "", str(job.path)])

    write_atomic(path, write)


def plot_curves(jobs: Sequence[Job], path: Path) -> Figure:
    """Draw every job's validation metric against timesteps and save it to ``path``
    (``learning_curves.png``), whole or not at all (``write_atomic``: most of the drawing
    happens as it is saved).

    Returns:
        The figure saved: one axes, or two (lap completion left, mean returns right,
        dashed) for a sweep whose jobs optimised both kinds of objective.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 5), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    kinds = {j.objective_kind for j in jobs if j.curve}
    # Lap completion (0-1) and returns (hundreds) do not share an axis: returns go right.
    returns = axes.twinx() if kinds == {"laps", "return"} else axes
    for number, job in enumerate(jobs):
        if job.curve:
            steps, values = zip(*job.curve, strict=True)
            drawn_on = returns if job.objective_kind == "return" else axes
            drawn_on.plot(
                steps,
                values,
                marker="o",
                markersize=3,
                label=f"job {job.name}",
                color=f"C{number % 10}",
                linestyle="--" if drawn_on is not axes else "-",
            )
    axes.set_xlabel("timesteps")
    axes.set_ylabel(
        "validation mean return" if kinds == {"return"} else "validation lap completion"
    )
    if returns is not axes:
        returns.set_ylabel("validation mean return (dashed)")
    axes.set_title("Learning curves (validation tracks)")
    axes.grid(alpha=0.3)
    lines = axes.lines + (returns.lines if returns is not axes else [])
    if lines:
        axes.legend(handles=lines, fontsize=8, loc="best", title="report.md: overrides per job")
    else:
        axes.text(0.5, 0.5, "no validation curves (validation.every=0?)", ha="center")
    figure.tight_layout()
    write_atomic(path, figure.savefig, keep_suffix=True)  # savefig's format: the suffix
    return figure


class ReportInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM, which ``racing_rl.interrupts`` turns into a KeyboardInterrupt)
    while ``report`` ran.

    Attributes:
        written: the names of the files it had written (each whole), in order: none, or
            some of ``report.md``, ``report.csv``, ``learning_curves.png``.
    """

    def __init__(self, written: Sequence[str]) -> None:
        super().__init__()
        self.written = list(written)


def report(sweep_dir: Path, out_dir: Path | None = None) -> str:
    """Write ``report.md``, ``report.csv`` and ``learning_curves.png``, each whole or not
    at all (an earlier one stays as it was); return the Markdown.

    Raises:
        FileNotFoundError: if ``sweep_dir`` holds no job directory.
        ReportInterrupted: on Ctrl-C (SIGTERM), naming the files written before it, raised
            from the KeyboardInterrupt (``interrupts.interrupt_signal`` tells which).
    """
    written: list[str] = []
    try:
        jobs, shared = read_sweep(sweep_dir)
        out_dir = out_dir or sweep_dir
        out_dir.mkdir(parents=True, exist_ok=True)
        text = markdown(jobs, shared, sweep_dir)
        write_atomic(out_dir / "report.md", lambda tmp: tmp.write_text(text))
        written.append("report.md")
        write_csv(jobs, out_dir / "report.csv")
        written.append("report.csv")
        plot_curves(jobs, out_dir / "learning_curves.png")
    except KeyboardInterrupt as interrupt:
        raise ReportInterrupted(written) from interrupt
    return text


def main(argv: Sequence[str] | None = None) -> int:
    """``racing-rl report``; returns the exit status (2 without an existing sweep dir, or
    with an ``--out`` that is no directory; 1 if the dir holds no jobs, or the report
    cannot be written; 130 on Ctrl-C, 143 on SIGTERM, with one line naming the files it
    wrote)."""
    parser = argparse.ArgumentParser(
        prog="racing-rl report",
        # sweep_dir is required; it is optional to argparse only so that its absence gets
        # the one-line message below, which argparse's usage would otherwise bracket.
        usage="%(prog)s [-h] [--out OUT] sweep_dir",
        description="Tabulate a sweep's jobs (objective, validation lap completion, lap time, "
        "throughput, training time, status) and plot their learning curves.",
        epilog="examples:\n  racing-rl report outputs/multirun/<date>/<time>\n"
        "  racing-rl report outputs/optuna/ppo_search --out /tmp/ppo_search   # elsewhere",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "sweep_dir",
        type=Path,
        nargs="?",
        help="a multirun dir, e.g. outputs/multirun/<date>/<time>",
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="where to write the report (default: the sweep dir)"
    )
    args = parser.parse_args(argv)
    if args.sweep_dir is None or not args.sweep_dir.is_dir():
        got = (
            "missing the sweep dir" if args.sweep_dir is None else f"{args.sweep_dir}: no such dir"
        )
        print_error("report", f"{got}; pass one: racing-rl report outputs/multirun/<date>/<time>")
        return 2
    if args.out is not None and args.out.exists() and not args.out.is_dir():
        print_error(
            "report",
            f"--out {args.out} is a file; pass a directory (made if need be) for report.md, "
            "report.csv and learning_curves.png",
        )
        return 2
    out = args.out or args.sweep_dir
    try:
        text = report(args.sweep_dir, args.out)
    except FileNotFoundError as err:
        print_error("report", err)
        return 1
    except OSError as err:  # --out under a file, a read-only or full disk
        print_error(
            "report",
            f"cannot write the report into {out}: {err.strerror or err}; pass --out <a "
            "directory you can write>",
        )
        return 1
    except ReportInterrupted as interrupt:
        written = ", ".join(interrupt.written) or "none"
        sig = interrupt_signal(interrupt)
        print_error(
            "report",
            f"interrupted ({how(sig.name)}); of report.md, report.csv and learning_curves.png "
            f"it wrote {written} into {out} (each whole; the others are as they were): run it "
            "again for the whole report",
        )
        return 128 + sig
    print(text)
    print(f"written: {out / 'report.md'}, {out / 'report.csv'}, {out / 'learning_curves.png'}")
    return 0

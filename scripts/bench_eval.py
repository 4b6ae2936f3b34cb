"""Benchmark: ``racing-rl eval``'s races with one torch thread against several.

Races the given runs against each other and the scripted driver (``racing-rl eval
run_dir=[<runs>,scripted]``, in this process, through the same config composition and
``racing_rl.evaluation.command.evaluate`` as the command) with ``torch_threads`` 1 and
``--threads`` (the machine's cores by default), taking turns over ``--rounds`` so that a
slow spell of the machine falls on both, in two conditions:

* **as is**: the machine as it is (the load average before is printed);
* **beside a busy process**: one more process spins on a core meanwhile, as a training
  run does beside ``racing-rl eval follow=true``.

Each step of a race asks every run's policy for a batch of actions (one observation per
track): a few small matrix products. With more than one thread each of them waits for
torch's worker threads to be scheduled, which is what a busy core costs. Usage::

    python scripts/bench_eval.py <run dir> [<run dir> ...] [--seeds 5 6] [--rounds 3]
        [--checkpoint best] [--threads N] [--max-steps 900]

The last line printed is a JSON object with the figures (median seconds per eval, and
the ratio of each thread count's to one thread's in the same condition).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from hydra import compose

from racing_rl.checkpoints.runs import check_simulator_run
from racing_rl.checks import check_track_seeds
from racing_rl.config import initialize, override_value
from racing_rl.errors import ConfigError, reported
from racing_rl.evaluation.command import SCRIPTED, evaluate
from racing_rl.evaluation.tables import format_table


def spin() -> None:
    """Keep one core busy until terminated."""
    while True:
        pass


def timed_eval(args: argparse.Namespace, threads: int, out: Path) -> float:
    """Seconds of one ``racing-rl eval run_dir=[<runs>,scripted] laps=2`` race on
    ``args.seeds`` with ``torch_threads=<threads>``."""
    overrides = [
        f"run_dir=[{','.join(override_value(r) for r in [*args.runs, SCRIPTED])}]",
        f"checkpoint={override_value(args.checkpoint)}",
        f"seeds=[{','.join(str(s) for s in args.seeds)}]",
        "laps=2",
        f"max_steps={args.max_steps}",
        f"torch_threads={threads}",
        f"out_dir={override_value(out)}",
    ]
    with initialize(job_name="eval"):
        cfg = compose(config_name="eval", overrides=overrides)
    start = time.perf_counter()
    evaluate(cfg)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="run dirs whose checkpoints race")
    parser.add_argument(
        "--checkpoint", default="best", help="best, final, latest or a path (default: %(default)s)"
    )
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=[5, 6], help="track seeds (default: %(default)s)"
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="turns of each setting (default: %(default)s)"
    )
    parser.add_argument(
        "--max-steps", type=int, default=900, help="steps per race at most (default: %(default)s)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=max(2, os.cpu_count() or 2),  # one core: two threads on it, still compared
        help="the thread count to compare (default: the CPU count, at least 2: %(default)s)",
    )
    args = parser.parse_args()
    if args.threads < 2 or args.rounds < 1 or args.max_steps < 1:  # eval's, before it starts
        parser.error(
            "--threads must be >= 2 (it is compared with one), --rounds >= 1 and --max-steps "
            f">= 1; got {args.threads}, {args.rounds} and {args.max_steps}"
        )
    try:
        check_track_seeds(args.seeds, "--seeds")
    except ConfigError as err:
        parser.error(str(err))
    for run in args.runs:
        check_simulator_run(Path(run), "bench_eval.py")
    settings = (1, args.threads)
    load = os.getloadavg()[0]
    print(f"load average (1 min) before: {load:.2f}; {os.cpu_count()} cores", flush=True)
    times: dict[str, dict[int, list[float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for condition in ("as is", "beside a busy process"):
            busy = None
            if condition != "as is":
                busy = multiprocessing.Process(target=spin, daemon=True)
                busy.start()
            try:
                timed_eval(args, 1, Path(tmp))  # warm-up: imports, loading
                times[condition] = {n: [] for n in settings}
                for _ in range(args.rounds):
                    for n in settings:
                        seconds = timed_eval(args, n, Path(tmp))
                        times[condition][n].append(seconds)
                        print(f"{condition}, torch_threads={n}: {seconds:.2f} s", flush=True)
            finally:
                if busy is not None:
                    busy.terminate()
                    busy.join()
    figures = {
        condition: {
            f"torch_threads={n}": {
                "median_s": round(statistics.median(runs[n]), 3),
                "vs_one_thread": round(statistics.median(runs[n]) / statistics.median(runs[1]), 2),
            }
            for n in settings
        }
        for condition, runs in times.items()
    }
    columns = {f"threads={n} (× 1)": f"torch_threads={n}" for n in settings}
    table = [
        {"condition": condition}
        | {
            head: f"{row[key]['median_s']:.2f} s ({row[key]['vs_one_thread']:.2f}×)"
            for head, key in columns.items()
        }
        for condition, row in figures.items()
    ]
    print("\n" + format_table(table, ["condition", *columns]))
    print(
        json.dumps(
            {
                "runs": args.runs,
                "seeds": args.seeds,
                "rounds": args.rounds,
                "cpu_count": os.cpu_count(),
                "load_average_before": round(load, 2),
                "python": sys.version.split()[0],
                "figures": figures,
            }
        )
    )


if __name__ == "__main__":
    with reported("bench_eval.py", {"checkpoint": "--checkpoint"}):
        main()

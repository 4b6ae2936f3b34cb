"""``racing-rl eval``: the Hydra app (parse, ``racing_rl.evaluation.command.evaluate``,
print).

``main`` prints the per-track table and the summary (one run) or the leaderboards and
standings (a race); ``CheckRuns`` checks the runs before Hydra creates the output
directory. The ``racing_rl.eval_dir`` resolver (``racing_rl.config``) names that directory.
"""

from __future__ import annotations

import logging
from contextlib import suppress
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from racing_rl.config import SweepSignals, expand_home, hydra_main, job_failed
from racing_rl.errors import RacingRLError, print_error
from racing_rl.evaluation.command import EvalInterrupted, check_runs, evaluate
from racing_rl.evaluation.results import GAME_INFO_FIGURES
from racing_rl.evaluation.tables import (
    ending,
    format_table,
    in_game_phrase,
    not_measured,
    race_tables,
    tracks_phrase,
)
from racing_rl.files import read_record, write_atomic
from racing_rl.interrupts import interrupted, stop

log = logging.getLogger(__name__)


class CheckRuns(SweepSignals):
    """Hydra callback (``hydra.callbacks`` in conf/eval.yaml): ``check_runs`` before Hydra
    creates ``out_dir`` and its log file, so that a failed eval leaves nothing behind; and
    ``SweepSignals``' for a sweep."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Check ``config``.

        Raises:
            SystemExit: 1, after printing the error (``racing_rl.errors.print_error``), if a run
                or its checkpoint is unusable.
        """
        try:
            check_runs(config, OmegaConf.select(config, "hydra.runtime.choices.difficulty"))
        except RacingRLError as err:
            print_error("eval", err)
            raise SystemExit(1) from err


@hydra_main("eval")
def main(cfg: DictConfig) -> None:
    """Hydra entry point of ``racing-rl eval``.

    In a sweep (``-m``) each job writes into its own directory (Hydra's, beside its
    ``eval.log``) unless ``out_dir=`` is given: by the default ``out_dir`` every job of
    ``-m checkpoint=best,final`` would replace the one before's ``metrics.json``.
    """
    hydra = HydraConfig.get()
    if hydra.mode == RunMode.MULTIRUN and not any(
        override.split("=", 1)[0].lstrip("+") == "out_dir" for override in hydra.overrides.task
    ):
        cfg.out_dir = hydra.runtime.output_dir
    else:  # where Hydra made it (conf/eval.yaml): out_dir='~/e' is the home's, not ./~/e
        cfg.out_dir = expand_home(cfg.out_dir)
    out_dir = Path(cfg.out_dir)
    handler = _log_handler()
    log_path = Path(handler.baseFilename) if handler is not None else None
    # None: no earlier eval's log (conf/eval.yaml opens the file at its first line).
    earlier_log = log_path.stat().st_size if log_path is not None and log_path.is_file() else None
    metrics = None
    try:
        metrics = evaluate(cfg, difficulty=hydra.runtime.choices.get("difficulty"))
    except KeyboardInterrupt as interrupt:  # metrics.json is written whole, or not at all
        _stopped(interrupt, out_dir, handler, earlier_log)
    except RacingRLError as err:
        log.error("%s", err)
        _name_earlier_metrics(out_dir)
        job_failed(err)
    except Exception:  # a bug: its traceback follows
        _name_earlier_metrics(out_dir)
        raise
    if metrics is None:  # the window was closed before a race ended: said in the log
        _name_earlier_metrics(out_dir)
        return
    if handler is not None:  # this eval's metrics.json: its log alone beside it
        _keep_own_log(handler, earlier_log or 0)
    out = Path(metrics["out_dir"]) / "metrics.json"
    seeds = [t["track_seed"] for t in metrics["tracks"]]
    game = "bridge" in metrics  # raced in a game: its own track, whatever the seeds
    tracks = tracks_phrase(seeds, metrics["split"], metrics.get("difficulty"))
    if metrics.get("race"):
        races = len(metrics["tracks"])
        print(race_tables(metrics))
        where = (
            in_game_phrase(races, "race")
            if game
            else f"{races} race{'' if races == 1 else 's'} on {tracks}"
        )
        print(f"{where}, {metrics['seconds']:.1f} s; written to {out}")
        return
    columns = ["track_seed", "ending", "lap_time", "progress", "mean_speed"]
    if game:  # what a game always reports of an episode
        columns += ["episode_return", "length"]
    unreported = metrics.get("unreported_info", [])
    unmeasured = [figure for key in unreported for figure in GAME_INFO_FIGURES[key]]
    columns = [c for c in columns if c not in unmeasured]
    print(format_table([{**t, "ending": ending(t)} for t in metrics["tracks"]], columns))
    summary = {k: v for k, v in metrics.items() if k not in ("tracks", "replays", "out_dir")}
    hidden = ("driver", "split", "difficulty", *unmeasured)  # said on the last lines
    # Figures only: a nested record (the bridge's counters, logged on their own) stays in
    # metrics.json.
    shown = [k for k, v in summary.items() if k not in hidden and not isinstance(v, dict | list)]
    print(format_table([summary], shown))
    if unreported:
        print(not_measured(unmeasured, unreported))
    if metrics["replays"]:
        replays = len(metrics["replays"])
        where = Path(metrics["replays"][0]).parent
        print(f"{replays} replay{'' if replays == 1 else 's'} in {where}")
    if game:
        raced = f": {in_game_phrase(len(seeds), 'episode')}"
    else:
        rounds = f", {len(seeds)} episodes" if len(seeds) > len(set(seeds)) else ""
        raced = f" on {tracks}{rounds}"
    print(f"{metrics['driver']}{raced}, {metrics['seconds']:.1f} s; written to {out}")


def _log_handler() -> logging.FileHandler | None:
    """The handler of the file this eval logs to: Hydra's ``eval.log``, which conf/eval.yaml
    opens at its first line, to append after an earlier eval's; None where
    ``hydra/job_logging`` writes no file."""
    handlers = logging.getLogger().handlers
    return next((h for h in handlers if isinstance(h, logging.FileHandler)), None)


def _keep_own_log(handler: logging.FileHandler, start: int) -> None:
    """Remove the first ``start`` bytes of the log ``handler`` writes (an earlier eval's
    lines), once this eval has written its ``metrics.json``: the log beside it is then its
    own, as an eval that writes none keeps the earlier eval's log, its own lines after it.
    An eval that has logged no line yet gets an empty log.

    The log is replaced whole (``write_atomic``): a signal or a crash midway leaves it as
    it was. The handler is closed first; its next line opens the new file, to append.
    """
    path = Path(handler.baseFilename)
    handler.close()
    own = path.read_bytes()[start:] if path.is_file() else b""
    write_atomic(path, lambda tmp: tmp.write_bytes(own))


def _stopped(
    interrupt: KeyboardInterrupt,
    out_dir: Path,
    handler: logging.FileHandler | None,
    earlier_log: int | None,
) -> NoReturn:
    """End an eval that a signal stopped before it wrote its ``metrics.json``, with one line
    on stderr: what it had raced and written, and the earlier eval's ``metrics.json`` it
    kept. An earlier eval's log (``handler``'s file) keeps this eval's lines after its
    own, and that line. Where there was none (``earlier_log`` None) and this eval wrote
    nothing, its log is removed, and the log's directory too if that leaves it empty
    (Hydra made it for this eval): the directory is as it was before the command.

    Raises:
        SystemExit: 128 + the signal's number (130: SIGINT, 143: SIGTERM), in the command's
            own process; in a sweep's worker process, ``interrupt`` again
            (``racing_rl.interrupts.stop``).
    """
    stopped = interrupt if isinstance(interrupt, EvalInterrupted) else None
    done = stopped.done if stopped else "before its races ended: nothing written"
    earlier = _earlier_metrics(out_dir)
    what = f"{done}; {earlier}, and stays as it was" if earlier else done
    if handler is not None and earlier_log is None and not (stopped and stopped.wrote):
        path = Path(handler.baseFilename)
        handler.close()
        logging.getLogger().removeHandler(handler)
        path.unlink(missing_ok=True)
        with suppress(OSError):  # not empty: other files were there before
            path.parent.rmdir()
    elif handler is not None:  # the line, in the log beside the metrics.json it names
        message = interrupted(interrupt, what)
        handler.handle(log.makeRecord(log.name, logging.WARNING, __file__, 0, message, (), None))
    stop("eval", interrupt, what)


def _name_earlier_metrics(out_dir: Path) -> None:
    """Log, where ``out_dir`` holds a ``metrics.json``, that it is an earlier eval's
    (``_earlier_metrics``): this eval ended before writing its own, and its log lines
    follow, in ``eval.log``, those of the eval that wrote it."""
    if earlier := _earlier_metrics(out_dir):
        log.warning("%s; this eval wrote no metrics", earlier)


def _earlier_metrics(out_dir: Path) -> str | None:
    """``<out_dir>/metrics.json is an earlier eval's, written <when> by <command>``, or None
    where ``out_dir`` holds no ``metrics.json``."""
    path = out_dir / "metrics.json"
    if not path.is_file():
        return None
    settings = (read_record(path, "it is an earlier eval's") or {}).get("settings")
    command = settings.get("command") if isinstance(settings, dict) else None
    written = datetime.fromtimestamp(path.stat().st_mtime).strftime("%Y-%m-%d %H:%M:%S")
    return (
        f"{path} is an earlier eval's, written {written} by "
        f"{command or 'a command it does not record'}"
    )

"""``racing-rl eval``: the Hydra app (parse, ``racing_rl.evaluation.command.evaluate``,
print).

``main`` prints the per-track table and the summary (one run) or the leaderboards and
standings (a race); ``CheckRuns`` checks the runs before Hydra creates the output
directory. The ``racing_rl.eval_dir`` resolver (``racing_rl.config``) names that directory.
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from racing_rl.config import SweepSignals, expand_home, hydra_main, job_failed
from racing_rl.errors import RacingRLError, print_error
from racing_rl.evaluation.command import check_runs, evaluate
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
    handler = _log_handler()
    earlier_log = Path(handler.baseFilename).stat().st_size if handler is not None else 0
    metrics = None
    try:
        metrics = evaluate(cfg, difficulty=hydra.runtime.choices.get("difficulty"))
    except RacingRLError as err:
        log.error("%s", err)
        job_failed(err)
    except KeyboardInterrupt:  # metrics.json is written whole, after the races, or not at all
        earlier = Path(cfg.out_dir) / "metrics.json"
        kept = f"; {earlier}, an earlier eval's, is as it was" if earlier.is_file() else ""
        print_error("eval", f"interrupted before its races ended: nothing written{kept}")
        raise
    finally:  # an error, Ctrl-C, or the window closed before a race ended
        if metrics is None:
            _name_earlier_metrics(Path(cfg.out_dir))
    if metrics is None:  # the window was closed before a race ended: said in the log
        return
    if handler is not None:  # this eval's metrics.json: its log alone beside it
        _keep_own_log(handler, earlier_log)
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
    """The handler of the file this eval logs to: Hydra's ``eval.log`` (conf/eval.yaml opens
    it to append, after an earlier eval's lines), or None where ``hydra/job_logging``
    writes no file."""
    handlers = logging.getLogger().handlers
    return next((h for h in handlers if isinstance(h, logging.FileHandler)), None)


def _keep_own_log(handler: logging.FileHandler, start: int) -> None:
    """Remove the first ``start`` bytes of the log ``handler`` writes (an earlier eval's
    lines), once this eval has written its ``metrics.json``: the log beside it is then its
    own, as an eval that writes none keeps the earlier eval's log, its own lines after it.

    The log is replaced whole (``write_atomic``): a signal or a crash midway leaves it as
    it was. The handler is closed first; its next line opens the new file, to append.
    """
    path = Path(handler.baseFilename)
    handler.close()
    own = path.read_bytes()[start:]
    write_atomic(path, lambda tmp: tmp.write_bytes(own))


def _name_earlier_metrics(out_dir: Path) -> None:
    """Log, where ``out_dir`` holds a ``metrics.json``, that it is an earlier eval's (when
    it was written, by which command): this eval ended before writing its own, and its log
    lines follow, in ``eval.log``, those of the eval that wrote it."""
    path = out_dir / "metrics.json"
    if not path.is_file():
        return
    settings = (read_record(path, "it is an earlier eval's") or {}).get("settings")
    command = settings.get("command") if isinstance(settings, dict) else None
    written = datetime.fromtimestamp(path.stat().st_mtime).strftime("%Y-%m-%d %H:%M:%S")
    log.warning(
        "%s is an earlier eval's, written %s by %s; this eval wrote no metrics",
        path,
        written,
        command or "a command it does not record",
    )

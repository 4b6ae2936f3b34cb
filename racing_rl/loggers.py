"""Where training's figures go: SB3's table, ``progress.csv``, TensorBoard, and W&B.

``sb3_logger`` is SB3's ``configure(folder, ["stdout", "csv", "tensorboard"])`` laid out
for a run directory: the table on stderr (with the project's other logs; stdout is left
for results), ``progress.csv`` in the run dir and TensorBoard events in ``tb/``. A resumed
run keeps its earlier legs' figures up to the checkpoint it resumed from, and drops those
past it, which it logs again (a rollout discarded by a Ctrl-C, steps trained after the
last checkpoint of a killed run). ``wandb_run`` adds an optional Weights &
Biases run (``logger=wandb``) that syncs those TensorBoard events; a resumed run's legs
continue one W&B run.
"""

from __future__ import annotations

import csv
import importlib.util
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from stable_baselines3.common.logger import (
    CSVOutputFormat,
    HumanOutputFormat,
    Logger,
    TensorBoardOutputFormat,
)
from torch.utils.tensorboard import SummaryWriter

from racing_rl.errors import ConfigError

log = logging.getLogger(__name__)

#: The column of ``progress.csv`` with the timesteps a row was logged at.
TIMESTEPS = "time/total_timesteps"


class CurrentStderr:
    """``sys.stderr`` as it is at each write, for writers made before a progress bar
    starts: SB3's table and the log's console handler (``conf/train.yaml``).

    The bar (rich's, on a terminal) replaces ``sys.stderr`` while it runs, so that what is
    written there prints above it. A writer holding the stream it was made with wrote past
    the bar instead: the table's first line and each log line ran on from the bar's line.
    """

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


#: The stream SB3's table and the log's console write to (``CurrentStderr``).
STDERR = CurrentStderr()


def csv_output(path: Path, until: int | None = None) -> CSVOutputFormat:
    """SB3's CSV writer on ``path``, keeping the rows already in it.

    SB3 truncates the file it opens; a resumed run would lose its earlier legs' rows.

    Args:
        path: the CSV file, e.g. ``<run dir>/progress.csv``; need not exist.
        until: keep only the earlier rows whose ``time/total_timesteps`` is at most this
            (the timesteps of the checkpoint a run resumes from); None keeps every row.

    Returns:
        The writer, positioned after the earlier rows, with their columns.
    """
    earlier = path.read_text().splitlines(keepends=True) if path.is_file() else []
    if len(earlier) > 1 and not earlier[-1].endswith("\n"):
        earlier.pop()  # a row cut short by a kill: the next row would run on from it
    writer = CSVOutputFormat(str(path))
    if earlier:
        writer.keys = earlier[0].rstrip("\r\n").split(writer.separator)
        if until is not None and TIMESTEPS in writer.keys:
            column = writer.keys.index(TIMESTEPS)
            earlier[1:] = [line for line in earlier[1:] if _logged_by(line, column, until)]
        writer.file.writelines(earlier)
        writer.file.flush()
    return writer


def _logged_by(line: str, column: int, until: int) -> bool:
    """Whether a ``progress.csv`` line was logged at ``until`` timesteps or before: its
    ``column`` (``time/total_timesteps``) is at most ``until``. A blank line is dropped;
    a row without a number there (a validation row of an old run) is kept."""
    row = next(csv.reader([line]), [])  # a row may hold a quoted separator
    if not row:
        return False
    try:
        return float(row[column]) <= until
    except (IndexError, ValueError):
        return True


def validation_logged(path: Path, timesteps: int) -> bool:
    """Whether ``path`` (a run's ``progress.csv``) holds a validation's row logged at
    ``timesteps``: a row with an ``eval/`` figure, which ``ValidationCallback.validate``
    writes last, once the validation and its ``best/`` are done."""
    if not path.is_file():
        return False
    with open(path, newline="", errors="replace") as file:
        try:
            for row in csv.DictReader(file):
                try:
                    logged_at = float(row.get(TIMESTEPS) or "nan")
                except (TypeError, ValueError):  # a row without a number there (an old run's)
                    continue
                figures = [v for k, v in row.items() if isinstance(k, str) and k[:5] == "eval/"]
                if logged_at == timesteps and any(figures):
                    return True
        except csv.Error:  # a damaged file (a NUL byte): the validation runs again
            return False
    return False


class TensorBoardOutput(TensorBoardOutputFormat):
    """SB3's TensorBoard writer, with ``SummaryWriter``'s ``purge_step``: TensorBoard hides
    the events of earlier files at that step or later, which a resumed run logs again."""

    def __init__(self, folder: str, purge_step: int | None = None) -> None:
        # SB3's __init__ opens a SummaryWriter without purge_step; this is all it does.
        self.writer = SummaryWriter(log_dir=folder, purge_step=purge_step)
        self._is_closed = False


def sb3_logger(run_dir: Path, resumed_at: int = 0) -> Logger:
    """The SB3 logger of a run: table on stderr, ``progress.csv``, TensorBoard in ``tb/``.

    Args:
        run_dir: the run directory (it exists).
        resumed_at: the timesteps of the checkpoint a resumed run goes on from: the
            figures logged past it (in ``progress.csv`` and ``tb/``) are dropped. 0 for a
            new run: the figures of an attempt stopped before its first save, in the same
            directory, are dropped too.

    Returns:
        The logger to give ``model.set_logger``.
    """
    return Logger(
        str(run_dir),
        [
            HumanOutputFormat(STDERR),
            csv_output(run_dir / "progress.csv", resumed_at),
            TensorBoardOutput(str(run_dir / "tb"), resumed_at + 1),
        ],
    )


def check_logger(cfg: DictConfig) -> None:
    """Check that the package of ``cfg.logger`` (if any) is installed.

    Raises:
        ConfigError: ``logger=wandb`` without the ``wandb`` package.
    """
    if cfg.get("logger") and importlib.util.find_spec("wandb") is None:
        raise ConfigError("logger=wandb needs the wandb package: pip install 'racing-rl[wandb]'")


@contextmanager
def wandb_run(cfg: DictConfig, run_dir: Path, run_id: str | None = None) -> Iterator[object | None]:
    """A Weights & Biases run for the duration of training, if ``cfg.logger`` asks for one.

    ``wandb.init`` patches TensorBoard's writer (``sync_tensorboard=True``), so it must
    start before ``sb3_logger``: every scalar of ``tb/`` then also goes to W&B.

    Args:
        cfg: the run's config; ``cfg.logger`` is ``conf/logger/wandb.yaml`` or absent.
        run_dir: the run directory: W&B's files go in ``<run dir>/wandb``.
        run_id: the id of the W&B run to continue (a resumed run's earlier legs' run,
            ``provenance.wandb_id``): W&B resumes it (``resume="allow"``: one it does not
            know, say an offline run not synced yet, is started with that id; offline, the
            leg's ``offline-run-*`` directory records the resume, and ``wandb sync`` adds it
            to the same run). None starts a new W&B run.

    Yields:
        The W&B run, or None without ``logger=wandb``.

    Raises:
        ConfigError: ``logger=wandb`` without the ``wandb`` package, or when W&B refuses
            to start the run (no API key), or cannot within ``logger.init_timeout`` seconds
            (no network: W&B's own limit, 90 s, was the only one).
    """
    settings = cfg.get("logger")
    if not settings:
        yield None
        return
    check_logger(cfg)
    import wandb

    # The patch that sync_tensorboard would make, rooted at this run's tb/: without a
    # root, W&B warned of a run dir outside the working directory ("Found log directory
    # outside of given root_logdir") and, in a sweep's next job (one process, the patch
    # kept), of "several event log directories". (A run W&B refused leaves it patched;
    # the patch does nothing without a run, and the next one replaces it.)
    wandb.tensorboard.unpatch()
    wandb.tensorboard.patch(root_logdir=str(run_dir / "tb"))
    given = settings.get("init_timeout")  # None: a run saved before the key (W&B's own)
    init = wandb.Settings() if given is None else wandb.Settings(init_timeout=given)
    log.info("starting the W&B run (at most logger.init_timeout=%g s)", init.init_timeout)
    try:
        run = wandb.init(
            project=settings.project,
            entity=settings.entity,
            group=settings.group,
            tags=list(settings.tags),
            name=run_dir.name,
            id=run_id,
            resume=None if run_id is None else "allow",
            dir=str(run_dir),
            config=OmegaConf.to_container(cfg, resolve=True),
            sync_tensorboard=True,
            settings=init,
        )
    except wandb.errors.Error as err:  # no API key, no network, an unknown entity
        # W&B's first line: its advice on a timeout (wandb.Settings) is for its own callers.
        lines = str(err).strip().splitlines() or [type(err).__name__]
        raise ConfigError(
            f"logger=wandb: W&B could not start the run ({lines[0].rstrip('.')}). Check that "
            f"this machine reaches W&B (it waits logger.init_timeout={init.init_timeout:g} s: "
            "raise it for a slow network), that you are logged in (`wandb login`, or "
            "WANDB_API_KEY) and that logger.entity and logger.project exist for you; or "
            "keep the run on disk with WANDB_MODE=offline (`wandb sync` uploads it later)."
        ) from err
    log.info("W&B run %s (id %s%s): %s", run.name, run.id, ", resumed" if run_id else "", run.dir)
    try:
        yield run
    finally:
        run.finish()
        wandb.tensorboard.unpatch()

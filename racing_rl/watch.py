"""Watching a run that is still training: ``racing-rl eval follow=true``.

``CheckpointFollower`` swaps the driver for the newest checkpoint of the run; the window
that shows the race is ``racing_rl.ui.window.RaceWindow``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from racing_rl.checkpoints.layout import Checkpoint, find_checkpoints
from racing_rl.errors import CheckpointError
from racing_rl.provenance import leg_status, read_legs

log = logging.getLogger(__name__)


class CheckpointFollower:
    """The policy of a run's newest checkpoint, reloaded whenever a newer one is saved.

    Args:
        run_dir: a run directory, possibly still training.
        load: loads a driver from a checkpoint directory (``load_policy_driver`` with
            ``checkpoint=<that dir>``).
        poll_interval: how often to look for the first checkpoint while there is none [s].
    """

    def __init__(
        self, run_dir: Path, load: Callable[[Path], Any], poll_interval: float = 2.0
    ) -> None:
        self.run_dir = run_dir
        self._load = load
        self._poll_interval = poll_interval
        self._current: Checkpoint | None = None
        self._failed: Path | None = None  # the newest checkpoint, if it did not load
        self._driver: Any = None

    def driver(self, newer: bool = False) -> Any:
        """The driver of the newest complete checkpoint (waiting for the first one).

        A checkpoint that cannot be loaded (being replaced, damaged) is skipped: the
        current driver drives on.

        Args:
            newer: wait for a checkpoint newer than the current one (races without a
                window: the same checkpoint would race the same races again), unless the
                run is not training (``training``): none will come.

        Returns:
            The driver; None where ``newer`` waits for a checkpoint that will not come.

        Raises:
            CheckpointError: if the first checkpoint found cannot be loaded, or the run has
                none and is not training.
        """
        waiting = False
        while not (checkpoints := find_checkpoints(self.run_dir)) or (
            newer
            and self._current is not None
            and checkpoints[-1].path in (self._current.path, self._failed)
        ):
            if not self.training():  # no checkpoint will come
                if not checkpoints:
                    raise CheckpointError(
                        f"{self.run_dir} has no checkpoint and is not training (its "
                        "run.json): follow=true has nothing to drive. Start it (racing-rl "
                        "train), then follow it."
                    )
                if find_checkpoints(self.run_dir)[-1].path == checkpoints[-1].path:
                    log.info(
                        "%s is not training (run.json): its newest checkpoint has raced",
                        self.run_dir,
                    )
                    return None
                continue  # saved as the training ended: race it
            if not waiting:
                log.info(
                    "waiting for the %s checkpoint of %s",
                    "first" if self._current is None else "next",
                    self.run_dir,
                )
                waiting = True
            time.sleep(self._poll_interval)
        newest = checkpoints[-1]
        if self._current is None or newest.path != self._current.path:
            try:
                self._driver = self._load(newest.path)
            except CheckpointError:
                if self._driver is None:
                    raise
                if newest.path != self._failed:
                    log.warning("could not load %s; driving %s on", newest.path, self._current)
                self._failed = newest.path
                return self._driver
            self._current = newest
            log.info("driving %s (%s timesteps)", newest.path, f"{newest.timesteps:,}")
        return self._driver

    def training(self) -> bool:
        """Whether the run is training now: its ``run.json``'s last leg is ``running``
        (``leg_status``: a process on this host that is gone is not). True where there is
        no readable ``run.json`` yet (a run that has not started training)."""
        try:
            legs = read_legs(self.run_dir)
        except (OSError, ValueError):
            return True
        return not legs or leg_status(legs[-1]) == "running"

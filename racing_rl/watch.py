"""Watching a policy drive: ``racing-rl eval render=human`` and ``follow=true``.

``RaceWindow`` draws a track's race in a pygame window, step by step, through the
simulator's ``Renderer`` (as RL Baselines3 Zoo's ``enjoy`` does); ``CheckpointFollower``
swaps the driver for the newest checkpoint of a run that is still training.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from racing_rl.checkpoints.layout import Checkpoint, find_checkpoints
from racing_rl.errors import CheckpointError

log = logging.getLogger(__name__)

#: Keys that close the window (and stop the evaluation).
QUIT_KEYS = ("escape", "q")


class RaceWindow:
    """A pygame window that shows one track's race at a time.

    Args:
        fps: frame rate the window is held to [1/s]; 15 is the simulator's real time, 0
            does not wait.
        size_px: window size, (width, height) [px].

    Raises:
        ConfigError: on a negative ``fps`` or a size out of range (``Renderer``).
    """

    def __init__(self, fps: float, size_px: tuple[int, int]) -> None:
        from racing_rl.sim.render import Renderer

        self._renderer = Renderer(mode="human", fps=fps, size_px=size_px, pump_events=False)
        #: Whether the window was closed (window button, esc or q): stop racing.
        self.closed = False
        #: Frames drawn so far.
        self.frames = 0

    def on_step(self, env: Any, labels: tuple[str, ...], caption: str) -> Callable[[], bool]:
        """A ``run_races`` ``on_step`` hook that draws ``env``'s race.

        Args:
            env: a ``RaceParallelEnv`` (or a wrapper of one) of the built-in simulator.
            labels: the cars' names for the HUD, in car order.
            caption: the window's title.

        Returns:
            The hook: it draws a frame and returns False once the window is closed.
        """
        import pygame

        from racing_rl.sim.snapshot import RaceSnapshot

        def draw() -> bool:
            self._renderer.draw(RaceSnapshot.from_world(env.unwrapped.world, labels))
            pygame.display.set_caption(caption)
            self.frames += 1
            for event in pygame.event.get():
                if event.type == pygame.QUIT or (
                    event.type == pygame.KEYDOWN and pygame.key.name(event.key) in QUIT_KEYS
                ):
                    self.closed = True
            return not self.closed

        return draw

    def close(self) -> None:
        """Close the window."""
        self._renderer.close()


class CheckpointFollower:
    """The policy of a run's newest checkpoint, reloaded whenever a newer one is saved.

    Args:
        run_dir: a run directory, possibly still training.
        load: loads a driver from a checkpoint directory (``load_policy_driver`` with
            ``checkpoint=<that dir>``).
        poll_s: how often to look for the first checkpoint while there is none [s].
    """

    def __init__(self, run_dir: Path, load: Callable[[Path], Any], poll_s: float = 2.0) -> None:
        self.run_dir = run_dir
        self._load = load
        self._poll_s = poll_s
        self._current: Checkpoint | None = None
        self._driver: Any = None

    def driver(self) -> Any:
        """The driver of the newest complete checkpoint (waiting for the first one).

        A checkpoint that cannot be loaded (being replaced, damaged) is skipped: the
        current driver drives on.

        Raises:
            CheckpointError: if the first checkpoint found cannot be loaded.
        """
        waiting = False
        while not (checkpoints := find_checkpoints(self.run_dir)):
            if not waiting:
                log.info("waiting for the first checkpoint of %s", self.run_dir)
                waiting = True
            time.sleep(self._poll_s)
        newest = checkpoints[-1]
        if self._current is None or newest.path != self._current.path:
            try:
                self._driver = self._load(newest.path)
            except CheckpointError:
                if self._driver is None:
                    raise
                log.warning("could not load %s; driving %s on", newest.path, self._current)
                return self._driver
            self._current = newest
            log.info("driving %s (%s timesteps)", newest.path, f"{newest.timesteps:,}")
        return self._driver

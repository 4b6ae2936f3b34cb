"""A live race in a pygame window: ``racing-rl eval render=human`` and ``racing-rl play``.

``RaceWindow`` draws a track's race step by step through the ``Renderer`` (as RL
Baselines3 Zoo's ``enjoy`` does) and stops the race when the window is closed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pygame

from racing_rl.sim.snapshot import RaceSnapshot
from racing_rl.ui.render import Renderer

#: Keys that close the window (and stop the race).
QUIT_KEYS = ("escape", "q")


class RaceWindow:
    """A pygame window that shows one track's race at a time.

    Args:
        fps: frame rate the window is held to [1/s]; 0 does not wait; None: the race's real
            time, one frame per simulator step (``RaceConfig.render_fps``: 15 by default).
        size_px: window size, (width, height) [px].
        camera: ``"track"`` (the whole track) or ``"chase"`` (follows car 0).
        headless_hint: what to do instead on a machine without a display (``Renderer``).

    Raises:
        ConfigError: on a negative ``fps``, a size out of range or an unknown camera
            (``Renderer``).
    """

    def __init__(
        self, fps: float | None, size_px: tuple[int, int], camera: str, headless_hint: str
    ) -> None:
        self._fps = fps
        self._renderer = Renderer(
            mode="human",
            fps=fps or 0,  # None: set per race by on_step
            size_px=size_px,
            camera=camera,
            pump_events=False,
            headless_hint=headless_hint,
        )
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

        race = env.unwrapped
        laps = int(race.config.episode.laps)  # the HUD's "done" for a car that finished
        self._renderer.fps = race.config.render_fps if self._fps is None else self._fps

        def draw() -> bool:
            self._renderer.draw(RaceSnapshot.from_world(race.world, labels, laps))
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

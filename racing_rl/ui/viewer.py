"""The interactive replay player of ``racing-rl replay``: a window with speed control,
pause, single-step, seek and two cameras.

``ReplayPlayer`` is the playback state (no drawing, no clock); ``play_replay`` is the
pygame loop that reads the keys and draws each frame with the ``Renderer``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import pygame

from racing_rl.errors import ReplayError
from racing_rl.replay import Replay
from racing_rl.ui.render import CAMERAS, HEADLESS_DRIVERS, Renderer, video_driver

log = logging.getLogger(__name__)

#: Playback speeds the viewer steps through (↑/↓), slowest to fastest.
SPEEDS = (0.25, 0.5, 1.0, 2.0, 4.0)
#: The key names ``handle_key`` knows (pygame's), and ``-`` (no key) for a script.
SCRIPT_KEYS = frozenset(
    ("space", "left", "right", "up", "down", "[", "]", "home", "end", "c", "tab", "q", "escape")
) | {"-", *"0123456789"}
#: Seconds of race time a seek key ([ and ]) jumps.
SEEK_S = 5.0
#: The viewer's key bindings, for its help line and the docs.
KEYS_HELP = (
    "space pause · ←/→ step one frame · ↑/↓ speed 0.25×–4× · [/] seek ∓5 s · "
    "0–9 seek to 0–90 % · home/end · c camera · tab next car · q/esc quit"
)


class ReplayPlayer:
    """Playback state of a replay: current frame, speed, pause, camera. No drawing, no clock.

    ``handle_key`` applies one key press, ``advance`` moves playback on by wall-clock
    time; the viewer loop (``play_replay``) draws ``snapshot()`` after each.

    Args:
        replay: the replay.
        speed: playback speed, one of ``SPEEDS``.
        camera: ``"track"`` or ``"chase"``.
        follow: the car the chase camera follows.

    Raises:
        ReplayError: on a speed outside ``SPEEDS`` or a camera outside ``CAMERAS``.
    """

    def __init__(
        self, replay: Replay, speed: float = 1.0, camera: str = "track", follow: int = 0
    ) -> None:
        if speed not in SPEEDS:
            raise ReplayError(f"speed must be one of {SPEEDS}, got {speed}.")
        if camera not in CAMERAS:  # the Renderer's own check never sees a camera set later
            raise ReplayError(f"camera must be one of {', '.join(CAMERAS)}, got {camera!r}.")
        self.replay = replay
        self.speed = float(speed)
        self.camera = camera
        self.follow = follow % replay.n_cars
        self.paused = False
        self.quit = False
        self._position = 0.0  # fractional frame

    @property
    def frame(self) -> int:
        """The frame shown, 0 … T."""
        return int(self._position)

    def seek(self, frame: float) -> None:
        """Jump to ``frame`` (clamped to the replay)."""
        self._position = float(min(max(frame, 0), self.replay.n_frames - 1))

    def advance(self, elapsed: float) -> None:
        """Move on by ``elapsed`` seconds of wall-clock time at the current speed."""
        if not self.paused:
            self.seek(self._position + elapsed * self.speed / self.replay.dt)

    def handle_key(self, key: str) -> None:
        """Apply one key press, by pygame key name (``pygame.key.name``): see ``KEYS_HELP``."""
        step = round(SEEK_S / self.replay.dt)
        last = self.replay.n_frames - 1
        if key == "space":
            self.paused = not self.paused
        elif key in ("right", "left"):
            self.paused = True
            self.seek(self.frame + (1 if key == "right" else -1))
        elif key in ("up", "down"):
            index = SPEEDS.index(self.speed) + (1 if key == "up" else -1)
            self.speed = SPEEDS[min(max(index, 0), len(SPEEDS) - 1)]
        elif key in ("[", "]"):
            self.seek(self.frame + (step if key == "]" else -step))
        elif key in ("home", "end"):
            self.seek(0 if key == "home" else last)
        elif key.isdigit() and len(key) == 1:
            self.seek(round(int(key) / 10 * last))
        elif key == "c":
            self.camera = "chase" if self.camera == "track" else "track"
        elif key == "tab":
            self.follow = (self.follow + 1) % self.replay.n_cars
        elif key in ("q", "escape"):
            self.quit = True

    def status(self) -> str:
        """A one-line state for the window title."""
        state = "paused" if self.paused else f"{self.speed:g}x"
        return (
            f"racing-rl replay · frame {self.frame}/{self.replay.n_frames - 1} · {state} · "
            f"{self.camera} camera"
        )


def play_replay(
    replay: Replay,
    speed: float = 1.0,
    camera: str = "track",
    follow: int = 0,
    size_px: tuple[int, int] = (800, 800),
    trail_length: int = 200,
    script: Sequence[str] | None = None,
    on_frame: Any = None,
) -> ReplayPlayer:
    """Play a replay in a pygame window until the user quits (q, esc or closing it).

    Args:
        replay: the replay.
        speed, camera, follow: the start settings (``ReplayPlayer``).
        size_px: window size (width, height) [px].
        trail_length: trail positions per car.
        script: key names (any case) pressed one per drawn frame instead of the
            keyboard's (demos and headless tests); playback stops after the last one.
            ``"-"`` presses none.
        on_frame: called as ``on_frame(player, snapshot)`` after each frame is drawn.

    Returns:
        The player, in its final state.

    Raises:
        ReplayError: on a speed outside ``SPEEDS``, a ``follow`` that is not a car of the
            replay, a script key outside ``SCRIPT_KEYS``, or no display and no script (no
            key could ever end the playback).
    """
    replay.check_car(follow)
    if script is None and (driver := video_driver()) in HEADLESS_DRIVERS:
        raise ReplayError(
            f"This machine has no display (pygame's video driver is {driver!r}): the viewer "
            "would wait for keys no one can press. Write a video instead (video=race.mp4), "
            "or run where a display is."
        )
    script = None if script is None else [key.strip().lower() for key in script]  # as play's
    unknown = sorted({key for key in script or () if key not in SCRIPT_KEYS})
    if unknown:
        raise ReplayError(
            f"script has unknown keys {unknown}; the keys are {', '.join(sorted(SCRIPT_KEYS))}."
        )
    player = ReplayPlayer(replay, speed, camera, follow)
    renderer = Renderer(
        mode="human",
        fps=0,
        size_px=size_px,
        trail_length=trail_length,
        pump_events=False,
        headless_hint="Write a video instead (video=race.mp4), or run where a display is.",
    )
    keys = iter(script) if script is not None else None
    clock = pygame.time.Clock()
    log.info("%s", KEYS_HELP)
    try:
        while not player.quit:
            renderer.camera, renderer.follow = player.camera, player.follow
            snapshot = replay.snapshot(player.frame, trail_length)
            renderer.draw(snapshot)
            pygame.display.set_caption(player.status())
            if on_frame is not None:
                on_frame(player, snapshot)
            elapsed = clock.tick(60) / 1000
            for event in pygame.event.get():
                if event.type == pygame.QUIT:
                    player.quit = True
                elif event.type == pygame.KEYDOWN and keys is None:
                    player.handle_key(pygame.key.name(event.key))
            if keys is not None:
                key = next(keys, None)
                if key is None:
                    break
                if key != "-":
                    player.handle_key(key)
            player.advance(elapsed)
    finally:
        renderer.close()
    return player

"""Top-down pygame renderer of a ``World``: track, cars, rays, trails and a HUD.

World coordinates are metres with x right and y up; the ``Renderer`` converts them to
pixels (x right, y down), fitting the whole track into the window with a margin. It owns
the camera, the cached track layer, the trails, the HUD and the window; ``layers`` draws
each layer and ``colours`` holds the palette.

It draws ``RaceSnapshot``s (``racing_rl.sim.snapshot``): of a live ``World`` (``draw``
takes one and snapshots it) or read back from a replay file, so both look the same.
Two cameras: ``"track"`` fits the whole track into the frame; ``"chase"`` follows one
car at a fixed zoom (north up). Trails are coloured by speed, slow blue to fast red.

Two modes, as Gymnasium's ``render_mode``:

- ``"rgb_array"``: draws on an off-screen ``pygame.Surface`` and returns the frame as an
  (H, W, 3) uint8 array. No window is opened and the display module is never started.
- ``"human"``: opens a window on the first ``draw``, shows each frame, pumps the event
  queue and ticks a clock at ``fps``. Closing the window stops the drawing (the race
  goes on).

Example:
    >>> renderer = Renderer(mode="rgb_array")
    >>> frame = renderer.draw(world)  # (800, 800, 3) uint8
    >>> renderer.close()
"""

from __future__ import annotations

import logging
import math
import os
from collections import deque
from collections.abc import Sequence

import numpy as np
import pygame
from numpy.typing import NDArray

from racing_rl.errors import ConfigError
from racing_rl.sim.snapshot import RaceSnapshot
from racing_rl.sim.track import Track
from racing_rl.sim.world import World
from racing_rl.ui import layers
from racing_rl.ui.colours import GRASS, HUD_BOX_ALPHA, HUD_INACTIVE, HUD_TEXT, Colour, car_colour

logger = logging.getLogger(__name__)

FloatArray = NDArray[np.float64]

RENDER_MODES = ("human", "rgb_array")
CAMERAS = ("track", "chase")
HEADLESS_DRIVERS = ("offscreen", "dummy")
"""SDL video drivers that draw into memory: what SDL falls back to without a display."""
#: A frame's size (width, height) [px] unless one is given.
DEFAULT_SIZE_PX = (800, 800)


#: The smallest side of a window or video (``size=``) [px]: the track's border takes 40.
MIN_SIZE_PX = 64
#: The largest (8K): a typo's size=[80000,80000] would draw 19 GB frames.
MAX_SIZE_PX = 8192


def window_size(size: Sequence[int], fps: float | None = None) -> tuple[int, int]:
    """``size`` of ``racing-rl play``, ``replay`` and ``eval render=human`` (a list of
    integers: the schemas type it) as the (width, height) [px] of a window or video,
    checked with the command's ``fps`` (a window's frame rate) so that a wrong one is
    said in the user's own keys.

    Raises:
        ConfigError: unless ``size`` has two values from ``MIN_SIZE_PX`` to
            ``MAX_SIZE_PX``, and ``fps`` is >= 0 (or None: the race's real time).
    """
    if len(size) != 2 or min(size) < MIN_SIZE_PX or max(size) > MAX_SIZE_PX:
        raise ConfigError(
            f"Invalid config: size={list(size)}; must be [width, height] in pixels, each "
            f"{MIN_SIZE_PX} to {MAX_SIZE_PX}, e.g. size=[800,800]."
        )
    if fps is not None and fps < 0:
        raise ConfigError(
            f"Invalid config: fps={fps:g}; must be >= 0 (frames per second; 0: as fast as it "
            "goes; null: real time, one frame per simulator step)."
        )
    return int(size[0]), int(size[1])


class Renderer:
    """Draws a ``World`` (or a ``RaceSnapshot``) top-down with pygame.

    The static track layer (grass, asphalt, walls, start line, obstacles) is drawn once
    per track object and camera and cached; each ``draw`` blits it and adds trails, rays,
    cars, car labels and the HUD, which sits in the window corner that hides the least of
    the track. Cars are drawn last, over the HUD, so none is ever hidden. Unless the
    snapshot brings its own, trails keep the last ``trail_length`` positions of each car
    and are cleared when a new episode starts: a different world or track, the race clock
    going back, or the cars moving while the clock stands still.

    Args:
        mode: ``"human"`` (a window) or ``"rgb_array"`` (frames as arrays).
        fps: frame rate the ``"human"`` window is held to [1/s]; 0 does not wait.
        size_px: window or frame size, (width, height) [px].
        margin_px: free border around the track [px].
        trail_length: positions kept per car for its trail; 0 draws no trails.
        max_hud_cars: cars listed in the HUD; the rest are summed up in one line.
        font_size_px: HUD font size [px].
        camera: ``"track"`` (the whole track) or ``"chase"`` (follows car ``follow``).
        follow: the car the chase camera follows (taken modulo the number of cars).
        chase_scale_px: the chase camera's zoom [px/m].
        pump_events: in ``"human"`` mode, read the window's event queue (and stop on
            QUIT); False leaves the events to the caller (the replay viewer, ``play``).
        headless_hint: what to do instead, for the warning a ``"human"`` window logs on
            a machine without a display (each command has its own way).

    Raises:
        ConfigError: on an unknown mode or camera or a size, margin or count out of range.
    """

    def __init__(
        self,
        mode: str = "rgb_array",
        fps: float = 15.0,
        size_px: tuple[int, int] = DEFAULT_SIZE_PX,
        margin_px: int = 20,
        trail_length: int = 200,
        max_hud_cars: int = 6,
        font_size_px: int = 20,
        camera: str = "track",
        follow: int = 0,
        chase_scale_px: float = 6.0,
        pump_events: bool = True,
        headless_hint: str = 'Draw frames with render_mode="rgb_array" instead.',
    ) -> None:
        if mode not in RENDER_MODES:
            raise ConfigError(f"Render mode must be one of {RENDER_MODES}, got {mode!r}.")
        if camera not in CAMERAS:
            raise ConfigError(f"camera must be one of {', '.join(CAMERAS)}, got {camera!r}.")
        if chase_scale_px <= 0:
            raise ConfigError(f"chase_scale_px must be > 0, got {chase_scale_px}.")
        width_px, height_px = size_px
        if width_px < 1 or height_px < 1 or not 0 <= 2 * margin_px < min(width_px, height_px):
            raise ConfigError(
                f"size_px must be positive and margin_px below half of it, got size_px={size_px} "
                f"and margin_px={margin_px}."
            )
        for name, value, minimum in (
            ("fps", fps, 0),
            ("trail_length", trail_length, 0),
            ("max_hud_cars", max_hud_cars, 0),
            ("font_size_px", font_size_px, 1),
        ):
            if value < minimum:  # named alone: the user gave one of them
                raise ConfigError(f"{name} must be >= {minimum}, got {value}.")
        self.mode = mode
        self.fps = fps
        self.size_px = (int(width_px), int(height_px))
        self.margin_px = margin_px
        self.trail_length = trail_length
        self.max_hud_cars = max_hud_cars
        self.font_size_px = font_size_px
        self.camera = camera
        self.follow = follow
        self.chase_scale_px = chase_scale_px
        self.pump_events = pump_events
        self.headless_hint = headless_hint

        self._canvas = pygame.Surface(self.size_px)
        self._window: pygame.Surface | None = None
        self._clock: pygame.time.Clock | None = None
        self._window_closed = False
        self._started_display = False
        self._started_font = False
        self._font: pygame.font.Font | None = None

        self._track: Track | None = None
        self._track_layer: pygame.Surface | None = None
        self._layer_camera = camera  # the camera the cached layer was drawn for
        self._layer_offset = np.zeros(2)  # pixel position of the world origin in the layer
        self._scale = 1.0  # [px/m]
        self._offset = np.zeros(2)  # pixel position of the world origin in the frame [px]
        self._track_pixels: NDArray[np.bool_] | None = None
        self._hud_corner: tuple[int, int] | None = None  # (right?, bottom?), set per track
        self._hud_scale: float | None = None  # the HUD's shrink factor (<= 1), set per track

        self._source: object = None  # the World (or track) the trails come from
        self._last_time = math.nan
        self._last_position: FloatArray | None = None
        self._trails: list[deque[tuple[float, float, float]]] = []

    # ------------------------------------------------------------------ public API
    def draw(self, race: World | RaceSnapshot) -> NDArray[np.uint8] | None:
        """Draw the race's current state.

        Args:
            race: a live ``World`` or a ``RaceSnapshot`` (e.g. a replay's frame).

        Returns:
            In ``"rgb_array"`` mode the frame, shape (H, W, 3), uint8 RGB (a copy). In
            ``"human"`` mode None: the frame is shown in the window.
        """
        if self.mode == "human" and self._window_closed:
            return None
        if isinstance(race, World):
            snapshot = RaceSnapshot.from_world(race)
            source: object = race
        else:
            snapshot, source = race, race.track
        if snapshot.track is not self._track or self.camera != self._layer_camera:
            self._set_track(snapshot.track)
        self._place_camera(snapshot)
        trails = snapshot.trails
        if trails is None:
            self._update_trails(snapshot, source)
            trails = tuple(np.array(trail).reshape(-1, 3) for trail in self._trails)
        canvas = self._canvas
        assert self._track_layer is not None
        if self.camera == "chase":
            canvas.fill(GRASS)  # beyond the track's layer
        canvas.blit(self._track_layer, (self._offset - self._layer_offset).round().tolist())
        layers.draw_trails(canvas, snapshot, trails, self.world_to_px)
        layers.draw_rays(canvas, snapshot, self.world_to_px)
        # Under the HUD, which a label over it made unreadable; the cars on top of it: a
        # car is never hidden.
        layers.draw_labels(canvas, snapshot, self.world_to_px, self._scale, self._get_font())
        self._draw_hud(canvas, snapshot)
        layers.draw_cars(canvas, snapshot, self.world_to_px)
        if self.mode == "rgb_array":
            # The pixels in [y, x] order (pygame's own copy: half the time of transposing
            # surfarray's [x, y] view), in a writable array.
            pixels = np.frombuffer(bytearray(pygame.image.tobytes(canvas, "RGB")), np.uint8)
            return pixels.reshape(canvas.get_height(), canvas.get_width(), 3)
        self._show(canvas)
        return None

    def close(self) -> None:
        """Close the window and shut down the pygame modules this renderer started.

        Safe to call more than once; a later ``draw`` starts them again.
        """
        self._window_closed = False
        if self._started_display:
            pygame.display.quit()
            self._started_display = False
        self._window = None
        self._clock = None
        self._font = None
        if self._started_font:
            pygame.font.quit()
            self._started_font = False

    @property
    def trails(self) -> list[FloatArray]:
        """Recorded positions of each car this episode, oldest first: shape (k, 2) [m] each."""
        return [np.array(trail, dtype=np.float64).reshape(-1, 3)[:, :2] for trail in self._trails]

    def world_to_px(self, points: FloatArray) -> FloatArray:
        """Convert world points to pixel coordinates of the current track's frame.

        Args:
            points: shape (..., 2) [m], x right and y up.

        Returns:
            Pixel coordinates, shape (..., 2) [px], x right and y down (not rounded).

        Raises:
            RuntimeError: before the first ``draw`` (no track, hence no scale).
        """
        if self._track is None:
            raise RuntimeError("No track drawn yet: call draw(world) first.")
        points = np.asarray(points, dtype=np.float64)
        return self._offset + points * np.array([self._scale, -self._scale])

    # ------------------------------------------------------------------ static layer
    def _set_track(self, track: Track) -> None:
        """Fit ``track`` into the window (or, chasing, scale it) and draw its static layer.

        The track camera's layer is the frame's size; the chase camera's is the whole
        track at ``chase_scale_px``, of which each frame shows the part around the car.
        """
        extent = np.concatenate([track.left_wall, track.right_wall])
        low, high = extent.min(axis=0), extent.max(axis=0)
        if len(track.obstacles):
            centres, radii = track.obstacles[:, :2], track.obstacles[:, 2:]
            low = np.minimum(low, (centres - radii).min(axis=0))
            high = np.maximum(high, (centres + radii).max(axis=0))
        span = np.maximum(high - low, 1e-9)
        if self.camera == "chase":
            self._scale = self.chase_scale_px
            layer_size = tuple(int(v) for v in np.ceil(span * self._scale) + 2 * self.margin_px)
        else:
            room = np.array(self.size_px, dtype=np.float64) - 2 * self.margin_px
            self._scale = float(np.min(room / span))
            layer_size = self.size_px
        centre_world = (low + high) / 2
        centre_px = np.array(layer_size, dtype=np.float64) / 2
        # px = centre_px + (p - centre_world) * (s, -s)
        self._offset = centre_px - centre_world * np.array([self._scale, -self._scale])
        self._layer_offset = self._offset.copy()
        self._layer_camera = self.camera
        self._track = track
        self._track_layer = layers.draw_track(track, layer_size, self.world_to_px, self._scale)
        # Pixels that are not grass, indexed [x, y], for placing the HUD off the track.
        grass = np.array(GRASS, dtype=np.uint8)
        self._track_pixels = (pygame.surfarray.array3d(self._track_layer) != grass).any(axis=-1)
        self._hud_corner = None if self.camera == "track" else (0, 0)
        self._hud_scale = None
        logger.debug("Track %d drawn at %.2f px/m.", track.seed, self._scale)

    def _place_camera(self, snapshot: RaceSnapshot) -> None:
        """Set the frame's world-to-pixel offset: fixed, or centred on the chased car."""
        if self.camera == "track":
            self._offset = self._layer_offset
            return
        car = snapshot.position[self.follow % snapshot.n_cars]
        car_px = self._layer_offset + car * np.array([self._scale, -self._scale])
        self._offset = self._layer_offset - car_px + np.array(self.size_px) / 2

    # ------------------------------------------------------------------ dynamic layer
    def _update_trails(self, snapshot: RaceSnapshot, source: object) -> None:
        """Append the active cars' positions; clear the trails when an episode starts."""
        position = snapshot.position
        same_frame = snapshot.time == self._last_time
        new_episode = (
            source is not self._source
            or snapshot.n_cars != len(self._trails)
            or snapshot.time < self._last_time
            or (same_frame and not np.array_equal(position, self._last_position))
        )
        if new_episode:
            self._trails = [deque(maxlen=self.trail_length) for _ in range(snapshot.n_cars)]
        elif same_frame:
            return  # drawn again without a step: nothing new to record
        self._source = source
        self._last_time = snapshot.time
        self._last_position = position.copy()
        if self.trail_length == 0:
            return
        for i in np.flatnonzero(snapshot.active):
            x, y = position[i]
            self._trails[i].append((float(x), float(y), float(snapshot.speed[i])))

    def _draw_hud(self, canvas: pygame.Surface, snapshot: RaceSnapshot) -> None:
        """Race time, then per car: speed, laps, running and last lap time, lap progress.

        The first ``max_hud_cars`` cars are listed; the chase camera's car takes the last
        row when it is not among them.
        """
        font = self._get_font()
        lines: list[tuple[str, Colour, Colour | None]] = [
            (f"race time {snapshot.time:7.2f} s", HUD_TEXT, None)
        ]
        shown = min(snapshot.n_cars, self.max_hud_cars)
        listed = list(range(shown))
        if self.camera == "chase" and shown and (chased := self.follow % snapshot.n_cars) >= shown:
            listed[-1] = chased  # the car in view, in the last row
        width = max((len(snapshot.label(i)) for i in listed), default=0)
        done = np.zeros(snapshot.n_cars, bool) if snapshot.finished is None else snapshot.finished
        for i in listed:
            active = bool(snapshot.active[i])
            clock, last = snapshot.lap_clock[i], snapshot.last_lap_time[i]
            clock_text = "  --.-- s" if np.isnan(clock) or not active else f"{clock:7.2f} s"
            last_text = "  --.-- s" if np.isnan(last) else f"{last:7.2f} s"
            # Behind the line (a grid slot, before its first crossing) is 0 %, not 99 %.
            fraction = float(np.mod(max(snapshot.progress[i], 0.0), 1.0))
            text = (
                f"{snapshot.label(i):<{width}}  {round(snapshot.speed[i] * 3.6) + 0:4d} km/h  "
                f"lap {snapshot.laps[i]:2d}  time {clock_text}  last {last_text}  "
                f"{fraction:4.0%}" + ("" if active else f"  {'done' if done[i] else 'out'}")
            )
            lines.append((text, HUD_TEXT if active else HUD_INACTIVE, car_colour(i, active)))
        if snapshot.n_cars > shown:
            lines.append((f"+ {snapshot.n_cars - shown} more cars", HUD_TEXT, None))

        rendered = [(font.render(text, True, colour), swatch) for text, colour, swatch in lines]
        line_height = font.get_linesize()
        swatch_px = line_height // 2
        pad = 6
        text_x = pad + swatch_px + pad
        width = text_x + max(surface.get_width() for surface, _ in rendered) + pad
        height = pad + line_height * len(rendered) + pad
        box = pygame.Surface((width, height), pygame.SRCALPHA)
        box.fill((0, 0, 0, HUD_BOX_ALPHA))
        for row, (surface, swatch) in enumerate(rendered):
            y = pad + row * line_height
            if swatch is not None:
                swatch_top = y + (line_height - swatch_px) // 2
                pygame.draw.rect(box, swatch, (pad, swatch_top, swatch_px, swatch_px))
            box.blit(surface, (text_x, y))
        # A small window: the HUD shrunk to fit, not cut; by one factor per track, with room
        # for the text to widen by 5 %, so that it does not change size with every digit of
        # the proportional font (only if it would no longer fit).
        if self._hud_scale is None or width * self._hud_scale > self.size_px[0]:
            fits = width <= self.size_px[0]
            self._hud_scale = 1.0 if fits else 0.95 * self.size_px[0] / width
        if self._hud_scale < 1.0:
            width = min(self.size_px[0], round(width * self._hud_scale))
            height = max(1, round(height * self._hud_scale))
            box = pygame.transform.smoothscale(box, (width, height))
        if self._hud_corner is None:
            self._hud_corner = self._emptiest_corner(width + 4 * pad, height + 2 * pad)
        left = 0 if self._hud_corner[0] == 0 else self.size_px[0] - width
        top = 0 if self._hud_corner[1] == 0 else self.size_px[1] - height
        canvas.blit(box, (left, top))

    def _emptiest_corner(self, width_px: int, height_px: int) -> tuple[int, int]:
        """The window corner whose width × height box covers the fewest track pixels.

        Returns:
            (0 for left or 1 for right, 0 for top or 1 for bottom); top left on a tie.
        """
        assert self._track_pixels is not None
        w, h = self.size_px
        x_slices = (slice(0, width_px), slice(max(w - width_px, 0), w))
        y_slices = (slice(0, height_px), slice(max(h - height_px, 0), h))
        corners = [(0, 0), (1, 0), (0, 1), (1, 1)]
        covered = [int(self._track_pixels[x_slices[i], y_slices[j]].sum()) for i, j in corners]
        return corners[int(np.argmin(covered))]

    # ------------------------------------------------------------------ pygame state
    def _get_font(self) -> pygame.font.Font:
        """The HUD font (pygame's built-in one, so no system font is needed)."""
        if self._font is None:
            if not pygame.font.get_init():
                pygame.font.init()
                self._started_font = True
            self._font = pygame.font.Font(None, self.font_size_px)
        return self._font

    def _show(self, canvas: pygame.Surface) -> None:
        """Show the canvas in the window (opened on first use), pump events, keep the fps."""
        if self._window is None:
            if not pygame.display.get_init():
                pygame.display.init()
                self._started_display = True
            self._window = pygame.display.set_mode(self.size_px)
            pygame.display.set_caption("racing-rl")
            driver = pygame.display.get_driver()
            if driver in HEADLESS_DRIVERS and "SDL_VIDEODRIVER" not in os.environ:
                logger.warning(
                    "This machine has no display (pygame's video driver is %r), so no "
                    "window is shown. %s",
                    driver,
                    self.headless_hint,
                )
            self._clock = pygame.time.Clock()
        if self.pump_events and any(event.type == pygame.QUIT for event in pygame.event.get()):
            logger.info("Render window closed; the race goes on without drawing.")
            self.close()
            self._window_closed = True
            return
        self._window.blit(canvas, (0, 0))
        pygame.display.flip()
        assert self._clock is not None
        self._clock.tick(self.fps)


def video_driver() -> str:
    """The name of pygame's video driver (``HEADLESS_DRIVERS`` show no window), starting
    pygame's display module only to ask (and stopping it again if it was not running)."""
    started = not pygame.display.get_init()
    pygame.display.init()
    try:
        return pygame.display.get_driver()
    finally:
        if started:
            pygame.display.quit()

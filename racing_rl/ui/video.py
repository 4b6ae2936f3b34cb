"""Replays drawn off-screen: ``frames`` as arrays and ``export_video`` to an MP4 or GIF.

The frames carry the viewer's overlays (HUD, trails, rays, labels); the files are
written through imageio (``.mp4`` by imageio-ffmpeg, ``.gif`` by Pillow), imported only
when a video is written.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from racing_rl.errors import ReplayError
from racing_rl.replay import Replay
from racing_rl.ui.render import Renderer

log = logging.getLogger(__name__)

MAX_FPS = {".gif": 50.0, ".mp4": 60.0}
"""The fastest frame rate a video is written at; a faster one keeps fewer frames
(``kept_frames``). A GIF's frame delays are whole 1/100 s, and browsers play delays under
2/100 s at 1/10 s; players show an MP4 at the screen's rate (60 Hz) at most."""
#: Memory Pillow holds per pixel of a GIF's frames until it writes the file [bytes]
#: (1.6-2.4 measured over 300x300 frames), and the size past which a GIF is warned of.
GIF_BYTES_PER_PIXEL = 2
GIF_WARN_BYTES = 2 * 10**9


def frames(
    replay: Replay,
    indices: Iterable[int] | None = None,
    renderer: Renderer | None = None,
    **renderer_options: Any,
) -> Iterator[NDArray[np.uint8]]:
    """The frames of ``replay`` drawn off-screen, as (H, W, 3) uint8 RGB arrays.

    Args:
        replay: the replay.
        indices: the frames to draw, in order; None draws every frame.
        renderer: an ``"rgb_array"`` renderer to draw with (closed at the end); None makes
            one of ``renderer_options``.
        renderer_options: ``racing_rl.ui.render.Renderer`` arguments (size_px, camera,
            follow, trail_length, ...).
    """
    renderer = renderer or Renderer(mode="rgb_array", **renderer_options)
    try:
        for t in range(replay.n_frames) if indices is None else indices:
            frame = renderer.draw(replay.snapshot(t, renderer.trail_length))
            assert frame is not None
            yield frame
    finally:
        renderer.close()


def video_stride(rate: float, max_fps: float) -> int:
    """The fewest replay frames between two kept ones, ``ceil(rate / max_fps)``, for a
    video whose frames play at ``rate`` [fps] to play at ``max_fps`` at most."""
    return math.ceil(rate / max_fps - 1e-9)


def kept_frames(n_frames: int, rate: float, max_fps: float) -> NDArray[np.int64]:
    """The frames a video at ``rate`` fps keeps to play at ``max_fps`` at most: evenly
    spread from the first to the last, at least ``ceil(rate / max_fps)`` frames apart.

    Args:
        n_frames: the replay's frames (>= 1).
        rate: the frame rate they play at [fps].
        max_fps: the fastest rate the video may have [fps].

    Returns:
        The kept frames' indices, ascending, shape (m,): 0 and ``n_frames - 1`` among them
        (closer than ``stride`` where the replay is shorter than that).
    """
    stride = video_stride(rate, max_fps)
    kept = max((n_frames - 1) // stride + 1, min(n_frames, 2))  # a replay's last frame too
    return np.round(np.linspace(0, n_frames - 1, kept)).astype(np.int64)


def gif_delays_ms(starts_s: NDArray[np.float64]) -> list[int]:
    """Each GIF frame's delay [ms], in whole 1/100 s, so that every frame starts at its
    time rounded to 1/100 s: a rate a GIF cannot hold (15 fps: 6.67/100 s) alternates
    delays (70, 60, 70 ms) instead of drifting (70 ms each: 5 % slow).

    Args:
        starts_s: each frame's start time, then the end of the last frame [s], shape
            (frames + 1,); frames >= 20 ms apart keep every delay >= 20 ms.
    """
    starts = np.floor(100 * np.asarray(starts_s, dtype=np.float64) + 0.5).astype(np.int64)
    return (10 * np.diff(starts)).tolist()


def export_video(
    replay: Replay,
    path: Path | str,
    speed: float = 1.0,
    fps: float | None = None,
    **renderer_options: Any,
) -> int:
    """Render a replay headless to a video file through imageio, with the viewer's overlays.

    ``.mp4`` (H.264 through imageio-ffmpeg) or ``.gif`` (Pillow). ``speed`` sets the
    playback rate by the frame rate. Every frame of the replay is drawn up to ``MAX_FPS``
    (50 for a GIF, 60 for an MP4); above it a video keeps, and draws, fewer frames, the
    first and the last among them (``kept_frames``). A GIF holds its frames as 256-colour images
    (1 byte a pixel) until Pillow writes the file; an MP4 is written as it is drawn.

    Args:
        replay: the replay.
        path: the output file, ``.mp4`` or ``.gif``.
        speed: playback speed [×]: the replay's frames play at ``speed / replay.dt`` fps
            unless ``fps``.
        fps: the rate the replay's frames play at [fps] (above ``MAX_FPS``, fewer of them
            are kept).
        renderer_options: ``racing_rl.ui.render.Renderer`` arguments (size_px, camera,
            follow, trail_length); an MP4's odd width or height is drawn one pixel larger
            (H.264's 4:2:0 colour needs even ones).

    Returns:
        The number of frames written.

    Raises:
        ReplayError: on another file type, a frame rate that is not > 0, a ``follow``
            that is not a car of the replay, or a ``path`` that cannot be written (said
            before the frames are drawn; an earlier file there is kept).
        ConfigError: on a renderer option out of range (a camera, size or trail length),
            said before ``path``'s missing folders are made.
    """
    import imageio.v3 as iio
    from tqdm import tqdm

    from racing_rl.files import cannot_write, write_atomic

    replay.check_car(int(renderer_options.get("follow", 0)))
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".mp4", ".gif"):
        raise ReplayError(f"Videos are .mp4 or .gif files, got {path}. Name the file so.")
    rate = float(fps or speed / replay.dt)
    if not (math.isfinite(rate) and rate > 0):
        raise ReplayError(
            f"A video's frame rate must be > 0, got {rate:g} fps (speed={speed:g}): give a "
            f"speed > 0 (the frame rate is speed × {1 / replay.dt:g} fps)."
        )
    if suffix == ".mp4" and "size_px" in renderer_options:  # H.264 4:2:0: even sizes
        renderer_options["size_px"] = tuple(n + n % 2 for n in renderer_options["size_px"])
    renderer = Renderer(mode="rgb_array", **renderer_options)  # its settings checked first
    if why := cannot_write(path):  # before the frames are drawn, not after
        raise ReplayError(f"Cannot write the video {path}: {why}. Choose another video= path.")
    kept = kept_frames(replay.n_frames, rate, MAX_FPS[suffix])
    if suffix == ".gif":
        width, height = renderer.size_px
        held = len(kept) * width * height * GIF_BYTES_PER_PIXEL
        if held > GIF_WARN_BYTES:
            log.warning(
                "%s: a GIF holds its frames in memory until it is written: %d frames of "
                "%dx%d px take about %.1f GB. A .mp4 is written as it is drawn; a higher "
                "speed= or a smaller size= keeps fewer or smaller frames.",
                path.name,
                len(kept),
                width,
                height,
                held / 1e9,
            )
    # Frames of the replay between two kept ones: they span its time, (kept - 1)
    # intervals over (n_frames - 1), at MAX_FPS at most (a replay shorter than one such
    # interval plays slower than speed, its first and last frame 1 / MAX_FPS apart).
    stride = video_stride(rate, MAX_FPS[suffix])
    spread = max((replay.n_frames - 1) / (len(kept) - 1) if len(kept) > 1 else 0.0, stride)
    written = 0

    def counted() -> Iterator[NDArray[np.uint8]]:
        nonlocal written
        # A bar on stderr while frames are drawn (and, for .mp4, encoded); none off a TTY.
        drawn = frames(replay, kept.tolist(), renderer)
        for frame in tqdm(drawn, total=len(kept), desc=path.name, unit="frame", disable=None):
            written += 1
            yield frame

    def write(tmp: Path) -> None:
        if suffix == ".mp4":
            # The legacy ffmpeg plugin writes frames as they come (no whole-video array);
            # its default macro_block_size (16) stretched 302 px to 304.
            with iio.imopen(tmp, "w", plugin="FFMPEG") as file:
                writer = file.legacy_get_writer(fps=rate / spread, macro_block_size=2)
                try:
                    for frame in counted():
                        writer.append_data(frame)
                finally:
                    # Also on an error (imwrite left ffmpeg running then, and it wrote
                    # ``tmp`` after write_atomic had removed it): ffmpeg ends first.
                    writer.close()
            return
        delays_ms = gif_delays_ms(np.arange(len(kept) + 1) * spread / rate)
        # Pillow takes one delay for a one-frame GIF (a list of one: a TypeError).
        duration = delays_ms if len(kept) > 1 else delays_ms[0]
        with iio.imopen(tmp, "w", plugin="pillow") as gif:
            for frame in counted():
                # bits=8: held as a 256-colour image (1 byte a pixel) until written.
                gif.write(frame, is_batch=False, bits=8, duration=duration, loop=0)
            # Pillow encodes the whole GIF when the file closes, after the bar ends.
            log.info("encoding %d frames as %s (Pillow) ...", written, path.name)

    # Stopped halfway (Ctrl-C, a full disk), a video file is unplayable: the file appears
    # whole or not at all, and an earlier one stays as it was.
    try:
        write_atomic(path, write, keep_suffix=True)
    except OSError as err:  # a full disk; ffmpeg's broken pipe when it could not write
        # The error names the temporary file (.<name>.partial.mp4): say it of path.
        kept = "; the earlier file there is kept" if path.is_file() else ""
        raise ReplayError(
            f"Cannot write the video {path}: {err.strerror or err}{kept}. Free some space or "
            "choose another video= path."
        ) from err
    log.debug("wrote %d frames to %s", written, path)  # the caller prints the result
    return written

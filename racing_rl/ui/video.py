"""Replays drawn off-screen: ``frames`` as arrays and ``export_video`` to an MP4 or GIF.

The frames carry the viewer's overlays (HUD, trails, rays, labels); the files are
written through imageio (``.mp4`` by imageio-ffmpeg, ``.gif`` by Pillow), imported only
when a video is written.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from racing_rl.errors import ReplayError
from racing_rl.replay import Replay
from racing_rl.ui.render import Renderer

log = logging.getLogger(__name__)

GIF_MAX_FPS = 50
"""A GIF's frame delays are whole 1/100 s, and browsers play delays under 2/100 s at
1/10 s: a faster GIF keeps every k-th frame instead."""


def frames(replay: Replay, **renderer_options: Any) -> Iterator[NDArray[np.uint8]]:
    """Every frame of ``replay`` drawn off-screen, as (H, W, 3) uint8 RGB arrays.

    Args:
        replay: the replay.
        renderer_options: ``racing_rl.ui.render.Renderer`` arguments (size_px, camera,
            follow, trail_length, ...).
    """
    renderer = Renderer(mode="rgb_array", **renderer_options)
    try:
        for t in range(replay.n_frames):
            frame = renderer.draw(replay.snapshot(t, renderer.trail_length))
            assert frame is not None
            yield frame
    finally:
        renderer.close()


def gif_delays_ms(frames: int, interval_s: float) -> list[int]:
    """Each GIF frame's delay [ms], in whole 1/100 s, so that frame k starts at
    ``k × interval_s`` rounded to 1/100 s: a rate a GIF cannot hold (15 fps: 6.67/100 s)
    alternates delays (70, 60, 70 ms) instead of drifting (70 ms each: 5 % slow).

    Args:
        frames: the number of frames.
        interval_s: the time between frames [s]; >= 0.02 keeps every delay >= 20 ms.
    """
    starts = np.floor(100 * interval_s * np.arange(frames + 1) + 0.5).astype(np.int64)
    return (10 * np.diff(starts)).tolist()


def export_video(
    replay: Replay,
    path: Path | str,
    speed: float = 1.0,
    fps: float | None = None,
    **renderer_options: Any,
) -> int:
    """Render a replay headless to a video file through imageio, with the viewer's overlays.

    ``.mp4`` (H.264 through imageio-ffmpeg) or ``.gif`` (Pillow). Every frame of the
    replay is drawn; ``speed`` sets the playback rate by the frame rate. A GIF keeps
    every k-th frame above ``GIF_MAX_FPS``, and holds its frames as 256-colour images
    (1 byte a pixel) until Pillow writes the file; an MP4 is written as it is drawn.

    Args:
        replay: the replay.
        path: the output file, ``.mp4`` or ``.gif``.
        speed: playback speed [×]: the frame rate is ``speed / replay.dt`` unless ``fps``.
        fps: frames per second of the video.
        renderer_options: ``racing_rl.ui.render.Renderer`` arguments (size_px, camera,
            follow, trail_length); MP4 sizes are rounded up to multiples of 16 px.

    Returns:
        The number of frames written.

    Raises:
        ReplayError: on another file type, a frame rate that is not > 0, or a ``follow``
            that is not a car of the replay.
    """
    import imageio.v3 as iio
    from tqdm import tqdm

    from racing_rl.checkpoints.saving import write_atomic

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
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0

    def counted() -> Iterator[NDArray[np.uint8]]:
        nonlocal count
        # A bar on stderr while frames are drawn (and, for .mp4, encoded); none off a TTY.
        drawn = frames(replay, **renderer_options)
        for frame in tqdm(drawn, total=replay.n_frames, desc=path.name, unit="frame", disable=None):
            count += 1
            yield frame

    written = 0

    def write(tmp: Path) -> None:
        nonlocal written
        if suffix == ".mp4":
            # The legacy ffmpeg plugin writes frames as they come (no whole-video array).
            iio.imwrite(tmp, counted(), is_batch=True, plugin="FFMPEG", fps=rate)
            written = count
            return
        stride = math.ceil(rate / GIF_MAX_FPS)
        kept = math.ceil(replay.n_frames / stride)
        delays_ms = gif_delays_ms(kept, stride / rate)
        # Pillow takes one delay for a one-frame GIF (a list of one: a TypeError).
        duration = delays_ms if kept > 1 else delays_ms[0]
        with iio.imopen(tmp, "w", plugin="pillow") as gif:
            for i, frame in enumerate(counted()):
                if i % stride == 0:
                    # bits=8: held as a 256-colour image (1 byte a pixel) until written.
                    gif.write(frame, is_batch=False, bits=8, duration=duration, loop=0)
                    written += 1
            # Pillow encodes the whole GIF when the file closes, after the bar ends.
            log.info("encoding %d frames as %s (Pillow) ...", written, path.name)

    # Stopped halfway (Ctrl-C, a full disk), a video file is unplayable: the file appears
    # whole or not at all, and an earlier one stays as it was.
    write_atomic(path, write, keep_suffix=True)
    log.debug("wrote %d frames to %s", written, path)  # the caller prints the result
    return written

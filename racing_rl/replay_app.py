"""``racing-rl replay``: play a replay file in a window, or export it to a video.

A thin Hydra app (``conf/replay.yaml``): ``run`` reads the file (``racing_rl.replay``) and
hands it to the viewer (``racing_rl.ui.viewer``) or the video export
(``racing_rl.ui.video``); ``main`` prints what was done.
"""

from __future__ import annotations

import time
from pathlib import Path

from omegaconf import DictConfig

from racing_rl.config import hydra_main
from racing_rl.errors import RacingRLError, print_error
from racing_rl.interrupts import stop
from racing_rl.replay import load_replay
from racing_rl.ui.render import window_size
from racing_rl.ui.video import export_video
from racing_rl.ui.viewer import play_replay


def run(cfg: DictConfig) -> str:
    """``racing-rl replay``: play ``cfg.path`` in a window, or export it to ``cfg.video``.

    Returns:
        A line saying what was done.

    Raises:
        ReplayError: if the replay cannot be read or the video path is not .mp4/.gif.
    """
    replay = load_replay(Path(cfg.path).expanduser())
    size = window_size(cfg.size)
    options = {"camera": cfg.camera, "follow": int(cfg.follow), "size_px": size}
    if cfg.video:
        started = time.perf_counter()
        count = export_video(
            replay,
            Path(cfg.video).expanduser(),
            speed=float(cfg.speed),
            trail_length=int(cfg.trail_length),
            **options,
        )
        seconds = time.perf_counter() - started
        racing_time = replay.n_steps * replay.dt  # T steps between the T + 1 frames
        return (
            f"wrote {count} frames ({racing_time:.1f} s of racing) to {cfg.video} "
            f"in {seconds:.1f} s"
        )
    script = list(cfg.script) if cfg.script is not None else None
    player = play_replay(
        replay,
        speed=float(cfg.speed),
        trail_length=int(cfg.trail_length),
        script=script,
        camera=options["camera"],
        follow=options["follow"],
        size_px=size,
    )
    return f"stopped at frame {player.frame} of {replay.n_frames - 1}"


@hydra_main("replay")
def main(cfg: DictConfig) -> None:
    """Hydra entry point of ``racing-rl replay``."""
    try:
        print(run(cfg))
    except RacingRLError as err:
        print_error("replay", err)
        raise SystemExit(1) from err
    except KeyboardInterrupt as interrupt:
        if not cfg.video:
            raise  # the window: nothing to write
        # written whole or not at all (export_video)
        what = f"before {cfg.video} was written: nothing written; any earlier {cfg.video} is kept"
        stop("replay", interrupt, what)

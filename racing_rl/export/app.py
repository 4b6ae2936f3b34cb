"""``racing-rl export``: the Hydra app (parse, ``racing_rl.export.export``, print)."""

from __future__ import annotations

from omegaconf import DictConfig

from racing_rl.config import hydra_main, job_failed
from racing_rl.errors import RacingRLError, print_error
from racing_rl.export import export
from racing_rl.interrupts import stop


@hydra_main("export")
def main(cfg: DictConfig) -> None:
    """Hydra entry point of ``racing-rl export``: a sweep's failed job is reported at its
    end, and the other jobs go on (``job_failed``)."""
    try:
        result = export(cfg)
    except RacingRLError as err:
        print_error("export", err)
        job_failed(err)
    except KeyboardInterrupt as interrupt:  # the file is written whole or not at all
        stop(
            "export",
            interrupt,
            "before its file was written: nothing written; any earlier file at its out= is kept",
        )
    print(
        f"wrote {result['path']} ({result['bytes'] / 1024:.0f} KiB): {result['algorithm']} "
        f"{result['checkpoint']}, {result['timesteps']:,} timesteps"
    )

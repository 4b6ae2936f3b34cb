"""``racing-rl emulate``: the Hydra app that runs ``racing_rl.bridge.emulator.Emulator``,
a stand-in for the Roblox game, until Ctrl-C (conf/emulate.yaml)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from omegaconf import DictConfig

from racing_rl.bridge.emulator import Emulator
from racing_rl.bridge.faults import Faults
from racing_rl.cli import print_error
from racing_rl.config import (
    backend_config,
    default_backend,
    hydra_main,
    to_container,
    track_seeds,
)
from racing_rl.errors import RacingRLError

log = logging.getLogger(__name__)

#: ``sim.episode`` keys the game does not have: the training server's settings decide.
SERVER_EPISODE_KEYS = ("max_steps", "laps", "track_change_every", "spawn")


@hydra_main("emulate")
def main(cfg: DictConfig) -> None:
    """Hydra entry point of ``racing-rl emulate``: play the game until Ctrl-C."""
    try:
        emulator = Emulator(
            cfg.url,
            backend_config(cfg.sim, where="sim"),
            lockstep=cfg.lockstep,
            tick_hz=cfg.tick_hz,
            heartbeat_hz=cfg.heartbeat_hz,
            token=cfg.token,
            done_reward=cfg.done_reward,
            track_seeds=track_seeds(cfg.track_seeds, "track_seeds"),
            hello=cfg.hello,
            info=cfg.info,
            echo_step=cfg.echo_step,
            watchdog_ticks=cfg.watchdog_ticks,
            max_environments=cfg.max_environments,
            silence_timeout=cfg.silence_timeout,
            faults=Faults(**to_container(cfg.faults)),
            record=Path(cfg.record) if cfg.record else None,
            seed=cfg.seed,
        )
    except (RacingRLError, ValueError) as err:
        print_error("emulate", err)
        raise SystemExit(1) from err
    defaults = default_backend("pygame").episode
    ignored = [
        f"sim.episode.{key}={cfg.sim.episode[key]}"
        for key in SERVER_EPISODE_KEYS
        if cfg.sim.episode[key] != defaults[key]
    ]
    if ignored:
        log.warning(
            "%s: ignored, as in the game: the training server decides when episodes end "
            "and where cars spawn (its backend.episode settings and SPAWN/RESET options)",
            ", ".join(ignored),
        )
    log.info(
        "emulating the game at %s (%s); Ctrl-C stops",
        cfg.url,
        "lock-step" if cfg.lockstep else f"the game's clock ({cfg.tick_hz:g} Hz, reset ticks)",
    )
    try:
        asyncio.run(emulator.run())
    except KeyboardInterrupt:
        if emulator.lockstep:  # no clock: every command is answered, nothing is late
            log.info("emulator stopped after %d commands (lock-step)", emulator.received)
            return
        log.info(
            "emulator stopped after %d commands, %d ticks (%d empty); an environment's "
            "ACTION was in time for %d of its %d driven ticks; %d watchdog shutdowns",
            emulator.received,
            emulator.ticks,
            emulator.empty_frames,
            emulator.in_time,
            emulator.awaited,
            emulator.watchdog_shutdowns,
        )

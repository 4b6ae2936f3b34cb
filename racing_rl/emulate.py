"""``racing-rl emulate``: the Hydra app that runs ``racing_rl.bridge.emulator.Emulator``,
a stand-in for the Roblox game, until Ctrl-C (conf/emulate.yaml)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from pathlib import Path

from omegaconf import DictConfig

from racing_rl.bridge.emulator import Emulator
from racing_rl.bridge.faults import Faults
from racing_rl.config import (
    backend_config,
    default_backend,
    hydra_main,
    to_container,
    track_seeds,
)
from racing_rl.errors import RacingRLError, print_error

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
    with contextlib.suppress(KeyboardInterrupt):  # a signal before the loop takes them
        asyncio.run(play(emulator))
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


async def play(emulator: Emulator) -> None:
    """Run ``emulator`` until SIGINT or SIGTERM (Ctrl-C, ``kill``), then return.

    The event loop takes both signals (``loop.add_signal_handler``), so they act between
    two of its steps: the session is cancelled, and the game closes the connection with
    1001 as a game that quits; ``Emulator.stop`` ends the reconnect loop as well, should a
    cancel be lost on its way. asyncio.run does this for SIGINT only where Python's
    default handler is set, and racing-rl's own (``racing_rl.interrupts``) is: it raised
    KeyboardInterrupt wherever the loop was, inside websockets' and asyncio's callbacks
    too, and an emulator was once still running 120 s after its SIGINT. The handlers
    before come back on return.

    Raises:
        ValueError: not in the main thread, where Python allows no signal handlers.
    """
    loop = asyncio.get_running_loop()
    session = asyncio.ensure_future(emulator.run())

    def stop() -> None:
        emulator.stop()
        session.cancel()

    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        loop.add_signal_handler(sig, stop)
    try:
        await asyncio.wait([session])
    finally:
        for sig, handler in previous.items():
            loop.remove_signal_handler(sig)
            signal.signal(sig, handler)
    if not session.cancelled():
        session.result()  # an error that ended it

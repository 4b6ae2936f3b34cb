"""Helpers for tests that talk to a game: a free loopback port, the ``backend=roblox``
config on it, and the emulator playing the game (imported by name, so not in conftest.py)."""

import contextlib
from collections.abc import Iterator

from omegaconf import OmegaConf

from racing_rl.bridge.emulator import Emulator
from racing_rl.bridge.server import free_port
from racing_rl.config import default_backend


def roblox_backend(**overrides):
    """The ``backend=roblox`` config group on a free port, with short timeouts."""
    cfg = default_backend("roblox")
    cfg.server.port = free_port()
    cfg.server.token = None
    cfg.connect_timeout = 20.0
    cfg.reconnect_timeout = 20.0
    cfg.observation_timeout = 5.0
    return OmegaConf.merge(cfg, overrides)


@contextlib.contextmanager
def game(port: int, **kwargs) -> Iterator[Emulator]:
    """The emulator (lock-step unless told otherwise) connected to ``port`` for a block."""
    kwargs.setdefault("lockstep", True)
    emulator = Emulator(f"ws://127.0.0.1:{port}/ws/test", **kwargs).start()
    try:
        yield emulator
    finally:
        emulator.stop()

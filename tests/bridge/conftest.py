"""Fixtures for the bridge: a server on a free loopback port and the emulator as the game."""

import contextlib
import socket
from collections.abc import Iterator

import pytest
from omegaconf import OmegaConf

from racing_rl.bridge.emulator import Emulator
from racing_rl.config import default_backend
from racing_rl.vec import make_parallel_envs, make_vec_env


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def roblox_backend(**overrides):
    """The ``backend=roblox`` config group on a free port, with short timeouts."""
    cfg = default_backend("roblox")
    cfg.server.port = free_port()
    cfg.server.token = None
    cfg.connect_timeout_s = 20.0
    cfg.reconnect_timeout_s = 20.0
    cfg.observation_timeout_s = 5.0
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


NO_WRAPPERS = OmegaConf.create({"frame_stack": 1, "monitor": False, "normalize": None})


@pytest.fixture
def roblox_vec_env():
    """Factory: a bare VecEnv of ``n_venvs`` × ``agents`` Roblox cars (closed afterwards)."""
    made = []

    def make(backend, n_venvs=2, agents=2, seeds=range(100)):
        envs = make_parallel_envs(backend, n_venvs, agents, [seeds] * n_venvs)
        venv = make_vec_env(envs, NO_WRAPPERS, gamma=0.99)
        made.append(venv)
        return venv

    yield make
    for venv in made:
        venv.close()

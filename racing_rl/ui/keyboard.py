"""A person at the keyboard: the keys held, as an action (``racing-rl play``).

Arrow keys or WASD drive (↑ throttle, ↓ brake and reverse, ←/→ steer), space or shift
burns nitro. ``KeyboardDriver`` reads the window's keys (``pygame_keys``) or a script of
key states (``ScriptedKeys``, for demos and headless tests).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import pygame
from numpy.typing import NDArray

from racing_rl.errors import ConfigError
from racing_rl.sim.world import World

#: Key names (``pygame.key.name``) and what they do.
THROTTLE_KEYS, BRAKE_KEYS = ("up", "w"), ("down", "s")
LEFT_KEYS, RIGHT_KEYS = ("left", "a"), ("right", "d")
NITRO_KEYS = ("space", "left shift", "right shift")


def keys_to_action(pressed: Iterable[str]) -> NDArray[np.float64]:
    """The action of the keys held: throttle, steering (negative left), nitro; shape (3,)."""
    held = set(pressed)
    throttle = float(any(k in held for k in THROTTLE_KEYS)) - float(
        any(k in held for k in BRAKE_KEYS)
    )
    steer = float(any(k in held for k in RIGHT_KEYS)) - float(any(k in held for k in LEFT_KEYS))
    nitro = 1.0 if any(k in held for k in NITRO_KEYS) else -1.0
    return np.array([throttle, steer, nitro])


def play_keys_to_action() -> dict[tuple[int, ...], NDArray[np.float32]]:
    """``keys_to_action`` of every combination of the arrow keys and space held, in
    Gymnasium's form (``gymnasium.utils.play``): a sorted tuple of pygame key codes (no
    empty one: that is ``play``'s ``noop``) -> float32 action, shape (3,)."""
    codes = {
        "up": pygame.K_UP,
        "down": pygame.K_DOWN,
        "left": pygame.K_LEFT,
        "right": pygame.K_RIGHT,
        "space": pygame.K_SPACE,
    }
    mapping = {}
    for held in itertools.chain.from_iterable(
        itertools.combinations(codes, n) for n in range(1, len(codes) + 1)
    ):
        mapping[tuple(sorted(codes[name] for name in held))] = keys_to_action(held).astype(
            np.float32
        )
    return mapping


def pygame_keys() -> set[str]:
    """Names of the keys held now (the window's keyboard state)."""
    pressed = pygame.key.get_pressed()
    names = (*THROTTLE_KEYS, *BRAKE_KEYS, *LEFT_KEYS, *RIGHT_KEYS, *NITRO_KEYS)
    return {name for name in names if pressed[pygame.key.key_code(name)]}


class KeyboardDriver:
    """A person at the keyboard (``racing_rl.drivers.Driver``).

    Args:
        keys: returns the names of the keys held now (``pygame_keys``, or a script).
        label: the name shown for the car.
    """

    def __init__(self, keys: Callable[[], set[str]] = pygame_keys, label: str = "you") -> None:
        self.keys = keys
        self.label = label
        self.run = "human"

    def reset(self, n_tracks: int) -> None:
        pass

    def act(self, observations: np.ndarray, worlds: Sequence[World], car: int) -> np.ndarray:
        return np.tile(keys_to_action(self.keys()), (len(worlds), 1))


class ScriptedKeys:
    """Key states from a script, one entry per step (``"up+left"``; ``"-"`` for none).

    Key names are ``pygame.key.name``'s (any case); ``shift`` stands for either shift key.

    Attributes:
        done: every entry has been used (the game then stops).

    Raises:
        ConfigError: on a key name that drives nothing (a typo would hold no key).
    """

    def __init__(self, script: Sequence[str]) -> None:
        self._script = [self._keys(step) for step in script]
        self._next = 0

    @staticmethod
    def _keys(step: str) -> set[str]:
        names = {key.strip().lower() for key in step.split("+")} - {"", "-"}
        names = {"left shift" if key == "shift" else key for key in names}
        known = (*THROTTLE_KEYS, *BRAKE_KEYS, *LEFT_KEYS, *RIGHT_KEYS, *NITRO_KEYS)
        unknown = sorted(names - set(known))
        if unknown:
            raise ConfigError(
                f"Invalid config: script entry {step!r} has unknown keys {unknown}; the keys "
                f"are {', '.join(known)} and shift, joined by + (e.g. up+left), or - for none."
            )
        return names

    @property
    def done(self) -> bool:
        return self._next >= len(self._script)

    def __call__(self) -> set[str]:
        if self.done:
            return set()
        step = self._script[self._next]
        self._next += 1
        return set(step)

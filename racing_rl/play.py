"""``racing-rl play``: drive a car yourself, alone or against a saved checkpoint.

Arrow keys drive (↑ throttle, ↓ brake and reverse, ←/→ steer), space or shift burns
nitro, esc or q gives up. The race is ``racing_rl.evaluation.races.run_races`` with a
``KeyboardDriver`` as car 0 and, with ``opponent=<run dir>``, the run's checkpoint as
car 1 (its own frame stack and frozen normalisation, on the run's tracks and rules),
shown live in a pygame window at the simulator's 15 Hz.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import hydra
import numpy as np
from numpy.typing import NDArray
from omegaconf import DictConfig

from racing_rl import config_dir
from racing_rl.errors import RacingRLError
from racing_rl.sim.world import World

log = logging.getLogger(__name__)

#: Key names (``pygame.key.name``) and what they do.
THROTTLE_KEYS, BRAKE_KEYS = ("up", "w"), ("down", "s")
LEFT_KEYS, RIGHT_KEYS = ("left", "a"), ("right", "d")
NITRO_KEYS = ("space", "left shift", "right shift")
QUIT_KEYS = ("escape", "q")


def keys_to_action(pressed: Iterable[str]) -> NDArray[np.float64]:
    """The action of the keys held: throttle, steering (negative left), nitro; shape (3,)."""
    held = set(pressed)
    throttle = float(any(k in held for k in THROTTLE_KEYS)) - float(
        any(k in held for k in BRAKE_KEYS)
    )
    steer = float(any(k in held for k in RIGHT_KEYS)) - float(any(k in held for k in LEFT_KEYS))
    nitro = 1.0 if any(k in held for k in NITRO_KEYS) else -1.0
    return np.array([throttle, steer, nitro])


def pygame_keys() -> set[str]:
    """Names of the keys held now (the window's keyboard state)."""
    import pygame

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

    Attributes:
        done: every entry has been used (the game then stops).
    """

    def __init__(self, script: Sequence[str]) -> None:
        self._script = list(script)
        self._next = 0

    @property
    def done(self) -> bool:
        return self._next >= len(self._script)

    def __call__(self) -> set[str]:
        if self.done:
            return set()
        step = self._script[self._next]
        self._next += 1
        return {key.strip() for key in step.split("+") if key.strip() not in ("", "-")}


def play(cfg: DictConfig) -> dict[str, Any]:
    """``racing-rl play``: one race of you (and ``cfg.opponent``) on track ``cfg.seed``.

    Returns:
        ``leaderboard`` rows (``racing_rl.evaluation.races.leaderboard``), ``replay`` (the saved
        replay's path, with ``record``) and ``steps``.

    Raises:
        CheckpointError: if the opponent's run or checkpoint cannot be loaded.
    """
    import pygame

    from racing_rl.backends import race_config
    from racing_rl.checkpoints.runs import load_policy_driver, load_run_config
    from racing_rl.evaluation.races import leaderboard, run_races
    from racing_rl.sim.render import Renderer
    from racing_rl.sim.snapshot import RaceSnapshot
    from racing_rl.vec import make_parallel_envs

    backend = cfg.backend
    script = ScriptedKeys(list(cfg.script)) if cfg.script is not None else None
    drivers: list[Any] = [KeyboardDriver(script or pygame_keys)]
    if cfg.opponent:
        run_dir = Path(cfg.opponent).expanduser()
        backend = load_run_config(run_dir).backend
        size = race_config(backend).observation_size
        drivers.append(load_policy_driver(run_dir, cfg, size))
    collisions = bool(backend.rules.get("car_collisions", False))
    episode = {"spawn": "grid" if collisions else "line", "laps": int(cfg.laps)}
    episode["max_steps"] = int(cfg.max_steps)
    envs = make_parallel_envs(backend, 1, len(drivers), [[int(cfg.seed)]], episode)
    renderer = Renderer(
        mode="human",
        fps=float(cfg.fps),
        size_px=(int(cfg.size[0]), int(cfg.size[1])),
        camera=cfg.camera,
        pump_events=False,
    )
    labels = tuple(d.label for d in drivers)
    steps = 0

    def on_step() -> bool:
        nonlocal steps
        steps += 1
        renderer.draw(RaceSnapshot.from_world(envs[0].unwrapped.world, labels))
        pygame.display.set_caption("racing-rl play · arrows drive, space nitro, esc quits")
        quit_now = any(
            event.type == pygame.QUIT
            or (event.type == pygame.KEYDOWN and pygame.key.name(event.key) in QUIT_KEYS)
            for event in pygame.event.get()
        )
        return not (quit_now or (script is not None and script.done))

    log.info("Arrow keys drive, space or shift burns nitro, esc quits.")
    try:
        (race,) = run_races(envs, drivers, record=bool(cfg.record), on_step=on_step)
    finally:
        renderer.close()
    result: dict[str, Any] = {"leaderboard": leaderboard(race), "steps": steps - 1}
    if cfg.record:
        result["replay"] = str(race.replay.save(Path(cfg.record).expanduser()))
    return result


@hydra.main(config_path=str(config_dir()), config_name="play", version_base="1.3")
def main(cfg: DictConfig) -> None:
    """Hydra entry point of ``racing-rl play``."""
    from racing_rl.evaluation.tables import format_table

    try:
        result = play(cfg)
    except RacingRLError as err:
        log.error("%s", err)
        raise SystemExit(1) from err
    rows = [
        {
            "pos": row["position"],
            "car": row["label"],
            "laps": row["laps"],
            "lap_times_s": " ".join(f"{t:.2f}" for t in row["lap_times_s"]) or "-",
            "result": f"{row['finish_time_s']:.2f} s"
            if row["finished"]
            else ("crash" if row["crashed"] else f"{row['progress']:.2f} laps"),
        }
        for row in result["leaderboard"]
    ]
    print(format_table(rows, ["pos", "car", "laps", "lap_times_s", "result"]))
    if "replay" in result:
        print(f"replay written to {result['replay']}")

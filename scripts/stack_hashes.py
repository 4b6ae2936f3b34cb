"""Fingerprint what the training stack returns, to show a refactor changed nothing.

Steps the simulator's SB3 VecEnv stack, built as ``racing-rl train`` builds it
(``racing_rl.training.training_env``: the training track mix, ``make_env`` →
``wrap_vec_env``), for ``--steps`` steps with seeded random
actions, and prints one SHA-256 per configuration over every observation, reward, done
flag and info (``terminal_observation``, ``TimeLimit.truncated``, ``episode`` but for its
wall-clock ``t``, lap times, reward terms, …) it returned. The same code and seed give
the same hashes on one machine; run it before and after a change and compare.
Configurations:

* ``default``: the default stack (conf/train.yaml: 4 tracks × 5 cars, frame stack,
  VecMonitor, VecNormalize);
* ``bare``: ``wrappers=none`` (the bare VecEnv), the same cars;
* ``solo``: ``wrappers=none``, 1 car on each of 3 tracks;
* ``traffic``: ``wrappers=none``, 3 cars on one track with car collisions and car sensing;
* ``per_car``: ``wrappers=none``, 4 × 5 cars, per-car episodes (``backend.episode.reset=car``).

Usage::

    python scripts/stack_hashes.py [--steps 400] [--seed 0]

The last line is a JSON object: configuration → hash.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from typing import Any

import numpy as np
from hydra import compose

from racing_rl.config import initialize
from racing_rl.errors import reported
from racing_rl.training import training_env

CONFIGS: dict[str, tuple[list[str], int, int]] = {
    # name: (overrides of conf/train.yaml, virtual environments, cars per environment)
    "default": ([], 4, 5),
    "bare": (["wrappers=none"], 4, 5),
    "solo": (["wrappers=none"], 3, 1),
    "traffic": (
        [
            "wrappers=none",
            "backend.rules.car_collisions=true",
            "backend.sensors.detect_cars=true",
        ],
        1,
        3,
    ),
    "per_car": (["wrappers=none", "backend.episode.reset=car"], 4, 5),
}


def _feed(digest: Any, value: Any) -> None:
    """Hash ``value`` (arrays by dtype, shape and bytes; mappings in key order)."""
    if isinstance(value, np.ndarray):
        digest.update(f"{value.dtype}{value.shape}".encode())
        digest.update(np.ascontiguousarray(value).tobytes())
    elif isinstance(value, dict):
        for key in sorted(value):
            if key == "t" and "r" in value:  # VecMonitor's wall-clock time of an episode
                continue
            digest.update(str(key).encode())
            _feed(digest, value[key])
    elif isinstance(value, list | tuple):
        for item in value:
            _feed(digest, item)
    elif isinstance(value, float | np.floating):
        digest.update(np.float64(value).tobytes())
    else:
        digest.update(repr(value).encode())


def stack_hash(overrides: list[str], n_envs: int, n_cars: int, steps: int, seed: int) -> str:
    """The SHA-256 of ``steps`` steps of one configuration's stack (see module doc)."""
    shape = [f"n_races={n_envs}", f"cars_per_race={n_cars}"]
    with initialize():
        cfg = compose("train", overrides=[*overrides, *shape])
    venv = training_env(cfg)  # as racing-rl train builds it: the track mix too
    venv.seed(seed)
    rng = np.random.default_rng(seed)
    digest = hashlib.sha256()
    _feed(digest, venv.reset())
    for _ in range(steps):
        actions = rng.uniform(-1.0, 1.0, (venv.num_envs, 3)).astype(np.float32)
        actions[:, 0] = np.abs(actions[:, 0])  # mostly forward, so laps and crashes happen
        _feed(digest, venv.step(actions))
    venv.close()
    return digest.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--steps", type=int, default=400, help="steps per configuration (default: %(default)s)"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="VecEnv and action seed (default: %(default)s)"
    )
    args = parser.parse_args()
    if args.steps < 1 or args.seed < 0:  # 0 steps: the reset's hash alone
        parser.error(f"--steps must be >= 1 and --seed >= 0, got {args.steps} and {args.seed}.")
    hashes = {}
    for name, (overrides, n_envs, n_cars) in CONFIGS.items():
        hashes[name] = stack_hash(overrides, n_envs, n_cars, args.steps, args.seed)
        print(f"{name:8s} {hashes[name]}", flush=True)
    print(json.dumps(hashes))


if __name__ == "__main__":
    with reported("stack_hashes.py"):
        main()

"""Benchmark: what an exported driver costs per action, beside SB3's ``predict``.

Exports a run's checkpoint to Luau and ONNX (in a temporary directory) and times, in the
same process and on the same recorded observations, one action for 1 car and for 20
cars (µs per car-action) with:

* **luau**: the ModuleScript in a Luau VM (pluau; interpreted, as outside Roblox: a
  game's ``--!native`` code generation is faster), one ``policy:act`` call per car;
* **onnx**: the ONNX model in onnxruntime (CPU, one thread), all cars in one batch;
* **sb3**: SB3's ``predict(deterministic=True)`` behind the run's frame stack and
  VecNormalize (``racing_rl.drivers.PolicyDriver``), all cars in one batch.

Also prints the exported file sizes. Usage::

    python scripts/bench_export.py <run dir> [--checkpoint best] [--steps 200]

The last line printed is a JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import OmegaConf

from racing_rl.checkpoints.runs import load_policy_driver
from racing_rl.errors import reported
from racing_rl.evaluation.tables import format_table
from racing_rl.export import FORMATS, load_spec, writer
from racing_rl.export.runtime import LuauPolicy, OnnxPolicy

#: Car counts timed.
CARS = (1, 20)


def observations(size: int, steps: int, seed: int = 0) -> np.ndarray:
    """Plausible raw frames, shape (steps, 20, size): rays, nitro, speed, is_reverse."""
    rng = np.random.default_rng(seed)
    frames = rng.uniform(0.0, 1.0, (steps, max(CARS), size)).astype(np.float32)
    frames[..., size - 2] = rng.uniform(-0.2, 1.0, frames.shape[:2])
    frames[..., size - 1] = 0.0
    return frames


def per_action_us(act: Callable[[np.ndarray], Any], frames: np.ndarray, cars: int) -> float:
    """Mean µs per car-action of ``act`` over ``frames[:, :cars]`` (after 10 warm-up steps)."""
    for step in frames[:10]:
        act(step[:cars])
    start = time.perf_counter()
    for step in frames:
        act(step[:cars])
    return (time.perf_counter() - start) / (len(frames) * cars) * 1e6


def run(run_dir: Path, checkpoint: str = "best", steps: int = 200) -> dict[str, Any]:
    """Time the three drivers for each of ``CARS``.

    Returns:
        ``us_per_action`` (driver → cars → µs), ``bytes`` (format → file size),
        ``algorithm``, ``checkpoint``, ``steps``.
    """
    torch.set_num_threads(1)
    spec = load_spec(run_dir, checkpoint)
    size = spec.observation_size  # a game run's backend leaves it to the game (None)
    frames = observations(size, steps)
    cfg = OmegaConf.create({"checkpoint": checkpoint, "device": "cpu"})
    sb3 = load_policy_driver(run_dir, cfg, size)
    timings: dict[str, dict[int, float]] = {"luau": {}, "onnx": {}, "sb3": {}}
    sizes = {}
    with tempfile.TemporaryDirectory() as tmp:
        paths = {fmt: Path(tmp) / f"policy{suffix}" for fmt, suffix in FORMATS.items()}
        for fmt, path in paths.items():
            writer(fmt)(spec, path)
            sizes[fmt] = path.stat().st_size
        luau = LuauPolicy.from_file(paths["luau"])
        for cars in CARS:
            sb3.reset(cars)
            timings["sb3"][cars] = per_action_us(lambda o: sb3.act(o, [], 0), frames, cars)
            timings["luau"][cars] = per_action_us(luau.act, frames, cars)
            # A new session per batch size: the model keeps its cars' frames and state.
            timings["onnx"][cars] = per_action_us(OnnxPolicy(paths["onnx"]).act, frames, cars)
    return {
        "algorithm": spec.algorithm,
        "checkpoint": spec.info["checkpoint"],
        "steps": steps,
        "us_per_action": timings,
        "bytes": sizes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path, help="a run directory (racing-rl train)")
    parser.add_argument(
        "--checkpoint", default="best", help="final | best | latest | <path> (default: %(default)s)"
    )
    parser.add_argument(
        "--steps", type=int, default=200, help="steps timed per car count (default: %(default)s)"
    )
    args = parser.parse_args()
    if args.steps < 1:
        parser.error(f"--steps must be >= 1, got {args.steps}.")
    # A wrong run dir or checkpoint: its message, naming --checkpoint, no traceback.
    with reported("bench_export.py", {"checkpoint": "--checkpoint"}):
        figures = run(args.run_dir, args.checkpoint, args.steps)
    print(f"{figures['algorithm']} {figures['checkpoint']}: µs per action (per car)")
    table = [
        {"driver": driver} | {f"{cars} car(s)": f"{row[cars]:.1f}" for cars in CARS}
        for driver, row in figures["us_per_action"].items()
    ]
    print(format_table(table, ["driver", *(f"{cars} car(s)" for cars in CARS)], left={"driver"}))
    for fmt, size in figures["bytes"].items():
        print(f"{fmt} file: {size / 1024:.0f} KiB")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()

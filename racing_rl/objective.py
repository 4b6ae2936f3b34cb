"""The number ``racing-rl train`` returns to Hydra sweepers (and writes to summary.json).

Sweepers (Optuna maximises it; Hydra's basic sweeper keeps it only in memory, so
summary.json and ``racing-rl report`` are where a basic sweep's are read) compare runs by one
float computed from the run's best validation metrics (``best/metrics.json``: the
validation tracks, which choose ``best/`` and are disjoint from the test tracks).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from omegaconf import OmegaConf

#: ``objective=`` choices of conf/train.yaml.
OBJECTIVES = ("laps", "return")


def objective_kind(cfg: Any) -> str:
    """What a run's validation ranks by, from its config (composed or saved):
    ``return`` in a Roblox game (its cars send no laps), else ``cfg.objective``."""
    if OmegaConf.select(cfg, "backend.name") == "roblox":
        return "return"
    return str(OmegaConf.select(cfg, "objective", default="laps"))


def objective(metrics: Mapping[str, float | None], kind: str, lap_time_limit: float) -> float:
    """One float to maximise, from validation metrics.

    ``laps``: ``c − t / (T · (n + 1))`` with ``c`` the lap-completion rate over ``n``
    episodes, ``t`` the mean lap time in seconds and ``T`` the time limit of a validation
    lap. As ``t ≤ T`` the tie-break term is below ``1 / (n + 1)``, smaller than one more
    completed lap (``1 / n``): completion decides, and among equal completion the faster
    driver wins (a lexicographic order as one float, which is what sweepers need). With
    no lap completed, ``t`` is ``T · (1 − p / 2)``, ``p`` the mean progress (a share of
    a lap, clipped to 0 … 1): the driver that gets further ranks higher, still below any
    that laps (a constant made the first validation's model ``best/`` until one lapped).

    ``return``: the mean episode return.

    Args:
        metrics: ``racing_rl.evaluation.results.summarize`` output (``lap_completion_rate``,
            ``mean_lap_time_s``, ``mean_progress``, ``mean_return``, ``episodes``), or the
            same read back from a ``metrics.json``, where a mean lap time of no lap is
            ``null``.
        kind: ``laps`` or ``return``.
        lap_time_limit: ``T`` in seconds (validation.max_steps × the step length).

    Raises:
        ValueError: on an unknown ``kind``.
    """
    if kind == "return":
        return float(metrics["mean_return"])
    if kind != "laps":
        raise ValueError(f"Unknown objective {kind!r}; choose one of {', '.join(OBJECTIVES)}.")
    lap_time = metrics["mean_lap_time_s"]
    if lap_time is None or math.isnan(lap_time):  # no lap: NaN, or null in metrics.json
        progress = metrics.get("mean_progress")
        progress = 0.0 if progress is None or math.isnan(progress) else progress
        lap_time = lap_time_limit * (1.0 - min(max(progress, 0.0), 1.0) / 2)
    tie_break = min(lap_time, lap_time_limit) / lap_time_limit / (metrics["episodes"] + 1)
    return float(metrics["lap_completion_rate"] - tie_break)

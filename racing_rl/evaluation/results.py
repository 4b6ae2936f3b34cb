"""One evaluated episode's figures (``EpisodeResult``) and the ``eval/`` metrics of many."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class EpisodeResult:
    """One evaluated episode of one car.

    Attributes:
        track_seed: the track.
        finished: completed the lap(s) asked for.
        crashed: the episode terminated in a crash.
        lap_time: its mean lap time [s] if it finished (one lap: that lap's time), else
            NaN.
        progress: progress along the track at the end [laps].
        mean_speed: path length / time [m/s].
        episode_return: sum of raw (unnormalised) rewards.
        length: steps.
        lap_times: every lap it completed [s], in order (a car that did not finish
            may have some).
        interrupted: a game lost the car mid-episode (a reconnection, a car that
            stopped reporting: ``info["interrupted"]``); the episode measures the
            connection, not the driver, and ``summarize`` leaves it out.
    """

    track_seed: int
    finished: bool
    crashed: bool
    lap_time: float
    progress: float
    mean_speed: float
    episode_return: float
    length: int
    lap_times: tuple[float, ...] = ()
    interrupted: bool = False

    @classmethod
    def from_info(
        cls,
        track_seed: int,
        info: Mapping[str, Any],
        lap_times: Sequence[float],
        episode_return: float,
        length: int,
    ) -> EpisodeResult:
        """The result of an episode from the car's last ``info``.

        Args:
            track_seed: the track.
            info: the car's info of its last step (``finished``, ``crashed``,
                ``interrupted``, ``progress`` [laps], ``mean_speed`` [m/s]; missing flags
                are False, missing figures NaN).
            lap_times: the laps it completed [s]; ``lap_time`` is their mean if the car
                ``finished`` (NaN without any: a game's tick that completed the lap may go
                unread).
            episode_return: sum of raw rewards.
            length: steps.
        """
        finished = bool(info.get("finished", False))
        laps = tuple(float(t) for t in lap_times)
        return cls(
            track_seed=int(track_seed),
            finished=finished,
            crashed=bool(info.get("crashed", False)),
            lap_time=float(np.mean(laps)) if finished and laps else math.nan,
            progress=float(info.get("progress", math.nan)),
            mean_speed=float(info.get("mean_speed", math.nan)),
            episode_return=float(episode_return),
            length=int(length),
            lap_times=laps,
            interrupted=bool(info.get("interrupted", False)),
        )


def summarize(results: Sequence[EpisodeResult]) -> dict[str, float]:
    """The ``eval/`` metrics of a set of episodes, leaving out the interrupted ones (a
    game that lost the car: ``EpisodeResult.interrupted``).

    Returns:
        ``lap_completion_rate`` (NaN where no episode reports its ``progress``: a game
        that sends no lap info counts no laps, ``unreported_info``), ``mean_lap_time_s``
        and ``best_lap_time_s`` (over every lap of the episodes that finished; NaN if
        none), ``mean_progress`` and ``mean_speed_mps`` (over the episodes that report
        them; NaN if none), ``crash_rate``, ``mean_return``, ``episodes`` (those measured:
        a rate or mean of none is NaN), and ``interrupted`` (how many were left out) where
        any was.
    """

    def mean(values: Sequence[float]) -> float:
        known = [v for v in values if not math.isnan(v)]
        return float(np.mean(known)) if known else math.nan

    measured = [r for r in results if not r.interrupted]
    lap_times = [t for r in measured if r.finished for t in r.lap_times]
    metrics = {
        "episodes": len(measured),
        "lap_completion_rate": math.nan
        if "progress" in unreported_info(measured)
        else mean([r.finished for r in measured]),
        "mean_lap_time_s": mean(lap_times),
        "best_lap_time_s": float(np.min(lap_times)) if lap_times else math.nan,
        "mean_progress": mean([r.progress for r in measured]),
        "crash_rate": mean([r.crashed for r in measured]),
        "mean_speed_mps": mean([r.mean_speed for r in measured]),
        "mean_return": mean([r.episode_return for r in measured]),
    }
    if len(measured) < len(results):
        metrics["interrupted"] = len(results) - len(measured)
    return metrics


#: The figures of an episode (``EpisodeResult``) and of ``summarize`` that a game's
#: optional ``info`` gives (docs/protocol.md), by the ``info`` key that tells whether it
#: sent that: ``progress`` with the lap keys (``laps``, ``lap_time``), which the game's
#: "lap info" sends together, and ``mean_speed``. Without them the figures read NaN (null
#: in a ``metrics.json``): not measured.
GAME_INFO_FIGURES = {
    "progress": (
        "lap_time",
        "progress",
        "lap_completion_rate",
        "mean_lap_time_s",
        "best_lap_time_s",
        "mean_progress",
    ),
    "mean_speed": ("mean_speed", "mean_speed_mps"),
}


def unreported_info(results: Sequence[EpisodeResult]) -> list[str]:
    """The keys of ``GAME_INFO_FIGURES`` that no episode of a game reported: where no
    measured (not interrupted) episode has a finite figure of that key. The simulator
    reports both on every episode; a game without the ``info`` extension, neither.

    Args:
        results: the episodes of an evaluation in a game.

    Returns:
        ``progress`` and/or ``mean_speed``, in that order; empty where every episode was
        interrupted (nothing was measured, so nothing tells what the game sends).
    """
    measured = [r for r in results if not r.interrupted]
    if not measured:
        return []
    return [
        key
        for key in GAME_INFO_FIGURES
        if not any(math.isfinite(getattr(r, key)) for r in measured)
    ]


def lap_figures(metrics: Mapping[str, float | None]) -> str:
    """``lap completion 95%, mean lap 20.09 s`` of ``summarize``'s metrics, for the logs;
    ``lap completion 0%`` alone when no lap was completed (its mean lap time is NaN, or
    ``null`` in a ``metrics.json``)."""
    text = f"lap completion {100 * metrics['lap_completion_rate']:.0f}%"
    lap_time = metrics["mean_lap_time_s"]
    if lap_time is not None and not math.isnan(lap_time):
        text += f", mean lap {lap_time:.2f} s"
    return text

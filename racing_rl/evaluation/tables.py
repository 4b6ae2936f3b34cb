"""Results as plain-text tables: ``racing-rl eval``'s, ``play``'s and the scripts'."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """A plain-text table of ``rows`` (dicts) with the given columns."""

    def cell(value: Any) -> str:
        return f"{value:.3f}" if isinstance(value, float) else str(value)

    body = [[cell(row[c]) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in body)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.rjust(w) for v, w in zip(r, widths, strict=True)) for r in body]
    return "\n".join(lines)


def race_tables(metrics: dict[str, Any]) -> str:
    """A race's leaderboard per track (position, lap times, gaps), a blank line, and the
    standings.

    Args:
        metrics: a race's metrics (``racing_rl.evaluation.command.evaluate``):
            ``tracks`` with their ``leaderboard`` rows, ``standings``.
    """
    rows = []
    for track in metrics["tracks"]:
        for row in track["leaderboard"]:
            laps = " ".join(f"{t:.2f}" for t in row["lap_times_s"]) or "-"
            if row["finished"]:
                result = f"{row['finish_time_s']:.2f}"
                gap = f"+{row['gap_s']:.2f}" if row["position"] > 1 else ""
            else:
                result, gap = ("crash" if row["crashed"] else "DNF"), f"{row['progress']:.2f} laps"
            rows.append(
                {
                    "track": track["track_seed"],
                    "pos": row["position"],
                    "car": row["label"],
                    "lap_times_s": laps,
                    "time_s": result,
                    "gap": gap,
                }
            )
    columns = ["position", "label", "wins", "mean_position", "finished_rate", "mean_lap_time_s"]
    return "\n\n".join(
        [
            format_table(rows, ["track", "pos", "car", "lap_times_s", "time_s", "gap"]),
            format_table(metrics["standings"], columns),
        ]
    )

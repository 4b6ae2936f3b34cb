"""Results as tables: plain text (``racing-rl eval``'s, ``play``'s and the scripts') and
Markdown (``racing-rl report``'s and the scripts' ``docs/`` tables)."""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Sequence
from typing import Any


def format_table(
    rows: Sequence[dict[str, Any]], columns: Sequence[str], left: Collection[str] = ()
) -> str:
    """A plain-text table of ``rows`` (dicts) with the given columns, two spaces apart,
    without a trailing newline.

    Args:
        rows: one dict per row, with a value for each of ``columns``; a float prints with
            3 decimals, NaN as ``-`` (a figure of nothing, such as the lap time of a car
            that did not finish or the crash rate of a car whose every episode a game
            lost: ``null`` in a ``metrics.json``), any other value ``str()``-ed (pass a
            string, such as ``f"{rate:,.0f}"``, for another format).
        columns: the keys shown, in order, which are also the headers.
        left: the columns aligned left (a column of names); the others align right.
    """

    def cell(value: Any) -> str:
        if isinstance(value, float):
            return "-" if math.isnan(value) else fixed(value, 3)
        return str(value)

    def line(cells: Sequence[str]) -> str:
        aligned = (
            v.ljust(w) if c in left else v.rjust(w)
            for c, v, w in zip(columns, cells, widths, strict=True)
        )
        return "  ".join(aligned)

    body = [[cell(row[c]) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in body)) for i, c in enumerate(columns)]
    return "\n".join([line(columns), *(line(r) for r in body)])


def markdown_table(
    head: Sequence[str], rows: Iterable[Sequence[Any]], right: Collection[int] = ()
) -> str:
    """A Markdown (GitHub pipe) table, without a trailing newline.

    Args:
        head: the column headers.
        rows: one sequence of cells per row, as many as ``head``; each cell is ``str()``-ed.
        right: the indices of the columns aligned right (``---:``); the others align left.

    Raises:
        ValueError: if a row has more or fewer cells than ``head``.
    """
    lines = [
        "| " + " | ".join(head) + " |",
        "|" + "".join("---:|" if i in right else "---|" for i in range(len(head))),
    ]
    for row in rows:
        cells = [str(c) for c in row]
        if len(cells) != len(head):
            raise ValueError(f"a row of {len(cells)} cells in a table of {len(head)} columns")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def fixed(value: float, digits: int) -> str:
    """``value`` with ``digits`` decimals, and no sign on a value that rounds to zero
    (``0.000``, not ``-0.000``)."""
    text = f"{value:.{digits}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def tracks_phrase(seeds: Sequence[int], split: str | None, difficulty: str | None = None) -> str:
    """The tracks of an evaluation in words: ``20 test tracks``, ``20 hard test tracks``,
    ``1 track (seed 5)``, ``2 tracks (seeds 5, 6)``.

    Args:
        seeds: the track seeds raced (repeats, from several rounds, count once).
        split: the ``cfg.tracks`` split they come from; None for seeds given explicitly.
        difficulty: the ``difficulty`` level raced on instead of the run's own, or None.
    """
    distinct = list(dict.fromkeys(seeds))
    plural = "" if len(distinct) == 1 else "s"
    kind = " ".join(word for word in (difficulty, split) if word)
    if split:
        return f"{len(distinct)} {kind} track{plural}"
    shown = ", ".join(str(s) for s in distinct[:8]) + (", ..." if len(distinct) > 8 else "")
    return f"{len(distinct)} {kind + ' ' if kind else ''}track{plural} (seed{plural} {shown})"


def in_game_phrase(count: int, what: str) -> str:
    """The episodes or races of an evaluation in a game, in words: ``20 episodes in the
    game, which chooses the track (track_seed: the seed suggested to it)``. The unmodified
    game has one map and ignores the seeds it is sent, so they are no test tracks.

    Args:
        count: how many there were.
        what: ``episode`` or ``race``.
    """
    return (
        f"{count} {what}{'' if count == 1 else 's'} in the game, which chooses the track "
        "(track_seed: the seed suggested to it)"
    )


def not_measured(figures: Sequence[str], unreported: Sequence[str]) -> str:
    """The line that names the figures a game left unmeasured: ``not measured: lap_time,
    progress (the game sent no info.progress, ...)``.

    Args:
        figures: the figures (columns, tables) left out.
        unreported: the optional ``info`` keys the game did not send
            (``racing_rl.evaluation.results.unreported_info``).
    """
    sent_no = " or ".join(f"info.{key}" for key in unreported)
    return (
        f"not measured: {', '.join(figures)} (the game sent no {sent_no}, the protocol's "
        "optional lap info: docs/roblox.md#optional-game-side-improvements)"
    )


def ending(row: dict[str, Any]) -> str:
    """How a car's episode ended, from its row (``finished``, ``crashed``, and
    ``interrupted`` where a game lost the car): ``finished``, ``crash``, ``lost`` or ``DNF``
    (out of time, or stuck)."""
    if row.get("interrupted"):
        return "lost"
    return "finished" if row["finished"] else "crash" if row["crashed"] else "DNF"


def race_tables(metrics: dict[str, Any]) -> str:
    """A race's leaderboard per track (position, lap times, gaps), a blank line, and the
    standings. In a game that sent no lap info (``unreported_info``: ``progress``),
    which ranks no car, each car's ending, return and length per track, its figures
    over the tracks (``cars``), and a line on what was not measured.

    Args:
        metrics: a race's metrics (``racing_rl.evaluation.command.evaluate``):
            ``tracks`` with their ``leaderboard`` rows, ``standings``, ``cars``, and in
            a game ``unreported_info``.
    """
    unreported = metrics.get("unreported_info", [])
    if "progress" in unreported:
        rows = [
            {"track": track["track_seed"], "car": row["label"], "ending": ending(row), **row}
            for track in metrics["tracks"]
            for row in track["leaderboard"]
        ]
        cars = [{"label": label, **figures} for label, figures in metrics["cars"].items()]
        return "\n\n".join(
            [
                format_table(rows, ["track", "car", "ending", "episode_return", "length"]),
                format_table(cars, ["label", "episodes", "crash_rate", "mean_return"]),
                not_measured(["pos", "lap_times_s", "time_s", "gap", "standings"], unreported),
            ]
        )
    rows = []
    for track in metrics["tracks"]:
        for row in track["leaderboard"]:
            laps = " ".join(f"{t:.2f}" for t in row["lap_times_s"]) or "-"
            if row["finished"]:
                result = f"{row['finish_time_s']:.2f}"
                gap = f"+{row['gap_s']:.2f}" if row["position"] > 1 else ""
            else:
                result = ending(row)
                gap = f"{fixed(row['progress'], 2)} laps"
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
    standings = metrics["standings"]
    return "\n\n".join(
        [
            format_table(rows, ["track", "pos", "car", "lap_times_s", "time_s", "gap"]),
            format_table(standings, columns)
            if standings
            else "no standings: the game lost a car (time_s: lost) on every track",
        ]
    )

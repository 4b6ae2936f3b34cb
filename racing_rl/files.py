"""Files written so that a reader never sees half of one: ``write_atomic`` and the
strict JSON every racing-rl record is written in. No dependency beyond the standard
library, so that light modules (replays, provenance) can use it.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any


def cannot_write(path: Path) -> str | None:
    """Why a file cannot be written at ``path``, or None if it can: checked before long
    work (drawing a video, a race a person drives) so that its result is not lost at the
    end. Creates ``path``'s missing directories and a temporary file beside it (removed).

    Returns:
        ``<path> is a directory``, ``<parent> is a file, not a directory``, ``<parent>
        does not accept new files (creating one there failed: <the operating system's
        reason>)`` (``/proc``, whose "No such file or directory" is about the new file, a
        directory without write permission, a read-only or full disk), or the operating
        system's reason for a path that cannot be checked or a directory that cannot be
        made (``<path>: Permission denied``). Raises nothing: every ``OSError`` is a reason.
    """
    try:
        if path.is_dir():
            return f"{path} is a directory"
        blocking = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
        if blocking is not None:
            return f"{blocking} is a file, not a directory"
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:  # named after the file or directory it is about
        return f"{err.filename or path.parent}: {err.strerror or err}"
    try:
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".probe"):
            pass
    except OSError as err:  # about the probe file, not its existing directory
        why = err.strerror or err
        return f"{path.parent} does not accept new files (creating one there failed: {why})"
    return None


def write_atomic(path: Path, write: Callable[[Path], object], keep_suffix: bool = False) -> None:
    """Write a file so that ``path`` holds either its old content or the complete new one.

    ``write(tmp)`` creates a temporary file beside ``path``: ``.<name>.partial``, or
    ``.<stem>.partial<suffix>`` with ``keep_suffix`` (for writers that choose the format
    by the file's suffix, such as ffmpeg). It is flushed to disk and renamed over
    ``path`` (``os.replace`` is atomic on POSIX and Windows); however ``write`` ends (an
    error, Ctrl-C), the temporary file is removed.
    """
    name = f".{path.stem}.partial{path.suffix}" if keep_suffix else f".{path.name}.partial"
    tmp = path.with_name(name)
    try:
        write(tmp)
        with open(tmp, "rb+") as file:
            os.fsync(file.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def strict_json(value: Any, indent: int | None = None) -> str:
    """``value`` as strict JSON (RFC 8259): a float that is not finite (NaN, e.g. the mean
    lap time of an evaluation with no lap; an infinity) becomes ``null``, where
    ``json.dumps`` would write the bare token ``NaN`` that other JSON readers refuse.

    Raises:
        TypeError: on a value ``json.dumps`` cannot encode.
    """

    def finite(item: Any) -> Any:
        if isinstance(item, float):
            return item if math.isfinite(item) else None
        if isinstance(item, Mapping):
            return {key: finite(v) for key, v in item.items()}
        if isinstance(item, list | tuple):
            return [finite(v) for v in item]
        return item

    return json.dumps(finite(value), indent=indent, allow_nan=False)


def write_json(path: Path, value: Any) -> None:
    """Write ``value`` to ``path`` as indented ``strict_json``, atomically (``write_atomic``).

    Raises:
        TypeError: on a value ``json.dumps`` cannot encode; ``path`` is then left as it was.
    """
    text = strict_json(value, indent=2)
    write_atomic(path, lambda tmp: tmp.write_text(text))


def read_record(path: Path, then: str) -> dict[str, Any] | None:
    """A run's JSON record (``best/metrics.json``, ``summary.json``), or None where there is
    none or it cannot be read (a full disk, an edit): a damaged record counts as none, with
    a warning that names it and says ``then``, what follows from that.
    """
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        why = f"{type(err).__name__}: {err}"
    else:
        if isinstance(record, dict):
            return record
        why = f"a JSON {type(record).__name__}, not an object"
    logging.getLogger(__name__).warning("%s cannot be read (%s): %s", path, why, then)
    return None


def recorded_timesteps(record: Path) -> int | None:
    """The ``timesteps`` of a run's JSON record (``best/metrics.json``: the best model's;
    ``summary.json``, written when a run completes: the run's); None if there is none, or
    it is damaged (``read_record`` warns)."""
    read = read_record(record, "taken as missing; the run writes it again")
    return None if read is None else read.get("timesteps")

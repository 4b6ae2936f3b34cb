"""The exception tree. Every error racing-rl raises on purpose derives from RacingRLError.

Messages say what was got, what was expected and how to fix it.
"""

import errno
import math
import numbers
import re
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import numpy as np


def causes(err: BaseException) -> Iterator[BaseException]:
    """``err``, then each exception it was raised from or while handling (``__cause__``,
    else ``__context__``), each once (a cycle ends the walk)."""
    seen: set[int] = set()
    cause: BaseException | None = err
    while cause is not None and id(cause) not in seen:
        yield cause
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__


def disk_full(err: BaseException) -> OSError | None:
    """The ``OSError`` of a full disk (or quota: ``ENOSPC``, ``EDQUOT``) that ``err`` is or
    was raised from (torch's zip writer says ``RuntimeError`` about it), or None."""
    full = (errno.ENOSPC, errno.EDQUOT)
    return next((c for c in causes(err) if isinstance(c, OSError) and c.errno in full), None)


def interruption(err: BaseException) -> KeyboardInterrupt | None:
    """The ``KeyboardInterrupt`` (Ctrl-C, or SIGTERM as ``racing_rl.interrupts`` raises it)
    that ``err`` is or was raised while handling, or None: a library whose cleanup fails
    once Ctrl-C has cut it short (OmegaConf: an ``AttributeError`` of its half-updated
    node) raises an error that says nothing of the file it was reading."""
    return next((c for c in causes(err) if isinstance(c, KeyboardInterrupt)), None)


def is_integer(value: object) -> bool:
    """Whether ``value`` is an integer (Python's or NumPy's) and not a bool: what a count,
    a size or a seed must be, where ``True`` would read as 1 and ``5.0`` or ``"5"`` fail
    further on, or round."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_number(value: object) -> bool:
    """Whether ``value`` is a real number (an integer or a float, Python's or NumPy's) and
    not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_range(
    setting: str,
    value: float,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
    inf: str | None = None,
    hint: str = "",
) -> None:
    """Refuse a numeric setting that is no number (a string, None, a list, a bool: a
    settings dataclass built by hand, not from Hydra's typed YAML), NaN, infinite or out of
    its range.

    Every comparison with NaN is False, so ``value <= 0`` lets it through; this check does
    not. A settings dataclass calls it from ``__post_init__`` for each number it takes.

    Args:
        setting: the setting's path as users type it (``car.max_speed``), for the message.
        value: the number given.
        low, high: the bounds of the range; None for none on that side.
        low_open, high_open: whether that bound is excluded (``> 0`` rather than ``>= 0``).
        inf: what ``+inf`` means where it is a valid value (``"wait for ever"``), said in
            the message; None refuses it like ``-inf`` and NaN.
        hint: a sentence the message ends with (the setting's unit and default), or "".

    Raises:
        ConfigError: naming the setting, the value and the range, e.g. ``car.max_speed
            must be a finite number > 0, got nan.`` (``got '10'.`` for a string).
    """
    number = is_number(value)
    below = number and low is not None and (value <= low if low_open else value < low)
    above = number and high is not None and (value >= high if high_open else value > high)
    infinite_ok = number and inf is not None and value == math.inf
    if number and (math.isfinite(value) or infinite_ok) and not (below or above):
        return
    if low is not None and high is not None:
        rule = f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    elif low is not None:
        rule = f"{'>' if low_open else '>='} {low:g}"
    elif high is not None:
        rule = f"{'<' if high_open else '<='} {high:g}"
    else:
        rule = ""
    if inf is not None:
        rule += f", or inf ({inf})"
    elif not number or not math.isfinite(value) or not rule:
        rule = f"a finite number {rule}".rstrip()
    got = value if number else repr(value)
    raise ConfigError(f"{setting} must be {rule}, got {got}." + (f" {hint}" if hint else ""))


def check_integer(setting: str, value: int, low: int) -> None:
    """Refuse a count setting that is no integer (a float, a string, None, a bool:
    ``is_integer``) or is below ``low``.

    Args:
        setting: the setting's path as users type it (``track.n_obstacles``).
        value: the value given.
        low: the least value allowed.

    Raises:
        ConfigError: ``track.n_obstacles must be a whole number >= 0, got 2.5.``
    """
    if not is_integer(value) or value < low:
        raise ConfigError(f"{setting} must be a whole number >= {low}, got {value!r}.")


def check_flag(setting: str, value: bool) -> None:
    """Refuse a switch that is no bool (Python's or NumPy's): the string ``"false"``, or
    any list or number but 0, is truthy, and would turn the switch on.

    Raises:
        ConfigError: ``rules.car_collisions must be true or false, got 'false'.``
    """
    if not isinstance(value, bool | np.bool_):
        raise ConfigError(f"{setting} must be true or false, got {value!r}.")


def print_error(command: str, err: Exception | str) -> None:
    """Print ``err`` as one line on stderr, ``racing-rl <command>: <message>``: how a
    command reports an error that has no run log to go to (a usage error, a config or
    checkpoint error found before Hydra makes the run directory, any error of export,
    play and replay, which write no log)."""
    print(f"racing-rl{' ' + command if command else ''}: {err}", file=sys.stderr)


def one_line(err: BaseException) -> str:
    """An error's message in one line (Hydra's span lines), without Hydra's
    HYDRA_FULL_ERROR hint."""
    why = str(err).replace(", set env var HYDRA_FULL_ERROR=1 to see chained exception", "")
    return " ".join(line.strip() for line in why.splitlines() if line.strip())


class RacingRLError(Exception):
    """Base class of racing-rl's own errors."""


class ConfigError(RacingRLError, ValueError):
    """A configuration value is missing, unknown or out of range."""


class TrackGenerationError(RacingRLError):
    """No valid track could be generated for a seed within the allowed attempts."""


class CheckpointError(RacingRLError):
    """A checkpoint or run directory is missing, damaged or does not match the config."""


class PickleRefused(CheckpointError):
    """A checkpoint holds a part (VecNormalize statistics, a replay buffer) only as a
    pickle, and ``trust_pickles`` is off. Only the user can decide to trust it, so
    ``racing-rl train resume=`` stops here instead of falling back to an older checkpoint."""


class NonFiniteError(RacingRLError):
    """A value that training keeps (a normalisation statistic, a weight) would become
    infinite or NaN."""


class BridgeError(RacingRLError):
    """The Roblox bridge cannot go on: no game connected, or the game did not answer in time."""


class BridgeProtocolError(BridgeError):
    """A message on the Roblox bridge is malformed or violates the protocol."""


class TrainingInterrupted(RacingRLError):
    """Training stopped on SIGINT (Ctrl-C) or SIGTERM after saving a checkpoint (or,
    interrupted while setting up, with nothing to save).

    Attributes:
        exit_code: the shell convention for the signal: 128 + its number.
    """

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class ReplayError(RacingRLError):
    """A replay file is missing, damaged, or of a format version this code does not read."""


class ExportError(RacingRLError):
    """A policy cannot be exported: its network or settings are not ones ``racing-rl export``
    translates (a custom feature extractor or layer, a shared LSTM, a non-Box space)."""


@contextmanager
def reported(program: str, options: Mapping[str, str] | None = None) -> Iterator[None]:
    """Around a script's ``main()``: a ``RacingRLError`` (a wrong run directory, checkpoint
    or setting) or a missing file ends the program with ``<program>: <message>`` on one
    line and exit status 1, instead of a traceback.

    Args:
        program: the script's name, which starts the line.
        options: the racing-rl keys that the script takes as options of its own, each with
            its option (``{"checkpoint": "--checkpoint"}``): the message names the option,
            ``--checkpoint final``, where racing-rl's says ``checkpoint=final``.

    Raises:
        SystemExit: with that message.
    """
    try:
        yield
    except RacingRLError as err:
        message = one_line(err)
        for key, option in (options or {}).items():
            message = re.sub(rf"(?<![\w.]){re.escape(key)}= ?", f"{option} ", message)
        raise SystemExit(f"{program}: {message}") from None
    except FileNotFoundError as err:
        raise SystemExit(f"{program}: no such file or directory: {err.filename}") from None

"""The Roblox bridge's messages: commands to the game, observations from it, validation.

The wire format is the seed game's (``docs/protocol.md`` has every message with an
example): JSON text frames, server → game ``{"command": C, "envid": "<id>", "data":
{...}}``, game → server ``{"<agent id>": {"obs": [...], "reward": r, "terminated": b,
"truncated": b}, ...}``; ``[]`` is a tick with no unfrozen car (Roblox encodes an empty
table as an array). Everything a game sends is validated here before it reaches
training. A frame that is not a JSON object of entries raises ``BridgeProtocolError``
with the reason and is dropped whole; a bad entry (an unknown agent, a wrong length,
NaN or an infinity, which Roblox's ``JSONEncode`` writes) is dropped alone, counted by
kind (``ENTRY_FAULTS``), and the frame's other entries are kept. Numbers are bounded
before they reach a float32 array (``OBSERVATION_LIMIT``, ``REWARD_LIMIT``), and the
``info`` extension is checked key by key against ``INFO_FIELDS``: anything else in it
(``episode``, ``terminal_observation``, ``TimeLimit.truncated``, which SB3 reserves, or
any unknown key) is dropped, counted by kind (``INFO_FAULTS``), and the entry is kept.

Extensions a seed game does not need (it ignores them, or never sends them):

- server → game: ``"step"`` (an integer) beside ``command`` on ``ACTION``; ``"options"``
  in ``SPAWN_AGENTS``/``RESET_AGENTS`` data (track seed, spawn mode) for games that can
  choose; ``HELLO`` in answer to a game's hello.
- game → server: ``{"hello": {"protocol": 1, "observation_size": 19}}`` once after
  connecting; per agent entry an echoed ``"step"`` (an entry older than the newest
  ``ACTION`` is stale and ignored) and an ``"info"`` object (``progress``, ``laps``,
  ``lap_time`` [s], ``speed`` [m/s], ``crashed``, ...) that lets racing-rl measure laps.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from racing_rl.contract import STATE_SIZE
from racing_rl.errors import BridgeProtocolError, is_integer

PROTOCOL_VERSION = 1
"""Bumped when a message changes meaning; additions that old games ignore keep it."""

SPAWN_AGENTS = "SPAWN_AGENTS"
RESET_AGENTS = "RESET_AGENTS"
REMOVE_AGENTS = "REMOVE_AGENTS"
ACTION = "ACTION"
FREEZE = "FREEZE"
UPDATE_COLLISIONS = "UPDATE_COLLISIONS"
CLOSE = "CLOSE"
CLOSE_ALL = "CLOSE_ALL"
PING = "PING"
CREATE_ENV = "CREATE_ENV"
HELLO = "HELLO"
COMMANDS = (
    SPAWN_AGENTS,
    RESET_AGENTS,
    REMOVE_AGENTS,
    ACTION,
    FREEZE,
    UPDATE_COLLISIONS,
    CLOSE,
    CLOSE_ALL,
    PING,
    CREATE_ENV,
    HELLO,
)
MAX_ENVIRONMENTS = 31
"""Virtual environments the game keeps apart: a collision group each, and Roblox allows 32
per place, one of which is the default group."""
WATCHDOG_TICKS = 250
"""Ticks with an unfrozen car and no ``ACTION`` after which the game closes every
environment and stops ticking until restarted (``CmdHandler``; ROBLOX_GAME.md)."""
ENTRY_FAULTS = ("unknown_agent", "wrong_length", "non_finite", "out_of_range", "malformed")
"""Why a single entry of a frame is dropped (``GameFrame.dropped``)."""
OBSERVATION_LIMIT = 1e4
"""Largest magnitude of an observation number. The contract's ranges are [0, 1] and
[-1, 1]; this bound only keeps a broken game from overflowing float32 (1e39 is ``inf``
there) or VecNormalize's running variance (1e30 squared is ``inf``)."""
OBSERVATION_SIZE_LIMIT = 10_000
"""Most numbers per observation a game's hello may announce (the game's cars send 13 or
19): a hello of more is malformed and dropped, before an observation space of that size
is built (a hello of 10⁸ took 24 s to build one; 10¹² raised a bare ``MemoryError``).
Entries need no such bound: a frame of ``max_message_bytes`` holds few enough numbers."""
REWARD_LIMIT = 1e6
"""Largest magnitude of a reward (the game's rewards are below 1e3 per step)."""
INFO_LIMIT = 1e9
"""Largest magnitude of a number in ``info`` (track seeds are below 1e7)."""
INFO_FIELDS: dict[str, type] = {
    "progress": float,
    "laps": int,
    "lap_time": float,
    "speed": float,
    "mean_speed": float,
    "crashed": bool,
    "stuck": bool,
    "track_seed": int,
}
"""The ``info`` keys a game may send and their types (``float`` also takes integers)."""
RESERVED_INFO_KEYS = ("episode", "terminal_observation", "TimeLimit.truncated")
"""``info`` keys that SB3's wrappers own; a game's are dropped (``reserved``)."""
INFO_FAULTS = ("reserved", "unknown", "bad_value")
"""Why a single ``info`` key of an entry is dropped (``GameFrame.info_dropped``)."""


def encode_command(
    command: str, envid: str = "", data: Mapping[str, Any] | None = None, **extra: Any
) -> str:
    """One server → game frame.

    Args:
        command: one of ``COMMANDS``.
        envid: the virtual environment; empty for commands that apply to all (``FREEZE``).
        data: the command's payload, e.g. ``{"agents": [...]}``.
        extra: optional top-level fields (``step=...`` on ``ACTION``).

    Raises:
        ValueError: on an unknown command (a programming error, not game input).
    """
    if command not in COMMANDS:
        raise ValueError(f"Unknown bridge command {command!r}; known: {', '.join(COMMANDS)}.")
    frame = {"command": command, "envid": envid, "data": dict(data or {}), **extra}
    return json.dumps(frame, allow_nan=False)  # NaN is not JSON: the game could not read it


def encode_actions(actions: Mapping[str, Sequence[float] | NDArray[np.floating]]) -> dict:
    """``ACTION`` data: agent id → ``[throttle, steering, nitro]`` as plain floats in [-1, 1].

    Actions are clipped to [-1, 1] (the action space) and sent with full precision, so a
    game that uses them as given drives exactly as the simulator would.

    Raises:
        ValueError: an action is NaN: JSON has no NaN, and the game's ``JSONDecode``
            would drop the environment's whole ``ACTION`` (infinities are clipped).
    """
    if not actions:
        return {}
    rows = np.clip(np.array(list(actions.values()), dtype=np.float64), -1.0, 1.0)
    nan = np.isnan(rows).any(axis=1)
    if nan.any():
        k = int(np.argmax(nan))
        raise ValueError(
            f"The action for {list(actions)[k]} is {rows[k].tolist()}: not a number. "
            "The policy (or driver) that chose it is broken, e.g. NaN weights after a "
            "diverged update; resume from an earlier checkpoint, or lower the learning rate."
        )
    return dict(zip(actions, rows.tolist(), strict=True))


@dataclass(frozen=True)
class AgentStep:
    """One agent's entry of an observation message, validated.

    Attributes:
        observation: shape (observation_size,), float32, finite and within
            ±``OBSERVATION_LIMIT``; not checked against the contract's ranges (a Golf
            cart's or Quad's surface-normal dots lie in -1..1, ROBLOX_GAME.md).
        reward: the game's reward for the last step.
        terminated: the episode ended (crash); the game has already respawned the car.
        truncated: the episode was cut (time limit, stuck); respawned as well.
        step: the ``ACTION`` step this answers, if the game echoes it; else None.
        info: the optional ``info`` extension (lap metrics), else empty.
    """

    observation: NDArray[np.float32]
    reward: float
    terminated: bool
    truncated: bool
    step: int | None = None
    info: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class GameFrame:
    """One observation frame of the game, validated.

    Attributes:
        steps: the valid entries, agent id → ``AgentStep`` (empty on an empty tick).
        dropped: entries dropped, by kind (``ENTRY_FAULTS``) → agent id → reason.
        info_dropped: ``info`` keys dropped from the kept entries, by kind
            (``INFO_FAULTS``) → reasons.
    """

    steps: dict[str, AgentStep]
    dropped: dict[str, dict[str, str]] = field(default_factory=dict)
    info_dropped: dict[str, list[str]] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        """A tick without entries (``[]`` or ``{}``): every car frozen, or none spawned."""
        return not self.steps and not self.dropped


@dataclass(frozen=True)
class Hello:
    """The optional first message of a game: its protocol version and observation size."""

    protocol: int
    observation_size: int | None
    game: str = ""


#: The JSON number types (``bool`` is not one of them).
_NUMBERS = frozenset({int, float})


def _finite(value: Any) -> bool:
    if type(value) not in _NUMBERS:
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer beyond the float range
        return False


def _all_finite(values: list[Any]) -> bool:
    """``all(_finite(v) for v in values)``, several times faster (C-level ``map``)."""
    try:
        return _NUMBERS.issuperset(map(type, values)) and all(map(math.isfinite, values))
    except OverflowError:
        return False


def _number_fault(value: Any, limit: float) -> str | None:
    """The entry fault kind of ``value`` as a number within ±``limit``; None if it is one."""
    if type(value) not in _NUMBERS:
        return "malformed"
    if not _finite(value):
        return "non_finite"
    return None if abs(value) <= limit else "out_of_range"


class _EntryError(BridgeProtocolError):
    """A single entry is bad (``kind``: one of ``ENTRY_FAULTS``)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def observation_layout(size: int) -> str:
    """What ``size`` numbers per car mean, e.g. ``16 rays + nitro, speed, is_reverse``."""
    return f"{size - STATE_SIZE} rays + nitro, speed, is_reverse"


def _agent_step(
    agent: str, entry: Any, observation_size: int | None, info_dropped: dict[str, list[str]]
) -> AgentStep:
    try:
        return _checked_step(agent, entry, observation_size, info_dropped)
    except _EntryError:
        raise
    except BridgeProtocolError as err:
        raise _EntryError("malformed", str(err)) from err


def _checked_step(
    agent: str, entry: Any, observation_size: int | None, info_dropped: dict[str, list[str]]
) -> AgentStep:
    if not isinstance(entry, dict):
        raise BridgeProtocolError(
            f"Entry of {agent!r} is {type(entry).__name__}; expected an object with obs, "
            "reward, terminated, truncated."
        )
    missing = [k for k in ("obs", "reward", "terminated", "truncated") if k not in entry]
    if missing:
        raise BridgeProtocolError(f"Entry of {agent!r} lacks {', '.join(missing)}.")
    obs = entry["obs"]
    if not isinstance(obs, list):
        raise BridgeProtocolError(f"obs of {agent!r} is {type(obs).__name__}; expected a list.")
    if observation_size is not None and len(obs) != observation_size:
        raise _EntryError(
            "wrong_length",
            f"obs of {agent!r} has {len(obs)} numbers; expected {observation_size} "
            f"({observation_layout(observation_size)}).",
        )
    if len(obs) <= STATE_SIZE:
        raise _EntryError(
            "wrong_length",
            f"obs of {agent!r} has {len(obs)} numbers; expected rays + {STATE_SIZE}.",
        )
    if not _all_finite(obs) or max(map(abs, obs)) > OBSERVATION_LIMIT:
        bad = next(v for v in obs if _number_fault(v, OBSERVATION_LIMIT))
        raise _EntryError(
            _number_fault(bad, OBSERVATION_LIMIT),
            f"obs of {agent!r} holds {bad!r:.80}; expected finite numbers within "
            f"±{OBSERVATION_LIMIT:g}.",
        )
    reward = entry["reward"]
    kind = _number_fault(reward, REWARD_LIMIT)
    if kind:
        raise _EntryError(
            kind,
            f"reward of {agent!r} is {reward!r:.80}; expected a finite number within "
            f"±{REWARD_LIMIT:g}.",
        )
    for key in ("terminated", "truncated"):
        if not isinstance(entry[key], bool):
            raise BridgeProtocolError(f"{key} of {agent!r} is {entry[key]!r}; expected a boolean.")
    step = entry.get("step")
    if step is not None and not is_integer(step):
        raise BridgeProtocolError(f"step of {agent!r} is {step!r}; expected an integer.")
    info = entry.get("info", {})
    if not isinstance(info, dict):
        raise BridgeProtocolError(f"info of {agent!r} is {info!r:.80}; expected an object.")
    return AgentStep(
        observation=np.asarray(obs, dtype=np.float32),
        reward=float(reward),
        terminated=entry["terminated"],
        truncated=entry["truncated"],
        step=step,
        info=_checked_info(agent, info, info_dropped),
    )


def _checked_info(
    agent: str, info: dict[str, Any], dropped: dict[str, list[str]]
) -> dict[str, Any]:
    """The keys of ``info`` that fit ``INFO_FIELDS``; the others go to ``dropped`` by kind."""
    kept: dict[str, Any] = {}
    for key, value in info.items():
        wanted = INFO_FIELDS.get(key)
        if wanted is None:
            kind = "reserved" if key in RESERVED_INFO_KEYS else "unknown"
            dropped.setdefault(kind, []).append(
                f"info key {key!r:.40} of {agent!r} is "
                + ("reserved for SB3" if kind == "reserved" else "not in the protocol")
            )
            continue
        if wanted is bool:
            fits = type(value) is bool
        else:
            fits = (type(value) is int or wanted is float) and not _number_fault(value, INFO_LIMIT)
        if not fits:
            dropped.setdefault("bad_value", []).append(
                f"info.{key} of {agent!r} is {value!r:.40}; expected "
                + ("a boolean" if wanted is bool else f"{wanted.__name__} within ±{INFO_LIMIT:g}")
            )
            continue
        kept[key] = float(value) if wanted is float else value
    return kept


_BARE_NON_FINITE = re.compile(
    r"(?<=[\[,:])(\s*)(-?)(nan(?:\([a-z]*\))?|inf(?:inity)?)(?=\s*[,\]}])", re.IGNORECASE
)
"""A bare non-finite number in a value's place, as other JSON writers than Python's
spell it (``nan``, ``-nan(ind)``, ``inf``, ``INF``): not JSON, unlike ``NaN``."""


def _loads(frame: str) -> Any:
    """``json.loads``, and once more with bare non-finite numbers spelt as Python's
    ``NaN`` and ``Infinity`` if it fails: an entry with one is then dropped alone
    (``non_finite``) instead of every car's of the frame. Python's own spelling parses
    at the first try; the second is only paid by a frame that fails it.

    Raises:
        ValueError, RecursionError: as ``json.loads`` on ``frame``.
    """
    try:
        return json.loads(frame)
    except ValueError as err:
        spelt = _BARE_NON_FINITE.sub(
            lambda m: m[1] + ("NaN" if m[3][:1] in "nN" else m[2] + "Infinity"), frame
        )
        if spelt == frame:
            raise
        try:
            return json.loads(spelt)
        except ValueError:
            raise err from None


def decode_game_message(
    frame: str | bytes, observation_size: int | None, known_agents: Container[str]
) -> GameFrame | Hello:
    """Validate one game → server frame.

    Args:
        frame: the frame as received (text; a binary frame is refused).
        observation_size: numbers per observation; None accepts the length of the
            frame's first entry (rays + 3), and the other entries must match it.
        known_agents: the agent ids spawned so far.

    Returns:
        The frame's valid entries and the dropped ones (an unknown agent id, a wrong
        length, a non-finite, out-of-range or malformed value: ``GameFrame.dropped``),
        with the ``info`` keys dropped from the kept ones, or the game's hello. ``[]``
        is an empty frame.

    Raises:
        BridgeProtocolError: the frame as a whole is bad: binary, not JSON (nested too
            deep or an integer of more than 4300 digits included), or not an object
            (nor ``[]``). The message names the problem.
    """
    if isinstance(frame, bytes):
        raise BridgeProtocolError("Binary frame; the protocol uses JSON text frames.")
    try:
        message = _loads(frame)
    except (ValueError, RecursionError) as err:  # ValueError: also an integer of > 4300 digits
        raise BridgeProtocolError(f"Invalid JSON ({err!s:.200}): {frame[:80]!r}") from err
    if message == []:  # Roblox's JSONEncode of an empty table
        return GameFrame({})
    if not isinstance(message, dict):
        raise BridgeProtocolError(
            f"Message is {type(message).__name__}; expected an object of agent id → entry."
        )
    if "hello" in message:
        hello = message["hello"]
        if not isinstance(hello, dict) or not is_integer(hello.get("protocol")):
            raise BridgeProtocolError(
                f"Malformed hello {hello!r:.80}; expected {{'protocol': int}}."
            )
        size = hello.get("observation_size")
        if size is not None and not is_integer(size):
            raise BridgeProtocolError(f"hello.observation_size is {size!r}; expected an integer.")
        if size is not None and not STATE_SIZE < size <= OBSERVATION_SIZE_LIMIT:
            raise BridgeProtocolError(
                f"hello.observation_size is {size!r:.20}; expected the rays + {STATE_SIZE} "
                f"(nitro, speed, is_reverse), more than 3 and at most {OBSERVATION_SIZE_LIMIT}."
            )
        game = hello.get("game", "")
        return Hello(hello["protocol"], size, game[:100] if isinstance(game, str) else "")
    steps: dict[str, AgentStep] = {}
    dropped: dict[str, dict[str, str]] = {}
    info_dropped: dict[str, list[str]] = {}
    for agent, entry in message.items():
        try:
            if agent not in known_agents:
                raise _EntryError(
                    "unknown_agent",
                    f"Unknown agent id {agent!r}: not spawned by this server (or removed).",
                )
            step = _agent_step(agent, entry, observation_size, info_dropped)
        except _EntryError as err:
            dropped.setdefault(err.kind, {})[agent] = str(err)
            continue
        steps[agent] = step
        observation_size = len(step.observation)
    return GameFrame(steps, dropped, info_dropped)

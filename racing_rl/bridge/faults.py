"""Misbehaviour on purpose: the bad frames and failures the emulator can play
(``Faults``), for tests and ``scripts/fuzz_bridge.py``."""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

FAULT_KINDS = (
    "malformed_json",
    "wrong_length",
    "nan",
    "unknown_agent",
    "oversized",
    "binary",
    "obs_1e39",
    "obs_1e30",
    "reward_1e300",
    "string_reward",
    "bool_obs",
    "missing_fields",
    "not_an_object",
    "lap_time_string",
    "crashed_string",
    "episode_key",
    "deep_nesting",
    "huge_integer",
)
"""Bad frames ``Faults`` can send: invalid frames (``malformed_json``, ``binary``,
``not_an_object``, JSON nested 100,000 deep, an integer of 5,000 digits), frames with one
bad entry (a value out of range, of a wrong type, fields missing, an unknown agent), with
a bad ``info`` key (a string lap time or ``crashed``, a reserved ``episode``), and a frame
over the size cap (``oversized``: it costs the connection)."""


BAD_INFO = {
    "lap_time_string": {"lap_time": "1:02.5"},
    "crashed_string": {"crashed": "yes"},
    "episode_key": {"episode": {"r": 1e9, "l": "x", "t": None}},
}
"""The fault kinds of a bad ``info`` key, and the key each puts in an entry's ``info``."""


@dataclass(frozen=True)
class Faults:
    """Misbehaviour on purpose (tests). Observation messages are counted from 1 over the
    emulator's life, across reconnections.

    Attributes:
        inject: before message k, send a bad frame of a kind in ``FAULT_KINDS``.
        flood: before every message, send a bad frame of each of these kinds but those
            of ``BAD_INFO`` (``bad_frame`` of the message's first entry alone: no other
            car's valid entry, so each car ticks once a message), then the message with
            the keys of those of ``BAD_INFO`` in its entries (``with_bad_info``).
        drop_after: close the connection once, right after message k (then reconnect).
        delay: send every observation message this late [s].
        silent_after: after message k, stop sending anything, the connection kept open
            (the game after a Luau error inside its tick).
        lose_car_after: after message k, the first car of the first environment is not
            reported any more (its model destroyed) until it is spawned again.
        spoil_after: after message k, every car's observation is sent as NaN (a game
            whose car reads broke), which the bridge drops as bad.
    """

    inject: Mapping[int, str] = field(default_factory=dict)
    flood: Sequence[str] = ()
    drop_after: int | None = None
    delay: float = 0.0
    silent_after: int | None = None
    lose_car_after: int | None = None
    spoil_after: int | None = None

    def __post_init__(self) -> None:
        unknown = sorted({*self.inject.values(), *self.flood} - set(FAULT_KINDS), key=str)
        if unknown:
            raise ValueError(f"Unknown fault kind(s) {unknown}; known: {', '.join(FAULT_KINDS)}.")


def bad_frame(kind: str, entries: dict[str, Any]) -> tuple[str | bytes, dict[str, Any]]:
    """A frame of the fault ``kind`` built from a good frame's ``entries`` (the first
    car's entry spoilt), and what of the good frame is still to send: all of it after a
    bad frame or an unknown car's entry alone, the spoilt entry alone after a frame with
    one bad entry (as the game's next tick would bring it), nothing after a frame whose
    entries are all kept (a bad ``info`` key is dropped, its entry kept). Each car's
    entry is delivered once by the two: each one the bridge takes is a tick of the car."""
    agent, entry = next(iter(entries.items())) if entries else ("car_0_env_x", {"obs": [0.0]})
    whole = {
        "malformed_json": lambda: json.dumps(entries)[:-7],
        "binary": lambda: json.dumps(entries).encode(),
        "not_an_object": lambda: json.dumps(list(entries.values())),
        "deep_nesting": lambda: "[" * 100_000 + "]" * 100_000,
        "huge_integer": lambda: json.dumps({agent: {**entry, "reward": 0}}).replace(
            '"reward": 0', '"reward": ' + "7" * 5000
        ),
        "oversized": lambda: json.dumps({agent: {**entry, "padding": "x" * (4 << 20)}}),
        "unknown_agent": lambda: json.dumps({"car_99_env_nobody": entry}),
    }
    if kind in whole:
        return whole[kind](), entries
    obs = list(entry["obs"])
    spoilt = {
        "wrong_length": {"obs": obs[:-1]},
        "nan": {"obs": [float("nan"), *obs[1:]]},
        "obs_1e39": {"obs": [1e39, *obs[1:]]},
        "obs_1e30": {"obs": [1e30, *obs[1:]]},
        "reward_1e300": {"reward": 1e300},
        "string_reward": {"reward": "3.7"},
        "bool_obs": {"obs": [True, *obs[1:]]},
        "missing_fields": {"reward": None},
        **{bad: {"info": {**entry.get("info", {}), **keys}} for bad, keys in BAD_INFO.items()},
    }[kind]
    bad = {key: value for key, value in {**entry, **spoilt}.items() if value is not None}
    rest = {} if "info" in spoilt else {agent: entry}
    return json.dumps({**entries, agent: bad}), rest


def with_bad_info(kinds: Sequence[str], entries: dict[str, Any]) -> dict[str, Any]:
    """``entries`` with the bad ``info`` key of each of ``kinds`` (of ``BAD_INFO``) put
    in, one kind a car in turn (a car gets several keys when there are more kinds than
    cars); ``entries`` itself is left as it was."""
    spoilt = {agent: dict(entry) for agent, entry in entries.items()}
    for kind, entry in zip(kinds, itertools.cycle(spoilt.values()), strict=False):
        entry["info"] = {**entry.get("info", {}), **BAD_INFO[kind]}
    return spoilt

"""The bad frames of racing_rl.bridge.faults: each spoils what it names and nothing else.
A game sends each car's entry once a tick, so a bad frame must not deliver the other
cars' valid entries again: each one the bridge takes is a tick, its reward summed in."""

import json
from collections import Counter

import numpy as np
import pytest
from roblox_game import game, roblox_backend

from racing_rl.bridge.faults import BAD_INFO, FAULT_KINDS, Faults, bad_frame, with_bad_info
from racing_rl.bridge.protocol import BridgeProtocolError, GameFrame, decode_game_message
from racing_rl.envs.config import RaceConfig

CARS = [f"car_{i}_env_a" for i in range(4)]
GOOD = {"reward": 1.0, "terminated": False, "truncated": False}
FLOOD = tuple(kind for kind in FAULT_KINDS if kind != "oversized")  # it costs the connection


def taken(frame: str | bytes) -> list[str]:
    """The cars whose entries the bridge takes from ``frame``."""
    try:
        message = decode_game_message(frame, 4, CARS)
    except BridgeProtocolError:
        return []
    assert isinstance(message, GameFrame)
    return list(message.steps)


@pytest.mark.parametrize("kind", FLOOD)
def test_a_bad_frame_and_what_is_left_deliver_each_car_once(kind):
    entries = {car: {"obs": [0.1 * i, 0.2, 0.3, 0.4], **GOOD} for i, car in enumerate(CARS)}
    bad, rest = bad_frame(kind, entries)
    delivered = Counter(taken(bad)) + Counter(taken(json.dumps(rest)))
    assert delivered == Counter(CARS), f"{kind}: {bad!r:.200}"


@pytest.mark.parametrize("kind", [kind for kind in FLOOD if kind not in BAD_INFO])
def test_a_bad_frame_of_one_entry_delivers_no_valid_entry(kind):
    """What a flood sends before each message: an unknown car's copy of the entry used
    to come with the entry itself, a second tick of that car."""
    bad, _ = bad_frame(kind, {CARS[0]: {"obs": [0.1, 0.2, 0.3, 0.4], **GOOD}})
    assert taken(bad) == [], f"{kind}: {bad!r:.200}"


def test_bad_info_keys_go_in_turn_to_the_cars_of_a_message():
    entries = {car: {"obs": [0.0], "info": {"laps": 1}} for car in CARS[:2]}
    spoilt = with_bad_info(list(BAD_INFO), entries)
    assert [set(spoilt[car]["info"]) for car in CARS[:2]] == [
        {"laps", "lap_time", "episode"},
        {"laps", "crashed"},
    ]
    assert entries[CARS[0]]["info"] == {"laps": 1}  # left as it was


def test_a_flood_of_every_fault_kind_leaves_one_tick_per_car_and_step(roblox_vec_env):
    """Before, each of the flood's bad frames carried the other cars' valid entries: the
    bridge took 13 ticks of a car per step, summing 13 rewards, and a long run filled
    the inbox (the 'ticked more than the 64 times' warning)."""
    # Pinned, as in scripts/fuzz_bridge.py: a flood's first entry may be a wrong_length one
    backend = roblox_backend(observation_size=RaceConfig().observation_size)
    with game(backend.server.port, faults=Faults(flood=FLOOD)) as emulator:
        venv = roblox_vec_env(backend)
        venv.reset()
        for _ in range(20):
            venv.step(np.zeros((venv.num_envs, 3), np.float32))
        bridge = venv.envs[0].bridge
        assert set(emulator.faults_sent) == set(FLOOD)
        assert bridge.car_steps == 20 * venv.num_envs
        assert bridge.car_ticks == bridge.car_steps

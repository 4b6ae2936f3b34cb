"""Validation of game messages and encoding of commands."""

import json
import math

import pytest

from racing_rl.bridge import protocol as p
from racing_rl.errors import BridgeProtocolError

AGENT = "car_0_env_a"


def entry(**overrides):
    return {"obs": [0.5] * 13, "reward": 1.0, "terminated": False, "truncated": False, **overrides}


def decode(message, size=13, known=(AGENT,)):
    frame = message if isinstance(message, str | bytes) else json.dumps(message)
    return p.decode_game_message(frame, size, set(known))


def test_a_seed_game_message_decodes():
    (step,) = decode({AGENT: entry()}).values()
    assert step.observation.shape == (13,) and step.observation.dtype.name == "float32"
    assert (step.reward, step.terminated, step.truncated, step.step) == (1.0, False, False, None)


def test_extensions_decode():
    steps = decode({AGENT: entry(step=7, info={"laps": 1})})
    assert steps[AGENT].step == 7 and steps[AGENT].info == {"laps": 1}
    hello = decode({"hello": {"protocol": 1, "observation_size": 12}})
    assert hello == p.Hello(1, 12)


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ('{"car_0_env_a": {"obs": [1, 2', "Invalid JSON"),
        (b"{}", "Binary frame"),
        ("[1, 2]", "expected an object"),
        ({"car_9_env_zz": entry()}, "Unknown agent id"),
        ({AGENT: entry(obs=[0.5] * 12)}, "has 12 numbers; backend.observation_size is 13"),
        ({AGENT: entry(obs=[math.nan] + [0.5] * 12)}, "expected finite numbers"),
        ({AGENT: entry(obs=["x"] * 13)}, "expected finite numbers"),
        ({AGENT: entry(obs=[0.5] * 12 + [True])}, "holds True; expected finite numbers"),
        ({AGENT: entry(obs=[0.5] * 12 + [10**400])}, "expected finite numbers"),
        ({AGENT: entry(reward=10**400)}, "reward of"),
        ({AGENT: entry(reward=math.inf)}, "reward of"),
        ({AGENT: entry(reward=True)}, "reward of"),
        ({AGENT: entry(terminated=1)}, "terminated of"),
        ({AGENT: {"obs": [0.5] * 13}}, "lacks reward, terminated, truncated"),
        ({AGENT: entry(step="3")}, "step of"),
        ({AGENT: [1, 2]}, "expected an object"),
        ({"hello": "hi"}, "Malformed hello"),
    ],
)
def test_bad_messages_are_refused_with_the_reason(message, reason):
    with pytest.raises(BridgeProtocolError, match=reason):
        decode(message)


def test_the_current_games_twelve_numbers_pass_when_configured():
    assert decode({AGENT: entry(obs=[0.5] * 12)}, size=12)[AGENT].observation.shape == (12,)


def test_commands_encode_as_the_seed_defines_them():
    frame = json.loads(p.encode_command(p.RESET_AGENTS, "e1", {"agents": [AGENT]}))
    assert frame == {"command": "RESET_AGENTS", "envid": "e1", "data": {"agents": [AGENT]}}
    actions = p.encode_actions({AGENT: [2.0, -0.25, 0.5]})
    assert actions == {AGENT: [1.0, -0.25, 0.5]}  # clipped to the action space
    with pytest.raises(ValueError, match="Unknown bridge command"):
        p.encode_command("JUMP")

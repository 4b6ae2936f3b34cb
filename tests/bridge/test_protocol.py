"""Validation of game messages and encoding of commands."""

import json
import math

import numpy as np
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
    (step,) = decode({AGENT: entry()}).steps.values()
    assert step.observation.shape == (13,) and step.observation.dtype.name == "float32"
    assert (step.reward, step.terminated, step.truncated, step.step) == (1.0, False, False, None)


def test_an_empty_tick_is_an_empty_frame_not_an_error():
    for frame in ("[]", "{}"):  # Roblox's JSONEncode of an empty table is []
        assert decode(frame).empty


def test_extensions_decode():
    steps = decode({AGENT: entry(step=7, info={"laps": 1})}).steps
    assert steps[AGENT].step == 7 and steps[AGENT].info == {"laps": 1}
    hello = decode({"hello": {"protocol": 1, "observation_size": 19}})
    assert hello == p.Hello(1, 19)


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ('{"car_0_env_a": {"obs": [1, 2', "Invalid JSON"),
        (b"{}", "Binary frame"),
        ("[1, 2]", "expected an object"),
        ({"hello": "hi"}, "Malformed hello"),
        ({"hello": {"protocol": True}}, "Malformed hello"),  # was read as protocol 1
        ({"hello": {"protocol": 1, "observation_size": 3}}, "observation_size is 3; expected"),
        # It was taken: the env built an observation space of 10¹² numbers (MemoryError)
        ({"hello": {"protocol": 1, "observation_size": 10**12}}, "at most 10000"),
    ],
)
def test_bad_frames_are_refused_whole_with_the_reason(message, reason):
    with pytest.raises(BridgeProtocolError, match=reason):
        decode(message)


@pytest.mark.parametrize(
    ("bad", "kind", "reason"),
    [
        ({"car_9_env_zz": entry()}, "unknown_agent", "Unknown agent id"),
        ({AGENT: entry(obs=[0.5] * 12)}, "wrong_length", "has 12 numbers; expected 13"),
        ({AGENT: entry(obs=[math.nan] + [0.5] * 12)}, "non_finite", "expected finite numbers"),
        ({AGENT: entry(obs=[0.5] * 12 + [10**400])}, "non_finite", "expected finite numbers"),
        ({AGENT: entry(reward=math.inf)}, "non_finite", "reward of"),
        ({AGENT: entry(obs=[1e39] + [0.5] * 12)}, "out_of_range", "within ±10000"),
        ({AGENT: entry(obs=[0.5] * 12 + [-1e30])}, "out_of_range", "holds -1e+30"),
        ({AGENT: entry(reward=1e300)}, "out_of_range", "within ±1e+06"),
        ({AGENT: entry(obs=["x"] * 13)}, "malformed", "expected finite numbers"),
        ({AGENT: entry(obs=[0.5] * 12 + [True])}, "malformed", "holds True"),
        ({AGENT: entry(reward=True)}, "malformed", "reward of"),
        ({AGENT: entry(terminated=1)}, "malformed", "terminated of"),
        ({AGENT: {"obs": [0.5] * 13}}, "malformed", "lacks reward, terminated, truncated"),
        ({AGENT: entry(step="3")}, "malformed", "step of"),
        ({AGENT: entry(step=True)}, "malformed", "step of"),  # not step 1
        ({AGENT: [1, 2]}, "malformed", "expected an object"),
    ],
)
def test_a_bad_entry_is_dropped_alone_by_kind(bad, kind, reason):
    other = "car_1_env_a"
    frame = decode({other: entry(), **bad}, known=(AGENT, other))
    assert list(frame.steps) == [other]  # the good entry is kept
    ((agent, message),) = frame.dropped[kind].items()
    assert agent in bad and reason in message


def test_an_observation_without_rays_is_dropped_before_the_size_is_known():
    frame = decode({AGENT: entry(obs=[0.5] * 3)}, size=None)
    assert (
        not frame.steps
        and "has 3 numbers; expected rays + 3" in frame.dropped["wrong_length"][AGENT]
    )


@pytest.mark.parametrize(
    ("info", "kind"),
    [
        ({"lap_time": "1:02.5"}, "bad_value"),
        ({"crashed": "yes"}, "bad_value"),
        ({"laps": 1.5}, "bad_value"),
        ({"speed": 1e300}, "bad_value"),
        ({"episode": {"r": 1.0, "l": 3}}, "reserved"),
        ({"terminal_observation": [0.0]}, "reserved"),
        ({"TimeLimit.truncated": True}, "reserved"),
        ({"colour": "red"}, "unknown"),
    ],
)
def test_a_bad_info_key_is_dropped_alone_and_the_entry_kept(info, kind):
    frame = decode({AGENT: entry(info={"progress": 2, "stuck": False, **info})})
    assert frame.steps[AGENT].info == {"progress": 2.0, "stuck": False}
    assert isinstance(frame.steps[AGENT].info["progress"], float)
    assert list(frame.info_dropped) == [kind] and len(frame.info_dropped[kind]) == 1


@pytest.mark.parametrize(
    "frame",
    ["[" * 100_000 + "]" * 100_000, '{"car_0_env_a": ' + "9" * 5000 + "}"],
    ids=["nested 100,000 deep", "an integer of 5,000 digits"],
)
def test_frames_that_break_the_json_parser_are_refused_whole(frame):
    with pytest.raises(BridgeProtocolError, match="Invalid JSON"):
        decode(frame)


@pytest.mark.parametrize("spelt", ["nan", "-nan", "-nan(ind)", "NAN", "inf", "-INF", "-Infinity"])
def test_a_bare_non_finite_number_drops_its_entry_not_the_frame(spelt):
    """Not JSON, and not Python's NaN: how another JSON writer (Roblox's JSONEncode) may
    spell one. The entry that holds it is dropped; the frame's other cars are kept."""
    other = "car_1_env_a"
    frame = json.dumps({AGENT: entry(obs=[7.0] + [0.5] * 12), other: entry()})
    frame = frame.replace("[7.0,", f"[{spelt},")
    decoded = decode(frame, known=(AGENT, other))
    assert list(decoded.steps) == [other] and list(decoded.dropped["non_finite"]) == [AGENT]


def test_a_frame_still_broken_once_non_finite_numbers_are_read_is_refused_whole():
    with pytest.raises(BridgeProtocolError, match="Invalid JSON"):
        decode('{"car_0_env_a": {"obs": [nan, oops]}}')


def test_without_a_size_the_first_entry_sets_it():
    other = "car_1_env_a"
    frame = decode({AGENT: entry(obs=[0.5] * 19), other: entry()}, size=None, known=(AGENT, other))
    assert frame.steps[AGENT].observation.shape == (19,)
    assert list(frame.dropped["wrong_length"]) == [other]


def test_commands_encode_as_the_seed_defines_them():
    frame = json.loads(p.encode_command(p.RESET_AGENTS, "e1", {"agents": [AGENT]}))
    assert frame == {"command": "RESET_AGENTS", "envid": "e1", "data": {"agents": [AGENT]}}
    actions = p.encode_actions({AGENT: [2.0, -0.25, 0.5]})
    assert actions == {AGENT: [1.0, -0.25, 0.5]}  # clipped to the action space
    assert p.encode_actions({AGENT: [np.inf, -np.inf, 0.0]}) == {AGENT: [1.0, -1.0, 0.0]}
    assert p.encode_actions({}) == {}
    with pytest.raises(ValueError, match=r"action for car_1 is \[0.5, nan, 0.0\]: not a number"):
        p.encode_actions({AGENT: [0.0, 0.0, 0.0], "car_1": [0.5, np.nan, 0.0]})
    with pytest.raises(ValueError, match="Out of range float"):  # never a bare NaN on the wire
        p.encode_command(p.ACTION, "e1", {AGENT: [np.nan, 0.0, 0.0]})
    with pytest.raises(ValueError, match="Unknown bridge command"):
        p.encode_command("JUMP")

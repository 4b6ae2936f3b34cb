"""The Luau ModuleScript: it compiles in a real Luau VM (the syntax check CI runs), states
what it is in its header and Policy.info, keeps each car's state apart, and says what is
wrong with a bad observation."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess

import numpy as np
import pytest
import torch

from racing_rl import __version__
from racing_rl.errors import ExportError
from racing_rl.export import load_spec
from racing_rl.export.luau import LINE_WIDTH, _Blob, luau_source, observation_layout
from racing_rl.export.onnx import SpecModule
from racing_rl.export.runtime import LuauPolicy, pluau
from racing_rl.export.spec import Dense


@pytest.fixture(scope="module")
def sources(trained_runs) -> dict[str, str]:
    return {algo: luau_source(load_spec(trained_runs[algo], "final")) for algo in trained_runs}


@pytest.mark.parametrize("algo", ["ppo", "sac", "td3", "tqc", "recurrent_ppo"])
def test_the_module_compiles_in_a_luau_vm(sources, algo):
    lua = pluau().Lua()
    module = lua.load_chunk(sources[algo], name="=policy")()[0]
    assert {"new", "reset", "act", "info"} <= {str(key) for key, _ in module}


@pytest.mark.skipif(shutil.which("luau-analyze") is None, reason="luau-analyze is not on PATH")
def test_the_module_passes_luau_analyze_in_strict_mode(sources, tmp_path):
    """Luau's type checker and linter, where a developer has them (CI needs none)."""
    for algo, source in sources.items():
        path = tmp_path / f"{algo}.luau"
        path.write_text(source)
        result = subprocess.run(["luau-analyze", str(path)], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr


def test_the_header_and_info_state_layout_stack_algorithm_checkpoint_and_version(
    sources, trained_runs
):
    source = sources["ppo"]
    assert source.startswith("--!strict\n--!native\n--[[\n")
    header = source[: source.index("]]")]
    for text in (
        "PPO",
        "ppo/model.zip",
        "policy:reset(carId)",
        "policy:act(carId, observation)",
        "13 numbers (10 rays)",
        "1-10  ray distance / sensor range",
        "13  is_reverse",
        "last 2 frame(s)",
        "exported by  racing-rl 0.1.0",
        "weights      sha256 ",
    ):
        assert text in header
    info = LuauPolicy(source).info
    assert info["algorithm"] == "TeacherPPO" and info["checkpoint"] == "ppo/model.zip"
    assert info["observationSize"] == 13 and info["rayCount"] == 10
    assert info["frameStack"] == 2 and info["timesteps"] >= 512
    assert info["racingRlVersion"] == __version__
    assert info["weightsSha256"] == load_spec(trained_runs["ppo"], "final").weights_sha256
    assert info["gameModelId"] == ""  # a simulator run
    assert len(info["observationLayout"]) == 4
    assert max(len(line) for line in source.splitlines()[:40]) <= 110


def test_cars_keep_their_own_frames_and_memory_and_reset_forgets_them(sources):
    rng = np.random.default_rng(0)
    frames = rng.uniform(0, 1, (4, 2, 13)).astype(np.float32)  # 4 steps of cars 0 and 1
    for algo in ("ppo", "recurrent_ppo"):
        together = LuauPolicy(sources[algo])
        actions = np.stack([together.act(step) for step in frames])
        for car in (0, 1):  # each car alone, in a module of its own
            alone = LuauPolicy(sources[algo])
            own = np.stack([alone.act(step[car : car + 1])[0] for step in frames])
            np.testing.assert_array_equal(own, actions[:, car])
        together.reset(1)
        restarted = together.act(frames[0])
        np.testing.assert_array_equal(restarted[1], actions[0, 1])
        assert not np.array_equal(restarted[0], actions[0, 0])


def test_a_wrong_observation_length_says_what_the_policy_reads(sources):
    policy = LuauPolicy(sources["ppo"])
    with pytest.raises(ExportError, match="the observation has 19 numbers, this policy reads 13"):
        policy.act(np.zeros((1, 19), np.float32))


@pytest.mark.parametrize("algo", ["ppo", "recurrent_ppo"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_non_finite_value_is_refused_and_the_car_keeps_its_frames_and_memory(sources, algo, bad):
    """A NaN stacked into the frames (or an LSTM's state) would make every later action
    NaN; the module refuses the frame before it touches the car's state."""
    frames = np.random.default_rng(1).uniform(0, 1, (3, 1, 13)).astype(np.float32)
    clean = LuauPolicy(sources[algo])
    expected = np.stack([clean.act(step) for step in frames])
    policy = LuauPolicy(sources[algo])
    policy.act(frames[0])
    malformed = frames[1].copy()
    malformed[0, 3] = bad
    with pytest.raises(ExportError, match=r"observation\[4\] is -?(nan|inf), not a finite number"):
        policy.act(malformed)
    actions = np.stack([policy.act(step) for step in frames[1:]])
    np.testing.assert_array_equal(actions, expected[1:])


def run_with_module(source: str, chunk: str) -> list:
    """What the Luau ``chunk`` returns, run with the module ``source`` as ``...``; values
    other than booleans, numbers and strings as their text (the VM ends here)."""
    lua = pluau().Lua()
    module = lua.load_chunk(source, name="=policy")()[0]
    results = lua.load_chunk(chunk)(module)
    return [v if isinstance(v, bool | int | float | str) else str(v) for v in results]


def test_a_value_that_is_not_a_number_is_refused_naming_it(sources):
    ok, message = run_with_module(
        sources["ppo"],
        "local Policy = ...\n"
        "local observation = table.create(13, 0.5)\n"
        'observation[12] = "0.5"\n'
        "return pcall(Policy.act, Policy.new(), 1, observation)",
    )
    # A string read as a number ("observation[12] is 0.5"); a missing frame: Luau's own error.
    assert ok is False and "observation[12] is a string (0.5), not a finite number" in message
    ok, message = run_with_module(
        sources["ppo"], "local Policy = ...\nreturn pcall(Policy.act, Policy.new(), 1, nil)"
    )
    assert ok is False and "the observation is a nil, not a table of 13 numbers" in message


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        # Luau's own errors were "attempt to index string with 'cars'" or, for act, "the
        # observation is a nil" (the observation taken for the car id, the id for self).
        (
            "policy.act('car_1', observation)",
            "Policy:act: called with a dot, so its first argument (a string) is taken for "
            "the policy: call it with a colon, policy:act(carId, observation)",
        ),
        ("policy.reset('car_1')", "call it with a colon, policy:reset(carId)"),
        # Luau's own: "table index is nil" and "table index is NaN".
        ("policy:act(nil, observation)", "Policy:act: carId is nil: pass the car's id"),
        ("policy:act(0 / 0, observation)", "Policy:act: carId is nan: pass the car's id"),
        ("policy:reset(nil)", "Policy:reset: carId is nil: pass the car's id"),
    ],
)
def test_a_call_with_a_dot_or_without_a_car_id_says_so(sources, call, expected):
    ok, message = run_with_module(
        sources["ppo"],
        "local Policy = ...\n"
        "local policy, observation = Policy.new(), table.create(13, 0.5)\n"
        f"return pcall(function() return {call} end)",
    )
    assert ok is False and expected in message
    # The header, which a game's developer reads, says so.
    assert "act\nand reset raise one when called with a dot (policy.act)" in sources["ppo"]


def test_a_game_s_float64_observation_is_read_as_the_float32_training_saw(sources):
    """The simulator's observations and the bridge's (the game's JSON read into float32)
    are float32; the module acted on a game's float64 numbers, up to 3e-8 away, which an
    input of std 2e-4 (a car's rear ray, docs/export.md) made 1.5e-4 after normalising."""
    same, ok, message = run_with_module(
        sources["sac"],
        "local Policy = ...\n"
        "local policy = Policy.new()\n"
        "local f32 = buffer.create(4)\n"
        "buffer.writef32(f32, 0, 1 / 3)\n"
        "local exact, rounded = table.create(13, 1 / 3), table.create(13, buffer.readf32(f32, 0))\n"
        "local a = { policy:act('exact', exact) }\n"
        "local b = { policy:act('rounded', rounded) }\n"
        "exact[5] = 1e39 -- finite in Luau, infinite in float32\n"
        "local ok, message = pcall(policy.act, policy, 'exact', exact)\n"
        "return a[1] == b[1] and a[2] == b[2] and a[3] == b[3], ok, tostring(message)",
    )
    assert same is True
    assert ok is False and "observation[5] is 1e+39, not a finite number in float32's range" in (
        message
    )


def test_a_car_id_object_keeps_its_frames_until_reset(sources):
    # Weak keys: in Roblox a Model's Lua value that no script holds is collected while the
    # car lives on, and the car's frames were lost mid-race.
    n, kept = run_with_module(
        sources["ppo"],
        "local Policy = ...\n"
        "local policy = Policy.new()\n"
        "local gone, observation = {}, table.create(13, 0.5)\n"
        "policy:act({}, observation) -- a car model held by nothing but the policy\n"
        "policy:act(gone, observation)\n"
        "policy:act('car_1', observation)\n"
        "policy:reset(gone) -- the car left the game\n"
        "collectgarbage('collect')\n"
        "local n = 0\n"
        "for _ in policy.cars do n += 1 end\n"
        "return n, policy.cars[gone] ~= nil",
    )
    assert (n, kept) == (2, False)


def test_a_run_named_with_closing_brackets_still_makes_a_module(trained_runs):
    """The header is a long comment: a checkpoint name holding ``]]`` must not end it."""
    spec = load_spec(trained_runs["ppo"], "final")
    named = dataclasses.replace(spec, info={**spec.info, "checkpoint": "a]]b]=]c/model.zip"})
    source = luau_source(named)
    assert source.startswith("--!strict\n--!native\n--[==[\n")
    assert "a]]b]=]c/model.zip" in source[: source.index("]==]")]
    assert LuauPolicy(source).info["checkpoint"] == "a]]b]=]c/model.zip"


def test_policy_info_strings_are_readable_in_the_source(trained_runs):
    """Policy.info's strings are written as text (spaces as spaces), escaping only what a
    Luau string literal needs; they read back as they were."""
    spec = load_spec(trained_runs["ppo"], "final")
    named = dataclasses.replace(spec, info={**spec.info, "checkpoint": 'my "best" run\\é/m.zip'})
    source = luau_source(named)
    assert '\tobservationLayout = table.freeze({ "1-10  ray distance / sensor range' in source
    assert '\tcheckpoint = "my \\x22best\\x22 run\\x5c\\xc3\\xa9/m.zip",' in source
    info = LuauPolicy(source).info
    assert info["checkpoint"] == 'my "best" run\\é/m.zip'
    assert info["observationLayout"] == observation_layout(spec)


def test_statistics_without_clipping_make_a_module(trained_runs):
    """``wrappers.normalize.clip_obs=inf`` (the config allows it): normalised, not clipped."""
    spec = load_spec(trained_runs["ppo"], "final")
    assert spec.normalization is not None
    unclipped = dataclasses.replace(
        spec, normalization=dataclasses.replace(spec.normalization, clip=float("inf"))
    )
    frame = np.linspace(-3.0, 3.0, 13, dtype=np.float32)[None]  # beyond ±10 once normalised
    actions = LuauPolicy(luau_source(unclipped)).act(frame)
    stacked = torch.as_tensor(np.concatenate([np.zeros_like(frame), frame], axis=1))
    with torch.no_grad():
        expected = SpecModule(unclipped)(stacked).numpy()
        clipped = SpecModule(spec)(stacked).numpy()
    np.testing.assert_allclose(actions, expected, atol=1e-5)
    assert np.abs(expected - clipped).max() > 1e-3  # the frame is one clipping changes


def test_every_byte_survives_the_weight_string():
    """All 256 byte values, spaces at line starts included (``\\z`` skips whitespace)."""
    data = np.frombuffer(bytes(range(256)) * 3 + b" " * 200, dtype="<f4")
    blob = _Blob()
    blob.add(data)
    literal = blob.literal()
    assert max(len(line) for line in literal.splitlines()) <= LINE_WIDTH + 3
    lua = pluau().Lua()
    decoded = lua.load_chunk(f"return {literal}")()[0]
    assert decoded.as_bytes() == data.tobytes()


def test_a_near_constant_input_is_normalised_with_sb3_s_float64_statistics():
    """A ray nearly always at full length (a game car's rear ray: mean 0.99999998, std
    2.2e-4) normalised with float32 statistics gave 0 where SB3 gives 9e-5: the mean
    rounds to 1.0 in float32."""
    from types import SimpleNamespace

    import gymnasium as gym
    from stable_baselines3 import PPO

    from racing_rl.export.spec import policy_spec

    class Spaces(gym.Env):
        observation_space = gym.spaces.Box(-1.0, 1.0, (13,), np.float32)
        action_space = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)

    model = PPO("MlpPolicy", Spaces(), policy_kwargs={"net_arch": []}, device="cpu")
    with torch.no_grad():  # throttle = 1000 × the normalised input 12
        model.policy.action_net.weight.zero_()
        model.policy.action_net.bias.zero_()
        model.policy.action_net.weight[0, 12] = 1000.0
    mean, var = np.full(13, 0.5), np.full(13, 0.01)
    mean[12], var[12] = 0.99999998, 2.2e-4**2
    normalizer = SimpleNamespace(
        norm_obs=True, obs_rms=SimpleNamespace(mean=mean, var=var), epsilon=1e-8, clip_obs=10.0
    )
    policy = LuauPolicy(luau_source(policy_spec(model, normalizer, frame_stack=1)))
    observation = np.full((1, 13), 0.5, np.float32)
    observation[0, 12] = 1.0
    expected = 1000.0 * (1.0 - mean[12]) / np.sqrt(var[12] + 1e-8)  # SB3's, in float64
    assert expected > 0.08  # where float32 statistics give 0
    assert policy.act(observation)[0, 0] == pytest.approx(expected, rel=1e-5)


def test_a_network_of_a_hundred_layers_makes_a_module_that_acts_as_the_policy():
    """A dense layer's weights, bias and output were a local each: a chunk holds at most
    200, so a network of 62 layers or more made a module that did not compile."""
    import gymnasium as gym
    from stable_baselines3 import PPO

    from racing_rl.export.spec import policy_spec

    class Spaces(gym.Env):
        observation_space = gym.spaces.Box(-1.0, 1.0, (13,), np.float32)
        action_space = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)

    model = PPO("MlpPolicy", Spaces(), policy_kwargs={"net_arch": [8] * 99}, device="cpu")
    spec = policy_spec(model, None, frame_stack=1)
    assert sum(isinstance(layer, Dense) for layer in spec.layers) == 100
    observation = np.random.default_rng(2).uniform(-1, 1, (2, 13)).astype(np.float32)
    with torch.no_grad():
        expected = SpecModule(spec)(torch.as_tensor(observation)).numpy()
    actions = LuauPolicy(luau_source(spec)).act(observation)
    np.testing.assert_allclose(actions, expected, atol=1e-5)

"""racing-rl export: the command, its default path, what it translates, and its errors,
which leave no file."""

from __future__ import annotations

import dataclasses
import errno
import os
import shutil
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from hydra import compose
from hydra.utils import instantiate
from omegaconf import OmegaConf
from runs import TINY, game_run_copy, racing_rl, racing_rl_patched
from sb3_contrib import TQC, CrossQ, RecurrentPPO
from stable_baselines3 import PPO, SAC
from stable_baselines3.common.distributions import BernoulliDistribution
from stable_baselines3.common.torch_layers import FlattenExtractor
from torch import nn

from racing_rl.checkpoints.layout import STATISTICS
from racing_rl.config import initialize
from racing_rl.contract import action_space, observation_space
from racing_rl.errors import CheckpointError, ConfigError, ExportError
from racing_rl.evaluation.command import evaluate
from racing_rl.export import export, load_spec, writer
from racing_rl.export.luau import observation_layout
from racing_rl.export.runtime import LuauPolicy, OnnxPolicy
from racing_rl.export.spec import policy_spec


class Spaces(gym.Env):
    """An env with given spaces, to build a model on (never stepped)."""

    def __init__(self, observation_space: gym.Space, action_space: gym.Space) -> None:
        self.observation_space, self.action_space = observation_space, action_space

    def reset(self, *, seed=None, options=None):
        return self.observation_space.sample(), {}

    def step(self, action):
        return self.observation_space.sample(), 0.0, True, False, {}


def export_cfg(run_dir: Path, *overrides: str):
    with initialize():
        return compose("export", overrides=[f"run_dir={run_dir}", *overrides])


def files(directory: Path) -> list[str]:
    """Every file under ``directory`` (hidden ones included), relative."""
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file())


def test_export_command_writes_the_file_and_says_where(trained_runs, tmp_path):
    run_dir = shutil.copytree(trained_runs["ppo"], tmp_path / "run")
    result = racing_rl("export", f"run_dir={run_dir}", "checkpoint=final", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    path = run_dir / "export" / "policy_final.luau"
    assert f"wrote {path}" in result.stdout
    assert "PPO run/model.zip, " in result.stdout
    assert path.read_text().startswith("--!strict\n--!native\n")
    assert files(run_dir / "export") == ["policy_final.luau"]
    # From inside the run (run_dir=.): the run's name, where it said "PPO /model.zip".
    result = racing_rl("export", "run_dir=.", "checkpoint=final", "out=here.luau", cwd=run_dir)
    assert "PPO run/model.zip, " in result.stdout, result.stderr[-3000:]


def test_a_run_without_observation_normalisation_trains_and_exports(tmp_path):
    # wrappers.normalize.norm_obs=false (rewards normalised only): training ended in a
    # traceback at its first reset ('SimVecEnv' object has no attribute 'obs_rms'), as SB3
    # makes no observation statistics without norm_obs.
    run_dir = tmp_path / "run"
    overrides = (*TINY, "wrappers.normalize.norm_obs=false", f"hydra.run.dir={run_dir}")
    result = racing_rl("train", *overrides, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    result = racing_rl("export", f"run_dir={run_dir}", "checkpoint=final", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "normalises them (none)" in (run_dir / "export" / "policy_final.luau").read_text()


def test_a_checkpoint_from_outside_the_run_is_named_without_its_directories(trained_runs, tmp_path):
    # It was "<run name>/<its path>": "ppo//tmp/.../model.zip"; then the whole absolute
    # path, which the module carries into a game (/home/<user>/...).
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for name in ("model.zip", STATISTICS):
        shutil.copy(trained_runs["ppo"] / name, elsewhere / name)
    spec = load_spec(trained_runs["ppo"], str(elsewhere / "model.zip"))
    assert spec.info["checkpoint"] == "elsewhere/model.zip"
    (elsewhere / "model.zip").rename(elsewhere / "driver.zip")
    spec = load_spec(trained_runs["ppo"], str(elsewhere / "driver.zip"))
    assert spec.info["checkpoint"] == "driver.zip"
    for fmt in ("luau", "onnx"):
        out = tmp_path / f"driver.{fmt}"
        model = f"checkpoint={elsewhere / 'driver.zip'}"
        export(export_cfg(trained_runs["ppo"], model, f"format={fmt}", f"out={out}"))
        assert str(tmp_path).encode() not in out.read_bytes()


@pytest.mark.parametrize("fmt", ["luau", "onnx"])
def test_exporting_a_checkpoint_again_writes_the_same_bytes(trained_runs, tmp_path, fmt):
    # Each export stated its date (exportedAt), so a committed module changed every time.
    run_dir = trained_runs["ppo"]
    first, again = tmp_path / f"first.{fmt}", tmp_path / f"again.{fmt}"
    for out in (first, again):
        export(export_cfg(run_dir, "checkpoint=final", f"format={fmt}", f"out={out}"))
    assert first.read_bytes() == again.read_bytes()
    # The hash that stands for the date: of the numbers, not of the metadata.
    spec = load_spec(run_dir, "final")
    assert dataclasses.replace(spec, info={}).weights_sha256 == spec.weights_sha256
    dense = spec.layers[0]
    nudged = dataclasses.replace(dense, bias=np.nextafter(dense.bias, np.float32(np.inf)))
    changed = dataclasses.replace(spec, layers=(nudged, *spec.layers[1:]))
    assert changed.weights_sha256 != spec.weights_sha256


def test_a_run_trained_in_the_game_exports_with_the_rays_its_checkpoint_saw(trained_runs, tmp_path):
    """A ``backend=roblox`` run's config has no sensors (the game sends its rays): the
    ray count comes from the checkpoint's observation space."""
    run_dir = game_run_copy(trained_runs["ppo"], tmp_path / "game_run")
    result = export(export_cfg(run_dir, "checkpoint=final", f"out={tmp_path}/game.luau"))
    source = (tmp_path / "game.luau").read_text()
    assert result["path"] == str(tmp_path / "game.luau")
    assert "observationSize = 13," in source and "rayCount = 10," in source
    # 13 numbers from the game: 10 rays, or a Golf cart's 5 [distance, normal dot] pairs.
    assert "13 numbers (10 ray values)" in source
    assert "1-10  the game car's ray values, in the order it sends them" in source
    assert "[distance, surface-normal dot (-1..1)] pairs" in source
    # 19 numbers (the game's Car and Bus): 16 rays, which no 5-ray car sends.
    spec = load_spec(run_dir, "final")
    car = dataclasses.replace(spec, observation_size=19, info={**spec.info, "ray_count": 16})
    assert observation_layout(spec)[0].endswith("pairs")
    assert observation_layout(car)[0].endswith("a distance / that ray's length (0..1) per ray")


def test_the_header_gives_the_ray_order_of_the_run_s_sensor_layout(trained_runs):
    spec = load_spec(trained_runs["ppo"], "final")
    assert spec.info["ray_layout"] == "fan"
    assert observation_layout(spec)[0] == "1-10  ray distance / sensor range, left to right (0..1)"
    # The game's Car sensors (a simulator run with layout=roblox_car): each over its length.
    car = dataclasses.replace(spec, info={**spec.info, "ray_layout": "roblox_car"})
    assert observation_layout(car)[0].startswith(
        "1-10  ray distance / that ray's length (0..1): ahead, 28 deg right, 28 deg left"
    )


def test_onnx_goes_to_out(trained_runs, tmp_path):
    result = export(
        export_cfg(trained_runs["td3"], "checkpoint=final", "format=onnx", f"out={tmp_path}/d.onnx")
    )
    assert result["path"] == str(tmp_path / "d.onnx") and result["algorithm"] == "TD3"
    assert result["bytes"] == (tmp_path / "d.onnx").stat().st_size
    assert files(tmp_path) == ["d.onnx"]


def test_out_is_a_directory_or_the_format_s_file_and_replaces_nothing_else(trained_runs, tmp_path):
    run_dir = trained_runs["td3"]
    into = tmp_path / "exports"
    into.mkdir()
    result = export(export_cfg(run_dir, "checkpoint=final", "format=onnx", f"out={into}"))
    # Named after the run too: a sweep over runs into one directory replaced its files.
    assert result["path"] == str(into / f"{run_dir.name}_policy_final.onnx")
    result = export(export_cfg(run_dir, "checkpoint=final", f"out={tmp_path}/new/"))
    assert result["path"] == str(tmp_path / "new" / f"{run_dir.name}_policy_final.luau")
    result = export(export_cfg(run_dir, "checkpoint=final", f"out={tmp_path}/exports"))
    assert result["path"] == str(into / f"{run_dir.name}_policy_final.luau")  # no suffix
    # An existing file without a suffix was overwritten, and any suffix was taken: out=
    # <run dir>/model.zip replaced the checkpoint being exported with Luau.
    (tmp_path / "notes").write_text("keep")
    with pytest.raises(ConfigError, match=r"is an existing file that is not a directory"):
        export(export_cfg(run_dir, "checkpoint=final", f"out={tmp_path}/notes"))
    assert (tmp_path / "notes").read_text() == "keep"
    model = run_dir / "model.zip"
    before = model.read_bytes()
    with pytest.raises(ConfigError, match=r"is a \.zip file: an export writes a \.luau file"):
        export(export_cfg(run_dir, "checkpoint=final", f"out={model}"))
    assert model.read_bytes() == before
    result = export(export_cfg(run_dir, "checkpoint=final", f"out={tmp_path}/Driver.LUAU"))
    assert result["path"] == str(tmp_path / "Driver.LUAU")
    refused = r"names a \.luau file \(luau\), but format=onnx: name it d\.onnx"
    with pytest.raises(ConfigError, match=refused):
        export(export_cfg(run_dir, "checkpoint=final", "format=onnx", f"out={tmp_path}/d.luau"))
    assert not (tmp_path / "d.luau").exists()


@pytest.mark.parametrize("fmt", ["luau", "onnx"])
def test_an_existing_file_is_replaced_only_if_it_is_an_earlier_export(trained_runs, fmt, tmp_path):
    # out=src/NpcDrivers.server.luau replaced a game's own script with the module, and
    # out=model.onnx another program's model, without a word.
    import onnx

    run_dir = trained_runs["sac"]
    out = tmp_path / f"mine.{fmt}"
    if fmt == "luau":
        out.write_text("-- NpcDrivers: a game's own script\n")
    else:
        graph = onnx.helper.make_graph([], "mine", [], [])
        onnx.save(onnx.helper.make_model(graph, producer_name="pytorch"), str(out))
    before = out.read_bytes()
    with pytest.raises(ConfigError, match=r"mine\.\w+ exists and is not a file racing-rl export"):
        export(export_cfg(run_dir, "checkpoint=final", f"format={fmt}", f"out={out}"))
    assert out.read_bytes() == before and files(tmp_path) == [out.name]
    out.unlink()
    for _ in range(2):  # an earlier export is replaced
        result = export(export_cfg(run_dir, "checkpoint=final", f"format={fmt}", f"out={out}"))
        assert result["path"] == str(out)


def test_a_wrong_format_is_refused_naming_the_formats(trained_runs, tmp_path):
    out = tmp_path / "policy.lua"
    with pytest.raises(ConfigError, match=r"format='lua'; must be one of luau, onnx"):
        export(export_cfg(trained_runs["ppo"], "checkpoint=final", "format=lua", f"out={out}"))
    assert files(tmp_path) == []


def test_onnx_without_the_export_extra_says_what_to_install(trained_runs, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # as if not installed
    with pytest.raises(ExportError, match=r"needs the onnx package.*racing-rl\[export\]"):
        export(export_cfg(trained_runs["ppo"], "format=onnx", f"out={tmp_path}/d.onnx"))
    assert files(tmp_path) == []


def test_a_damaged_checkpoint_is_refused_and_leaves_the_old_file(trained_runs, tmp_path):
    run_dir = shutil.copytree(trained_runs["ppo"], tmp_path / "run")
    out = tmp_path / "policy.luau"
    export(export_cfg(run_dir, "checkpoint=final", f"out={out}"))  # an earlier export
    before = out.read_text()
    (run_dir / "model.zip").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(CheckpointError, match="is not a loadable TeacherPPO checkpoint"):
        export(export_cfg(run_dir, "checkpoint=final", f"out={out}"))
    assert out.read_text() == before
    assert files(tmp_path).count("policy.luau") == 1 and not list(tmp_path.glob(".*partial"))


def test_another_algorithm_s_checkpoint_is_refused_naming_it(trained_runs, tmp_path):
    """A SAC model given to a PPO run was refused with SB3's TypeError alone ("got
    multiple values for keyword argument 'use_sde'")."""
    sac_model = trained_runs["sac"] / "model.zip"
    refused = r"holds a policy of stable_baselines3\.sac\.policies, not of TeacherPPO"
    with pytest.raises(CheckpointError, match=refused) as err:
        export(export_cfg(trained_runs["ppo"], f"checkpoint={sac_model}", f"out={tmp_path}/"))
    assert files(tmp_path) == []
    # The reason comes without SB3's own error, which says less at length (a TD3 model's
    # state_dict keys ran to 1,700 characters before the sentence that helps).
    assert "use_sde" not in str(err.value) and len(str(err.value)) < 400


def test_an_old_run_s_pickled_statistics_export_only_when_trusted(trained_runs, tmp_path):
    """A run saved before vecnormalize.npz existed: export and eval driver=onnx read its
    vecnormalize.pkl only with trust_pickles=true, as eval and resume do."""
    run_dir = shutil.copytree(trained_runs["ppo"], tmp_path / "run")
    for plain in run_dir.rglob(STATISTICS):
        plain.unlink()
    out = tmp_path / "old.onnx"
    with pytest.raises(CheckpointError, match="add trust_pickles=true"):
        export(export_cfg(run_dir, "checkpoint=final", "format=onnx", f"out={out}"))
    assert not out.exists()
    export(
        export_cfg(run_dir, "checkpoint=final", "format=onnx", f"out={out}", "trust_pickles=true")
    )
    assert out.stat().st_size > 0
    overrides = [f"run_dir={run_dir}", "checkpoint=final", "seeds=[5]", "max_steps=20"]
    with initialize():
        cfg = compose("eval", overrides=[*overrides, "driver=onnx", f"out_dir={tmp_path}/e"])
    with pytest.raises(CheckpointError, match="add trust_pickles=true"):
        evaluate(cfg)
    cfg.trust_pickles = True
    assert evaluate(cfg)["episodes"] == 1


def test_the_cli_reports_a_damaged_checkpoint_in_one_line(trained_runs, tmp_path):
    run_dir = shutil.copytree(trained_runs["ppo"], tmp_path / "run")
    (run_dir / "model.zip").write_bytes(b"not a zip")
    result = racing_rl("export", f"run_dir={run_dir}", "checkpoint=final", cwd=tmp_path)
    assert result.returncode == 1
    (line,) = [line for line in result.stderr.splitlines() if "is not a loadable" in line]
    assert line.startswith("racing-rl export: ") and "TeacherPPO checkpoint" in line
    assert "Traceback" not in result.stderr
    assert not (run_dir / "export").exists()


def test_an_out_that_cannot_be_written_is_refused_in_one_line(trained_runs, tmp_path):
    """A file where out='s directory should be (or a directory one cannot write): the
    command says which path and what to do, not a traceback."""
    (tmp_path / "notes.txt").write_text("a file, not a directory")
    out = tmp_path / "notes.txt" / "policy.luau"
    with pytest.raises(ExportError, match=r"out=.*policy\.luau: .*notes\.txt is a file, not a"):
        export(export_cfg(trained_runs["td3"], "checkpoint=final", f"out={out}"))
    result = racing_rl(
        "export", f"run_dir={trained_runs['td3']}", "checkpoint=final", f"out={out}", cwd=tmp_path
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("racing-rl export: Cannot write out=")
    assert files(tmp_path) == ["notes.txt"]


def test_an_unsupported_activation_is_refused_naming_it(trained_runs, tmp_path):
    run_dir = shutil.copytree(trained_runs["ppo"], tmp_path / "run")
    trained = PPO.load(run_dir / "model.zip", device="cpu")
    spaces = Spaces(trained.observation_space, trained.action_space)
    kwargs = {"activation_fn": nn.GELU, "net_arch": [16, 16]}
    replaced = PPO("MlpPolicy", spaces, policy_kwargs=kwargs, device="cpu")
    replaced.num_timesteps = trained.num_timesteps  # the statistics' model's, as if trained
    replaced.save(run_dir / "model.zip")
    # Models load with the run's config as the policy's trusted description, so the run's
    # config says GELU too (an activation_fn is a class: Hydra's get_class names it).
    config = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    config.algo.net_width = 16
    config.algo.model.policy_kwargs = {
        "net_arch": [16, 16],
        "activation_fn": {"_target_": "hydra.utils.get_class", "path": "torch.nn.GELU"},
    }
    OmegaConf.save(config, run_dir / ".hydra" / "config.yaml")
    with pytest.raises(ExportError, match=r"mlp_extractor.policy_net\[1\] is a GELU") as err:
        export(export_cfg(run_dir, "checkpoint=final", "format=onnx"))
    # It said "(policy_kwargs.activation_fn)": now the override that trains with ReLU.
    override = str(err.value).split("'")[-2]
    assert override.startswith("+algo.model.policy_kwargs.activation_fn={_target_:")
    with initialize():
        cfg = compose("train", overrides=[override])
    assert instantiate(cfg.algo.model.policy_kwargs.activation_fn) is nn.ReLU
    assert not (run_dir / "export").exists()
    # eval driver=luau said it from inside the eval, in log format, after writing its
    # eval.log: now in one line, before anything is written.
    out = tmp_path / "eval"
    result = racing_rl(
        "eval",
        f"run_dir={run_dir}",
        "checkpoint=final",
        "driver=luau",
        f"out_dir={out}",
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("racing-rl eval: ") and "is a GELU" in result.stderr
    assert result.stderr.count("\n") == 1 and not out.exists()


class CustomExtractor(FlattenExtractor):
    """A feature extractor of the user's own (here it only flattens)."""


OBSERVATIONS = gym.spaces.Box(-1.0, 1.0, (26,), np.float32)
ACTIONS = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
#: What export refuses (docs/export.md), as (algorithm, spaces, arguments, message).
UNSUPPORTED = {
    "shared_lstm": (
        RecurrentPPO,
        None,
        {"policy_kwargs": {"shared_lstm": True, "enable_critic_lstm": False}},
        r"shared_lstm=True is not supported: .* Train with "
        r"algo\.model\.policy_kwargs\.shared_lstm=false",
    ),
    "crossq": (CrossQ, None, {}, r"CrossQ's policy class CrossQPolicy is not supported"),
    "extractor": (
        PPO,
        None,
        {"policy_kwargs": {"features_extractor_class": CustomExtractor}},
        r"feature extractor CustomExtractor is not supported",
    ),
    "2d_observation": (
        PPO,
        (gym.spaces.Box(-1.0, 1.0, (2, 13), np.float32), ACTIONS),
        {},
        r"observation space Box\(.*\(2, 13\).* is not supported: export needs a 1-D Box",
    ),
    "two_actions": (
        PPO,
        (OBSERVATIONS, gym.spaces.Box(-1.0, 1.0, (2,), np.float32)),
        {},
        r"action space .* is not supported: export needs a Box of 3",
    ),
}


@pytest.mark.parametrize("case", list(UNSUPPORTED))
def test_what_export_cannot_translate_is_refused_naming_it(case):
    algorithm, given, kwargs, message = UNSUPPORTED[case]
    policy = "MlpLstmPolicy" if algorithm is RecurrentPPO else "MlpPolicy"
    env = Spaces(*(given or (OBSERVATIONS, ACTIONS)))
    model = algorithm(policy, env, device="cpu", **kwargs)
    with pytest.raises(ExportError, match=message):
        policy_spec(model, None, frame_stack=2 if case != "2d_observation" else 1)


def test_a_custom_action_distribution_is_refused_naming_it():
    model = PPO("MlpPolicy", Spaces(OBSERVATIONS, ACTIONS), device="cpu")
    model.policy.action_dist = BernoulliDistribution(3)  # as a custom policy class might
    with pytest.raises(ExportError, match=r"action distribution BernoulliDistribution is not"):
        policy_spec(model, None, frame_stack=2)


#: gSDE (use_sde=True), as (algorithm, arguments): its deterministic action is the mean
#: without the noise; clipped (PPO), or tanh-squashed and rescaled (PPO's squash_output,
#: SAC and TQC, whose mean is first clipped to +-clip_mean, 2 unless 0).
GSDE = {
    "ppo": (PPO, {"policy_kwargs": {"ortho_init": False}}),
    "ppo_squash_output": (PPO, {"policy_kwargs": {"ortho_init": False, "squash_output": True}}),
    "recurrent_ppo": (RecurrentPPO, {"policy_kwargs": {"ortho_init": False}}),
    "sac": (SAC, {}),
    "sac_clip_mean_0": (SAC, {"policy_kwargs": {"clip_mean": 0.0}}),
    "tqc": (TQC, {}),
}


@pytest.mark.parametrize("fmt", ["luau", "onnx"])
@pytest.mark.parametrize("case", list(GSDE))
def test_a_gsde_policy_exports_sb3_s_deterministic_action(case, fmt, tmp_path):
    """gSDE was refused; its deterministic action leaves the noise out, so the exported
    file computes SB3's predict(deterministic=True) as for a policy without gSDE."""
    algorithm, kwargs = GSDE[case]
    policy = "MlpLstmPolicy" if algorithm is RecurrentPPO else "MlpPolicy"
    spaces = Spaces(observation_space(10), action_space())
    model = algorithm(policy, spaces, use_sde=True, device="cpu", seed=0, **kwargs)
    mean = model.actor.mu if hasattr(model, "actor") else model.policy.action_net
    with torch.no_grad():  # means far beyond the action bounds and clip_mean too
        for parameter in mean.parameters():
            parameter.mul_(20.0)
    path = tmp_path / f"policy.{fmt}"
    writer(fmt)(policy_spec(model, None, frame_stack=1), path)
    exported = LuauPolicy.from_file(path) if fmt == "luau" else OnnxPolicy(path)
    observations = np.random.default_rng(0).uniform(-1, 1, (20, 4, 13)).astype(np.float32)
    state, episode_start, actions = None, np.ones(4, dtype=bool), []
    for observation in observations:  # RecurrentPPO's LSTM state carried over 20 steps
        expected, state = model.predict(
            observation, state=state, episode_start=episode_start, deterministic=True
        )
        np.testing.assert_allclose(exported.act(observation), expected, rtol=0, atol=1e-5)
        episode_start, actions = np.zeros(4, dtype=bool), [*actions, expected]
    magnitude = np.abs(actions)
    assert (magnitude > 0.95).any() and (magnitude < 0.5).any()  # at the bounds and within


def test_the_command_exports_gsde_runs(trained_runs, tmp_path):
    # It refused them: "... Train without gSDE (algo.model.use_sde=false, the default)".
    runs = [trained_runs["ppo_gsde"], trained_runs["sac_gsde"]]
    result = racing_rl(
        "export", "-m", f"run_dir={runs[0]},{runs[1]}", "checkpoint=final",
        f"out={tmp_path}/out/", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "ppo_gsde_policy_final.luau",
        "sac_gsde_policy_final.luau",
    ]


@pytest.mark.parametrize("algorithm", [PPO, RecurrentPPO])
def test_a_diverged_policy_is_refused_naming_the_array(algorithm):
    # Its module drove with NaN actions: math.clamp passes NaN through to the car.
    policy = "MlpLstmPolicy" if algorithm is RecurrentPPO else "MlpPolicy"
    model = algorithm(policy, Spaces(OBSERVATIONS, ACTIONS), device="cpu")
    policy_spec(model, None, frame_stack=2)  # finite: taken
    with torch.no_grad():
        model.policy.action_net.weight[0, 0] = float("nan")
    with pytest.raises(ExportError, match=r"linear layer 3 of 3's weight has 1 number\(s\) that"):
        policy_spec(model, None, frame_stack=2)
    if algorithm is RecurrentPPO:
        with torch.no_grad():
            model.policy.action_net.weight[0, 0] = 0.0
            model.policy.lstm_actor.bias_hh_l0[:2] = float("inf")
        with pytest.raises(ExportError, match=r"LSTM layer 0's bias_hh has 2 number"):
            policy_spec(model, None, frame_stack=2)


def test_a_failed_write_leaves_no_file(trained_runs, tmp_path, monkeypatch):
    import racing_rl.export.onnx as onnx_writer

    def write_then_fail(spec, path):
        path.write_bytes(b"half an onnx model")
        raise RuntimeError("disk full")

    monkeypatch.setattr(onnx_writer, "write_onnx", write_then_fail)
    with pytest.raises(RuntimeError, match="disk full"):
        export(
            export_cfg(
                trained_runs["sac"], "checkpoint=final", "format=onnx", f"out={tmp_path}/p.onnx"
            )
        )
    assert files(tmp_path) == []


def test_a_full_disk_is_refused_naming_out_and_keeping_the_earlier_file(
    trained_runs, tmp_path, monkeypatch
):
    """It named the temporary file: "Cannot write out=.../p.onnx: .../.p.onnx.partial: No
    space left on device"."""
    import racing_rl.export.onnx as onnx_writer

    out = tmp_path / "p.onnx"
    export(export_cfg(trained_runs["sac"], "checkpoint=final", "format=onnx", f"out={out}"))
    before = out.read_bytes()

    def disk_full(spec, path):
        path.write_bytes(b"half an onnx model")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(onnx_writer, "write_onnx", disk_full)
    with pytest.raises(ExportError) as err:
        export(export_cfg(trained_runs["sac"], "checkpoint=final", "format=onnx", f"out={out}"))
    assert str(err.value).startswith(
        f"Cannot write out={out}: No space left on device; the earlier file there is kept. "
    )
    assert out.read_bytes() == before and files(tmp_path) == ["p.onnx"]


def test_an_export_sweep_writes_its_files_and_only_hydra_s_record_of_it(trained_runs, tmp_path):
    """export -m left an empty multirun/<date>/<time>/<job>/ per job in the current
    directory."""
    run_dir = trained_runs["ppo"]
    result = racing_rl(
        "export", "-m", f"run_dir={run_dir}", "checkpoint=final", "format=luau,onnx",
        f"out={tmp_path}/out/", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        f"{run_dir.name}_policy_final.luau",
        f"{run_dir.name}_policy_final.onnx",
    ]
    made = sorted(p.relative_to(tmp_path).parts[0] for p in tmp_path.rglob("*") if p.is_file())
    assert set(made) == {"out", "outputs"}
    (sweep,) = (tmp_path / "outputs" / "multirun").glob("*/*_export")
    assert [p.name for p in sweep.iterdir()] == ["multirun.yaml"]


def test_an_export_sweep_s_failed_job_does_not_stop_the_others(trained_runs, tmp_path):
    # The first failure ended the sweep (SystemExit), the later runs never exported.
    damaged = shutil.copytree(trained_runs["ppo"], tmp_path / "damaged")
    (damaged / "model.zip").write_bytes(b"PK\x03\x04 truncated")
    result = racing_rl(
        "export", "-m", f"run_dir={damaged},{trained_runs['sac']}", "checkpoint=final",
        f"out={tmp_path}/out/", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 1
    assert "damaged/model.zip is not a loadable TeacherPPO checkpoint" in result.stderr
    assert [p.name for p in (tmp_path / "out").iterdir()] == [
        f"{trained_runs['sac'].name}_policy_final.luau"
    ]


def test_a_ctrl_c_while_exporting_says_nothing_was_written(tiny_runs, tmp_path):
    """It said only "interrupted (Ctrl-C).", not what became of the file; then that line
    came after one that said so: one line says both."""
    cut = (
        "import racing_rl.export as export\n"
        "def interrupted(path, write, **kwargs):\n"
        "    raise KeyboardInterrupt\n"
        "export.write_atomic = interrupted\n"
    )
    run = [f"run_dir={tiny_runs[0]}", "checkpoint=final", f"out={tmp_path / 'driver.luau'}"]
    result = racing_rl_patched(cut, "export", *run, cwd=tmp_path)
    assert (result.returncode, result.stderr) == (
        130,
        "racing-rl export: interrupted (Ctrl-C) before its file was written: nothing written; "
        "any earlier file at its out= is kept\n",
    )
    assert list(tmp_path.iterdir()) == []

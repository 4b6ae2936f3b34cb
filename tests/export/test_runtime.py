"""The exported Luau module (in a Luau VM) and ONNX model (in onnxruntime) act as SB3's
``predict(deterministic=True)`` does behind the run's own frame stack and VecNormalize,
for every algorithm, over recorded episodes with resets at different times per car."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from racing_rl.checkpoints.runs import load_policy_driver, load_run_config
from racing_rl.export import load_spec, writer
from racing_rl.export.runtime import ExportedPolicy, LuauPolicy, OnnxPolicy
from racing_rl.vec import make_env, wrap_vec_env

#: The runs of tests/export/conftest.py: each algorithm, and PPO and SAC with gSDE.
RUNS = ["ppo", "sac", "td3", "tqc", "recurrent_ppo", "ppo_gsde", "sac_gsde"]
#: Steps driven; episodes last at most MAX_STEPS, so every car has several.
STEPS, MAX_STEPS = 150, 40
TOLERANCE = 1e-5


def exported(run_dir: Path, fmt: str, tmp_path: Path) -> ExportedPolicy:
    path = tmp_path / f"policy.{fmt}"
    writer(fmt)(load_spec(run_dir, "final"), path)
    return LuauPolicy.from_file(path) if fmt == "luau" else OnnxPolicy(path)


@pytest.mark.parametrize("fmt", ["luau", "onnx"])
@pytest.mark.parametrize("algo", RUNS)
def test_exported_actions_match_sb3_predict(trained_runs, algo, fmt, tmp_path):
    run_dir = trained_runs[algo]
    run_cfg = load_run_config(run_dir)
    cfg = OmegaConf.create({"checkpoint": "final", "device": "cpu"})
    driver = load_policy_driver(run_dir, cfg, observation_size=13)
    size = 13
    # The run's own wrapper stack (SB3's frame stack, VecNormalize frozen with the
    # checkpoint's statistics); random spawns and a short step limit end episodes at
    # different times per car, and the VecEnv resets each car as training does.
    base = make_env(
        run_cfg.backend,
        n_races=2,
        cars_per_race=2,
        track_seeds=[[7], [8]],
        episode={"spawn": "random", "max_steps": MAX_STEPS},
    )
    venv = wrap_vec_env(base, run_cfg.wrappers, gamma=0.99)
    venv.training, venv.norm_reward = False, False
    venv.obs_rms = driver.normalizer.obs_rms.copy()
    venv.seed(3)
    policy = exported(run_dir, fmt, tmp_path)
    observation = venv.reset()
    state, episode_start = None, np.ones(venv.num_envs, dtype=bool)
    worst, resets = 0.0, 0
    for _ in range(STEPS):
        raw = venv.get_original_obs()[:, -size:].astype(np.float32)
        expected, state = driver.model.predict(
            observation, state=state, episode_start=episode_start, deterministic=True
        )
        actions = policy.act(raw)
        assert actions.shape == (venv.num_envs, 3)
        worst = max(worst, float(np.abs(actions - expected).max()))
        observation, _, dones, _ = venv.step(expected)
        for car in np.flatnonzero(dones):
            policy.reset(int(car))
        resets += int(dones.sum())
        episode_start = dones
    venv.close()
    assert resets >= 2 * venv.num_envs  # episodes ended, at different steps
    assert worst < TOLERANCE, f"{algo} {fmt}: max |action - SB3| = {worst:.2e}"


@pytest.mark.parametrize("fmt", ["luau", "onnx"])
def test_an_observation_of_the_wrong_size_is_an_export_error(trained_runs, fmt, tmp_path):
    # onnxruntime failed with its own INVALID_ARGUMENT ("Got: 38 Expected: 26").
    from racing_rl.errors import ExportError

    policy = exported(trained_runs["ppo"], fmt, tmp_path)
    assert policy.act(np.zeros((2, 13), np.float32)).shape == (2, 3)
    with pytest.raises(ExportError, match="13") as raised:
        policy.act(np.zeros((2, 19), np.float32))
    assert "\n" not in str(raised.value)  # one line: Luau's stack traceback left out


@pytest.mark.parametrize("algo", ["ppo", "recurrent_ppo"])
def test_an_onnx_policy_drives_the_cars_of_its_first_act(trained_runs, algo, tmp_path):
    # Its frames (and LSTM state) have a row per car: another count was numpy's
    # ValueError in act, and a reset of another car an IndexError.
    from racing_rl.errors import ExportError

    policy = exported(trained_runs[algo], "onnx", tmp_path)
    assert policy.act(np.zeros((2, 13), np.float32)).shape == (2, 3)
    policy.reset(1)
    with pytest.raises(ExportError, match=r"drives 2 cars .* got 3: .* a new OnnxPolicy"):
        policy.act(np.zeros((3, 13), np.float32))
    with pytest.raises(ExportError, match="car 2 is not one of the 2 cars"):
        policy.reset(2)
    assert policy.act(np.zeros((2, 13), np.float32)).shape == (2, 3)


def test_a_module_that_fails_to_load_leaves_stdout_clean(capfd):
    # pluau prints "Lua VM is being closed" when a VM is dropped; a module that failed to
    # load dropped its VM unsilenced, into eval driver=luau's results on stdout.
    import gc

    from racing_rl.errors import ExportError

    with pytest.raises(ExportError, match="is not a loadable racing-rl Luau policy"):
        LuauPolicy("return 1 +", name="broken.luau")
    gc.collect()
    assert capfd.readouterr().out == ""

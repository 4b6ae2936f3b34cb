"""The ONNX model: opset, inputs and outputs as documented, metadata props as the Luau
header, and a batch of any size."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime
import pytest

from racing_rl import __version__
from racing_rl.export import load_spec
from racing_rl.export.luau import luau_source
from racing_rl.export.onnx import OPSET, write_onnx
from racing_rl.export.runtime import LuauPolicy


@pytest.fixture(scope="module")
def models(trained_runs, tmp_path_factory) -> dict[str, str]:
    out = tmp_path_factory.mktemp("onnx")
    paths = {}
    for algo in ("ppo", "recurrent_ppo"):
        paths[algo] = str(out / f"{algo}.onnx")
        write_onnx(load_spec(trained_runs[algo], "final"), out / f"{algo}.onnx")
    return paths


def shapes(values) -> dict[str, list]:
    return {
        v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim] for v in values
    }


def test_inputs_outputs_and_opset(models):
    model = onnx.load(models["ppo"])
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) == OPSET == 15
    assert shapes(model.graph.input) == {"observation": ["batch", 26]}
    assert shapes(model.graph.output) == {"action": ["batch", 3]}
    recurrent = onnx.load(models["recurrent_ppo"])
    assert shapes(recurrent.graph.input) == {
        "observation": ["batch", 13],
        "state_h": [1, "batch", 8],
        "state_c": [1, "batch", 8],
    }
    assert list(shapes(recurrent.graph.output)) == ["action", "state_h_out", "state_c_out"]


def test_metadata_props_state_what_the_luau_header_states(models, trained_runs):
    spec = load_spec(trained_runs["ppo"], "final")
    props = {p.key: p.value for p in onnx.load(models["ppo"]).metadata_props}
    assert props["algorithm"] == "TeacherPPO" and props["checkpoint"] == "ppo/model.zip"
    assert props["frame_stack"] == "2" and props["observation_size"] == "13"
    assert props["ray_count"] == "10" and int(props["timesteps"]) >= 512
    assert props["racing_rl_version"] == __version__
    assert props["weights_sha256"] == LuauPolicy(luau_source(spec)).info["weightsSha256"]
    assert props["game_model_id"] == ""  # a simulator run
    assert json.loads(props["observation_layout"])[0].startswith("1-10  ray distance")


def test_normalisation_and_clipping_are_in_the_graph(models, trained_runs):
    """Far outside the observations seen in training (the runtime test drives recorded
    ones), the graph's actions are SB3's behind the run's VecNormalize: an action clipped
    to the action space alone would pass a bound check without either."""
    from omegaconf import OmegaConf

    from racing_rl.checkpoints.runs import load_policy_driver

    cfg = OmegaConf.create({"checkpoint": "final", "device": "cpu"})
    driver = load_policy_driver(trained_runs["ppo"], cfg, observation_size=13)
    session = onnxruntime.InferenceSession(models["ppo"], providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    for batch in (1, 7):
        for scale in (1.0, 30.0, 1e6):  # inside the statistics, beyond clip_obs, far beyond
            stacked = (rng.standard_normal((batch, 26)) * scale).astype(np.float32)
            (action,) = session.run(["action"], {"observation": stacked})
            normalised = driver.normalizer.normalize_obs(stacked)
            expected, _ = driver.model.predict(normalised, deterministic=True)
            assert action.shape == (batch, 3)
            np.testing.assert_allclose(action, expected, atol=1e-5)


@pytest.mark.parametrize("algo", ["ppo", "recurrent_ppo"])
def test_the_docs_python_example_drives_the_model(models, algo, tmp_path, monkeypatch):
    # It fed no LSTM state: onnxruntime refused a RecurrentPPO model ("Required inputs
    # (['state_h', 'state_c']) are missing").
    import re
    import shutil
    from pathlib import Path

    doc = (Path(__file__).parents[2] / "docs" / "export.md").read_text()
    (example,) = re.findall(r"```python\n(.*?)```", doc, re.S)
    shutil.copy(models[algo], tmp_path / "driver.onnx")
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(example, scope)
    assert -1.0 <= scope["throttle"] <= 1.0 and scope["action"].shape == (1, 3)

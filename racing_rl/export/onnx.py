"""A ``PolicySpec`` as an ONNX model, for engines that run ONNX (Unity Sentis, Godot, ...).

The graph holds the normalisation and the action post-processing; the caller stacks the
frames (zeros at an episode start, newest frame last)::

    inputs   observation  float32 [batch, observation_size * frame_stack]
             state_h      float32 [lstm_layers, batch, hidden]   (RecurrentPPO only;
             state_c      float32 [lstm_layers, batch, hidden]    zeros at an episode start)
    outputs  action       float32 [batch, 3]: throttle, steering, nitro
             state_h_out, state_c_out                             (RecurrentPPO only)

The model's metadata props carry what the Luau module's header carries (algorithm,
checkpoint, timesteps, observation layout, frame stack, racing-rl version, the weights' SHA-256).
It is made by ``torch.onnx.export`` (the TorchScript exporter, opset ``OPSET``) of a small
``nn.Module`` built from the spec.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from racing_rl.export.spec import Activation, Dense, PolicySpec

#: The ONNX opset the models are written with: 15, the newest that every Unity Sentis
#: release imports (before 2.6 they document opsets 7-15); onnxruntime reads any.
OPSET = 15
#: The models' ``producer_name``: what tells an earlier export
#: (``racing_rl.export.check_replaceable``) from another program's model.
PRODUCER = "racing-rl"


class SpecModule(nn.Module):
    """The spec as a torch module: ``forward(observation[, state_h, state_c])``.

    Args:
        spec: the driver.
    """

    def __init__(self, spec: PolicySpec) -> None:
        super().__init__()
        norm = spec.normalization
        self.clip = float(norm.clip) if norm is not None else None
        self.register_buffer("mean", _tensor(norm.mean) if norm is not None else None)
        self.register_buffer("std", _tensor(norm.std) if norm is not None else None)
        self.register_buffer("low", _tensor(spec.action_low))
        self.register_buffer("high", _tensor(spec.action_high))
        self.rescale = spec.postprocess == "rescale"
        self.lstm = _torch_lstm(spec) if spec.lstm else None
        self.net = nn.Sequential(*(_torch_layer(layer) for layer in spec.layers))

    def forward(
        self,
        observation: torch.Tensor,
        state_h: torch.Tensor | None = None,
        state_c: torch.Tensor | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The action of each car: the ONNX graph's signature.

        Args:
            observation: the stacked frames, shape (N, observation size × frame stack),
                newest frame last, not normalised.
            state_h, state_c: an LSTM driver's state, each shape (LSTM layers, N, hidden);
                zeros at an episode's start. None for a feed-forward driver.

        Returns:
            The actions (throttle, steering, nitro), shape (N, 3), within the action
            space's bounds; an LSTM driver also returns its next ``state_h`` and
            ``state_c``.

        Raises:
            ValueError: if an LSTM driver is not given its state.
        """
        x = observation
        if self.mean is not None:
            x = torch.clamp((x - self.mean) / self.std, -self.clip, self.clip)
        if self.lstm is not None:
            if state_h is None or state_c is None:
                raise ValueError("an LSTM driver needs state_h and state_c")
            out, (state_h, state_c) = self.lstm(x.unsqueeze(0), (state_h, state_c))
            x = out.squeeze(0)
        y = self.net(x)
        if self.rescale:
            y = self.low + 0.5 * (y + 1.0) * (self.high - self.low)
        else:
            y = torch.max(torch.min(y, self.high), self.low)
        if self.lstm is None:
            return y
        return y, state_h, state_c


def _tensor(array: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.asarray(array, dtype=np.float32).copy())


def _torch_layer(layer: Dense | Activation) -> nn.Module:
    if isinstance(layer, Dense):
        linear = nn.Linear(layer.n_in, layer.n_out)
        with torch.no_grad():
            linear.weight.copy_(_tensor(layer.weight))
            linear.bias.copy_(_tensor(layer.bias))
        return linear
    if layer.name == "tanh":
        return nn.Tanh()
    if layer.name == "relu":
        return nn.ReLU()
    if layer.name == "elu":
        return nn.ELU(alpha=layer.params[0])
    if layer.name == "leaky_relu":
        return nn.LeakyReLU(negative_slope=layer.params[0])
    return nn.Hardtanh(min_val=layer.params[0], max_val=layer.params[1])


def _torch_lstm(spec: PolicySpec) -> nn.LSTM:
    first = spec.lstm[0]
    lstm = nn.LSTM(int(first.weight_ih.shape[1]), first.hidden_size, num_layers=len(spec.lstm))
    with torch.no_grad():
        for k, layer in enumerate(spec.lstm):
            getattr(lstm, f"weight_ih_l{k}").copy_(_tensor(layer.weight_ih))
            getattr(lstm, f"weight_hh_l{k}").copy_(_tensor(layer.weight_hh))
            getattr(lstm, f"bias_ih_l{k}").copy_(_tensor(layer.bias_ih))
            getattr(lstm, f"bias_hh_l{k}").copy_(_tensor(layer.bias_hh))
    return lstm


def metadata(spec: PolicySpec) -> dict[str, str]:
    """The model's metadata props: every value a string, lists as JSON."""
    from racing_rl.export.luau import observation_layout

    info = spec.info
    props = {
        "producer": PRODUCER,
        "algorithm": spec.algorithm,
        "checkpoint": str(info.get("checkpoint", "")),
        "timesteps": str(int(info.get("timesteps", 0))),
        "racing_rl_version": str(info.get("racing_rl_version", "")),
        "weights_sha256": spec.weights_sha256,
        "game_model_id": str(info.get("game_model_id", "")),
        "observation_size": str(spec.observation_size),
        "ray_count": str(spec.n_rays),
        "frame_stack": str(spec.frame_stack),
        "input_size": str(spec.input_size),
        "observation_layout": json.dumps(observation_layout(spec)),
        "frame_order": "oldest first, newest last; zeros before an episode's first frame",
        "action": "throttle, steering, nitro in [-1, 1]",
        "lstm_layers": str(len(spec.lstm)),
        "lstm_hidden_size": str(spec.lstm_hidden_size),
    }
    return props


def write_onnx(spec: PolicySpec, path: Path) -> None:
    """Write ``spec`` as an ONNX model to ``path`` (not atomically; see ``export``).

    Raises:
        ImportError: if ``onnx`` is not installed (``pip install 'racing-rl[export]'``).
    """
    import onnx

    module = SpecModule(spec).eval()
    batch = 2
    observation = torch.zeros(batch, spec.input_size)
    inputs: tuple[torch.Tensor, ...] = (observation,)
    input_names, output_names = ["observation"], ["action"]
    dynamic_axes = {"observation": {0: "batch"}, "action": {0: "batch"}}
    if spec.lstm:
        state = torch.zeros(len(spec.lstm), batch, spec.lstm_hidden_size)
        inputs = (observation, state, state.clone())
        input_names += ["state_h", "state_c"]
        output_names += ["state_h_out", "state_c_out"]
        for name in ("state_h", "state_c", "state_h_out", "state_c_out"):
            dynamic_axes[name] = {1: "batch"}
    with warnings.catch_warnings():
        # torch 2.9+ deprecates the TorchScript exporter in favour of dynamo, which needs
        # onnxscript; the TorchScript one exports these small graphs exactly.
        warnings.filterwarnings("ignore", message=".*dynamo=False.*")
        warnings.filterwarnings("ignore", message=".*TorchScript.*")
        warnings.filterwarnings("ignore", message="The feature will be removed")
        # nn.LSTM's shape checks, traced as constants: the state inputs carry the batch.
        warnings.filterwarnings("ignore", message="Converting a tensor to a Python boolean")
        warnings.filterwarnings("ignore", message="Exporting a model to ONNX with a batch_size")
        torch.onnx.export(
            module,
            inputs,
            str(path),
            dynamo=False,
            opset_version=OPSET,
            input_names=input_names,
            output_names=output_names,
            dynamic_axes=dynamic_axes,
        )
    model = onnx.load(str(path))
    onnx.helper.set_model_props(model, metadata(spec))
    model.producer_name = PRODUCER
    onnx.checker.check_model(model)
    onnx.save(model, str(path))

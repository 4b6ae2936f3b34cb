"""A trained driver as plain arrays: what every export format writes.

``policy_spec`` reads an SB3 model and its run's frozen VecNormalize statistics into a
``PolicySpec``: the frame stack, the observation normalisation, an optional LSTM, the
policy network as a sequence of dense layers and activations, and the post-processing of
SB3's deterministic ``predict``. The Luau and ONNX writers only translate a spec, so
both formats compute the same function, and anything this module does not know is
refused here, once, with a message naming it.

What SB3's ``predict(observation, deterministic=True)`` computes, per algorithm:

- PPO (``ActorCriticPolicy``): ``action_net(policy_net(x))``, the Gaussian mean, then
  ``np.clip`` to the action space. With gSDE (``use_sde=True``) the mode is the same mean
  (``StateDependentNoiseDistribution.mode``: the noise is left out); with gSDE's
  ``squash_output=True`` it is ``tanh`` of it, rescaled from [-1, 1] to the action space
  (``unscale_action``) instead of clipped.
- RecurrentPPO (``RecurrentActorCriticPolicy``): the same after ``lstm_actor``, whose
  (h, c) state is kept per car and zeroed at an episode start.
- SAC and TQC (their ``Actor``): ``tanh(mu(latent_pi(x)))``, the squashed Gaussian's
  mode, rescaled from [-1, 1] to the action space (``unscale_action``). With gSDE, ``mu``
  is the mean's linear layer followed by ``Hardtanh(-clip_mean, clip_mean)`` (none for
  ``clip_mean=0``) and the mode is again ``tanh`` of it, rescaled.
- TD3 (its ``Actor``): ``mu(x)``, which ends in tanh, rescaled likewise.

The observation ``x`` is the frame stack (``racing_rl.vec.FrameStack`` per car: zeros at
an episode start, newest frame last) normalised as VecNormalize's ``normalize_obs`` does:
``clip((x - mean) / sqrt(var + epsilon), -clip_obs, clip_obs)``.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from gymnasium import spaces
from numpy.typing import NDArray
from torch import nn

from racing_rl.contract import ACTION_SIZE, STATE_SIZE
from racing_rl.errors import ExportError

FloatArray = NDArray[np.float32]

#: Activation modules a spec can carry, by their ``Activation.name``.
ACTIVATIONS: dict[type[nn.Module], str] = {
    nn.Tanh: "tanh",
    nn.ReLU: "relu",
    nn.ELU: "elu",
    nn.LeakyReLU: "leaky_relu",
    nn.Hardtanh: "hardtanh",
}


@dataclass(frozen=True)
class Dense:
    """``y = weight @ x + bias``.

    Attributes:
        weight: shape (n_out, n_in), float32.
        bias: shape (n_out,), float32.
    """

    weight: FloatArray
    bias: FloatArray

    @property
    def n_in(self) -> int:
        return int(self.weight.shape[1])

    @property
    def n_out(self) -> int:
        return int(self.weight.shape[0])


@dataclass(frozen=True)
class Activation:
    """An element-wise activation.

    Attributes:
        name: ``tanh``, ``relu``, ``elu`` (``params = (alpha,)``), ``leaky_relu``
            (``params = (negative_slope,)``) or ``hardtanh`` (``params = (min, max)``).
        params: the activation's constants.
    """

    name: str
    params: tuple[float, ...] = ()


@dataclass(frozen=True)
class LSTMLayer:
    """One layer of a PyTorch ``nn.LSTM`` (gates in PyTorch's order: input, forget,
    cell, output; ``c' = f*c + i*g``, ``h' = o*tanh(c')``).

    Attributes:
        weight_ih: shape (4 * hidden, n_in), float32.
        weight_hh: shape (4 * hidden, hidden), float32.
        bias_ih: shape (4 * hidden,), float32.
        bias_hh: shape (4 * hidden,), float32.
    """

    weight_ih: FloatArray
    weight_hh: FloatArray
    bias_ih: FloatArray
    bias_hh: FloatArray

    @property
    def hidden_size(self) -> int:
        return int(self.weight_hh.shape[1])


@dataclass(frozen=True)
class Normalization:
    """Frozen VecNormalize observation statistics.

    Attributes:
        mean: running mean, shape (input_size,), float64 (as SB3 keeps it).
        std: ``sqrt(var + epsilon)``, shape (input_size,), float64.
        clip: ``clip_obs``: normalised values are clipped to [-clip, clip].
    """

    mean: FloatArray
    std: FloatArray
    clip: float


@dataclass(frozen=True)
class PolicySpec:
    """A deterministic driver, from one raw observation frame to one action.

    Attributes:
        algorithm: the model's class name (``SAC``, ``TD3``, ``TQC``, ``RecurrentPPO``;
            ``TeacherPPO``, the default ``algo=ppo``'s PPO subclass, or ``PPO``).
        observation_size: numbers per raw observation frame (rays + ``STATE_SIZE``).
        frame_stack: frames stacked into the network's input, newest last.
        normalization: the frozen statistics, or None if the run does not normalise.
        lstm: the LSTM layers before ``layers`` (RecurrentPPO), else empty.
        layers: the policy network after the LSTM, in order.
        postprocess: ``clip`` (to ``[action_low, action_high]``) or ``rescale`` (from
            [-1, 1] to ``[action_low, action_high]``).
        action_low: shape (action_size,), float32.
        action_high: shape (action_size,), float32.
        info: what the exported file tells its reader: algorithm, checkpoint, timesteps,
            ray count, observation layout, racing-rl version.
    """

    algorithm: str
    observation_size: int
    frame_stack: int
    normalization: Normalization | None
    lstm: tuple[LSTMLayer, ...]
    layers: tuple[Dense | Activation, ...]
    postprocess: Literal["clip", "rescale"]
    action_low: FloatArray
    action_high: FloatArray
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def input_size(self) -> int:
        """Numbers in the network's input: ``observation_size * frame_stack``."""
        return self.observation_size * self.frame_stack

    @property
    def n_rays(self) -> int:
        """Rays per observation frame: ``info["ray_count"]``, else all but the
        ``STATE_SIZE`` numbers after the rays."""
        return int(self.info.get("ray_count", self.observation_size - STATE_SIZE))

    @property
    def action_size(self) -> int:
        return int(self.action_low.shape[0])

    @property
    def lstm_hidden_size(self) -> int:
        """Units per LSTM layer (0 without an LSTM)."""
        return self.lstm[0].hidden_size if self.lstm else 0

    @property
    def weights_sha256(self) -> str:
        """SHA-256 (64 hex digits) of the function the driver computes: the sizes, the
        statistics, every layer's arrays (dtype, shape, bytes) and activation, the
        post-processing and the action bounds, not ``info``. One checkpoint's exports
        state the same one, in either format; another checkpoint's differs. It stands in
        for an export date, which would make every export of one checkpoint a new file.
        """
        digest = hashlib.sha256(repr((self.observation_size, self.frame_stack)).encode())
        for part in (self.normalization, *self.lstm, *self.layers, self.postprocess):
            for value in dataclasses.astuple(part) if dataclasses.is_dataclass(part) else (part,):
                if isinstance(value, np.ndarray):
                    digest.update(f"{value.dtype.str}{value.shape}".encode())
                    digest.update(np.ascontiguousarray(value).tobytes())
                else:
                    digest.update(repr(value).encode())
        for bound in (self.action_low, self.action_high):
            digest.update(np.ascontiguousarray(bound, np.float32).tobytes())
        return digest.hexdigest()


def policy_spec(
    model: Any,
    normalizer: Any,
    frame_stack: int,
    info: dict[str, Any] | None = None,
) -> PolicySpec:
    """Read a trained model and its frozen statistics into a ``PolicySpec``.

    Args:
        model: an SB3 ``BaseAlgorithm`` (PPO, SAC, TD3, TQC, RecurrentPPO) with an
            MLP policy on a 1-D Box observation space and a Box action space.
        normalizer: the run's ``VecNormalize`` (statistics only), or None.
        frame_stack: the run's ``wrappers.frame_stack``; the model's input size must be
            a multiple of it.
        info: metadata to carry into the exported file.

    Returns:
        The spec; its arrays are copies, float32 (the statistics float64).

    Raises:
        ExportError: if the policy has anything this module does not translate: another
            policy class, a custom feature extractor or MLP extractor, a layer or
            activation outside ``ACTIVATIONS``, an action distribution other than SB3's
            diagonal Gaussian or gSDE's, a shared or critic-only LSTM, or
            spaces other than 1-D Boxes; or a weight or statistic that is not finite (a
            diverged checkpoint, whose module would drive with NaN actions).
    """
    policy = model.policy
    algorithm = type(model).__name__
    observation_space, action_space = policy.observation_space, policy.action_space
    if not isinstance(observation_space, spaces.Box) or len(observation_space.shape) != 1:
        raise ExportError(
            f"{algorithm}'s observation space {observation_space} is not supported: export "
            "needs a 1-D Box (the racing observation vector)."
        )
    if not isinstance(action_space, spaces.Box) or action_space.shape != (ACTION_SIZE,):
        raise ExportError(
            f"{algorithm}'s action space {action_space} is not supported: export needs a Box "
            f"of {ACTION_SIZE} (throttle, steering, nitro)."
        )
    input_size = int(observation_space.shape[0])
    if frame_stack < 1 or input_size % frame_stack:
        raise ExportError(
            f"The model's input has {input_size} numbers, which is not {frame_stack} stacked "
            "frames (wrappers.frame_stack): export it with the run dir it was trained in."
        )
    lstm, layers, postprocess = _network(policy, algorithm)
    normalization = _normalization(normalizer, input_size)
    _check_finite(algorithm, lstm, layers, normalization)
    return PolicySpec(
        algorithm=algorithm,
        observation_size=input_size // frame_stack,
        frame_stack=frame_stack,
        normalization=normalization,
        lstm=lstm,
        layers=layers,
        postprocess=postprocess,
        action_low=np.asarray(action_space.low, dtype=np.float32).copy(),
        action_high=np.asarray(action_space.high, dtype=np.float32).copy(),
        info=dict(info or {}),
    )


def _network(
    policy: Any, algorithm: str
) -> tuple[tuple[LSTMLayer, ...], tuple[Dense | Activation, ...], Literal["clip", "rescale"]]:
    """The LSTM, layers and post-processing of a policy's deterministic action."""
    from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy
    from sb3_contrib.tqc.policies import TQCPolicy
    from stable_baselines3.common.distributions import (
        DiagGaussianDistribution,
        StateDependentNoiseDistribution,
    )
    from stable_baselines3.common.policies import ActorCriticPolicy
    from stable_baselines3.common.torch_layers import FlattenExtractor, MlpExtractor
    from stable_baselines3.sac.policies import SACPolicy
    from stable_baselines3.td3.policies import TD3Policy

    def check_extractor(extractor: nn.Module) -> None:
        if type(extractor) is not FlattenExtractor:
            raise ExportError(
                f"{algorithm}'s feature extractor {type(extractor).__name__} is not supported: "
                "export translates MLP policies on a flat observation (FlattenExtractor)."
            )

    if isinstance(policy, ActorCriticPolicy):  # PPO, RecurrentPPO
        check_extractor(policy.pi_features_extractor)
        if type(policy.mlp_extractor) is not MlpExtractor:
            raise ExportError(
                f"{algorithm}'s MLP extractor {type(policy.mlp_extractor).__name__} is not "
                "supported: export translates SB3's MlpExtractor (net_arch)."
            )
        if not isinstance(
            policy.action_dist, DiagGaussianDistribution | StateDependentNoiseDistribution
        ):
            raise ExportError(
                f"{algorithm}'s action distribution {type(policy.action_dist).__name__} is not "
                "supported: export translates the mean of SB3's DiagGaussianDistribution and "
                "of gSDE's StateDependentNoiseDistribution. Train with SB3's policy class "
                "(algo.model.policy=MlpPolicy)."
            )
        lstm: tuple[LSTMLayer, ...] = ()
        if isinstance(policy, RecurrentActorCriticPolicy):
            if policy.shared_lstm:
                raise ExportError(
                    f"{algorithm} with shared_lstm=True is not supported: export translates "
                    "the actor's own LSTM (sb3-contrib's default). Train with "
                    "algo.model.policy_kwargs.shared_lstm=false."
                )
            lstm = _lstm(policy.lstm_actor, algorithm)
        layers = (
            *_sequential(policy.mlp_extractor.policy_net, algorithm, "mlp_extractor.policy_net"),
            _dense(policy.action_net, algorithm, "action_net"),
        )
        if policy.squash_output:  # gSDE's option: its mode is tanh(mean), and predict rescales
            return lstm, (*layers, Activation("tanh")), "rescale"
        return lstm, layers, "clip"
    if isinstance(policy, SACPolicy | TQCPolicy):
        actor = policy.actor
        check_extractor(actor.features_extractor)
        layers = (
            *_sequential(actor.latent_pi, algorithm, "actor.latent_pi"),
            # gSDE's mu ends in Hardtanh(-clip_mean, clip_mean) unless clip_mean=0
            *_sequential(actor.mu, algorithm, "actor.mu"),
            Activation("tanh"),  # the squashed distribution's mode, with or without gSDE
        )
        return (), layers, "rescale"
    if isinstance(policy, TD3Policy):
        check_extractor(policy.actor.features_extractor)
        return (), _sequential(policy.actor.mu, algorithm, "actor.mu"), "rescale"
    raise ExportError(
        f"{algorithm}'s policy class {type(policy).__name__} is not supported: export "
        "translates the MLP policies of PPO, RecurrentPPO, SAC, TQC and TD3."
    )


def _sequential(module: nn.Module, algorithm: str, where: str) -> tuple[Dense | Activation, ...]:
    """The layers of an ``nn.Sequential`` of Linear layers and supported activations."""
    if not isinstance(module, nn.Sequential):
        return (_dense(module, algorithm, where),)
    layers: list[Dense | Activation] = []
    for i, child in enumerate(module):
        if isinstance(child, nn.Linear):
            layers.append(_dense(child, algorithm, f"{where}[{i}]"))
        else:
            layers.append(_activation(child, algorithm, f"{where}[{i}]"))
    return tuple(layers)


def _dense(module: nn.Module, algorithm: str, where: str) -> Dense:
    if type(module) is not nn.Linear:
        raise ExportError(
            f"{algorithm}'s {where} is a {type(module).__name__}, which is not supported: "
            "export translates nn.Linear layers and the activations "
            f"{', '.join(cls.__name__ for cls in ACTIVATIONS)}."
        )
    weight = module.weight.detach().cpu().numpy().astype(np.float32)
    bias = (
        module.bias.detach().cpu().numpy().astype(np.float32)
        if module.bias is not None
        else np.zeros(weight.shape[0], np.float32)
    )
    return Dense(weight.copy(), bias.copy())


def _activation(module: nn.Module, algorithm: str, where: str) -> Activation:
    name = ACTIVATIONS.get(type(module))
    if name is None:
        raise ExportError(
            f"{algorithm}'s {where} is a {type(module).__name__}, which is not supported: "
            "export translates nn.Linear layers and the activations "
            f"{', '.join(cls.__name__ for cls in ACTIVATIONS)}. Train without "
            "algo.model.policy_kwargs.activation_fn (SB3's default, Tanh or ReLU, is "
            "supported) or with one of those, e.g. '+algo.model.policy_kwargs."
            "activation_fn={_target_:hydra.utils.get_class,path:torch.nn.ReLU}'."
        )
    if isinstance(module, nn.ELU):
        return Activation(name, (float(module.alpha),))
    if isinstance(module, nn.LeakyReLU):
        return Activation(name, (float(module.negative_slope),))
    if isinstance(module, nn.Hardtanh):
        return Activation(name, (float(module.min_val), float(module.max_val)))
    return Activation(name)


def _lstm(module: nn.LSTM, algorithm: str) -> tuple[LSTMLayer, ...]:
    if module.bidirectional or module.batch_first or module.proj_size or not module.bias:
        raise ExportError(
            f"{algorithm}'s LSTM is not supported: export translates a unidirectional "
            "nn.LSTM with biases and without projections (sb3-contrib's default)."
        )

    def array(name: str) -> FloatArray:
        return getattr(module, name).detach().cpu().numpy().astype(np.float32).copy()

    return tuple(
        LSTMLayer(
            array(f"weight_ih_l{k}"),
            array(f"weight_hh_l{k}"),
            array(f"bias_ih_l{k}"),
            array(f"bias_hh_l{k}"),
        )
        for k in range(module.num_layers)
    )


def _check_finite(
    algorithm: str,
    lstm: tuple[LSTMLayer, ...],
    layers: tuple[Dense | Activation, ...],
    normalization: Normalization | None,
) -> None:
    """Raise ``ExportError`` naming the first array of the exported network (or its
    statistics) that holds a NaN or an infinity."""
    named: list[tuple[str, FloatArray]] = [
        (f"LSTM layer {k}'s {name}", getattr(layer, name))
        for k, layer in enumerate(lstm)
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    ]
    dense = [layer for layer in layers if isinstance(layer, Dense)]
    for k, layer in enumerate(dense):
        named += [
            (f"linear layer {k + 1} of {len(dense)}'s {name}", getattr(layer, name))
            for name in ("weight", "bias")
        ]
    if normalization is not None:
        named += [
            ("VecNormalize mean", normalization.mean),
            ("VecNormalize std", normalization.std),
        ]
    for name, array in named:
        bad = int(np.size(array) - np.isfinite(array).sum())
        if bad:
            raise ExportError(
                f"{algorithm}'s {name} has {bad} number(s) that are not finite: the "
                "checkpoint diverged, and its module would drive with NaN actions. Export "
                "an earlier checkpoint (checkpoint=<name>; racing-rl eval checks one)."
            )


def _normalization(normalizer: Any, input_size: int) -> Normalization | None:
    if normalizer is None or not getattr(normalizer, "norm_obs", False):
        return None
    mean = np.asarray(normalizer.obs_rms.mean, dtype=np.float64)
    var = np.asarray(normalizer.obs_rms.var, dtype=np.float64)
    if mean.shape != (input_size,):
        raise ExportError(
            f"The VecNormalize statistics are for observations of shape {mean.shape}, the "
            f"model's input is ({input_size},): keep the vecnormalize.npz saved with its "
            "model.zip beside it."
        )
    std = np.sqrt(var + float(normalizer.epsilon))
    return Normalization(mean, std, float(normalizer.clip_obs))

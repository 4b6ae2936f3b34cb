"""PPO taught by the scripted driver: a behaviour-cloning term on the policy's own rollouts.

Kickstarting (Schmitt et al., "Kickstarting Deep Reinforcement Learning", 2018): the
student learns from its own rollouts with an auxiliary loss that pulls it towards a
teacher's actions on the states it visits, weighted by a coefficient that is annealed so
that reinforcement learning takes over. Here the teacher is the scripted pure-pursuit
driver (``racing_rl.drivers.pure_pursuit``, by default on its racing line), which reads
the simulator state: every
observation of a rollout is labelled with the action the scripted driver would take in
that state, the labels of the states the *student* reaches (as DAgger labels them, Ross et
al. 2011), so it learns to recover from its own mistakes rather than only to follow the
teacher's path. The loss is the mean squared error between the policy's action mean
(its deterministic action) and the label, per action component:

    L_teacher = teacher_coef(progress) * mean_i ||mu(o_i) - a_scripted(s_i)||^2 / 3

It is minimised after PPO's epochs on each rollout, in ``teacher_epochs`` passes of
``batch_size`` minibatches with PPO's own optimizer (and gradient clipping): the
alternating form of PPO's loss plus the term, as Phasic Policy Gradient's auxiliary phase
(Cobbe et al. 2021) is. As that optimizer is Adam, whose steps hardly depend on the
loss's scale, and its moments carry PPO's last gradients into these steps, the weight
acts nearly as an on/off switch: in one epoch on one rollout (2026-12-07) the
policy's mean moved 0.0163 with weight 0 (PPO's momentum alone), 0.0186 with 0.1, and
0.0211 with 1 and with 10 alike. Kickstarting's own form adds the weighted term to each
of PPO's minibatch losses instead; it is not what the benchmarks measured.

With car collisions on (``experiment=race``), the racing-line teacher follows the cars
ahead on its line (``DriverConfig.traffic``): its labels teach the learner, whose rays
see the other cars there, to brake behind them rather than drive through them.

The labels read the built-in simulator's state: on another env (``backend=roblox``) the
term is off, with a warning, and this is PPO. The cars' scripted opponents, if any, are
not labelled (they are not VecEnv slots).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch as th
from numpy.typing import NDArray
from stable_baselines3 import PPO
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.callbacks import BaseCallback, ConvertCallback
from stable_baselines3.common.distributions import DiagGaussianDistribution
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.type_aliases import MaybeCallback, Schedule
from stable_baselines3.common.utils import FloatSchedule
from torch.nn import functional as F

from racing_rl.drivers.pure_pursuit import TUNINGS, PurePursuitDriver
from racing_rl.envs.vec_env import SimVecEnv
from racing_rl.errors import ConfigError, is_integer, is_number

log = logging.getLogger(__name__)


class TeacherPPO(PPO):
    """SB3's PPO with the scripted driver as a teacher (see the module docstring).

    Takes every argument of ``stable_baselines3.PPO``, and:

    Args:
        teacher_coef: weight of the teacher term, a float or a schedule of SB3's
            ``progress_remaining`` (1 at the start, 0 at the end), e.g.
            ``LinearSchedule(1.0, 0.0, 0.5)``: annealed to 0 over the first half of
            training. 0 turns the term off (then this is PPO, step for step).
        teacher_epochs: passes of the teacher term over each rollout.
        teacher: the scripted driver's tuning, a name of ``pure_pursuit.TUNINGS``:
            ``racing`` (its racing line, ~0.93x the reference's lap time) or ``default``
            (the benchmark's reference).

    Raises:
        ConfigError: for a ``teacher_coef`` that is neither a finite number >= 0 nor a
            schedule that starts and ends at one, ``teacher_epochs`` < 1, or an unknown
            ``teacher``; at ``learn`` on the simulator with a ``teacher_coef`` other than
            0, if the policy's actions are not a diagonal Gaussian (``use_sde``: the
            term is off with 0, and on other envs).
    """

    def __init__(
        self,
        *args: Any,
        teacher_coef: float | Schedule = 1.0,
        teacher_epochs: int = 1,
        teacher: str = "racing",
        **kwargs: Any,
    ) -> None:
        self.check_arguments(
            {"teacher_coef": teacher_coef, "teacher_epochs": teacher_epochs, "teacher": teacher}
        )
        self.teacher_coef = teacher_coef
        self.teacher_epochs = teacher_epochs
        self.teacher = teacher
        super().__init__(*args, **kwargs)

    @staticmethod
    def check_arguments(arguments: Mapping[str, Any]) -> None:
        """Check this class's own constructor arguments among ``arguments`` (keyword
        arguments, instantiated: a schedule is a callable; one left out is not checked).
        Called by ``__init__``, and by ``racing_rl.checks.check_algo`` before a run starts.

        Raises:
            ConfigError: for a ``teacher_coef`` that is neither a finite number >= 0 nor
                a schedule that starts and ends at one, ``teacher_epochs`` < 1, or an
                unknown ``teacher``.
        """
        coef = arguments.get("teacher_coef", 0.0)
        # A schedule's values at the start and the end (progress remaining 1 and 0).
        values = [coef(1.0), coef(0.0)] if callable(coef) else [coef]
        if not all(is_number(value) and 0 <= value < math.inf for value in values):
            raise ConfigError(
                "TeacherPPO's teacher_coef must be a finite number >= 0 or a schedule of the "
                f"progress with such values (algo.teacher_coef), got {coef!r}."
            )
        epochs = arguments.get("teacher_epochs", 1)
        if not is_integer(epochs) or epochs < 1:
            raise ConfigError(
                f"TeacherPPO's teacher_epochs must be an integer >= 1, got {epochs!r}."
            )
        if arguments.get("teacher", "racing") not in TUNINGS:
            raise ConfigError(
                f"TeacherPPO's teacher must be one of {', '.join(sorted(TUNINGS))}, "
                f"got {arguments['teacher']!r}."
            )

    def _setup_model(self) -> None:
        super()._setup_model()
        self.teacher_schedule = FloatSchedule(self.teacher_coef)
        #: The scripted driver's action for each observation of the rollout, shape
        #: (n_steps, n_envs, 3), filled by ``TeacherLabels`` as the rollout is collected.
        self.teacher_actions = np.zeros((self.n_steps, self.n_envs, 3), np.float32)
        #: Whether ``TeacherLabels`` labelled the rollout in the buffer: not when the
        #: weight was 0 as it began (a schedule that starts at 0 and rises).
        self.teacher_labelled = False

    def _excluded_save_params(self) -> list[str]:
        return [
            *super()._excluded_save_params(),
            "teacher_schedule",
            "teacher_actions",
            "teacher_labelled",
        ]

    def teacher_weight(self) -> float:
        """The teacher term's weight now (``teacher_coef`` at the current progress; 0 on an
        env that is not the simulator)."""
        if self.simulator is None:
            return 0.0
        return float(self.teacher_schedule(self._current_progress_remaining))

    @property
    def simulator(self) -> SimVecEnv | None:
        """The built-in simulator under the env's wrappers, or None (no teacher then)."""
        env = self.get_env()
        return env.unwrapped if env is not None and isinstance(env.unwrapped, SimVecEnv) else None

    def learn(self, total_timesteps: int, callback: MaybeCallback = None, **kwargs: Any) -> Any:
        """PPO's ``learn``, with ``TeacherLabels`` before ``callback``.

        Raises:
            ConfigError: if the policy's action distribution is not a diagonal Gaussian
                while the term can be on (on the simulator, ``teacher_coef`` not 0).
        """
        off = is_number(self.teacher_coef) and self.teacher_coef == 0
        gaussian = isinstance(self.policy.action_dist, DiagGaussianDistribution)
        if not gaussian and not off and self.simulator is not None:
            raise ConfigError(
                f"TeacherPPO's teacher term fits a diagonal Gaussian's mean; this policy's "
                f"actions are a {type(self.policy.action_dist).__name__}. Set "
                "algo.model.use_sde=false, or algo.teacher_coef=0 (PPO alone)."
            )
        if self.simulator is None:
            env = self.get_env()
            log.info(  # expected on backend=roblox (conf/algo/ppo.yaml says so): no warning
                "The scripted teacher reads the built-in simulator's state, and this env is "
                "a %s: training without the teacher term (plain PPO).",
                type(env.unwrapped if env is not None else None).__name__,
            )
            return super().learn(total_timesteps, callback=callback, **kwargs)
        callbacks = callback if isinstance(callback, list) else [callback] if callback else []
        callbacks = [c if isinstance(c, BaseCallback) else ConvertCallback(c) for c in callbacks]
        return super().learn(total_timesteps, callback=[TeacherLabels(), *callbacks], **kwargs)

    def train(self) -> None:
        """PPO's epochs on the rollout, then the teacher term's (``teacher_epochs``)."""
        super().train()
        weight = self.teacher_weight()
        self.logger.record("train/teacher_coef", weight)
        if weight <= 0.0 or not self.teacher_labelled:  # unlabelled: its labels are stale
            return
        # super().train() flattened the rollout buffer to (n_envs * n_steps, ...).
        observations = th.as_tensor(self.rollout_buffer.observations, device=self.device)
        labels = th.as_tensor(
            RolloutBuffer.swap_and_flatten(self.teacher_actions), device=self.device
        )
        losses = fit_mean(
            self.policy,
            self.policy.optimizer,
            observations,
            labels,
            epochs=self.teacher_epochs,
            batch_size=self.batch_size,
            weight=weight,
            max_grad_norm=self.max_grad_norm,
        )
        self.logger.record("train/teacher_loss", float(np.mean(losses)))


def fit_mean(
    policy: ActorCriticPolicy,
    optimizer: th.optim.Optimizer,
    observations: th.Tensor,
    labels: th.Tensor,
    epochs: int,
    batch_size: int,
    weight: float = 1.0,
    max_grad_norm: float | None = None,
) -> list[float]:
    """Fit the mean of ``policy``'s diagonal Gaussian to ``labels`` (behaviour cloning):
    ``epochs`` passes of shuffled minibatches, each an optimizer step on ``weight`` × the
    mean squared error (its gradients clipped to ``max_grad_norm``, if given).

    Args:
        policy: an SB3 actor-critic policy whose actions are a ``DiagGaussianDistribution``.
        optimizer: the optimizer of ``policy``'s parameters.
        observations: shape (N, observation size), as the policy reads them (normalised).
        labels: the actions to imitate, shape (N, 3).
        epochs, batch_size: passes over the N pairs, pairs per step.
        weight: the loss's factor (the teacher term's weight).
        max_grad_norm: the gradients' norm limit, or None.

    Returns:
        Each minibatch's unweighted loss, in order.
    """
    policy.set_training_mode(True)
    losses = []
    for _ in range(epochs):
        for batch in th.randperm(len(labels), device=labels.device).split(batch_size):
            mean = policy.get_distribution(observations[batch]).distribution.mean
            loss = F.mse_loss(mean, labels[batch])
            optimizer.zero_grad()
            (weight * loss).backward()
            if max_grad_norm is not None:
                th.nn.utils.clip_grad_norm_(policy.parameters(), max_grad_norm)
            optimizer.step()
            losses.append(loss.item())
    policy.set_training_mode(False)
    return losses


def scripted_actions(simulator: SimVecEnv, driver: PurePursuitDriver) -> NDArray[np.float32]:
    """What the scripted ``driver`` would do now in each of ``simulator``'s slots, shape
    (num_envs, 3): throttle, steering, nitro in [-1, 1]."""
    assert simulator.races.worlds is not None, "reset() must come before scripted_actions()"
    actions = driver.act(simulator.races.worlds)[simulator.learners]
    return actions.astype(np.float32)


class TeacherLabels(BaseCallback):
    """Labels each observation of a ``TeacherPPO`` rollout with the scripted driver's
    action in the state it was observed in (``TeacherPPO.teacher_actions``).

    SB3 calls ``on_step`` after each ``env.step`` and before the step's transition enters
    the rollout buffer at ``rollout_buffer.pos``; the label of that transition's
    observation was computed one call earlier (or at the rollout's start), before the
    cars moved. Cars respawned or races restarted by the step are labelled in their new
    state, which is what their next observation shows.
    """

    model: TeacherPPO

    def _init_callback(self) -> None:
        simulator = self.model.simulator
        assert simulator is not None, "TeacherPPO.learn labels on the simulator only"
        self.simulator = simulator
        self.driver = PurePursuitDriver(TUNINGS[self.model.teacher])
        self.label = np.zeros((simulator.num_envs, 3), np.float32)

    def _labels(self) -> None:
        if self.model.teacher_labelled:
            self.label = scripted_actions(self.simulator, self.driver)

    def _on_rollout_start(self) -> None:
        # The weight is fixed through a rollout (SB3 moves the progress between rollouts):
        # a rollout is labelled whole or not at all, and train() skips the term for one
        # that is not, whatever the weight has become.
        self.model.teacher_labelled = self.model.teacher_weight() > 0.0
        self._labels()

    def _on_step(self) -> bool:
        self.model.teacher_actions[self.model.rollout_buffer.pos] = self.label
        self._labels()
        return True

"""SAC taught by the scripted driver, with a Q-filter (experiment).

Nair et al., "Overcoming Exploration in Reinforcement Learning with Demonstrations", 2018:
a behaviour-cloning term on the actor, applied only on the states where the critic rates
the teacher's action above the actor's own (the "Q-filter").
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch as th
from stable_baselines3 import SAC
from stable_baselines3.common.callbacks import BaseCallback, ConvertCallback
from stable_baselines3.common.type_aliases import MaybeCallback

from racing_rl.drivers.pure_pursuit import TUNINGS
from racing_rl.envs.vec_env import SimVecEnv
from racing_rl.teacher import scripted_actions


class TeacherSAC(SAC):
    def __init__(
        self,
        *args: Any,
        teacher_coef: float = 1.0,
        teacher: str = "racing",
        q_filter: bool = True,
        **kwargs: Any,
    ) -> None:
        self.teacher_coef = teacher_coef
        self.teacher = teacher
        self.q_filter = q_filter
        super().__init__(*args, **kwargs)

    def _setup_model(self) -> None:
        super()._setup_model()
        self.teacher_actions = np.zeros(
            (self.replay_buffer.buffer_size, self.n_envs, 3), np.float32
        )

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "teacher_actions"]

    @property
    def simulator(self) -> SimVecEnv | None:
        env = self.get_env()
        return env.unwrapped if env is not None and isinstance(env.unwrapped, SimVecEnv) else None

    def learn(self, total_timesteps: int, callback: MaybeCallback = None, **kwargs: Any) -> Any:
        callbacks = callback if isinstance(callback, list) else [callback] if callback else []
        callbacks = [c if isinstance(c, BaseCallback) else ConvertCallback(c) for c in callbacks]
        return super().learn(total_timesteps, callback=[SACTeacherLabels(), *callbacks], **kwargs)

    def train(self, gradient_steps: int, batch_size: int = 64) -> None:
        super().train(gradient_steps, batch_size)
        if self.teacher_coef <= 0.0:
            return
        buffer = self.replay_buffer
        upper = buffer.buffer_size if buffer.full else buffer.pos
        self.policy.set_training_mode(True)
        losses, kept = [], []
        for _ in range(gradient_steps):
            rows = np.random.randint(0, upper, size=batch_size)
            envs = np.random.randint(0, self.n_envs, size=batch_size)
            obs = buffer._normalize_obs(buffer.observations[rows, envs, :], self._vec_normalize_env)
            obs = th.as_tensor(obs, device=self.device)
            labels = th.as_tensor(self.teacher_actions[rows, envs], device=self.device)
            if self.q_filter:
                with th.no_grad():
                    own = self.actor(obs, deterministic=True)
                    q_own = th.min(th.cat(self.critic(obs, own), dim=1), dim=1).values
                    q_teacher = th.min(th.cat(self.critic(obs, labels), dim=1), dim=1).values
                    mask = (q_teacher > q_own).float()
            else:
                mask = th.ones(batch_size, device=self.device)
            mean = self.actor(obs, deterministic=True)
            loss = (mask * ((mean - labels) ** 2).mean(dim=1)).mean()
            self.actor.optimizer.zero_grad()
            (self.teacher_coef * loss).backward()
            self.actor.optimizer.step()
            losses.append(loss.item())
            kept.append(mask.mean().item())
        self.policy.set_training_mode(False)
        self.logger.record("train/teacher_loss", float(np.mean(losses)))
        self.logger.record("train/teacher_kept", float(np.mean(kept)))


class SACTeacherLabels(BaseCallback):
    model: TeacherSAC

    def _on_training_start(self) -> None:
        self.simulator = self.model.simulator
        assert self.simulator is not None
        self._labels()

    def _labels(self) -> None:
        self.label = scripted_actions(self.simulator, TUNINGS[self.model.teacher])

    def _on_step(self) -> bool:
        self.model.teacher_actions[self.model.replay_buffer.pos] = self.label
        self._labels()
        return True

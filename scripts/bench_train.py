"""Benchmark: what the real environment costs PPO.

Trains the default PPO config (conf/algo/ppo.yaml) on two stacks in the same process,
each for the same number of timesteps after a warm-up, taking turns (``--rounds``) so
that a slow spell of the machine falls on both:

* **real**: the default training stack, as ``racing-rl train`` builds it
  (``racing_rl.training.training_env``) — n_races × cars_per_race cars on the built-in
  simulator (half of the tracks hard: ``tracks.train_mix``), our SB3 adapter, the per-car
  frame stack, VecMonitor, VecNormalize — and the default TeacherPPO's teacher, which
  reads the simulator: the scripted driver's label of every step and one more pass per
  update;
* **zero-cost**: a VecEnv with the same number of slots and the same observation and
  action spaces whose step does nothing (zeros), wrapped in the same VecMonitor and
  VecNormalize; with no simulator to read, TeacherPPO is plain PPO there.

The ratio real / zero-cost is the share of PPO's throughput left once the environment
(and the teacher that needs it) runs: 1.0 would mean they are free
(``algo.teacher_coef=0`` leaves the teacher out of both). By default each stack trains for the
default training's budget (``total_timesteps``: 1.5M steps for PPO, ~6 min for both
stacks), since what the environment costs changes as PPO learns: a policy that still
crashes often ends races (restarting them and drawing new tracks) several times as
often as one that laps, so the first turns cost the real stack more than later ones.
The per-turn lines, printed as each turn ends, and the table at the end show it. Usage::

    python scripts/bench_train.py [--timesteps N] [--rounds 30] [overrides ...]

Extra arguments are Hydra overrides of conf/train.yaml (e.g. ``n_races=2``). The last
line printed is a JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from hydra import compose
from hydra.errors import HydraException
from omegaconf import DictConfig
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.vec_env import VecEnv, VecMonitor, VecNormalize

from racing_rl.algos import discount, make_model
from racing_rl.arguments import UsageError, check_arguments
from racing_rl.config import initialize, to_container
from racing_rl.errors import one_line, reported
from racing_rl.evaluation.tables import format_table
from racing_rl.training import training_env


class ZeroCostVecEnv(VecEnv):
    """A VecEnv with given spaces whose steps cost nothing: zero observations and rewards.

    Every slot's episode is truncated every ``episode_length`` steps, so the wrappers see
    episode ends as they do on the real environment.
    """

    def __init__(
        self,
        num_envs: int,
        observation_space: gym.Space,
        action_space: gym.Space,
        episode_length: int = 500,
    ) -> None:
        super().__init__(num_envs, observation_space, action_space)
        self._obs = np.zeros((num_envs, *observation_space.shape), dtype=observation_space.dtype)
        self._episode_length = episode_length
        self._t = 0

    def reset(self) -> np.ndarray:
        self._t = 0
        return self._obs.copy()

    def step_async(self, actions: np.ndarray) -> None:
        self._t += 1

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        done = self._t % self._episode_length == 0
        dones = np.full(self.num_envs, done)
        infos = [
            {"terminal_observation": self._obs[0], "TimeLimit.truncated": True} if done else {}
            for _ in range(self.num_envs)
        ]
        return self._obs.copy(), np.zeros(self.num_envs, dtype=np.float32), dones, infos

    def close(self) -> None:
        pass

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        return [None for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        pass

    def env_method(
        self, method_name: str, *args: Any, indices: Any = None, **kwargs: Any
    ) -> list[Any]:
        return [None for _ in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class: type, indices: Any = None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]


def warmed_model(cfg: DictConfig, venv: VecEnv, timesteps: int) -> Any:
    """The configured PPO on ``venv``, silent, after one warm-up rollout, its schedules
    (learning rate, clip range, the teacher's weight) running over the warm-up and
    ``timesteps`` more, as one ``learn`` of that budget runs them: each turn's ``learn(...,
    reset_num_timesteps=False)`` would start them afresh and end them at 0 (SB3 measures
    progress to that call's end), training later turns as slowly as a run's last steps."""
    model = make_model(cfg.algo, venv, seed=cfg.seed, device=cfg.device)
    model.set_logger(Logger(folder=None, output_formats=[]))  # no log dir, no output
    warm_up = cfg.algo.model.n_steps * venv.num_envs
    update = model._update_current_progress_remaining
    model._update_current_progress_remaining = lambda num_timesteps, _end: update(
        num_timesteps, warm_up + timesteps
    )
    model.learn(warm_up)
    return model


def train_for(model: Any, timesteps: int) -> tuple[int, float]:
    """Train ``model`` on for ``timesteps``; returns (timesteps done, seconds)."""
    before, started = model.num_timesteps, time.perf_counter()
    model.learn(timesteps, reset_num_timesteps=False)
    return model.num_timesteps - before, time.perf_counter() - started


def run(
    cfg: DictConfig,
    timesteps: int,
    rounds: int,
    on_turn: Callable[[int, dict[str, float]], None] | None = None,
) -> dict[str, Any]:
    """Measure both stacks, taking turns; returns the figures.

    Each stack trains ``timesteps`` in all, in ``rounds`` turns of zero-cost then real:
    a slow spell of the machine (other processes, clock changes) then falls on both
    alike. Each rate is the stack's timesteps over its seconds, summed over its turns.
    ``on_turn(k, rates)`` is called as turn k (from 1) ends.
    """
    torch.set_num_threads(cfg.torch_threads)
    gamma = discount(cfg.algo)
    real = training_env(cfg)  # as racing-rl train builds it: the track mix, opponents
    zero = VecNormalize(
        VecMonitor(ZeroCostVecEnv(real.num_envs, real.observation_space, real.action_space)),
        gamma=gamma,
        **to_container(cfg.wrappers.normalize),
    )
    models = {
        name: warmed_model(cfg, venv, timesteps) for name, venv in (("zero", zero), ("real", real))
    }
    steps = dict.fromkeys(models, 0)
    seconds = dict.fromkeys(models, 0.0)
    turns = []
    for k in range(1, rounds + 1):
        rate = {}
        for name, model in models.items():
            turn_steps, turn_seconds = train_for(model, timesteps // rounds)
            steps[name] += turn_steps
            seconds[name] += turn_seconds
            rate[name] = turn_steps / turn_seconds
        turns.append(
            {"zero_cost": rate["zero"], "real": rate["real"], "ratio": rate["real"] / rate["zero"]}
        )
        if on_turn is not None:
            on_turn(k, turns[-1])
    real_rate, zero_rate = (steps[name] / seconds[name] for name in ("real", "zero"))
    return {
        "bench": "train",
        "algo": cfg.algo.name,
        "cars": real.num_envs,
        "timesteps": steps["real"],
        "rounds": rounds,
        "real_env_steps_per_s": real_rate,
        "zero_cost_env_steps_per_s": zero_rate,
        "ratio": real_rate / zero_rate,
        "turns": turns,
    }


def print_turn(k: int, rates: dict[str, float]) -> None:
    """A turn's rates and ratio, as a line of progress while the turns run."""
    print(
        f"turn {k}: zero-cost {rates['zero_cost']:,.0f}/s, real {rates['real']:,.0f}/s, "
        f"ratio {rates['ratio']:.2f}",
        flush=True,
    )


def turns_table(figures: dict[str, Any]) -> str:
    """A row per turn and one of all turns (``all``): the stacks' rates and their ratio.

    Args:
        figures: what ``run`` returns.
    """
    overall = {
        "zero_cost": figures["zero_cost_env_steps_per_s"],
        "real": figures["real_env_steps_per_s"],
        "ratio": figures["ratio"],
    }
    rows = [
        {
            "turn": k,
            "zero-cost/s": f"{rates['zero_cost']:,.0f}",
            "real/s": f"{rates['real']:,.0f}",
            "ratio": f"{rates['ratio']:.2f}",
        }
        for k, rates in [*enumerate(figures["turns"], start=1), ("all", overall)]
    ]
    return format_table(rows, ["turn", "zero-cost/s", "real/s", "ratio"], left={"turn"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--timesteps",
        type=int,
        default=None,
        help="measured timesteps per stack (default: the config's total_timesteps)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=30,
        help="turns each stack takes (see run()) (default: %(default)s)",
    )
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of conf/train.yaml")
    args = parser.parse_args()
    try:  # as racing-rl train checks them: a misspelt key, a bad value, in one line
        check_arguments("train", args.overrides)
        with initialize():
            cfg = compose("train", overrides=args.overrides)
    except (UsageError, HydraException) as err:
        parser.error(one_line(err))
    timesteps = int(cfg.total_timesteps) if args.timesteps is None else args.timesteps
    if args.rounds < 1 or timesteps < args.rounds:
        parser.error("--rounds must be >= 1 and --timesteps at least --rounds.")
    if cfg.backend.name != "pygame" or "n_steps" not in cfg.algo.model:
        parser.error(
            "it times PPO's rollouts on the built-in simulator: backend=pygame, "
            "algo=ppo or recurrent_ppo"
        )
    cars = cfg.n_races * cfg.cars_per_race
    print(
        f"PPO ({cfg.algo.name}), {cars} cars, {timesteps:,} timesteps each in {args.rounds} "
        "turns (each turn rounded up to whole rollouts: the last line says how many)"
    )
    figures = run(cfg, timesteps, args.rounds, on_turn=print_turn)
    print(turns_table(figures))
    print(f"(target: ratio >= 0.70; {figures['timesteps']:,} timesteps each)")
    print(json.dumps(figures))


if __name__ == "__main__":
    with reported("bench_train.py"):
        main()

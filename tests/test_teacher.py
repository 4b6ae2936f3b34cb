"""TeacherPPO (racing_rl/teacher.py): labels aligned with the observations they label, the
term off is PPO step for step, the term on moves the policy towards the scripted driver,
and the errors."""

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from omegaconf import OmegaConf
from stable_baselines3 import PPO
from stable_baselines3.common.utils import LinearSchedule
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

from racing_rl.algos import constructor_parameters, make_model
from racing_rl.config import default_backend
from racing_rl.drivers.pure_pursuit import RACING, TUNINGS, PurePursuitDriver
from racing_rl.errors import ConfigError
from racing_rl.teacher import TeacherPPO, scripted_actions
from racing_rl.vec import make_env

BACKEND = default_backend("pygame")
# Short episodes: cars crash, are truncated and respawn within one rollout.
EPISODE = {"reset": "car", "max_steps": 25}
PPO_ARGS = {"n_steps": 64, "batch_size": 128, "n_epochs": 2, "seed": 3, "device": "cpu"}
LEARN_FAST = {"learning_rate": 1e-3}


def simulator(n_opponents: int = 0):
    return make_env(BACKEND, 2, 3, [range(100)] * 2, EPISODE, scripted_opponents=n_opponents)


@pytest.mark.parametrize(("n_opponents", "teacher"), [(0, "racing"), (2, "default")])
def test_labels_are_the_scripted_actions_in_the_state_each_observation_shows(n_opponents, teacher):
    model = TeacherPPO(
        "MlpPolicy", simulator(n_opponents), teacher_coef=1.0, teacher=teacher, **PPO_ARGS
    )
    n_envs = model.n_envs
    model.learn(64 * n_envs)  # one rollout
    labels = model.teacher_actions.copy()
    # rollout_buffer.get() flattened the buffer to (n_envs * n_steps, ...); undo it.
    actions = np.clip(model.rollout_buffer.actions.reshape(n_envs, 64, 3).swapaxes(0, 1), -1.0, 1.0)
    starts = model.rollout_buffer.episode_starts.reshape(n_envs, 64).swapaxes(0, 1)
    # The rollout again, in a copy of the env stepped with its actions: every label is the
    # scripted action in the state before that step.
    replica = simulator(n_opponents)
    replica.seed(3)
    replica.reset()
    for step in range(64):
        expected = scripted_actions(replica, PurePursuitDriver(TUNINGS[teacher]))
        np.testing.assert_allclose(labels[step], expected, atol=1e-6)
        replica.step(actions[step])
    assert starts[1:].any(), "no episode ended within the rollout: the test checks too little"


def test_without_the_term_it_is_ppo_step_for_step():
    teacher = TeacherPPO("MlpPolicy", simulator(), teacher_coef=0.0, **PPO_ARGS).learn(64 * 12)
    ppo = PPO("MlpPolicy", simulator(), **PPO_ARGS).learn(64 * 12)
    for ours, theirs in zip(teacher.policy.parameters(), ppo.policy.parameters(), strict=True):
        assert th.equal(ours, theirs)


def test_without_the_term_it_is_ppo_with_gsde_too():
    """teacher_coef=0 is PPO alone, gSDE (use_sde) included: it was refused, as the term
    fits a diagonal Gaussian's mean; with the term on it still is."""
    args = {**PPO_ARGS, "use_sde": True}
    teacher = TeacherPPO("MlpPolicy", simulator(), teacher_coef=0.0, **args).learn(64 * 12)
    ppo = PPO("MlpPolicy", simulator(), **args).learn(64 * 12)
    for ours, theirs in zip(teacher.policy.parameters(), ppo.policy.parameters(), strict=True):
        assert th.equal(ours, theirs)
    with pytest.raises(ConfigError, match=r"NoiseDistribution\. Set algo\.model\.use_sde=false"):
        TeacherPPO("MlpPolicy", simulator(), teacher_coef=1.0, **args).learn(64 * 6)


def test_a_weight_that_rises_from_0_skips_the_rollout_it_did_not_label():
    """The rollout before the weight rose from 0 was not labelled, but its update applied
    the term: to labels left from before (all zeros), pulling the policy to stand still."""
    updates = []

    class Recording(TeacherPPO):
        def train(self):
            unlabelled = not self.teacher_actions.any()
            self.logger.name_to_value.pop("train/teacher_loss", None)
            super().train()
            updates.append((unlabelled, "train/teacher_loss" in self.logger.name_to_value))

    # 0 at the first rollout's progress (1.0), 1 from then on.
    model = Recording(
        "MlpPolicy", simulator(), teacher_coef=lambda progress: float(progress < 1.0), **PPO_ARGS
    )
    model.learn(64 * 6 * 3)
    # The first rollout was collected at weight 0: no labels, and no term, though the
    # weight is 1 by its update; the later ones are labelled and taught.
    assert updates == [(True, False), (False, True), (False, True)]


def test_the_term_moves_the_policy_to_the_scripted_driver():
    def taught(coef: float) -> tuple[float, TeacherPPO]:
        """The policy's squared error to the scripted actions after 8 rollouts, at the
        states of a fresh reset."""
        env = VecNormalize(simulator(), norm_reward=False)
        model = TeacherPPO(
            "MlpPolicy", env, teacher_coef=coef, teacher_epochs=5, **PPO_ARGS | LEARN_FAST
        )
        model.learn(64 * 6 * 8)
        observations, labels = (
            env.reset(),
            scripted_actions(env.unwrapped, PurePursuitDriver(RACING)),
        )
        mean = model.policy.get_distribution(model.policy.obs_to_tensor(observations)[0])
        return float(((mean.distribution.mean.detach().numpy() - labels) ** 2).mean()), model

    with_term, model = taught(1.0)
    without_term, _ = taught(0.0)
    assert with_term < 0.7 * without_term  # measured: 0.33 against 0.59
    assert model.logger.name_to_value["train/teacher_coef"] == 1.0
    assert 0.0 < model.logger.name_to_value["train/teacher_loss"] < 0.5


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"teacher": "fast"}, "teacher must be one of default, racing, got 'fast'"),
        ({"teacher_coef": "abc"}, "teacher_coef must be a finite number >= 0 or a schedule"),
        ({"teacher_coef": -1.0}, "teacher_coef must be a finite number >= 0"),
        # inf was taken (nan refused): its weight made every update's loss inf or NaN.
        ({"teacher_coef": float("inf")}, "teacher_coef must be a finite number >= 0"),
        ({"teacher_coef": float("nan")}, "teacher_coef must be a finite number >= 0"),
        (
            {"teacher_coef": LinearSchedule(float("inf"), 0.0, 0.5)},
            r"with such values \(algo.teacher_coef\), got LinearSchedule\(start=inf",
        ),
        ({"teacher_epochs": 0}, "teacher_epochs must be an integer >= 1, got 0"),
    ],
)
def test_bad_arguments_are_refused(arguments, message):
    with pytest.raises(ConfigError, match=message):
        TeacherPPO("MlpPolicy", simulator(), **arguments)


def test_the_run_names_the_bad_argument_not_hydra():
    """SB3 would fail on ``teacher_coef='abc'`` as 'the learning rate schedule'."""
    algo = OmegaConf.create(
        {
            "name": "ppo",
            "model": {
                "_target_": "racing_rl.teacher.TeacherPPO",
                "policy": "MlpPolicy",
                "teacher_coef": "abc",
            },
        }
    )
    with pytest.raises(ConfigError) as caught:
        make_model(algo, simulator(), seed=0, device="cpu")
    assert str(caught.value) == (
        "Could not create algorithm 'ppo': TeacherPPO's teacher_coef must be a finite number "
        ">= 0 or a schedule of the progress with such values (algo.teacher_coef), got 'abc'."
    )


def test_off_the_simulator_it_says_so_and_is_ppo(caplog):
    """backend=roblox: the scripted teacher cannot read a game's state."""

    def env():
        return DummyVecEnv([lambda: gym.make("MountainCarContinuous-v0")])

    args = {"n_steps": 32, "batch_size": 32, "seed": 0, "device": "cpu"}
    with caplog.at_level("INFO", logger="racing_rl.teacher"):
        teacher = TeacherPPO("MlpPolicy", env(), teacher_coef=1.0, **args).learn(64)
    assert "without the teacher term" in caplog.text and "DummyVecEnv" in caplog.text
    assert teacher.logger.name_to_value["train/teacher_coef"] == 0.0
    ppo = PPO("MlpPolicy", env(), **args).learn(64)
    for ours, theirs in zip(teacher.policy.parameters(), ppo.policy.parameters(), strict=True):
        assert th.equal(ours, theirs)


def test_its_arguments_are_ppos_and_its_own():
    parameters = constructor_parameters(TeacherPPO)
    assert {"teacher_coef", "teacher_epochs", "learning_rate", "n_steps", "policy"} <= set(
        parameters
    )
    assert parameters["n_steps"].default == 2048  # PPO's
    assert "kwargs" not in parameters and "self" not in parameters
    assert set(constructor_parameters(PPO)) < set(parameters)

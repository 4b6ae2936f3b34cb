"""A driver's frame stack is the training VecEnv's, bit for bit."""

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env import DummyVecEnv

from racing_rl.drivers import DriverFrameStack
from racing_rl.vec import FrameStack

SIZE, STACK, CARS = 3, 4, 3


class Frames(gym.Env):
    """Random float32 frames; an episode lasts ``length`` steps."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (SIZE,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def __init__(self, length: int) -> None:
        self.length = length
        self.steps = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.steps = 0
        return self.np_random.normal(size=SIZE).astype(np.float32), {}

    def step(self, action):
        self.steps += 1
        frame = self.np_random.normal(size=SIZE).astype(np.float32)
        return frame, 0.0, self.steps >= self.length, False, {}


def test_a_driver_stacks_frames_as_the_training_frame_stack_does_across_episode_ends():
    venv = DummyVecEnv([lambda n=n: Frames(length=5 + 2 * n) for n in range(CARS)])
    venv.seed(0)
    stacked = FrameStack(venv, STACK)
    driver = DriverFrameStack(STACK)
    observation = stacked.reset()
    raw = observation[:, -SIZE:]
    assert np.array_equal(driver.push(raw), observation)
    restarts = 0
    for _ in range(30):
        observation, _, dones, _ = stacked.step(np.zeros((CARS, 1), np.float32))
        driver.reset(np.flatnonzero(dones))
        restarts += int(dones.sum())
        got = driver.push(observation[:, -SIZE:])
        assert got.dtype == observation.dtype
        assert np.array_equal(got, observation)
    assert restarts >= CARS  # every car started over, at different steps


def test_a_reset_of_every_car_takes_another_number_of_cars():
    driver = DriverFrameStack(2)
    driver.push(np.ones((3, SIZE), np.float32))
    driver.reset()
    got = driver.push(np.full((2, SIZE), 2.0, np.float32))
    assert np.array_equal(got, [[0, 0, 0, 2, 2, 2]] * 2)

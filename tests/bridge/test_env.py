"""RobloxParallelEnv against the emulator over loopback: the API, faults, timeouts."""

import logging

import numpy as np
import pytest
from conftest import game, roblox_backend
from pettingzoo.test import parallel_api_test

from racing_rl.bridge.emulator import Faults
from racing_rl.bridge.env import RobloxParallelEnv
from racing_rl.bridge.training_bridge import TrainingBridge
from racing_rl.errors import BridgeError
from racing_rl.vec import roblox_config


def test_parallel_api_test_passes_against_the_emulator():
    config = roblox_config(roblox_backend())
    bridge = TrainingBridge(config.server, config.observation_size)
    env = RobloxParallelEnv(bridge, config, n_cars=3)
    with game(bridge.server.port):
        parallel_api_test(env, num_cycles=300)
        env.close()


def rollout(venv, steps=60, seed=0):
    """Observations and rewards of ``steps`` steps with seeded random actions."""
    rng = np.random.default_rng(seed)
    venv.seed(seed)
    observations, rewards, infos = [venv.reset()], [], []
    for _ in range(steps):
        actions = rng.uniform(-1, 1, (venv.num_envs, 3)).astype(np.float32)
        actions[:, 0] = np.abs(actions[:, 0])  # forward, so that cars travel
        obs, reward, _, info = venv.step(actions)
        observations.append(obs)
        rewards.append(reward)
        infos.extend(info)
    return np.array(observations), np.array(rewards), infos


BAD_KINDS = ["malformed_json", "wrong_length", "nan", "unknown_agent", "binary"]


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_bad_messages_are_dropped_and_the_episode_goes_on_unchanged(kind, roblox_vec_env, caplog):
    clean = roblox_backend()
    with game(clean.server.port):
        expected = rollout(roblox_vec_env(clean))
    faulty = roblox_backend()
    inject = {5: kind, 17: kind, 40: kind}
    with caplog.at_level(logging.WARNING), game(faulty.server.port, faults=Faults(inject)):
        venv = roblox_vec_env(faulty)
        got = rollout(venv)
        server = venv.envs[0].bridge.server
        assert server.rejected["invalid"] == 3 and server.generation == 1
    np.testing.assert_array_equal(got[0], expected[0])  # every observation
    np.testing.assert_array_equal(got[1], expected[1])  # every reward
    assert "dropped a game message" in caplog.text


def test_a_dropped_connection_truncates_the_episode_and_the_cars_are_respawned(
    roblox_vec_env, caplog
):
    backend = roblox_backend()
    with caplog.at_level(logging.INFO), game(backend.server.port, faults=Faults(drop_after=30)):
        venv = roblox_vec_env(backend)
        _, _, infos = rollout(venv, steps=80)
        bridge = venv.envs[0].bridge
        assert bridge.generation == 2 and bridge.connected
    interrupted = [info for info in infos if info.get("interrupted")]
    assert interrupted and all(info["TimeLimit.truncated"] for info in interrupted)
    assert "game disconnected" in caplog.text and "waiting up to" in caplog.text
    assert "(connection 2)" in caplog.text


def test_an_oversized_message_costs_the_connection_not_the_run(roblox_vec_env, caplog):
    backend = roblox_backend()
    faults = Faults({20: "oversized"})
    with caplog.at_level(logging.WARNING), game(backend.server.port, faults=faults):
        venv = roblox_vec_env(backend)
        _, rewards, infos = rollout(venv, steps=50)
        assert venv.envs[0].bridge.generation == 2
    assert len(rewards) == 50 and any(info.get("interrupted") for info in infos)
    assert "sent close code 1009: frame with" in caplog.text


def test_a_silent_game_is_a_clear_error_not_a_hang(roblox_vec_env):
    backend = roblox_backend(observation_timeout_s=1.0)
    with game(backend.server.port, faults=Faults(silent_after=10)):
        venv = roblox_vec_env(backend)
        with pytest.raises(BridgeError, match=r"No observation .*car_0_env_.*a game is connected"):
            rollout(venv, steps=50)


def test_no_game_at_all_is_a_clear_error(roblox_vec_env):
    venv = roblox_vec_env(roblox_backend(connect_timeout_s=0.5))
    expected = r"No game connected to ws://127.0.0.1:.*within 0.5 s.*racing-rl emulate"
    with pytest.raises(BridgeError, match=expected):
        venv.reset()


def test_the_current_games_twelve_number_observations(roblox_vec_env):
    backend = roblox_backend(observation_size=12)
    with game(backend.server.port, observation_size=12, hello=True):
        venv = roblox_vec_env(backend)
        observations, _, _ = rollout(venv, steps=5)
    assert observations.shape == (6, 4, 12)


def test_a_real_time_game_answers_every_step_with_a_fresh_tick(roblox_vec_env):
    """The game's own clock (here 60 Hz): ticks do not wait for actions; every step still
    gets an observation that arrived after its ACTION, echoing that ACTION's step."""
    backend = roblox_backend()
    with game(backend.server.port, lockstep=False, tick_hz=60.0):
        venv = roblox_vec_env(backend)
        observations, rewards, _ = rollout(venv, steps=40)
    assert observations.shape == (41, 4, 13) and np.isfinite(rewards).all()
    assert not np.array_equal(observations[1], observations[-1])  # the cars moved

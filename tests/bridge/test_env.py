"""RobloxParallelEnv against the emulator over loopback: the API, faults, timeouts."""

import contextlib
import logging
import re
import time

import numpy as np
import pytest
from pettingzoo.test import parallel_api_test
from roblox_game import game, roblox_backend

from racing_rl.bridge.emulator import Emulator
from racing_rl.bridge.env import RobloxParallelEnv
from racing_rl.bridge.faults import Faults
from racing_rl.bridge.training_bridge import TrainingBridge
from racing_rl.config import backend_config
from racing_rl.envs.config import RaceConfig
from racing_rl.errors import BridgeError, ConfigError
from racing_rl.sim.sensors import SensorConfig


def test_parallel_api_test_passes_against_the_emulator():
    config = backend_config(roblox_backend())
    bridge = TrainingBridge(config.server, config.observation_size)
    with game(bridge.server.port):
        env = RobloxParallelEnv(bridge, config, n_cars=3)
        assert env.observation_space(env.possible_agents[0]).shape == (13,)  # from the game
        parallel_api_test(env, num_cycles=300)
        for space in (env.observation_space, env.action_space):  # as the simulator's env
            with pytest.raises(KeyError, match="'car_9' is not a car of this environment"):
                space("car_9")
        # step() answers what send_actions() sent: other actions are refused, not ignored.
        env.reset(seed=0)
        forward = {agent: np.array([1.0, 0.0, 0.0], np.float32) for agent in env.agents}
        env.send_actions(forward)
        with pytest.raises(RuntimeError, match="other actions than send_actions"):
            env.step({agent: -action for agent, action in forward.items()})
        env.send_actions(forward)
        env.step({agent: action.copy() for agent, action in forward.items()})  # equal: taken
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


#: Fault → (the server's counter, its key): a bad frame is rejected whole, a bad entry
#: alone (the frame's other entries are used).
BAD_KINDS = {
    "malformed_json": ("rejected", "invalid"),
    "binary": ("rejected", "invalid"),
    "wrong_length": ("dropped", "wrong_length"),
    "nan": ("dropped", "non_finite"),
    "unknown_agent": ("dropped", "unknown_agent"),
}


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
        counter, key = BAD_KINDS[kind]
        assert getattr(server, counter) == {key: 3} and server.generation == 1
        other = "dropped" if counter == "rejected" else "rejected"
        assert not getattr(server, other)
    np.testing.assert_array_equal(got[0], expected[0])  # every observation
    np.testing.assert_array_equal(got[1], expected[1])  # every reward
    assert "dropped" in caplog.text


def test_a_frame_with_one_nan_entry_keeps_the_others(roblox_vec_env):
    backend = roblox_backend()
    with game(backend.server.port, faults=Faults({5: "nan"})):
        venv = roblox_vec_env(backend)
        venv.reset()
        bridge = venv.envs[0].bridge
        entries = bridge.server.entries
        frame_5 = 5 - bridge.server.frames  # steps until the faulty frame
        for _ in range(frame_5 + 1):
            venv.step(np.zeros((venv.num_envs, 3), np.float32))
        # The faulty frame's 3 good entries were used (a frame dropped whole would leave
        # 4 * frame_5 + 1: the spoilt car's entry alone follows it, as a next tick would).
        assert bridge.server.dropped == {"non_finite": 1} and not bridge.server.rejected
        assert bridge.server.entries - entries == 4 * (frame_5 + 1)


def test_a_car_that_stops_reporting_is_truncated_and_respawned(roblox_vec_env, caplog):
    backend = roblox_backend(observation_timeout=1.0)
    with (
        caplog.at_level(logging.WARNING),
        game(backend.server.port, faults=Faults(lose_car_after=10)) as emulator,
    ):
        venv = roblox_vec_env(backend)
        _, _, infos = rollout(venv, steps=20)
        lost = [k for k, info in enumerate(infos) if info.get("interrupted")]
        commands = list(emulator.commands)
        first_action = next(k for k, c in enumerate(commands) if c["command"] == "ACTION")
        resets = [c for c in commands[first_action:] if c["command"] == "RESET_AGENTS"]
    assert len(lost) == 1 and infos[lost[0]]["TimeLimit.truncated"]
    assert [len(c["data"]["agents"]) for c in resets] == [1]  # that car alone
    assert "sent nothing for 1 s while the game ticked on" in caplog.text


def test_a_game_whose_every_entry_is_dropped_as_bad_stops_training_and_says_so(
    roblox_vec_env, caplog
):
    """A game that ticks on but sends only bad observations (NaN) had every car truncated
    and respawned, one step per observation_timeout, with no end; the warning said the
    cars "sent nothing"."""
    from racing_rl.bridge.env import UNREPORTED_STEPS

    backend = roblox_backend(observation_timeout=0.5)
    with (
        caplog.at_level(logging.WARNING),
        game(backend.server.port, faults=Faults(spoil_after=5)),
        pytest.raises(BridgeError, match=r"reported no usable entry .* entries were dropped"),
    ):
        venv = roblox_vec_env(backend)
        rollout(venv, steps=5 + 2 * UNREPORTED_STEPS)
    assert "sent only entries dropped as bad" in caplog.text


def test_a_lost_car_whose_frame_came_before_the_wait_is_truncated_not_a_silent_game(caplog):
    # A lock-step game can answer an ACTION before ``step`` starts waiting (CI saw it
    # under load): the frame without the lost car still shows that the game ticks.
    config = backend_config(roblox_backend(observation_timeout=1.0))
    bridge = TrainingBridge(config.server, config.observation_size)
    with (
        caplog.at_level(logging.WARNING),
        game(bridge.server.port, faults=Faults(lose_car_after=3)),
    ):
        env = RobloxParallelEnv(bridge, config, n_cars=2)
        env.reset(seed=0)
        while env.bridge.server.frames < 3:
            env.step({agent: np.array([1.0, 0.0, 0.0], np.float32) for agent in env.agents})
        frames = env.bridge.server.frames
        env.send_actions({agent: np.array([1.0, 0.0, 0.0], np.float32) for agent in env.agents})
        deadline = time.monotonic() + 5.0
        while env.bridge.server.frames == frames and time.monotonic() < deadline:
            time.sleep(0.01)  # the answer, without the lost car, has arrived
        assert env.bridge.server.frames == frames + 1
        *_, truncations, infos = env.step(
            {agent: np.array([1.0, 0.0, 0.0], np.float32) for agent in env.agents}
        )
        env.close()
    lost = [agent for agent, info in infos.items() if info["interrupted"]]
    assert len(lost) == 1 and truncations[lost[0]]
    # The keys every car's info has (an interrupted car's lacked crashed and stuck).
    assert {"crashed", "stuck", "finished", "interrupted"} <= infos[lost[0]].keys()
    assert not infos[lost[0]]["crashed"] and not infos[lost[0]]["stuck"]
    assert "sent nothing for 1 s while the game ticked on" in caplog.text


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
    assert "game disconnected" in caplog.text
    # The emulator is back 0.05 s after it left: the step may find it gone or back again.
    assert "waiting up to" in caplog.text or "the game reconnected" in caplog.text
    # How long the game was away, and that the episodes in flight were cut: no line said.
    assert re.search(r"\(connection 2\): back \d+\.\d s after it left", caplog.text)
    cut = re.findall(r"the episodes in flight of (\d) car\(s\) .* truncated as", caplog.text)
    assert sum(map(int, cut)) == len(interrupted)


def test_an_oversized_message_costs_the_connection_not_the_run(roblox_vec_env, caplog):
    backend = roblox_backend()
    faults = Faults({20: "oversized"})
    with caplog.at_level(logging.WARNING), game(backend.server.port, faults=faults):
        venv = roblox_vec_env(backend)
        _, rewards, infos = rollout(venv, steps=50)
        assert venv.envs[0].bridge.generation == 2
    assert len(rewards) == 50 and any(info.get("interrupted") for info in infos)
    assert "sent close code 1009: frame with" in caplog.text


def test_a_silent_game_is_a_clear_error_within_the_observation_timeout(roblox_vec_env):
    backend = roblox_backend(observation_timeout=1.0)
    with game(backend.server.port, faults=Faults(silent_after=10)):
        venv = roblox_vec_env(backend)
        started = time.monotonic()
        expected = r"No observation .*a game is connected.*watchdog.*press Play again.*resume="
        with pytest.raises(BridgeError, match=expected):
            rollout(venv, steps=50)
        assert time.monotonic() - started < 30  # a wait of 1 s, not a hang


class GameWithoutItsCarModel(Emulator):
    """The game whose main.server names a car model it does not have: SPAWN_AGENTS
    spawns nothing (``CmdHandler`` skips the car, silently), and every tick sends ``[]``."""

    def _spawn(self, command, envid, data):
        return None


@pytest.mark.parametrize(
    ("make", "unreported"),
    [
        # No car at all: the game ticks [] on.
        (lambda url: GameWithoutItsCarModel(url, tick_hz=30.0), "car_0_env_.*, car_1_env_"),
        # Fewer SPAWN parts than cars: the car without one is never reported.
        (lambda url: Emulator(url, lockstep=True, faults=Faults(lose_car_after=0)), "car_0_env_"),
    ],
)
def test_cars_a_ticking_game_never_spawned_are_named_with_the_likely_cause(make, unreported):
    """A game that ticks on without the cars it was told to spawn is not "silent": the
    error says which cars it did not spawn and what in the place to check."""
    config = backend_config(roblox_backend(observation_timeout=1.0))
    bridge = TrainingBridge(config.server, config.observation_size)
    emulator = make(f"ws://127.0.0.1:{bridge.server.port}/ws/test").start()
    expected = (
        rf"The game ticks \(\d+ frame\(s\) since SPAWN_AGENTS\) but reported no usable entry "
        rf"of car\(s\) {unreported}[^ ]* of env .*It did not spawn them.*carModel.*SPAWN"
    )
    try:
        with pytest.raises(BridgeError, match=expected) as raised:
            RobloxParallelEnv(bridge, config, n_cars=2)
        assert "silent" not in str(raised.value)
    finally:
        emulator.stop()
        bridge.close()


def test_cars_a_game_loses_after_a_reset_are_not_blamed_on_its_car_model():
    # After RESET_AGENTS of cars the game spawned before, the carModel and SPAWN parts
    # exist: the advice to check them was wrong there.
    from types import SimpleNamespace

    from racing_rl.bridge.protocol import RESET_AGENTS, SPAWN_AGENTS

    env = RobloxParallelEnv.__new__(RobloxParallelEnv)
    server = SimpleNamespace(frames=40, dropped={})
    env.bridge = SimpleNamespace(server=server, describe=lambda: "connected")
    env.env_id, env.config = 0, SimpleNamespace(observation_timeout=10.0)
    spawned = str(env._unreported(["car_0"], SPAWN_AGENTS, 10, 0))
    assert "It did not spawn them" in spawned and "carModel" in spawned
    reset = str(env._unreported(["car_0"], RESET_AGENTS, 10, 0))
    assert "has lost them since" in reset and "carModel" not in reset
    server.dropped = {"non_finite": 3}
    assert "3 entries were dropped meanwhile" in str(
        env._unreported(["car_0"], RESET_AGENTS, 10, 0)
    )


def test_the_watchdog_of_a_real_time_game_is_a_clear_error(roblox_vec_env):
    """The game's clock, its watchdog at 5 ticks: a pause of training longer than that
    (here a sleep) stops the game; the next step says what happened."""
    backend = roblox_backend(observation_timeout=1.0)
    with game(backend.server.port, lockstep=False, tick_hz=60.0, watchdog_ticks=5) as emulator:
        venv = roblox_vec_env(backend)
        venv.reset()
        time.sleep(0.5)
        with pytest.raises(BridgeError, match="watchdog"):
            venv.step(np.zeros((venv.num_envs, 3), np.float32))
        assert emulator.watchdog_shutdowns == 1


def test_one_step_waits_for_missing_cars_no_longer_than_the_observation_timeout(
    roblox_vec_env,
):
    """A step waits for its environments one after another, and no ACTION reaches the game
    meanwhile. Each waited observation_timeout for its own missing cars (10 s, under the
    game's 250-tick watchdog: 17-20 s), so two environments with cars the game no longer
    reports (destroyed models, bad values) outlasted the watchdog: the game closed every
    environment, and training stopped saying the game had gone silent. The timeout bounds
    the step: here the respawn's wait follows it, within the watchdog's 2.5 s."""
    backend = roblox_backend(observation_timeout=1.0)
    game_clock = {"lockstep": False, "tick_hz": 60.0, "watchdog_ticks": 150}
    with (
        game(backend.server.port, faults=Faults(spoil_after=5), **game_clock) as emulator,
        pytest.raises(BridgeError, match=r"reported no usable entry .* entries were dropped"),
    ):
        venv = roblox_vec_env(backend, n_races=4)
        venv.reset()
        while True:  # every car of the 4 environments is missing from frame 6 on
            venv.step(np.zeros((venv.num_envs, 3), np.float32))
    assert emulator.watchdog_shutdowns == 0


def test_the_game_stays_frozen_from_the_size_probe_to_the_first_reset(roblox_vec_env):
    """With observation_size null, the first environment spawns its cars to learn the
    size. What follows before training's first reset (building the model, loading a
    resume's replay buffer) can outlast the game's watchdog: the game is frozen meanwhile,
    and a frozen car is not counted."""
    backend = roblox_backend(observation_timeout=2.0)
    with game(backend.server.port, lockstep=False, tick_hz=30.0, watchdog_ticks=10) as emulator:
        venv = roblox_vec_env(backend)
        time.sleep(1.5)  # 45 ticks: over four times the watchdog's
        venv.reset()
        venv.step(np.zeros((venv.num_envs, 3), np.float32))
        assert emulator.watchdog_shutdowns == 0 and emulator.frozen is False


def test_no_game_at_all_is_a_clear_error(roblox_vec_env):
    expected = r"No game connected to ws://127.0.0.1:.*within 0.5 s.*Play.*racing-rl emulate"
    with pytest.raises(BridgeError, match=expected) as raised:
        roblox_vec_env(roblox_backend(connect_timeout=0.5))
    # Another port than emulate's default 8000: the url that reaches this bridge.
    port = int(str(raised.value).split("ws://127.0.0.1:")[1].split("/")[0])
    assert f"racing-rl emulate url=ws://127.0.0.1:{port}/ws/emulator`" in str(raised.value)


def test_a_game_refused_for_its_token_is_named_when_the_wait_ends(roblox_vec_env):
    """With backend.server.token set (RACING_RL_BRIDGE_TOKEN), the unmodified game, which
    sends no token, is refused on every try: the error says so, not "press Play"."""
    backend = roblox_backend(connect_timeout=1.0, server={"token": "secret"})
    expected = r"within 1 s: \d+ connection\(s\) were refused, .*missing or wrong token.*unset"
    with game(backend.server.port), pytest.raises(BridgeError, match=expected):
        roblox_vec_env(backend)


def test_the_game_cars_nineteen_numbers_are_taken_from_its_first_frame(roblox_vec_env, caplog):
    backend = roblox_backend()
    game_car = RaceConfig(sensors=SensorConfig(n_rays=16, layout="roblox_car"))
    with caplog.at_level(logging.INFO), game(backend.server.port, sim=game_car):
        venv = roblox_vec_env(backend)
        observations, _, _ = rollout(venv, steps=5)
    assert observations.shape == (6, 4, 19)
    assert "game sends 19 numbers per car: 16 rays + nitro, speed, is_reverse" in caplog.text


@pytest.mark.parametrize("hello", [False, True], ids=["frames", "hello"])
def test_a_pinned_size_the_game_does_not_send_is_a_clear_error_at_once(roblox_vec_env, hello):
    # The game sends 13 numbers per car. Long timeouts (the observations' as long as the
    # game's watchdog allows): the error must end the wait, as no wait can fix it (a size
    # is known wrong after SIZE_ERROR_AFTER, or from a hello).
    backend = roblox_backend(observation_size=19, observation_timeout=14, connect_timeout=300)
    started = time.monotonic()
    with game(backend.server.port, hello=hello), pytest.raises(BridgeError) as error:
        roblox_vec_env(backend).reset()
    assert time.monotonic() - started < 13  # neither timeout ran out
    message = str(error.value)
    if hello:
        assert message.startswith("The game's hello was refused: the game sends 13 numbers")
    assert "Give the game's cars 16 rays (19 numbers per car: main.server's carModel" in message
    assert "backend.sensors.n_rays=16 backend.sensors.layout=roblox_car" in message


def test_one_cars_end_leaves_the_other_cars_episodes_running(roblox_vec_env):
    """Per-car episodes (episode.reset=car, the game's rule): the game respawns a crashed
    car itself (-20, its fresh observation in the same frame); no RESET_AGENTS follows
    and the other cars race on."""
    backend = roblox_backend()
    with game(backend.server.port) as emulator:
        venv = roblox_vec_env(backend)
        rng = np.random.default_rng(0)
        venv.reset()
        for _ in range(200):
            actions = np.tile([1.0, 0.0, 1.0], (venv.num_envs, 1)).astype(np.float32)
            actions[:, 1] = rng.uniform(-1, 1, venv.num_envs)  # crash soon
            _, rewards, dones, infos = venv.step(actions)
            if dones.any():
                break
        assert dones.any() and not dones.all()
        ended = int(np.flatnonzero(dones)[0])
        assert rewards[ended] == -20.0 and "terminal_observation" in infos[ended]
        commands = list(emulator.commands)
        first_action = next(k for k, c in enumerate(commands) if c["command"] == "ACTION")
        assert not any(c["command"] == "RESET_AGENTS" for c in commands[first_action:])


def one_car_rollout(roblox_vec_env, backend, action, steps):
    """Step 2 environments of one car; returns (step, truncated) of each episode end and
    the RESET_AGENTS sent after the first ACTION."""
    with game(backend.server.port) as emulator:
        venv = roblox_vec_env(backend, n_races=2, agents=1)
        venv.seed(0)  # the tracks and spawns asked of the game: the same every run
        venv.reset()
        ends = []
        for step in range(1, steps + 1):
            _, _, _, infos = venv.step(np.tile(action, (2, 1)).astype(np.float32))
            ends += [(step, i["TimeLimit.truncated"]) for i in infos if "terminal_observation" in i]
        commands = list(emulator.commands)
    first_action = next(k for k, c in enumerate(commands) if c["command"] == "ACTION")
    return ends, [c for c in commands[first_action:] if c["command"] == "RESET_AGENTS"]


def test_an_environment_of_one_car_is_not_reset_after_the_game_respawned_it(roblox_vec_env):
    """Per-car episodes, one car per environment: a car the game ended (a crash) is taken
    as respawned, as in a bigger environment: no RESET_AGENTS, no wait for a tick."""
    ends, resets = one_car_rollout(roblox_vec_env, roblox_backend(), [1.0, 1.0, 1.0], 80)
    assert ends and not any(truncated for _, truncated in ends)  # crashes
    assert not resets


def test_an_environment_of_one_car_restarts_its_step_count(roblox_vec_env):
    """A car truncated at ``max_steps`` on this side is respawned alone (RESET_AGENTS) and
    its next episode is counted from zero."""
    backend = roblox_backend(episode={"max_steps": 6})
    ends, resets = one_car_rollout(roblox_vec_env, backend, [0.5, 0.0, 0.0], 24)
    assert ends == [(step, True) for step in (6, 6, 12, 12, 18, 18, 24, 24)]
    assert len(resets) == len(ends)


def test_a_real_time_game_answers_every_step_with_a_fresh_tick(roblox_vec_env):
    """The game's own clock (here 60 Hz): ticks do not wait for actions; every step still
    gets an observation that arrived after its ACTION; frozen ticks send ``[]``."""
    backend = roblox_backend()
    with game(backend.server.port, lockstep=False, tick_hz=60.0, heartbeat_hz=240.0) as emulator:
        venv = roblox_vec_env(backend)
        observations, rewards, _ = rollout(venv, steps=40)
        bridge = venv.envs[0].bridge
        bridge.freeze(True)
        time.sleep(0.3)
        assert emulator.empty_frames > 0 and bridge.server.empty_ticks > 0
        assert bridge.server.tick_hz < 70  # accumulator-reset ticks: below 60 Hz
        # What the bridge takes as one tick is the measured period, not the nominal 1/15 s.
        assert bridge.tick_period(1 / 15) == pytest.approx(1 / bridge.server.tick_hz)
        assert bridge.tick_period(1 / 15) != 1 / 15  # measured, not the nominal period
        assert not bridge.server.rejected and not bridge.server.dropped
    assert observations.shape == (41, 4, 13) and np.isfinite(rewards).all()
    assert not np.array_equal(observations[1], observations[-1])  # the cars moved


def test_more_environments_than_the_game_keeps_apart_are_refused(roblox_vec_env):
    with pytest.raises(
        ConfigError, match=r"3 environments .* keeps at most 2 apart.*Lower n_races"
    ):
        roblox_vec_env(roblox_backend(max_environments=2), n_races=3)


class HandMadeGame:
    """A fake game on a websocket client that acts as the real one: ``SPAWN_AGENTS`` and
    each ``ACTION`` answered on its next tick (a frame of ``value`` for ``agent``); the
    test sends any other tick itself (``send``), in the order it chooses."""

    def __init__(self, port: int) -> None:
        import threading

        self.value, self.agent = 0.1, ""
        self._connected = threading.Event()
        threading.Thread(target=self._play, args=(port,), daemon=True).start()
        assert self._connected.wait(10), "the fake game did not connect"

    def _play(self, port: int) -> None:
        import json

        from websockets.exceptions import ConnectionClosed
        from websockets.sync.client import connect

        # Closed by the bridge at the test's end, maybe before the last answer is sent.
        with (
            contextlib.suppress(ConnectionClosed),
            connect(f"ws://127.0.0.1:{port}/ws/test") as self.ws,
        ):
            self._connected.set()
            for message in self.ws:
                if json.loads(message)["command"] in ("SPAWN_AGENTS", "ACTION"):
                    time.sleep(0.03)  # the next tick
                    self.send(self.value)

    def send(self, value: float, reward: float | None = None, terminated: bool = False) -> None:
        import json

        entry = {"obs": [value] * 16 + [0, 0, 0], "reward": value if reward is None else reward}
        entry |= {"terminated": terminated, "truncated": False}
        self.ws.send(json.dumps({self.agent: entry}))


@contextlib.contextmanager
def one_car_in_a_hand_made_game():
    """(bridge, fake game, env, its car) with the car spawned on an observation of 0.1."""
    config = backend_config(roblox_backend(observation_size=19))
    bridge = TrainingBridge(config.server, config.observation_size)
    fake = HandMadeGame(bridge.server.port)
    env = RobloxParallelEnv(bridge, config, n_cars=1)
    try:
        agent = fake.agent = env.possible_agents[0]
        assert env.reset()[0][agent][0] == pytest.approx(0.1)
        yield bridge, fake, env, agent
    finally:
        env.close()


def test_a_tick_from_before_a_freeze_does_not_answer_the_first_step_after_it():
    """The game's `[]` while frozen made the bridge take the newest observations as
    fresh: a tick sent 2 s before the pause's end answered the next ACTION (obs 0.3 for
    the ACTION that 0.4 answers). A fake game that acts as the real one: each ACTION
    answered on its next tick, one more tick before the FREEZE arrives, `[]` while frozen.
    """
    with one_car_in_a_hand_made_game() as (bridge, fake, env, agent):
        fake.value = 0.2
        assert env.step({agent: np.zeros(3)})[0][agent][0] == pytest.approx(0.2)
        time.sleep(0.04)
        fake.send(0.3)  # the tick that left before the FREEZE came
        time.sleep(0.03)
        bridge.freeze(True)
        for _ in range(30):  # a 2 s update; the frozen game sends [] every tick
            time.sleep(1 / 15)
            fake.ws.send("[]")
        time.sleep(0.01)  # the update ends just after a tick
        fake.value = 0.4
        observations, rewards, *_ = env.step({agent: np.zeros(3)})
        # The answer's observation; the tick the car drove before the FREEZE is its too.
        assert observations[agent][0] == pytest.approx(0.4)
        assert rewards[agent] == pytest.approx(0.3 + 0.4)


def test_a_crash_in_a_tick_training_did_not_read_is_a_crash():
    """Training slower than the game's tick: after a step's answer the game ticked on,
    the car crashed on its last action (-20, respawned) and ticked again, all before the
    next ACTION. The crash was skipped as stale: the step said interrupted, reward 0,
    and steps_per_tick stayed 1.0."""
    with one_car_in_a_hand_made_game() as (bridge, fake, env, agent):
        fake.value = 0.2
        env.step({agent: np.zeros(3)})
        read = bridge.inbox.mark()
        fake.send(0.25)  # ticks training did not read: the car drove on
        fake.send(0.9, reward=-20.0, terminated=True)  # crashed; respawned by the game
        fake.send(0.3)
        deadline = time.monotonic() + 10
        while bridge.inbox.mark() < read + 3:
            assert time.monotonic() < deadline, "the game's ticks did not arrive"
            time.sleep(0.01)
        fake.value = 0.4
        _, rewards, terminations, truncations, infos = env.step({agent: np.zeros(3)})
        assert terminations[agent] and not truncations[agent]
        assert infos[agent]["crashed"] and not infos[agent]["interrupted"]
        assert rewards[agent] == pytest.approx(0.25 - 20.0)
        assert bridge.counters()["steps_per_tick"] == pytest.approx(2 / 3)  # 3 ticks read
        assert env.respawned_by_game([agent]) and env.respawn([agent])[agent][0] == 0.9
        # The new episode's tick is the next step's: answered by it or folded with the
        # answer (whether it counts as the answer depends on its age).
        while bridge.inbox.mark() < read + 4:  # the answer to the ACTION that missed it
            assert time.monotonic() < deadline, "the game did not answer the ACTION"
            time.sleep(0.01)
        fake.value = 0.5
        _, rewards, terminations, truncations, infos = env.step({agent: np.zeros(3)})
        assert not (terminations[agent] or truncations[agent] or infos[agent]["interrupted"])
        assert rewards[agent] in (pytest.approx(0.3), pytest.approx(0.7), pytest.approx(1.2))


def wait_for_ticks(bridge, mark: int, aged: bool = False) -> None:
    """Wait until the inbox has ``mark`` messages (the fake game's ticks have arrived),
    and with ``aged`` until the newest is older than the game's tick period as measured:
    ticks of an update's time, none of which answers the next ACTION (a younger one came
    while the action was chosen, and does: ``RobloxParallelEnv._send``)."""
    deadline = time.monotonic() + 10
    while bridge.inbox.mark() < mark or (
        aged and bridge.inbox.newest()[1] < bridge.tick_period(1 / 15)
    ):
        assert time.monotonic() < deadline, "the game's ticks did not arrive"
        time.sleep(0.01)


def test_the_ticks_a_car_drove_blind_in_a_validation_are_not_its_next_step():
    """A validation in the game cannot freeze the training cars alone: they drive on
    blind, and their ticks meanwhile were folded into their next step (up to 64 ticks'
    rewards on one transition, a crash charged to the action before the validation).
    ``drop_unread`` (after a validation) leaves them out, as after a pause."""
    with one_car_in_a_hand_made_game() as (bridge, fake, env, agent):
        fake.value = 0.2
        env.step({agent: np.zeros(3)})
        read = bridge.inbox.mark()
        fake.send(0.25)  # driven blind
        fake.send(0.3)
        wait_for_ticks(bridge, read + 2)
        env.drop_unread()
        fake.value = 0.4
        observations, rewards, *_ = env.step({agent: np.zeros(3)})
        assert observations[agent][0] == pytest.approx(0.4)
        assert rewards[agent] == pytest.approx(0.4)  # the answer's alone
        read = bridge.inbox.mark()
        fake.send(0.9, reward=-20.0, terminated=True)  # crashed blind; respawned by the game
        fake.send(0.3)
        wait_for_ticks(bridge, read + 2)
        env.drop_unread()
        fake.value = 0.5
        _, rewards, terminations, truncations, infos = env.step({agent: np.zeros(3)})
        assert truncations[agent] and not terminations[agent] and rewards[agent] == 0.0
        assert infos[agent]["interrupted"] and not infos[agent]["crashed"]


def test_a_car_the_game_truncates_is_stuck_in_its_info():
    # The game truncates a car only when it is stuck (ROBLOX_GAME.md); the info said
    # stuck false, so race/stuck_rate read 0 however many cars stood still.
    config = backend_config(roblox_backend())
    bridge = TrainingBridge(config.server, config.observation_size)
    still = np.zeros(3, np.float32)
    with game(bridge.server.port):
        env = RobloxParallelEnv(bridge, config, n_cars=1)
        env.reset(seed=0)
        for _ in range(300):  # the game's 4 s of standing still are 60 ticks
            _, _, terminations, truncations, infos = env.step({a: still for a in env.agents})
            if not env.agents:
                break
        env.close()
    (agent,) = infos
    assert truncations[agent] and not terminations[agent]
    assert infos[agent]["stuck"] and not infos[agent]["crashed"]


def test_a_game_that_reconnected_between_two_steps_is_not_said_to_be_awaited(caplog):
    """The step after a reconnection that came between two steps (during an update, or a
    validation) warned "the game disconnected while env 0 was stepping; waiting up to 20
    s for it to reconnect", and went on at once: the game was back."""
    backend = backend_config(roblox_backend())
    bridge = TrainingBridge.from_config(backend)
    with game(backend.server.port):
        env = RobloxParallelEnv(bridge, backend, n_cars=1)  # its size from the game
        car = env.possible_agents[0]
        env.reset(seed=0)
        env.step({car: np.array([1.0, 0.0, 0.0])})
    try:
        with game(backend.server.port):
            deadline = time.monotonic() + 10
            while not (bridge.generation == 2 and bridge.connected):
                assert time.monotonic() < deadline, "the second game did not connect"
                time.sleep(0.01)
            caplog.clear()
            with caplog.at_level(logging.INFO):
                _, _, _, truncations, infos = env.step({car: np.array([1.0, 0.0, 0.0])})
            assert truncations[car] and infos[car]["interrupted"]
            assert "the game reconnected (connection 2) since the cars of env 0 were" in (
                caplog.text
            )
            assert "waiting up to" not in caplog.text
            env.reset()  # its cars are spawned in the new game
    finally:
        env.close()


def test_ticks_beyond_what_the_inbox_keeps_count_in_the_step_and_are_said_once(caplog):
    """Training slower than the game (an update with the game not frozen): the ticks
    beyond the inbox's capacity were dropped with their rewards, silently. Now their
    rewards are in the next step, and a warning says so once per car and episode."""
    with one_car_in_a_hand_made_game() as (bridge, fake, env, agent):
        bridge.inbox.capacity = 3
        for _ in range(2):
            fake.value = 0.2
            env.step({agent: np.zeros(3)})
            read = bridge.inbox.mark()
            for value in (0.21, 0.22, 0.23, 0.24):  # ticks training did not read
                fake.send(value)
            wait_for_ticks(bridge, read + 4, aged=True)
            fake.value = 0.5
            with caplog.at_level(logging.WARNING):
                observations, rewards, *_ = env.step({agent: np.zeros(3)})
            assert observations[agent][0] == pytest.approx(0.5)
            assert rewards[agent] == pytest.approx(0.21 + 0.22 + 0.23 + 0.24 + 0.5)
        assert caplog.text.count("the game ticked more than the 3 times") == 1

"""The emulator's lock-step (ACTIONs that arrived together share one pass and one
answer), and what it says while it cannot connect."""

import asyncio
import json
import logging
import re
import signal
import time
from pathlib import Path

import pytest
from roblox_game import free_port
from runs import racing_rl

from racing_rl.bridge import emulator as emu
from racing_rl.bridge import protocol as p
from racing_rl.bridge.config import ServerConfig
from racing_rl.bridge.training_bridge import TrainingBridge
from racing_rl.errors import ConfigError


class Recorder:
    """Stands in for the WebSocket connection: keeps what the emulator sends."""

    def __init__(self) -> None:
        self.sent: list[dict] = []

    async def send(self, frame: str) -> None:
        self.sent.append(json.loads(frame))


def emulator_said(caplog, at_least: int = 1, timeout: float = 10.0) -> list[str]:
    """The emulator's log messages, once there are ``at_least`` of them (or after
    ``timeout`` s): a loaded machine may take longer than any fixed sleep."""
    deadline = time.monotonic() + timeout
    while True:
        said = [r.getMessage() for r in caplog.records if r.name == "racing_rl.bridge.emulator"]
        if len(said) >= at_least or time.monotonic() > deadline:
            return said
        time.sleep(0.02)


def frame(command: str, envid: str, data: dict) -> str:
    return p.encode_command(command, envid, data)


def test_actions_that_arrive_together_are_stepped_in_one_pass_and_one_answer(monkeypatch):
    passes: list[list[str]] = []
    advance_many = emu._GameEnv.advance_many

    def recorded(envs, done_reward):
        passes.append([env.agents[0][:2] for env in envs])
        return advance_many(envs, done_reward)

    monkeypatch.setattr(emu._GameEnv, "advance_many", staticmethod(recorded))
    game = emu.Emulator("ws://unused", lockstep=True)
    connection = Recorder()
    agents = {envid: [f"{envid}_car{i}" for i in range(2)] for envid in ("e0", "e1")}
    spawns = [frame(p.SPAWN_AGENTS, e, {"agents": a}) for e, a in agents.items()]

    def action(envid: str) -> str:
        return frame(p.ACTION, envid, {agent: [1.0, 0.0, 0.0] for agent in agents[envid]})

    arrived = [
        action("e0"),
        action("e1"),  # joins e0's pass
        action("e0"),  # e0 again: a new pass
        frame(p.RESET_AGENTS, "e1", {"agents": agents["e1"]}),  # answered after that pass
        action("e1"),
    ]

    async def play() -> None:
        await game._play(connection, spawns)
        connection.sent.clear()
        await game._play(connection, arrived)

    asyncio.run(play())
    assert passes == [["e0", "e1"], ["e0"], ["e1"]]
    answered = [sorted({agent[:2] for agent in message}) for message in connection.sent]
    assert answered == [["e0", "e1"], ["e0"], ["e1"], ["e1"]]  # in order; the 3rd: the reset
    assert [len(message) for message in connection.sent] == [4, 2, 2, 2]  # every car answers


def test_spawning_some_cars_of_an_environment_leaves_the_others_racing():
    """The game handles ``SPAWN_AGENTS`` as ``RESET_AGENTS`` (its ``CmdHandler``): the
    listed cars are spawned anew, the environment's other cars race on where they are."""
    game = emu.Emulator("ws://unused", lockstep=True)
    connection = Recorder()
    agents = [f"car{i}" for i in range(3)]
    drive = frame(p.ACTION, "e0", {agent: [1.0, 0.0, 0.0] for agent in agents})

    async def play(frames: list[str]) -> None:
        await game._play(connection, frames)

    asyncio.run(play([frame(p.SPAWN_AGENTS, "e0", {"agents": agents}), *[drive] * 30]))
    env = game.envs["e0"]
    before = env.env.world.cars.position.copy()
    asyncio.run(play([frame(p.SPAWN_AGENTS, "e0", {"agents": ["car1"]})]))
    assert game.envs["e0"] is env and env.agents == agents  # the same race, every car in it
    after = env.env.world.cars.position
    assert (after[[0, 2]] == before[[0, 2]]).all()  # the others did not move
    assert (after[1] != before[1]).any()  # car1 was spawned anew


def test_the_watchdog_counts_ticks_without_an_action_and_a_freeze_only_pauses_it():
    """As the game's tick handler: a tick with an unfrozen car and no ACTION counts, one
    without an unfrozen car leaves the count as it is, an ACTION resets it; past
    ``watchdog_ticks`` every environment is closed and the clock stops."""
    game = emu.Emulator("ws://unused", lockstep=False, watchdog_ticks=5)
    connection = Recorder()

    async def play(frames: list[str], ticks: int) -> None:
        await game._play(connection, frames)
        for _ in range(ticks):
            await game._game_tick(connection)

    asyncio.run(play([frame(p.SPAWN_AGENTS, "e0", {"agents": ["car0"]})], 3))
    assert game.unresponsive_ticks == 3
    asyncio.run(play([frame(p.FREEZE, "", {"status": True})], 10))
    assert game.unresponsive_ticks == 3  # paused, not reset
    asyncio.run(play([frame(p.FREEZE, "", {"status": False})], 2))
    assert game.unresponsive_ticks == 5 and not game.stopped
    asyncio.run(play([frame(p.ACTION, "e0", {"car0": [1.0, 0.0, 0.0]})], 1))
    assert game.unresponsive_ticks == 0
    asyncio.run(play([], 6))
    assert game.stopped and game.watchdog_shutdowns == 1 and not game.envs


@pytest.mark.parametrize("lockstep", [False, True], ids=["game clock", "lock-step"])
def test_a_new_cars_first_action_moves_it_only_in_lockstep(lockstep):
    """The game's ACTION sets a car's inputs and updates it from the car's previous
    ACTION on: a new car's first moves nothing. Lock-step applies it (the simulator's
    race, step for step)."""
    game = emu.Emulator("ws://unused", lockstep=lockstep, watchdog_ticks=0)
    connection = Recorder()
    drive = frame(p.ACTION, "e0", {"car0": [1.0, 0.0, 0.0]})

    async def play(frames: list[str]) -> None:
        await game._play(connection, frames)
        if not lockstep:
            await game._game_tick(connection)

    def moved_after(frames: list[str]) -> bool:
        cars = game.envs["e0"].env.world.cars
        before = cars.position.copy()
        asyncio.run(play(frames))
        return bool((cars.position != before).any())

    standing = {"agents": ["car0"], "options": {"spawn": "grid"}}  # a grid start: at rest
    asyncio.run(play([frame(p.SPAWN_AGENTS, "e0", standing)]))
    assert moved_after([drive]) is lockstep
    assert moved_after([drive])


def test_a_freeze_holds_the_cars_that_exist_and_new_cars_run():
    """The game's FREEZE anchors the cars it has; SetupCar makes a new car unfrozen."""
    game = emu.Emulator("ws://unused", lockstep=False, watchdog_ticks=0)
    connection = Recorder()

    async def play(frames: list[str]) -> None:
        await game._play(connection, frames)
        await game._game_tick(connection)

    asyncio.run(play([frame(p.SPAWN_AGENTS, "e0", {"agents": ["a0"]})]))
    freeze = frame(p.FREEZE, "", {"status": True})
    asyncio.run(play([freeze, frame(p.SPAWN_AGENTS, "e1", {"agents": ["b0"]})]))
    assert list(connection.sent[-1]) == ["b0"]  # a0 frozen, b0 spawned after: running
    asyncio.run(play([frame(p.FREEZE, "", {"status": False})]))
    assert sorted(connection.sent[-1]) == ["a0", "b0"]


def test_a_command_the_game_cannot_use_is_ignored_and_the_game_plays_on(caplog):
    """The game's JSONDecode and each command handler run under pcall: a frame it cannot
    decode or use, or an action that is no [throttle, steering, nitro], is warned about
    and ignored. The emulator on the game's clock keeps its connection and its ticks."""
    bridge = TrainingBridge(ServerConfig(port=0), observation_size=None)
    game = emu.Emulator(f"ws://127.0.0.1:{bridge.server.port}/ws/test", tick_hz=30.0).start()
    try:
        bridge.wait_for_game(10.0)
        envid, car = "e0", "car_0_env_e0"
        bridge.spawn_agents(envid, [car])
        _, missing = bridge.get_observation([car], bridge.inbox.mark(), 5.0)
        assert not missing
        for bad in (
            frame(p.ACTION, envid, {car: [1.0, 0.0, 0.0]}),  # fine (a new car's first)
            frame(p.ACTION, envid, {car: [1.0, 0.0]}),  # no nitro: the handler fails
            frame(p.ACTION, envid, {car: [1.0, "left", 0.0]}),
            "not json",
            "[1, 2]",
            json.dumps({"command": p.ACTION, "envid": envid, "data": [1, 2]}),
            json.dumps({"command": p.SPAWN_AGENTS, "envid": ["e0"], "data": {}}),
            json.dumps({"command": p.ACTION, "envid": [], "data": {}}),  # was unhashable
        ):
            bridge.server.send(bad)
        after = bridge.inbox.mark()
        time.sleep(0.3)  # ticks with the bad actions stored
        _, missing = bridge.get_observation([car], after, 5.0)
        assert not missing and game.connections == 1
        warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert sum("ignored" in line for line in warned) == 7
    finally:
        game.stop()
        bridge.close()


def test_a_spawn_the_emulator_cannot_set_up_drops_the_connection_loudly(caplog):
    """A spawn option the simulator refuses (spawn="nope") is the server's mistake, not a
    command the game would skip: it was ignored half-done, the environment registered
    without a race, and the next tick's error silenced the game for good (connected,
    sending nothing). Now the connection drops with the error and a fresh game follows."""
    bridge = TrainingBridge(ServerConfig(port=0), observation_size=None)
    game = emu.Emulator(f"ws://127.0.0.1:{bridge.server.port}/ws/test", tick_hz=30.0).start()
    try:
        bridge.wait_for_game(10.0)
        bridge.server.send(
            frame(p.SPAWN_AGENTS, "e1", {"agents": ["car_0_env_e1"], "options": {"spawn": "nope"}})
        )
        deadline = time.monotonic() + 10.0
        while game.connections < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert game.connections == 2  # dropped and reconnected
        assert any("error on connection 1" in r.getMessage() for r in caplog.records)
        bridge.wait_for_game(10.0)
        bridge.spawn_agents("e0", ["car_0_env_e0"])  # the fresh game plays
        _, missing = bridge.get_observation(["car_0_env_e0"], bridge.inbox.mark(), 5.0)
        assert not missing
    finally:
        game.stop()
        bridge.close()


def test_a_tick_that_fails_drops_the_connection_not_the_game(caplog, monkeypatch):
    """An error in the tick task, which nothing awaits, left the game connected and
    silent for good; the connection now closes, and a fresh game follows."""
    failed = []

    async def failing_tick(self, connection):
        if not failed:
            failed.append(True)
            raise RuntimeError("a tick bug")

    monkeypatch.setattr(emu.Emulator, "_game_tick", failing_tick)
    bridge = TrainingBridge(ServerConfig(port=0), observation_size=None)
    game = emu.Emulator(f"ws://127.0.0.1:{bridge.server.port}/ws/test", tick_hz=30.0).start()
    try:
        deadline = time.monotonic() + 10.0
        while game.connections < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert game.connections == 2
        assert any("a tick failed; closing" in r.getMessage() for r in caplog.records)
    finally:
        game.stop()
        bridge.close()


def test_a_tick_that_meets_a_closed_connection_is_no_error(caplog, monkeypatch):
    """The end of a training run (the server closes with 1001) met by a tick logged
    "a tick failed" with a traceback, as if the game had crashed."""
    from websockets.exceptions import ConnectionClosedOK
    from websockets.frames import Close

    closed = []

    async def closing_tick(self, connection):
        if not closed:
            closed.append(True)
            raise ConnectionClosedOK(Close(1001, "racing-rl is shutting down"), None)

    monkeypatch.setattr(emu.Emulator, "_game_tick", closing_tick)
    bridge = TrainingBridge(ServerConfig(port=0), observation_size=None)
    game = emu.Emulator(f"ws://127.0.0.1:{bridge.server.port}/ws/test", tick_hz=30.0).start()
    try:
        deadline = time.monotonic() + 10.0
        while not closed and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)
        assert closed
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    finally:
        game.stop()
        bridge.close()


def test_an_os_error_in_a_session_is_no_failure_to_connect(caplog, monkeypatch):
    """An OSError once connected (a full disk writing record=, a reset socket) was
    reported as "emulator cannot connect ... nothing listens there"."""
    failed = []
    session = emu.Emulator._session

    async def failing_session(self, connection):
        if not failed:
            failed.append(True)
            raise OSError(28, "No space left on device")
        await session(self, connection)

    monkeypatch.setattr(emu.Emulator, "_session", failing_session)
    bridge = TrainingBridge(ServerConfig(port=0), observation_size=None)
    game = emu.Emulator(f"ws://127.0.0.1:{bridge.server.port}/ws/test").start()
    try:
        deadline = time.monotonic() + 10.0
        while game.connections < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert game.connections == 2
        said = [r.getMessage() for r in caplog.records]
        assert any("connection 1 to" in m and "No space left" in m for m in said)
        assert not any("cannot connect" in m for m in said)
    finally:
        game.stop()
        bridge.close()


def test_an_error_that_recurs_in_every_session_backs_off(caplog, monkeypatch):
    """An OSError in every session (a disk that stays full) reconnected 20 times a
    second, with a warning each time."""

    async def failing_session(self, connection):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(emu.Emulator, "_session", failing_session)
    bridge = TrainingBridge(ServerConfig(port=0), observation_size=None)
    game = emu.Emulator(f"ws://127.0.0.1:{bridge.server.port}/ws/test").start()
    try:
        time.sleep(2.0)
    finally:
        game.stop()
        bridge.close()
    assert 2 <= game.connections <= 8  # 0.05, 0.1, 0.2, 0.4, 0.8, then 1 s apart


def test_each_connection_meets_a_fresh_game():
    """The game cleans up when a connection ends and greets the next with a new command
    handler: no environment of the last connection, nothing frozen, the clock ticking."""
    game = emu.Emulator("ws://unused", lockstep=True)

    class Ended(Recorder):
        """A connection the server closes at once."""

        def __aiter__(self):
            return self

        async def __anext__(self):
            raise StopAsyncIteration

        async def close(self) -> None:
            pass

    async def play() -> None:
        game._stop = asyncio.Event()
        await game._play(Recorder(), [frame(p.SPAWN_AGENTS, "e0", {"agents": ["car0"]})])
        await game._play(Recorder(), [frame(p.FREEZE, "", {"status": True})])
        game.stopped = True  # as after the watchdog
        assert game.envs and game.frozen
        await game._session(Ended())

    asyncio.run(play())
    assert not game.envs and not game.frozen and not game.stopped


def test_an_emulator_without_a_server_says_so_once_and_what_to_do(caplog):
    url = f"ws://127.0.0.1:{free_port()}/ws/emulator"
    with caplog.at_level(logging.DEBUG, logger="racing_rl.bridge.emulator"):
        game = emu.Emulator(url, unreachable_every=60.0).start()
        deadline = time.monotonic() + 30  # failed attempts after 0, 0.05, 0.15, 0.35 s, ...
        while time.monotonic() < deadline and (
            sum("no connection" in r.getMessage() for r in list(caplog.records)) < 2
        ):
            time.sleep(0.05)
        game.stop()
    attempts = [r for r in caplog.records if "no connection" in r.getMessage()]
    said = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(attempts) >= 2 and len(said) == 1
    message = said[0].getMessage()
    assert url in message and "connection refused" in message and "keeps retrying" in message
    assert "racing-rl train backend=roblox" in message and "check url=" in message


def test_an_emulator_that_stays_unreachable_reminds_every_interval(caplog):
    url = f"ws://127.0.0.1:{free_port()}/ws/emulator"
    with caplog.at_level(logging.WARNING, logger="racing_rl.bridge.emulator"):
        started = time.monotonic()
        game = emu.Emulator(url, unreachable_every=0.3).start()
        said = emulator_said(caplog, at_least=3)  # the first, then two reminders
        game.stop()
        elapsed = time.monotonic() - started
    assert "cannot connect" in said[0] and len(said) >= 3
    assert all("still cannot connect" in message for message in said[1:])
    assert len(said) - 1 <= elapsed / 0.3  # no more often than every 0.3 s


def test_an_emulator_with_the_wrong_token_says_the_server_refused_it(caplog):
    bridge = TrainingBridge(ServerConfig(port=0, token="s3cret"), observation_size=19)
    url = f"ws://127.0.0.1:{bridge.server.port}/ws/emulator"
    try:
        with caplog.at_level(logging.WARNING, logger="racing_rl.bridge.emulator"):
            game = emu.Emulator(url, token="wrong").start()
            emulator_said(caplog)
            game.stop()
    finally:
        bridge.close()
    (message,) = [r.getMessage() for r in caplog.records if r.name == "racing_rl.bridge.emulator"]
    assert "HTTP 401 (missing or wrong token (" in message and "check token=" in message


def test_an_emulator_stopped_by_ctrl_c_closes_as_a_game_that_quits(caplog):
    # racing-rl emulate cancels the emulator on Ctrl-C (emulate.play); websockets then
    # closed with 1011, an internal error, which the training log showed.
    bridge = TrainingBridge(ServerConfig(port=0), observation_size=19)
    url = f"ws://127.0.0.1:{bridge.server.port}/ws/emulator"

    async def play_then_cancel() -> None:
        game = emu.Emulator(url)
        task = asyncio.ensure_future(game.run())
        # The server counts the game connected once it has sent its 101; the emulator
        # enters its session (where Ctrl-C closes with 1001) once it has read it. A cancel
        # in between dropped the socket without a close (4 of 25 runs under load).
        while not (bridge.server.connected and game.connections):
            await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    try:
        with caplog.at_level(logging.INFO, logger="racing_rl.bridge.server"):
            asyncio.run(play_then_cancel())
            deadline = time.monotonic() + 5
            while "game disconnected" not in caplog.text and time.monotonic() < deadline:
                time.sleep(0.02)
    finally:
        bridge.close()
    assert "received close code 1001: the game is stopping" in caplog.text


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_emulate_stops_on_a_signal_between_two_steps_of_its_loop(sig, caplog):
    """racing-rl's own handler, which raises KeyboardInterrupt wherever the main thread is,
    kept asyncio.run from taking SIGINT: it struck inside the loop's callbacks, and CI saw
    an emulator still running 120 s after its SIGINT. The loop takes both signals now."""
    from racing_rl.emulate import play

    def raising(signum, frame):  # as racing_rl.interrupts._handle does in a command
        raise KeyboardInterrupt

    bridge = TrainingBridge(ServerConfig(port=0), observation_size=19)
    game = emu.Emulator(f"ws://127.0.0.1:{bridge.server.port}/ws/emulator")

    async def signal_once_connected() -> None:
        while not (bridge.server.connected and game.connections):
            await asyncio.sleep(0.02)
        signal.raise_signal(sig)

    async def main() -> None:
        signalling = asyncio.ensure_future(signal_once_connected())
        await play(game)
        await signalling

    before = {s: signal.signal(s, raising) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with caplog.at_level(logging.INFO, logger="racing_rl.bridge.server"):
            asyncio.run(main())  # no KeyboardInterrupt
            assert signal.getsignal(sig) is raising  # the handler before comes back
            deadline = time.monotonic() + 5
            while "game disconnected" not in caplog.text and time.monotonic() < deadline:
                time.sleep(0.02)
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)
        bridge.close()
    assert "received close code 1001: the game is stopping" in caplog.text


@pytest.mark.parametrize(
    ("path", "status", "advice"),
    [
        ("/foo/x", 404, "check that the url's path is /ws/<model_id>"),
        ("/ws/other", 403, "use its model id in url="),  # a game with another id came first
    ],
)
def test_a_refused_emulator_is_told_what_its_status_means(path, status, advice, caplog):
    # Every refusal advised checking the token, which was not the cause of these.
    bridge = TrainingBridge(ServerConfig(port=0), observation_size=19)
    first = emu.Emulator(f"ws://127.0.0.1:{bridge.server.port}/ws/emulator").start()
    try:
        assert bridge.server.wait_connected(5)
        with caplog.at_level(logging.WARNING, logger="racing_rl.bridge.emulator"):
            game = emu.Emulator(f"ws://127.0.0.1:{bridge.server.port}{path}").start()
            emulator_said(caplog)
            game.stop()
    finally:
        first.stop()
        bridge.close()
    (message,) = [r.getMessage() for r in caplog.records if r.name == "racing_rl.bridge.emulator"]
    assert f"HTTP {status}" in message and advice in message and "token" not in message


def test_a_second_emulator_refused_by_a_busy_bridge_backs_off_and_says_so_once(caplog):
    bridge = TrainingBridge(ServerConfig(port=0), observation_size=19)
    url = f"ws://127.0.0.1:{bridge.server.port}/ws/emulator"
    first = emu.Emulator(url).start()
    try:
        assert bridge.server.wait_connected(5)
        with caplog.at_level(logging.DEBUG, logger="racing_rl.bridge.emulator"):
            second = emu.Emulator(url, unreachable_every=60.0).start()
            time.sleep(2.0)  # tries after 0, 0.05, 0.15, 0.35, 0.75, 1.55 s: 6 at most
            second.stop()
    finally:
        first.stop()
        bridge.close()
    assert 2 <= second.connections <= 6  # without the back-off: ~40
    ours = [r for r in caplog.records if r.name == "racing_rl.bridge.emulator"]
    said = [r.getMessage() for r in ours if r.levelno >= logging.WARNING]
    assert len(said) == 1, said
    assert "closed the connection before any command (close code 1013: a game is" in said[0]
    # The second's retries (connection 2 on) are logged at debug level only.
    retries = [r for r in ours if "(connection 2)" in r.getMessage()]
    assert retries and all(r.levelno == logging.DEBUG for r in retries)


@pytest.mark.parametrize(
    ("kwargs", "refused"),
    [
        ({"url": "localhost:8000"}, "url='localhost:8000' is not a WebSocket address"),
        ({"url": "ws://127.0.0.1:8000/ws/x", "tick_hz": 0.0}, "tick_hz=0.0; must be"),
        ({"url": "ws://127.0.0.1:8000/ws/x", "heartbeat_hz": -60.0}, "heartbeat_hz=-60.0"),
    ],
)
def test_an_emulator_with_a_bad_address_or_rate_is_refused(kwargs, refused):
    with pytest.raises(ConfigError, match=re.escape(refused)):
        emu.Emulator(**kwargs)


def test_the_record_keeps_each_command_as_received(tmp_path):
    record = tmp_path / "commands.jsonl"
    game = emu.Emulator("ws://unused", lockstep=True, echo_step=True, record=record)
    spawn = frame(p.SPAWN_AGENTS, "e0", {"agents": ["e0_car0"]})
    action = json.dumps(
        {"command": p.ACTION, "envid": "e0", "step": 7, "data": {"e0_car0": [1, 0, 0]}}
    )

    async def play() -> None:
        await game._play(Recorder(), [spawn, action])

    asyncio.run(play())
    lines = [json.loads(line) for line in record.read_text().splitlines()]
    assert [line["command"] for line in lines] == [p.SPAWN_AGENTS, p.ACTION]
    assert lines[1]["step"] == 7 and lines[1] == json.loads(action)


@pytest.mark.parametrize(
    ("setting", "refused"),
    [
        # 0 dropped every connection as it was made, and reconnected, twice a second.
        ({"silence_timeout": 0}, "silence_timeout=0; must be > 0"),
        ({"watchdog_ticks": -1}, "watchdog_ticks=-1 "),
        ({"max_environments": 0}, "max_environments=0 "),
        # Every SPAWN_AGENTS without a track failed ("high <= 0"): the server waited.
        ({"track_seeds": range(5, 5)}, "0 track_seeds"),
    ],
)
def test_settings_out_of_range_are_refused(setting, refused):
    with pytest.raises(ConfigError, match=refused):
        emu.Emulator("ws://unused", **setting)


def test_a_record_file_in_a_new_folder_is_made(tmp_path):
    """Its missing folder read as "cannot connect", again every second."""
    emu.Emulator("ws://unused", record=tmp_path / "new" / "commands.jsonl")
    assert (tmp_path / "new").is_dir()


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_a_record_file_that_cannot_be_written_is_refused(tmp_path):
    """Each command failed to be recorded, said as the connection's failure, and the
    emulator reconnected again and again, for ever."""
    with pytest.raises(ConfigError, match=r"record=/proc/commands.jsonl cannot be written: "):
        emu.Emulator("ws://unused", record=Path("/proc/commands.jsonl"))
    refused = "record=/proc/commands.jsonl cannot be written: /proc does not accept new files"
    url = "url=ws://127.0.0.1:1/ws/x"  # nothing listens: it would retry until stopped
    result = racing_rl("emulate", url, "record=/proc/commands.jsonl", cwd=tmp_path, timeout=60)
    assert result.returncode == 1 and result.stderr.startswith(f"racing-rl emulate: {refused}")
    assert result.stderr.count("\n") == 1


def test_a_simulator_given_as_one_value_is_refused_in_one_line(tmp_path):
    """``sim=abc`` (the simulator's settings replaced by a string) ended in a traceback:
    AttributeError: 'str' object has no attribute 'get'."""
    result = racing_rl("emulate", "sim=abc", cwd=tmp_path, timeout=60)
    assert result.returncode == 1
    assert result.stderr == (
        "racing-rl emulate: Invalid config: sim='abc'; sim is a mapping of settings: set its "
        "keys one by one, such as sim.sensors.n_rays=16.\n"
    )


def test_emulate_names_a_track_range_that_is_no_range():
    from racing_rl.config import track_seeds

    for seeds in ([5, 5], [0, 1, 2]):  # empty; three values ("too many values to unpack")
        with pytest.raises(ConfigError, match=r"track_seeds=\[.*\]; must be \[start, stop\)"):
            track_seeds(seeds, "track_seeds")


def test_emulate_says_which_sim_episode_settings_the_server_decides(tmp_path):
    """sim.episode.max_steps=10 and laps=2 were dropped without a word: the game has no
    such limits, the training server's settings decide."""
    import subprocess
    import sys

    command = [
        sys.executable, "-m", "racing_rl.cli", "emulate",
        f"url=ws://127.0.0.1:{free_port()}/ws/emulator", "sim.episode.max_steps=10",
        "sim.episode.laps=2", "sim.episode.spawn=grid", f"hydra.run.dir={tmp_path}",
    ]  # fmt: skip
    game = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    said = []
    try:
        assert game.stderr is not None
        for line in game.stderr:  # until the emulator runs (or exits)
            said.append(line)
            if "emulating the game" in line:
                break
        game.send_signal(signal.SIGINT)
        game.wait(timeout=30)
    finally:
        game.kill()
    expected = "sim.episode.max_steps=10, sim.episode.laps=2, sim.episode.spawn=grid: ignored"
    assert expected in "".join(said)


def test_whole_numbers_go_out_as_json_integers_as_the_game_writes_them():
    # Roblox's JSONEncode writes nitro's full tank, is_reverse and a reward of -20 as 1, 0
    # and -20; the emulator wrote 1.0, so no test of the bridge met an integer.
    game = emu.Emulator("ws://unused", lockstep=True)
    sent: list[str] = []

    class Raw:
        async def send(self, message: str) -> None:
            sent.append(message)

    spawn = frame(p.SPAWN_AGENTS, "e0", {"agents": ["car0"]})
    asyncio.run(game._play(Raw(), [spawn, frame(p.ACTION, "e0", {"car0": [0.0, 0.0, 0.0]})]))
    *rays, nitro, _, reverse = json.loads(sent[-1])["car0"]["obs"]
    assert (nitro, reverse) == (1, 0) and type(nitro) is type(reverse) is int
    assert any(type(ray) is float for ray in rays)  # a fraction stays one


def test_collisions_without_the_flag_stay_as_they_were_as_in_the_game():
    # The game's UPDATE_COLLISIONS handler changes nothing without enable_collisions; the
    # emulator turned collisions off.
    game = emu.Emulator("ws://unused", lockstep=True)
    on = frame(p.UPDATE_COLLISIONS, "", {"enable_collisions": True})
    asyncio.run(game._play(Recorder(), [on, frame(p.UPDATE_COLLISIONS, "", {})]))
    assert game.collisions is True
    off = frame(p.UPDATE_COLLISIONS, "", {"enable_collisions": False})
    asyncio.run(game._play(Recorder(), [off]))
    assert game.collisions is False

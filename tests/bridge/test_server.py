"""The bridge server on a real loopback socket: auth, refusals, limits, keepalive."""

import json
import logging
import math
import socket
import threading
import time

import pytest
from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.frames import Frame
from websockets.protocol import State
from websockets.sync.client import connect
from websockets.uri import parse_uri

from racing_rl.bridge.config import ServerConfig
from racing_rl.bridge.training_bridge import TrainingBridge
from racing_rl.errors import BridgeError, ConfigError


@pytest.fixture
def bridge(request):
    settings = getattr(request, "param", {})
    bridge = TrainingBridge(ServerConfig(port=0, **settings), observation_size=13)
    yield bridge
    bridge.close()


def url(bridge, path="/ws/test"):
    return f"ws://127.0.0.1:{bridge.server.port}{path}"


def closed_with(client) -> tuple[int, str]:
    with pytest.raises(ConnectionClosed) as closed:
        client.recv(timeout=5)
    return closed.value.rcvd.code, closed.value.rcvd.reason


def test_a_non_loopback_address_needs_a_token():
    with pytest.raises(ConfigError, match="needs a token"):
        ServerConfig(host="0.0.0.0")
    ServerConfig(host="0.0.0.0", token="s3cret")  # fine with one


def test_a_busy_port_is_a_clear_error(bridge):
    with pytest.raises(BridgeError, match=r"cannot listen on .*backend\.server\.port"):
        TrainingBridge(ServerConfig(port=bridge.server.port), observation_size=13)


@pytest.mark.parametrize("bridge", [{"token": "s3cret"}], indirect=True)
@pytest.mark.parametrize(
    ("headers", "query", "accepted"),
    [
        ({}, "", False),
        ({"Authorization": "Bearer wrong"}, "", False),
        ({}, "?token=wrong", False),
        ({"Authorization": "Bearer s3cret"}, "", True),
        ({}, "?token=s3cret", True),
    ],
)
def test_the_token_is_required_when_set(bridge, headers, query, accepted):
    if accepted:
        with connect(url(bridge, "/ws/test" + query), additional_headers=headers):
            assert bridge.server.wait_connected(5)
    else:  # refused during the handshake: HTTP 401, never upgraded
        with pytest.raises(InvalidStatus) as refused:
            connect(url(bridge, "/ws/test" + query), additional_headers=headers)
        assert refused.value.response.status_code == 401
        assert b"missing or wrong token" in refused.value.response.body
        assert not bridge.connected and bridge.generation == 0
    # The server stays up: a good client still gets in.
    with connect(url(bridge, "/ws/test?token=s3cret")):
        assert bridge.server.wait_connected(5)


def refused(bridge, path="/ws/test") -> tuple[int, str]:
    """The HTTP status and body of a connection refused during the handshake."""
    with pytest.raises(InvalidStatus) as refusal:
        connect(url(bridge, path))
    response = refusal.value.response
    return response.status_code, response.body.decode()


def refused_status(bridge, path="/ws/test") -> int:
    return refused(bridge, path)[0]


def test_a_wrong_path_is_refused_before_the_upgrade(bridge):
    assert refused_status(bridge, "/other") == 404
    assert refused_status(bridge, "/ws/a/b") == 404


def test_refusals_are_logged_once_per_interval(bridge, caplog):
    with caplog.at_level(logging.WARNING):
        for _ in range(20):
            refused_status(bridge, "/other")
    assert bridge.server.rejected["refused"] == 20
    assert caplog.text.count("refused a connection") == 1


def wait_for_connection(bridge, number: int, timeout: float = 5.0) -> bool:
    """Whether the server takes its ``number``-th game connection within ``timeout`` [s].

    Not ``wait_connected``: right after a reconnection the previous connection's handler
    may not yet have let go, and that one would answer."""
    deadline = time.monotonic() + timeout
    while bridge.generation < number and time.monotonic() < deadline:
        time.sleep(0.01)
    return bridge.generation == number and bridge.server.wait_connected(timeout)


def test_the_games_slot_is_kept_for_its_reconnection(bridge):
    with connect(url(bridge, "/ws/game")):
        assert bridge.server.wait_connected(5)
        status, body = refused(bridge, "/ws/intruder")  # while the game is connected
        assert status == 403 and body.endswith("'game', which is connected\n")
    assert bridge.generation == 1
    status, body = refused(bridge, "/ws/intruder")  # while the game is away
    assert status == 403 and "'game', whose slot is kept for it; connect as 'game'" in body
    with connect(url(bridge, "/ws/game")):  # the game itself comes back
        assert wait_for_connection(bridge, 2)


def test_a_wait_that_only_another_game_tried_to_end_says_what_to_do(bridge):
    """A game that left, and another model id refused while the bridge awaits it: the
    error named the refusal alone, neither the game to connect nor the key to raise."""
    with connect(url(bridge, "/ws/game")):
        assert bridge.server.wait_connected(5)
    intruder = threading.Timer(0.1, refused, (bridge, "/ws/intruder"))
    intruder.start()
    expected = (
        r"1 connection\(s\) were refused, .*'intruder' is not this run's game 'game', "
        r"whose slot is kept for it; connect as 'game', or start the command again .*"
        r"Raise backend\.reconnect_timeout"
    )
    with pytest.raises(BridgeError, match=expected):
        bridge.wait_for_game(1.0, key="backend.reconnect_timeout")
    intruder.join()


def test_the_tick_rate_of_the_last_connection_stands_until_the_next_has_its_own(bridge):
    # It was NaN right after a reconnection: eval's summary said "ticked at nan Hz".
    assert math.isnan(bridge.server.tick_hz)
    with connect(url(bridge, "/ws/game")) as game:
        assert bridge.server.wait_connected(5)
        for _ in range(5):
            game.send("[]")
            time.sleep(0.02)
        deadline = time.monotonic() + 5
        while math.isnan(bridge.server.tick_hz) and time.monotonic() < deadline:
            time.sleep(0.01)
    measured = bridge.server.tick_hz
    assert math.isfinite(measured) and measured > 0
    with connect(url(bridge, "/ws/game")):
        assert wait_for_connection(bridge, 2)
        assert bridge.server.tick_hz == measured


def test_closing_the_bridge_says_the_game_left_without_a_warning(caplog):
    bridge = TrainingBridge(ServerConfig(port=0), observation_size=13)
    with caplog.at_level(logging.INFO), connect(url(bridge)) as game:
        assert bridge.server.wait_connected(5)
        bridge.close()
        assert closed_with(game) == (1001, "racing-rl is shutting down")
    (left,) = [r for r in caplog.records if "game disconnected" in r.getMessage()]
    assert left.levelno == logging.INFO


def test_a_second_game_is_refused_while_one_is_connected(bridge):
    with connect(url(bridge)) as first:
        assert bridge.server.wait_connected(5)
        with connect(url(bridge)) as second:
            assert closed_with(second) == (1013, "a game is already connected")
        bridge.spawn_agents("e", ["car_0_env_e"])
        assert json.loads(first.recv(timeout=5))["command"] == "SPAWN_AGENTS"
        assert bridge.server.rejected["refused"] == 1


def test_a_refusal_too_long_for_a_close_frame_is_cut_to_fit_and_kept_whole_here(bridge):
    """A close frame carries at most 123 bytes of reason: a hello refused for the size of
    a checkpoint with a long path raised websockets' "control frame too long" in the
    handler, and the game was closed with 1011 (internal error) and no reason."""
    checkpoint = "/home/someone/" + "runs/" * 20 + "best/model.zip"
    bridge.server.expected_by = f"the checkpoint {checkpoint}"
    with connect(url(bridge)) as client:
        client.send(json.dumps({"hello": {"protocol": 1, "observation_size": 19}}))
        code, reason = closed_with(client)
    assert code == 1008
    assert reason.startswith("the game sends 19 numbers per observation, the checkpoint /home")
    assert len(reason.encode()) <= 123
    assert checkpoint in bridge.server.size_error
    assert checkpoint in bridge.server.last_refusal


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback here")
@pytest.mark.parametrize(("host", "token"), [("::1", None), ("::", "s3cret")])
def test_an_ipv6_bridge_names_a_url_that_reaches_it(host, token):
    """It wrote ws://::1:<port>/..., which is no URL (the emulator refused it as such), and
    for ``::`` suggested the emulator ws://127.0.0.1:<port>, where nothing listens: asyncio
    binds ``::`` to IPv6 only."""
    bridge = TrainingBridge(ServerConfig(host=host, port=0, token=token), observation_size=None)
    try:
        port = bridge.server.port
        assert bridge.server.url == f"ws://[{host}]:{port}/ws/<model_id>"
        suggested = bridge._emulate_url().removeprefix(" url=")
        assert suggested == f"ws://[::1]:{port}/ws/emulator"
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        with connect(suggested, additional_headers=headers):
            assert bridge.server.wait_connected(5)
    finally:
        bridge.close()


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback here")
def test_port_0_on_a_host_of_two_addresses_names_a_url_that_reaches_every_address_of_it(
    monkeypatch,
):
    """host=localhost port=0 where localhost is ::1 and 127.0.0.1 (Windows, macOS): asyncio
    bound each address to its own free port, and the URL (ws://localhost:<the IPv4 one>)
    did not reach the IPv6 one, where a client may try first."""
    resolve = socket.getaddrinfo

    def localhost_of_two_families(host, *args, **kwargs):
        if host == "localhost":
            return resolve("::1", *args, **kwargs) + resolve("127.0.0.1", *args, **kwargs)
        return resolve(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", localhost_of_two_families)
    bridge = TrainingBridge(ServerConfig(host="localhost", port=0), observation_size=None)
    try:
        uri = parse_uri(bridge.server.url.replace("<model_id>", "game"))
        for *_, address in socket.getaddrinfo(uri.host, uri.port, type=socket.SOCK_STREAM):
            with socket.create_connection(address[:2], timeout=5):  # refused: not listening
                pass
        with connect(bridge.server.url.replace("<model_id>", "game")):
            assert bridge.server.wait_connected(5)
    finally:
        bridge.close()


def test_a_path_with_a_trailing_slash_names_the_url_the_game_is_served_at():
    """backend.server.path=/ws/ logged ws://...:<port>/ws//<model_id>, refused with 404."""
    bridge = TrainingBridge(ServerConfig(port=0, path="/ws/"), observation_size=None)
    try:
        assert bridge.server.url == f"ws://127.0.0.1:{bridge.server.port}/ws/<model_id>"
        with connect(bridge.server.url.replace("<model_id>", "game")):
            assert bridge.server.wait_connected(5)
    finally:
        bridge.close()


def test_an_oversized_frame_closes_that_connection_and_the_server_stays_up(bridge):
    with connect(url(bridge), max_size=None) as client:
        assert bridge.server.wait_connected(5)
        client.send("x" * (bridge.server.config.max_message_bytes + 1))
        assert closed_with(client)[0] == 1009  # message too big
    with connect(url(bridge)):
        assert wait_for_connection(bridge, 2)


def test_a_game_reconnecting_while_its_old_connection_hangs_in_closing_gets_in(bridge):
    # The old connection's peer sends a frame too big and then never answers the
    # server's close (a dead network path): it stays CLOSING, and websockets would wait
    # its close_timeout (10 s) before letting go. A raw socket driven by websockets'
    # own sans-I/O client plays that peer.
    old = ClientProtocol(parse_uri(url(bridge)))
    with socket.create_connection(("127.0.0.1", bridge.server.port)) as silent:
        old.send_request(old.connect())
        silent.sendall(b"".join(old.data_to_send()))
        while old.state is State.CONNECTING:  # the 101 response may come in pieces
            old.receive_data(silent.recv(65536))
        assert old.handshake_exc is None and bridge.server.wait_connected(5)
        old.send_text(b"x" * (bridge.server.config.max_message_bytes + 1))
        silent.sendall(b"".join(old.data_to_send()))
        with connect(url(bridge)):  # without the abort, admitted after 10 s, not 3
            assert wait_for_connection(bridge, 2, timeout=3.0)
        assert bridge.server.rejected["refused"] == 0


def test_bad_messages_are_dropped_and_the_connection_stays_up(bridge):
    with connect(url(bridge)) as client:
        assert bridge.server.wait_connected(5)
        bridge.spawn_agents("e", ["car_0_env_e"])
        client.recv(timeout=5)
        after = bridge.inbox.mark()
        good = {"obs": [0.5] * 13, "reward": 0.0, "terminated": False, "truncated": False}
        deep, huge = "[" * 100_000 + "]" * 100_000, '{"x": ' + "9" * 5000 + "}"
        for bad in ["{", json.dumps({"car_7_env_q": good}), b"\x00", "[]", deep, huge]:
            client.send(bad)
        client.send(json.dumps({"car_0_env_e": good}))
        received, missing = bridge.get_observation(["car_0_env_e"], after, timeout=5)
        assert not missing and received["car_0_env_e"].step.reward == 0.0
        assert bridge.server.rejected["invalid"] == 4 and bridge.generation == 1
        assert bridge.server.dropped == {"unknown_agent": 1}
        assert bridge.server.empty_ticks == 1  # [], counted apart from the rejections


@pytest.mark.parametrize("bridge", [{"ping_after": 0.2}], indirect=True)
def test_the_server_pings_a_silent_connection(bridge):
    with connect(url(bridge)) as client:
        bridge.wait_for_game(5)  # sends UPDATE_COLLISIONS to a new game
        # A PING can come first on a slow machine: wait_for_game's greeting may take
        # longer than ping_after to follow the connection.
        while (command := json.loads(client.recv(timeout=5))["command"]) == "PING":
            pass
        assert command == "UPDATE_COLLISIONS"
        assert json.loads(client.recv(timeout=5))["command"] == "PING"  # after 0.2 s


@pytest.mark.parametrize("bridge", [{"ping_after": 0.5}], indirect=True)
def test_a_new_connections_silence_counts_from_its_start(bridge):
    # The keepalive counted from the server's last send, before this connection: a game
    # connecting after a quiet spell got a PING at once.
    time.sleep(0.6)
    started = time.monotonic()  # before the handshake, whose end the server counts from
    with connect(url(bridge)) as client:
        assert json.loads(client.recv(timeout=5))["command"] == "PING"
        assert time.monotonic() - started > 0.3


@pytest.mark.parametrize("bridge", [{"ping_after": 0.2}], indirect=True)
def test_a_game_that_never_answers_websocket_pings_is_kept(bridge):
    # Roblox's WebStreamClient is not documented to answer WebSocket pings: the server
    # must not depend on pongs. A raw socket driven by websockets' sans-I/O client, whose
    # automatic pongs are never sent, plays such a game; it hears only our PING command.
    game = ClientProtocol(parse_uri(url(bridge)))
    with socket.create_connection(("127.0.0.1", bridge.server.port)) as raw:
        game.send_request(game.connect())
        raw.sendall(b"".join(game.data_to_send()))
        while game.state is State.CONNECTING:
            game.receive_data(raw.recv(65536))
        assert game.handshake_exc is None and bridge.server.wait_connected(5)
        raw.settimeout(0.1)
        opcodes, deadline = set(), time.monotonic() + 1.5  # 7 x ping_after
        while time.monotonic() < deadline:
            try:
                game.receive_data(raw.recv(65536))
            except TimeoutError:
                continue
            events = game.events_received()  # the handshake's Response, then frames
            opcodes.update(event.opcode.name for event in events if isinstance(event, Frame))
        assert opcodes == {"TEXT"}  # PING commands; no protocol ping to leave unanswered
        assert bridge.server.connected and game.state is State.OPEN


def test_a_game_that_drops_right_after_the_handshake_is_waited_for_again(bridge):
    """Ten games close as soon as they are upgraded while ``wait_for_game`` greets them
    (the env calls it before each spawn); the eleventh stays and is greeted."""
    greeted = threading.Event()

    def flaky_then_good():
        for _ in range(10):
            with connect(url(bridge)):
                pass
        with connect(url(bridge)) as client:
            while json.loads(client.recv(timeout=10))["command"] != "UPDATE_COLLISIONS":
                pass  # a PING
            greeted.set()

    game = threading.Thread(target=flaky_then_good)
    game.start()
    try:
        for _ in range(1000):  # as the env does before each spawn
            bridge.wait_for_game(20)  # never raises while games come and go
            if greeted.wait(0.01):
                break
    finally:
        game.join(20)
    assert greeted.is_set() and bridge.generation == 11


def test_only_the_timeout_ends_the_wait_and_names_its_key(bridge):
    with pytest.raises(BridgeError, match=r"within 0\.3 s.*backend\.reconnect_timeout"):
        bridge.wait_for_game(0.3, key="backend.reconnect_timeout")


def test_the_tick_period_is_the_nominal_one_until_frames_measure_it(bridge):
    assert bridge.tick_period(1 / 15) == 1 / 15  # no frame yet
    with connect(url(bridge)) as game:
        for _ in range(5):
            game.send("[]")
            time.sleep(0.02)
        deadline = time.monotonic() + 10
        while bridge.server.frames < 5 and time.monotonic() < deadline:
            time.sleep(0.01)
    measured = bridge.tick_period(1 / 15)
    assert measured == pytest.approx(1 / bridge.server.tick_hz)
    assert measured != 1 / 15  # the frames' period, whatever the machine's speed


def test_no_command_overtakes_the_thaw_that_precedes_it(bridge):
    """Environments reset in threads, each sending FREEZE false (only once: the state is
    cached) before its spawn. The second must not send its spawn while the first's FREEZE
    false is still on its way: a game frozen then would hold the new cars."""
    sent = []

    def send(command, envid, data, wait=True, **extra):
        if command == "FREEZE":
            time.sleep(0.2)  # a slow write, or the thread preempted
        sent.append(command)

    bridge._send = send
    bridge._frozen = True

    def reset():
        bridge.freeze(False)
        bridge._send("SPAWN_AGENTS", "e", {})

    threads = [threading.Thread(target=reset) for _ in range(2)]
    for thread in threads:
        thread.start()
        time.sleep(0.05)
    for thread in threads:
        thread.join(5)
    assert sent == ["FREEZE", "SPAWN_AGENTS", "SPAWN_AGENTS"]


def test_an_event_loop_that_dies_after_start_is_logged(bridge, caplog):
    # The error was kept for start() only, which had returned: nothing said the bridge died.
    server = bridge.server
    with caplog.at_level(logging.ERROR, logger="racing_rl.bridge.server"):
        server._loop.call_soon_threadsafe(server._stop.set_exception, RuntimeError("died"))
        server._thread.join(timeout=10)
    assert not server._thread.is_alive()
    assert "the bridge's event loop stopped: RuntimeError('died')" in caplog.text


def test_the_seeds_commands_reach_the_game_as_the_protocol_writes_them(bridge):
    # TrainingBridge's API for scripts (DESIGN.md): the ones training itself does not call.
    with connect(url(bridge)) as client:
        assert bridge.server.wait_connected(5)
        bridge.update_collisions(True)
        bridge.close_environment("e")
        bridge.close_all()
        sent = [json.loads(client.recv(timeout=5)) for _ in range(3)]
        assert [(m["command"], m["envid"], m["data"]) for m in sent] == [
            ("UPDATE_COLLISIONS", "", {"enable_collisions": True}),
            ("CLOSE", "e", {}),
            ("CLOSE_ALL", "", {}),
        ]
        assert bridge.collisions  # sent again to a game that reconnects

        bridge.spawn_agents("e", ["car_0_env_e"])
        client.recv(timeout=5)
        after = bridge.inbox.mark()
        good = {"obs": [0.5] * 13, "reward": 0.0, "terminated": False, "truncated": False}
        client.send(json.dumps({"car_0_env_e": good}))
        assert not bridge.get_observation(["car_0_env_e"], after, timeout=5)[1]
        bridge.clear_observations(["car_0_env_e"])
        assert bridge.get_observation(["car_0_env_e"], after, timeout=0.2)[1] == ["car_0_env_e"]


def test_a_removed_cars_entries_on_the_wire_are_dropped_without_a_warning(
    bridge, caplog, monkeypatch
):
    """The game's tick that was on the wire when it removed a car still carries it (the
    end of every eval or training run): no warning, no count. Its entries after the
    grace period are an unknown agent's, as before."""
    from racing_rl.bridge import server as bridge_server

    monkeypatch.setattr(bridge_server, "REMOVED_GRACE_S", 0.5, raising=False)
    entry = {"obs": [0.5] * 13, "reward": 0.0, "terminated": False, "truncated": False}
    with connect(url(bridge)) as client:
        assert bridge.server.wait_connected(5)
        bridge.spawn_agents("e", ["car_0_env_e", "car_1_env_e"])
        bridge.remove_agents("e", ["car_0_env_e", "car_1_env_e"])
        for _ in range(2):
            client.recv(timeout=5)
        frames = bridge.server.frames
        client.send(json.dumps({"car_0_env_e": entry, "car_1_env_e": entry}))  # on the wire
        deadline = time.monotonic() + 5
        while bridge.server.frames == frames and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not bridge.server.dropped and "dropped" not in caplog.text
        time.sleep(0.5)
        client.send(json.dumps({"car_0_env_e": entry}))  # a game that still reports it
        while bridge.server.frames == frames + 1 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert bridge.server.dropped == {"unknown_agent": 1}
    assert "dropped 1 unknown_agent entry" in caplog.text


def test_cars_that_report_no_rays_are_named_as_such_with_the_size_left_to_the_game():
    """A car model without rays sends [nitro, speed, is_reverse]; with observation_size
    null check_size raised a TypeError (None - 3) instead of saying so."""
    from racing_rl.bridge.server import SIZE_ERROR_AFTER

    bridge = TrainingBridge(ServerConfig(port=0), observation_size=None)
    try:
        with connect(url(bridge)) as client:
            assert bridge.server.wait_connected(5)
            bridge.spawn_agents("e", ["car_0_env_e"])
            client.recv(timeout=5)
            short = {"obs": [0.5, 0.1, 0.0], "reward": 0.0, "terminated": False, "truncated": False}
            for _ in range(SIZE_ERROR_AFTER[0]):
                client.send(json.dumps({"car_0_env_e": short}))
            deadline = time.monotonic() + 5
            while bridge.server.size_error is None and time.monotonic() < deadline:
                time.sleep(0.01)
            with pytest.raises(BridgeError, match="The game's cars report no rays"):
                bridge.check_size()
            assert bridge.server.dropped["wrong_length"] == SIZE_ERROR_AFTER[0]
        # After it left, its slot is kept for its model id: the emulator is sent there.
        assert bridge._emulate_url().endswith("/ws/test")
    finally:
        bridge.close()


def test_a_game_that_reconnects_with_another_car_is_told_so():
    # Its entries of the first connection hid the size: "2880 entries were dropped
    # meanwhile: the game sends bad values".
    from racing_rl.bridge.server import SIZE_ERROR_AFTER

    bridge = TrainingBridge(ServerConfig(port=0), observation_size=None)
    entry = {"obs": [0.5] * 19, "reward": 0.0, "terminated": False, "truncated": False}
    try:
        with connect(url(bridge, "/ws/game")) as client:
            assert bridge.server.wait_connected(5)
            bridge.spawn_agents("e", ["car_0_env_e"])
            client.recv(timeout=5)
            client.send(json.dumps({"car_0_env_e": entry}))
            bridge.check_size()  # 19 numbers: the run's size
        with connect(url(bridge, "/ws/game")) as client:
            assert wait_for_connection(bridge, 2)
            for _ in range(SIZE_ERROR_AFTER[0]):
                client.send(json.dumps({"car_0_env_e": {**entry, "obs": [0.5] * 13}}))
            deadline = time.monotonic() + 5
            while bridge.server.size_error is None and time.monotonic() < deadline:
                time.sleep(0.01)
            with pytest.raises(BridgeError, match="has 13 numbers; expected 19"):
                bridge.check_size()
    finally:
        bridge.close()


def test_drops_are_logged_ten_times_then_once_a_thousand():
    from racing_rl.bridge.server import _worth_saying

    said = [
        count
        for before, count in zip(range(0, 9000, 3), range(3, 9003, 3), strict=True)
        if _worth_saying(before, count)
    ]
    assert said[:4] == [3, 6, 9, 12] and said[4:] == [
        1002,
        2001,
        3000,
        4002,
        5001,
        6000,
        7002,
        8001,
        9000,
    ]


def test_a_game_that_has_sent_nothing_is_described_so(bridge):
    """It read "its last frame arrived 0.3 s ago; 0 frame(s) received"."""
    with connect(url(bridge)):
        assert bridge.server.wait_connected(5)
        assert bridge.describe().startswith("a game is connected as 'test' and has sent no frame")

"""The bridge's WebSocket server: a ``websockets`` asyncio server in a background thread.

The game connects as a client to ``ws://<host>:<port><path>/<model_id>``. One
connection carries every virtual environment; the first game's ``model_id`` owns the
run: another one is refused in the handshake (HTTP 403), and a second connection with
the same one while the first is open is closed (code 1013, try again later). Frames
are validated on arrival (``racing_rl.bridge.protocol``): a bad frame is logged with
its reason and dropped, a bad entry is dropped alone (counted per kind in
``dropped``), ``[]`` is counted as an empty tick (``empty_ticks``), and the
connection stays up. The arrival times of frames give the game's tick rate
(``tick_hz``); the first entry gives its observation size when none is configured. A
frame over ``max_message_bytes`` makes ``websockets`` close the connection (code 1009);
the game reconnects. After ``ping_after`` of silence the server sends ``PING`` (the
game drops a connection after 20 s without a message); it sends no WebSocket-level
pings, which Roblox does not document its client to answer.

Threads: the server's event loop runs in its own thread. The training thread talks to it
only through ``send`` (``asyncio.run_coroutine_threadsafe``) and the ``Inbox``, a
per-agent mailbox guarded by a condition variable (the seed's DataBridge queues).

Why one module of ~480 lines: the asyncio server, its connection handler and the
thread-safe API the training thread calls are one object around one event loop
(``BridgeServer``); the mailbox between threads (``racing_rl.bridge.inbox``) and the
message formats (``racing_rl.bridge.protocol``) live in their own modules.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hmac
import logging
import math
import socket
import threading
import time
from collections import Counter, deque
from collections.abc import Container, Iterable
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.protocol import State

from racing_rl.bridge.config import ServerConfig
from racing_rl.bridge.inbox import Inbox
from racing_rl.bridge.protocol import (
    HELLO,
    PING,
    PROTOCOL_VERSION,
    Hello,
    decode_game_message,
    encode_command,
    observation_layout,
)
from racing_rl.errors import BridgeError, BridgeProtocolError

log = logging.getLogger(__name__)
# websockets logs every connection at INFO; ours say more, so keep its warnings only.
_WEBSOCKETS_LOG = log.getChild("websockets")
_WEBSOCKETS_LOG.setLevel(logging.WARNING)

POLICY_VIOLATION = 1008  # RFC 6455: wrong observation size
TRY_AGAIN_LATER = 1013  # RFC 6455 (IANA registry): a game is already connected
CLOSE_REASON_BYTES = 123
"""The longest reason a close frame carries [bytes] (RFC 6455: a control frame's payload
is at most 125 bytes, 2 of them the code); websockets refuses to send a longer one."""
SIZE_ERROR_AFTER = (10, 1.0)
"""Frames with wrong-length entries and none accepted yet, or seconds since the first
one, that make ``size_error`` (whichever comes first): one bad frame of a game that
also sends the right size must not stop the run (a game mismatched for good sends 15
frames a second)."""
REFUSAL_LOG_EVERY_S = 10.0
"""Refusals of one reason are logged at most once per this many seconds [s] (with the
count since the last line): a refused game retries, and must not flood the log."""
TOKEN_REFUSED = (
    "missing or wrong token (backend.server.token, taken from RACING_RL_BRIDGE_TOKEN unless "
    "given, is set; the unmodified game sends no token: on loopback, unset both)"
)
"""The reason of a 401: the text the game receives and the bridge logs."""
REMOVED_GRACE_S = 2.0
"""How long after ``REMOVE_AGENTS`` a removed car's entries are dropped without a word
[s]: the game's ticks that were on the wire when it removed the car still carry it (at
12-15 Hz, a tick or two, more on a busy machine); later ones are ``unknown_agent``."""
RELEASE_WAIT_S = 5.0
"""How long a new connection waits for a closing one's handler to let go of the slot
before it is refused [s]. The closing one is aborted first, so its handler lets go at
once; this only bounds a handler that is slow to run."""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now, for a bridge and a game started in two processes
    that must agree on it before the bridge listens (a bridge started here takes port 0
    and reads its ``port`` instead); another process may take it meanwhile."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class BridgeServer:
    """The WebSocket server the game connects to, running in a background thread.

    Args:
        config: where and how to listen.
        observation_size: numbers per observation the game must send; None takes the
            length of the first entry the game sends (``size_known`` is set then).
        inbox: where validated observation entries go.
        known_agents: the agent ids spawned so far (read on every message).

    Raises:
        BridgeError: from ``start`` if the address cannot be bound.
    """

    def __init__(
        self,
        config: ServerConfig,
        observation_size: int | None,
        inbox: Inbox,
        known_agents: Container[str],
    ) -> None:
        self.config = config
        self.observation_size = observation_size
        self.size_known = threading.Event()
        """Set once ``observation_size`` is known (configured, or from the game)."""
        if observation_size is not None:
            self.size_known.set()
        self.expected_by = "backend.observation_size"
        """Who wants ``observation_size`` (a key to change, a checkpoint), for errors."""
        # (first arrival, count, reason) of frames with wrong-length entries only
        self._wrong_sized: tuple[float, int, str] | None = None
        # Why the last hello was refused for its observation size (None after one that fit)
        self._hello_refused: str | None = None
        self.inbox = inbox
        self.known_agents = known_agents
        self.generation = 0
        """Game connections accepted so far; a change means the game reconnected."""
        self.rejected: Counter[str] = Counter()
        """Dropped frames by reason kind (``invalid``, ``refused``)."""
        self.dropped: Counter[str] = Counter()
        """Dropped single entries by kind (``racing_rl.bridge.protocol.ENTRY_FAULTS``)."""
        self.info_dropped: Counter[str] = Counter()
        """Dropped ``info`` keys of kept entries by kind (``protocol.INFO_FAULTS``)."""
        self._refusals_logged: dict[str, tuple[float, int]] = {}
        self.last_refusal: str | None = None
        """Why the last refused connection was refused (None before any)."""
        self.frames = 0
        """Observation frames received (empty ones included)."""
        self.empty_ticks = 0
        """Frames without entries: the game's ``[]`` while no car is unfrozen."""
        self.entries = 0
        """Entries accepted."""
        self._connection_entries = 0  # entries of the connection now (or last)
        self._arrivals: deque[float] = deque(maxlen=61)
        self._earlier_tick_hz = math.nan  # the last connection's tick rate [Hz]
        # Agent id -> when it was removed (``forget``), for ``REMOVED_GRACE_S``.
        self._removed: dict[str, float] = {}
        self._removed_lock = threading.Lock()
        self.model_id: str | None = None
        self.last_received = 0.0
        self._disconnected_at: float | None = None  # when the last connection closed
        self._connection: ServerConnection | None = None
        self._connected = threading.Event()
        # Set while no connection's handler holds the slot (asyncio: the server's loop).
        self._released = asyncio.Event()
        self._released.set()
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Future[None] | None = None
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        # Frames waiting for the event loop (``send``): one wake-up writes them all.
        self._outbox: deque[tuple[ServerConnection, str, concurrent.futures.Future | None]] = (
            deque()
        )
        self._outbox_lock = threading.Lock()
        self._flush_scheduled = False
        self._writing: set[asyncio.Future[None]] = set()
        self._port = config.port
        self._host = config.host  # the address bound (one of the host's, for port 0)
        self._last_sent = time.monotonic()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Start listening; returns once the socket is bound.

        Raises:
            BridgeError: if the socket cannot be bound (the port is in use, the host is
                not this machine's).
        """
        self._thread = threading.Thread(target=self._run, name="racing-rl-bridge", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise BridgeError(
                f"The bridge cannot listen on {self.config.host}:{self.config.port}: "
                f"{self._error}. Is another run using the port? Stop it, or choose another "
                "port with backend.server.port=<port>: the unmodified game connects to "
                "8000 only (its main.server script), and racing-rl emulate then needs "
                "url=ws://127.0.0.1:<port>/ws/emulator."
            ) from self._error
        log.info(
            "bridge listening on %s%s",
            self.url,
            " (a game must present backend.server.token; the unmodified game sends none)"
            if self.config.token
            else "",
        )

    def stop(self, timeout: float = 5.0) -> None:
        """Close the connection and the server, and join the thread."""
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._stop.set_result, None)
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def size_error(self) -> str | None:
        """Why the game's entries cannot be used: every one of this connection so far had
        another length (for ``SIZE_ERROR_AFTER`` frames or seconds: a game that reconnects
        with another car, too); None while that is not so."""
        if self._connection_entries:
            return None
        if self._hello_refused is not None:  # the game said so: no need to count frames
            return f"The game's hello was refused: {self._hello_refused}."
        if self._wrong_sized is None:
            return None
        first, count, reason = self._wrong_sized
        frames, seconds = SIZE_ERROR_AFTER
        if count < frames and time.monotonic() - first < seconds:
            return None
        return f"{reason} The game sends another number per car than {self.expected_by} expects."

    @property
    def port(self) -> int:
        """The bound port (the real one when ``config.port`` is 0)."""
        return self._port

    @property
    def url(self) -> str:
        """The URL a game connects to, with ``<model_id>`` as a placeholder, at the address
        the server binds (a wildcard one, ``0.0.0.0`` or ``::``, as it is; for port 0 and
        a host name of several addresses, the one address bound)."""
        return self.url_for("<model_id>", self._host)

    def url_for(self, model_id: str, host: str | None = None) -> str:
        """The URL a game connects to as ``model_id``.

        Args:
            model_id: the game's model id (or a placeholder).
            host: the address to write; None: the one a game on this machine reaches,
                the bound address (as ``url``), or for a wildcard one the loopback
                address of its family (``0.0.0.0``: ``127.0.0.1``; ``::``, IPv6 only:
                ``::1``).

        Returns:
            ``ws://<host>:<port><path>/<model_id>``, an IPv6 address in brackets.
        """
        if host is None:
            host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(self._host, self._host)
        host = f"[{host}]" if ":" in host else host
        return f"ws://{host}:{self.port}{self.config.path.rstrip('/')}/{model_id}"

    @property
    def tick_hz(self) -> float:
        """The game's tick rate [Hz] over its last (up to) 60 frames of this connection
        (fewer than two yet: the last connection's rate; NaN before any).

        Every tick of the game sends a frame (``[]`` if no car is unfrozen), so frame
        arrivals are its ticks; in a lock-step stand-in they follow the actions instead.
        """
        arrivals = list(self._arrivals)
        if len(arrivals) < 2 or arrivals[-1] <= arrivals[0]:
            return self._earlier_tick_hz
        return (len(arrivals) - 1) / (arrivals[-1] - arrivals[0])

    @property
    def connected(self) -> bool:
        """Whether a game is connected now."""
        return self._connected.is_set()

    def wait_connected(self, timeout: float) -> bool:
        """Block until a game is connected or ``timeout`` [s] passes; True if connected."""
        return self._connected.wait(timeout)

    def forget(self, agents: Iterable[str]) -> None:
        """The game was told to remove ``agents`` (any thread): their entries in the
        next ``REMOVED_GRACE_S`` seconds were on the wire before it did, and are dropped
        without a warning or a count (later ones are ``unknown_agent``)."""
        now = time.monotonic()
        with self._removed_lock:
            self._removed = {
                agent: at for agent, at in self._removed.items() if now - at < REMOVED_GRACE_S
            }
            self._removed.update(dict.fromkeys(agents, now))

    def _late(self, agents: Iterable[str]) -> set[str]:
        """Those of ``agents`` removed less than ``REMOVED_GRACE_S`` ago."""
        now = time.monotonic()
        with self._removed_lock:
            return {a for a in agents if now - self._removed.get(a, -math.inf) < REMOVED_GRACE_S}

    def send(self, frame: str, wait: bool = True) -> None:
        """Send one frame to the connected game (any thread).

        Args:
            frame: the text frame.
            wait: wait until it is written. False returns once it is queued (frames keep
                their order): several environments' ACTIONs then leave together, and a
                broken connection shows up as missing observations instead.

        Raises:
            BridgeError: no game is connected, or (``wait``) the connection broke while
                sending.
        """
        connection, loop = self._connection, self._loop
        if connection is None or loop is None:
            raise BridgeError("No game is connected to the bridge.")
        written = concurrent.futures.Future() if wait else None
        with self._outbox_lock:
            self._outbox.append((connection, frame, written))
            schedule, self._flush_scheduled = not self._flush_scheduled, True
        if schedule:
            loop.call_soon_threadsafe(self._flush)
        if written is None:
            return
        try:
            written.result(self.config.send_timeout)
        except (ConnectionClosed, concurrent.futures.TimeoutError) as err:
            raise BridgeError(f"Sending to the game failed: {err!r}") from err

    def _flush(self) -> None:
        """Write every frame queued by ``send``, in order (event loop thread)."""
        with self._outbox_lock:
            frames = list(self._outbox)
            self._outbox.clear()
            self._flush_scheduled = False
        task = asyncio.ensure_future(self._write(frames))
        self._writing.add(task)  # a task nothing refers to may be collected unfinished
        task.add_done_callback(self._writing.discard)

    async def _write(
        self, frames: list[tuple[ServerConnection, str, concurrent.futures.Future | None]]
    ) -> None:
        for connection, frame, written in frames:
            try:
                await self._send(connection, frame)
            except Exception as err:  # ConnectionClosed: reported to a sender that waits
                if written is not None:
                    written.set_exception(err)
                continue
            if written is not None:
                written.set_result(None)

    async def _send(self, connection: ServerConnection, frame: str) -> None:
        self._last_sent = time.monotonic()
        await connection.send(frame)

    # ------------------------------------------------------------------ the event loop
    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as err:
            if self._ready.is_set():  # after start(): nobody would hear of it
                log.error(
                    "the bridge's event loop stopped: %r; the game can no longer connect or "
                    "be heard, and training will stop on its next timeout",
                    err,
                    exc_info=err,
                )
            self._error = err  # before start() returns: it raises it
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = self._loop.create_future()
        if self.config.port == 0:
            # asyncio binds port 0 once per address of the host, each on its own free
            # port (localhost: 127.0.0.1 and ::1 where it names both), and a URL has one
            # port: bind the first address only, which the URL then names.
            addresses = await self._loop.getaddrinfo(
                self._host or None, 0, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
            )
            if len({address[4][0] for address in addresses}) > 1:
                self._host = addresses[0][4][0]
        async with serve(
            self._handle,
            self._host,
            self.config.port,
            max_size=self.config.max_message_bytes,
            compression=None,  # small JSON frames: deflate costs more latency than it saves
            # No WebSocket-level pings: whether Roblox's WebStreamClient answers them is
            # undocumented, and one that did not would be dropped every ping_timeout. The
            # game's tick stream shows it is alive (observation_timeout), and our PING
            # command keeps its 20 s read timeout from firing (``_keepalive``).
            ping_interval=None,
            logger=_WEBSOCKETS_LOG,
            process_request=self._admit,
        ) as server:
            self._port = next(iter(server.sockets)).getsockname()[1]
            self._ready.set()
            await self._stop
            if self._connection is not None:
                await self._connection.close(1001, "racing-rl is shutting down")

    def _authorized(self, request: Request) -> bool:
        token = self.config.token
        if not token:
            return True
        header = request.headers.get("Authorization", "")
        offered = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""
        if not offered:
            offered = parse_qs(urlsplit(request.path).query).get("token", [""])[0]
        return hmac.compare_digest(offered.encode(), token.encode())

    def _model_id(self, request: Request) -> str:
        """The ``<model_id>`` of ``<path>/<model_id>``; empty for any other path."""
        path = urlsplit(request.path).path
        prefix = self.config.path.rstrip("/") + "/"
        model_id = path[len(prefix) :] if path.startswith(prefix) else ""
        return "" if "/" in model_id else model_id

    def _admit(self, connection: ServerConnection, request: Request) -> Response | None:
        """``process_request``: refuse during the handshake, before the upgrade.

        Returns:
            None to accept; an HTTP 401 without the right token, 404 for another path,
            403 for another model id than the game's that connected first, whether that
            game is connected or away (its slot is kept while it reconnects). A second
            connection with the first game's model id is accepted, then closed with 1013
            if that game is still connected (``_handle``).
        """
        model_id = self._model_id(request)
        if not self._authorized(request):
            status, reason = 401, TOKEN_REFUSED
        elif not model_id:
            prefix = self.config.path.rstrip("/") + "/"
            path = urlsplit(request.path).path
            status, reason = 404, f"unknown path {path[:80]!r}; connect to {prefix}<model_id>"
        elif self.model_id is not None and model_id != self.model_id:
            status = 403
            owner = (
                "which is connected"
                if self.connected
                else f"whose slot is kept for it; connect as {self.model_id!r}, or start the "
                "command again for another game (racing-rl train resume=<run dir> for a run)"
            )
            reason = f"model id {model_id[:80]!r} is not this run's game {self.model_id!r}, {owner}"
        else:
            return None
        self._log_refusal(connection, reason)
        response = connection.respond(status, reason + "\n")
        if status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="racing-rl bridge"'
        return response

    def _log_refusal(self, connection: ServerConnection, reason: str) -> None:
        """Count a refusal; log it unless one of the same kind was logged lately."""
        self.rejected["refused"] += 1
        self.last_refusal = reason
        kind = reason.split(";")[0].split(" ")[0]  # "missing", "unknown", "model", ...
        now = time.monotonic()
        logged_at, since = self._refusals_logged.get(kind, (-math.inf, 0))
        if now - logged_at < REFUSAL_LOG_EVERY_S:
            self._refusals_logged[kind] = (logged_at, since + 1)
            return
        self._refusals_logged[kind] = (now, 0)
        more = f" ({since} more like it in the last {now - logged_at:.0f} s)" if since else ""
        log.warning("refused a connection from %s: %s%s", connection.remote_address, reason, more)

    async def _refuse(self, connection: ServerConnection, code: int, reason: str) -> None:
        """Close ``connection`` with ``code`` and ``reason``, cut to ``CLOSE_REASON_BYTES``
        (the log and ``last_refusal`` keep it whole)."""
        self._log_refusal(connection, reason)
        data = reason.encode()
        if len(data) > CLOSE_REASON_BYTES:  # "..." is 3 bytes
            reason = data[: CLOSE_REASON_BYTES - 3].decode(errors="ignore") + "..."
        await connection.close(code, reason)

    async def _handle(self, connection: ServerConnection) -> None:
        request = connection.request
        assert request is not None  # the handshake is done: ``_admit`` has checked it
        model_id = self._model_id(request)
        previous = self._connection
        if previous is not None and previous.state is not State.OPEN:
            # Closing (a frame too big, say) and a game connects: the game saw the close
            # and reconnected before that connection's handler let go of the slot, or
            # the old one's peer no longer answers (websockets would wait its
            # close_timeout, 10 s, for the close handshake). End the old one now and
            # wait for its handler rather than refuse the game.
            previous.transport.abort()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._released.wait(), RELEASE_WAIT_S)
        if self._connection is not None:
            await self._refuse(connection, TRY_AGAIN_LATER, "a game is already connected")
            return
        self._connection = connection
        self._released.clear()
        self.model_id = model_id
        self.generation += 1
        self.last_received = self._last_sent = time.monotonic()  # silence counts from here
        self._earlier_tick_hz = self.tick_hz  # until this connection has measured its own
        self._connection_entries, self._wrong_sized = 0, None
        self._arrivals.clear()
        self._connected.set()
        away = (  # how long the game was gone, on a reconnection
            ""
            if self._disconnected_at is None
            else f": back {self.last_received - self._disconnected_at:.1f} s after it left"
        )
        log.info(
            "game connected from %s as %r (connection %d)%s",
            connection.remote_address,
            model_id,
            self.generation,
            away,
        )
        keepalive = asyncio.create_task(self._keepalive(connection))
        try:
            async for frame in connection:
                self.last_received = time.monotonic()
                await self._receive(connection, frame)
        except ConnectionClosed:
            pass
        finally:
            keepalive.cancel()
            self._disconnected_at = time.monotonic()
            self._connection = None
            self._connected.clear()
            self._released.set()
            self.inbox.wake()
            # Closed by our own shutdown (the run ended): expected, so not a warning.
            ours = self._stop is not None and self._stop.done()
            log.log(
                logging.INFO if ours else logging.WARNING,
                "game disconnected (%s)",
                _close_story(connection),
            )

    async def _receive(self, connection: ServerConnection, frame: str | bytes) -> None:
        try:
            message = decode_game_message(frame, self.observation_size, self.known_agents)
        except BridgeProtocolError as err:
            self.rejected["invalid"] += 1
            count = self.rejected["invalid"]
            if _worth_saying(count - 1, count):
                log.warning("dropped a game message (%d so far): %s", count, err)
            return
        if isinstance(message, Hello):
            await self._hello(connection, message)
            return
        self.frames += 1
        self._arrivals.append(self.last_received)
        dropped = message.dropped
        late = self._late(dropped.get("unknown_agent", ()))
        if late:  # removed cars in ticks that were on the wire: no fault of the game's
            unknown = {a: why for a, why in dropped["unknown_agent"].items() if a not in late}
            dropped = {k: v for k, v in dropped.items() if k != "unknown_agent"}
            if unknown:
                dropped["unknown_agent"] = unknown
        for kind, entries in dropped.items():
            before = sum(self.dropped.values())
            self.dropped[kind] += len(entries)
            count = before + len(entries)
            if _worth_saying(before, count):
                log.warning(
                    "dropped %d %s entr%s of a game frame (%d so far): %s",
                    len(entries),
                    kind,
                    "y" if len(entries) == 1 else "ies",
                    count,
                    next(iter(entries.values())),
                )
            if kind == "wrong_length" and not self._connection_entries and not message.steps:
                first, count, reason = self._wrong_sized or (time.monotonic(), 0, "")
                self._wrong_sized = (first, count + 1, reason or next(iter(entries.values())))
        for kind, reasons in message.info_dropped.items():
            before = sum(self.info_dropped.values())
            self.info_dropped[kind] += len(reasons)
            count = before + len(reasons)
            if _worth_saying(before, count):
                log.warning("dropped an info key (%d so far): %s", count, reasons[0])
        if message.empty:
            self.empty_ticks += 1
            return
        if not message.steps:
            return
        if self.observation_size is None or self.entries == 0:
            size = len(next(iter(message.steps.values())).observation)
            if self.observation_size is None:
                self.observation_size = size
                self.size_known.set()
            log.info("game sends %d numbers per car: %s", size, observation_layout(size))
        self.entries += len(message.steps)
        self._connection_entries += len(message.steps)
        self.inbox.put(message.steps)

    async def _hello(self, connection: ServerConnection, hello: Hello) -> None:
        size = hello.observation_size
        if size is not None and self.observation_size is None:
            self.observation_size = size
            self.size_known.set()
        if size is not None and size != self.observation_size:
            self._hello_refused = (
                f"the game sends {size} numbers per observation, {self.expected_by} expects "
                f"{self.observation_size}"
            )
            await self._refuse(connection, POLICY_VIOLATION, self._hello_refused)
            return
        self._hello_refused = None
        if hello.protocol > PROTOCOL_VERSION:
            log.warning(
                "the game speaks bridge protocol %d, this server %d: newer fields are ignored",
                hello.protocol,
                PROTOCOL_VERSION,
            )
        log.info("game hello: protocol %d, %r", hello.protocol, hello.game)
        reply = {"protocol": PROTOCOL_VERSION, "observation_size": self.observation_size}
        await self._send(connection, encode_command(HELLO, data=reply))

    async def _keepalive(self, connection: ServerConnection) -> None:
        ping = encode_command(PING)
        period = self.config.ping_after
        while True:
            idle = time.monotonic() - self._last_sent
            if idle >= period:
                with contextlib.suppress(ConnectionClosed):
                    await self._send(connection, ping)
                idle = 0.0
            await asyncio.sleep(period - idle)


def _close_story(connection: ServerConnection) -> str:
    """Who closed a connection with which code, e.g. ``sent 1009 (message too big)``."""
    parts = []
    for side, frame in (
        ("sent", connection.protocol.close_sent),
        ("received", connection.protocol.close_rcvd),
    ):
        if frame is not None:
            parts.append(
                f"{side} close code {frame.code}" + (f": {frame.reason}" if frame.reason else "")
            )
    return "; ".join(parts) or "connection lost without a close frame"


def _worth_saying(before: int, count: int) -> bool:
    """Whether a count of dropped things that went from ``before`` to ``count`` is logged:
    its first 10, then once in every thousand."""
    return before < 10 or count // 1000 > before // 1000

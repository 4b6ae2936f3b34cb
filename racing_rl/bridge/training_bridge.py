"""TrainingBridge: the seed's trainer-facing API over the bridge server.

``spawn_agents``, ``reset_agents``, ``remove_agents``, ``send_actions``, ``freeze``,
``update_collisions``, ``close_environment``, ``close_all``, ``get_observation``
(blocking, with a timeout) and ``clear_observations``, as the seed defines them; one
bridge serves every virtual environment of a run (training and validation share it).
"""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from racing_rl.bridge.config import ServerConfig
from racing_rl.bridge.inbox import Inbox, Received
from racing_rl.bridge.protocol import (
    ACTION,
    CLOSE,
    CLOSE_ALL,
    FREEZE,
    MAX_ENVIRONMENTS,
    REMOVE_AGENTS,
    RESET_AGENTS,
    SPAWN_AGENTS,
    UPDATE_COLLISIONS,
    encode_actions,
    encode_command,
)
from racing_rl.bridge.server import BridgeServer
from racing_rl.contract import STATE_SIZE
from racing_rl.errors import BridgeError, ConfigError

if TYPE_CHECKING:
    from racing_rl.bridge.config import RobloxConfig

log = logging.getLogger(__name__)


class TrainingBridge:
    """Commands to the game and observations from it, for any number of environments.

    The server starts with the bridge. Environments that share it ``acquire`` it; the
    last ``release`` stops the server.

    Args:
        server: where to listen.
        observation_size: numbers per observation (rays + 3: 19 for the game's 16-ray
            cars); None takes what the game sends.
        update_collisions: car-car collisions, sent as ``UPDATE_COLLISIONS`` on every
            (re)connection before the first spawn.
        max_environments: virtual environments the game can keep apart (a collision
            group each; Roblox allows 32 groups per place, one is the default).

    Raises:
        BridgeError: if the server cannot bind its address.
    """

    def __init__(
        self,
        server: ServerConfig,
        observation_size: int | None,
        update_collisions: bool = False,
        max_environments: int = MAX_ENVIRONMENTS,
    ) -> None:
        self.inbox = Inbox()
        self._agents: set[str] = set()
        self.server = BridgeServer(server, observation_size, self.inbox, self._agents)
        self.collisions = update_collisions
        self.max_environments = max_environments
        self.freezes = 0
        """``FREEZE`` messages sent (both directions of the toggle)."""
        self.car_steps = 0
        """Steps taken by the cars of every environment (one per car per ``step``)."""
        self.car_ticks = 0
        """The game's ticks those steps spanned: more than ``car_steps`` when an
        ``ACTION`` missed the game's next tick (``Received.ticks``)."""
        self._environments = 0
        self._users = 0
        self._lock = threading.Lock()
        self._frozen: bool | None = None
        self._configured_generation = 0
        self._waiting_since = -1
        self._closed = False
        self.server.start()

    @classmethod
    def from_config(cls, config: RobloxConfig) -> TrainingBridge:
        """A bridge with the Roblox backend's settings (``racing_rl.config.backend_config``),
        its server started.

        Raises:
            BridgeError: if the server cannot bind its address.
        """
        return cls(
            config.server,
            config.observation_size,
            config.update_collisions,
            config.max_environments,
        )

    # ------------------------------------------------------------------ sharing
    def acquire(self) -> TrainingBridge:
        """Register one more user (an environment); returns self."""
        with self._lock:
            self._users += 1
        return self

    def release(self) -> None:
        """Unregister a user; the last one stops the server."""
        with self._lock:
            self._users -= 1
            last = self._users <= 0
        if last:
            self.close()

    def close(self) -> None:
        """Stop the server (the game sees the connection close and reconnects later).

        A ``wait_for_game`` in progress ends at once with ``BridgeError``.
        """
        self._closed = True
        self.server.stop()

    # ------------------------------------------------------------------ connection
    @property
    def generation(self) -> int:
        """Game connections so far; changes when the game reconnects."""
        return self.server.generation

    @property
    def connected(self) -> bool:
        """Whether a game is connected."""
        return self.server.connected

    def check_room(self, n: int) -> None:
        """Raise unless ``n`` more environments fit in the game.

        Raises:
            ConfigError: if they would make more than ``max_environments``.
        """
        if self._environments + n > self.max_environments:
            raise ConfigError(
                f"{self._environments + n} environments would be open in the game at once "
                f"({self._environments} open, {n} more), which keeps at most "
                f"{self.max_environments} apart (a collision group each; Roblox allows 32 "
                "per place). Lower n_races (a validation in the game adds one more) or, "
                "for racing-rl eval, pass fewer seeds; or lower backend.max_environments "
                "if the game holds fewer."
            )

    def new_envid(self) -> str:
        """A fresh virtual-environment id (a UUID, as the seed game expects).

        Raises:
            ConfigError: if the game already holds ``max_environments`` environments.
        """
        with self._lock:
            self.check_room(1)
            self._environments += 1
        return str(uuid.uuid4())

    def drop_envid(self) -> None:
        """An environment of ``new_envid`` has closed: its slot is free again."""
        with self._lock:
            self._environments -= 1

    def wait_for_game(
        self, timeout: float, why: str = "", key: str = "backend.connect_timeout"
    ) -> None:
        """Block until a game is connected and configured for this connection.

        A game that goes away while it is greeted (``UPDATE_COLLISIONS`` on every new
        connection) is waited for again, with a log line: only the timeout ends the wait.

        Args:
            timeout: longest wait [s], reconnections included.
            why: what the wait is for, in the log line.
            key: the config key of ``timeout``, named in the error.

        Raises:
            BridgeError: if no game connects (and stays connected to be greeted) within
                ``timeout``, or the bridge is closed meanwhile.
        """
        deadline = time.monotonic() + timeout
        while True:
            self._wait_connected(deadline, timeout, why, key)
            with self._lock:
                if self._configured_generation == self.generation:
                    return
                try:
                    self._send(UPDATE_COLLISIONS, "", {"enable_collisions": self.collisions})
                except BridgeError as err:
                    log.warning("the game went away while it was greeted (%s); waiting again", err)
                else:
                    self._configured_generation = self.generation
                    self._frozen = None
                    return
            if time.monotonic() >= deadline:
                raise BridgeError(
                    f"The game connected to {self.server.url} but went away before it could "
                    f"be greeted, again and again for {timeout:g} s; {self.describe()}. Check "
                    f"the game's Output window for errors, or raise {key}."
                )
            time.sleep(0.05)  # the server notices the closed connection

    def _wait_connected(self, deadline: float, timeout: float, why: str, key: str) -> None:
        if self.server.connected:
            return
        refused_before = self.server.rejected["refused"]
        with self._lock:  # one line for all the environments that wait together
            if self._waiting_since != self.generation:
                self._waiting_since = self.generation
                log.warning(
                    "waiting up to %g s for the game to connect to %s%s",
                    timeout,
                    self.server.url,
                    f" ({why})" if why else "",
                )
        while not self.server.wait_connected(min(0.2, max(0.0, deadline - time.monotonic()))):
            if self._closed:
                raise BridgeError("The bridge was closed while waiting for the game.")
            self.check_size()  # a refused hello: waiting longer cannot fix it
            if time.monotonic() < deadline:
                continue
            refused = self.server.rejected["refused"] - refused_before
            if refused:  # a game tried: what stopped it, not how to start one
                raise BridgeError(
                    f"No game connected to {self.server.url} within {timeout:g} s: "
                    f"{refused} connection(s) were refused, the last because: "
                    f"{self.server.last_refusal}. Raise {key} to wait longer."
                )
            raise BridgeError(
                f"No game connected to {self.server.url} within {timeout:g} s. Press Play "
                "in Roblox Studio with the game's HttpService requests enabled (it "
                "connects to this port and path; a refused game retries about every "
                f"25 s), or run `racing-rl emulate{self._emulate_url()}`; or raise {key}."
            )

    def check_size(self) -> None:
        """Raise if the game's observations have another size than this run's
        (``BridgeServer.size_error``): no wait can fix that, so it ends the wait at once.

        Raises:
            BridgeError: naming both sizes and what to change.
        """
        error = self.server.size_error
        if error is None:
            return
        expected = self.server.observation_size
        if expected is None:  # null, and every entry too short to hold one ray
            raise BridgeError(
                f"{error} The game's cars report no rays (an observation is a car's rays, "
                "then nitro, speed and is_reverse): give the car model its rays (its "
                "config's Rays, read by CarsController.GetRaycasts), or race a car that has "
                "them (the game's Car and Bus: 16)."
            )
        raise BridgeError(
            f"{error} Give the game's cars {expected - STATE_SIZE} rays ({expected} "
            "numbers per car: main.server's carModel chooses the car, docs/roblox.md), "
            "or train a new run with backend.observation_size set to "
            "what the game sends (or null to take it from the game): a resumed run or a "
            "checkpoint keeps its size. A run trained on the simulator sees as the "
            "game's 16-ray Car with backend.sensors.n_rays=16 "
            "backend.sensors.layout=roblox_car (docs/roblox.md); racing-rl emulate "
            "takes other sensors with sim.sensors.n_rays=<rays> sim.sensors.layout=fan."
        )

    def describe(self) -> str:
        """A line on the connection's state, for error messages."""
        if not self.server.connected:
            return f"no game is connected to {self.server.url}"
        server = self.server
        if not server.frames:  # its silence counts from the connection
            return (
                f"a game is connected as {server.model_id!r} and has sent no frame in the "
                f"{self.silence():.1f} s since it connected"
            )
        dropped = ", ".join(f"{n} {kind}" for kind, n in sorted(server.dropped.items()))
        return (
            f"a game is connected as {server.model_id!r}, its last frame arrived "
            f"{self.silence():.1f} s ago; {server.frames} frame(s) received "
            f"({server.empty_ticks} empty), {sum(server.rejected.values())} rejected, "
            f"entries dropped: {dropped or 'none'}"
        )

    def silence(self) -> float:
        """Seconds since the game's last frame (any frame, ``[]`` included) [s]."""
        return time.monotonic() - self.server.last_received

    def _emulate_url(self) -> str:
        """`` url=...`` for ``racing-rl emulate`` to reach this bridge; empty where its
        default (conf/emulate.yaml, ws://127.0.0.1:8000/ws/emulator) does."""
        # After a game went away its slot is kept for its model id: the emulator takes it.
        url = self.server.url_for(self.server.model_id or "emulator")
        return "" if url == "ws://127.0.0.1:8000/ws/emulator" else f" url={url}"

    def tick_period(self, nominal: float) -> float:
        """The game's tick period as measured from its frames (``1 / tick_hz``) [s], or
        ``nominal`` [s] before two frames have arrived."""
        tick_hz = self.server.tick_hz
        return 1.0 / tick_hz if math.isfinite(tick_hz) and tick_hz > 0 else nominal

    def counters(self) -> dict[str, float]:
        """The bridge's counters, for logs and TensorBoard (``roblox/``): ``tick_hz``,
        ``frames``, ``empty_ticks``, ``rejected``, ``dropped_<kind>``,
        ``info_dropped_<kind>``, ``freezes``, ``steps_per_tick`` (``car_steps /
        car_ticks``: 1 when no tick of the game went unread between two steps, less
        when ACTIONs missed ticks; NaN before the first step). It bounds the share of
        ticks answered in time from above: an ``ACTION`` that reaches the game just
        after a tick whose frame is then read alone is late too, which only the game
        (or ``racing-rl emulate``) sees."""
        server = self.server
        return {
            "tick_hz": server.tick_hz,
            "frames": server.frames,
            "empty_ticks": server.empty_ticks,
            "rejected": sum(server.rejected.values()),
            **{f"dropped_{kind}": n for kind, n in server.dropped.items()},
            **{f"info_dropped_{kind}": n for kind, n in server.info_dropped.items()},
            "freezes": self.freezes,
            "steps_per_tick": self.car_steps / self.car_ticks if self.car_ticks else math.nan,
        }

    def _send(
        self, command: str, envid: str, data: Mapping[str, Any], wait: bool = True, **extra: Any
    ) -> None:
        self.server.send(encode_command(command, envid, data, **extra), wait=wait)

    # ------------------------------------------------------------------ the seed API
    def spawn_agents(
        self, envid: str, agents: Sequence[str], options: Mapping[str, Any] | None = None
    ) -> None:
        """``SPAWN_AGENTS``: create the cars of ``envid`` (``options``: track seed, spawn)."""
        self._agents.update(agents)
        data: dict[str, Any] = {"agents": list(agents)}
        if options:
            data["options"] = dict(options)
        self._send(SPAWN_AGENTS, envid, data)

    def reset_agents(
        self, envid: str, agents: Sequence[str], options: Mapping[str, Any] | None = None
    ) -> None:
        """``RESET_AGENTS``: respawn the cars of ``envid`` for a new episode."""
        data: dict[str, Any] = {"agents": list(agents)}
        if options:
            data["options"] = dict(options)
        self._send(RESET_AGENTS, envid, data)

    def remove_agents(self, envid: str, agents: Sequence[str]) -> None:
        """``REMOVE_AGENTS``: take the cars out of the game; their entries become
        ``unknown_agent``, after those of the ticks already on the wire (dropped without a
        word, ``BridgeServer.forget``)."""
        self.server.forget(agents)
        self._send(REMOVE_AGENTS, envid, {"agents": list(agents)})
        self._agents.difference_update(agents)
        self.inbox.clear(agents)

    def send_actions(
        self,
        envid: str,
        actions: Mapping[str, Sequence[float] | NDArray[np.floating]],
        step: int | None = None,
        wait: bool = True,
    ) -> None:
        """``ACTION``: throttle, steering, nitro in [-1, 1] per agent (``step``: echo counter;
        ``wait``: see ``BridgeServer.send``)."""
        extra = {} if step is None else {"step": step}
        self._send(ACTION, envid, encode_actions(actions), wait=wait, **extra)

    def freeze(self, status: bool) -> None:
        """``FREEZE``: stop (True) or restart (False) the game's physics, in every
        environment. Sent only when the state changes."""
        with self._lock:  # sent under the lock: no command of another thread (a spawn
            # after the cached state said "unfrozen") overtakes it on the wire
            if self._frozen == status:
                return
            self._send(FREEZE, "", {"status": status})
            self._frozen = status
            self.freezes += 1

    def update_collisions(self, status: bool) -> None:
        """``UPDATE_COLLISIONS``: car-car collisions on or off (kept for reconnections)."""
        self.collisions = status
        self._send(UPDATE_COLLISIONS, "", {"enable_collisions": status})

    def close_environment(self, envid: str) -> None:
        """``CLOSE``: the game tears down ``envid``."""
        self._send(CLOSE, envid, {})

    def close_all(self) -> None:
        """``CLOSE_ALL``: the game tears down every environment."""
        self._send(CLOSE_ALL, "", {})

    def get_observation(
        self,
        agents: Collection[str],
        after: int,
        timeout: float,
        step: int | None = None,
        generation: int | None = None,
        read: Mapping[str, int] | None = None,
    ) -> tuple[dict[str, Received], list[str]]:
        """Block until every agent has an entry newer than ``after`` (an ``inbox.mark()``).

        Args:
            agents: agent ids to wait for.
            after: the inbox mark taken before the action was sent.
            timeout: longest wait [s].
            step: the ``ACTION`` step; entries echoing an older step are no answer.
            generation: the connection the caller sent on; the wait ends early when the
                game disconnects or a new connection replaces it.
            read: per agent, the ``Received.seq`` last read of it: the entries since then
                are the car's (see ``Inbox.take``); None: the ones after ``after`` only.

        Returns:
            The entries found and the agents still missing (see ``Inbox.take``).
        """
        generation = self.generation if generation is None else generation

        def stop() -> bool:
            return (
                not self.server.connected
                or self.generation != generation
                or self.server.size_error is not None
            )

        return self.inbox.take(agents, after, timeout, min_step=step, stop=stop, read=read)

    def clear_observations(self, agents: Collection[str] | None = None) -> None:
        """Forget buffered observations (of ``agents``, or all)."""
        self.inbox.clear(agents)

"""The ``backend=roblox`` settings: ``RobloxConfig`` and the server's ``ServerConfig``
(their schemas in ``racing_rl.config``). Plain dataclasses: importing them starts no
server and needs no WebSocket library."""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass, field

from racing_rl.bridge.protocol import MAX_ENVIRONMENTS, WATCHDOG_TICKS
from racing_rl.contract import STATE_SIZE
from racing_rl.envs.config import GameEpisodeConfig
from racing_rl.errors import ConfigError, check_flag, check_integer, check_range, is_integer


@dataclass(frozen=True)
class ServerConfig:
    """Where and how the bridge listens (``backend.server``).

    Attributes:
        host: address to bind; anything but loopback needs ``token``.
        port: TCP port; 0 picks a free one, bound on the first address of ``host`` only
            where it has several (``BridgeServer.url`` names it).
        path: URL path prefix; the game connects to ``<path>/<model_id>``.
        token: shared secret the game presents as ``Authorization: Bearer <token>`` or
            ``?token=<token>`` in the URL; None accepts any game (loopback only).
        max_message_bytes: largest frame accepted [bytes]; larger closes the connection.
        ping_after: silence before the server sends ``PING`` [s]; inf never pings.
        send_timeout: longest a send may block on a slow connection [s].
    """

    host: str = "127.0.0.1"
    port: int = 8000
    path: str = "/ws"
    token: str | None = None
    max_message_bytes: int = 1 << 20
    ping_after: float = 5.0
    send_timeout: float = 5.0

    def __post_init__(self) -> None:
        check_range("server.ping_after", self.ping_after, 0, low_open=True, inf="never ping")
        check_range("server.send_timeout", self.send_timeout, 0, low_open=True)
        check_integer("server.port", self.port, 0)
        if self.port > 65535:
            raise ConfigError(f"server.port must be in [0, 65535], got {self.port}.")
        check_integer("server.max_message_bytes", self.max_message_bytes, 1024)
        if not isinstance(self.path, str) or not self.path.startswith("/"):
            raise ConfigError(f"server.path must start with '/', got {self.path!r}.")
        if not _is_loopback(self.host) and not self.token:
            raise ConfigError(
                f"server.host={self.host!r} exposes the bridge beyond this machine, so it "
                "needs a token: set backend.server.token (the game sends it as "
                "'Authorization: Bearer <token>' or ?token=...), or bind 127.0.0.1."
            )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class GameRules:
    """What racing-rl needs to know of the game's physics.

    Attributes:
        dt: the game's tick, one env step [s] (the seed game runs at ~15 Hz).
    """

    dt: float = 1 / 15

    def __post_init__(self) -> None:
        check_range("rules.dt", self.dt, 0, low_open=True)


@dataclass(frozen=True)
class RobloxConfig:
    """The ``backend=roblox`` config group: its schema and defaults
    (``racing_rl.config.backend_schema``; ``conf/backend/roblox.yaml`` sets what differs).

    Attributes:
        server: where the bridge listens (``ServerConfig``).
        observation_size: numbers per observation: the car's rays, then nitro, speed and
            is_reverse (19 for the game's 16-ray cars). None (the default) takes it from
            the game's first observation; a number pins it (entries of another length
            are dropped, and if every one is, training stops with an error).
        max_environments: virtual environments open in the game at once, validation
            included; the game keeps each apart with a collision group, and Roblox
            allows 32 per place (one is the default group).
        update_collisions: car-car collisions in the game (``UPDATE_COLLISIONS``).
        freeze_during_updates: ``FREEZE`` the game during every pause of training that
            can last seconds (policy updates, validation set-up, checkpoint saves).
        connect_timeout: how long to wait for the game to connect [s]; inf waits for ever.
        reconnect_timeout: how long to wait for it after a disconnect [s]; inf waits for
            ever.
        observation_timeout: how long a step waits for the cars' observations [s],
            from its ``ACTION``s (for every environment of the step together): a car
            still missing then is truncated and respawned; a game that sent no
            frame at all in that time has stopped, and training ends with an error. Below
            90 % of the game's watchdog (``WATCHDOG_TICKS`` ticks: 16.7 s at its 15 Hz,
            so at most 15 s), which the wait, sending no ``ACTION``, would set off.
        rules: the game's nominal tick, used until the bridge has measured the real one
            (``tick_hz``, from the frames' arrivals).
        episode: episode limits applied on the Python side (``max_steps``, ``laps``),
            spawn hints sent to the game (``spawn``; the game ignores them) and
            ``reset`` (``car``: the game respawns each car itself; ``race``: one car's
            end respawns every car of its environment).
    """

    server: ServerConfig = field(default_factory=ServerConfig)
    observation_size: int | None = None
    max_environments: int = MAX_ENVIRONMENTS
    update_collisions: bool = False
    freeze_during_updates: bool = True
    connect_timeout: float = 120.0
    reconnect_timeout: float = 120.0
    observation_timeout: float = 10.0
    rules: GameRules = field(default_factory=GameRules)
    episode: GameEpisodeConfig = field(default_factory=lambda: GameEpisodeConfig(reset="car"))

    def __post_init__(self) -> None:
        for name in ("connect_timeout", "reconnect_timeout"):
            check_range(name, getattr(self, name), 0, low_open=True, inf="wait for ever")
        check_flag("update_collisions", self.update_collisions)
        check_flag("freeze_during_updates", self.freeze_during_updates)
        size = self.observation_size
        if size is not None and (not is_integer(size) or size <= STATE_SIZE):
            raise ConfigError(
                f"observation_size={self.observation_size!r}: it must be null (take it from "
                f"the game) or the game's rays + {STATE_SIZE} (19 for its 16-ray cars)."
            )
        check_integer("max_environments", self.max_environments, 1)
        if self.max_environments > MAX_ENVIRONMENTS:
            raise ConfigError(
                f"max_environments={self.max_environments}: the game keeps at most "
                f"{MAX_ENVIRONMENTS} environments apart (Roblox's 32 collision groups, less "
                "the default one)."
            )
        watchdog = WATCHDOG_TICKS * self.rules.dt
        limit = 0.9 * watchdog  # 15 s at 1/15 s (as a float, 15.000000000000002)
        if self.observation_timeout > limit:
            hz = 1 / self.rules.dt
            raise ConfigError(
                f"observation_timeout={self.observation_timeout:g}: while a step waits for a "
                "missing car no ACTION reaches the game, which closes every environment after "
                f"{WATCHDOG_TICKS} ticks without one ({watchdog:.1f} s at its {hz:g} Hz; "
                f"ROBLOX_GAME.md, 'Watchdog'): keep it at most {math.floor(limit * 100) / 100:g} s "
                "(90 % of that)."
            )
        check_range("observation_timeout", self.observation_timeout, 0, low_open=True)

"""A stand-in for the Roblox game: a WebSocket client that races the built-in simulator.

By default it behaves as the real game does (``docs/roblox.md``, the game's ``CmdHandler``):
it connects to ``ws://<host>:<port>/ws/<model_id>``, honours every command, sends rays
+ 3 numbers per car (nitro, speed, is_reverse; the ray count is the simulator's
``sensors.n_rays``), sends ``[]`` on every tick without an unfrozen car, respawns a car
by itself when its episode ends (that frame carries the fresh car's observation and
reward ``done_reward``), skips frozen cars (a ``FREEZE`` holds the cars that exist
then; cars spawned later run), closes every environment and goes silent
after ``watchdog_ticks`` ticks with an unfrozen car and no ``ACTION`` (ticks without
an unfrozen car pause that count; the connection stays open), warns when more
environments open than ``max_environments`` (the game's collision groups), and drops
the connection after ``silence_timeout`` without a server message, then reconnects;
each connection starts anew, with no environment, nothing frozen and its clock
ticking (the game cleans up when a connection ends). A frame it cannot decode, a
command that fails (data of another type) and an action that is not three numbers are
ignored with a warning, as the game's ``pcall`` around each does. It sends no
``info``, no hello and no step echo.

Two clocks: ``lockstep=False`` is the game's Heartbeat loop (``heartbeat_hz``): time
accumulates until it reaches 1/``tick_hz``, then a tick runs and the accumulator is
reset to zero (so a tick is 4-5 Heartbeats, 12-15 Hz). ``lockstep=True`` steps an
environment as soon as its ``ACTION`` arrives and answers at once (as fast as the
server goes: tests and benchmarks); ``ACTION``s that have arrived together are stepped
in one pass and answered in one frame, as a tick. On the game's clock a new car's first
``ACTION`` only sets its inputs and moves nothing, as in the game (its ``CmdHandler``
updates a car from its second ``ACTION`` on); lock-step applies it, so that a race
through the bridge is the simulator's, step for step.

Flags turn on the protocol's optional extensions (``info`` with lap metrics, echoed
``step``, a hello) and ``Faults`` misbehaves on request. ``racing-rl emulate url=...``
runs it from the command line (``racing_rl.emulate``).

Why one module of ~600 lines: the emulated game is one state machine around one event
loop (connection, commands, ticks, the real game's rules in lock-step or on its own
clock); its faults on purpose live in ``racing_rl.bridge.faults``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import json
import logging
import math
import threading
from collections import Counter, deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI
from websockets.uri import parse_uri

from racing_rl.bridge import protocol as p
from racing_rl.bridge.faults import BAD_INFO, Faults, bad_frame, with_bad_info
from racing_rl.envs.config import RaceConfig
from racing_rl.envs.race import RaceParallelEnv
from racing_rl.errors import ConfigError, RacingRLError
from racing_rl.files import cannot_write

log = logging.getLogger(__name__)

EMPTY_FRAME = "[]"
"""What the game sends on a tick without entries: Roblox's JSONEncode of an empty table."""

OPEN_TIMEOUT = 5.0
"""How long a connection attempt may take [s]."""


class _GameEnv:
    """One virtual environment of the emulated game: the server's agent ids on a sim race."""

    def __init__(self, agents: Sequence[str], config: RaceConfig) -> None:
        self.agents = list(agents)
        self.env = RaceParallelEnv(config, n_cars=len(self.agents))
        self.names = dict(zip(self.env.possible_agents, self.agents, strict=True))
        self.ids = {agent: sim for sim, agent in self.names.items()}
        self.actions = {sim: np.zeros(3) for sim in self.env.possible_agents}
        # Cars (re)spawned since their last ACTION: the game's first ACTION for a new car
        # only sets its inputs (CmdHandler's ACTION updates a car from its second on).
        self.fresh: set[str] = set(self.env.possible_agents)
        # FREEZE holds the cars that exist when it arrives; cars spawned later run (the
        # game's SetupCar makes a car unfrozen). Here per environment: a spawn thaws it.
        self.frozen = False
        self.removed: set[str] = set()
        self.lost: set[str] = set()
        self.acted = False
        self.reported = False
        self.driven = False  # an ACTION came since the cars were (re)spawned
        self.missed = 0  # ticks without an ACTION since the last one (counted if one follows)
        self.step: int | None = None
        self.track_seed: int | None = None
        self.last_reset: dict[str, Any] = {}

    def reset(self, track_seed: int, spawn: str, seed: int | None) -> dict[str, Any]:
        env = self.env
        episode = dataclasses.replace(env.config.episode, spawn=spawn)
        env.config = dataclasses.replace(env.config, episode=episode)
        new_track = track_seed != self.track_seed or seed is not None
        self.track_seed = track_seed
        observations, _ = env.reset(
            seed=seed, options={"track_seed": track_seed} if new_track else None
        )
        self.actions = {sim: np.zeros(3) for sim in env.possible_agents}
        self.fresh = set(env.possible_agents)
        return {sim: (obs, 0.0, False, False, {}) for sim, obs in observations.items()}

    def respawn(self, sims: Sequence[str]) -> dict[str, Any]:
        """Respawn some cars, as the game does (the others race on): they start afresh,
        with no action yet. Returns sim agent → the new car's observation."""
        observations = self.env.respawn(sims)
        self.fresh.update(sims)
        for sim in sims:
            self.actions[sim] = np.zeros(3)
        return observations

    @staticmethod
    def advance_many(envs: Sequence[_GameEnv], done_reward: float) -> list[dict[str, Any]]:
        """Step environments with their last actions (as a game steps every car of a
        tick); a car whose episode ends is respawned at once and its message carries the
        new car, with ``done_reward``.

        Returns:
            Per environment, sim agent → (observation, reward, terminated, truncated, info).
        """
        results = [env.env.step({sim: env.actions[sim] for sim in env.env.agents}) for env in envs]
        answers = []
        for env, (observations, rewards, terminated, truncated, infos) in zip(
            envs, results, strict=True
        ):
            ended = [sim for sim in observations if terminated[sim] or truncated[sim]]
            if ended:  # the game respawns a car at once; the message carries the new car
                observations.update(env.respawn(ended))
            answers.append(
                {
                    sim: (
                        observations[sim],
                        done_reward if sim in ended else rewards[sim],
                        terminated[sim],
                        truncated[sim],
                        infos[sim],
                    )
                    for sim in observations
                }
            )
        return answers


def _as_roblox_writes(number: float) -> float | int:
    """``number`` as Roblox's ``HttpService:JSONEncode`` writes it: a whole number without
    a fraction (nitro's ``1``, is_reverse's ``0``, a reward of ``-20``), as a JSON
    integer."""
    return int(number) if number.is_integer() else number


class Emulator:
    """Plays the game's side of the bridge with the built-in simulator.

    Args:
        url: the server's ``ws://host:port/ws/<model_id>``.
        sim: the simulator's settings (tracks, cars, sensors, rules, rewards).
        lockstep: step on each ``ACTION`` (True: tests, benchmarks) or tick on the game's
            clock (False, the default: the game).
        tick_hz: the game's tick rate before its accumulator reset (its ``MaxFPS``) [Hz].
        heartbeat_hz: the game engine's frame rate (Roblox's Heartbeat) [Hz].
        token: sent as ``Authorization: Bearer <token>``.
        done_reward: reward on the message that ends a car's episode (the game: −20).
        track_seeds: tracks drawn when the server does not name one.
        hello: send the optional hello on connecting (an extension).
        info: send each entry's ``info`` with lap metrics (an extension).
        echo_step: echo each ``ACTION``'s ``step`` in the entries (an extension).
        watchdog_ticks: after more than this many ticks in a row with an unfrozen car
            and no ``ACTION``, close every environment and stop ticking (the game's
            watchdog; 0 = off). Only on the game's clock.
        max_environments: environments the game keeps apart (collision groups); one
            more is opened without isolation and counted in ``unisolated``.
        silence_timeout: drop the connection after this long without a message [s].
        unreachable_every: while it cannot connect, say so again this often [s] (the
            first failed attempt says it at once, with what to do; each retry only at
            debug level).
        faults: misbehaviour for tests.
        record: also append every received command, as received, to this JSON-lines file.
        seed: seeds the track draws.
        history: commands kept in ``commands``.

    Raises:
        ConfigError: if ``url`` is not a ``ws://`` or ``wss://`` address, a rate or
            ``silence_timeout`` is not > 0, ``watchdog_ticks`` < 0, ``max_environments`` < 1
            or ``track_seeds`` empty, or ``record`` cannot be written.

    Attributes:
        commands: the last ``history`` commands received, ``{"command", "envid", "data"}``,
            oldest first (``record`` keeps them all).
        received: commands received in all.
        connections: connections made so far.
    """

    def __init__(
        self,
        url: str,
        sim: RaceConfig | None = None,
        *,
        lockstep: bool = False,
        tick_hz: float = 15.0,
        heartbeat_hz: float = 60.0,
        token: str | None = None,
        done_reward: float = -20.0,
        track_seeds: Sequence[int] = range(100_000),
        hello: bool = False,
        info: bool = False,
        echo_step: bool = False,
        watchdog_ticks: int = 250,
        max_environments: int = p.MAX_ENVIRONMENTS,
        silence_timeout: float = 20.0,
        unreachable_every: float = 10.0,
        faults: Faults | None = None,
        record: Path | None = None,
        seed: int = 0,
        history: int = 10_000,
    ) -> None:
        try:
            parse_uri(url)
        except InvalidURI as err:
            raise ConfigError(
                f"url={url!r} is not a WebSocket address ({err}): give "
                "ws://<host>:<port>/ws/<model_id>, as the bridge logs it."
            ) from None
        for name, rate in (("tick_hz", tick_hz), ("heartbeat_hz", heartbeat_hz)):
            if not (math.isfinite(rate) and rate > 0):
                raise ConfigError(f"{name}={rate}; must be a frame rate > 0 [Hz].")
        if not silence_timeout > 0:  # 0 dropped every connection at once, again and again
            raise ConfigError(f"silence_timeout={silence_timeout}; must be > 0 [s].")
        if watchdog_ticks < 0 or max_environments < 1 or len(track_seeds) == 0:
            raise ConfigError(
                f"watchdog_ticks={watchdog_ticks} (>= 0; 0: off), max_environments="
                f"{max_environments} (>= 1), {len(track_seeds)} track_seeds (>= 1): out of range."
            )
        # Each command is appended as it comes: a file that cannot be written failed every
        # connection (said as a connection's failure), reconnecting again and again.
        if record is not None and (why := cannot_write(record)):  # makes missing folders
            raise ConfigError(f"record={record} cannot be written: {why}.")
        config = sim or RaceConfig()
        # Episodes end when the car's does (crash, stuck); limits are the server's.
        episode = dataclasses.replace(
            config.episode, max_steps=2**62, laps=0, track_change_every=2**62
        )
        self.config = dataclasses.replace(config, episode=episode)
        self.url = url
        self.lockstep = lockstep
        self.tick_period = 1.0 / tick_hz
        self.heartbeat_period = 1.0 / heartbeat_hz
        self.observation_size = config.observation_size
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.done_reward = done_reward
        self.track_seeds = track_seeds
        self.hello = hello
        self.info = info
        self.echo_step = echo_step
        self.watchdog_ticks = watchdog_ticks
        self.max_environments = max_environments
        self.ticks = 0
        """Ticks of the game's clock so far (frames sent, empty ones included)."""
        self.empty_frames = 0
        """``[]`` frames sent."""
        self.watchdog_shutdowns = 0
        """Times the watchdog closed every environment and stopped the ticks."""
        self.unisolated = 0
        """Environments opened beyond ``max_environments`` (without collision isolation)."""
        self.awaited = 0
        """Ticks (per environment) that followed a tick that reported its cars, while it
        was driven: from its first ``ACTION`` after a spawn to its last (not those of an
        environment that is no longer stepped, such as an evaluation's finished car)."""
        self.in_time = 0
        """Of those, the ticks before which a new ``ACTION`` of the environment had arrived."""
        self.stopped = False
        self.silence_timeout = silence_timeout
        self.unreachable_every = unreachable_every
        self.faults = faults or Faults()
        self.record = record
        self.rng = np.random.default_rng(seed)
        # Bounded: an emulator runs for hours, and a growing list of small dicts also
        # makes every full garbage collection slower (40 ms at 20,000 commands), which
        # stalls the game loop and shows in the bridge's latency.
        self.commands: deque[dict[str, Any]] = deque(maxlen=history)
        self.received = 0
        self.connections = 0
        self._closing: asyncio.Task[None] | None = None  # a failed tick's connection close
        self.faults_sent: Counter[str] = Counter()
        """Bad frames sent on purpose (``Faults``), by kind."""
        self.frozen = False
        """The last ``FREEZE``'s status (it holds the cars that existed then)."""
        self.unresponsive_ticks = 0
        self.collisions = False
        self.envs: dict[str, _GameEnv] = {}
        self._sent = 0
        self._dropped = False
        self._last_message = 0.0
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ running
    async def run(self) -> None:
        """Connect, play, and reconnect after every drop, until ``stop``."""
        self._loop = loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        delay = 0.05
        unreachable_since: float | None = None  # when the failed attempts began
        refused_since: float | None = None  # when closes before any command began
        said = 0.0  # when either was last reported
        while not self._stop.is_set():
            received, opened = self.received, self.connections
            try:
                async with connect(
                    self.url,
                    additional_headers=self.headers,
                    compression=None,
                    proxy=None,
                    max_size=None,
                    open_timeout=OPEN_TIMEOUT,
                ) as connection:
                    self.connections += 1
                    unreachable_since = None
                    log.log(
                        logging.DEBUG if refused_since else logging.INFO,
                        "emulator connected to %s (connection %d)",
                        self.url,
                        self.connections,
                    )
                    try:
                        await self._session(connection)
                    except asyncio.CancelledError:  # Ctrl-C: leave as a game that quits
                        await connection.close(1001, "the game is stopping")
                        raise  # (websockets would close with 1011, an internal error)
            except (OSError, InvalidHandshake, InvalidStatus, asyncio.TimeoutError) as err:
                if self.connections > opened:  # connected, then failed: not unreachable
                    if self.received > received:  # it played: reconnect at once
                        delay, refused_since = 0.05, None
                    log.warning(
                        "emulator: connection %d to %s failed (%s: %s); reconnecting",
                        self.connections,
                        self.url,
                        type(err).__name__,
                        err,
                    )
                else:
                    reason, advice = _unreachable(err)
                    now = loop.time()
                    if unreachable_since is None:
                        unreachable_since = said = now
                        log.warning(
                            "emulator cannot connect to %s: %s. It keeps retrying; %s",
                            self.url,
                            reason,
                            advice,
                        )
                    elif now - said >= self.unreachable_every:
                        said = now
                        log.warning(
                            "emulator still cannot connect to %s after %.0f s: %s; retrying",
                            self.url,
                            now - unreachable_since,
                            reason,
                        )
                    log.debug("emulator: no connection (%s); retry in %.2f s", err, delay)
            except ConnectionClosed as err:
                if self.received > received:  # it played: reconnect at once
                    delay, refused_since = 0.05, None
                    log.info("emulator connection closed: %s", err)
                else:  # closed before any command: refused (another game, a wrong size)
                    now = loop.time()
                    if refused_since is None or now - said >= self.unreachable_every:
                        close = err.rcvd or err.sent
                        why = f"close code {close.code}: {close.reason}" if close else str(err)
                        log.warning(
                            "emulator: the bridge at %s closed the connection before any "
                            "command (%s)%s; it keeps retrying",
                            self.url,
                            why,
                            ""
                            if refused_since is None
                            else f", refused for {now - refused_since:.0f} s",
                        )
                        said = now
                        refused_since = refused_since or now
            except Exception:  # a game keeps running: report, then reconnect
                log.exception("emulator: error on connection %d", self.connections)
            else:
                delay, refused_since = 0.05, None
            if not self._stop.is_set():
                await asyncio.sleep(delay)
                delay = min(2 * delay, 1.0)

    def start(self) -> Emulator:
        """Run in a background thread (tests, benchmarks); returns self."""
        ready = threading.Event()

        def main() -> None:
            async def go() -> None:
                task = asyncio.create_task(self.run())
                while self._stop is None:
                    await asyncio.sleep(0)
                ready.set()
                await task

            asyncio.run(go())

        self._thread = threading.Thread(target=main, name="racing-rl-emulator", daemon=True)
        self._thread.start()
        ready.wait()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop playing and disconnect."""
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout)

    async def _session(self, connection: ClientConnection) -> None:
        # The game cleans up when a connection ends (every environment closed) and meets
        # the next one with a new command handler: nothing frozen, its clock ticking.
        self.envs.clear()
        self.frozen, self.stopped, self.unresponsive_ticks = False, False, 0
        if self.hello:
            hello = {"protocol": p.PROTOCOL_VERSION, "observation_size": self.observation_size}
            await connection.send(json.dumps({"hello": {**hello, "game": "racing-rl emulator"}}))
        ticker = None if self.lockstep else asyncio.create_task(self._tick(connection))
        if ticker is not None:  # a tick that fails drops the connection, not the game's voice
            ticker.add_done_callback(lambda task: self._ticker_ended(task, connection))
        watchdog = asyncio.create_task(self._watchdog(connection))
        arrived: asyncio.Queue[str | bytes | None] = asyncio.Queue()
        reader = asyncio.create_task(self._read(connection, arrived))
        try:
            ended = False
            while not ended:  # everything that has arrived, at once
                frames = [await arrived.get()]
                while frames[-1] is not None and not arrived.empty():
                    frames.append(arrived.get_nowait())
                ended = frames[-1] is None
                await self._play(connection, frames[:-1] if ended else frames)
            await reader  # a broken connection raises here
        finally:
            reader.cancel()
            watchdog.cancel()
            if ticker is not None:
                ticker.cancel()

    def _ticker_ended(self, task: asyncio.Task[None], connection: ClientConnection) -> None:
        """A tick loop that raised would leave the game connected and silent: log the
        error and close the connection, which makes a fresh game (as after any error)."""
        if task.cancelled() or task.exception() is None:
            return
        if isinstance(task.exception(), ConnectionClosed):  # the server closed it: not a fault
            log.debug("emulator: the connection closed during a tick: %s", task.exception())
            return
        log.error("emulator: a tick failed; closing the connection", exc_info=task.exception())
        # Held until done (the loop keeps only weak references to tasks).
        self._closing = task.get_loop().create_task(connection.close(1011, "emulator tick failed"))

    async def _read(
        self, connection: ClientConnection, arrived: asyncio.Queue[str | bytes | None]
    ) -> None:
        """Queue the server's frames as they arrive; None when the connection ends."""
        try:
            async for frame in connection:
                self._last_message = asyncio.get_running_loop().time()
                arrived.put_nowait(frame)
        finally:
            arrived.put_nowait(None)

    async def _play(self, connection: ClientConnection, frames: Sequence[str | bytes]) -> None:
        """Carry out the commands that have arrived, in order.

        In lock-step, consecutive ``ACTION``s of different environments are stepped
        together and answered in one message, as a game's tick steps every car.
        Nothing waits for more frames: what has arrived is what is stepped.
        """
        due: list[_GameEnv] = []
        for frame in frames:
            message = _decoded(frame)
            if message is None:
                continue
            if message.get("command") != p.ACTION or self.envs.get(message.get("envid")) in due:
                await self._answer(connection, due)  # answered before what follows
                due = []
            try:
                env = await self._command(connection, message)
            except RacingRLError:  # the emulator's own settings (a spawn option): not pcall's
                raise
            except (AttributeError, TypeError, ValueError, KeyError, IndexError) as err:
                # The game runs each handler under pcall: it warns and carries on.
                log.warning(
                    "emulator: error handling command %.40r for env %.60r (ignored, as the "
                    "game does): %r",
                    message.get("command"),
                    message.get("envid"),
                    err,
                )
                continue
            if env is not None:
                due.append(env)
        await self._answer(connection, due)

    async def _answer(self, connection: ClientConnection, envs: Sequence[_GameEnv]) -> None:
        """Step ``envs`` in one pass and answer them in one message (lock-step)."""
        if envs:
            await self._send(connection, self._step_entries(envs))

    async def _watchdog(self, connection: ClientConnection) -> None:
        """Close the connection on ``stop``, or after ``silence_timeout`` without a message."""
        loop = asyncio.get_running_loop()
        self._last_message = loop.time()
        assert self._stop is not None
        while True:
            with contextlib.suppress(asyncio.TimeoutError):  # TimeoutError from 3.11 on
                await asyncio.wait_for(self._stop.wait(), min(1.0, self.silence_timeout))
            if self._stop.is_set():
                await connection.close()
                return
            if loop.time() - self._last_message > self.silence_timeout:
                log.warning("emulator: no message for %.0f s, reconnecting", self.silence_timeout)
                await connection.close()
                return

    async def _tick(self, connection: ClientConnection) -> None:
        """The game's Heartbeat loop: accumulate frame time; at 1/``tick_hz`` tick and
        reset the accumulator to zero (not subtract), as the game does."""
        loop = asyncio.get_running_loop()
        accumulated, last = 0.0, loop.time()
        while not self.stopped:
            await asyncio.sleep(self.heartbeat_period)
            now = loop.time()
            accumulated, last = accumulated + now - last, now
            if accumulated < self.tick_period:
                continue
            accumulated = 0.0
            await self._game_tick(connection)

    async def _game_tick(self, connection: ClientConnection) -> None:
        """One tick: every unfrozen car's entry (``[]`` if none), then the watchdog."""
        self.ticks += 1
        envs = [env for env in self.envs.values() if not env.frozen]
        acted = any(env.acted for env in envs)
        for env in envs:
            if env.acted:
                if env.reported:  # reported last tick and answered before this one
                    self.awaited += 1 + env.missed  # with the ticks it missed before
                    self.in_time += 1
                env.missed, env.driven = 0, True
            elif env.reported and env.driven:  # late, unless no ACTION follows any more
                env.missed += 1
            env.acted, env.reported = False, True
        await self._send(connection, self._step_entries(envs) if envs else {})
        if acted or not self.watchdog_ticks:
            self.unresponsive_ticks = 0
            return
        if not any(set(env.agents) - env.removed for env in envs):
            return  # no unfrozen car: the game's count waits (it is not reset)
        self.unresponsive_ticks += 1
        if self.unresponsive_ticks > self.watchdog_ticks:
            log.warning(
                "emulator: no ACTION for %d ticks: closing every environment and stopping "
                "(the game's watchdog)",
                self.watchdog_ticks,
            )
            self.watchdog_shutdowns += 1
            self.envs.clear()
            self.stopped = True

    # ------------------------------------------------------------------ commands
    async def _command(
        self, connection: ClientConnection, message: dict[str, Any]
    ) -> _GameEnv | None:
        """Record and carry out one command; returns the environment that an ``ACTION``
        asks to step now (lock-step), for ``_play`` to step and answer."""
        command = message.get("command")
        envid = message.get("envid", "")
        data = message.get("data") or {}
        entry = {"command": command, "envid": envid, "data": data}
        self.commands.append(entry)
        self.received += 1
        if self.record is not None:
            with self.record.open("a") as out:  # as received (an ACTION's step included)
                out.write(json.dumps(message) + "\n")
        answer: _GameEnv | None = None
        if command in (p.SPAWN_AGENTS, p.RESET_AGENTS):
            answer = self._spawn(command, envid, data)
        elif command == p.REMOVE_AGENTS and envid in self.envs:
            self.envs[envid].removed.update(data.get("agents", []))
        elif command == p.ACTION and envid in self.envs:
            env = self.envs[envid]
            env.acted = True
            env.step = message.get("step") if self.echo_step else None
            for agent, action in data.items():
                sim = env.ids.get(agent)
                if sim is None:
                    continue
                if not _is_action(action):  # the game's handler fails on it: inputs kept
                    log.warning(
                        "emulator: the action for %s is %.80r, not [throttle, steering, "
                        "nitro] numbers: ignored (the game's ACTION handler fails on it)",
                        agent,
                        action,
                    )
                    continue
                if sim in env.fresh:
                    env.fresh.discard(sim)
                    if not self.lockstep:  # the game's: a new car's first moves nothing
                        continue
                env.actions[sim] = np.asarray(action[:3], dtype=np.float64)
            if self.lockstep and not env.frozen:
                return env
        elif command == p.FREEZE:
            self.frozen = bool(data.get("status"))
            for env in self.envs.values():  # no answer is due across a freeze
                env.reported, env.frozen = False, self.frozen
            if self.frozen and self.lockstep:  # the ticks while frozen
                await self._send(connection, {})
        elif command == p.UPDATE_COLLISIONS:  # without the flag the game keeps its setting
            enabled = data.get("enable_collisions", data.get("status"))
            self.collisions = self.collisions if enabled is None else bool(enabled)
            for env in self.envs.values():
                self._apply_collisions(env)
        elif command == p.CLOSE:
            self.envs.pop(envid, None)
        elif command == p.CLOSE_ALL:
            self.envs.clear()
        elif command not in (p.PING, p.CREATE_ENV, p.HELLO):
            log.warning("emulator: ignoring command %r for env %r", command, envid)
        if answer is not None and self.lockstep and not answer.frozen:
            await self._send(connection, self._entries(answer, answer.last_reset))
        return None

    def _spawn(self, command: str, envid: str, data: Mapping[str, Any]) -> _GameEnv | None:
        """``SPAWN_AGENTS`` or ``RESET_AGENTS``, which the game handles alike
        (``CmdHandler``): the listed cars are (re)spawned, the environment's other cars race
        on. ``SPAWN_AGENTS`` of every car, or of a car new to the environment, makes a new
        race of the listed cars (the simulator's races have a fixed set of cars; the game
        would keep the others)."""
        agents = list(data.get("agents", []))
        options = data.get("options") or {}
        env = self.envs.get(envid)
        some = env is not None and set(agents) < set(env.agents)
        if env is None or set(agents) - set(env.agents) or (command == p.SPAWN_AGENTS and not some):
            if not agents:
                return None
            if envid not in self.envs and len(self.envs) >= self.max_environments:
                self.unisolated += 1
                log.warning(
                    "emulator: environment %d opened; the game keeps only %d apart (its "
                    "collision groups): this one collides with the others",
                    len(self.envs) + 1,
                    self.max_environments,
                )
            env = _GameEnv(agents, self.config)  # registered once its race is set up
            self._apply_collisions(env)
        env.removed.clear()
        env.lost.difference_update(agents)
        env.frozen = False  # new cars run, frozen game or not
        env.driven, env.missed = False, 0  # the wait for the new cars is no ACTION's due
        if some and env.track_seed is not None:  # the game respawns just these cars
            observations = env.respawn([env.ids[agent] for agent in agents])
            env.last_reset = {
                sim: (obs, 0.0, False, False, {}) for sim, obs in observations.items()
            }
            return env
        track_seed = options.get("track_seed")
        if track_seed is None:
            track_seed = int(self.track_seeds[int(self.rng.integers(len(self.track_seeds)))])
        seed = options.get("seed")
        if seed is None and command == p.SPAWN_AGENTS:  # a new race: seed its spawns
            seed = int(self.rng.integers(2**31))
        env.last_reset = env.reset(int(track_seed), options.get("spawn", "random"), seed)
        self.envs[envid] = env
        return env

    def _apply_collisions(self, env: _GameEnv) -> None:
        rules = dataclasses.replace(env.env.config.rules, car_collisions=self.collisions)
        env.env.config = dataclasses.replace(env.env.config, rules=rules)

    # ------------------------------------------------------------------ messages
    def _step_entries(self, envs: Sequence[_GameEnv]) -> dict[str, Any]:
        """Step ``envs`` together; one message's entries for all their cars
        (a game sends one message per tick, lock-step one per pass)."""
        entries: dict[str, Any] = {}
        for env, answer in zip(envs, _GameEnv.advance_many(envs, self.done_reward), strict=True):
            entries.update(self._entries(env, answer))
        return entries

    def _entries(self, env: _GameEnv, results: Mapping[str, Any]) -> dict[str, Any]:
        gone = env.removed | env.lost
        sims = [sim for sim in results if env.names[sim] not in gone]
        if not sims:
            return {}
        # float32 observations as float64: JSON carries them exactly.
        rows = np.array([results[sim][0] for sim in sims], dtype=np.float64)
        entries = {}
        for sim, obs in zip(sims, rows[:, : self.observation_size].tolist(), strict=True):
            _, reward, terminated, truncated, info = results[sim]
            entry: dict[str, Any] = {
                "obs": [_as_roblox_writes(x) for x in obs],
                "reward": _as_roblox_writes(float(reward)),
                "terminated": bool(terminated),
                "truncated": bool(truncated),
            }
            if self.info:  # the protocol's keys only: the bridge drops any other
                info = {"track_seed": env.track_seed, **info}
                entry["info"] = {k: v for k, v in info.items() if k in p.INFO_FIELDS}
            if env.step is not None:
                entry["step"] = env.step
            entries[env.names[sim]] = entry
        return entries

    async def _send(self, connection: ClientConnection, entries: dict[str, Any]) -> None:
        faults = self.faults
        if faults.silent_after is not None and self._sent >= faults.silent_after:
            return
        self._sent += 1
        if faults.lose_car_after is not None and self._sent == faults.lose_car_after + 1:
            env = next(iter(self.envs.values()), None)
            if env is not None:
                log.warning("emulator: car %s is not reported any more (fault)", env.agents[0])
                env.lost.add(env.agents[0])
                entries.pop(env.agents[0], None)
        if faults.spoil_after is not None and self._sent > faults.spoil_after:
            nan = float("nan")
            entries = {a: {**e, "obs": [nan] * len(e["obs"])} for a, e in entries.items()}
        if faults.delay:
            await asyncio.sleep(faults.delay)
        first = dict(itertools.islice(entries.items(), 1))  # no other car's valid entry
        for kind in faults.flood:
            if kind not in BAD_INFO:
                self.faults_sent[kind] += 1
                await connection.send(bad_frame(kind, first)[0])
        bad_info = [kind for kind in faults.flood if kind in BAD_INFO]
        if bad_info and entries:  # in the message itself: each car ticks once
            self.faults_sent.update(bad_info)
            entries = with_bad_info(bad_info, entries)
        kind = faults.inject.get(self._sent)
        if kind is not None:
            self.faults_sent[kind] += 1
            log.warning("emulator: sending a %s message (fault)", kind)
            bad, entries = bad_frame(kind, entries)
            await connection.send(bad)
        if not entries:
            self.empty_frames += 1
        await connection.send(json.dumps(entries) if entries else EMPTY_FRAME)
        if faults.drop_after is not None and not self._dropped and self._sent >= faults.drop_after:
            self._dropped = True
            log.warning("emulator: dropping the connection (fault)")
            await connection.close(1001, "dropped on purpose")


def _decoded(frame: str | bytes) -> dict[str, Any] | None:
    """A server frame as the game reads it: a JSON object with a string, null or no
    ``envid``; None, with a warning, for anything else (the game's ``JSONDecode`` fails,
    or its ``CmdHandler`` cannot use it: it warns and carries on)."""
    try:
        message = json.loads(frame)
    except ValueError as err:
        log.warning("emulator: failed to decode a message (ignored, as the game does): %s", err)
        return None
    envid = message.get("envid") if isinstance(message, dict) else None
    if not isinstance(message, dict) or not (envid is None or isinstance(envid, str)):
        log.warning(
            "emulator: a message that is not a command object (ignored, as the game does): %.80r",
            message,
        )
        return None
    return message


def _is_action(action: Any) -> bool:
    """Whether ``action`` is what the game's ``ACTION`` handler reads: a list of (at
    least) 3 finite numbers, throttle, steering and nitro (it uses the first 3)."""
    return (
        isinstance(action, list)
        and len(action) >= 3
        and all(type(v) in (int, float) and math.isfinite(v) for v in action[:3])
    )


def _unreachable(err: Exception) -> tuple[str, str]:
    """Why a connection attempt failed, and what to do about it, in words.

    Args:
        err: what ``websockets.asyncio.client.connect`` raised.

    Returns:
        The reason (``connection refused``, the server's HTTP status, ...) and the advice.
    """
    if isinstance(err, InvalidStatus):
        status = err.response.status_code
        body = err.response.body.decode(errors="replace").strip() if err.response.body else ""
        advice = {
            401: "check token= (or RACING_RL_BRIDGE_TOKEN) against the server's.",
            404: "check that the url's path is /ws/<model_id> (the bridge's backend.server.path).",
            403: "the bridge serves the game that connected first: use its model id in url=, "
            "or start another run for this one.",
        }
        return (
            f"the server refused it with HTTP {status}" + (f" ({body})" if body else ""),
            advice.get(status, "check url=ws://<host>:<port>/ws/<model_id> and token=."),
        )
    if isinstance(err, ConnectionRefusedError):
        reason = "connection refused (nothing listens there)"
    elif isinstance(err, asyncio.TimeoutError):
        reason = f"no answer within {OPEN_TIMEOUT:g} s"
    else:
        reason = str(err) or type(err).__name__
    return (
        reason,
        "start the bridge it connects to first (racing-rl train backend=roblox, or "
        "racing-rl eval run_dir=<run> backend=roblox), or check url=ws://<host>:<port>/ws/"
        "<model_id> against the address the bridge logs.",
    )

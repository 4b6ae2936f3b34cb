"""RobloxParallelEnv: a PettingZoo ParallelEnv whose cars live in a Roblox game.

Each instance is one virtual environment of the game (an ``envid``) with ``n_cars``
cars; every instance of a run shares one ``TrainingBridge`` (one game connection). The
spaces are the simulator's (``racing_rl.envs.race``), so a policy trained on one backend
drives on the other.

Why one module of ~420 lines: ``RobloxParallelEnv`` is one environment's episode
bookkeeping against a game that runs on its own (resets, cars the game respawned, cars
it lost, late actions, reconnections); each method is a case of the same state.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding
from numpy.typing import NDArray
from pettingzoo import ParallelEnv

from racing_rl.bridge.config import RobloxConfig
from racing_rl.bridge.protocol import ACTION, RESET_AGENTS, SPAWN_AGENTS
from racing_rl.bridge.training_bridge import TrainingBridge
from racing_rl.contract import (
    STATE_SIZE,
    AgentID,
    ParallelStepReturn,
    action_space,
    observation_space,
    track_change_due,
    track_seed_option,
)
from racing_rl.errors import BridgeError, ConfigError

log = logging.getLogger(__name__)

NOT_SPAWNED = (
    "It did not spawn them, and says nothing of it: its main.server script's "
    "carModel must name a model in ServerStorage.CarModels (the repository has 'Car', "
    "'Bus', 'Golf cart', 'Quad', 'Telsa', 'Truck'), and the place needs at least as many "
    "parts tagged SPAWN as an environment has cars (cars_per_race: each car of an "
    "environment takes a part of its own). Fix the place, press Play again, and run the "
    "command again (`racing-rl train resume=<run dir>` if it saved a checkpoint)."
)
"""Why a ticking game reports no entry of cars it was told to spawn (``CmdHandler``'s
``SPAWN_AGENTS`` skips a car whose model or spawn part it cannot find, silently)."""
UNREPORTED_STEPS = 3
"""Steps in a row in which a ticking game reports no usable entry of any car of an
environment (each car truncated and respawned after every one) before training stops:
the game no longer serves these cars (it drops their entries as bad, or lost them)."""


@dataclass(frozen=True)
class _Sent:
    """An ACTION sent: to whom, on which connection, after which inbox mark (None: not
    sent, the game is gone), its step number, and the game's frames received before it
    (a lock-step game may answer before ``step`` starts waiting) and its entries dropped
    as bad before it; ``actions`` as ``send_actions`` was given them; ``deadline``
    (``time.monotonic()``) ends the wait for the answer ``observation_timeout`` after it
    was sent, however long the environments stepped before this one waited."""

    actions: dict[AgentID, Any]
    agents: list[AgentID]
    generation: int
    after: int | None
    step: int
    frames: int
    dropped: int
    deadline: float


class RobloxParallelEnv(ParallelEnv):
    """``n_cars`` cars of one virtual environment of a Roblox game, over the bridge.

    ## Observation Space
    ``Box(shape=(observation_size,), float32)``: the car's ray distances / range (0 …
    1), nitro fuel (0 … 1), signed speed / max speed (−1 … 1), is_reverse (0 or 1): the
    simulator's contract. Its size is the game's (``backend.observation_size``, or the
    first observation the game sends: the first environment spawns its cars to see it,
    then freezes the game until training's first reset).

    ## Action Space
    ``Box(-1, 1, shape=(3,), float32)``: throttle, steering, nitro.

    ## Rewards
    The game's (progress × 1000, × 20 backwards, a speed bonus; −20 on an episode end),
    summed over the game's ticks folded into the step (those its ``ACTION`` missed,
    including any beyond the 64 the bridge keeps per car: a warning says so).

    ## Starting State
    ``reset`` spawns the cars (``SPAWN_AGENTS``, first time and after a reconnection)
    or respawns them (``RESET_AGENTS``), with ``options`` {``track_seed``, ``spawn``,
    ``seed``} for games that can use them, and waits for their first observations.

    ## Episode End
    As the game reports: ``terminated`` (crash) or ``truncated`` (stuck), also when it
    came in a tick the env did not read (the car drove on with its last action: the
    step ends there); plus, on this side, truncation after ``episode.max_steps`` steps,
    after ``episode.laps`` laps (``info["finished"]``, needs the game's ``info.laps``),
    and when an episode was interrupted (a reconnection, a car that stopped reporting
    for ``observation_timeout``, or an episode end lost before the env read it: over
    64 of the car's ticks came meanwhile; ``info["interrupted"]``). The game respawns
    a car as soon as its episode ends and sends the new car's observation in that
    message, so the observation returned with a game-reported episode end is the car's
    previous one (its last real state), and ``respawn`` returns the new one without
    asking the game for anything.

    ## Arguments
    bridge: the shared ``TrainingBridge``; config: ``RobloxConfig``; n_cars: cars;
    track_seeds: tracks suggested to the game on reset; env_id: a label for logs.

    Raises:
        ConfigError: on a render mode, no cars, or more environments than the game holds.
        BridgeError: with ``observation_size`` null, if the game does not connect and
            send the first observation in time.
    """

    metadata = {"name": "roblox_race_v0", "render_modes": [], "is_parallelizable": True}

    def __init__(
        self,
        bridge: TrainingBridge,
        config: RobloxConfig,
        n_cars: int = 1,
        track_seeds: Sequence[int] = range(10_000),
        env_id: int | str = 0,
        render_mode: str | None = None,
    ) -> None:
        if render_mode is not None:
            raise ConfigError(
                f"render_mode={render_mode!r}: the Roblox game renders itself; use None."
            )
        if n_cars < 1 or len(track_seeds) == 0:
            raise ConfigError(f"n_cars must be >= 1 and track_seeds non-empty, got {n_cars}.")
        self.envid = bridge.new_envid()
        self.bridge = bridge.acquire()
        self.config = config
        self.render_mode = None
        self.env_id = env_id
        self.track_seeds = track_seeds
        self.possible_agents = [f"car_{i}_env_{self.envid}" for i in range(n_cars)]
        self.agents: list[AgentID] = []
        self._action_space = action_space()
        self.np_random, _ = seeding.np_random()
        self._generation = 0  # the connection the cars were spawned on
        self._removed = False  # taken out of the game by remove_cars until the next reset
        self._track_seed: int | None = None
        self._episodes_on_track = 0
        self._steps = 0
        self._action_step = 0
        self._sent: _Sent | None = None  # an ACTION sent by send_actions, not yet awaited
        # Per car, the inbox message its observation was last read from: the game's ticks
        # since then are the car's, in its current episode (``Inbox.take``'s ``read``).
        self._read: dict[AgentID, int] = {}
        self._last_obs: dict[AgentID, NDArray[np.float32]] = {}
        self._respawned: set[AgentID] = set()  # ended by the game, already respawned by it
        self._overflow_told: set[AgentID] = set()  # warned of an inbox overflow this episode
        self._unreported_steps = 0  # steps in a row in which no car reported (UNREPORTED_STEPS)
        self._closed = False
        if not bridge.server.size_known.is_set():
            self.reset()  # the game's first observation tells its size
            if config.freeze_during_updates:
                # Until training's first reset (after the model is built, or a resume's
                # replay buffer loaded: seconds), these cars would get no ACTION, and the
                # game's watchdog closes everything after 250 such ticks. A frozen car is
                # not counted; the next reset or step sends FREEZE false.
                with contextlib.suppress(BridgeError):  # gone: the next reset waits for it
                    self.bridge.freeze(True)
        size = bridge.server.observation_size
        assert size is not None
        self._observation_space = observation_space(size - STATE_SIZE)

    def observation_space(self, agent: AgentID) -> spaces.Box:
        """The observation space; the same object for every agent. Its bounds are the
        contract's (rays in 0..1): a Golf cart's or Quad's surface-normal dots, in -1..1
        where a ray's bound is (ROBLOX_GAME.md), lie outside it; nothing clips them.

        Raises:
            KeyError: ``agent`` is not one of ``possible_agents``.
        """
        self._check_agent(agent)
        return self._observation_space

    def action_space(self, agent: AgentID) -> spaces.Box:
        """The action space; the same object for every agent.

        Raises:
            KeyError: ``agent`` is not one of ``possible_agents``.
        """
        self._check_agent(agent)
        return self._action_space

    def _check_agent(self, agent: AgentID) -> None:
        if agent not in self.possible_agents:
            raise KeyError(f"{agent!r} is not a car of this environment: {self.possible_agents}.")

    # ------------------------------------------------------------------ episodes
    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[AgentID, NDArray[np.float32]], dict[AgentID, dict[str, Any]]]:
        """Spawn or respawn the cars and return their first observations.

        Args:
            seed: seeds ``np_random`` (the track suggested to the game).
            options: ``{"track_seed": int}`` suggests that track.

        Raises:
            ValueError: a ``track_seed`` option that is no integer.
            BridgeError: no game connects within ``connect_timeout``, or the cars'
                first observations do not arrive within ``observation_timeout``.
        """
        if seed is not None:
            self.np_random, _ = seeding.np_random(seed)
        episode = self.config.episode
        track_seed = track_seed_option(options)
        due = track_change_due(
            self._episodes_on_track,
            episode.track_change_every,
            seed,
            first=self._track_seed is None,
        )
        if track_seed is None and due:
            track_seed = self.track_seeds[int(self.np_random.integers(len(self.track_seeds)))]
        if track_seed is not None:
            self._track_seed, self._episodes_on_track = int(track_seed), 0
        self._episodes_on_track += 1
        hints = {"track_seed": self._track_seed, "spawn": episode.spawn}
        if seed is not None:
            hints["seed"] = seed
        received: dict[AgentID, Any] | None = None
        while received is None:  # a game that goes away is waited for again
            self.bridge.wait_for_game(self.config.connect_timeout, why="spawning the cars")
            # A new connection's game has no cars yet; the one that spawned them resets them.
            spawned = self.bridge.generation == self._generation and not self._removed
            command = RESET_AGENTS if spawned else SPAWN_AGENTS
            self._generation, self._removed = self.bridge.generation, False
            received = self._start_cars(self.possible_agents, command, "spawning", hints)
        self.agents = self.possible_agents[:]
        self._steps = 0
        self._sent = None
        self._respawned.clear()
        self._overflow_told.clear()
        self._last_obs = {agent: received[agent].step.observation for agent in self.agents}
        self._read = {agent: got.seq for agent, got in received.items()}
        info = {"track_seed": self._track_seed}
        return dict(self._last_obs), {agent: dict(info) for agent in self.agents}

    def _start_cars(
        self,
        agents: Sequence[AgentID],
        command: str,
        doing: str,
        hints: dict[str, Any] | None = None,
    ) -> dict[AgentID, Any] | None:
        """Send ``command`` (``SPAWN_AGENTS`` or ``RESET_AGENTS``) for ``agents`` and wait
        for their first observations (``doing`` names the wait in errors and warnings).

        Returns:
            The ``Inbox`` entries of every one of ``agents``; None if the game went away
            meanwhile (once it has reconnected, within ``reconnect_timeout``).

        Raises:
            BridgeError: the game ticks on but does not report some of the cars (it
                dropped their entries as bad, or did not spawn them), it stays connected
                but silent, or it does not reconnect in time.
        """
        generation = self.bridge.generation
        after = self.bridge.inbox.mark()
        frames_before, dropped_before = self._frames_and_drops()
        try:
            self.bridge.freeze(False)  # a frozen game sends nothing
            send = self.bridge.spawn_agents if command == SPAWN_AGENTS else self.bridge.reset_agents
            send(self.envid, list(agents), hints)
        except BridgeError:
            return None  # the game went away while we sent
        received, missing = self.bridge.get_observation(
            agents, after, self.config.observation_timeout, None, generation
        )
        if not missing:
            return received
        if not self._game_is_silent(frames_before, generation):
            raise self._unreported(missing, command, frames_before, dropped_before)
        self._check_connection(missing, generation, doing)
        return None

    def _check_connection(self, missing: list[str], generation: int, doing: str) -> None:
        """After a wait that came back short: return on a reconnect (after waiting for
        it); raise if the game sends frames of another size or has gone silent."""
        self.bridge.check_size()
        if self.bridge.connected and self.bridge.generation == generation:
            raise BridgeError(
                f"No observation from the game for {len(missing)} car(s) of env "
                f"{self.env_id} ({_names(missing)}) "
                f"within {self.config.observation_timeout:g} s of {doing}; "
                f"{self.bridge.describe()}. The game is connected but silent: its tick loop "
                "has stopped (its watchdog closes every environment after 250 ticks without "
                "an ACTION, and a Luau error inside a tick stops it for good: see the "
                "Output window in Studio). Stop the game and press Play again, then "
                "continue with `racing-rl train resume=<run dir>` if it saved a checkpoint "
                "(else run the command again); raise backend.observation_timeout if the "
                "game is only slow."
            )
        if self.bridge.connected:  # back already (it left between two waits of this env)
            log.info(
                "the game reconnected (connection %d) since the cars of env %s were "
                "spawned: they are spawned again",
                self.bridge.generation,
                self.env_id,
            )
        else:
            log.warning(
                "the game disconnected while env %s was %s; waiting up to %.0f s for it to "
                "reconnect, then its cars are re-spawned",
                self.env_id,
                doing,
                self.config.reconnect_timeout,
            )
        self.bridge.wait_for_game(
            self.config.reconnect_timeout, "reconnection", key="backend.reconnect_timeout"
        )

    def _frames_and_drops(self) -> tuple[int, int]:
        """The game's frames received so far, and its entries dropped so far."""
        server = self.bridge.server
        return server.frames, sum(server.dropped.values())

    def _unreported(
        self, missing: list[str], command: str, frames_before: int, dropped_before: int
    ) -> BridgeError:
        """The error for cars a ticking game does not report after ``command`` (sent when
        ``_frames_and_drops`` was ``frames_before``, ``dropped_before``): it dropped their
        entries as bad, or it never spawned them."""
        frames, dropped = self._frames_and_drops()
        if dropped > dropped_before:
            cause = (
                f"{dropped - dropped_before} entries were dropped meanwhile: the game sends "
                "bad values (see the warnings above, and docs/protocol.md#error-behaviour)"
            )
        elif command == SPAWN_AGENTS:
            cause = NOT_SPAWNED
        else:  # the same cars spawned before on this connection: model and parts exist
            cause = (
                "The game spawned them before on this connection, so it has lost them since "
                "(a destroyed car model, or a Luau error: see Studio's Output). Press Play "
                "again and run the command again (`racing-rl train resume=<run dir>` if it "
                "saved a checkpoint)."
            )
        return BridgeError(
            f"The game ticks ({frames - frames_before} frame(s) since {command}) but reported "
            f"no usable entry of car(s) {_names(missing)} of env {self.env_id} within "
            f"{self.config.observation_timeout:g} s; {self.bridge.describe()}. {cause}"
        )

    def _game_is_silent(self, frames_before: int, generation: int) -> bool:
        """Whether the game sent no frame at all since ``frames_before`` (on the same
        connection): missing cars then mean a stopped game, not a lost car."""
        return (
            not self.bridge.connected
            or self.bridge.generation != generation
            or self.bridge.server.frames == frames_before
            or self.bridge.server.size_error is not None
        )

    def send_actions(self, actions: dict[AgentID, Any]) -> None:
        """Send the live cars' actions now; the next ``step`` only waits for the answer.

        ``racing_rl.vec.step_envs`` sends every virtual environment's
        ACTION this way before it steps the first one, so that they reach the game
        together (the same tick of a real-time game). ``step`` must follow, with the
        same actions (it checks them).

        Raises:
            RuntimeError: no live agents (call ``reset`` first).
        """
        if not self.agents:
            raise RuntimeError("send_actions() called with no live agents: call reset() first.")
        self._sent = self._send(actions)

    def _send(self, actions: dict[AgentID, Any]) -> _Sent:
        """Send an ACTION for the live cars (unless the game is gone)."""
        live, generation, step = self.agents, self._generation, self._action_step + 1
        frames, dropped = self._frames_and_drops()
        # From the send: a step waits for its environments one after another, and no
        # ACTION reaches the game meanwhile, which counts the ticks to its watchdog.
        deadline = time.monotonic() + self.config.observation_timeout
        if self.bridge.generation != generation or not self.bridge.connected:
            return _Sent(actions, live, generation, None, step, frames, dropped, deadline)
        self._action_step = step
        # The answer is the first tick after the one the actions were chosen from. A tick
        # that came since (while they were chosen, or other environments' ACTIONs were
        # sent) is the game's next state, which this ACTION missed: it answers it, folded
        # with the next if that has come as well (``Inbox.take``). A tick older than the
        # game's tick period (as measured) does not: training paused, and the game went
        # on. The age is the newest observations', not the newest frame's: the `[]` a
        # frozen game sends every tick would make a tick from before a pause look fresh.
        # Either way the ticks since a car was read are its own (it drove on with its last
        # action): folded into the step, and an episode end among them is the step's end.
        after, age = self.bridge.inbox.newest()
        if age < self.bridge.tick_period(self.config.rules.dt):
            after = max(max(self._read.values(), default=0), after - 1)
        try:
            self.bridge.freeze(False)
            # Queued, not awaited: a broken connection shows as missing observations.
            self.bridge.send_actions(
                self.envid, {a: actions[a] for a in live if a in actions}, step, wait=False
            )
        except BridgeError:  # broke
            return _Sent(actions, live, generation, None, step, frames, dropped, deadline)
        return _Sent(actions, live, generation, after, step, frames, dropped, deadline)

    def step(self, actions: dict[AgentID, Any]) -> ParallelStepReturn:
        """Send the live cars' actions and wait for the game's next observations.

        Args:
            actions: an action of shape (3,) per live agent.

        Returns:
            observations, rewards, terminations, truncations, infos of the live agents.
            Info keys: ``crashed`` (the game's ``terminated``), ``stuck`` (its
            ``truncated``: the game truncates only a car that made no new progress for
            4 s), the game's
            ``info`` extension (``progress``, ``laps``, ``lap_time``, ``speed``, ...) if
            it sends one, ``finished``, ``interrupted`` (the game lost the car, or its
            episode end was lost before it was read: truncated, neither crashed nor
            stuck).

        Raises:
            BridgeError: the observations do not arrive within
                ``observation_timeout`` while the game stays connected (the message
                names the missing agents), or the game does not reconnect in time.
            RuntimeError: no live agents (call ``reset`` first), or ``send_actions``
                sent other actions (a wrapper between that changes them).
        """
        if not self.agents:
            raise RuntimeError("step() called with no live agents: call reset() first.")
        sent = self._sent or self._send(actions)
        self._sent = None
        if sent.actions is not actions and (
            sent.actions.keys() != actions.keys()
            or not all(np.array_equal(sent.actions[a], actions[a], equal_nan=True) for a in actions)
        ):
            raise RuntimeError(
                "step() got other actions than send_actions() sent to the game: a wrapper "
                "between them changes actions (racing_rl.vec.step_envs needs one that does not)."
            )
        live, generation = sent.agents, sent.generation
        received: dict[str, Any] = {}
        missing = live
        if sent.after is not None:
            try:
                received, missing = self.bridge.get_observation(
                    live,
                    sent.after,
                    max(0.0, sent.deadline - time.monotonic()),
                    sent.step,
                    generation,
                    read=self._read,  # a car not read yet: sent.after
                )
            except BridgeError:
                missing = live  # the connection broke while waiting
        unreported = bool(missing) and len(missing) == len(live)
        self._unreported_steps = self._unreported_steps + 1 if unreported else 0
        if missing and self._game_is_silent(sent.frames, generation):
            self._check_connection(missing, generation, "stepping")
        elif missing:  # the game ticks on without these cars: truncated, then respawned
            if self._unreported_steps >= UNREPORTED_STEPS:
                raise self._unreported(missing, ACTION, sent.frames, sent.dropped)
            dropped = self._frames_and_drops()[1] - sent.dropped
            log.warning(
                "car(s) %s of env %s %s for %.0f s while the game ticked on: their "
                "episodes are truncated and the cars respawned",
                ", ".join(missing),
                self.env_id,
                f"sent only entries dropped as bad ({dropped} dropped meanwhile)"
                if dropped
                else "sent nothing",
                self.config.observation_timeout,
            )
        self._steps += 1
        episode = self.config.episode
        observations, rewards, terminations, truncations, infos = {}, {}, {}, {}, {}
        self._tell_overflows(received)
        for agent in live:
            got = received.get(agent)
            if got is None or got.interrupted:  # the car, or its episode's end, was lost
                observations[agent] = self._last_obs[agent]
                rewards[agent], terminations[agent], truncations[agent] = 0.0, False, True
                infos[agent] = {
                    "crashed": False,
                    "stuck": False,
                    "interrupted": True,
                    "finished": False,
                }
                continue
            step = got.step
            self.bridge.car_steps += 1
            self.bridge.car_ticks += got.ticks
            # The game truncates only a stuck car (4 s without new progress: its GetReward).
            stuck = step.truncated and not step.terminated
            info = {"crashed": step.terminated, "stuck": stuck, **step.info, "interrupted": False}
            finished = bool(episode.laps) and int(info.get("laps", 0)) >= episode.laps
            info["finished"] = finished
            game_end = step.terminated or step.truncated
            observations[agent] = self._last_obs[agent] if game_end else step.observation
            if game_end:
                self._respawned.add(agent)
            rewards[agent] = step.reward
            terminations[agent] = step.terminated
            truncations[agent] = (
                step.truncated or finished or self._steps >= episode.max_steps
            ) and not step.terminated
            infos[agent] = info
            self._last_obs[agent] = step.observation
            self._read[agent] = got.seq
        interrupted = [agent for agent in live if infos[agent]["interrupted"]]
        if interrupted and self.bridge.generation != generation:
            log.warning(
                "env %s: the game reconnected, so the episodes in flight of %d car(s) (%s) "
                "end here, truncated as interrupted",
                self.env_id,
                len(interrupted),
                _names(interrupted),
            )
        self.agents = [a for a in live if not (terminations[a] or truncations[a])]
        return observations, rewards, terminations, truncations, infos

    def _tell_overflows(self, received: dict[str, Any]) -> None:
        """Warn, once per car and episode, that the game ticked more often since a car was
        last read than the inbox keeps (``Received.overflowed``)."""
        overflowed = {
            agent: got.overflowed
            for agent, got in received.items()
            if got.overflowed and agent not in self._overflow_told
        }
        if not overflowed:
            return
        self._overflow_told.update(overflowed)
        log.warning(
            "car(s) %s of env %s: the game ticked more than the %d times the bridge keeps "
            "per car (up to %d more) before training read them: those ticks' rewards are "
            "summed into this step, but the policy never saw their observations (an episode "
            "that ended among them is truncated, interrupted). Training runs slower than the "
            "game (13-15 ticks a second): keep backend.freeze_during_updates=true, run fewer "
            "environments or cars, or train on a faster machine. Said once per car and episode.",
            _names(sorted(overflowed)),
            self.env_id,
            self.bridge.inbox.capacity,
            max(overflowed.values()),
        )

    def respawned_by_game(self, agents: Sequence[AgentID]) -> bool:
        """Whether the game ended the episodes of all ``agents`` and respawned the cars
        itself: ``respawn`` then needs no round trip, even for every car at once."""
        return set(agents) <= self._respawned

    def respawn(self, agents: Sequence[AgentID]) -> dict[AgentID, NDArray[np.float32]]:
        """Start a new episode for some cars while the others race on (``episode.reset:
        car``).

        A car the game ended has been respawned by the game already: its new
        observation came with its end. Any other (truncated here: ``max_steps``,
        ``laps``, or it stopped reporting) is respawned with ``RESET_AGENTS``.

        Args:
            agents: cars whose episodes are over.

        Returns:
            Their first observations, shape (observation_size,) float32 each.

        Raises:
            BridgeError: as ``reset``, if the cars sent to respawn do not report.
        """
        ask = [agent for agent in agents if agent not in self._respawned]
        self._respawned.difference_update(agents)
        self._overflow_told.difference_update(agents)
        # A game that went away meanwhile is waited for; the next step finds its cars
        # lost (their episodes interrupted) and the reset spawns them on the new connection.
        received = self._start_cars(ask, RESET_AGENTS, "respawning cars") if ask else None
        if received:
            for agent, got in received.items():
                self._last_obs[agent] = got.step.observation
                self._read[agent] = got.seq
        if not self.agents:  # every car starts anew, as after a reset
            self._steps = 0
        live = set(self.agents) | set(agents)
        self.agents = [agent for agent in self.possible_agents if agent in live]
        return {agent: self._last_obs[agent] for agent in agents}

    # ------------------------------------------------------------------ control
    def render(self) -> None:
        """The game renders itself; nothing to draw here."""
        return None

    @property
    def _on_this_connection(self) -> bool:
        """Whether the connected game is the one this environment last spawned its cars
        in (which knows its envid)."""
        return self.bridge.connected and self._generation == self.bridge.generation

    def drop_unread(self) -> None:
        """Take none of the game's ticks so far into the cars' next step: the cars drove on
        blind (a validation in the game, which cannot freeze some cars alone), not on a
        step of theirs. The next step takes the ticks after now, as after a pause; an
        episode end among those dropped ends it as interrupted."""
        # Skipped now, not at the next step: they would otherwise be folded, once the
        # inbox overflows, into the ticks after now.
        newest = self.bridge.inbox.skip(self._read)
        self._read = dict.fromkeys(self._read, newest)

    def remove_cars(self) -> None:
        """Take this environment's cars out of the game until the next ``reset`` spawns
        them again (``REMOVE_AGENTS``): the validation environment's between validations,
        which would otherwise drive on their last actions, be stuck and respawned every
        ``rules.stuck_time``, and show in the other environments' car rays. Does nothing
        if its cars are not in the game (removed already, or a connection that has not
        spawned them)."""
        if self._on_this_connection and not self._removed:
            with contextlib.suppress(BridgeError):  # the game is gone, and its cars with it
                self.bridge.remove_agents(self.envid, self.possible_agents)
        self._removed = True  # the next reset spawns them (SPAWN_AGENTS)
        self.agents = []

    def close(self) -> None:
        """Remove this environment from the game; the last env stops the bridge."""
        if self._closed:
            return
        self._closed = True
        if self._on_this_connection:
            with contextlib.suppress(BridgeError):  # the game is gone already
                if not self._removed:
                    self.bridge.remove_agents(self.envid, self.possible_agents)
                self.bridge.close_environment(self.envid)
        self.bridge.drop_envid()
        self.bridge.release()


def _names(agents: Sequence[str], shown: int = 3) -> str:
    """The first ``shown`` agent ids, then ``...`` if there are more."""
    return ", ".join(agents[:shown]) + (", ..." if len(agents) > shown else "")

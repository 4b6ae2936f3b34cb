"""The SB3 VecEnv stack of both backends.

The stack, in order (CleanRL style; ``make_env`` then ``wrap_vec_env``)::

    the backend's VecEnv, one slot per car:
      simulator:  SimVecEnv               (racing_rl.envs.vec_env: n_races races stepped
                                           as one WorldBatch, arrays in and out)
      Roblox:     ParallelEnvsVecEnv      (n_races RobloxParallelEnvs, PettingZoo's API)
      → FrameStack                       (wrappers.frame_stack; 1 = off)
      → VecMonitor                       (episode return/length for SB3's logger)
      → VecNormalize                     (wrappers.normalize; racing_rl.normalize's
                                          FiniteVecNormalize: statistics stay finite)

Why the step to SB3 is ours (DESIGN.md, "Known pitfalls"): SuperSuit's
``concat_vec_envs_v1(..., base_class="stable_baselines3")`` breaks ``PPO(seed=...)``
(no ``seed()``) and reports time-limit truncations as true terminals (no
``TimeLimit.truncated``), so SB3 skips value bootstrapping; and its
``pettingzoo_env_to_vec_env_v1`` needs every agent to finish together or feeds SB3
zero-observation "black death" transitions (PettingZoo #661). Both of our VecEnvs seed
through SB3's ``VecEnv.seed``, report truncation as SB3 expects, and end episodes by one
rule, ``racing_rl.envs.vec_env.episode_ends`` (``episode.reset``: ``race`` ends a race for
all its cars once one is done, the others truncated; ``car`` respawns only the cars that
are done, which the simulator places anew and the Roblox game has already placed). Every
car's ``terminal_observation`` is taken before its next episode starts
(``mark_terminal``). Every transition SB3 sees is a real one.

Frames are stacked per VecEnv slot (``FrameStack``, SB3's ``VecFrameStack``), so a car
respawned alone starts its stack afresh, as SuperSuit's ``frame_stack_v1`` does on a
whole-env reset (zeros, newest frame last; the same observation space).

The Roblox envs send all their ACTIONs before any waits for its answer (``step_envs``),
so that all reach the game within the same tick, and restart in
threads, one per ParallelEnv, as each waits on the game.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np
from gymnasium import spaces
from omegaconf import DictConfig
from pettingzoo import ParallelEnv
from stable_baselines3.common.vec_env import VecEnv, VecFrameStack, VecMonitor
from stable_baselines3.common.vec_env.base_vec_env import (
    VecEnvIndices,
    VecEnvObs,
    VecEnvStepReturn,
)

from racing_rl.checks import check_wrappers
from racing_rl.config import backend_config, to_container
from racing_rl.contract import ParallelStepReturn, slot_actions
from racing_rl.drivers.pure_pursuit import PurePursuitDriver
from racing_rl.envs.config import RaceConfig
from racing_rl.envs.race import RaceParallelEnv
from racing_rl.envs.vec_env import SimVecEnv, episode_ends, mark_terminal, race_seed
from racing_rl.errors import ConfigError
from racing_rl.normalize import FiniteVecNormalize

if TYPE_CHECKING:
    from racing_rl.bridge.training_bridge import TrainingBridge
    from racing_rl.sim.track import TrackConfig


def in_a_game(envs: Sequence[ParallelEnv]) -> bool:
    """Whether ``envs`` (or their wrappers) are a Roblox game's ``RobloxParallelEnv``s,
    whose steps and resets wait on the game."""
    from racing_rl.bridge.env import RobloxParallelEnv

    return bool(envs) and isinstance(envs[0].unwrapped, RobloxParallelEnv)


def env_pool(envs: Sequence[ParallelEnv]) -> ThreadPoolExecutor | None:
    """Threads to reset ParallelEnvs at once when each waits on a game (``in_a_game``);
    None for the simulator."""
    if len(envs) < 2 or not in_a_game(envs):
        return None
    return ThreadPoolExecutor(len(envs), thread_name_prefix="racing-rl-env")


def map_envs(
    pool: ThreadPoolExecutor | None, function: Callable[[Any], Any], items: Iterable
) -> list:
    """``[function(item) for item in items]``, in ``pool``'s threads if there is one."""
    return list(pool.map(function, items) if pool is not None else map(function, items))


def step_envs(
    envs: Sequence[ParallelEnv], actions: Sequence[dict[str, Any]]
) -> list[ParallelStepReturn]:
    """Step ParallelEnvs together; returns what each ``step`` returns, in order.

    A game's envs (``in_a_game``; wrappers between must not change actions) first send
    every env's actions (``RobloxParallelEnv.send_actions``), so that all reach the game
    in the same tick; then each env is stepped.

    Args:
        envs: the ParallelEnvs.
        actions: per env, its actions as its ``step`` takes them.
    """
    if in_a_game(envs):
        for env, env_actions in zip(envs, actions, strict=True):
            env.unwrapped.send_actions(env_actions)
    return [env.step(env_actions) for env, env_actions in zip(envs, actions, strict=True)]


class ParallelEnvsVecEnv(VecEnv):
    """An SB3 VecEnv with one slot per agent of several of racing-rl's PettingZoo
    ParallelEnvs.

    Slots are ordered env by env, agent by agent (``possible_agents`` order). Every
    ParallelEnv must give all its agents the same observation and action spaces.

    Args:
        envs: racing-rl's ParallelEnvs (``RobloxParallelEnv``; ``RaceParallelEnv`` in
            the tests), not yet reset. Not any ParallelEnv: each env's
            ``unwrapped.config.episode.reset`` says how its episodes end
            (``episode_ends``), and with ``car`` its ``unwrapped.respawn(agents)`` starts
            those cars' next episodes. An env whose episodes end together (``race``) may
            be wrapped (e.g. by PettingZoo's or SuperSuit's wrappers); one with ``car``
            may not, as its wrappers would not see the respawned cars' observations
            (wrap the VecEnv instead: ``wrap_vec_env``).

    Raises:
        ConfigError: if ``envs`` is empty, their spaces differ, or an env of per-car
            episodes is wrapped.
    """

    def __init__(self, envs: Sequence[ParallelEnv]) -> None:
        if not envs:
            raise ConfigError("ParallelEnvsVecEnv needs at least one ParallelEnv.")
        first = envs[0].possible_agents[0]
        observation_space = envs[0].observation_space(first)
        action_space = envs[0].action_space(first)
        for env in envs:
            if env.unwrapped is not env and env.unwrapped.config.episode.reset == "car":
                raise ConfigError(
                    f"{env} ends each car's episode on its own (episode.reset=car): its "
                    "cars respawn through env.unwrapped.respawn, which its wrappers would "
                    "not see. Wrap the VecEnv instead (racing_rl.vec.wrap_vec_env: frame "
                    "stack, VecNormalize), or end episodes together (episode.reset=race)."
                )
            for agent in env.possible_agents:
                if env.observation_space(agent) != observation_space or (
                    env.action_space(agent) != action_space
                ):
                    raise ConfigError(
                        f"Agent {agent!r} has spaces {env.observation_space(agent)}, "
                        f"{env.action_space(agent)}; expected {observation_space}, "
                        f"{action_space} like {first!r}. All cars must share one contract."
                    )
        self.envs = list(envs)
        self._agents = [list(env.possible_agents) for env in self.envs]
        self._offsets = np.cumsum([0] + [len(a) for a in self._agents]).tolist()
        self._slot_env = [i for i, agents in enumerate(self._agents) for _ in agents]
        super().__init__(self._offsets[-1], observation_space, action_space)
        self._obs = np.zeros((self.num_envs, *observation_space.shape), observation_space.dtype)
        self._actions: np.ndarray | None = None
        self.metadata = getattr(self.envs[0], "metadata", {})
        self._pool = env_pool(self.envs)
        self._reset = [env.unwrapped.config.episode.reset for env in self.envs]

    def _map(self, function: Any) -> list[Any]:
        """``function(i)`` for every ParallelEnv index, in threads if they wait on I/O."""
        return map_envs(self._pool, function, range(len(self.envs)))

    def _store(self, env_index: int, observations: dict[str, Any]) -> None:
        start = self._offsets[env_index]
        for j, agent in enumerate(self._agents[env_index]):
            self._obs[start + j] = observations[agent]

    def reset(self) -> VecEnvObs:
        """Reset every ParallelEnv, with the seed set by ``seed`` (ParallelEnv i:
        ``race_seed``) and the options set by ``set_options`` (those of its first slot)."""

        def reset(i: int) -> tuple[dict[str, Any], dict[str, Any]]:
            options = self._options[self._offsets[i]] or None
            return self.envs[i].reset(seed=race_seed(self._seeds[0], i), options=options)

        for i, (observations, infos) in enumerate(self._map(reset)):
            self._store(i, observations)
            for j, agent in enumerate(self._agents[i]):
                self.reset_infos[self._offsets[i] + j] = infos.get(agent, {})
        self._reset_seeds()
        self._reset_options()
        return self._obs.copy()

    def step_async(self, actions: np.ndarray) -> None:
        """Hold the actions, shape (num_envs, 3), for ``step_wait``.

        Raises:
            ValueError: actions of another shape (``contract.slot_actions``).
        """
        self._actions = slot_actions(actions, self.num_envs)

    def step_wait(self) -> VecEnvStepReturn:
        """Step every ParallelEnv; restart a ParallelEnv's race when its first car is done."""
        assert self._actions is not None, "step_async() must come before step_wait()"
        self._rewards = np.zeros(self.num_envs, dtype=np.float32)
        self._dones = np.zeros(self.num_envs, dtype=bool)
        self._infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        actions = [
            {agent: self._actions[start + j] for j, agent in enumerate(agents)}
            for start, agents in zip(self._offsets[:-1], self._agents, strict=True)
        ]
        results = step_envs(self.envs, actions)
        ended = [self._store_step(i, result) for i, result in enumerate(results)]
        # Races restart (and cars respawn) once every environment has been stepped: a
        # restart may wait for the game, which the other environments' answers need not do.
        map_envs(
            self._pool, self._restart, [(i, agents) for i, agents in enumerate(ended) if agents]
        )
        self._actions = None
        return self._obs.copy(), self._rewards, self._dones, self._infos

    def _store_step(self, i: int, result: ParallelStepReturn) -> list[str]:
        """Write ParallelEnv ``i``'s step into its slots; returns the agents whose episodes
        are over (``episode_ends``: with ``race``, all of them once one car is done)."""
        start, agents = self._offsets[i], self._agents[i]
        observations, reward, terminated, truncated, info = result
        done = np.array([[terminated[agent] or truncated[agent] for agent in agents]])
        (ending,), _ = episode_ends(done, self._reset[i])
        for j, agent in enumerate(agents):
            slot = start + j
            self._rewards[slot] = reward[agent]
            self._infos[slot] = dict(info[agent])
            if ending[j]:
                mark_terminal(self._infos[slot], observations[agent], bool(terminated[agent]))
                self._dones[slot] = True
            else:
                self._obs[slot] = observations[agent]
        return [agent for j, agent in enumerate(agents) if ending[j]]

    def _restart(self, ended: tuple[int, list[str]]) -> None:
        """Start the next episodes of ParallelEnv ``i``'s ``agents`` and write their slots:
        a reset when every car is done, else a ``respawn`` of those cars alone. A game is
        never reset after cars it respawned itself (``respawned_by_game``, per-car episodes):
        a reset would wait a tick for cars the game already placed."""
        i, agents = ended
        start, env = self._offsets[i], self.envs[i]
        respawned = getattr(env.unwrapped, "respawned_by_game", lambda agents: False)
        if len(agents) < len(self._agents[i]) or (self._reset[i] == "car" and respawned(agents)):
            observations = env.unwrapped.respawn(agents)
            reset_infos: dict[str, Any] = {}
        else:
            observations, reset_infos = env.reset()
        for j, agent in enumerate(self._agents[i]):
            if agent in observations:
                self.reset_infos[start + j] = reset_infos.get(agent, {})
                self._obs[start + j] = observations[agent]

    def close(self) -> None:
        """Stop the thread pool (not waiting for a step cut short) and close every env."""
        if self._pool is not None:  # a step cut short (Ctrl-C) may still wait on the game
            self._pool.shutdown(wait=False, cancel_futures=True)
        for env in self.envs:
            env.close()

    def _slot_envs(self, indices: VecEnvIndices) -> list[ParallelEnv]:
        return [self.envs[self._slot_env[k]] for k in self._get_indices(indices)]

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """An attribute of the (unwrapped) ParallelEnv behind each slot."""
        return [getattr(env.unwrapped, attr_name) for env in self._slot_envs(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        """Set an attribute of the (unwrapped) ParallelEnv behind each slot of ``indices``
        (slots of one ParallelEnv share it)."""
        for env in self._slot_envs(indices):
            setattr(env.unwrapped, attr_name, value)

    def env_method(
        self,
        method_name: str,
        *method_args: Any,
        indices: VecEnvIndices = None,
        **method_kwargs: Any,
    ) -> list[Any]:
        """Call a method of the (unwrapped) ParallelEnv behind each slot of ``indices``: once
        per slot, so a ParallelEnv of several slots is called as often."""
        return [
            getattr(env.unwrapped, method_name)(*method_args, **method_kwargs)
            for env in self._slot_envs(indices)
        ]

    def env_is_wrapped(self, wrapper_class: type, indices: VecEnvIndices = None) -> list[bool]:
        """False for every slot: the ParallelEnvs are not Gymnasium envs."""
        return [False for _ in self._get_indices(indices)]

    def get_images(self) -> Sequence[np.ndarray | None]:
        """One frame per slot (the frame of the slot's ParallelEnv)."""
        frames = [env.render() for env in self.envs]
        return [frames[i] for i in self._slot_env]


class FrameStack(VecFrameStack):
    """SB3's ``VecFrameStack`` (one stack per slot, started afresh when the slot's episode
    ends: zeros, newest frame last) with SuperSuit ``frame_stack_v1``'s observation space.

    ``VecFrameStack`` repeats each bound (``[l0, l0, l1, l1, ...]``) where the stacked
    observations, and SuperSuit, tile them (``[l0, l1, ..., l0, l1, ...]``); runs saved
    with either stack load into this one.

    Args:
        venv: a VecEnv of flat (1-D) observations.
        n_stack: frames per observation.
    """

    def __init__(self, venv: VecEnv, n_stack: int) -> None:
        super().__init__(venv, n_stack)
        space = venv.observation_space
        assert isinstance(space, spaces.Box) and len(space.shape) == 1
        self.observation_space = spaces.Box(
            np.tile(space.low, n_stack), np.tile(space.high, n_stack), dtype=space.dtype
        )


def make_parallel_envs(
    backend: DictConfig,
    n_races: int,
    cars_per_race: int,
    track_seeds: Sequence[Sequence[int]],
    episode: dict[str, Any] | None = None,
    bridge: TrainingBridge | None = None,
) -> list[ParallelEnv]:
    """The backend's ParallelEnvs, one per virtual environment.

    Args:
        backend: the ``backend`` config group.
        n_races: number of ParallelEnvs.
        cars_per_race: cars in each.
        track_seeds: per ParallelEnv, the seeds its tracks are drawn from.
        episode: overrides of ``backend.episode`` (e.g. grid spawn for evaluation).
        bridge: Roblox only: a running bridge to share (the training env's, for
            validation); by default a new one is started (it stops when its
            environments are closed).

    Raises:
        ConfigError: on an unknown backend or invalid backend settings.
        BridgeError: Roblox only, if the bridge cannot listen on its address.
    """
    config = backend_config(backend, episode)
    if isinstance(config, RaceConfig):
        return [
            RaceParallelEnv(
                config,
                n_cars=cars_per_race,
                track_seeds=track_seeds[i],
                env_id=i,
            )
            for i in range(n_races)
        ]
    from racing_rl.bridge.env import RobloxParallelEnv
    from racing_rl.bridge.training_bridge import TrainingBridge

    own = bridge is None
    if bridge is None:
        bridge = TrainingBridge.from_config(config)
    roblox_envs: list[ParallelEnv] = []
    try:
        bridge.check_room(n_races)
        for i in range(n_races):
            roblox_envs.append(RobloxParallelEnv(bridge, config, cars_per_race, track_seeds[i], i))
    except BaseException:
        for env in roblox_envs:
            env.close()
        if own:
            bridge.close()
        raise
    return roblox_envs


def make_env(
    backend: DictConfig,
    n_races: int,
    cars_per_race: int,
    track_seeds: Sequence[Sequence[int]],
    episode: dict[str, Any] | None = None,
    bridge: TrainingBridge | None = None,
    track_mix: Sequence[TrackConfig] = (),
    scripted_opponents: int = 0,
) -> VecEnv:
    """The backend's bare VecEnv: one slot per car of ``n_races`` virtual environments.

    The simulator's is a ``SimVecEnv`` (every race stepped as one ``WorldBatch``); a
    Roblox game's a ``ParallelEnvsVecEnv`` of ``RobloxParallelEnv``s that send their
    ACTIONs ahead. The simulator's only: ``track_mix``, other track generators
    (``RaceBatch``; training's ``tracks.train_mix``), and ``scripted_opponents``, scripted
    cars in each race besides its slots (``SimVecEnv``). Other arguments and errors as
    ``make_parallel_envs``'.
    """
    config = backend_config(backend, episode)
    if isinstance(config, RaceConfig):
        return SimVecEnv(
            config,
            n_races,
            cars_per_race,
            track_seeds,
            track_mix=track_mix,
            n_opponents=scripted_opponents,
            opponent_driver=PurePursuitDriver().act,
        )
    envs = make_parallel_envs(backend, n_races, cars_per_race, track_seeds, episode, bridge)
    return ParallelEnvsVecEnv(envs)


def wrap_vec_env(venv: VecEnv, wrappers: DictConfig, gamma: float) -> VecEnv:
    """Wrap a backend's VecEnv (``make_env``) into the stack described in the module
    docstring.

    Args:
        venv: the bare VecEnv.
        wrappers: the ``wrappers`` config group (``frame_stack``, ``monitor``,
            ``normalize`` with VecNormalize's keyword arguments, or null for none).
        gamma: the algorithm's discount, for VecNormalize's return estimate.

    Returns:
        The outermost VecEnv.

    Raises:
        ConfigError: as ``racing_rl.checks.check_wrappers``: a ``frame_stack`` that is
            no integer in [1, 64], or a ``normalize`` key that VecNormalize lacks.
    """
    check_wrappers(wrappers)
    stack = wrappers.get("frame_stack", 1)
    normalize = to_container(wrappers.get("normalize") or {})
    if stack > 1:
        venv = FrameStack(venv, stack)
    if wrappers.get("monitor", True):
        venv = VecMonitor(venv)
    if normalize:
        venv = FiniteVecNormalize(venv, gamma=gamma, **normalize)
    return venv

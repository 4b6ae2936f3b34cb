"""RaceParallelEnv: a PettingZoo ParallelEnv of N cars racing on one simulated track."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding
from numpy.typing import NDArray
from pettingzoo import ParallelEnv

from racing_rl.contract import AgentID, ParallelStepReturn, action_space, observation_space
from racing_rl.envs.config import RaceConfig
from racing_rl.envs.rewards import compute_rewards
from racing_rl.errors import ConfigError
from racing_rl.sim.track import Track, generate_track
from racing_rl.sim.world import StepEvents, World


class RaceParallelEnv(ParallelEnv):
    """N cars racing on one procedurally generated track.

    ## Description
    A top-down 2-D race: every car sees the track through ray sensors and drives with
    throttle, steering and nitro. Physics, sensors and progress are vectorised over cars
    (``racing_rl.sim``). Agents are named ``car_{i}_env_{env_id}``.

    ## Observation Space
    ``Box(shape=(n_rays + 3,), float32)``, per car:

    | index      | meaning                                          | min | max | unit |
    |------------|--------------------------------------------------|-----|-----|------|
    | 0 … R-1    | ray distance / sensor range, left to right       | 0   | 1   | -    |
    | R          | nitro fuel                                        | 0   | 1   | -    |
    | R+1        | signed speed / max speed                          | -1  | 1   | -    |
    | R+2        | is_reverse: heading against the track direction  | 0   | 1   | -    |

    ## Action Space
    ``Box(-1, 1, shape=(3,), float32)``: throttle (negative brakes, then reverses),
    steering (negative left), nitro (active while > 0.5 and fuel remains).

    ## Rewards
    ``racing_rl.envs.rewards``: 1000 per lap of progress (× 20 backwards), a speed bonus
    (exp(2·v/v_max) − 1)·0.5, and −10 on a crash. ``info["reward_terms"]`` has the terms.

    ## Starting State
    ``episode.spawn="random"``: cars spread evenly around the track with random offset,
    heading error and speed (a share at rest). ``"grid"``: at rest on the start line, two
    abreast. ``"line"``: at rest on the start line, all on the same spot (no collisions).

    ## Episode End
    Terminated: the car leaves the track, hits an obstacle, or (``rules.car_collisions``)
    touches another car. Truncated: ``episode.max_steps`` reached, no new progress for
    ``rules.stuck_time`` seconds (``info["stuck"]``), or ``episode.laps`` completed
    (``info["finished"]``). Finished cars leave ``agents``; the others race on.

    ## Arguments
    config: a ``RaceConfig``; n_cars: cars on the track; track_seeds: seeds the track is
    drawn from on reset; env_id: used in agent names; render_mode: "human" or "rgb_array".

    ## Version History
    v0: first version.
    """

    metadata = {
        "name": "race_v0",
        "render_modes": ["human", "rgb_array"],
        "render_fps": 15,
        "is_parallelizable": True,
    }

    def __init__(
        self,
        config: RaceConfig | None = None,
        n_cars: int = 1,
        track_seeds: Sequence[int] = range(10_000),
        env_id: int | str = 0,
        render_mode: str | None = None,
    ) -> None:
        self.config = config or RaceConfig()
        if n_cars < 1:
            raise ConfigError(f"n_cars must be >= 1, got {n_cars}.")
        if len(track_seeds) == 0:
            raise ConfigError("track_seeds is empty: give at least one track seed.")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ConfigError(
                f"render_mode must be one of {self.metadata['render_modes']} or None, "
                f"got {render_mode!r}."
            )
        self.render_mode = render_mode
        self.n_cars = n_cars
        self.track_seeds = track_seeds
        self.possible_agents: list[AgentID] = [f"car_{i}_env_{env_id}" for i in range(n_cars)]
        self.agents: list[AgentID] = []
        self._index = {agent: i for i, agent in enumerate(self.possible_agents)}
        self._observation_space = observation_space(self.config.sensors.n_rays)
        self._action_space = action_space()
        self.np_random, _ = seeding.np_random()
        self.world: World | None = None
        self._episodes_on_track = 0
        self._steps = 0
        self._renderer: Any = None
        self._group: _StepGroup | None = None

    def observation_space(self, agent: AgentID) -> spaces.Box:
        """The observation space; the same object for every agent."""
        return self._observation_space

    def action_space(self, agent: AgentID) -> spaces.Box:
        """The action space; the same object for every agent."""
        return self._action_space

    @property
    def track(self) -> Track:
        """The current track (after the first reset)."""
        if self.world is None:
            raise RuntimeError("No track yet: call reset() first.")
        return self.world.track

    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[AgentID, NDArray[np.float32]], dict[AgentID, dict[str, Any]]]:
        """Start an episode; draw a new track when due.

        Args:
            seed: seeds ``np_random`` (track choice and spawns) and forces a new track.
            options: ``{"track_seed": int}`` races on that track.

        Returns:
            Observations and infos (``{"track_seed": int}``) of every agent.
        """
        if seed is not None:
            self.np_random, _ = seeding.np_random(seed)
        track_seed = (options or {}).get("track_seed")
        config = self.config
        due = self._episodes_on_track >= config.episode.track_change_every
        if track_seed is not None or seed is not None or self.world is None or due:
            if track_seed is None:
                track_seed = self.track_seeds[int(self.np_random.integers(len(self.track_seeds)))]
            track = generate_track(int(track_seed), config.track)
            self.world = World(track, self.n_cars, config.car, config.sensors, config.rules)
            self._episodes_on_track = 0
        self._episodes_on_track += 1
        self._spawn()
        self._steps = 0
        self.agents = self.possible_agents[:]
        obs = self.world.observe()
        seed_info = {"track_seed": self.world.track.seed}
        return (
            {agent: obs[i] for i, agent in enumerate(self.agents)},
            {agent: dict(seed_info) for agent in self.agents},
        )

    def _spawn(self, cars: NDArray[np.bool_] | None = None) -> None:
        """Place the cars (all, or those in the mask ``cars``) as ``episode.spawn`` says."""
        world = self.world
        assert world is not None
        track, episode, n = world.track, self.config.episode, self.n_cars
        if episode.spawn == "line":
            world.place_cars(np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n), cars)
            return
        if episode.spawn == "grid":
            row, col = np.divmod(np.arange(n), 2)
            arc = -8.0 * row - 4.0 * col
            lateral = np.where(col == 0, 1.0, -1.0) * track.width / 4 if n > 1 else np.zeros(1)
            world.place_cars(arc, lateral, np.zeros(n), np.zeros(n), cars)
            return
        rng = self.np_random
        arc = np.mod(rng.uniform(0.0, track.length) + np.arange(n) * track.length / n, track.length)
        limit = min(episode.max_spawn_lateral, track.width / 2 - self.config.car.radius - 1.0)
        lateral = rng.uniform(-limit, limit, n)
        if len(track.obstacle_index):
            # A car spawned beside an obstacle goes to the middle of the gap it leaves
            # (beside two, the gap of the later one).
            apart = np.abs(arc[:, None] - track.arc_length[track.obstacle_index])  # (n, M)
            reach = track.obstacles[:, 2] + self.config.car.length
            near = np.minimum(apart, track.length - apart) < reach
            last = near.shape[1] - 1 - np.argmax(near[:, ::-1], axis=1)
            lateral = np.where(near.any(axis=1), track.obstacle_gap_centre[last], lateral)
        heading = rng.uniform(-episode.max_spawn_heading, episode.max_spawn_heading, n)
        moving = rng.random(n) >= episode.standing_start_prob
        speed = np.where(moving, rng.uniform(0.0, episode.max_spawn_speed, n), 0.0)
        world.place_cars(arc, lateral, heading, speed, cars)

    def respawn(self, agents: Sequence[AgentID]) -> dict[AgentID, NDArray[np.float32]]:
        """Start a new episode for some cars while the others race on.

        What the Roblox game does when a car's episode ends (the bridge's emulator uses
        it): the cars are placed as ``episode.spawn`` says and rejoin ``agents``.

        Args:
            agents: agents to respawn (finished ones, or live ones to restart).

        Returns:
            The respawned agents' observations.
        """
        world = self.world
        if world is None:
            raise RuntimeError("respawn() before reset(): call reset() first.")
        cars = np.zeros(self.n_cars, dtype=bool)
        cars[[self._index[agent] for agent in agents]] = True
        self._spawn(cars)
        live = set(self.agents) | set(agents)
        self.agents = [agent for agent in self.possible_agents if agent in live]
        obs = world.observe()
        return {agent: obs[self._index[agent]] for agent in agents}

    def step(self, actions: dict[AgentID, Any]) -> ParallelStepReturn:
        """Advance every live car by one step.

        Args:
            actions: an action of shape (3,) per live agent; a live agent without an
                action does nothing (zero throttle, steering and nitro).

        Returns:
            observations, rewards, terminations, truncations, infos of the agents that
            were live before the step. Info keys: ``progress`` (laps since the start
            line), ``laps``, ``lap_time`` [s] (only on the step a lap is completed),
            ``speed`` [m/s], ``mean_speed`` [m/s], ``crashed``, ``stuck``, ``finished``,
            ``reward_terms``.

        Raises:
            KeyError: an action for an agent that is not live.
        """
        group = self._group
        if group is not None and (self in group.results or self in group.prepared):
            return group.result(self)
        return RaceParallelEnv.step_many([self], [actions])[0]

    @staticmethod
    def share_steps(envs: Sequence[RaceParallelEnv]) -> None:
        """Let ``envs`` step together: after ``prepare_step`` of several of them, the first
        ``step`` advances all their worlds in one NumPy pass (``step_many``) and each
        ``step`` returns its own result. ``ParallelEnvsVecEnv`` prepares every
        environment before it steps the first one."""
        group = _StepGroup()
        for env in envs:
            env._group = group

    def prepare_step(self, actions: dict[AgentID, Any]) -> None:
        """Hand over this step's actions ahead of ``step`` (which must follow, with the same
        actions), so that environments sharing steps (``share_steps``) step together.
        Without sharing it does nothing."""
        if self._group is not None:
            self._group.prepared[self] = actions
            self._group.results.pop(self, None)  # a result never collected is stale

    @staticmethod
    def step_many(
        envs: Sequence[RaceParallelEnv], actions: Sequence[dict[AgentID, Any]]
    ) -> list[ParallelStepReturn]:
        """``step`` several environments at once: their worlds advance in one NumPy pass
        (``World.step_batch``) and the rewards and ends of episodes of environments with
        one config are computed in one pass too, with the results each ``step`` alone
        would give.

        Args:
            envs: the environments (each reset).
            actions: per environment, its actions as ``step`` takes them.

        Returns:
            Per environment, what its ``step`` returns.

        Raises:
            RuntimeError, KeyError: as ``step``, for the first environment at fault.
        """
        arrays = [env._action_array(a) for env, a in zip(envs, actions, strict=True)]
        events, observations, offsets = World.step_batch([env.world for env in envs], arrays)
        first = envs[0].config
        if all(env.config is first for env in envs):
            return RaceParallelEnv._after_steps(envs, events, observations, offsets)
        results: list[ParallelStepReturn | None] = [None] * len(envs)
        fields = StepEvents.__dataclass_fields__
        for config in dict.fromkeys(env.config for env in envs):  # configs in order, once
            group = [k for k, env in enumerate(envs) if env.config == config]
            rows = np.concatenate([np.arange(offsets[k], offsets[k + 1]) for k in group])
            group_events = StepEvents(*(getattr(events, f)[rows] for f in fields))
            group_offsets = list(itertools.accumulate((envs[k].n_cars for k in group), initial=0))
            for k, result in zip(
                group,
                RaceParallelEnv._after_steps(
                    [envs[k] for k in group], group_events, observations[rows], group_offsets
                ),
                strict=True,
            ):
                results[k] = result
        return results  # type: ignore[return-value]

    def _action_array(self, actions: dict[AgentID, Any]) -> NDArray[np.float64]:
        """The (n_cars, 3) action array of a ``step``; checks the agents."""
        world = self.world
        if world is None or not self.agents:
            raise RuntimeError("step() called with no live agents: call reset() first.")
        action_array = np.zeros((self.n_cars, 3))
        index, active = self._index, world.active.tolist()
        for agent, action in actions.items():
            i = index.get(agent)
            if i is None or not active[i]:
                raise KeyError(f"Action for {agent!r}, which is not a live agent: {self.agents}.")
            action_array[i] = action
        return action_array

    @staticmethod
    def _after_steps(
        envs: Sequence[RaceParallelEnv],
        events: StepEvents,
        obs: NDArray[np.float32],
        offsets: Sequence[int],
    ) -> list[ParallelStepReturn]:
        """Rewards, ends of episodes and the per-agent dicts of a ``step`` of environments
        with one config whose worlds have advanced (``events``) and been observed
        (``obs``); environment k's cars are rows ``offsets[k]:offsets[k + 1]``."""
        config = envs[0].config
        episode = config.episode
        worlds = [env.world for env in envs]
        for env in envs:
            env._steps += 1
        if len(worlds) == 1:
            laps, speed, progress = worlds[0].laps, worlds[0].cars.speed, worlds[0].progress
        else:  # every world's (N_i,) arrays, end to end
            laps = np.concatenate([w.laps for w in worlds])
            speed = np.concatenate([w.cars.speed for w in worlds])
            progress = np.concatenate([w.progress for w in worlds])
        terminated = events.crashed
        finished = laps >= episode.laps if episode.laps else np.zeros(len(laps), bool)
        truncated = events.stuck | finished
        for env, start in zip(envs, offsets, strict=False):  # out of time
            if env._steps >= episode.max_steps:
                truncated[start : start + env.n_cars] = True
        truncated &= ~terminated
        reward, terms = compute_rewards(
            events.progress_delta, speed / config.car.max_speed, terminated, config.reward
        )
        # Columns as Python lists once, then one small dict per live agent.
        mean_speed = [v for w in worlds for v in (w.distance / max(w.time, 1e-9)).tolist()]
        rows = list(
            zip(
                reward.tolist(),
                terminated.tolist(),
                truncated.tolist(),
                progress.tolist(),
                laps.tolist(),
                speed.tolist(),
                mean_speed,
                events.stuck.tolist(),
                finished.tolist(),
                *(term.tolist() for term in terms.values()),
                strict=True,
            )
        )
        term_names = list(terms)
        lap_times = {
            int(i): float(events.lap_time[i]) for i in np.flatnonzero(events.lap_completed)
        }
        done = (terminated | truncated).tolist()
        results = []
        for env, start, world in zip(envs, offsets, worlds, strict=False):
            observations, rewards, terminations, truncations, infos = {}, {}, {}, {}, {}
            index = env._index
            for agent in env.agents:
                i = start + index[agent]
                (rew, term, trunc, progress_i, laps_i, speed_i, mean_speed_i, stuck, fin,
                 *term_values) = rows[i]  # fmt: skip
                observations[agent] = obs[i]
                rewards[agent] = rew
                terminations[agent] = term
                truncations[agent] = trunc
                infos[agent] = {
                    "progress": progress_i,
                    "laps": laps_i,
                    "speed": speed_i,
                    "mean_speed": mean_speed_i,
                    "crashed": term,
                    "stuck": stuck,
                    "finished": fin,
                    "reward_terms": dict(zip(term_names, term_values, strict=True)),
                }
                if i in lap_times:
                    infos[agent]["lap_time"] = lap_times[i]
            if any(done[start : start + env.n_cars]):
                world.active &= ~np.array(done[start : start + env.n_cars])
                env.agents = [agent for agent in env.agents if not done[start + index[agent]]]
            if env.render_mode == "human":
                env.render()
            results.append((observations, rewards, terminations, truncations, infos))
        return results

    def render(self) -> NDArray[np.uint8] | None:
        """Draw the race: an (H, W, 3) uint8 frame in "rgb_array" mode, a window in "human".

        Returns None (with a warning-free no-op) when ``render_mode`` is None.
        """
        if self.render_mode is None or self.world is None:
            return None
        if self._renderer is None:
            from racing_rl.ui.render import Renderer

            self._renderer = Renderer(mode=self.render_mode, fps=self.metadata["render_fps"])
        return self._renderer.draw(self.world)

    def close(self) -> None:
        """Close the render window, if any."""
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None


class _StepGroup:
    """Environments that step together (``RaceParallelEnv.share_steps``): the actions
    prepared since the last shared step, and the results not yet collected."""

    def __init__(self) -> None:
        self.prepared: dict[RaceParallelEnv, dict[AgentID, Any]] = {}
        self.results: dict[RaceParallelEnv, ParallelStepReturn] = {}

    def result(self, env: RaceParallelEnv) -> ParallelStepReturn:
        """``env``'s step result, stepping every prepared environment first if needed."""
        if env not in self.results:
            envs = list(self.prepared)
            actions = [self.prepared[e] for e in envs]
            self.prepared.clear()
            self.results.update(zip(envs, RaceParallelEnv.step_many(envs, actions), strict=True))
        return self.results.pop(env)

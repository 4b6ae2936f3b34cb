"""RaceParallelEnv: PettingZoo's multi-agent API over one simulated race (a
``RaceBatch`` of one race, the code the simulator's SB3 VecEnv steps)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces
from numpy.typing import NDArray
from pettingzoo import ParallelEnv

from racing_rl.contract import AgentID, ParallelStepReturn, action_space, observation_space
from racing_rl.envs.batch import RaceBatch
from racing_rl.envs.config import RaceConfig
from racing_rl.errors import ConfigError
from racing_rl.sim.track import Track
from racing_rl.sim.world import World


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

    With ``sensors.layout="roblox_car"`` the rays are in the game car's order (ahead, 28°
    right, 28° left, …, behind, then the same 8 seeing cars), each over its own length
    (``SensorConfig.angles``, ``SensorConfig.ranges``).

    ## Action Space
    ``Box(-1, 1, shape=(3,), float32)``: throttle (negative brakes, then reverses),
    steering (negative left), nitro (active while > 0.5 and fuel remains). A finite value
    outside [-1, 1] is clipped to it; a non-finite one is refused.

    ## Rewards
    ``racing_rl.envs.rewards``: 1000 per lap of progress (× 20 backwards), a speed bonus
    (exp(2·clip(v/v_max, 0, 1)) − 1)·0.5 (0 … 3.19 by the formula; the car reaches 1.31 at
    its 29 m/s top speed, 2.13 at 37 m/s with nitro; none when reversing), and −10 on a
    crash.
    ``info["reward_terms"]`` has the terms (``progress``, ``speed``, ``crash``), which sum
    to the reward.

    ## Starting State
    ``episode.spawn="random"``: cars spread evenly around the track with random offset,
    heading error and speed (a share at rest; with ``episode.grid_start_prob``, a race
    starts on the grid instead, its cars in random slots). ``"grid"``: at rest on the
    start line, two abreast. ``"line"``: at rest on the start line, all on the same spot
    (no collisions). A car spawned (or a grid slot) beside an obstacle starts in the
    middle of the gap it leaves.

    ## Episode End
    Terminated: the car leaves the track, hits an obstacle, or (``rules.car_collisions``)
    touches another car. Truncated: ``episode.max_steps`` reached, no new progress for
    ``rules.stuck_time`` seconds (``info["stuck"]``), or ``episode.laps`` completed
    (``info["finished"]``). Finished cars leave ``agents``; the others race on.

    ## Arguments
    config: a ``RaceConfig`` (``racing_rl.config.backend_config`` builds one from a
    mapping of the ``backend`` group's keys); n_cars: cars on the track; track_seeds: seeds
    the track is drawn from on reset; env_id: used in agent names; render_mode: "human" or
    "rgb_array". Raises ``ConfigError`` on an invalid ``render_mode``, ``n_cars`` or
    ``track_seeds``, and ``TypeError`` when ``config`` is no ``RaceConfig``.
    ``metadata["render_fps"]`` is the simulation's rate, 1 / ``rules.dt`` (15 by default).
    There is no global ``state()``: each car sees only its own observation.

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
        config = RaceConfig() if config is None else config
        if not isinstance(config, RaceConfig):  # a dict failed later, an AttributeError
            raise TypeError(
                f"config must be a RaceConfig, got {type(config).__name__}; "
                "racing_rl.config.backend_config({'name': 'pygame', ...}) builds one from "
                "the backend group's keys"
            )
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ConfigError(
                f"render_mode must be one of {self.metadata['render_modes']} or None, "
                f"got {render_mode!r}."
            )
        self.races = RaceBatch(config, n_cars, [track_seeds])
        self.metadata = {**self.metadata, "render_fps": config.render_fps}
        self.render_mode = render_mode
        self.n_cars = n_cars
        self.track_seeds = track_seeds
        self.possible_agents: list[AgentID] = [f"car_{i}_env_{env_id}" for i in range(n_cars)]
        self.agents: list[AgentID] = []
        self._index = {agent: i for i, agent in enumerate(self.possible_agents)}
        self._observation_space = observation_space(config.sensors.n_rays)
        self._action_space = action_space()
        self._renderer: Any = None

    def observation_space(self, agent: AgentID) -> spaces.Box:
        """The observation space; the same object for every agent.

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
        if agent not in self._index:
            raise KeyError(f"{agent!r} is not an agent of this race: {self.possible_agents}.")

    @property
    def config(self) -> RaceConfig:
        """The race settings; setting them is ``RaceBatch.configure``'s."""
        return self.races.config

    @config.setter
    def config(self, config: RaceConfig) -> None:
        self.races.configure(config)

    @property
    def world(self) -> World | None:
        """The race's world (None before the first reset)."""
        return self.races.worlds  # type: ignore[return-value]  # one race: a World

    @property
    def np_random(self) -> np.random.Generator:
        """The generator of track choices and spawns."""
        return self.races.np_random[0]

    @np_random.setter
    def np_random(self, value: np.random.Generator) -> None:
        self.races.np_random[0] = value

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

        Raises:
            ValueError: a ``track_seed`` option that is no integer (other keys are ignored).
        """
        track_seed = self.races.reset(0, seed, options)
        self.agents = self.possible_agents[:]
        assert self.world is not None
        obs = self.world.observe()
        if self.render_mode == "human":  # the start is shown too, as Gymnasium's envs do
            self.render()
        return (
            {agent: obs[i] for i, agent in enumerate(self.agents)},
            {agent: {"track_seed": track_seed} for agent in self.agents},
        )

    def respawn(self, agents: Sequence[AgentID]) -> dict[AgentID, NDArray[np.float32]]:
        """Start a new episode for some cars while the others race on.

        What the Roblox game does when a car's episode ends (the bridge's emulator uses
        it): the cars are placed as ``episode.spawn`` says and rejoin ``agents``.

        Args:
            agents: agents to respawn (finished ones, or live ones to restart).

        Returns:
            The respawned agents' observations.

        Raises:
            RuntimeError: before the first reset.
            KeyError: for an agent that is not one of ``possible_agents``.
        """
        world = self.world
        if world is None:
            raise RuntimeError("respawn() before reset(): call reset() first.")
        cars = np.zeros(self.n_cars, dtype=bool)
        cars[[self._index[agent] for agent in agents]] = True
        self.races.respawn(0, cars)
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
            ``speed`` [m/s], ``mean_speed`` [m/s], ``distance`` [m] (driven since the car
            was placed), ``crashed``, ``stuck``, ``finished``, ``reward_terms``.

        Raises:
            RuntimeError: no live agents (call ``reset`` first).
            KeyError: an action for an agent that is not live.
            ValueError: an action that is not three finite numbers; nothing moves.
        """
        world = self.world
        if world is None or not self.agents:
            raise RuntimeError("step() called with no live agents: call reset() first.")
        action_array = np.zeros((self.n_cars, 3))
        index, active = self._index, world.active.tolist()
        for agent, action in actions.items():
            i = index.get(agent)
            if i is None or not active[i]:
                raise KeyError(f"Action for {agent!r}, which is not a live agent: {self.agents}.")
            action = np.asarray(action)
            if action.shape != (3,):  # a (1,) action would set all three
                raise ValueError(
                    f"the action for {agent!r} has shape {action.shape}: expected (3,), throttle, "
                    "steering and nitro."
                )
            action_array[i] = action
        result = self.races.step(action_array)
        car_infos = result.infos()
        observations, rewards, terminations, truncations, infos = {}, {}, {}, {}, {}
        for agent in self.agents:
            i = index[agent]
            observations[agent] = result.observations[i]
            rewards[agent] = float(result.reward[i])
            terminations[agent] = bool(result.terminated[i])
            truncations[agent] = bool(result.truncated[i])
            infos[agent] = car_infos[i]
        self.agents = [a for a in self.agents if not (terminations[a] or truncations[a])]
        if self.render_mode == "human":
            self.render()
        return observations, rewards, terminations, truncations, infos

    def render(self) -> NDArray[np.uint8] | None:
        """Draw the race: an (H, W, 3) uint8 frame in "rgb_array" mode, a window in "human".

        Returns None, with a warning (as Gymnasium's environments do), when ``render_mode``
        is None; None before the first reset.
        """
        if self.render_mode is None:
            gymnasium.logger.warn(
                "render() without a render_mode: pass render_mode='rgb_array' or 'human' "
                "when making the environment."
            )
            return None
        if self.world is None:
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

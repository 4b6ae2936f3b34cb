"""SimVecEnv: the built-in simulator as an SB3 VecEnv, one slot per car.

Training and evaluation on the simulator step every car of every race in one
``RaceBatch`` (one ``WorldBatch``, one NumPy pass): SB3's action array goes in, and
observation, reward and done arrays come out, with no per-agent dicts between.

Slots are ordered race by race, car by car, as ``racing_rl.vec.ParallelEnvsVecEnv``
orders the agents of several ParallelEnvs, and episodes end as it ends them
(``episode.reset``): ``race`` ends a race's episode for all its cars when its first car
is done (that car reports its own termination or truncation, the others are truncated,
bootstrapped as a time limit is) and restarts the race; ``car`` respawns only the cars
that are done while the others race on. Every car's ``terminal_observation`` is taken
before its next episode starts. Races restart after every race has been stepped.

Opponents (training's ``scripted_opponents``): each race has that many more cars, driven
by a driver given to the VecEnv (``racing_rl.vec.make_env`` gives the pure-pursuit one,
``racing_rl.drivers.pure_pursuit``) for all races in one call. They race under the same
rules (their crashes and ends count as any car's: with ``episode.reset="race"`` one ends
the race) but are not slots: the policy neither sees their observations nor learns from
their rewards.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray
from stable_baselines3.common.vec_env import VecEnv
from stable_baselines3.common.vec_env.base_vec_env import (
    VecEnvIndices,
    VecEnvObs,
    VecEnvStepReturn,
)

from racing_rl.contract import action_space, observation_space, slot_actions
from racing_rl.envs.batch import RaceBatch
from racing_rl.envs.config import RaceConfig
from racing_rl.errors import ConfigError
from racing_rl.sim.track import TrackConfig
from racing_rl.sim.world import WorldBatch


def episode_ends(
    done: NDArray[np.bool_], reset: str
) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """Which cars' episodes end, and which races restart, under ``episode.reset``.

    ``race``: a race's episode ends for all its cars once one is done, and the race
    restarts. ``car``: only the cars that are done end; their race restarts only when
    all of them are (else those cars respawn). Both VecEnvs (``SimVecEnv``,
    ``racing_rl.vec.ParallelEnvsVecEnv``) end episodes by this rule.

    Args:
        done: per race and car, terminated or truncated this step, shape (R, C).
        reset: ``"race"`` or ``"car"``.

    Returns:
        ``ending``, shape (R, C): the cars whose episodes end (each one a done in SB3's
        sense); ``whole``, shape (R,): the races that restart.
    """
    whole = done.any(axis=1) & (done.all(axis=1) | (reset == "race"))
    return done | whole[:, None], whole


def mark_terminal(info: dict[str, Any], observation: NDArray[np.float32], terminated: bool) -> None:
    """The keys SB3 reads from the ``info`` of a slot whose episode ended:
    ``terminal_observation`` (a copy) and ``TimeLimit.truncated`` (bootstrap from it:
    every end but a termination, the other cars of a ``race`` reset among them)."""
    info["terminal_observation"] = np.array(observation, copy=True)
    info["TimeLimit.truncated"] = not terminated


def race_seed(seed: int | None, race: int) -> int | None:
    """The seed of race ``race`` (a PettingZoo env's, or a ``RaceBatch`` race's) of a
    VecEnv that SB3's ``VecEnv.seed`` seeded with ``seed`` (its first slot's): a stream
    of its own per (seed, race), from NumPy's ``SeedSequence``. (A race used to take its
    first slot's seed, ``seed + race × cars``, so that runs seeded s and s + cars shared
    all races but one: their tracks and spawns.) None, unseeded, stays None.
    """
    if seed is None:
        return None
    return int(np.random.SeedSequence([seed % 2**63, race]).generate_state(1, np.uint64)[0])


class SimVecEnv(VecEnv):
    """``n_races`` simulated races of ``n_cars`` cars as one SB3 VecEnv.

    Args:
        config: the race settings.
        n_races: races, one track each.
        n_cars: cars per race.
        track_seeds: per race, the seeds its tracks are drawn from.
        render_mode: None or "rgb_array" (``get_images`` draws every race).
        track_mix: other track generators the drawn tracks come from (``RaceBatch``).
        n_opponents: cars in each race besides its ``n_cars`` slots, >= 0 (the last cars
            of each race in the ``RaceBatch``), driven by ``opponent_driver``.
        opponent_driver: actions for every car of the races' ``WorldBatch``, shape
            (cars, 3) (e.g. ``PurePursuitDriver().act``); the opponents' rows are used.

    Attributes:
        races: the races, stepped as one ``RaceBatch`` of ``n_cars + n_opponents`` cars
            each.

    Raises:
        ConfigError: on a count below 1 (opponents below 0, or opponents without a
            driver), track seeds that are not one list per race, or an unknown render
            mode.
    """

    def __init__(
        self,
        config: RaceConfig,
        n_races: int,
        n_cars: int,
        track_seeds: Sequence[Sequence[int]],
        render_mode: str | None = None,
        track_mix: Sequence[TrackConfig] = (),
        n_opponents: int = 0,
        opponent_driver: Callable[[WorldBatch], NDArray[np.float64]] | None = None,
    ) -> None:
        if n_races < 1 or len(track_seeds) != n_races:
            raise ConfigError(
                f"SimVecEnv needs n_races >= 1 and one list of track seeds per race, got "
                f"n_races={n_races} and {len(track_seeds)} lists."
            )
        if n_opponents < 0 or (n_opponents and opponent_driver is None):
            raise ConfigError(
                f"SimVecEnv needs n_opponents >= 0 and, for opponents, an opponent_driver; got "
                f"n_opponents={n_opponents} and opponent_driver={opponent_driver!r}."
            )
        if render_mode not in (None, "rgb_array"):
            raise ConfigError(f"render_mode must be None or 'rgb_array', got {render_mode!r}.")
        self.config = config
        self.races = RaceBatch(config, n_cars + n_opponents, track_seeds, track_mix)
        self.n_cars = n_cars
        self.n_opponents = n_opponents
        per_race = n_cars + n_opponents
        #: The RaceBatch rows of the slots' cars (every row without opponents).
        self._learners = (np.arange(n_races * per_race) % per_race) < n_cars
        self._opponent_driver = opponent_driver
        self.render_mode = render_mode  # SB3's VecEnv reads it back through get_attr
        self._renderer: Any = None
        super().__init__(n_races * n_cars, observation_space(config.sensors.n_rays), action_space())
        self.metadata = {"render_modes": ["rgb_array"], "render_fps": config.render_fps}
        self._obs = np.zeros((self.num_envs, *self.observation_space.shape), np.float32)
        self._actions: NDArray[np.float32] | None = None

    def _reset_race(self, race: int, seed: int | None = None, options: Any = None) -> None:
        """Reset race ``race`` and give each of its slots ``{"track_seed": seed}``."""
        track_seed = self.races.reset(race, seed, options)
        for slot in range(race * self.n_cars, (race + 1) * self.n_cars):
            self.reset_infos[slot] = {"track_seed": track_seed}

    def reset(self) -> VecEnvObs:
        """Reset every race, with the seed set by ``seed`` (race k: ``race_seed``) and the
        options set by ``set_options`` (race k: those of its first slot)."""
        for race in range(self.races.n_races):
            first = race * self.n_cars
            self._reset_race(race, race_seed(self._seeds[0], race), self._options[first] or None)
        self._reset_seeds()
        self._reset_options()
        assert self.races.worlds is not None
        self._obs[:] = self.races.worlds.observe()[self._learners]
        return self._obs.copy()

    def step_async(self, actions: np.ndarray) -> None:
        """Hold the learners' actions, shape (num_envs, 3), for ``step_wait``.

        Raises:
            ValueError: actions of another shape (``contract.slot_actions``).
        """
        self._actions = slot_actions(actions, self.num_envs)

    def step_wait(self) -> VecEnvStepReturn:
        """Step every race; restart races (or respawn cars) whose episodes ended."""
        assert self._actions is not None, "step_async() must come before step_wait()"
        worlds, learners = self.races.worlds, self._learners
        assert worlds is not None, "reset() must come before step()"
        if self.n_opponents:
            assert self._opponent_driver is not None
            actions = np.array(self._opponent_driver(worlds), np.float64)
            actions[learners] = self._actions
        else:
            actions = np.asarray(self._actions, np.float64)
        step = self.races.step(actions)
        self._actions = None
        done = step.terminated | step.truncated  # per car: its own episode ended
        per_race = done.reshape(self.races.n_races, self.races.n_cars)
        ended = per_race.any(axis=1)
        ending_cars, whole = episode_ends(per_race, self.config.episode.reset)
        ending = ending_cars.reshape(-1)[learners]  # slots whose episode ends
        terminated, observations = step.terminated[learners], step.observations[learners]
        infos = step.infos()
        if self.n_opponents:
            infos = [info for info, learner in zip(infos, learners, strict=True) if learner]
        for slot in np.flatnonzero(ending):
            mark_terminal(infos[slot], observations[slot], bool(terminated[slot]))
        self._obs[~ending] = observations[~ending]
        if ended.any():
            n = self.n_cars
            for race in np.flatnonzero(ended):
                if whole[race]:
                    self._reset_race(int(race))
                else:
                    self.races.respawn(int(race), per_race[race])
                    for slot in np.flatnonzero(per_race[race][:n]) + race * n:
                        self.reset_infos[slot] = {}
            self._obs[ending] = worlds.observe()[learners][ending]
        return self._obs.copy(), step.reward[learners].astype(np.float32), ending, infos

    @property
    def learners(self) -> NDArray[np.bool_]:
        """Which cars of ``races.worlds`` are slots (not scripted opponents), shape (cars,):
        the slots' rows, in slot order."""
        return self._learners

    def close(self) -> None:
        """Close the renderer, if any (the simulator holds no other resource)."""
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    def get_images(self) -> Sequence[np.ndarray | None]:
        """One frame per slot: the frame of the slot's race (``render_mode="rgb_array"``)."""
        worlds = self.races.worlds
        if self.render_mode != "rgb_array" or worlds is None:
            return [None] * self.num_envs
        if self._renderer is None:
            from racing_rl.ui.render import Renderer

            self._renderer = Renderer(mode="rgb_array", fps=self.metadata["render_fps"])
        frames = [self._renderer.draw(worlds.world(race)) for race in range(self.races.n_races)]
        return [frames[slot // self.n_cars] for slot in range(self.num_envs)]

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """An attribute of the VecEnv, once per slot (every slot shares one simulator)."""
        value = getattr(self, attr_name)
        return [value for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        """Set an attribute of the VecEnv, once for every slot (they share one simulator).

        Raises:
            ValueError: ``indices`` that leave a slot out.
        """
        self._all_slots(indices, "set_attr")
        setattr(self, attr_name, value)

    def env_method(
        self,
        method_name: str,
        *method_args: Any,
        indices: VecEnvIndices = None,
        **method_kwargs: Any,
    ) -> list[Any]:
        """Call a method of the VecEnv once (every slot shares one simulator); its result
        once per slot.

        Raises:
            ValueError: ``indices`` that leave a slot out.
        """
        self._all_slots(indices, "env_method")
        result = getattr(self, method_name)(*method_args, **method_kwargs)
        return [result for _ in range(self.num_envs)]

    def _all_slots(self, indices: VecEnvIndices, call: str) -> None:
        """Refuse ``indices`` that leave a slot out: SB3's ``DummyVecEnv`` acts on those
        environments alone, which one simulator for every slot cannot."""
        if sorted(set(self._get_indices(indices))) != list(range(self.num_envs)):
            raise ValueError(
                f"SimVecEnv.{call} acts on the one simulator every slot shares: indices="
                f"{indices!r} cannot select some of its {self.num_envs} slots (leave it out)."
            )

    def env_is_wrapped(self, wrapper_class: type, indices: VecEnvIndices = None) -> list[bool]:
        """False for every slot: no Gymnasium wrapper lies under this VecEnv."""
        return [False for _ in self._get_indices(indices)]

"""The SB3 VecEnvs and their stack (racing_rl.vec, racing_rl.envs.vec_env): seeding,
truncation, episode ends, the stack."""

import numpy as np
import pytest
from omegaconf import OmegaConf
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import VecMonitor, VecNormalize

from racing_rl.drivers.pure_pursuit import PurePursuitDriver
from racing_rl.envs.config import EpisodeConfig, RaceConfig
from racing_rl.envs.race import RaceParallelEnv
from racing_rl.envs.vec_env import SimVecEnv, episode_ends, race_seed
from racing_rl.errors import ConfigError
from racing_rl.sim.world import RaceRules
from racing_rl.vec import ParallelEnvsVecEnv, wrap_vec_env

WRAPPERS = OmegaConf.create(
    {"frame_stack": 4, "monitor": True, "normalize": {"norm_obs": True, "norm_reward": True}}
)


def race_envs(n_races=2, n_cars=3, **episode):
    config = RaceConfig(episode=EpisodeConfig(**episode))
    return [RaceParallelEnv(config, n_cars=n_cars, env_id=i) for i in range(n_races)]


def sim_venv(n_races=2, n_cars=3, **episode):
    config = RaceConfig(episode=EpisodeConfig(**episode))
    return SimVecEnv(config, n_races, n_cars, [range(10_000)] * n_races)


@pytest.mark.parametrize("reset", ["race", "car"])
def test_the_simulators_vecenv_is_the_parallelenvs_one(reset):
    """SimVecEnv (every race in one WorldBatch, arrays in and out) returns exactly what
    the generic ParallelEnvsVecEnv over the same races' RaceParallelEnvs returns: the
    observations, rewards, dones, infos (terminal observations included) and reset infos,
    through crashes, time limits, restarts, respawns and track changes."""
    episode = {"reset": reset, "max_steps": 90, "track_change_every": 2}
    sim, generic = sim_venv(3, 2, **episode), ParallelEnvsVecEnv(race_envs(3, 2, **episode))
    for venv in (sim, generic):
        venv.seed(5)
    np.testing.assert_array_equal(sim.reset(), generic.reset())
    rng = np.random.default_rng(0)
    ends = 0
    for _ in range(300):
        actions = rng.uniform(-0.3, 1.0, (6, 3)).astype(np.float32)
        got, expected = sim.step(actions), generic.step(actions)
        assert all(sim.observation_space.contains(o) for o in got[0])
        for a, b in zip(got[:3], expected[:3], strict=True):
            np.testing.assert_array_equal(a, b)
        for a, b in zip(got[3], expected[3], strict=True):
            terminal = a.pop("terminal_observation", None)
            np.testing.assert_array_equal(terminal, b.pop("terminal_observation", None))
            assert a == b
        assert sim.reset_infos == generic.reset_infos
        ends += int(got[2].sum())
    assert ends > 20


def test_stack_order_and_shapes():
    venv = wrap_vec_env(sim_venv(), WRAPPERS, gamma=0.99)
    assert isinstance(venv, VecNormalize) and isinstance(venv.venv, VecMonitor)
    assert isinstance(venv.unwrapped, SimVecEnv)
    assert venv.num_envs == 6
    assert venv.observation_space.shape == (4 * 13,)
    obs = venv.reset()
    assert obs.shape == (6, 52)


def test_bare_stack_without_wrappers():
    bare = OmegaConf.create({"frame_stack": 1, "monitor": False, "normalize": None})
    venv = wrap_vec_env(sim_venv(), bare, gamma=0.99)
    assert isinstance(venv, SimVecEnv)
    assert venv.observation_space.shape == (13,)


@pytest.mark.parametrize("stack", [0, -1, 2.5, "4", True])
def test_invalid_frame_stack_is_refused(stack):
    with pytest.raises(ConfigError, match="frame_stack"):
        wrap_vec_env(sim_venv(), OmegaConf.create({"frame_stack": stack}), gamma=0.99)


def test_a_normalize_key_that_vecnormalize_lacks_is_refused():
    # It was VecNormalize's TypeError, after the other wrappers were made.
    wrappers = OmegaConf.create({"normalize": {"clip_obs": 5.0, "foo": 1}})
    with pytest.raises(
        ConfigError, match=r"normalize.foo=1; not an argument of VecNormalize \(allowed: .*clip_obs"
    ):
        wrap_vec_env(sim_venv(), wrappers, gamma=0.99)


def test_seeded_ppo_is_reproducible():
    """SuperSuit's own SB3 adapter raises on PPO(seed=...); ours seeds every env."""

    def rollout(seed=7):
        venv = wrap_vec_env(sim_venv(), WRAPPERS, gamma=0.99)
        model = PPO("MlpPolicy", venv, n_steps=32, batch_size=64, n_epochs=1, seed=seed)
        model.learn(64)
        obs = venv.reset()
        trace = []
        for _ in range(20):
            action, _ = model.predict(obs, deterministic=True)
            obs, _, _, _ = venv.step(action)
            trace.append(venv.get_original_reward().copy())
        return np.array(trace)

    first = rollout()
    np.testing.assert_array_equal(rollout(), first)
    assert not np.array_equal(rollout(seed=8), first)  # the seed reaches what is compared


def test_truncation_reaches_sb3_with_terminal_observation():
    import supersuit as ss

    envs = [
        ss.frame_stack_v1(env, 4)
        for env in race_envs(n_races=2, n_cars=2, max_steps=5, spawn="grid")
    ]
    venv = ParallelEnvsVecEnv(envs)
    venv.reset()
    still = np.zeros((venv.num_envs, 3), dtype=np.float32)  # standing still: no crash
    for step in range(5):
        obs, _, dones, infos = venv.step(still)
        if step < 4:
            assert not dones.any()
    assert dones.all()
    for info, fresh in zip(infos, obs, strict=True):
        assert info["TimeLimit.truncated"] is True
        terminal = info["terminal_observation"]
        assert terminal.shape == (4 * 13,)
        # The terminal observation is the old episode's full stack of four frames; the
        # returned one starts a new episode (three empty frames, then the first one).
        assert np.all(terminal[:10] > 0) and np.all(fresh[: 3 * 13] == 0)  # rays of frame 1
        np.testing.assert_array_equal(terminal[-13:], fresh[-13:])  # standing still
    # A row too many was ignored; a row short ended in an IndexError inside step_wait.
    for rows in (5, 3):
        with pytest.raises(ValueError, match=r"must have shape \(4, 3\), one row per slot"):
            venv.step(np.zeros((rows, 3), np.float32))


def test_first_done_car_ends_its_race_and_truncates_the_others():
    venv = sim_venv(n_races=2, n_cars=2, spawn="grid")
    venv.reset()
    actions = np.zeros((4, 3), dtype=np.float32)
    actions[0] = [1.0, -1.0, 0.0]  # car 0 of env 0: full throttle, hard left: off the track
    for _ in range(200):
        _, _, dones, infos = venv.step(actions)
        if dones.any():
            break
    assert dones.tolist() == [True, True, False, False]
    assert infos[0]["crashed"] and infos[0]["TimeLimit.truncated"] is False
    assert not infos[1]["crashed"] and infos[1]["TimeLimit.truncated"] is True
    assert venv.races.worlds.active.all()  # reset for the next race
    assert venv.races._steps[0] == 0 < venv.races._steps[1]  # env 1 races on


def test_with_reset_car_one_cars_end_respawns_it_alone():
    sim = sim_venv(n_races=1, n_cars=2, spawn="grid", reset="car")
    venv = wrap_vec_env(sim, WRAPPERS, gamma=0.99)  # a stack of 4 frames per car
    venv.reset()
    actions = np.zeros((2, 3), dtype=np.float32)
    actions[0] = [1.0, -1.0, 0.0]  # car 0: off the track
    steps = 0
    while steps < 200:
        obs, _, dones, infos = venv.step(actions)
        steps += 1
        if dones.any():
            break
    assert dones.tolist() == [True, False] and infos[0]["crashed"]
    assert "terminal_observation" in infos[0] and "terminal_observation" not in infos[1]
    assert sim.races.worlds.active.all()  # car 0 back, car 1 raced on
    assert sim.races._steps.tolist() == [steps]  # the race was not restarted
    raw = venv.unnormalize_obs(obs)
    assert np.allclose(raw[0, :-13], 0.0, atol=1e-6)  # car 0's stack starts afresh: zeros ...
    assert not np.allclose(raw[1, :-13], 0.0, atol=1e-6)  # ... car 1's keeps its frames


def test_scripted_opponents_race_beside_the_slots_and_their_crash_ends_the_race():
    """``n_opponents`` (training's ``scripted_opponents``): each race has that many more
    cars, driven by the given (here the scripted) driver and hidden from SB3: the slots
    are the learning cars, their observations and rewards those of the RaceBatch rows
    they stand for. With ``episode.reset="race"`` a scripted car's crash restarts its
    race, the learning cars truncated (bootstrapped), not terminated."""
    config, scripted = RaceConfig(episode=EpisodeConfig(spawn="grid")), PurePursuitDriver()
    venv = SimVecEnv(config, 2, 1, [[3], [4]], n_opponents=2, opponent_driver=scripted.act)
    assert venv.num_envs == 2 and venv.races.n_cars == 3
    venv.seed(0)
    obs = venv.reset()
    np.testing.assert_array_equal(obs, venv.races.worlds.observe()[[0, 3]])
    still = np.zeros((2, 3), np.float32)  # the learning cars wait on the grid
    for _ in range(30):  # within rules.stuck_time (4 s)
        obs, _, dones, _ = venv.step(still)
        assert not dones.any()
    worlds = venv.races.worlds
    assert np.all(worlds.progress[[1, 2, 4, 5]] > 0.01)  # the scripted cars drove off ...
    assert np.all(np.abs(worlds.cars.speed[[0, 3]]) < 1e-9)  # ... the learning ones did not
    np.testing.assert_array_equal(obs, worlds.observe()[[0, 3]])
    # A scripted car that crashes (put it beside the track) ends its race.
    worlds.cars.position[4] += 100 * worlds.tracks[1].normals[worlds.index[4]]
    _, _, dones, infos = venv.step(still)
    assert dones.tolist() == [False, True]
    assert not infos[1]["crashed"] and infos[1]["TimeLimit.truncated"] is True
    assert venv.races._steps.tolist() == [31, 0]
    # One action for every slot was broadcast over the learners' rows, unnoticed.
    for wrong in (np.zeros(3, np.float32), np.zeros((2, 1), np.float32)):
        with pytest.raises(ValueError, match=r"must have shape \(2, 3\), one row per slot"):
            venv.step(wrong)
    with pytest.raises(ConfigError, match="n_opponents"):
        SimVecEnv(config, 1, 1, [[3]], n_opponents=-1)
    with pytest.raises(ConfigError, match="an opponent_driver"):
        SimVecEnv(config, 1, 1, [[3]], n_opponents=1)


def test_grid_starts_put_a_random_spawns_race_on_the_grid_in_random_order():
    """``episode.grid_start_prob``: that share of a race's starts are grid starts (at rest,
    two abreast, the cars in shuffled slots); cars respawned alone spawn at random."""
    from racing_rl.envs.batch import GRID_ROW_GAP, RaceBatch

    batch = RaceBatch(RaceConfig(episode=EpisodeConfig(grid_start_prob=0.5)), 4, [range(100)])
    grids, orders = 0, set()
    for episode in range(40):
        batch.reset(0, seed=episode)
        worlds = batch.worlds
        if np.all(worlds.cars.speed == 0) and np.all(worlds.progress <= 0):
            grids += 1
            slots = np.rint(-worlds.progress * worlds.tracks[0].length / (GRID_ROW_GAP / 2))
            assert sorted(slots.tolist()) == [0, 1, 2, 3]
            orders.add(tuple(slots.tolist()))
    assert 10 < grids < 30 and len(orders) > 3
    batch.respawn(0, np.array([True, False, False, False]))
    assert batch.worlds.progress[0] > 0  # spread round the track, not on the grid
    with pytest.raises(ConfigError, match="grid_start_prob"):
        EpisodeConfig(grid_start_prob=1.5)


def test_a_rotated_grid_starts_each_car_from_each_slot_over_consecutive_tracks():
    """``episode.rotate_grid``: on track seed s car i starts from slot (i + s) mod n, so
    over n consecutive seeds each car starts once from each slot; without it, slot i."""
    from racing_rl.envs.batch import GRID_ROW_GAP, RaceBatch

    def slots(rotate: bool, seed: int) -> list[int]:
        config = RaceConfig(episode=EpisodeConfig(spawn="grid", rotate_grid=rotate))
        batch = RaceBatch(config, 3, [[seed]])
        batch.reset(0)
        back = -batch.worlds.progress * batch.worlds.tracks[0].length / (GRID_ROW_GAP / 2)
        return np.rint(back).astype(int).tolist()

    assert [slots(False, seed) for seed in (7, 8, 9)] == [[0, 1, 2]] * 3
    rotated = [slots(True, seed) for seed in (7, 8, 9)]
    assert rotated == [[1, 2, 0], [2, 0, 1], [0, 1, 2]]  # (i + seed) mod 3


def test_frame_stack_space_is_supersuits():
    """Runs saved with SuperSuit's frame_stack_v1 (bounds tiled) load into ours."""
    import supersuit as ss

    stacked = ss.frame_stack_v1(race_envs(n_races=1)[0], 2)
    venv = wrap_vec_env(sim_venv(n_races=1), OmegaConf.create({"frame_stack": 2}), gamma=0.99)
    assert venv.observation_space == stacked.observation_space(stacked.possible_agents[0])


def test_mismatched_spaces_are_refused():
    small = RaceConfig(sensors=RaceConfig().sensors.__class__(n_rays=5))
    envs = [RaceParallelEnv(n_cars=1), RaceParallelEnv(small, n_cars=1, env_id=1)]
    with pytest.raises(ConfigError, match="contract"):
        ParallelEnvsVecEnv(envs)


def test_a_wrapped_env_of_per_car_episodes_is_refused_a_race_s_is_taken():
    """A car respawned alone skipped the env's wrappers: a frame stack failed on the raw
    observation's shape, an observation normaliser was silently bypassed."""
    import supersuit as ss

    with pytest.raises(ConfigError, match=r"episode.reset=car.*Wrap the VecEnv instead"):
        ParallelEnvsVecEnv([ss.frame_stack_v1(env, 2) for env in race_envs(1, reset="car")])
    venv = ParallelEnvsVecEnv([ss.frame_stack_v1(env, 2) for env in race_envs(1, reset="race")])
    assert venv.reset().shape == (3, 2 * race_envs(1)[0].observation_space("car_0_env_0").shape[0])


def test_the_simulators_vecenv_draws_each_race_and_passes_sb3s_checks():
    """``get_images`` draws every race once, as ``RaceParallelEnv.render`` draws it; SB3's
    ``VecEnv`` API (render modes, attributes, methods) answers as for any VecEnv."""
    venv = SimVecEnv(RaceConfig(), 2, 2, [[3], [4]], render_mode="rgb_array")
    venv.seed(0)
    venv.reset()
    venv.step(np.full((4, 3), 0.5, np.float32))
    frames = venv.get_images()
    assert len(frames) == 4 and frames[0] is frames[1] and frames[2] is frames[3]
    env = RaceParallelEnv(RaceConfig(), n_cars=2, track_seeds=[4], render_mode="rgb_array")
    env.reset(seed=race_seed(0, 1))  # the second race of a VecEnv seeded 0
    env.step({agent: np.full(3, 0.5, np.float32) for agent in env.agents})
    np.testing.assert_array_equal(frames[2], env.render())
    assert venv.render_mode == "rgb_array" and venv.get_attr("n_cars") == [2] * 4
    assert venv.env_is_wrapped(VecMonitor) == [False] * 4
    assert venv.metadata["render_fps"] == env.metadata["render_fps"] == 15
    slow = RaceConfig(rules=RaceRules(dt=0.05))  # VecVideoRecorder plays at render_fps
    assert SimVecEnv(slow, 1, 1, [[3]]).metadata["render_fps"] == 20
    # One simulator for every slot: a method or attribute of some slots only is refused
    # (it acted on every slot, where SB3's DummyVecEnv acts on those alone).
    assert venv.env_method("get_attr", "n_cars", indices=range(4)) == [[2] * 4] * 4
    with pytest.raises(ValueError, match=r"indices=\[0\] cannot select some of its 4 slots"):
        venv.set_attr("render_mode", None, indices=[0])
    with pytest.raises(ValueError, match="env_method acts on the one simulator"):
        venv.env_method("reset", indices=[0])
    assert venv.render_mode == "rgb_array"
    venv.close()
    with pytest.raises(ConfigError, match="render_mode"):
        SimVecEnv(RaceConfig(), 1, 1, [[3]], render_mode="human")
    with pytest.raises(ConfigError, match="one list of track seeds per race"):
        SimVecEnv(RaceConfig(), 2, 1, [[3]])


def test_a_games_envs_send_every_action_before_any_waits():
    """``step_envs`` (training's ParallelEnvsVecEnv and the races of ``racing-rl eval``):
    a Roblox game's envs send all their ACTIONs, so that they reach the game in one tick,
    before any step waits for its answer; the simulator's envs are just stepped."""
    from racing_rl.bridge.env import RobloxParallelEnv
    from racing_rl.vec import step_envs

    calls = []

    class Game(RobloxParallelEnv):
        def __init__(self, name):  # no bridge: only the order of calls matters here
            self.name = name

        def send_actions(self, actions):
            calls.append(("send", self.name))

        def step(self, actions):
            calls.append(("step", self.name))

    step_envs([Game("a"), Game("b")], [{}, {}])
    assert calls == [("send", "a"), ("send", "b"), ("step", "a"), ("step", "b")]
    sim = race_envs(n_races=2, n_cars=1)
    for env in sim:
        env.reset(seed=0)
    results = step_envs(sim, [{a: np.zeros(3) for a in env.agents} for env in sim])
    assert len(results) == 2


@pytest.mark.parametrize(
    ("reset", "ending", "whole"),
    [
        # race: one car done ends its race's episode for every car; the race restarts.
        ("race", [[1, 1, 1], [0, 0, 0], [1, 1, 1]], [1, 0, 1]),
        # car: only the cars done end; a race restarts only when all of them are.
        ("car", [[1, 0, 0], [0, 0, 0], [1, 1, 1]], [0, 0, 1]),
    ],
)
def test_episode_ends_is_the_one_rule_of_both_vec_envs(reset, ending, whole):
    done = np.array([[1, 0, 0], [0, 0, 0], [1, 1, 1]], dtype=bool)
    got_ending, got_whole = episode_ends(done, reset)
    np.testing.assert_array_equal(got_ending, np.array(ending, dtype=bool))
    np.testing.assert_array_equal(got_whole, np.array(whole, dtype=bool))


def test_runs_of_other_seeds_draw_other_races():
    """Race k took its first slot's seed, seed + k × cars: runs seeded 0 and 2 with 2 cars
    per race (experiment=race's shape) shared all their races but one."""

    def tracks(seed: int) -> list[list[int]]:
        """The tracks each race draws over 6 episodes (a race ends: the next track)."""
        venv = SimVecEnv(RaceConfig(), 4, 2, [range(1000)] * 4)
        venv.seed(seed)
        drawn = [[] for _ in range(4)]
        for _ in range(6):
            venv.reset()
            for race in range(4):
                drawn[race].append(venv.races.worlds.world(race).track.seed)
        return drawn

    first, other = tracks(0), tracks(2)
    assert first == tracks(0)  # a seed reproduces its races
    assert not any(race in other for race in first)  # and another seed shares none
    assert len({tuple(race) for race in first}) == 4  # the races of a run differ

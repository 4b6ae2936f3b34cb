"""RaceBatch: K races as arrays; each race's results are its own."""

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from racing_rl.envs.batch import RESPAWN_CLEARANCE, RaceBatch
from racing_rl.envs.config import RaceConfig
from racing_rl.envs.race import RaceParallelEnv
from racing_rl.sim.track import TrackConfig

SEEDS = [range(100), range(100, 200), range(200, 300)]


def test_races_reset_in_any_order_are_each_what_their_own_seed_gives():
    """Until every race has a track the worlds do not exist; whatever order the races are
    reset in, once they do every race's cars stand where its own seed puts them."""
    batch = RaceBatch(RaceConfig(), 2, SEEDS)
    for race in (2, 0, 1):
        batch.reset(race, seed=10 + race)
    observations = batch.worlds.observe()
    for race, seeds in enumerate(SEEDS):
        alone = RaceParallelEnv(RaceConfig(), n_cars=2, track_seeds=seeds)
        obs, _ = alone.reset(seed=10 + race)
        assert batch.worlds.tracks[race].seed == alone.track.seed
        np.testing.assert_array_equal(observations[batch.rows(race)], np.stack(list(obs.values())))


def test_a_track_mix_draws_tracks_from_every_generator_and_named_tracks_from_the_own():
    """``track_mix`` (training's ``tracks.train_mix``): drawn tracks come from the race's
    own generator or the other one, about equally; a track named by ``track_seed`` (as
    validation and evaluation name theirs) always from the own one."""
    narrow = TrackConfig(width=10.0, min_curve_radius=11.0, n_obstacles=0)
    batch = RaceBatch(RaceConfig(), 1, [range(1000)], track_mix=[narrow])
    widths = []
    for episode in range(60):
        batch.reset(0, seed=episode)
        widths.append(batch.worlds.tracks[0].width)
    assert set(widths) == {10.0, 14.0} and 15 < widths.count(10.0) < 45
    for episode in range(10):
        batch.reset(0, options={"track_seed": 2_000_000 + episode})
        assert batch.worlds.tracks[0].width == 14.0


def test_a_crash_in_the_step_that_finishes_the_last_lap_is_a_crash_not_a_finish():
    # It was both: finished, its lap counted and timed, and crashed (terminated), so
    # eval counted the episode in the lap completion rate and in the crash rate.
    from racing_rl.drivers.pure_pursuit import PurePursuitDriver
    from racing_rl.envs.config import EpisodeConfig

    driver, agent = PurePursuitDriver(), "car_0_env_0"
    env = RaceParallelEnv(RaceConfig(episode=EpisodeConfig(spawn="line", laps=1)), n_cars=1)
    env.reset(seed=0, options={"track_seed": 3})
    for _ in range(340):  # the scripted driver, then full throttle into the wall
        env.step({agent: driver.act(env.world)[0]})
    while env.agents:
        _, reward, terminated, truncated, info = env.step({agent: np.array([1.0, -1.0, 1.0])})
    assert terminated[agent] and info[agent]["crashed"] and reward[agent] == -10.0
    assert not truncated[agent] and not info[agent]["finished"]
    assert info[agent]["laps"] == 0 and "lap_time" not in info[agent]  # given with a lap


def test_mean_speed_is_over_the_time_since_the_car_was_placed():
    # A respawned car's distance restarted at 0 but the race clock did not: 9.4 m/s for a
    # car that drove 22.7 m/s since its respawn.
    from racing_rl.drivers.pure_pursuit import PurePursuitDriver
    from racing_rl.envs.config import EpisodeConfig

    batch = RaceBatch(RaceConfig(episode=EpisodeConfig(reset="car")), 2, [[0]])
    batch.reset(0, seed=0)
    worlds, driver = batch.worlds, PurePursuitDriver()
    for _ in range(100):
        batch.step(driver.act(worlds))
    batch.respawn(0, np.array([True, False]))  # car 0 starts a new episode
    for _ in range(60):
        result = batch.step(driver.act(worlds))
    assert worlds.clock[0] > 10.0  # the race's clock, not the car's 4 s
    assert result.mean_speed[0] == pytest.approx(worlds.distance[0] / (60 * batch.config.rules.dt))
    assert result.mean_speed[1] == pytest.approx(worlds.distance[1] / worlds.clock[1])


def test_a_car_respawned_with_collisions_on_lands_clear_of_the_cars_racing():
    # Its arc ignored the cars still racing: 98 of 3,000 respawns of one of 8 cars landed
    # on one, which crashed too (terminated, -10) for something it did not do.
    from racing_rl.envs.config import EpisodeConfig
    from racing_rl.sim.world import RaceRules

    config = RaceConfig(
        rules=RaceRules(car_collisions=True), episode=EpisodeConfig(spawn="random", reset="car")
    )
    batch = RaceBatch(config, 8, [range(10_000)])
    batch.reset(0, seed=0)
    rng = np.random.default_rng(0)
    for _ in range(500):
        respawned = np.arange(8) == rng.integers(8)
        batch.respawn(0, respawned)
        worlds = batch.worlds
        assert not worlds._crashed(worlds.cars.position).any()  # standing cars
    # Cars respawned together (a car crash ends both episodes) were placed only clear of
    # the cars racing: 19 of 3,000 pairs landed on each other.
    clearance = 3.0 * config.car.length
    for k in range(1000):
        respawned = np.isin(np.arange(8), rng.choice(8, 2 + k % 3, replace=False))
        batch.respawn(0, respawned)
        worlds, track = batch.worlds, batch.worlds.tracks[0]
        arcs = worlds.arc[respawned]
        apart = track.arc_distance(arcs[:, None], arcs)[np.triu_indices(len(arcs), k=1)]
        assert apart.min() >= clearance, k


def test_a_car_respawned_from_a_grid_start_lands_clear_of_the_cars_racing():
    """A grid is a race's start: a car respawned alone (episode.reset=car, the bridge's
    emulator) went back to its slot behind the line, on the racing cars' line."""
    from racing_rl.envs.config import EpisodeConfig
    from racing_rl.sim.world import RaceRules

    grid = EpisodeConfig(spawn="grid", reset="car")
    batch = RaceBatch(RaceConfig(rules=RaceRules(car_collisions=True), episode=grid), 4, [[7]])
    batch.reset(0, seed=0)
    worlds, track = batch.worlds, batch.worlds.tracks[0]
    slots = worlds.arc.copy()  # the grid: rows of two behind the line, at rest
    assert np.all(worlds.cars.speed == 0.0)
    worlds.place_cars(slots - 2.0, np.zeros(4), np.zeros(4), np.zeros(4), None, 0)  # racing
    respawned = np.array([True, False, False, False])
    batch.respawn(0, respawned)
    others = worlds.arc[~respawned]
    assert worlds.arc[0] != slots[0]
    clearance = RESPAWN_CLEARANCE * batch.config.car.length
    assert track.arc_distance(worlds.arc[0], others).min() >= clearance
    assert not worlds._crashed(worlds.cars.position).any()


def test_cars_on_one_spot_with_collisions_on_are_refused():
    # Every car crashed at the first step. (configure() allows it: the emulator mirrors a
    # game, whose cars on one spot do crash; test_race.py's running-env test.)
    from racing_rl.envs.config import EpisodeConfig
    from racing_rl.errors import ConfigError
    from racing_rl.sim.world import RaceRules

    crowded = RaceConfig(rules=RaceRules(car_collisions=True), episode=EpisodeConfig(spawn="line"))
    with pytest.raises(ConfigError, match=r"on every car would crash at the first step: use ep"):
        RaceBatch(crowded, 2, [[0]])
    RaceBatch(crowded, 1, [[0]])  # one car: nothing to touch


@pytest.mark.parametrize(("spawn", "n_cars", "car_width"), [("random", 3, 12.5), ("grid", 4, 8.0)])
def test_a_car_with_little_room_beside_it_spawns_on_the_track(spawn, n_cars, car_width):
    # On the 14 m track a 12.5 m car has 0.75 m either side: the random spawn asked for
    # offsets in [0.25, -0.25] m and failed with NumPy's "high - low < 0"; the grid put an
    # 8 m car 3.5 m off the centreline, 0.5 m past where it crashes, every car crashed.
    from racing_rl.envs.config import EpisodeConfig
    from racing_rl.sim.car import CarConfig

    config = RaceConfig(
        track=TrackConfig(n_obstacles=0),  # a car this wide passes no obstacle's gap
        car=CarConfig(width=car_width),
        episode=EpisodeConfig(spawn=spawn),
    )
    batch = RaceBatch(config, n_cars, [range(5)])
    for seed in range(5):
        batch.reset(0, seed=seed)
        worlds = batch.worlds
        half = worlds.tracks[0].width / 2 - config.car.radius
        assert np.all(np.abs(worlds.lateral) <= half)
        step = batch.step(np.zeros((n_cars, 3)))
        assert not step.terminated.any()


@pytest.mark.parametrize(
    ("track", "car_width", "message"),
    [
        (
            TrackConfig(n_obstacles=0),
            14.0,
            r"car.width \(14 m\) must be below track.width \(14 m\):",
        ),
        (TrackConfig(), 6.5, r"below track.width \(14 m\) and track.min_gap \(6 m\): a car"),
    ],
)
def test_a_car_too_wide_for_the_track_or_its_obstacle_gaps_is_refused(track, car_width, message):
    # The first crashed at every step wherever it was; the second at every obstacle, and
    # a spawn beside one put it off the track.
    from racing_rl.errors import ConfigError
    from racing_rl.sim.car import CarConfig

    wide = RaceConfig(track=track, car=CarConfig(width=car_width))
    with pytest.raises(ConfigError, match=message):
        RaceBatch(wide, 1, [[0]])
    roomy = RaceConfig(track=TrackConfig(width=20.0, n_obstacles=0), car=wide.car)
    RaceBatch(roomy, 1, [[0]])
    with pytest.raises(ConfigError, match=message):  # a track of the training mix too
        RaceBatch(roomy, 1, [[0]], track_mix=[track])
    RaceBatch(RaceConfig(track=track, car=CarConfig(width=car_width - 1.0)), 1, [[0]])


#: Hard tracks (conf/difficulty/hard.yaml) with twice its obstacles: the most grid slots
#: on one.
CROWDED = TrackConfig(
    width=12.0, radius_variation=0.4, n_harmonics=6, min_curve_radius=11.0, n_obstacles=12,
    obstacle_radius_max=3.0, min_gap=5.0, obstacle_spacing=30.0,
)  # fmt: skip


@settings(max_examples=25, deadline=None)
@given(track_seed=st.integers(0, 10**6), n_cars=st.sampled_from([12, 24]))
def test_no_grid_slot_starts_on_an_obstacle_or_a_wall(track_seed, n_cars):
    """A grid deeper than track.obstacle_clearance (40 m; 12 cars reach 44 m) reaches the
    last obstacles: a car started on one, crashed at the first step, in 7 of 300 races on
    default tracks, 26 on hard ones and 58 on these (a warning said so). A slot beside an
    obstacle is moved to the middle of its gap, as a random spawn is."""
    from racing_rl.envs.config import EpisodeConfig
    from racing_rl.sim.world import RaceRules

    grid = RaceConfig(
        track=CROWDED, rules=RaceRules(car_collisions=True), episode=EpisodeConfig(spawn="grid")
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        batch = RaceBatch(grid, n_cars, [[track_seed]])
    batch.reset(0, seed=0)
    world, car = batch.worlds, grid.car
    track = world.track
    apart = np.linalg.norm(world.cars.position[:, None] - track.obstacles[:, :2], axis=-1)
    assert (apart > track.obstacles[:, 2] + car.radius).all()
    assert (np.abs(world.lateral) < track.width / 2 - car.radius).all()
    assert not world.step(np.zeros((n_cars, 3))).crashed.any()


#: Grid starts to fit behind the line: the defaults, CROWDED (hard tracks), and a round
#: loop, whose TrackConfig.shortest_length is within 0.2 % of its tracks' length.
GRID_TRACKS = [TrackConfig(), CROWDED, TrackConfig(radius_variation=0.0, stretch=0.0)]


@settings(max_examples=25, deadline=None)
@given(
    track_seed=st.integers(0, 10**6),
    n_cars=st.integers(2, 256),  # checks.LIMITS["cars_per_race"]
    tracks=st.sampled_from(range(len(GRID_TRACKS))),
    spawn=st.sampled_from([{"spawn": "grid"}, {"grid_start_prob": 1.0}]),
)
def test_a_grid_start_is_refused_or_starts_every_car_clear(track_seed, n_cars, tracks, spawn):
    """A grid deeper than a lap (130 cars: 520 m, hard tracks of ~480 m) wrapped its last
    cars onto the first, and with car collisions on a hundred crashed at the first step.
    A grid deeper than TrackConfig.shortest_length is refused, naming the most cars that
    fit; every grid taken starts with no car crashed."""
    from racing_rl.envs.config import EpisodeConfig
    from racing_rl.errors import ConfigError
    from racing_rl.sim.world import RaceRules

    track = GRID_TRACKS[tracks]
    config = RaceConfig(
        track=track, rules=RaceRules(car_collisions=True), episode=EpisodeConfig(**spawn)
    )
    most = int(track.shortest_length // 4)
    if n_cars > most:
        with pytest.raises(ConfigError, match=rf"{n_cars} cars .* race at most {most} cars"):
            RaceBatch(config, n_cars, [[track_seed]])
        return
    batch = RaceBatch(config, n_cars, [[track_seed]])
    batch.reset(0, seed=0)
    assert not batch.worlds.step(np.zeros((n_cars, 3))).crashed.any()


@pytest.mark.parametrize(
    ("seeds", "message"),
    [
        ([1.5], r"integer >= 0, got 1.5"),  # raced on track 1
        ([3, -1], r"integer >= 0, got -1"),  # failed only at the first reset
        (range(-2, 5), r"integer >= 0, got -2"),
        ([True], r"integer >= 0, got True"),
        (5, r"a list or range of track seeds, got 5: pass \[5\] for one track"),
        ("12", r"a list or range of track seeds, got '12'\.$"),
    ],
)
def test_track_seeds_that_are_no_seeds_are_refused_when_the_env_is_made(seeds, message):
    from racing_rl.envs.single import RaceEnv
    from racing_rl.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        RaceEnv(track_seeds=seeds)
    RaceEnv(track_seeds=np.arange(3)).reset(seed=0)  # NumPy's integers are seeds


def test_a_car_that_finished_stands_still_while_the_others_race_on():
    # Truncated cars (finished, stuck, out of steps) stayed active: a finished car coasted
    # on, seen by the others' rays and in their way, gaining laps.
    from racing_rl.drivers.pure_pursuit import PurePursuitDriver
    from racing_rl.envs.config import EpisodeConfig

    config = RaceConfig(episode=EpisodeConfig(spawn="grid", laps=1, reset="race"))
    batch, driver = RaceBatch(config, 2, [[3]]), PurePursuitDriver()
    batch.reset(0, seed=0)
    worlds = batch.worlds
    while not (step := batch.step(driver.act(worlds))).truncated.any():
        assert not step.terminated.any()
    (first,) = np.flatnonzero(step.truncated)
    assert not worlds.active[first] and worlds.active[1 - first]
    where, laps = worlds.cars.position.copy(), worlds.laps[first]
    for _ in range(5):
        batch.step(driver.act(worlds))
    np.testing.assert_array_equal(worlds.cars.position[first], where[first])
    assert worlds.laps[first] == laps
    assert not np.array_equal(worlds.cars.position[1 - first], where[1 - first])  # racing on


def test_a_crash_on_the_last_allowed_step_is_terminated_not_truncated():
    # Gymnasium: an episode that ends in the MDP's terminal state is terminated, whatever
    # the time limit says.
    from racing_rl.envs.config import EpisodeConfig

    def drive_into_the_wall(max_steps: int) -> tuple[int, bool, bool]:
        """The step the episode ends on, terminated, truncated."""
        config = RaceConfig(episode=EpisodeConfig(spawn="line", max_steps=max_steps))
        batch = RaceBatch(config, 1, [[3]])
        batch.reset(0, seed=0)
        steps = 0
        while True:
            step = batch.step(np.array([[1.0, -1.0, 1.0]]))
            steps += 1
            if step.terminated[0] or step.truncated[0]:
                return steps, bool(step.terminated[0]), bool(step.truncated[0])

    crash, terminated, _ = drive_into_the_wall(1000)
    assert terminated
    assert drive_into_the_wall(crash) == (crash, True, False)  # the limit's step too


def test_a_grid_start_puts_the_cars_of_a_row_side_by_side():
    from racing_rl.envs.config import EpisodeConfig

    config = RaceConfig(episode=EpisodeConfig(spawn="grid"))
    batch = RaceBatch(config, 4, [[3]])
    batch.reset(0, seed=0)
    positions, width = batch.worlds.cars.position, batch.worlds.tracks[0].width
    for left, right in ((0, 1), (2, 3)):  # each row's cars half the track's width apart
        gap = np.linalg.norm(positions[left] - positions[right])
        assert gap > 0.45 * width, (left, right, gap)


def test_a_car_respawned_on_a_crowded_track_lands_in_the_widest_free_stretch():
    """12 cars on a short track (~260 m): the 11 racing leave one stretch free of their
    clearance, which 10 random draws mostly missed; the respawned car then landed near one
    (on a 290 m track, 28 of 6,000 random respawns landed on a car)."""
    from racing_rl.envs.config import EpisodeConfig
    from racing_rl.sim.world import RaceRules

    config = RaceConfig(
        track=TrackConfig(base_radius=38.0, min_curve_radius=10.0, n_obstacles=0),
        rules=RaceRules(car_collisions=True),
        episode=EpisodeConfig(spawn="random", reset="car"),
    )
    batch = RaceBatch(config, 12, [[3]])
    batch.reset(0, seed=0)
    worlds, track = batch.worlds, batch.worlds.tracks[0]
    clearance = RESPAWN_CLEARANCE * config.car.length
    free = 2.5 * clearance  # from the last racing car to the first
    spacing = (track.length - free) / 10
    assert spacing < 2 * clearance  # no room between two racing cars
    respawned = np.arange(12) == 0
    rng = np.random.default_rng(0)
    for _ in range(20):
        start = rng.uniform(0.0, track.length)
        racing = np.mod(start + spacing * np.arange(-1, 11), track.length)  # car 0's moves
        worlds.place_cars(racing, np.zeros(12), np.zeros(12), np.zeros(12), None, 0)
        batch.respawn(0, respawned)
        apart = track.arc_distance(worlds.arc[0], worlds.arc[1:]).min()
        assert apart >= clearance  # drawn in the stretch, or put in its middle

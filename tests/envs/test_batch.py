"""RaceBatch: K races as arrays; each race's results are its own."""

import numpy as np

from racing_rl.envs.batch import RaceBatch
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

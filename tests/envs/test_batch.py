"""RaceBatch: K races as arrays; each race's results are its own."""

import numpy as np

from racing_rl.envs.batch import RaceBatch
from racing_rl.envs.config import RaceConfig
from racing_rl.envs.race import RaceParallelEnv

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

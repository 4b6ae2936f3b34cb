"""``EpisodeResult.from_info``: the one place an episode's figures are read from its info."""

import math

from racing_rl.evaluation.results import EpisodeResult


def test_a_finished_episode_keeps_its_lap_time_and_figures():
    info = {"finished": True, "progress": 1.002, "mean_speed": 21.5}
    result = EpisodeResult.from_info(7, info, [20.25], 1234.5, 300)
    assert result == EpisodeResult(7, True, False, 20.25, 1.002, 21.5, 1234.5, 300, (20.25,))


def test_an_unfinished_episode_has_no_lap_time_and_missing_figures_are_nan():
    result = EpisodeResult.from_info(7, {"crashed": True}, [20.25], -5.0, 40)
    assert result.crashed and not result.finished
    assert math.isnan(result.lap_time) and result.lap_times == (20.25,)  # a lap, then a crash
    assert math.isnan(result.progress) and math.isnan(result.mean_speed)

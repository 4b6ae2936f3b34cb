"""``EpisodeResult.from_info``: the one place an episode's figures are read from its info;
``unreported_info``: which of them a game did not send."""

import math

from racing_rl.evaluation.results import EpisodeResult, unreported_info


def test_a_finished_episode_keeps_its_lap_time_and_figures():
    info = {"finished": True, "progress": 1.002, "mean_speed": 21.5}
    result = EpisodeResult.from_info(7, info, [20.25], 1234.5, 300)
    assert result == EpisodeResult(7, True, False, 20.25, 1.002, 21.5, 1234.5, 300, (20.25,))


def test_an_unfinished_episode_has_no_lap_time_and_missing_figures_are_nan():
    result = EpisodeResult.from_info(7, {"crashed": True}, [20.25], -5.0, 40)
    assert result.crashed and not result.finished
    assert math.isnan(result.lap_time) and result.lap_times == (20.25,)  # a lap, then a crash
    assert math.isnan(result.progress) and math.isnan(result.mean_speed)


def test_the_figures_no_episode_of_a_game_reported_are_named_by_their_info_key():
    crashed = EpisodeResult.from_info(7, {"crashed": True}, [], -20.0, 40)  # no info sent
    assert unreported_info([crashed, crashed]) == ["progress", "mean_speed"]
    with_progress = EpisodeResult.from_info(8, {"progress": 0.4}, [], 400.0, 300)
    assert unreported_info([crashed, with_progress]) == ["mean_speed"]
    # A lost episode has no figures whatever the game sends: it tells nothing.
    lost = EpisodeResult.from_info(9, {"interrupted": True}, [], 0.0, 10)
    assert unreported_info([lost, with_progress]) == ["mean_speed"]
    assert unreported_info([lost]) == []

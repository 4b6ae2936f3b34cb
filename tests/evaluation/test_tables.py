"""``racing_rl.evaluation.tables``: the numbers and words ``racing-rl eval`` prints."""

import json

import pytest

from racing_rl.evaluation.results import EpisodeResult, summarize
from racing_rl.evaluation.tables import (
    ending,
    fixed,
    format_table,
    in_game_phrase,
    markdown_table,
    race_tables,
    tracks_phrase,
)
from racing_rl.files import strict_json


@pytest.mark.parametrize(
    ("value", "digits", "text"),
    [(-0.0, 3, "0.000"), (-0.0004, 3, "0.000"), (-0.004, 2, "0.00"), (-0.006, 2, "-0.01")],
)
def test_a_value_that_rounds_to_zero_prints_without_a_minus(value, digits, text):
    assert fixed(value, digits) == text


def test_tables_print_no_negative_zero():
    assert format_table([{"progress": -0.0001}], ["progress"]).split() == ["progress", "0.000"]
    row = {"position": 1, "label": "a", "lap_times_s": [], "finished": False, "crashed": False}
    metrics = {
        "tracks": [{"track_seed": 5, "leaderboard": [{**row, "progress": -0.001}]}],
        "standings": [
            {
                "position": 1,
                "label": "a",
                "wins": 0,
                "mean_position": 1.0,
                "finished_rate": 0.0,
                "mean_lap_time_s": float("nan"),
            }
        ],
    }
    assert "0.00 laps" in race_tables(metrics) and "-0.00" not in race_tables(metrics)


def test_a_text_table_aligns_right_but_for_the_columns_asked_left():
    rows = [
        {"driver": "ppo", "laps": 0.97, "cars": "1,200"},
        {"driver": "scripted", "laps": 1, "cars": 20},
    ]
    table = format_table(rows, ["driver", "laps", "cars"], left={"driver"})
    assert table.splitlines() == [
        "driver     laps   cars",
        "ppo       0.970  1,200",
        "scripted      1     20",
    ]
    assert format_table(rows, ["driver", "laps"]).splitlines()[1] == "     ppo  0.970"


@pytest.mark.parametrize(
    ("seeds", "split", "difficulty", "phrase"),
    [
        (range(20), "test", None, "20 test tracks"),
        (range(20), "test", "hard", "20 hard test tracks"),
        ([3], "validation", None, "1 validation track"),
        ([5], None, None, "1 track (seed 5)"),
        ([5, 6, 5, 6], None, None, "2 tracks (seeds 5, 6)"),
        ([5, 6], None, "hard", "2 hard tracks (seeds 5, 6)"),
        (range(10), None, None, "10 tracks (seeds 0, 1, 2, 3, 4, 5, 6, 7, ...)"),
    ],
)
def test_tracks_are_named_by_their_split_or_their_seeds(seeds, split, difficulty, phrase):
    assert tracks_phrase(list(seeds), split, difficulty) == phrase


def test_a_games_episodes_are_named_as_such_not_as_tracks():
    # The unmodified game has one map and ignores the seeds it is sent.
    assert in_game_phrase(1, "race") == (
        "1 race in the game, which chooses the track (track_seed: the seed suggested to it)"
    )
    assert in_game_phrase(20, "episode").startswith("20 episodes in the game")


def test_a_markdown_table_aligns_the_columns_asked_and_refuses_a_ragged_row():
    table = markdown_table(["driver", "laps"], [["ppo", 0.97], ["sac", 1]], right=[1])
    assert table == "| driver | laps |\n|---|---:|\n| ppo | 0.97 |\n| sac | 1 |"
    with pytest.raises(ValueError, match="a row of 1 cells in a table of 2 columns"):
        markdown_table(["driver", "laps"], [["ppo"]])


def test_an_episode_ends_finished_crashed_lost_or_out_of_the_race():
    row = {"finished": False, "crashed": False}
    assert ending({**row, "finished": True}) == "finished"
    assert ending({**row, "crashed": True}) == "crash"
    assert ending({**row, "interrupted": True}) == "lost"  # a game lost the car
    assert ending(row) == "DNF"  # out of time, or stuck


def test_the_crash_rate_of_a_car_whose_every_episode_a_game_lost_prints_as_a_dash():
    """Its figures are of no episode: they printed as nan (null in metrics.json)."""
    lost = [
        EpisodeResult.from_info(seed, {"interrupted": True}, [], episode_return=0.0, length=9)
        for seed in (5, 6)
    ]
    driven = EpisodeResult.from_info(5, {"crashed": True}, [], episode_return=-3.0, length=40)
    row = {"finished": False, "crashed": False, "interrupted": True, "episode_return": 0.0}
    metrics = {
        "unreported_info": ["progress", "mean_speed"],
        "tracks": [{"track_seed": 5, "leaderboard": [{**row, "label": "a", "length": 9}]}],
        "cars": {"a": summarize(lost), "b": summarize([driven])},
    }
    cars = race_tables(metrics).split("\n\n")[1].splitlines()
    assert [line.split() for line in cars] == [
        ["label", "episodes", "crash_rate", "mean_return"],
        ["a", "0", "-", "-"],
        ["b", "1", "1.000", "-3.000"],
    ]
    summary = summarize(lost)
    assert format_table([summary], ["episodes", "crash_rate"]).split() == [
        "episodes",
        "crash_rate",
        "0",
        "-",
    ]
    assert json.loads(strict_json(summary))["crash_rate"] is None  # not NaN: strict JSON

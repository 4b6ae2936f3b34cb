"""The replay viewer: exact frame-by-frame playback and the player's keys, headless.

The ``replay`` fixture (tests/conftest.py) is a recorded race of two scripted cars.
"""

import numpy as np
import pytest

from racing_rl.errors import ReplayError
from racing_rl.ui.viewer import ReplayPlayer, play_replay


def test_playback_frame_by_frame_shows_the_recorded_positions(replay):
    seen = []

    def on_frame(player, snapshot):
        seen.append(player.frame)
        np.testing.assert_array_equal(snapshot.position, replay.position[player.frame])
        np.testing.assert_array_equal(snapshot.speed, replay.speed[player.frame])
        assert snapshot.time == replay.time[player.frame]

    # Pause on the first frame, then single-step through the whole replay.
    script = ["space"] + ["right"] * (replay.n_frames - 1) + ["right", "q"]
    player = play_replay(replay, size_px=(320, 240), script=script, on_frame=on_frame)
    assert player.quit and player.paused
    assert seen[1:] == [*range(replay.n_frames), replay.n_frames - 1]


def test_player_keys_seek_change_speed_and_camera(replay):
    player = ReplayPlayer(replay)
    player.advance(1.0)  # one second at 1x: 15 frames
    assert player.frame == 15
    player.handle_key("up")
    player.advance(1.0)
    assert player.speed == 2.0 and player.frame == 45
    for _ in range(5):
        player.handle_key("up")
    assert player.speed == 4.0
    for _ in range(9):
        player.handle_key("down")
    assert player.speed == 0.25
    player.handle_key("home")
    player.handle_key("]")  # +5 s
    assert player.frame == 75
    player.handle_key("[")
    player.handle_key("left")  # a step back pauses at the start
    assert player.frame == 0 and player.paused
    player.advance(10.0)
    assert player.frame == 0
    player.handle_key("5")
    assert player.frame == 45
    player.handle_key("end")
    assert player.frame == replay.n_frames - 1
    player.handle_key("c")
    player.handle_key("tab")
    assert (player.camera, player.follow) == ("chase", 1)
    with pytest.raises(ReplayError, match="speed"):
        ReplayPlayer(replay, speed=3.0)
    # The window set the camera after its Renderer's check: camera=foo drew a broken view.
    with pytest.raises(ReplayError, match="camera must be one of track, chase, got 'foo'"):
        ReplayPlayer(replay, camera="foo")


@pytest.mark.parametrize(
    ("kwargs", "refused"),
    [
        ({"follow": 2}, r"follow=2; this replay has 2 car\(s\): 0 to 1 \(first, second\)"),
        ({"follow": -1}, r"follow=-1"),
        ({"script": ["space", "pgup", "x"]}, r"script has unknown keys \['pgup', 'x'\]"),
    ],
)
def test_a_car_or_key_the_replay_lacks_is_refused(replay, kwargs, refused):
    with pytest.raises(ReplayError, match=refused):
        play_replay(replay, size_px=(320, 240), **kwargs)


def test_without_a_display_the_viewer_says_so_and_does_not_wait_for_keys(replay, monkeypatch):
    # It logged "no display" and then waited, forever, for keys no one could press.
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    with pytest.raises(ReplayError, match=r"no display \(pygame's video driver is 'dummy'\)"):
        play_replay(replay)
    assert play_replay(replay, script=["q"]).quit  # a script drives it headless
    # Any case, as play's script (its keys were refused: "unknown keys ['Q', 'Space']").
    assert play_replay(replay, script=["Space", "Q"]).quit

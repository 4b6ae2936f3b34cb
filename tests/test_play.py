"""racing-rl play: keyboard driving, headless, with scripted keys and posted key events."""

import numpy as np
import pygame
import pytest
from hydra import compose
from runs import racing_rl

from racing_rl.config import initialize
from racing_rl.errors import ConfigError
from racing_rl.play import play
from racing_rl.replay import load_replay
from racing_rl.ui.keyboard import keys_to_action

SCRIPT = ["up"] * 20 + ["up+space"] * 5 + ["up+left"] * 5 + ["down+right"] * 3 + ["-"] * 2


def play_against(run_dir, tmp_path, *settings):
    """``racing-rl play`` of SCRIPT against ``run_dir``'s final checkpoint on track 5,
    recorded to ``tmp_path/play.npz``; returns the finished process."""
    record = tmp_path / "play.npz"
    result = racing_rl(
        "play",
        "seed=5",
        f"opponent={run_dir}",
        "checkpoint=final",
        f"script=[{','.join(SCRIPT)}]",
        "fps=0",
        f"record={record}",
        *settings,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_play_against_a_checkpoint_headless(tiny_runs, tmp_path):
    record = tmp_path / "play.npz"
    result = play_against(tiny_runs[0], tmp_path)
    assert "you" in result.stdout and tiny_runs[0].name in result.stdout
    replay = load_replay(record)
    assert replay.labels == ("you", tiny_runs[0].name) and replay.runs[0] == "human"
    assert replay.meta["laps"] == 3  # the HUD knows who finished
    assert replay.n_steps == len(SCRIPT)
    np.testing.assert_array_equal(
        replay.actions[:, 0], [keys_to_action(s.split("+")) for s in SCRIPT]
    )
    assert replay.speed[20, 0] > 5.0 and replay.progress[-1, 0] > 0.0


def test_escape_ends_the_game(tmp_path):
    with initialize():
        cfg = compose("play", overrides=["script=[up,up,up,up,up]", "fps=0", "size=[200,200]"])
    pygame.display.init()
    try:
        pygame.display.set_mode((200, 200))
        pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_ESCAPE))
        result = play(cfg)
    finally:
        pygame.display.quit()
    assert result["steps"] == 0
    (row,) = result["leaderboard"]
    assert row["label"] == "you" and not row["finished"]


def test_the_race_starts_at_the_first_key_held(tmp_path, monkeypatch):
    """The race started as the window opened: a player who took over 4 s to press a key
    (rules.stuck_time without progress) was out, and the game over, before driving."""
    from racing_rl.ui import keyboard, render

    # 100 frames of waiting, the key that starts the race, 10 steps of throttle.
    held = iter([set()] * 100 + [{"up"}] * 11)

    def keys():
        if (step := next(held, None)) is None:  # then esc
            pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_ESCAPE))
            return set()
        return step

    monkeypatch.setattr(keyboard, "pygame_keys", keys)
    monkeypatch.setattr(render, "video_driver", lambda: "x11")  # as where a display is
    with initialize():
        cfg = compose("play", overrides=["fps=0", "size=[200,200]", f"record={tmp_path}/p.npz"])
    result = play(cfg)
    replay = load_replay(tmp_path / "p.npz")
    assert result["steps"] == replay.n_steps == 11
    np.testing.assert_array_equal(replay.actions[:, 0, 0], [1.0] * 10 + [0.0])
    assert replay.active[-1, 0] and replay.progress[-1, 0] > 0.0


def test_a_backend_setting_applies_to_the_opponents_race(tiny_runs, tmp_path):
    """With opponent= the run's backend was used and backend.* settings were dropped
    without a word (a top speed of 1 m/s still drove at 20)."""
    play_against(tiny_runs[0], tmp_path, "backend.car.max_speed=3")
    assert load_replay(tmp_path / "play.npz").speed.max() <= 3.0 + 1e-9


def test_a_record_path_that_is_not_a_replay_file_is_refused(tmp_path):
    """record=play.mp4 wrote a NumPy archive named .mp4 and said "replay written"."""
    with initialize():
        cfg = compose("play", overrides=["record=play.mp4", "script=[up]", "fps=0"])
    with pytest.raises(ConfigError, match=r"a replay is a \.npz file; record=play\.npz, then"):
        play(cfg)


def test_a_record_path_that_cannot_be_written_is_refused_before_the_race(tmp_path):
    """The race was driven to its end, then saving failed with a traceback and the
    leaderboard was never printed."""
    (tmp_path / "file").write_text("")
    with initialize():
        cfg = compose("play", overrides=[f"record={tmp_path}/file/play.npz", "script=[up]"])
    with pytest.raises(ConfigError, match=r"play\.npz cannot be written: .*file is a file"):
        play(cfg)


@pytest.mark.parametrize(
    ("overrides", "refused"),
    [
        # A traceback (RobloxParallelEnv has no .world) once a game connected.
        (["backend=roblox"], r"backend=roblox: racing-rl play drives the built-in simulator"),
        # The error named backend.episode.* and episode.track_change_every.
        (["laps=-1"], r"laps=-1, max_steps=9000: laps must be >= 0"),
        (["max_steps=0"], r"laps=3, max_steps=0: .* max_steps >= 1"),
        # The simulator's error came after the window opened and the keys were told.
        (["seed=-1"], r"seed=-1: a track seed is an integer >= 0"),
    ],
)
def test_play_refuses_what_it_cannot_do_in_its_own_words(overrides, refused):
    with initialize():
        cfg = compose("play", overrides=[*overrides, "script=[up]", "fps=0"])
    with pytest.raises(ConfigError, match=refused):
        play(cfg)


def test_play_without_a_display_or_a_script_is_refused():
    """It raced a car no key could drive, for a few seconds, and exited 0 (replay, in the
    same place, refuses)."""
    with initialize():
        cfg = compose("play", overrides=["fps=0"])
    with pytest.raises(ConfigError, match=r"no display .*'dummy'.*give the keys of each frame"):
        play(cfg)


def test_ctrl_c_says_the_race_was_not_recorded(tmp_path, monkeypatch, caplog):
    # It said only "interrupted (Ctrl-C)", and no replay was written: esc keeps it.
    from racing_rl.evaluation import races

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(races, "run_races", interrupted)
    with initialize():
        overrides = ["fps=0", "size=[200,200]", "script=[up]", f"record={tmp_path}/p.npz"]
        cfg = compose("play", overrides=overrides)
    with pytest.raises(KeyboardInterrupt):
        play(cfg)
    assert "p.npz: nothing written (q or esc ends a race, and keeps it)" in caplog.text
    assert not (tmp_path / "p.npz").exists()


def test_play_against_the_scripted_driver_from_the_command_line(tmp_path):
    """The command line's path check refused opponent=scripted before play ran."""
    result = racing_rl("play", "opponent=scripted", "script=[up,up,up]", "fps=0", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "scripted" in result.stdout


def test_play_against_the_scripted_driver(tmp_path):
    """opponent=scripted was read as a run dir: 'no such file or directory'."""
    with initialize():
        overrides = ["opponent=scripted", f"script=[{','.join(SCRIPT)}]", "fps=0"]
        cfg = compose("play", overrides=[*overrides, "size=[200,200]", "laps=1"])
    result = play(cfg)
    labels = {row["label"] for row in result["leaderboard"]}
    assert labels == {"you", "scripted"}
    scripted = next(row for row in result["leaderboard"] if row["label"] == "scripted")
    assert scripted["progress"] > 0.0  # it drove while the script's keys lasted

"""Replay files: round trip, clear errors, exact playback, video export, the replay command."""

import zipfile

import imageio.v3 as iio
import numpy as np
import pytest
from omegaconf import OmegaConf
from runs import racing_rl

from racing_rl.backends import race_config
from racing_rl.drivers import ScriptedDriver
from racing_rl.envs.race import RaceParallelEnv
from racing_rl.errors import ReplayError
from racing_rl.evaluation.races import run_races
from racing_rl.replay import (
    FRAME_FIELDS,
    STEP_FIELDS,
    VERSION,
    Replay,
    ReplayPlayer,
    export_video,
    load_replay,
    play_replay,
)
from racing_rl.vec import make_parallel_envs

BACKEND = OmegaConf.load("conf/backend/pygame.yaml")
EPISODE = {"spawn": "grid", "laps": 1, "max_steps": 90}


@pytest.fixture(scope="module")
def replay() -> Replay:
    """Two scripted cars racing 90 steps on track 7 (grid start: they stand apart)."""
    envs = make_parallel_envs(BACKEND, 1, 2, [[7]], EPISODE)
    drivers = [ScriptedDriver("first"), ScriptedDriver("second")]
    (race,) = run_races(envs, drivers, record=True, meta={"split": "test"})
    return race.replay


@pytest.fixture
def saved(replay, tmp_path):
    return replay.save(tmp_path / "race.npz")


def test_a_saved_replay_loads_back_identical(replay, saved):
    loaded = load_replay(saved)
    assert loaded.labels == ("first", "second") and loaded.runs == ("scripted", "scripted")
    assert loaded.meta == {"split": "test", "track_seed": 7}
    assert loaded.n_frames == 91 and loaded.n_steps == 90 and loaded.n_cars == 2
    for name in ("time", *FRAME_FIELDS, *STEP_FIELDS):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(replay, name), err_msg=name)
        assert getattr(loaded, name).dtype == getattr(replay, name).dtype, name
    for name in ("centreline", "left_wall", "right_wall", "obstacles", "arc_length"):
        np.testing.assert_array_equal(getattr(loaded.track, name), getattr(replay.track, name))
    assert loaded.track.seed == 7 and loaded.track.length == replay.track.length
    assert loaded.dt == pytest.approx(1 / 15)


def test_recorded_actions_resimulated_reproduce_the_positions_exactly(replay):
    env = RaceParallelEnv(race_config(BACKEND, EPISODE), n_cars=2, track_seeds=[7])
    env.reset()
    world = env.world
    np.testing.assert_array_equal(world.cars.position, replay.position[0])
    for t in range(replay.n_steps):
        live = [a for i, a in enumerate(env.possible_agents) if replay.active[t, i]]
        env.step({a: replay.actions[t, env.possible_agents.index(a)] for a in live})
        np.testing.assert_array_equal(world.cars.position, replay.position[t + 1])
        np.testing.assert_array_equal(world.cars.heading, replay.heading[t + 1])


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


def test_export_mp4_and_gif_read_back_with_imageio(replay, tmp_path):
    mp4, gif = tmp_path / "race.mp4", tmp_path / "race.gif"
    assert export_video(replay, mp4, size_px=(320, 240), camera="chase", follow=1) == 91
    frames = list(iio.imiter(mp4, plugin="FFMPEG"))
    assert len(frames) == replay.n_frames
    assert frames[0].shape == (240, 320, 3)
    assert iio.immeta(mp4, plugin="FFMPEG")["fps"] == pytest.approx(15.0)
    assert export_video(replay, gif, speed=2.0, size_px=(160, 128)) == 91
    assert iio.imread(gif, index=None).shape == (91, 128, 160, 3)
    with pytest.raises(ReplayError, match=r"\.mp4 or \.gif"):
        export_video(replay, tmp_path / "race.avi")


def test_another_version_or_a_damaged_file_is_a_clear_error(saved, tmp_path):
    with np.load(saved) as data:
        arrays = dict(data)
    arrays["version"] = np.array(VERSION + 1)
    newer = tmp_path / "newer.npz"
    np.savez_compressed(newer, **arrays)
    with pytest.raises(ReplayError, match=f"format version {VERSION + 1}; this racing-rl reads"):
        load_replay(newer)

    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(saved.read_bytes()[: saved.stat().st_size // 2])
    with pytest.raises(ReplayError, match="truncated or damaged"):
        load_replay(truncated)

    other = tmp_path / "other.npz"
    np.savez(other, x=np.zeros(3))
    with pytest.raises(ReplayError, match="not a racing-rl replay"):
        load_replay(other)

    del arrays["rays"]
    arrays["version"] = np.array(VERSION)
    np.savez_compressed(tmp_path / "partial.npz", **arrays)
    with pytest.raises(ReplayError, match=r"lacks \['rays'\]"):
        load_replay(tmp_path / "partial.npz")

    # A corrupted member (a flipped byte inside the compressed positions).
    with zipfile.ZipFile(saved) as archive:
        info = archive.getinfo("position.npy")
    damaged = bytearray(saved.read_bytes())
    damaged[info.header_offset + 60 + len(info.filename)] ^= 0xFF
    (tmp_path / "flipped.npz").write_bytes(bytes(damaged))
    with pytest.raises(ReplayError):
        load_replay(tmp_path / "flipped.npz")
    with pytest.raises(ReplayError, match="does not exist"):
        load_replay(tmp_path / "nope.npz")


def test_replay_command_plays_headless_and_exports(saved, tmp_path):
    played = racing_rl(
        "replay", f"path={saved}", "script=[space,right,right,c,tab,up,q]", cwd=tmp_path
    )
    assert played.returncode == 0, played.stderr[-3000:]
    assert played.stdout.strip() == "stopped at frame 2 of 90"  # and no pygame banner
    video = tmp_path / "out.mp4"
    exported = racing_rl(
        "replay", f"path={saved}", f"video={video}", "size=[320,240]", "speed=2", cwd=tmp_path
    )
    assert exported.returncode == 0, exported.stderr[-3000:]
    assert f"wrote 91 frames (6.1 s of racing) to {video}" in exported.stdout
    assert iio.improps(video, plugin="FFMPEG").shape[1:] == (240, 320, 3)
    assert iio.immeta(video, plugin="FFMPEG")["fps"] == pytest.approx(30.0)
    broken = tmp_path / "broken.npz"
    broken.write_bytes(saved.read_bytes()[:100])
    failed = racing_rl("replay", f"path={broken}", cwd=tmp_path)
    assert failed.returncode == 1 and "truncated or damaged" in failed.stderr
    assert not list(tmp_path.glob("*.log"))  # nothing but what was asked for


def test_a_file_that_is_not_a_replay_says_only_that(tmp_path):
    text = tmp_path / "README.md"
    text.write_text("# not a replay\n")
    objects = tmp_path / "objects.npz"  # loadable only with pickle
    np.savez(objects, x=np.array([{"a": 1}], dtype=object))
    for path, why in ((text, r"\(a \.npz archive"), (objects, r"\(it holds objects\)")):
        with pytest.raises(ReplayError, match=rf"is not a racing-rl replay {why}") as raised:
            load_replay(path)
        assert "pickle" not in str(raised.value)  # numpy's advice is not passed on

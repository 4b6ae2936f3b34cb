"""Replay video export: MP4 and GIF files read back with imageio.

The ``replay`` fixture (tests/conftest.py) is a recorded race of two scripted cars.
"""

import dataclasses
import math
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from racing_rl.errors import ConfigError, ReplayError
from racing_rl.replay import FRAME_FIELDS, STEP_FIELDS
from racing_rl.ui.video import export_video, frames, gif_delays_ms, kept_frames


def test_export_mp4_and_gif_read_back_with_imageio(replay, tmp_path):
    mp4, gif = tmp_path / "race.mp4", tmp_path / "race.gif"
    assert export_video(replay, mp4, size_px=(320, 240), camera="chase", follow=1) == 91
    frames = list(iio.imiter(mp4, plugin="FFMPEG"))
    assert len(frames) == replay.n_frames
    assert frames[0].shape == (240, 320, 3)
    assert iio.immeta(mp4, plugin="FFMPEG")["fps"] == pytest.approx(15.0)
    assert export_video(replay, gif, speed=2.0, size_px=(160, 128)) == 91
    assert iio.imread(gif, index=None).shape == (91, 128, 160, 3)
    assert iio.immeta(gif, index=0)["duration"] == 30  # 1/30 s in whole 1/100 s: 30, 40, 30, ...
    with pytest.raises(ReplayError, match=r"\.mp4 or \.gif"):
        export_video(replay, tmp_path / "race.avi")


@pytest.mark.parametrize("fmt", ["mp4", "gif"])
def test_a_video_path_that_cannot_be_written_is_refused_before_drawing(
    replay, tmp_path, fmt, monkeypatch
):
    """Tracebacks after the whole video was drawn and encoded (IsADirectoryError from the
    final rename), or ffmpeg's broken pipe and a FileNotFoundError."""
    import racing_rl.ui.video as video

    def drawn(*args, **kwargs):
        raise AssertionError("a frame was drawn")

    monkeypatch.setattr(video, "frames", drawn)
    (tmp_path / f"folder.{fmt}").mkdir()
    (tmp_path / "file").write_text("")
    cases = {
        tmp_path / f"folder.{fmt}": "is a directory",
        tmp_path / "file" / f"race.{fmt}": "file is a file, not a directory",
        Path("/proc") / f"race.{fmt}": r"/proc does not accept new files",
    }
    for path, why in cases.items():
        with pytest.raises(ReplayError, match=rf"Cannot write the video .*{why}.*\. Choose"):
            export_video(replay, path, size_px=(64, 64))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", f"folder.{fmt}"]


def test_a_directory_that_cannot_be_read_is_a_reason_not_an_error(tmp_path, monkeypatch):
    # Path.is_dir raises PermissionError under a directory the user cannot search.
    from racing_rl.files import cannot_write

    def refused(self):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "is_dir", refused)
    assert cannot_write(tmp_path / "x.mp4") == f"{tmp_path / 'x.mp4'}: Permission denied"


def test_a_fast_gif_keeps_every_kth_frame_at_50_fps_at_most(replay, tmp_path):
    # speed 8: 120 fps, which a GIF cannot show: every 3rd frame, 25 ms apart, which a GIF
    # stores in whole 1/100 s: 30 and 20 ms in turn, 40 fps on average.
    gif = tmp_path / "fast.gif"
    assert export_video(replay, gif, speed=8.0, size_px=(160, 128)) == 31  # ceil(91 / 3)
    assert iio.imread(gif, index=None).shape[0] == 31
    delays = [iio.immeta(gif, index=k)["duration"] for k in range(31)]
    assert delays[:4] == [30, 20, 30, 20] and sum(delays) == 780  # 31 × 25 ms, to 10 ms


def test_a_gif_too_big_for_memory_is_warned_of_before_it_is_drawn(
    replay, tmp_path, monkeypatch, caplog
):
    # A 600 s race at 800x800 px grew a GIF export to ~14 GB, without a word.
    from racing_rl.ui import video

    monkeypatch.setattr(video, "GIF_WARN_BYTES", 91 * 160 * 128 * 2 - 1)  # this one's size
    export_video(replay, tmp_path / "big.gif", size_px=(160, 128))
    assert "91 frames of 160x128 px take about 0.0 GB. A .mp4 is written" in caplog.text
    caplog.clear()
    export_video(replay, tmp_path / "small.gif", size_px=(160, 120))
    assert "GIF holds its frames" not in caplog.text


@pytest.mark.parametrize("frames,interval_s", [(91, 1 / 15), (300, 1 / 15), (31, 0.025), (7, 0.02)])
def test_gif_delays_keep_the_clock_to_a_hundredth_of_a_second(frames, interval_s):
    """Each frame starts at k × interval, rounded to 1/100 s; no delay under 20 ms (a
    browser would slow it to 100 ms)."""
    delays = gif_delays_ms(interval_s * np.arange(frames + 1))
    assert len(delays) == frames and min(delays) >= 20
    starts = np.cumsum([0, *delays])
    assert np.abs(starts - 1000 * interval_s * np.arange(frames + 1)).max() <= 5 + 1e-9


@pytest.mark.parametrize("n_frames", [1, 2, 91, 92, 93, 1000])
@pytest.mark.parametrize("rate", [15.0, 50.0, 120.0, 180.0, 1500.0])
def test_a_fast_video_keeps_its_first_and_last_frames_at_most_max_fps(n_frames, rate):
    """A fast GIF kept every k-th frame: the last (a finish) was lost unless it fell on one."""
    kept = kept_frames(n_frames, rate, 50.0)
    assert kept[0] == 0 and kept[-1] == n_frames - 1
    stride = math.ceil(rate / 50.0 - 1e-9)
    if n_frames - 1 >= stride:  # else the first and the last, closer
        assert np.all(np.diff(kept) >= stride)  # never faster than 50 fps
        assert len(kept) == (n_frames - 1) // stride + 1


def test_a_fast_video_ends_on_the_replay_s_last_frame_and_plays_at_its_speed(replay, tmp_path):
    """speed=12: 180 fps: the GIF's 23 frames ended on frame 88 of 90; an MP4 was written
    at 150 fps (speed=10; speed=100: 1,500 fps), and 301 px were stretched to 304."""
    gif, mp4 = tmp_path / "fast.gif", tmp_path / "fast.mp4"
    assert export_video(replay, gif, speed=12.0, size_px=(160, 128)) == 23
    shown = iio.imread(gif, index=None)
    last, before = (next(frames(replay, [i], size_px=(160, 128))) for i in (90, 88))
    error = [np.abs(shown[-1].astype(int) - frame).mean() for frame in (last, before)]
    assert error[0] < error[1]  # the replay's last frame, not frame 88
    total_ms = sum(iio.immeta(gif, index=k)["duration"] for k in range(23))
    assert abs(total_ms - 1000 * (90 + 90 / 22) / 180) <= 10  # 90 intervals + the last
    assert export_video(replay, mp4, speed=10.0, size_px=(301, 201)) == 31  # 150 fps: every 3rd
    meta = iio.immeta(mp4, plugin="FFMPEG")
    assert meta["fps"] <= 60 and meta["size"] == (302, 202)
    assert 30 / meta["fps"] == pytest.approx(90 / 150, rel=0.01)  # the replay's time


@pytest.mark.parametrize("speed", [0.0, -1.0])
def test_a_video_needs_a_positive_speed(replay, tmp_path, speed):
    with pytest.raises(ReplayError, match=r"frame rate must be > 0.*give a speed > 0"):
        export_video(replay, tmp_path / "race.gif", speed=speed)
    assert not (tmp_path / "race.gif").exists()


def test_a_video_following_a_car_the_replay_lacks_is_refused(replay, tmp_path):
    with pytest.raises(ReplayError, match=r"follow=7; this replay has 2 car\(s\)"):
        export_video(replay, tmp_path / "race.mp4", camera="chase", follow=7)
    assert not (tmp_path / "race.mp4").exists()


@pytest.mark.parametrize("options", [{"camera": "foo"}, {"trail_length": -1}])
def test_a_renderer_option_out_of_range_is_refused_before_folders_are_made(
    replay, tmp_path, options
):
    """video=<new dir>/race.gif camera=foo made <new dir> first, then was refused."""
    with pytest.raises(ConfigError, match=next(iter(options))):
        export_video(replay, tmp_path / "new" / "race.gif", **options)
    assert list(tmp_path.iterdir()) == []


def _stop_drawing_at(monkeypatch, frame: int, stop: type[BaseException]) -> None:
    """Make ``export_video``'s frames raise ``stop`` when frame ``frame`` is drawn."""
    from racing_rl.ui import video

    drawn = video.frames

    def stopping(*args, **kwargs):
        for k, image in enumerate(drawn(*args, **kwargs)):
            if k == frame:
                raise stop
            yield image

    monkeypatch.setattr(video, "frames", stopping)


@pytest.mark.parametrize("name", ["race.mp4", "race.gif"])
def test_a_video_stopped_halfway_leaves_the_earlier_file_and_no_partial_one(
    replay, tmp_path, monkeypatch, name
):
    """Ctrl-C while frames are drawn: an unplayable half video never takes the name."""
    path = tmp_path / name
    path.write_bytes(b"an earlier video")
    _stop_drawing_at(monkeypatch, 20, KeyboardInterrupt)
    with pytest.raises(KeyboardInterrupt):
        export_video(replay, path, size_px=(160, 128))
    assert path.read_bytes() == b"an earlier video"
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_a_one_frame_gif_is_written(replay, tmp_path):
    """A replay of no step (Esc at once in play record=...) or a speed that keeps one
    frame: Pillow was given a list of delays for one frame, a TypeError."""
    start = dataclasses.replace(
        replay,
        **{name: getattr(replay, name)[:1] for name in (*FRAME_FIELDS, "time")},
        **{name: getattr(replay, name)[:0] for name in STEP_FIELDS},
    )
    gif = tmp_path / "start.gif"
    assert export_video(start, gif, size_px=(160, 128)) == 1
    assert iio.imread(gif, index=None).shape[0] == 1


@pytest.mark.parametrize("n_frames", [1, 2, 5])
def test_a_replay_shorter_than_one_video_frame_plays_at_the_cap(replay, tmp_path, n_frames):
    """speed=100 (1,500 fps) on a 2- or 5-frame replay kept its first and last frames
    0 or 10 ms apart in a GIF (browsers play them at 100 ms) and wrote a 375-1,500 fps
    MP4."""
    short = dataclasses.replace(
        replay,
        **{name: getattr(replay, name)[:n_frames] for name in (*FRAME_FIELDS, "time")},
        **{name: getattr(replay, name)[: n_frames - 1] for name in STEP_FIELDS},
    )
    gif, mp4 = tmp_path / "short.gif", tmp_path / "short.mp4"
    kept = export_video(short, gif, speed=100.0, size_px=(160, 128))
    assert kept == min(n_frames, 2)
    delays = [iio.immeta(gif, index=k)["duration"] for k in range(kept)]
    assert min(delays) >= 20
    export_video(short, mp4, speed=100.0, size_px=(160, 128))
    assert iio.immeta(mp4, plugin="FFMPEG")["fps"] <= 60


@pytest.mark.parametrize("stop", [KeyboardInterrupt, RuntimeError])
def test_an_mp4_stopped_at_its_first_frames_leaves_no_partial_file_later(
    replay, tmp_path, monkeypatch, stop
):
    """An error before ffmpeg opened its output: ffmpeg, left running, wrote the temporary
    file when the writer was collected, after it had been removed (a .race.partial.mp4)."""
    import gc

    _stop_drawing_at(monkeypatch, 1, stop)
    with pytest.raises(stop) as stopped:
        export_video(replay, tmp_path / "race.mp4", size_px=(160, 128))
    del stopped
    gc.collect()  # the writer, had it outlived the error, closes ffmpeg now
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.parametrize("fmt", ["mp4", "gif"])
def test_a_full_disk_names_the_video_not_its_temporary_file(replay, tmp_path, fmt, monkeypatch):
    """The error of a write that fails part-way names ``.<name>.partial.<fmt>``."""
    import errno

    import racing_rl.files

    def full(path, *args, **kwargs):
        tmp = path.with_name(f".{path.stem}.partial{path.suffix}")
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp))

    monkeypatch.setattr(racing_rl.files, "write_atomic", full)
    earlier = tmp_path / f"race.{fmt}"
    earlier.write_bytes(b"earlier")
    with pytest.raises(ReplayError) as raised:
        export_video(replay, earlier, size_px=(64, 64))
    assert str(raised.value) == (
        f"Cannot write the video {earlier}: No space left on device; the earlier file there "
        "is kept. Free some space or choose another video= path."
    )
    assert earlier.read_bytes() == b"earlier"

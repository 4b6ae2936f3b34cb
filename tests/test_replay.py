"""Replay files: round trip, exact re-simulation, clear errors, the replay command.

The ``replay`` fixture (tests/conftest.py) is a recorded race of two scripted cars.
"""

import dataclasses
import zipfile

import imageio.v3 as iio
import numpy as np
import pytest
from omegaconf import OmegaConf
from runs import REPLAY_EPISODE, REPLAY_TRACK, racing_rl, racing_rl_patched

from racing_rl.config import backend_config, default_backend
from racing_rl.drivers import ScriptedDriver
from racing_rl.envs.race import RaceParallelEnv
from racing_rl.errors import ReplayError
from racing_rl.replay import FRAME_FIELDS, STEP_FIELDS, VERSION, ReplayRecorder, load_replay
from racing_rl.ui.layers import ray_hits
from racing_rl.ui.render import Renderer

BACKEND = default_backend("pygame")


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
    env = RaceParallelEnv(
        backend_config(BACKEND, REPLAY_EPISODE), n_cars=2, track_seeds=[REPLAY_TRACK]
    )
    env.reset()
    world = env.world
    np.testing.assert_array_equal(world.cars.position, replay.position[0])
    for t in range(replay.n_steps):
        live = [a for i, a in enumerate(env.possible_agents) if replay.active[t, i]]
        env.step({a: replay.actions[t, env.possible_agents.index(a)] for a in live})
        np.testing.assert_array_equal(world.cars.position, replay.position[t + 1])
        np.testing.assert_array_equal(world.cars.heading, replay.heading[t + 1])


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

    rays = arrays.pop("rays")
    arrays["version"] = np.array(VERSION)
    np.savez_compressed(tmp_path / "partial.npz", **arrays)
    with pytest.raises(ReplayError, match=r"lacks \['rays'\]"):
        load_replay(tmp_path / "partial.npz")

    arrays = {**arrays, "rays": rays, "ray_ranges": arrays["ray_ranges"][:-1]}
    np.savez_compressed(tmp_path / "short.npz", **arrays)
    with pytest.raises(ReplayError, match=r"ray_ranges has shape \(\d+,\), expected"):
        load_replay(tmp_path / "short.npz")

    # Fields of another type or size (were a ValueError, a JSONDecodeError, a TypeError).
    arrays["ray_ranges"] = np.concatenate([arrays["ray_ranges"], [1.0]])
    for name, value in (("version", "x"), ("meta", "{bad"), ("dt", [1.0, 2.0])):
        np.savez_compressed(tmp_path / "odd.npz", **{**arrays, name: np.array(value)})
        with pytest.raises(ReplayError, match="truncated or damaged"):
            load_replay(tmp_path / "odd.npz")

    # What the renderer cannot draw: pygame crashed the process (a segfault, a double
    # free) on a NaN or far-off position, and dt=0 was a ZeroDivisionError.
    position = arrays["position"].copy()
    position[10, 0, 0] = np.nan
    far = arrays["position"].copy()
    far[10, 0, 0] = 1e12
    for name, value, says in (
        ("position", position, "position holds a value that is not finite"),
        ("position", far, "a car's position lies far off its track"),
        ("dt", np.array(0.0), "dt is 0.0, not > 0"),
    ):
        np.savez_compressed(tmp_path / "bad.npz", **{**arrays, name: value})
        with pytest.raises(ReplayError, match=says):
            load_replay(tmp_path / "bad.npz")

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
    # A run directory: it names a replay in it, not its vecnormalize.npz (it did).
    run = tmp_path / "run"
    (run / "eval" / "replays").mkdir(parents=True)
    np.savez(run / "vecnormalize.npz", obs_mean=np.zeros(3))
    (run / "eval" / "replays" / "track_1.npz").write_bytes(b"")  # empty: not one to suggest
    with pytest.raises(ReplayError, match=r"is a directory; give one replay file \(it holds none"):
        load_replay(run)
    (run / "eval" / "replays" / "track_5.npz").write_bytes(saved.read_bytes())
    with pytest.raises(ReplayError, match=f"e.g. path={run}/eval/replays/track_5.npz "):
        load_replay(run)


@pytest.mark.parametrize(
    "name,value,says",
    [
        (
            "position",
            lambda a: a[..., :1],
            r"position has shape \(91, 2, 1\), expected \(91, 2, 2\)",
        ),
        ("actions", lambda a: a[..., :2], r"actions has shape \(90, 2, 2\), expected \(90, 2, 3\)"),
        ("track_obstacles", lambda a: a[:, :2], r"track_obstacles has shape \(\d+, 2\)"),
        ("track_left_wall", lambda a: a[:-1], r"track_left_wall has shape"),
        ("runs", lambda a: a[:1], r"runs has shape \(1,\), expected \(2,\)"),
        ("meta", lambda a: np.array("[1, 2]"), "its meta is '\\[1, 2\\]', expected a JSON object"),
        ("meta", lambda a: np.array('{"laps": "3"}'), 'its meta is .* whose "laps" is an integer'),
    ],
)
def test_a_replay_whose_arrays_the_renderer_cannot_draw_is_refused(
    saved, tmp_path, name, value, says
):
    """Each array's whole shape and the meta's laps are checked: a position with one
    coordinate, obstacles without radii or a meta that is a list loaded, then the renderer
    or the HUD raised (IndexError, ValueError, AttributeError) with a traceback, leaving a
    partial video."""
    with np.load(saved) as data:
        arrays = dict(data)
    arrays[name] = value(arrays[name])
    np.savez_compressed(tmp_path / "odd.npz", **arrays)
    with pytest.raises(ReplayError, match=f"is damaged: {says}"):
        load_replay(tmp_path / "odd.npz")


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
    assert f"wrote 91 frames (6.0 s of racing) to {video}" in exported.stdout  # 90 steps
    assert (exported.stdout + exported.stderr).count("wrote ") == 1  # said once
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


def test_a_roblox_car_replay_keeps_each_rays_length_and_hits_are_true_hits():
    """layout=roblox_car rays have the game car's lengths (the one behind is 0.2 × the
    forward one): a replay keeps each, so a ray drawn as a hit is one the car's own
    observation reports below 1 (a short ray reaching its end is no hit)."""
    backend = OmegaConf.merge(
        BACKEND, {"sensors": {"n_rays": 16, "layout": "roblox_car", "detect_cars": True}}
    )
    env = RaceParallelEnv(backend_config(backend, REPLAY_EPISODE), n_cars=2, track_seeds=[3])
    observations, _ = env.reset(seed=0)
    recorder = ReplayRecorder(["a", "b"], ["scripted", "scripted"], {})
    recorder.start(env.world)
    driver = ScriptedDriver("scripted")
    driver.reset(1)
    observed = [np.stack([observations[a][:16] for a in env.possible_agents])]
    for _ in range(60):
        if len(env.agents) < 2:  # a car out: its observations end
            break
        step = {
            a: driver.act(np.zeros((1, 19), np.float32), [env.world], d)[0]
            for d, a in enumerate(env.possible_agents)
        }
        observations, rewards, terminated, truncated, _ = env.step(step)
        recorder.step(
            np.stack([step.get(a, np.zeros(3)) for a in env.possible_agents]),
            np.array([rewards.get(a, 0.0) for a in env.possible_agents]),
            np.full(2, np.nan),
            np.array([terminated.get(a, False) for a in env.possible_agents]),
            np.array([truncated.get(a, False) for a in env.possible_agents]),
        )
        observed.append(np.stack([observations[a][:16] for a in env.possible_agents]))
    replay = recorder.replay()
    np.testing.assert_allclose(replay.ray_ranges, env.world.sensors.ranges())
    assert replay.ray_ranges[7] == pytest.approx(0.2 * replay.ray_ranges[0])
    hits = ray_hits(replay.rays, replay.ray_ranges)
    np.testing.assert_array_equal(hits, np.stack(observed) < 1.0)
    assert hits.any() and not hits.all()  # both kinds were seen


def test_a_version_1_replay_loads_with_its_one_ray_range(saved, tmp_path):
    with np.load(saved) as data:
        arrays = dict(data)
    del arrays["ray_ranges"]
    arrays.update(version=np.array(1), ray_range=np.array(50.0))
    np.savez_compressed(tmp_path / "v1.npz", **arrays)
    loaded = load_replay(tmp_path / "v1.npz")
    np.testing.assert_array_equal(loaded.ray_ranges, np.full(loaded.rays.shape[-1], 50.0))


def test_recorded_rays_are_what_the_cars_observed_as_cars_leave_the_race():
    """With detect_cars the replay read the rays from the world after the step, when the
    cars that crashed or finished in it were no longer sensed: in the frame a car left,
    the others' recorded rays missed it."""
    from racing_rl.evaluation.races import run_races
    from racing_rl.vec import make_parallel_envs

    class Seeing(ScriptedDriver):
        """The scripted driver, keeping the observations it is given (frame t's)."""

        def __init__(self, label):
            super().__init__(label)
            self.seen = []

        def act(self, observations, worlds, car):
            self.seen.append(observations[:, :10].copy())
            return super().act(observations, worlds, car)

    backend = default_backend("pygame")
    backend.sensors.detect_cars = True
    backend.rules.car_collisions = True
    seeds = [[3_000_000 + i] for i in range(6)]
    envs = make_parallel_envs(backend, 6, 4, seeds, {"spawn": "grid", "laps": 1, "max_steps": 400})
    drivers = [Seeing(f"car {d}") for d in range(4)]
    races = run_races(envs, drivers, record=True)
    left = 0
    for b, race in enumerate(races):
        replay = race.replay
        for d, driver in enumerate(drivers):
            for t, seen in enumerate(driver.seen[: len(replay.rays) - 1]):
                if replay.active[t, d]:  # what the car saw before its step t
                    np.testing.assert_allclose(replay.rays[t, d] / 50.0, seen[b], atol=1e-5)
        left += int((np.diff(replay.active.sum(axis=1)) < 0).sum())
    assert left > 0  # cars left races while others drove on


def test_a_replay_snapshot_knows_which_cars_finished():
    """The HUD called a car that had won "out", greyed like a crashed one."""
    from racing_rl.evaluation.races import run_races
    from racing_rl.vec import make_parallel_envs

    envs = make_parallel_envs(
        default_backend("pygame"), 1, 1, [[5]], {"spawn": "line", "laps": 1, "max_steps": 600}
    )
    (race,) = run_races(envs, [ScriptedDriver()], record=True, meta={"laps": 1})
    replay = race.replay
    assert race.cars[0].episode.finished and not replay.active[-1, 0]
    assert replay.snapshot(replay.n_frames - 1).finished.tolist() == [True]
    assert replay.snapshot(0).finished.tolist() == [False]
    # A finished car keeps a whole trail, as a live window keeps it (it lost a position
    # for every frame the race went on after it).
    assert len(replay.snapshot(replay.n_frames - 1, trail_length=50).trails[0]) == 50
    unknown = dataclasses.replace(replay, meta={})
    assert unknown.snapshot(0).finished is None
    renderer = Renderer(size_px=(200, 200))
    for snapshot in (replay.snapshot(replay.n_frames - 1), unknown.snapshot(1)):
        assert renderer.draw(snapshot).shape == (200, 200, 3)


def test_a_replay_of_no_step_has_typed_step_arrays():
    """Recorded then stopped before the first step (Esc at once in play record=...): the
    step flags were float64, and lap_times raised IndexError."""
    env = RaceParallelEnv(backend_config(BACKEND, REPLAY_EPISODE), n_cars=2, track_seeds=[3])
    env.reset(seed=0)
    recorder = ReplayRecorder(["a", "b"], ["scripted", "scripted"], {})
    recorder.start(env.world)
    replay = recorder.replay()
    assert replay.n_steps == 0 and replay.n_frames == 1
    for name in ("lap_completed", "terminated", "truncated"):
        assert getattr(replay, name).dtype == bool and getattr(replay, name).shape == (0, 2)
    assert replay.actions.shape == (0, 2, 3) and replay.lap_times(0) == []


def test_a_ctrl_c_while_a_video_is_written_says_it_was_not(replay, tmp_path):
    """It said only "interrupted (Ctrl-C).", not what became of the video; then that line
    came after one that said so: one line says both."""
    replay.save(tmp_path / "race.npz")
    cut = (
        "import racing_rl.replay_app as app\n"
        "def interrupted(*args, **kwargs):\n"
        "    raise KeyboardInterrupt\n"
        "app.export_video = interrupted\n"
    )
    result = racing_rl_patched(cut, "replay", "path=race.npz", "video=race.mp4", cwd=tmp_path)
    assert (result.returncode, result.stderr) == (
        130,
        "racing-rl replay: interrupted (Ctrl-C) before race.mp4 was written: nothing written; "
        "any earlier race.mp4 is kept\n",
    )
    assert [p.name for p in tmp_path.iterdir()] == ["race.npz"]

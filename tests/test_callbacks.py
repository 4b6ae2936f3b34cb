"""Training callbacks in a real run: the ``race/`` and ``eval/`` scalars and the validation
video in TensorBoard (one short run shared by the tests)."""

import math
from pathlib import Path
from types import SimpleNamespace

import imageio.v3 as iio
import pytest
from omegaconf import OmegaConf
from runs import QUICK, racing_rl, tb_scalars
from stable_baselines3.common.logger import Logger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from racing_rl.callbacks import RaceMetricsCallback

#: RaceMetricsCallback's scalars of finished training episodes (``race/lap_time_s``, per
#: completed lap, comes on top when a car laps).
RACE_EPISODE_TAGS = {
    "race/distance_m",
    "race/laps",
    "race/mean_speed_mps",
    "race/crash_rate",
    "race/stuck_rate",
}
#: ValidationCallback's scalars (``racing_rl.evaluate.summarize``); the lap times come on
#: top at a validation where some car lapped (NaN, and so not logged, otherwise).
EVAL_TAGS = {
    "eval/episodes",
    "eval/lap_completion_rate",
    "eval/mean_progress",
    "eval/crash_rate",
    "eval/mean_speed_mps",
    "eval/mean_return",
}
EVAL_LAP_TAGS = {"eval/mean_lap_time_s", "eval/best_lap_time_s"}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A QUICK run (validation on 2 tracks every 1000 timesteps: at 1024, the first rollout
    start past 1000, PPO's rollouts being 1024 timesteps; and at the end, 2048) that logs a
    validation video every second validation."""
    root = tmp_path_factory.mktemp("callbacks")
    run_dir = root / "run"
    video = [
        "validation.video.every=2",
        "validation.video.max_steps=40",
        "validation.video.size=96",
    ]
    result = racing_rl(
        "train", *QUICK, "checkpoint.every=0", *video, f"hydra.run.dir={run_dir}", cwd=root
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir


def test_race_scalars_of_training_episodes(run_dir):
    race = tb_scalars(run_dir, "race/")
    assert set(race) - {"race/lap_time_s"} == RACE_EPISODE_TAGS
    values = {tag: [value for _, value in pairs] for tag, pairs in race.items()}
    assert all(v and all(math.isfinite(x) for x in v) for v in values.values()), values
    for rate in ("race/crash_rate", "race/stuck_rate"):
        assert all(0.0 <= x <= 1.0 for x in values[rate]), (rate, values[rate])
    car = OmegaConf.load(run_dir / ".hydra" / "config.yaml").backend.car
    top_speed = car.max_speed * car.nitro_multiplier
    assert all(0.0 < x <= top_speed for x in values["race/mean_speed_mps"])
    assert all(x >= 0.0 for x in values["race/laps"])
    assert all(x > 0.0 for x in values.get("race/lap_time_s", []))


def test_race_metrics_average_finished_episodes_and_every_completed_lap():
    logger = Logger(folder=None, output_formats=[])
    callback = RaceMetricsCallback()
    callback.init_callback(SimpleNamespace(logger=logger, num_timesteps=0))
    running = {"distance": 40.0, "laps": 0, "mean_speed": 30.0, "crashed": False, "stuck": False}
    steps = [
        # Car 0 completes a lap; car 1 drives on (its figures are not an episode's yet).
        ([False, False], [{"lap_time": 20.0}, running]),
        # Car 0 crashes; car 1 completes its second lap and gets stuck on the same step.
        (
            [True, True],
            [
                {"distance": 150.0, "laps": 1, "mean_speed": 10.0, "crashed": True, "stuck": False},
                {"lap_time": 30.0, "distance": 200.0, "laps": 2, "mean_speed": 8.0, "stuck": True},
            ],
        ),
    ]
    # A game's interrupted episode reports no figures: unknown, not 0 (it logged 0s).
    steps.append(([True, False], [{"interrupted": True, "finished": False}, running]))
    for dones, infos in steps:
        callback.update_locals({"dones": dones, "infos": infos})
        callback.on_step()
    assert logger.name_to_value == pytest.approx(
        {
            "race/lap_time_s": 25.0,
            "race/distance_m": 175.0,
            "race/laps": 1.5,
            "race/mean_speed_mps": 9.0,
            "race/crash_rate": 1 / 3,  # car 1's info has no "crashed": not a crash
            "race/stuck_rate": 1 / 3,
        }
    )


def test_validation_leaves_the_algorithm_s_own_figures_to_its_own_dumps(run_dir):
    """PPO writes an update's train/ figures at the next rollout's dump (2048 here, the
    second of two rollouts). A validation dumped everything at a rollout's start, right
    after an update: its figures went out a rollout early, at a step PPO had dumped at
    already (two values at one step in a longer run), and that rollout's dump had none."""
    train = tb_scalars(run_dir, "train/")
    assert "train/learning_rate" in train
    assert {tag: [step for step, _ in pairs] for tag, pairs in train.items()} == {
        tag: [2048] for tag in train
    }


def test_eval_scalars_of_every_validation(run_dir):
    evals = {tag: dict(pairs) for tag, pairs in tb_scalars(run_dir, "eval/").items()}
    steps = sorted(evals["eval/episodes"])
    assert steps == [1024, 2048]  # between rollouts past 1000 timesteps, and the final model
    for step in steps:
        logged = {tag: by_step[step] for tag, by_step in evals.items() if step in by_step}
        lapped = logged["eval/lap_completion_rate"] > 0.0
        assert set(logged) == EVAL_TAGS | (EVAL_LAP_TAGS if lapped else set()), step
        assert all(math.isfinite(value) for value in logged.values()), logged
        assert logged["eval/episodes"] == 2  # one per validation track
        for rate in ("eval/lap_completion_rate", "eval/crash_rate"):
            assert 0.0 <= logged[rate] <= 1.0, (rate, logged)
        assert logged["eval/mean_speed_mps"] >= 0.0
        if lapped:
            assert logged["eval/mean_lap_time_s"] >= logged["eval/best_lap_time_s"] > 0.0


def test_validation_video_reaches_tensorboard_as_an_animated_gif(run_dir):
    events = EventAccumulator(str(run_dir / "tb"), size_guidance={"images": 0})
    events.Reload()
    # Validations at 1024 and 2048: the second one logs the video.
    (image,) = events.Images("eval/video")
    assert image.step == 2048 and (image.width, image.height) == (96, 96)
    frames = iio.imread(image.encoded_image_string, index=None, extension=".gif")
    assert frames.shape[1:] == (96, 96, 3) and 2 <= len(frames) <= 41


def test_a_validation_video_closes_the_env_it_raced(monkeypatch):
    """Each validation video left its race's environment open."""
    from hydra import compose
    from stable_baselines3 import PPO

    from racing_rl import vec
    from racing_rl.callbacks import ValidationVideo
    from racing_rl.config import initialize

    closed = []
    made = vec.make_parallel_envs

    def spied(*args, **kwargs):
        envs = made(*args, **kwargs)
        for env in envs:
            env.close = lambda close=env.close: (closed.append(True), close())
        return envs

    monkeypatch.setattr(vec, "make_parallel_envs", spied)
    with initialize():
        cfg = compose("train", overrides=["wrappers=none"])
    venv = vec.make_env(cfg.backend, 1, 1, [[5]])
    model = PPO("MlpPolicy", venv, n_steps=16, batch_size=16)
    video = ValidationVideo(cfg, 5, 1, 5, (64, 64))
    assert len(video.frames(model, venv)) >= 2
    assert closed == [True]
    # Its replay knows the lap that ends the episode: a car that lapped read "out".
    from racing_rl.ui import video as ui_video

    drawn = []
    monkeypatch.setattr(ui_video, "frames", lambda replay, size_px: drawn.append(replay) or [])
    video.frames(model, venv)
    assert drawn[0].meta["laps"] == 1

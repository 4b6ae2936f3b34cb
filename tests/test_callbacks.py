"""Training callbacks that need a real run: the validation video in TensorBoard."""

import imageio.v3 as iio
from runs import QUICK, racing_rl
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def test_validation_video_reaches_tensorboard_as_an_animated_gif(tmp_path):
    run_dir = tmp_path / "run"
    video = [
        "validation.video.every=2",
        "validation.video.max_steps=40",
        "validation.video.size=96",
    ]
    result = racing_rl(
        "train", *QUICK, "checkpoint.every=0", *video, f"hydra.run.dir={run_dir}", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    events = EventAccumulator(str(run_dir / "tb"), size_guidance={"images": 0})
    events.Reload()
    # Validations at 1000 and 2000 (QUICK): the second one logs the video.
    (image,) = events.Images("eval/video")
    assert image.step == 2000 and (image.width, image.height) == (96, 96)
    frames = iio.imread(image.encoded_image_string, index=None, extension=".gif")
    assert frames.shape[1:] == (96, 96, 3) and 2 <= len(frames) <= 41

"""Helpers for the tests that run `racing-rl` as a user would: a subprocess per command,
and the scripts under scripts/ loaded as modules."""

import importlib.util
import json
import signal
import subprocess
import sys
from pathlib import Path
from types import ModuleType

SCRIPTS = Path(__file__).parents[1] / "scripts"

#: A training run of a few seconds: 4 cars, 2000 timesteps, 2 validation tracks.
QUICK = [
    "total_timesteps=2000",
    "n_races=2",
    "cars_per_race=2",
    "progress_bar=false",
    "tracks.validation=[1000000,1000002]",
    "validation.max_steps=200",
    "validation.every=1000",
    "checkpoint.every=1000",
]
#: The smallest useful run: QUICK without validation or checkpoints (a final model only).
TINY = [*QUICK, "validation.every=0", "checkpoint.every=0"]
OFF_POLICY = ("sac", "td3", "tqc")
#: Off-policy algorithms start learning after 10k steps by default: far beyond QUICK.
QUICK_OFF_POLICY = ["algo.model.learning_starts=100"]
#: Per-algorithm overrides that fit QUICK's 4 cars (RecurrentPPO's default batch of 2560
#: is more than its rollout of 256 steps × 4 cars).
QUICK_ALGO = {
    **{algo: QUICK_OFF_POLICY for algo in OFF_POLICY},
    "recurrent_ppo": ["algo.model.batch_size=512"],
}

#: The race that the ``replay`` fixture (tests/conftest.py) records: two scripted cars on
#: track 7 for 90 steps, from a grid start (so they stand apart).
REPLAY_TRACK = 7
REPLAY_EPISODE = {"spawn": "grid", "laps": 1, "max_steps": 90}


def default_sigint() -> None:
    """``preexec_fn`` for a child that a test interrupts with SIGINT: a shell's background
    job starts with SIGINT ignored, and Python then installs no KeyboardInterrupt handler."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def racing_rl(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``racing-rl <args>`` in ``cwd`` and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "racing_rl.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def tb_scalars(run_dir: Path, prefix: str = "") -> dict[str, list[tuple[int, float]]]:
    """The run's TensorBoard scalars (``<run dir>/tb``) whose tag starts with ``prefix``:
    tag -> (step, value) pairs in the order written, every one of them (TensorBoard's
    reader otherwise keeps a sample of 10,000 per tag)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir / "tb"), size_guidance={"scalars": 0})
    events.Reload()
    return {
        tag: [(event.step, event.value) for event in events.Scalars(tag)]
        for tag in events.Tags()["scalars"]
        if tag.startswith(prefix)
    }


def load_script(name: str) -> ModuleType:
    """``scripts/<name>.py`` as a module (scripts are not part of the package)."""
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # the importlib recipe: dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def strict_json(text: str) -> object:
    """``json.loads`` of ``text``, refusing ``NaN`` and ``Infinity``, which are not JSON
    (RFC 8259) though Python writes and reads them."""

    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def saved_config(run_dir: Path, overrides: list[str]):
    """The ``train`` config of ``overrides``, saved in ``run_dir/.hydra`` as Hydra does
    (``run_dir`` is made if it is not there)."""
    from hydra import compose
    from omegaconf import OmegaConf

    from racing_rl.config import initialize

    with initialize():
        cfg = compose("train", overrides=overrides)
    (run_dir / ".hydra").mkdir(parents=True)
    OmegaConf.save(cfg, run_dir / ".hydra" / "config.yaml")
    return cfg


def game_run_copy(run_dir: Path, copy: Path) -> Path:
    """A copy of a simulator run at ``copy`` whose config says it trained in a Roblox game
    (``backend=roblox``: no sensors, the game sends its observations)."""
    import shutil

    from hydra import compose
    from omegaconf import OmegaConf

    from racing_rl.config import initialize

    shutil.copytree(run_dir, copy)
    config = OmegaConf.load(copy / ".hydra" / "config.yaml")
    with initialize():
        config.backend = compose("train", overrides=["backend=roblox"]).backend
    OmegaConf.save(config, copy / ".hydra" / "config.yaml")
    return copy

"""Helpers for the tests that run `racing-rl` as a user would: a process per command
(``racing_rl``), and the scripts under scripts/ loaded as modules."""

import importlib.util
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
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


#: ``racing-rl`` as a command line, for the tests that signal or watch it as it runs
#: (``subprocess.Popen``); ``racing_rl`` runs a command to its end.
RACING_RL = [sys.executable, "-m", "racing_rl.cli"]
#: What every ``racing-rl`` command imports before it runs: the children of ``racing_rl``
#: start with them (about 3 s of each command's start on 2 cores).
PRELOAD = ["racing_rl.cli", "racing_rl.train", "racing_rl.evaluate", "optuna", "tensorboard"]
_commands = multiprocessing.get_context("forkserver")
_commands.set_forkserver_preload(PRELOAD)


def racing_rl(
    *args: str, cwd: Path, timeout: float = 300, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run ``racing-rl <args>`` in ``cwd`` in a process of its own, and capture its output
    (``stdout``, ``stderr``: text) and exit status (``returncode``: negative for a signal).

    The process is forked from a server that has imported ``PRELOAD`` (multiprocessing's
    forkserver): it runs ``racing_rl.cli.main`` as the console script does, with this
    process's environment (and ``env`` over it), but without importing torch, SB3 and
    Hydra again.

    Raises:
        subprocess.TimeoutExpired: the command ran past ``timeout`` [s] (it is killed).
    """
    with tempfile.TemporaryDirectory() as tmp:
        out, err = Path(tmp, "stdout"), Path(tmp, "stderr")
        command = _commands.Process(
            target=_run_command, args=(list(args), cwd, {**os.environ, **(env or {})}, out, err)
        )
        command.start()
        command.join(timeout)
        if command.exitcode is None:
            command.kill()
            command.join()
            raise subprocess.TimeoutExpired(["racing-rl", *args], timeout)
        return subprocess.CompletedProcess(
            ["racing-rl", *args], command.exitcode, out.read_text(), err.read_text()
        )


def start_racing_rl(*args: str, cwd: Path, stderr: Path) -> subprocess.Popen:
    """Start ``racing-rl <args>`` in ``cwd`` (``RACING_RL``), for a test that signals it as
    it runs: SIGINT raises KeyboardInterrupt in it (``default_sigint``), its stdout is
    dropped and its stderr written to ``stderr``, which the test reads to know when to
    signal."""
    with stderr.open("w") as err:
        return subprocess.Popen(
            [*RACING_RL, *args],
            cwd=cwd,
            stdout=subprocess.DEVNULL,
            stderr=err,
            preexec_fn=default_sigint,
        )


def racing_rl_patched(setup: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    """``racing-rl <args>`` in a new Python process that first runs ``setup``: Python code
    that patches a module (to raise KeyboardInterrupt where a Ctrl-C would land). Output
    and exit status as ``racing_rl``'s."""
    command = f"from racing_rl.cli import main\nsys.exit(main({list(args)!r}))\n"
    program = f"import sys\n{setup}\n{command}"
    return subprocess.run(
        [sys.executable, "-c", program], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def _run_command(args: list[str], cwd: Path, env: dict[str, str], out: Path, err: Path):
    """``racing_rl``'s child: ``racing-rl <args>`` with stdout and stderr (file descriptors
    1 and 2, so output from C too) in ``out`` and ``err``, ending as Python ends a program:
    it waits for the threads that are not daemons, then runs the ``atexit`` handlers
    (multiprocessing's children skip them; in the other order, multiprocessing's own
    handler waits for joblib's workers before joblib's thread has stopped them)."""
    import atexit
    import threading

    from racing_rl.cli import main

    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    for stream, path in ((sys.stdout, out), (sys.stderr, err)):
        stream.flush()
        os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), stream.fileno())
    try:
        sys.exit(main(args))
    finally:
        threading._shutdown()  # what Python's own shutdown calls first
        atexit._run_exitfuncs()


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

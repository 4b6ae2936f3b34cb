"""Checkpoints of a run: atomic saves, and finding the newest one to resume from.

A checkpoint is a directory under ``<run dir>/checkpoints/``::

    <kind>_<timesteps>_steps/      kind: the algorithm's name (periodic), ``interrupted``
                                   (Ctrl-C / SIGTERM) or ``final`` (end of training)
      model.zip                    the SB3 model (``BaseAlgorithm.save``)
      vecnormalize.pkl             VecNormalize statistics, if the run normalises
      replay_buffer.pkl            the replay buffer (off-policy algorithms, newest only)
      checkpoint.json              {"timesteps", "kind", "algorithm", "saved_at"}

Saves are atomic: the files are written into ``.<name>.partial/`` and the directory is
renamed into place only once every file is complete and flushed, so a process killed
in the middle of a save leaves the previous checkpoints as they were and no
half-written one (leftover ``.partial`` directories are ignored and removed by the next
save). Only the newest checkpoint keeps its replay buffer, which can be hundreds of MB;
resuming always starts from the newest.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from racing_rl.errors import CheckpointError

MODEL = "model.zip"
VECNORMALIZE = "vecnormalize.pkl"
REPLAY_BUFFER = "replay_buffer.pkl"
MANIFEST = "checkpoint.json"


@dataclass(frozen=True)
class Checkpoint:
    """A saved checkpoint directory.

    Attributes:
        path: the directory.
        timesteps: the model's ``num_timesteps`` when it was saved.
        kind: algorithm name (periodic), ``interrupted`` or ``final``.
    """

    path: Path
    timesteps: int
    kind: str

    @property
    def model(self) -> Path:
        return self.path / MODEL

    @property
    def vecnormalize(self) -> Path:
        return self.path / VECNORMALIZE

    @property
    def replay_buffer(self) -> Path:
        return self.path / REPLAY_BUFFER


def write_atomic(path: Path, write: Callable[[Path], object]) -> None:
    """Write a file so that ``path`` holds either its old content or the complete new one.

    ``write(tmp)`` creates a temporary file beside ``path``; it is flushed to disk and
    renamed over ``path`` (``os.replace`` is atomic on POSIX and Windows).
    """
    tmp = path.with_name(f".{path.name}.partial")
    try:
        write(tmp)
        with open(tmp, "rb+") as file:
            os.fsync(file.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_model_files(model: BaseAlgorithm, env: VecEnv | None, directory: Path) -> None:
    """Write ``model.zip`` and, if ``env`` is a VecNormalize, ``vecnormalize.pkl``, each
    atomically (see ``write_atomic``), into an existing ``directory``."""
    if isinstance(env, VecNormalize):
        write_atomic(directory / VECNORMALIZE, lambda tmp: env.save(str(tmp)))
    write_atomic(directory / MODEL, model.save)


def save_checkpoint(
    model: BaseAlgorithm, env: VecEnv | None, checkpoints_dir: Path, kind: str
) -> Checkpoint:
    """Save ``model`` (+ VecNormalize statistics, + replay buffer) as a new checkpoint.

    Args:
        model: the model; its ``num_timesteps`` names the checkpoint.
        env: the training VecEnv (its VecNormalize statistics are saved, if any).
        checkpoints_dir: ``<run dir>/checkpoints``; created if missing.
        kind: the name prefix: the algorithm's name, ``interrupted`` or ``final``.

    Returns:
        The new checkpoint. Older checkpoints lose their replay buffers.
    """
    checkpoints_dir.mkdir(parents=True, exist_ok=True)
    name = f"{kind}_{model.num_timesteps}_steps"
    partial = checkpoints_dir / f".{name}.partial"
    for stale in checkpoints_dir.glob(".*.partial"):
        shutil.rmtree(stale, ignore_errors=True)
    partial.mkdir()
    save_model_files(model, env, partial)
    if isinstance(model, OffPolicyAlgorithm):
        write_atomic(partial / REPLAY_BUFFER, model.save_replay_buffer)
    manifest = {
        "timesteps": int(model.num_timesteps),
        "kind": kind,
        "algorithm": type(model).__name__,
        "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    write_atomic(partial / MANIFEST, lambda tmp: tmp.write_text(json.dumps(manifest, indent=2)))
    final = checkpoints_dir / name
    if final.exists():  # same kind at the same timestep (e.g. interrupted twice): replace
        shutil.rmtree(final)
    os.replace(partial, final)
    _fsync_dir(checkpoints_dir)
    checkpoint = Checkpoint(final, int(model.num_timesteps), kind)
    for older in find_checkpoints(checkpoints_dir.parent):
        if older.path != final:
            older.replay_buffer.unlink(missing_ok=True)
    return checkpoint


def _fsync_dir(directory: Path) -> None:
    """Flush a directory entry (the rename) to disk where the OS allows it."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def find_checkpoints(run_dir: Path) -> list[Checkpoint]:
    """The complete checkpoints of a run, oldest first (by timesteps, then save order).

    Directories without a readable ``checkpoint.json`` and a ``model.zip`` (partial or
    damaged saves) are skipped.
    """
    found = []
    for manifest in (run_dir / "checkpoints").glob(f"*/{MANIFEST}"):
        try:
            data = json.loads(manifest.read_text())
            checkpoint = Checkpoint(manifest.parent, int(data["timesteps"]), str(data["kind"]))
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if checkpoint.model.is_file():
            found.append((checkpoint.timesteps, manifest.stat().st_mtime_ns, checkpoint))
    return [checkpoint for *_, checkpoint in sorted(found, key=lambda t: t[:2])]


def latest_checkpoint(run_dir: Path) -> Checkpoint:
    """The newest complete checkpoint of a run.

    Raises:
        CheckpointError: if the run has none.
    """
    checkpoints = find_checkpoints(run_dir)
    if not checkpoints:
        raise CheckpointError(
            f"{run_dir} has no complete checkpoint under checkpoints/ (a run saves one every "
            "checkpoint.every timesteps, on Ctrl-C and at the end)."
        )
    return checkpoints[-1]

"""Saving checkpoints: atomic files, atomic checkpoint directories, pruning.

See ``racing_rl.checkpoints`` for the layout and why saves are atomic.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from racing_rl.checkpoints.layout import (
    BUFFER_ARRAYS,
    EPISODE_KEYS,
    FINAL,
    INTERRUPTED,
    MANIFEST,
    MODEL,
    REPLAY_BUFFER,
    REPLAY_BUFFER_PICKLE,
    REPLAY_BUFFER_VERSION,
    STATISTICS,
    VECNORMALIZE_PICKLE,
    Checkpoint,
    filled_rows,
    find_checkpoints,
    swap_paths,
)
from racing_rl.errors import CheckpointError
from racing_rl.files import write_atomic, write_json
from racing_rl.normalize import save_statistics

log = logging.getLogger(__name__)


def save_model_files(model: BaseAlgorithm, env: VecEnv | None, directory: Path) -> None:
    """Write ``model.zip`` and, if ``env`` is a VecNormalize, ``vecnormalize.npz`` (with
    the model's timesteps: a reader refuses a pair from two saves) and
    ``vecnormalize.pkl``, each atomically (see ``write_atomic``), into an existing
    ``directory``."""
    if isinstance(env, VecNormalize):
        write_atomic(
            directory / STATISTICS, lambda tmp: save_statistics(env, tmp, model.num_timesteps)
        )
        write_atomic(directory / VECNORMALIZE_PICKLE, lambda tmp: env.save(str(tmp)))
    write_atomic(directory / MODEL, model.save)


def replace_directory(directory: Path, write: Callable[[Path], object]) -> None:
    """Write a directory's files as one set: ``directory`` holds either all of its old
    files or all of the new ones, never a model beside another model's statistics.

    ``write(tmp)`` fills a new directory ``.<name>.partial`` beside ``directory``, which
    then takes its place: two renames, the old directory aside as ``.<name>.old``, the new
    one in (``os.replace``: atomic on POSIX and Windows). A process killed between the
    two leaves ``directory`` missing (readers find it with ``swapped_in``); the next call
    for it finishes that swap first (``finish_swap``). However ``write`` ends (an error,
    Ctrl-C), the partial directory is removed and ``directory`` is left as it was.
    """
    partial, old = swap_paths(directory)
    finish_swap(directory)
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        write(partial)
        if directory.exists():
            os.replace(directory, old)
        os.replace(partial, directory)
        _fsync_dir(directory.parent)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    shutil.rmtree(old, ignore_errors=True)


def finish_swap(directory: Path) -> None:
    """Finish a ``replace_directory`` swap of ``directory`` that a kill cut short.

    ``.<name>.old`` exists only once the new ``.<name>.partial`` is complete: the partial
    one goes in if ``directory`` is missing, and the old one is deleted. Nothing is done
    where no swap was cut short. For the process that writes ``directory`` only: another
    process's swap under way looks the same.
    """
    partial, old = swap_paths(directory)
    if old.exists():
        if not directory.exists():
            os.replace(partial if partial.is_dir() else old, directory)
        shutil.rmtree(old, ignore_errors=True)


def save_checkpoint(
    model: BaseAlgorithm,
    env: VecEnv | None,
    checkpoints_dir: Path,
    kind: str,
    keep: int = 0,
    validation_due: bool = False,
) -> Checkpoint:
    """Save ``model`` (+ VecNormalize statistics, + replay buffer) as a new checkpoint.

    Args:
        model: the model; its ``num_timesteps`` names the checkpoint.
        env: the training VecEnv (its VecNormalize statistics are saved, if any).
        checkpoints_dir: ``<run dir>/checkpoints``; created if missing.
        kind: the name prefix: the algorithm's name (periodic), ``interrupted`` or
            ``final``.
        keep: for a periodic checkpoint, how many of that kind to keep (the newest; the
            older ones are deleted); 0 keeps all. Other kinds are never deleted.
        validation_due: the validation due at this timestep has not run to its end
            (recorded in the manifest: ``Checkpoint.validation_due``).

    Returns:
        The new checkpoint. Older checkpoints lose their replay buffers.
    """
    checkpoints_dir.mkdir(parents=True, exist_ok=True)
    name = f"{kind}_{model.num_timesteps}_steps"
    for cut in checkpoints_dir.glob(".*.old"):  # a swap's complete half is in its .partial
        finish_swap(checkpoints_dir / cut.name[1 : -len(".old")])
    for stale in checkpoints_dir.glob(".*.partial"):  # saves a kill cut short
        shutil.rmtree(stale, ignore_errors=True)

    def write(directory: Path) -> None:
        save_model_files(model, env, directory)
        if isinstance(model, OffPolicyAlgorithm):
            write_atomic(directory / REPLAY_BUFFER, lambda tmp: save_replay_buffer(model, tmp))
        manifest = {
            "timesteps": int(model.num_timesteps),
            "kind": kind,
            "algorithm": type(model).__name__,
            "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            **({"validation_due": True} if validation_due else {}),
            "episodes": episode_record(model),
        }
        write_json(directory / MANIFEST, manifest)

    final = checkpoints_dir / name
    # The same kind at the same timestep (e.g. interrupted twice) is replaced.
    replace_directory(final, write)
    checkpoint = Checkpoint(final, int(model.num_timesteps), kind, validation_due)
    older = [c for c in find_checkpoints(checkpoints_dir.parent) if c.path != final]
    for previous in older:
        previous.replay_buffer.unlink(missing_ok=True)
        (previous.path / REPLAY_BUFFER_PICKLE).unlink(missing_ok=True)
    if keep > 0 and kind not in (INTERRUPTED, FINAL):
        periodic = [c for c in older if c.kind == kind] + [checkpoint]
        for pruned in periodic[:-keep]:
            # Out of the listing first, so that a kill mid-delete leaves only a .partial.
            doomed = checkpoints_dir / f".{pruned.path.name}.partial"
            os.replace(pruned.path, doomed)
            shutil.rmtree(doomed, ignore_errors=True)
            log.info("checkpoint.keep=%d: deleted %s", keep, pruned.path)
    return checkpoint


def episode_record(model: BaseAlgorithm) -> list[dict[str, float]]:
    """The model's latest episodes as JSON: SB3's ``ep_info_buffer`` (up to
    ``stats_window_size``, 100, of VecMonitor's ``{"r": return, "l": length [steps],
    "t": wall time since the monitor started [s]}``), whose means are TensorBoard's
    ``rollout/ep_rew_mean`` and ``ep_len_mean``. Other keys, and an episode with a value
    that is not finite (which JSON cannot hold), are left out."""
    episodes = (
        {key: float(info[key]) for key in EPISODE_KEYS}
        for info in model.ep_info_buffer or []
        if all(key in info for key in EPISODE_KEYS)
    )
    return [episode for episode in episodes if np.isfinite(list(episode.values())).all()]


def clear_validation_due(checkpoint: Checkpoint) -> None:
    """Drop ``validation_due`` from ``checkpoint``'s manifest, once the validation it was
    saved before has run to its end (a checkpoint pruned meanwhile is left alone)."""
    manifest = checkpoint.path / MANIFEST
    try:
        record = json.loads(manifest.read_text())
    except (OSError, ValueError):
        return
    record.pop("validation_due", None)
    write_json(manifest, record)


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


def save_replay_buffer(model: OffPolicyAlgorithm, path: Path) -> None:
    """Write the replay buffer's filled rows (all once it is full), position and fill
    state as ``replay_buffer.npz``: a buffer of 1,000,000 transitions holding 3,000 is
    saved as 3,000 rows.

    Raises:
        CheckpointError: for a buffer other than SB3's ``ReplayBuffer``.
    """
    buffer = model.replay_buffer
    if type(buffer) is not ReplayBuffer:
        raise CheckpointError(
            f"Cannot save a {type(buffer).__name__} replay buffer; racing-rl saves SB3's "
            "ReplayBuffer."
        )
    rows = filled_rows(buffer, buffer.pos, buffer.full)
    arrays = {
        k: getattr(buffer, k)[:rows]
        for k in BUFFER_ARRAYS
        if getattr(buffer, k, None) is not None  # no next_observations: memory-optimised
    }
    with open(path, "wb") as file:
        np.savez(
            file,
            format_version=np.int64(REPLAY_BUFFER_VERSION),
            pos=np.int64(buffer.pos),
            full=np.bool_(buffer.full),
            **arrays,
        )

"""Checkpoints of a run: atomic saves, safe loading, and finding the one to resume from.

Every checkpoint a racing-rl command loads (``train resume=``, ``eval``, races, ``play``,
the export) is loaded here. A checkpoint is a directory under ``<run dir>/checkpoints/``
(``best/`` and the run dir itself hold the same model files)::

    <kind>_<timesteps>_steps/      kind: the algorithm's name (periodic), ``interrupted``
                                   (Ctrl-C, SIGTERM or an error) or ``final`` (the end)
      model.zip                    the SB3 model (``BaseAlgorithm.save``)
      vecnormalize.npz             VecNormalize statistics, plain (racing_rl.normalize)
      vecnormalize.pkl             the same as SB3's pickle, for SB3's own tools; never read
                                   unless trust_pickles=true and the .npz is missing
      replay_buffer.npz            the replay buffer's arrays (off-policy, newest only)
      checkpoint.json              {"timesteps", "kind", "algorithm", "saved_at"}

**Trust model** (docs/checkpoints.md): loading a run directory runs no code from it.
``model.zip``'s weights are read with ``torch.load(weights_only=True)`` (SB3 does so);
its ``data`` entries that SB3 would unpickle (``:serialized:``: spaces, schedules, the
policy class, buffers) are never unpickled: ``load_model`` hands SB3 a trusted value for
each (``custom_objects``), from the run's config and the environment. Statistics and
replay buffers are NumPy archives read with ``allow_pickle=False``. Pickles of older
runs (``vecnormalize.pkl``, ``replay_buffer.pkl``) are read only with
``trust_pickles=true``, with a warning.

Saves are atomic: the files are written into ``.<name>.partial/`` and the directory is
renamed into place only once every file is complete and flushed, so a process killed
in the middle of a save leaves the previous checkpoints as they were and no
half-written one (leftover ``.partial`` directories are ignored and removed by the next
save). Only the newest checkpoint keeps its replay buffer, which can be hundreds of MB;
``keep`` bounds how many periodic checkpoints stay.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import pickle
import shutil
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import hydra
import numpy as np
from gymnasium import spaces
from omegaconf import DictConfig
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from racing_rl.algos import algorithm_class
from racing_rl.errors import CheckpointError
from racing_rl.normalize import (
    apply_statistics,
    check_statistics,
    frozen_normalizer,
    read_statistics,
    save_statistics,
    statistics_of,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

MODEL = "model.zip"
STATISTICS = "vecnormalize.npz"
#: SB3's pickles: written for SB3's tools (statistics only), read only with trust_pickles.
VECNORMALIZE_PICKLE = "vecnormalize.pkl"
REPLAY_BUFFER_PICKLE = "replay_buffer.pkl"
REPLAY_BUFFER = "replay_buffer.npz"
MANIFEST = "checkpoint.json"
#: Kinds that are not periodic; ``keep`` never prunes them.
INTERRUPTED, FINAL = "interrupted", "final"
#: The replay buffer's arrays saved in ``replay_buffer.npz`` (None ones are skipped).
_BUFFER_ARRAYS = ("observations", "next_observations", "actions", "rewards", "dones", "timeouts")
REPLAY_BUFFER_VERSION = 1
_PICKLE_WARNING = (
    "Loading %s with pickle (trust_pickles=true). A pickle runs whatever code its author "
    "put in it: do this only for run directories you made yourself. Checkpoints saved "
    "from now on also hold the plain %s, which loads without trust_pickles."
)


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
    def statistics(self) -> Path:
        return self.path / STATISTICS

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
    """Write ``model.zip`` and, if ``env`` is a VecNormalize, ``vecnormalize.npz`` and
    ``vecnormalize.pkl``, each atomically (see ``write_atomic``), into an existing
    ``directory``."""
    if isinstance(env, VecNormalize):
        write_atomic(directory / STATISTICS, lambda tmp: save_statistics(env, tmp))
        write_atomic(directory / VECNORMALIZE_PICKLE, lambda tmp: env.save(str(tmp)))
    write_atomic(directory / MODEL, model.save)


def save_checkpoint(
    model: BaseAlgorithm, env: VecEnv | None, checkpoints_dir: Path, kind: str, keep: int = 0
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
        write_atomic(partial / REPLAY_BUFFER, lambda tmp: save_replay_buffer(model, tmp))
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


def newest_loadable(run_dir: Path, load: Callable[[Checkpoint], T]) -> tuple[Checkpoint, T]:
    """Load the newest checkpoint of a run that ``load`` accepts, falling back to older ones.

    Args:
        run_dir: the run directory.
        load: loads one checkpoint; raises ``CheckpointError`` if it cannot.

    Returns:
        The checkpoint that loaded and what ``load`` returned. Each one skipped is logged
        with the reason.

    Raises:
        CheckpointError: if the run has no checkpoint, or none loads (the newest's error).
    """
    candidates = find_checkpoints(run_dir)[::-1]
    if not candidates:
        latest_checkpoint(run_dir)  # raises the "no checkpoint" error
    first_error: CheckpointError | None = None
    for checkpoint in candidates:
        try:
            loaded = load(checkpoint)
        except CheckpointError as err:
            log.warning("cannot resume from %s: %s", checkpoint.path, err)
            first_error = first_error or err
            continue
        if checkpoint is not candidates[0]:
            log.warning(
                "resuming from %s, the newest checkpoint that loads (%d newer ones did not)",
                checkpoint.path,
                candidates.index(checkpoint),
            )
        return checkpoint, loaded
    raise CheckpointError(
        f"None of the {len(candidates)} checkpoints of {run_dir} loads; the newest: {first_error}"
    ) from first_error


def resolve_model(run_dir: Path, checkpoint: str) -> Path:
    """The ``model.zip`` of ``checkpoint`` = final | best | latest | <path> of a run.

    ``latest`` is the newest complete checkpoint under ``checkpoints/``; a path may name a
    model ``.zip`` or a checkpoint directory. The statistics are the files beside it.

    Raises:
        CheckpointError: if the model file is missing.
    """
    if checkpoint == FINAL:
        model = run_dir / MODEL
    elif checkpoint == "best":
        model = run_dir / "best" / MODEL
    elif checkpoint == "latest":
        model = latest_checkpoint(run_dir).model
    else:
        model = Path(checkpoint).expanduser()
        if model.is_dir():
            model = model / MODEL
    if not model.is_file():
        raise CheckpointError(
            f"Checkpoint {checkpoint!r} not found: {model} does not exist. Choose "
            "checkpoint=final|best|latest, a path to a model .zip or a checkpoint directory."
        )
    return model


def load_model(
    algo: DictConfig,
    path: Path,
    env: VecEnv | None = None,
    device: str = "cpu",
) -> BaseAlgorithm:
    """Load a saved model of ``algo``'s class without unpickling anything from the file.

    The weights are read by SB3 with ``torch.load(weights_only=True)``. Every entry of
    the archive's ``data`` that SB3 would unpickle is replaced by a trusted value
    (``trusted_objects``), so a crafted ``model.zip`` runs no code.

    Args:
        algo: the run's ``algo`` config (the class, its constructor arguments).
        path: the ``model.zip``.
        env: the VecEnv to attach (resume), or None (inference: spaces from the file's
            recorded shapes).
        device: torch device.

    Raises:
        CheckpointError: if ``path`` is missing or is not a loadable model of that class.
    """
    if not path.is_file():
        raise CheckpointError(f"No checkpoint at {path}.")
    cls = algorithm_class(algo)
    try:
        with zipfile.ZipFile(path) as archive:
            data = json.loads(archive.read("data"))
        custom_objects = trusted_objects(cls, algo, data, env)
        return cls.load(path, env=env, device=device, custom_objects=custom_objects)
    except Exception as err:
        raise CheckpointError(
            f"{path} is not a loadable {cls.__name__} checkpoint ({type(err).__name__}: {err})."
        ) from err


def trusted_objects(
    cls: type[BaseAlgorithm], algo: DictConfig, data: dict[str, Any], env: VecEnv | None
) -> dict[str, Any]:
    """A trusted value for each ``:serialized:`` (pickled) entry of a model's ``data``.

    - ``observation_space``, ``action_space``: ``env``'s; without one, Boxes of the
      shapes the file records in plain JSON (observations unbounded, actions in [-1, 1],
      racing-rl's action contract).
    - ``policy_class``: ``algo.model.policy`` resolved by the class.
    - constructor arguments (schedules, ``clip_range``, ``train_freq``, buffer classes,
      ``policy_kwargs``...): the config's value, else the constructor's default.
    - anything else is run-time state that ``_setup_model``/``learn`` rebuild
      (``lr_schedule``, ``_last_obs``, episode buffers): None.

    Raises:
        CheckpointError: without ``env``, if the file records no valid space shape.
    """
    serialized = [k for k, v in data.items() if isinstance(v, dict) and ":serialized:" in v]
    arguments = hydra.utils.instantiate(algo.model, _partial_=True, _convert_="all").keywords
    parameters = inspect.signature(cls.__init__).parameters
    spaces_ = {
        key: getattr(env, key) if env is not None else _space(key, data[key])
        for key in ("observation_space", "action_space")
    }
    trusted: dict[str, Any] = {}
    for key in serialized:
        if key in spaces_:
            trusted[key] = spaces_[key]
        elif key == "policy_class":
            policy = arguments.get("policy")
            if isinstance(policy, str):  # an alias (MlpPolicy) or an importable class
                policy = cls.policy_aliases.get(policy) or hydra.utils.get_class(policy)
            trusted[key] = policy
        elif key in parameters:
            default = parameters[key].default
            missing = default is inspect.Parameter.empty
            trusted[key] = arguments.get(key, None if missing else default)
        else:
            trusted[key] = None
    if trusted.get("target_entropy") == "auto":
        # What TQC's _setup_model makes of "auto", which needs an env that inference lacks.
        shape = spaces_["action_space"].shape
        trusted["target_entropy"] = -np.prod(shape).astype(np.float32)
    return trusted


def _space(key: str, recorded: dict[str, Any]) -> spaces.Box:
    shape = recorded.get("_shape")
    if not isinstance(shape, list) or not all(isinstance(n, int) and n > 0 for n in shape):
        raise CheckpointError(f"the model's {key} records no valid shape ({shape!r}).")
    low, high = (-np.inf, np.inf) if key == "observation_space" else (-1.0, 1.0)
    return spaces.Box(low, high, tuple(shape), np.float32)


def load_statistics(
    directory: Path, obs_shape: tuple[int, ...] | None, trust_pickles: bool = False
) -> dict[str, Any]:
    """The VecNormalize statistics saved in ``directory`` (``racing_rl.normalize``).

    Reads ``vecnormalize.npz``; a run saved before it existed has only
    ``vecnormalize.pkl``, read only with ``trust_pickles`` (and a warning).

    Raises:
        CheckpointError: if neither loads, or only the pickle is there without
            ``trust_pickles``.
    """
    plain, pickled = directory / STATISTICS, directory / VECNORMALIZE_PICKLE
    if plain.is_file() or not pickled.is_file():
        return read_statistics(plain, obs_shape)
    if not trust_pickles:
        raise CheckpointError(
            f"{directory} has VecNormalize statistics only as {pickled.name}, a pickle, and a "
            f"pickle can run any code (checkpoints of racing-rl before {STATISTICS}). If you "
            "made this run yourself or trust who did, add trust_pickles=true."
        )
    log.warning(_PICKLE_WARNING, pickled, STATISTICS)
    try:
        with open(pickled, "rb") as file:
            normalizer = pickle.load(file)
        stats = statistics_of(normalizer)
    except Exception as err:
        raise CheckpointError(
            f"{pickled} is not loadable VecNormalize statistics ({type(err).__name__}: {err})."
        ) from err
    return check_statistics(stats, pickled, obs_shape)


def load_normalizer(
    directory: Path, obs_shape: tuple[int, ...], trust_pickles: bool = False
) -> VecNormalize:
    """Frozen VecNormalize statistics from ``directory``, without a VecEnv:
    ``normalize_obs`` works, nothing updates (``training=False``, raw rewards).

    Raises:
        CheckpointError: as ``load_statistics``.
    """
    return frozen_normalizer(load_statistics(directory, obs_shape, trust_pickles))


def restore_statistics(venv: VecNormalize, directory: Path, trust_pickles: bool = False) -> None:
    """Load the statistics saved in ``directory`` into the training ``venv``.

    Raises:
        CheckpointError: as ``load_statistics``.
    """
    apply_statistics(venv, load_statistics(directory, venv.observation_space.shape, trust_pickles))


def save_replay_buffer(model: OffPolicyAlgorithm, path: Path) -> None:
    """Write the replay buffer's arrays, position and fill state as ``replay_buffer.npz``.

    Raises:
        CheckpointError: for a buffer other than SB3's ``ReplayBuffer``.
    """
    buffer = model.replay_buffer
    if type(buffer) is not ReplayBuffer:
        raise CheckpointError(
            f"Cannot save a {type(buffer).__name__} replay buffer; racing-rl saves SB3's "
            "ReplayBuffer."
        )
    arrays = {k: getattr(buffer, k) for k in _BUFFER_ARRAYS if getattr(buffer, k) is not None}
    with open(path, "wb") as file:
        np.savez(
            file,
            format_version=np.int64(REPLAY_BUFFER_VERSION),
            pos=np.int64(buffer.pos),
            full=np.bool_(buffer.full),
            **arrays,
        )


def load_replay_buffer(
    model: OffPolicyAlgorithm, directory: Path, trust_pickles: bool = False
) -> bool:
    """Fill ``model``'s (freshly allocated) replay buffer from ``directory``.

    Reads ``replay_buffer.npz``, or an older run's ``replay_buffer.pkl`` only with
    ``trust_pickles`` (and a warning).

    Returns:
        Whether a buffer was found (False: it stays empty).

    Raises:
        CheckpointError: if the saved buffer is damaged or of other shapes, or only the
            pickle is there without ``trust_pickles``.
    """
    plain, pickled = directory / REPLAY_BUFFER, directory / REPLAY_BUFFER_PICKLE
    if pickled.is_file() and not plain.is_file():
        if not trust_pickles:
            raise CheckpointError(
                f"{directory} has its replay buffer only as {pickled.name}, a pickle, and a "
                "pickle can run any code. If you made this run yourself or trust who did, add "
                "trust_pickles=true."
            )
        log.warning(_PICKLE_WARNING, pickled, REPLAY_BUFFER)
        model.load_replay_buffer(pickled)
        return True
    if not plain.is_file():
        return False
    buffer = model.replay_buffer
    assert buffer is not None
    try:
        with np.load(plain, allow_pickle=False) as data:
            if int(data["format_version"]) != REPLAY_BUFFER_VERSION:
                raise CheckpointError(f"{plain} has format_version {data['format_version']}.")
            for key in _BUFFER_ARRAYS:
                current = getattr(buffer, key)
                if current is None:
                    continue
                saved = data[key]
                if saved.shape != current.shape or saved.dtype != current.dtype:
                    raise CheckpointError(
                        f"{plain}: {key} has shape {saved.shape} {saved.dtype}; this run's "
                        f"buffer has {current.shape} {current.dtype}."
                    )
                setattr(buffer, key, saved)
            pos, full = int(data["pos"]), bool(data["full"])
            if not 0 <= pos < buffer.buffer_size:
                raise CheckpointError(f"{plain}: pos={pos} is outside the buffer.")
            buffer.pos, buffer.full = pos, full
    except CheckpointError:
        raise
    except Exception as err:
        raise CheckpointError(
            f"{plain} is not a loadable replay buffer ({type(err).__name__}: {err})."
        ) from err
    return True

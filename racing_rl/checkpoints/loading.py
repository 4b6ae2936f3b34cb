"""Loading one checkpoint's files without running code from them (the trust model of
``racing_rl.checkpoints``): the model, the VecNormalize statistics, the replay buffer."""

from __future__ import annotations

import importlib.util
import inspect
import json
import logging
import pickle
import pydoc
import reprlib
import textwrap
import zipfile
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import torch
from gymnasium import spaces
from omegaconf import DictConfig
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.buffers import BaseBuffer
from stable_baselines3.common.noise import ActionNoise
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.type_aliases import TrainFreq, TrainFrequencyUnit
from stable_baselines3.common.utils import (
    ConstantSchedule,
    FloatSchedule,
    LinearSchedule,
    constant_fn,
    get_linear_fn,
    get_schedule_fn,
)
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from racing_rl.algos import algorithm_class, constructor_parameters
from racing_rl.checkpoints.layout import (
    BUFFER_ARRAYS,
    EPISODE_KEYS,
    MANIFEST,
    MODEL,
    REPLAY_BUFFER,
    REPLAY_BUFFER_PICKLE,
    REPLAY_BUFFER_VERSION,
    STATISTICS,
    VECNORMALIZE_PICKLE,
    Checkpoint,
    filled_rows,
)
from racing_rl.errors import CheckpointError, PickleRefused, is_number, one_line
from racing_rl.normalize import (
    apply_statistics,
    check_statistics,
    frozen_normalizer,
    read_statistics,
    statistics_of,
)

log = logging.getLogger(__name__)

#: The kinds of class a run directory's config may name: loading the run calls each with
#: the file's arguments (``algo.model`` is instantiated), so nothing else may be named.
#: Policies, activation functions and feature extractors are ``torch.nn.Module``\ s; the
#: algorithm (a ``BaseAlgorithm``) only as ``algo.model._target_`` itself.
TRUSTED_CLASSES: tuple[type, ...] = (
    torch.nn.Module,
    torch.optim.Optimizer,
    LinearSchedule,
    ConstantSchedule,
    FloatSchedule,
    ActionNoise,
    BaseBuffer,
    TrainFreq,
    TrainFrequencyUnit,
)
#: SB3's schedule functions (older configs' ``learning_rate``): they only build a schedule.
TRUSTED_FUNCTIONS = (get_linear_fn, constant_fn, get_schedule_fn)
_ALGORITHM = ".algo.model._target_"


def check_named_classes(node: Any, where: str = "") -> None:
    """Refuse a run's config (as plain containers, interpolations unresolved) that names
    anything to call but a ``TRUSTED_CLASSES`` class or a ``TRUSTED_FUNCTIONS`` function.

    Hydra would call every ``_target_`` with the file's arguments (``builtins.open``,
    ``pathlib.Path.mkdir``, ``subprocess.Popen``...). Checked: each ``_target_``, the
    ``path`` of ``_target_: hydra.utils.get_class`` (Hydra's way to pass a class), and
    ``algo.model.policy`` when it is a dotted class name. Each must be written out (an
    interpolation could resolve to another name once a resume overrides a key), and its
    top-level package must be installed: one found in the working directory is refused
    before it is imported (``python -m`` puts that directory first on ``sys.path``), so
    nothing from a run directory is imported.

    Raises:
        ValueError: naming the key and the value, for the first one that is not a class
            or not of a trusted kind.
    """
    if isinstance(node, list):
        for i, item in enumerate(node):
            check_named_classes(item, f"{where}[{i}]")
        return
    if not isinstance(node, dict):
        return
    named = {}
    if "_target_" in node:
        target = node["_target_"]
        if target == "hydra.utils.get_class":
            named[f"{where}.path"] = node.get("path")
        else:
            named[f"{where}._target_"] = target
    if where == ".algo.model" and "." in str(node.get("policy", "")):
        named[f"{where}.policy"] = node["policy"]
    for key, name in named.items():
        found = _locate(key.lstrip("."), str(name))
        if found in TRUSTED_FUNCTIONS:
            continue
        kinds = (*TRUSTED_CLASSES, BaseAlgorithm) if key == _ALGORITHM else TRUSTED_CLASSES
        if not (isinstance(found, type) and issubclass(found, kinds)):
            raise ValueError(
                f"{key.lstrip('.')} = {name!r}: a run's config may name only its algorithm "
                "(algo.model._target_) and policy, torch module, optimiser, schedule, action "
                "noise, replay buffer or train frequency classes, or an SB3 schedule function"
            )
    for key, value in node.items():
        check_named_classes(value, f"{where}.{key}")


def _locate(key: str, name: str) -> Any:
    """The object ``name`` (a dotted path) names, imported only from an installed package.

    Raises:
        ValueError: if ``name`` is an interpolation, cannot be imported, or its top-level
            package lies in the working directory (and is not racing_rl itself).
    """
    if "${" in name:
        raise ValueError(f"{key} = {name!r}: a run's config names its classes literally")
    root = name.split(".")[0]
    try:
        spec = importlib.util.find_spec(root)  # a top-level module: found, not run
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        raise ValueError(f"{key} = {name!r} cannot be imported")
    # The sys.path entry it was found on (none for a built-in module such as builtins):
    # the parent of a module file, of a package's directory or of a namespace's.
    if spec.has_location and spec.origin:
        origin = Path(spec.origin).resolve()
        places = [origin.parent.parent if origin.name == "__init__.py" else origin.parent]
    else:
        places = [Path(p).resolve().parent for p in spec.submodule_search_locations or []]
    inside = [place for place in places if place == Path.cwd().resolve()]
    if root != "racing_rl" and inside:
        raise ValueError(
            f"{key} = {name!r}: {root} would be imported from the working directory "
            f"({inside[0]}), not from an installed package"
        )
    try:
        found = pydoc.locate(name)  # imports the module, calls nothing in it
    except pydoc.ErrorDuringImport as err:  # a Ctrl-C while it imports is no bad config
        if isinstance(err.value, KeyboardInterrupt):
            raise err.value from None
        raise
    if found is None:
        raise ValueError(f"{key} = {name!r} cannot be imported")
    return found


#: The most characters of the underlying error a refusal to load quotes.
_MAX_CAUSE = 300

_PICKLE_WARNING = (
    "Loading %s with pickle (trust_pickles=true). A pickle runs whatever code its author "
    "put in it: do this only for run directories you made yourself. The checkpoints that "
    "racing-rl train saves from now on also hold the plain %s, which loads without "
    "trust_pickles."
)


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
    cls = algorithm_class(algo)
    data = _model_data(cls, algo, path)
    try:
        custom_objects = trusted_objects(cls, algo, data, env)
        return cls.load(path, env=env, device=device, custom_objects=custom_objects)
    except Exception as err:
        raise _not_loadable(cls, path, err) from err


def recorded_observation_shape(algo: DictConfig, path: Path) -> tuple[int, ...]:
    """The observation shape of the model saved at ``path``, as its ``data`` records it,
    read without loading the model: what ``racing-rl eval`` checks before it writes
    anything.

    Args:
        algo: the ``algo`` config of the run the model is to load with.
        path: the ``model.zip``.

    Raises:
        CheckpointError: as ``load_model`` for a missing or damaged file, or a model of
            another algorithm than ``algo``'s; or if the file records no valid shape.
    """
    cls = algorithm_class(algo)
    data = _model_data(cls, algo, path)
    try:
        return _space("observation_space", data["observation_space"]).shape
    except Exception as err:
        raise _not_loadable(cls, path, err) from err


def _model_data(cls: type[BaseAlgorithm], algo: DictConfig, path: Path) -> dict[str, Any]:
    """The ``data`` JSON of the model saved at ``path`` (SB3's archive), checked to be of
    ``cls``, ``algo``'s class.

    Raises:
        CheckpointError: if the file is missing, is no SB3 archive, or holds another
            algorithm's model (SB3's error on loading one says less: a state dict's
            missing keys, a TypeError).
    """
    if not path.is_file():
        raise CheckpointError(f"No checkpoint at {path}.")
    try:
        with zipfile.ZipFile(path) as archive:
            data = json.loads(archive.read("data"))
        if not isinstance(data, dict):
            raise ValueError(f"its data is a JSON {type(data).__name__}, not an object")
    except Exception as err:
        raise _not_loadable(cls, path, err) from err
    if other := _other_algorithm(cls, algo, data):
        raise CheckpointError(f"{path} is not a loadable {cls.__name__} checkpoint: {other}")
    return data


def _not_loadable(cls: type[BaseAlgorithm], path: Path, err: Exception) -> CheckpointError:
    """The refusal of ``path`` as a model of ``cls``, quoting ``err`` (shortened)."""
    why = textwrap.shorten(one_line(err), _MAX_CAUSE, placeholder=" …")
    return CheckpointError(
        f"{path} is not a loadable {cls.__name__} checkpoint ({type(err).__name__}: {why})."
    )


def _other_algorithm(cls: type[BaseAlgorithm], algo: DictConfig, data: dict[str, Any]) -> str:
    """The sentences for a model whose policy (as ``data`` records its module) is not
    of ``cls``'s: the checkpoint of another algorithm's run; else empty."""
    recorded = data.get("policy_class")
    saved = recorded.get("__module__") if isinstance(recorded, dict) else None
    policy = cls.policy_aliases.get(str(algo.model.get("policy", "MlpPolicy")))
    if not isinstance(saved, str) or policy is None or saved == policy.__module__:
        return ""
    return (
        f"it holds a policy of {saved}, not of {cls.__name__} ({policy.__module__}): a "
        "checkpoint of another algorithm's run? A checkpoint loads with the config of the "
        "run it came from: give that run's run_dir."
    )


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
    parameters = constructor_parameters(cls)
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


def _read_pickle_if_trusted(pickled: Path, instead: str, what: str, trust_pickles: bool) -> None:
    """Refuse to read ``pickled`` (a run's ``what``, from before ``instead``) unless
    ``trust_pickles``, and warn when it is read.

    Raises:
        PickleRefused: without ``trust_pickles``.
    """
    if not trust_pickles:
        raise PickleRefused(
            f"{pickled.parent} has {what} only as {pickled.name}, a pickle, and a pickle can "
            f"run any code (checkpoints of racing-rl before {instead}). If you made this run "
            f"yourself or trust who did, add trust_pickles=true; if its {instead} was lost, "
            "choose another checkpoint."
        )
    log.warning(_PICKLE_WARNING, pickled, instead)


def load_statistics(
    directory: Path,
    obs_shape: tuple[int, ...] | None,
    trust_pickles: bool = False,
    timesteps: int | None = None,
) -> dict[str, Any]:
    """The VecNormalize statistics saved in ``directory`` (``racing_rl.normalize``).

    Reads ``vecnormalize.npz``; a run saved before it existed has only
    ``vecnormalize.pkl``, read only with ``trust_pickles`` (and a warning).

    Args:
        directory: the folder of the model they were saved with.
        obs_shape: the observation shape they must have, or None for any.
        trust_pickles: read a lone ``vecnormalize.pkl`` (a pickle: it can run code).
        timesteps: the timesteps of the model loaded from ``directory``; statistics that
            record others are refused. None: not checked.

    Raises:
        CheckpointError: if neither loads, or the statistics were saved with a model of
            other timesteps (the run directory's final files of two saves: a kill or a full
            disk between their writes).
        PickleRefused: if only the pickle is there without ``trust_pickles``.
    """
    plain, pickled = directory / STATISTICS, directory / VECNORMALIZE_PICKLE
    if plain.is_file() or not pickled.is_file():
        stats = read_statistics(plain, obs_shape)
        saved = stats["timesteps"]
        if timesteps is not None and saved is not None and saved != timesteps:
            raise CheckpointError(
                f"{directory}: its {MODEL} has {timesteps:,} timesteps but {STATISTICS} was "
                f"saved with a model of {saved:,}: they are not one save (a save cut short by "
                "a kill or a full disk?). Each checkpoint under checkpoints/ is one "
                "(checkpoint=latest); racing-rl train resume=<run dir> writes a run's final "
                "files again."
            )
        return stats
    _read_pickle_if_trusted(pickled, STATISTICS, "VecNormalize statistics", trust_pickles)
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
    directory: Path,
    obs_shape: tuple[int, ...],
    trust_pickles: bool = False,
    timesteps: int | None = None,
) -> VecNormalize:
    """Frozen VecNormalize statistics from ``directory``, without a VecEnv:
    ``normalize_obs`` works, nothing updates (``training=False``, raw rewards).

    Raises:
        CheckpointError: as ``load_statistics`` (``timesteps``: the model's).
    """
    return frozen_normalizer(load_statistics(directory, obs_shape, trust_pickles, timesteps))


def restore_statistics(
    venv: VecNormalize,
    directory: Path,
    trust_pickles: bool = False,
    settings: bool = True,
    timesteps: int | None = None,
) -> None:
    """Load the statistics saved in ``directory`` into the training ``venv``: with their
    settings (clips, gamma, ...), or with ``settings=False`` the running statistics alone
    (``apply_statistics``).

    Raises:
        CheckpointError: as ``load_statistics`` (``timesteps``: the model's).
    """
    stats = load_statistics(directory, venv.observation_space.shape, trust_pickles, timesteps)
    apply_statistics(venv, stats, settings)


def load_replay_buffer(
    model: OffPolicyAlgorithm, directory: Path, trust_pickles: bool = False
) -> bool:
    """Fill ``model``'s (freshly allocated) replay buffer from ``directory``.

    Reads ``replay_buffer.npz``, or an older run's ``replay_buffer.pkl`` only with
    ``trust_pickles`` (and a warning).

    Returns:
        Whether a buffer was found (False: it stays empty).

    Raises:
        CheckpointError: if the saved buffer is damaged or of other shapes.
        PickleRefused: if only the pickle is there without ``trust_pickles``.
    """
    plain, pickled = directory / REPLAY_BUFFER, directory / REPLAY_BUFFER_PICKLE
    if pickled.is_file() and not plain.is_file():
        _read_pickle_if_trusted(pickled, REPLAY_BUFFER, "its replay buffer", trust_pickles)
        model.load_replay_buffer(pickled)
        return True
    if not plain.is_file():
        return False
    buffer = model.replay_buffer
    assert buffer is not None
    try:
        with np.load(plain, allow_pickle=False) as data:
            version = int(data["format_version"])
            if version not in (1, REPLAY_BUFFER_VERSION):
                raise CheckpointError(f"{plain} has format_version {version}.")
            pos, full = int(data["pos"]), bool(data["full"])
            if not 0 <= pos < buffer.buffer_size:
                raise CheckpointError(f"{plain}: pos={pos} is outside the buffer.")
            # Version 1 holds every row of the capacity; 2 the filled ones.
            rows = buffer.buffer_size if version == 1 else filled_rows(buffer, pos, full)
            for key in BUFFER_ARRAYS:
                current = getattr(buffer, key, None)  # memory-optimised: no next_observations
                if current is None:
                    continue
                saved = data[key]
                if saved.shape != (rows, *current.shape[1:]) or saved.dtype != current.dtype:
                    raise CheckpointError(
                        f"{plain}: {key} has shape {saved.shape} {saved.dtype}; this run's "
                        f"buffer takes {(rows, *current.shape[1:])} {current.dtype}."
                    )
                current[:rows] = saved
            buffer.pos, buffer.full = pos, full
    except CheckpointError:
        raise
    except Exception as err:
        raise CheckpointError(
            f"{plain} is not a loadable replay buffer ({type(err).__name__}: {err})."
        ) from err
    return True


def load_episodes(checkpoint: Checkpoint) -> list[dict[str, float]]:
    """The latest episodes saved with ``checkpoint`` (its manifest's ``episodes``,
    ``saving.episode_record``), for SB3's ``ep_info_buffer``: a resumed run's first
    ``rollout/ep_rew_mean`` then averages them with its own, as the run did before it
    stopped, not the few short episodes that end in its first rollout.

    Returns:
        The episodes; none for a checkpoint saved before they were recorded, or, with a
        warning, one whose record is malformed (the run resumes without them).
    """
    try:
        episodes = json.loads((checkpoint.path / MANIFEST).read_text()).get("episodes", [])
    except (OSError, ValueError, AttributeError) as err:
        episodes = f"{type(err).__name__}: {err}"
    well_formed = isinstance(episodes, list) and all(
        isinstance(info, dict)
        and set(info) == set(EPISODE_KEYS)
        and all(is_number(v) and np.isfinite(v) for v in info.values())
        for info in episodes
    )
    if not well_formed:
        log.warning(
            "%s: its record of the latest episodes is malformed (%s): the resumed run's "
            "rollout/ep_rew_mean starts from its own episodes",
            checkpoint.path / MANIFEST,
            reprlib.repr(episodes),
        )
        return []
    return episodes

"""A run directory: its config, the checkpoint to resume from, a model to start from, a
driver of one of its checkpoints. Nothing is loaded but through ``loading`` (no code from
the run runs)."""

from __future__ import annotations

import inspect
import logging
import os
from collections import deque
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import TypeVar

import torch
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.errors import OverrideParseException
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.save_util import recursive_getattr
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from racing_rl.algos import make_model
from racing_rl.checkpoints.layout import (
    FINAL,
    MANIFEST,
    MODEL,
    Checkpoint,
    damaged_checkpoints,
    find_checkpoints,
    latest_checkpoint,
    resolve_model,
    swapped_in,
)
from racing_rl.checkpoints.loading import (
    check_named_classes,
    load_episodes,
    load_model,
    load_normalizer,
    load_replay_buffer,
    load_statistics,
    recorded_observation_shape,
    restore_statistics,
)
from racing_rl.checks import check_device, check_train_config
from racing_rl.config import RUNTIME_KEYS, backend_config, under
from racing_rl.contract import STATE_SIZE
from racing_rl.drivers import PolicyDriver
from racing_rl.errors import CheckpointError, ConfigError, PickleRefused, interruption
from racing_rl.files import recorded_timesteps

log = logging.getLogger(__name__)
T = TypeVar("T")


#: Keys renamed since runs were first saved: old dotted key -> new name in the same node.
#: A run saved with an old name loads (``load_run_config``), resumes and evaluates as before.
RENAMED = {
    "n_venvs": "n_races",
    "agents_per_venv": "cars_per_race",
    "backend.connect_timeout_s": "connect_timeout",
    "backend.reconnect_timeout_s": "reconnect_timeout",
    "backend.observation_timeout_s": "observation_timeout",
    "backend.server.ping_after_s": "ping_after",
    "backend.server.send_timeout_s": "send_timeout",
}


def _rename_old_keys(cfg: DictConfig) -> None:
    """Give the keys of ``RENAMED`` their new names in ``cfg`` (in place)."""
    for old, new in RENAMED.items():
        parent, _, key = old.rpartition(".")
        node = OmegaConf.select(cfg, parent) if parent else cfg
        if isinstance(node, DictConfig) and key in node and new not in node:
            with open_dict(node):
                node[new] = node.pop(key)


def load_run_config(run_dir: str | os.PathLike[str]) -> DictConfig:
    """The config a run was trained with (``<run_dir>/.hydra/config.yaml``), checked; keys
    renamed since it was saved (``RENAMED``) take their new names.

    Raises:
        CheckpointError: if ``run_dir`` is not a run directory, or its config is not a
            readable, resolvable mapping of valid settings (one line naming the cause),
            or names a class that loading must not call (``check_named_classes``): that
            is refused before anything in it is instantiated.
        KeyboardInterrupt: Ctrl-C (or SIGTERM) while it is read, as it came, even where
            the library it cut short then failed with an error of its own.
    """
    run_dir = Path(run_dir)
    saved = run_dir / ".hydra" / "config.yaml"
    if not run_dir.exists():
        raise CheckpointError(
            f"{run_dir}: no such directory. Pass a directory written by racing-rl train."
        )
    if not saved.is_file():
        raise CheckpointError(
            f"{run_dir} is not a racing-rl run directory (no .hydra/config.yaml). "
            "Pass a directory written by racing-rl train."
        )
    try:
        cfg = OmegaConf.load(saved)
        if not isinstance(cfg, DictConfig) or not cfg:
            raise ValueError(f"it holds {type(cfg).__name__ if cfg else 'nothing'}, not settings")
        _rename_old_keys(cfg)  # a run saved before some keys were renamed
        OmegaConf.to_container(cfg, resolve=True)  # every interpolation resolves
        # Nothing is called but what a run may name (written out: see check_named_classes).
        check_named_classes(OmegaConf.to_container(cfg, resolve=False))
        check_train_config(cfg, device=False, new_run=False)
    except Exception as err:
        if (interrupt := interruption(err)) is not None:  # Ctrl-C, not a damaged file
            raise interrupt from None
        why = (str(err).strip().splitlines() or [""])[0]
        raise CheckpointError(
            f"{saved} is not a valid run config ({type(err).__name__}: {why}). It is written "
            "by racing-rl train; restore it, or pass the directory of a complete run."
        ) from err
    return cfg


#: Keys a resumed run may change (and their sub-keys); everything else is the run's own.
RESUMABLE = ("total_timesteps", "validation", *RUNTIME_KEYS)
#: Keys whose change would change the model's shape, its inputs or its buffers.
SHAPE_KEYS = (
    "wrappers",
    "backend.sensors",
    "backend.observation_size",
    "n_races",
    "cars_per_race",
)


def check_simulator_run(run_dir: Path, needs: str) -> None:
    """Refuse a run that did not train on the built-in simulator.

    Args:
        run_dir: the run.
        needs: what needs the simulator, for the message (``imitation``).

    Raises:
        CheckpointError: ``run_dir`` is no run directory (``load_run_config``'s message).
        ConfigError: it trained in a Roblox game (``backend=roblox``).
    """
    backend = load_run_config(run_dir).backend.name
    if backend != "pygame":
        raise ConfigError(
            f"{run_dir} trained on backend={backend}: {needs} needs the built-in simulator "
            "(its state and its tracks); give it a run of backend=pygame."
        )


def run_backend(run_dir: Path) -> str | None:
    """``backend.name`` of a run's saved config, or None where it cannot be read."""
    try:
        name = OmegaConf.select(OmegaConf.load(run_dir / ".hydra" / "config.yaml"), "backend.name")
    except Exception:  # no run, or no readable mapping: load_run_config says which
        return None
    return str(name) if name is not None else None


def resume_overrides(run_dir: Path, overrides: Sequence[str]) -> list[Override]:
    """The overrides of a resume's command line that it may make (``resume=`` left out).

    Args:
        run_dir: the run directory (named in the error).
        overrides: the command line's overrides.

    ``backend=<the run's own backend>`` is allowed (and left out): it makes Hydra compose
    the keys of that backend that a resume may change (``backend.server.port`` of a
    Roblox run; the default backend has none). So is any override that repeats the run's
    own value (``seed=0`` of a run of seed 0, ``algo=ppo`` of a PPO run): the command
    that started a run, with ``resume=<run>`` added, resumes it.

    Raises:
        ConfigError: if an override would change anything but ``RESUMABLE`` keys;
            changes of the model's shape (``SHAPE_KEYS``) say so.
    """
    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except OverrideParseException as err:
        raise ConfigError(f"Could not parse the overrides {list(overrides)}: {err}") from err
    allowed = []
    cfg, choices = _saved_settings(run_dir)
    backend = None if cfg is None else OmegaConf.select(cfg, "backend.name")
    for override in parsed:
        key = override.key_or_group
        if key == "resume" or (key == "backend" and override.value() == backend):
            continue
        if not under(key, RESUMABLE) and _repeats(override, cfg, choices):
            log.debug("%s is the run's own setting: nothing to change", override.input_line)
            continue
        if override.is_add() or override.is_delete() or not under(key, RESUMABLE):
            if under(key, ("algo",)):
                why = "the algorithm and its settings are the run's own (the checkpoint's"
                why += " network, optimiser state and schedules were made with them)"
            elif under(key, SHAPE_KEYS) or key == "backend":
                why = "it would change the model's shape (its observations, actions or number "
                why += "of environments)"
            else:
                why = "a resumed run keeps its own config"
            raise ConfigError(
                f"Cannot resume {run_dir} with {override.input_line!r}: {why}. A resume may "
                f"change only {', '.join(RESUMABLE)} (and their sub-keys); start a new run "
                "to train with other settings."
            )
        allowed.append(override)
    return allowed


def _saved_settings(run_dir: Path) -> tuple[DictConfig | None, dict[str, object]]:
    """A run's saved config (unresolved; None where it cannot be read) and its config
    groups' choices (``.hydra/hydra.yaml``'s ``hydra.runtime.choices``; empty where it
    cannot be read), for ``resume_overrides`` to tell an override that changes nothing."""
    try:
        cfg = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    except Exception:  # no run, or no readable mapping: load_run_config says which
        cfg = None
    try:
        hydra = OmegaConf.load(run_dir / ".hydra" / "hydra.yaml")
        choices = OmegaConf.to_container(hydra.hydra.runtime.choices)
    except Exception:  # a run saved without it (a test's), or unreadable: none known
        choices = {}
    return (cfg if isinstance(cfg, DictConfig) else None), dict(choices or {})


def _repeats(override: Override, cfg: DictConfig | None, choices: dict[str, object]) -> bool:
    """Whether ``override`` sets what the run already has: its group's choice, or its
    key's value in ``cfg`` (resolved; of the same type: ``seed=0.0`` is not ``seed=0``)."""
    if override.is_add() or override.is_delete() or override.is_sweep_override():
        return False
    key, value = override.key_or_group, override.value()
    if key in choices:
        return value == choices[key]
    if cfg is None:
        return False
    try:
        current = OmegaConf.select(cfg, key, throw_on_missing=True)
        if isinstance(current, (DictConfig, ListConfig)):
            current = OmegaConf.to_container(current, resolve=True)
    except Exception:  # an interpolation that does not resolve here: not known equal
        return False
    return type(current) is type(value) and current == value


def resume_config(run_dir: Path, overrides: Sequence[str]) -> DictConfig:
    """The config of a run to resume: its saved config with the allowed overrides applied.

    Args:
        run_dir: the run directory.
        overrides: the command line's overrides (``resume=...`` itself is skipped).

    Returns:
        The config to continue with.

    Raises:
        CheckpointError: if ``run_dir`` is not a run directory.
        ConfigError: if an override may not change on resume (``resume_overrides``).
    """
    cfg = load_run_config(run_dir)
    for override in resume_overrides(run_dir, overrides):
        key = override.key_or_group
        if key == "validation.max_steps" and override.value() != cfg.validation.max_steps:
            log.warning(
                "validation.max_steps %s -> %s: best/ was chosen under the old limit, and the "
                "validations from here run under the new one, so they compare unlike lap "
                "times and crashes",
                cfg.validation.max_steps,
                override.value(),
            )
        OmegaConf.update(cfg, key, override.value(), merge=False)
    return cfg


def recorded_overrides(path: Path, overrides: Sequence[str]) -> str | None:
    """The run's ``.hydra/overrides.yaml`` with a resume's overrides, each in place of the
    one of its key, so that the file keeps saying what the run's config was made with
    (``racing-rl report`` shows it); ``resume=`` itself and the run's own ``backend=``
    are left out. None without the file.

    Raises:
        ConfigError: if the file cannot be read as a list of overrides.
    """
    if not path.is_file():
        return None
    parser = OverridesParser.create()
    try:
        saved = OmegaConf.load(path)
        lines = [o.input_line for o in parser.parse_overrides([str(o) for o in saved])]
    except Exception as err:  # YAML's, OmegaConf's or Hydra's parse errors
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(
            f"{path} is damaged ({first}): it lists the overrides the run was made with. "
            "Put its lines back (each KEY=VALUE of the run's command line, as a YAML list), "
            "or delete it, and resume again."
        ) from err
    for override in parser.parse_overrides(list(overrides)):
        key = override.key_or_group
        if key not in ("resume", "backend"):  # backend: the run's own (_resumed_backend)
            lines = [line for line in lines if parser.parse_override(line).key_or_group != key]
            lines.append(override.input_line)
    return OmegaConf.to_yaml(OmegaConf.create(lines))


def resume_checkpoint(run_dir: Path, cfg: DictConfig) -> Checkpoint:
    """The checkpoint a resume of ``run_dir`` goes on from: the newest whose model (and
    VecNormalize statistics) load (``newest_loadable``: a damaged newer one is skipped,
    with a warning), checked against the resume's ``total_timesteps``.

    Args:
        run_dir: the run directory.
        cfg: the resume's config (``resume_config``).

    Returns:
        The checkpoint that ``load_for_resume`` is to load.

    Raises:
        CheckpointError: if the run has no checkpoint, or none loads.
        PickleRefused: as ``newest_loadable``.
        ConfigError: if a ``total_timesteps`` given is below the checkpoint's timesteps,
            or the run's final checkpoint is already at ``total_timesteps``.
    """
    checkpoint, _ = newest_loadable(run_dir, partial(_load_parts, cfg))
    if checkpoint.timesteps < cfg.total_timesteps:
        return checkpoint
    own = load_run_config(run_dir).total_timesteps  # a total given here is cfg's
    if own != cfg.total_timesteps and checkpoint.timesteps > cfg.total_timesteps:
        raise ConfigError(  # a typo would end the run
            f"total_timesteps={cfg.total_timesteps:,} is below the "
            f"{checkpoint.timesteps:,} timesteps of {checkpoint.path}: pass a larger "
            "total_timesteps to train on, or leave it out to go on to the run's own."
        )
    if (
        checkpoint.kind == FINAL
        and recorded_timesteps(run_dir / "summary.json") == checkpoint.timesteps
    ):
        raise ConfigError(
            f"{checkpoint.path} is already at {checkpoint.timesteps:,} timesteps, "
            f"total_timesteps={cfg.total_timesteps:,}: pass a larger total_timesteps to "
            "train on."
        )
    return checkpoint


def _load_parts(cfg: DictConfig, checkpoint: Checkpoint) -> None:
    """Load what ``load_for_resume`` loads of ``checkpoint`` without the training VecEnv:
    its model and, for a run that normalizes, its statistics.

    Raises:
        CheckpointError: if either is missing or damaged (PickleRefused: a lone pickle).
    """
    if cfg.wrappers.get("normalize"):
        trust = bool(cfg.get("trust_pickles", False))
        load_statistics(checkpoint.path, None, trust, timesteps=checkpoint.timesteps)
    load_model(cfg.algo, checkpoint.model)


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
        PickleRefused: if a checkpoint holds a part only as a pickle and the config does
            not trust pickles (no older one is tried: its replay buffer would be lost); the
            message says how to go on from an older one, if there is one.
    """
    for damaged in damaged_checkpoints(run_dir):
        log.warning(
            "cannot resume from %s: it has no readable %s with a %s (a damaged save)",
            damaged,
            MANIFEST,
            MODEL,
        )
    candidates = find_checkpoints(run_dir)[::-1]
    if not candidates:
        latest_checkpoint(run_dir)  # raises the "no checkpoint" error
    first_error: CheckpointError | None = None
    for checkpoint in candidates:
        try:
            loaded = load(checkpoint)
        except PickleRefused as err:  # the user's to decide, not a damaged checkpoint to skip
            if checkpoint is candidates[-1]:
                raise
            # Its advice, "choose another checkpoint", is eval's checkpoint=; a resume has none.
            raise PickleRefused(
                f"{err} A resume goes on from the newest checkpoint: to go on from the one "
                f"before it, move {checkpoint.path} out of {checkpoint.path.parent}."
            ) from err
        except CheckpointError as err:
            log.warning("cannot resume from %s: %s", checkpoint.path, err)
            first_error = first_error or err
            continue
        if checkpoint is not candidates[0]:  # the newer ones, and the damaged, are warned of
            log.warning(
                "resuming from %s, the newest checkpoint that loads: the newer ones above do not",
                checkpoint.path,
            )
        return checkpoint, loaded
    raise CheckpointError(
        f"None of the {len(candidates)} checkpoints of {run_dir} loads; the newest: {first_error}"
    ) from first_error


def load_for_resume(cfg: DictConfig, checkpoint: Checkpoint, venv: VecEnv) -> BaseAlgorithm:
    """Load a checkpoint's model, VecNormalize statistics (into ``venv``) and replay
    buffer, running no code from the files; the model's random state is seeded from
    ``cfg.seed`` and its timesteps, so a resumed leg is as reproducible as a fresh run.

    Args:
        cfg: the run's config (``algo``, ``device``, ``seed``, ``trust_pickles``).
        checkpoint: the checkpoint to load.
        venv: the training VecEnv; its VecNormalize takes the statistics and trains on.

    Raises:
        CheckpointError: if any part is missing or damaged.
    """
    trust = bool(cfg.get("trust_pickles", False))
    if isinstance(venv, VecNormalize):
        restore_statistics(venv, checkpoint.path, trust, timesteps=checkpoint.timesteps)
        venv.training = True
    model = load_model(cfg.algo, checkpoint.model, env=venv, device=cfg.device)
    if isinstance(model, OffPolicyAlgorithm):
        # The run's own: a model saved after a resume without a buffer holds a shifted one.
        learning_starts = OmegaConf.select(cfg, "algo.model.learning_starts")
        if learning_starts is None:  # the algorithm's default
            signature = inspect.signature(type(model).__init__)
            learning_starts = signature.parameters["learning_starts"].default
        model.learning_starts = int(learning_starts)
        why = ""
        try:
            if not load_replay_buffer(model, checkpoint.path, trust):
                why = "it has no replay buffer"
        except PickleRefused:
            raise
        except CheckpointError as err:  # an older checkpoint has no buffer either
            why = f"its replay buffer does not load ({err})"
        if why:
            # SB3 trains once num_timesteps passes learning_starts, which it long has: it
            # would sample whole batches from the first transition or two.
            model.learning_starts = model.num_timesteps + model.learning_starts
            log.warning(
                "%s: %s: it starts empty, and gradient steps wait until %s timesteps "
                "(learning_starts after the resume)",
                checkpoint.path,
                why,
                f"{model.learning_starts:,}",
            )
        else:
            buffer = model.replay_buffer
            assert buffer is not None
            log.info("replay buffer: %d transitions", buffer.size() * buffer.n_envs)
    # learn(reset_num_timesteps=False) keeps them (and wants both buffers, or neither):
    # rollout/ep_rew_mean goes on smoothly. The race's episodes report no success.
    window = model._stats_window_size
    model.ep_info_buffer = deque(load_episodes(checkpoint), maxlen=window)
    model.ep_success_buffer = deque(maxlen=window)
    # A resumed leg is as reproducible as a fresh run: seed it from the config and step.
    model.set_random_seed(cfg.seed + model.num_timesteps)
    return model


def check_init_from(cfg: DictConfig, source: Path) -> DictConfig:
    """Check, from the two runs' configs, that ``init_from=source`` can start this run:
    the same algorithm and, where both configs fix it, the same observation (frames of
    ``backend.observation_size`` numbers × ``wrappers.frame_stack``; a Roblox game's own
    size is known only once it connects). Runs before this run's directory is made.

    Returns:
        The source's config.

    Raises:
        CheckpointError: if ``source`` is not a run directory.
        ConfigError: if its algorithm or its observations differ from this run's,
            naming the key to change.
    """
    source_cfg = load_run_config(source)
    if source_cfg.algo.name != cfg.algo.name:
        raise ConfigError(
            f"init_from={source} was trained with algo={source_cfg.algo.name}; this run uses "
            f"algo={cfg.algo.name}. Pass algo={source_cfg.algo.name}."
        )
    expected, got = _stacked_size(source_cfg), _stacked_size(cfg)
    if expected is not None and got is not None and expected != got:
        raise _observation_mismatch(source, source_cfg, cfg, (expected,), (got,))
    theirs, ours = _normalized_observations(source_cfg), _normalized_observations(cfg)
    if theirs != ours:
        fix = (
            "give this run VecNormalize's observations (wrappers.normalize as in "
            "conf/wrappers/default.yaml, with norm_obs: true)"
            if theirs
            else "pass wrappers.normalize=null (or the source's wrappers.normalize.norm_obs=false)"
        )
        raise ConfigError(
            f"init_from={source} learned on {'normalised' if theirs else 'raw'} observations; "
            f"this run would give its weights {'normalised' if ours else 'raw'} ones: {fix}."
        )
    return source_cfg


def _normalized_observations(cfg: DictConfig) -> bool:
    """Whether a run's policy sees VecNormalize's normalised observations."""
    normalize = cfg.wrappers.get("normalize")
    return bool(normalize) and bool(normalize.get("norm_obs", True))


def _stacked_size(cfg: DictConfig) -> int | None:
    """A run's observation size after the frame stack; None where a game sets it."""
    size = backend_config(cfg.backend).observation_size
    return None if size is None else size * int(cfg.wrappers.frame_stack)


def _observation_mismatch(
    source: Path,
    source_cfg: DictConfig,
    cfg: DictConfig,
    expected: tuple[int, ...],
    got: tuple[int, ...],
) -> ConfigError:
    """The refusal of a source whose observations differ from this run's, with the
    setting that differs: the frame stack, the simulator's sensors, or the game's size."""
    theirs, ours = int(source_cfg.wrappers.frame_stack), int(cfg.wrappers.frame_stack)
    shapes = (
        f"init_from={source} expects observations of shape {expected} ({theirs} stacked "
        f"frame(s) of {expected[0] // theirs} numbers), this run's environment gives {got} "
        f"({ours} of {got[0] // ours})."
    )
    differ = [f"wrappers.frame_stack={theirs}"] if theirs != ours else []
    if cfg.backend.get("name") == source_cfg.backend.get("name") == "pygame":
        sensors = OmegaConf.to_container(source_cfg.backend.sensors, resolve=True)
        own = OmegaConf.to_container(cfg.backend.sensors, resolve=True)
        differ += [f"backend.sensors.{k}={v}" for k, v in sensors.items() if own.get(k) != v]
    backends = (source_cfg.backend.get("name"), cfg.backend.get("name"))
    if differ:
        fix = f"Give this run the source's {' '.join(differ)}."
    elif backends[0] == backends[1]:
        fix = f"Compare the source's {source / '.hydra' / 'config.yaml'} with this run's."
    else:
        # Only a Roblox run has backend.observation_size; the simulator's is its sensors'.
        rays = expected[0] // theirs - STATE_SIZE
        match = (  # a game's size is its car model's: no key of this run changes it
            f"race a car with the source's {rays} rays in the game (main.server's carModel: "
            "docs/roblox.md), or train the source with the game car's sensors"
            if backends[1] == "roblox"
            else "give this run the sensors that match the game's cars"
        )
        fix = (
            f"The source trained on backend={backends[0]}, this run is "
            f"backend={backends[1]}: a game's cars send rays + 3 numbers (the "
            "simulator's backend.sensors.n_rays=16 backend.sensors.layout=roblox_car match the "
            f"game's 16-ray car); {match}."
        )
    return ConfigError(f"{shapes} {fix}")


def initialize_from(cfg: DictConfig, source: Path, venv: VecEnv) -> tuple[BaseAlgorithm, VecEnv]:
    """A new model on ``venv`` that starts from another run's weights and VecNormalize
    statistics (``init_from=<run dir>``; ML-Agents' ``--initialize-from``).

    The source's best model is taken (its final one if it has no ``best/``): its weights,
    optimisers' states and other learned tensors (SAC's entropy coefficient with
    ``ent_coef=auto`` in both runs: ``_copy_learned``); its timestep count, schedules'
    position and replay buffer are not: this is a new run.

    Args:
        cfg: this run's config.
        source: the run directory to start from.
        venv: this run's training VecEnv.

    Returns:
        The model and the VecEnv (the source's statistics loaded into it).

    Raises:
        CheckpointError: if ``source`` is not a run directory or its files are damaged.
        ConfigError: if its algorithm or its observations differ from this run's
            (``check_init_from``; the observations again as the model and the VecEnv
            have them), naming the key to change, or its network does
            (``_check_same_network``).
    """
    source_cfg = check_init_from(cfg, source)
    checkpoint = "best" if (swapped_in(source / "best") / MODEL).is_file() else "final"
    model_path = resolve_model(source, checkpoint)
    loaded = load_model(source_cfg.algo, model_path, env=None, device=cfg.device)
    expected, got = loaded.observation_space.shape, venv.observation_space.shape
    if expected != got:
        raise _observation_mismatch(source, source_cfg, cfg, expected, got)
    model = make_model(cfg.algo, venv, seed=cfg.seed, device=cfg.device)
    _check_same_network(source, loaded, model)
    _copy_learned(source, loaded, model, cfg.device)
    # The observations are normalised in both runs or in neither (check_init_from).
    with_statistics = isinstance(venv, VecNormalize) and bool(source_cfg.wrappers.get("normalize"))
    if with_statistics:  # the statistics the weights learned on; this run's own settings
        trust = bool(cfg.get("trust_pickles", False))
        restore_statistics(
            venv, model_path.parent, trust, settings=False, timesteps=loaded.num_timesteps
        )
        venv.training = True
    log.info(
        "initialized from %s (%s model, %s)%s",
        source,
        checkpoint,
        model_path,
        " with its VecNormalize statistics" if with_statistics else "",
    )
    return model, venv


def _copy_learned(source: Path, loaded: BaseAlgorithm, model: BaseAlgorithm, device: str) -> None:
    """Copy into ``model`` what ``loaded`` (``init_from=source``'s model, of the same
    algorithm and network: ``check_init_from``, ``_check_same_network``) learned and
    ``model`` has too: its state dicts (weights, optimisers' states) and the learned tensors
    SB3 saves beside them (SAC's ``log_ent_coef``, with ``ent_coef=auto``). A fixed
    ``ent_coef`` (its ``ent_coef_tensor``) is a setting: this run's own. Where one run
    learns the coefficient and the other fixes it, this run starts it (and its optimiser)
    as its config says, and the log says so."""
    ours = model._get_torch_save_params()[0]
    params = {name: value for name, value in loaded.get_parameters().items() if name in ours}
    model.set_parameters(params, exact_match=False, device=device)
    theirs, own = _learned_tensors(loaded), _learned_tensors(model)
    for name in set(theirs) & set(own):
        own[name].data.copy_(theirs[name].data)
    if bool(theirs) != bool(own):
        log.info(
            "init_from=%s %s its entropy coefficient, this run %s it (algo.model.ent_coef="
            "%s): this run's starts as its config says, not from the source's",
            source,
            "learned" if theirs else "fixed",
            "learns" if own else "fixes",
            model.ent_coef,
        )


def _learned_tensors(algorithm: BaseAlgorithm) -> dict[str, torch.Tensor]:
    """The tensors SB3 saves beside an algorithm's state dicts that it learns (SAC's
    ``log_ent_coef`` with ``ent_coef=auto``), by name."""
    tensors = {
        name: recursive_getattr(algorithm, name) for name in algorithm._get_torch_save_params()[1]
    }
    return {name: tensor for name, tensor in tensors.items() if tensor.requires_grad}


def _check_same_network(source: Path, loaded: BaseAlgorithm, model: BaseAlgorithm) -> None:
    """Refuse ``init_from=source`` where its policy's tensors (``loaded``) are not those of
    this run's new ``model``: another network (``algo.net_width``, ``policy_kwargs``).

    Raises:
        ConfigError: naming the first tensor that differs, its shapes and the settings.
    """
    theirs, ours = loaded.policy.state_dict(), model.policy.state_dict()

    def shape(tensors: dict[str, torch.Tensor], key: str) -> str:
        return str(tuple(tensors[key].shape)) if key in tensors else "missing"

    differ = [key for key in {**theirs, **ours} if shape(theirs, key) != shape(ours, key)]
    if differ:
        key = differ[0]
        raise ConfigError(
            f"init_from={source} holds another network than this run's: its {key} is "
            f"{shape(theirs, key)}, this run's {shape(ours, key)} ({len(differ)} tensor(s) "
            "differ). Give this run the source's network settings (algo.net_width, "
            f"algo.model.policy_kwargs: see {source / '.hydra' / 'config.yaml'})."
        )


def check_policy_model(
    run_dir: Path, run_cfg: DictConfig, model_path: Path, observation_size: int | None
) -> int:
    """Refuse ``model_path`` as the model of ``run_dir``'s driver from what its file
    records, without loading it (``racing-rl eval`` checks this before it writes
    anything): a model of another algorithm than the run's, or one that takes other
    observations than the run's frame stack of the environment's gives.

    Args:
        run_dir: the run; run_cfg: its config.
        model_path: the ``model.zip`` (``resolve_model``).
        observation_size: numbers per raw observation of the race's environment; None
            takes the model's (a Roblox game then has to send that many).

    Returns:
        The numbers per raw observation the model reads: ``observation_size``, or the
        model's where it is None.

    Raises:
        CheckpointError: if the model file is missing or damaged, of another algorithm,
            or expects other observations.
    """
    shape = recorded_observation_shape(run_cfg.algo, model_path)
    return _check_observation_shape(run_dir, run_cfg, model_path, shape, observation_size)


def _check_observation_shape(
    run_dir: Path,
    run_cfg: DictConfig,
    model_path: Path,
    shape: tuple[int, ...],
    observation_size: int | None,
) -> int:
    """Refuse a model of observation ``shape`` (as ``model_path`` records it) that takes
    other observations than ``run_dir``'s frame stack of ``observation_size`` numbers a
    frame gives; ``check_policy_model``'s arguments, Returns and Raises."""
    stack = int(run_cfg.wrappers.frame_stack)
    if observation_size is None:
        observation_size = shape[0] // stack
    expected = (observation_size * stack,)
    if shape != expected:
        size = shape[0]
        sensors = ""
        if size % stack == 0 and size // stack > STATE_SIZE:  # the run's stack: other sensors?
            sensors = (
                f" With {stack} frames it reads {size // stack} numbers a frame: on the "
                "simulator, backend.sensors.n_rays="
                f"{size // stack - STATE_SIZE} gives them (with backend.sensors.layout="
                "roblox_car for a run trained in the game with its 16-ray car, 19 numbers)."
            )
        raise CheckpointError(
            f"{model_path} takes observations of shape {shape}, but {run_dir}'s frame stack "
            f"({stack}) of the environment's {observation_size} numbers a frame gives "
            f"{expected}: it was trained with other sensors (backend.sensors) or another "
            f"frame stack (wrappers.frame_stack).{sensors}"
        )
    return observation_size


def load_policy_driver(
    run_dir: Path, cfg: DictConfig, observation_size: int | None
) -> PolicyDriver:
    """A ``PolicyDriver`` of ``run_dir``'s checkpoint ``cfg.checkpoint`` with its run's
    frame stack and frozen VecNormalize statistics, loaded without running code from the
    run.

    Args:
        run_dir: the run.
        cfg: the eval config (``checkpoint``, ``device``, ``trust_pickles``).
        observation_size: numbers per raw observation of the race's environment; None
            takes the checkpoint's (a Roblox game then has to send that many).

    Raises:
        CheckpointError: if the run, checkpoint or statistics are missing or damaged, or
            the checkpoint expects other observations.
        ConfigError: if this machine lacks ``cfg.device``.
    """
    check_device(cfg.device)
    run_cfg = load_run_config(run_dir)
    model_path = resolve_model(run_dir, cfg.checkpoint)
    model = load_model(run_cfg.algo, model_path, env=None, device=cfg.device)
    # The shape the file records (load_model builds the space from it), read once.
    shape = model.observation_space.shape
    _check_observation_shape(run_dir, run_cfg, model_path, shape, observation_size)
    normalizer = (
        load_normalizer(
            model_path.parent,
            model.observation_space.shape,  # the checked one: the file's recorded shape
            bool(cfg.get("trust_pickles", False)),
            timesteps=model.num_timesteps,
        )
        if run_cfg.wrappers.get("normalize")
        else None
    )
    label = run_dir.resolve().name  # run_dir=. has no name
    stack = int(run_cfg.wrappers.frame_stack)
    return PolicyDriver(model, label, str(run_dir), stack, normalizer, str(model_path))

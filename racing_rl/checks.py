"""Checks of a composed ``train`` config (and ``eval``'s, ``check_eval_config``) that its
schema cannot express, run before any work starts.

The schemas (``racing_rl.config``) already refuse, while Hydra composes, a key they lack
(``backend.car.max_sped=3``) or a value of the wrong type (``backend.car.max_speed=fast``),
and the backend's dataclasses check their own ranges (``__post_init__``, run by
``racing_rl.config.backend_config``). These checks cover the rest: ranges of the top-level
keys, rules across keys (disjoint track ranges, a rollout that holds a batch, the game's
environments), and the ``algo`` and ``wrappers.normalize`` arguments, checked against the
signatures of the classes they configure (``+algo.model.foo=1``). Every failure is a
``ConfigError`` whose message names the key, the value and what is allowed. Everything
that allocates memory or environments has an upper bound (``LIMITS``), so a typo such as
``n_races=100000`` fails at once instead of filling the memory.
"""

from __future__ import annotations

import functools
import inspect
import re
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium
import hydra
import numpy as np
import torch
from gymnasium import spaces
from omegaconf import DictConfig, OmegaConf
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

from racing_rl import config_dir
from racing_rl.algos import SET_BY_RACING_RL, algorithm_class, constructor_parameters
from racing_rl.config import backend_config, to_container, track_seeds, train_mix
from racing_rl.contract import action_space
from racing_rl.envs.batch import check_spawn
from racing_rl.envs.config import RaceConfig
from racing_rl.errors import ConfigError, is_integer, is_number, one_line
from racing_rl.objective import OBJECTIVES

SPLITS = ("train", "validation", "test")
_DEVICE = re.compile(r"^(cpu|auto|mps|cuda(:\d+)?)$")
_HYDRA_KEYS = {"_target_", "_convert_", "_recursive_", "_partial_", "_args_"}
_AUTO_ENT_COEF = re.compile(r"^auto(_\d+(\.\d*)?([eE][-+]?\d+)?)?$")

#: Upper bounds of the settings that allocate (environments, buffers, networks, frames).
LIMITS = {
    "n_races": 1024,
    "cars_per_race": 256,
    "cars": 8192,  # n_races × (cars_per_race + scripted_opponents): cars simulated
    "frame_stack": 64,
    "observation_dim": 65_536,  # numbers per stacked observation
    "net_width": 16_384,  # units per hidden layer
    "n_steps": 100_000,
    "rollout": 4_194_304,  # n_steps × cars: the on-policy rollout buffer's transitions
    "buffer_size": 10_000_000,  # replay buffer transitions
    "tracks": 10_000,  # validation and test tracks, one environment each
    "max_steps": 100_000,  # validation.max_steps
    "video_size": 1024,  # [px]
    "video_bytes": 2**31,  # frames held while a video is encoded
    "seed": 2**32 - 1,  # NumPy's seeding range
    "torch_threads": 1024,
}


def invalid(key: str, value: Any, allowed: str) -> ConfigError:
    """The error for ``key=value``: says what is allowed."""
    return ConfigError(f"Invalid config: {key}={value!r}; {allowed}.")


def _integer(
    cfg: DictConfig, key: str, minimum: int, where: str = "", maximum: int | None = None
) -> int:
    value = OmegaConf.select(cfg, key)
    if not is_integer(value) or value < minimum:
        raise invalid(f"{where}{key}", value, f"must be an integer >= {minimum}")
    if maximum is not None and value > maximum:
        raise invalid(
            f"{where}{key}", value, f"must be <= {maximum:_} (racing-rl's limit on what allocates)"
        )
    return value


def check_torch_threads(cfg: DictConfig) -> int:
    """``cfg.torch_threads``: torch's intra-op threads, an integer in [1,
    ``LIMITS["torch_threads"]``]; returned.

    Raises:
        ConfigError: naming the key and value otherwise.
    """
    return _integer(cfg, "torch_threads", minimum=1, maximum=LIMITS["torch_threads"])


def check_device(device: Any) -> None:
    """``device`` names a torch device that this machine has.

    Raises:
        ConfigError: for an unknown name, or a CUDA or MPS device the machine lacks.
    """
    if not isinstance(device, str) or not _DEVICE.match(device):
        raise invalid("device", device, "must be cpu, cuda, cuda:<index>, mps or auto")
    if device.startswith("cuda"):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(device.partition(":")[2] or 0)
        if index >= count:
            have = f"cuda:0 … cuda:{count - 1}" if count else "none (no CUDA available)"
            raise invalid(
                "device", device, f"this machine's CUDA devices: {have}; use device=cpu or auto"
            )
    if device == "mps" and not torch.backends.mps.is_available():
        raise invalid("device", device, "this machine has no MPS device; use device=cpu or auto")


def _number(
    values: Mapping[str, Any], key: str, where: str, low: float, high: float, *, open_low: bool
) -> None:
    if key not in values:
        return
    value = values[key]
    ok = is_number(value)
    ok = ok and (value > low if open_low else value >= low) and value <= high
    if not ok:
        bracket = "(" if open_low else "["
        raise invalid(f"{where}.{key}", value, f"must be a number in {bracket}{low}, {high}]")


def check_track_splits(tracks: DictConfig) -> None:
    """The training, validation and test seed ranges must be valid and disjoint.

    Raises:
        ConfigError: naming the offending ranges.
    """
    ranges = {}
    for split in SPLITS:
        value = tracks.get(split)
        seeds = track_seeds(value, f"tracks.{split}")
        ranges[split] = (seeds.start, seeds.stop)
        if split != "train" and ranges[split][1] - ranges[split][0] > LIMITS["tracks"]:
            raise invalid(
                f"tracks.{split}",
                to_container(value),
                f"at most {LIMITS['tracks']:_} tracks (one environment each)",
            )
    for i, a in enumerate(SPLITS):
        for b in SPLITS[i + 1 :]:
            (a0, a1), (b0, b1) = ranges[a], ranges[b]
            if a0 < b1 and b0 < a1:
                raise ConfigError(
                    f"Invalid config: tracks.{a}={list(ranges[a])} and tracks.{b}="
                    f"{list(ranges[b])} overlap; training, validation and test tracks must be "
                    "disjoint."
                )


def check_wrappers(wrappers: DictConfig) -> None:
    """``wrappers``: frame_stack in [1, LIMITS["frame_stack"]] (if given), normalize
    VecNormalize's keyword arguments (its keys and types are the schema's). Checked by
    ``racing_rl.vec.wrap_vec_env`` too, for a stack built without the CLI.

    Raises:
        ConfigError: a frame_stack out of range, or a normalize key VecNormalize lacks.
    """
    if "frame_stack" in wrappers:
        limit = LIMITS["frame_stack"]
        _integer(wrappers, "frame_stack", minimum=1, where="wrappers.", maximum=limit)
    normalize = wrappers.get("normalize")
    if not normalize:
        return
    allowed = set(inspect.signature(VecNormalize.__init__).parameters) - {"self", "venv", "gamma"}
    for key in normalize:
        if key not in allowed:
            raise invalid(
                f"wrappers.normalize.{key}",
                normalize[key],
                f"not an argument of VecNormalize (allowed: {', '.join(sorted(allowed))}; "
                "gamma comes from the algorithm)",
            )
    values = to_container(normalize)
    inf = float("inf")
    for key in ("clip_obs", "clip_reward"):  # inf: no clipping
        _number(values, key, "wrappers.normalize", 0.0, inf, open_low=True)
    epsilon = values.get("epsilon", 1.0)
    if not (is_number(epsilon) and 0 < epsilon < inf):
        raise invalid(
            "wrappers.normalize.epsilon",
            epsilon,
            "must be a finite number > 0 (it is added to the variance: inf would normalise "
            "every observation to 0)",
        )
    for key in ("norm_obs", "norm_reward", "training"):
        if key in values and not isinstance(values[key], bool):
            raise invalid(f"wrappers.normalize.{key}", values[key], "must be true or false")


def check_algo(algo: DictConfig, num_envs: int, observation_dim: int | None = None) -> None:
    """``algo``: an importable SB3 class, constructor arguments it accepts, nested objects
    that can be made (schedules, action noise), sane values, whatever the class checks
    itself (a static ``check_arguments(keyword arguments)``, as ``TeacherPPO`` has), and
    the model made on stand-in environments (``check_model``).

    Args:
        algo: the ``algo`` config group.
        num_envs: VecEnv slots (n_races × cars_per_race), to check PPO's batch size
            against the rollout.
        observation_dim: numbers per stacked observation (None: a game's, unknown yet).

    Raises:
        ConfigError: naming the first key whose value the class does not accept, that is
            out of range, or that cannot be made.
    """
    cls = algorithm_class(algo)
    model = to_container(algo.model)
    parameters = constructor_parameters(cls)
    accepted = set(parameters) - {"env"}
    for key, value in model.items():
        if key in _HYDRA_KEYS:
            continue
        if key in SET_BY_RACING_RL:
            raise invalid(
                f"algo.model.{key}",
                value,
                f"racing-rl sets {key} itself (use the root keys seed and device)",
            )
        if key not in accepted:
            raise invalid(
                f"algo.model.{key}",
                value,
                f"not an argument of {cls.__name__} "
                f"(allowed: {', '.join(sorted(accepted - SET_BY_RACING_RL))})",
            )
    try:  # nested objects (schedules, action noise) are made, the algorithm is not
        arguments = hydra.utils.instantiate(algo.model, _partial_=True, _convert_="all")
    except Exception as err:  # Hydra's message spans lines and points at its own stack
        raise ConfigError(f"algo.model cannot be instantiated: {one_line(err)}") from err
    check_arguments = getattr(cls, "check_arguments", None)  # racing_rl.teacher.TeacherPPO
    if check_arguments is not None:
        check_arguments(arguments.keywords)
    policy = model.get("policy")
    if isinstance(policy, str) and "." not in policy and policy not in cls.policy_aliases:
        raise invalid(
            "algo.model.policy",
            policy,
            f"{cls.__name__} policies are {', '.join(cls.policy_aliases)}",
        )
    policy_kwargs = model.get("policy_kwargs") or {}
    if isinstance(policy, str) and policy in cls.policy_aliases:
        check_policy_kwargs(cls.policy_aliases[policy], policy_kwargs)
    where = "algo.model"
    inf = float("inf")
    _number(model, "gamma", where, 0.0, 1.0, open_low=True)
    _number(model, "gae_lambda", where, 0.0, 1.0, open_low=False)
    _number(model, "tau", where, 0.0, 1.0, open_low=True)
    learning_rate = arguments.keywords.get("learning_rate")
    if callable(learning_rate):  # a schedule of progress remaining, 1 at the start to 0
        first, last = float(learning_rate(1.0)), float(learning_rate(0.0))
        if not (first > 0 and last >= 0):
            raise invalid(
                "algo.model.learning_rate",
                f"a schedule from {first:g} to {last:g}",
                "must start > 0 and end >= 0",
            )
    elif learning_rate is not None:  # as made (a config may build the number too)
        _number({"learning_rate": learning_rate}, "learning_rate", where, 0.0, inf, open_low=True)
    if not isinstance(model.get("clip_range"), dict):  # a schedule is checked by its class
        _number(model, "clip_range", where, 0.0, 1.0, open_low=True)
    if model.get("clip_range_vf") is not None:
        _number(model, "clip_range_vf", where, 0.0, inf, open_low=True)
    _number(model, "vf_coef", where, 0.0, inf, open_low=False)
    _number(model, "max_grad_norm", where, 0.0, inf, open_low=True)
    if model.get("target_kl") is not None:
        _number(model, "target_kl", where, 0.0, inf, open_low=True)
    check_ent_coef(model, parameters)
    limits = {"n_steps": LIMITS["n_steps"], "buffer_size": LIMITS["buffer_size"]}
    for key in ("batch_size", "n_epochs", "n_steps", "buffer_size"):
        if key in model:
            _integer(algo.model, key, minimum=1, where="algo.model.", maximum=limits.get(key))
    if "net_width" in algo:
        _integer(algo, "net_width", minimum=1, where="algo.", maximum=LIMITS["net_width"])
    check_net_arch(policy_kwargs.get("net_arch"))
    if "learning_starts" in model:
        _integer(algo.model, "learning_starts", minimum=0, where="algo.model.")
    if "policy_delay" in model:  # TD3, CrossQ: updates per actor update
        _integer(algo.model, "policy_delay", minimum=1, where="algo.model.")
    check_train_freq(model.get("train_freq"))
    if "top_quantiles_to_drop_per_net" in model:  # TQC
        quantiles = policy_kwargs.get("n_quantiles", 25)
        drop = _integer(algo.model, "top_quantiles_to_drop_per_net", 0, "algo.model.")
        if drop >= quantiles:
            raise invalid(
                "algo.model.top_quantiles_to_drop_per_net",
                drop,
                f"must be < the critics' n_quantiles = {quantiles} (none would be left)",
            )
    if issubclass(cls, OnPolicyAlgorithm):
        n_steps = model.get("n_steps", parameters["n_steps"].default)
        batch = model.get("batch_size", parameters["batch_size"].default)
        rollout = n_steps * num_envs
        if rollout > LIMITS["rollout"]:
            raise invalid(
                "algo.model.n_steps",
                n_steps,
                f"the rollout n_steps × cars = {n_steps} × {num_envs} = {rollout:_} must be "
                f"<= {LIMITS['rollout']:_} transitions",
            )
        if rollout < 2:
            raise invalid(
                "algo.model.n_steps",
                n_steps,
                f"the rollout n_steps × {num_envs} cars must hold at least 2 steps",
            )
        if batch < 2:  # PPO normalises advantages over a minibatch
            raise invalid("algo.model.batch_size", batch, "must be >= 2 for an on-policy algorithm")
        if batch > rollout:
            raise invalid(
                "algo.model.batch_size",
                batch,
                f"must be <= the rollout, n_steps × cars = {n_steps} × {num_envs} = {rollout}",
            )
    if issubclass(cls, OffPolicyAlgorithm):
        buffer = model.get("buffer_size", parameters["buffer_size"].default)
        batch = model.get("batch_size", parameters["batch_size"].default)
        if batch > buffer:
            raise invalid(
                "algo.model.batch_size", batch, f"must be <= algo.model.buffer_size = {buffer}"
            )
        timeouts = (model.get("replay_buffer_kwargs") or {}).get("handle_timeout_termination")
        if model.get("optimize_memory_usage") and timeouts in (None, True):
            raise invalid(  # SB3's ReplayBuffer raised it after the run dir was made
                "algo.model.optimize_memory_usage",
                model["optimize_memory_usage"],
                "SB3's ReplayBuffer cannot also tell a time limit from a crash "
                "(handle_timeout_termination, on by default): pass "
                "+algo.model.replay_buffer_kwargs.handle_timeout_termination=false (a "
                "truncated episode, as at backend.episode.max_steps, then counts as ended), "
                "or drop optimize_memory_usage",
            )
    check_model(algo, arguments, num_envs, observation_dim)  # what the class checks, last


class _Spaces(gymnasium.Env):
    """A stand-in environment of racing-rl's spaces, which never steps (``check_model``):
    observations of ``observation_dim`` numbers, unbounded (as VecNormalize gives them),
    and the contract's actions."""

    def __init__(self, observation_dim: int) -> None:
        self.observation_space = spaces.Box(-np.inf, np.inf, (observation_dim,), np.float32)
        self.action_space = action_space()


def check_model(
    algo: DictConfig, arguments: functools.partial, num_envs: int, observation_dim: int | None
) -> None:
    """The algorithm can be made for racing-rl's environments, as training makes it, on a
    stand-in VecEnv of their spaces (``_Spaces``), where the class takes
    ``_init_setup_model``: its constructor checks the number of environments and the
    action space (SB3's DQN takes discrete actions only), and its ``_setup_model`` builds
    the policy (``policy_kwargs``' values: ``activation_fn=relu``, a string, is no class)
    and the buffers. Both were refused only once the run's directory was made. No seed is
    set, torch's random state is kept and nothing trains: it costs the model's making
    (0.1-0.3 s at the shipped sizes, once torch has started).

    Args:
        algo: the ``algo`` config group (its class, for the message).
        arguments: ``algo.model`` instantiated as a partial (its nested objects made).
        num_envs: VecEnv slots (n_races × cars_per_race).
        observation_dim: numbers per stacked observation; None where a Roblox game sends
            its own size: the constructor's checks alone are run.

    Raises:
        ConfigError: naming the class, its reason and the algorithms of conf/algo/ (for
            the environments), or the policy's error.
    """
    if "_init_setup_model" not in constructor_parameters(algorithm_class(algo)):
        return
    stand_in = DummyVecEnv([functools.partial(_Spaces, observation_dim or 1)] * num_envs)
    with warnings.catch_warnings():  # the model warns itself when training makes it
        warnings.simplefilter("ignore")
        try:
            model = arguments(env=stand_in, device="cpu", verbose=0, _init_setup_model=False)
        except Exception as err:  # SB3 asserts the action space and the number of envs
            names = sorted(path.stem for path in (config_dir() / "algo").glob("*.yaml"))
            raise ConfigError(
                f"Invalid config: algo.model._target_={algo.model._target_} cannot train "
                f"racing-rl's {num_envs} cars of continuous actions (throttle, steering, nitro "
                f"in [-1, 1]): {one_line(err)}. Choose algo= one of {', '.join(names)} "
                "(conf/algo/), or an SB3 algorithm of Box actions."
            ) from err
        if observation_dim is None:
            return
        try:
            with torch.random.fork_rng(devices=[]):  # the run's seeding is not touched
                model._setup_model()
        except Exception as err:
            raise ConfigError(
                f"Invalid config: algo.model cannot be made for observations of "
                f"{observation_dim} numbers and {num_envs} cars: {one_line(err)}. Check "
                "algo.model's policy and policy_kwargs (racing-rl train --cfg job -p algo "
                "prints them)."
            ) from err


def check_policy_kwargs(policy: type, policy_kwargs: Mapping[str, Any]) -> None:
    """``algo.model.policy_kwargs``: keys that ``policy``'s constructor accepts.

    Raises:
        ConfigError: naming the first key it does not take, and those it does.
    """
    parameters = inspect.signature(policy.__init__).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    given = {"self", "observation_space", "action_space", "lr_schedule"}
    accepted = sorted(set(parameters) - given)
    for key, value in policy_kwargs.items():
        if key not in parameters or key in given:
            raise invalid(
                f"algo.model.policy_kwargs.{key}",
                value,
                f"not an argument of {policy.__name__} (allowed: {', '.join(accepted)})",
            )


def check_train_freq(train_freq: Any) -> None:
    """``algo.model.train_freq`` (off-policy): n >= 1, or ``[n, step|episode]``.

    Raises:
        ConfigError: any other value.
    """
    if train_freq is None:
        return
    n, unit = train_freq if isinstance(train_freq, list | tuple) else (train_freq, "step")
    if not is_integer(n) or n < 1 or unit not in ("step", "episode"):
        raise invalid(
            "algo.model.train_freq",
            train_freq,
            "must be an integer >= 1 (steps), or [n, step] / [n, episode]",
        )


def check_ent_coef(model: Mapping[str, Any], parameters: Mapping[str, Any]) -> None:
    """``algo.model.ent_coef``: a number >= 0, or (SAC, TQC: where the default is
    ``"auto"``) ``auto``, ``auto_<initial value>`` or a number > 0.

    Raises:
        ConfigError: any other value.
    """
    if "ent_coef" not in model or "ent_coef" not in parameters:
        return
    value = model["ent_coef"]
    if isinstance(parameters["ent_coef"].default, str):  # learned: SAC, TQC
        if isinstance(value, str) and _AUTO_ENT_COEF.match(value):
            return
        number = is_number(value) and value > 0
        if not number:
            raise invalid(
                "algo.model.ent_coef", value, "must be auto, auto_<initial value> or a number > 0"
            )
        return
    _number(model, "ent_coef", "algo.model", 0.0, float("inf"), open_low=False)


def check_net_arch(net_arch: Any) -> None:
    """``algo.model.policy_kwargs.net_arch``: layer sizes in [1, LIMITS["net_width"]], as
    a list or a dict of lists (``pi``, ``vf``, ``qf``).

    Raises:
        ConfigError: another shape, or a size out of range.
    """
    if net_arch is None:
        return
    layers = net_arch if isinstance(net_arch, list) else None
    if isinstance(net_arch, dict):
        layers = [n for value in net_arch.values() for n in (value or [])]
    limit = LIMITS["net_width"]
    ok = layers is not None and all(is_integer(n) and 1 <= n <= limit for n in layers)
    if not ok:
        raise invalid(
            "algo.model.policy_kwargs.net_arch",
            net_arch,
            f"must list layer sizes in [1, {limit:_}] (a list, or a dict of lists)",
        )


def check_train_config(cfg: DictConfig, *, device: bool = True, new_run: bool = True) -> None:
    """Check a composed ``train`` config; raise before anything is built.

    Args:
        cfg: the config.
        device: also check that this machine has ``cfg.device`` (off for a run's config
            read to evaluate it elsewhere).
        new_run: also refuse what a run could be saved with but should not start with
            (``backend.episode.rotate_grid`` without a grid spawn, which does nothing);
            off for a saved run's config (loaded, or resumed).

    Raises:
        ConfigError: on the first invalid value, naming the key, the value and what is
            allowed (upper bounds included, ``LIMITS``).
    """
    _integer(cfg, "seed", minimum=0, maximum=LIMITS["seed"])
    _integer(cfg, "total_timesteps", minimum=1)
    n_races = _integer(cfg, "n_races", minimum=1, maximum=LIMITS["n_races"])
    agents = _integer(cfg, "cars_per_race", minimum=1, maximum=LIMITS["cars_per_race"])
    opponents = 0
    if OmegaConf.select(cfg, "scripted_opponents") is not None:  # runs saved before it lack it
        opponents = _integer(
            cfg, "scripted_opponents", minimum=0, maximum=LIMITS["cars_per_race"] - agents
        )
    if n_races * (agents + opponents) > LIMITS["cars"]:
        raise invalid(
            "n_races",
            n_races,
            f"n_races × (cars_per_race + scripted_opponents) = {n_races} × {agents + opponents}"
            f" = {n_races * (agents + opponents):_} cars; must be <= {LIMITS['cars']:_}",
        )
    check_torch_threads(cfg)
    _integer(cfg, "log_interval", minimum=1)
    _integer(cfg, "checkpoint.every", minimum=0)
    if OmegaConf.select(cfg, "checkpoint.keep") is not None:
        _integer(cfg, "checkpoint.keep", minimum=0)
    _integer(cfg, "validation.every", minimum=0)
    _integer(cfg, "validation.max_steps", minimum=1, maximum=LIMITS["max_steps"])
    if OmegaConf.select(cfg, "validation.video") is not None:
        check_video(cfg.validation.video)
    if device:
        check_device(cfg.device)
    if cfg.objective not in OBJECTIVES:
        raise invalid("objective", cfg.objective, f"must be one of {', '.join(OBJECTIVES)}")
    check_track_splits(cfg.tracks)
    check_wrappers(cfg.wrappers)
    backend = backend_config(cfg.backend)
    mix = train_mix(cfg, say=False)  # after the run's own backend, whose errors it would repeat
    if not isinstance(backend, RaceConfig) and opponents:
        raise invalid(
            "scripted_opponents",
            opponents,
            "scripted opponents race on the built-in simulator only (backend=pygame); "
            "in a Roblox game, put the game's own NPC cars on track",
        )
    episode = backend.episode
    simulated = isinstance(backend, RaceConfig)  # a game spawns its cars itself
    if simulated:  # the environments' own check, before the run directory is made
        try:
            check_spawn(backend, agents + opponents, mix)
        except ConfigError as err:
            raise ConfigError(f"Invalid config: backend.{err}") from err
    if new_run and simulated and episode.rotate_grid and episode.spawn != "grid":
        raise ConfigError(
            "Invalid config: backend.episode.rotate_grid=true; it rotates the slots of a grid "
            "start by the track's seed (spawn='grid', as eval's races), and "
            f"spawn={episode.spawn!r} has none to rotate (a random spawn's grid starts, "
            "grid_start_prob, draw their slots at random): leave it out."
        )
    # None: a Roblox game's size, read from its first frame (bounded by the bridge's 1 MiB
    # frame and OBSERVATION_SIZE_LIMIT for a hello, not by this limit).
    observation_dim = None
    if backend.observation_size is not None:
        observation_dim = backend.observation_size * cfg.wrappers.frame_stack
        if observation_dim > LIMITS["observation_dim"]:
            raise invalid(
                "wrappers.frame_stack",
                cfg.wrappers.frame_stack,
                f"observations of {observation_dim:_} numbers (the backend's observation size "
                f"× frame_stack) must be <= {LIMITS['observation_dim']:_}",
            )
    limit = getattr(backend, "max_environments", None)  # a Roblox game's collision groups
    needed = n_races + (1 if cfg.validation.every > 0 else 0)
    if limit is not None and needed > limit:
        raise ConfigError(
            f"Invalid config: n_races={n_races} training environments"
            f"{' + 1 for validation' if needed > n_races else ''} = {needed} in the game, "
            f"which keeps at most backend.max_environments={limit} apart (a collision group "
            f"each). Lower n_races to {limit - (needed - n_races)} or less (more "
            "cars_per_race keeps the cars)"
            + (", or turn validation off (validation.every=0)." if needed > n_races else ".")
        )
    check_algo(cfg.algo, n_races * agents, observation_dim)


def check_eval_config(cfg: DictConfig, drivers: Sequence[str]) -> None:
    """Check the settings of a composed ``eval`` config that need no run: the driver,
    ``laps``, ``seeds``, ``max_steps``, ``rounds``, ``torch_threads`` and a window's
    ``render``, ``size`` and ``fps`` (``racing_rl.evaluation.command.check_runs`` then
    checks the runs and what they allow).

    Args:
        cfg: the config (conf/eval.yaml).
        drivers: the drivers ``cfg.driver`` may name.

    Raises:
        ConfigError: on the first invalid value, naming the key, the value and what is
            allowed (at most ``LIMITS["tracks"]`` seeds, each >= 0: eval races them all
            at once).
    """
    if cfg.driver not in drivers:
        raise invalid("driver", cfg.driver, f"must be one of {', '.join(drivers)}")
    if cfg.laps < 1:
        raise invalid("laps", cfg.laps, "must be >= 1 (laps per race)")
    seeds = cfg.get("seeds")
    if seeds is not None and len(seeds) == 0:  # it fell back to the split
        raise ConfigError(
            "Invalid config: seeds=[] names no track; give some (seeds=[5,6,7]), or leave "
            f"seeds out for the run's split={cfg.split} tracks."
        )
    if seeds:
        try:
            check_track_seeds(seeds)
        except ConfigError as err:
            raise ConfigError(f"Invalid config: {err}") from err
    if cfg.get("max_steps") is not None and cfg.max_steps < 1:
        allowed = "must be >= 1, or null for the run's validation.max_steps per lap"
        raise invalid("max_steps", cfg.max_steps, allowed)
    if cfg.get("rounds") is not None and cfg.rounds < 0:
        raise invalid("rounds", cfg.rounds, "must be >= 1, or 0 for until Ctrl-C")
    check_torch_threads(cfg)
    if cfg.get("render") is not None:
        from racing_rl.ui.render import window_size

        if cfg.render != "human":
            raise invalid("render", cfg.render, "must be human or null")
        window_size(cfg.size, cfg.fps)


def check_track_seeds(seeds: Sequence[int], name: str = "seeds") -> None:
    """Check the track seeds an eval races on (eval's ``seeds``, a script's ``--seeds``).

    Args:
        seeds: the seeds, at least one.
        name: how the messages name them (``seeds``, ``--seeds``).

    Raises:
        ConfigError: on a negative seed, or more than ``LIMITS["tracks"]`` seeds (eval
            races them all at once).
    """
    if (negative := next((seed for seed in seeds if seed < 0), None)) is not None:
        raise ConfigError(f"{name} holds {negative}; a track seed is an integer >= 0.")
    if len(seeds) > LIMITS["tracks"]:
        raise ConfigError(
            f"{name} has {len(seeds):,} tracks; eval races them all at once, one environment "
            f"each, at most {LIMITS['tracks']:,}."
        )


def check_video(video: DictConfig) -> None:
    """``validation.video``: a period, a frame count and a size whose frames fit in memory.

    Raises:
        ConfigError: a negative period, a size out of range, or frames over
            ``LIMITS["video_bytes"]``.
    """
    _integer(video, "every", minimum=0, where="validation.video.")
    frames = _integer(video, "max_steps", minimum=1, where="validation.video.")
    size = _integer(
        video, "size", minimum=16, where="validation.video.", maximum=LIMITS["video_size"]
    )
    if frames * size * size * 3 > LIMITS["video_bytes"]:
        raise invalid(
            "validation.video.max_steps",
            frames,
            f"{frames} frames of {size}×{size} px take {frames * size * size * 3 / 2**30:.1f} "
            f"GiB; frames × size² × 3 must be <= {LIMITS['video_bytes'] / 2**30:.0f} GiB",
        )

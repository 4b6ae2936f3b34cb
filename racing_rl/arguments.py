"""What each ``racing-rl`` command is (``COMMANDS``) and the first-use checks of its
command line (``check_arguments``), run before Hydra writes anything.

The checks catch the mistakes Hydra reports late, with a stack, or not at all: two mode
flags, ``--key value`` (the argparse habit), an argument that is no override, a misspelt
key or config group option (with a did-you-mean), a ``+key=`` for a key that is there
already, a value of the wrong type, a sweeper or launcher without ``-m`` or without its
plugin, a required key left out, a path that does not exist or is not a run directory, a
``resume=`` that would change the run, a setting that another turns off
(``validation.every=0 validation.video.every=2``), and a sweep's argument of
``algo.model`` that one job's algorithm does not take. Each is a ``UsageError`` whose one
line says what to pass instead (``racing_rl.cli`` prints it and exits 2). Only Hydra's
override parser and the command's YAML are read (and, for a ``+key=``, the config
composed as Hydra will compose it: is the key there already?): nothing heavy is imported,
so the dispatcher stays fast, but for a sweep's ``+``/``++`` below ``algo.model``, whose
algorithm classes are imported to read their arguments.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import importlib.util
import itertools
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from racing_rl import config_dir

if TYPE_CHECKING:  # imported where used: the dispatcher starts fast
    from hydra.core.override_parser.types import Override
    from omegaconf import DictConfig

    from racing_rl.checkpoints.layout import Checkpoint
    from racing_rl.usage import ConfigDoc


@dataclass(frozen=True)
class Command:
    """One command of the dispatcher.

    Attributes:
        module: the module whose ``main`` runs it (a Hydra app, except ``report``).
        summary: what it does, in one line.
        examples: command lines, each optionally followed by ``  # what it does``.
        paths: keys that name something that must exist, and what: ``run`` (a run
            directory of ``racing-rl train``) or ``file``.
    """

    module: str
    summary: str
    examples: tuple[str, ...]
    paths: dict[str, str] = field(default_factory=dict)


COMMANDS = {
    "train": Command(
        "racing_rl.train",
        "train a policy (PPO, SAC, TD3, TQC, CrossQ, RecurrentPPO) on a backend",
        (
            "racing-rl train                                 # PPO on the built-in simulator",
            "racing-rl train algo=sac seed=1 total_timesteps=500000",
            "racing-rl train -m algo=ppo,sac seed=0,1,2      # a sweep of 6 runs",
            "racing-rl train algo=sac backend=roblox         # a Roblox game over the bridge",
        ),
        {"resume": "run"},
    ),
    "eval": Command(
        "racing_rl.evaluate",
        "measure a saved checkpoint on held-out tracks, watch it, or race several",
        (
            "racing-rl eval run_dir=outputs/<date>/<time>_ppo_pygame checkpoint=best",
            "racing-rl eval run_dir=<run dir> render=human follow=true   # watch it train",
            "racing-rl eval run_dir=[<run a>,<run b>,scripted] laps=3   # a race",
        ),
        {"run_dir": "run"},
    ),
    "replay": Command(
        "racing_rl.replay_app",
        "play a recorded race in a window, or export it to a video",
        (
            "racing-rl replay path=<run dir>/eval/replays/track_2000000.npz",
            "racing-rl replay path=<replay .npz> video=race.mp4 camera=chase   # or .gif",
        ),
        {"path": "file"},
    ),
    "play": Command(
        "racing_rl.play",
        "drive a car yourself with the arrow keys (space: nitro)",
        (
            "racing-rl play seed=2000003",
            "racing-rl play seed=2000003 opponent=<run dir> laps=3   # against a checkpoint",
        ),
        {"opponent": "run"},
    ),
    "export": Command(
        "racing_rl.export.app",
        "write a trained driver as one file: a Roblox ModuleScript or an ONNX model",
        (
            "racing-rl export run_dir=<run dir> format=luau   # <run dir>/export/policy_best.luau",
            "racing-rl export run_dir=<run dir> format=onnx out=driver.onnx",
        ),
        {"run_dir": "run"},
    ),
    "emulate": Command(
        "racing_rl.emulate",
        "stand in for the Roblox game: race the simulator over the bridge",
        (
            "racing-rl train backend=roblox &  racing-rl emulate   # the game's own port and path",
            "racing-rl emulate lockstep=true   # as fast as can be, not on the game's clock",
        ),
    ),
    "report": Command(
        "racing_rl.report",
        "tabulate a sweep's jobs and plot their learning curves (not a Hydra app)",
        ("racing-rl report outputs/multirun/<date>/<time>",),
    ),
}


#: Sweepers and launchers that come from a Hydra plugin: (group, option) -> (the
#: plugin's module, the racing-rl extra that installs it).
PLUGINS = {
    **{
        ("hydra/sweeper", option): ("hydra_plugins.hydra_optuna_sweeper", "sweeps")
        for option in ("optuna", "ppo_search", "sac_search")
    },
    **{
        ("hydra/launcher", option): ("hydra_plugins.hydra_joblib_launcher", "sweeps")
        for option in ("joblib", "parallel")
    },
    **{
        ("hydra/launcher", option): ("hydra_plugins.hydra_submitit_launcher", "slurm")
        for option in ("submitit_local", "submitit_slurm", "slurm")
    },
    **{
        ("hydra/launcher", option): ("hydra_plugins.hydra_ray_launcher", "ray")
        for option in ("ray", "ray_cluster")
    },
}


class UsageError(Exception):
    """A command line that cannot run: the message says what to pass instead."""


#: Hydra's mode flags (its ``--run``, ``--multirun``, ``--cfg``, ``--info`` and
#: ``--shell-completion``, short or long), of which a command line may give one.
MODE_FLAGS = {
    **dict.fromkeys(("-r", "--run"), "run"),
    **dict.fromkeys(("-m", "--multirun"), "multirun"),
    **dict.fromkeys(("-c", "--cfg"), "cfg"),
    **dict.fromkeys(("-i", "--info"), "info"),
    **dict.fromkeys(("-sc", "--shell-completion"), "shell-completion"),
}

#: Hydra's flag that adds a config dir to the search path, behind the command's conf/.
CONFIG_DIR_FLAGS = ("-cd", "--config-dir")
#: Hydra's flags that print the config (``--cfg job``, ``-p <package>``), with a value.
PRINT_FLAGS = ("-c", "--cfg", "-p", "--package")
#: Hydra's flags that name another primary config (its name, its directory).
NAMING_FLAGS = ("-cn", "--config-name", "-cp", "--config-path")

#: The commands whose Hydra settings (their output directories) read the command's own
#: config: Hydra resolves ``--cfg hydra --resolve`` without it, an InterpolationKeyError.
HYDRA_READS_CONFIG = {"train", "eval"}


def check_arguments(name: str, args: list[str]) -> None:
    """Refuse a command line that cannot run, before Hydra writes anything.

    Args:
        name: a Hydra command of ``COMMANDS``.
        args: its command line after the command name.

    Raises:
        UsageError: two of Hydra's mode flags (``MODE_FLAGS``) are given, an argument is
            not an override (``KEY=VALUE``, ``~KEY``) or a flag, a sweeper or launcher is
            chosen without ``-m``, ``resume=`` with ``-m``, a required key (``???``
            in its YAML) is missing, a path of ``Command.paths`` (each of a swept list,
            ``-m run_dir=a,b``) does not exist (or is not a run directory), or a sweeper
            or launcher's plugin is not installed, or ``algo.frame_stack`` is given where
            nothing reads it (``wrappers=none``; ``_check_frame_stack``), or a setting
            whose feature another turns off in every job (``checkpoint.every=0
            checkpoint.keep=2``; ``UNREAD``), or a ``+`` adds a key that the config has
            already (``+seed=3``; ``_check_appends``), or a sweep sets an argument of
            ``algo.model`` that the algorithm of one of its jobs does not take
            (``-m algo=ppo,sac ++algo.model.n_epochs=3``; ``_check_model_arguments``).
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import ChoiceSweep, Glob
    from hydra.errors import OverrideParseException

    from racing_rl.config import integer_keys
    from racing_rl.usage import read_config_doc

    if name == "train":  # checked as Hydra will compose it (run adds the same)
        args = with_resumed_backend(args)
    modes = [a for a in args if a.split("=", 1)[0] in MODE_FLAGS]  # --cfg job, --cfg=job
    if len({MODE_FLAGS[a.split("=", 1)[0]] for a in modes}) > 1:  # Hydra: a ValueError stack
        raise UsageError(
            f"{' and '.join(modes)} cannot be given together: one of --multirun, --cfg, "
            "--info, --run, --shell-completion at a time"
        )
    _check_dashed_keys(name, args)
    package = flag_value(args, ("-p", "--package")) or "hydra"
    reads_config = package == "hydra" or any(  # hydra.runtime does not
        package == part or package.startswith(f"{part}.")
        for part in ("hydra.run", "hydra.output_subdir")
    )
    if (
        name in HYDRA_READS_CONFIG
        and "--resolve" in args
        and flag_value(args, ("-c", "--cfg")) == "hydra"
        and reads_config
    ):
        raise UsageError(
            "--cfg hydra --resolve cannot resolve Hydra's settings alone: their directories "
            f"read the {name} config's keys; --cfg all --resolve prints both, resolved"
        )
    if name == "train" and any(a.split("=", 1)[0] == "--experimental-rerun" for a in args):
        raise UsageError(  # Hydra: trains again from scratch, over the run's files
            "--experimental-rerun trains the run again from its start, in its own directory, "
            "over its checkpoints and model; resume='<run dir>' continues a run, and a new "
            "run of the same config is the same command again"
        )
    # -cd adds a config dir behind conf/ (Hydra's search path): conf/'s files still decide
    # the keys, and the groups may have more options, as with hydra.searchpath=.
    more_dir = flag_value(args, CONFIG_DIR_FLAGS)
    more_options = more_dir is not None
    args = _without_flag(args, CONFIG_DIR_FLAGS)
    # --cfg, -p and --resolve print the config these overrides make: check them as a run's
    # (but for the keys it needs: a printed config may leave them ???).
    printing = flag_value(args, ("-c", "--cfg")) is not None
    args = _without_flag(args, PRINT_FLAGS)
    args = [a for a in args if a != "--resolve"]
    if any(a.startswith("-") and a not in ("-m", "--multirun") for a in args):
        return  # --info, -cn, ...: Hydra's own questions, or another primary config
    for arg in args:
        if arg[:1] not in ("-", "~") and "=" not in arg:  # Hydra: a lexer error
            keys = list(COMMANDS[name].paths)  # a path is likeliest the command's path key's
            hint = ""
            if keys and ("/" in arg or Path(arg).expanduser().exists()):  # a path, or a run
                hint = f"did you mean {keys[0]}={arg}? "
            raise UsageError(
                f"{arg!r} is not a KEY=VALUE override: {hint}racing-rl {name} --help lists the keys"
            )
    try:
        overrides = OverridesParser.create().parse_overrides([a for a in args if a[:1] != "-"])
    except OverrideParseException:
        _check_quoted_paths(name, args)
        return  # Hydra says what is wrong with it
    if any(isinstance(o.value(), Glob) for o in overrides):  # listed as Hydra's sweeper lists it
        parser = OverridesParser.create(config_loader=_config_loader(more_dir))
        overrides = parser.parse_overrides([a for a in args if a[:1] != "-"])
    doc = read_config_doc(config_dir() / f"{name}.yaml")
    _check_keys(name, overrides, doc)
    own_conf = not more_options and not any(o.key_or_group == "hydra.searchpath" for o in overrides)
    if own_conf:
        _check_group_options(overrides, doc)
        _check_group_keys(name, overrides, doc)
        if name == "train":
            _check_frame_stack(overrides, doc)
    for override in overrides:
        _check_environment(override)
    whole = integer_keys(name)
    for override in overrides:  # Hydra: "Value '100000.0' of type 'float' could not be ..."
        value = None if override.is_sweep_override() else override.value()
        if override.key_or_group in whole and isinstance(value, float) and value.is_integer():
            spelt = f"{int(value)}" + (f" or {int(value):_}" if abs(value) >= 10_000 else "")
            raise UsageError(
                f"{override.input_line}: {override.key_or_group} is a whole number; write {spelt}"
            )
    groups = {group.name for group in doc.groups}
    _check_types(name, overrides, groups)
    given = {o.key_or_group: o for o in overrides}
    mode = given.get("hydra.mode")
    multirun = any(MODE_FLAGS.get(a) == "multirun" for a in args) or (
        mode is not None and str(mode.value()).upper() == "MULTIRUN"
    )
    # The jobs' configs, composed once where a check needs them (a +, an algo.model key).
    composed = functools.cache(functools.partial(_composed_legs, name, overrides, groups, more_dir))
    if name == "train" and multirun:
        _check_model_arguments(overrides, composed)
    _check_appends(name, overrides, composed)
    _check_hydra_settings(name, given, doc)
    if name == "train" and multirun and "resume" in given:  # Hydra: "not a run directory"
        raise UsageError(
            f"{given['resume'].input_line} with -m: resume= continues one run, in its own "
            "directory, and is no sweep's job. Resume a run with its own command, racing-rl "
            "train \"resume='<run dir>'\"; continue an interrupted sweep with its own "
            "command and hydra.sweep.dir=<its dir>"
        )
    if own_conf and not (name == "train" and "resume" in given):  # a resume: the run's own
        _check_unread(name, given, multirun, doc)
    for group in ("hydra/sweeper", "hydra/launcher"):
        chosen = given.get(group)
        basic = chosen is None or chosen.is_delete() or chosen.value() == "basic"
        if multirun or printing or basic:  # printing: --cfg shows what -m would use
            continue
        raise UsageError(  # Hydra: ignored, and one run trains
            f"{chosen.input_line} is used only by a sweep: add -m "
            f"(racing-rl {name} -m {chosen.input_line} ...)"
        )
    for override in overrides:
        plugin = PLUGINS.get((override.key_or_group, str(override.value())))
        if plugin and importlib.util.find_spec(plugin[0]) is None:
            raise UsageError(
                f"{override.input_line} needs the Hydra plugin {plugin[0].split('.')[-1]}, "
                f"which is not installed: pip install 'racing-rl[{plugin[1]}]'"
            )
    required = [] if printing else [option for option in doc.options if option.value == "???"]
    for option in required:
        if option.key not in given:
            kind = COMMANDS[name].paths.get(option.key, "value")
            raise UsageError(f"missing {option.key}: pass {option.key}=<{kind}> ({option.comment})")
    for key, kind in COMMANDS[name].paths.items():
        override = given.get(key)
        if override is None:
            continue
        if not override.is_sweep_override():
            values = [override.value()]
        elif isinstance(override.value(), ChoiceSweep):  # -m run_dir=a,b: each job's
            values = list(override.sweep_iterator())
        else:  # glob(...), range(...): Hydra's to expand
            continue
        for value in values:
            for entry in value if isinstance(value, list) else [value]:
                # A swept item in quotes ('<job dir>', as a path with = or , must be) is a
                # QuotedString.
                # eval's race and play may have the scripted driver for a run's car.
                scripted = (name, key) in (("eval", "run_dir"), ("play", "opponent"))
                _check_path(key, kind, getattr(entry, "text", entry), scripted)
    if name == "export" and multirun:
        _check_export_outputs(given, doc)
    resume = given.get("resume")
    if name == "train" and resume is not None and not resume.is_sweep_override():
        from racing_rl.errors import CheckpointError, ConfigError

        # Hydra's own (hydra.run.dir=, hydra/launcher=) are not the task's.
        task = [
            o.input_line for o in overrides if not o.key_or_group.startswith(("hydra.", "hydra/"))
        ]
        # The run's warnings (a damaged checkpoint skipped) are the job's to log, once,
        # into its train.log: here only a refusal is said.
        quiet = logging.root.manager.disable
        logging.disable(logging.WARNING)
        try:  # racing-rl train checks it again in the job (resume_run)
            check_resume(Path(str(resume.value())).expanduser(), task)
        except (ConfigError, CheckpointError) as err:
            raise UsageError(str(err)) from None
        finally:
            logging.disable(quiet)


def check_resume(
    run_dir: Path, overrides: Sequence[str]
) -> tuple[DictConfig, Checkpoint, str | None]:
    """What ``racing-rl train resume=<run_dir>`` with ``overrides`` goes on with, checked:
    ``check_arguments`` refuses a resume that cannot start before Hydra starts (nothing
    written), and ``racing_rl.training.resume_run`` prepares the resume with it.

    Args:
        run_dir: the run directory.
        overrides: the command line's overrides (``resume=`` and the run's own
            ``backend=`` among them).

    Returns:
        The run's config with the overrides (``resume_config``), checked; the checkpoint
        the resume loads (``resume_checkpoint``: the newest that loads); and the new text
        of the run's ``.hydra/overrides.yaml`` (``recorded_overrides``; None without it).

    Raises:
        CheckpointError: if ``run_dir`` is not a run directory, or none of its
            checkpoints loads (PickleRefused: a lone pickle, without trust_pickles).
        ConfigError: if an override may not change on resume, the config is invalid, an
            override is one the run never reads (``checkpoint.keep=3`` of a run saved with
            ``checkpoint.every=0``: ``check_unread_config``), a ``total_timesteps`` given
            is below the checkpoint's timesteps, the run's final checkpoint is already at
            ``total_timesteps``, or ``.hydra/overrides.yaml`` is damaged.
    """
    from racing_rl.checkpoints.runs import recorded_overrides, resume_checkpoint, resume_config
    from racing_rl.checks import check_train_config

    cfg = resume_config(run_dir, overrides)
    check_train_config(cfg, new_run=False)
    check_unread_config("train", cfg, overrides, "the run's", resumed=True)
    checkpoint = resume_checkpoint(run_dir, cfg)
    return cfg, checkpoint, recorded_overrides(run_dir / ".hydra" / "overrides.yaml", overrides)


def _check_types(name: str, overrides: list[Override], groups: set[str]) -> None:
    """Refuse a value of the wrong type for a key of the command's schema before Hydra
    starts: a swept one (``-m seed=0,abc``) fails when its job is composed, after the
    sweep's directory was made, and a single one (``seed=abc``, ``checkpoint.keep=x``) in
    Hydra's five lines. A config group's option (``wrappers=none``: ``groups``) is a name,
    not a value."""
    from omegaconf import OmegaConf

    from racing_rl.config import COMMAND_SCHEMAS, schema

    if name not in COMMAND_SCHEMAS:
        return
    own = OmegaConf.load(config_dir() / f"{name}.yaml")  # its defaults: the examples
    for part in ("defaults", "hydra"):
        own.pop(part, None)
    typed = OmegaConf.merge(schema(COMMAND_SCHEMAS[name]), own)
    for override in overrides:
        key = override.key_or_group
        # Keys below a field typed Any, a dict or a list: backend.* in _check_leg_keys;
        # algo.model.* are typed by their classes; the others are Hydra's.
        if _typed_node(typed, key) is None or key in groups or override.is_delete():
            continue
        _check_type(typed, key, override)


def _typed_node(typed: Any, key: str) -> Any:
    """The node of the typed config ``typed`` at the dotted ``key``, or None where the key
    is not there or is below a field typed ``Any``, a dict or a list (or is one typed
    ``Any``), which the schema does not type."""
    from omegaconf import AnyNode, DictConfig

    node = typed
    for part in key.split("."):
        if not isinstance(node, DictConfig) or node._is_missing() or node._is_none():
            return None
        node = node._get_node(part, validate_access=False)  # None where it is not there
    return None if isinstance(node, AnyNode) else node


def _check_type(typed: Any, key: str, override: Override) -> None:
    """Refuse ``override``'s value, or a value of its sweep, that the typed config
    ``typed`` (a structured config) cannot hold at the dotted ``key`` (relative to
    ``typed``): ``seed=abc``, ``-m seed=0,abc``, ``backend.car.max_speed=fast``. The
    message ends with what the key takes (``_what_to_pass``). A glob or an interval is
    the sweeper's own, and not checked."""
    import copy

    from hydra.core.override_parser.types import ChoiceSweep, RangeSweep
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    swept = isinstance(override.value(), ChoiceSweep | RangeSweep)
    if override.is_sweep_override() and not swept:
        return
    for value in override.sweep_iterator() if swept else [override.value()]:
        # As Hydra will resolve it: seed=${oc.env:HOME} is a path, not a whole number; a
        # reference to another key (${algo.total_timesteps}) is Hydra's to resolve.
        resolved = _resolved(override.key_or_group, value)
        if resolved is None and value is not None:
            continue
        value = resolved
        try:
            OmegaConf.update(copy.deepcopy(typed), key, value, merge=True)
        except OmegaConfBaseException as err:
            which = f" (the sweep's value {value!r} of {override.key_or_group})" if swept else ""
            raise UsageError(
                f"{override.input_line}: {str(err).splitlines()[0].rstrip('.')}{which}; "
                + _what_to_pass(_typed_node(typed, key), override.key_or_group)
            ) from None


def _what_to_pass(node: Any, key: str) -> str:
    """What the typed node ``node`` of the config key ``key`` takes, from its type, with
    its default as the example where it has one: ``seed takes a whole number, such as
    seed=0``, ``checkpoint.keep takes a whole number or null, such as checkpoint.keep=5``."""
    from omegaconf import BooleanNode, DictConfig, FloatNode, IntegerNode, ListConfig, OmegaConf

    kinds = {
        IntegerNode: ["a whole number"],
        FloatNode: ["a number"],
        BooleanNode: ["true", "false"],
    }
    plural = {int: "whole numbers", float: "numbers"}
    if isinstance(node, ListConfig):
        kind = [f"a list of {plural.get(node._metadata.element_type, 'strings')}"]
    elif isinstance(node, DictConfig):  # checkpoint=abc: its keys are set one by one
        keys = [f"{key}.{child}" for child in list(node.keys())[:3]]
        kind = [f"a mapping: set its keys, such as {_listed(keys, 'or')}" if keys else "a mapping"]
    else:
        kind = kinds.get(type(node), ["a string"])
    kind += ["null"] if node._metadata.optional else []
    said = f"{key} takes {_listed(kind, 'or')}"
    if isinstance(node, DictConfig) or any(
        (node._is_missing(), node._is_none(), node._is_interpolation())
    ):
        return said
    value = OmegaConf.to_container(node) if isinstance(node, ListConfig) else node._value()
    return f"{said}, such as {key}={_as_override(value)}"


def _as_override(value: Any) -> str:
    """A default ``value`` (a number, a bool, a string, or a list of them) as Hydra's
    override grammar reads it: ``true``, ``30.0``, ``[800,800]``."""
    from racing_rl.config import override_value

    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return f"[{','.join(map(_as_override, value))}]"
    return override_value(value)


def _composed_legs(
    name: str, overrides: list[Override], groups: set[str], more_dir: str | None
) -> tuple[list[tuple[str, ...]], list[Any]] | None:
    """The command's config composed as Hydra will compose its jobs, from the overrides
    that neither add (``+``) nor sweep, once for each leg of the swept config ``groups``
    (``-m algo=ppo,sac``, ``-m algo='glob(*)'``: each job's algorithm; other sweeps are
    left out), on conf/ and a ``--config-dir`` ``more_dir`` (as Hydra adds it: behind
    conf/, before a ``hydra.searchpath``'s directories).

    Returns:
        Each leg's choices of the swept groups (``[("algo=ppo",), ("algo=sac",)]``, or
        ``[()]``) and its config; None where a sweep of a group cannot be listed (an
        interval) or a leg cannot be composed: Hydra says why.
    """
    import os

    from hydra import compose
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from racing_rl.config import initialize, override_value

    if more_dir is not None and not os.path.isdir(more_dir):
        return None  # Hydra: "Additional config directory ... not found"
    others = [o.input_line for o in overrides if not (o.is_add() or o.is_sweep_override())]
    if more_dir is not None:
        searched = next((o for o in overrides if o.key_or_group == "hydra.searchpath"), None)
        dirs = [f"file://{os.path.abspath(more_dir)}", *(searched.value() if searched else [])]
        others = [o for o in others if searched is None or o != searched.input_line]
        others.append(f"hydra.searchpath=[{','.join(map(override_value, dirs))}]")
    swept = [
        o
        for o in overrides
        if o.is_sweep_override() and not o.is_add() and o.key_or_group in groups
    ]
    options = {o.get_key_element(): _legs(o) for o in swept}
    if None in options.values() or [] in options.values():  # a glob of no option: no job
        return None
    legs = list(itertools.product(*([f"{k}={v}" for v in vs] for k, vs in options.items())))
    try:
        with initialize():
            return legs, [compose(name, overrides=[*others, *leg]) for leg in legs]
    except (HydraException, OmegaConfBaseException):
        return None


def _check_appends(name: str, overrides: list[Override], composed: Callable[[], Any]) -> None:
    """Refuse ``+key=value`` for a key that the composed config has a value at already
    (``+seed=3``, ``+algo.model.gamma=0.9``, ``+backend.car.max_speed=3``), which Hydra
    refuses in four lines with its HYDRA_FULL_ERROR hint. As Hydra, a ``+`` stands where
    the key is not there, is null or ``???``, or is given a list or a mapping (merged into
    the key's). The config is composed as Hydra will compose it, once for each leg of the
    swept config groups (``composed``: ``_composed_legs``, called once for all the checks);
    where it cannot be composed, Hydra says why. Hydra's own keys
    (``+hydra.searchpath=``) are Hydra's.

    Raises:
        UsageError: for the first such ``+``, saying to set the key without it, or, where
            the key is there in some legs of the sweep only, with ``++`` (either way).
    """
    from hydra.core.override_parser.types import ChoiceSweep, RangeSweep
    from omegaconf import OmegaConf

    def merged(override: Override) -> bool:  # each value a list or a mapping
        value = override.value()
        swept = isinstance(value, ChoiceSweep | RangeSweep)
        return all(
            isinstance(v, dict | list) for v in (override.sweep_iterator() if swept else [value])
        )

    appends = [
        o
        for o in overrides
        if o.is_add() and not o.key_or_group.startswith(("hydra.", "hydra/")) and not merged(o)
    ]
    jobs = composed() if appends else None
    if jobs is None:
        return
    legs, cfgs = jobs
    for override in appends:
        key, line = override.key_or_group, override.input_line
        there = [OmegaConf.select(cfg, key, throw_on_missing=False) is not None for cfg in cfgs]
        if all(there):  # Hydra: "Could not append to config. An item is already at ..."
            raise UsageError(
                f"{line}: {key} is a key of racing-rl {name} already; set it without the +: "
                f"{line[1:]}"
            )
        if any(there):  # a + that Hydra refuses in those legs; without it, in the others
            leg = " ".join(legs[there.index(True)])
            other = " ".join(legs[there.index(False)])
            raise UsageError(
                f"{line}: {key} is a key of racing-rl {name} already in the sweep's leg "
                f"{leg} but not in its leg {other}; ++ sets it either way: +{line}"
            )


def _check_model_arguments(overrides: list[Override], composed: Callable[[], Any]) -> None:
    """Refuse a sweep of ``racing-rl train`` that adds an argument to ``algo.model``
    (``++algo.model.n_epochs=3``, ``+algo.model.n_epochs=3``) that the algorithm of one
    of its jobs does not take: that job would be refused only once the jobs before it
    had trained (``-m algo=ppo,sac ++algo.model.n_epochs=3``: the PPO job trains, then the
    SAC job fails). Each leg's algorithm is that of its composed config (``composed``:
    ``_composed_legs``); where the config cannot be composed, Hydra says why.

    Raises:
        UsageError: naming the argument, the first leg whose algorithm lacks it and, where
            some leg's takes it, to run the legs as sweeps of their own.
    """
    from racing_rl.algos import algorithm_class, constructor_parameters
    from racing_rl.errors import ConfigError

    added = [
        o
        for o in overrides
        if (o.is_add() or o.is_force_add())
        and o.key_or_group.startswith("algo.model.")
        and not o.key_or_group.split(".")[2].startswith("_")  # Hydra's _target_, _partial_
    ]
    jobs = composed() if added else None
    if jobs is None:
        return
    legs, cfgs = jobs
    try:
        classes = [algorithm_class(cfg.algo) for cfg in cfgs]
    except ConfigError:
        return  # no algorithm: the job says why
    takes = [set(constructor_parameters(cls)) - {"env"} for cls in classes]
    for override in added:
        key = override.key_or_group.split(".")[2]
        lacking = [i for i, accepted in enumerate(takes) if key not in accepted]
        if not lacking:
            continue
        cls, leg = classes[lacking[0]].__name__, " ".join(legs[lacking[0]])
        taking = [" ".join(legs[i]) for i in range(len(legs)) if i not in lacking]
        if taking:
            raise UsageError(
                f"{override.input_line}: {cls}, the algorithm of the sweep's leg {leg}, takes "
                f"no argument {key}, so that job would fail after the jobs before it trained; "
                f"run the legs as sweeps of their own, setting algo.model.{key} only in "
                f"{_listed(taking)}"
            )
        close = difflib.get_close_matches(key, sorted(takes[lacking[0]]), n=1)
        hint = f"; did you mean algo.model.{close[0]}?" if close else ""
        where = f" (the sweep's leg {leg})" if leg else ""
        raise UsageError(
            f"{override.input_line}: {cls}{where} takes no argument {key}, so every job of "
            f"the sweep would fail{hint}"
        )


#: The keys of an ``algo`` option (``conf/algo/*.yaml``) that racing-rl reads: ``model`` is
#: the algorithm's constructor arguments; train.yaml takes ``total_timesteps`` and
#: ``log_interval`` from it, wrappers/default.yaml ``frame_stack``. (``teacher_coef`` and
#: ``net_width`` are keys of the files whose ``model`` reads them: ``TeacherPPO``'s
#: ``model.teacher_coef``, the files that size their networks with it.)
ALGO_KEYS = ("name", "total_timesteps", "log_interval", "frame_stack", "model")

#: Keys users bring from other commands or tools, and what the command calls them.
ALIASES = {
    ("train", "out_dir"): "hydra.run.dir",
    ("train", "output_dir"): "hydra.run.dir",
    ("train", "run_dir"): "hydra.run.dir (or resume=, to continue a run)",
}


def _check_keys(name: str, overrides: list[Override], doc: ConfigDoc) -> None:
    """Refuse an override that is no key or group of the command's config (a typo such
    as ``fromat=onnx`` or ``validation.evry=5``, for which Hydra would suggest
    ``+fromat=onnx``). Its first part is checked against the config's keys and groups,
    the parts below it against the command's schema (``racing_rl.config.misspelt_key``;
    below ``backend`` and ``algo`` see ``_check_group_keys``). Appends (``+``, ``++``)
    and deletions (``~``) are Hydra's business, but for a ``+`` of a top-level key that
    the command does not have (``+total_timestep=1``: the schema has no room for it) and
    of a key it has (``_check_appends``)."""
    import re

    from racing_rl.config import misspelt_key

    groups = {part for group in doc.groups for part in group.name.split("@")}
    known = {option.key.split(".")[0] for option in doc.options} | groups | {"hydra"}
    for override in overrides:
        key = override.key_or_group
        if override.is_add() and key in {group.name for group in doc.groups}:
            raise UsageError(  # Hydra: "Multiple values for experiment. To override ..."
                f"{override.input_line}: {key} is a config group of racing-rl {name} already; "
                f"choose its option without the +: {override.input_line.lstrip('+')}"
            )
        root = re.split(r"[./@]", key)[0]
        adds_root = override.is_add() and root not in known and root == key  # +total_timestep
        if (override.is_add() or override.is_force_add() or override.is_delete()) and not (
            adds_root
        ):
            continue
        if root not in known:
            close = difflib.get_close_matches(root, sorted(known), n=1)
            key, guess = root, ALIASES.get((name, root)) or (close[0] if close else None)
        elif key in groups or root == "hydra" or "@" in key:
            continue
        else:
            found = misspelt_key(name, key)
            if found is None:
                continue
            key, guess = found
        hint = f"did you mean {guess}? " if guess else ""
        raise UsageError(
            f"{key!r} is not a key of racing-rl {name}: {hint}racing-rl {name} --help lists "
            "the keys"
        )


def _check_group_options(overrides: list[Override], doc: ConfigDoc) -> None:
    """Refuse a config group option that ``conf/<group>/`` does not have (``algo=ppo2``),
    for which Hydra prints its options with its config search path; a sweep's options
    (``algo=ppo,sac``) are each checked, and none may be null."""
    from hydra.core.override_parser.types import ChoiceSweep

    groups = {group.name: group.options for group in doc.groups}
    defaults = {group.name: group.default for group in doc.groups}
    chosen = {o.key_or_group for o in overrides}
    for group in HYDRA_GROUPS & chosen:  # Hydra: its many-line "Could not find ..."
        groups[group] = _hydra_group_options(group)
    for override in overrides:
        options = groups.get(override.key_or_group)
        if not options or override.is_delete():
            continue
        value = override.value()
        values = value.list if isinstance(value, ChoiceSweep) else [value]
        for option in values:
            if option is None:  # Hydra: a traceback, "Got NoneType"
                group = override.key_or_group
                raise UsageError(
                    f"{override.input_line}: a sweep cannot choose no {group} (null) for one "
                    f"of its legs; run that leg as a command of its own, without {group}="
                    if len(values) > 1
                    else f"{override.input_line}: Hydra takes no null option; to choose no "
                    f"{group}, leave it out"
                    if defaults.get(group) in (None, "null")
                    else f"{override.input_line}: Hydra takes no null option; {group} is one "
                    f"of {', '.join(options)} ({defaults[group]} by default; "
                    f"conf/{group.split('@')[0]}/)"
                )
            if isinstance(option, str) and option not in options:
                if override.key_or_group not in HYDRA_GROUPS:  # a SearchPathPlugin's too
                    options = groups[override.key_or_group] = _hydra_group_options(
                        override.key_or_group
                    )
                    if option in options:
                        continue
                close = difflib.get_close_matches(option.lower(), options, n=1)  # algo=PPO
                hint = f"did you mean {close[0]}? " if close else ""
                raise UsageError(
                    f"{override.key_or_group}={option}: no such option; {hint}"
                    f"{override.key_or_group} is one of {', '.join(options)} "
                    f"(conf/{override.key_or_group.split('@')[0]}/)"
                )


#: Hydra's own groups that a command line chooses from (their options: conf/hydra/ and
#: the installed plugins').
HYDRA_GROUPS = {"hydra/launcher", "hydra/sweeper"}


def _hydra_group_options(group: str) -> list[str]:
    """The options of the group ``group`` on Hydra's config search path: racing-rl's
    ``conf/<group>/`` and those its installed plugins add (a ``SearchPathPlugin``'s
    directories, Hydra's own for ``hydra/launcher``), and those of ``PLUGINS`` (an option
    whose plugin is missing is told how to install it, not that it does not exist)."""
    found = _config_loader(None).get_group_options(group)
    return sorted({*found, *(option for g, option in PLUGINS if g == group)})


def _config_loader(more_dir: str | None) -> Any:
    """Hydra's config loader on the search path that ``racing-rl`` gives Hydra: conf/,
    the installed plugins' directories and a ``--config-dir`` ``more_dir`` (prepended
    before the schemas, as Hydra's ``run_hydra`` does). Its sweeper lists a glob's options
    (``-m algo='glob(*)'``) from it; a ``hydra.searchpath``'s directories are not on it."""
    import os

    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra._internal.utils import create_automatic_config_search_path
    from hydra.core.config_search_path import SearchPathQuery

    search_path = create_automatic_config_search_path(None, None, str(config_dir()))
    if more_dir is not None:
        search_path.prepend(
            provider="command-line",
            path=f"file://{os.path.abspath(more_dir)}",
            anchor=SearchPathQuery(provider="schema"),
        )
    return ConfigLoaderImpl(config_search_path=search_path)


def _check_group_keys(name: str, overrides: list[Override], doc: ConfigDoc) -> None:
    """Refuse an override below ``backend`` or ``algo`` that the chosen option (with the
    keys a given or swept ``experiment`` adds) does not have (``backend=roblox
    backend.sensors.n_rays=16``, ``algo.model.gama=0.99``), for which Hydra would suggest a
    ``+`` append. Checked only where the option is known (given, or the command's
    default; a resumed run's backend, not its algorithm, whose keys a resume may not
    change) and not swept; keys below a list are Hydra's. A swept ``experiment``'s every
    leg must have the key."""
    from hydra.core.override_parser.types import ChoiceSweep
    from omegaconf import OmegaConf

    groups = ("backend", "algo")
    # A difficulty level is a file of backend keys (# @package backend): the simulator's.
    difficulty = next((o for o in overrides if o.key_or_group == "difficulty"), None)
    if difficulty is not None and not difficulty.is_delete():
        value = difficulty.value()
        for level in value.list if isinstance(value, ChoiceSweep) else [value]:
            path = config_dir() / "difficulty" / f"{level}.yaml"
            if path.is_file():  # else Hydra says the option is unknown
                _check_backend_keys(f"difficulty={level}", OmegaConf.load(path), overrides, doc)
    if any(o.key_or_group == "resume" for o in overrides):
        if not any(o.key_or_group == "backend" for o in overrides):
            return  # no readable run (or a swept one): racing-rl train checks its config
        groups = ("backend",)  # its own (with_resumed_backend), or one a resume refuses
    experiment = next((o for o in overrides if o.key_or_group == "experiment"), None)
    legs: list[Any] = [None]  # the given experiment, or each of a sweep's
    if experiment is not None and not experiment.is_delete():
        value = experiment.value()
        legs = value.list if isinstance(value, ChoiceSweep) else [value]
    for leg in legs:
        path = config_dir() / "experiment" / f"{leg}.yaml"
        added = OmegaConf.load(path) if leg is not None and path.is_file() else OmegaConf.create()
        # Hydra refuses the leg that lacks the key when it composes it: name the leg.
        where = f" in the sweep's leg experiment={leg}" if len(legs) > 1 else ""
        if leg is not None:
            _check_backend_keys(f"experiment={leg}", added.get("backend"), overrides, doc)
        _check_leg_keys(name, overrides, doc, added, where, groups)


def _check_backend_keys(
    choice: str, backend: Any, overrides: list[Override], doc: ConfigDoc
) -> None:
    """Refuse a group option whose ``backend`` keys the chosen backend lacks
    (``experiment=race backend=roblox``, ``difficulty=hard backend=roblox``; Hydra: "Key
    'sensors' not in 'RobloxConfig'" in five lines). ``choice`` is the option as given
    (``experiment=race``), ``backend`` the keys it sets below ``backend`` (an OmegaConf
    node, or None for none)."""
    from omegaconf import OmegaConf

    from racing_rl.config import default_backend

    chosen = next((o for o in overrides if o.key_or_group == "backend"), None)
    group = next((g for g in doc.groups if g.name == "backend"), None)
    if backend is None or group is None:
        return
    if chosen is not None and (chosen.is_sweep_override() or chosen.is_delete()):
        return  # Hydra composes each leg
    option = str(chosen.value()) if chosen is not None else group.default
    if option not in group.options:
        return  # Hydra says the option is unknown (or eval: the run's own backend)
    own = {o: OmegaConf.to_container(default_backend(o), resolve=False) for o in group.options}

    def leaves(node: Any, path: list[str]) -> Iterator[list[str]]:
        if not isinstance(node, dict) or not node:
            yield path
            return
        for key, value in node.items():
            yield from leaves(value, [*path, str(key)])

    for path in leaves(OmegaConf.to_container(backend, resolve=False), []):
        if path and _walk(own[option], path)[0] < len(path):
            users = [o for o in group.options if _walk(own[o], path)[0] == len(path)]
            raise UsageError(
                f"{choice} sets backend.{'.'.join(path)}, which backend={option} does not "
                f"have: {choice} is for backend={_listed(users)}; leave one of the two out"
            )


def _listed(names: list[str], word: str = "and") -> str:
    """``a``, ``a and b``, ``a, b and c`` (or another ``word``: ``a, b or c``)."""
    return f" {word} ".join([", ".join(names[:-1]), names[-1]] if len(names) > 2 else names)


def _check_leg_keys(
    name: str,
    overrides: list[Override],
    doc: ConfigDoc,
    added: Any,
    where: str,
    groups: tuple[str, ...],
) -> None:
    """``_check_group_keys`` for one experiment's keys ``added`` (an OmegaConf node) and
    the config ``groups``; ``where`` names the sweep's leg in the message. A swept
    ``algo`` or ``backend`` has each of its legs checked."""
    from omegaconf import OmegaConf

    from racing_rl.config import default_backend

    for group in doc.groups:
        if group.name not in groups:
            continue
        under = [o for o in overrides if o.key_or_group.startswith(f"{group.name}.")]
        below = [o for o in under if not (o.is_add() or o.is_force_add() or o.is_delete())]
        # A backend's schema has every key it reads: a key added below a chosen backend
        # (train's, not eval's run's own) is a misspelt one (Hydra: "not in 'RaceRules'").
        adds = [
            o
            for o in under
            if group.name == "backend"
            and group.default not in (None, "null")
            and (o.is_add() or o.is_force_add())
        ]
        # A key added to algo itself that nothing reads (Hydra adds it, and it is ignored).
        added_keys = [
            o
            for o in under
            if group.name == "algo"
            and (o.is_add() or o.is_force_add())
            and o.key_or_group.split(".")[1] not in ALGO_KEYS
        ]
        chosen = next((o for o in overrides if o.key_or_group == group.name), None)
        if not (below or added_keys or adds):
            continue
        if below and chosen is None and group.default in (None, "null"):  # eval's backend
            line = below[0].input_line
            raise UsageError(
                f"{line}: racing-rl {name} takes the run's own {group.name}, and a setting "
                f"of it is changed with a +: +{line}"
            )
        options = [str(chosen.value()) if chosen is not None else group.default]
        if chosen is not None and chosen.is_sweep_override():  # each leg: Hydra stops the
            legs = _legs(chosen)  # sweep at one that lacks the key
            if legs is None:
                continue  # an interval: Hydra's to expand
            options = [str(leg) for leg in legs]
        own = {
            o: default_backend(o)
            if group.name == "backend"
            else OmegaConf.load(config_dir() / group.name / f"{o}.yaml")
            for o in group.options
        }
        keys = {  # as plain dicts: the experiment may add keys that a schema does not have
            o: OmegaConf.to_container(
                OmegaConf.merge(
                    OmegaConf.to_container(config, resolve=False), added.get(group.name) or {}
                ),
                resolve=False,
            )
            for o, config in own.items()
        }
        for option in options:
            if option in group.options:  # else Hydra says the option is unknown
                leg = f" (a leg of the sweep {chosen.input_line})" if len(options) > 1 else ""
                _check_option_keys(
                    name, group.name, option, own, keys, below, adds, added_keys, where or leg
                )


def _check_option_keys(
    name: str,
    group: str,
    option: str,
    own: dict[str, Any],
    keys: dict[str, dict],
    below: list[Override],
    adds: list[Override],
    added_keys: list[Override],
    where: str,
) -> None:
    """``_check_leg_keys`` for one option ``option`` of the config group ``group``, whose
    options' configs are ``own`` and their keys (with an experiment's) ``keys``: refuse the
    first of ``below`` (keys set below it), ``adds`` (keys added below a backend) and
    ``added_keys`` (keys added to algo) that it does not have."""
    options = list(own)
    for override in added_keys:
        key = override.key_or_group.split(".")[1]
        if key in keys[option]:
            continue  # the file's own key (++ sets it; _check_appends refuses a +)
        close = difflib.get_close_matches(key, [*ALGO_KEYS, *keys[option]], n=1)
        elsewhere = [o for o in options if key in keys[o]]
        hint = f"did you mean algo.{close[0]}? " if close else ""
        if elsewhere and not close:  # +algo.net_width=64 algo=crossq
            hint = f"it is a key of algo={_listed(elsewhere)} only. "
        raise UsageError(
            f"{override.input_line}: nothing reads algo.{key}, so it would change nothing "
            f"(racing-rl reads algo.{', algo.'.join(ALGO_KEYS)}, and algo={option}'s file "
            f"its own keys); {hint}racing-rl {name} algo={option} --cfg job prints its keys"
        )
    for override in [*below, *adds]:
        parts = override.key_or_group.split(".")[1:]
        found, node = _walk(keys[option], parts)
        if found == len(parts):
            if override in adds:
                continue  # there already: _check_appends refuses the +
            if group == "backend":  # the algorithm's keys are typed by its class
                _check_type(own[option], ".".join(parts), override)
            elif parts[0] not in ALGO_KEYS and parts[0] not in own[option]:
                # An experiment's key (experiment=race's net_width) that this file never reads.
                readers = [o for o in options if parts[0] in own[o]]
                raise UsageError(
                    f"{override.input_line}: nothing reads algo.{parts[0]} with algo={option}"
                    f"{where}, so it would change nothing (the experiment sets it for the "
                    f"files that read it: algo={_listed(readers)}); racing-rl {name} "
                    f"algo={option} --cfg job prints its keys"
                )
            continue
        known = parts[: found + 1]
        elsewhere = [o for o in options if _walk(keys[o], known)[0] == len(known)]
        names = sorted(k for k in node if k != "_target_")
        close = difflib.get_close_matches(known[-1], names, n=1)
        hint = ""
        if close:
            hint = f"did you mean {'.'.join([group, *known[:-1], close[0]])}? "
        other_algos = elsewhere and known[0] == "model"  # algo.model.n_steps with algo=sac
        if group == "algo" and not close and not other_algos and known[0] in ALGO_KEYS:
            # The class may take arguments its file does not set, and a file may leave
            # out a key of racing-rl's; ++ where another leg has the key (a + there is
            # refused as a duplicate).
            hint = f"{'++' if where else '+'}{override.input_line} adds it" + (
                " (checked against the class's arguments). " if known[0] == "model" else ". "
            )
        elif elsewhere:
            hint = f"it is a key of {group}={_listed(elsewhere)} only. "
        raise UsageError(
            f"{override.input_line}: {group}={option} has no "
            f"{group}.{'.'.join(known)}{where}; {hint}racing-rl {name} "
            f"{group}={option} --cfg job prints its keys"
        )


def _check_frame_stack(overrides: list[Override], doc: ConfigDoc) -> None:
    """Refuse ``algo.frame_stack`` (set, added or swept) where the frames stacked do not
    read it: ``wrappers=none`` stacks none (its ``wrappers.frame_stack`` is 1), and a
    given ``wrappers.frame_stack`` or an experiment's decides instead. Only
    ``wrappers/default.yaml``'s ``frame_stack`` reads it (``${oc.select:algo.frame_stack,
    4}``); Hydra takes it, and the run trains as if it were not given. A swept
    ``wrappers`` or ``experiment`` has each of its legs checked."""
    from omegaconf import OmegaConf

    given = next(
        (o for o in overrides if o.key_or_group == "algo.frame_stack" and not o.is_delete()),
        None,
    )
    if given is None or any(o.key_or_group == "resume" for o in overrides):
        return  # a resume keeps the run's own (resume_overrides refuses a change)

    def legs(group: str, default: str | None) -> list[tuple[str, Any]]:
        chosen = next((o for o in overrides if o.key_or_group == group), None)
        if chosen is None:
            return [("", default)]
        if chosen.is_delete():
            return [("", None)]
        if (values := _legs(chosen)) is None:
            return []  # glob(...), range(...): Hydra's to expand
        return [(f"{group}={leg}" if len(values) > 1 else "", leg) for leg in values]

    defaults = {group.name: group.default for group in doc.groups}
    stacked = next((o for o in overrides if o.key_or_group == "wrappers.frame_stack"), None)
    for wrappers_leg, wrappers in legs("wrappers", defaults.get("wrappers")):
        path = config_dir() / "wrappers" / f"{wrappers}.yaml"
        if wrappers in (None, "null") or not path.is_file():
            continue  # Hydra says the option is unknown
        # As written (``${oc.select:algo.frame_stack,4}``), not resolved; none: 1 (vec.py).
        own = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
        value, source = own.get("frame_stack", 1), f"wrappers={wrappers}"
        for experiment_leg, experiment in legs("experiment", defaults.get("experiment")):
            path = config_dir() / "experiment" / f"{experiment}.yaml"
            if experiment not in (None, "null") and path.is_file():
                added = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
                if "frame_stack" in (added.get("wrappers") or {}):
                    value = added["wrappers"]["frame_stack"]
                    source = f"experiment={experiment}"
            if stacked is not None and not stacked.is_delete():
                cause = f"{stacked.input_line} decides the frames stacked instead"
            elif "algo.frame_stack" in str(value):
                continue
            else:
                cause = (
                    f"{source} stacks wrappers.frame_stack={value} frames, not algo.frame_stack's"
                )
            leg = " and ".join(filter(None, (wrappers_leg, experiment_leg)))
            where = f" (in the sweep's leg {leg})" if leg else ""
            raise UsageError(
                f"{given.input_line}: {cause}{where}, so it would change nothing. Only "
                "wrappers=default stacks algo.frame_stack frames; set the frames with "
                "wrappers.frame_stack=<frames> (with wrappers=none too: on the bare VecEnv) "
                "and leave algo.frame_stack out"
            )


@dataclass(frozen=True)
class Unread:
    """Settings that only a feature reads, which its switches can turn off.

    Attributes:
        keys: the settings (dotted keys).
        switches: the keys or config groups that turn the feature on: it is off where
            each is one of ``off_at``.
        off: what happens with every switch off, e.g. ``no validation runs``.
        hint: what to add for the feature, e.g. ``validation.every=<timesteps>``; None
            where no setting adds it (``backend=roblox`` makes no video).
        in_sweeps: False where a sweep's job reads the settings with its switches off too
            (a continued sweep's job resumes from its checkpoint: ``trust_pickles``).
        off_at: the switches' values (a group's options) that turn the feature off.
        read_at: the keys of a composed config that hold the switches' values, in their
            order (``backend.name``: the backend a run trains on, whichever file chose
            it); None where the switches are keys themselves.
    """

    keys: tuple[str, ...]
    switches: tuple[str, ...]
    off: str
    hint: str | None
    in_sweeps: bool = True
    off_at: tuple[Any, ...] = (0, None)
    read_at: tuple[str, ...] | None = None


#: Per command, the settings that Hydra takes and the command then never reads, because
#: another setting turns their feature off (the first that applies is reported).
UNREAD = {
    "train": (
        Unread(  # ValidationCallback's video draws the simulator's races (training._validation)
            ("validation.video.every", "validation.video.max_steps", "validation.video.size"),
            ("backend",),
            "no video is made (the built-in simulator draws the validation videos, and a "
            "Roblox run has none: record the game itself for one)",
            None,
            off_at=("roblox",),
            read_at=("backend.name",),
        ),
        Unread(
            ("validation.video.every", "validation.video.max_steps", "validation.video.size"),
            ("validation.every",),
            "no validation runs (the video is a validation's)",
            "validation.every=<timesteps>",
        ),
        Unread(
            ("validation.video.max_steps", "validation.video.size"),
            ("validation.video.every",),
            "no video is made",
            "validation.video.every=<validations>",
        ),
        Unread(
            ("checkpoint.keep",),
            ("checkpoint.every",),
            "no periodic checkpoint is saved (the only ones keep deletes)",
            "checkpoint.every=<timesteps>",
        ),
        Unread(
            ("trust_pickles",),
            ("resume", "init_from"),
            "no run's files are loaded",
            "resume=<run dir> or init_from=<run dir>",
            in_sweeps=False,
        ),
    ),
    "eval": (Unread(("fps", "size"), ("render",), "no window is drawn", "render=human"),),
}


def _check_unread(name: str, given: dict[str, Override], multirun: bool, doc: ConfigDoc) -> None:
    """Refuse a setting given on the command line (other than its default) that the
    command would not read, because every switch of its feature is off (``UNREAD``):
    ``validation.every=0 validation.video.every=2`` made no video, and the run trained as
    if it were not given. A switch not given is the command's default (a group's default
    option, from ``doc``), or what a chosen ``experiment`` sets; a swept switch or
    experiment is off only where each of its legs is (``-m validation.every=0,1000
    validation.video.every=2`` and ``-m backend=pygame,roblox validation.video.every=2``
    are taken), and a glob or an interval is Hydra's to expand (taken).

    Raises:
        UsageError: naming the setting, the switches and what to add.
    """
    from omegaconf import OmegaConf

    defaults = OmegaConf.load(config_dir() / f"{name}.yaml")
    experiment = given.get("experiment")  # a train default of none (null)
    chosen = [] if experiment is None or experiment.is_delete() else _legs(experiment)
    groups = {group.name: group.default for group in doc.groups}
    presets = {
        leg: OmegaConf.load(path)
        for leg in chosen or []
        if (path := config_dir() / "experiment" / f"{leg}.yaml").is_file()
    }

    def switch(key: str, _: str) -> tuple[list[Any] | None, str]:
        """What ``key``, not given, is in each job (None: unknown), and where that comes
        from."""
        if key in groups:  # an experiment's own choice of the group is not read
            return [groups[key]], f"{key}={groups[key]} (the default)"
        if chosen is None:
            return None, key
        default = OmegaConf.select(defaults, key, throw_on_resolution_failure=False)
        unset = object()
        set_by = {
            leg: value
            for leg, preset in presets.items()
            if (value := OmegaConf.select(preset, key, default=unset)) is not unset
        }
        values = [set_by.get(leg, default) for leg in presets] or [default]
        leg, value = next(iter(set_by.items()), (None, default))
        spelt = "null" if value is None else value
        return values, f"{key}={spelt} ({f'experiment={leg}' if leg else 'the default'})"

    unread = _unread(name, given, multirun, switch, defaults)
    if unread is not None:
        raise UsageError(unread)


def _unread(
    name: str,
    given: dict[str, Override],
    multirun: bool,
    switch: Callable[[str, str], tuple[list[Any] | None, str]],
    defaults: Any,
) -> str | None:
    """The refusal of the first setting of ``given`` (other than its default) whose
    feature every switch turns off (``UNREAD``); None if there is none.

    Args:
        name: the command.
        given: the command line's overrides, by key.
        multirun: whether the command line is a sweep (``Unread.in_sweeps``).
        switch: a switch not given: its values in each job (None: unknown) and where they
            come from, for the switch's key and the key of a composed config that holds
            it (``Unread.read_at``).
        defaults: the command's YAML (conf/<name>.yaml), for the settings' defaults.
    """
    from omegaconf import OmegaConf

    def values(key: str, at: str) -> tuple[list[Any] | None, str]:
        if key not in given:
            return switch(key, at)
        return (None if given[key].is_delete() else _legs(given[key])), given[key].input_line

    for unread in UNREAD.get(name, ()):
        if multirun and not unread.in_sweeps:
            continue
        for key in unread.keys:
            override = given.get(key)
            if override is None or override.is_delete():
                continue
            default = OmegaConf.select(defaults, key, throw_on_resolution_failure=False)
            default = OmegaConf.to_container(default) if OmegaConf.is_config(default) else default
            legs = _legs(override)
            if legs is not None and all(leg == default for leg in legs):
                continue  # the default: it changes nothing anyway
            read_at = unread.read_at or unread.switches
            switches = [values(s, at) for s, at in zip(unread.switches, read_at, strict=True)]
            if any(v is None or any(leg not in unread.off_at for leg in v) for v, _ in switches):
                continue
            add = f"add {unread.hint}, or " if unread.hint else ""
            return (
                f"{override.input_line}: with {' and '.join(s for _, s in switches)}, "
                f"{unread.off}, so it would change nothing; {add}leave {key} out"
            )
    return None


def check_unread_config(
    name: str, cfg: Any, overrides: Sequence[str], whose: str, *, resumed: bool = False
) -> None:
    """Refuse a setting of a command line that the composed config never reads, because
    every switch of its feature is off there (``UNREAD``), as ``check_arguments`` does
    before Hydra from the YAML files, which cannot know a switch that an experiment's
    choice of a group sets (``backend: roblox``), a ``--config-dir``'s files, or a resumed
    run's own (``checkpoint.every=0``).

    Args:
        name: the command (``train``).
        cfg: its composed config (a resumed run's, with the resume's overrides).
        overrides: the command line's overrides (Hydra's ``overrides.task``).
        whose: where a switch not given comes from, for the message ("the run's").
        resumed: ``cfg`` is the saved config of a run that a resume continues (its
            ``resume`` null): the switch ``resume`` is on, also where the command line
            has no ``resume=`` (a continued sweep's job).

    Raises:
        ConfigError: naming the setting, the switches and what to add.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    from racing_rl.errors import ConfigError

    given = {o.key_or_group: o for o in OverridesParser.create().parse_overrides(list(overrides))}

    def switch(key: str, at: str) -> tuple[list[Any] | None, str]:
        value = True if resumed and key == "resume" else OmegaConf.select(cfg, at, default=None)
        return [value], f"{key}={'null' if value is None else value} ({whose})"

    defaults = OmegaConf.load(config_dir() / f"{name}.yaml")
    unread = _unread(name, given, False, switch, defaults)
    if unread is not None:
        raise ConfigError(unread)


def _legs(override: Override) -> list[Any] | None:
    """The values of ``override``'s jobs: its value, or each of its sweep's (a quoted one
    as its text), as Hydra's sweeper lists them: a choice, a range, a glob of a group's
    options (parsed with a config loader: ``check_arguments``); None for an interval
    (an Optuna search's), or a glob parsed without a loader."""
    from hydra.core.override_parser.types import Glob

    if not override.is_sweep_override():
        values = [override.value()]
    elif override.is_discrete_sweep() and not (
        isinstance(override.value(), Glob) and override.config_loader is None
    ):
        values = list(override.sweep_iterator())
    else:
        return None
    return [getattr(value, "text", value) for value in values]


def _check_hydra_settings(name: str, given: dict[str, Override], doc: ConfigDoc) -> None:
    """Refuse the Hydra settings that a racing-rl command cannot work under, each of which
    Hydra takes, and the command then fails late or writes what it cannot read back.

    Raises:
        UsageError: ``hydra.job.chdir=true`` (relative paths, ``run_dir=outputs/...``,
            would name files below the new directory), ``hydra.output_subdir`` for train
            (runs are read from ``<run dir>/.hydra``), ``hydra.run.dir`` for eval (its
            results go to ``out_dir``), ``hydra/job_logging=disabled`` (a traceback: the
            commands' configs set its console handler's stream), Optuna's own sweeper
            without a direction (it minimises), or a search whose parameters the chosen
            algorithm lacks (``algo=sac hydra/sweeper=ppo_search``), or a ``hydra.run.dir``
            or ``hydra.sweep.dir`` that starts with ``~`` (Hydra does not expand it).
    """
    from omegaconf import OmegaConf

    from racing_rl.config import path_override

    chdir = given.get("hydra.job.chdir")
    if chdir is not None and not chdir.is_sweep_override() and chdir.value() is True:
        raise UsageError(
            f"{chdir.input_line}: racing-rl's commands take paths relative to the directory "
            "they start in, and write into their run directory without it; leave it false"
        )
    if name == "train" and "hydra.output_subdir" in given:
        raise UsageError(
            f"{given['hydra.output_subdir'].input_line}: a run keeps its config in "
            "<run dir>/.hydra, where eval, export and resume read it; leave it"
        )
    if name == "eval" and "hydra.run.dir" in given:
        value = given["hydra.run.dir"].value()
        raise UsageError(
            f"{given['hydra.run.dir'].input_line}: eval writes its results into out_dir, "
            f"and its log beside them (hydra.run.dir follows out_dir): pass "
            f"{path_override('out_dir', value)}"
        )
    for key in ("hydra.run.dir", "hydra.sweep.dir"):
        value = given[key].value() if key in given else None
        if isinstance(value, str) and value.startswith("~"):  # Hydra: makes ./~/...
            raise UsageError(
                f"{given[key].input_line}: Hydra makes that directory as written, a directory "
                f"named ~ here, not in your home: write the path out, "
                f"{key}=$HOME{value[1:]} (the shell expands $HOME)"
            )
    for group in ("hydra/job_logging", "hydra/hydra_logging"):
        if group in given and given[group].value() == "disabled":  # Hydra: a traceback
            raise UsageError(
                f"{given[group].input_line}: racing-rl's commands set the stream of that "
                f"config's console handler, which disabled lacks; {group}=none leaves "
                "logging unset (warnings and errors still reach stderr)"
            )
    sweeper = given.get("hydra/sweeper")
    if sweeper is None or sweeper.is_sweep_override() or sweeper.is_delete():
        return
    if sweeper.value() == "optuna" and "hydra.sweeper.direction" not in given:
        raise UsageError(
            f"{sweeper.input_line} minimises by default, and the objective of a run is to "
            "maximise: add hydra.sweeper.direction=maximize (hydra/sweeper=ppo_search and "
            "sac_search set it, with their search spaces)"
        )
    search = config_dir() / "hydra" / "sweeper" / f"{sweeper.value()}.yaml"
    params = OmegaConf.load(search).get("params") if search.is_file() else None
    algo = given.get("algo")
    if not params or (algo is not None and algo.is_sweep_override()):
        return  # no search space of racing-rl's, or a sweep's legs: Hydra composes each
    default = next((group.default for group in doc.groups if group.name == "algo"), None)
    chosen = str(algo.value()) if algo is not None else str(default)
    file = config_dir() / "algo" / f"{chosen}.yaml"
    if not file.is_file():
        return  # Hydra says the option is unknown
    keys = OmegaConf.to_container(OmegaConf.load(file), resolve=False)
    for key in params:
        parts = str(key).split(".")
        if parts[0] == "algo" and _walk(keys, parts[1:])[0] < len(parts) - 1:
            raise UsageError(
                f"{sweeper.input_line} searches {key}, which algo={chosen} does not have: "
                f"it searches {sweeper.value().removesuffix('_search')}'s settings (pass "
                f"algo={sweeper.value().removesuffix('_search')}); it would fail on its first "
                "trial, after recording its study"
            )


def _check_export_outputs(given: dict[str, Override], doc: ConfigDoc) -> None:
    """Refuse an export sweep in which two jobs would write one file, the second replacing
    the first: ``-m run_dir=a/seed=0,b/seed=0 out=exports/`` (both name theirs
    ``seed=0_policy_best.luau``), or ``-m run_dir=a,b out=driver.luau``.

    Raises:
        UsageError: naming the file and two of its jobs.
    """
    from hydra.core.override_parser.types import ChoiceSweep

    from racing_rl.errors import ConfigError
    from racing_rl.export import output_path

    defaults = {option.key: option.value for option in doc.options}
    swept: dict[str, list[Any]] = {}
    for key in ("run_dir", "checkpoint", "format", "out"):
        override = given.get(key)
        if override is None:
            swept[key] = [None if defaults[key] == "null" else defaults[key]]
        elif not override.is_sweep_override():
            swept[key] = [override.value()]
        elif isinstance(override.value(), ChoiceSweep):
            swept[key] = [getattr(v, "text", v) for v in override.sweep_iterator()]
        else:  # glob(...), range(...): Hydra's to expand
            return
    jobs: dict[Path, str] = {}
    for values in itertools.product(*swept.values()):
        run_dir, checkpoint, fmt, out = (None if v is None else str(v) for v in values)
        job = " ".join(f"{k}={v}" for k, v in zip(swept, values, strict=True) if len(swept[k]) > 1)
        try:
            path = output_path(out, Path(str(run_dir)).expanduser(), str(checkpoint), str(fmt))
        except ConfigError:
            continue  # the job says what is wrong with its out=
        first = jobs.setdefault(path.resolve(), job)
        if first != job:
            raise UsageError(
                f"two jobs of this sweep would write {path} ({first}; {job}), the second "
                "replacing the first: export them one at a time, each with its own out="
            )


def _walk(node: Any, parts: list[str]) -> tuple[int, dict]:
    """How many of ``parts`` lead down the nested dicts ``node``, and the last dict
    reached (empty past a value)."""
    for found, part in enumerate(parts):
        if isinstance(node, list):  # an index, or below one: Hydra's to check
            return len(parts), {}
        if not (isinstance(node, dict) and part in node):
            return found, node if isinstance(node, dict) else {}
        node = node[part]
    return len(parts), node if isinstance(node, dict) else {}


def _resolved(key: str, value: object) -> object:
    """``value`` (a value of ``key``'s override) with its ``${oc.env:NAME}`` resolved, as
    Hydra will resolve it; ``value`` itself where it is no interpolation, and None where it
    refers to another key of the config (``${seed}``) or to a resolver of racing-rl's.

    Raises:
        UsageError: where it names an environment variable that is not set (and has no
            default): ``seeds=${oc.env:SEEDS}`` would end in Hydra's traceback, once the
            run's directory is made.
    """
    if not isinstance(value, str) or "${" not in value:
        return value
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        return OmegaConf.create({"value": value}).value
    except OmegaConfBaseException as err:
        if "Environment variable" not in str(err):
            return None
        raise UsageError(
            f"{key}={value}: {str(err).splitlines()[0]}; set it, or give the value itself"
        ) from None


def _check_environment(override: Override) -> None:
    """Refuse an override whose value, or a value of its sweep, names an environment
    variable that is not set (``_resolved``)."""
    from hydra.core.override_parser.types import ChoiceSweep

    value = override.value()
    for each in value.list if isinstance(value, ChoiceSweep) else [value]:
        _resolved(override.key_or_group, each)


def _check_path(key: str, kind: str, value: object, scripted: bool = False) -> None:
    """Refuse ``key=value``, a path of ``kind`` (``run``: a run directory; ``file``), that
    does not exist; ``scripted``: the entry ``scripted`` (the baseline driver, in eval's
    races and as play's opponent) is one. A ``${oc.env:RUN}`` is resolved as Hydra will
    resolve it (``_resolved``); a reference to another key is not checked.

    Raises:
        UsageError: naming the key and what to pass.
    """
    value = _resolved(key, value)
    if value is None or (scripted and value == "scripted"):
        return
    path = Path(str(value)).expanduser()
    if not path.exists():
        close = scripted and difflib.get_close_matches(str(value), ["scripted"])
        meant = "; did you mean scripted (the scripted driver)?" if close else ""
        raise UsageError(f"{key}={value}: no such file or directory{meant}; pass {key}=<{kind}>")
    if kind == "run" and not (path / ".hydra" / "config.yaml").is_file():
        run = next(
            (p for p in path.resolve().parents[:3] if (p / ".hydra" / "config.yaml").is_file()),
            None,
        )
        if run is not None:  # <run>/best, <run>/checkpoints/<name>[/model.zip], <run>/tb, ...
            model = path.name == "best" or path.parent.name == "checkpoints"
            model = model or (path.is_file() and path.suffix == ".zip")
            checkpoint = "best" if path.name == "best" else str(value)
            also = f" checkpoint={checkpoint}" if model and key != "resume" else ""
            if path.suffix in (".luau", ".onnx"):  # an export's output
                also += (
                    f" ({path.name} is an exported policy, which racing-rl does not load: "
                    "checkpoint= names the checkpoint it came from, and eval driver=luau|onnx "
                    "exports it again)"
                )
            raise UsageError(
                f"{key}={value} is not a run directory but lies in the run {run}: pass "
                f"{key}={run}{also}"
            )
        if jobs := sorted(p.parent.parent for p in path.glob("*/.hydra/config.yaml")):
            from racing_rl.config import override_value

            whole = (
                f"; the sweep's own command with hydra.sweep.dir={value} continues them all"
                if key == "resume"
                else f" (racing-rl report {value} compares them)"
            )
            # A job's name holds = and , (0_seed=0,total_timesteps=2000): quoted for Hydra.
            raise UsageError(
                f"{key}={value} is a sweep's directory, not a run: each of its {len(jobs)} "
                f'jobs is one; pass one, e.g. "{key}={override_value(jobs[0])}"{whole}'
            )
        raise UsageError(
            f"{key}={value} is not a run directory (it has no .hydra/config.yaml); pass "
            f"{key}=<run>, a directory racing-rl train made, e.g. outputs/<date>/<time>_ppo_pygame"
        )


def with_resumed_backend(args: list[str]) -> list[str]:
    """``train``'s command line with ``backend=<the run's own>`` added for a single
    ``resume=`` that names none: Hydra composes the default backend, which lacks a Roblox
    run's keys that a resume may change (``backend.server.port``)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    # The overrides: without Hydra's flags and their values (--cfg job).
    words = _without_flag(args, (*CONFIG_DIR_FLAGS, *PRINT_FLAGS, *NAMING_FLAGS))
    try:
        overrides = OverridesParser.create().parse_overrides([a for a in words if a[:1] != "-"])
    except OverrideParseException:
        return args
    given = {o.key_or_group: o for o in overrides}
    resume = given.get("resume")
    if resume is None or resume.is_sweep_override() or "backend" in given:
        return args
    from racing_rl.checkpoints.runs import run_backend

    backend = run_backend(Path(str(resume.value())).expanduser())
    return [*args, f"backend={backend}"] if backend else args


def flag_value(args: Sequence[str], flags: tuple[str, ...]) -> str | None:
    """The value of Hydra's flag ``flags`` (its short and long spelling: ``--cfg hydra``,
    ``-c=job``, ``-p hydra.job``), or None where it is not given."""
    for i, arg in enumerate(args):
        flag, _, value = arg.partition("=")
        if flag in flags:
            return value or (args[i + 1] if i + 1 < len(args) else None)
    return None


def _without_flag(args: list[str], flags: tuple[str, ...]) -> list[str]:
    """``args`` without Hydra's flags ``flags`` and their values (``-cd dir``,
    ``--config-dir=dir``)."""
    kept: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg.partition("=")[0] in flags:
            skip = "=" not in arg
        else:
            kept.append(arg)
    return kept


def _check_dashed_keys(name: str, args: list[str]) -> None:
    """Refuse ``--run_dir X`` (the argparse habit), for which Hydra prints its own flags'
    usage: racing-rl's options are Hydra overrides, ``run_dir=X``; a misspelt Hydra flag
    (``--multrun``) is told the flag.

    Raises:
        UsageError: for the first ``--<name>`` that is none of Hydra's flags.
    """
    from hydra._internal.utils import get_args_parser

    flags = {o for action in get_args_parser()._actions for o in action.option_strings}
    for i, arg in enumerate(args):
        flag = arg.split("=", 1)[0]
        if not arg.startswith("--") or flag in flags:
            continue
        close = difflib.get_close_matches(flag, [f for f in flags if f[:2] == "--"], 1, 0.8)
        if close:  # --multrun, --config-dri
            raise UsageError(
                f"{flag}: no such option; did you mean {close[0]}? "
                f"(racing-rl {name} --hydra-help lists its flags)"
            )
        key = flag[2:].replace("-", "_")
        value = arg.partition("=")[2]
        if not value and i + 1 < len(args) and not args[i + 1].startswith("-"):
            value = args[i + 1]
        raise UsageError(
            f"{arg}: options are KEY=VALUE overrides, without dashes: write "
            f"{key}={value or '<value>'} (racing-rl {name} --help lists the keys)"
        )


def _check_quoted_paths(name: str, args: list[str]) -> None:
    """Say how to quote a value that Hydra's override grammar cannot read as one (it
    prints its lexer's error): a sweep job's directory (``0_seed=0,total_timesteps=2000``)
    has ``=`` and ``,``; a path in the home directory (``~/runs/r1``, as zsh and a quoted
    word leave it) has ``~``, which the grammar reads only quoted.

    Raises:
        UsageError: for the first such path of a key that names a run or a file, else for
            the first other override that reads as one value once quoted (after the key
            check: ``run_dir=~/r`` for train is no key of it).
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    from racing_rl.config import override_value, path_override

    def parses(line: str) -> bool:
        try:
            OverridesParser.create().parse_overrides([line])
        except OverrideParseException:
            return False
        return True

    keys = {*COMMANDS[name].paths, *(["init_from"] if name == "train" else [])}
    for arg in args:
        key, _, value = arg.partition("=")
        if key not in keys or value[:1] in ("'", '"'):
            continue
        if not any(c in value for c in "=, ") and parses(arg):
            continue
        if value.startswith("["):
            example = f"{key}=['<run dir>',scripted]"
            raise UsageError(
                f"{arg}: a path with '=', ',' or a space must be quoted inside the list, e.g. "
                f'racing-rl {name} "{example}"'
            )
        syntax = f"{arg}: Hydra reads '=', ',' and spaces in a value as its own syntax"
        if not any(c in value for c in "=, "):  # ~/runs/r1
            syntax = f"{arg}: Hydra's override grammar reads this path only quoted"
        sweep = "," in value and any(a in ("-m", "--multirun") for a in args)
        paths = _cut_into_paths(value) if sweep else None
        if paths is not None and len(paths) > 1:  # a sweep over several runs' paths
            each = ",".join(map(override_value, paths))
            raise UsageError(
                f'{syntax}; with -m, quote each path: racing-rl {name} -m "{key}={each}"'
            )
        several = ""
        if sweep and paths is None:  # no existing path, or not only paths
            several = f"; a sweep over several, each of them: -m \"{key}='<run a>','<run b>'\""
        raise UsageError(
            f"{syntax}; quote the path: racing-rl {name} {path_override(key, value)}{several}"
        )
    from racing_rl.usage import read_config_doc

    for arg in args:
        key, _, value = arg.partition("=")
        quoted = f"{key}={override_value(value)}"
        if arg[:1] == "-" or value[:1] in ("'", '"', "[") or parses(arg) or not parses(quoted):
            continue
        override = OverridesParser.create().parse_overrides([quoted])[0]
        doc = read_config_doc(config_dir() / f"{name}.yaml")
        _check_keys(name, [override], doc)  # a key the command lacks: say that first
        _check_hydra_settings(name, {override.key_or_group: override}, doc)
        raise UsageError(
            f"{arg}: Hydra's override grammar reads this value only quoted; quote it: "
            f"racing-rl {name} {path_override(key, value)}"
        )


def _cut_into_paths(value: str) -> list[str] | None:
    """``value`` cut at commas into paths that exist, each as short as it can be
    (``s/0_seed=0,n_races=2,s/1_seed=1,n_races=2``: a sweep's two job dirs); None where
    something is left over."""
    paths: list[str] = []
    current = ""
    for part in value.split(","):
        current = f"{current},{part}" if current else part
        if Path(current).exists():
            paths.append(current)
            current = ""
    return None if current else paths

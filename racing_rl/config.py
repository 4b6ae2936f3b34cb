"""racing-rl's one config source: Hydra's version, the OmegaConf resolvers, the
structured-config schemas and the parsing of config nodes into the frozen dataclasses.

Nothing happens on import. ``register`` adds the resolvers and the schemas; every
Hydra app (``hydra_main``) and every ``compose`` (``initialize``) calls it first.

The schemas are the config dataclasses themselves, so each default lives in one place:

* ``schema/backend/pygame`` is ``RaceConfig`` (``racing_rl.envs.config``) and
  ``schema/backend/roblox`` is ``RobloxConfig`` (``racing_rl.bridge.config``), each plus the
  ``name`` of its backend; ``conf/backend/<name>.yaml`` lists its schema first and then
  holds only comments and the values that differ from the dataclass;
* ``schema/train`` types the top level of ``conf/train.yaml`` (``TrainSchema``), whose
  defaults stay in the YAML beside their comments (``racing-rl train --help`` shows them).

A key the schema lacks, or a value of the wrong type, then fails while Hydra composes
the config, before anything starts. The backend's ranges live in its dataclasses'
``__post_init__`` (run by ``parse``); the top level's ranges, and rules across keys, in
``racing_rl.checks``.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import hashlib
import logging
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import UnionType
from typing import (
    TYPE_CHECKING,
    Any,
    NoReturn,
    TypeVar,
    Union,
    get_args,
    get_origin,
    get_type_hints,
)

from hydra.core.utils import JobReturn, JobStatus
from hydra.errors import CompactHydraException
from hydra.experimental.callback import Callback
from omegaconf import MISSING, DictConfig, OmegaConf, open_dict
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from racing_rl import config_dir
from racing_rl.errors import ConfigError, print_error

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from racing_rl.bridge.config import RobloxConfig
    from racing_rl.envs.config import RaceConfig
    from racing_rl.sim.track import TrackConfig

T = TypeVar("T")

VERSION_BASE = "1.3"
"""Hydra's ``version_base`` of every app and compose (hydra-core 1.3 defaults)."""

BACKENDS = ("pygame", "roblox")
"""``backend.name`` values: the built-in simulator, a Roblox game."""

RUNTIME_KEYS = (
    "device",
    "torch_threads",
    "progress_bar",
    "log_interval",
    "checkpoint",
    "trust_pickles",
    # How a Roblox run reaches its game (the port, token, waits).
    "backend.server",
    "backend.connect_timeout",
    "backend.reconnect_timeout",
    "backend.observation_timeout",
)
"""``train`` keys that change how a run runs, not what it learns: a resume may change
them (``racing_rl.checkpoints.runs.RESUMABLE``), and an Optuna study's identity leaves
them out (``hydra_plugins.racing_rl_sweeper``)."""


def if_then_else(condition: Any, then: Any, otherwise: Any) -> Any:
    """``${racing_rl.if:cond,then,else}``: conf/train.yaml picks the run dir with it."""
    return then if condition else otherwise


def expand_home(path: Any) -> Any:
    """``${racing_rl.expanduser:${resume}}`` (conf/train.yaml, conf/eval.yaml): ``path`` with
    a leading ``~`` made the home directory, as the commands read their paths; None stays
    None. Hydra makes its run directory as written: ``resume='~/r'`` trained in ``./~/r``."""
    return None if path is None else os.path.expanduser(str(path))


def jobs_per_machine(threads_per_job: int) -> int:
    """``${racing_rl.jobs_per_machine:${torch_threads}}`` (conf/hydra/launcher/parallel.yaml):
    how many jobs of ``threads_per_job`` cores each fit on this machine's cores."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cores or 1) // max(1, int(threads_per_job)))


def job_dirname(num: int, override_dirname: str, limit: int = 160) -> str:
    """``${racing_rl.job_dirname:${hydra.job.num},${hydra.job.override_dirname}}``
    (conf/train.yaml's sweep subdir): a sweep job's dir name, ``<job number>_<overrides>``
    (the number alone for a job without overrides) from Hydra's ``override_dirname``, short
    enough for a file system (255 bytes a name): ``algo.model.`` dropped, floats to 4
    significant digits, a path (``init_from='outputs/.../0_seed=0'``) as its last part
    without quotes (a ``/`` would nest the job's directory), and beyond ``limit``
    characters cut with a hash of the whole for uniqueness."""
    name = override_dirname.replace("algo.model.", "")
    name = re.sub(r"'([^']*)'|\"([^\"]*)\"", lambda m: _last_part(m.group(1) or m.group(2)), name)
    name = re.sub(r"(?<==)[^,=]*/[^,=]*", lambda m: _last_part(m.group()), name)
    name = re.sub(r"\d+\.\d+(?:e-?\d+)?", lambda m: f"{float(m.group()):.4g}", name)
    if len(name) > limit:
        digest = hashlib.sha1(override_dirname.encode()).hexdigest()[:8]
        name = f"{name[: limit - 9]}~{digest}"
    return f"{num}_{name}" if name else str(num)


def job_name(path: Path) -> str:
    """A job's number, read back from its directory's name (``job_dirname``'s
    ``<job number>`` or ``<job number>_<overrides>``), else the directory's name (a single
    run's ``14-03-12_ppo_pygame``)."""
    match = re.match(r"(\d+)(?:_|$)", path.name)
    return match.group(1) if match else path.name


def _last_part(path: str) -> str:
    """A path's last part (``a/b/`` -> ``b``), or the path with ``/`` as ``_`` if none."""
    return path.rstrip("/").rsplit("/", 1)[-1] or path.replace("/", "_")


def sweep_overrides(overrides: Sequence[str]) -> list[str]:
    """A sweep's command-line overrides that define what its jobs learn, sorted: those of
    ``RUNTIME_KEYS`` (``progress_bar=false``, ``torch_threads=2``) change how they run,
    and are left out. Two sweeps with the same are the same sweep (an Optuna study's
    identity; a basic sweep continued in its directory, given its sweeps in the same order:
    ``sweep_identity``)."""
    return sorted(defining_overrides(overrides))


def defining_overrides(overrides: Sequence[str]) -> list[str]:
    """``overrides`` but those of ``RUNTIME_KEYS``, in their order (``sweep_overrides``)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(list(overrides))
    return [o.input_line for o in parsed if not under(o.key_or_group, RUNTIME_KEYS)]


def sweep_identity(overrides: Sequence[str]) -> tuple[list[str], list[str]]:
    """What makes a basic sweep's jobs, and their numbers, from its command-line
    ``overrides``: its ``sweep_overrides``, and the sweeps among them (``seed=0,1``) in
    their order, which numbers the jobs. Hydra's basic sweeper runs the product of their
    values (``seed=0,1 algo=ppo,sac``: job 1 is seed=0 algo=sac; ``algo=ppo,sac seed=0,1``:
    job 1 is algo=ppo seed=1), and a job's directory is ``<job number>_<overrides>``."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(defining_overrides(overrides))
    sweeps = [o.input_line for o in parsed if o.is_sweep_override()]
    return sorted(o.input_line for o in parsed), sweeps


def recorded_sweep(sweep_dir: Path) -> list[str] | None:
    """The command-line overrides (``hydra.overrides.task``: ``seed=0,1``) of the sweep
    that ``sweep_dir/multirun.yaml`` records (the basic sweeper writes it; an Optuna
    search none); None without a readable one."""
    try:
        task = OmegaConf.select(OmegaConf.load(sweep_dir / "multirun.yaml"), "hydra.overrides.task")
    except (OSError, OmegaConfBaseException):
        return None
    return [str(o) for o in task or []]


def config_subdir(resume: Any, output_dir: str) -> str | None:
    """``${racing_rl.config_subdir:${resume},${hydra.runtime.output_dir}}`` (conf/train.yaml's
    ``hydra.output_subdir``): ``.hydra``, where Hydra saves a run's config, except for a run
    that continues (``resume=``, or a sweep's job whose directory already holds its run):
    its saved config stays the one it trained with."""
    from racing_rl.checkpoints.layout import saved_work

    return None if resume or saved_work(Path(output_dir)) else ".hydra"


def under(key: str, prefixes: Sequence[str]) -> bool:
    """Whether the dotted config ``key`` is one of ``prefixes`` or below one."""
    return any(key == p or key.startswith(p + ".") for p in prefixes)


def track_seeds(split: Sequence[int] | None, key: str) -> range:
    """The seeds of a ``[start, stop)`` range from the config (``tracks.<split>``,
    emulate's ``track_seeds``).

    Raises:
        ConfigError: unless ``split`` is two integers with start < stop (``key`` names
            the setting; None, a run config's missing range, too).
    """
    values = None if split is None else [int(v) for v in split]
    if values is None or len(values) != 2 or values[0] >= values[1]:
        raise ConfigError(
            f"Invalid config: {key}={values}; must be [start, stop) with start < stop, "
            "e.g. [0,100000]."
        )
    return range(*values)


def benchmark_seeds() -> range:
    """The held-out benchmark's track seeds: ``tracks.benchmark`` of conf/train.yaml, a
    range no training, validation or tuning ever reads (``scripts/benchmark_algos.py``,
    ``scripts/analyze_crashes.py``).

    Raises:
        ConfigError: as ``track_seeds``, for a malformed range.
    """
    tracks = OmegaConf.load(config_dir() / "train.yaml").tracks
    return track_seeds(tracks.benchmark, "tracks.benchmark")


def run_entries(run_dir: str | Sequence[Any]) -> list[str]:
    """``racing-rl eval``'s ``run_dir`` (one run dir, or a list for a race; ``scripted``
    for the scripted driver) as a list of strings."""
    return [run_dir] if isinstance(run_dir, str) else [str(r) for r in run_dir]


#: A value that Hydra's override grammar and the shell read as it is: a plain path or word
#: (a ``~`` only quoted: the grammar's lexer refuses it anywhere in an unquoted value).
_PLAIN_VALUE = r"[\w./+@%:-]+"


def override_value(value: object) -> str:
    """``value`` as the value of a Hydra override (``key=<this>``, or an item of a list,
    ``key=[<this>,...]``) that Hydra reads back as that text: as it is where it is a plain
    path or word, else single-quoted (a sweep job's directory,
    ``0_seed=0,total_timesteps=2000``), its quotes and the backslashes before them or at its
    end escaped, as the grammar asks."""
    text = str(value)
    if re.fullmatch(_PLAIN_VALUE, text):
        return text
    escaped = re.sub(r"(\\*)('|$)", lambda m: 2 * m[1] + ("\\'" if m[2] else ""), text)
    return f"'{escaped}'"


def path_override(key: str, path: object) -> str:
    """``key=path`` as a shell word that Hydra reads back as that path: quoted
    (``"key='path'"``) where the path has what Hydra's override grammar or the shell would
    read as their own (a sweep job's directory, ``0_seed=0,total_timesteps=2000``)."""
    value = override_value(path)
    return f"{key}={value}" if value == str(path) else f'"{key}={value}"'


def eval_dir(run_dir: str | Sequence[str]) -> str:
    """``${racing_rl.eval_dir:${run_dir}}`` (conf/eval.yaml): where ``racing-rl eval``
    writes: ``<run dir>/eval`` for one run; ``<first run dir>/eval/race`` for a race of
    several (``scripted`` entries are not directories)."""
    entries = run_entries(run_dir)
    runs = [r for r in entries if r != "scripted"] or entries
    return f"{runs[0]}/eval" + ("/race" if len(entries) > 1 else "")


RESOLVERS: dict[str, Callable[..., Any]] = {
    "racing_rl.if": if_then_else,
    "racing_rl.expanduser": expand_home,
    "racing_rl.jobs_per_machine": jobs_per_machine,
    "racing_rl.job_dirname": job_dirname,
    "racing_rl.config_subdir": config_subdir,
    "racing_rl.eval_dir": eval_dir,
}
"""The OmegaConf resolvers that conf/ uses, by name."""


@dataclass
class WrappersSchema:
    """The ``wrappers`` group (conf/wrappers/*.yaml; racing_rl.vec.wrap_vec_env)."""

    frame_stack: int = MISSING
    monitor: bool = MISSING
    normalize: dict[str, Any] | None = MISSING


@dataclass
class TracksSchema:
    """``tracks``: track seed ranges [start, stop), and the training tracks' generators."""

    train: list[int] = MISSING
    validation: list[int] = MISSING
    test: list[int] = MISSING
    benchmark: list[int] = MISSING
    # Not MISSING: runs saved before it existed have none.
    train_mix: list[str] = field(default_factory=list)


@dataclass
class CheckpointSchema:
    """``checkpoint``: periodic checkpoints."""

    every: int = MISSING
    keep: int | None = MISSING


@dataclass
class VideoSchema:
    """``validation.video``: a video of the policy every few validations."""

    every: int = MISSING
    max_steps: int = MISSING
    size: int = MISSING


@dataclass
class ValidationSchema:
    """``validation``: evaluation on the validation tracks during training."""

    every: int = MISSING
    max_steps: int = MISSING
    video: VideoSchema = field(default_factory=VideoSchema)


@dataclass
class TrainSchema:
    """The types of conf/train.yaml's keys; the defaults and their comments are the YAML's.

    ``backend`` is typed by its group option's schema, ``algo`` and ``logger`` are the
    arguments of classes that ``racing_rl.checks`` checks against their signatures.
    """

    backend: Any = MISSING
    wrappers: WrappersSchema = field(default_factory=WrappersSchema)
    algo: Any = MISSING
    logger: Any = None
    seed: int = MISSING
    total_timesteps: int = MISSING
    device: str = MISSING
    torch_threads: int = MISSING
    n_races: int = MISSING
    cars_per_race: int = MISSING
    scripted_opponents: int = 0  # not MISSING: runs saved before it existed have none
    progress_bar: bool = MISSING
    log_interval: int = MISSING
    resume: str | None = MISSING
    trust_pickles: bool = MISSING
    init_from: str | None = MISSING
    tracks: TracksSchema = field(default_factory=TracksSchema)
    objective: str = MISSING
    checkpoint: CheckpointSchema = field(default_factory=CheckpointSchema)
    validation: ValidationSchema = field(default_factory=ValidationSchema)


@dataclass
class EvalSchema:
    """The types of conf/eval.yaml's keys (``racing-rl eval``); defaults and comments are
    the YAML's. ``backend`` holds only what the command line changes of the run's own."""

    backend: Any = None
    run_dir: Any = MISSING  # a run dir, or a list of them (and ``scripted``) for a race
    checkpoint: str = MISSING
    split: str = MISSING
    seeds: list[int] | None = MISSING
    driver: str = MISSING
    laps: int = MISSING
    rotate_grid: bool = MISSING
    max_steps: int | None = MISSING
    rounds: int | None = MISSING
    render: str | None = MISSING
    fps: float | None = MISSING
    size: list[int] = MISSING
    follow: bool = MISSING
    record: bool = MISSING
    out_dir: str = MISSING
    device: str = MISSING
    torch_threads: int = MISSING
    trust_pickles: bool = MISSING


@dataclass
class PlaySchema:
    """The types of conf/play.yaml's keys (``racing-rl play``)."""

    backend: Any = MISSING
    seed: int = MISSING
    laps: int = MISSING
    opponent: str | None = MISSING
    checkpoint: str = MISSING
    device: str = MISSING
    torch_threads: int = MISSING
    trust_pickles: bool = MISSING
    max_steps: int = MISSING
    fps: float | None = MISSING
    camera: str = MISSING
    size: list[int] = MISSING
    record: str | None = MISSING
    script: list[str] | None = MISSING


@dataclass
class FaultsSchema:
    """``faults`` of conf/emulate.yaml: racing_rl.bridge.faults.Faults's fields."""

    inject: dict[int, str] = MISSING
    flood: list[str] = MISSING
    drop_after: int | None = MISSING
    delay: float = MISSING
    silent_after: int | None = MISSING
    lose_car_after: int | None = MISSING


@dataclass
class EmulateSchema:
    """The types of conf/emulate.yaml's keys (``racing-rl emulate``); ``sim`` is typed by
    its backend group option's schema."""

    sim: Any = MISSING
    url: str = MISSING
    token: str | None = MISSING
    lockstep: bool = MISSING
    tick_hz: float = MISSING
    heartbeat_hz: float = MISSING
    done_reward: float = MISSING
    watchdog_ticks: int = MISSING
    max_environments: int = MISSING
    hello: bool = MISSING
    info: bool = MISSING
    echo_step: bool = MISSING
    silence_timeout: float = MISSING
    track_seeds: list[int] = MISSING
    seed: int = MISSING
    record: str | None = MISSING
    faults: FaultsSchema = field(default_factory=FaultsSchema)


@dataclass
class ReplaySchema:
    """The types of conf/replay.yaml's keys (``racing-rl replay``)."""

    path: str = MISSING
    video: str | None = MISSING
    speed: float = MISSING
    camera: str = MISSING
    follow: int = MISSING
    size: list[int] = MISSING
    trail_length: int = MISSING
    script: list[str] | None = MISSING


@dataclass
class ExportSchema:
    """The types of conf/export.yaml's keys (``racing-rl export``)."""

    run_dir: str = MISSING
    checkpoint: str = MISSING
    format: str = MISSING
    out: str | None = MISSING
    device: str = MISSING
    trust_pickles: bool = MISSING


COMMAND_SCHEMAS: dict[str, type] = {
    "train": TrainSchema,
    "eval": EvalSchema,
    "play": PlaySchema,
    "emulate": EmulateSchema,
    "replay": ReplaySchema,
    "export": ExportSchema,
}
"""Each command's config schema, stored as ``schema/<command>`` for its YAML's defaults."""


def check_known_keys(cfg: DictConfig, command: str) -> None:
    """Refuse a key that ``command``'s schema (``COMMAND_SCHEMAS``) does not have, such as
    one added with Hydra's ``+key=value`` (which Hydra suggests for a misspelt key, and
    which would otherwise be ignored without a word). Fields typed ``Any`` (``backend``,
    ``algo``) are left to their own checks.

    Args:
        cfg: the command's composed config.
        command: ``train``, ``eval``, ...

    Raises:
        ConfigError: naming the unknown key, and the known one it is closest to.
    """

    def check(node: DictConfig, cls: type, where: str) -> None:
        hints = get_type_hints(cls)
        for key in map(str, node):
            if key == "hydra":
                continue
            if key not in hints:
                close = difflib.get_close_matches(key, list(hints), n=1)
                raise ConfigError(
                    f"Invalid config: unknown key {where}{key}"
                    + (f"; did you mean {where}{close[0]}?" if close else ".")
                    + f" `racing-rl {command} --help` lists the keys."
                )
            if dataclasses.is_dataclass(hints[key]) and isinstance(node[key], DictConfig):
                check(node[key], hints[key], f"{where}{key}.")

    check(cfg, COMMAND_SCHEMAS[command], "")


def misspelt_key(command: str, key: str) -> tuple[str, str | None] | None:
    """Check a dotted key of an override (``validation.evry``) against ``command``'s
    schema (``COMMAND_SCHEMAS``), walking its nested dataclasses.

    Returns:
        None if the schema has the key, or cannot tell: below a field typed ``Any`` (such
        as ``backend`` and ``algo``, which have their own checks), a dict or a list
        (``wrappers.normalize.clip_obs``, ``tracks.train.0``), or for a command without a
        schema. Else the key up to its first unknown part (or past a number, string or
        bool: ``eval checkpoint.every``), and the known key closest to that (None if none
        is close): ``("validation.evry", "validation.every")``.
    """
    return _misspelt(COMMAND_SCHEMAS.get(command), key)


def _misspelt(cls: Any, key: str) -> tuple[str, str | None] | None:
    """``misspelt_key`` below the schema ``cls`` (a dataclass, or None)."""
    where = ""
    for part in key.split("."):
        union = get_origin(cls) in (Union, UnionType)  # X | None
        types = [t for t in get_args(cls) if t is not type(None)] if union else [cls]
        if all(t in (int, float, str, bool) for t in types):
            return where + part, None
        if len(types) != 1 or not dataclasses.is_dataclass(types[0]):
            return None
        hints = get_type_hints(types[0])
        if part not in hints:
            close = difflib.get_close_matches(part, list(hints), n=1)
            return where + part, (where + close[0] if close else None)
        cls, where = hints[part], f"{where}{part}."
    return None


def integer_keys(command: str) -> set[str]:
    """The dotted keys that ``command``'s schema (``COMMAND_SCHEMAS``, nested dataclasses
    walked) types ``int``; none for a command without a schema."""

    def walk(cls: type, where: str) -> Iterator[str]:
        for key, hint in get_type_hints(cls).items():
            if hint is int:
                yield where + key
            elif dataclasses.is_dataclass(hint):
                yield from walk(hint, f"{where}{key}.")

    return set(walk(COMMAND_SCHEMAS[command], "")) if command in COMMAND_SCHEMAS else set()


def _backend_classes() -> dict[str, type]:
    from racing_rl.bridge.config import RobloxConfig
    from racing_rl.envs.config import RaceConfig

    return {"pygame": RaceConfig, "roblox": RobloxConfig}


def schema(cls: type) -> DictConfig:
    """The structured config of the dataclass ``cls``: its fields, types and defaults.

    Unlike ``OmegaConf.structured`` of a frozen dataclass, the node is writable, so that
    Hydra can merge YAML files and overrides into it; its keys and types stay fixed. (The
    config dataclasses stay frozen: they are hashed, e.g. by the track cache.)
    """
    node = OmegaConf.structured(cls)
    _writable(node)
    return node


def _writable(node: DictConfig) -> None:
    """Make ``node`` writable, and its mapping fields (``dict[K, V]``, e.g. ``faults.inject``)
    open to new keys of their key type, which Hydra's struct mode would refuse."""
    OmegaConf.set_readonly(node, None)  # None: inherit, i.e. writable at the root
    for key in node:
        child = node._get_node(key)
        if not isinstance(child, DictConfig):
            continue
        if get_origin(child._metadata.ref_type) is dict:
            OmegaConf.set_struct(child, False)
        elif not OmegaConf.is_missing(node, key):
            _writable(child)


def backend_schema(name: str) -> DictConfig:
    """The schema of the ``backend=<name>`` group option: its dataclass plus ``name``."""
    node = schema(_backend_classes()[name])
    with open_dict(node):
        node.name = name
    return node


def default_backend(name: str) -> DictConfig:
    """The ``backend=<name>`` group option as Hydra composes it: its schema (every
    default), then ``conf/backend/<name>.yaml``'s own values.

    For code that needs a backend's defaults outside a composed config (a difficulty
    level's defaults, scripts and tests that build environments directly).
    """
    values = OmegaConf.load(config_dir() / "backend" / f"{name}.yaml")
    values.pop("defaults", None)
    return OmegaConf.merge(backend_schema(name), values)


def changed_settings(values: DictConfig, defaults: DictConfig) -> DictConfig:
    """The settings of ``values`` that differ from ``defaults`` (or that it lacks), as a
    config of their own: a group option composed whole (``backend=pygame``) less its
    defaults, what its command line changed.

    A setting given on the command line with its default's value is not told apart from
    the default, and is left out.
    """
    changed, known = OmegaConf.create({}), set(_leaf_keys(defaults))
    for key in _leaf_keys(values):
        value = OmegaConf.select(values, key)
        if key not in known or value != OmegaConf.select(defaults, key):
            OmegaConf.update(changed, key, value, force_add=True)
    return changed


def with_difficulty(backend: DictConfig, difficulty: str) -> DictConfig:
    """A run's simulator settings with the tracks and rules of a difficulty level.

    Every setting that some ``conf/difficulty/*.yaml`` sets takes the value of
    ``difficulty``'s file, or the simulator's default (``racing_rl.config.default_backend``)
    where that file is silent: ``difficulty=default`` undoes a run trained on ``hard``, and
    ``difficulty=hard`` is the same held-out set whatever the run was trained on. The
    other settings (car, sensors, reward, ...) stay the run's, so its policy still fits.

    Args:
        backend: the run's ``backend`` config (the built-in simulator's).
        difficulty: a file name in ``conf/difficulty`` without ``.yaml``.

    Returns:
        A new backend config; ``backend`` is not changed.

    Raises:
        ConfigError: for an unknown difficulty, or a backend other than the simulator
            (a Roblox game makes its own tracks).
    """
    levels = {path.stem: path for path in sorted((config_dir() / "difficulty").glob("*.yaml"))}
    if difficulty not in levels:
        raise ConfigError(f"Unknown difficulty={difficulty!r}; available: {', '.join(levels)}.")
    if backend.get("name") != "pygame":
        raise ConfigError(
            f"difficulty={difficulty} sets the built-in simulator's tracks and rules; this run's "
            f"backend is {backend.get('name')!r}, whose game makes its own. Leave difficulty out."
        )
    defaults = default_backend("pygame")
    files = {name: OmegaConf.load(path) for name, path in levels.items()}
    level = files[difficulty]
    governed = sorted({key for file in files.values() for key in _leaf_keys(file)})
    result = backend.copy()
    for key in governed:
        value = OmegaConf.select(level, key, default=OmegaConf.select(defaults, key))
        OmegaConf.update(result, key, value, force_add=True)
    return result


def train_mix(cfg: DictConfig, *, say: bool = True) -> list[TrackConfig]:
    """The track generators of ``tracks.train_mix``: each difficulty level's track
    settings (``with_difficulty``) on the run's own backend, in the list's order.

    Args:
        cfg: a composed ``train`` config.
        say: log the line that says a mix is left out (off where the config is only checked,
            so that a run says it once).

    Returns:
        One ``TrackConfig`` per name; empty when the mix is, and for a backend other than
        the built-in simulator (a Roblox game makes its own tracks; logged, at INFO: the
        default mix is left out of every ``backend=roblox`` run).

    Raises:
        ConfigError: for an unknown level, or one whose track settings the run's car and
            rules cannot race on (``RaceConfig``'s checks).
    """
    names = list(OmegaConf.select(cfg, "tracks.train_mix", default=None) or [])
    if names and cfg.backend.get("name") != "pygame":
        if say:
            log.info(
                "tracks.train_mix=%s draws the built-in simulator's training tracks; "
                "backend=%s's game makes its own tracks: left out.",
                names,
                cfg.backend.get("name"),
            )
        return []
    configs = []
    for name in names:
        try:  # a level's track settings with the run's car and rules (rules.dt)
            backend = backend_config(with_difficulty(cfg.backend, name))
        except ConfigError as err:
            raise ConfigError(f"Invalid config: tracks.train_mix={names}: {err}") from err
        configs.append(backend.track)  # type: ignore[union-attr]
    return configs


def _leaf_keys(node: DictConfig, prefix: str = "") -> list[str]:
    """Dotted paths of a config's leaf values, e.g. ``track.width``."""
    keys = []
    for key, value in node.items():
        path = f"{prefix}{key}"
        keys += _leaf_keys(value, f"{path}.") if isinstance(value, DictConfig) else [path]
    return keys


def register() -> None:
    """Register racing-rl's resolvers and schemas with OmegaConf and Hydra's ConfigStore.

    Idempotent; ``hydra_main`` and ``initialize`` call it before Hydra composes.
    """
    from hydra.core.config_store import ConfigStore

    for name, resolver in RESOLVERS.items():
        OmegaConf.register_new_resolver(name, resolver, replace=True)
    store = ConfigStore.instance()
    for name in BACKENDS:
        store.store(group="schema/backend", name=name, node=backend_schema(name))
    for name, cls in COMMAND_SCHEMAS.items():
        store.store(group="schema", name=name, node=schema(cls))


def hydra_main(config_name: str) -> Callable[[Callable[[DictConfig], Any]], Callable[..., Any]]:
    """``@hydra.main`` of the command config ``conf/<config_name>.yaml``, with ``register``
    run before Hydra composes it, and the composed config's keys checked against the
    command's schema (``check_known_keys``; exit status 1 with one logged line) before the
    task runs.

    The decorated function keeps the task as ``__wrapped__`` (as ``hydra.main`` does).
    """
    import hydra

    def decorator(task: Callable[[DictConfig], Any]) -> Callable[..., Any]:
        @functools.wraps(task)
        def checked(cfg: DictConfig) -> Any:
            try:
                check_known_keys(cfg, config_name)
            except ConfigError as err:
                logging.getLogger(task.__module__).error("%s", err)
                job_failed(err)
            return task(cfg)

        app = hydra.main(
            config_path=str(config_dir()), config_name=config_name, version_base=VERSION_BASE
        )(checked)

        @functools.wraps(task)
        def main(*args: Any, **kwargs: Any) -> Any:
            register()
            return app(*args, **kwargs)

        return main

    return decorator


class SweepSignals(Callback):
    """Hydra callback base of the commands' own (``train.CheckConfig``,
    ``evaluate.CheckRuns``): once a sweep starts, a signal to this process stops it, and a
    sweep's worker process whose sweep has gone ends with its job (``racing_rl.interrupts``:
    a joblib worker would idle for minutes)."""

    def continue_with(self, config: DictConfig) -> str:
        """How to continue the sweep of ``config`` once a signal stopped it ("" if the
        command has no way): the end of the signal's message."""
        return ""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Note the sweep's start (``interrupts.sweep_started``)."""
        from racing_rl.interrupts import sweep_started

        sweep_dir = Path(str(OmegaConf.select(config, "hydra.sweep.dir")))
        launcher = str(OmegaConf.select(config, "hydra.launcher._target_"))
        sweep_started(sweep_dir, launcher, then=self.continue_with(config))

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        """In a sweep's worker process, note a signal during the job
        (``interrupts.job_started``)."""
        from racing_rl.interrupts import job_started

        job_started()

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        """End a worker process whose sweep has gone (``interrupts.job_ended``)."""
        from racing_rl.interrupts import job_ended

        job_ended(failed=job_return.status == JobStatus.FAILED)


def check_output_dir(directory: Path, key: str, file: str) -> None:
    """Refuse an output directory that cannot be made or written (``files.cannot_write`` of
    the ``file`` that Hydra writes there first), before Hydra makes it and opens its log
    there: Hydra's OSError, or logging's "Unable to configure handler 'file'", came as a
    traceback.

    Args:
        directory: the command's output directory (``hydra.run.dir``, ``hydra.sweep.dir``).
        key: the setting that names it, said in the message (eval's ``out_dir``).
        file: a run's log (``<hydra.job.name>.log``), a sweep's ``multirun.yaml``.

    Raises:
        ConfigError: ``cannot write into out_dir=ro/eval: ro does not accept new files
            (...); pass out_dir=<a directory you can write>``.
    """
    from racing_rl.files import cannot_write

    if why := cannot_write(directory / file):
        raise ConfigError(
            f"cannot write into {key}={directory}: {why}; pass {key}=<a directory you can write>"
        )


class CheckOutputDir(Callback):
    """Hydra callback (``hydra.callbacks`` in conf/eval.yaml and conf/emulate.yaml): refuse,
    in one line, an output directory that cannot be made or written (``check_output_dir``):
    a read-only run dir's ``<run dir>/eval``, a read-only working directory's ``outputs/``.
    (``racing_rl.train.CheckConfig`` checks train's, once its config is valid.)

    Args:
        key: the setting that names the directory, said in the message (eval's ``out_dir``,
            which ``hydra.run.dir`` follows).
    """

    def __init__(self, key: str = "hydra.run.dir") -> None:
        self.key = key

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Check ``hydra.run.dir``.

        Raises:
            SystemExit: 1, after printing the reason (``racing_rl.errors.print_error``).
        """
        self._check(config, "hydra.run.dir", self.key)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Check ``hydra.sweep.dir`` (where Hydra writes multirun.yaml), as ``on_run_start``."""
        self._check(config, "hydra.sweep.dir", "hydra.sweep.dir", "multirun.yaml")

    @staticmethod
    def _check(config: DictConfig, node: str, key: str, file: str | None = None) -> None:
        """``check_output_dir`` of ``node``'s directory, for ``file`` (the command's log
        by default)."""
        name = str(OmegaConf.select(config, "hydra.job.name"))
        directory = Path(str(OmegaConf.select(config, node)))
        try:
            check_output_dir(directory, key, file or f"{name}.log")
        except ConfigError as err:
            print_error(name, err)
            raise SystemExit(1) from err


class SweepJobFailed(CompactHydraException):
    """A sweep job's racing-rl error (or its interruption, in a worker process), raised so
    that Hydra marks the job failed and ends the sweep with status 1. Hydra prints a
    ``CompactHydraException`` as its message alone, after "Error executing job with
    overrides: [...]", without a stack."""


def job_failed(err: Exception) -> NoReturn:
    """End the running Hydra job on ``err``, whose message the caller has logged.

    Raises:
        SystemExit: 1, in a single run.
        SweepJobFailed: in a sweep's job (``-m``), so that Hydra marks the job failed and
            the sweep's other jobs go on (a SystemExit would end the sweep there).
    """
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        raise SweepJobFailed(f"{type(err).__name__}: {err}") from None
    raise SystemExit(1) from err


@contextmanager
def initialize(job_name: str | None = None) -> Iterator[None]:
    """Hydra's ``initialize_config_dir`` on racing-rl's conf/, after ``register``: inside
    it, ``hydra.compose("train", overrides=[...])`` composes a command's config."""
    from hydra import initialize_config_dir

    register()
    with initialize_config_dir(str(config_dir()), version_base=VERSION_BASE, job_name=job_name):
        yield


def to_container(values: Any) -> Any:
    """Resolve an OmegaConf node into plain Python containers; pass other values through."""
    if isinstance(values, DictConfig) or OmegaConf.is_list(values):
        return OmegaConf.to_container(values, resolve=True)
    return values


def parse(cls: type[T], values: Mapping[str, Any] | None, where: str) -> T:
    """Build the (nested) frozen dataclass ``cls`` from a mapping, checked by its schema.

    Args:
        cls: a dataclass type; fields that are dataclasses are built recursively.
        values: field values; missing fields keep their defaults. A DictConfig is fine.
        where: the config path of ``values`` (e.g. ``"backend"``), for messages.

    Returns:
        The dataclass instance.

    Raises:
        ConfigError: on an unknown key, a value of the wrong type or one the dataclass
            rejects (``__post_init__``), naming the key.
    """
    try:
        return OmegaConf.to_object(OmegaConf.merge(schema(cls), values or {}))
    except OmegaConfBaseException as err:
        full_key = getattr(err, "full_key", None)
        key = f"{where}.{full_key}" if full_key else where
        why = str(err).strip().splitlines()[0]
        found = _misspelt(cls, str(full_key)) if isinstance(err, ConfigKeyError) else None
        if found is not None and found[1] is not None:  # Key 'car_colisions' not in ...
            why += f"; did you mean {where}.{found[1]}?"
        elif isinstance(err, ConfigKeyError) and dataclasses.is_dataclass(err.object_type):
            keys = ", ".join(field.name for field in dataclasses.fields(err.object_type))
            why += f"; leave it out (its keys: {keys})"
        raise ConfigError(f"Invalid config: {key}: {why}") from err
    except ConfigError as err:
        raise ConfigError(f"Invalid config: {where}.{err}") from err
    except (TypeError, ValueError) as err:
        raise ConfigError(f"Invalid value in {where}: {err}") from err


def backend_config(
    backend: DictConfig | Mapping[str, Any],
    episode: Mapping[str, Any] | None = None,
    where: str = "backend",
) -> RaceConfig | RobloxConfig:
    """The checked settings of the ``backend`` config group: ``RaceConfig`` (``name:
    pygame``, the built-in simulator) or ``RobloxConfig`` (``name: roblox``, a game).

    Args:
        backend: the ``backend`` group, or a saved run's (``.hydra/config.yaml``).
        episode: overrides of ``backend.episode`` (e.g. grid spawn for evaluation).
        where: the group's config path, for messages (``sim`` in ``racing-rl emulate``).

    Raises:
        ConfigError: on a value that is no mapping (``racing-rl emulate sim=abc``), an
            unknown backend, an unknown key or an invalid value.
    """
    if not isinstance(backend, DictConfig | Mapping):
        raise ConfigError(
            f"Invalid config: {where}={backend!r}; {where} is a mapping of settings: set its "
            f"keys one by one, such as {where}.sensors.n_rays=16."
        )
    name = backend.get("name")
    classes = _backend_classes()
    if name not in classes:
        raise ConfigError(
            f"Invalid config: {where}.name={name!r}; must be one of {', '.join(BACKENDS)} "
            "(backend=pygame: the built-in simulator; backend=roblox: a game over the bridge)."
        )
    settings = {k: v for k, v in to_container(backend).items() if k != "name"}
    settings["episode"] = {**(settings.get("episode") or {}), **(episode or {})}
    return parse(classes[name], settings, where)

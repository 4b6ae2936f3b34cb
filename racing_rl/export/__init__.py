"""``racing-rl export``: a trained driver as one self-contained file, Luau or ONNX.

``export(cfg)`` loads a run's checkpoint the way ``racing-rl eval`` does
(``racing_rl.checkpoints.runs.load_policy_driver``: the model, the run's frame stack and frozen
VecNormalize statistics), reads it into a ``PolicySpec`` (``spec.py``) and writes it as a
Roblox ModuleScript (``luau.py``) or an ONNX model (``onnx.py``). The file is written
beside its final name and renamed into place, so a failed export leaves no file.
``runtime.py`` runs exported files (a Luau VM, onnxruntime) for ``racing-rl eval
driver=luau|onnx`` and the tests. The Hydra app is ``racing_rl.export.app``.
"""

from __future__ import annotations

import importlib.util
import logging
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from racing_rl import __version__
from racing_rl.checkpoints.layout import MODEL
from racing_rl.contract import STATE_SIZE
from racing_rl.errors import ConfigError, ExportError
from racing_rl.export.spec import PolicySpec, policy_spec
from racing_rl.files import cannot_write, write_atomic
from racing_rl.provenance import trained_game

log = logging.getLogger(__name__)

#: ``format=`` values and their file suffixes.
FORMATS = {"luau": ".luau", "onnx": ".onnx"}


def check_format(fmt: str) -> str:
    """``fmt`` if it is one of ``FORMATS``.

    Raises:
        ConfigError: otherwise, naming the formats.
    """
    if fmt not in FORMATS:
        raise ConfigError(
            f"Invalid config: format={fmt!r}; must be one of {', '.join(FORMATS)} "
            "(luau: a Roblox ModuleScript; onnx: an ONNX model)."
        )
    return fmt


def checkpoint_name(run_dir: Path, model: Path) -> str:
    """How an exported file names its checkpoint, without the machine's directories (the
    file ships inside a game): ``<run name>/<path in the run>`` (``default_s0/best/model.zip``;
    run_dir=. too), and one from outside the run by its checkpoint directory and file
    (``ppo_5120_steps/model.zip``), or a model ``.zip`` of another name by its file name.
    """
    model, run = model.resolve(), run_dir.resolve()
    if model.is_relative_to(run):
        return f"{run.name}/{model.relative_to(run).as_posix()}"
    return f"{model.parent.name}/{model.name}" if model.name == MODEL else model.name


def load_spec(
    run_dir: Path, checkpoint: str = "best", device: str = "cpu", trust_pickles: bool = False
) -> PolicySpec:
    """A run's checkpoint as a ``PolicySpec``, with the facts an exported file states.

    Args:
        run_dir: the run directory.
        checkpoint: ``final | best | latest | <name under checkpoints/> | <model .zip or
            checkpoint dir>``.
        device: where to load the model (the weights are copied to the CPU).
        trust_pickles: read an old run's ``vecnormalize.pkl`` when it has no
            ``vecnormalize.npz`` (docs/checkpoints.md).

    Raises:
        CheckpointError: if the run, the checkpoint or its statistics are missing or damaged.
        ExportError: if the policy has parts export does not translate.
    """
    from racing_rl.checkpoints.runs import load_policy_driver, load_run_config
    from racing_rl.config import backend_config

    run_cfg = load_run_config(run_dir)
    # The simulator's config states its observation size; a Roblox run's is the game's
    # (None: the checkpoint's, as the game sent it).
    backend = backend_config(run_cfg.backend)
    observation_size = backend.observation_size
    cfg = OmegaConf.create(
        {"checkpoint": checkpoint, "device": device, "trust_pickles": trust_pickles}
    )
    driver = load_policy_driver(run_dir, cfg, observation_size)
    n_rays = driver.observation_size - STATE_SIZE
    sensors = getattr(backend, "sensors", None)  # a Roblox run's are the game's
    info = {
        "checkpoint": checkpoint_name(run_dir, Path(driver.checkpoint)),
        "timesteps": int(driver.model.num_timesteps),
        "ray_count": int(n_rays),
        # fan or roblox_car (the simulator's SensorConfig.layout); game: the game's rays
        "ray_layout": sensors.layout if sensors is not None else "game",
        # The model id of the game it trained with (run.json), "" for the simulator.
        "game_model_id": str(trained_game(run_dir).get("model_id") or "")
        if sensors is None
        else "",
        "racing_rl_version": __version__,
    }
    return policy_spec(driver.model, driver.normalizer, driver.frame_stack, info)


def writer(fmt: str) -> Callable[[PolicySpec, Path], None]:
    """The function that writes a spec in format ``fmt`` to a path.

    Raises:
        ConfigError: for a format other than ``luau`` or ``onnx``.
        ExportError: for ``onnx`` without the ``onnx`` package (the ``export`` extra).
    """
    check_format(fmt)
    if fmt == "luau":
        from racing_rl.export.luau import luau_source

        return lambda spec, path: path.write_text(luau_source(spec), encoding="utf-8")
    if importlib.util.find_spec("onnx") is None:
        raise ExportError(
            "Writing ONNX needs the onnx package, which is not installed: pip install "
            "'racing-rl[export]' (format=luau needs nothing more)."
        )
    from racing_rl.export.onnx import write_onnx

    return write_onnx


def default_out(run_dir: Path, checkpoint: str, fmt: str) -> Path:
    """``<run dir>/export/policy_<checkpoint>.<luau|onnx>`` (a path's last part names it)."""
    name = checkpoint if checkpoint in ("best", "final", "latest") else Path(checkpoint).stem
    if name == "model":  # .../<checkpoint dir>/model.zip
        name = Path(checkpoint).parent.name
    return run_dir / "export" / f"policy_{name}{FORMATS[fmt]}"


def output_path(out: str | None, run_dir: Path, checkpoint: str, fmt: str) -> Path:
    """The file an export writes: ``out``; or, when ``out`` is a directory (exists as one,
    ends in ``/``, or is new and has no suffix: ``out=exports``), ``default_out``'s name
    after the run's (``<run dir name>_policy_best.luau``: a sweep over runs into one
    directory writes a file per run); or ``default_out`` without ``out``.

    Raises:
        ConfigError: if ``out``'s suffix is not the format's (``.luau`` with
            ``format=onnx``; ``model.zip``, which would replace a checkpoint), or ``out``
            is an existing file without a suffix (neither a directory nor an export).
    """
    default = default_out(run_dir, checkpoint, fmt)
    if not out:
        return default
    path = Path(out).expanduser()
    if str(out).endswith(("/", "\\")) or path.is_dir() or not (path.suffix or path.exists()):
        return path / f"{run_dir.resolve().name}_{default.name}"
    suffix = path.suffix.lower()
    if suffix == FORMATS[fmt]:
        return path
    other = {suffix: name for name, suffix in FORMATS.items() if name != fmt}
    if suffix in other:
        raise ConfigError(
            f"out={out} names a {suffix} file ({other[suffix]}), but format={fmt}: name it "
            f"{path.with_suffix(FORMATS[fmt]).name}, or pass format={other[suffix]}."
        )
    what = f"a {suffix} file" if suffix else "an existing file that is not a directory"
    raise ConfigError(
        f"out={out} is {what}: an export writes a {FORMATS[fmt]} file (format={fmt}) and "
        f"replaces no other. Name it {path.with_suffix(FORMATS[fmt]).name}, or give a "
        "directory to write it into (out=exports/)."
    )


def check_replaceable(path: Path, fmt: str) -> None:
    """Refuse to write over a file at ``path`` that is not an earlier racing-rl export.

    An earlier export is recognised by what racing-rl writes into it: the Luau module's
    header (``A racing-rl driver, exported for Roblox``) or the ONNX model's
    ``producer_name`` (``racing-rl``).

    Args:
        path: the file an export is about to write (``output_path``).
        fmt: ``luau`` or ``onnx``.

    Raises:
        ConfigError: if ``path`` is a file that racing-rl export did not write (a game's
            own script, another program's model); the file is kept.
    """
    if not path.is_file():
        return
    if fmt == "luau":
        from racing_rl.export.luau import HEADER_MARK

        with path.open("rb") as file:
            ours = HEADER_MARK.encode() in file.read(256)
    else:
        import onnx
        from google.protobuf.message import DecodeError

        from racing_rl.export.onnx import PRODUCER

        try:
            ours = onnx.load(str(path), load_external_data=False).producer_name == PRODUCER
        except DecodeError:  # not an ONNX model at all
            ours = False
    if not ours:
        raise ConfigError(
            f"{path} exists and is not a file racing-rl export wrote: an export replaces "
            "only an earlier export, and this file is kept. Move it away, or choose "
            "another out=."
        )


def export(cfg: DictConfig) -> dict[str, Any]:
    """``racing-rl export``: write a run's checkpoint as one Luau or ONNX file.

    Args:
        cfg: the export config (``conf/export.yaml``): ``run_dir``, ``checkpoint``,
            ``format``, ``out``, ``device``, ``trust_pickles``.

    Returns:
        ``path`` (the file written), ``bytes``, ``format``, ``algorithm``, ``checkpoint``,
        ``timesteps``.

    Raises:
        ConfigError: without a ``run_dir``, for a format other than ``luau`` or ``onnx``,
            or an ``out`` that is a file racing-rl did not export (``check_replaceable``).
        CheckpointError: if the run, checkpoint or statistics are missing or damaged.
        ExportError: if the policy has parts export does not translate, ``onnx``
            lacks its package (``writer``), or ``out`` cannot be written (an earlier
            file there is kept).
    """
    if OmegaConf.is_missing(cfg, "run_dir"):
        raise ConfigError(
            "No run_dir given: name the run to export, e.g. "
            "racing-rl export run_dir=outputs/<date>/<time>_ppo_pygame format=luau."
        )
    fmt = check_format(str(cfg.format))
    write = writer(fmt)
    run_dir = Path(str(cfg.run_dir)).expanduser()
    out = output_path(cfg.get("out"), run_dir, str(cfg.checkpoint), fmt)
    check_replaceable(out, fmt)
    spec = load_spec(run_dir, str(cfg.checkpoint), str(cfg.device), bool(cfg.trust_pickles))
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(out, lambda tmp: write(spec, tmp))
    except OSError as err:  # not writable, a file where a directory should be, disk full
        # A failure while writing (a full disk) is about the temporary file: say it of out.
        why = cannot_write(out) or str(err.strerror or err)
        kept = "; the earlier file there is kept" if out.is_file() else ""
        raise ExportError(
            f"Cannot write out={out}: {why}{kept}. Choose an out= in a directory you can "
            "write (or none: <run dir>/export/)."
        ) from err
    return {
        "path": str(out),
        "bytes": out.stat().st_size,
        "format": fmt,
        "algorithm": spec.algorithm,
        "checkpoint": spec.info["checkpoint"],
        "timesteps": spec.info["timesteps"],
    }


def load_exported_driver(run_dir: Path, cfg: DictConfig, fmt: str) -> Any:
    """A run's checkpoint exported on the fly to ``fmt`` and loaded into its runtime, as a
    race driver (``racing-rl eval driver=luau|onnx``).

    Args:
        run_dir: the run.
        cfg: the eval config (``checkpoint``, ``device``, ``trust_pickles``).
        fmt: ``luau`` (a Luau VM) or ``onnx`` (onnxruntime).

    Raises:
        ConfigError, CheckpointError, ExportError: as ``export``.
    """
    from racing_rl.checkpoints.layout import resolve_model
    from racing_rl.export.runtime import ExportedDriver, LuauPolicy, OnnxPolicy

    write = writer(fmt)
    trust = bool(cfg.get("trust_pickles", False))
    spec = load_spec(run_dir, str(cfg.checkpoint), str(cfg.get("device", "cpu")), trust)
    with tempfile.TemporaryDirectory(prefix="racing_rl_export_") as tmp:
        path = Path(tmp) / f"policy{FORMATS[fmt]}"
        write(spec, path)
        policy = LuauPolicy.from_file(path) if fmt == "luau" else OnnxPolicy(path)
    label = f"{run_dir.resolve().name} ({fmt})"
    model = resolve_model(run_dir, str(cfg.checkpoint))  # as the policy driver reports it
    return ExportedDriver(policy, label, str(run_dir), f"{model} as {fmt}", spec.observation_size)

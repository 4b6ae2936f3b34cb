"""Where a run's checkpoints are: file names, the ``Checkpoint`` record, finding them.

The layout of a checkpoint directory is ``racing_rl.checkpoints``'s docstring.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from racing_rl.errors import CheckpointError

MODEL = "model.zip"
STATISTICS = "vecnormalize.npz"
#: SB3's pickles: written for SB3's tools (statistics only), read only with trust_pickles.
VECNORMALIZE_PICKLE = "vecnormalize.pkl"
REPLAY_BUFFER_PICKLE = "replay_buffer.pkl"
REPLAY_BUFFER = "replay_buffer.npz"
MANIFEST = "checkpoint.json"
#: The figures of an episode that the manifest keeps (its ``episodes``): VecMonitor's.
EPISODE_KEYS = ("r", "l", "t")
#: Kinds that are not periodic; ``keep`` never prunes them.
INTERRUPTED, FINAL = "interrupted", "final"
#: The replay buffer's arrays saved in ``replay_buffer.npz`` (None ones are skipped).
BUFFER_ARRAYS = ("observations", "next_observations", "actions", "rewards", "dones", "timeouts")
REPLAY_BUFFER_VERSION = 2
"""2: only the filled rows (``[:pos]`` until the buffer is full); 1 (still read): every
row of the buffer's capacity."""


def filled_rows(buffer: Any, pos: int, full: bool) -> int:
    """The rows of a replay buffer's arrays that hold transitions (what format 2 saves).

    Every row once ``full``; else those before ``pos``, and with
    ``optimize_memory_usage`` (no ``next_observations``: the next observation of row ``i``
    is ``observations[i + 1]``) the row at ``pos`` too.
    """
    if full:
        return int(buffer.buffer_size)
    return min(pos + int(bool(buffer.optimize_memory_usage)), int(buffer.buffer_size))


@dataclass(frozen=True)
class Checkpoint:
    """A saved checkpoint directory.

    Attributes:
        path: the directory.
        timesteps: the model's ``num_timesteps`` when it was saved.
        kind: algorithm name (periodic), ``interrupted`` or ``final``.
        validation_due: training stopped before the validation due at ``timesteps`` ran
            to its end (a Ctrl-C in it): a run resumed from here validates first.
    """

    path: Path
    timesteps: int
    kind: str
    validation_due: bool = False

    @property
    def model(self) -> Path:
        return self.path / MODEL

    @property
    def statistics(self) -> Path:
        return self.path / STATISTICS

    @property
    def replay_buffer(self) -> Path:
        return self.path / REPLAY_BUFFER


def swap_paths(directory: Path) -> tuple[Path, Path]:
    """Where ``saving.replace_directory`` builds ``directory`` anew and puts the old one
    aside: ``(.<name>.partial, .<name>.old)`` beside it."""
    return (
        directory.with_name(f".{directory.name}.partial"),
        directory.with_name(f".{directory.name}.old"),
    )


def swapped_in(directory: Path) -> Path:
    """``directory``, or where its new files are while a swap is cut short.

    A process killed between ``replace_directory``'s two renames leaves ``directory``
    missing and its complete new files in ``.<name>.partial`` (``.<name>.old`` marks that
    state); readers take those, and the next save of ``directory`` puts them in place.
    """
    partial, old = swap_paths(directory)
    if not directory.exists() and old.exists() and partial.is_dir():
        return partial
    return directory


#: At one timestep a run saves a periodic checkpoint before an interrupted one (Ctrl-C
#: during the periodic save) and before the final one: the order ``find_checkpoints``
#: keeps, whatever the files' times (a copied run's are the copy's).
_SAVE_ORDER = {INTERRUPTED: 1, FINAL: 2}


def _read_checkpoint(directory: Path) -> Checkpoint | None:
    """The checkpoint in ``directory``; None unless it has a readable manifest and a
    ``model.zip``."""
    try:
        data = json.loads((directory / MANIFEST).read_text())
        checkpoint = Checkpoint(
            directory,
            int(data["timesteps"]),
            str(data["kind"]),
            bool(data.get("validation_due", False)),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return checkpoint if checkpoint.model.is_file() else None


def _saved(run_dir: Path) -> list[Path]:
    """The checkpoint directories of a run, complete or not; hidden ones (``.<name>.partial``:
    a save or a deletion under way, or cut short) left out."""
    return [
        directory
        for directory in sorted((run_dir / "checkpoints").glob("*"))
        if directory.is_dir() and not directory.name.startswith(".")
    ]


def find_checkpoints(run_dir: Path) -> list[Checkpoint]:
    """The complete checkpoints of a run, oldest first: by timesteps, then in the order a
    run saves them at one timestep (periodic, interrupted, final), then by the manifest's
    modification time.

    Directories without a readable ``checkpoint.json`` and a ``model.zip`` (partial or
    damaged saves: ``damaged_checkpoints``) are skipped, and hidden ones.
    """
    found = []
    for directory in _saved(run_dir):
        checkpoint = _read_checkpoint(directory)
        if checkpoint is not None:
            order = _SAVE_ORDER.get(checkpoint.kind, 0)
            mtime = (directory / MANIFEST).stat().st_mtime_ns
            found.append((checkpoint.timesteps, order, mtime, checkpoint))
    return [checkpoint for *_, checkpoint in sorted(found, key=lambda t: t[:3])]


def damaged_checkpoints(run_dir: Path) -> list[Path]:
    """The checkpoint directories of a run that ``find_checkpoints`` skips: no readable
    ``checkpoint.json`` (a damaged file) or no ``model.zip``."""
    return [directory for directory in _saved(run_dir) if _read_checkpoint(directory) is None]


def latest_checkpoint(run_dir: Path) -> Checkpoint:
    """The newest complete checkpoint of a run.

    Raises:
        CheckpointError: if the run has none.
    """
    checkpoints = find_checkpoints(run_dir)
    if not checkpoints:
        then = "A run stopped before that has nothing to go on from: start it again."
        if models := saved_models(run_dir):
            then = (
                f"It has checkpoint={'|'.join(models)}, which eval takes, and "
                f"init_from={run_dir} starts a new run from; a resume needs a checkpoint."
            )
        raise CheckpointError(
            f"{run_dir} has no complete checkpoint under checkpoints/: a run saves one every "
            "checkpoint.every timesteps, at the end, and on Ctrl-C once it has trained (PPO: "
            f"after its first update). {then}"
        )
    return checkpoints[-1]


def saved_models(run_dir: Path) -> list[str]:
    """Which of ``checkpoint=final`` (``model.zip``) and ``best`` (``best/model.zip``) a
    run has, in that order."""
    models = ((FINAL, run_dir / MODEL), ("best", swapped_in(run_dir / "best") / MODEL))
    return [name for name, path in models if path.is_file()]


def resolve_model(run_dir: Path, checkpoint: str) -> Path:
    """The ``model.zip`` of ``checkpoint`` = final | best | latest | <name> | <path> of a run.

    ``latest`` is the newest complete checkpoint under ``checkpoints/``; a name is one of
    them (``ppo_5120_steps``); a path may name a model ``.zip`` or a checkpoint directory.
    The statistics are the files beside it.

    Raises:
        CheckpointError: if the model file is missing.
    """
    if checkpoint == FINAL:
        model = run_dir / MODEL
    elif checkpoint == "best":
        model = swapped_in(run_dir / "best") / MODEL
    elif checkpoint == "latest":
        model = latest_checkpoint(run_dir).model
    else:
        model = Path(checkpoint).expanduser()
        named = run_dir / "checkpoints" / checkpoint  # checkpoint=ppo_5120_steps
        bare = Path(checkpoint).name == checkpoint and model.suffix != ".zip"
        # A bare name is the run's own first: a directory of that name where the command
        # runs was taken for it (a race's every car then drove that one model).
        found = named.is_dir() and (bare or not model.exists())
        if found or (bare and not model.exists()):
            model = named  # a bare name not found is said as the run's
        if model.is_dir():
            model = model / MODEL
    if not model.is_file():
        others = [name for name in saved_models(run_dir) if name != checkpoint]
        newest = ""
        if checkpoints := find_checkpoints(run_dir):
            others += ["latest"] if checkpoint != "latest" else []
            named = [c.path.name for c in checkpoints[::-1] if c.path.name != checkpoint]
            others += named[:3]
            if len(named) > 3:
                newest = f"; {len(named) - 3} older under {run_dir / 'checkpoints'}"
        why = ""
        if checkpoint == "best":
            why = " (validation writes it: the run had validation.every=0, or stopped first)"
        finals = [c for c in find_checkpoints(run_dir) if c.kind == FINAL]
        if checkpoint == FINAL and finals:  # killed between the final checkpoint and these
            why = (
                f" (the run's final save was cut short after {finals[-1].path.name}, the same "
                "model: racing-rl train resume=<this run dir> finishes it)"
            )
        hint = f"; this run has checkpoint={'|'.join(others)}{newest}" if others else ""
        raise CheckpointError(
            f"Checkpoint {checkpoint!r} not found: {model} does not exist{why}{hint}. "
            "checkpoint= takes final, best, latest, the name of one under checkpoints/, or "
            "a path to a model .zip or a checkpoint directory."
        )
    return model


def newer_than_final(run_dir: Path) -> Checkpoint | None:
    """The run's newest checkpoint where it is newer than the final model
    (``checkpoint=final``: the run dir's ``model.zip``, saved with the newest ``final``
    checkpoint): a leg resumed after the run completed, interrupted or still training.
    None where the final model is the newest, or the run has no final checkpoint."""
    checkpoints = find_checkpoints(run_dir)
    finals = [c for c in checkpoints if c.kind == FINAL]
    if finals and checkpoints[-1].timesteps > finals[-1].timesteps:
        return checkpoints[-1]
    return None


def saved_work(run_dir: Path) -> list[str]:
    """What a run has saved in ``run_dir``: of ``model.zip``, ``best/`` and the entries of
    ``checkpoints/``, those that exist (empty for a run stopped before its first save)."""
    found = [name for name in (MODEL, "best") if (run_dir / name).exists()]
    return found + [f"checkpoints/{p.name}" for p in sorted((run_dir / "checkpoints").glob("*"))]

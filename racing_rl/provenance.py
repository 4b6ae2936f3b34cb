"""What a run needs to be rerun (the code's git commit, package versions, the machine),
and its history: ``run.json``, one entry ("leg") per invocation of ``racing-rl train``.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import shlex
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from racing_rl.files import write_json

log = logging.getLogger(__name__)

#: Distributions whose versions decide what a run computes.
PACKAGES = (
    "racing-rl",
    "stable-baselines3",
    "sb3-contrib",
    "torch",
    "numpy",
    "gymnasium",
    "pettingzoo",
    "supersuit",
    "hydra-core",
    "omegaconf",
    "websockets",
    "pygame",
    "tensorboard",
)


def package_versions() -> dict[str, str | None]:
    """Installed version of each of ``PACKAGES`` (None if not installed)."""
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_state(path: Path | None = None) -> dict[str, Any]:
    """The git commit of the racing-rl source tree and whether it has uncommitted changes.

    Args:
        path: a directory inside the work tree; defaults to the ``racing_rl`` package's.

    Returns:
        ``{"commit": sha, "dirty": bool}``, or ``{"commit": None, "error": why}`` when the
        code is not in a git work tree (e.g. installed from a wheel) or git is missing.
    """
    cwd = path or Path(__file__).resolve().parent

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError) as err:
        return {"commit": None, "error": f"{type(err).__name__}: {err}"}
    return {"commit": commit, "dirty": dirty}


def environment_record() -> dict[str, Any]:
    """Git state, package versions, Python and platform, as a JSON-ready dict."""
    return {
        "git": git_state(),
        "packages": package_versions(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "host": platform.node(),
    }


def job_command(name: str) -> str:
    """``racing-rl <name>`` with the overrides of the running Hydra job ("" outside one):
    what reproduces the job, whatever program started it (a launcher's own, too)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return ""
    return f"racing-rl {name} {shlex.join(HydraConfig.get().overrides.task)}".strip()


def record_leg(run_dir: Path, leg: dict[str, Any]) -> None:
    """Add or update this invocation's entry in ``<run dir>/run.json``.

    A leg is this process's entry if it is still ``running`` and its ``started_at`` and
    ``pid`` match (two legs of one process can start within a second). When a new
    leg is added, every earlier leg still marked ``running`` whose process is gone (killed
    with SIGKILL, out of memory, a power cut: it could not write its end) is marked
    ``killed``. A leg of a process that is still alive on this host is left alone.

    Args:
        run_dir: the run directory.
        leg: the entry: ``started_at``, ``pid``, ``host``, ``status``, ...
    """
    path = run_dir / "run.json"
    legs: list[dict[str, Any]] = []
    if path.is_file():
        try:
            legs = read_legs(run_dir)
        except ValueError as err:
            kept = path.with_name(f"{path.name}.damaged")
            os.replace(path, kept)
            log.warning("%s is damaged (%s); kept as %s, starting a new history", path, err, kept)
    mine = [i for i, old in enumerate(legs) if _same_leg(old, leg)]
    if mine:
        legs[mine[-1]] = leg
    else:
        for old in legs:
            if old.get("status") == "running" and not _alive(old):
                old["status"] = "killed"
                old["killed_noticed_at"] = leg.get("started_at")
        legs.append(leg)
    write_json(path, {"legs": legs})


def read_legs(run_dir: Path) -> list[dict[str, Any]]:
    """The legs of ``<run dir>/run.json``, oldest first (the format ``record_leg`` writes).

    Raises:
        FileNotFoundError: the run has no ``run.json`` (it stopped before training
            started, or it is not a run directory).
        ValueError: ``run.json`` is not a JSON object whose ``legs`` is a list of objects.
    """
    record = json.loads((run_dir / "run.json").read_text())  # JSONDecodeError: a ValueError
    legs = record.get("legs") if isinstance(record, dict) else None
    if not isinstance(legs, list) or not all(isinstance(leg, dict) for leg in legs):
        raise ValueError("no list of legs")
    return legs


def trained_game(run_dir: Path) -> dict[str, Any]:
    """The game record (``model_id``, ``observation_size``) of the run's newest
    ``backend=roblox`` leg that trained (its timesteps moved on); {} for a run that never
    trained in a game, one from before legs recorded it, or no readable ``run.json``."""
    try:
        legs = read_legs(run_dir)
    except (OSError, ValueError):
        return {}
    games = [
        leg["game"]
        for leg in legs
        if isinstance(leg.get("game"), dict)
        and (leg.get("end_timesteps") or 0) > (leg.get("start_timesteps") or 0)
    ]
    return games[-1] if games else {}


def wandb_id(run_dir: Path) -> str | None:
    """The W&B run id of the run's newest leg that logged to W&B (``wandb_id``), which a
    resumed leg continues; None for a run none of whose legs recorded one (a run that
    trained before racing-rl recorded it), or no readable ``run.json``."""
    try:
        legs = read_legs(run_dir)
    except (OSError, ValueError):
        return None
    ids = [leg["wandb_id"] for leg in legs if isinstance(leg.get("wandb_id"), str)]
    return ids[-1] if ids else None


def _same_leg(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return (a.get("status"), a.get("started_at"), a.get("pid")) == (
        "running",
        b.get("started_at"),
        b.get("pid"),
    )


def leg_status(leg: dict[str, Any]) -> str:
    """A leg's status as of now: ``killed`` for one still marked ``running`` whose process
    on this host is gone (it could not write its end; ``record_leg`` marks it so only when
    the next leg starts); otherwise the status it records (``failed`` if none)."""
    status = str(leg.get("status", "failed"))
    if status == "running" and leg.get("host") == platform.node() and not _alive(leg):
        return "killed"
    return status


def _alive(leg: dict[str, Any]) -> bool:
    """Whether the process of ``leg`` is still running (on this host): its ``pid`` exists
    and, where the leg recorded it (``pid_started``) and ``/proc`` tells, started when the
    leg's process did; a process that got the pid of a killed one since is not it."""
    pid = leg.get("pid")
    if not isinstance(pid, int) or leg.get("host") != platform.node() or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists but belongs to another user
        pass
    started = leg.get("pid_started")  # None in a leg of a run from before it was recorded
    if not isinstance(started, int):
        return True
    now = process_start(pid)
    return now is None or now == started


def process_start(pid: int) -> int | None:
    """When process ``pid`` started, in clock ticks since boot: field 22 (``starttime``)
    of ``/proc/<pid>/stat`` (proc(5)). With its pid it names a process, though the pid is
    reused once the process ends. None where there is no ``/proc`` (not Linux) or no such
    process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 2, the command in parentheses, may hold spaces and ")": field 3 on follow the last.
    fields = stat.rsplit(")", 1)[-1].split()
    try:
        return int(fields[22 - 3])
    except (IndexError, ValueError):
        return None

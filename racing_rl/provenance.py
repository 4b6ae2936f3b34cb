"""What a run needs to be rerun: the code's git commit, package versions, the machine."""

from __future__ import annotations

import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

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

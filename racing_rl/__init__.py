"""racing-rl: train racing cars with reinforcement learning.

A Hydra experiment runner that composes a backend (the built-in 2-D simulator or a
Roblox game over a WebSocket bridge), a wrapper stack (an SB3 VecEnv: the simulator's
own, or one over the game's PettingZoo envs → frame stack → VecMonitor → VecNormalize)
and an algorithm (PPO, SAC, TD3, TQC, CrossQ, RecurrentPPO); docs/architecture.md maps
the code. The Gymnasium env ``racing_rl/Race-v0`` is registered by importing
``racing_rl.envs``.
"""

import os
from pathlib import Path

# pygame prints a banner on import unless told not to; library code never prints.
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

__version__ = "0.1.0"


def config_dir() -> Path:
    """Return the directory holding the Hydra configs.

    In a wheel the configs are packaged as ``racing_rl/conf``; in a source checkout
    (editable install) they live in the repository's top-level ``conf/``.

    Raises:
        FileNotFoundError: if neither location exists (a broken installation).
    """
    package = Path(__file__).resolve().parent
    for candidate in (package / "conf", package.parent / "conf"):
        if (candidate / "train.yaml").is_file():
            return candidate
    raise FileNotFoundError(
        f"racing-rl's configs were not found in {package / 'conf'} or {package.parent / 'conf'}; "
        "reinstall the package (pip install -e . from a checkout)."
    )

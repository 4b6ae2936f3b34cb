"""``racing-rl <command> [hydra overrides]``: dispatch to the command's Hydra app."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable

USAGE = """\
usage: racing-rl <command> [OVERRIDE ...] [--help]

Train racing cars with reinforcement learning. Every command is a Hydra app: configure
it with KEY=VALUE overrides and config groups (GROUP=OPTION), sweep with -m.

commands:
  train   train a policy (PPO, SAC, TD3, RecurrentPPO) on a backend
            racing-rl train                          PPO on the built-in simulator
            racing-rl train algo=sac seed=1 total_timesteps=500000
            racing-rl train -m algo=ppo,sac seed=0,1,2
            racing-rl train algo=sac backend=roblox     a Roblox game over the bridge
  eval    measure a saved checkpoint on held-out tracks, or race several
            racing-rl eval run_dir=outputs/<date>/<time>_ppo_pygame checkpoint=best
            racing-rl eval run_dir=<run dir> record=true      + a replay per track
            racing-rl eval run_dir=[<run a>,<run b>,scripted] laps=3   a race
  replay  play a recorded race in a window, or export it to a video
            racing-rl replay path=<run dir>/eval/replays/track_2000000.npz
            racing-rl replay path=<replay .npz> video=race.mp4   (or .gif)
  play    drive a car yourself with the arrow keys (space: nitro)
            racing-rl play seed=2000003 opponent=<run dir>
  emulate stand in for the Roblox game: race the simulator over the bridge
            racing-rl train backend=roblox  &  racing-rl emulate
  report  tabulate a sweep's jobs and plot their learning curves (not a Hydra app)
            racing-rl report outputs/multirun/<date>/<time>

Run 'racing-rl <command> --help' for the command's config groups and defaults.
"""


#: Each Hydra command's module; its ``main`` is the Hydra app.
COMMANDS = {
    "train": "racing_rl.train",
    "eval": "racing_rl.evaluate",
    "replay": "racing_rl.replay",
    "play": "racing_rl.play",
    "emulate": "racing_rl.bridge.emulator",
}


def _command(name: str) -> Callable[[], object]:
    # Only the command's own module is imported, so that 'racing-rl --help' answers at
    # once and 'racing-rl replay' does not load what training needs.
    return importlib.import_module(COMMANDS[name]).main


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``racing-rl`` console script.

    Returns:
        The exit status: 0 on success, 2 on a usage error.
    """
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command == "report":
        from racing_rl import report

        return report.main(rest)
    if command not in COMMANDS:
        print(f"racing-rl: unknown command {command!r}.\n\n{USAGE}", file=sys.stderr)
        return 2
    # Hydra parses sys.argv itself; the program name shows in its --help.
    sys.argv = [f"racing-rl {command}", *rest]
    _command(command)()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``racing-rl <command> [hydra overrides]``: dispatch to the command's Hydra app."""

from __future__ import annotations

import importlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import CodeType, FrameType
from typing import Any

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
            racing-rl train backend=roblox  &  racing-rl emulate url=ws://127.0.0.1:8765/ws/demo
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
        The exit status: 0 on success, 2 on a usage error, 130 on Ctrl-C before a command
        handles it (while Python imports or Hydra composes the config).
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
    with _interrupts_while_starting(command) as started:
        try:
            app = _command(command)
            started(app)
            app()
        except KeyboardInterrupt:  # the command let it through
            print(f"racing-rl {command}: interrupted (Ctrl-C).", file=sys.stderr)
            return 130
    return 0


@contextmanager
def _interrupts_while_starting(command: str) -> Iterator[Callable[[Any], None]]:
    """Ctrl-C before the command's own code runs (while Python imports it or Hydra
    composes its config) exits at once with 130 and one line, not a traceback: a
    KeyboardInterrupt raised inside Hydra's config handling leaves it half-updated and
    ends in an unrelated error. Once the command's task function is on the stack, SIGINT
    raises KeyboardInterrupt as usual, which the commands handle (train saves a
    checkpoint). Yields ``started(app)``, to be called with the Hydra app once imported.
    """
    if threading.current_thread() is not threading.main_thread():
        yield lambda app: None
        return
    task_code: list[CodeType] = []

    def started(app: Any) -> None:
        task = getattr(app, "__wrapped__", None)  # hydra.main keeps the task function here
        if task is not None:
            task_code.append(task.__code__)

    def handler(signum: int, frame: FrameType | None) -> None:
        while frame is not None:
            if frame.f_code in task_code:
                raise KeyboardInterrupt
            frame = frame.f_back
        print(f"racing-rl {command}: interrupted while starting (Ctrl-C).", file=sys.stderr)
        sys.stderr.flush()
        os._exit(130)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield started
    finally:
        signal.signal(signal.SIGINT, previous)


if __name__ == "__main__":
    sys.exit(main())

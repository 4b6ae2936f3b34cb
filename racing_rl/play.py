"""``racing-rl play``: drive a car yourself, alone or against a saved checkpoint.

Arrow keys drive (↑ throttle, ↓ brake and reverse, ←/→ steer; the race starts at the
first key held), space or shift burns nitro, esc or q gives up. ``play`` races
``racing_rl.evaluation.races.run_races`` with a ``KeyboardDriver``
(``racing_rl.ui.keyboard``) as car 0 and, with ``opponent=<run dir>``, the run's
checkpoint as car 1 (its own frame stack and frozen normalisation, on the run's tracks and
rules, with the command line's ``backend.*`` settings on top), or with
``opponent=scripted`` the pure-pursuit baseline driver, shown live in a
``RaceWindow`` (``racing_rl.ui.window``) in real time (``fps=null``); ``main``, the Hydra
app, prints the leaderboard.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from racing_rl.config import hydra_main
from racing_rl.errors import ConfigError, RacingRLError, print_error
from racing_rl.files import cannot_write

log = logging.getLogger(__name__)


def play(cfg: DictConfig) -> dict[str, Any]:
    """``racing-rl play``: one race of you (and ``cfg.opponent``) on track ``cfg.seed``,
    on the opponent run's backend (with the command line's ``backend.*`` settings on top)
    or ``cfg.backend``.

    Returns:
        ``leaderboard`` rows (``racing_rl.evaluation.races.leaderboard``), ``replay`` (the saved
        replay's path, with ``record``) and ``steps``.

    Raises:
        CheckpointError: if the opponent's run or checkpoint cannot be loaded.
        ConfigError: for ``torch_threads``, ``seed``, ``laps`` or ``max_steps`` out of range, a
            ``record`` path that is no ``.npz`` file or cannot be written, or a backend (or
            an opponent's) other than the built-in simulator, or no display and no
            ``script``.
    """
    import torch

    from racing_rl.checkpoints.runs import load_policy_driver, load_run_config
    from racing_rl.checks import check_torch_threads
    from racing_rl.config import backend_config
    from racing_rl.drivers import ScriptedDriver
    from racing_rl.evaluation.command import SCRIPTED
    from racing_rl.evaluation.races import leaderboard, run_races
    from racing_rl.ui.keyboard import KeyboardDriver, ScriptedKeys, pygame_keys
    from racing_rl.ui.render import HEADLESS_DRIVERS, video_driver, window_size
    from racing_rl.ui.window import RaceWindow
    from racing_rl.vec import make_parallel_envs

    torch.set_num_threads(check_torch_threads(cfg))
    backend = cfg.backend
    script = ScriptedKeys(list(cfg.script)) if cfg.script is not None else None
    drivers: list[Any] = [KeyboardDriver(script or pygame_keys)]
    if cfg.record and Path(cfg.record).suffix != ".npz":
        raise ConfigError(
            f"record={cfg.record}: a replay is a .npz file; record=play.npz, then racing-rl "
            "replay path=play.npz video=play.mp4 makes a video of it."
        )
    if backend.name != "pygame":
        raise ConfigError(
            f"backend={backend.name}: racing-rl play drives the built-in simulator in its "
            "own window (backend=pygame, the default). To drive in a Roblox game, play "
            "the game; to watch a run drive in it, racing-rl eval run_dir=<run> "
            "backend=roblox."
        )
    if script is None and (driver := video_driver()) in HEADLESS_DRIVERS:
        raise ConfigError(
            f"This machine has no display (pygame's video driver is {driver!r}): play would "
            "race a car that no key can drive. Run it where a display is, or give the keys "
            "of each frame, script=[up,up,left,...] (racing-rl play --help)."
        )
    if int(cfg.seed) < 0:  # the simulator's error came after the window and its banner
        raise ConfigError(f"seed={cfg.seed}: a track seed is an integer >= 0.")
    if int(cfg.laps) < 0 or int(cfg.max_steps) < 1:
        raise ConfigError(
            f"laps={cfg.laps}, max_steps={cfg.max_steps}: laps must be >= 0 (0: race until "
            "max_steps) and max_steps >= 1."
        )
    if cfg.opponent == SCRIPTED:  # the pure-pursuit baseline, on cfg.backend's rules
        drivers.append(ScriptedDriver(SCRIPTED))
    elif cfg.opponent:
        run_dir = Path(cfg.opponent).expanduser()
        backend = load_run_config(run_dir).backend
        if backend.name != "pygame":
            raise ConfigError(
                f"opponent={cfg.opponent} was trained with backend={backend.name}; racing-rl "
                "play races on the built-in simulator, against runs trained on it."
            )
        for key, value in _backend_settings():  # the command line's, on the run's own
            OmegaConf.update(backend, key, value, merge=True)
        size = backend_config(backend).observation_size
        drivers.append(load_policy_driver(run_dir, cfg, size))
    # Last of the checks (it makes record's directories): not after the race.
    if cfg.record and (why := cannot_write(Path(cfg.record).expanduser())):
        raise ConfigError(f"record={cfg.record} cannot be written: {why}.")
    collisions = bool(backend.rules.get("car_collisions", False))
    episode = {"spawn": "grid" if collisions else "line", "laps": int(cfg.laps)}
    episode["max_steps"] = int(cfg.max_steps)
    envs = make_parallel_envs(backend, 1, len(drivers), [[int(cfg.seed)]], episode)
    window = RaceWindow(
        cfg.fps,
        window_size(cfg.size, cfg.fps),
        cfg.camera,
        "play drives from the keyboard in a window: run it where a display is.",
    )
    labels = tuple(d.label for d in drivers)
    draw = window.on_step(envs[0], labels, "racing-rl play · arrows drive, space nitro, q/esc quit")
    steps = -1  # run_races calls on_step before the first step too

    def on_step() -> bool:
        nonlocal steps
        steps += 1
        if not draw():
            return False
        # The race starts at the first key held, not as the window opens: a car that makes
        # no progress for rules.stuck_time (4 s) is out, and was before a key was pressed.
        # A script drives from the first step.
        while steps == 0 and script is None and not pygame_keys():
            if not draw():
                return False
        return not (script is not None and script.done)

    log.info(
        "Arrow keys drive (the race starts at the first), space or shift burns nitro, q or "
        "esc quits."
    )
    try:
        meta = {"laps": int(cfg.laps)}  # a replay's HUD then says "done" for a finisher
        (race,) = run_races(envs, drivers, record=bool(cfg.record), meta=meta, on_step=on_step)
    except KeyboardInterrupt:
        if cfg.record:  # the race that was running is no race that ended
            log.warning(
                "record=%s: nothing written (q or esc ends a race, and keeps it)", cfg.record
            )
        raise
    finally:
        window.close()
    result: dict[str, Any] = {"leaderboard": leaderboard(race), "steps": steps}
    if cfg.record:
        result["replay"] = str(race.replay.save(Path(cfg.record).expanduser()))
    return result


def _backend_settings() -> list[tuple[str, Any]]:
    """The command line's ``backend.<key>=<value>`` settings (also given with ``+`` or
    ``++``), as (key below ``backend``, value); none outside a Hydra app."""
    if not HydraConfig.initialized():
        return []
    from hydra.core.override_parser.overrides_parser import OverridesParser

    overrides = OverridesParser.create().parse_overrides(list(HydraConfig.get().overrides.task))
    return [
        (override.key_or_group.removeprefix("backend."), override.value())
        for override in overrides
        if override.key_or_group.startswith("backend.") and not override.is_delete()
    ]


@hydra_main("play")
def main(cfg: DictConfig) -> None:
    """Hydra entry point of ``racing-rl play``."""
    from racing_rl.evaluation.tables import format_table

    try:
        result = play(cfg)
    except RacingRLError as err:
        print_error("play", err)
        raise SystemExit(1) from err
    rows = [
        {
            "pos": row["position"],
            "car": row["label"],
            "laps": row["laps"],
            "lap_times_s": " ".join(f"{t:.2f}" for t in row["lap_times_s"]) or "-",
            "result": f"{row['finish_time_s']:.2f} s"
            if row["finished"]
            else ("crash" if row["crashed"] else f"{round(row['progress'], 2) + 0.0:.2f} laps"),
        }
        for row in result["leaderboard"]
    ]
    print(format_table(rows, ["pos", "car", "laps", "lap_times_s", "result"]))
    if "replay" in result:
        print(f"replay written to {result['replay']}")

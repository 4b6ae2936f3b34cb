"""Watching a policy: eval render=human (headless under SDL_VIDEODRIVER=dummy) and follow."""

import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from runs import default_sigint, racing_rl

from racing_rl.replay import load_replay

#: A short race on one track in a small window, drawn as fast as it goes.
WATCH = ["render=human", "fps=0", "size=[160,160]", "seeds=[2000000]", "max_steps=20"]


def test_eval_render_human_draws_every_step_of_the_races(tiny_runs, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(tiny_runs[0], run_dir)
    result = racing_rl(
        "eval", f"run_dir={run_dir}", "checkpoint=final", *WATCH, "rounds=2", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((run_dir / "eval" / "metrics.json").read_text())
    assert metrics["episodes"] == 2  # two rounds of the one track, each in the window
    (drawn,) = [line for line in result.stderr.splitlines() if "frames drawn" in line]
    # Every step of both races, and each starting grid once.
    steps = sum(track["length"] for track in metrics["tracks"])
    assert int(drawn.split("render: ")[1].split()[0]) == steps + len(metrics["tracks"])


def _lines(stream, into: queue.Queue) -> None:
    for line in stream:
        into.put(line)


def _wait_for(lines: queue.Queue, text: str, timeout: float = 120) -> str:
    while True:
        line = lines.get(timeout=timeout)
        if text in line:
            return line


def test_follow_switches_to_a_checkpoint_saved_after_it_started(tiny_runs, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(tiny_runs[0], run_dir)
    (first,) = (run_dir / "checkpoints").iterdir()  # final_2048_steps
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "racing_rl.cli",
            "eval",
            f"run_dir={run_dir}",
            "follow=true",
            "record=true",
            *WATCH,
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "SDL_VIDEODRIVER": "dummy"},
        preexec_fn=default_sigint,
    )
    lines: queue.Queue = queue.Queue()
    reader = threading.Thread(target=_lines, args=(process.stderr, lines), daemon=True)
    reader.start()
    try:
        assert first.name in _wait_for(lines, "driving")
        # Training saves a newer checkpoint while the evaluation races.
        newer = run_dir / "checkpoints" / "ppo_4096_steps"
        shutil.copytree(first, newer)
        manifest = json.loads((newer / "checkpoint.json").read_text())
        (newer / "checkpoint.json").write_text(json.dumps({**manifest, "timesteps": 4096}))
        assert "ppo_4096_steps" in _wait_for(lines, "driving")
        # The race that ended before the switch, then one of the newer checkpoint.
        _wait_for(lines, "round")
        _wait_for(lines, "round")
    finally:
        process.send_signal(signal.SIGINT)
        # Not communicate(): it would read stderr too, taking lines from the reader.
        process.wait(timeout=60)
        reader.join(timeout=60)
    out = process.stdout.read()
    assert process.returncode == 0, out[-3000:]
    metrics = json.loads((run_dir / "eval" / "metrics.json").read_text())
    assert metrics["driver"].endswith("ppo_4096_steps/model.zip")
    # Only that checkpoint's races: the first one's were counted in under its name.
    said = _wait_for(lines, "metrics cover the")
    covered, raced = (int(n) for n in re.findall(r"the (\d+) race", said))
    assert metrics["episodes"] == covered < raced
    # Its replays name it (they said checkpoint=best, which follow=true never drove).
    replays = [load_replay(path) for path in metrics["replays"]]
    assert len(replays) == covered
    assert all(r.meta["checkpoint"].endswith("ppo_4096_steps/model.zip") for r in replays)


def test_follow_records_the_checkpoint_it_drove(tiny_runs, tmp_path):
    # A run that is not training: its newest checkpoint races one round, and eval ends.
    out = tmp_path / "eval"
    args = f"run_dir={tiny_runs[0]}", "follow=true", "seeds=[2000000]", "max_steps=20"
    result = racing_rl("eval", *args, f"out_dir={out}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["driver"].endswith("checkpoints/final_2048_steps/model.zip")
    # settings said checkpoint=best, the default that follow=true never drove.
    assert metrics["settings"]["checkpoint"] == metrics["driver"]


def test_follow_times_the_races_not_the_waits_for_checkpoints(tiny_runs, tmp_path):
    """Its seconds (metrics.json, the summary and the last line) counted the whole command:
    the wait for the first checkpoint and for a newer one, beside 20 steps of racing."""
    run_dir, aside = tmp_path / "run", tmp_path / "aside"
    shutil.copytree(tiny_runs[0], run_dir)
    aside.mkdir()
    for name in ("checkpoints", "run.json"):  # a run that has not saved or started yet
        (run_dir / name).rename(aside / name)
    args = f"run_dir={run_dir}", "follow=true", "seeds=[2000000]", "max_steps=20"
    command = [sys.executable, "-m", "racing_rl.cli", "eval", *args, f"out_dir={tmp_path}/e"]
    process = subprocess.Popen(
        command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    lines: queue.Queue = queue.Queue()
    reader = threading.Thread(target=_lines, args=(process.stderr, lines), daemon=True)
    reader.start()
    try:
        _wait_for(lines, "waiting for the first checkpoint")
        time.sleep(2)
        (aside / "checkpoints").rename(run_dir / "checkpoints")
        _wait_for(lines, "waiting for the next checkpoint")  # raced; waits for a newer one
        time.sleep(2)
        (aside / "run.json").rename(run_dir / "run.json")  # not training: none will come
        _wait_for(lines, "its newest checkpoint has raced")
        process.wait(timeout=120)
    finally:
        process.kill()
        reader.join(timeout=60)
    out = process.stdout.read()
    assert process.returncode == 0, out[-3000:]
    metrics = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert metrics["episodes"] == 1 and metrics["seconds"] < 1.5  # it waited 4 s or more
    assert out.splitlines()[-1].endswith(
        f", {metrics['seconds']:.1f} s; written to {tmp_path / 'e' / 'metrics.json'}"
    )


def test_follow_refuses_an_exported_driver(tiny_runs, tmp_path):
    # It raced the SB3 policy under driver=onnx's name, without a word.
    for driver in ("onnx", "luau", "scripted"):
        args = f"run_dir={tiny_runs[0]}", "follow=true", f"driver={driver}"
        result = racing_rl("eval", *args, cwd=tmp_path)
        assert result.returncode != 0
        assert f"give one run_dir and driver=policy (got 1 and driver={driver})" in result.stderr
    # A race of two runs: two, not three with the scripted car driver=scripted adds.
    two = f"run_dir=[{tiny_runs[0]},{tiny_runs[0]}]"
    result = racing_rl("eval", two, "follow=true", "driver=scripted", cwd=tmp_path)
    assert "(got 2 and driver=scripted)" in result.stderr


def test_closing_the_window_while_following_keeps_the_races_that_ended(monkeypatch):
    # The cut-short race's driver was recorded, the race dropped: zip(strict=True) then
    # raised ValueError and the eval wrote no metrics.
    import types

    from omegaconf import OmegaConf

    from racing_rl.config import default_backend
    from racing_rl.drivers import ScriptedDriver
    from racing_rl.evaluation import command

    class ClosedDuringTheSecondRace:
        def __init__(self, fps, size, camera, headless_hint):
            self.closed, self.frames, self.calls = False, 0, 0

        def on_step(self, env, labels, caption):
            def draw():
                self.calls += 1
                self.closed = self.calls > 700  # the first race ends at ~550 steps
                return not self.closed

            return draw

        def close(self):
            pass

    class Follower:
        def driver(self, newer=False):
            return ScriptedDriver("checkpoint")

    window = types.SimpleNamespace(RaceWindow=ClosedDuringTheSecondRace)
    monkeypatch.setitem(sys.modules, "racing_rl.ui.window", window)
    cfg = OmegaConf.create(
        {
            "rounds": None,
            "render": "human",
            "fps": 0,
            "size": [100, 100],
            "record": False,
            "laps": 1,
            "checkpoint": "best",
        }
    )
    episode = {"spawn": "line", "laps": 1, "max_steps": 900}
    follower = Follower()
    backend = default_backend("pygame")
    races, _ = command._run_rounds(
        cfg, backend, episode, [follower.driver()], [5, 6], None, follower, None
    )
    assert len(races) == 1 and races[0].cars[0].episode.finished


class _Window:
    """A stand-in for RaceWindow that is closed after ``steps`` drawn steps."""

    steps = 10**9

    def __init__(self, fps, size, camera, headless_hint):
        self.closed, self.frames, self.calls = False, 0, 0

    def on_step(self, env, labels, caption):
        def draw():
            self.calls += 1
            self.closed = self.calls > self.steps
            return not self.closed

        return draw

    def close(self):
        pass


def test_ctrl_c_while_following_loads_the_next_checkpoint_keeps_the_races(monkeypatch):
    """A Ctrl-C while the next checkpoint was loaded (a good part of each one-track cycle)
    found one driver recorded more than races run: a ValueError, and no metrics."""
    import types

    from omegaconf import OmegaConf

    from racing_rl.config import default_backend
    from racing_rl.drivers import ScriptedDriver
    from racing_rl.evaluation import command

    class Follower:
        calls = 0
        newer: list[bool] = []

        def driver(self, newer=False):
            self.calls += 1
            self.newer.append(newer)
            if self.calls == 3:  # after the second race
                raise KeyboardInterrupt
            return ScriptedDriver(f"checkpoint {self.calls}")

    monkeypatch.setitem(
        sys.modules, "racing_rl.ui.window", types.SimpleNamespace(RaceWindow=_Window)
    )
    cfg = OmegaConf.create(
        {"rounds": None, "render": None, "record": False, "laps": 1, "checkpoint": "best"}
    )
    episode = {"spawn": "line", "laps": 1, "max_steps": 900}
    follower = Follower()
    drivers = [follower.driver()]
    races, _ = command._run_rounds(
        cfg, default_backend("pygame"), episode, drivers, [5, 6], None, follower, None
    )
    assert len(races) == 1 and drivers[0].label == "checkpoint 2"  # the last one's race
    # Without a window, after a round of every track it waits for a newer checkpoint: the
    # same one raced the same races again, in a loop, beside the training it watched.
    assert follower.newer == [False, False, True]
    # ... but not after its last round: rounds=1 waited for ever, and wrote nothing.
    follower = Follower()
    follower.calls, follower.newer = -10, []
    drivers = [follower.driver()]
    races, _ = command._run_rounds(
        OmegaConf.merge(cfg, {"rounds": 1}),
        default_backend("pygame"),
        episode,
        drivers,
        [5, 6],
        None,
        follower,
        None,
    )
    assert races and follower.newer == [False, False, False]  # it ended


def test_closing_the_window_in_the_first_race_writes_nothing(tiny_runs, tmp_path, monkeypatch):
    """No race ended: a race crashed in standings([]) with an IndexError, and one run's eval
    wrote a metrics.json of nothing over the last eval's."""
    import types

    from hydra import compose

    from racing_rl.config import initialize
    from racing_rl.evaluation.command import evaluate

    monkeypatch.setattr(_Window, "steps", 5)
    monkeypatch.setitem(
        sys.modules, "racing_rl.ui.window", types.SimpleNamespace(RaceWindow=_Window)
    )
    for run_dir in (f"run_dir={tiny_runs[0]}", f"run_dir=[{tiny_runs[0]},scripted]"):
        overrides = [
            run_dir,
            "checkpoint=final",
            "render=human",
            "seeds=[5,6]",
            f"out_dir={tmp_path}/out",
        ]
        with initialize():
            cfg = compose("eval", overrides=overrides)
        assert evaluate(cfg) is None
        assert not (tmp_path / "out").exists()


def _checkpoints(*names: str) -> list:
    """Stand-ins for ``Checkpoint``s named ``names``, their timesteps 1, 2, ..."""
    import types

    return [types.SimpleNamespace(path=Path(n), timesteps=t) for t, n in enumerate(names, 1)]


@pytest.fixture
def listings(monkeypatch) -> tuple[list, list]:
    """What ``watch.find_checkpoints`` returns, a listing per call (``listings[0]``, to
    fill), and the follower's sleeps (``listings[1]``)."""
    from racing_rl import watch

    found: list = []
    slept: list = []
    monkeypatch.setattr(watch, "find_checkpoints", lambda run_dir: found.pop(0))
    monkeypatch.setattr(watch.time, "sleep", slept.append)
    return found, slept


def test_the_follower_waits_for_a_newer_checkpoint_when_asked(listings):
    from racing_rl import watch
    from racing_rl.errors import CheckpointError

    found, slept = listings
    a, b, c, d = _checkpoints("a", "b", "c", "d")
    found[:] = [[a], [a], [a], [a, b]]
    follower = watch.CheckpointFollower(Path("run"), load=lambda path: f"driver of {path}")
    assert follower.driver() == "driver of a"
    assert follower.driver(newer=True) == "driver of b" and slept == [2.0, 2.0]
    # A newest checkpoint that does not load counts as raced: waiting for a newer one (it
    # raced the older one again and again).

    def load(path):
        if path == Path("c"):
            raise CheckpointError("damaged")
        return f"driver of {path}"

    found[:] = [[a, b, c], [a, b, c], [a, b, c, d]]
    follower._load = load
    slept.clear()
    assert follower.driver() == "driver of b"  # c does not load: b drives on
    assert follower.driver(newer=True) == "driver of d" and slept == [2.0]


def test_the_follower_stops_waiting_when_the_run_is_not_training(tmp_path, listings):
    """follow=true on a finished run raced its last checkpoint and then waited for a newer
    one until Ctrl-C."""
    import platform

    from racing_rl import watch

    found, slept = listings
    a, b = _checkpoints("a", "b")
    found[:] = [[a], [a], [a], [a, b]]
    leg = {"status": "running", "pid": os.getppid(), "host": platform.node()}
    (tmp_path / "run.json").write_text(json.dumps({"legs": [leg]}))
    follower = watch.CheckpointFollower(tmp_path, load=lambda path: f"driver of {path}")
    assert follower.driver() == "driver of a" and follower.training()
    assert follower.driver(newer=True) == "driver of b" and slept == [2.0, 2.0]  # it trains
    (tmp_path / "run.json").write_text(json.dumps({"legs": [{**leg, "status": "completed"}]}))
    found[:] = [[a, b], [a, b]]
    assert follower.driver(newer=True) is None and slept == [2.0, 2.0]  # at once
    # With no checkpoint at all, none will come either: it waited for the first for ever.
    from racing_rl.errors import CheckpointError

    found[:] = [[]]
    with pytest.raises(CheckpointError, match="has no checkpoint and is not training"):
        watch.CheckpointFollower(tmp_path, load=str).driver()

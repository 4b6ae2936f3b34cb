"""Fuzz the Roblox bridge: bad frames of every fault kind during a real training run.

What it does
    Starts ``racing-rl train backend=roblox`` (PPO, 2 environments × 2 cars, no
    validation or checkpoints) in its own process, on a free port of 127.0.0.1 (loopback
    only), and plays the game with the emulator (``racing_rl.bridge.emulator``) in this
    process. Before every message the emulator sends one bad frame of each fault kind of
    ``FAULT_KINDS`` but ``oversized`` (made of its first car's entry, with one fault:
    invalid JSON, a binary frame, JSON nested 100,000 deep, a 5,000-digit integer, an
    observation of 1e39 or 1e30, a reward of 1e300 or a string, an unknown agent, ...),
    then the message itself with the bad ``info`` keys in its entries (no bad frame
    carries another car's valid entry: as in a real game, each car ticks once a
    message, its reward counted once; ``bad_frames`` counts a bad key as one).
    ``backend.observation_size`` is pinned to the emulator's, as a game's first frame
    may be a bad one. ``oversized`` frames (over the 1 MiB cap: they cost the
    connection, and the game reconnects) go in twice. The run's length follows
    ``--frames`` (its timesteps are enough for that many bad frames). It stops by itself:
    when training ends, or after ``--timeout`` seconds (the trainer is then killed and the
    run counts as a crash).

What it prints
    A table, then one JSON line:

        {"bench": "fuzz_bridge", "bad_frames": ..., "kinds": ..., "sent": {kind: n},
         "crashes": 0, "rejected": ..., "dropped": {kind: n}, "info_dropped": {kind: n},
         "rss_before_mib": ..., "rss_after_mib": ..., "timesteps": ..., "seconds": ...}

    ``crashes`` counts a trainer that did not exit 0 and every traceback in its output
    (must be 0). ``rejected`` (frames dropped whole), ``dropped`` (entries, by kind) and
    ``info_dropped`` (``info`` keys, by kind) are the trainer's own counters as it last
    logged them to TensorBoard (``roblox/``, at the last rollout's end: the frames of the
    final rollout are not in them). The trainer's RSS [MiB] is read from ``/proc``
    (Linux) once its first rollout is under way and just before it exits. The exit code
    is 1 unless there were 0 crashes and at least ``--frames`` bad frames were sent.

Usage:
    python scripts/fuzz_bridge.py [--frames 10000] [--timeout 900] [--run-dir DIR]
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from racing_rl.bridge.emulator import Emulator
from racing_rl.bridge.faults import FAULT_KINDS, Faults
from racing_rl.bridge.protocol import ENTRY_FAULTS, INFO_FAULTS
from racing_rl.bridge.server import free_port
from racing_rl.checkpoints.layout import saved_work
from racing_rl.config import override_value
from racing_rl.envs.config import RaceConfig
from racing_rl.errors import reported
from racing_rl.evaluation.tables import format_table
from racing_rl.files import strict_json
from racing_rl.report import learning_curve

CARS = 4  # 2 environments × 2 cars
FLOOD = tuple(kind for kind in FAULT_KINDS if kind != "oversized")


def rss_mib(pid: int) -> float:
    """The resident set size of process ``pid`` [MiB]; NaN once it has gone (an exited
    process not yet reaped, a zombie, has no ``VmRSS`` line)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return math.nan
    kib = next((line.split()[1] for line in status.splitlines() if line.startswith("VmRSS")), None)
    return math.nan if kib is None else int(kib) / 1024


def last_counters(tb_dir: Path) -> dict[str, int]:
    """The trainer's last ``roblox/`` counters of rejections and drops, by name."""
    names = ["rejected", *(f"dropped_{k}" for k in ENTRY_FAULTS)]
    names += [f"info_dropped_{k}" for k in INFO_FAULTS]
    counters = {}
    for name in names:
        curve = learning_curve(tb_dir, f"roblox/{name}")
        if curve:
            counters[name] = int(curve[-1][1])
    return counters


def watch(command: list[str], timeout: float, poll: Callable[[int], None]) -> tuple[int, str]:
    """Run ``command`` until it exits, or for ``timeout`` [s] (then kill it), calling
    ``poll`` with its pid every 0.2 s; its exit code and its output (stdout and stderr).
    The output goes to a temporary file: a pipe read only at the end fills up (64 KiB of
    log lines) and blocks the trainer's next write, training and the bridge with it."""
    started = time.monotonic()
    with tempfile.TemporaryFile() as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
        while process.poll() is None and time.monotonic() - started < timeout:
            poll(process.pid)
            time.sleep(0.2)
        if process.poll() is None:
            process.kill()
        process.wait()
        output.seek(0)
        return process.returncode, output.read().decode(errors="replace")


def fuzz(frames: int, timeout: float, run_dir: Path) -> dict:
    """Run training under a flood of at least ``frames`` bad frames; the results."""
    messages = math.ceil(frames / len(FLOOD))
    timesteps = max(1024, math.ceil(1.25 * CARS * messages / 1024) * 1024)
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "racing_rl.cli",
        "train",
        "backend=roblox",
        f"backend.server.port={port}",
        "backend.server.token=null",
        # Pinned: with null, a game's first entry sets the size, and a flood may send a
        # wrong_length one first (the run then stops, rightly, on a size mismatch).
        f"backend.observation_size={RaceConfig().observation_size}",
        f"total_timesteps={timesteps}",
        "n_races=2",
        "cars_per_race=2",
        "progress_bar=false",
        "validation.every=0",
        "checkpoint.every=0",
        "torch_threads=1",
        f"hydra.run.dir={override_value(run_dir)}",
    ]
    faults = Faults(flood=FLOOD, inject={m: "oversized" for m in (50, messages // 2)})
    url = f"ws://127.0.0.1:{port}/ws/fuzz"
    emulator = Emulator(url, lockstep=True, faults=faults).start()  # as fast as training
    started = time.monotonic()
    rss_before = rss_after = math.nan

    def measure(pid: int) -> None:
        nonlocal rss_before, rss_after
        rss = rss_mib(pid)
        if math.isnan(rss_before) and emulator.received > 2 * 256:
            rss_before = rss  # the first rollout is under way: the policy is built
        if not math.isnan(rss):
            rss_after = rss

    try:
        returncode, output = watch(command, timeout, measure)
    finally:
        emulator.stop()
    seconds = time.monotonic() - started
    counters = last_counters(run_dir / "tb")
    crashes = int(returncode != 0) + output.count("Traceback (most recent call last)")
    return {
        "bench": "fuzz_bridge",
        "bad_frames": sum(emulator.faults_sent.values()),
        "kinds": len(emulator.faults_sent),
        "sent": dict(sorted(emulator.faults_sent.items())),
        "crashes": crashes,
        "returncode": returncode,
        "rejected": counters.get("rejected", 0),
        "dropped": {k[8:]: n for k, n in counters.items() if k.startswith("dropped_")},
        "info_dropped": {k[13:]: n for k, n in counters.items() if k.startswith("info_dropped_")},
        "rss_before_mib": round(rss_before, 1),
        "rss_after_mib": round(rss_after, 1),
        "timesteps": timesteps,
        "seconds": round(seconds, 1),
        "output_tail": output[-2000:] if crashes else "",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--frames",
        type=int,
        default=10_000,
        help="bad frames to send, at least (default: %(default)s)",
    )
    parser.add_argument(
        "--timeout", type=float, default=900.0, help="longest run [s] (default: %(default)s)"
    )
    parser.add_argument("--run-dir", type=Path, help="the training run's dir (default: a temp dir)")
    args = parser.parse_args(argv)
    if args.frames < 1 or not args.timeout > 0:  # nan: the trainer killed at once
        parser.error("--frames must be >= 1 and --timeout > 0")
    saved = [] if args.run_dir is None else saved_work(args.run_dir)
    if saved:  # racing-rl train would refuse it, which counted as a crash
        parser.error(
            f"--run-dir {args.run_dir} already holds a run ({', '.join(saved[:3])}): give a "
            "new directory, or leave --run-dir out for a temporary one"
        )
    with tempfile.TemporaryDirectory(prefix="fuzz_bridge_") as tmp:
        result = fuzz(args.frames, args.timeout, args.run_dir or Path(tmp) / "run")
    table = [{"fault kind": kind, "sent": n} for kind, n in result["sent"].items()]
    table.append({"fault kind": f"total ({result['kinds']} kinds)", "sent": result["bad_frames"]})
    print(format_table(table, ["fault kind", "sent"], left={"fault kind"}))
    print("trainer counted:  rejected", result["rejected"], "| dropped", result["dropped"])
    print("                  info keys dropped", result["info_dropped"])
    print(f"trainer RSS [MiB]: {result['rss_before_mib']} before, {result['rss_after_mib']} after")
    print(f"crashes: {result['crashes']} (trainer exit code {result['returncode']})")
    if result["output_tail"]:
        print(result["output_tail"], file=sys.stderr)
    print(strict_json({k: v for k, v in result.items() if k != "output_tail"}))
    return 0 if result["crashes"] == 0 and result["bad_frames"] >= args.frames else 1


if __name__ == "__main__":
    with reported("fuzz_bridge.py"):
        sys.exit(main())

"""scripts/fuzz_bridge.py, small: every fault kind reaches a real training run, which
finishes, and the script reports it."""

import json

from runs import load_script


def test_the_fuzz_script_floods_a_training_run_that_survives(capsys):
    fuzz = load_script("fuzz_bridge")
    assert fuzz.main(["--frames", "100", "--timeout", "300"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["crashes"] == 0 and result["returncode"] == 0
    assert result["kinds"] == 18 and result["bad_frames"] >= 100
    # The trainer's counters as last logged (at a rollout's end). Which info keys are
    # dropped, and that none reaches training, is tests/bridge/test_training.py's.
    assert result["dropped"]["out_of_range"] > 0
    assert result["rejected"] > 0 and result["rss_after_mib"] > 0


def test_the_memory_of_a_process_that_has_exited_is_unknown_not_zero():
    """A trainer that exits between two polls is a zombie until it is reaped: no VmRSS.
    Its memory is NaN, so the last reading before it stays the script's figure."""
    import math
    import os
    import subprocess
    import sys

    fuzz = load_script("fuzz_bridge")
    # Runs until its stdin closes: one that slept 0.3 s could have exited before the first
    # reading on a loaded machine (its start-up alone can take that long).
    reading = [sys.executable, "-c", "import sys; sys.stdin.read()"]
    process = subprocess.Popen(reading, stdin=subprocess.PIPE)
    assert fuzz.rss_mib(process.pid) > 0
    process.stdin.close()
    os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOWAIT)  # exited, not reaped
    assert math.isnan(fuzz.rss_mib(process.pid))
    process.wait()
    assert math.isnan(fuzz.rss_mib(process.pid))


def test_a_trainer_that_logs_more_than_a_pipe_holds_is_not_blocked():
    """The script read the trainer's output from a pipe only once it had exited: past 64
    KiB of log lines (a longer --frames run) the trainer blocked on its next write, the
    game's connection went silent, and the run was killed at --timeout as a crash."""
    import sys

    fuzz = load_script("fuzz_bridge")
    logs = [sys.executable, "-c", "import sys; sys.stderr.write('x' * (1 << 20))"]
    returncode, output = fuzz.watch(logs, timeout=120, poll=lambda pid: None)
    assert returncode == 0 and len(output) == 1 << 20

"""scripts/bench_bridge.py: all three sides run against the emulator and the figures add up."""

from __future__ import annotations

import json
import subprocess
import sys

from runs import SCRIPTS


def test_the_bridge_benchmark_runs_and_reports_the_emulators_ticks(tmp_path):
    # It crashed on every run once the emulator's stop line had changed. One second a side:
    # the test checks the script's figures, not the machine's speed.
    command = [sys.executable, str(SCRIPTS / "bench_bridge.py"), "--seconds", "1"]
    command += ["--races", "1", "--cars", "2", "--tracks", "1"]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout.splitlines()[-1])
    assert figures["bench"] == "bridge" and figures["cars"] == 2
    assert figures["bridge_env_steps_per_s"] > 0 and figures["direct_env_steps_per_s"] > 0
    assert 0.0 <= figures["realtime_in_time_share"] <= 1.0
    assert "ACTION before the next tick for" in result.stdout

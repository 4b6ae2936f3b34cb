"""run.json: one leg per invocation; legs of killed processes are marked on the next start."""

import json
import os
import platform
import subprocess
import sys

import pytest

from racing_rl.provenance import process_start, record_leg


def leg(started_at: str, pid: int, status: str = "running") -> dict:
    return {"started_at": started_at, "pid": pid, "host": platform.node(), "status": status}


def dead_pid() -> int:
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(child.stdout)


def test_a_killed_leg_is_marked_on_the_next_start(tmp_path):
    record_leg(tmp_path, leg("2026-12-01T10:00:00", dead_pid()))  # then: kill -9
    record_leg(tmp_path, leg("2026-12-01T11:00:00", os.getpid()))
    killed, current = json.loads((tmp_path / "run.json").read_text())["legs"]
    assert killed["status"] == "killed"
    assert killed["killed_noticed_at"] == "2026-12-01T11:00:00"
    assert current["status"] == "running"
    record_leg(tmp_path, {**leg("2026-12-01T11:00:00", os.getpid()), "status": "completed"})
    legs = json.loads((tmp_path / "run.json").read_text())["legs"]
    assert [entry["status"] for entry in legs] == ["killed", "completed"]


def test_a_leg_whose_process_still_runs_is_left_alone(tmp_path):
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as other:
        try:
            record_leg(tmp_path, leg("2026-12-01T10:00:00", other.pid))
            record_leg(tmp_path, leg("2026-12-01T11:00:00", os.getpid()))
        finally:
            other.kill()
    first, _ = json.loads((tmp_path / "run.json").read_text())["legs"]
    assert first["status"] == "running"


@pytest.mark.skipif(process_start(os.getpid()) is None, reason="no /proc/<pid>/stat")
def test_a_leg_whose_pid_another_process_took_is_killed(tmp_path):
    """A killed run's pid, taken since by another process (after a reboot, in a container),
    kept its leg "running": the report showed it running, eval follow=true waited on it."""
    from racing_rl.provenance import leg_status

    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as other:
        try:
            started = process_start(other.pid)
            assert isinstance(started, int)
            ours = {**leg("2026-12-01T10:00:00", other.pid), "pid_started": started}
            taken = {**leg("2026-12-01T10:00:01", other.pid), "pid_started": started - 1}
            assert leg_status(ours) == "running" and leg_status(taken) == "killed"
            record_leg(tmp_path, ours)
            record_leg(tmp_path, taken)
            record_leg(tmp_path, leg("2026-12-01T11:00:00", os.getpid()))
        finally:
            other.kill()
    statuses = [
        entry["status"] for entry in json.loads((tmp_path / "run.json").read_text())["legs"]
    ]
    assert statuses == ["running", "killed", "running"]


def test_a_damaged_run_json_starts_a_new_history(tmp_path):
    (tmp_path / "run.json").write_text("{not json")
    record_leg(tmp_path, leg("2026-12-01T11:00:00", os.getpid()))
    (only,) = json.loads((tmp_path / "run.json").read_text())["legs"]
    assert only["pid"] == os.getpid()
    assert (tmp_path / "run.json.damaged").read_text() == "{not json"


def test_two_legs_of_one_process_in_the_same_second_stay_two(tmp_path):
    first = leg("2026-12-01T10:00:00", os.getpid())
    record_leg(tmp_path, first)
    record_leg(tmp_path, {**first, "status": "completed"})
    record_leg(tmp_path, first)  # resumed in-process within the same second
    legs = json.loads((tmp_path / "run.json").read_text())["legs"]
    assert [entry["status"] for entry in legs] == ["completed", "running"]


def test_the_game_of_a_run_is_the_one_of_its_newest_leg_that_trained(tmp_path):
    """A resume refused before it trained (another car) left its game in run.json: an
    export must not name it, nor a resume take its size."""
    from racing_rl.provenance import trained_game

    assert trained_game(tmp_path) == {}  # no run.json
    trained = {
        "game": {"model_id": "car", "observation_size": 19},
        "start_timesteps": 0,
        "end_timesteps": 2048,
    }
    refused = {"game": {"model_id": "bus"}, "start_timesteps": 2048, "status": "failed"}
    legs = [{"start_timesteps": 0}, trained, refused, {"game": "hand-edited"}]
    (tmp_path / "run.json").write_text(json.dumps({"legs": legs}))
    assert trained_game(tmp_path) == {"model_id": "car", "observation_size": 19}

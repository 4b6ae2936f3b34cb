"""What training shows and writes: SB3's table, progress.csv, the progress bar, W&B."""

import csv
import io
import json
import logging
import logging.config
import os
import struct
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest
import yaml
from hydra import compose
from omegaconf import OmegaConf
from rich.console import Console
from rich.progress import Progress
from runs import TINY, racing_rl, tb_scalars
from stable_baselines3.common.logger import CSVOutputFormat, TensorBoardOutputFormat

from racing_rl import training
from racing_rl.config import initialize
from racing_rl.loggers import TensorBoardOutput, csv_output, sb3_logger, wandb_run

TRAIN_YAML = Path(__file__).parents[1] / "conf" / "train.yaml"


def test_progress_csv_keeps_the_rows_of_earlier_legs(tmp_path):
    path = tmp_path / "progress.csv"
    first = csv_output(path)
    first.write({"time/total_timesteps": 1024, "rollout/ep_rew_mean": 1.5}, {}, 1024)
    first.close()
    resumed = csv_output(path)  # a resumed run opens it again
    resumed.write({"time/total_timesteps": 2048, "train/loss": 0.25}, {}, 2048)
    resumed.close()
    rows = list(csv.DictReader(path.open()))
    assert [row["time/total_timesteps"] for row in rows] == ["1024", "2048"]
    assert rows[0]["rollout/ep_rew_mean"] == "1.5" and rows[0]["train/loss"] == ""
    assert rows[1]["train/loss"] == "0.25"


def test_a_resumed_progress_csv_drops_later_rows_and_survives_a_damaged_one(tmp_path):
    """Resume filters the rows past its checkpoint; a row cut short by a kill, a blank
    line or a cell that is no number made it raise (IndexError, ValueError), so the run
    could not be resumed."""
    path = tmp_path / "progress.csv"
    path.write_text("time/fps,time/total_timesteps\n1.0,512\n\n2.0,n/a\n2.5,1024\n3.0,1536\n3.5,20")
    resumed = csv_output(path, until=1024)
    resumed.write({"time/fps": 4.0, "time/total_timesteps": 1536}, {}, 1536)
    resumed.close()
    rows = list(csv.DictReader(path.open()))
    assert [row["time/total_timesteps"] for row in rows] == ["512", "n/a", "1024", "1536"]
    assert rows[-1]["time/fps"] == "4.0"  # the new row, not the one past the checkpoint


def test_a_new_run_drops_the_figures_of_an_attempt_stopped_before_its_first_save(
    tmp_path, monkeypatch
):
    """Run again after "nothing was saved" (Ctrl-C before the first update) in the same
    hydra.run.dir: the aborted attempt's rows and events stayed, and both attempts' first
    rollout was logged at the same step, twice."""
    from tensorboard.summary.writer import event_file_writer

    for second, attempt in enumerate((1.0, 2.0)):
        # Two commands, seconds apart: TensorBoard reads event files in name order, a
        # 10-digit time in seconds, then the process's count of writers, unpadded; in one
        # process within one second its 10th file sorted before its 9th (CI saw it once).
        clock = types.SimpleNamespace(time=lambda second=second: 1_800_000_000.0 + second)
        monkeypatch.setattr(event_file_writer, "time", clock)
        logger = sb3_logger(tmp_path)
        logger.record("time/total_timesteps", 1024)
        logger.record("rollout/ep_rew_mean", attempt)
        logger.dump(1024)
        logger.close()
    rows = list(csv.DictReader((tmp_path / "progress.csv").open()))
    assert [(r["time/total_timesteps"], r["rollout/ep_rew_mean"]) for r in rows] == [
        ("1024", "2.0")
    ]
    assert tb_scalars(tmp_path)["rollout/ep_rew_mean"] == [(1024, 2.0)]


def test_a_run_closes_its_log_files(tmp_path, monkeypatch):
    """A sweep's jobs share one process: each left its progress.csv open and its
    TensorBoard writer's thread running until the whole sweep ended."""
    made = []

    def logger(*args, **kwargs):
        made.append(sb3_logger(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(training, "sb3_logger", logger)
    with initialize():
        cfg = compose("train", overrides=TINY)
    training.train(cfg, tmp_path)
    (formats,) = [made_logger.output_formats for made_logger in made]
    (progress,) = [f for f in formats if isinstance(f, CSVOutputFormat)]
    (events,) = [f for f in formats if isinstance(f, TensorBoardOutputFormat)]
    assert progress.file.closed and events._is_closed


class Terminal(io.StringIO):
    """A terminal's stderr: the progress bar draws itself live on it."""

    def isatty(self) -> bool:
        return True


def test_the_table_and_the_log_print_above_the_progress_bar(tmp_path, monkeypatch):
    """On a terminal the bar (rich's) redirects stderr while it runs, so that what is written
    there prints above it; SB3's table and the log's console handler wrote to the stderr
    they were made with, past it: the table's first line and each log line ran on from the
    bar's line ("... 1,603 it/s ]-----", "... it/s ][...][INFO] - checkpoint ...")."""
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    logger = sb3_logger(tmp_path)
    console = yaml.safe_load(TRAIN_YAML.read_text())["hydra"]["job_logging"]["handlers"]["console"]
    handler = logging.StreamHandler(logging.config.BaseConfigurator({}).convert(console["stream"]))
    with Progress(console=Console(stderr=True, force_terminal=True)) as progress:
        progress.add_task("training", total=2048)
        logger.record("rollout/ep_rew_mean", 1.5)
        logger.dump(512)
        handler.emit(logging.makeLogRecord({"msg": "checkpoint ppo_1024_steps"}))
    logger.close()
    # What a terminal shows on each line: what was written after its last carriage return.
    shown = [line.rsplit("\r", 1)[-1] for line in terminal.getvalue().split("\n")]
    assert any("ep_rew_mean" in line for line in shown)
    assert any("checkpoint ppo_1024_steps" in line for line in shown)
    assert not [line for line in shown if "━" in line and ("---" in line or "checkpoint" in line)]


def wandb_records(run_file) -> list:
    """The records of an offline W&B run file (``run-<id>.wandb``), in order.

    The file is a LevelDB-style log (wandb's transaction log): a 7-byte header, then
    32 KiB blocks of records, each ``crc32 (4) | length (2) | type (1) | data``; a record
    longer than a block's rest is split (types first, middle, last; 1 = whole).
    """
    from wandb.proto import wandb_internal_pb2

    data, block, header = run_file.read_bytes(), 32768, 7
    assert data[:4] == b":W&B", f"{run_file} is not a W&B run file"
    position, chunk, records = header, b"", []
    while position + header <= len(data):
        left = block - position % block
        _, length, kind = struct.unpack("<IHB", data[position : position + header])
        if left < header or (kind == 0 and length == 0):  # a block's zero padding
            position += left
            continue
        chunk += data[position + header : position + header + length]
        position += header + length
        if kind in (1, 4):  # the whole record, or its last part
            record = wandb_internal_pb2.Record()
            record.ParseFromString(chunk)
            chunk = b""
            records.append(record)
    return records


def wandb_history(run_file) -> list[dict]:
    """The history rows of an offline W&B run file, each as ``{key: value}``."""
    return [
        {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in record.history.item}
        for record in wandb_records(run_file)
        if record.WhichOneof("record_type") == "history"
    ]


def finished_run_files(run_dir, timeout=60.0) -> list:
    """The offline run files of ``run_dir``, one per leg, oldest first (their directories
    are named ``offline-run-<start time>-<id>``), once each holds its run's exit record.

    ``run.finish()`` returns before wandb-core has written the last records of its
    transaction log (a sweep's next job runs in the same process meanwhile); the file is
    complete at the exit record, the last one a run writes.
    """
    run_files = sorted((run_dir / "wandb").glob("offline-run-*/run-*.wandb"))
    deadline = time.monotonic() + timeout
    for run_file in run_files:
        while not any(r.WhichOneof("record_type") == "exit" for r in wandb_records(run_file)):
            assert time.monotonic() < deadline, f"{run_file} has no exit record after {timeout} s"
            time.sleep(0.05)
    return run_files


def finished_run_file(run_dir, timeout=60.0):
    """The offline run file of a ``run_dir`` of one leg, once it is complete."""
    (run_file,) = finished_run_files(run_dir, timeout)
    return run_file


def train_offline(overrides: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """``racing-rl train <overrides>`` with W&B offline (and silent), which succeeds."""
    result = racing_rl(
        "train", *overrides, cwd=cwd, env={"WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_training_shows_a_table_writes_progress_csv_and_syncs_wandb(tmp_path):
    pytest.importorskip("wandb")
    run_dir = tmp_path / "run"
    overrides = [o for o in TINY if o not in ("total_timesteps=2000", "progress_bar=false")]
    # 2 rollouts of 256 steps × 4 cars: 1,025 timesteps run 2,048.
    result = train_offline(
        [
            *overrides,
            "total_timesteps=1025",
            "progress_bar=true",
            "logger=wandb",
            f"hydra.run.dir={run_dir}",
        ],
        cwd=tmp_path,
    )
    # SB3's table on stderr, with the logs; stdout is left for results.
    assert "| rollout/" in result.stderr and "ep_rew_mean" in result.stderr
    assert "ep_rew_mean" not in result.stdout
    # The progress bar counts to what ran, not to total_timesteps.
    assert "2,048/2,048" in result.stderr
    progress = list(csv.DictReader((run_dir / "progress.csv").open()))
    assert [int(row["time/total_timesteps"]) for row in progress] == [1024, 2048]

    # The offline W&B run holds every TensorBoard scalar at the same step.
    tensorboard = tb_scalars(run_dir)
    (run_file,) = (run_dir / "wandb").glob("offline-run-*/run-*.wandb")
    rows = wandb_history(run_file)
    # W&B's own rows (system metrics, the run's end) have no TensorBoard step.
    history = {row["global_step"]: row for row in rows if "global_step" in row}
    assert "rollout/ep_rew_mean" in tensorboard and "train/loss" in tensorboard
    for tag, pairs in tensorboard.items():
        for step, value in pairs:
            assert history[step][tag] == pytest.approx(value, rel=1e-6), tag


def test_a_resumed_run_continues_its_wandb_run(tmp_path):
    """Each resumed leg started a new W&B run of the same name (no id, no resume): in
    W&B a run resumed once was two runs, each with part of its curves."""
    pytest.importorskip("wandb")
    run_dir = tmp_path / "run"
    # 2 rollouts of 256 steps × 4 cars (2,048 timesteps), then one more (3,072).
    for leg in (
        [*TINY, "logger=wandb", f"hydra.run.dir={run_dir}"],
        [f"resume={run_dir}", "total_timesteps=3000"],
    ):
        train_offline(leg, cwd=tmp_path)
    run_files = finished_run_files(run_dir)
    starts = [r.run for f in run_files for r in wandb_records(f) if r.HasField("run")]
    run_id = starts[0].run_id
    # One W&B run; the second leg's says it resumes: `wandb sync` adds it to the first's.
    assert [(start.run_id, start.resume) for start in starts] == [(run_id, False), (run_id, True)]
    legs = json.loads((run_dir / "run.json").read_text())["legs"]
    assert [leg.get("wandb_id") for leg in legs] == [run_id, run_id]
    # Each step once, in the leg that logged it, as TensorBoard has it.
    steps = [
        [row["global_step"] for row in wandb_history(f) if "rollout/ep_rew_mean" in row]
        for f in run_files
    ]
    assert steps == [[1024, 2048], [3072]]
    history = {
        row["global_step"]: row
        for f in run_files
        for row in wandb_history(f)
        if "global_step" in row
    }
    for tag, pairs in tb_scalars(run_dir).items():
        for step, value in pairs:
            assert history[step][tag] == pytest.approx(value, rel=1e-6), tag


def test_wandb_syncs_each_job_of_a_sweep_without_warnings(tmp_path, monkeypatch):
    """A run dir outside the working directory made W&B warn "Found log directory outside
    of given root_logdir", and a sweep's next job (one process) "When using several event
    log directories, please call wandb.tensorboard.patch(...)": advice to the user for
    what racing-rl sets up."""
    wandb = pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    warnings = []
    monkeypatch.setattr(
        wandb, "termwarn", lambda message, *args, **kwargs: warnings.append(message)
    )
    cfg = OmegaConf.create({"logger": {"project": "p", "entity": None, "group": None, "tags": []}})
    try:
        for job in ("0_seed=0", "1_seed=1"):
            run_dir = tmp_path / job
            run_dir.mkdir()
            with wandb_run(cfg, run_dir):
                events = TensorBoardOutput(str(run_dir / "tb"))
                events.write({"rollout/ep_rew_mean": 1.0}, {"rollout/ep_rew_mean": None}, 512)
                events.close()
            rows = wandb_history(finished_run_file(run_dir))
            rows = [row for row in rows if "global_step" in row]
            assert [(row["global_step"], row["rollout/ep_rew_mean"]) for row in rows] == [
                (512, 1.0)
            ]
    finally:
        # The wandb-core this test started, and WANDB_SERVICE, which wandb set in this
        # process's environment to reach it: left, every later racing-rl in this worker
        # with logger=wandb used that service, and ended without waiting for it to write
        # its run file.
        wandb.teardown()
    assert warnings == []


def train_online(overrides: list[str], home: Path, **wandb: str) -> subprocess.CompletedProcess:
    """``racing-rl train <overrides>`` with W&B online (and silent), in ``home``, a home
    without ~/.netrc or W&B settings, and no WANDB_ variables but ``wandb``'s: no key,
    whatever this machine has, unless one is given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    return subprocess.run(
        [sys.executable, "-m", "racing_rl.cli", "train", *overrides],
        cwd=home,
        capture_output=True,
        text=True,
        timeout=300,
        env={**env, "HOME": str(home), "WANDB_MODE": "online", "WANDB_SILENT": "true", **wandb},
    )


def test_wandb_without_a_login_is_one_line_that_says_what_to_do(tmp_path):
    """logger=wandb with no API key (and W&B online) ended in a 20-line traceback."""
    pytest.importorskip("wandb")
    result = train_online([*TINY, "logger=wandb"], tmp_path)
    assert result.returncode == 1
    assert "logger=wandb: W&B could not start the run (No API key configured" in result.stderr
    assert "WANDB_MODE=offline" in result.stderr and "Traceback" not in result.stderr


def test_wandb_that_cannot_be_reached_stops_after_logger_init_timeout(tmp_path):
    """logger=wandb with an API key but no network waited W&B's own 90 s (~2 min in all)
    before a message that spanned lines and advised wandb.Settings(init_timeout=...), a
    call racing-rl makes. It now waits logger.init_timeout, and says so in one line. (A
    W&B server address that refuses connections: no network is needed.)"""
    pytest.importorskip("wandb")
    args = [*TINY, "logger=wandb", "logger.init_timeout=3", f"hydra.run.dir={tmp_path / 'run'}"]
    started = time.monotonic()
    # The discard port of this machine: nothing listens there.
    result = train_online(
        args, tmp_path, WANDB_API_KEY="0" * 40, WANDB_BASE_URL="http://127.0.0.1:9"
    )
    assert result.returncode == 1
    assert time.monotonic() - started < 80  # W&B's own limit was 90 s
    (line,) = [line for line in result.stderr.splitlines() if "W&B could not start" in line]
    assert "it waits logger.init_timeout=3 s: raise it for a slow network" in line
    assert "WANDB_MODE=offline" in line and "Traceback" not in result.stderr
    assert "Consider increasing" not in result.stderr

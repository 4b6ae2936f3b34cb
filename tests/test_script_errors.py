"""The scripts under scripts/ end a wrong run directory, a Roblox run or a bad option with
one line and a non-zero status (they printed tracebacks, or waited 120 s for a game)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hydra import compose
from omegaconf import OmegaConf
from runs import SCRIPTS, saved_config

from racing_rl.checkpoints.runs import check_simulator_run
from racing_rl.config import initialize
from racing_rl.errors import ConfigError, RacingRLError, reported


def script(name: str, *args: str, cwd) -> subprocess.CompletedProcess:
    command = [sys.executable, str(SCRIPTS / name), *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.fixture
def roblox_run(tmp_path):
    """A run directory whose saved config trained in a Roblox game."""
    with initialize():
        cfg = compose("train", overrides=["backend=roblox"])
    run = tmp_path / "roblox_run"
    (run / ".hydra").mkdir(parents=True)
    OmegaConf.save(cfg, run / ".hydra" / "config.yaml")
    return run


def test_reported_turns_racing_rl_errors_and_missing_files_into_one_line():
    with pytest.raises(SystemExit, match=r"^x\.py: no run$"), reported("x.py"):
        raise RacingRLError("no run")
    missing = r"^x\.py: no such file or directory: /nope$"
    with pytest.raises(SystemExit, match=missing), reported("x.py"):
        open("/nope").close()  # the error is the point
    with pytest.raises(KeyError), reported("x.py"):  # a bug keeps its traceback
        raise KeyError("bug")


def test_a_roblox_run_is_refused_by_what_needs_the_simulator(roblox_run):
    with pytest.raises(ConfigError, match=r"trained on backend=roblox: the benchmark needs"):
        check_simulator_run(roblox_run, "the benchmark")


@pytest.mark.parametrize(
    ("name", "args", "says"),
    [
        ("bench_eval.py", ["{roblox}", "--rounds", "1"], "trained on backend=roblox"),
        ("bench_eval.py", ["{tmp}/nope"], "bench_eval.py: "),
        ("bench_eval.py", ["{tmp}/nope", "--threads", "1"], "--threads must be >= 2"),
        ("analyze_crashes.py", ["{roblox}"], "trained on backend=roblox: analyze_crashes"),
        ("analyze_crashes.py", ["{tmp}/nope"], "analyze_crashes.py: "),
        # The recording's options were dropped without a word by one that records nothing.
        ("analyze_crashes.py", ["{tmp}", "--replays", "{tmp}", "--seeds", "1"], "--seeds set how"),
        ("benchmark_algos.py", ["--measure", "{roblox}", "--runs", "{tmp}/b"], "backend=roblox"),
        ("benchmark_algos.py", ["--render", "{tmp}/nothere.json"], "no such file or directory"),
        ("benchmark_algos.py", ["--render", "{tmp}"], "is a directory: give the results.json"),
        ("benchmark_algos.py", ["--render", "{roblox}/.hydra/config.yaml"], "is not JSON"),
        ("benchmark_algos.py", ["--render", "{tmp}/metrics.json"], "(no benchmark_seeds, "),
        # --out is probed after the other refusals: given results that render.
        ("benchmark_algos.py", ["--render", "{results}", "--out", "{tmp}"], "is a directory"),
        (
            "benchmark_algos.py",
            ["--render", "{results}", "--out", "{tmp}/metrics.json/b.md"],
            "cannot be written: ",
        ),
        # Training's options were dropped without a word by a run that trains nothing.
        ("benchmark_algos.py", ["--seeds", "1", "--measure", "{tmp}"], "--seeds set the runs"),
        ("benchmark_algos.py", ["--algos", "sac", "--render", "{tmp}/r.json"], "--algos set"),
        ("bench_train.py", ["backend=roblox"], "backend=pygame, algo=ppo or recurrent_ppo"),
        ("bench_train.py", ["algo=sac"], "backend=pygame, algo=ppo or recurrent_ppo"),
        ("bench_train.py", ["n_racez=2"], "'n_racez' is not a key of racing-rl train"),
        ("bench_train.py", ["n_races=[1"], "bench_train.py: error: "),
        ("imitate_scripted.py", ["{roblox}", "--epochs", "0"], "--epochs must each be >= 1"),
        # Its refusals were logged with a time stamp, not the script's name, unlike the others'.
        ("imitate_scripted.py", ["{tmp}/nope"], "imitate_scripted.py: "),
        ("bench_bridge.py", ["--seconds", "0"], "--seconds > 0; got 4, 5, 8 and 0.0"),
        ("stack_hashes.py", ["--seed", "-1"], "--seed >= 0, got 400 and -1."),
        ("bench_sim.py", ["--seconds", "nan"], "got [1, 8, 32, 128], nan, 15, 32 and 2."),
        # Both sweeps ran, and the first one's jobs failed in Hydra's words (11 lines).
        ("bench_sweep.py", ["--timesteps", "0"], "bench_sweep.py: error: --timesteps must be >="),
    ],
)
def test_a_script_given_what_it_cannot_use_says_so_in_one_line(
    name, args, says, roblox_run, tmp_path
):
    results = SCRIPTS.parent / "docs" / "results" / "grid2026-12-07_ppo_seeds0123.json"
    args = [a.format(roblox=roblox_run, tmp=tmp_path, results=results) for a in args]
    (tmp_path / "metrics.json").write_text('{"episodes": 2}')  # racing-rl eval's, not ours
    result = script(name, *args, cwd=tmp_path)
    assert result.returncode in (1, 2), result.stderr[-2000:]
    assert says in result.stderr and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert not (tmp_path / "b").exists()  # no benchmark dir for a run it refuses


@pytest.mark.parametrize(
    ("name", "args", "says"),
    [
        # It hashed the VecEnvs' resets alone, as if they were the stack's steps.
        ("stack_hashes.py", ["--steps", "0"], "--steps must be >= 1 and --seed >= 0, got 0 and"),
        # Its trainer was killed as it started, and the fuzzing counted as done.
        ("fuzz_bridge.py", ["--timeout", "nan"], "--frames must be >= 1 and --timeout > 0"),
        ("bench_sim.py", ["--min-naive-steps", "-1"], "--min-naive-steps >= 0; got [1, 8, 32"),
        # racing-rl train refused seed=-1 once the seeds before it had trained.
        ("benchmark_algos.py", ["--seeds", "0", "-1"], "--seeds must be >= 0 (racing-rl train"),
        # The load average was printed, then racing-rl eval's refusal (status 1).
        ("bench_eval.py", ["run", "--seeds", "-1"], "--seeds holds -1; a track seed is an int"),
        ("bench_eval.py", ["run", "--max-steps", "0"], "--rounds >= 1 and --max-steps >= 1; got "),
    ],
)
def test_a_script_refuses_a_number_it_cannot_use_before_it_starts(name, args, says, tmp_path):
    """Every script's counts, durations and seeds: zero where it means nothing, negative,
    nan; the ones argparse's types let through and the script did not refuse."""
    result = script(name, *args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.splitlines()[-1].startswith(f"{name}: error: "), result.stderr
    assert says in result.stderr.splitlines()[-1], result.stderr
    assert list(tmp_path.iterdir()) == []  # nothing made, nothing run


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("analyze_crashes.py", ["run"]),
        ("bench_eval.py", ["run", "--rounds", "1"]),
        ("bench_export.py", ["run"]),
        ("benchmark_algos.py", ["--measure", "run"]),
    ],
)
def test_a_script_names_its_own_checkpoint_option(name, args, tmp_path):
    """They said racing-rl's checkpoint= (analyze_crashes.py in racing-rl eval's words,
    after starting it)."""
    saved_config(tmp_path / "run", [])
    result = script(name, *args, "--checkpoint", "nope", cwd=tmp_path)
    assert result.returncode == 1, result.stderr[-2000:]
    assert result.stderr.startswith(f"{name}: Checkpoint 'nope' not found: "), result.stderr
    assert "--checkpoint takes final, best" in result.stderr, result.stderr
    assert "checkpoint=" not in result.stderr and "Traceback" not in result.stderr
    assert [p.name for p in (tmp_path / "run").iterdir()] == [".hydra"]  # no eval dir
    # benchmark_algos.py left its --runs probe's outputs/benchmark/, empty.
    assert [p.name for p in tmp_path.iterdir()] == ["run"]


def test_benchmark_algos_refuses_a_runs_dir_it_cannot_make_before_measuring(tmp_path):
    # A file given as --runs ended in a FileExistsError's traceback.
    saved_config(tmp_path / "run", [])
    (tmp_path / "file").write_text("")
    result = script(
        "benchmark_algos.py", "--measure", "run", "--runs", "file/b", "--out", "out/b.md",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr[-2000:]
    assert "--runs file/b cannot hold the benchmark dirs: file is a file" in result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "run"]  # no out/, empty


def test_fuzz_bridge_refuses_a_run_dir_that_holds_a_run_before_training(tmp_path):
    # racing-rl train refused it, which the script counted as a crash of the bridge, after
    # its report of 0 bad frames.
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "model.zip").write_bytes(b"")
    result = script("fuzz_bridge.py", "--run-dir", "run", "--frames", "1", cwd=tmp_path)
    assert result.returncode == 2 and result.stdout == "", result.stdout[-2000:]
    assert "--run-dir run already holds a run (model.zip): give a new directory" in result.stderr

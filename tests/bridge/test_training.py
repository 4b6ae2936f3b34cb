"""`racing-rl train` / `racing-rl eval` with backend=roblox against the emulator over loopback."""

import io
import json
import logging
import pickle
import re
import signal
import subprocess
import sys
import threading
import time
import zipfile

import numpy as np
import pytest
import torch
from hydra import compose
from roblox_game import free_port, game
from runs import QUICK, TINY, default_sigint, racing_rl, tb_scalars
from websockets.sync.client import connect

from racing_rl.bridge.faults import Faults
from racing_rl.config import initialize
from racing_rl.envs.config import RaceConfig
from racing_rl.errors import ConfigError
from racing_rl.evaluation.episodes import evaluation_env, run_episodes
from racing_rl.export import load_spec
from racing_rl.normalize import read_statistics
from racing_rl.sim.sensors import SensorConfig
from racing_rl.training import train

N_STEPS = 256  # conf/algo/ppo.yaml


def contents(run_dir):
    """A run dir's files, TensorBoard event file names reduced to their kind."""
    names = set()
    for path in run_dir.rglob("*"):
        if path.is_file():
            name = str(path.relative_to(run_dir))
            names.add(re.sub(r"events\.out\.tfevents\..*", "events.out.tfevents", name))
    return names


@pytest.fixture(scope="module")
def sim_run(tmp_path_factory):
    """A tiny PPO run on the simulator backend."""
    tmp = tmp_path_factory.mktemp("sim")
    result = racing_rl("train", *QUICK, f"hydra.run.dir={tmp / 'run'}", cwd=tmp)
    assert result.returncode == 0, result.stderr[-3000:]
    return tmp / "run"


def test_train_on_roblox_leaves_the_simulators_run_dir_and_freezes_for_updates(sim_run, tmp_path):
    port = free_port()
    run_dir = tmp_path / "run"
    with game(port) as emulator:
        result = racing_rl(
            "train",
            "backend=roblox",
            f"backend.server.port={port}",
            *QUICK,
            f"hydra.run.dir={run_dir}",
            cwd=tmp_path,
        )
    assert result.returncode == 0, result.stderr[-3000:]
    assert contents(run_dir) == contents(sim_run)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["timesteps"] == 2048 and "best" in summary
    assert summary["objective"]["kind"] == "return"  # the game sends no lap information
    assert summary["best"]["lap_completion_rate"] is None  # not measured: it said 0.0
    assert "eval/lap_completion_rate" not in tb_scalars(run_dir, "eval/")
    # The run says which game it trained with, and what that game's cars observe.
    (leg,) = json.loads((run_dir / "run.json").read_text())["legs"]
    assert leg["game"] == {"model_id": "test", "observation_size": 13}
    # ... and so does a policy exported from it.
    assert load_spec(run_dir).info["game_model_id"] == "test"
    # Resumed against a game on another port, with a longer wait: Hydra composes the run's
    # own backend (the default one has no server keys), and a resume may change them.
    port = free_port()
    with game(port):
        resumed = racing_rl(
            "train",
            f"resume={run_dir}",
            f"backend.server.port={port}",
            "backend.observation_timeout=12",
            "total_timesteps=3000",
            cwd=tmp_path,
        )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert json.loads((run_dir / "summary.json").read_text())["timesteps"] == 3072
    # Against a game whose cars send 19 numbers: the run's size (13) is named at once,
    # where the game's was taken and the checkpoint's statistics looked damaged.
    port = free_port()
    with game(port, sim=RaceConfig(sensors=SensorConfig(n_rays=16, layout="roblox_car"))):
        other = racing_rl(
            "train",
            f"resume={run_dir}",
            f"backend.server.port={port}",
            "total_timesteps=4000",
            cwd=tmp_path,
        )
    assert other.returncode == 1
    assert "Give the game's cars 10 rays (13 numbers per car: main.server's carM" in other.stderr
    assert "None of the" not in other.stderr
    assert "ranks checkpoints by mean episode return" in result.stderr
    validations = [line for line in result.stderr.splitlines() if "validation at" in line]
    assert validations and not any("lap completion" in line for line in validations)
    # Each is announced: in a game it runs in real time, up to validation.max_steps ticks.
    assert result.stderr.count("in the game: each car until its episode ends") == len(validations)
    assert result.stderr.count("tracks.train_mix") == 1  # said once, not per config check

    # FREEZE true after every rollout (before each policy update) and before each save,
    # FREEZE false before stepping resumes. The training envs are the first spawned.
    commands = emulator.commands
    assert len(commands) == emulator.received, "the emulator's history dropped commands"
    spawned = [c for c in commands if c["command"] == "SPAWN_AGENTS"]
    training = {c["envid"] for c in spawned[:2]}
    assert all(len(c["data"]["agents"]) == 2 for c in spawned[:2])
    assert len({c["envid"] for c in spawned}) == 3  # + one validation env of 2 cars
    actions_since_update, frozen, updates, saves = 0, False, 0, 0
    for command in commands:
        kind = command["command"]
        if kind == "ACTION":
            assert not frozen, "an ACTION was sent while the game was frozen"
            actions_since_update += command["envid"] in training
        elif kind == "FREEZE" and command["data"]["status"]:
            frozen = True
            if actions_since_update == N_STEPS * 2:  # one rollout of both envs: an update
                actions_since_update, updates = 0, updates + 1
            else:
                saves += 1
        elif kind == "FREEZE":
            frozen = False
    assert updates == 2  # 2048 timesteps = 2 rollouts of 256 steps × 4 cars
    assert saves >= 2  # checkpoints at 1,000 and 2,000 steps (and best models)


@pytest.mark.parametrize("driver", ["policy", "onnx", "luau"])
def test_eval_in_a_game_of_other_cars_names_the_checkpoint_that_wants_its_size(
    sim_run, tmp_path, driver
):
    """The size comes from the checkpoint: the error named backend.observation_size. An
    exported driver took the game's size, and onnxruntime failed with a traceback."""
    port = free_port()
    with game(port, sim=RaceConfig(sensors=SensorConfig(n_rays=16, layout="roblox_car"))):
        result = racing_rl(
            "eval",
            f"run_dir={sim_run}",
            "seeds=[5]",
            "checkpoint=final",
            f"driver={driver}",
            "backend=roblox",
            f"backend.server.port={port}",
            cwd=tmp_path,
        )
    assert result.returncode == 1
    exported = "" if driver == "policy" else f" as {driver}"
    assert f"than the checkpoint {sim_run / 'model.zip'}{exported} expects" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_policy_trained_on_the_simulator_races_the_same_through_the_bridge(sim_run, tmp_path):
    seeds = "seeds=[2000000,2000001,2000002,2000003,2000004,2000005]"
    direct = racing_rl("eval", f"run_dir={sim_run}", seeds, "checkpoint=final", cwd=tmp_path)
    assert direct.returncode == 0, direct.stderr[-3000:]
    on_sim = json.loads((sim_run / "eval" / "metrics.json").read_text())
    port = free_port()
    with game(port, info=True):  # lap metrics: the protocol's optional info extension
        bridged = racing_rl(
            "eval",
            f"run_dir={sim_run}",
            seeds,
            "checkpoint=final",
            "backend=roblox",
            f"backend.server.port={port}",
            cwd=tmp_path,
        )
    assert bridged.returncode == 0, bridged.stderr[-3000:]
    on_roblox = json.loads((sim_run / "eval" / "metrics.json").read_text())
    assert on_roblox["lap_completion_rate"] == on_sim["lap_completion_rate"]
    # The emulator sends the protocol's info keys only: nothing dropped, nothing rejected.
    counters = on_roblox["bridge"]
    assert counters["rejected"] == 0 and not [k for k in counters if "dropped" in k], counters
    assert "tick_hz" not in bridged.stdout  # the summary table shows figures, not the record
    # The game sends lap info: its figures are shown, as on the simulator.
    assert "progress" in bridged.stdout.splitlines()[0] and "not measured" not in bridged.stdout
    assert on_roblox["unreported_info"] == []
    # Same tracks, same physics, same actions: the very same episodes.
    for key in ("track_seed", "finished", "crashed", "length", "progress"):
        assert [t[key] for t in on_roblox["tracks"]] == [t[key] for t in on_sim["tracks"]], key


def eval_in_the_game(tmp_path, *overrides):
    """``racing-rl eval`` of the final model in the emulated game, whose entries are the
    real game's (no lap info); it must succeed."""
    port = free_port()
    with game(port):
        result = racing_rl(
            "eval",
            *overrides,
            "checkpoint=final",
            "backend=roblox",
            f"backend.server.port={port}",
            cwd=tmp_path,
        )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_eval_in_the_game_says_what_it_raced_and_leaves_out_what_the_game_never_sends(
    sim_run, tmp_path
):
    """It said '20 test tracks' of episodes on the game's own track, and printed nan for
    the progress, lap times and speed that the unmodified game (no info) never sends."""
    result = eval_in_the_game(tmp_path, f"run_dir={sim_run}", f"out_dir={tmp_path / 'eval'}")
    table = result.stdout.splitlines()
    assert table[0].split() == ["track_seed", "ending", "episode_return", "length"]
    assert "nan" not in result.stdout and "test tracks" not in result.stdout
    assert "20 episodes in the game, which chooses the track" in table[-1]
    (said,) = [line for line in table if line.startswith("not measured: ")]
    assert "lap_time, progress, lap_completion_rate" in said and "no info.progress" in said
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["unreported_info"] == ["progress", "mean_speed"]
    assert metrics["episodes"] == 20 and metrics["mean_progress"] is None
    # It said split "test" and a lap completion of 0.0, as if measured on the test tracks.
    assert metrics["split"] == "game" and metrics["lap_completion_rate"] is None


def test_a_race_in_the_game_says_what_it_raced_and_leaves_out_what_the_game_never_sends(
    sim_run, tmp_path
):
    """It printed 'nan laps' gaps and put every car on position 1 (nothing ranks them
    without the game's lap info), with standings of 1.000 and finished rates of 0.000."""
    result = eval_in_the_game(
        tmp_path, f"run_dir=[{sim_run},{sim_run}]", "seeds=[5,6]", f"out_dir={tmp_path / 'race'}"
    )
    leaderboard, cars, rest = result.stdout.strip().split("\n\n")
    said, last = rest.splitlines()
    assert leaderboard.splitlines()[0].split() == [
        "track",
        "car",
        "ending",
        "episode_return",
        "length",
    ]
    assert len(leaderboard.splitlines()) == 1 + 2 * 2  # a row per car and track
    assert cars.splitlines()[0].split() == ["label", "episodes", "crash_rate", "mean_return"]
    assert said.startswith("not measured: pos, lap_times_s, time_s, gap, standings")
    assert "no info.progress" in said
    assert "nan" not in result.stdout and last.startswith("2 races in the game")
    metrics = json.loads((tmp_path / "race" / "metrics.json").read_text())
    assert metrics["split"] == "game" and metrics["unreported_info"] == ["progress", "mean_speed"]
    rows = [row for track in metrics["tracks"] for row in track["leaderboard"]]
    assert all(row["position"] is None and row["length"] > 0 for row in rows)
    assert [row["position"] for row in metrics["standings"]] == [None, None]
    assert all(car["lap_completion_rate"] is None for car in metrics["cars"].values())


def test_an_episode_a_reconnection_cut_is_left_out_of_the_figures(sim_run, tmp_path):
    # It counted as a lap not completed, its return (of ~100 of 300 steps) too.
    port = free_port()
    with game(port, info=True, faults=Faults(drop_after=30)):
        result = racing_rl(
            "eval",
            f"run_dir={sim_run}",
            "seeds=[2000000,2000001]",
            "checkpoint=final",
            "backend=roblox",
            f"backend.server.port={port}",
            f"out_dir={tmp_path / 'eval'}",
            cwd=tmp_path,
        )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    lost = [t["track_seed"] for t in metrics["tracks"] if t["interrupted"]]
    assert lost and metrics["interrupted"] == len(lost)
    assert metrics["episodes"] == 2 - len(lost)
    assert f"left out of the figures; seeds=[{','.join(map(str, lost))}] measures" in result.stderr


def test_the_validation_cars_leave_the_game_between_validations(tmp_path):
    # They stayed, driving on their last actions, stuck and respawned every 4 s (-20 each,
    # a line in Studio's Output), and seen by the other environments' car rays.
    port = free_port()
    validation = ["validation.every=1024", "validation.max_steps=20"]
    cfg = roblox_cfg(port, "total_timesteps=3072", *validation)
    with game(port, history=100_000) as emulator:
        train(cfg, tmp_path)
        commands = [(c["command"], c["envid"]) for c in list(emulator.commands)]
    envids = list(dict.fromkeys(e for c, e in commands if c == "SPAWN_AGENTS"))
    ours = [c for c, e in commands if e == envids[-1] and c != "ACTION"]  # validation's
    # Validated at 1024, 2048 and 3072 steps: each time spawned, raced (and reset by the
    # VecEnv as its episode ended), removed; closed at the end.
    assert ours.count("SPAWN_AGENTS") == 3 and ours[-1] == "CLOSE", ours
    validations = " ".join(ours[:-1]).split("SPAWN_AGENTS")[1:]
    assert all(v.strip().endswith("REMOVE_AGENTS") for v in validations), ours
    assert ours.count("REMOVE_AGENTS") == 3, ours  # once per validation, not once per car


def test_training_survives_a_dropped_connection(tmp_path, caplog):
    port = free_port()
    with initialize():
        cfg = compose(
            "train",
            overrides=["backend=roblox", f"backend.server.port={port}", *QUICK],
        )
    with caplog.at_level(logging.INFO), game(port, faults=Faults(drop_after=400)) as emulator:
        summary = train(cfg, tmp_path)
    assert summary["timesteps"] == 2048 and emulator.connections == 2
    assert "game disconnected" in caplog.text and "(connection 2)" in caplog.text
    assert (tmp_path / "model.zip").is_file()


class Still:
    """A policy that stands still: the game ends its cars' episodes as stuck after 4 s."""

    def predict(self, observation, state=None, episode_start=None, deterministic=False):
        return np.zeros((len(observation), 3), np.float32), None


def test_a_validation_episode_a_reconnection_cut_is_driven_again_with_a_log_line(caplog):
    # It was driven again without a word.
    port = free_port()
    cfg = roblox_cfg(port, "validation.max_steps=200")
    with caplog.at_level(logging.INFO), game(port, faults=Faults(drop_after=20)):
        venv = evaluation_env(cfg, [1000000])
        try:
            (result,) = run_episodes(Still(), venv)
        finally:
            venv.close()
    assert not result.interrupted  # driven again to its end
    assert "the game lost 1 car(s) mid-episode (a reconnection): their episodes on track " in (
        caplog.text
    )
    assert "seed(s) 1000000 are driven again" in caplog.text


def test_eval_serves_the_policy_to_the_game_until_ctrl_c(sim_run, tmp_path):
    """The seed's "use" mode: rounds=0 drives the cars round after round; Ctrl-C stops it
    and the metrics of the completed rounds are written."""
    port = free_port()
    seeds = [2000000, 2000001]
    command = [
        sys.executable,
        "-m",
        "racing_rl.cli",
        "eval",
        f"run_dir={sim_run}",
        f"seeds=[{seeds[0]},{seeds[1]}]",
        "checkpoint=final",
        "backend=roblox",
        f"backend.server.port={port}",
        "rounds=0",
        f"out_dir={tmp_path / 'use'}",
    ]
    with game(port) as emulator:
        eval_process = subprocess.Popen(
            command, cwd=tmp_path, stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint
        )
        resets, deadline = 0, time.monotonic() + 240  # its start and two rounds, under load
        while time.monotonic() < deadline:  # a round is a SPAWN (first) or RESET per track
            resets = sum(c["command"] == "RESET_AGENTS" for c in list(emulator.commands))
            if resets >= 2 * len(seeds) or eval_process.poll() is not None:
                break
            time.sleep(0.1)
        eval_process.send_signal(signal.SIGINT)
        _, stderr = eval_process.communicate(timeout=60)
    assert resets >= 2 * len(seeds), stderr[-3000:]
    assert eval_process.returncode == 0, stderr[-3000:]
    # The game sends no lap info: no lap completion (0%) to tell, its return instead.
    assert "round 2: mean return " in stderr and "lap completion" not in stderr
    assert "stopped after" in stderr
    metrics = json.loads((tmp_path / "use" / "metrics.json").read_text())
    assert metrics["episodes"] >= 2 * len(seeds) and metrics["episodes"] % len(seeds) == 0


def test_init_from_a_simulator_run_fine_tunes_in_the_game_and_saves(sim_run, tmp_path, caplog):
    port = free_port()
    cfg = roblox_cfg(port, f"init_from={sim_run}")
    with caplog.at_level(logging.INFO), game(port):
        summary = train(cfg, tmp_path)
    assert summary["timesteps"] == 2048 and (tmp_path / "model.zip").is_file()
    assert f"initialized from {sim_run}" in caplog.text
    # The source's VecNormalize statistics went on counting: they were loaded.
    source = pickle.loads((sim_run / "best" / "vecnormalize.pkl").read_bytes())
    tuned = pickle.loads((tmp_path / "vecnormalize.pkl").read_bytes())
    assert tuned.obs_rms.count == pytest.approx(source.obs_rms.count + 2048, abs=64)


def test_init_from_a_run_with_other_sensors_names_the_key(sim_run, tmp_path):
    """The refusal comes after the size probe spawned cars in the game: the run closes
    every environment it opened before it ends."""
    port = free_port()
    cfg = roblox_cfg(port, f"init_from={sim_run}")
    game_car = RaceConfig(sensors=SensorConfig(n_rays=16, layout="roblox_car"))

    def envids(emulator, command):
        return {c["envid"] for c in list(emulator.commands) if c["command"] == command}

    with game(port, sim=game_car) as emulator:
        # The game's size is its car's: it said to set backend.observation_size.
        with pytest.raises(ConfigError, match=r"with the source's 10 rays in the game \(main"):
            train(cfg, tmp_path)
        spawned = envids(emulator, "SPAWN_AGENTS")
        deadline = time.monotonic() + 10
        while envids(emulator, "CLOSE") != spawned and time.monotonic() < deadline:
            time.sleep(0.05)
    assert spawned and envids(emulator, "CLOSE") == spawned


def test_a_run_with_a_pinned_observation_size_records_its_game_too(tmp_path):
    """With backend.observation_size set, nothing waits for the game before training's
    first reset: the leg recorded model_id null and the export named no game."""
    port = free_port()
    with game(port):
        train(roblox_cfg(port, "backend.observation_size=13"), tmp_path)
    (leg,) = json.loads((tmp_path / "run.json").read_text())["legs"]
    assert leg["game"] == {"model_id": "test", "observation_size": 13}


def roblox_cfg(port, *overrides):
    with initialize():
        return compose(
            "train", overrides=["backend=roblox", f"backend.server.port={port}", *TINY, *overrides]
        )


def finite_weights_and_statistics(run_dir) -> bool:
    with zipfile.ZipFile(run_dir / "model.zip") as archive:
        weights = torch.load(io.BytesIO(archive.read("policy.pth")), weights_only=True)
    stats = read_statistics(run_dir / "vecnormalize.npz")
    arrays = [*(w.numpy() for w in weights.values()), *stats.values()]
    return all(np.isfinite(np.asarray(a, dtype=np.float64)).all() for a in arrays)


def test_out_of_range_values_and_bad_info_never_reach_training(tmp_path, caplog):
    """Point 2 of issue 24: each of these in one otherwise valid frame, before every frame,
    crashed training (1e39, 1e300, the info values) or left VecNormalize's variance at
    inf for good (1e30)."""
    port = free_port()
    kinds = ("obs_1e39", "obs_1e30", "reward_1e300", "lap_time_string", "crashed_string")
    kinds += ("episode_key",)
    with caplog.at_level(logging.WARNING), game(port, faults=Faults(flood=kinds)) as emulator:
        summary = train(roblox_cfg(port), tmp_path)
    assert summary["timesteps"] == 2048 and finite_weights_and_statistics(tmp_path)
    assert set(emulator.faults_sent) == set(kinds) and min(emulator.faults_sent.values()) > 500
    assert "out_of_range entr" in caplog.text and "info key 'episode'" in caplog.text


def test_games_that_drop_right_after_the_handshake_never_end_training(tmp_path, caplog):
    """Point 1 of issue 24: the game goes away mid-run, then ten games close as soon as
    they are upgraded (while training greets them), then the game comes back."""
    port = free_port()
    url = f"ws://127.0.0.1:{port}/ws/test"
    first = game(port)
    emulator = first.__enter__()

    def away_flaky_back():
        while emulator.received < 300:
            time.sleep(0.05)
        first.__exit__(None, None, None)
        for _ in range(10):
            with connect(url):
                pass
        with game(port) as again:
            while not done.wait(0.05):
                pass
            flaky.append(again.connections)

    done, flaky = threading.Event(), []
    helper = threading.Thread(target=away_flaky_back)
    helper.start()
    try:
        with caplog.at_level(logging.INFO):
            summary = train(roblox_cfg(port), tmp_path)
    finally:
        done.set()
        helper.join(30)
    assert summary["timesteps"] == 2048 and flaky == [1]
    assert "(connection 12)" in caplog.text  # the game's first, ten flaky ones, the game

"""Checkpoints: loading runs no code from a run dir, pruning, falling back on resume."""

import base64
import contextlib
import json
import logging
import math
import os
import pickle
import shutil
import zipfile
from functools import partial
from pathlib import Path

import gymnasium
import numpy as np
import pytest
from hydra import compose
from omegaconf import OmegaConf
from omegaconf.errors import ConfigKeyError
from runs import TINY, racing_rl, saved_config, strict_json
from stable_baselines3 import PPO, SAC
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

from racing_rl.checkpoints.layout import (
    STATISTICS,
    VECNORMALIZE_PICKLE,
    Checkpoint,
    damaged_checkpoints,
    find_checkpoints,
    latest_checkpoint,
    resolve_model,
    swapped_in,
)
from racing_rl.checkpoints.loading import (
    check_named_classes,
    load_model,
    load_normalizer,
    load_replay_buffer,
)
from racing_rl.checkpoints.runs import load_run_config, newest_loadable
from racing_rl.checkpoints.saving import replace_directory, save_checkpoint, save_replay_buffer
from racing_rl.config import initialize
from racing_rl.errors import CheckpointError, PickleRefused
from racing_rl.files import write_json
from racing_rl.training import resume_run, train


class Payload:
    """A pickle that creates ``marker`` when it is unpickled (any code could run there)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def craft(run_dir: Path, marker: Path) -> None:
    """Put the payload in every pickle of ``run_dir``'s final model files: vecnormalize.pkl
    and model.zip's ``:serialized:`` observation space."""
    payload = pickle.dumps(Payload(marker))
    for directory in (run_dir, *(c.path for c in find_checkpoints(run_dir))):
        (directory / VECNORMALIZE_PICKLE).write_bytes(payload)
        model = directory / "model.zip"
        with zipfile.ZipFile(model) as archive:
            files = {name: archive.read(name) for name in archive.namelist()}
        data = json.loads(files["data"])
        data["observation_space"][":serialized:"] = base64.b64encode(payload).decode()
        files["data"] = json.dumps(data).encode()
        with zipfile.ZipFile(model, "w") as archive:
            for name, content in files.items():
                archive.writestr(name, content)


@pytest.fixture
def run_copy(tiny_runs, tmp_path) -> Path:
    """A writable copy of a tiny trained run."""
    run_dir = tmp_path / "run"
    shutil.copytree(tiny_runs[0], run_dir)
    return run_dir


def test_crafted_pickles_run_nothing_in_eval_and_resume(run_copy, tmp_path):
    marker = tmp_path / "marker"
    craft(run_copy, marker)
    # The original failure: SB3's own loaders run the payload (then fail on its result).
    for sb3_load in (
        lambda: PPO.load(run_copy / "model.zip"),
        lambda: VecNormalize.load(str(run_copy / VECNORMALIZE_PICKLE), None),
    ):
        with contextlib.suppress(Exception):
            sb3_load()
        assert marker.exists()
        marker.unlink()

    evaluated = racing_rl(
        "eval", f"run_dir={run_copy}", "checkpoint=final", "seeds=[5]", cwd=tmp_path
    )
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    assert not marker.exists()
    resumed = racing_rl("train", f"resume={run_copy}", "total_timesteps=3000", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert not marker.exists()
    assert latest_checkpoint(run_copy).timesteps > 2048


def crafted_config(run_dir: Path, key: str, value) -> None:
    """Set ``key`` of ``run_dir``'s saved config (a dotted path) to ``value``."""
    saved = run_dir / ".hydra" / "config.yaml"
    cfg = OmegaConf.load(saved)
    OmegaConf.update(cfg, key, value, force_add=True)
    OmegaConf.save(cfg, saved)


@pytest.mark.parametrize(
    ("key", "value", "refused"),
    [
        # Instantiating algo.model would call each with the file's arguments.
        (
            "algo.model.learning_rate",
            {"_target_": "builtins.open", "_args_": ["{m}", "w"]},
            "algo.model.learning_rate._target_ = 'builtins.open': a run's config may name only",
        ),
        (
            "algo.model.clip_range",
            {"_target_": "pathlib.Path.mkdir", "_args_": ["{m}.dir"]},
            "algo.model.clip_range._target_ = 'pathlib.Path.mkdir': a run's config may name",
        ),
        (
            "algo.model.ent_coef",
            {"_target_": "subprocess.Popen", "args": ["touch", "{m}.new"]},
            "algo.model.ent_coef._target_ = 'subprocess.Popen': a run's config may name",
        ),
        (  # an algorithm only as algo.model._target_ (a nested one would build an env)
            "algo.model.policy_kwargs.x",
            {"_target_": "stable_baselines3.PPO", "policy": "MlpPolicy", "env": "Pendulum-v1"},
            "algo.model.policy_kwargs.x._target_ = 'stable_baselines3.PPO': a run's config",
        ),
        (  # a resume's override could make an interpolation resolve to another name
            "algo.model.learning_rate",
            {"_target_": "${oc.env:TARGET,stable_baselines3.common.utils.constant_fn}"},
            "algo.model.learning_rate._target_ = '${oc.env:TARGET,stable_baselines3.common",
        ),
        (
            "algo.model.policy_kwargs.activation_fn",
            {"_target_": "hydra.utils.get_class", "path": "subprocess.Popen"},
            "algo.model.policy_kwargs.activation_fn.path = 'subprocess.Popen': a run's",
        ),
        (
            "algo.model.policy",
            "subprocess.Popen",
            "algo.model.policy = 'subprocess.Popen': a run's config may name only",
        ),
        (
            "algo.model._target_",
            "no_such_module.PPO",
            "algo.model._target_ = 'no_such_module.PPO' cannot be imported",
        ),
    ],
)
def test_a_run_config_naming_anything_but_a_trusted_class_is_refused_unrun(
    run_copy, tmp_path, key, value, refused
):
    marker = tmp_path / "marker"
    marker.write_text("kept")
    if isinstance(value, dict):
        value = json.loads(json.dumps(value).replace("{m}", str(marker)))
    crafted_config(run_copy, key, value)
    with pytest.raises(CheckpointError) as refusal:
        load_run_config(run_copy)
    assert refused in str(refusal.value)
    result = racing_rl("export", f"run_dir={run_copy}", "checkpoint=final", cwd=tmp_path)
    assert result.returncode == 1 and "is not a valid run config" in result.stderr
    assert marker.read_text() == "kept"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["marker", "run"]  # no .dir, .new


def test_a_run_config_cannot_import_a_module_from_the_working_directory(
    run_copy, tmp_path, monkeypatch
):
    # `python -m racing_rl` puts the working directory first on sys.path: a module there
    # (shipped beside the run) would run its code on import.
    (tmp_path / "shipped.py").write_text("open(__file__ + '.ran', 'w')\nclass Policy: ...\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    crafted_config(run_copy, "algo.model.policy", "shipped.Policy")
    with pytest.raises(CheckpointError, match="shipped would be imported from the working dir"):
        load_run_config(run_copy)
    assert not (tmp_path / "shipped.py.ran").exists()
    # An installed package below the working directory (a project's .venv) is fine.
    package = tmp_path / ".venv" / "site-packages" / "installed_policies"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("import torch\nclass Policy(torch.nn.Module): ...\n")
    monkeypatch.syspath_prepend(str(package.parent))
    check_named_classes({"algo": {"model": {"policy": "installed_policies.Policy"}}})


def test_a_ctrl_c_while_a_named_class_imports_is_no_invalid_config(tmp_path, monkeypatch):
    """pydoc.locate wraps the KeyboardInterrupt of a Ctrl-C during the import in an
    ErrorDuringImport: export and eval said the healthy run's config was invalid."""
    (tmp_path / "slow_policies.py").write_text("raise KeyboardInterrupt\nclass Policy: ...\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(KeyboardInterrupt):
        check_named_classes({"algo": {"model": {"policy": "slow_policies.Policy"}}})


def test_a_ctrl_c_that_a_library_turns_into_its_own_error_is_no_invalid_config(
    run_copy, monkeypatch
):
    """Ctrl-C while OmegaConf resolves the run's config can end in OmegaConf's own error
    (a ConfigKeyError of its half-updated node, raised while handling the KeyboardInterrupt):
    export said the healthy run's config was invalid, with exit status 1."""

    def cut_short(*args, **kwargs):
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as interrupt:
            message = "'NoneType' object has no attribute '_invalidate_flags_cache'"
            raise ConfigKeyError(message) from interrupt

    monkeypatch.setattr("racing_rl.checkpoints.runs.check_train_config", cut_short)
    with pytest.raises(KeyboardInterrupt):
        load_run_config(run_copy)


@pytest.mark.filterwarnings("ignore:get_linear_fn\\(\\) is deprecated")
def test_a_run_config_may_name_torch_classes_and_sb3_schedule_functions(run_copy):
    activation = {"_target_": "hydra.utils.get_class", "path": "torch.nn.Tanh"}
    crafted_config(run_copy, "algo.model.policy_kwargs.activation_fn", activation)
    schedule = {"_target_": "stable_baselines3.common.utils.get_linear_fn", "start": 3e-4}
    crafted_config(run_copy, "algo.model.learning_rate", {**schedule, "end": 0, "end_fraction": 1})
    cfg = load_run_config(run_copy)
    assert cfg.algo.model.policy_kwargs.activation_fn.path == "torch.nn.Tanh"
    assert cfg.algo.model.learning_rate._target_.endswith("get_linear_fn")


def test_training_a_config_that_loading_would_refuse_says_so(tmp_path, caplog):
    # The user's own config may name any callable; a run directory's may not.
    rate = "+algo.model.learning_rate={_target_:builtins.float,_args_:[3e-4]}"
    with initialize():
        cfg = compose("train", overrides=[*TINY, "~algo.model.learning_rate", rate])
    with caplog.at_level("WARNING", logger="racing_rl.training"):
        train(cfg, tmp_path)
    assert "this run trains, but racing-rl eval, export and resume will refuse" in caplog.text
    assert "algo.model.learning_rate._target_ = 'builtins.float'" in caplog.text
    (tmp_path / ".hydra").mkdir()
    OmegaConf.save(cfg, tmp_path / ".hydra" / "config.yaml")  # as Hydra writes it
    with pytest.raises(CheckpointError, match=r"builtins\.float"):
        load_run_config(tmp_path)


def test_a_run_dir_that_does_not_exist_is_named_so(tmp_path):
    with pytest.raises(CheckpointError, match=r"nope: no such directory\. Pass a directory"):
        load_run_config(tmp_path / "nope")
    with pytest.raises(CheckpointError, match=r"is not a racing-rl run directory"):
        load_run_config(tmp_path)
    with pytest.raises(CheckpointError, match=r"is not a racing-rl run directory"):
        load_run_config(str(tmp_path))  # a str, as SB3's load takes: it was a TypeError


def test_an_old_run_s_pickled_statistics_load_only_when_trusted(run_copy, tmp_path):
    for npz in run_copy.rglob(STATISTICS):
        npz.unlink()
    shape = (26,)  # (10 rays + 3) × PPO's 2 frames
    # A lost vecnormalize.npz reads as an old run's: the message names both.
    with pytest.raises(CheckpointError, match=r"trust_pickles=true; if its vecnormalize\.npz was"):
        load_normalizer(run_copy, shape)
    trusted = load_normalizer(run_copy, shape, trust_pickles=True)
    pickled = pickle.loads((run_copy / VECNORMALIZE_PICKLE).read_bytes())  # our own run
    observation = np.linspace(-1, 1, 26, dtype=np.float32)[None]
    assert np.array_equal(trusted.normalize_obs(observation), pickled.normalize_obs(observation))


def test_missing_statistics_say_what_to_do(run_copy):
    # It said only "VecNormalize statistics <path> are missing."
    for saved in (*run_copy.rglob(STATISTICS), *run_copy.rglob(VECNORMALIZE_PICKLE)):
        saved.unlink()
    with pytest.raises(CheckpointError, match=r"are missing\. .*put the vecnormalize\.npz"):
        load_normalizer(run_copy, (26,))


def test_a_model_and_statistics_of_two_saves_are_refused(run_copy):
    # A kill between the run directory's final writes paired a resumed run's new
    # statistics with its old model.zip, and eval and export used them without a word.
    from racing_rl.checkpoints.runs import load_policy_driver

    with np.load(run_copy / STATISTICS) as saved:
        stats = dict(saved)
    timesteps = int(stats["timesteps"])  # the model's, saved with them
    assert timesteps == json.loads((run_copy / "summary.json").read_text())["timesteps"]
    cfg = OmegaConf.create({"checkpoint": "final", "device": "cpu"})
    np.savez(run_copy / STATISTICS, **{**stats, "timesteps": np.int64(timesteps + 1024)})
    with pytest.raises(
        CheckpointError,
        match=rf"model\.zip has {timesteps:,} timesteps but vecnormalize\.npz was saved with a "
        rf"model of {timesteps + 1024:,}: they are not one save",
    ):
        load_policy_driver(run_copy, cfg, None)
    del stats["timesteps"]  # statistics saved before racing-rl recorded them: not checked
    np.savez(run_copy / STATISTICS, **stats)
    load_policy_driver(run_copy, cfg, None)


def test_plain_statistics_normalise_as_the_pickle_does(run_copy):
    normalizer = load_normalizer(run_copy, (26,))
    pickled = pickle.loads((run_copy / VECNORMALIZE_PICKLE).read_bytes())  # our own run
    observation = np.linspace(-3, 3, 52, dtype=np.float32).reshape(2, 26)
    assert np.array_equal(normalizer.normalize_obs(observation), pickled.normalize_obs(observation))
    assert not normalizer.training and not normalizer.norm_reward
    with pytest.raises(CheckpointError, match=r"shape \(26,\).*expected \(30,\)"):
        load_normalizer(run_copy, (30,))


def test_a_safely_loaded_model_acts_as_sb3_s_own_load(run_copy):
    cfg = load_run_config(run_copy)
    safe = load_model(cfg.algo, run_copy / "model.zip")
    reference = PPO.load(run_copy / "model.zip")
    observation = np.linspace(-1, 1, 26, dtype=np.float32)[None]
    assert np.array_equal(
        safe.predict(observation, deterministic=True)[0],
        reference.predict(observation, deterministic=True)[0],
    )
    assert safe.num_timesteps == reference.num_timesteps == 2048


def tiny_model() -> tuple[PPO, VecNormalize]:
    env = VecNormalize(DummyVecEnv([lambda: gymnasium.make("racing_rl/Race-v0")]))
    return PPO("MlpPolicy", env, n_steps=16, batch_size=16, n_epochs=1, seed=0), env


def test_keep_prunes_the_oldest_periodic_checkpoints_only(tmp_path):
    model, env = tiny_model()
    checkpoints = tmp_path / "checkpoints"
    save_checkpoint(model, env, checkpoints, "interrupted")
    for steps in (100, 200, 300, 400):
        model.num_timesteps = steps
        save_checkpoint(model, env, checkpoints, "ppo", keep=2)
    save_checkpoint(model, env, checkpoints, "final", keep=2)
    names = [c.path.name for c in find_checkpoints(tmp_path)]
    assert names == ["interrupted_0_steps", "ppo_300_steps", "ppo_400_steps", "final_400_steps"]


def resume_with_a_damaged_part(
    run_dir: Path, overrides: list[str], part: str, total: int
) -> tuple[Checkpoint, dict]:
    """Train a small run (one race of 2 cars, no validation) with ``overrides``, cut the
    ``part`` file of its newest checkpoint in half, and resume it to ``total`` timesteps.

    Returns:
        The checkpoint damaged, and the resumed run's summary.
    """
    small = ["n_races=1", "cars_per_race=2", "validation.every=0", "progress_bar=false"]
    cfg = saved_config(run_dir, [*small, *overrides])
    train(cfg, run_dir)
    newest = latest_checkpoint(run_dir)
    data = (newest.path / part).read_bytes()
    (newest.path / part).write_bytes(data[: len(data) // 2])
    cfg, resumed, files = resume_run(run_dir, [f"total_timesteps={total}"])
    return newest, train(cfg, run_dir, resume=resumed, resume_files=files)


def test_resume_falls_back_to_the_newest_checkpoint_that_loads(tmp_path, caplog):
    overrides = [
        "total_timesteps=600",
        "algo.model.n_steps=100",
        "algo.model.batch_size=100",
        "checkpoint.every=200",
    ]
    _, summary = resume_with_a_damaged_part(tmp_path, overrides, "model.zip", total=800)
    assert summary["timesteps"] == 800
    legs = json.loads((tmp_path / "run.json").read_text())["legs"]
    # Periodic checkpoints are saved between rollouts: at 200 and 400 (600 is the end).
    assert legs[-1]["resumed_from"].endswith("ppo_400_steps")
    assert "ppo_400_steps, the newest checkpoint that loads: the newer ones above do not" in (
        caplog.text
    )


def test_resume_with_no_loadable_checkpoint_says_why(tmp_path):
    with pytest.raises(CheckpointError, match="no complete checkpoint"):
        newest_loadable(tmp_path, lambda checkpoint: None)


def test_resume_stops_at_a_pickle_instead_of_falling_back(tmp_path):
    # A newest checkpoint whose replay buffer is only a pickle fell back to an older one,
    # which keeps no buffer: the run went on with an empty one, the advice only logged.
    for steps in (100, 200):
        path = tmp_path / "checkpoints" / f"sac_{steps}_steps"
        path.mkdir(parents=True)
        (path / "checkpoint.json").write_text(json.dumps({"timesteps": steps, "kind": "sac"}))
        (path / "model.zip").write_bytes(b"")

    def load(checkpoint, refusal):
        if checkpoint.timesteps == 200:
            raise refusal(f"{checkpoint.path} has its replay buffer only as a pickle")
        return checkpoint.timesteps

    with pytest.raises(PickleRefused, match="sac_200_steps has its replay buffer only") as refused:
        newest_loadable(tmp_path, partial(load, refusal=PickleRefused))
    # Its advice, "choose another checkpoint", is eval's checkpoint=: a resume has none.
    newest = tmp_path / "checkpoints" / "sac_200_steps"
    assert str(refused.value).endswith(
        "A resume goes on from the newest checkpoint: to go on from the one before it, move "
        f"{newest} out of {newest.parent}."
    )
    # A damaged one is skipped for the newest that loads.
    assert newest_loadable(tmp_path, partial(load, refusal=CheckpointError))[1] == 100


def test_a_replay_buffer_round_trips_as_npz_and_an_old_pickle_needs_trust(tmp_path):
    env = DummyVecEnv([lambda: gymnasium.make("racing_rl/Race-v0")])
    model = SAC("MlpPolicy", env, buffer_size=500, learning_starts=1000, seed=0)
    model.learn(120)
    save_replay_buffer(model, tmp_path / "replay_buffer.npz")
    with np.load(tmp_path / "replay_buffer.npz") as saved:
        assert saved["observations"].shape[0] == 120  # the filled rows, not all 500
    fresh = SAC("MlpPolicy", env, buffer_size=500, learning_starts=1000, seed=0)
    assert load_replay_buffer(fresh, tmp_path)
    for key in ("observations", "actions", "rewards", "dones", "timeouts"):
        assert np.array_equal(getattr(fresh.replay_buffer, key), getattr(model.replay_buffer, key))
    assert fresh.replay_buffer.pos == model.replay_buffer.pos == 120

    # A buffer that has wrapped round: all its rows, and full, or SAC resumed on pos rows.
    wrapped = SAC("MlpPolicy", env, buffer_size=100, learning_starts=1000, seed=0)
    wrapped.learn(130)
    assert wrapped.replay_buffer.full and wrapped.replay_buffer.pos == 30
    (tmp_path / "full").mkdir()
    save_replay_buffer(wrapped, tmp_path / "full" / "replay_buffer.npz")
    refilled = SAC("MlpPolicy", env, buffer_size=100, learning_starts=1000, seed=0)
    assert load_replay_buffer(refilled, tmp_path / "full")
    assert refilled.replay_buffer.full and refilled.replay_buffer.pos == 30
    for key in ("observations", "next_observations", "actions", "rewards", "dones", "timeouts"):
        assert np.array_equal(
            getattr(refilled.replay_buffer, key), getattr(wrapped.replay_buffer, key)
        )

    # A version-1 file (every row of the capacity) still loads.
    first = tmp_path / "v1"
    first.mkdir()
    buffer = model.replay_buffer
    arrays = {k: getattr(buffer, k) for k in ("observations", "actions", "rewards", "dones")}
    arrays |= {"next_observations": buffer.next_observations, "timeouts": buffer.timeouts}
    np.savez(first / "replay_buffer.npz", format_version=1, pos=120, full=False, **arrays)
    again = SAC("MlpPolicy", env, buffer_size=500, learning_starts=1000, seed=0)
    assert load_replay_buffer(again, first)
    assert np.array_equal(again.replay_buffer.observations, buffer.observations)

    old = tmp_path / "old"
    old.mkdir()
    model.save_replay_buffer(old / "replay_buffer.pkl")
    with pytest.raises(CheckpointError, match="trust_pickles=true"):
        load_replay_buffer(fresh, old)
    assert load_replay_buffer(fresh, old, trust_pickles=True)
    assert fresh.replay_buffer.size() == 120
    small = SAC("MlpPolicy", env, buffer_size=100, learning_starts=1000, seed=0)
    with pytest.raises(CheckpointError, match="pos=120 is outside the buffer"):
        load_replay_buffer(small, tmp_path)
    other = DummyVecEnv([lambda: gymnasium.make("Pendulum-v1")])  # 3 numbers, 1 action
    narrower = SAC("MlpPolicy", other, buffer_size=500, learning_starts=1000, seed=0)
    with pytest.raises(CheckpointError, match=r"observations has shape \(120, 1, 13\)"):
        load_replay_buffer(narrower, tmp_path)


def test_a_memory_optimised_replay_buffer_round_trips_with_its_last_next_observation(tmp_path):
    # optimize_memory_usage: no next_observations; row pos holds the last one's next.
    env = DummyVecEnv([lambda: gymnasium.make("racing_rl/Race-v0")])
    kwargs = {"learning_starts": 1000, "seed": 0, "optimize_memory_usage": True}
    kwargs |= {"replay_buffer_kwargs": {"handle_timeout_termination": False}}
    model = SAC("MlpPolicy", env, buffer_size=500, **kwargs).learn(50)
    save_replay_buffer(model, tmp_path / "replay_buffer.npz")
    with np.load(tmp_path / "replay_buffer.npz") as saved:
        assert saved["observations"].shape[0] == 51 and "next_observations" not in saved
    fresh = SAC("MlpPolicy", env, buffer_size=500, **kwargs)
    assert load_replay_buffer(fresh, tmp_path)
    for key in ("observations", "actions", "rewards", "dones"):
        assert np.array_equal(getattr(fresh.replay_buffer, key), getattr(model.replay_buffer, key))


def test_json_files_are_strict_json_with_null_for_a_figure_that_is_not_finite(tmp_path):
    # json.dumps writes NaN as a bare token that JavaScript, jq and most JSON readers refuse.
    value = {"mean_lap_time_s": math.nan, "tracks": [(math.inf, 1.5)], "best": {"x": -math.inf}}
    write_json(tmp_path / "metrics.json", value)
    assert strict_json((tmp_path / "metrics.json").read_text()) == {
        "mean_lap_time_s": None,
        "tracks": [[None, 1.5]],
        "best": {"x": None},
    }
    with pytest.raises(TypeError):
        write_json(tmp_path / "metrics.json", {"x": object()})
    assert strict_json((tmp_path / "metrics.json").read_text())["tracks"] == [[None, 1.5]]


def test_a_failed_save_of_a_directory_leaves_the_old_files_whole(tmp_path):
    """best/ was written file by file: a save that failed after the statistics (a full
    disk writing model.zip) left new statistics beside the old model."""
    best = tmp_path / "best"

    def files(**contents):
        def write(directory):
            for name, text in contents.items():
                (directory / name).write_text(text)

        return write

    replace_directory(best, files(model="old", statistics="old"))

    def disk_full(directory):
        files(statistics="new")(directory)
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        replace_directory(best, disk_full)
    assert {p.name: p.read_text() for p in best.iterdir()} == {"model": "old", "statistics": "old"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best"]

    # Killed between the swap's two renames: the next save finishes it first.
    replace_directory(best, files(model="new", statistics="new"))
    partial, old = tmp_path / ".best.partial", tmp_path / ".best.old"
    shutil.copytree(best, partial)
    best.rename(old)
    replace_directory(tmp_path / "other", files(model="x"))  # another directory: untouched
    assert not best.exists()
    assert swapped_in(best) == partial  # where readers find it meanwhile
    (partial / "model.zip").write_text("new")
    assert resolve_model(tmp_path, "best") == partial / "model.zip"
    replace_directory(best, files(model="newer", statistics="newer"))
    assert swapped_in(best) == best
    assert {p.name: p.read_text() for p in best.iterdir()} == {
        "model": "newer",
        "statistics": "newer",
    }
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best", "other"]


def test_a_checkpoint_swap_cut_short_is_finished_by_the_next_save(tmp_path):
    """The sweep of stale .partial directories deleted the complete half of a same-name
    swap that a kill cut between its renames: the checkpoint was lost."""
    model, env = tiny_model()
    checkpoints = tmp_path / "checkpoints"
    first = save_checkpoint(model, env, checkpoints, "interrupted")
    shutil.copytree(first.path, checkpoints / ".interrupted_0_steps.partial")
    first.path.rename(checkpoints / ".interrupted_0_steps.old")  # killed here
    model.num_timesteps = 64
    save_checkpoint(model, env, checkpoints, "ppo")
    assert [c.path.name for c in find_checkpoints(tmp_path)] == [
        "interrupted_0_steps",
        "ppo_64_steps",
    ]
    assert sorted(p.name for p in checkpoints.iterdir()) == ["interrupted_0_steps", "ppo_64_steps"]


def test_a_hidden_checkpoint_directory_is_not_listed(tmp_path):
    model, env = tiny_model()
    checkpoint = save_checkpoint(model, env, tmp_path / "checkpoints", "ppo")
    shutil.copytree(checkpoint.path, tmp_path / "checkpoints" / ".ppo_0_steps.old")
    assert [c.path.name for c in find_checkpoints(tmp_path)] == ["ppo_0_steps"]


def test_checkpoints_of_one_timestep_keep_the_order_they_were_saved_in_whatever_their_times(
    tmp_path, caplog
):
    """A Ctrl-C during a periodic save writes an interrupted checkpoint at the same step
    (with the replay buffer and the validation owed); the tie was broken by the manifests'
    times, which a copy of the run (without its times) could reverse: resume then took
    the periodic one and its next save deleted the interrupted one's replay buffer."""
    model, env = tiny_model()
    model.num_timesteps = 400
    checkpoints = tmp_path / "checkpoints"
    periodic = save_checkpoint(model, env, checkpoints, "ppo")
    interrupted = save_checkpoint(model, env, checkpoints, "interrupted", validation_due=True)
    copied_first = periodic.path.stat().st_mtime - 60  # the copy wrote the later one first
    for path in interrupted.path.iterdir():
        os.utime(path, (copied_first, copied_first))
    assert [c.path.name for c in find_checkpoints(tmp_path)] == [
        "ppo_400_steps",
        "interrupted_400_steps",
    ]
    assert latest_checkpoint(tmp_path).validation_due
    # A damaged manifest is no checkpoint, and resume says so (it was skipped silently).
    (interrupted.path / "checkpoint.json").write_text("")
    assert damaged_checkpoints(tmp_path) == [interrupted.path]
    with caplog.at_level(logging.WARNING):
        chosen, _ = newest_loadable(tmp_path, lambda checkpoint: None)
    assert chosen.path == periodic.path
    assert f"cannot resume from {interrupted.path}: it has no readable checkpoint.json" in (
        caplog.text
    )


def test_a_replay_buffer_that_does_not_load_costs_only_itself_on_resume(tmp_path, caplog):
    """A newest checkpoint whose replay buffer was damaged fell back to an older checkpoint,
    which has no buffer either: the newer model was thrown away for nothing."""
    overrides = [
        "algo=sac",
        "algo.model.learning_starts=50",
        "total_timesteps=200",
        "checkpoint.every=100",
    ]
    with caplog.at_level(logging.WARNING):
        final, summary = resume_with_a_damaged_part(
            tmp_path, overrides, "replay_buffer.npz", total=300
        )
    assert summary["timesteps"] == 300
    legs = json.loads((tmp_path / "run.json").read_text())["legs"]
    assert legs[-1]["resumed_from"] == str(final.path)
    assert f"{final.path}: its replay buffer does not load (" in caplog.text
    assert "it starts empty" in caplog.text and "the newer ones above" not in caplog.text
    # Its gradient steps wait for learning_starts new transitions: they sampled whole
    # batches from the first one or two.
    assert f"gradient steps wait until {final.timesteps + 50} timesteps" in caplog.text
    # Its checkpoints hold that moved learning_starts; a second resume without a buffer
    # moves the run's own 50 again, not the moved one (it added up past the budget).
    again = latest_checkpoint(tmp_path)
    (again.path / "replay_buffer.npz").unlink()
    cfg = load_run_config(tmp_path)
    cfg.total_timesteps = 400
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        train(cfg, tmp_path, resume=again)
    assert f"gradient steps wait until {again.timesteps + 50} timesteps" in caplog.text


def test_a_checkpoint_name_is_the_run_s_own_before_a_directory_where_the_command_runs(
    tmp_path, monkeypatch
):
    # A directory of that name in the working directory was taken for it: a race's every
    # car drove that one model, and metrics.json did not say.
    run, here = tmp_path / "run", tmp_path / "here"
    for directory in (run / "checkpoints" / "ppo_1_steps", here / "ppo_1_steps"):
        directory.mkdir(parents=True)
        (directory / "model.zip").write_bytes(b"")
    monkeypatch.chdir(here)
    assert resolve_model(run, "ppo_1_steps") == run / "checkpoints" / "ppo_1_steps" / "model.zip"
    assert resolve_model(run, "./ppo_1_steps") == Path("ppo_1_steps") / "model.zip"  # a path
    assert resolve_model(tmp_path / "other", "ppo_1_steps") == Path("ppo_1_steps") / "model.zip"


def test_a_run_without_checkpoints_names_the_models_it_has(tmp_path):
    """checkpoint=latest (or a resume) of a run whose checkpoints/ is gone or empty said
    only "start it again", though its model.zip and best/ were there for eval."""
    (tmp_path / "checkpoints").mkdir()
    with pytest.raises(CheckpointError, match="nothing to go on from: start it again"):
        latest_checkpoint(tmp_path)
    for directory in (tmp_path, tmp_path / "best"):
        directory.mkdir(exist_ok=True)
        (directory / "model.zip").write_bytes(b"")
    has = r"It has checkpoint=final\|best, which eval takes, and init_from=.* starts a new run"
    with pytest.raises(CheckpointError, match=has):
        resolve_model(tmp_path, "latest")
    shutil.rmtree(tmp_path / "checkpoints")
    (tmp_path / "model.zip").unlink()
    with pytest.raises(CheckpointError, match=r"It has checkpoint=best, which eval"):
        latest_checkpoint(tmp_path)

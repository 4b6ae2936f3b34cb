"""scripts/imitate_scripted.py: DAgger on the scripted driver, on tiny runs."""

from __future__ import annotations

import json
import shutil
import sys

import pytest
from runs import QUICK_OFF_POLICY, TINY, load_script, racing_rl

from racing_rl.errors import ConfigError


@pytest.fixture(scope="module")
def imitation():
    return load_script("imitate_scripted")


def test_the_student_fits_the_scripted_driver_and_evaluates(
    imitation, tiny_runs, tmp_path, monkeypatch, capfd
):
    run_dir = tmp_path / "student"
    shutil.copytree(tiny_runs[0], run_dir)
    options = ["--iterations", "3", "--steps", "40", "--races", "3", "--epochs", "60"]
    monkeypatch.setattr(sys, "argv", ["imitate_scripted.py", str(run_dir), *options])
    imitation.main()
    report = json.loads(capfd.readouterr().out.strip().splitlines()[-1])
    history = report["iterations"]
    assert [h["beta"] for h in history] == [1.0, 0.5, 0.25]
    assert [h["labels"] for h in history] == [120, 240, 360]
    # The untrained policy is far from the scripted driver's actions; fitting closes most
    # of the gap, and the next iteration's new labels keep it closed.
    assert history[-1]["loss"] < 0.5 * history[0]["loss_before"]
    assert json.loads((run_dir / "imitation.json").read_text()) == history

    # best/ is the student, which racing-rl eval drives like any checkpoint.
    out = tmp_path / "eval"
    result = racing_rl(
        "eval",
        f"run_dir={run_dir}",
        "checkpoint=best",
        "seeds=[3000000]",
        "max_steps=30",
        f"out_dir={out}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((out / "metrics.json").read_text())["episodes"] == 1


def test_a_policy_that_is_not_a_gaussian_actor_critic_is_refused(imitation, tmp_path):
    run_dir = tmp_path / "sac"
    options = [*TINY, "algo=sac", *QUICK_OFF_POLICY, f"hydra.run.dir={run_dir}"]
    result = racing_rl("train", *options, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    with pytest.raises(ConfigError, match="diagonal Gaussian"):
        imitation.imitate(run_dir, iterations=1, steps=2, n_races=1)
    assert not (run_dir / "best").exists()


def test_a_run_with_a_best_model_is_left_alone(imitation, tiny_runs, tmp_path):
    """The student replaced best/ without a word (its metrics.json then described another
    model): a run that has one is refused before anything is loaded."""
    run_dir = shutil.copytree(tiny_runs[0], tmp_path / "trained")
    (run_dir / "best").mkdir()
    (run_dir / "best" / "model.zip").write_bytes(b"the trained model")
    with pytest.raises(ConfigError, match=r"best exists: the student would replace that model"):
        imitation.imitate(run_dir, iterations=1, steps=2, n_races=1)
    assert (run_dir / "best" / "model.zip").read_bytes() == b"the trained model"


def test_help_shows_how_to_make_the_run_the_refusal_asks_for(imitation, monkeypatch, capsys):
    """The refusal of a run with a best/ says "see --help" for a run made for the student,
    but --help showed the docstring's first paragraph alone, without that command."""
    monkeypatch.setattr(sys, "argv", ["imitate_scripted.py", "--help"])
    with pytest.raises(SystemExit):
        imitation.main()
    shown = capsys.readouterr().out
    assert "validation.every=0 checkpoint.every=0 hydra.run.dir=/tmp/student" in shown
    assert "python scripts/imitate_scripted.py /tmp/student" in shown

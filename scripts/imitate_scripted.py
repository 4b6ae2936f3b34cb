"""Imitation of the scripted driver: can a policy that sees only the observation drive as
it does?

The scripted pure-pursuit driver (``racing_rl/drivers/pure_pursuit.py``) laps every
generated track, but it reads the centreline and the obstacles' gaps; a learned driver
sees only the rays and its own motion (the observation). This script trains a run's
policy to imitate the scripted driver with DAgger (Ross, Gordon and Bagnell, "A
reduction of imitation learning and structured prediction to no-regret online
learning", AISTATS 2011): in iteration i the cars are driven by the scripted driver
with probability beta = 0.5**i per car and step, else by the policy; every observation
is labelled with the scripted driver's action for that state, the labels of all
iterations are kept, and the policy's action mean (the deterministic action) is fitted
to them by mean squared error. What the student then laps on unseen tracks
(``scripts/benchmark_algos.py``) bounds what the observation supports by imitation,
beside what reinforcement learning reaches from it (docs/benchmarks.md, "Tried: imitating
the scripted driver").

The run's own config sets everything else: sensors, frame stack, VecNormalize, network,
training tracks (``tracks.train`` and ``tracks.train_mix``). The cars drive alone (one
per race; respawned where they crash), from random places on the track. The student is
written to ``<run dir>/best/`` (``model.zip`` and the VecNormalize statistics, frozen),
which ``racing-rl eval`` and ``racing-rl train init_from=<run dir>`` read, and every
iteration's figures to ``<run dir>/imitation.json``; a run that has a ``best/`` already is
refused, and Ctrl-C writes nothing. PPO's policies only (an
actor-critic with a diagonal Gaussian, whose mean is fitted); others are refused.

Usage::

    # a run dir with the config (a few thousand timesteps: the policy is replaced)
    racing-rl train algo.net_width=256 'tracks.train_mix=[hard]' total_timesteps=5120 \\
        validation.every=0 checkpoint.every=0 hydra.run.dir=/tmp/student
    python scripts/imitate_scripted.py /tmp/student     # 23 min on 2 cores beside another job
    python scripts/benchmark_algos.py --measure /tmp/student --label "DAgger student"
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch
from stable_baselines3.common.distributions import DiagGaussianDistribution
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.vec_env import VecNormalize

from racing_rl.algos import discount
from racing_rl.checkpoints.loading import load_model
from racing_rl.checkpoints.runs import check_simulator_run, load_run_config
from racing_rl.checkpoints.saving import save_model_files
from racing_rl.config import track_seeds, train_mix
from racing_rl.drivers.pure_pursuit import TUNINGS, PurePursuitDriver
from racing_rl.errors import ConfigError, reported
from racing_rl.files import strict_json, write_json
from racing_rl.teacher import fit_mean
from racing_rl.vec import make_env, wrap_vec_env

log = logging.getLogger("imitate_scripted")


def imitate(
    run_dir: Path,
    iterations: int = 30,
    steps: int = 3000,
    n_races: int = 20,
    epochs: int = 4,
    batch_size: int = 1024,
    learning_rate: float = 1e-3,
    teacher: str = "default",
) -> list[dict[str, float]]:
    """Train ``run_dir``'s policy by DAgger on the scripted driver; write it to ``best/``.

    Args:
        run_dir: a run of the built-in simulator with a ``model.zip`` (its final model,
            the starting weights) and its config.
        iterations: DAgger iterations; beta = 0.5**i in iteration i.
        steps: VecEnv steps per iteration (``n_races`` cars each).
        n_races: races, one car each.
        epochs: passes over all the labels so far after each iteration.
        batch_size: labels per gradient step.
        learning_rate: Adam's step size.
        teacher: the scripted driver's tuning, a name of ``pure_pursuit.TUNINGS``:
            ``default`` (the benchmark's reference) or ``racing`` (its racing line, faster).

    Returns:
        Per iteration: ``beta``, ``labels`` (so far), ``loss_before`` and ``loss`` (the
        mean squared error per action component over all labels so far, before and after
        fitting), ``crashes`` (of the cars this iteration) and
        ``seconds``.

    Raises:
        ConfigError: for a Roblox run, a run that has a ``best/`` (the student would
            replace it), or a policy that is not an actor-critic with a diagonal Gaussian
            (PPO's ``MlpPolicy``).
        CheckpointError: if ``model.zip`` is missing or damaged.
    """
    cfg = load_run_config(run_dir)
    if (run_dir / "best").exists():
        raise ConfigError(
            f"{run_dir / 'best'} exists: the student would replace that model. Give a run "
            "made for the student (validation.every=0 leaves no best/; see --help), or move "
            "best/ away first."
        )
    check_simulator_run(run_dir, "imitation (the scripted driver reads the simulator)")
    torch.set_num_threads(int(cfg.torch_threads))
    train_seeds = track_seeds(cfg.tracks.train, "tracks.train")
    base = make_env(
        cfg.backend,
        n_races,
        1,
        [train_seeds] * n_races,
        episode={"reset": "car", "grid_start_prob": 0.0},
        track_mix=train_mix(cfg),
    )
    venv = wrap_vec_env(base, cfg.wrappers, gamma=discount(cfg.algo))
    venv.seed(int(cfg.seed))
    model = load_model(cfg.algo, run_dir / "model.zip", env=venv)
    policy = model.policy
    if not isinstance(policy, ActorCriticPolicy) or not isinstance(
        policy.action_dist, DiagGaussianDistribution
    ):
        raise ConfigError(
            f"{run_dir}'s policy is a {type(policy).__name__} with "
            f"{type(getattr(policy, 'action_dist', None)).__name__}: imitation fits a "
            "diagonal Gaussian's mean (algo=ppo)."
        )
    teacher = PurePursuitDriver(TUNINGS[teacher])
    optimizer = torch.optim.Adam(policy.parameters(), lr=learning_rate)
    rng = np.random.default_rng(int(cfg.seed))
    observations: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    history = []
    # Raw (stacked) observations are kept and normalised with the statistics of the
    # moment before each fit: VecNormalize keeps updating them while the cars drive.
    normalized = isinstance(venv, VecNormalize)
    observation = venv.reset()
    for iteration in range(iterations):
        started, beta, crashes = time.perf_counter(), 0.5**iteration, 0
        for _ in range(steps):
            label = teacher.act(base.races.worlds).astype(np.float32)
            raw = venv.get_original_obs() if normalized else observation
            observations.append(np.array(raw, np.float32))
            labels.append(label)
            action, _ = model.predict(observation, deterministic=True)
            action = np.where((rng.random(len(label)) < beta)[:, None], label, action)
            observation, _, _, infos = venv.step(action)
            crashes += sum(bool(info.get("crashed")) for info in infos)
        x = np.concatenate(observations)
        x = torch.as_tensor(venv.normalize_obs(x) if normalized else x, dtype=torch.float32)
        y = torch.as_tensor(np.concatenate(labels))
        with torch.no_grad():  # the policy of this iteration on every label so far
            before = torch.nn.functional.mse_loss(policy.get_distribution(x).distribution.mean, y)
        fit_mean(policy, optimizer, x, y, epochs=epochs, batch_size=batch_size)
        with torch.no_grad():  # the fitted policy on the same labels
            after = torch.nn.functional.mse_loss(policy.get_distribution(x).distribution.mean, y)
        figures = {
            "iteration": iteration,
            "beta": beta,
            "labels": len(x),
            "loss_before": before.item(),
            "loss": after.item(),
            "crashes": crashes,
            "seconds": time.perf_counter() - started,
        }
        history.append(figures)
        log.info(
            "iteration %d/%d: beta %.3f, %d labels, loss %.4f before fitting, %.4f after, "
            "%d crashes, %.0f s",
            iteration + 1,
            iterations,
            beta,
            len(x),
            figures["loss_before"],
            figures["loss"],
            crashes,
            figures["seconds"],
        )
    if normalized:
        venv.training = False
    (run_dir / "best").mkdir(exist_ok=True)
    save_model_files(model, venv, run_dir / "best")
    write_json(run_dir / "imitation.json", history)
    venv.close()
    return history


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="examples:" + __doc__.split("Usage::", 1)[1],  # the run it needs, made
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("run_dir", type=Path, help="a run of the built-in simulator (PPO)")
    parser.add_argument("--iterations", type=int, default=30, help="DAgger iterations (30)")
    parser.add_argument("--steps", type=int, default=3000, help="VecEnv steps per iteration (3000)")
    parser.add_argument("--races", type=int, default=20, help="cars driving at once (20)")
    parser.add_argument("--epochs", type=int, default=4, help="passes over the labels (4)")
    parser.add_argument(
        "--teacher",
        choices=sorted(TUNINGS),
        default="default",
        help="the scripted driver imitated: default (the benchmark's reference) or racing "
        "(its racing line, ~0.92x the lap time)",
    )
    args = parser.parse_args()
    if min(args.iterations, args.steps, args.races, args.epochs) < 1:
        parser.error("--iterations, --steps, --races and --epochs must each be >= 1")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    try:
        with reported("imitate_scripted.py"):
            history = imitate(
                args.run_dir,
                args.iterations,
                args.steps,
                args.races,
                args.epochs,
                teacher=args.teacher,
            )
    except KeyboardInterrupt:
        log.error("interrupted: nothing was written (the student is written at the end)")
        sys.exit(130)
    print(strict_json({"run_dir": str(args.run_dir), "iterations": history}))


if __name__ == "__main__":
    main()

"""A policy's episodes in an evaluation VecEnv: training's validation.

``evaluation_env`` builds the VecEnv (the run's own wrapper stack, VecNormalize frozen)
and ``run_episodes`` drives any SB3-style policy for one episode per slot, as SB3's
``evaluate_policy`` does. Races and ``racing-rl eval`` drive ParallelEnvs instead
(``racing_rl.evaluation.races``), several drivers at once, each behind its own run's
wrappers. The two loops stay apart: a VecEnv keeps stepping (and restarting) the slots
whose episode is over, and sums float32 rewards, where a race stops a finished car and
sums the env's own rewards, so one loop for both would change validation's figures.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from omegaconf import DictConfig
from stable_baselines3.common.type_aliases import PolicyPredictor
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from racing_rl.algos import discount
from racing_rl.evaluation.results import EpisodeResult
from racing_rl.vec import make_env, wrap_vec_env

if TYPE_CHECKING:
    from racing_rl.bridge.training_bridge import TrainingBridge

log = logging.getLogger(__name__)


def evaluation_env(
    cfg: DictConfig,
    seeds: Sequence[int],
    agents: int = 1,
    bridge: TrainingBridge | None = None,
) -> VecEnv:
    """One virtual environment per track seed (``agents`` cars each), with the run's
    wrapper stack.

    Cars start at rest on the start line and are truncated (``finished``) after one lap
    or ``cfg.validation.max_steps`` steps. VecNormalize, if the run uses it, is frozen
    (``training=False``) and leaves rewards raw; its statistics are the caller's to set
    (``ValidationCallback`` syncs them from the training VecEnv before every validation).

    Args:
        cfg: the run's composed config.
        seeds: track seeds, one virtual environment each.
        agents: cars per environment.
        bridge: Roblox only: the training's running bridge, to validate in the same
            game; None starts a new one.
    """
    base = make_env(
        cfg.backend,
        n_races=len(seeds),
        cars_per_race=agents,
        track_seeds=[[seed] for seed in seeds],
        episode={"spawn": "grid", "laps": 1, "max_steps": cfg.validation.max_steps},
        bridge=bridge,
    )
    venv = wrap_vec_env(base, cfg.wrappers, gamma=discount(cfg.algo))
    if isinstance(venv, VecNormalize):
        venv.training = False
        venv.norm_reward = False
    return venv


#: Times a slot's episode is driven again after a game lost its car mid-episode.
RERUNS = 2


def run_episodes(policy: PolicyPredictor, venv: VecEnv) -> list[EpisodeResult]:
    """Run one episode in every slot of ``venv`` with the policy's deterministic action,
    and report each.

    Slots that finish early keep stepping (their results are already taken) until the
    last slot is done, as SB3's ``evaluate_policy`` does. An episode that a game lost
    (a reconnection: ``info["interrupted"]``) is driven again in its slot, on its track,
    up to ``RERUNS`` times; then it is reported as interrupted (``summarize`` leaves it
    out).

    Args:
        policy: anything with SB3's ``predict`` (recurrent policies included).
        venv: an evaluation VecEnv, e.g. from ``evaluation_env``.

    Returns:
        One result per slot, in slot order.
    """
    n = venv.num_envs
    observation = venv.reset()
    seeds = [info.get("track_seed", -1) for info in venv.unwrapped.reset_infos]
    state = None
    episode_start = np.ones(n, dtype=bool)
    returns = np.zeros(n)
    lengths = np.zeros(n, dtype=np.int64)
    results: list[EpisodeResult | None] = [None] * n
    reruns = np.zeros(n, dtype=np.int64)
    while any(r is None for r in results):
        actions, state = policy.predict(
            observation, state=state, episode_start=episode_start, deterministic=True
        )
        observation, rewards, dones, infos = venv.step(actions)
        raw = venv.get_original_reward() if isinstance(venv, VecNormalize) else rewards
        pending = np.array([r is None for r in results])
        returns += np.where(pending, raw, 0.0)
        lengths += pending
        again = []  # the slots whose lost episode is driven again
        for k in np.flatnonzero(dones & pending):
            info = infos[k]
            if info.get("interrupted") and reruns[k] < RERUNS:  # the slot's next episode
                reruns[k] += 1
                returns[k], lengths[k] = 0.0, 0
                again.append(k)
                continue
            results[k] = EpisodeResult.from_info(
                seeds[k],
                info,
                [info["lap_time"]] if "lap_time" in info else [],
                returns[k],
                lengths[k],
            )
        if again:
            log.warning(
                "the game lost %d car(s) mid-episode (a reconnection): their episodes on "
                "track seed(s) %s are driven again (a rerun, of at most %d each)",
                len(again),
                ", ".join(str(seeds[k]) for k in again),
                RERUNS,
            )
        episode_start = dones
    return [r for r in results if r is not None]

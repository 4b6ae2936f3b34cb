"""VecNormalize never holds a non-finite statistic: bad values from the simulator-side stack."""

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from pettingzoo.utils.wrappers import BaseParallelWrapper
from runs import TINY
from stable_baselines3.common.vec_env import VecNormalize

import racing_rl.training as train_module
from racing_rl import config_dir
from racing_rl.checkpoints.layout import find_checkpoints
from racing_rl.checkpoints.loading import load_model
from racing_rl.errors import NonFiniteError
from racing_rl.normalize import FiniteVecNormalize, read_statistics
from racing_rl.vec import make_parallel_envs, make_vec_env

BACKEND = OmegaConf.load(config_dir() / "backend" / "pygame.yaml")
#: (what is poisoned, value): each overflows float32 or its variance.
# The bad values overflow float32 on their way (that is the point): NumPy says so.
pytestmark = pytest.mark.filterwarnings(
    "ignore:overflow encountered:RuntimeWarning", "ignore:invalid value encountered:RuntimeWarning"
)
BAD = [("observation", 1e30), ("observation", 1e39), ("reward", 1e300)]


class Poisoned(BaseParallelWrapper):
    """Sends ``value`` as the first car's observation entry 0 (or reward) at step ``at``."""

    def __init__(self, env, what: str, value: float, at: int) -> None:
        super().__init__(env)
        self.what, self.value, self.at, self.steps = what, value, at, 0

    def step(self, actions):
        observations, rewards, terminated, truncated, infos = super().step(actions)
        self.steps += 1
        if self.steps == self.at and observations:
            agent = next(iter(observations))
            if self.what == "observation":
                observations[agent] = observations[agent].astype(np.float64)
                observations[agent][0] = self.value
            else:
                rewards[agent] = self.value
        return observations, rewards, terminated, truncated, infos


def poisoned_envs(what: str, value: float, at: int):
    envs = make_parallel_envs(BACKEND, 2, 2, [range(100)] * 2)
    return [Poisoned(envs[0], what, value, at), *envs[1:]]


@pytest.mark.parametrize(("what", "value"), BAD, ids=[f"{w}={v:g}" for w, v in BAD])
def test_a_bad_value_leaves_the_statistics_as_they_were(what, value):
    wrappers = OmegaConf.create({"frame_stack": 1, "normalize": {"norm_obs": True}})
    # The original failure: SB3's VecNormalize keeps an infinite or NaN statistic.
    sb3 = VecNormalize(make_vec_env(poisoned_envs(what, value, at=3), {"frame_stack": 1}, 0.99))
    sb3.reset()
    for _ in range(3):
        sb3.step(np.zeros((sb3.num_envs, 3), np.float32))
    stats = (sb3.obs_rms.mean, sb3.obs_rms.var, sb3.ret_rms.var)
    assert not all(np.isfinite(s).all() for s in stats)

    venv = make_vec_env(poisoned_envs(what, value, at=3), wrappers, gamma=0.99)
    assert isinstance(venv, FiniteVecNormalize)
    venv.reset()
    for _ in range(2):
        venv.step(np.zeros((venv.num_envs, 3), np.float32))
    before = (venv.obs_rms.mean, venv.obs_rms.var, venv.ret_rms.mean, venv.ret_rms.var)
    with pytest.raises(NonFiniteError, match=r"would become non-finite.*kept as they were"):
        venv.step(np.zeros((venv.num_envs, 3), np.float32))
    after = (venv.obs_rms.mean, venv.obs_rms.var, venv.ret_rms.mean, venv.ret_rms.var)
    assert all(np.array_equal(a, b) for a, b in zip(before, after, strict=True))
    assert all(np.isfinite(s).all() for s in after)


def test_training_stops_with_a_clear_error_and_a_checkpoint_from_before(tmp_path, monkeypatch):
    monkeypatch.setattr(
        train_module,
        "make_parallel_envs",
        lambda *args, **kwargs: poisoned_envs("observation", 1e39, 300),
    )
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        cfg = compose("train", overrides=TINY)
    with pytest.raises(NonFiniteError, match="observation"):
        train_module.train(cfg, tmp_path)
    (checkpoint,) = find_checkpoints(tmp_path)
    assert checkpoint.kind == "interrupted" and 0 < checkpoint.timesteps < 2000
    stats = read_statistics(checkpoint.statistics, (26,))  # finite, or it raises
    assert stats["obs_var"].max() < 1e6
    model = load_model(cfg.algo, checkpoint.model)
    assert all(np.isfinite(p.detach().numpy()).all() for p in model.policy.parameters())

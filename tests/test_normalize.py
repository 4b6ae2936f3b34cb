"""VecNormalize never holds a non-finite statistic: bad values from the simulator-side stack."""

import numpy as np
import pytest
from hydra import compose
from omegaconf import OmegaConf
from runs import TINY
from stable_baselines3.common.vec_env import VecEnvWrapper, VecNormalize

import racing_rl.training as train_module
from racing_rl.checkpoints.layout import find_checkpoints
from racing_rl.checkpoints.loading import load_model
from racing_rl.config import default_backend, initialize
from racing_rl.errors import NonFiniteError
from racing_rl.normalize import FiniteVecNormalize, is_finite, read_statistics
from racing_rl.vec import make_env, wrap_vec_env

BACKEND = default_backend("pygame")
#: (what is poisoned, value): each overflows float32 or its variance.
# The bad values overflow float32 on their way (that is the point): NumPy says so.
pytestmark = pytest.mark.filterwarnings(
    "ignore:overflow encountered:RuntimeWarning", "ignore:invalid value encountered:RuntimeWarning"
)
BAD = [("observation", 1e30), ("observation", 1e39), ("reward", 1e300)]


class Poisoned(VecEnvWrapper):
    """Sends ``value`` as the first car's observation entry 0 (or reward) at step ``at``,
    written into the float32 arrays the VecEnv returns (1e39 overflows to inf there)."""

    def __init__(self, venv, what: str, value: float, at: int) -> None:
        super().__init__(venv)
        self.what, self.value, self.at, self.steps = what, value, at, 0

    def reset(self):
        observations = self.venv.reset()
        if self.at == 0:  # the reset's observation (a game's first frame)
            observations[0, 0] = self.value
        return observations

    def step_wait(self):
        observations, rewards, dones, infos = self.venv.step_wait()
        self.steps += 1
        if self.steps == self.at:
            if self.what == "observation":
                observations[0, 0] = self.value
            else:
                rewards[0] = self.value
        return observations, rewards, dones, infos


def poisoned_env(what: str, value: float, at: int):
    return Poisoned(make_env(BACKEND, 2, 2, [range(100)] * 2), what, value, at)


@pytest.mark.parametrize(("what", "value"), BAD, ids=[f"{w}={v:g}" for w, v in BAD])
def test_a_bad_value_leaves_the_statistics_as_they_were(what, value):
    wrappers = OmegaConf.create({"frame_stack": 1, "normalize": {"norm_obs": True}})
    # The original failure: SB3's VecNormalize keeps an infinite or NaN statistic.
    sb3 = VecNormalize(poisoned_env(what, value, at=3))
    sb3.reset()
    for _ in range(3):
        sb3.step(np.zeros((sb3.num_envs, 3), np.float32))
    stats = (sb3.obs_rms.mean, sb3.obs_rms.var, sb3.ret_rms.var)
    assert not all(np.isfinite(s).all() for s in stats)

    venv = wrap_vec_env(poisoned_env(what, value, at=3), wrappers, gamma=0.99)
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


def test_a_bad_reset_observation_leaves_the_statistics_as_they_were():
    wrappers = OmegaConf.create({"frame_stack": 1, "normalize": {"norm_obs": True}})
    venv = wrap_vec_env(poisoned_env("observation", 1e39, at=0), wrappers, gamma=0.99)
    before = (venv.obs_rms.mean.copy(), venv.obs_rms.var.copy(), venv.obs_rms.count)
    with pytest.raises(NonFiniteError, match="kept as they were"):
        venv.reset()
    assert np.array_equal(venv.obs_rms.mean, before[0]) and venv.obs_rms.count == before[2]
    assert is_finite(venv)
    venv.obs_rms.var[3] = np.nan  # any statistic, not the mean alone (training's guard)
    assert not is_finite(venv)


def test_training_stops_with_a_clear_error_and_a_checkpoint_from_before(tmp_path, monkeypatch):
    monkeypatch.setattr(
        train_module, "make_env", lambda *args, **kwargs: poisoned_env("observation", 1e39, 300)
    )
    with initialize():
        cfg = compose("train", overrides=TINY)
    with pytest.raises(NonFiniteError, match="observation"):
        train_module.train(cfg, tmp_path)
    (checkpoint,) = find_checkpoints(tmp_path)
    assert checkpoint.kind == "interrupted" and 0 < checkpoint.timesteps < 2000
    stats = read_statistics(checkpoint.statistics, (26,))  # finite, or it raises
    assert stats["obs_var"].max() < 1e6
    model = load_model(cfg.algo, checkpoint.model)
    assert all(np.isfinite(p.detach().numpy()).all() for p in model.policy.parameters())


def test_statistics_without_clipping_are_saved_and_read_back(tmp_path):
    # wrappers.normalize.clip_obs=inf (allowed: "clips nothing") trained, and then every
    # load refused its statistics as "a non-finite statistic (inf or NaN): it is unusable".
    from racing_rl.errors import CheckpointError
    from racing_rl.normalize import save_statistics

    wrappers = OmegaConf.create({"frame_stack": 1, "normalize": {"clip_obs": float("inf")}})
    venv = wrap_vec_env(make_env(BACKEND, 2, 2, [range(100)] * 2), wrappers, gamma=0.99)
    venv.reset()
    venv.step(np.zeros((venv.num_envs, 3), np.float32))
    save_statistics(venv, tmp_path / "vecnormalize.npz")
    stats = read_statistics(tmp_path / "vecnormalize.npz", venv.observation_space.shape)
    assert stats["clip_obs"] == float("inf")
    # A clip of NaN or 0, or a NaN statistic, is still refused; an epsilon of inf (every
    # observation normalised to 0) or a gamma outside [0, 1] loaded.
    for key, value, says in [
        ("clip_obs", np.nan, "setting out of range"),
        ("clip_reward", 0.0, "setting out of range"),
        ("epsilon", np.inf, r"epsilon=inf; expected clip_obs and clip_reward > 0, gamma in"),
        ("gamma", 1.5, r"gamma=1.5, epsilon=1e-08; expected .*\): it is damaged"),
        ("gamma", -0.1, "setting out of range"),
        ("return_var", np.inf, "non-finite statistic"),
        ("return_var", -1.0, "negative variance or count"),
        ("obs_count", 0.0, "negative variance or count"),
        # It loaded, and the next step's return variance was negative: NaN rewards.
        ("return_count", -3.0, "negative variance or count"),
    ]:
        raw = dict(np.load(tmp_path / "vecnormalize.npz"))
        np.savez(tmp_path / "bad.npz", **{**raw, key: np.float64(value)})
        with pytest.raises(CheckpointError, match=says):
            read_statistics(tmp_path / "bad.npz")

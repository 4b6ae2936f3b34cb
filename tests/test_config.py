"""The one config source (racing_rl/config.py): schemas that fail at compose time, every
group option composes, each default in one place, run configs parsed by the schemas."""

import re
import shlex
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
from hydra import compose
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import ConfigCompositionException
from omegaconf import DictConfig, OmegaConf
from runs import racing_rl

from racing_rl import config_dir
from racing_rl.bridge.config import RobloxConfig
from racing_rl.checks import check_train_config
from racing_rl.config import (
    BACKENDS,
    backend_config,
    backend_schema,
    check_known_keys,
    default_backend,
    initialize,
    override_value,
    path_override,
    train_mix,
    with_difficulty,
)
from racing_rl.envs.batch import RaceBatch
from racing_rl.envs.config import GameEpisodeConfig, RaceConfig
from racing_rl.errors import ConfigError
from racing_rl.sim.car import CarConfig

# (overrides, the key the message must name): a typo, or a value of the wrong type.
FAIL_AT_COMPOSE = [
    (["backend.car.max_sped=3"], "backend.car.max_sped"),
    (["backend.car.max_speed=fast"], "backend.car.max_speed"),
    (["backend.sensors.detect_cars=maybe"], "backend.sensors.detect_cars"),
    (["backend=roblox", "backend.server.prt=1"], "backend.server.prt"),
    (["backend=roblox", "backend.max_environments=many"], "backend.max_environments"),
    (["backend=roblox", "difficulty=hard"], "backend.track"),
    (["seed=abc"], "seed"),
    (["total_timesteps=1.5e6"], "total_timesteps"),
    (["cars_per_race=two"], "cars_per_race"),
    (["progress_bar=maybe"], "progress_bar"),
    (["trust_pickles=maybe"], "trust_pickles"),
    (["wrappers.monitor=maybe"], "wrappers.monitor"),
    (["wrappers.frame_stak=2"], "wrappers.frame_stak"),
    (["checkpoint.kep=1"], "checkpoint.kep"),
    (["validation.video.sise=64"], "validation.video.sise"),
    (["tracks.test=[a,b]"], "tracks.test"),
]


def _message(err: BaseException) -> str:
    return f"{err}\n{err.__cause__ or ''}"


@pytest.mark.parametrize(
    ("overrides", "key"), FAIL_AT_COMPOSE, ids=[" ".join(o) for o, _ in FAIL_AT_COMPOSE]
)
def test_a_typo_or_a_wrong_type_fails_at_compose_time(overrides, key):
    with initialize(), pytest.raises(ConfigCompositionException) as raised:
        compose("train", overrides=overrides)
    assert key in _message(raised.value)


# (command, overrides, the key the message must name): every command's keys are typed.
COMMANDS_FAIL_AT_COMPOSE = [
    ("eval", ["run_dir=r", "seeds=[abc]"], "seeds"),
    ("eval", ["run_dir=r", "record=maybe"], "record"),
    ("eval", ["run_dir=r", "laps=one"], "laps"),
    ("eval", ["run_dir=r", "chekpoint=final"], "chekpoint"),
    ("play", ["seed=abc"], "seed"),
    ("emulate", ["tick_hz=fast"], "tick_hz"),
    ("emulate", ["lockstep=maybe"], "lockstep"),
    ("emulate", ["faults.drop_after=soon"], "faults.drop_after"),
    ("emulate", ["faults.inject={soon:oversized}"], "faults.inject.soon"),
    ("replay", ["path=x.npz", "speed=fast"], "speed"),
    ("export", ["run_dir=r", "format=[luau]"], "format"),
]


@pytest.mark.parametrize(
    ("command", "overrides", "key"),
    COMMANDS_FAIL_AT_COMPOSE,
    ids=[f"{c} {' '.join(o)}" for c, o, _ in COMMANDS_FAIL_AT_COMPOSE],
)
def test_every_command_refuses_a_wrong_type_at_compose_time(command, overrides, key):
    with initialize(), pytest.raises(ConfigCompositionException) as raised:
        compose(command, overrides=overrides)
    assert key in _message(raised.value)


@pytest.mark.parametrize(
    ("command", "override", "says"),
    [
        (
            "train",
            "+total_timestep=100",
            "unknown key total_timestep; did you mean total_timesteps?",
        ),
        ("train", "+wrappers.frame_stak=3", "unknown key wrappers.frame_stak; did you mean"),
        ("eval", "+chekpoint=final", "unknown key chekpoint; did you mean checkpoint?"),
        ("emulate", "+faults.dropafter=3", "unknown key faults.dropafter; did you mean"),
    ],
)
def test_a_key_appended_with_plus_that_no_schema_has_is_refused(command, override, says):
    overrides = [override] + (["run_dir=r"] if command == "eval" else [])
    with initialize():
        cfg = compose(command, overrides=overrides)
    with pytest.raises(ConfigError, match=re.escape(says)):
        check_known_keys(cfg, command)


@pytest.mark.parametrize("command", ["train", "eval", "play", "emulate", "export", "replay"])
def test_every_command_config_and_free_form_groups_pass_the_known_key_check(command):
    # algo and backend are typed Any: +algo.model.<kwarg> reaches the algorithm's class,
    # which checks it against its signature (racing_rl.checks).
    overrides = {
        "train": ["+algo.model.sde_sample_freq=4"],
        "eval": ["+backend.rules.car_collisions=true"],
    }
    with initialize():
        cfg = compose(command, overrides=overrides.get(command, []))
    check_known_keys(cfg, command)


def test_the_cli_refuses_a_key_appended_with_plus_before_the_run_dir(tmp_path):
    run_dir = tmp_path / "run"
    result = racing_rl(
        "train", "+total_timestep=100", f"hydra.run.dir={run_dir}", cwd=tmp_path, timeout=60
    )
    assert result.returncode == 2  # before Hydra starts, as any misspelt key (it was 1)
    assert "did you mean total_timesteps?" in result.stderr
    assert not run_dir.exists()


@pytest.mark.parametrize(
    ("override", "code", "says"),
    [
        ("backend.car.max_sped=3", 2, "max_sped; did you mean backend.car.max_speed?"),
        ("backend.car.max_speed=fast", 2, "Value 'fast' of type 'str' could not be converted"),
    ],
)
def test_the_cli_refuses_a_typo_or_a_wrong_type_before_the_run_dir(tmp_path, override, code, says):
    """A typo and a wrong type below a backend are the CLI's checks (exit 2, as every
    first mistake), in one line; a wrong type was Hydra's, when it composed (exit 1, five
    lines with its HYDRA_FULL_ERROR hint)."""
    run_dir = tmp_path / "run"
    result = racing_rl("train", override, f"hydra.run.dir={run_dir}", cwd=tmp_path, timeout=60)
    assert result.returncode == code
    assert says in result.stderr and "backend.car.max_sp" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not run_dir.exists()


def _group_options() -> list[tuple[str, str]]:
    groups = ("backend", "difficulty", "wrappers", "algo", "logger", "experiment")
    return [(g, p.stem) for g in groups for p in sorted((config_dir() / g).glob("*.yaml"))]


@pytest.mark.parametrize(("group", "option"), _group_options())
def test_every_group_option_composes_and_resolves(group, option):
    overrides = [f"{group}={option}"]
    if group == "difficulty":  # the simulator's tracks and rules
        overrides.append("backend=pygame")
    with initialize():
        cfg = compose("train", overrides=overrides)
    OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    if group == "backend":
        assert cfg.backend.name == option


@pytest.mark.parametrize("command", ["train", "eval", "play", "emulate", "export", "replay"])
def test_every_command_config_composes(command):
    with initialize():
        cfg = compose(command)
    assert isinstance(cfg, DictConfig) and cfg


def _leaves(values: dict, prefix: str = "") -> dict[str, object]:
    """A nested mapping's leaf values by dotted key, interpolations unresolved."""
    leaves = {}
    for key, value in values.items():
        path = f"{prefix}{key}"
        leaves |= _leaves(value, f"{path}.") if isinstance(value, dict) else {path: value}
    return leaves


@pytest.mark.parametrize(
    ("path", "node", "backend"),
    [
        ("backend/pygame.yaml", None, "pygame"),
        ("backend/roblox.yaml", None, "roblox"),
        ("emulate.yaml", "sim", "pygame"),
    ],
)
def test_no_yaml_value_repeats_a_dataclass_default(path, node, backend):
    """The dataclasses hold the defaults; a YAML file sets only what differs from them."""
    values = OmegaConf.to_container(OmegaConf.load(config_dir() / path), resolve=False)
    values.pop("defaults", None)
    defaults = _leaves(OmegaConf.to_container(backend_schema(backend), resolve=False))
    for key, value in _leaves(values[node] if node else values).items():
        assert key in defaults, f"{path}: {key} is not a field of the {backend} schema"
        assert value != defaults[key], f"{path}: {key}={value} repeats the dataclass default"


def test_the_backend_defaults_are_the_dataclasses():
    """What reaches the simulator (or the bridge) from the default config."""
    assert backend_config(default_backend("pygame")) == RaceConfig()
    roblox = backend_config(default_backend("roblox"))
    assert roblox == RobloxConfig(server=roblox.server)  # the token comes from the environment
    assert roblox.episode == GameEpisodeConfig(reset="car")
    assert set(BACKENDS) == {"pygame", "roblox"}


def test_a_saved_run_config_parses_with_its_overrides_and_an_episode_override():
    """A run dir's .hydra/config.yaml holds every value explicitly (as older versions wrote
    it); the schema takes it, and the episode override of evaluation wins."""
    with initialize():
        cfg = compose("train", overrides=["backend.car.max_speed=30", "backend.sensors.n_rays=6"])
    saved = OmegaConf.create(OmegaConf.to_yaml(cfg))
    config = backend_config(saved.backend, {"spawn": "grid", "laps": 1})
    assert config.car == CarConfig(max_speed=30.0)
    assert config.sensors.n_rays == 6
    assert (config.episode.spawn, config.episode.laps) == ("grid", 1)


@pytest.mark.parametrize(
    ("backend", "message"),
    [
        ({"name": "pygame", "car": {"max_sped": 3}}, "backend.car.max_sped"),
        ({"name": "pygame", "car": {"max_speed": "fast"}}, "backend.car.max_speed"),
        ({"name": "pygame", "car": {"max_speed": -1}}, "car.max_speed must be > 0"),
        ({"name": "roblox", "server": {"host": "0.0.0.0"}}, "server.host='0.0.0.0'"),
        # A wait for a missing car that sends no ACTION sets the game's watchdog off.
        ({"name": "roblox", "observation_timeout": 25}, "250 ticks without one (16.7 s at its"),
        # The bound said "under 15 s" and let 15 in; it is 15 (a saved run may hold it).
        ({"name": "roblox", "observation_timeout": 15.01}, "keep it at most 15 s (90 % of"),
        (
            {"name": "roblox", "observation_timeout": 15.8, "rules": {"dt": 0.07}},
            "(17.5 s at its 14.2857 Hz; ROBLOX_GAME.md, 'Watchdog'): keep it at most 15.75 s",
        ),
        ({"name": "carla"}, "backend.name='carla'; must be one of pygame, roblox"),
    ],
)
def test_an_invalid_saved_backend_is_a_config_error_naming_the_key(backend, message):
    with pytest.raises(ConfigError) as raised:
        backend_config(OmegaConf.create(backend))
    assert message in str(raised.value)


def test_the_longest_observation_timeout_is_allowed():
    """15 s at 15 Hz, 90 % of the watchdog: runs were saved with it, and must load."""
    config = backend_config(OmegaConf.create({"name": "roblox", "observation_timeout": 15}))
    assert config.observation_timeout == 15


def test_composing_train_needs_nothing_but_racing_rl_config():
    """The resolvers and schemas come from ``initialize`` (racing_rl.config.register), not
    from importing the commands' modules: the run dir and sweep subdir resolve."""
    code = (
        "import sys\n"
        "from hydra import compose\n"
        "from omegaconf import OmegaConf\n"
        "from racing_rl.config import initialize\n"
        "with initialize():\n"
        "    cfg = compose('train', overrides=['hydra.job.num=3'], return_hydra_config=True)\n"
        "OmegaConf.to_container(cfg.backend, resolve=True)\n"
        "print(cfg.hydra.run.dir.endswith('_ppo_pygame'), cfg.hydra.sweep.subdir)\n"
        "print(sorted(m for m in sys.modules if m in ('racing_rl.train', 'racing_rl.evaluate')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert result.stdout.split("\n")[:2] == ["True 3", "[]"]  # a job of no overrides: its number


def test_the_default_mix_is_half_hard_tracks_and_left_out_for_a_game(caplog):
    """tracks.train_mix=[hard] by default on the simulator; a Roblox game makes its own
    tracks, so backend=roblox trains without the mix, saying so."""
    with initialize():
        simulator = compose("train")
        game = compose("train", overrides=["backend=roblox"])
    hard = backend_config(with_difficulty(simulator.backend, "hard")).track
    assert train_mix(simulator) == [hard]
    with caplog.at_level("INFO", logger="racing_rl.config"):
        assert train_mix(game) == []
    assert "tracks.train_mix=['hard']" in caplog.text and "backend=roblox" in caplog.text
    caplog.clear()
    with caplog.at_level("INFO", logger="racing_rl.config"):
        check_train_config(game, device=False)
    assert "train_mix" not in caplog.text  # checks are quiet: a run says it once


def test_experiment_race_sees_the_car_beside_it_on_the_grid():
    """``experiment=race`` trains in traffic: 2 learning and 2 scripted cars a race (20
    slots, as the default), collisions on, rays that see cars, half the races started on
    the grid, a crash restarting the race, half hard tracks; and its wider fan sees the car
    beside on a two-abreast grid, which the default 10 rays over 90 deg never do (the car
    behind-right of its neighbour: 4 m back, 7 m right, 60 deg to the left)."""
    with initialize():
        cfg = compose("train", overrides=["experiment=race"])
        default = compose("train")
    race = backend_config(cfg.backend)
    assert race.rules.car_collisions and race.sensors.detect_cars
    assert race.episode.reset == "race" and race.episode.grid_start_prob == 0.5
    assert race.sensors.n_rays == 20
    assert (cfg.n_races, cfg.cars_per_race, cfg.scripted_opponents) == (10, 2, 2)
    assert cfg.n_races * cfg.cars_per_race == default.n_races * default.cars_per_race
    assert default.scripted_opponents == 0
    assert train_mix(cfg) == [backend_config(with_difficulty(cfg.backend, "hard")).track]
    # PPO alone with 128 units (docs/benchmarks.md: the teacher costs it in traffic).
    assert (cfg.algo.model.teacher_coef, cfg.algo.model.policy_kwargs.net_arch) == (0.0, [128, 128])
    assert default.algo.model.teacher_coef == 1.0

    def second_car_rays(config: RaceConfig, detect_cars: bool) -> np.ndarray:
        config = replace(
            config,
            sensors=replace(config.sensors, detect_cars=detect_cars),
            episode=replace(config.episode, spawn="grid"),
        )
        batch = RaceBatch(config, 2, [[0]])
        batch.reset(0)
        return batch.worlds.observe()[1, : config.sensors.n_rays]

    seen = second_car_rays(race, True) < second_car_rays(race, False)
    assert seen.any() and not seen[race.sensors.n_rays // 2 :].any()  # on its left only
    plain = backend_config(default.backend)
    np.testing.assert_array_equal(second_car_rays(plain, True), second_car_rays(plain, False))


def test_a_mapping_key_takes_new_keys_of_its_key_type():
    # Hydra's struct mode refused every new key of a dict[int, str] field ("Key '5' is not in
    # struct"), so faults.inject could not be set from the command line.
    with initialize():
        cfg = compose("emulate", overrides=["faults.inject={5:oversized,17:nan}"])
    assert OmegaConf.to_container(cfg.faults.inject) == {5: "oversized", 17: "nan"}


def test_a_backend_error_names_the_group_s_own_path():
    # racing-rl emulate's simulator is the group `sim` (backend@sim), not `backend`.
    with initialize():
        sim = compose("emulate", overrides=["sim.sensors.n_rays=10"]).sim
    with pytest.raises(ConfigError) as error:
        backend_config(sim, where="sim")
    assert str(error.value) == (
        "Invalid config: sim.sensors.n_rays=10: layout=roblox_car has 16 rays (the game's "
        "Car); set n_rays=16, or layout=fan."
    )


def test_the_discount_is_the_configs_or_the_algorithms_own_default():
    """VecNormalize's γ: the algorithm's, read from its class when the YAML leaves it out
    (it was SB3's 0.99 written out in three places)."""
    from racing_rl.algos import discount

    with initialize():
        assert discount(compose("train", overrides=["algo=ppo"]).algo) == 0.996
        bare = compose("train", overrides=["algo=td3", "~algo.model.gamma"]).algo
    assert discount(bare) == 0.99  # TD3's own default


def test_a_path_override_quotes_what_hydra_or_the_shell_would_read():
    # The printed resume command of a sweep job's run did not parse.
    assert path_override("resume", "outputs/2026-12-05/14-03-12_ppo_pygame") == (
        "resume=outputs/2026-12-05/14-03-12_ppo_pygame"
    )
    job = "s/0_seed=0,total_timesteps=2000"
    assert path_override("resume", job) == f"\"resume='{job}'\""
    (word,) = shlex.split(path_override("resume", job))
    (override,) = OverridesParser.create().parse_overrides([word])
    assert override.value() == job


@pytest.mark.parametrize(
    "text",
    ["outputs/run", "s/0_seed=0,total_timesteps=2000", "it's", "a b\\", "x\\'y", "", "~/runs/r1"],
)
def test_an_override_value_reads_back_as_its_text_alone_and_in_a_list(text):
    value = override_value(text)
    overrides = OverridesParser.create().parse_overrides([f"a={value}", f"b=[{value},scripted]"])
    assert [o.value() for o in overrides] == [text, [text, "scripted"]]


def test_a_run_dir_named_from_the_home_is_made_in_the_home(monkeypatch, tmp_path):
    """Hydra makes its run directory as written: train resume='~/r' made ./~/r (and failed
    there: no run), eval run_dir='~/r' wrote its results to ./~/r/eval."""
    monkeypatch.setenv("HOME", str(tmp_path))
    with initialize():
        train = compose("train", overrides=["resume='~/r'"], return_hydra_config=True)
        evaluate = compose("eval", overrides=["run_dir='~/r'"], return_hydra_config=True)
        given = compose("eval", ["run_dir=r", "out_dir='~/e'"], return_hydra_config=True)
    assert train.hydra.run.dir == f"{tmp_path}/r"
    assert evaluate.hydra.run.dir == f"{tmp_path}/r/eval"
    assert given.hydra.run.dir == f"{tmp_path}/e"

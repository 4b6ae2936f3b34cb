"""The first five minutes: --help, --version, first-use errors, completion, plugin hints."""

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from runs import TINY, game_run_copy, racing_rl

from racing_rl import __version__, arguments, cli
from racing_rl.arguments import UsageError, check_arguments
from racing_rl.usage import read_config_doc

#: Modules that --help must not wait for.
HEAVY = ("torch", "stable_baselines3", "sb3_contrib", "pygame", "gymnasium", "optuna")
HYDRA_COMMANDS = ("train", "eval", "replay", "play", "emulate")


def timed(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    """``racing-rl <args>``; prints its wall time (reported, never asserted)."""
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "racing_rl.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )
    print(f"racing-rl {' '.join(args)}: {time.perf_counter() - started:.2f} s")
    return result


@pytest.mark.parametrize("command", [*HYDRA_COMMANDS, "report"])
def test_every_command_answers_help_with_usage_options_and_examples(command, tmp_path):
    result = timed(command, "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert text.startswith(f"usage: racing-rl {command}")
    assert "examples:" in text
    if command == "report":  # its sweep dir is required: the usage line does not bracket it
        assert text.startswith("usage: racing-rl report [-h] [--out OUT] sweep_dir\n")
        return
    # Every key of the YAML, with the comment above it.
    doc = read_config_doc(cli.config_dir() / f"{command}.yaml")
    assert doc.options and doc.paragraph
    for option in doc.options:
        assert f"  {option.key}" in text
        if option.comment:
            assert option.comment.split()[0] in text
    assert "is powered by Hydra" not in text
    if command == "train":  # an interpolated default, and what it is with algo=ppo
        budget = OmegaConf.load(cli.config_dir() / "algo" / "ppo.yaml").total_timesteps
        assert (
            f"total_timesteps=${{oc.select:algo.total_timesteps,1_000_000}}  (= {budget} by" in text
        )


def test_help_lists_only_the_groups_a_command_takes(tmp_path):
    train = timed("train", "--help", cwd=tmp_path).stdout
    for group in ("algo:", "backend:", "wrappers:", "logger:", "hydra/sweeper:"):
        assert group in train
    assert "tqc" in train and "crossq" in train
    # Hydra's own default is listed, and a wrapped list of options is indented past the
    # group names (it read as a group "submitit_slurm").
    assert "hydra/launcher: basic (default), joblib, parallel," in train
    assert "\n  submitit" not in train
    # Train's comments, which Hydra's --help drops.
    assert "Track seeds: [start, stop)" in train
    evaluate = timed("eval", "--help", cwd=tmp_path).stdout
    assert "backend:" in evaluate and "difficulty:" in evaluate
    assert "algo:" not in evaluate and "wrappers:" not in evaluate
    replay = timed("replay", "--help", cwd=tmp_path).stdout
    assert "config groups" not in replay


def test_help_shows_what_a_chosen_group_option_sets():
    """``train algo=sac --help`` showed PPO's budget as the one it would train for."""
    sac = OmegaConf.load(cli.config_dir() / "algo" / "sac.yaml").total_timesteps
    assert f"(= {sac} with algo=sac)" in cli.command_help("train", ["algo=sac", "--help"])
    # An option the group does not have shows no figure (running it says what is wrong).
    text = cli.command_help("train", ["algo=nope"])
    assert "(= " not in text.split("  total_timesteps=")[1].splitlines()[0]
    assert f"(= {sac} with algo=sac)" in cli.command_help("train", ["+algo=sac"])
    # A sweep's options each give theirs.
    td3 = OmegaConf.load(cli.config_dir() / "algo" / "td3.yaml").total_timesteps
    swept = cli.command_help("train", ["-m", "algo=sac,td3"])
    assert f"(= {sac} with algo=sac, {td3} with algo=td3)" in swept
    # What names no file of the group shows no figure: a quoted value is one option (as
    # Hydra reads it), a sweep function or a path none.
    for value in ("'sac,td3'", "choice(sac,td3)", "../experiment/race"):
        text = cli.command_help("train", ["-m", f"algo={value}"])
        assert "(= " not in text.split("  total_timesteps=")[1].splitlines()[0], value
    assert f"(= {sac} with algo=sac)" in cli.command_help("train", ["algo='sac'"])


def test_help_shows_what_a_chosen_experiment_sets():
    """``train experiment=race --help`` showed the YAML's 4 races and no scripted cars."""
    race = OmegaConf.load(cli.config_dir() / "experiment" / "race.yaml")
    text = cli.command_help("train", ["experiment=race"])
    assert f"  n_races=4  (= {race.n_races} with experiment=race)" in text
    assert f"  scripted_opponents=0  (= {race.scripted_opponents} with experiment=race)" in text
    assert "\n  seed=0\n" in text  # what the experiment leaves alone shows no figure


def test_help_lists_what_a_config_dir_adds(tmp_path):
    """``train --config-dir <dir> --help`` listed conf/'s options alone: the dir's
    algo=mine, its own groups and algo=mine's budget were missing; a --config-name was
    described as conf/train.yaml without a word."""
    (tmp_path / "algo").mkdir()
    (tmp_path / "algo" / "mine.yaml").write_text("name: mine\ntotal_timesteps: 123\n")
    (tmp_path / "sensors").mkdir()
    (tmp_path / "sensors" / "wide.yaml").write_text("n_rays: 20\n")
    for flag in (["--config-dir", str(tmp_path)], [f"--config-dir={tmp_path}"]):
        text = cli.command_help("train", [*flag, "algo=mine", "--help"])
        assert "  algo: crossq, ppo (default), recurrent_ppo, sac, td3, tqc, mine\n" in text
        assert f"--config-dir {tmp_path} adds mine." in " ".join(text.split())
        assert "  +sensors: wide\n" in text
        assert "(= 123 with algo=mine)" in text
    assert "mine" not in cli.command_help("train", ["algo=mine"])
    text = cli.command_help("train", ["-cd", str(tmp_path), "-cn", "mine", "--help"])
    assert text.startswith("--config-name mine: the config below is racing-rl train's own")
    assert f"racing-rl train -cd {tmp_path} -cn mine --cfg job prints mine's" in text


def test_help_lists_what_a_search_path_adds(tmp_path):
    """``train hydra.searchpath=[file://<dir>] --help`` listed conf/'s options alone, as
    --config-dir's help once did; a package of the search path is said to be unlisted. A
    path longer than a line, with hyphens, is not split (textwrap broke it at a hyphen)."""
    tmp_path = tmp_path / "a-config-directory-whose-name-is-longer-than-a-line-of-the-help"
    (tmp_path / "algo").mkdir(parents=True)
    (tmp_path / "algo" / "mine.yaml").write_text("name: mine\ntotal_timesteps: 123\n")
    for entry in (f"file://{tmp_path}", str(tmp_path)):
        result = timed("train", f"hydra.searchpath=[{entry}]", "algo=mine", "--help", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        text = result.stdout
        assert "  algo: crossq, ppo (default), recurrent_ppo, sac, td3, tqc, mine\n" in text
        assert f"hydra.searchpath's {tmp_path} adds mine." in " ".join(text.split())
        assert "(= 123 with algo=mine)" in text
    text = cli.command_help("train", [f"hydra.searchpath=[pkg://my_conf,file://{tmp_path}]"])
    assert text.startswith("hydra.searchpath's pkg://my_conf: the options it adds are not")
    assert f"hydra.searchpath's {tmp_path} adds mine." in " ".join(text.split())


def test_help_imports_nothing_heavy():
    code = (
        "import sys, contextlib, io\n"
        "from racing_rl import cli\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    for name in ('', 'train', 'eval', 'replay', 'play', 'emulate'):\n"
        "        cli.main([name, '--help'] if name else ['--help'])\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_version_and_python_m_racing_rl(tmp_path):
    version = timed("--version", cwd=tmp_path)
    assert (version.returncode, version.stdout.strip()) == (0, f"racing-rl {__version__}")
    result = subprocess.run(
        [sys.executable, "-m", "racing_rl", "--help"], capture_output=True, text=True, cwd=tmp_path
    )
    assert result.returncode == 0 and result.stdout.startswith("usage: racing-rl <command>")
    for name in ("train", "eval", "replay", "play", "emulate", "report", "TQC", "CrossQ"):
        assert name in result.stdout


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["eval"], "racing-rl eval: missing run_dir: pass run_dir=<run>"),
        (["replay"], "racing-rl replay: missing path: pass path=<file>"),
        (["eval", "run_dir=nope"], "run_dir=nope: no such file or directory"),
        (["eval", "run_dir=[nope,scripted]"], "run_dir=nope: no such file or directory"),
        (["eval", "run_dir=[scriptd]"], "scriptd: no such file or directory; did you mean scripte"),
        # ... where scripted is a driver, not for a run to resume or export.
        (["train", "resume=scriptd"], "resume=scriptd: no such file or directory; pass resume"),
        (["export", "run_dir=scripted"], "run_dir=scripted: no such file or directory; pass"),
        # A swept job's missing run failed in its job, "not a racing-rl run directory".
        (["eval", "-m", "run_dir=scripted,nope"], "run_dir=nope: no such file or directory"),
        (["eval", "-m", "run_dir=[scripted,nope],[scripted]"], "run_dir=nope: no such file or"),
        (["eval", "run_dir=."], "run_dir=. is not a run directory"),
        (["replay", "path=nope/race.npz"], "path=nope/race.npz: no such file or directory"),
        (["play", "opponent=nope"], "opponent=nope: no such file or directory"),
        (["train", "resume=nope"], "resume=nope: no such file or directory"),
        (["report"], "racing-rl report: missing the sweep dir"),
        (["report", "nope"], "racing-rl report: nope: no such dir"),
        (["nope"], "racing-rl: unknown command 'nope'; the commands: train,"),
        (["trian"], "racing-rl: unknown command 'trian'; did you mean train? the commands:"),
        (["train", "-m", "seed=0,1", "--cfg", "job"], "-m and --cfg cannot be given together"),
        (["train", "--info=config", "--cfg=job"], "--info=config and --cfg=job cannot be given"),
        (["train", "total_timesteps=1e5"], "whole number; write 100000 or 100_000"),
        # Hydra resolves its node alone, and the run dir reads ${algo.name} (a traceback).
        (["train", "--cfg", "hydra", "--resolve"], "--cfg all --resolve prints both, resolved"),
        (["eval", "-c", "hydra", "--resolve"], "settings alone: their directories read the"),
        # A sweep's value of the wrong type (Hydra: when its job is composed, after the
        # sweep's directory was made).
        (["train", "-m", "seed=0,abc"], "seed=0,abc: Value 'abc' of type 'str' could not be"),
        # ... and what to pass, from the key's type, its default the example.
        (["train", "-m", "seed=0,abc"], "(the sweep's value 'abc' of seed); seed takes a whole"),
        (["train", "seed=abc"], "to Integer; seed takes a whole number, such as seed=0"),
        (["train", "seed=1.5"], "to Integer; seed takes a whole number, such as seed=0"),
        (["train", "progress_bar=maybe"], "progress_bar takes true or false, such as progress_"),
        (["eval", "run_dir=.", "fps=fast"], "Float; fps takes a number or null"),
        (["play", "size=abc"], "tuple; size takes a list of whole numbers, such as size=[800,800]"),
        (
            ["train", "backend.car.max_speed=fast"],
            "Float; backend.car.max_speed takes a number, such as backend.car.max_speed=45.0",
        ),
        # ... below a key too (Hydra: its five lines, exit 1).
        (["train", "checkpoint.keep=x"], "keep takes a whole number or null, such as checkpoint.k"),
        (["emulate", "faults.drop_after=x"], "faults.drop_after takes a whole number or null"),
        (["train", "-m", "validation.video.every=0,x"], "the sweep's value 'x' of validation.v"),
        # A sweeper or a launcher without -m (Hydra: ignored, and a single run trains).
        (["train", "hydra/sweeper=ppo_search"], "hydra/sweeper=ppo_search is used only by a s"),
        (["train", "hydra/launcher=joblib"], "launcher=joblib is used only by a sweep: add -m"),
        # A launcher's or sweeper's typo (Hydra: "Could not find" and its search path, rc 1).
        (["train", "-m", "hydra/launcher=paralel"], "launcher=paralel: no such option; did you m"),
        # resume= in a sweep (Hydra: each job "is not a racing-rl run directory", exit 0).
        (["train", "-m", "resume=a,b"], "resume=a,b with -m: resume= continues one run, in"),
        # A single one, in one line (Hydra: five, with its HYDRA_FULL_ERROR hint).
        (["train", "progress_bar=maybe"], "train: progress_bar=maybe: Value 'maybe' is not a v"),
        (["eval", "run_dir=.", "seeds=[abc]"], "seeds=[abc]: Value 'abc' of type 'str' could"),
        # ... below a backend too (Hydra: "Error merging override" and four more lines).
        (["train", "-m", "backend.sensors.n_rays=10,x"], "(the sweep's value 'x' of backend.s"),
        (["train", "backend=roblox", "backend.server.port=x"], "port=x: Value 'x' of type"),
        # A path or a word without its key (Hydra: a lexer error).
        (["eval", "."], "racing-rl eval: '.' is not a KEY=VALUE override: did you mean run_dir=.?"),
        (["eval", "outputs/nope"], "'outputs/nope' is not a KEY=VALUE override: did you mean run_"),
        (["train", "sac"], "'sac' is not a KEY=VALUE override: racing-rl train --help lists"),
        # A top-level key added with + (Hydra added it; the schema refused it with status 1).
        (["train", "+total_timestep=1"], "'total_timestep' is not a key of racing-rl train: did"),
        # ... and with --cfg, which printed Hydra's advice to append it (+total_timestep=10).
        (["train", "--cfg", "job", "total_timestep=10"], "'total_timestep' is not a key of rac"),
        (["train", "-c=all", "-p", "algo", "sed=1"], "'sed' is not a key of racing-rl train"),
        # ... and below a backend, whose schema has every key (Hydra: "not in 'RaceRules'", 1).
        (["train", "+backend.rules.car_colisions=1"], "did you mean backend.rules.car_collisi"),
        (["emulate", "."], "racing-rl emulate: '.' is not a KEY=VALUE override: racing-rl emulate"),
        # A misspelt key (Hydra would suggest appending it: +fromat=onnx).
        (["export", "run_dir=.", "fromat=onnx"], "'fromat' is not a key of racing-rl export: did"),
        (["train", "out_dir=x"], "'out_dir' is not a key of racing-rl train: did you mean hydra.r"),
        (
            ["train", "sed=3"],
            "racing-rl train: 'sed' is not a key of racing-rl train: did you mean seed?",
        ),
        # A key the chosen backend lacks (Hydra: +backend.sensors.n_rays=16, refused too).
        (
            ["train", "backend=roblox", "backend.sensors.n_rays=16"],
            "backend=roblox has no backend.sensors; it is a key of backend=pygame only.",
        ),
        (["train", "backend.sensors.n_ray=16"], "n_ray; did you mean backend.sensors.n_rays?"),
        # eval's backend is the run's own (Hydra: "Key 'rules' is not in struct").
        (
            ["eval", "run_dir=.", "backend.rules.car_collisions=true"],
            "own backend, and a setting of it is changed with a +: +backend.rules.car_collis",
        ),
        # Below a key (Hydra: +validation.evry=5, which the schema refuses).
        (["train", "validation.evry=5"], "'validation.evry' is not a key of racing-rl train: did"),
        (["eval", "run_dir=.", "checkpoint.every=5"], "'checkpoint.every' is not a key of racing"),
        (
            ["emulate", "faults.injct=1"],
            "'faults.injct' is not a key of racing-rl emulate: did",
        ),
        # A key the chosen algorithm's file lacks (Hydra: +algo.model.gama=0.99).
        (["train", "algo.model.gama=0.99"], "gama; did you mean algo.model.gamma? racing-rl t"),
        (["train", "algo.net_widht=3"], "did you mean algo.net_width? racing-rl train algo=ppo"),
        # A key added to algo that nothing reads (Hydra: added, and the run trains without it).
        (["train", "+algo.net_widht=3"], "nothing reads algo.net_widht, so it would change not"),
        # A helper key of some algo files only (it passed, and CrossQ's network stayed).
        (["train", "algo=crossq", "+algo.net_width=64"], "key of algo=ppo, sac and tqc only."),
        (["train", "algo=td3", "algo.net_width=64"], "td3 has no algo.net_width; it is a key"),
        # An experiment for the other backend (Hydra: "Key 'sensors' not in 'RobloxConfig'").
        (
            ["train", "experiment=race", "backend=roblox"],
            "experiment=race sets backend.sensors.n_rays, which backend=roblox does not have",
        ),
        # ... and a difficulty level, the simulator's tracks (Hydra: "Key 'track' not in
        # 'RobloxConfig'" in five lines, exit 1), a sweep's leg too.
        (
            ["train", "difficulty=hard", "backend=roblox"],
            "difficulty=hard sets backend.track.width, which backend=roblox does not have: "
            "difficulty=hard is for backend=pygame",
        ),
        (["train", "-m", "backend=roblox", "difficulty=default,hard"], "difficulty=hard sets b"),
        # The simulator's spawn spread, which a game (spawning its cars itself) ignored.
        (
            ["train", "backend=roblox", "backend.episode.grid_start_prob=0.5"],
            "roblox has no backend.episode.grid_start_prob; it is a key of backend=pygame only",
        ),
        (["train", "algo=sac", "algo.model.n_epochs=3"], "n_epochs; it is a key of algo=ppo and"),
        # A + of a key that is there already (Hydra: "Could not append to config. An item
        # is already at 'seed'", its two ways out and its HYDRA_FULL_ERROR hint, exit 1).
        (["train", "+seed=3"], "train: +seed=3: seed is a key of racing-rl train already; set "),
        (["train", "+algo.model.gamma=0.9"], "; set it without the +: algo.model.gamma=0.9"),
        (["train", "+backend.episode.laps=2"], "backend.episode.laps is a key of racing-rl t"),
        (["train", "experiment=race", "+scripted_opponents=3"], "set it without the +: scr"),
        (["train", "+wrappers.frame_stack=3"], "wrappers.frame_stack is a key of racing-rl "),
        (["train", "-m", "+validation.every=1,2"], "without the +: validation.every=1,2"),
        # ... in each leg of a swept group (checked against the default algo=ppo, which has
        # no tau: Hydra refused the + in the first job, exit 1) ...
        (["train", "-m", "algo=sac,td3", "+algo.model.tau=0.01"], "set it without the +: al"),
        # ... or in some legs only: without the +, the others refuse it; ++ sets it either
        # way (was told to drop the +, or Hydra refused the sac job) ...
        (
            ["train", "-m", "algo=ppo,sac", "+algo.model.n_steps=64"],
            "n_steps is a key of racing-rl train already in the sweep's leg algo=ppo but not in "
            "its leg algo=sac; ++ sets it either way: ++algo.model.n_steps=64",
        ),
        # ... where every leg's algorithm takes it (SAC takes no n_epochs: the ++ it was
        # told to use failed the sac job after the ppo job had trained).
        (
            ["train", "-m", "algo=ppo,sac", "+algo.model.n_epochs=3"],
            "+algo.model.n_epochs=3: SAC, the algorithm of the sweep's leg algo=sac, takes no ",
        ),
        (["train", "-m", "algo=sac,ppo", "+algo.model.tau=1"], "TeacherPPO, the algorithm of t"),
        (["eval", "run_dir=.", "+checkpoint=final"], "checkpoint is a key of racing-rl eval al"),
        (["export", "+format=onnx"], "export: +format=onnx: format is a key of racing-rl export"),
        (["emulate", "+sim.sensors.n_rays=3"], "sim.sensors.n_rays is a key of racing-rl emu"),
        (["play", "+seed=3"], "play: +seed=3: seed is a key of racing-rl play already; set i"),
        (["replay", "+speed=2"], "replay: +speed=2: speed is a key of racing-rl replay already"),
        # Hydra: "Multiple values for experiment. To override a value use 'override ...'".
        (["train", "+experiment=race"], "group of racing-rl train already; choose its option wi"),
        (["train", "algo.model.sde_sample_freq=4"], "+algo.model.sde_sample_freq=4 adds it (ch"),
        # A group option conf/ lacks (Hydra: its options and its config search path).
        (["train", "algo=ppo2"], "algo=ppo2: no such option; did you mean ppo? algo is one of"),
        (["train", "algo=PPO"], "algo=PPO: no such option; did you mean ppo? algo is one of"),
        (["train", "-m", "backend=pygame,robloxx"], "backend=robloxx: no such option; did you"),
        # No option (Hydra: a traceback, "Config group override must be a string ...").
        (["train", "experiment=null"], "takes no null option; to choose no experiment, leave"),
        # ... and a group racing-rl needs (it was told "to choose no algo, leave it out").
        (["train", "algo=null"], "null option; algo is one of crossq, ppo, recurrent_ppo, sac, "),
        (["train", "-m", "experiment=race,null"], "a command of its own, without experiment="),
        # A sweep job's dir, unquoted (Hydra: "mismatched input '=' expecting <EOF>").
        (
            ["eval", "run_dir=s/0_seed=0,n_races=2"],
            """quote the path: racing-rl eval "run_dir='s/0_s""",
        ),
        (["eval", "run_dir=[s/0_seed=0,scripted]"], "must be quoted inside the list, e.g. racing"),
        # A path in the home, as zsh or a quoted word leaves it (Hydra: a lexer error).
        (["eval", "run_dir=~/r"], """only quoted; quote the path: racing-rl eval "run_dir='~/r'"""),
        (["train", "init_from=~/my runs"], """quote the path: racing-rl train "init_from='~/m"""),
        (["eval", "out_dir=~/e"], """this value only quoted; quote it: racing-rl eval "out_dir"""),
        # ... its key checked first (the lexer's error came before it).
        (["train", "run_dir=~/r"], "'run_dir' is not a key of racing-rl train: did you mean h"),
        # ... and a Hydra directory, which Hydra does not expand (it made ./~/r).
        (["train", "hydra.run.dir='~/r'"], "a directory named ~ here, not in your home: write"),
        (["train", "hydra.run.dir=~/r"], "write the path out, hydra.run.dir=$HOME/r (the shell"),
        (
            ["eval", "-m", "run_dir=s/0_seed=0,n_races=2,s/1_seed=1,n_races=2"],
            """a sweep over several, each of them: -m "run_dir='<run a>','<run b>'\"""",
        ),
        # The argparse habit (Hydra: its own flags' usage).
        (["export", "--run_dir", "x"], "--run_dir: options are KEY=VALUE overrides, without"),
        (["train", "--total-timesteps=5"], "dashes: write total_timesteps=5 (racing-rl train"),
        # ... and a misspelt Hydra flag (it was told to write multrun=<value>).
        (["train", "--multrun", "seed=0,1"], "--multrun: no such option; did you mean --multirun?"),
        (["eval", "--config-dri", "conf"], "did you mean --config-dir? (racing-rl eval --hydra-"),
        # An environment variable that is not set: Hydra's traceback (78 lines for eval's
        # seeds, export's out), once the run's directory was made.
        (["eval", "run_dir=.", "seeds=${oc.env:RACING_RL_NOT_SET}"], "'RACING_RL_NOT_SET' not"),
        (["export", "run_dir=.", "out=${oc.env:RACING_RL_NOT_SET}"], "set it, or give the value"),
        (["train", "-m", "seed=0,${oc.env:RACING_RL_NOT_SET}"], "seed=${oc.env:RACING_RL_NOT_SET}"),
        (["train", "seed=${oc.env:RACING_RL_NOT_SET}"], 'not found"; set it, or give the value'),
        # ... and one that is set, to a value of the wrong type: Hydra's 55 lines.
        (["train", "seed=${oc.env:PATH}"], "converted to Integer; seed takes a whole number"),
        # A group of settings given one value: which keys to set instead.
        (["train", "checkpoint=abc"], "a mapping: set its keys, such as checkpoint.every or"),
    ],
)
def test_a_first_mistake_gets_one_line_exit_2_and_leaves_nothing(args, says, tmp_path):
    result = timed(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [result.stderr.strip()]  # one line
    assert says in result.stderr and "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []  # no nope/, no nope/eval/eval.log, no outputs/


def test_a_sweep_over_unquoted_job_dirs_is_told_to_quote_each_of_them(tmp_path):
    """``eval -m run_dir=<job a>,<job b>`` (two sweep jobs' dirs, unquoted) was told to
    quote the whole value as one path, a sweep of one job on a directory that is not."""
    for job in ("s/0_seed=0,n_races=2", "s/1_seed=1,n_races=2"):
        (tmp_path / job / ".hydra").mkdir(parents=True)
    result = timed("eval", "-m", "run_dir=s/0_seed=0,n_races=2,s/1_seed=1,n_races=2", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().endswith(
        "with -m, quote each path: racing-rl eval -m "
        """"run_dir='s/0_seed=0,n_races=2','s/1_seed=1,n_races=2'\""""
    )
    # One job's dir in a sweep over other keys: that path, quoted.
    result = timed("eval", "-m", "run_dir=s/0_seed=0,n_races=2", "laps=1,2", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().endswith(""""run_dir='s/0_seed=0,n_races=2'\"""")


def test_each_run_of_a_swept_run_dir_is_checked_quoted_or_not(tmp_path, monkeypatch):
    # A sweep job's dir has = and , in its name, so it is quoted: Hydra's QuotedString
    # was checked as the path "QuotedString(text='...')".
    for name in ("r1", "0_seed=0,total_timesteps=2000"):
        (tmp_path / name / ".hydra").mkdir(parents=True)
        (tmp_path / name / ".hydra" / "config.yaml").write_text("")
    monkeypatch.chdir(tmp_path)
    check_arguments("eval", ["-m", "run_dir='r1','0_seed=0,total_timesteps=2000'"])
    check_arguments("eval", ["-m", "run_dir=r1,'0_seed=0,total_timesteps=2000'"])
    check_arguments("eval", ["-m", "run_dir=['r1',scripted],[r1]"])
    with pytest.raises(UsageError, match="run_dir=r2: no such file or directory"):
        check_arguments("eval", ["-m", "run_dir='r1','r2'"])


def test_an_export_sweep_whose_jobs_would_write_one_file_is_refused(tmp_path, monkeypatch):
    # Both jobs wrote exports/seed=0_policy_best.luau, the second replacing the first.
    for name in ("a/seed=0", "b/seed=0", "b/seed=1"):
        (tmp_path / name / ".hydra").mkdir(parents=True)
        (tmp_path / name / ".hydra" / "config.yaml").write_text("")
    monkeypatch.chdir(tmp_path)
    same = r"two jobs of this sweep would write (exports/)?{} \(run_dir=a/seed=0; run_dir={}\)"
    with pytest.raises(UsageError, match=same.format("seed=0_policy_best.luau", "b/seed=0")):
        check_arguments("export", ["-m", "run_dir='a/seed=0','b/seed=0'", "out=exports/"])
    with pytest.raises(UsageError, match=same.format("driver.luau", "b/seed=1")):
        check_arguments("export", ["-m", "run_dir='a/seed=0','b/seed=1'", "out=driver.luau"])
    # Files of their own: each run's own export/, other names, other checkpoints or formats.
    check_arguments("export", ["-m", "run_dir='a/seed=0','b/seed=0'"])
    check_arguments("export", ["-m", "run_dir='a/seed=0','b/seed=1'", "out=exports/"])
    check_arguments("export", ["-m", "run_dir='a/seed=0'", "checkpoint=best,final", "out=x/"])
    check_arguments("export", ["-m", "run_dir='a/seed=0'", "format=luau,onnx", "out=x/"])


OTHERS = sorted(set(cli.COMMANDS) - arguments.HYDRA_READS_CONFIG - {"report"})


@pytest.mark.parametrize("name", OTHERS)
def test_the_other_commands_resolve_their_hydra_settings_alone(name, tmp_path):
    # HYDRA_READS_CONFIG names every command whose --cfg hydra --resolve would fail.
    result = timed(name, "--cfg=hydra", "--resolve", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("hydra:\n")


def test_a_path_inside_a_run_names_the_run(tmp_path):
    # It said only "not a run directory" to run_dir=<run>/best.
    (tmp_path / ".hydra").mkdir()
    (tmp_path / ".hydra" / "config.yaml").write_text("{}\n")
    (tmp_path / "best").mkdir()
    with pytest.raises(UsageError, match=f"lies in the run {tmp_path}: pass run_dir="):
        check_arguments("export", [f"run_dir={tmp_path / 'best'}"])
    with pytest.raises(UsageError, match=f"resume={tmp_path}$"):
        check_arguments("train", [f"resume={tmp_path / 'best'}"])
    with pytest.raises(UsageError, match=f"run_dir={tmp_path} checkpoint=best$"):
        check_arguments("eval", [f"run_dir={tmp_path / 'best'}"])
    (tmp_path / "tb").mkdir()  # no checkpoint: only the run
    with pytest.raises(UsageError, match=f"pass run_dir={tmp_path}$"):
        check_arguments("eval", [f"run_dir={tmp_path / 'tb'}"])
    # A file that is no checkpoint: checkpoint=<it> failed on loading it.
    (tmp_path / "train.log").write_text("")
    with pytest.raises(UsageError, match=f"pass run_dir={tmp_path}$"):
        check_arguments("eval", [f"run_dir={tmp_path / 'train.log'}"])
    (tmp_path / "export").mkdir()
    (tmp_path / "export" / "policy_final.luau").write_text("")
    with pytest.raises(UsageError, match=r"run_dir=\S+ \(policy_final.luau is an exported"):
        check_arguments("export", [f"run_dir={tmp_path / 'export' / 'policy_final.luau'}"])


def test_a_sweep_s_directory_names_a_job_to_pass(tmp_path, monkeypatch):
    # It said "not a run directory ... a directory racing-rl train made", of a directory
    # racing-rl train -m made.
    for name in ("0_seed=0,n_races=2", "1_seed=1,n_races=2"):
        (tmp_path / "sweep" / name / ".hydra").mkdir(parents=True)
        (tmp_path / "sweep" / name / ".hydra" / "config.yaml").write_text("")
    monkeypatch.chdir(tmp_path)
    for command in ("eval", "export"):
        with pytest.raises(UsageError) as refused:
            check_arguments(command, ["run_dir=sweep"])
        assert str(refused.value) == (
            "run_dir=sweep is a sweep's directory, not a run: each of its 2 jobs is one; pass "
            """one, e.g. "run_dir='sweep/0_seed=0,n_races=2'" (racing-rl report sweep compares """
            "them)"
        )
    # The job it names is taken as it is written.
    check_arguments("eval", ["run_dir='sweep/0_seed=0,n_races=2'"])
    with pytest.raises(UsageError, match=r"hydra\.sweep\.dir=sweep continues them all$"):
        check_arguments("train", ["resume=sweep"])


def test_keys_groups_appends_and_nested_keys_pass_the_key_check(tiny_runs, tmp_path):
    # Appends: checked once composed (an argument of algo.model that the algorithm does
    # not take is refused in a sweep: test_a_sweep_that_adds_an_argument_...).
    args = ["-m", "algo=sac", "+algo.model.policy_kwargs.x=1", "hydra/launcher=joblib", "seed=1"]
    check_arguments("train", args)
    # ... but for a top-level key, which no schema has room for (refused: test_a_first_mistake_...).
    # (sac's file has no frame_stack; ppo's has, and Hydra refuses a + of it: below).
    check_arguments("train", ["algo=sac", "++algo.net_width=64", "+algo.frame_stack=2"])
    # ... nor has td3's: a sweep's legs are composed, not the default algo=ppo.
    check_arguments("train", ["-m", "algo=sac,td3", "+algo.frame_stack=2"])
    # A + that Hydra takes: a key that is not there, is null, or is given a list or a
    # mapping (merged into it); ++ sets a key that is there.
    check_arguments("train", ["+algo.model.sde_sample_freq=4", "++seed=3", "++algo.frame_stack=3"])
    check_arguments("train", ["+algo.model.policy_kwargs.net_arch=[64]", "+tracks.train_mix=[]"])
    check_arguments("train", ["+algo.model.learning_rate={_target_:builtins.float,_args_:[3e-4]}"])
    check_arguments("emulate", ["+token=secret", "+faults.inject={3:nan}"])
    # A group's option is a name, though the schema types the group's node.
    check_arguments("train", ["wrappers=none"])
    check_arguments("train", ["-m", "wrappers=default,none"])
    # A sweep without -m, and a launcher or sweeper choice that changes nothing.
    check_arguments("train", ["hydra.mode=MULTIRUN", "hydra/launcher=joblib", "seed=0,1"])
    check_arguments("train", ["hydra/launcher=basic", "~hydra/sweeper"])
    check_arguments("emulate", ["sim.sensors.n_rays=16", "~token", "faults.inject={1:nan}"])
    check_arguments("train", ["validation.video.every=5", "wrappers.frame_stack=1"])
    check_arguments("train", ["difficulty=hard", "experiment=race", "hydra.job.name=mine"])
    # The keys an experiment sets: experiment=race's algo.teacher_coef, ppo's.
    check_arguments("train", ["experiment=race", "algo.teacher_coef=0.5"])
    # Keys below a dict or a list field (a list's indexes): Hydra checks them.
    check_arguments("train", ["wrappers.normalize.clip_obs=5.0", "tracks.train.0=5"])
    check_arguments("play", ["size.0=640"])
    check_arguments("train", ["algo.model.policy_kwargs.net_arch.0=64"])
    check_arguments("train", ["algo=td3", "algo.model.action_noise.sigma.0=0.2"])
    check_arguments("train", ["++algo.model.policy_kwargs.log_std_init=-1"])  # benchmarks.md
    # Options from the user's own config dir (Hydra's searchpath) are Hydra's to find.
    check_arguments("train", ["hydra.searchpath=[file:///x]", "experiment=mine"])
    check_arguments("train", ["+hydra.searchpath=[pkg://x]", "algo=ppo", "algo.mine=1"])
    for flag in (["-cd", "my_conf"], ["--config-dir=my_conf"]):  # the same, behind conf/
        check_arguments("train", [*flag, "experiment=mine", "algo=mine", "algo.mine=1"])
        with pytest.raises(UsageError, match="could not be converted to Integer"):
            check_arguments("train", [*flag, "experiment=mine", "seed=0,abc"])  # a sweep dir
    # The chosen backend's own keys (every leg of a sweep over backends must have them).
    check_arguments("train", ["backend=roblox", "backend.server.port=9000"])
    check_arguments("train", ["backend.sensors.n_rays=16", "backend.track.width=12"])
    with pytest.raises(UsageError, match=r"pygame has no backend\.server \(a leg of the sweep"):
        check_arguments("train", ["-m", "backend=pygame,roblox", "backend.server.port=9000"])
    # What a resume may change, and Hydra's own keys.
    game = game_run_copy(tiny_runs[0], tmp_path / "game")
    resume = [f"resume={game}", f"hydra.run.dir={game}", "hydra/launcher=basic"]
    check_arguments("train", [*resume, "total_timesteps=5000", "validation.every=0"])
    # eval's backend is the run's own (null in eval.yaml): a + changes a setting of it.
    check_arguments("eval", [f"run_dir={game}", "+backend.rules.car_collisions=true"])


def test_a_resume_with_a_key_it_may_not_change_is_refused_before_hydra_starts(tiny_runs, tmp_path):
    """It was refused once the job had started: a log line (also appended to the run's
    train.log) and exit 1, where every other refusal is one line and exit 2."""
    run = game_run_copy(tiny_runs[0], tmp_path / "run")
    (run / "summary.json").unlink()  # stopped after its final checkpoint: resume ends it
    (run / ".hydra" / "hydra.yaml").unlink()  # its choices: the simulator run's, backend=pygame
    files = sorted(run.rglob("*"))
    for override, why in (
        ("seed=3", "a resumed run keeps its own config"),
        ("n_races=3", "it would change the model's shape"),
        ("algo.model.gamma=0.9", "the algorithm and its settings are the run's own"),
    ):
        with pytest.raises(UsageError, match=f"Cannot resume {run} with '{override}': {why}"):
            check_arguments("train", [f"resume={run}", override])
    assert sorted(run.rglob("*")) == files
    # How the run reaches its game may change; Hydra composes the run's own backend.
    check_arguments("train", [f"resume={run}", "backend.server.port=9000"])
    check_arguments("train", [f"resume={run}", "backend=roblox"])
    assert arguments.with_resumed_backend([f"resume={run}"])[-1] == "backend=roblox"
    # ... with a flag's value before it too: "job" failed to parse as an override, and
    # Hydra composed the simulator, which has no backend.server (+backend.server.port=).
    for flag in (["--cfg", "job"], ["-cd", str(tmp_path)], ["-p", "backend"]):
        resumed = arguments.with_resumed_backend([*flag, f"resume={run}"])
        assert resumed[-1] == "backend=roblox", flag
    with pytest.raises(UsageError, match="'backend=pygame': it would change the model"):
        check_arguments("train", [f"resume={run}", "backend=pygame"])
    with pytest.raises(UsageError, match=r"backend=roblox has no backend\.car"):
        check_arguments("train", [f"resume={run}", "backend.car.max_speed=3"])


def test_a_key_one_leg_of_a_swept_experiment_lacks_is_refused(tmp_path, monkeypatch):
    """The keys of a sweep's experiments were merged: a key that only experiment=race adds
    passed, and Hydra refused the other leg ("Key 'teacher_coef' is not in struct")."""
    import shutil

    conf = shutil.copytree(cli.config_dir(), tmp_path / "conf")
    (conf / "experiment" / "solo.yaml").write_text("# @package _global_\nseed: 1\n")
    (conf / "experiment" / "deep.yaml").write_text("# @package _global_\nalgo: {frame_stack: 3}\n")
    monkeypatch.setattr(arguments, "config_dir", lambda: conf)
    sweep = ["-m", "experiment=deep,solo", "algo=sac"]
    with pytest.raises(
        UsageError,
        match=r"no algo.frame_stack in the sweep's leg experi"
        r"ment=solo; \+\+algo.frame_stack=2 adds it",
    ):
        check_arguments("train", [*sweep, "algo.frame_stack=2"])
    check_arguments("train", [*sweep, "++algo.frame_stack=2"])  # Hydra's, per leg
    check_arguments("train", ["-m", "experiment=deep,solo", "algo=ppo", "algo.frame_stack=2"])


def test_algo_frame_stack_that_no_wrapper_reads_is_refused(tmp_path, monkeypatch):
    """Only wrappers=default reads algo.frame_stack: algo.frame_stack=4 wrappers=none was
    taken, and the run trained on unstacked observations."""
    for args, says in (
        (["algo.frame_stack=4", "wrappers=none"], "wrappers=none stacks wrappers.frame_stack=1"),
        (["algo=sac", "+algo.frame_stack=4", "wrappers=none"], "wrappers=none stacks"),
        (["algo.frame_stack=4", "wrappers.frame_stack=3"], "wrappers.frame_stack=3 decides"),
        (["-m", "algo.frame_stack=2,4", "wrappers=none"], "wrappers=none stacks"),
        (
            ["-m", "algo.frame_stack=4", "wrappers=default,none"],
            "wrappers=none stacks .*leg wrappers=none\\)",
        ),
    ):
        with pytest.raises(UsageError, match=f"{re.escape(args[-2])}: {says}.* would change"):
            check_arguments("train", args)
    check_arguments("train", ["algo.frame_stack=4", "wrappers=default"])
    check_arguments("train", ["algo=sac", "++algo.frame_stack=4", "experiment=race"])
    check_arguments("train", ["wrappers=none", "wrappers.frame_stack=4"])
    # An experiment that sets the frames stacked decides them too.
    conf = shutil.copytree(cli.config_dir(), tmp_path / "conf")
    (conf / "experiment" / "flat.yaml").write_text(
        "# @package _global_\nwrappers: {frame_stack: 1}\n"
    )
    monkeypatch.setattr(arguments, "config_dir", lambda: conf)
    with pytest.raises(UsageError, match=r"experiment=flat stacks wrappers\.frame_stack=1"):
        check_arguments("train", ["experiment=flat", "algo.frame_stack=4"])


@pytest.mark.parametrize(
    ("name", "args", "says"),
    [
        (
            "train",
            ["validation.every=0", "validation.video.every=2"],
            r"validation\.every=0, no validation runs",
        ),
        ("train", ["validation.every=0", "validation.video.size=128"], "no validation runs"),
        (
            "train",
            ["-m", "validation.every=0", "validation.video.every=2,3"],
            "no validation runs",
        ),
        (
            "train",
            ["validation.video.max_steps=50"],
            r"validation\.video\.every=0 \(the default\), no video is made",
        ),
        (
            "train",
            ["backend=roblox", "validation.video.every=2"],
            r"backend=roblox, no video is made \(the built-in simulator draws .*a Roblox run "
            r"has none: record the game itself",
        ),
        (
            "train",
            ["-m", "backend=roblox", "validation.video.size=64", "validation.video.every=1"],
            "backend=roblox, no video is made",
        ),
        ("train", ["checkpoint.every=0", "checkpoint.keep=2"], "no periodic checkpoint is saved"),
        (
            "train",
            ["trust_pickles=true"],
            r"resume=null \(the default\) and init_from=null \(the default\), no run's files",
        ),
        ("eval", ["run_dir={run}", "fps=30"], r"render=null \(the default\), no window"),
        ("eval", ["run_dir={run}", "size=[400,400]"], "no window is drawn"),
    ],
)
def test_a_setting_whose_feature_is_off_is_refused(tmp_path, name, args, says):
    """A setting that another one turns off was taken and then never read: validation.every=0
    validation.video.every=2 made no video (and backend=roblox validation.video.every=2: the
    simulator draws the video), checkpoint.every=0 checkpoint.keep=2 kept every
    checkpoint there was (none), trust_pickles=true without resume= or init_from= loaded
    nothing, and eval's fps= and size= without render=human drew no window."""
    (tmp_path / ".hydra").mkdir()
    (tmp_path / ".hydra" / "config.yaml").write_text("{}\n")
    args = [arg.format(run=tmp_path) for arg in args]
    with pytest.raises(UsageError, match=f"^{re.escape(args[-1])}: with .*{says}.*would change"):
        check_arguments(name, args)


def test_a_setting_whose_feature_is_on_in_some_job_or_by_default_is_taken(tmp_path, monkeypatch):
    """The setting given where its feature may run, or at its default value, is taken: a
    sweep whose other legs validate, a sweep's job that resumes (trust_pickles)."""
    (tmp_path / ".hydra").mkdir()
    (tmp_path / ".hydra" / "config.yaml").write_text("{}\n")
    for name, args in (
        ("train", ["validation.video.every=2"]),
        ("train", ["validation.video.every=1", "validation.video.size=128"]),
        ("train", ["validation.every=0", "validation.video.every=0"]),
        ("train", ["validation.every=0", "validation.max_steps=900"]),  # eval's races read it
        ("train", ["-m", "validation.every=0,1000", "validation.video.every=2"]),
        ("train", ["-m", "validation.every=range(0,2000,1000)", "validation.video.every=2"]),
        ("train", ["-m", "backend=pygame,roblox", "validation.video.every=2"]),
        ("train", ["backend=roblox", "validation.video.every=0"]),  # the default
        ("train", ["checkpoint.keep=2"]),
        ("train", ["checkpoint.every=0", "checkpoint.keep=5"]),  # the default
        ("train", ["trust_pickles=false"]),
        ("train", [f"init_from={tmp_path}", "trust_pickles=true"]),
        ("train", ["-m", "seed=0,1", "trust_pickles=true"]),  # a continued sweep resumes
        ("eval", [f"run_dir={tmp_path}", "render=human", "fps=30", "size=[400,400]"]),
        ("eval", [f"run_dir={tmp_path}", "size=[800,800]"]),
    ):
        check_arguments(name, args)
    # An experiment that turns the feature on or off decides it too.
    conf = shutil.copytree(cli.config_dir(), tmp_path / "conf")
    for preset, keys in (("filmed", "{video: {every: 1}}"), ("quick", "{every: 0}")):
        (conf / "experiment" / f"{preset}.yaml").write_text(
            f"# @package _global_\nvalidation: {keys}\n"
        )
    monkeypatch.setattr(arguments, "config_dir", lambda: conf)
    check_arguments("train", ["experiment=filmed", "validation.video.size=128"])
    check_arguments("train", ["-m", "experiment=filmed,race", "validation.video.size=128"])
    with pytest.raises(UsageError, match=r"validation\.every=0 \(experiment=quick\), no val"):
        check_arguments("train", ["experiment=quick", "validation.video.every=2"])


def test_a_setting_that_an_experiment_s_group_choice_turns_off_is_refused(tmp_path):
    """An experiment (here a --config-dir's) that chooses backend: roblox, with
    validation.video.every=1 on the command line, was taken: the check before Hydra reads
    a group's choice from the command line alone, and the run made no video. The composed
    config's backend is read before the run directory is made."""
    (tmp_path / "conf" / "experiment").mkdir(parents=True)
    (tmp_path / "conf" / "experiment" / "game.yaml").write_text(
        "# @package _global_\ndefaults:\n  - override /backend: roblox\n"
        "backend:\n  connect_timeout: 1\n  server:\n    port: 0\n"
    )
    run = tmp_path / "run"
    args = ["--config-dir", str(tmp_path / "conf"), "experiment=game", f"hydra.run.dir={run}"]
    result = timed("train", *args, "validation.video.every=1", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith(
        "racing-rl train: validation.video.every=1: with backend=roblox (as composed with "
        "experiment=game), no video is made"
    )
    assert not run.exists()


def test_teacher_coef_added_to_an_algorithm_without_a_teacher_is_refused():
    """Only ppo.yaml's model reads algo.teacher_coef; algo=sac +algo.teacher_coef=0.5 was
    taken (and trained unchanged), and algo=sac algo.teacher_coef=0.5 was told to add it so."""
    for args, says in (
        (["algo=sac", "+algo.teacher_coef=0.5"], "nothing reads algo.teacher_coef"),
        (["algo=td3", "++algo.teacher_coef=0"], "nothing reads algo.teacher_coef"),
        (["algo=sac", "algo.teacher_coef=0.5"], "teacher_coef; it is a key of algo=ppo only"),
    ):
        with pytest.raises(UsageError, match=says):
            check_arguments("train", args)
    check_arguments("train", ["algo.teacher_coef=0"])  # ppo's own key


def test_an_experiment_key_the_algorithm_never_reads_is_refused():
    """experiment=race sets algo.net_width and algo.teacher_coef for any algorithm (Hydra
    needs the keys): algo=td3 experiment=race algo.net_width=64 was taken, and TD3 trained
    its own [128, 128] network."""
    for args, says in (
        (["algo=td3", "algo.net_width=64"], "nothing reads algo.net_width with algo=td3, so"),
        (["algo=recurrent_ppo", "algo.net_width=32"], "sets it for the files that read it: a"),
        (["algo=sac", "algo.teacher_coef=0.5"], r"the files that read it: algo=ppo\);"),
    ):
        with pytest.raises(UsageError, match=says):
            check_arguments("train", [*args, "experiment=race"])
    check_arguments("train", ["algo=sac", "experiment=race", "algo.net_width=64"])  # sac's own


def test_hydra_full_error_shows_the_stack(tmp_path):
    result = timed("eval", "run_dir=nope", cwd=tmp_path, env={"HYDRA_FULL_ERROR": "1"})
    assert result.returncode != 0
    assert "Traceback" in result.stderr and "UsageError" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_sweeper_or_launcher_without_its_plugin_says_which_extra(monkeypatch):
    installed = arguments.importlib.util.find_spec
    monkeypatch.setattr(
        arguments.importlib.util,
        "find_spec",
        lambda name: None if name.startswith("hydra_plugins.hydra_") else installed(name),
    )
    for args, extra in (
        (["-m", "hydra/sweeper=ppo_search"], "sweeps"),
        (["-m", "hydra/launcher=parallel", "seed=0,1"], "sweeps"),
        (["-m", "hydra/launcher=slurm", "seed=0,1"], "slurm"),
        (["-m", "hydra/launcher=ray_cluster", "seed=0,1"], "ray"),
    ):
        with pytest.raises(UsageError, match=rf"pip install 'racing-rl\[{extra}\]'"):
            check_arguments("train", args)


def test_the_sweeper_plugin_hides_itself_without_hydra_optuna_sweeper():
    # As on a base install: hydra-optuna-sweeper cannot be found.
    code = (
        "import sys, warnings\n"
        "sys.modules['hydra_plugins.hydra_optuna_sweeper'] = None\n"
        "warnings.simplefilter('error')\n"
        "from hydra.core.plugins import Plugins\n"
        "from hydra.plugins.sweeper import Sweeper\n"
        "names = [p.__name__ for p in Plugins.instance().discover(Sweeper)]\n"
        "print(names)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "ResumableOptunaSweeper" not in result.stdout and result.stderr == ""


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("racing-rl ", {"train", "eval", "replay", "play", "emulate", "report"}),
        ("racing-rl re", {"replay", "report"}),
        ("racing-rl train algo=", {f"algo={a}" for a in ("ppo", "sac", "td3", "tqc", "crossq")}),
        ("racing-rl eval checkp", {"checkpoint="}),
    ],
)
def test_the_completion_query_answers_through_the_dispatcher(line, expected, tmp_path):
    result = timed("-sc", "query=bash", cwd=tmp_path, env={"COMP_LINE": line})
    assert result.returncode == 0, result.stderr
    assert expected <= set(result.stdout.split())


def test_completion_offers_only_what_the_command_takes(monkeypatch):
    # Hydra completes over the shared conf/: eval was offered algo=, experiment=, logger=,
    # wrappers= (each refused as no key of eval) and every command the schema group.
    monkeypatch.delenv("COMP_LINE", raising=False)
    offered = set(cli.complete("racing-rl eval ").split())
    assert {"run_dir=", "checkpoint=", "difficulty=", "seeds."} <= offered
    assert not offered & {"algo=", "experiment=", "logger=", "wrappers=", "schema"}
    offered = set(cli.complete("racing-rl train ").split())
    assert {"algo=", "experiment=", "logger=", "wrappers=", "validation."} <= offered
    assert "schema" not in offered
    # The query's line was left in the environment of the process (of every racing-rl
    # that an xdist worker started after this test).
    assert "COMP_LINE" not in os.environ


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_bash_completes_commands_and_algorithms_with_the_installed_script(tmp_path):
    # `racing-rl` on PATH, as pip installs it.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "racing-rl"
    script.write_text(f'#!/bin/sh\nexec {sys.executable} -m racing_rl.cli "$@"\n')
    script.chmod(0o755)
    complete = (
        'eval "$(racing-rl -sc install=bash)"\n'
        "for COMP_LINE in 'racing-rl ' 'racing-rl train algo='; do\n"
        "  COMP_WORDS=($COMP_LINE); COMP_CWORD=${#COMP_WORDS[@]}\n"
        '  [ "${COMP_LINE: -1}" = " " ] || COMP_CWORD=$((COMP_CWORD - 1))\n'
        "  COMP_POINT=${#COMP_LINE}; COMPREPLY=()\n"
        "  hydra_bash_completion\n"
        '  echo "${COMPREPLY[*]}"\n'
        "done\n"
    )
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(
        ["bash", "-c", complete], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    commands, algorithms = result.stdout.splitlines()
    assert set(commands.split()) == set(cli.COMMANDS)
    assert {"algo=ppo", "algo=crossq", "algo=tqc"} <= set(algorithms.split())


def test_help_into_a_closed_pipe_ends_quietly():
    # racing-rl train --help | head -1: the reader goes away before the help is written.
    command = [sys.executable, "-m", "racing_rl.cli", "train", "--help"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        proc.stdout.close()
        stderr = proc.stderr.read().decode()
    assert proc.returncode == 141, stderr
    assert stderr == ""


PLUGIN = """
from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin


class MyAlgos(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        search_path.append("my-algos", "file://{conf}")
"""


def test_an_option_that_a_search_path_plugin_adds_is_taken(tmp_path):
    # Only conf/<group>/ was read: algo=<a plugin's option> was refused ("no such option"),
    # though Hydra composes it and it trains.
    plugin = tmp_path / "hydra_plugins" / "my_algos"
    plugin.mkdir(parents=True)
    (plugin / "__init__.py").write_text(PLUGIN.format(conf=tmp_path / "conf"))
    (tmp_path / "conf" / "algo").mkdir(parents=True)
    shutil.copy(cli.config_dir() / "algo" / "ppo.yaml", tmp_path / "conf" / "algo" / "myppo.yaml")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}

    def job(*args: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "racing_rl.cli", "train", *args]
        return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)

    result = job("algo=myppo", "--cfg", "job", "-p", "algo.model.n_steps")  # Hydra's view
    assert result.returncode == 0 and result.stdout.strip() == "256", result.stderr
    check = "from racing_rl.arguments import check_arguments as c; c('train', ['algo=myppo'])"
    result = subprocess.run(
        [sys.executable, "-c", check], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "algo=myppo3: no such option; did you mean myppo?" in job("algo=myppo3").stderr


def test_what_hydra_resolves_or_prints_is_not_refused(tmp_path, monkeypatch):
    # A path given as an interpolation was checked as the literal "${oc.env:RUN}"; --cfg
    # hydra --resolve -p hydra.job was refused, though only Hydra's run directory (and
    # output_subdir) read the command's config.
    (tmp_path / ".hydra").mkdir()
    (tmp_path / ".hydra" / "config.yaml").write_text("")
    monkeypatch.setenv("RUN", str(tmp_path))
    check_arguments("eval", ["run_dir=${oc.env:RUN}"])
    check_arguments("eval", ["run_dir=[${oc.env:RUN},scripted]"])
    check_arguments("train", ["seed=${oc.env:RUN_SEED,3}"])  # resolved as Hydra will
    check_arguments("train", ["total_timesteps=${algo.total_timesteps}"])  # Hydra's to resolve
    monkeypatch.delenv("RUN")  # Hydra: a traceback, resolving its run directory
    with pytest.raises(UsageError, match=r"Environment variable 'RUN' not found\"; set it, or"):
        check_arguments("export", ["run_dir=${oc.env:RUN}"])
    check_arguments("train", ["--cfg", "hydra", "--resolve", "-p", "hydra.job"])
    check_arguments("train", ["--cfg", "hydra", "--resolve", "-p", "hydra.runtime.choices"])
    check_arguments("eval", ["--cfg=hydra", "--resolve", "--package=hydra.job_logging"])
    # A launcher's or sweeper's settings, printed: "add -m", and -m refused with --cfg.
    check_arguments("train", ["--cfg", "hydra", "hydra/launcher=joblib"])
    check_arguments("train", ["--cfg", "hydra", "hydra/sweeper=ppo_search"])
    for part in ([], ["-p", "hydra.run"], ["-p", "hydra.run.dir"], ["-p", "hydra"]):
        with pytest.raises(UsageError, match="cannot resolve Hydra's settings alone"):
            check_arguments("train", ["--cfg", "hydra", "--resolve", *part])


def test_a_key_that_a_leg_of_a_swept_algo_lacks_is_refused():
    # Hydra stopped the whole sweep when it composed the leg (Key 'n_steps' is not in
    # struct), and the other legs never ran.
    with pytest.raises(
        UsageError,
        match=r"^algo\.model\.n_steps=64: algo=sac has no algo\.model\.n_steps \(a leg of the "
        r"sweep algo=sac,ppo\); it is a key of algo=ppo and recurrent_ppo only\.",
    ):
        check_arguments("train", ["-m", "algo.model.n_steps=64", "algo=sac,ppo"])
    check_arguments("train", ["-m", "algo=ppo,recurrent_ppo", "algo.model.n_steps=64"])
    check_arguments("train", ["-m", "algo=glob(*ppo)", "algo.model.n_steps=64"])
    # ... a glob's legs too (Hydra stopped the sweep at algo=crossq, after the jobs before).
    with pytest.raises(UsageError, match=r"^algo\.model\.n_steps=64: algo=crossq has no al"):
        check_arguments("train", ["-m", "algo=glob(*)", "algo.model.n_steps=64"])


def test_a_sweep_that_adds_an_argument_one_legs_algorithm_lacks_is_refused(tmp_path):
    """-m algo=ppo,sac ++algo.model.n_epochs=3 trained the ppo job, then the sac job failed
    ("Invalid config: algo.model.n_epochs=3; not an argument of SAC"), exit 1."""
    sweep_dir = tmp_path / "sweep"
    args = ["-m", "algo=ppo,sac", "++algo.model.n_epochs=3", *TINY]
    result = racing_rl("train", *args, f"hydra.sweep.dir={sweep_dir}", cwd=tmp_path)
    assert result.returncode == 2 and not sweep_dir.exists() and result.stdout == ""
    assert result.stderr == (
        "racing-rl train: ++algo.model.n_epochs=3: SAC, the algorithm of the sweep's leg "
        "algo=sac, takes no argument n_epochs, so that job would fail after the jobs before it "
        "trained; run the legs as sweeps of their own, setting algo.model.n_epochs only in "
        "algo=ppo\n"
    )
    # An argument no leg's algorithm takes fails every job; a glob's legs are checked too.
    with pytest.raises(UsageError, match=r"TeacherPPO takes no argument n_epoch, so every job"):
        check_arguments("train", ["-m", "seed=0,1", "++algo.model.n_epoch=3"])
    with pytest.raises(UsageError, match=r"CrossQ, the algorithm of the sweep's leg algo=cros"):
        check_arguments("train", ["-m", "algo=glob(*)", "++algo.model.n_epochs=3"])
    # Taken: an argument of every leg's algorithm (SAC takes n_steps, which sac.yaml leaves
    # out), a leg that sets it as a key of its own, and a single run (checked as it starts).
    check_arguments("train", ["-m", "algo=ppo,sac", "++algo.model.n_steps=64"])
    check_arguments("train", ["-m", "algo=ppo,sac", "++algo.model.gamma=0.9"])
    check_arguments("train", ["-m", "algo=glob(*ppo)", "++algo.model.n_epochs=3"])
    check_arguments("train", ["-m", "algo=ppo,sac", "++algo.model.policy_kwargs.net_arch=[8]"])
    check_arguments("train", ["algo=sac", "++algo.model.n_epochs=3"])


def test_a_plus_is_checked_in_each_leg_of_a_glob_and_of_a_config_dir(tmp_path, monkeypatch):
    """A glob's legs (-m algo='glob(*)') and the options of a --config-dir were not composed:
    Hydra refused the + in the first job, after the sweep's directory was made."""
    with pytest.raises(UsageError, match=r"^\+seed=1: seed is a key of racing-rl train alr"):
        check_arguments("train", ["-m", "algo=glob(*)", "+seed=1"])
    check_arguments("train", ["-m", "algo=glob(nothing*)", "+seed=1"])  # no job: Hydra's
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my_conf" / "algo").mkdir(parents=True)
    shutil.copy(cli.config_dir() / "algo" / "sac.yaml", tmp_path / "my_conf" / "algo" / "mine.yaml")
    for flag in (["-cd", "my_conf"], [f"--config-dir={tmp_path / 'my_conf'}"]):
        with pytest.raises(UsageError, match=r"^\+algo\.model\.tau=0\.1: algo\.model\.tau is a k"):
            check_arguments("train", [*flag, "-m", "algo=mine,sac", "+algo.model.tau=0.1"])
        with pytest.raises(UsageError, match=r"SAC, the algorithm of the sweep's leg algo=mine,"):
            check_arguments("train", [*flag, "-m", "algo=ppo,mine", "++algo.model.n_epochs=3"])
        with pytest.raises(UsageError, match=r"SAC \(the sweep's leg algo=mine\) takes no arg"):
            check_arguments("train", [*flag, "-m", "algo=glob(mi*)", "++algo.model.n_epochs=3"])


@pytest.mark.parametrize(
    ("name", "args", "message"),
    [
        # Each ran, then failed late or wrote what could not be read back.
        ("eval", ["run_dir=.", "hydra.job.chdir=true"], "take paths relative to the directory"),
        ("train", ["hydra.output_subdir=cfg"], "keeps its config in <run dir>/.hydra, where"),
        ("eval", ["run_dir=.", "hydra.run.dir=x"], "writes its results into out_dir, and its log"),
        ("train", ["hydra/job_logging=disabled"], "hydra/job_logging=none leaves logging unset"),
        ("train", ["-m", "hydra/sweeper=optuna"], "add hydra.sweeper.direction=maximize"),
        (
            "train",
            ["-m", "algo=sac", "hydra/sweeper=ppo_search"],
            "searches algo.model.n_steps, which algo=sac does not have: it searches ppo's",
        ),
        ("train", ["--experimental-rerun", "x.pickle"], "trains the run again from its start"),
    ],
)
def test_hydra_settings_a_command_cannot_work_under_are_refused(
    tmp_path, monkeypatch, name, args, message
):
    (tmp_path / ".hydra").mkdir()
    (tmp_path / ".hydra" / "config.yaml").write_text("")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError, match=re.escape(message)):
        check_arguments(name, args)


def test_the_searches_with_their_own_algorithm_and_optuna_told_to_maximise_pass():
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    check_arguments("train", ["-m", "hydra/sweeper=ppo_search"])
    check_arguments("train", ["-m", "algo=sac", "hydra/sweeper=sac_search"])
    check_arguments("train", ["-m", "hydra/sweeper=optuna", "hydra.sweeper.direction=maximize"])
    check_arguments("train", ["hydra/job_logging=none", "hydra.job.chdir=false"])


@pytest.mark.parametrize(
    "args",
    [
        ("train", "algo=foo"),  # a usage error: 2
        ("train", "backend.rules.dt=10", "hydra.run.dir=run"),  # refused config: 1
        ("train", "--cfg", "job", "seed=7"),  # stdout: 0
        ("eval", "run_dir=nowhere"),  # a missing run: 2
    ],
    ids=" ".join,
)
def test_the_tests_forked_commands_answer_as_the_console_script_does(args, tmp_path):
    """``tests/runs.py``'s ``racing_rl`` (forked from a server that has imported torch,
    SB3 and Hydra) gives the status, stdout and stderr of the program itself."""
    forked, started = racing_rl(*args, cwd=tmp_path), timed(*args, cwd=tmp_path)
    assert forked.returncode == started.returncode, (forked.stderr, started.stderr)
    timestamp = re.compile(r"^\[[0-9-]+ [0-9:,]+\]", re.MULTILINE)  # Hydra's log lines
    for out in ("stdout", "stderr"):
        assert timestamp.sub("", getattr(forked, out)) == timestamp.sub("", getattr(started, out))

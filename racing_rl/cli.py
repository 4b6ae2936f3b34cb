"""``racing-rl <command> [hydra overrides]``: dispatch to the command's Hydra app.

The dispatcher answers what needs no training stack at once, without importing torch or
SB3: ``--help`` and ``--version``, a command's ``--help`` (``racing_rl.usage``, from the
command's YAML and its comments), shell completion (Hydra's, through the command's
config), and the first-use mistakes (``racing_rl.arguments``: a required argument left
out, a path that does not exist, a sweeper or launcher whose extra is not installed). Each
gets one line and exit status 2 (``HYDRA_FULL_ERROR=1``: the stack instead). Only then is
the command's module imported and its Hydra app run. Nothing heavy is imported before
that (the signals that reach the command's process outside training:
``racing_rl.interrupts``).
"""

from __future__ import annotations

import difflib
import importlib
import itertools
import os
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from racing_rl import __version__, config_dir, interrupts
from racing_rl.arguments import (
    COMMANDS,
    CONFIG_DIR_FLAGS,
    NAMING_FLAGS,
    PLUGINS,
    UsageError,
    check_arguments,
    flag_value,
    with_resumed_backend,
)
from racing_rl.errors import print_error

if TYPE_CHECKING:  # imported where used: the dispatcher starts fast
    from hydra.core.override_parser.types import Override

    from racing_rl.usage import ConfigDoc


def usage() -> str:
    """The text of ``racing-rl --help``: every command with its examples."""
    lines = [
        "usage: racing-rl <command> [KEY=VALUE ...] [--help]",
        "       racing-rl --version | -sc install=bash",
        "",
        "Train racing cars with reinforcement learning. Every command but report is a Hydra",
        "app: configure it with KEY=VALUE overrides and config groups (GROUP=OPTION), sweep",
        "with -m.",
        "",
        "commands:",
    ]
    for name, command in COMMANDS.items():
        lines.append(f"  {name:<8}{command.summary}")
        lines += [f"            {example}" for example in command.examples]
    lines += ["", "Run 'racing-rl <command> --help' for its options and config groups."]
    return "\n".join(lines)


def command_help(name: str, args: Sequence[str] = ()) -> str:
    """``racing-rl <name> --help``, from ``conf/<name>.yaml`` and its comments; a
    ``GROUP=OPTION`` among ``args`` (``algo=sac``) picks what the options that depend on
    the group show. A ``--config-dir`` among ``args`` adds its options (``usage.with_config_dir``),
    and so does each directory of a ``hydra.searchpath=[...]`` (``_search_path``); a
    ``--config-name`` is said to be another config, which ``--cfg job`` prints."""
    from racing_rl.usage import format_help, read_config_doc, with_config_dir

    given = flag_value(args, CONFIG_DIR_FLAGS)
    added = {f"--config-dir {given}": Path(given).expanduser()} if given is not None else {}
    searched, unread = _search_path(args)
    added |= {f"hydra.searchpath's {directory}": directory for directory in searched}
    dirs = [config_dir(), *added.values()]
    extra = []
    if name == "train":
        for group in ("hydra/sweeper", "hydra/launcher"):
            options = sorted(
                {o for g, o in PLUGINS if g == group}
                | {p.stem for d in dirs for p in (d / group).glob("*.yaml")}
            )
            extras = sorted({extra for (g, _), (_, extra) in PLUGINS.items() if g == group})
            extra.append(
                (
                    group,
                    ["basic (default)", *options],
                    f"with -m; all but basic need an extra: {', '.join(extras)} "
                    "(docs/usage.md, Sweeps)",
                )
            )
    doc = read_config_doc(config_dir() / f"{name}.yaml")
    for source, directory in added.items():
        taken = [group for group, _, _ in extra]
        doc, more = with_config_dir(doc, directory, taken=taken, source=source)
        extra += more
    resolved = _selected_defaults(doc, _chosen_options(args), dirs)
    text = format_help(doc, COMMANDS[name].examples, extra, resolved=resolved)
    if unread:
        text = (
            f"hydra.searchpath's {', '.join(unread)}: the options it adds are not listed "
            f"below (only a directory's are); racing-rl {name} ... --info searchpath shows "
            f"Hydra's search path\n\n{text}"
        )
    primary = flag_value(args, NAMING_FLAGS[:2])
    if primary is not None and primary != name:
        shown = " ".join(a for a in args if a not in ("-h", "--help"))
        text = (
            f"--config-name {primary}: the config below is racing-rl {name}'s own "
            f"(conf/{name}.yaml); racing-rl {name} {shown} --cfg job prints {primary}'s, "
            f"composed\n\n{text}"
        )
    return text


def _overrides(args: Sequence[str]) -> list[Override]:
    """The overrides among ``args`` as Hydra's parser reads them: flags, and an argument
    Hydra would refuse, are left out."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    parser = OverridesParser.create()
    overrides = []
    for arg in args:
        if arg.startswith("-"):
            continue
        try:
            overrides += parser.parse_overrides([arg])
        except OverrideParseException:
            continue
    return overrides


def _search_path(args: Sequence[str]) -> tuple[list[Path], list[str]]:
    """The config directories that a ``hydra.searchpath=[...]`` among ``args`` adds behind
    conf/ (``file://<dir>``, or a path without a scheme, as Hydra reads it), in its order,
    and its other entries (``pkg://<module>``: a package's, which help does not import).
    Nothing where it is not there or Hydra would refuse it."""
    dirs, others = [], []
    for override in _overrides(args):
        entries = override.value() if override.key_or_group == "hydra.searchpath" else None
        for entry in entries if isinstance(entries, list) else []:
            scheme, found, path = str(entry).partition("://")
            if not found:
                scheme, path = "file", scheme
            if scheme == "file":
                dirs.append(Path(path).expanduser())
            else:
                others.append(str(entry))
    return dirs, others


def _chosen_options(args: Sequence[str]) -> dict[str, list[str]]:
    """The options each ``KEY=VALUE`` of ``args`` names, as Hydra's override parser reads
    it: one (``algo=sac``, ``algo='sac'``) or a swept list (``algo=sac,td3``); none for
    any other sweep (``choice(...)``, ``range(...)``). An argument Hydra would refuse is
    left out."""
    from hydra.core.override_parser.types import ChoiceSweep

    chosen = {}
    for override in _overrides(args):
        value = override.value()
        if isinstance(value, str):
            chosen[override.key_or_group] = [value]
        else:  # a sweep: a plain list names its options, a function none to show
            plain = isinstance(value, ChoiceSweep) and value.simple_form
            chosen[override.key_or_group] = list(override.sweep_string_iterator()) if plain else []
    return chosen


def _selected_defaults(
    doc: ConfigDoc, chosen: Mapping[str, Sequence[str]], dirs: Sequence[Path] = ()
) -> dict[str, str]:
    """What the chosen config group options make of the command's options, read from
    their YAML without composing the config (help stays light):

    - an option's ``${oc.select:<group>.<key>,<fallback>}`` default, with the group's
      option in ``chosen`` ("1700000 with algo=sac"; a swept ``algo=sac,td3`` gives one
      figure per option), else with its default one ("1500000 by default");
    - an option that a chosen ``# @package _global_`` file sets (``experiment=race``:
      "10 with experiment=race"), which wins as it is applied last; in a sweep of such
      files, each one's figure (the YAML's where a file leaves the option alone).

    ``chosen``: group → the options the command line names (``_chosen_options``). One
    that names none of the group's files (a typo, a path) shows nothing: running the
    command says what is wrong. ``dirs``: the config dirs, in Hydra's search order
    (conf/, then a ``--config-dir``); conf/ alone where none are given.
    """
    import re

    from omegaconf import DictConfig, OmegaConf

    def path(group: str, option: str) -> Path:
        files = [d / group / f"{option}.yaml" for d in dirs or [config_dir()]]
        return next((file for file in files if file.is_file()), files[0])

    def loaded(group: str, option: str) -> DictConfig | None:
        return OmegaConf.load(path(group, option)) if path(group, option).is_file() else None

    def is_global(group: str, option: str) -> bool:  # Hydra's header: the first comments
        file = path(group, option)
        lines = file.read_text().splitlines() if file.is_file() else []
        header = itertools.takewhile(lambda line: line.startswith("#") or not line, lines)
        return any(re.fullmatch(r"#\s*@package\s+_global_\s*", line) for line in header)

    def shown(value: object) -> str:  # as on a command line: 10, [hard]
        return f"[{', '.join(map(str, value))}]" if OmegaConf.is_list(value) else str(value)

    groups = {group.name: group.default for group in doc.groups}
    picks = {  # an option is a file of the group's folder, not a path to elsewhere
        group: [o for o in options if "/" not in o]
        for group, options in chosen.items()
        if group in groups
    }
    resolved: dict[str, list[str]] = {}
    for option in doc.options:
        selected = re.fullmatch(r"\$\{oc\.select:(\w+)\.([\w.]+),(.*)\}", option.value)
        if selected is None:
            continue
        group, key, fallback = selected.groups()
        for picked in picks.get(group, [groups.get(group)]):
            node = loaded(group, picked) if picked else None
            if group in picks and node is None:
                continue
            value = OmegaConf.select(node, key) if node is not None else None
            how = f"with {group}={picked}" if group in picks else "by default"
            resolved.setdefault(option.key, []).append(
                f"{fallback if value is None else shown(value)} {how}"
            )
    for group, options in picks.items():
        files = [(o, loaded(group, o)) for o in options if is_global(group, o)]
        for option in doc.options:
            values = [(o, OmegaConf.select(node, option.key)) for o, node in files]
            if all(value is None or OmegaConf.is_dict(value) for _, value in values):
                continue
            resolved[option.key] = [
                f"{option.value if value is None else shown(value)} with {group}={o}"
                for o, value in values
            ]
    return {key: ", ".join(values) for key, values in resolved.items()}


def complete(line: str) -> str:
    """Answer a bash completion query (``-sc query=bash``) for ``line``.

    Args:
        line: the command line so far (``COMP_LINE``), e.g. ``racing-rl train algo=``.

    Returns:
        The candidates, separated by spaces: the commands for the first word, else
        Hydra's completion of the command's config (keys, groups and their options).
    """
    words = line.split()
    if len(words) < 2 or (len(words) == 2 and not line.endswith(" ")):
        prefix = words[1] if len(words) == 2 else ""
        return " ".join(c for c in COMMANDS if c.startswith(prefix))
    name = words[1]
    if name not in COMMANDS or name == "report":
        return ""  # the shell completes file names
    import io
    from contextlib import redirect_stdout

    from racing_rl.config import hydra_main
    from racing_rl.usage import read_config_doc

    comp_line = os.environ.get("COMP_LINE")  # put back after: the process's, not Hydra's
    os.environ["COMP_LINE"] = line.split(None, 1)[1]  # Hydra strips the first word
    argv, sys.argv = sys.argv, [f"racing-rl {name}", "-sc", "query=bash"]
    answer = io.StringIO()
    try:
        with redirect_stdout(answer):
            hydra_main(name)(lambda cfg: None)()
    finally:
        sys.argv = argv
        if comp_line is None:
            del os.environ["COMP_LINE"]
        else:
            os.environ["COMP_LINE"] = comp_line
    # Hydra offers every group of the shared conf/: leave out those the command lacks
    # (eval's algo=, experiment=), and the schemas, which no command line chooses.
    doc = read_config_doc(config_dir() / f"{name}.yaml")
    own = {group.name for group in doc.groups} | {o.key.split(".")[0] for o in doc.options}
    others = {d.name for d in config_dir().iterdir() if d.is_dir()} - own - {"hydra"}
    others.add("schema")  # racing_rl.config's structured configs (ConfigStore)
    candidates = answer.getvalue().split()
    return " ".join(c for c in candidates if re.split(r"[=.]", c, maxsplit=1)[0] not in others)


def shell_completion(request: str) -> int:
    """``racing-rl -sc install=bash|query=bash|uninstall=bash`` (zsh: through bash's).

    Returns:
        The exit status.
    """
    action, _, shell = request.partition("=")
    if shell not in ("bash", "zsh"):
        raise UsageError(
            f"-sc {request}: pass -sc install=bash (zsh uses it too: docs/usage.md, Tab completion)"
        )
    if action == "query":
        print(complete(os.environ.get("COMP_LINE", "")))
        return 0
    from hydra._internal.core_plugins.bash_completion import BashCompletion

    if action not in ("install", "uninstall"):
        raise UsageError(f"-sc {request}: pass -sc install=bash or -sc uninstall=bash")
    argv, sys.argv = sys.argv, ["racing-rl"]
    try:
        getattr(BashCompletion(config_loader=None), action)()  # type: ignore[arg-type]
    finally:
        sys.argv = argv
    return 0


def run(argv: list[str]) -> int:
    """Dispatch ``argv`` (the command line after ``racing-rl``); returns the exit status.

    Raises:
        UsageError: on a command line that cannot run.
    """
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0 if argv else 2
    if argv[0] in ("-V", "--version"):
        print(f"racing-rl {__version__}")
        return 0
    for flag in ("-sc", "--shell-completion"):
        if flag in argv and argv.index(flag) + 1 < len(argv):
            return shell_completion(argv[argv.index(flag) + 1])
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        close = difflib.get_close_matches(name, COMMANDS, n=1)
        guess = f"did you mean {close[0]}? " if close else ""
        raise UsageError(f"unknown command {name!r}; {guess}the commands: {', '.join(COMMANDS)}")
    module = COMMANDS[name].module
    hydra_app = name != "report"  # report parses its own command line (argparse)
    if hydra_app and ("-h" in rest or "--help" in rest):
        print(command_help(name, rest))
        return 0
    with interrupts.handled(name) as started:
        if hydra_app:
            check_arguments(name, rest)
            if name == "train":
                rest = with_resumed_backend(rest)
            # Hydra parses sys.argv itself; the program name shows in its messages.
            sys.argv = [f"racing-rl {name}", *rest]
        try:
            app = importlib.import_module(module).main
            started(app)
            if not hydra_app:
                return app(rest)  # interrupted, it names the files it wrote
            app()
        except KeyboardInterrupt as interrupt:  # the command let it through
            sig = interrupts.interrupt_signal(interrupt)
            print(f"racing-rl {name}: interrupted ({interrupts.how(sig.name)}).", file=sys.stderr)
            return 128 + sig
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``racing-rl`` console script.

    Returns:
        The exit status: 0 on success, 2 on a usage error (one line on stderr; with
        ``HYDRA_FULL_ERROR=1`` the error is raised, with its stack), 130 on Ctrl-C before
        a command handles it (while Python imports it or Hydra composes its config), 141
        when the reader of stdout went away (a pipe into ``head``).
    """
    argv = sys.argv[1:] if argv is None else argv
    try:
        code = run(argv)
        interrupts.ending(code)
        return code
    except SystemExit as exit_:
        interrupts.ending(exit_.code)
        raise
    except UsageError as err:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        print_error(argv[0] if argv and argv[0] in COMMANDS else "", err)
        return 2
    except BrokenPipeError:
        # The reader went away (``racing-rl train --help | head``): nothing more to say.
        # Python would report the failed flush of stdout at exit; point it at devnull.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, as a shell reports it


if __name__ == "__main__":
    sys.exit(main())

"""``racing-rl <command> --help``: a command's help, read from its YAML config and comments.

Hydra's own ``--help`` prints the composed config without its comments, lists every
config group of the search path and needs the command's module (torch, SB3) imported
first. This module reads ``conf/<command>.yaml`` as text instead, so the answer comes
at once and says what the YAML says:

* the file's opening comment: its first line is the usage line, the rest the paragraph;
* the config groups of its defaults list (``- backend: pygame``), each with its
  options (``conf/<group>/*.yaml``) and the comment above the entry;
* every key, dotted (``validation.video.every``), with its default as written and the
  comments above it (or beside it), ``hydra:`` left out.

Only the standard library is imported: the config files are this project's own, written
in block style with comments above keys.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

#: ``key: value  # comment`` at some indentation (the value and comment optional).
_KEY = re.compile(
    r"^(?P<indent> *)(?P<key>[A-Za-z_@/][\w@/.-]*):(?: +(?P<value>[^#]*?))? *(?:# *(?P<note>.*))?$"
)
#: ``- group: option`` (or ``- group@package: option``) in a defaults list.
_DEFAULT = re.compile(
    r"^ +- +(?P<override>override +)?(?P<group>[\w/]+)(?P<package>@[\w.]+)?: *(?P<option>\S+)"
)


@dataclass(frozen=True)
class Option:
    """One key of a command's config.

    Attributes:
        key: its dotted path, e.g. ``validation.video.every``.
        value: its default as written in the YAML ("" for a mapping of keys).
        comment: the comment lines above it and beside it, joined by spaces.
    """

    key: str
    value: str
    comment: str


@dataclass(frozen=True)
class Group:
    """One config group of a command's defaults list.

    Attributes:
        name: the group (``backend``), with its package if the entry names one
            (``backend@sim``): what an override names.
        default: the option chosen by default (``null``: none).
        options: every option the group offers, i.e. ``conf/<group>/*.yaml``.
        comment: the comment lines above the entry.
    """

    name: str
    default: str
    options: tuple[str, ...]
    comment: str


@dataclass(frozen=True)
class ConfigDoc:
    """What a command's root config says about itself."""

    usage: str
    paragraph: str
    groups: tuple[Group, ...]
    options: tuple[Option, ...]


def read_config_doc(path: Path) -> ConfigDoc:
    """Read a root config's usage line, paragraph, groups and keys with their comments.

    Args:
        path: ``conf/<command>.yaml``; its group options are looked up beside it.

    Returns:
        The config's documentation.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
    """
    lines = path.read_text().splitlines()
    header: list[str] = []
    while lines and lines[0].startswith("#"):
        header.append(lines.pop(0).lstrip("#").strip())
    usage, paragraph = (header[0], " ".join(header[1:])) if header else ("", "")

    groups: list[Group] = []
    options: list[Option] = []
    comments: list[str] = []
    parents: list[tuple[int, str]] = []  # (indent, key) of the enclosing mappings
    section = ""  # the top-level key being read
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("#"):
            comments.append(stripped.lstrip("#").strip())
            continue
        if not stripped:
            comments = []
            continue
        if section == "defaults" and (entry := _DEFAULT.match(line)):
            if not entry["override"]:
                group = entry["group"]
                choices = _group_options(path.parent / group)
                name = group + (entry["package"] or "")
                groups.append(Group(name, entry["option"], choices, " ".join(comments)))
            comments = []
            continue
        match = _KEY.match(line)
        if match is None:  # a continued flow sequence or a list item
            comments = []
            continue
        indent = len(match["indent"])
        while parents and parents[-1][0] >= indent:
            parents.pop()
        if indent == 0:
            section = match["key"]
        dotted = ".".join([*(key for _, key in parents), match["key"]])
        value = (match["value"] or "").strip()
        note = " ".join([*comments, match["note"] or ""]).strip()
        if section not in ("defaults", "hydra"):
            options.append(Option(dotted, value, note))
        if not value:
            parents.append((indent, match["key"]))
        comments = []
    return ConfigDoc(usage, paragraph, tuple(groups), tuple(options))


def _group_options(directory: Path) -> tuple[str, ...]:
    return tuple(sorted(p.stem for p in directory.glob("*.yaml")))


def with_config_dir(
    doc: ConfigDoc, directory: Path, taken: Iterable[str] = (), source: str | None = None
) -> tuple[ConfigDoc, list[tuple[str, list[str], str]]]:
    """``doc`` with the config options of a ``--config-dir`` or a directory of
    ``hydra.searchpath`` (Hydra looks in ``directory`` after conf/: a file of the same
    name there is not the one used): each group gets the options
    ``directory/<group>/*.yaml`` adds, named in its comment.

    Args:
        doc: the command's config documentation (``read_config_doc``).
        directory: the ``--config-dir`` given, or a directory of the search path.
        taken: groups shown besides ``doc``'s (``hydra/sweeper``), left to the caller.
        source: what added ``directory``, for the help (``--config-dir <directory>``
            where None).

    Returns:
        The documentation, and (group, options, what it is) of the groups of
        ``directory`` that the defaults list does not name (``+<group>=<option>`` adds
        one), as ``format_help``'s ``extra_groups``.
    """
    source = source or f"--config-dir {directory}"
    groups = []
    for group in doc.groups:
        own = _group_options(directory / group.name.split("@")[0])
        added = [o for o in own if o not in group.options]
        if added:
            note = f"{source} adds {', '.join(added)}."
            comment = f"{group.comment} {note}".strip()
            group = Group(group.name, group.default, (*group.options, *added), comment)
        groups.append(group)
    named = {g.name.split("@")[0] for g in doc.groups} | set(taken)
    folders = sorted({p.parent for p in directory.rglob("*.yaml")} - {directory})
    others = [
        (
            f"+{name}",
            list(_group_options(folder)),
            f"from {source}, not in the defaults list: +{name}=<option>",
        )
        for folder in folders
        if (name := folder.relative_to(directory).as_posix()) not in named
    ]
    return ConfigDoc(doc.usage, doc.paragraph, tuple(groups), doc.options), others


def format_help(
    doc: ConfigDoc,
    examples: Sequence[str],
    extra_groups: Iterable[tuple[str, Sequence[str], str]] = (),
    width: int = 88,
    resolved: Mapping[str, str] | None = None,
) -> str:
    """The text of ``racing-rl <command> --help``.

    Args:
        doc: the command's config documentation (``read_config_doc``).
        examples: command lines, each optionally followed by ``  # what it does``.
        extra_groups: (group, options, what it is) of groups not in the defaults list
            that the command also takes (a sweeper, a launcher).
        width: the line width to wrap comments to [characters].
        resolved: key → what the option is with the chosen config groups (an
            interpolated default's value, or what a chosen experiment sets), shown beside
            it (``"1500000 by default"``, ``"1700000 with algo=sac"``).

    Returns:
        The help text: usage, paragraph, config groups, options, examples.
    """

    def wrapped(text: str, indent: int = 0, more: int = 0) -> list[str]:
        """``text`` wrapped at ``indent``, its later lines ``more`` further in. A path or
        an override (``hydra.searchpath's /tmp/a-b/c``) is never split: a word longer than
        the line stays whole, and a hyphen is no place to break."""
        return textwrap.wrap(
            text,
            width,
            initial_indent=" " * indent,
            subsequent_indent=" " * (indent + more),
            break_long_words=False,
            break_on_hyphens=False,
        )

    out = [f"usage: {doc.usage}", "", *wrapped(doc.paragraph)]
    groups = [
        (g.name, [f"{o} (default)" if o == g.default else o for o in g.options], g.comment)
        for g in doc.groups
    ] + [(name, list(opts), note) for name, opts, note in extra_groups]
    if groups:
        out += ["", "config groups (GROUP=OPTION):"]
        for name, opts, note in groups:
            out += wrapped(f"{name}: {', '.join(opts)}", 2, more=4)  # not a group's name
            out += wrapped(note, 6)
    out += ["", "options (KEY=VALUE; defaults as in the YAML):"]
    resolved = resolved or {}
    for option in doc.options:
        line = f"  {option.key}={option.value}" if option.value else f"  {option.key}.*"
        if option.key in resolved:  # what it is with the chosen groups
            line += f"  (= {resolved[option.key]})"
        out.append(line)
        out += wrapped(option.comment, 6)
    out += ["", "examples:", *(f"  {example}" for example in examples)]
    out += [
        "",
        *wrapped(
            "Hydra: --cfg job prints the composed config, -m runs a sweep, --hydra-help lists "
            "Hydra's own options; HYDRA_FULL_ERROR=1 shows an error's stack."
        ),
    ]
    return "\n".join(out)

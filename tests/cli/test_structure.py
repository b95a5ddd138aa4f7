"""The CLI's shape: an explicit command table that README documents, and no import cycle."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import click

from snapvault.cli.main import COMMANDS, cli

ROOT = Path(__file__).resolve().parents[2]
CLI_DIR = ROOT / "src" / "snapvault" / "cli"
COMMAND_MODULES = sorted(p.stem for p in CLI_DIR.glob("*_cmds.py"))


def _readme_section(title: str) -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def documented_usage() -> dict[str, set[str]]:
    """Each command path README's "Command line" block shows ("init", "policy add"), with the
    long options its lines mention."""
    block = _readme_section("Command line").split("```")[1]
    usage: dict[str, set[str]] = {}
    current: list[str] = []
    for line in block.splitlines():
        if line.startswith("snapvault "):
            # "snapvault -r URL CMD ..." (a group: "snapvault -r URL policy list|show NAME")
            words = line.split()
            assert words[1] == "-r", line
            name, rest = words[3], " ".join(words[4:])
            group = cli.commands.get(name)
            # A group within a group ("dr plan add ..."): the path names both.
            while isinstance(group, click.Group) and isinstance(group.commands.get(rest.split(" ", 1)[0]), click.Group):
                sub, _, rest = rest.partition(" ")
                name, group = f"{name} {sub}", group.commands[sub]
            if isinstance(group, click.Group):
                current = [f"{name} {alt.split()[0]}" for alt in rest.split("|")]
            else:
                current = [name]
        elif not line.strip():
            continue
        else:
            assert line.startswith(" "), f"not a usage line: {line!r}"
        for path in current:
            usage.setdefault(path, set()).update(re.findall(r"(?<![\w-])--[a-z][a-z-]*", line))
    return usage


def command_paths() -> dict[str, click.Command]:
    """Every command a user can run, by its path ("policy add"); groups by their subcommands."""
    out: dict[str, click.Command] = {}
    todo = list(cli.commands.items())
    while todo:
        name, command = todo.pop()
        if isinstance(command, click.Group):
            todo += [(f"{name} {sub}", c) for sub, c in command.commands.items()]
        else:
            out[name] = command
    return out


def test_every_command_is_documented_and_every_documented_command_exists() -> None:
    documented = set(documented_usage())
    assert documented, "README's Command line block lists no commands"
    actual = set(command_paths())
    assert documented - actual == set(), "README documents commands the CLI lacks"
    assert actual - documented == set(), "commands README's Command line block does not show"


def test_every_documented_option_exists() -> None:
    paths = command_paths()
    root_options = {opt for p in cli.params for opt in p.opts}
    for path, options in documented_usage().items():
        known = root_options | {opt for p in paths[path].params for opt in [*p.opts, *p.secondary_opts]}
        assert options <= known, f"{path}: README shows {sorted(options - known)}, which it does not take"


def test_the_group_holds_exactly_the_command_table() -> None:
    names = [c.name for c in COMMANDS]
    assert len(names) == len(set(names)), names
    assert set(cli.commands) == set(names)
    assert all(cli.commands[c.name] is c for c in COMMANDS if c.name)


def test_every_command_a_module_defines_is_in_the_table() -> None:
    # A command defined but left out of COMMANDS would silently not exist.
    for stem in COMMAND_MODULES:
        module = importlib.import_module(f"snapvault.cli.{stem}")
        commands = [v for v in vars(module).values() if isinstance(v, click.Command)]
        nested = {id(sub) for c in commands if isinstance(c, click.Group) for sub in c.commands.values()}
        for command in commands:
            if id(command) not in nested:
                assert command in COMMANDS, f"{stem}.{command.name} is not in snapvault.cli.main.COMMANDS"


def _cli_imports(path: Path) -> set[str]:
    """The snapvault.cli modules ``path`` imports anywhere: at the top, inside functions, or
    under TYPE_CHECKING (a cycle hidden there is still a cycle)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path.name}: relative import"
            module = node.module or ""
            names = [f"{module}.{a.name}" for a in node.names] if module == "snapvault.cli" else [module]
        else:
            continue
        found.update(n.split(".")[2] for n in names if n.startswith("snapvault.cli."))
    return found


# Each module imports only modules of a lower rank, so the package cannot have a cycle.
RANKS = {
    "__init__": 0,
    "output": 0,
    "progress_bar": 0,
    "progress": 1,
    "exits": 1,
    "common": 2,
    **dict.fromkeys(COMMAND_MODULES, 3),
    "main": 4,
}


def test_imports_inside_the_cli_point_one_way() -> None:
    assert {p.stem for p in CLI_DIR.glob("*.py")} == set(RANKS), "give a new module a rank"
    for stem, rank in RANKS.items():
        for dep in _cli_imports(CLI_DIR / f"{stem}.py"):
            assert RANKS[dep] < rank, f"snapvault.cli.{stem} imports snapvault.cli.{dep}"


def test_cli_modules_stay_small() -> None:
    for path in CLI_DIR.glob("*.py"):
        lines = len(path.read_text(encoding="utf-8").splitlines())
        assert lines <= 600, f"{path.name} has {lines} lines: split it by responsibility"

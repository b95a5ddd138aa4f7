"""``snapvault`` command-line entry point: the root group, its command table, and ``main``.

Every command is listed in :data:`COMMANDS`; nothing registers itself by being imported. Exit
codes are decided in :mod:`snapvault.cli.exits`; this module only passes them to the process.
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys

import click

from snapvault.cli import (
    browse_cmds,
    dr_cmds,
    exits,
    key_cmds,
    output,
    policy_cmds,
    prune_cmds,
    repair_cmds,
    repo_cmds,
    snapshot_cmds,
)
from snapvault.cli.common import Context, parse_options
from snapvault.cli.tag_cmds import tag

# In the order README's "Command line" section lists them; ``--help`` sorts them by name.
COMMANDS: tuple[click.Command, ...] = (
    repo_cmds.init,
    snapshot_cmds.backup,
    snapshot_cmds.snapshots,
    tag,
    snapshot_cmds.restore,
    snapshot_cmds.ls_cmd,
    browse_cmds.diff,
    browse_cmds.find,
    repo_cmds.check,
    policy_cmds.policy,
    policy_cmds.run_cmd,
    policy_cmds.due,
    policy_cmds.forget,
    prune_cmds.prune,
    policy_cmds.stats,
    repo_cmds.copy,
    repair_cmds.repair,
    key_cmds.key,
    dr_cmds.dr,
)


def _json_flag(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    if value:
        output.use_json()
    return output.json_mode()


def _quiet_flag(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        output.set_verbosity(-1)


def _verbose_flag(ctx: click.Context, param: click.Parameter, value: int) -> None:
    if value:
        output.set_verbosity(value)


def _output_options(command: click.Command) -> None:
    """Give ``command`` (and each command of a group) --json, -q/--quiet and -v/--verbose.

    They are accepted both before the command name and after it, as restic's global flags and
    borg's per-command ones are. A command's own ``as_json`` parameter becomes true with either.
    """
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            _output_options(sub)
        return
    names = {p.name for p in command.params}
    if "as_json" not in names:
        raise TypeError(f"command {command.name!r} has no --json")  # every command reports
    for param in command.params:
        if param.name == "as_json":
            param.callback = _json_flag
    command.params += [
        click.Option(["-q", "--quiet"], is_flag=True, expose_value=False, callback=_quiet_flag, help=_QUIET),
        click.Option(["-v", "--verbose"], count=True, expose_value=False, callback=_verbose_flag, help=_VERBOSE),
    ]


_JSON = "Print one JSON document on stdout, and errors as JSON lines on stderr."
_QUIET = "Print no progress and no summary lines (listings, warnings and errors stay)."
_VERBOSE = "Print more detail; repeat for more (-vv)."


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--json", "as_json", is_flag=True, expose_value=False, callback=_json_flag, help=_JSON)
@click.option("-q", "--quiet", is_flag=True, expose_value=False, callback=_quiet_flag, help=_QUIET)
@click.option("-v", "--verbose", count=True, expose_value=False, callback=_verbose_flag, help=_VERBOSE)
@click.option("-r", "--repo", envvar="SNAPVAULT_REPOSITORY", help="Repository URL (or SNAPVAULT_REPOSITORY).")
@click.option("-o", "--option", "options", multiple=True, metavar="KEY=VALUE", help="Storage option; repeatable.")
@click.option(
    "--options-file",
    envvar="SNAPVAULT_OPTIONS_FILE",
    type=click.Path(dir_okay=False),
    help="JSON file of storage options (-o overrides it).",
)
@click.option("--password-file", type=click.Path(dir_okay=False), help="Read the password from this file.")
@click.option(
    "--insecure-no-password",
    "no_password",
    is_flag=True,
    help="Use an UNENCRYPTED repository (without it one is refused: its config may have been swapped).",
)
@click.option(
    "--max-kdf-memory",
    envvar="SNAPVAULT_MAX_KDF_MEMORY",
    type=click.IntRange(1, 4 << 10),
    default=128,
    show_default=True,
    metavar="MIB",
    help="Skip key files whose Argon2 asks for more memory than this (or SNAPVAULT_MAX_KDF_MEMORY).",
)
@click.version_option(package_name="snapvault")
@click.pass_context
def cli(
    ctx: click.Context,
    repo: str | None,
    options: tuple[str, ...],
    options_file: str | None,
    password_file: str | None,
    no_password: bool,
    max_kdf_memory: int,
) -> None:
    """Deduplicated, compressed, encrypted backups into any fsspec store."""
    ctx.obj = Context(
        repo,
        parse_options(options, options_file),
        password_file,
        no_password=no_password,
        max_kdf_memory_kib=max_kdf_memory << 10,
    )


for _command in COMMANDS:
    _output_options(_command)
    cli.add_command(_command)


def run(argv: list[str] | None = None) -> int:
    """Run the CLI; report every expected error as one line and return the exit code."""
    output.reset()
    args = sys.argv[1:] if argv is None else argv
    if "--json" in args[: args.index("--") if "--" in args else None]:
        # Before the options are parsed, so that a usage error is reported in JSON too.
        output.use_json()
    try:
        result = cli.main(args=args, prog_name="snapvault", standalone_mode=False)
    except BaseException as e:  # each is matched against the exit-code table, or re-raised
        code = exits.for_exception(e)
        if code is None:
            raise  # not one the table knows: a bug, which keeps its traceback
        return code
    return exits.for_result(result)


def main() -> None:
    """Console-script entry point."""
    # A short-lived process that allocates millions of small, acyclic objects (tree nodes,
    # index entries): the default cyclic-GC thresholds spend ~7 % of a first backup
    # re-scanning them. A library caller keeps its own settings; only this process changes.
    gc.set_threshold(100_000, 50, 100)
    code = run()
    if code != exits.ExitCode.OK:
        # An error or an interrupt: let the interpreter wind down worker threads (an upload
        # in flight finishes and removes its temporary file); speed no longer matters.
        sys.exit(int(code))
    # Success: every file this process wrote is closed and synced, so leave without the
    # interpreter's teardown, which frees every object one by one and cost about 60 ms of an
    # unchanged re-backup's 0.3 s.
    for stream in (sys.stdout, sys.stderr):
        # A stream closed by the caller (None with `>&-`, or a broken pipe) has no more to say.
        with contextlib.suppress(OSError, ValueError, AttributeError):
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    main()

"""Exit codes: the one place that decides them.

A command ends in one of three ways, and each is mapped here and nowhere else:

- it returns (nothing, or an :class:`Outcome` naming a partial success),
- it raises (a library error, :class:`CliError`, a click usage error, an interrupt),
- click itself stops it (``--help``, ``--version``, shell completion) with a code of its own.

==== ======================================================================
0    success
1    an error (one line on stderr, no traceback); ``check`` found damage;
     ``restore`` left out damaged files; a policy command could not read a
     stored policy (each listed on stderr); ``due --run`` could not run a policy;
     ``snapshots`` could not read a snapshot (each listed on stderr)
2    bad usage (unknown option, missing argument)
3    the snapshot was written but some sources could not be read
130  interrupted
==== ======================================================================

README's exit-code table and the tests in ``tests/cli`` are checked against this module.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from typing import NamedTuple

import click

from snapvault.cli import output


class ExitCode(enum.IntEnum):
    """Every code the ``snapvault`` process exits with."""

    OK = 0
    ERROR = 1
    USAGE = 2
    PARTIAL = 3
    INTERRUPTED = 130


class Outcome(enum.Enum):
    """How a command that finished without raising went; a command returns one (or None)."""

    DONE = "done"
    SOURCES_UNREADABLE = "some sources of a written snapshot could not be read"
    DAMAGE_FOUND = "check found problems"
    PATHS_NOT_RESTORED = "restore left out damaged paths"
    POLICIES_UNREADABLE = "a stored policy could not be read; the others were handled"
    POLICY_FAILED = "a due policy could not be run; the others were"
    SNAPSHOTS_UNREADABLE = "a snapshot could not be read; the others were listed"


OUTCOME_CODES: Mapping[Outcome, ExitCode] = {
    Outcome.DONE: ExitCode.OK,
    Outcome.SOURCES_UNREADABLE: ExitCode.PARTIAL,
    Outcome.DAMAGE_FOUND: ExitCode.ERROR,
    Outcome.PATHS_NOT_RESTORED: ExitCode.ERROR,
    Outcome.POLICIES_UNREADABLE: ExitCode.ERROR,
    Outcome.POLICY_FAILED: ExitCode.ERROR,
    Outcome.SNAPSHOTS_UNREADABLE: ExitCode.ERROR,
}


def worst(outcomes: list[Outcome]) -> Outcome:
    """The outcome of a command that did several things (``due --run``): the highest code wins,
    so a snapshot with unreadable sources (3) is not hidden behind another policy's error (1)."""
    return max(outcomes, key=lambda o: OUTCOME_CODES[o], default=Outcome.DONE)


class CliError(Exception):
    """A failure the command line itself finds (a bad option value, no password); reported as
    one line, like a library error."""


def _say_error(e: BaseException, code: ExitCode) -> None:
    output.say_final(str(e) or type(e).__name__, kind=type(e).__name__, exit_code=int(code))


def _say_interrupted(e: BaseException, code: ExitCode) -> None:
    if output.json_mode():
        output.say_final("interrupted", kind="Interrupted", exit_code=int(code))
    else:
        click.echo("snapvault: interrupted", err=True)


def _say_click(e: BaseException, code: ExitCode) -> None:
    assert isinstance(e, click.ClickException)
    if output.json_mode():
        output.say_final(e.format_message(), kind=type(e).__name__, exit_code=int(code))
    else:
        e.show()  # click's own usage text and "Error: ..." line


class Rule(NamedTuple):
    """Exceptions of this class exit with this code, after ``say`` has reported them."""

    exception: type[BaseException]
    code: ExitCode
    say: Callable[[BaseException, ExitCode], None]


def exception_rules() -> tuple[Rule, ...]:
    """The exceptions the CLI reports instead of a traceback, in order: the first rule whose
    class the exception is an instance of decides. Anything else is a bug and keeps its traceback.
    """
    # Imported only once something failed: the library's errors are not needed to start up.
    from snapvault.errors import SnapvaultError

    return (
        # click turns a KeyboardInterrupt (or EOF at a prompt) inside a command into Abort.
        Rule(click.exceptions.Abort, ExitCode.INTERRUPTED, _say_interrupted),
        Rule(KeyboardInterrupt, ExitCode.INTERRUPTED, _say_interrupted),
        Rule(click.UsageError, ExitCode.USAGE, _say_click),
        Rule(click.ClickException, ExitCode.ERROR, _say_click),
        Rule(CliError, ExitCode.ERROR, _say_error),
        Rule(SnapvaultError, ExitCode.ERROR, _say_error),
        # A failure the library did not translate (a local file, a closed pipe) is still one line.
        Rule(OSError, ExitCode.ERROR, _say_error),
    )


def for_click_stop(code: object) -> ExitCode:
    """click stopped before a command ran, with a code of its own: ``--help`` and ``--version``
    (0), shell completion (0 done, 1 an unknown instruction). Any code but 0 is an error."""
    return ExitCode.OK if code in (None, 0) else ExitCode.ERROR


def for_exception(e: BaseException) -> ExitCode | None:
    """Report ``e`` on stderr and return its exit code; None for an exception that is a bug."""
    if isinstance(e, SystemExit):  # only click's shell completion leaves this way
        return for_click_stop(e.code)
    for rule in exception_rules():
        if isinstance(e, rule.exception):
            rule.say(e, rule.code)
            return rule.code
    return None


def for_result(result: object) -> ExitCode:
    """The exit code of what ``click.Group.main`` returned: a command's outcome (None is done),
    or the code click stopped with after ``--help`` or ``--version`` (always 0)."""
    if result is None:
        return ExitCode.OK
    if isinstance(result, Outcome):
        code = OUTCOME_CODES[result]
        if code != ExitCode.OK and output.json_mode():
            # In text the command's own lines said it; a program reading --json gets the code.
            output.say_final(result.value, kind=result.name, exit_code=int(code))
        return code
    if isinstance(result, int):
        return for_click_stop(result)
    raise TypeError(f"a command returned {result!r}, not an Outcome")

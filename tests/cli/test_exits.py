"""Exit codes come from one table, which README documents; in-process, no subprocesses."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import click
import pytest

import snapvault.errors
from snapvault.cli import exits
from snapvault.cli.common import Context
from snapvault.cli.exits import OUTCOME_CODES, ExitCode, Outcome
from snapvault.cli.main import cli, run

ROOT = Path(__file__).resolve().parents[2]
CLI_DIR = ROOT / "src" / "snapvault" / "cli"


def _codes_in(table: str) -> set[int]:
    return {int(m) for m in re.findall(r"^\|? *(\d+) +\|?", table, flags=re.MULTILINE)}


def test_the_codes_are_a_contract() -> None:
    # Scripts and service managers test these numbers; a change breaks them silently.
    assert {c.name: int(c) for c in ExitCode} == {"OK": 0, "ERROR": 1, "USAGE": 2, "PARTIAL": 3, "INTERRUPTED": 130}


def test_readme_documents_exactly_the_table() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme.split("\nExit codes:\n\n", 1)[1].split("\n\n", 1)[0]
    assert table.startswith("| code | meaning |"), table
    assert _codes_in(table) == {int(c) for c in ExitCode}


def test_the_module_docstring_documents_exactly_the_table() -> None:
    assert exits.__doc__ is not None
    table = exits.__doc__.split("====", 1)[1]
    assert _codes_in(table) == {int(c) for c in ExitCode}


def test_every_outcome_has_a_code() -> None:
    assert set(OUTCOME_CODES) == set(Outcome)
    assert OUTCOME_CODES[Outcome.DONE] == ExitCode.OK
    assert OUTCOME_CODES[Outcome.SOURCES_UNREADABLE] == ExitCode.PARTIAL
    assert all(isinstance(code, ExitCode) for code in OUTCOME_CODES.values())


def test_the_worst_of_several_outcomes_is_the_highest_code() -> None:
    assert exits.worst([]) is Outcome.DONE
    assert exits.worst([Outcome.DONE, Outcome.POLICY_FAILED]) is Outcome.POLICY_FAILED
    mixed = [Outcome.POLICIES_UNREADABLE, Outcome.SOURCES_UNREADABLE, Outcome.POLICY_FAILED]
    assert exits.worst(mixed) is Outcome.SOURCES_UNREADABLE


@pytest.mark.parametrize("name", snapvault.errors.__all__)
def test_every_library_error_is_one_line_and_exit_1(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    error = getattr(snapvault.errors, name)("it broke\n  here")
    assert exits.for_exception(error) == ExitCode.ERROR
    assert capsys.readouterr().err == "snapvault: error: it broke here\n"


@pytest.mark.parametrize(
    ("error", "code", "stderr"),
    [
        (exits.CliError("no repository given"), ExitCode.ERROR, "snapvault: error: no repository given\n"),
        (PermissionError(13, "Permission denied"), ExitCode.ERROR, "snapvault: error: [Errno 13] Permission denied\n"),
        (KeyboardInterrupt(), ExitCode.INTERRUPTED, "snapvault: interrupted\n"),
        (click.exceptions.Abort(), ExitCode.INTERRUPTED, "snapvault: interrupted\n"),
        (click.UsageError("No such command 'x'."), ExitCode.USAGE, "Error: No such command 'x'.\n"),
        (click.BadParameter("not a number"), ExitCode.USAGE, "Error: Invalid value: not a number\n"),
        (click.FileError("f", "gone"), ExitCode.ERROR, "Error: Could not open file 'f': gone\n"),
        (SystemExit(0), ExitCode.OK, ""),
        (SystemExit(None), ExitCode.OK, ""),
        (SystemExit(1), ExitCode.ERROR, ""),
    ],
)
def test_each_exception_has_its_code_and_its_message(
    error: BaseException, code: ExitCode, stderr: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert exits.for_exception(error) == code
    assert capsys.readouterr().err == stderr


def test_an_unexpected_exception_is_a_bug_with_a_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    assert exits.for_exception(ZeroDivisionError()) is None

    def broken(self: Context) -> None:
        raise ZeroDivisionError

    monkeypatch.setattr(Context, "open", broken)
    with pytest.raises(ZeroDivisionError):
        run(["-r", "memory://x", "snapshots"])


def test_what_click_returns_maps_through_the_table() -> None:
    assert exits.for_result(None) == ExitCode.OK
    assert exits.for_result(0) == ExitCode.OK  # --help, --version
    for outcome, code in OUTCOME_CODES.items():
        assert exits.for_result(outcome) == code
    with pytest.raises(TypeError):
        exits.for_result("3")


def test_run_returns_codes_of_the_table(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--help"]) == ExitCode.OK
    assert run([]) == ExitCode.USAGE
    assert run(["no-such-command"]) == ExitCode.USAGE

    def interrupted(self: Context) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(Context, "open", interrupted)
    capsys.readouterr()
    assert run(["-r", "memory://x", "snapshots"]) == ExitCode.INTERRUPTED
    assert capsys.readouterr().err.splitlines()[-1] == "snapvault: interrupted"

    @click.command()
    def partial() -> Outcome:
        return Outcome.SOURCES_UNREADABLE

    monkeypatch.setitem(cli.commands, "partial", partial)
    assert run(["partial"]) == ExitCode.PARTIAL


def _ends_the_process(node: ast.AST) -> bool:
    """``sys.exit(...)``, ``os._exit(...)``, ``ctx.exit(...)``, ``exit()``, or ``raise SystemExit``."""
    if isinstance(node, ast.Call):
        f = node.func
        return (isinstance(f, ast.Attribute) and f.attr in {"exit", "_exit"}) or (
            isinstance(f, ast.Name) and f.id in {"exit", "quit"}
        )
    if isinstance(node, ast.Raise) and node.exc is not None:
        raised = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
        return isinstance(raised, ast.Name | ast.Attribute) and ast.unparse(raised).endswith(("SystemExit", "Exit"))
    return False


def test_only_main_ends_the_process_and_only_exits_and_main_name_codes() -> None:
    # Commands return an Outcome or raise; they never pick a number or leave the process.
    for path in sorted(CLI_DIR.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        allowed: set[int] = set()
        if path.stem == "main":
            main_fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "main")
            allowed = {id(n) for n in ast.walk(main_fn)}
        for node in ast.walk(tree):
            if _ends_the_process(node):
                assert id(node) in allowed, f"{path.name}:{ast.unparse(node)} ends the process"
            if isinstance(node, ast.Name) and node.id == "ExitCode":
                assert path.stem in {"exits", "main"}, f"{path.name}:{node.lineno} picks an exit code"

"""Where the command line's words go: ``--json``, ``--quiet`` and ``--verbose``.

One process runs one command, so the three settings are kept here for that command (reset
by :func:`snapvault.cli.main.run`). What a command reports goes to stdout: its summary lines,
or with ``--json`` exactly one JSON document. Everything else goes to stderr: warnings,
per-item errors, notes and the final error, each one line, and with ``--json`` each one a
JSON object (``{"level": ..., "message": ...}``; the final error adds ``type`` and
``exit_code``), so a program can read both streams without parsing prose.

Progress (:mod:`snapvault.cli.progress`) is drawn on stderr only when stdout and stderr are
both terminals, and neither with ``--json`` nor with ``--quiet``.

``--quiet`` hides progress and summary lines (listings, documents, warnings and errors stay);
``--verbose`` (``-v``, ``-vv``) adds detail lines, on stdout, or as JSON lines on stderr so
that stdout stays one document.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import click

__all__ = [
    "detail",
    "document",
    "error",
    "info",
    "json_mode",
    "note",
    "quiet",
    "reset",
    "say_final",
    "show_progress",
    "verbosity",
    "warning",
]


@dataclass
class _Settings:
    json: bool = False
    verbosity: int = 0  # -1 quiet, 0 normal, 1 and up verbose


_settings = _Settings()


def reset() -> None:
    """Back to plain text at normal verbosity (each run of the CLI starts here)."""
    _settings.json = False
    _settings.verbosity = 0


def use_json() -> None:
    """Report in JSON from now on (the final error too)."""
    _settings.json = True


def set_verbosity(level: int) -> None:
    """-1 for --quiet, 1 and up for each -v; the larger wins when both are given."""
    if level < 0 and _settings.verbosity <= 0:
        _settings.verbosity = -1
    elif level > 0:
        _settings.verbosity = max(_settings.verbosity, level)


def json_mode() -> bool:
    """Whether --json was given, to the command or before it."""
    return _settings.json


def quiet() -> bool:
    """Whether --quiet was given (and no --verbose)."""
    return _settings.verbosity < 0


def verbosity() -> int:
    """0 normally, -1 with --quiet, the number of -v otherwise."""
    return _settings.verbosity


def show_progress(tty: bool) -> bool:
    """Progress only on a terminal (``tty``: stdout and stderr both are one), and neither with
    --json nor with --quiet."""
    return tty and not _settings.json and _settings.verbosity >= 0


def document(doc: Any) -> None:
    """The one JSON document of a command run with --json, on stdout."""
    click.echo(json.dumps(doc, indent=2, default=str))


def info(text: str) -> None:
    """A summary or status line on stdout; not with --quiet, and not with --json (whose
    document says the same)."""
    if not _settings.json and _settings.verbosity >= 0:
        click.echo(text)


def detail(text: str, level: int = 1) -> None:
    """A line shown only with at least ``level`` times -v: on stdout, or with --json as a JSON
    line on stderr (stdout holds the document alone)."""
    if _settings.verbosity < level:
        return
    if _settings.json:
        _line("info", text)
    else:
        click.echo(text)


def _line(level: str, text: str, subject: str | None = None) -> None:
    message = " ".join(text.split())
    if _settings.json:
        doc = {"level": level, "message": message}
        if subject is not None:
            doc = {"level": level, "subject": subject, "message": message}
        click.echo(json.dumps(doc), err=True)
    else:
        click.echo(f"{level}: {message}" if subject is None else f"{subject}: {level}: {message}", err=True)


def warning(text: str, subject: str | None = None) -> None:
    """``warning: TEXT`` on stderr (also with --quiet: something was left out or is off)."""
    _line("warning", text, subject)


def error(text: str, subject: str | None = None) -> None:
    """``error: TEXT`` (or ``SUBJECT: error: TEXT``, e.g. ``snapshot ID``) on stderr: one
    item failed (a file, a snapshot, a policy); the command goes on."""
    _line("error", text, subject)


def note(text: str) -> None:
    """``note: TEXT`` on stderr; not with --quiet."""
    if _settings.verbosity >= 0:
        _line("note", text)


def say_final(message: str, *, kind: str, exit_code: int) -> None:
    """The error a command ended with: ``snapvault: error: MESSAGE``, or with --json
    ``{"level": "error", "type": KIND, "message": ..., "exit_code": N}``."""
    text = " ".join(message.split())
    if _settings.json:
        doc = {"level": "error", "type": kind, "message": text, "exit_code": exit_code}
        click.echo(json.dumps(doc), err=True)
    else:
        click.echo(f"snapvault: error: {text}", err=True)

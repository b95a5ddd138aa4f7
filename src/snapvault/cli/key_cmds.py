"""``snapvault key``: list, add, remove and re-password the repository's key files.

The repository is opened with its password as every command opens it (``--password-file``,
``SNAPVAULT_PASSWORD[_FILE]`` or a prompt); a new password comes from ``--new-password-file``,
``SNAPVAULT_NEW_PASSWORD_FILE``, ``SNAPVAULT_NEW_PASSWORD``, or a prompt asked twice, and
never from the repository password's sources.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from typing import TYPE_CHECKING, Any

import click

from snapvault.cli import output
from snapvault.cli.common import Context, fail, read_password

if TYPE_CHECKING:
    from snapvault.repository.config import KdfParams
    from snapvault.repository.keys import KeyInfo

_NEW_ENV = "SNAPVAULT_NEW"


@click.group()
def key() -> None:
    """Manage key files: each holds the repository's keys under one password."""


def _check_new_password_source(path: str | None) -> None:
    """Fail unless a new password can be had (a script without one gets one line, not a hang)."""
    if path or os.environ.get(f"{_NEW_ENV}_PASSWORD_FILE") or f"{_NEW_ENV}_PASSWORD" in os.environ:
        return
    if not sys.stdin.isatty():
        fail(f"no new password given: use --new-password-file, or set {_NEW_ENV}_PASSWORD_FILE or {_NEW_ENV}_PASSWORD")


def _new_password(path: str | None) -> str:
    """The new password, from the option, the environment, or a prompt asked twice."""
    return read_password(path, _NEW_ENV, "new password", confirm=True)


def _kdf_text(kdf: KdfParams | None) -> str:
    if kdf is None:
        return "none (keys in clear)"
    memory = f"{kdf.memory_kib // 1024} MiB" if kdf.memory_kib % 1024 == 0 else f"{kdf.memory_kib} KiB"
    passes = "pass" if kdf.iterations == 1 else "passes"
    return f"{memory}, {kdf.iterations} {passes}"


def _created_text(k: KeyInfo) -> str:
    return "-" if k.created is None else k.created.isoformat(timespec="seconds").replace("+00:00", "Z")


def _kdf_json(kdf: KdfParams | None) -> dict[str, Any] | None:
    if kdf is None:
        return None
    return {"algorithm": "argon2id", "memory_kib": kdf.memory_kib, "iterations": kdf.iterations, "lanes": kdf.lanes}


def _key_json(k: KeyInfo) -> dict[str, Any]:
    return {
        "id": k.id,
        "short_id": k.short_id,
        "current": k.current,
        "label": k.label,
        "created": None if k.created is None else k.created.isoformat().replace("+00:00", "Z"),
        "kdf": _kdf_json(k.kdf),
        "error": k.error,
    }


@key.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="Print the key files as JSON.")
@click.pass_obj
def list_cmd(obj: Context, as_json: bool) -> None:
    """List the key files, oldest first; * marks the one this password opened.

    A key file that cannot be read is listed with the reason, marked !, and named on stderr.
    """
    keys = obj.open().keys()
    for k in keys:
        if k.error is not None:
            output.warning(f"key file {k.id} cannot be read: {k.error}")
    if as_json:
        output.document([_key_json(k) for k in keys])
        return
    click.echo(f"{'ID':<10}{'':<2}{'Created':<22}{'KDF':<20}Label")
    for k in keys:
        if k.error is not None:
            click.echo(f"{k.short_id:<10}{'!':<2}unreadable: {k.error}")
            continue
        mark = "*" if k.current else ""
        click.echo(f"{k.short_id:<10}{mark:<2}{_created_text(k):<22}{_kdf_text(k.kdf):<20}{k.label}".rstrip())
    output.info(f"{len(keys)} key files")


@key.command(name="add")
@click.option("--label", default="", help="A label to tell key files apart (at most 256 characters).")
@click.option(
    "--new-password-file",
    type=click.Path(dir_okay=False),
    help="Read the new password from this file (or SNAPVAULT_NEW_PASSWORD_FILE, SNAPVAULT_NEW_PASSWORD).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_obj
def add(obj: Context, label: str, new_password_file: str | None, as_json: bool) -> None:
    """Add a key file: the new password opens the repository too."""
    from snapvault.repository.config import check_label
    from snapvault.repository.keys import require_encrypted

    check_label(label)  # refused before any password is asked for
    repo = obj.open()
    require_encrypted(repo, "add a key")
    _check_new_password_source(new_password_file)
    info = repo.add_key(_new_password(new_password_file), label=label)
    if as_json:
        output.document({"added": _key_json(info)})
    else:
        output.info(f"key {info.short_id} added" + (f" ({info.label})" if info.label else ""))


@key.command(name="remove")
@click.argument("key_id")
@click.option("--force", is_flag=True, help="Allow removing the key file this password opened.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_obj
def remove(obj: Context, key_id: str, force: bool, as_json: bool) -> None:
    """Remove the key file KEY_ID (an ID or a unique prefix of 4+ hex digits).

    Its password no longer opens the repository. The last readable key file is never removed,
    and the one in use only with --force.
    """
    from snapvault.repository.keys import resolve_key

    repo = obj.open()
    target = resolve_key(repo, key_id)  # for the report: the full ID and label
    repo.remove_key(target.id, force=force)
    if as_json:
        output.document({"removed": _key_json(target)})
    else:
        output.info(f"key {target.short_id} removed" + (f" ({target.label})" if target.label else ""))


@key.command(name="passwd")
@click.option(
    "--new-password-file",
    type=click.Path(dir_okay=False),
    help="Read the new password from this file (or SNAPVAULT_NEW_PASSWORD_FILE, SNAPVAULT_NEW_PASSWORD).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_obj
def passwd(obj: Context, new_password_file: str | None, as_json: bool) -> None:
    """Change the password: a new key file replaces the one this password opened.

    The new key file keeps the old one's label and Argon2 parameters; it is written before the
    old one is removed.
    """
    from snapvault.repository.keys import require_encrypted

    repo = obj.open()
    require_encrypted(repo, "change the password")
    _check_new_password_source(new_password_file)
    old = repo.key_id or ""
    info = repo.change_password(_new_password(new_password_file))
    if as_json:
        output.document({"added": _key_json(info), "removed": old})
    else:
        output.info(f"password changed: key {info.short_id} replaces key {old[:8]}")


@key.command(name="rotate")
@click.option("--rewrite", is_flag=True, help="Re-seal everything under the new key, then retire the old one for good.")
@click.option("--force", is_flag=True, help="Remove the other key files (they hold only the old key).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_obj
def rotate(obj: Context, rewrite: bool, force: bool, as_json: bool) -> None:
    """Give the repository a new master encryption key.

    New data is sealed with it at once; data sealed before still opens with the retired key.
    --rewrite re-seals packs, indexes, snapshots and records under the new key (resumable: run
    it again until it says the old key is gone), then removes the old key: snapshot IDs change.
    """
    from snapvault.maintenance.rekey import RekeyResult
    from snapvault.repository.keys import require_encrypted

    repo = obj.open()
    require_encrypted(repo, "rotate the key")
    result = repo.rotate_key(obj.used_password or "", rewrite=rewrite, force=force)
    if not isinstance(result, RekeyResult):
        if as_json:
            output.document({"key": _key_json(result), "rewrite": None})
        else:
            output.info(f"key rotated: key {result.short_id} holds the new master key; the old one is retired")
        return
    for note in result.notes:
        output.note(note)
    if as_json:
        doc = {f.name: getattr(result, f.name) for f in dataclasses.fields(result) if f.name not in ("key", "prune")}
        doc["prune"] = None if result.prune is None else dataclasses.asdict(result.prune)
        output.document({"key": None if result.key is None else _key_json(result.key), "rewrite": doc})
        return
    output.info(
        f"rewrite: {result.packs_rekeyed} pack(s) re-sealed through a prune, {result.objects_resealed} object(s) "
        f"re-sealed, {len(result.snapshots_renamed)} snapshot(s) renamed"
    )
    for old, new in sorted(result.snapshots_renamed.items()):
        output.info(f"snapshot {old[:8]} is now {new[:8]}")
    if result.finished:
        output.info("the retired key is gone: it opens nothing in this repository any more")

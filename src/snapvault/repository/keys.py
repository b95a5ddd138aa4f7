"""Key files: list them, add one, remove one, change the password of the one in use.

Nouns
-----
Key file
    ``keys/<hex>``: the master keys sealed under one password (docs/format.md, "Master keys
    and key files"), named by the BLAKE3 of its bytes. Every key file of a repository wraps the
    same master keys, so each password opens the whole repository and adding or removing one
    rewrites no other object.
Key ID
    A key file's hex name; commands take it whole or as a unique prefix of 4 or more hex digits.
Current key
    The key file a handle was opened (or created, or last re-passworded) with: ``repo.key_id``.

A key file that cannot be read (damaged, not matching its name, of an unknown version or KDF, a
label no writer would write) is listed, with why, rather than hidden: it may be a stray file
worth removing. It never counts as the key that keeps a repository open: a key file is removed
only while another readable one remains. Readable is all this layer can know of another key
file; whether its password is still known is the owner's business.

Key files are created once and never modified; removing one is a store delete. Nothing here
takes a lock: two removals racing on a repository with two key files can remove both.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime

from snapvault.errors import ConfigError, IntegrityError, ObjectNotFound, SnapvaultError, UnsupportedFormat
from snapvault.pipeline.ids import object_hash
from snapvault.repository import layout
from snapvault.repository.config import (
    MAX_RETIRED_KEYS,
    KdfParams,
    KeyFileHeader,
    MasterKeys,
    check_label,
    open_key_file,
    read_key_file_header,
    seal_key_file,
)
from snapvault.repository.repo import Repository, get_named

__all__ = [
    "AmbiguousKey",
    "KeyInfo",
    "KeyNotFound",
    "KeyRemovalRefused",
    "add_key",
    "change_password",
    "drop_retired_keys",
    "list_keys",
    "remove_key",
    "require_encrypted",
    "resolve_key",
    "rotate_key",
    "settle_key_files",
]

_HEX = frozenset("0123456789abcdef")


class KeyNotFound(ConfigError, LookupError):
    """No key file of the repository has this ID or ID prefix.

    Attributes
    ----------
    key_id : str
        The ID or prefix that was given.
    """

    def __init__(self, message: str, *, key_id: str) -> None:
        super().__init__(message)
        self.key_id = key_id


class AmbiguousKey(KeyNotFound):
    """A key ID prefix matches more than one key file."""


class KeyRemovalRefused(ConfigError):
    """A key file may not be removed: it is the last readable one, or the one in use (without ``force``).

    Attributes
    ----------
    key_id : str
        The full ID of the key file that was kept.
    """

    def __init__(self, message: str, *, key_id: str) -> None:
        super().__init__(message)
        self.key_id = key_id


@dataclass(frozen=True)
class KeyInfo:
    """One key file of a repository, as its clear text describes it.

    Parameters
    ----------
    id : str
        The key file's hex name (``keys/<id>``).
    label : str
        Its label; empty when it has none (key files written before labels existed).
    created : datetime or None
        When it was written (aware, UTC); None when the key file does not say.
    kdf : KdfParams or None
        Its Argon2id parameters; None for an unencrypted repository's key file, and for one
        that cannot be read.
    current : bool
        Whether it is the key file the handle was opened with.
    error : str or None
        Why it cannot be read (damaged, not matching its name, an unknown format), without
        its ID; None when it can. It never counts as a way into the repository, and can be
        removed.

    Label and time are stored in clear and not authenticated: whoever can write the storage
    can copy a key file under another label (it then opens with the same password).
    """

    id: str
    label: str
    created: datetime | None
    kdf: KdfParams | None
    current: bool
    error: str | None = None

    @property
    def short_id(self) -> str:
        """The first 8 hex digits of the ID."""
        return self.id[:8]

    @property
    def readable(self) -> bool:
        """Whether the key file reads as a key file of this repository's kind."""
        return self.error is None


def _key(key_id: str) -> str:
    return layout.object_key(layout.KEYS, key_id)


def _read_header(repo: Repository, key_id: str) -> KeyFileHeader:
    return read_key_file_header(get_named(repo.store, _key(key_id)), encrypted=repo.encrypted)


def _info(key_id: str, header: KeyFileHeader, current: str | None) -> KeyInfo:
    return KeyInfo(key_id, header.label, header.created, header.kdf, key_id == current)


def list_keys(repo: Repository) -> list[KeyInfo]:
    """Every key file of ``repo``, oldest first (those that do not say when, first), then by ID.

    Each is read and checked against its name; one that cannot be read is listed with its
    ``error``, not left out. No password is needed and no key is derived.
    """
    infos = []
    for key in repo.list_keys(layout.KEYS):
        key_id = layout.name_of(key)
        try:
            infos.append(_info(key_id, _read_header(repo, key_id), repo.key_id))
        except ObjectNotFound:
            continue  # removed since it was listed
        except (IntegrityError, UnsupportedFormat) as e:
            # The ID is the KeyInfo's own; the reason does not repeat it.
            reason = " ".join(str(e).replace(key, "key file").split())
            infos.append(KeyInfo(key_id, "", None, None, key_id == repo.key_id, error=reason))
    epoch = datetime.min.replace(tzinfo=UTC)
    return sorted(infos, key=lambda k: (k.created is not None, k.created or epoch, k.id))


def resolve_key(repo: Repository, key_id: str) -> KeyInfo:
    """The key file whose ID is ``key_id`` or starts with it (4 or more hex digits, any case).

    Raises
    ------
    KeyNotFound
        If ``key_id`` is not 4 or more hex digits, or no key file matches.
    AmbiguousKey
        If several match.
    """
    ref = key_id.lower()
    if len(ref) < 4 or not set(ref) <= _HEX:
        raise KeyNotFound(f"{key_id!r} is not a key ID (give 4 or more hex digits)", key_id=key_id)
    matches = [k for k in list_keys(repo) if k.id.lower().startswith(ref)]
    if not matches:
        raise KeyNotFound(f"no key file matches {ref}", key_id=key_id)
    if len(matches) > 1:
        raise AmbiguousKey(f"{ref} matches {len(matches)} key files; give more digits", key_id=key_id)
    return matches[0]


def require_encrypted(repo: Repository, action: str) -> None:
    """Refuse ``action`` ("add a key") on an unencrypted repository: it has no passwords.

    Raises
    ------
    ConfigError
        If ``repo`` is not encrypted.
    """
    if not repo.encrypted:
        raise ConfigError(
            f"cannot {action}: the repository is NOT encrypted, so it has no passwords "
            "(its one key file holds the keys in clear)"
        )


def _password_bytes(password: str | bytes) -> bytes:
    data = password.encode() if isinstance(password, str) else bytes(password)
    if not data:
        raise ConfigError("the new password is empty")
    return data


def add_key(
    repo: Repository, password: str | bytes, *, label: str = "", kdf: KdfParams | None = None, now: datetime
) -> KeyInfo:
    """Write a new key file holding ``repo``'s master keys under ``password``.

    The repository then opens with ``password`` as well as with every password it opened
    with before. The key file is created once (named by its hash) and read back before this
    returns.

    Parameters
    ----------
    repo : Repository
        An open, encrypted repository.
    password : str or bytes
        The new password (text is taken as UTF-8); not empty.
    label : str
        Stored in clear to tell key files apart: at most 256 characters, no control
        characters or line breaks.
    kdf : KdfParams, optional
        Argon2id cost; default ``KdfParams()``. A key whose ``memory_kib`` is over a reader's
        limit (128 MiB unless raised) opens only with that limit raised.
    now : datetime
        The creation time recorded (timezone-aware).

    Returns
    -------
    KeyInfo
        The new key file (``current`` is False: the handle stays on its own key).

    Raises
    ------
    ConfigError
        If the repository is unencrypted, the password empty, the label refused, ``now``
        naive, or ``kdf`` over the format's ceiling.
    IntegrityError
        If the stored key file does not read back as written.
    """
    require_encrypted(repo, "add a key")
    secret = _password_bytes(password)
    check_label(label)
    if now.tzinfo is None or now.utcoffset() is None:
        raise ConfigError("now must be timezone-aware (a datetime with tzinfo)")
    params = kdf or KdfParams()
    data = seal_key_file(
        repo.master_keys,
        secret,
        params,
        salt=repo.random(16),
        random=repo.random(28),
        aead=repo.config.encryption,
        label=label,
        created=now,
    )
    key_id = object_hash(data).hex()
    repo.store.put_if_absent(_key(key_id), data)
    # Read back before anyone relies on it (change_password deletes the old key next).
    if get_named(repo.store, _key(key_id)) != data:
        raise IntegrityError(f"{_key(key_id)} did not read back as written", key=_key(key_id))
    return KeyInfo(key_id, label, now.astimezone(UTC), params, key_id == repo.key_id)


def remove_key(repo: Repository, key_id: str, *, force: bool = False) -> None:
    """Delete the key file ``key_id`` (full ID or unique prefix of 4+ hex digits).

    Its password no longer opens the repository (unless another key file has the same
    password). A handle already open with it keeps working: the master keys are in memory.

    Parameters
    ----------
    repo : Repository
        An open, encrypted repository.
    key_id : str
        The key file to remove.
    force : bool
        Allow removing the key file this handle was opened with.

    Raises
    ------
    KeyNotFound, AmbiguousKey
        If ``key_id`` matches no key file, or several.
    KeyRemovalRefused
        If no other readable key file would remain, or it is the one in use and ``force``
        is False.
    ConfigError
        If the repository is unencrypted.
    """
    require_encrypted(repo, "remove a key")
    target = resolve_key(repo, key_id)
    if target.current and not force:
        raise KeyRemovalRefused(
            f"key {target.short_id} is the one in use (this repository was opened with it); "
            "removing it needs force (--force)",
            key_id=target.id,
        )
    if not any(k.readable and k.id != target.id for k in list_keys(repo)):
        raise KeyRemovalRefused(
            f"key {target.short_id} is the last key file that can open the repository; add another first",
            key_id=target.id,
        )
    repo.delete_key(_key(target.id))


def change_password(
    repo: Repository,
    new_password: str | bytes,
    *,
    label: str | None = None,
    kdf: KdfParams | None = None,
    now: datetime,
) -> KeyInfo:
    """Replace the key file in use by one for ``new_password``.

    The new key file is written and read back first, then the old one deleted, so a failure
    at any point leaves a key that opens the repository (at worst both). ``repo.key_id``
    becomes the new key's ID. Other key files are left alone.

    Parameters
    ----------
    repo : Repository
        An open, encrypted repository, opened from a key file.
    new_password : str or bytes
        The new password; not empty.
    label : str, optional
        Default: the old key file's label.
    kdf : KdfParams, optional
        Default: the old key file's parameters (``KdfParams()`` if it cannot be read).
    now : datetime
        The creation time recorded (timezone-aware).

    Returns
    -------
    KeyInfo
        The new key file (``current`` is True).

    Raises
    ------
    ConfigError
        As :func:`add_key` does, and if the handle was not opened from a key file.
    """
    require_encrypted(repo, "change the password")
    old_id = repo.key_id
    if old_id is None:
        raise ConfigError("this handle was not opened from a key file, so it has no password to change; use add_key")
    try:
        old: KeyFileHeader | None = _read_header(repo, old_id)
        exists = True
    except ObjectNotFound:
        old, exists = None, False  # already removed (remove_key with force): nothing to delete
    except (IntegrityError, UnsupportedFormat):
        old, exists = None, True
    if label is None:
        label = old.label if old is not None else ""
    if kdf is None:
        kdf = old.kdf if old is not None and old.kdf is not None else KdfParams()
    info = add_key(repo, new_password, label=label, kdf=kdf, now=now)
    repo.key_id = info.id
    if exists and info.id != old_id:
        # Removed meanwhile is fine: the old password opens nothing either way.
        repo.delete_key(_key(old_id))
    return replace(info, current=True)


def _rewrap(repo: Repository, keys: MasterKeys, password: str | bytes, *, now: datetime) -> tuple[KeyInfo, list[str]]:
    """Write a key file for ``keys`` under ``password`` (the current key file's label and
    Argon2 parameters), read it back, then delete every other key file; return it and the
    IDs deleted. The password must open the current key file: nothing is written otherwise."""
    secret = _password_bytes(password)
    if repo.key_id is None:
        raise ConfigError("this handle was not opened from a key file")
    current = get_named(repo.store, _key(repo.key_id))
    open_key_file(current, secret)  # WrongPassword unless it is this key's password
    header = read_key_file_header(current, encrypted=True)
    data = seal_key_file(
        keys,
        secret,
        header.kdf or KdfParams(),
        salt=repo.random(16),
        random=repo.random(28),
        aead=repo.config.encryption,
        label=header.label,
        created=now,
    )
    key_id = object_hash(data).hex()
    repo.store.put_if_absent(_key(key_id), data)
    if get_named(repo.store, _key(key_id)) != data:
        raise IntegrityError(f"{_key(key_id)} did not read back as written", key=_key(key_id))
    removed = [k.id for k in list_keys(repo) if k.id != key_id]
    for old in removed:
        repo.delete_key(_key(old))
    repo.use_master_keys(keys, key_id)
    return KeyInfo(key_id, header.label, now.astimezone(UTC), header.kdf, True), removed


def settle_key_files(repo: Repository, password: str | bytes) -> int:
    """Finish a rotation or re-wrap that was interrupted between writing the new key file and
    deleting the old ones; return how many key files were removed.

    Of the key files ``password`` opens, one whose master keys are an earlier state of this
    handle's (its key is retired here, or it is this key still listing more retired keys) is
    deleted; one that is a later state (this handle's key is retired there) is adopted: the
    handle switches to it and its own key file, now the earlier state, is deleted. Key files
    of other passwords are left alone (:func:`rotate_key` asks for ``force`` for those).
    """
    secret = _password_bytes(password)
    removed = 0
    for info in list_keys(repo):
        if info.id == repo.key_id or not info.readable:
            continue
        try:
            theirs = open_key_file(get_named(repo.store, _key(info.id)), secret)
        except (SnapvaultError, ValueError):
            continue  # another password's key file, or unreadable
        ours = repo.master_keys
        if theirs.id_key != ours.id_key:
            continue
        if ours.encryption_key in theirs.retired_keys:
            old_id = repo.key_id
            repo.use_master_keys(theirs, info.id)
            if old_id is not None:
                repo.delete_key(_key(old_id))
                removed += 1
        elif theirs.encryption_key in ours.retired_keys or (
            theirs.encryption_key == ours.encryption_key and set(theirs.retired_keys) >= set(ours.retired_keys)
        ):
            repo.delete_key(_key(info.id))
            removed += 1
    return removed


def rotate_key(repo: Repository, password: str | bytes, *, force: bool = False, now: datetime) -> KeyInfo:
    """Give the repository a new master encryption key; the old one is retired.

    Everything written from now on is sealed with the new key; what the old key sealed still
    opens (the master keys list it as retired) until :func:`~snapvault.maintenance.rekey.rewrite`
    re-seals it and drops it. Blob IDs and chunking stay the same, so deduplication goes on.
    The key file in use is replaced by one holding the new master keys (same password, label
    and Argon2 parameters); every other key file wraps the old master keys only, so it is
    removed, which takes ``force`` (add those passwords again with :func:`add_key`).

    Raises
    ------
    KeyRemovalRefused
        If other key files exist and ``force`` is False.
    WrongPassword
        If ``password`` does not open the key file in use.
    ConfigError
        If the repository is unencrypted, or already carries the most retired keys.
    AppendOnlyError
        If the handle is append-only (old key files are deleted).
    """
    require_encrypted(repo, "rotate the key")
    if now.tzinfo is None or now.utcoffset() is None:
        raise ConfigError("now must be timezone-aware (a datetime with tzinfo)")
    settle_key_files(repo, password)
    others = [k for k in list_keys(repo) if k.id != repo.key_id]
    if others and not force:
        raise KeyRemovalRefused(
            f"{len(others)} other key file(s) hold the old key and would be removed "
            f"({', '.join(k.short_id for k in others)}); pass force (--force) and add them again afterwards",
            key_id=others[0].id,
        )
    old = repo.master_keys
    if len(old.retired_keys) >= MAX_RETIRED_KEYS:
        raise ConfigError(f"{MAX_RETIRED_KEYS} rotations are not rewritten yet: run key rotate --rewrite first")
    new = replace(old, encryption_key=repo.random(32), retired_keys=(old.encryption_key, *old.retired_keys))
    info, _ = _rewrap(repo, new, password, now=now)
    return info


def drop_retired_keys(repo: Repository, password: str | bytes, *, now: datetime) -> KeyInfo:
    """After a rewrite: re-wrap the master keys without the retired keys, so they open nothing."""
    new = replace(repo.master_keys, retired_keys=())
    info, _ = _rewrap(repo, new, password, now=now)
    return info

"""What a restore reports: :class:`RestoreResult`, and a :class:`RestoreFileError` per path
not restored."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from snapvault.repository.manifest import FileError

__all__ = ["RestoreFileError", "RestoreResult"]


class RestoreFileError(FileError):
    """A path a restore did not restore, and why.

    Attributes
    ----------
    path : str
        The path inside the snapshot, as below the target (``home/me/a.txt``).
    error : str
        The reason, one line.
    kind : {"damaged", "failed", "skipped"}
        ``damaged``: its stored data (for a directory: its tree) is missing or fails
        verification, or (for a file) disagrees with its stored size or is not file data;
        nothing was written under its name, and for a directory nothing below it.
        ``failed``: the target refused to create it (an OS error). ``skipped``: a type this
        restore does not create (a socket; a device unless asked for with ``devices=True``
        and run as root).
    type : str
        The entry's type: ``file``, ``dir``, ``symlink``, ``fifo``, ...
    pack_id, blob_id : str or None
        Where the damage is, in hex, when known.
    """

    kind: Literal["damaged", "failed", "skipped"] = "failed"
    type: str = "file"
    pack_id: str | None = None
    blob_id: str | None = None


@dataclass
class RestoreResult:
    """What a restore did.

    Attributes
    ----------
    snapshot_id : str
        The snapshot restored.
    target : str
        The absolute target directory, or the target URL as given.
    files, dirs, symlinks, hardlinks, other : int
        Entries restored, by kind (``files`` counts each file written once; further names
        of it are ``hardlinks``).
    files_skipped : int
        Files already in a local target with the snapshot's size and mtime (or content,
        with ``verify_existing=True``), so not fetched nor written again.
    bytes_written : int
        Bytes of the files restored.
    devices_skipped : int
        Device nodes not made (each also in ``errors``, kind ``skipped``): a restore makes
        them only with ``devices=True``, as root.
    setuid_dropped : int
        Files, FIFOs and devices restored without their stored setuid or setgid bits (kept
        only with ``setuid=True``).
    metadata_dropped : dict of str to int
        For a URL target, what it cannot hold, per kind: how many entries were restored
        without their ``mode``, ``owner``, ``mtime`` or ``xattrs``, how many ``hardlinks``
        were restored as copies, how many ``symlinks``, ``fifos`` and ``devices`` were not
        made, and (object stores) how many ``empty_dirs`` left no trace. Only kinds that
        occurred are keys; empty for a local directory, which holds them all.
    errors : list of RestoreFileError
        Each path not restored, with the reason; damaged files and unreadable directories
        among them.
    """

    snapshot_id: str
    target: str
    files: int = 0
    dirs: int = 0
    symlinks: int = 0
    hardlinks: int = 0
    other: int = 0
    files_skipped: int = 0
    bytes_written: int = 0
    devices_skipped: int = 0
    setuid_dropped: int = 0
    metadata_dropped: dict[str, int] = field(default_factory=dict)
    errors: list[RestoreFileError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every selected path was restored (a ``skipped`` entry aside)."""
        return all(e.kind == "skipped" for e in self.errors)

"""The store over a local folder, on the operating system's calls directly.

fsspec's local filesystem adds nothing a repository needs: its "create" mode checks and then
writes, so objects were already written and listed here with ``os`` calls, and importing fsspec
costs every command about 40 ms and 12 MiB (it pulls in asyncio and scans installed packages'
entry points). Local repositories, the common case, therefore skip it altogether.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Iterator

from snapvault.errors import StorageError
from snapvault.storage.base import Capabilities, StoreEntry
from snapvault.storage.errors import map_errors

__all__ = ["TMP_PREFIX", "LocalStore", "check_key", "link_into_place"]

#: Prefix of temporary files in a local repository; never a repository object.
TMP_PREFIX = ".tmp-"


def check_key(key: str) -> None:
    """Refuse a key that a backend might interpret (NUL, ``..``, absolute, empty).

    Keys come from the repository layer, but a bad one must fail here, typed, rather than
    reach a filesystem.
    """
    if not key or "\0" in key or key.startswith("/") or ".." in key.split("/"):
        raise StorageError(f"invalid object key {key!r}", key=key)


def link_into_place(tmp: str, final: str) -> bool:
    """Hard-link a complete, fsynced file to its final name; False if the name exists.

    ``link`` fails on an existing name, so of two writers exactly one wins and no reader ever
    sees a partly written object. The folder is fsynced so the new name survives a crash.
    """
    try:
        os.link(tmp, final)
    except FileExistsError:
        return False
    dfd = os.open(os.path.dirname(final), os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
    return True


class LocalStore:
    """A :class:`~snapvault.storage.Store` in the local folder ``root``.

    Objects are written to a temporary file, fsynced and hard-linked to their name, so a crash
    never leaves a torn object and of two concurrent writers exactly one wins.

    Parameters
    ----------
    root : str
        The repository's folder (made absolute); it need not exist yet.
    """

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(os.path.expanduser(root))
        self._caps = Capabilities(atomic_create=True, spool_dir=os.path.join(self.root, "data"))
        self._made_dirs: set[str] = set()

    @property
    def capabilities(self) -> Capabilities:
        return self._caps

    @property
    def url(self) -> str:
        return self.root

    def _path(self, key: str) -> str:
        check_key(key)
        return os.path.join(self.root, key)

    def get(self, key: str) -> bytes:
        with map_errors(key, self.root), open(self._path(key), "rb") as f:
            return f.read()

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        if offset < 0 or length < 0:
            raise ValueError("offset and length must not be negative")
        with map_errors(key, self.root), open(self._path(key), "rb") as f:
            f.seek(offset)
            return f.read(length)

    def size(self, key: str) -> int:
        with map_errors(key, self.root):
            st = os.stat(self._path(key))
            if not stat.S_ISREG(st.st_mode):
                raise StorageError(f"not an object: {self.root}/{key}", key=key)
            return st.st_size

    def exists(self, key: str) -> bool:
        with map_errors(key, self.root):
            return os.path.isfile(self._path(key))

    def put_if_absent(self, key: str, data: bytes | bytearray) -> bool:
        with map_errors(key, self.root):
            path = self._path(key)
            folder = os.path.dirname(path)
            self._make_dirs(folder)
            tmp = os.path.join(folder, TMP_PREFIX + secrets.token_hex(8))
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileNotFoundError:
                # The folder was removed since we made it (a prune, another process).
                os.makedirs(folder, exist_ok=True)
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                return link_into_place(tmp, path)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)

    def put_file_if_absent(self, key: str, path: str) -> bool:
        try:
            with map_errors(key, self.root):
                final = self._path(key)
                folder = os.path.dirname(final)
                self._make_dirs(folder)
                try:
                    return link_into_place(path, final)
                except FileNotFoundError:
                    if not os.path.exists(path):
                        raise
                    # The folder was removed since we made it (a prune, another process).
                    os.makedirs(folder, exist_ok=True)
                    return link_into_place(path, final)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)

    def _make_dirs(self, folder: str) -> None:
        if folder not in self._made_dirs:
            os.makedirs(folder, exist_ok=True)
            self._made_dirs.add(folder)

    def list(self, prefix: str) -> Iterator[StoreEntry]:
        prefix = prefix.strip("/")
        base = self._path(prefix) if prefix else self.root
        cut = len(self.root) + 1
        stack = [base]
        with map_errors(prefix, self.root):
            while stack:
                d = stack.pop()
                try:
                    it = os.scandir(d)
                except FileNotFoundError:
                    continue
                with it:
                    for e in it:
                        if e.is_dir(follow_symlinks=False):
                            stack.append(e.path)
                        elif not e.name.startswith(TMP_PREFIX):
                            try:
                                size = e.stat(follow_symlinks=False).st_size
                            except FileNotFoundError:
                                continue  # deleted since the folder was read: not listed
                            yield StoreEntry(e.path[cut:], size)

    def temporaries(self, prefix: str) -> Iterator[tuple[str, float]]:
        """``(key, mtime)`` of each ``.tmp-*`` file under ``prefix``: what a writer killed
        between creating and linking a file left (never a repository object)."""
        prefix = prefix.strip("/")
        stack = [self._path(prefix) if prefix else self.root]
        cut = len(self.root) + 1
        with map_errors(prefix, self.root):
            while stack:
                d = stack.pop()
                try:
                    it = os.scandir(d)
                except FileNotFoundError:
                    continue
                with it:
                    for e in it:
                        if e.is_dir(follow_symlinks=False):
                            stack.append(e.path)
                        elif e.name.startswith(TMP_PREFIX):
                            with contextlib.suppress(FileNotFoundError):
                                yield e.path[cut:], e.stat(follow_symlinks=False).st_mtime

    def delete(self, key: str) -> None:
        with map_errors(key, self.root):
            os.unlink(self._path(key))

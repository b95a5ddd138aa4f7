"""Reading a regular file's bytes for the chunker, with the holes of a sparse file not read.

A hole reads as zeros, so the chunker is fed zeros for it from memory: the bytes it sees are
exactly the bytes a plain read would give, the chunks and their IDs are the same, and a sparse
file deduplicates against the same content written densely. Nothing about holes is recorded
in the snapshot: a restore recreates holes from runs of zeros (see the restore writer).

Holes are found with ``lseek(SEEK_DATA)`` and ``lseek(SEEK_HOLE)``, asked only for files whose
allocated size (``st_blocks``) is below their length, which a dense file never is. On a file
system without them the file is read whole, as any other.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator

__all__ = ["READ_SIZE", "file_pieces", "may_have_holes"]

#: Bytes read (or zeros given) at a time.
READ_SIZE = 4 << 20
_SEEK_DATA: int | None = getattr(os, "SEEK_DATA", None)
_SEEK_HOLE: int | None = getattr(os, "SEEK_HOLE", None)
# Shared by every hole: the chunker and the sink only read the views they are given.
_ZEROS = memoryview(bytes(READ_SIZE))


def may_have_holes(st: os.stat_result) -> bool:
    """Whether a regular file's allocation (``st_blocks``) leaves room for a hole.

    ``st_blocks`` counts 512-byte units whatever the file system's block size. A file system
    that compresses can report less than the length with no hole; that costs two ``lseek``
    calls, after which the file is read whole.
    """
    return _SEEK_DATA is not None and st.st_blocks * 512 < st.st_size


def file_pieces(fd: int, expected: int, *, holes: bool) -> Iterator[tuple[bytes | memoryview, bool]]:
    """The bytes of the file open as ``fd``, from its start, in pieces of at most
    :data:`READ_SIZE`: each as ``(bytes, read)``, ``read`` False for zeros given for a hole.

    At most ``expected`` bytes are given, and fewer when the file ends sooner (it shrank since
    ``expected`` was measured). With ``holes`` the file's holes are looked up as they are
    reached and not read; without, it is read from its current offset like ``os.read``.
    """
    if not holes:
        total = 0
        while total < expected:
            data = os.read(fd, min(READ_SIZE, expected - total))
            if not data:
                return
            total += len(data)
            yield data, True
        return
    pos = 0
    while pos < expected:
        start, end = _next_data(fd, pos, expected)
        while pos < start:
            n = min(READ_SIZE, start - pos)
            yield _ZEROS[:n], False
            pos += n
        if start == end:
            return  # no data after this hole: the file ends here
        while pos < end:
            data = os.pread(fd, min(READ_SIZE, end - pos), pos)
            if not data:
                return
            pos += len(data)
            yield data, True


def _next_data(fd: int, pos: int, expected: int) -> tuple[int, int]:
    """The next stretch of data at or after ``pos``, as ``(start, end)`` cut at ``expected``;
    ``start == end`` (the end of the file, at least ``pos``) when none is left."""
    assert _SEEK_DATA is not None
    assert _SEEK_HOLE is not None
    try:
        start = os.lseek(fd, pos, _SEEK_DATA)
        end = os.lseek(fd, start, _SEEK_HOLE)
    except OSError as e:
        if e.errno != errno.ENXIO:
            # The file system cannot say (EINVAL, EOPNOTSUPP): read the rest.
            return pos, expected
        # No data from pos on: a hole to the end of the file as it is now.
        eof = max(pos, min(expected, os.fstat(fd).st_size))
        return eof, eof
    return min(start, expected), min(end, expected)

"""Resumable restore: drop from a restore plan the files a local target already holds.

A restore interrupted part way leaves whole files under their final names (each is written
under a temporary name and renamed, then its metadata applied). A second run skips a file
when the target's copy already matches the snapshot's node, so neither its chunks are
fetched nor the file written:

* quick check (default): a regular file of the node's size and mtime (nanoseconds), as
  rsync's quick check; a file edited without changing either is not noticed;
* ``verify=True``: its content is read chunk by chunk and each piece's ID compared with the
  node's chunk IDs (chunk lengths from the index), so only identical content is skipped.

Hardlinked files (``links > 1``) are never skipped: their names are made after the files,
and a partly made group is simplest to redo whole.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable

from snapvault.errors import IntegrityError
from snapvault.pipeline.index import BlobLocation
from snapvault.pipeline.restore_plan import PlannedDir
from snapvault.pipeline.tree import Node

__all__ = ["drop_existing"]


def drop_existing(
    plan: PlannedDir,
    root: str,
    *,
    verify: bool = False,
    locate: Callable[[bytes], BlobLocation] | None = None,
    blob_id: Callable[[bytes | memoryview], bytes] | None = None,
) -> int:
    """Remove from ``plan`` (in place) each file already correct below ``root``.

    Parameters
    ----------
    plan : PlannedDir
        The selected entries; skipped files are taken out of each directory's ``files``.
    root : str
        The local target directory.
    verify : bool
        Compare content against the chunk IDs instead of size and mtime only. Needs
        ``locate`` and ``blob_id``; without them nothing is skipped.
    locate, blob_id : callable, optional
        The repository's blob lookup and keyed blob ID function.

    Returns
    -------
    int
        How many files were dropped from the plan.
    """
    if verify and (locate is None or blob_id is None):
        return 0
    skipped = 0
    stack = [plan]
    while stack:
        d = stack.pop()
        stack.extend(d.dirs)
        keep: list[tuple[Node, str]] = []
        for node, rel in d.files:
            if node.links <= 1 and _matches(os.path.join(root, rel), node, verify, locate, blob_id):
                skipped += 1
            else:
                keep.append((node, rel))
        d.files[:] = keep
    return skipped


def _matches(
    path: str,
    node: Node,
    verify: bool,
    locate: Callable[[bytes], BlobLocation] | None,
    blob_id: Callable[[bytes | memoryview], bytes] | None,
) -> bool:
    try:
        st = os.lstat(path)
    except OSError:
        return False
    if not stat.S_ISREG(st.st_mode) or st.st_size != node.size:
        return False
    if not verify:
        return st.st_mtime_ns == node.mtime_ns
    assert locate is not None
    assert blob_id is not None
    try:
        with open(path, "rb") as f:
            for chunk in node.content:
                bid = bytes.fromhex(chunk)
                data = f.read(locate(bid).raw_length)
                if blob_id(data) != bid:
                    return False
            return f.read(1) == b""
    except (OSError, IntegrityError):
        return False

"""Compare two directory trees: content, type, mode, mtime, link targets and hardlinks."""

from __future__ import annotations

import os
import stat
from pathlib import Path


def snapshot_tree(root: Path) -> dict[str, tuple[object, ...]]:
    """Map each relative path below ``root`` to what a restore must reproduce."""
    out: dict[str, tuple[object, ...]] = {}
    inodes: dict[int, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            kind = stat.S_IFMT(st.st_mode)
            mtime_us = st.st_mtime_ns // 1000
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("symlink", os.readlink(p))
            elif stat.S_ISREG(st.st_mode):
                first = inodes.setdefault(st.st_ino, rel) if st.st_nlink > 1 else rel
                link = first if first != rel else None
                out[rel] = ("file", stat.S_IMODE(st.st_mode), mtime_us, Path(p).read_bytes(), link)
            else:
                # Directory mtimes and modes matter too; devices, FIFOs: type and mode.
                out[rel] = (kind, stat.S_IMODE(st.st_mode), mtime_us)
    return out


def assert_same_tree(a: Path, b: Path) -> None:
    """Assert that ``b`` reproduces ``a`` exactly."""
    left, right = snapshot_tree(a), snapshot_tree(b)
    assert sorted(left) == sorted(right)
    for rel in left:
        assert left[rel] == right[rel], rel

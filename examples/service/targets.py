"""Folders a request may name: restore targets below configured roots, policy sources below
configured backup roots.

A restore request names a root (``restores``) and a relative path below it; the path is
refused if it is absolute, holds a ``..`` component, a backslash or a NUL, or if, once the
symlinks that already exist are resolved, it leaves the root. The restorer itself keeps every
snapshot entry inside the target it is given (``snapvault.UnsafePathError``).

The roots must not be writable by anyone who does not hold the service's own rights: a
symlink planted under a root between this check and the restore would be followed.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath

from examples.service.problems import Problem

__all__ = ["check_sources", "restore_target"]


def _within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def restore_target(roots: Mapping[str, Path], root: str, relative: str) -> Path:
    """The folder a restore into ``root``/``relative`` writes, or a 403 problem.

    Raises
    ------
    Problem
        ``target-refused`` (403) for an unknown root or a path that could leave it.
    """
    base_cfg = roots.get(root)
    if base_cfg is None:
        raise Problem(403, "target-refused", f"{root!r} is not a restore root here")
    if "\x00" in relative or "\\" in relative:
        raise Problem(403, "target-refused", "the target path holds a NUL or a backslash")
    rel = PurePosixPath(relative)
    if rel.is_absolute() or relative.startswith("~"):
        raise Problem(403, "target-refused", "the target path must be relative to its root")
    if ".." in rel.parts:
        raise Problem(403, "target-refused", "the target path must not hold '..'")
    base = Path(os.path.realpath(base_cfg))
    dest = Path(os.path.realpath(base / rel))
    if not _within(dest, base):
        raise Problem(403, "target-refused", "the target path leaves its root (through a symlink)")
    return dest


def check_sources(sources: Iterable[str], roots: Iterable[Path]) -> None:
    """Refuse (403 ``source-refused``) a source that is not below one of ``roots``; no roots
    allow every source."""
    resolved = [Path(os.path.realpath(r)) for r in roots]
    if not resolved:
        return
    for src in sources:
        if "://" in src or not os.path.isabs(src):
            raise Problem(403, "source-refused", f"source {src!r} must be an absolute local path")
        real = Path(os.path.realpath(src))
        if not any(_within(real, r) for r in resolved):
            raise Problem(403, "source-refused", f"source {src!r} is not below an allowed backup root")

"""gitignore-style path patterns for backup excludes and restore selection.

Paths are ``/``-separated and relative to the backup source (backup) or the snapshot root
(restore). A directory pattern (``build/``) covers everything below the directory, ``*``
stops at ``/``, ``**`` crosses it, a leading ``/`` anchors, and ``!`` re-includes, exactly as
in ``.gitignore``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from snapvault.errors import ConfigError

if TYPE_CHECKING:
    import pathspec

__all__ = ["PathFilter"]


def _spec(patterns: Iterable[str]) -> pathspec.PathSpec[Any] | None:
    lines = [p for p in patterns if p.strip()]
    if not lines:
        return None
    # Imported here: a backup or restore without patterns never needs it (6 ms of start-up).
    import pathspec

    try:
        return pathspec.GitIgnoreSpec.from_lines(lines)
    except (ValueError, TypeError, re.error) as e:
        raise ConfigError(f"invalid pattern: {e}") from e


class PathFilter:
    """Decides which relative paths are selected.

    Parameters
    ----------
    include : iterable of str
        If non-empty, only paths matching one of these (or lying below a matching directory)
        are selected.
    exclude : iterable of str
        Paths matching these are left out, and so is everything below an excluded directory.
    """

    def __init__(self, include: Iterable[str] = (), exclude: Iterable[str] = ()) -> None:
        self._include = _spec(include)
        self._exclude = _spec(exclude)

    @property
    def selects_all(self) -> bool:
        """True when no pattern was given."""
        return self._include is None and self._exclude is None

    @property
    def has_include(self) -> bool:
        """True when include patterns narrow the selection."""
        return self._include is not None

    @staticmethod
    def _key(rel: str, is_dir: bool) -> str:
        return rel + "/" if is_dir else rel

    def excluded(self, rel: str, is_dir: bool) -> bool:
        """Whether ``rel`` matches an exclude pattern."""
        return self._exclude is not None and self._exclude.match_file(self._key(rel, is_dir))

    def included(self, rel: str, is_dir: bool) -> bool:
        """Whether ``rel`` matches an include pattern (True when there are none)."""
        return self._include is None or self._include.match_file(self._key(rel, is_dir))

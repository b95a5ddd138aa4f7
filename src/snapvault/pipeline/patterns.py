"""gitignore-style path patterns for backup excludes and restore selection, and the values of
a backup's other exclusion rules (sizes, tag files, exclude files).

Paths are ``/``-separated and relative to the backup source (backup) or the snapshot root
(restore). A directory pattern (``build/``) covers everything below the directory, ``*``
stops at ``/``, ``**`` crosses it, a leading ``/`` anchors, and ``!`` re-includes, exactly as
in ``.gitignore``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from snapvault.errors import ConfigError

if TYPE_CHECKING:
    import pathspec

__all__ = [
    "CACHEDIR_SIGNATURE",
    "CACHEDIR_TAG",
    "PathFilter",
    "TagRule",
    "parse_size",
    "pattern_lines",
    "tag_rules",
]


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


# -- the other exclusion rules of a backup (restic's names and semantics) -------------------

#: The file name and signature of the Cache Directory Tagging Specification
#: (https://bford.info/cachedir/): a directory holding such a file is a cache.
CACHEDIR_TAG = "CACHEDIR.TAG"
CACHEDIR_SIGNATURE = b"Signature: 8a477f597d28d172789f06886806bc55"

_SIZE = re.compile(r"(\d+)([kmgt]?)", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(value: int | str) -> int:
    """Bytes from a size: an int, or digits with an optional unit K, M, G or T (1024-based, any case).

    Raises
    ------
    ConfigError
        For a negative size or any other text (``1.5G``, ``10MB``, ``-1``).
    """
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ConfigError(f"a size is a number of bytes or text such as '10M', not {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ConfigError(f"a size cannot be negative: {value}")
        return value
    m = _SIZE.fullmatch(value.strip())
    if m is None:
        raise ConfigError(f"invalid size {value!r}: give bytes, or a number with K, M, G or T (1024-based)")
    return int(m.group(1)) * _UNITS[m.group(2).lower()]


@dataclass(frozen=True)
class TagRule:
    """A directory holding a file named ``name`` whose content starts with ``header`` (any
    content when ``header`` is empty) is backed up with that file only."""

    name: str
    header: bytes = b""


def tag_rules(specs: Iterable[str], *, caches: bool = False) -> tuple[TagRule, ...]:
    """The rules of ``--exclude-if-present`` specs (``NAME`` or ``NAME:HEADER``) and ``--exclude-caches``.

    Raises
    ------
    ConfigError
        For a name that is empty, ``.``, ``..``, or holds ``/`` or a NUL.
    """
    rules: list[TagRule] = []
    for spec in specs:
        name, _, header = spec.partition(":")
        if name in ("", ".", "..") or "/" in name or "\0" in name or "\0" in header:
            raise ConfigError(f"exclude-if-present takes a file name (NAME or NAME:HEADER), not {spec!r}")
        rules.append(TagRule(name, header.encode("utf-8", "surrogateescape")))
    if caches:
        rules.append(TagRule(CACHEDIR_TAG, CACHEDIR_SIGNATURE))
    return tuple(dict.fromkeys(rules))


def pattern_lines(text: str) -> list[str]:
    """The patterns of an exclude file's text: one a line, blank lines and ``#`` comments dropped,
    each line stripped of surrounding white space (as restic reads ``--exclude-file``)."""
    return [s for s in (line.strip() for line in text.splitlines()) if s and not s.startswith("#")]

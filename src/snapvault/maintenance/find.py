"""Finding entries by name or path across snapshots, as restic's ``find`` does.

Nouns:

- A *pattern* (:class:`FindPattern`) is a glob of ``fnmatch`` syntax (``*``, ``?``,
  ``[abc]``, ``[!abc]``) applied component by component, so ``*`` never crosses ``/``.
  Without ``/`` it matches an entry's name (``*.jpg``). With ``/`` it matches the entry's
  path: from the root when it starts with ``/`` (``/home/*/docs``), else its last
  components (``docs/*.md`` finds ``/home/me/docs/a.md``); ``**`` stands for any number of
  components (``/home/**/*.md``). A trailing ``/`` matches directories only.
- A *match* (:class:`FindMatch`) is one entry of one snapshot a pattern matched: the
  snapshot's ID, the entry's absolute path and its node.

Snapshots are walked one at a time, depth first, one directory's nodes at a time, and only
where a match can still lie: ``/home/*/.bashrc`` reads the root, ``/home`` and the home
directories, nothing below them; an unanchored pattern reads every directory.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from snapvault.errors import ConfigError
from snapvault.maintenance.browse import TreeReader, _read_dir
from snapvault.pipeline.tree import MAX_DEPTH, Node, depth_error
from snapvault.repository.manifest import Manifest

__all__ = ["FindMatch", "FindPattern", "find_in_snapshots"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class FindMatch:
    """One entry a pattern matched.

    Attributes
    ----------
    snapshot_id : str
        The full ID of the snapshot it is in.
    path : str
        Its absolute path in the snapshot (``/home/me/docs/a.txt``).
    node : Node
        Its type, size, times, owner and content.
    """

    snapshot_id: str
    path: str
    node: Node

    @property
    def short_id(self) -> str:
        """The first 8 hex digits of the snapshot's ID."""
        return self.snapshot_id[:8]


@dataclass(frozen=True)
class FindPattern:
    """A compiled pattern (module docstring), matched one path component at a time.

    A walk carries, per directory, the *states* reached: the positions in :attr:`parts` that
    the directory's path can have matched up to. :meth:`step` advances them by one name; an
    entry matches when the end is among its states, and a directory is worth descending
    into only while some position before the end is.

    Parameters
    ----------
    text : str
        The pattern as given.
    ignore_case : bool
        Compare case-insensitively (both sides case-folded).

    Raises
    ------
    ConfigError
        If the pattern is empty or only ``/``.
    """

    text: str
    ignore_case: bool = False
    #: The components to match; an unanchored pattern starts with ``**`` (any depth).
    parts: tuple[str, ...] = field(init=False)
    #: True if the pattern ends with ``/``.
    dirs_only: bool = field(init=False)
    #: The states at the root of a snapshot.
    initial: frozenset[int] = field(init=False)

    def __post_init__(self) -> None:
        if not isinstance(self.text, str) or not self.text.strip("/"):
            raise ConfigError(f"find pattern must name something, not {self.text!r}")
        text = self.text.casefold() if self.ignore_case else self.text
        parts = tuple(p for p in text.strip("/").split("/") if p)
        object.__setattr__(self, "parts", parts if self.text.startswith("/") else ("**", *parts))
        object.__setattr__(self, "dirs_only", self.text.endswith("/"))
        object.__setattr__(self, "initial", self._closure({0}))

    def _closure(self, states: set[int]) -> frozenset[int]:
        # ``**`` may match no component at all: reaching it reaches what follows it too.
        out = set(states)
        for j in states:
            while j < len(self.parts) and self.parts[j] == "**":
                j += 1
                out.add(j)
        return frozenset(out)

    def step(self, states: frozenset[int], name: str) -> frozenset[int]:
        """The states after one more path component, ``name``."""
        if self.ignore_case:
            name = name.casefold()
        out = set()
        for j in states:
            if j < len(self.parts):
                part = self.parts[j]
                if part == "**":
                    out.add(j)
                elif fnmatch.fnmatchcase(name, part):
                    out.add(j + 1)
        return self._closure(out)

    def accepts(self, states: frozenset[int], node: Node) -> bool:
        """Whether an entry that reached ``states`` is a match."""
        return len(self.parts) in states and (node.type == "dir" or not self.dirs_only)

    def goes_on(self, states: frozenset[int]) -> bool:
        """Whether something below a directory that reached ``states`` can match."""
        return any(j < len(self.parts) for j in states)

    def matches(self, rel: str, node: Node) -> bool:
        """Whether the entry at relative path ``rel`` (``home/me/a.txt``) is matched."""
        states = self.initial
        for name in rel.split("/"):
            states = self.step(states, name)
        return self.accepts(states, node)


def _ns(when: datetime | None, what: str) -> int | None:
    if when is None:
        return None
    if when.utcoffset() is None:
        raise ConfigError(f"{what} must be timezone-aware, not {when!r}")
    return (when - _EPOCH) // timedelta(microseconds=1) * 1000


def find_in_snapshots(
    repo: TreeReader,
    snapshots: Iterable[Manifest],
    pattern: str,
    *,
    ignore_case: bool = False,
    newer: datetime | None = None,
    older: datetime | None = None,
) -> Iterator[FindMatch]:
    """Every entry of ``snapshots`` that ``pattern`` matches, snapshot by snapshot (in the
    order given), each depth first in name order.

    Parameters
    ----------
    repo : TreeReader
        Where the trees are read.
    snapshots : iterable of Manifest
        The snapshots to search.
    pattern : str
        A glob (module docstring).
    ignore_case : bool
        Match case-insensitively.
    newer, older : datetime, optional
        Only entries modified at or after ``newer``, and before ``older`` (timezone-aware).

    Raises
    ------
    ConfigError
        At once, if the pattern is empty or a time is naive.
    IntegrityError
        While iterating, if a tree cannot be read.
    """
    compiled = FindPattern(pattern, ignore_case)
    low, high = _ns(newer, "newer"), _ns(older, "older")
    return _find(repo, snapshots, compiled, low, high)


def _find(
    repo: TreeReader, snapshots: Iterable[Manifest], pattern: FindPattern, low: int | None, high: int | None
) -> Iterator[FindMatch]:
    for m in snapshots:
        for rel, node in _walk(repo, m, pattern):
            if (low is None or node.mtime_ns >= low) and (high is None or node.mtime_ns < high):
                yield FindMatch(m.id, f"/{rel}", node)


def _walk(repo: TreeReader, m: Manifest, pattern: FindPattern) -> Iterator[tuple[str, Node]]:
    """The entries of ``m`` the pattern matches, depth first; a directory below which nothing
    can match is not read."""
    # An explicit stack of (children still to list, their parent's path and states): a
    # snapshot's depth is data and must not be a bound on Python's.
    stack: list[tuple[Iterator[Node], str, frozenset[int]]] = [(_read_dir(repo, m.tree, ""), "", pattern.initial)]
    while stack:
        children, parent, states = stack[-1]
        for n in children:
            rel = f"{parent}/{n.name}" if parent else n.name
            reached = pattern.step(states, n.name)
            if pattern.accepts(reached, n):
                yield rel, n
            if n.type == "dir" and n.subtree and pattern.goes_on(reached):
                if len(stack) >= MAX_DEPTH:
                    raise depth_error(rel)
                stack.append((_read_dir(repo, n.subtree, rel), rel, reached))
                break
        else:
            stack.pop()

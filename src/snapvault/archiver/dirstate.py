"""A directory being backed up, and its parent snapshot's nodes read as a stream.

A re-backup of an unchanged directory writes nothing: its tree is the parent's. What it must
hold while it walks is the question for memory. Holding the parent's nodes by name and the
new nodes in a list costs about 800 bytes an entry, so a directory of 500,000 files cost
400 MB. Here the parent's nodes are read in order, alongside the walk (both are sorted by
name), and as long as every entry equals the parent's, in the same places, nothing is kept
but a count. Only when the directory turns out to differ (a new entry, a changed one, one
gone) is the unchanged run before it parsed again from the parent's text into the list that
is encoded at the end. An unchanged directory then costs its parent tree's text (about 250
bytes an entry) and nothing per entry on top.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice

from snapvault.pipeline.tree import Node

__all__ = ["OpenDir", "ParentNodes"]


class ParentNodes:
    """A forward cursor over a parent tree's nodes (sorted by name, as every tree is).

    ``source`` is iterated once for the cursor and again, from its start, only if the
    directory differs (:meth:`prefix`); a one-shot iterator is listed first so it can be.
    A node that fails to parse ends the cursor (the nodes before it still count): a damaged
    parent costs the shortcut, never the backup.
    """

    __slots__ = ("_it", "_next", "_source", "broken")

    def __init__(self, source: Iterable[Node]) -> None:
        if isinstance(source, Iterator):
            source = list(source)
        self._source = source
        self._it: Iterator[Node] = iter(source)
        self._next: Node | None = None
        self.broken = False
        self._advance()

    def _advance(self) -> None:
        try:
            self._next = next(self._it)
        except StopIteration:
            self._next = None
        except Exception:  # noqa: BLE001 - a damaged parent only costs the shortcut
            self._next = None
            self.broken = True

    def take(self, name: str, skipped: list[Node]) -> Node | None:
        """The parent's node named ``name``, or None; nodes sorting before it are passed over
        (appended to ``skipped``: entries that are gone, or left out by this walk)."""
        n = self._next
        while n is not None and n.name < name:
            skipped.append(n)
            self._advance()
            n = self._next
        if n is not None and n.name == name:
            self._advance()
            return n
        return None

    def rest(self) -> list[Node]:
        """The nodes not reached (gone), consuming the cursor."""
        out = []
        while self._next is not None:
            out.append(self._next)
            self._advance()
        return out

    def prefix(self, count: int) -> list[Node]:
        """The parent's first ``count`` nodes, parsed again."""
        out = list(islice(iter(self._source), count))
        if len(out) != count:
            # The cursor read these before; a source that no longer yields them is a bug.
            raise RuntimeError(f"parent tree gave {len(out)} of its first {count} nodes on a second reading")
        return out


class OpenDir:
    """A directory being backed up: its names, the next one to visit, and what it holds so far.

    While ``nodes`` is None, every entry so far equals the parent's node in the same place
    and ``same`` counts them; :meth:`diverge` turns that run into a list of nodes.
    """

    __slots__ = (
        "depth",
        "gone",
        "i",
        "names",
        "node",
        "nodes",
        "parent",
        "parent_tree",
        "path",
        "pnode",
        "rel",
        "same",
    )

    def __init__(
        self,
        path: str,
        rel: str,
        node: Node | None,
        depth: int,
        parent_tree: str | None,
        parent: ParentNodes | None,
        names: list[str],
        pnode: Node | None = None,
    ) -> None:
        self.path = path
        self.rel = rel
        self.node = node  # its own node, without the subtree (None for the directory asked for)
        self.pnode = pnode  # the parent snapshot's node of this directory, if it had one
        self.depth = depth  # components in its path: its tree is at level depth + 1
        self.parent_tree = parent_tree
        self.parent = parent
        self.names = names
        self.i = 0
        self.same = 0
        self.nodes: list[Node] | None = None if parent is not None else []
        #: The parent's nodes this walk did not keep (their files count as removed).
        self.gone: list[Node] = []

    def diverge(self) -> list[Node]:
        """The list of this directory's nodes, made from the unchanged run if not yet made."""
        if self.nodes is None:
            assert self.parent is not None
            self.nodes = self.parent.prefix(self.same)
        return self.nodes

    def take(self, name: str) -> Node | None:
        """The parent's node of entry ``name`` (see :meth:`ParentNodes.take`)."""
        if self.parent is None:
            return None
        before = len(self.gone)
        pnode = self.parent.take(name, self.gone)
        if len(self.gone) != before:
            self.diverge()
        return pnode

    def emit(self, node: Node, pnode: Node | None) -> None:
        """Add the node of the entry whose parent node (from :meth:`take`) is ``pnode``."""
        if self.nodes is None:
            if pnode is not None and (node is pnode or node == pnode):
                self.same += 1
                return
            self.diverge()
        assert self.nodes is not None
        self.nodes.append(node)

    def drop(self, pnode: Node | None) -> None:
        """The entry whose parent node is ``pnode`` is not kept (an error, or left out)."""
        if pnode is not None:
            self.diverge()
            self.gone.append(pnode)

    def finish(self) -> bool:
        """Read the parent's remaining nodes (gone); True when this directory is the parent's
        unchanged, entry for entry (its tree is then the parent's)."""
        if self.parent is None:
            return False
        rest = self.parent.rest()
        if rest:
            self.diverge()
            self.gone += rest
        return self.nodes is None and self.same > 0 and not self.parent.broken

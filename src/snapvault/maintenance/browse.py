"""Reading a snapshot's file listing."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Protocol

from snapvault.errors import IntegrityError, SnapshotNotFound, UnsafePathError
from snapvault.pipeline.tree import MAX_DEPTH, Node, depth_error
from snapvault.repository.manifest import Manifest

__all__ = ["TreeReader", "walk_snapshot"]


class TreeReader(Protocol):
    """What browsing a snapshot uses of a repository: its trees."""

    def iter_tree(self, tree_id: str) -> Iterator[Node]:
        """Fetch the tree blob with hex ID ``tree_id`` and walk its nodes in name order."""
        ...


def walk_snapshot(repo: TreeReader, manifest: Manifest, path: str = "") -> Iterator[tuple[str, Node]]:
    """Yield ``(relative path, node)`` for every entry at or below ``path``, depth first.

    Raises
    ------
    SnapshotNotFound
        If ``path`` is not in the snapshot.
    IntegrityError
        If a tree cannot be read, or a directory's tree lies deeper than
        :data:`~snapvault.pipeline.tree.MAX_DEPTH` (raised when the walk reaches it).
    """
    parts = [p for p in path.strip("/").split("/") if p]
    nodes: Iterable[Node] = _read_dir(repo, manifest.tree, "")
    prefix = ""
    for i, part in enumerate(parts):
        match = next((n for n in nodes if n.name == part), None)
        if match is None:
            raise SnapshotNotFound(f"{path} is not in snapshot {manifest.short_id}", snapshot_id=manifest.id)
        prefix = "/".join(parts[: i + 1])
        if i == len(parts) - 1 and match.type != "dir":
            yield prefix, match
            return
        if match.type != "dir" or match.subtree is None:
            raise SnapshotNotFound(f"{path} is not a directory in snapshot {manifest.short_id}")
        if i == len(parts) - 1:
            yield prefix, match
        if i + 1 >= MAX_DEPTH:
            raise depth_error(prefix)
        nodes = _read_dir(repo, match.subtree, prefix)
    yield from _walk(repo, nodes, prefix, len(parts))


def _read_dir(repo: TreeReader, tree_id: str, rel: str) -> Iterator[Node]:
    """The nodes of directory ``rel``, one at a time; an IntegrityError, whether from reading the
    blob or from a node met later, names the directory and the tree blob."""
    try:
        nodes = repo.iter_tree(tree_id)
    except IntegrityError as e:
        raise _named(e, tree_id, rel) from None
    # A generator of its own, so a damaged node far into a big tree is named like a damaged blob.
    try:
        yield from nodes
    except IntegrityError as e:
        raise _named(e, tree_id, rel) from None


def _named(e: IntegrityError, tree_id: str, rel: str) -> IntegrityError:
    if isinstance(e, UnsafePathError) or not rel or rel in str(e):
        return e
    return IntegrityError(
        f"directory {rel}: tree {tree_id[:16]}: {e}", path=rel, blob_id=e.blob_id or tree_id, pack_id=e.pack_id
    )


def _walk(repo: TreeReader, nodes: Iterable[Node], prefix: str, level: int) -> Iterator[tuple[str, Node]]:
    # An explicit stack of (children still to list, their parent's path): a snapshot's depth is
    # data and must not be a bound on Python's. Depth first, each directory before its entries.
    stack: list[tuple[Iterator[Node], str]] = [(iter(nodes), prefix)]
    while stack:
        children, parent = stack[-1]
        for n in children:
            rel = f"{parent}/{n.name}" if parent else n.name
            yield rel, n
            if n.type == "dir" and n.subtree:
                if level + len(stack) >= MAX_DEPTH:
                    raise depth_error(rel)
                stack.append((_read_dir(repo, n.subtree, rel), rel))
                break
        else:
            stack.pop()

"""Directory trees as content-addressed blobs.

A tree is canonical JSON (sorted keys, no spaces, UTF-8)::

    {"nodes": [node, ...], "v": 1}

with nodes sorted by name. Names and symlink targets are the platform's bytes decoded with
``surrogateescape`` and written with JSON escapes, so any POSIX name round-trips. Identical
directories give identical bytes and so one blob: an unchanged subtree costs nothing.

Decoding validates every name: a hostile repository must not be able to name ``..``, an
absolute path, a path with ``/`` or NUL, or two entries with one name.

A node records its owner both ways: ``uid``/``gid`` and, where the backup machine knew them,
the ``user``/``group`` names, so a restore on another machine can map owners by name.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterator
from typing import Any, Literal, NamedTuple

from snapvault.errors import IntegrityError, UnsafePathError
from snapvault.pipeline.blob import MAX_TREE_BLOB
from snapvault.pipeline.codecs import decode_pieces

__all__ = [
    "MAX_DEPTH",
    "MAX_NAME",
    "MAX_OWNER_NAME",
    "MAX_TARGET",
    "NODE_TYPES",
    "Node",
    "TreeNodes",
    "check_shape",
    "decode_tree",
    "depth_error",
    "encode_tree",
    "iter_tree",
    "validate_name",
]

TREE_VERSION = 1
NodeType = Literal["file", "dir", "symlink", "fifo", "socket", "chardev", "blockdev"]
NODE_TYPES: tuple[str, ...] = ("file", "dir", "symlink", "fifo", "socket", "chardev", "blockdev")
#: How deep a snapshot's trees nest: the root tree is level 1 and a directory's tree one level
#: below its parent's, so a path in a snapshot has at most this many components. Readers refuse
#: a deeper tree with :func:`depth_error` and a backup records a deeper directory as an error.
MAX_DEPTH = 4096


def depth_error(path: str) -> IntegrityError:
    """The one error every reader and ``check`` give for a directory nested past MAX_DEPTH."""
    return IntegrityError(f"directory {path} is nested deeper than the format's limit of {MAX_DEPTH} levels", path=path)


class Node(NamedTuple):
    """One directory entry and its metadata (immutable; a named tuple, because backups and
    restores build one per file and a frozen dataclass costs several times more to make).

    ``content`` lists the hex blob IDs of a file's chunks in order; ``subtree`` is the hex blob
    ID of a directory's tree; ``target`` is a symlink's target; ``rdev`` a device number.
    ``inode``, ``dev`` and ``links`` let a restore recreate hardlinks and let the next backup
    recognise unchanged files. ``user`` and ``group`` are the owner's names on the machine
    that was backed up ("" when it had none for the ID): a restore maps them to that
    machine's IDs where the names exist.
    """

    name: str
    type: NodeType
    mode: int = 0
    uid: int = 0
    gid: int = 0
    mtime_ns: int = 0
    ctime_ns: int = 0
    size: int = 0
    inode: int = 0
    dev: int = 0
    links: int = 1
    content: tuple[str, ...] = ()
    subtree: str | None = None
    target: str | None = None
    rdev: int = 0
    xattrs: tuple[tuple[str, str], ...] = ()
    user: str = ""
    group: str = ""

    def to_json(self) -> dict[str, Any]:
        """The JSON object for this node, leaving out empty fields."""
        # Written out by hand: dataclasses.asdict deep-copies every field and was a quarter of
        # an unchanged re-backup's time.
        d: dict[str, Any] = {"name": self.name, "type": self.type, "links": self.links}
        for key in _INT_FIELDS:
            v = getattr(self, key)
            if v:
                d[key] = v
        if self.content:
            d["content"] = list(self.content)
        if self.subtree is not None:
            d["subtree"] = self.subtree
        if self.target is not None:
            d["target"] = self.target
        if self.xattrs:
            d["xattrs"] = [list(x) for x in self.xattrs]
        if self.user:
            d["user"] = self.user
        if self.group:
            d["group"] = self.group
        return d


_INT_FIELDS = ("mode", "uid", "gid", "mtime_ns", "ctime_ns", "size", "inode", "dev", "rdev")


#: Most bytes a name may take (UTF-8 with surrogateescape); generous next to any file system's
#: own limit (255 on Linux), so only a hostile or damaged tree holds a longer one.
MAX_NAME = 1024
#: Most bytes a symlink target may take (Linux's PATH_MAX).
MAX_TARGET = 4096
#: Most bytes an owner's user or group name may take (UTF-8 with surrogateescape): Linux
#: allows 32, directory services more; a backup records a longer name as unknown ("").
MAX_OWNER_NAME = 256


def _encoded_length(text: str) -> int | None:
    """Bytes of ``text`` on the platform (None if it has no byte form: a lone surrogate that
    surrogateescape did not make)."""
    try:
        return len(text.encode("utf-8", "surrogateescape"))
    except UnicodeEncodeError:
        return None


def validate_name(name: object) -> str:
    """Return ``name`` if it is a safe single path component, else raise UnsafePathError."""
    if not isinstance(name, str) or name in ("", ".", "..") or "/" in name or "\0" in name:
        raise UnsafePathError(f"unsafe entry name in tree: {name!r}", path=repr(name))
    n = _encoded_length(name)
    if n is None or n > MAX_NAME:
        why = "has no byte form" if n is None else f"is {n} bytes, over the format's limit of {MAX_NAME}"
        raise UnsafePathError(f"unsafe entry name in tree: {name[:64]!r}... {why}", path=repr(name[:64]))
    return name


_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True)
# The quoting json.dumps(ensure_ascii=True) applies to every string (C, when available).
_quote: Callable[[str], str] = json.encoder.encode_basestring_ascii


def _node_json(n: Node) -> str:
    """``_ENCODER.encode(n.to_json())``, written directly: the keys in sorted order, the empty
    fields left out, each string quoted as json.dumps quotes it (tests compare the two).

    Building a dict and sorting its keys for every node was most of encoding a tree (4.6
    microseconds a node; this takes 1.8 of them), and a backup of many changed
    directories encodes every node in them.
    """
    q = _quote
    (
        name,
        type_,
        mode,
        uid,
        gid,
        mtime_ns,
        ctime_ns,
        size,
        inode,
        dev,
        links,
        content,
        subtree,
        target,
        rdev,
        xattrs,
        user,
        group,
    ) = n
    s = '{"content":[' + ",".join(map(q, content)) + "]," if content else "{"
    if ctime_ns:
        s += '"ctime_ns":' + str(ctime_ns) + ","
    if dev:
        s += '"dev":' + str(dev) + ","
    if gid:
        s += '"gid":' + str(gid) + ","
    if group:
        s += '"group":' + q(group) + ","
    if inode:
        s += '"inode":' + str(inode) + ","
    s += '"links":' + str(links) + ","
    if mode:
        s += '"mode":' + str(mode) + ","
    if mtime_ns:
        s += '"mtime_ns":' + str(mtime_ns) + ","
    s += '"name":' + q(name) + ","
    if rdev:
        s += '"rdev":' + str(rdev) + ","
    if size:
        s += '"size":' + str(size) + ","
    if subtree is not None:
        s += '"subtree":' + q(subtree) + ","
    if target is not None:
        s += '"target":' + q(target) + ","
    s += '"type":' + q(type_)
    if uid:
        s += ',"uid":' + str(uid)
    if user:
        s += ',"user":' + q(user)
    if xattrs:
        s += ',"xattrs":[' + ",".join("[" + q(k) + "," + q(v) + "]" for k, v in xattrs) + "]"
    return s + "}"


def encode_tree(nodes: list[Node]) -> bytes:
    """Serialise nodes canonically (sorted by name).

    The bytes equal ``json.dumps({"nodes": [...], "v": 1}, sort_keys=True, separators=(",",
    ":"))``; each node is encoded on its own so a directory of 100,000 entries never holds all
    their dicts at once.
    """
    ordered = sorted(nodes, key=lambda n: n.name)
    previous = None
    for n in ordered:
        # The decoder's own rules, applied before a byte is written: a backup can never commit
        # a tree that its reader refuses (a symlink with a subtree once did exactly that).
        validate_name(n.name)
        if n.name == previous:
            raise UnsafePathError("tree has two entries with one name", path=n.name)
        previous = n.name
        check_shape(n.type, n.content, n.subtree, n.target, n.size, n.rdev)
        if n.user:
            _owner_name(n.user, "user")
        if n.group:
            _owner_name(n.group, "group")
    body = ",".join(map(_node_json, ordered))
    return f'{{"nodes":[{body}],"v":{TREE_VERSION}}}'.encode()


_HEX_ID = re.compile(r"^[0-9a-f]{64}$")
# Bounds a restore can pass to the OS without overflow; wider values are damage or hostility.
_INT_BOUNDS = {
    "mode": (0, 0o7777),
    "uid": (0, 2**32 - 1),
    "gid": (0, 2**32 - 1),
    "mtime_ns": (-(2**62), 2**62),
    "ctime_ns": (-(2**62), 2**62),
    "size": (0, 2**62),
    "inode": (0, 2**64 - 1),
    "dev": (0, 2**64 - 1),
    "rdev": (0, 2**64 - 1),
    "links": (1, 2**32 - 1),
}


_BOUNDS_ORDER = tuple(_INT_BOUNDS.items())


def _checked_ints(d: dict[str, Any]) -> dict[str, int]:
    # One pass over the bounds table; this runs once per node of every parent tree a backup
    # reads, so it is kept free of per-field function calls.
    out: dict[str, int] = {}
    for key, (lo, hi) in _BOUNDS_ORDER:
        if key not in d:
            continue
        v = d[key]
        if type(v) is not int or not lo <= v <= hi:
            raise IntegrityError(f"tree node field {key} is out of range: {v!r}")
        out[key] = v
    return out


def _blob_refs(values: object, what: str) -> tuple[str, ...]:
    if not isinstance(values, list):
        raise IntegrityError(f"tree node {what} is not a list")
    for v in values:
        if type(v) is not str or len(v) != 64 or not _HEX_ID.match(v):
            raise IntegrityError(f"tree node {what} is not a blob ID: {v!r}")
    return tuple(values)


def _xattr(item: object) -> tuple[str, str]:
    if not isinstance(item, list) or len(item) != 2 or not all(isinstance(x, str) for x in item):
        raise IntegrityError("tree node xattr is malformed")
    name, value = item
    if not name or "\0" in name:
        raise IntegrityError(f"tree node xattr name is invalid: {name!r}")
    try:
        # Canonical only: "QR==" decodes to the same byte as "QQ==", and two spellings of one
        # value would give one directory two tree IDs.
        canonical = base64.b64encode(base64.b64decode(value, validate=True)).decode("ascii") == value
    except ValueError:
        canonical = False
    if not canonical:
        raise IntegrityError(f"tree node xattr {name!r} is not canonical base64")
    return name, value


def _owner_name(value: object, key: str) -> str:
    """``value`` if it is a user or group name a tree may hold: text of 1 to MAX_OWNER_NAME
    bytes with no NUL (a restore hands it to getpwnam/getgrnam, which take C strings)."""
    if type(value) is not str:
        raise IntegrityError(f"tree node {key} name is not text: {type(value).__name__}")
    if not value or "\0" in value:
        raise IntegrityError(f"tree node {key} name is invalid: {value[:64]!r}")
    n = _encoded_length(value)
    if n is None or n > MAX_OWNER_NAME:
        why = "has no byte form" if n is None else f"is {n} bytes, over the format's limit of {MAX_OWNER_NAME}"
        raise IntegrityError(f"tree node {key} name {value[:64]!r}... {why}")
    if len(_VALID_OWNERS) < _VALID_OWNERS_KEPT:
        _VALID_OWNERS[value] = None
    return value


# Names already found valid: a repository has a few owners and every node repeats one, so
# most nodes' names cost a dict lookup, not a validation (a tenth of decoding a node).
# Bounded, as a hostile tree could hold a new name in every node.
_VALID_OWNERS: dict[str, None] = {}
_VALID_OWNERS_KEPT = 1024


def check_shape(
    t: object, content: tuple[str, ...], subtree: object, target: object, size: int = 0, rdev: int = 0
) -> None:
    """Raise IntegrityError unless the fields a node carries fit its type.

    Only a file has ``content`` and ``size``, only a directory a ``subtree`` (which it must
    have), only a symlink a ``target`` (likewise), only a device an ``rdev``; absent and zero
    are one thing, as the encoder leaves zeros out.

    One rule set for both directions: :func:`encode_tree` runs it before writing and the
    decoder after parsing, so what a backup writes is always what a restore can read.
    """
    if t not in NODE_TYPES:
        raise IntegrityError(f"unknown node type {t!r}")
    if t == "dir":
        _blob_refs([subtree], "subtree")
    elif subtree is not None:
        raise IntegrityError("only a directory node has a subtree")
    if t == "symlink":
        if not isinstance(target, str) or not target or "\0" in target:
            raise IntegrityError(f"symlink node has an invalid target: {target!r}")
        n = _encoded_length(target)
        if n is None or n > MAX_TARGET:
            raise IntegrityError(f"symlink node has an invalid target: {target[:64]!r}... (too long, or no byte form)")
    elif target is not None:
        raise IntegrityError("only a symlink node has a target")
    if t != "file" and (content or size):
        raise IntegrityError("only a file node has content or a size")
    if rdev and t != "chardev" and t != "blockdev":
        raise IntegrityError("only a device node has rdev")


def _node(d: dict[str, Any]) -> Node:
    t = d["type"]
    ints = _checked_ints(d)
    content = _blob_refs(d["content"], "content") if "content" in d else ()
    subtree = d.get("subtree")
    target = d.get("target")
    check_shape(t, content, subtree, target, ints.get("size", 0), ints.get("rdev", 0))
    xattrs = tuple(_xattr(x) for x in d["xattrs"]) if "xattrs" in d else ()
    # The common cases (absent, or a name seen before) cost a get and a lookup or two.
    user = d.get("user", "")
    if user != "" and (type(user) is not str or user not in _VALID_OWNERS):
        user = _owner_name(user, "user")
    group = d.get("group", "")
    if group != "" and (type(group) is not str or group not in _VALID_OWNERS):
        group = _owner_name(group, "group")
    return Node(
        name=validate_name(d["name"]),
        type=t,
        content=content,
        subtree=subtree,
        target=target,
        xattrs=xattrs,
        user=user,
        group=group,
        **ints,
    )


def _node_hook(d: dict[str, Any]) -> Any:
    # json calls this for each object as soon as it is parsed, so a node's dict becomes a Node
    # at once: a 100,000-entry directory never holds 100,000 dicts (measured: 74 of the 180 MiB
    # a re-backup of 200,000 files peaked at). Any other object (the document, or a dict where
    # a node field should be) is left for the checks that follow to reject or accept.
    return _node(d) if "name" in d and "type" in d else d


_PREFIX = '{"nodes":['
_SUFFIX = f'],"v":{TREE_VERSION}}}'
_VERSION_AT_END = re.compile(r'"v":(-?[0-9]{1,20})\}\Z')
_NODE_DECODER = json.JSONDecoder(object_hook=_node_hook)


class TreeNodes:
    """A tree blob's nodes, parsed and validated one at a time on each iteration.

    The document's framing (version, the ``nodes`` list) is checked when this is made; each
    node is checked as it is yielded, so an :class:`IntegrityError` about a node comes from the
    iteration. Only the blob's text is held, never a list of nodes: a backup walking a parent
    directory of 500,000 entries holds 500,000 nodes' text (about 250 bytes each), not 500,000
    :class:`Node` objects (about 700 bytes each). Iterating again parses again.
    """

    __slots__ = ("_frame", "_size", "_text")

    def __init__(self, data: bytes) -> None:
        self._frame: bytes | None = None
        self._size = len(data)
        if len(data) > MAX_TREE_BLOB:
            raise IntegrityError(f"tree blob is {len(data)} bytes, over the format's limit of {MAX_TREE_BLOB}")
        try:
            # Canonical trees are ASCII (JSON escapes for the rest), so this is the one copy.
            text = data.decode("ascii")
        except UnicodeDecodeError:
            raise IntegrityError("tree blob is malformed: not ASCII") from None
        if not text.startswith(_PREFIX) or not text.endswith(_SUFFIX):
            # Not this version's framing. Only the tail is read for the version, never the
            # whole document: a blob of 32 MiB of "[]," would parse into 700 MiB of empty lists.
            m = _VERSION_AT_END.search(text)
            if m is not None and int(m.group(1)) != TREE_VERSION:
                raise IntegrityError(f"unknown tree version {int(m.group(1))}")
            raise IntegrityError('tree blob is malformed: not a version 1 tree\'s canonical {"nodes":[...],"v":1}')
        self._text: str | None = text

    @classmethod
    def streamed(cls, frame: bytes, size: int) -> TreeNodes:
        """The nodes of a verified tree blob given by its codec frame (see
        :func:`~snapvault.pipeline.blob.open_frame`), decompressed a piece at a time on each
        iteration: only the compressed frame is held, about 100 bytes a file's node against
        250 for the text. The framing is checked as the iteration reaches it."""
        if size > MAX_TREE_BLOB:
            raise IntegrityError(f"tree blob is {size} bytes, over the format's limit of {MAX_TREE_BLOB}")
        self = cls.__new__(cls)
        self._frame, self._size, self._text = frame, size, None
        return self

    def __iter__(self) -> Iterator[Node]:
        if self._text is not None:
            return _nodes(self._text)
        assert self._frame is not None
        return _stream_nodes(decode_pieces(self._frame, size=self._size))


def iter_tree(data: bytes) -> Iterator[Node]:
    """Parse and validate a tree blob one node at a time (see :class:`TreeNodes`).

    The document's framing is checked before this returns; memory is the blob's text and one
    node: a walk over a directory of 780,000 entries never holds 780,000 nodes.
    """
    return iter(TreeNodes(data))


def _malformed(e: BaseException) -> IntegrityError:
    """What a failure of the JSON scanner on a tree's node becomes (a node check's own
    IntegrityError, or UnsafePathError, stays itself)."""
    if isinstance(e, IntegrityError):
        return e
    if isinstance(e, RecursionError):
        # A tree's JSON nests five deep (document, nodes, node, xattrs, pair), and every
        # walk over trees is iterative, so json's own depth guard firing means hostile nesting.
        return IntegrityError("tree blob is malformed: JSON nested deeper than a tree's")
    return IntegrityError(f"tree blob is malformed: {type(e).__name__}")


def _in_order(node: object, previous: str | None) -> Node:
    """``node`` if it is a node that sorts strictly after ``previous``, else the error."""
    if type(node) is not Node:
        raise IntegrityError("tree nodes are not a list of nodes")
    if previous is not None and node.name <= previous:
        # Strict order is what the encoder writes, and it finds two entries with one name
        # without a set of every name.
        if node.name == previous:
            raise UnsafePathError(f"tree has two entries named {node.name[:64]!r}", path=node.name)
        raise IntegrityError(f"tree nodes are not sorted by name at {node.name[:64]!r}")
    return node


def _nodes(text: str) -> Iterator[Node]:
    end = len(text) - len(_SUFFIX)
    i = len(_PREFIX)
    previous: str | None = None
    # The C scanner itself (what JSONDecoder.raw_decode wraps): one call per node, no Python
    # frame in between; it raises StopIteration where no JSON value starts.
    scan: Callable[[str, int], tuple[object, int]] = _NODE_DECODER.scan_once  # type: ignore[attr-defined]
    while i < end:
        try:
            node, i = scan(text, i)
        except StopIteration:
            raise IntegrityError(f"tree blob is malformed: no JSON value at byte {i}") from None
        except (RecursionError, ValueError, KeyError, TypeError, AttributeError) as e:
            raise _malformed(e) from None
        node = _in_order(node, previous)
        previous = node.name
        yield node
        if i < end:
            if text[i] != ",":
                raise IntegrityError("tree blob is malformed: nodes not separated by commas")
            i += 1
            if i == end:
                raise IntegrityError("tree blob is malformed: a comma after the last node")
    if i != end:
        raise IntegrityError("tree blob is malformed: a node runs past the list's end")


def _stream_nodes(pieces: Iterator[bytes]) -> Iterator[Node]:
    """:func:`_nodes` over a document given in pieces: the same checks and errors, with the
    text held only from the node being parsed to the end of the pieces read so far."""
    scan: Callable[[str, int], tuple[object, int]] = _NODE_DECODER.scan_once  # type: ignore[attr-defined]
    buf, i = "", 0
    exhausted = False

    def more(count: int) -> None:
        # Up to ``count`` more pieces onto what is left of the buffer.
        nonlocal buf, i, exhausted
        parts = [buf[i:]]
        for _ in range(count):
            piece = next(pieces, None)
            if piece is None:
                exhausted = True
                break
            try:
                parts.append(piece.decode("ascii"))
            except UnicodeDecodeError:
                raise IntegrityError("tree blob is malformed: not ASCII") from None
        buf, i = "".join(parts), 0

    while len(buf) < len(_PREFIX) and not exhausted:
        more(1)
    if not buf.startswith(_PREFIX):
        raise IntegrityError('tree blob is malformed: not a version 1 tree\'s canonical {"nodes":[...],"v":1}')
    i = len(_PREFIX)
    previous: str | None = None
    comma = False
    while True:
        while len(buf) - i <= len(_SUFFIX) and not exhausted:
            more(1)
        if buf.startswith("]", i):
            if comma:
                raise IntegrityError("tree blob is malformed: a comma after the last node")
            break
        # A node cut by the end of the buffer fails to parse: read on (twice as far each time,
        # so a hostile giant node costs a linear amount of scanning, not a quadratic one).
        grow = 1
        while True:
            try:
                node, end = scan(buf, i)
                break
            except (StopIteration, json.JSONDecodeError):
                if exhausted:
                    raise IntegrityError(f"tree blob is malformed: no JSON node at character {i}") from None
                more(grow)
                grow *= 2
            except (RecursionError, ValueError, KeyError, TypeError, AttributeError) as e:
                raise _malformed(e) from None
        node = _in_order(node, previous)
        previous = node.name
        yield node
        i = end
        while len(buf) - i < 2 and not exhausted:
            more(1)
        comma = buf.startswith(",", i)
        if comma:
            i += 1
        elif not buf.startswith("]", i):
            raise IntegrityError("tree blob is malformed: nodes not separated by commas")
    # The rest must be exactly the suffix, and nothing after it.
    while not exhausted and len(buf) - i <= len(_SUFFIX):
        more(1)
    if buf[i:] != _SUFFIX or (not exhausted and next(pieces, None) is not None):
        m = _VERSION_AT_END.search(buf[i:])
        if m is not None and int(m.group(1)) != TREE_VERSION:
            raise IntegrityError(f"unknown tree version {int(m.group(1))}")
        raise IntegrityError("tree blob is malformed: the node list does not end the document")


def decode_tree(data: bytes) -> list[Node]:
    """Parse and validate a tree blob (all of it: see :func:`iter_tree` to walk one)."""
    return list(iter_tree(data))

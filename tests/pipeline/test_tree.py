"""Tree blobs: canonical encoding, exact round trips, and strict validation on decode."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snapvault.errors import IntegrityError, UnsafePathError
from snapvault.pipeline.tree import (
    MAX_NAME,
    MAX_TARGET,
    NODE_TYPES,
    Node,
    decode_tree,
    encode_tree,
    iter_tree,
    validate_name,
)

HEX = "0123456789abcdef"
BLOB_ID = "ab" * 32


def _valid_name(s: str) -> bool:
    return s not in ("", ".", "..") and "/" not in s and "\0" not in s


names = st.one_of(
    st.text(min_size=1, max_size=30),
    # Arbitrary POSIX bytes as os.fsdecode gives them (undecodable bytes become surrogates).
    st.binary(min_size=1, max_size=30).map(os.fsdecode),
    st.sampled_from(["...", ".hidden", " ", "a b", "naïve", "日本語", "emoji-😀", os.fsdecode(b"\xff\xfe")]),
).filter(_valid_name)
hex_ids = st.text(alphabet=HEX, min_size=64, max_size=64)
targets = st.one_of(st.text(min_size=1, max_size=60), st.binary(min_size=1, max_size=60).map(os.fsdecode)).filter(
    lambda t: "\0" not in t
)
xattr_names = st.text(min_size=1, max_size=20).filter(lambda s: "\0" not in s)
xattr_values = st.binary(max_size=40).map(lambda b: base64.b64encode(b).decode())


@st.composite
def nodes(draw: st.DrawFn, name: st.SearchStrategy[str] = names) -> Node:
    t = draw(st.sampled_from(NODE_TYPES))
    return Node(
        name=draw(name),
        type=t,  # type: ignore[arg-type]
        mode=draw(st.integers(0, 0o7777)),
        uid=draw(st.integers(0, 2**32 - 1)),
        gid=draw(st.integers(0, 2**32 - 1)),
        mtime_ns=draw(st.integers(-(2**62), 2**62)),
        ctime_ns=draw(st.integers(-(2**62), 2**62)),
        size=draw(st.integers(0, 2**62)) if t == "file" else 0,
        inode=draw(st.integers(0, 2**64 - 1)),
        dev=draw(st.integers(0, 2**64 - 1)),
        links=draw(st.integers(1, 2**32 - 1)),
        content=tuple(draw(st.lists(hex_ids, max_size=5))) if t == "file" else (),
        subtree=draw(hex_ids) if t == "dir" else None,
        target=draw(targets) if t == "symlink" else None,
        rdev=draw(st.integers(0, 2**64 - 1)) if t in ("chardev", "blockdev") else 0,
        xattrs=tuple(draw(st.lists(st.tuples(xattr_names, xattr_values), max_size=3))),
    )


trees = st.lists(nodes(), max_size=12, unique_by=lambda n: n.name)


def doc(*node_dicts: dict[str, Any], v: object = 1) -> bytes:
    # Canonical framing, as readers require: the nodes inside are what each test is about.
    return json.dumps({"nodes": list(node_dicts), "v": v}, sort_keys=True, separators=(",", ":")).encode()


def file_node(**fields: Any) -> dict[str, Any]:
    return {"name": "f", "type": "file", **fields}


# -- round trip and canonical form -----------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(tree=trees)
def test_round_trip(tree: list[Node]) -> None:
    data = encode_tree(tree)
    assert decode_tree(data) == sorted(tree, key=lambda n: n.name)


@settings(max_examples=100, deadline=None)
@given(tree=trees, data=st.data())
def test_encoding_is_independent_of_input_order(tree: list[Node], data: st.DataObject) -> None:
    shuffled = data.draw(st.permutations(tree))
    assert encode_tree(shuffled) == encode_tree(tree)


owner_names = st.one_of(st.just(""), st.text(min_size=1, max_size=12).filter(lambda s: "\0" not in s))


@settings(max_examples=300, deadline=None)
@given(
    node=nodes(),
    zeros=st.sets(st.sampled_from(["mode", "uid", "gid", "mtime_ns", "ctime_ns", "size", "inode", "dev", "rdev"])),
    user=owner_names,
    group=owner_names,
)
def test_each_node_encodes_as_json_dumps_of_its_dict(node: Node, zeros: set[str], user: str, group: str) -> None:
    # The encoder writes each node by hand (no dict, no key sort); it must give json.dumps's
    # bytes exactly, empty fields left out, for every field that may be empty.
    node = node._replace(user=user, group=group, **dict.fromkeys(zeros, 0))
    expected = doc(*[node.to_json()])
    assert encode_tree([node]) == expected
    assert decode_tree(expected) == [node]


@settings(max_examples=100, deadline=None)
@given(tree=trees)
def test_encoding_is_canonical_ascii_json(tree: list[Node]) -> None:
    data = encode_tree(tree)
    assert data.isascii()
    # Re-encoding the decoded tree gives the very same bytes (one blob per directory state).
    assert encode_tree(decode_tree(data)) == data
    # Sorted keys, no whitespace between tokens.
    parsed = json.loads(data)
    assert data == json.dumps(parsed, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
    assert [n["name"] for n in parsed["nodes"]] == sorted(n.name for n in tree)


@settings(max_examples=100, deadline=None)
@given(a=trees, b=trees)
def test_different_trees_encode_differently(a: list[Node], b: list[Node]) -> None:
    same = sorted(a, key=lambda n: n.name) == sorted(b, key=lambda n: n.name)
    assert (encode_tree(a) == encode_tree(b)) == same


def test_empty_tree() -> None:
    assert encode_tree([]) == b'{"nodes":[],"v":1}'
    assert decode_tree(b'{"nodes":[],"v":1}') == []


def test_defaults_are_left_out() -> None:
    data = encode_tree([Node("a", "file")])
    assert json.loads(data) == {"nodes": [{"name": "a", "type": "file", "links": 1}], "v": 1}


@pytest.mark.parametrize(
    "name",
    [os.fsdecode(b"\xff"), os.fsdecode(b"caf\xe9"), os.fsdecode(b"\x80\x81/")[:2], "tab\there", "new\nline", "\\"],
)
def test_awkward_names_round_trip(name: str) -> None:
    n = Node(name, "file")
    (back,) = decode_tree(encode_tree([n]))
    assert back.name == name
    assert os.fsencode(back.name) == os.fsencode(name)


def test_surrogate_escaped_name_keeps_its_bytes() -> None:
    raw = b"bad-\xff\xfe-name"
    (back,) = decode_tree(encode_tree([Node(os.fsdecode(raw), "file")]))
    assert os.fsencode(back.name) == raw


def test_links_zero_is_not_silently_changed() -> None:
    # links=0 is dropped as an "empty" field and comes back as the default 1. A round trip must
    # either keep the value or refuse it, never alter it silently.
    n = Node("orphan", "file", links=0)
    try:
        back = decode_tree(encode_tree([n]))
    except IntegrityError:
        return
    assert back == [n]


# -- names -------------------------------------------------------------------------------------

# Over the length limit (in bytes, not characters), and a lone surrogate: no byte form to
# restore under.
TOO_LONG = ["x" * (MAX_NAME + 1), "é" * (MAX_NAME // 2 + 1), "a\ud800"]


@pytest.mark.parametrize(
    "name",
    ["a", "...", ".a", "a.", " ", "a\\b", os.fsdecode(b"\xff"), "x" * 255, "x" * MAX_NAME, "é" * (MAX_NAME // 2)],
)
def test_validate_name_accepts_single_components(name: str) -> None:
    assert validate_name(name) == name


@pytest.mark.parametrize(
    "name",
    [*["", ".", "..", "a/b", "/", "/abs", "a/", "../x", "a\0b", "\0", 5, None, ["a"], b"a"], *TOO_LONG],
)
def test_validate_name_rejects_unsafe_names(name: object) -> None:
    with pytest.raises(UnsafePathError):
        validate_name(name)


@pytest.mark.parametrize(
    "name", ["", ".", "..", "a/b", "/etc", "../../x", "a\0b", 5, None, ["a"], {"a": 1}, 1.5, "x" * (MAX_NAME + 1)]
)
def test_decode_rejects_unsafe_names(name: object) -> None:
    with pytest.raises(UnsafePathError) as exc:
        decode_tree(doc(file_node(name=name)))
    assert isinstance(exc.value, IntegrityError)


@given(name=names)
def test_decode_rejects_duplicate_names(name: str) -> None:
    data = doc(file_node(name=name), {"name": name, "type": "fifo"})
    with pytest.raises(UnsafePathError):
        decode_tree(data)
    # encode_tree does not deduplicate; the decoder is the gate.
    with pytest.raises(UnsafePathError):
        decode_tree(encode_tree([Node(name, "file"), Node(name, "dir", subtree=BLOB_ID)]))


# -- structure and fields --------------------------------------------------------------------


@pytest.mark.parametrize("v", [0, 2, "1", None, [1], -1])
def test_decode_rejects_unknown_versions(v: object) -> None:
    with pytest.raises(IntegrityError, match="version"):
        decode_tree(doc(v=v))


@pytest.mark.parametrize(
    "loose",
    [
        lambda n: json.dumps({"v": 1, "nodes": [n]}, indent=2),
        lambda n: json.dumps({"nodes": [n], "v": 1}),
        lambda n: '{"nodes":[' + json.dumps(n, separators=(",", ":")) + '],"v":1,"x":[[],[]]}',
        lambda n: '{"nodes":[' + json.dumps(n, separators=(",", ":")) + ',],"v":1}',
        lambda n: '{"nodes":[' + json.dumps(n, separators=(",", ":")) + ", " + json.dumps(n) + '],"v":1}',
    ],
    ids=["indented", "spaced", "extra-document-key", "trailing-comma", "space-between-nodes"],
)
def test_decode_refuses_v1_json_that_is_not_canonical(loose: Callable[[dict[str, Any]], str]) -> None:
    # Readers parse the framing by position and each node on its own, so they never build the
    # whole document; any other spelling of the document is refused, never half-read.
    node = Node("a", "file", mode=0o644, content=(BLOB_ID,)).to_json()
    with pytest.raises(IntegrityError, match="malformed"):
        decode_tree(loose(node).encode())


def test_decode_refuses_nodes_out_of_order_and_non_ascii() -> None:
    a, b = (Node(n, "fifo").to_json() for n in "ab")
    with pytest.raises(IntegrityError, match="not sorted by name at 'a'"):
        decode_tree(doc(b, a))
    with pytest.raises(IntegrityError, match="not ASCII"):
        decode_tree(doc(Node("é", "fifo").to_json()).replace(b"\\u00e9", "é".encode()))


def test_iter_tree_yields_nodes_before_a_damaged_one() -> None:
    nodes = iter_tree(doc(Node("a", "fifo").to_json(), Node("b", "fifo").to_json(), {"name": "c", "type": "x"}))
    assert next(nodes).name == "a"
    assert next(nodes).name == "b"
    with pytest.raises(IntegrityError, match="unknown node type"):
        next(nodes)


def test_decode_names_an_unknown_version_even_when_nodes_differ() -> None:
    with pytest.raises(IntegrityError, match="unknown tree version 2"):
        decode_tree(b'{"nodes":[{"path":"a/b","kind":"file"}],"v":2}')


def test_decode_rejects_a_node_list_holding_other_objects() -> None:
    with pytest.raises(IntegrityError, match="not a list of nodes"):
        decode_tree(b'{"nodes":[{"name":"a"}],"v":1}')


def test_decode_rejects_missing_version() -> None:
    with pytest.raises(IntegrityError):
        decode_tree(b'{"nodes":[]}')


@pytest.mark.parametrize("t", ["directory", "FILE", "", None, 1, ["file"], "hardlink"])
def test_decode_rejects_unknown_types(t: object) -> None:
    with pytest.raises(IntegrityError):
        decode_tree(doc({"name": "x", "type": t}))


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"{",
        b"\xff\xfe",
        b"null",
        b"[]",
        b"42",
        b'"tree"',
        b'{"v":1}',
        b'{"v":1,"nodes":5}',
        b'{"v":1,"nodes":{"a":1}}',
        b'{"v":1,"nodes":["file"]}',
        b'{"v":1,"nodes":[5]}',
        b'{"v":1,"nodes":[[]]}',
        b'{"v":1,"nodes":[{"type":"file"}]}',
        b'{"v":1,"nodes":[{"name":"a"}]}',
        b'{"v":1,"nodes":[{"name":"a","type":"file"}]}trailing',
    ],
)
def test_decode_rejects_malformed_documents(data: bytes) -> None:
    with pytest.raises(IntegrityError):
        decode_tree(data)


@pytest.mark.parametrize(
    "node",
    [
        {"name": "d", "type": "dir"},
        {"name": "d", "type": "dir", "subtree": 5},
        {"name": "d", "type": "dir", "subtree": "not-hex"},
        {"name": "d", "type": "dir", "subtree": "AB" * 32},
        {"name": "d", "type": "dir", "subtree": "ab" * 31},
        {"name": "l", "type": "symlink"},
        {"name": "l", "type": "symlink", "target": 5},
        {"name": "l", "type": "symlink", "target": ""},
        {"name": "l", "type": "symlink", "target": "a\0b"},
        {"name": "f", "type": "file", "subtree": BLOB_ID},
        {"name": "f", "type": "file", "target": "x"},
        {"name": "d", "type": "dir", "subtree": BLOB_ID, "content": [BLOB_ID]},
        file_node(content=[5]),
        file_node(content=["zz"]),
        file_node(content="ab" * 32),
        file_node(content=5),
    ],
)
def test_decode_rejects_inconsistent_nodes(node: dict[str, Any]) -> None:
    with pytest.raises(IntegrityError):
        decode_tree(doc(node))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("mode", -1),
        ("mode", 0o10000),
        ("mode", "0644"),
        ("mode", 1.5),
        ("mode", True),
        ("mode", None),
        ("uid", 2**32),
        ("gid", -1),
        ("mtime_ns", 2**62 + 1),
        ("ctime_ns", -(2**62) - 1),
        ("size", -1),
        ("inode", 2**64),
        ("dev", -1),
        ("rdev", 2**64),
        ("links", 0),
        ("links", 2**32),
        ("links", None),
    ],
)
def test_decode_rejects_out_of_range_or_non_integer_fields(field: str, value: object) -> None:
    with pytest.raises(IntegrityError):
        decode_tree(doc(file_node(**{field: value})))


@pytest.mark.parametrize("literal", [b"1e400", b"Infinity", b"-Infinity", b"NaN", b"1e20"])
def test_decode_rejects_non_integer_numbers(literal: bytes) -> None:
    with pytest.raises(IntegrityError):
        decode_tree(b'{"v":1,"nodes":[{"name":"a","type":"file","mode":' + literal + b"}]}")


@pytest.mark.parametrize(
    "xattrs",
    [
        5,
        [5],
        [["only-name"]],
        [["a", "b", "c"]],
        [[1, "AA=="]],
        [["", "AA=="]],
        [["a\0b", "AA=="]],
        [["user.x", "not base64!"]],
        [["user.x", "ü"]],
        {"user.x": "AA=="},
    ],
)
def test_decode_rejects_malformed_xattrs(xattrs: object) -> None:
    with pytest.raises(IntegrityError):
        decode_tree(doc(file_node(xattrs=xattrs)))


# Each field only on the node types the format gives it (issue #17, item 6).
@pytest.mark.parametrize(
    "node",
    [
        {"name": "f", "type": "file", "rdev": 5},
        {"name": "d", "type": "dir", "subtree": BLOB_ID, "size": 5},
        {"name": "d", "type": "dir", "subtree": BLOB_ID, "rdev": 5},
        {"name": "l", "type": "symlink", "target": "x", "size": 5},
        {"name": "p", "type": "fifo", "rdev": 5},
        {"name": "s", "type": "socket", "size": 1},
        {"name": "c", "type": "chardev", "size": 1},
        {"name": "b", "type": "blockdev", "content": [BLOB_ID]},
    ],
)
def test_decode_rejects_fields_the_node_type_lacks(node: dict[str, Any]) -> None:
    with pytest.raises(IntegrityError):
        decode_tree(doc(node))


@pytest.mark.parametrize(
    "node",
    [
        Node("f", "dir", subtree=BLOB_ID, size=5),
        Node("f", "file", rdev=5),
        Node("f", "symlink", target="x", size=5),
    ],
)
def test_encode_refuses_fields_the_node_type_lacks(node: Node) -> None:
    with pytest.raises(IntegrityError):
        encode_tree([node])


def test_devices_carry_rdev() -> None:
    for t in ("chardev", "blockdev"):
        assert decode_tree(doc({"name": "c", "type": t, "rdev": 7}))[0].rdev == 7


@pytest.mark.parametrize("value", ["QR==", "QUJ=", "QQ"])
def test_decode_rejects_non_canonical_base64_xattrs(value: str) -> None:
    # "QR==" decodes to the same byte as "QQ=="; only the canonical spelling is a tree.
    with pytest.raises(IntegrityError):
        decode_tree(doc(file_node(xattrs=[["user.x", value]])))
    canonical = base64.b64encode(base64.b64decode(value + "==")).decode()
    assert decode_tree(doc(file_node(xattrs=[["user.x", canonical]])))[0].xattrs == (("user.x", canonical),)


def test_decode_rejects_deeply_nested_json() -> None:
    # Hostile input must give IntegrityError, not RecursionError from the JSON parser.
    with pytest.raises(IntegrityError):
        decode_tree(b'{"v":1,"nodes":' + b"[" * 100_000 + b"]" * 100_000 + b"}")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=8,
)
node_keys = ["name", "type", "mode", "uid", "links", "content", "subtree", "target", "xattrs", "size"]


@settings(max_examples=300)
@given(
    fields=st.dictionaries(
        st.sampled_from(node_keys),
        st.one_of(json_values, st.sampled_from(NODE_TYPES), hex_ids, st.just([BLOB_ID])),
        max_size=8,
    ),
    v=st.one_of(st.just(1), json_values),
)
def test_decode_of_arbitrary_json_gives_nodes_or_integrity_error(fields: dict[str, Any], v: object) -> None:
    data = json.dumps({"nodes": [fields], "v": v}).encode()
    try:
        out = decode_tree(data)
    except IntegrityError:
        return
    (node,) = out
    assert isinstance(node, Node)
    assert validate_name(node.name) == node.name
    assert node.type in NODE_TYPES


@given(data=st.binary(max_size=200))
def test_decode_of_arbitrary_bytes_gives_only_integrity_error(data: bytes) -> None:
    try:
        out = decode_tree(data)
    except IntegrityError:
        return
    assert isinstance(out, list)


# -- the encoder applies the decoder's rules ----------------------------------------------------


@st.composite
def any_shape_nodes(draw: st.DrawFn) -> Node:
    """Nodes whose optional fields may not fit their type (what a buggy writer could build)."""
    return Node(
        name=draw(names),
        type=draw(st.sampled_from(NODE_TYPES)),  # type: ignore[arg-type]
        content=tuple(draw(st.lists(hex_ids, max_size=2))),
        subtree=draw(st.none() | hex_ids),
        target=draw(st.none() | targets),
        size=draw(st.sampled_from([0, 5])),
        rdev=draw(st.sampled_from([0, 7])),
    )


@settings(max_examples=500, deadline=None)
@given(tree=st.lists(any_shape_nodes(), max_size=6))
def test_whatever_encodes_decodes(tree: list[Node]) -> None:
    try:
        data = encode_tree(tree)
    except (IntegrityError, UnsafePathError):
        return
    assert decode_tree(data) == sorted(tree, key=lambda n: n.name)


@pytest.mark.parametrize(
    "node",
    [
        Node(name="linkdir", type="symlink", target="/src/docs", subtree=BLOB_ID),
        Node(name="d", type="dir"),
        Node(name="f", type="file", target="x"),
        Node(name="p", type="fifo", content=(BLOB_ID,)),
        Node(name="..", type="file"),
        Node(name="d", type="dir", subtree=BLOB_ID, size=5),
        Node(name="s", type="socket", rdev=5),
    ],
)
def test_encode_refuses_what_decode_refuses(node: Node) -> None:
    with pytest.raises((IntegrityError, UnsafePathError)):
        decode_tree(json.dumps({"nodes": [node.to_json()], "v": 1}).encode())
    with pytest.raises((IntegrityError, UnsafePathError)):
        encode_tree([node])


def test_encode_refuses_two_entries_with_one_name() -> None:
    with pytest.raises(UnsafePathError):
        encode_tree([Node(name="a", type="fifo"), Node(name="a", type="socket")])


@pytest.mark.parametrize("length", [MAX_TARGET, MAX_TARGET + 1])
def test_a_symlink_target_is_limited_in_bytes(length: int) -> None:
    node = {"name": "l", "type": "symlink", "mode": 0o777, "links": 1, "target": "t" * length}
    if length <= MAX_TARGET:
        assert decode_tree(doc(node))[0].target == "t" * length
    else:
        with pytest.raises(IntegrityError, match="invalid target"):
            decode_tree(doc(node))

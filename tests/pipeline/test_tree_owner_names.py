"""Owner names in trees: a node's ``user`` and ``group`` round-trip, old trees still read.

A node written with names carries them beside ``uid``/``gid``; a node without them encodes to
the very bytes a tree had before names existed (so unchanged directories keep their tree IDs);
a tree without the keys decodes with empty names; and the decoder refuses what a restore must
not hand to getpwnam (non-text, NUL, over-long), as the encoder does before writing.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snapvault.errors import IntegrityError
from snapvault.pipeline.tree import MAX_OWNER_NAME, NODE_TYPES, Node, decode_tree, encode_tree

BLOB = "ab" * 32


def _doc(*nodes: dict[str, Any]) -> bytes:
    return json.dumps({"nodes": list(nodes), "v": 1}, sort_keys=True, separators=(",", ":")).encode()


def _node_of_type(t: str, **kw: Any) -> Node:
    extra: dict[str, Any] = {"subtree": BLOB} if t == "dir" else {"target": "t"} if t == "symlink" else {}
    return Node(name="n", type=t, mode=0o644, uid=54321, gid=54322, **extra, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("t", NODE_TYPES)
def test_every_node_type_carries_owner_names(t: str) -> None:
    node = _node_of_type(t, user="alice", group="staff")
    raw = encode_tree([node])
    # Canonical: sorted keys put "group" after "gid" and "user" after "uid" and "type".
    assert b'"gid":54322,"group":"staff"' in raw
    assert raw.endswith(b'"type":"' + t.encode() + b'","uid":54321,"user":"alice"}],"v":1}')
    assert decode_tree(raw) == [node]


def test_a_node_without_names_encodes_as_before_names_existed() -> None:
    # The exact bytes of a version 1 tree written before this field: its ID must not change.
    node = Node(name="a.txt", type="file", mode=0o644, uid=1000, gid=1000, size=5, content=(BLOB,))
    expected = (
        b'{"nodes":[{"content":["' + BLOB.encode() + b'"],"gid":1000,"links":1,"mode":420,'
        b'"name":"a.txt","size":5,"type":"file","uid":1000}],"v":1}'
    )
    assert encode_tree([node]) == expected
    decoded = decode_tree(expected)
    assert decoded == [node]
    assert (decoded[0].user, decoded[0].group) == ("", "")


def test_one_name_without_the_other() -> None:
    only_user = Node(name="u", type="fifo", uid=7, user="daemon")
    only_group = Node(name="g", type="fifo", gid=7, group="daemon")
    raw = encode_tree([only_user, only_group])
    assert raw.count(b'"group"') == 1
    assert raw.count(b'"user"') == 1
    assert decode_tree(raw) == [only_group, only_user]


def test_an_empty_name_written_out_reads_as_no_name() -> None:
    # Writers leave empty fields out; a reader takes an explicit "" as the same thing.
    raw = _doc({"name": "f", "type": "fifo", "links": 1, "user": "", "group": ""})
    assert decode_tree(raw) == [Node(name="f", type="fifo")]


@pytest.mark.parametrize(
    "name", ["jürgen", "ユーザー", "a b", "d\udcff", "x" * MAX_OWNER_NAME, "é" * (MAX_OWNER_NAME // 2)]
)
def test_names_up_to_the_limit_round_trip(name: str) -> None:
    # "d\udcff" is how the platform hands over a name that is not UTF-8 (surrogateescape).
    node = Node(name="f", type="fifo", user=name, group=name)
    assert decode_tree(encode_tree([node])) == [node]


@given(
    user=st.text(st.characters(codec="utf-8", exclude_characters="\0"), max_size=40),
    group=st.text(st.characters(codec="utf-8", exclude_characters="\0"), max_size=40),
)
@settings(max_examples=60, deadline=None)
def test_any_text_name_round_trips(user: str, group: str) -> None:
    node = Node(name="f", type="file", user=user, group=group)
    assert decode_tree(encode_tree([node])) == [node]


BAD_NAMES: list[object] = [
    5,
    None,
    True,
    ["root"],
    {"name": "root"},
    "ro\0ot",
    "\0",
    "x" * (MAX_OWNER_NAME + 1),
    "é" * (MAX_OWNER_NAME // 2 + 1),
    "\ud800",  # a lone surrogate that surrogateescape never makes: no byte form
]


@pytest.mark.parametrize("key", ["user", "group"])
@pytest.mark.parametrize("value", BAD_NAMES, ids=lambda v: repr(v)[:20])
def test_decode_refuses_names_a_restore_cannot_look_up(key: str, value: object) -> None:
    raw = _doc({"name": "f", "type": "fifo", "links": 1, key: value})
    with pytest.raises(IntegrityError, match=key):
        decode_tree(raw)


@pytest.mark.parametrize("key", ["user", "group"])
@pytest.mark.parametrize("value", [v for v in BAD_NAMES if isinstance(v, str)], ids=lambda v: repr(v)[:20])
def test_encode_refuses_what_decode_refuses(key: str, value: str) -> None:
    with pytest.raises(IntegrityError, match=key):
        encode_tree([Node(name="f", type="fifo", **{key: value})])  # type: ignore[arg-type]


def test_a_bad_name_is_found_when_the_walk_reaches_it() -> None:
    # Strict per-node parsing: the nodes before the damaged one are yielded first.
    from snapvault.pipeline.tree import iter_tree

    raw = _doc(
        {"name": "a", "type": "fifo", "links": 1, "user": "ok"},
        {"name": "b", "type": "fifo", "links": 1, "user": 0},
    )
    nodes = iter_tree(raw)
    assert next(nodes).user == "ok"
    with pytest.raises(IntegrityError, match="user"):
        next(nodes)
